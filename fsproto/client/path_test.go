package client_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/namespace"
)

// wantErrno fails unless err is an *fs.PathError whose Err carries errno.
func wantErrno(t *testing.T, what string, err error, errno syscall.Errno) {
	t.Helper()
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		t.Errorf("%s: %v (%T), want an *fs.PathError with %v", what, err, err, errno)
		return
	}
	if !errors.Is(err, errno) || client.Errno(err) != errno {
		t.Errorf("%s: %v, want %v", what, err, errno)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func readAll(t *testing.T, f *client.FS, name string) string {
	t.Helper()
	b, err := f.ReadFile(name)
	must(t, "ReadFile "+name, err)
	return string(b)
}

func attrOf(t *testing.T, f *client.FS, name string) namespace.Attr {
	t.Helper()
	fi, err := f.Lstat(name)
	must(t, "Lstat "+name, err)
	return fi.Sys().(namespace.Attr)
}

// testPathAPI runs the path API's table of operations and edge cases,
// each with the errno Linux gives.
func testPathAPI(t *testing.T, e *env) {
	_, f := e.container(t, client.WithCredentials(0, 0))

	// create, write, read, O_EXCL
	fl, err := f.Create("a")
	must(t, "Create", err)
	if _, err := fl.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	must(t, "Close", fl.Close())
	if got := readAll(t, f, "a"); got != "hello" {
		t.Fatalf("ReadFile a = %q", got)
	}
	if fi, err := f.Stat("/a"); err != nil || fi.Size() != 5 {
		t.Fatalf("Stat /a = %v, %v", fi, err)
	}
	_, err = f.ReadFile("/a")
	if !errors.Is(err, fs.ErrInvalid) || !errors.Is(err, syscall.EINVAL) {
		t.Errorf("ReadFile(/a) (io/fs names): %v, want fs.ErrInvalid", err)
	}
	_, err = f.OpenFile("a", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	wantErrno(t, "O_EXCL on an existing file", err, syscall.EEXIST)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("O_EXCL: %v is not fs.ErrExist", err)
	}
	_, err = f.Open("missing")
	wantErrno(t, "Open missing", err, syscall.ENOENT)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open missing: %v is not fs.ErrNotExist", err)
	}
	if _, err := f.Open("a/../a"); err == nil {
		t.Error("Open of a path with .. succeeded")
	}

	// mkdir, EEXIST, ENOTDIR, EISDIR, ENAMETOOLONG
	must(t, "Mkdir d", f.Mkdir("d", 0o755))
	wantErrno(t, "Mkdir d again", f.Mkdir("d", 0o755), syscall.EEXIST)
	_, err = f.Open("a/x")
	wantErrno(t, "Open below a file", err, syscall.ENOTDIR)
	wantErrno(t, "Mkdir below a file", f.Mkdir("a/x", 0o755), syscall.ENOTDIR)
	_, err = f.OpenFile("d", os.O_WRONLY, 0)
	wantErrno(t, "open a directory for writing", err, syscall.EISDIR)
	_, err = f.Create(strings.Repeat("n", namespace.NameLenMax+1))
	wantErrno(t, "Create of a 256-byte name", err, syscall.ENAMETOOLONG)
	_, err = f.Stat(strings.Repeat("n", namespace.NameLenMax+1))
	wantErrno(t, "Stat of a 256-byte name", err, syscall.ENAMETOOLONG)
	wantErrno(t, "Mkdir with NUL", f.Mkdir("x\x00y", 0o755), syscall.EINVAL)

	// seek and read
	fl, err = f.OpenFile("a", os.O_RDONLY, 0)
	must(t, "Open a", err)
	buf := make([]byte, 2)
	if off, err := fl.Seek(1, io.SeekStart); off != 1 || err != nil {
		t.Fatalf("Seek: %d, %v", off, err)
	}
	if n, err := fl.Read(buf); n != 2 || err != nil || string(buf) != "el" {
		t.Fatalf("Read after Seek: %d %v %q", n, err, buf)
	}
	if off, err := fl.Seek(-1, io.SeekEnd); off != 4 || err != nil {
		t.Fatalf("Seek end: %d, %v", off, err)
	}
	if n, err := fl.Read(buf); n != 1 || err != nil || buf[0] != 'o' {
		t.Fatalf("Read at the end: %d %v %q", n, err, buf[:n])
	}
	if n, err := fl.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read past the end: %d %v", n, err)
	}
	_, err = fl.Seek(-10, io.SeekStart)
	wantErrno(t, "Seek before 0", err, syscall.EINVAL)
	_, err = fl.Write([]byte("x"))
	wantErrno(t, "Write on a read-only File", err, syscall.EBADF)
	must(t, "Close", fl.Close())
	_, err = fl.Read(buf)
	if !errors.Is(err, fs.ErrClosed) || client.Errno(err) != syscall.EBADF {
		t.Errorf("Read after Close: %v, want fs.ErrClosed", err)
	}
	if err := fl.Close(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}

	// O_APPEND, O_TRUNC, Truncate
	fl, err = f.OpenFile("a", os.O_WRONLY|os.O_APPEND, 0)
	must(t, "open O_APPEND", err)
	if _, err := fl.Write([]byte("!")); err != nil {
		t.Fatal(err)
	}
	if _, err := fl.WriteAt([]byte("x"), 0); err == nil {
		t.Error("WriteAt on an O_APPEND file succeeded")
	}
	must(t, "Close", fl.Close())
	if got := readAll(t, f, "a"); got != "hello!" {
		t.Fatalf("after append: %q", got)
	}
	must(t, "Truncate", f.Truncate("a", 10))
	if got := readAll(t, f, "a"); got != "hello!\x00\x00\x00\x00" {
		t.Fatalf("after Truncate up: %q", got)
	}
	must(t, "Truncate", f.Truncate("a", 2))
	if got := readAll(t, f, "a"); got != "he" {
		t.Fatalf("after Truncate down: %q", got)
	}
	fl, err = f.OpenFile("a", os.O_RDWR|os.O_TRUNC, 0)
	must(t, "open O_TRUNC", err)
	if fi, err := fl.Stat(); err != nil || fi.Size() != 0 {
		t.Fatalf("O_TRUNC: %v, %v", fi, err)
	}
	_, err = fl.Write([]byte("abc"))
	must(t, "Write", err)
	must(t, "Close", fl.Close())

	// rename: file into a dir, replace, dir move, loop, non-empty target
	must(t, "Rename a d/b", f.Rename("a", "d/b"))
	must(t, "WriteFile c", f.WriteFile("c", []byte("cc"), 0o644))
	must(t, "Rename c over d/b", f.Rename("c", "d/b"))
	if got := readAll(t, f, "d/b"); got != "cc" {
		t.Fatalf("d/b after replace: %q", got)
	}
	must(t, "Mkdir e", f.Mkdir("e", 0o755))
	must(t, "Rename e d/e", f.Rename("e", "d/e"))
	wantErrno(t, "Rename d below itself", f.Rename("d", "d/e/f"), syscall.EINVAL)
	must(t, "Mkdir g", f.Mkdir("g", 0o755))
	wantErrno(t, "Rename g over non-empty d", f.Rename("g", "d"), syscall.ENOTEMPTY)
	wantErrno(t, "Rename missing", f.Rename("nope", "x"), syscall.ENOENT)

	// remove
	wantErrno(t, "Remove non-empty d", f.Remove("d"), syscall.ENOTEMPTY)
	must(t, "Remove g", f.Remove("g"))
	wantErrno(t, "Remove g again", f.Remove("g"), syscall.ENOENT)

	// symlinks
	must(t, "Symlink", f.Symlink("d/b", "s"))
	if tg, err := f.Readlink("s"); err != nil || tg != "d/b" {
		t.Fatalf("Readlink: %q, %v", tg, err)
	}
	if fi, err := f.Stat("s"); err != nil || fi.Size() != 2 || fi.Mode().Type() != 0 {
		t.Fatalf("Stat s (follows): %v, %v", fi, err)
	}
	if fi, err := f.Lstat("s"); err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Fatalf("Lstat s: %v, %v", fi, err)
	}
	if got := readAll(t, f, "s"); got != "cc" {
		t.Fatalf("read through a symlink: %q", got)
	}
	_, err = f.Readlink("d/b")
	wantErrno(t, "Readlink of a file", err, syscall.EINVAL)
	must(t, "Symlink l1", f.Symlink("l2", "l1"))
	must(t, "Symlink l2", f.Symlink("l1", "l2"))
	_, err = f.Open("l1")
	wantErrno(t, "Open of a symlink loop", err, syscall.ELOOP)
	must(t, "Symlink abs", f.Symlink("/d", "abs"))
	if got := readAll(t, f, "abs/b"); got != "cc" {
		t.Fatalf("read through an absolute dir symlink: %q", got)
	}

	// hard links
	must(t, "Link", f.Link("d/b", "h"))
	if a := attrOf(t, f, "h"); a.Nlink != 2 {
		t.Errorf("Nlink after Link: %d", a.Nlink)
	}
	wantErrno(t, "Link of a directory", f.Link("d", "dl"), syscall.EPERM)
	wantErrno(t, "Link over an existing name", f.Link("d/b", "s"), syscall.EEXIST)

	// chmod, chown, chtimes
	must(t, "Chmod", f.Chmod("h", 0o600|fs.ModeSetgid))
	if fi, err := f.Stat("h"); err != nil || fi.Mode() != 0o600|fs.ModeSetgid {
		t.Errorf("mode after Chmod: %v, %v", fi.Mode(), err)
	}
	must(t, "Chown", f.Chown("h", 5, 6))
	if a := attrOf(t, f, "h"); a.UID != 5 || a.GID != 6 {
		t.Errorf("owner after Chown: %d:%d", a.UID, a.GID)
	}
	must(t, "Chown -1", f.Chown("h", -1, 7))
	if a := attrOf(t, f, "h"); a.UID != 5 || a.GID != 7 {
		t.Errorf("owner after Chown(-1, 7): %d:%d", a.UID, a.GID)
	}
	mt := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	at := time.Date(2021, 1, 2, 3, 4, 5, 6, time.UTC)
	must(t, "Chtimes", f.Chtimes("h", at, mt))
	if a := attrOf(t, f, "h"); a.Mtime != mt.UnixNano() || a.Atime != at.UnixNano() {
		t.Errorf("times after Chtimes: %d %d", a.Atime, a.Mtime)
	}
	must(t, "Chtimes mtime only", f.Chtimes("h", time.Time{}, at))
	if a := attrOf(t, f, "h"); a.Mtime != at.UnixNano() || a.Atime != at.UnixNano() {
		t.Errorf("times after Chtimes(zero, at): %d %d", a.Atime, a.Mtime)
	}

	// ReadDir: sorted, with types
	for _, n := range []string{"zz", "m", "A", "b0"} {
		must(t, "WriteFile", f.WriteFile(n, nil, 0o644))
	}
	ents, err := f.ReadDir(".")
	must(t, "ReadDir", err)
	var names []string
	for _, de := range ents {
		names = append(names, de.Name())
	}
	want := []string{"A", "abs", "b0", "d", "h", "l1", "l2", "m", "s", "zz"}
	if !slices.Equal(names, want) {
		t.Errorf("ReadDir = %v, want %v", names, want)
	}
	if !slices.IsSorted(names) {
		t.Errorf("ReadDir not sorted: %v", names)
	}
	for _, de := range ents {
		if de.Name() == "d" && !de.IsDir() || de.Name() == "s" && de.Type() != fs.ModeSymlink {
			t.Errorf("entry %v has the wrong type", de)
		}
	}
	_, err = f.ReadDir("h")
	wantErrno(t, "ReadDir of a file", err, syscall.ENOTDIR)

	// MkdirAll
	must(t, "MkdirAll", f.MkdirAll("p/q/r", 0o755))
	must(t, "MkdirAll again", f.MkdirAll("p/q/r", 0o755))
	wantErrno(t, "MkdirAll below a file", f.MkdirAll("h/x", 0o755), syscall.ENOTDIR)
	if fi, err := f.Stat("p/q/r"); err != nil || !fi.IsDir() {
		t.Errorf("Stat p/q/r: %v, %v", fi, err)
	}

	// Usage counts the bytes.
	if st, err := f.Usage(); err != nil || st.Inodes < 10 {
		t.Errorf("Usage: %+v, %v", st, err)
	}
}

// testPermissions: a non-root FS gets EACCES and EPERM where Linux would;
// root bypasses.
func testPermissions(t *testing.T, e *env) {
	name, root := e.container(t, client.WithCredentials(0, 0))
	must(t, "Mkdir priv", root.Mkdir("priv", 0o700))
	must(t, "WriteFile priv/x", root.WriteFile("priv/x", []byte("s"), 0o644))
	must(t, "Mkdir pub", root.Mkdir("pub", 0o777))
	must(t, "Mkdir sticky", root.Mkdir("sticky", 0o777|fs.ModeSticky))
	must(t, "WriteFile ro", root.WriteFile("ro", []byte("r"), 0o644))
	must(t, "WriteFile secret", root.WriteFile("secret", []byte("s"), 0o600))
	must(t, "WriteFile sticky/root", root.WriteFile("sticky/root", []byte("s"), 0o666))

	u := e.open(t, name, e.key, client.WithCredentials(1000, 1000))
	_, err := u.Open("priv/x")
	wantErrno(t, "open below a 0700 dir", err, syscall.EACCES)
	_, err = u.ReadDir("priv")
	wantErrno(t, "list a 0700 dir", err, syscall.EACCES)
	_, err = u.Create("new")
	wantErrno(t, "create in a root-owned 0755 dir", err, syscall.EACCES)
	wantErrno(t, "mkdir in a root-owned 0755 dir", u.Mkdir("nd", 0o755), syscall.EACCES)
	wantErrno(t, "remove from a root-owned 0755 dir", u.Remove("ro"), syscall.EACCES)
	wantErrno(t, "rename out of a root-owned dir", u.Rename("ro", "pub/ro"), syscall.EACCES)
	wantErrno(t, "symlink in a root-owned dir", u.Symlink("x", "sl"), syscall.EACCES)
	_, err = u.OpenFile("ro", os.O_WRONLY, 0)
	wantErrno(t, "open 0644 root file for writing", err, syscall.EACCES)
	_, err = u.Open("secret")
	wantErrno(t, "open 0600 root file for reading", err, syscall.EACCES)
	if got := readAll(t, u, "ro"); got != "r" {
		t.Errorf("read of a 0644 file: %q", got)
	}
	wantErrno(t, "chmod of another's file", u.Chmod("ro", 0o777), syscall.EPERM)
	wantErrno(t, "chown of another's file", u.Chown("ro", 1000, 1000), syscall.EPERM)
	wantErrno(t, "chtimes of another's file", u.Chtimes("ro", time.Now(), time.Now()), syscall.EPERM)
	wantErrno(t, "truncate of a 0644 root file", u.Truncate("ro", 0), syscall.EACCES)

	// In a 0777 dir the user creates, owns and removes.
	must(t, "WriteFile pub/mine", u.WriteFile("pub/mine", []byte("m"), 0o600))
	if a := attrOf(t, u, "pub/mine"); a.UID != 1000 || a.GID != 1000 || a.Mode != 0o600 {
		t.Errorf("created file: %+v", a)
	}
	must(t, "Chmod own file", u.Chmod("pub/mine", 0o640))
	wantErrno(t, "give a file away", u.Chown("pub/mine", 0, -1), syscall.EPERM)
	must(t, "Remove own file", u.Remove("pub/mine"))
	// The sticky bit keeps others' files.
	wantErrno(t, "remove another's file in a sticky dir", u.Remove("sticky/root"), syscall.EACCES)
	must(t, "WriteFile sticky/mine", u.WriteFile("sticky/mine", nil, 0o644))
	must(t, "Remove own file in a sticky dir", u.Remove("sticky/mine"))
	// Root bypasses mode bits.
	if got := readAll(t, root, "secret"); got != "s" {
		t.Errorf("root read of a 0600 file: %q", got)
	}
	must(t, "root chmod 000", root.Chmod("secret", 0))
	if got := readAll(t, root, "secret"); got != "s" {
		t.Errorf("root read of a 0000 file: %q", got)
	}
}

// testFSTest runs testing/fstest.TestFS on a populated container. The
// files are small: TestFS reads them a byte or two at a time, a request
// each.
func testFSTest(t *testing.T, e *env) {
	_, f := e.container(t, client.WithCredentials(0, 0))
	files := map[string][]byte{
		"top":          []byte("top file"),
		"dir/a":        bytes.Repeat([]byte("a"), 300),
		"dir/empty":    nil,
		"dir/sub/deep": []byte("deep"),
	}
	for name, data := range files {
		must(t, "MkdirAll", f.MkdirAll(dirOf(name), 0o755))
		must(t, "WriteFile "+name, f.WriteFile(name, data, 0o644))
	}
	must(t, "Mkdir", f.Mkdir("emptydir", 0o755))
	must(t, "Symlink", f.Symlink("dir/a", "link"))
	var want []string
	for name := range files {
		want = append(want, name)
	}
	want = append(want, "emptydir", "dir/sub")
	if err := fstest.TestFS(f, want...); err != nil {
		t.Fatal(err)
	}
}

func dirOf(name string) string {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "."
	}
	return name[:i]
}
