package mount

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The POSIX comparison: every case runs its system calls in a fresh folder
// on the mount and in one on the local file system (ext4 under
// t.TempDir), records each call's outcome (its errno, or what it returned
// that does not depend on the file system: sizes, modes, link counts,
// contents, names, times that were set explicitly), and the two
// transcripts must be equal line for line.
//
// Not in the table, and why:
//   - EXDEV: a container is one mount, so a rename within the mount never
//     crosses file systems; a rename between the mount and another file
//     system is refused by the kernel before weft sees it
//     (TestRenameAcrossMountsEXDEV checks that it does).
//   - EINVAL for names holding "/" or NUL: no system call can pass such a
//     name (the kernel splits paths at "/" and ends them at NUL); package
//     namespace tests that its commands refuse them.

// rec records a case's calls as lines of text.
type rec struct {
	t     *testing.T
	dir   string
	lines []string
}

func (r *rec) p(name string) string { return filepath.Join(r.dir, name) }

func errName(err error) string {
	if err == nil {
		return "ok"
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		if n := unix.ErrnoName(en); n != "" {
			return n
		}
		return fmt.Sprintf("errno %d", int(en))
	}
	return "error " + err.Error()
}

// do records err's errno under what.
func (r *rec) do(what string, err error) bool {
	r.lines = append(r.lines, what+": "+errName(err))
	return err == nil
}

func (r *rec) note(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

// must fails the test at once: the setup of a case, not its subject.
func (r *rec) must(what string, err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatalf("%s: %v", what, err)
	}
}

func (r *rec) write(name, data string) {
	r.t.Helper()
	r.must("write "+name, os.WriteFile(r.p(name), []byte(data), 0o644))
}

func (r *rec) read(name string) {
	b, err := os.ReadFile(r.p(name))
	if r.do("read "+name, err) {
		r.note("  content %q", b)
	}
}

func (r *rec) lstat(name string) {
	var st unix.Stat_t
	if r.do("lstat "+name, unix.Lstat(r.p(name), &st)) {
		r.note("  mode %o nlink %d size %s uid %d gid %d", st.Mode, st.Nlink, size(&st), st.Uid, st.Gid)
	}
}

func (r *rec) stat(name string) {
	var st unix.Stat_t
	if r.do("stat "+name, unix.Stat(r.p(name), &st)) {
		r.note("  mode %o nlink %d size %s", st.Mode, st.Nlink, size(&st))
	}
}

// size is a file's size; a directory's is the file system's business
// (ext4 counts its blocks, weft reports 0), so it is left out.
func size(st *unix.Stat_t) string {
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return "(dir)"
	}
	return fmt.Sprint(st.Size)
}

func (r *rec) open(name string, flags int, perm uint32) (int, bool) {
	fd, err := unix.Open(r.p(name), flags|unix.O_CLOEXEC, perm)
	return fd, r.do(fmt.Sprintf("open %s %#o", name, flags), err)
}

// try opens name and closes what it opened.
func (r *rec) try(name string, flags int, perm uint32) {
	if fd, ok := r.open(name, flags, perm); ok {
		unix.Close(fd)
	}
}

func (r *rec) names(name string) {
	ents, err := os.ReadDir(r.p(name))
	if r.do("readdir "+name, err) {
		var s []string
		for _, e := range ents {
			s = append(s, fmt.Sprintf("%s(%v)", e.Name(), e.Type()))
		}
		r.note("  %d entries: %s", len(s), strings.Join(s, " "))
	}
}

// bigDir is the size of the readdir case's large directory: every
// create is a Raft commit on a cluster, so -short keeps it small (tests
// lower readDirPage so that it still spans pages).
func bigDir() int {
	if testing.Short() {
		return 150
	}
	return 1500
}

type posixCase struct {
	name string
	run  func(r *rec)
}

var posixCases = []posixCase{
	{"enoent", func(r *rec) {
		r.stat("missing")
		r.try("missing", unix.O_RDONLY, 0)
		r.do("unlink missing", unix.Unlink(r.p("missing")))
		r.do("rmdir missing", unix.Rmdir(r.p("missing")))
		r.do("rename missing x", unix.Rename(r.p("missing"), r.p("x")))
		_, err := os.Readlink(r.p("missing"))
		r.do("readlink missing", err)
		r.do("mkdir missing/sub", unix.Mkdir(r.p("missing/sub"), 0o755))
		r.try("missing/f", unix.O_CREAT|unix.O_WRONLY, 0o644)
		r.do("link missing y", unix.Link(r.p("missing"), r.p("y")))
		r.do("chmod missing", unix.Chmod(r.p("missing"), 0o600))
		r.do("truncate missing", unix.Truncate(r.p("missing"), 0))
	}},
	{"eexist", func(r *rec) {
		r.do("mkdir a", unix.Mkdir(r.p("a"), 0o755))
		r.do("mkdir a again", unix.Mkdir(r.p("a"), 0o755))
		r.write("f", "x")
		r.try("f", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644)
		r.do("symlink over f", unix.Symlink("t", r.p("f")))
		r.do("link f a", unix.Link(r.p("f"), r.p("a")))
		r.do("mkdir f", unix.Mkdir(r.p("f"), 0o755))
		r.do("mknod a", unix.Mknod(r.p("a"), unix.S_IFREG|0o644, 0))
		r.do("rename noreplace f a", unix.Renameat2(unix.AT_FDCWD, r.p("f"), unix.AT_FDCWD, r.p("a"), unix.RENAME_NOREPLACE))
	}},
	{"enotdir", func(r *rec) {
		r.write("f", "x")
		r.do("mkdir f/x", unix.Mkdir(r.p("f/x"), 0o755))
		r.stat("f/x")
		r.do("rmdir f", unix.Rmdir(r.p("f")))
		r.try("f", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		r.do("mkdir a", unix.Mkdir(r.p("a"), 0o755))
		r.do("rename a f", unix.Rename(r.p("a"), r.p("f")))
		r.try("f/g", unix.O_CREAT|unix.O_WRONLY, 0o644)
		_, err := os.ReadDir(r.p("f"))
		r.do("readdir f", err)
	}},
	{"eisdir", func(r *rec) {
		r.do("mkdir a", unix.Mkdir(r.p("a"), 0o755))
		r.try("a", unix.O_WRONLY, 0)
		r.try("a", unix.O_RDWR, 0)
		r.try("a", unix.O_CREAT|unix.O_WRONLY, 0o644)
		r.do("unlink a", unix.Unlink(r.p("a")))
		r.write("f", "x")
		r.do("rename f a", unix.Rename(r.p("f"), r.p("a")))
		r.do("truncate a", unix.Truncate(r.p("a"), 0))
		if fd, ok := r.open("a", unix.O_RDONLY|unix.O_DIRECTORY, 0); ok {
			_, err := unix.Read(fd, make([]byte, 10))
			r.do("read dir fd", err)
			unix.Close(fd)
		}
	}},
	{"enotempty", func(r *rec) {
		r.do("mkdir a", unix.Mkdir(r.p("a"), 0o755))
		r.write("a/f", "x")
		r.do("rmdir a", unix.Rmdir(r.p("a")))
		r.do("mkdir b", unix.Mkdir(r.p("b"), 0o755))
		r.do("mkdir b/c", unix.Mkdir(r.p("b/c"), 0o755))
		r.do("rename a b", unix.Rename(r.p("a"), r.p("b")))
		r.do("mkdir e", unix.Mkdir(r.p("e"), 0o755))
		r.do("rename a e (empty)", unix.Rename(r.p("a"), r.p("e")))
		r.read("e/f")
		r.stat("a")
		r.do("unlink e/f", unix.Unlink(r.p("e/f")))
		r.do("rmdir e", unix.Rmdir(r.p("e")))
		r.lstat("b")
	}},
	{"enametoolong", func(r *rec) {
		n255, n256 := strings.Repeat("n", 255), strings.Repeat("l", 256)
		r.write(n255, "x")
		r.stat(n255)
		r.try(n256, unix.O_CREAT|unix.O_WRONLY, 0o644)
		r.do("mkdir 256", unix.Mkdir(r.p(n256), 0o755))
		r.stat(n256)
		r.do("symlink 256", unix.Symlink("t", r.p(n256)))
		r.do("rename to 256", unix.Rename(r.p(n255), r.p(n256)))
		r.do("link to 256", unix.Link(r.p(n255), r.p(n256)))
		r.do("symlink target 4096", unix.Symlink(strings.Repeat("t", 4096), r.p("s")))
		r.do("symlink target 4095", unix.Symlink(strings.Repeat("t", 4095), r.p("s")))
		r.lstat("s")
		r.stat(strings.Repeat("m", 1100))
	}},
	{"einval", func(r *rec) {
		r.do("mkdir a", unix.Mkdir(r.p("a"), 0o755))
		r.do("mkdir a/b", unix.Mkdir(r.p("a/b"), 0o755))
		r.do("rename a a/b/c", unix.Rename(r.p("a"), r.p("a/b/c")))
		r.do("rename a a/c", unix.Rename(r.p("a"), r.p("a/c")))
		r.do("rename whiteout", unix.Renameat2(unix.AT_FDCWD, r.p("a/b"), unix.AT_FDCWD, r.p("x"), unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE))
		r.write("f", "x")
		_, err := os.Readlink(r.p("f"))
		r.do("readlink file", err)
		r.do("truncate -1", unix.Truncate(r.p("f"), -1))
		r.do("rmdir a/b/.", unix.Rmdir(r.dir+"/a/b/."))
	}},
	{"rename replace", func(r *rec) {
		r.write("f", "one")
		r.write("g", "two")
		r.do("rename f g", unix.Rename(r.p("f"), r.p("g")))
		r.read("g")
		r.stat("f")
		r.do("mkdir a", unix.Mkdir(r.p("a"), 0o755))
		r.do("mkdir b", unix.Mkdir(r.p("b"), 0o755))
		r.do("rename a b", unix.Rename(r.p("a"), r.p("b")))
		r.stat("a")
		r.stat("b")
		r.do("rename g g", unix.Rename(r.p("g"), r.p("g")))
		r.do("link g h", unix.Link(r.p("g"), r.p("h")))
		r.do("rename g h (same inode)", unix.Rename(r.p("g"), r.p("h")))
		r.lstat("g")
		r.lstat("h")
		r.do("rename g b/g", unix.Rename(r.p("g"), r.p("b/g")))
		r.lstat("b/g")
		r.lstat("h")
		r.names("")
		r.names("b")
	}},
	{"rename exchange", func(r *rec) {
		r.write("f", "file")
		r.do("mkdir d", unix.Mkdir(r.p("d"), 0o755))
		r.write("d/in", "inside")
		r.do("exchange f d", unix.Renameat2(unix.AT_FDCWD, r.p("f"), unix.AT_FDCWD, r.p("d"), unix.RENAME_EXCHANGE))
		r.read("d")
		r.read("f/in")
		r.do("exchange f missing", unix.Renameat2(unix.AT_FDCWD, r.p("f"), unix.AT_FDCWD, r.p("missing"), unix.RENAME_EXCHANGE))
		r.do("noreplace f new", unix.Renameat2(unix.AT_FDCWD, r.p("f"), unix.AT_FDCWD, r.p("new"), unix.RENAME_NOREPLACE))
		r.read("new/in")
		r.names("")
	}},
	{"hard links", func(r *rec) {
		r.write("f", "data")
		r.do("link f g", unix.Link(r.p("f"), r.p("g")))
		r.lstat("f")
		r.do("link f h", unix.Link(r.p("f"), r.p("h")))
		r.lstat("g")
		r.do("unlink f", unix.Unlink(r.p("f")))
		r.lstat("g")
		r.read("h")
		r.do("mkdir d", unix.Mkdir(r.p("d"), 0o755))
		r.do("link d e", unix.Link(r.p("d"), r.p("e")))
		r.do("link g missing/x", unix.Link(r.p("g"), r.p("missing/x")))
		r.do("mkdir d/s", unix.Mkdir(r.p("d/s"), 0o755))
		r.lstat("d")
		r.do("rmdir d/s", unix.Rmdir(r.p("d/s")))
		r.lstat("d")
	}},
	{"symlinks", func(r *rec) {
		r.do("symlink target s", unix.Symlink("target", r.p("s")))
		l, err := os.Readlink(r.p("s"))
		if r.do("readlink s", err) {
			r.note("  %q", l)
		}
		r.lstat("s")
		r.stat("s")
		r.write("target", "via link")
		r.stat("s")
		r.read("s")
		r.try("s", unix.O_RDONLY|unix.O_NOFOLLOW, 0)
		r.do("mkdir d", unix.Mkdir(r.p("d"), 0o755))
		r.do("symlink d sd", unix.Symlink("d", r.p("sd")))
		r.write("sd/f", "through")
		r.read("d/f")
		r.do("symlink loop", unix.Symlink("loop", r.p("loop")))
		r.stat("loop")
		r.do("unlink s", unix.Unlink(r.p("s")))
		r.stat("target")
		r.do("rmdir sd", unix.Rmdir(r.p("sd")))
		r.do("chown -h sd", unix.Lchown(r.p("sd"), 7, 8))
		r.lstat("sd")
		r.do("symlink abs", unix.Symlink("/nonexistent/x", r.p("abs")))
		r.lstat("abs")
	}},
	{"chmod chown utimens", func(r *rec) {
		r.write("f", "x")
		r.do("chmod 0640", unix.Chmod(r.p("f"), 0o640))
		r.lstat("f")
		r.do("chmod 04755", unix.Chmod(r.p("f"), 0o4755))
		r.lstat("f")
		r.do("chown 1234:5678", unix.Chown(r.p("f"), 1234, 5678))
		r.lstat("f")
		r.do("chmod 06775", unix.Chmod(r.p("f"), 0o6775))
		r.do("chown -1:99", unix.Chown(r.p("f"), -1, 99))
		r.lstat("f")
		ts := []unix.Timespec{{Sec: 1000, Nsec: 123456789}, {Sec: 2000, Nsec: 987654321}}
		r.do("utimens", unix.UtimesNanoAt(unix.AT_FDCWD, r.p("f"), ts, 0))
		var st unix.Stat_t
		if r.do("stat times", unix.Stat(r.p("f"), &st)) {
			r.note("  atime %d.%09d mtime %d.%09d", st.Atim.Sec, st.Atim.Nsec, st.Mtim.Sec, st.Mtim.Nsec)
		}
		ts = []unix.Timespec{{Sec: 5, Nsec: unix.UTIME_OMIT}, {Sec: 3000, Nsec: 5}}
		r.do("utimens omit atime", unix.UtimesNanoAt(unix.AT_FDCWD, r.p("f"), ts, 0))
		if r.do("stat times", unix.Stat(r.p("f"), &st)) {
			r.note("  atime %d.%09d mtime %d.%09d", st.Atim.Sec, st.Atim.Nsec, st.Mtim.Sec, st.Mtim.Nsec)
		}
		ts = []unix.Timespec{{Nsec: unix.UTIME_NOW}, {Nsec: unix.UTIME_NOW}}
		r.do("utimens now", unix.UtimesNanoAt(unix.AT_FDCWD, r.p("f"), ts, 0))
		if r.do("stat times", unix.Stat(r.p("f"), &st)) {
			r.note("  mtime moved forward: %v", st.Mtim.Sec > 3000)
		}
		r.do("mkdir d", unix.Mkdir(r.p("d"), 0o777))
		r.do("chmod d 02750", unix.Chmod(r.p("d"), 0o2750))
		r.do("chown d 0:4242", unix.Chown(r.p("d"), 0, 4242))
		r.write("d/f", "x")
		r.lstat("d/f")
		r.do("mkdir d/sub", unix.Mkdir(r.p("d/sub"), 0o755))
		r.lstat("d/sub")
	}},
	{"truncate", func(r *rec) {
		r.write("f", "0123456789")
		r.do("truncate 4", unix.Truncate(r.p("f"), 4))
		r.read("f")
		r.do("truncate 12", unix.Truncate(r.p("f"), 12))
		r.read("f")
		if fd, ok := r.open("f", unix.O_RDWR, 0); ok {
			r.do("ftruncate 2", unix.Ftruncate(fd, 2))
			_, err := unix.Pwrite(fd, []byte("xy"), 6)
			r.do("pwrite 6", err)
			var st unix.Stat_t
			if r.do("fstat", unix.Fstat(fd, &st)) {
				r.note("  size %d", st.Size)
			}
			r.do("ftruncate 7", unix.Ftruncate(fd, 7))
			b := make([]byte, 20)
			n, err := unix.Pread(fd, b, 0)
			if r.do("pread", err) {
				r.note("  %q", b[:n])
			}
			unix.Close(fd)
		}
		r.read("f")
		r.try("f", unix.O_WRONLY|unix.O_TRUNC, 0)
		r.stat("f")
		r.write("g", strings.Repeat("z", 300000))
		r.do("truncate g 100000", unix.Truncate(r.p("g"), 100000))
		r.do("truncate g 200000", unix.Truncate(r.p("g"), 200000))
		b, err := os.ReadFile(r.p("g"))
		if r.do("read g", err) {
			r.note("  %d bytes, %d z, zeros after: %v", len(b), bytes.Count(b, []byte("z")), !slices.ContainsFunc(b[100000:], func(c byte) bool { return c != 0 }))
		}
	}},
	{"append", func(r *rec) {
		r.write("f", "abc")
		if fd, ok := r.open("f", unix.O_WRONLY|unix.O_APPEND, 0); ok {
			_, err := unix.Write(fd, []byte("def"))
			r.do("write", err)
			_, err = unix.Seek(fd, 0, 0)
			r.do("seek 0", err)
			_, err = unix.Write(fd, []byte("ghi"))
			r.do("write after seek", err)
			_, err = unix.Pwrite(fd, []byte("jkl"), 1)
			r.do("pwrite at 1 (appends on Linux)", err)
			unix.Close(fd)
		}
		r.read("f")
		if fd, ok := r.open("new", unix.O_CREAT|unix.O_WRONLY|unix.O_APPEND, 0o644); ok {
			for i := range 3 {
				_, err := unix.Write(fd, []byte{'0' + byte(i)})
				r.do("append", err)
			}
			unix.Close(fd)
		}
		r.read("new")
	}},
	{"excl", func(r *rec) {
		if fd, ok := r.open("f", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o600); ok {
			unix.Close(fd)
		}
		r.try("f", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o600)
		r.lstat("f")
		r.do("symlink dangling", unix.Symlink("nowhere", r.p("s")))
		r.try("s", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o600)
		r.stat("nowhere")
		if fd, ok := r.open("s", unix.O_CREAT|unix.O_WRONLY, 0o600); ok {
			unix.Close(fd)
		}
		r.lstat("nowhere")
		r.try("f", unix.O_CREAT|unix.O_WRONLY, 0o777)
		r.lstat("f")
	}},
	{"readdir", func(r *rec) {
		r.names("")
		// mknod: one metadata command per file (a create through
		// open and close costs four).
		for i := range 40 {
			r.must("mknod", unix.Mknod(r.p(fmt.Sprintf("file%02d", i)), unix.S_IFREG|0o644, 0))
		}
		for i := range 5 {
			r.must("mkdir", os.Mkdir(r.p(fmt.Sprintf("dir%d", i)), 0o755))
		}
		r.must("symlink", os.Symlink("x", r.p("link")))
		r.names("")
		r.must("mkdir", os.Mkdir(r.p("big"), 0o755))
		for i := range bigDir() {
			r.must("mknod", unix.Mknod(r.p(fmt.Sprintf("big/entry-with-a-longer-name-%04d", i)), unix.S_IFREG|0o644, 0))
		}
		ents, err := os.ReadDir(r.p("big"))
		if r.do("readdir big", err) {
			r.note("  %d entries, first %s last %s", len(ents), ents[0].Name(), ents[len(ents)-1].Name())
		}
		// Removing while listing: every entry present throughout is
		// seen exactly once.
		f, err := os.Open(r.p("big"))
		r.must("open big", err)
		first, err := f.Readdirnames(100)
		r.must("readdirnames", err)
		for _, n := range first[:50] {
			r.must("remove", os.Remove(r.p("big/"+n)))
		}
		rest, err := f.Readdirnames(-1)
		r.must("readdirnames", err)
		f.Close()
		all := append(first, rest...)
		slices.Sort(all)
		r.note("  listed while removing: %d names, %d distinct", len(all), len(slices.Compact(all)))
		f, err = os.Open(r.p(""))
		r.must("open", err)
		var buf [8192]byte
		n, err := unix.ReadDirent(int(f.Fd()), buf[:])
		r.must("getdents", err)
		f.Close()
		var dots []string
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(b[16]) | int(b[17])<<8
			name, _, _ := strings.Cut(string(b[19:reclen]), "\x00")
			if strings.HasPrefix(name, ".") {
				dots = append(dots, name)
			}
			b = b[reclen:]
		}
		slices.Sort(dots)
		r.note("  getdents dot entries: %v", dots)
	}},
	{"unlinked but open", func(r *rec) {
		r.write("f", "hello")
		fd, ok := r.open("f", unix.O_RDWR, 0)
		if !ok {
			return
		}
		defer unix.Close(fd)
		r.do("unlink f", unix.Unlink(r.p("f")))
		r.stat("f")
		var st unix.Stat_t
		if r.do("fstat", unix.Fstat(fd, &st)) {
			r.note("  nlink %d size %d", st.Nlink, st.Size)
		}
		b := make([]byte, 20)
		n, err := unix.Pread(fd, b[:10], 0)
		if r.do("pread", err) {
			r.note("  %q", b[:n])
		}
		_, err = unix.Pwrite(fd, []byte(" world"), 5)
		r.do("pwrite", err)
		n, err = unix.Pread(fd, b, 0)
		if r.do("pread", err) {
			r.note("  %q", b[:n])
		}
		r.names("")
	}},
	{"io", func(r *rec) {
		fd, ok := r.open("f", unix.O_CREAT|unix.O_RDWR, 0o644)
		if !ok {
			return
		}
		defer unix.Close(fd)
		_, err := unix.Pwrite(fd, []byte("end"), 1<<20)
		r.do("pwrite at 1 MiB", err)
		_, err = unix.Pwrite(fd, []byte("start"), 0)
		r.do("pwrite at 0", err)
		b := make([]byte, 16)
		n, err := unix.Pread(fd, b, 1<<19)
		if r.do("pread hole", err) {
			r.note("  %d bytes %v", n, b[:n])
		}
		n, err = unix.Pread(fd, b, 1<<20)
		if r.do("pread tail", err) {
			r.note("  %q", b[:n])
		}
		n, err = unix.Pread(fd, b, 2<<20)
		if r.do("pread past end", err) {
			r.note("  %d bytes", n)
		}
		var st unix.Stat_t
		if r.do("fstat", unix.Fstat(fd, &st)) {
			r.note("  size %d", st.Size)
		}
		r.do("fsync", unix.Fsync(fd))
		r.do("fdatasync", unix.Fdatasync(fd))
		rfd, ok := r.open("f", unix.O_RDONLY, 0)
		if ok {
			_, err := unix.Write(rfd, []byte("x"))
			r.do("write to read-only fd", err)
			unix.Close(rfd)
		}
		r.stat("f")
	}},
	{"mmap", func(r *rec) {
		// The mapping is touched in a child process: a page fault on the
		// mount in the process serving it can deadlock (the faulting
		// thread cannot stop for the garbage collector, which stops the
		// goroutines that would serve the fault).
		r.write("f", strings.Repeat("a", 8192))
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), mmapChildEnv+"="+r.p("f"))
		out, err := cmd.CombinedOutput()
		r.do("mmap child", err)
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			r.note("  %s", l)
		}
		got, err := os.ReadFile(r.p("f"))
		if r.do("read", err) {
			r.note("  %d bytes, %q", len(got), got[3995:4035])
		}
	}},
	{"direct io", func(r *rec) {
		// O_DIRECT needs aligned buffers: an anonymous mapping is.
		buf, err := unix.Mmap(-1, 0, 8192, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		r.must("mmap", err)
		defer unix.Munmap(buf)
		for i := range buf {
			buf[i] = byte('A' + i/4096)
		}
		fd, ok := r.open("f", unix.O_CREAT|unix.O_RDWR|unix.O_DIRECT, 0o644)
		if !ok {
			return
		}
		defer unix.Close(fd)
		n, err := unix.Pwrite(fd, buf, 4096)
		if r.do("pwrite direct", err) {
			r.note("  %d", n)
		}
		clear(buf)
		n, err = unix.Pread(fd, buf, 0)
		if r.do("pread direct", err) {
			r.note("  %d bytes, zeros %d, A %d, B %d", n, bytes.Count(buf[:n], []byte{0}), bytes.Count(buf[:n], []byte("A")), bytes.Count(buf[:n], []byte("B")))
		}
		r.stat("f")
	}},
	{"xattr", func(r *rec) {
		r.write("f", "x")
		r.do("setxattr user.a", unix.Setxattr(r.p("f"), "user.a", []byte("1"), 0))
		b := make([]byte, 64)
		n, err := unix.Getxattr(r.p("f"), "user.a", b)
		if r.do("getxattr user.a", err) {
			r.note("  %q", b[:n])
		}
		n, err = unix.Getxattr(r.p("f"), "user.a", nil)
		if r.do("getxattr size", err) {
			r.note("  %d", n)
		}
		_, err = unix.Getxattr(r.p("f"), "user.a", b[:0:0])
		r.do("getxattr empty buffer", err)
		r.do("setxattr create existing", unix.Setxattr(r.p("f"), "user.a", []byte("2"), unix.XATTR_CREATE))
		r.do("setxattr replace missing", unix.Setxattr(r.p("f"), "user.b", []byte("2"), unix.XATTR_REPLACE))
		r.do("setxattr user.b", unix.Setxattr(r.p("f"), "user.b", []byte("two"), 0))
		n, err = unix.Listxattr(r.p("f"), b)
		if r.do("listxattr", err) {
			names := strings.Split(strings.TrimSuffix(string(b[:n]), "\x00"), "\x00")
			slices.Sort(names)
			r.note("  %q", names)
		}
		_, err = unix.Getxattr(r.p("f"), "user.a", b[:0])
		r.do("getxattr small", err)
		small := make([]byte, 1)
		_, err = unix.Getxattr(r.p("f"), "user.b", small)
		r.do("getxattr too small", err)
		r.do("removexattr user.a", unix.Removexattr(r.p("f"), "user.a"))
		_, err = unix.Getxattr(r.p("f"), "user.a", b)
		r.do("getxattr removed", err)
		r.do("removexattr missing", unix.Removexattr(r.p("f"), "user.zz"))
		r.do("setxattr long name", unix.Setxattr(r.p("f"), "user."+strings.Repeat("x", 251), []byte("1"), 0))
		r.do("mkdir d", unix.Mkdir(r.p("d"), 0o755))
		r.do("setxattr on dir", unix.Setxattr(r.p("d"), "user.d", []byte("dir"), 0))
		n, err = unix.Getxattr(r.p("d"), "user.d", b)
		if r.do("getxattr dir", err) {
			r.note("  %q", b[:n])
		}
		r.do("symlink", unix.Symlink("f", r.p("s")))
		r.do("lsetxattr on symlink", unix.Lsetxattr(r.p("s"), "user.s", []byte("1"), 0))
	}},
}

// runPosixCases runs every case in a subfolder of root and returns the
// transcripts by case name.
func runPosixCases(t *testing.T, root string) map[string][]string {
	out := make(map[string][]string)
	for _, c := range posixCases {
		dir := filepath.Join(root, strings.ReplaceAll(c.name, " ", "_"))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("case %s: %v", c.name, err)
		}
		r := &rec{t: t, dir: dir}
		c.run(r)
		out[c.name] = r.lines
	}
	return out
}

// comparePosix runs the table on the local file system and on mnt and
// reports every line that differs.
func comparePosix(t *testing.T, mnt string) {
	t.Helper()
	local := runPosixCases(t, t.TempDir())
	got := runPosixCases(t, mnt)
	for _, c := range posixCases {
		want, have := local[c.name], got[c.name]
		if slices.Equal(want, have) {
			continue
		}
		var b strings.Builder
		for i := range max(len(want), len(have)) {
			w, h := "(none)", "(none)"
			if i < len(want) {
				w = want[i]
			}
			if i < len(have) {
				h = have[i]
			}
			mark := "  "
			if w != h {
				mark = "!="
			}
			fmt.Fprintf(&b, "%s local: %-60s mount: %s\n", mark, w, h)
		}
		t.Errorf("case %q differs:\n%s", c.name, b.String())
	}
}

// mmapChild writes into a shared mapping of path and reports each step.
func mmapChild(path string) {
	r := &rec{}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if !r.do("open", err) {
		fmt.Print(strings.Join(r.lines, "\n"))
		return
	}
	m, err := unix.Mmap(fd, 0, 8192, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if r.do("mmap shared", err) {
		copy(m[4000:], "written through a mapping")
		r.do("msync", unix.Msync(m, unix.MS_SYNC))
		r.do("munmap", unix.Munmap(m))
	}
	b := make([]byte, 40)
	n, err := unix.Pread(fd, b, 3995)
	if r.do("pread", err) {
		r.note("%q", b[:n])
	}
	r.do("close", unix.Close(fd))
	fmt.Print(strings.Join(r.lines, "\n"))
}
