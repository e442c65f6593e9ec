package mount

import (
	"bufio"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Cache is a caching mode: what the kernel may keep between requests.
type Cache int

const (
	// CacheStrict (the default): directory entries and attributes are
	// cached for one second; every open drops the file's cached
	// attributes and pages, so an open after another client's close (or
	// fsync) reads what it wrote: close-to-open consistency. Names
	// created, removed or renamed elsewhere may take up to a second to
	// show.
	CacheStrict Cache = iota
	// CacheNone: nothing is cached; reads and writes go to the cluster
	// as they are made (direct I/O, no page cache, so no shared mmap),
	// and every lookup and stat asks the cluster. Slower, but every read
	// sees every write committed before it started, whoever made it.
	CacheNone
)

func (c Cache) String() string {
	switch c {
	case CacheStrict:
		return "strict"
	case CacheNone:
		return "none"
	}
	return fmt.Sprintf("Cache(%d)", int(c))
}

// ParseCache parses "strict" or "none".
func ParseCache(s string) (Cache, error) {
	switch s {
	case "strict", "":
		return CacheStrict, nil
	case "none":
		return CacheNone, nil
	}
	return 0, fmt.Errorf("mount: cache mode %q: want strict or none", s)
}

// Options configures a mount.
type Options struct {
	// ReadOnly mounts read-only (the kernel refuses writes with EROFS).
	ReadOnly bool
	// Cache is the caching mode (default CacheStrict).
	Cache Cache
	// AllowOther lets users other than the mounting one use the mount
	// (needs root, or user_allow_other in /etc/fuse.conf).
	AllowOther bool
	// Name is what df shows as the source, such as "weft:default".
	Name string
	// Debug logs every FUSE request and reply to Logger (or the standard
	// logger).
	Debug  bool
	Logger *log.Logger
}

// maxWrite is the largest FUSE read or write request: 1 MiB, the kernel's
// limit, so a large I/O costs few round trips.
const maxWrite = 1 << 20

// Mount is a mounted container.
type Mount struct {
	dir    string
	server *fuse.Server
	served chan struct{} // closed when the serve loop ended (unmounted)
}

// ErrBusy is returned (wrapped) by Unmount when files on the mount are in
// use; UnmountLazy detaches it anyway.
var ErrBusy = errors.New("mount: mount point busy")

// start mounts b at dir and serves it until Unmount.
func start(b backend, dir string, o Options) (*Mount, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("mount: mount point %s: %w", dir, err)
	}
	fstype, err := mountType(abs)
	if err != nil {
		return nil, err
	}
	if fstype != "" {
		if fstype != "fuse.weft" || !dead(abs) {
			return nil, fmt.Errorf("mount: %s is already a mount point (busy, %s); unmount it first (fusermount3 -u %s)", abs, fstype, abs)
		}
		// A weft mount whose server died (killed with SIGKILL): detach
		// it, so that mounting again heals it.
		if err := detach(abs); err != nil {
			return nil, fmt.Errorf("mount: %s is a dead weft mount and detaching it failed: %w", abs, err)
		}
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("mount: mount point %s does not exist", abs)
	case err != nil:
		return nil, fmt.Errorf("mount: mount point %s: %w", abs, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("mount: mount point %s is not a directory", abs)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return nil, fmt.Errorf("mount: no FUSE on this machine (%w); load the fuse module or run where /dev/fuse exists", err)
	}
	fs := newRawFS(b, o.ReadOnly, o.Cache)
	opts := &fuse.MountOptions{
		AllowOther: o.AllowOther,
		// The kernel checks permissions from the attributes we report:
		// the namespace has no credentials of its own.
		Options:       []string{"default_permissions"},
		MaxWrite:      maxWrite,
		MaxBackground: 64,
		// O_DIRECT reads and writes reach us asynchronously, so an
		// application's queue depth (io_uring, libaio) becomes ours.
		// Without it the kernel serves each direct I/O synchronously in
		// the submitter's context, and io_uring runs writes to one file
		// one at a time: QD32 became QD1. libfuse enables it by default.
		ExtraCapabilities:    fuse.CAP_ASYNC_DIO,
		FsName:               o.Name,
		Name:                 "weft",
		IgnoreSecurityLabels: true, // else every write asks for security.capability
		DirectMount:          true, // mount(2) as root; fusermount3 otherwise
		// Replies carry bytes in memory, not file descriptors: splicing
		// them through a pipe is one copy more, and a 1 MiB read does
		// not fit a pipe (go-fuse then logs and writes it anyway).
		DisableSplice: true,
		Debug:         o.Debug,
		Logger:        o.Logger,
	}
	if opts.FsName == "" {
		opts.FsName = "weft"
	}
	if o.ReadOnly {
		opts.Options = append(opts.Options, "ro")
	}
	server, err := fuse.NewServer(fs, abs, opts)
	if err != nil {
		return nil, fmt.Errorf("mount: mount %s: %w", abs, err)
	}
	m := &Mount{dir: abs, server: server, served: make(chan struct{})}
	go func() {
		server.Serve()
		close(m.served)
	}()
	if err := server.WaitMount(); err != nil {
		_ = m.UnmountLazy()
		return nil, fmt.Errorf("mount: %s did not start serving: %w", abs, err)
	}
	return m, nil
}

// Dir returns the absolute mount point.
func (m *Mount) Dir() string { return m.dir }

// Done is closed when the mount is gone: unmounted by Unmount, or by
// umount or fusermount3 -u from outside.
func (m *Mount) Done() <-chan struct{} { return m.served }

// Unmount unmounts and waits until the serve loop ended and every open
// was released. It fails with ErrBusy (wrapped) while files are in use,
// leaving the mount as it was.
func (m *Mount) Unmount() error {
	select {
	case <-m.served:
		return nil
	default:
	}
	if err := m.server.Unmount(); err != nil {
		if strings.Contains(err.Error(), "busy") || errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("%w: %s: %v", ErrBusy, m.dir, err)
		}
		return fmt.Errorf("mount: unmount %s: %w", m.dir, err)
	}
	<-m.served
	return nil
}

// UnmountLazy detaches the mount point at once (umount -l): new path
// lookups no longer reach it, while files already open keep working; the
// serve loop ends when the last is closed (Done).
func (m *Mount) UnmountLazy() error {
	select {
	case <-m.served:
		return nil
	default:
	}
	if err := m.Unmount(); err == nil || !errors.Is(err, ErrBusy) {
		return err
	}
	return detach(m.dir)
}

// dead reports whether the FUSE mount at dir lost its server: a lookup
// there fails with ENOTCONN (a stat of dir itself may be answered from
// the kernel's cache).
func dead(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, ".weft-liveness-probe"))
	return errors.Is(err, syscall.ENOTCONN)
}

// detach unmounts dir lazily (MNT_DETACH): it leaves the file system tree
// now, and goes once nothing uses it.
func detach(dir string) error {
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
		// Not root: fusermount3 -uz does the same.
		out, ferr := execFusermount("-uz", dir)
		if ferr != nil {
			return fmt.Errorf("mount: detach %s: %v; %v: %s", dir, err, ferr, out)
		}
	}
	return nil
}

// Wait blocks until the mount is gone, waiting at most d (0: forever),
// and reports whether it is.
func (m *Mount) Wait(d time.Duration) bool {
	if d == 0 {
		<-m.served
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-m.served:
		return true
	case <-t.C:
		return false
	}
}

// IsMountPoint reports whether dir (absolute, cleaned) is a mount point
// in this process's mount namespace.
func IsMountPoint(dir string) (bool, error) {
	fstype, err := mountType(dir)
	return fstype != "", err
}

// mountType returns the file system type of the mount at dir (the last
// one mounted there), "" if dir is not a mount point.
func mountType(dir string) (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("mount: read mount table: %w", err)
	}
	var fstype string
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || unescapeMountPath(fields[4]) != dir {
			continue
		}
		fstype = "unknown"
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) {
				fstype = fields[i+1]
				break
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("mount: read mount table: %w", err)
	}
	return fstype, nil
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + c - '0'
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// execFusermount runs fusermount3 (or fusermount) with args.
func execFusermount(args ...string) ([]byte, error) {
	bin, err := exec.LookPath("fusermount3")
	if err != nil {
		if bin, err = exec.LookPath("fusermount"); err != nil {
			return nil, errors.New("mount: neither fusermount3 nor fusermount is installed")
		}
	}
	return exec.Command(bin, args...).CombinedOutput()
}
