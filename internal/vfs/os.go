package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Default is the real file system of the running (Linux) host. Files are
// opened with O_CLOEXEC; direct=true asks for O_DIRECT and falls back to
// buffered I/O where the file system refuses it (see IsDirect). File.Sync is
// fdatasync(2), SyncDir is fsync(2) of the directory, and Lock is flock(2)
// LOCK_EX|LOCK_NB, so it excludes other processes and other Lock calls in
// this one. Errors name the path and wrap the OS error (a syscall.Errno).
var Default FS = osFS{}

type osFS struct{}

const (
	osFileMode = 0o644
	osDirMode  = 0o755
)

// Create implements FS.
//
// NB: it does not pass O_DIRECT to open(2): on a file system without direct
// I/O the kernel creates the file before it fails the open with EINVAL, and
// a retry with O_EXCL would then fail. It creates the file buffered and sets
// O_DIRECT with fcntl(F_SETFL), which fails with the same EINVAL when the
// file system has no direct I/O.
func (osFS) Create(name string, direct bool) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_CLOEXEC, osFileMode)
	if err != nil {
		return nil, err
	}
	of := &osFile{f: f}
	if !direct {
		return of, nil
	}
	err = of.control("fcntl", func(fd int) error {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			return err
		}
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags|unix.O_DIRECT)
		return err
	})
	switch {
	case err == nil:
		of.direct = true
	case errors.Is(err, unix.EINVAL):
		// No direct I/O on this file system; stay buffered.
	default:
		_ = f.Close()
		_ = os.Remove(name)
		return nil, err
	}
	return of, nil
}

// OpenRW implements FS.
func (osFS) OpenRW(name string, direct bool) (File, error) {
	flags := os.O_RDWR | syscall.O_CLOEXEC
	if direct {
		f, err := os.OpenFile(name, flags|unix.O_DIRECT, 0)
		if err == nil {
			return &osFile{f: f, direct: true}, nil
		}
		if !errors.Is(err, unix.EINVAL) {
			return nil, err
		}
		// No direct I/O on this file system; open buffered.
	}
	f, err := os.OpenFile(name, flags, 0)
	if err != nil {
		return nil, err
	}
	return &osFile{f: f}, nil
}

// Open implements FS.
func (osFS) Open(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &osFile{f: f}, nil
}

// Remove implements FS.
func (osFS) Remove(name string) error { return os.Remove(name) }

// Rename implements FS.
func (osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// ReadDir implements FS.
func (osFS) ReadDir(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name() // os.ReadDir sorts by name
	}
	return names, nil
}

// MkdirAll implements FS.
func (osFS) MkdirAll(dir string) error { return os.MkdirAll(dir, osDirMode) }

// SyncDir implements FS.
func (osFS) SyncDir(dir string) error {
	d, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	err = d.Sync() // fsync(2); an *fs.PathError naming dir
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Lock implements FS.
func (osFS) Lock(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, osFileMode)
	if err != nil {
		return nil, err
	}
	of := &osFile{f: f}
	err = of.control("flock", func(fd int) error {
		for {
			err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
			if err != unix.EINTR {
				return err
			}
		}
	})
	if err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("vfs: lock %s: %w (%w)", name, ErrLocked, unix.EWOULDBLOCK)
		}
		return nil, err
	}
	// Closing the only descriptor of the open file description releases
	// the flock.
	return f, nil
}

// Stat implements FS.
func (osFS) Stat(name string) (int64, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// osFile is a File of Default.
type osFile struct {
	f *os.File
	// direct is whether O_DIRECT is in effect. Invariant: set before the
	// File is returned and never changed.
	direct bool
}

// control runs fn on f's descriptor, holding a reference that keeps a
// concurrent Close from recycling it. Errors from fn are *fs.PathError with
// op; a closed file gives an error wrapping fs.ErrClosed.
func (f *osFile) control(op string, fn func(fd int) error) error {
	rc, err := f.f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		// NB: Control fails only when the file is closed or closing, and
		// then with internal/poll's error, which is not fs.ErrClosed.
		return &fs.PathError{Op: op, Path: f.f.Name(), Err: fs.ErrClosed}
	}
	if ferr != nil {
		return &fs.PathError{Op: op, Path: f.f.Name(), Err: ferr}
	}
	return nil
}

// ReadAt implements File.
//
// NB: for a direct file it issues one pread(2) instead of os.File.ReadAt's
// loop: after a short read at the end of a file whose size is not aligned,
// the loop's next pread would start at an unaligned offset and fail with
// EINVAL instead of returning io.EOF. A regular file only reads short at
// its end.
func (f *osFile) ReadAt(p []byte, off int64) (int, error) {
	if !f.direct {
		return f.f.ReadAt(p, off)
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.f.Name(), Err: errors.New("negative offset")}
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	err := f.control("read", func(fd int) error {
		for {
			var err error
			n, err = unix.Pread(fd, p, off)
			if err != unix.EINTR {
				return err
			}
		}
	})
	if err != nil {
		return 0, f.directErr(err, "read", p, off)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt implements File.
func (f *osFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.f.WriteAt(p, off)
	if err != nil && f.direct {
		err = f.directErr(err, "write", p, off)
	}
	return n, err
}

// directErr explains an EINVAL from direct I/O, which is almost always
// misalignment.
func (f *osFile) directErr(err error, op string, p []byte, off int64) error {
	if !errors.Is(err, unix.EINVAL) {
		return err
	}
	what := misaligned(p, off)
	if what == "" {
		return err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the message names the path already
	}
	return fmt.Errorf("vfs: %s %s: O_DIRECT needs %s aligned to the device: %w", op, f.f.Name(), what, err)
}

// Sync implements File with fdatasync(2).
func (f *osFile) Sync() error {
	return f.control("fdatasync", func(fd int) error {
		for {
			err := unix.Fdatasync(fd)
			if err != unix.EINTR {
				return err
			}
		}
	})
}

// Truncate implements File.
func (f *osFile) Truncate(size int64) error { return f.f.Truncate(size) }

// Size implements File.
func (f *osFile) Size() (int64, error) {
	fi, err := f.f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Mode()&os.ModeDevice != 0 {
		// A block device's size is where its end is, not what stat says.
		end, err := unix.Seek(int(f.f.Fd()), 0, io.SeekEnd)
		if err != nil {
			return 0, fmt.Errorf("vfs: size of %s: %w", f.f.Name(), err)
		}
		return end, nil
	}
	return fi.Size(), nil
}

// Close implements File.
func (f *osFile) Close() error { return f.f.Close() }

// Name implements File.
func (f *osFile) Name() string { return f.f.Name() }
