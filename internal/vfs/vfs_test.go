package vfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"
)

// forEachFS runs fn against the real file system, in a fresh temporary
// directory, and against a fresh Mem, in a directory that exists.
func forEachFS(t *testing.T, fn func(t *testing.T, fsys FS, dir string)) {
	t.Helper()
	t.Run("os", func(t *testing.T) { fn(t, Default, t.TempDir()) })
	t.Run("mem", func(t *testing.T) {
		m := NewMem()
		const dir = "/test"
		if err := m.MkdirAll(dir); err != nil {
			t.Fatal(err)
		}
		fn(t, m, dir)
	})
}

// alignedBuf returns n bytes whose first byte is Alignment-aligned.
func alignedBuf(n int) []byte {
	b := make([]byte, n+Alignment)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) % Alignment); r != 0 {
		skip = Alignment - r
	}
	return b[skip : skip+n : skip+n]
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func mustCreate(t *testing.T, fsys FS, name string, data []byte) File {
	t.Helper()
	f, err := fsys.Create(name, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 {
		if n, err := f.WriteAt(data, 0); err != nil || n != len(data) {
			t.Fatalf("WriteAt %s: %d, %v", name, n, err)
		}
	}
	return f
}

// readAll returns the content of name, read through Open.
func readAll(t *testing.T, fsys FS, name string) []byte {
	t.Helper()
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	if n, err := f.ReadAt(b, 0); err != nil && !(err == io.EOF && n == len(b)) {
		t.Fatalf("ReadAt %s: %d, %v", name, n, err)
	}
	return b
}

func wantErrIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want one wrapping %v", what, err, target)
	}
}

func closeOK(t *testing.T, c io.Closer) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}

var fsCases = []struct {
	name string
	run  func(t *testing.T, fsys FS, dir string)
}{
	{"CreateWriteRead", func(t *testing.T, fsys FS, dir string) {
		name := path.Join(dir, "f")
		data := pattern(10000, 1)
		f := mustCreate(t, fsys, name, data)
		if f.Name() != name {
			t.Errorf("Name() = %q, want %q", f.Name(), name)
		}
		if size, err := f.Size(); err != nil || size != int64(len(data)) {
			t.Errorf("Size() = %d, %v; want %d", size, err, len(data))
		}
		got := make([]byte, 100)
		if n, err := f.ReadAt(got, 5000); err != nil || n != 100 || !bytes.Equal(got, data[5000:5100]) {
			t.Errorf("ReadAt(100, 5000) = %d, %v", n, err)
		}
		if err := f.Sync(); err != nil {
			t.Error(err)
		}
		closeOK(t, f)
		if size, err := fsys.Stat(name); err != nil || size != int64(len(data)) {
			t.Errorf("Stat = %d, %v; want %d", size, err, len(data))
		}
		if got := readAll(t, fsys, name); !bytes.Equal(got, data) {
			t.Error("content read back differs")
		}
		f, err := fsys.OpenRW(name, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("xyz"), 1); err != nil {
			t.Error(err)
		}
		closeOK(t, f)
		copy(data[1:], "xyz")
		if got := readAll(t, fsys, name); !bytes.Equal(got, data) {
			t.Error("content after OpenRW write differs")
		}
	}},
	{"CreateExisting", func(t *testing.T, fsys FS, dir string) {
		name := path.Join(dir, "f")
		closeOK(t, mustCreate(t, fsys, name, []byte("keep")))
		_, err := fsys.Create(name, false)
		wantErrIs(t, "Create of an existing file", err, fs.ErrExist)
		if got := readAll(t, fsys, name); string(got) != "keep" {
			t.Errorf("content %q after failed Create", got)
		}
		if err := fsys.MkdirAll(path.Join(dir, "d")); err != nil {
			t.Fatal(err)
		}
		_, err = fsys.Create(path.Join(dir, "d"), false)
		wantErrIs(t, "Create over a directory", err, fs.ErrExist)
	}},
	{"NotExist", func(t *testing.T, fsys FS, dir string) {
		missing := path.Join(dir, "missing")
		_, err := fsys.Create(path.Join(missing, "f"), false)
		wantErrIs(t, "Create in a missing directory", err, fs.ErrNotExist)
		_, err = fsys.Open(missing)
		wantErrIs(t, "Open", err, fs.ErrNotExist)
		_, err = fsys.OpenRW(missing, false)
		wantErrIs(t, "OpenRW", err, fs.ErrNotExist)
		_, err = fsys.Stat(missing)
		wantErrIs(t, "Stat", err, fs.ErrNotExist)
		wantErrIs(t, "Remove", fsys.Remove(missing), fs.ErrNotExist)
		wantErrIs(t, "Rename", fsys.Rename(missing, path.Join(dir, "x")), fs.ErrNotExist)
		_, err = fsys.ReadDir(missing)
		wantErrIs(t, "ReadDir", err, fs.ErrNotExist)
		wantErrIs(t, "SyncDir", fsys.SyncDir(missing), fs.ErrNotExist)
		_, err = fsys.Lock(path.Join(missing, "LOCK"))
		wantErrIs(t, "Lock in a missing directory", err, fs.ErrNotExist)
		if err != nil && !strings.Contains(err.Error(), missing) {
			t.Errorf("error %q does not name the path", err)
		}
	}},
	{"ReadPastEOF", func(t *testing.T, fsys FS, dir string) {
		f := mustCreate(t, fsys, path.Join(dir, "f"), []byte("0123456789"))
		defer closeOK(t, f)
		b := make([]byte, 8)
		n, err := f.ReadAt(b, 6)
		if n != 4 || err != io.EOF || string(b[:n]) != "6789" {
			t.Errorf("ReadAt across EOF = %d, %v, %q; want 4, EOF, 6789", n, err, b[:n])
		}
		if n, err := f.ReadAt(b, 10); n != 0 || err != io.EOF {
			t.Errorf("ReadAt at EOF = %d, %v; want 0, EOF", n, err)
		}
		if n, err := f.ReadAt(b, 1000); n != 0 || err != io.EOF {
			t.Errorf("ReadAt past EOF = %d, %v; want 0, EOF", n, err)
		}
		if n, err := f.ReadAt(nil, 1000); n != 0 || err != nil {
			t.Errorf("empty ReadAt = %d, %v; want 0, nil", n, err)
		}
		if _, err := f.ReadAt(b, -1); err == nil {
			t.Error("ReadAt at a negative offset succeeded")
		}
		if _, err := f.WriteAt(b, -1); err == nil {
			t.Error("WriteAt at a negative offset succeeded")
		}
	}},
	{"WriteHoleAndTruncate", func(t *testing.T, fsys FS, dir string) {
		name := path.Join(dir, "f")
		f := mustCreate(t, fsys, name, nil)
		defer closeOK(t, f)
		if _, err := f.WriteAt([]byte("end"), 1000); err != nil {
			t.Fatal(err)
		}
		want := append(make([]byte, 1000), "end"...)
		if got := readAll(t, fsys, name); !bytes.Equal(got, want) {
			t.Errorf("after write past EOF: %d bytes, want %d zeros and \"end\"", len(got), 1000)
		}
		if err := f.Truncate(500); err != nil {
			t.Fatal(err)
		}
		if size, _ := f.Size(); size != 500 {
			t.Errorf("size %d after Truncate(500)", size)
		}
		if _, err := f.WriteAt(bytes.Repeat([]byte{'x'}, 100), 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(10); err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(200); err != nil {
			t.Fatal(err)
		}
		want = append(bytes.Repeat([]byte{'x'}, 10), make([]byte, 190)...)
		if got := readAll(t, fsys, name); !bytes.Equal(got, want) {
			t.Errorf("truncate down then up: got %q, want 10 x and 190 zeros", got)
		}
	}},
	{"ReadOnly", func(t *testing.T, fsys FS, dir string) {
		name := path.Join(dir, "f")
		closeOK(t, mustCreate(t, fsys, name, []byte("data")))
		f, err := fsys.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer closeOK(t, f)
		_, err = f.WriteAt([]byte("x"), 0)
		wantErrIs(t, "WriteAt on a read-only file", err, syscall.EBADF)
		wantErrIs(t, "Truncate on a read-only file", f.Truncate(0), syscall.EINVAL)
		b := make([]byte, 4)
		if n, err := f.ReadAt(b, 0); n != 4 || err != nil || string(b) != "data" {
			t.Errorf("ReadAt = %d, %v, %q", n, err, b)
		}
	}},
	{"Closed", func(t *testing.T, fsys FS, dir string) {
		f := mustCreate(t, fsys, path.Join(dir, "f"), []byte("data"))
		closeOK(t, f)
		_, err := f.ReadAt(make([]byte, 1), 0)
		wantErrIs(t, "ReadAt", err, fs.ErrClosed)
		_, err = f.WriteAt([]byte("x"), 0)
		wantErrIs(t, "WriteAt", err, fs.ErrClosed)
		wantErrIs(t, "Sync", f.Sync(), fs.ErrClosed)
		wantErrIs(t, "Truncate", f.Truncate(0), fs.ErrClosed)
		_, err = f.Size()
		wantErrIs(t, "Size", err, fs.ErrClosed)
		wantErrIs(t, "second Close", f.Close(), fs.ErrClosed)
	}},
	{"Remove", func(t *testing.T, fsys FS, dir string) {
		name := path.Join(dir, "f")
		f := mustCreate(t, fsys, name, []byte("data"))
		defer closeOK(t, f)
		if err := fsys.Remove(name); err != nil {
			t.Fatal(err)
		}
		_, err := fsys.Stat(name)
		wantErrIs(t, "Stat after Remove", err, fs.ErrNotExist)
		if names, err := fsys.ReadDir(dir); err != nil || len(names) != 0 {
			t.Errorf("ReadDir after Remove = %q, %v", names, err)
		}
		// An open File of a removed file keeps working.
		if _, err := f.WriteAt([]byte("D"), 0); err != nil {
			t.Error(err)
		}
		b := make([]byte, 4)
		if _, err := f.ReadAt(b, 0); err != nil || string(b) != "Data" {
			t.Errorf("ReadAt of removed file = %q, %v", b, err)
		}
		// Directories: an empty one goes, a full one stays.
		sub := path.Join(dir, "sub")
		if err := fsys.MkdirAll(path.Join(sub, "leaf")); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Remove(sub); err == nil {
			t.Error("Remove of a non-empty directory succeeded")
		}
		if err := fsys.Remove(path.Join(sub, "leaf")); err != nil {
			t.Error(err)
		}
		if err := fsys.Remove(sub); err != nil {
			t.Error(err)
		}
	}},
	{"Rename", func(t *testing.T, fsys FS, dir string) {
		a, b, c := path.Join(dir, "a"), path.Join(dir, "b"), path.Join(dir, "c")
		closeOK(t, mustCreate(t, fsys, a, []byte("A")))
		closeOK(t, mustCreate(t, fsys, c, []byte("C")))
		if err := fsys.Rename(a, b); err != nil {
			t.Fatal(err)
		}
		_, err := fsys.Stat(a)
		wantErrIs(t, "Stat of old name", err, fs.ErrNotExist)
		if got := readAll(t, fsys, b); string(got) != "A" {
			t.Errorf("renamed file holds %q", got)
		}
		if err := fsys.Rename(b, c); err != nil { // replaces c
			t.Fatal(err)
		}
		if got := readAll(t, fsys, c); string(got) != "A" {
			t.Errorf("replaced file holds %q", got)
		}
		if names, err := fsys.ReadDir(dir); err != nil || !slices.Equal(names, []string{"c"}) {
			t.Errorf("ReadDir = %q, %v; want [c]", names, err)
		}
		sub := path.Join(dir, "sub")
		if err := fsys.MkdirAll(sub); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Rename(c, path.Join(sub, "d")); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, fsys, path.Join(sub, "d")); string(got) != "A" {
			t.Errorf("file moved across directories holds %q", got)
		}
		if err := fsys.Rename(path.Join(sub, "d"), path.Join(dir, "nodir", "d")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Rename into a missing directory: %v, want ErrNotExist", err)
		}
	}},
	{"ReadDirMkdirAll", func(t *testing.T, fsys FS, dir string) {
		if names, err := fsys.ReadDir(dir); err != nil || len(names) != 0 {
			t.Errorf("ReadDir of empty dir = %q, %v", names, err)
		}
		for _, n := range []string{"zeta", "alpha", "mid"} {
			closeOK(t, mustCreate(t, fsys, path.Join(dir, n), nil))
		}
		if err := fsys.MkdirAll(path.Join(dir, "dirb", "x", "y")); err != nil {
			t.Fatal(err)
		}
		if err := fsys.MkdirAll(path.Join(dir, "dirb", "x")); err != nil {
			t.Errorf("MkdirAll of an existing directory: %v", err)
		}
		want := []string{"alpha", "dirb", "mid", "zeta"}
		if names, err := fsys.ReadDir(dir); err != nil || !slices.Equal(names, want) {
			t.Errorf("ReadDir = %q, %v; want %q", names, err, want)
		}
		if names, err := fsys.ReadDir(path.Join(dir, "dirb", "x")); err != nil || !slices.Equal(names, []string{"y"}) {
			t.Errorf("ReadDir = %q, %v; want [y]", names, err)
		}
		_, err := fsys.ReadDir(path.Join(dir, "alpha"))
		wantErrIs(t, "ReadDir of a file", err, syscall.ENOTDIR)
		wantErrIs(t, "MkdirAll through a file", fsys.MkdirAll(path.Join(dir, "alpha", "sub")), syscall.ENOTDIR)
		wantErrIs(t, "SyncDir of a missing directory", fsys.SyncDir(path.Join(dir, "nodir")), fs.ErrNotExist)
		if err := fsys.SyncDir(dir); err != nil {
			t.Error(err)
		}
		if err := fsys.SyncDir(path.Join(dir, "dirb", "x", "y")); err != nil {
			t.Error(err)
		}
	}},
	{"Lock", func(t *testing.T, fsys FS, dir string) {
		name := path.Join(dir, "LOCK")
		l1, err := fsys.Lock(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fsys.Stat(name); err != nil {
			t.Errorf("Lock did not create its file: %v", err)
		}
		_, err = fsys.Lock(name)
		wantErrIs(t, "second Lock", err, ErrLocked)
		if err != nil && !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name the path", err)
		}
		l3, err := fsys.Lock(path.Join(dir, "OTHER"))
		if err != nil {
			t.Errorf("Lock of another name: %v", err)
		} else {
			closeOK(t, l3)
		}
		closeOK(t, l1)
		l2, err := fsys.Lock(name)
		if err != nil {
			t.Fatalf("Lock after Close: %v", err)
		}
		closeOK(t, l2)
	}},
	{"ConcurrentDisjointWrites", func(t *testing.T, fsys FS, dir string) {
		name := path.Join(dir, "f")
		f := mustCreate(t, fsys, name, nil)
		defer closeOK(t, f)
		const workers, chunk, rounds = 4, 1000, 8
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for r := range rounds {
					off := int64((r*workers + w) * chunk)
					if _, err := f.WriteAt(pattern(chunk, byte(r*workers+w)), off); err != nil {
						t.Error(err)
					}
					got := make([]byte, chunk)
					if _, err := f.ReadAt(got, off); err != nil || !bytes.Equal(got, pattern(chunk, byte(r*workers+w))) {
						t.Errorf("read back at %d: %v", off, err)
					}
				}
				if err := f.Sync(); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		got := readAll(t, fsys, name)
		for i := range workers * rounds {
			if !bytes.Equal(got[i*chunk:(i+1)*chunk], pattern(chunk, byte(i))) {
				t.Errorf("chunk %d differs", i)
			}
		}
	}},
}

// TestFS runs the behaviour table against Default and Mem.
func TestFS(t *testing.T) {
	for _, c := range fsCases {
		t.Run(c.name, func(t *testing.T) { forEachFS(t, c.run) })
	}
}

// TestFSDirect checks direct I/O alignment rules. On the real file system
// the misalignments are by one byte, which O_DIRECT rejects whatever the
// device's logical block size.
func TestFSDirect(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys FS, dir string) {
		name := path.Join(dir, "direct")
		f, err := fsys.Create(name, true)
		if err != nil {
			t.Fatal(err)
		}
		defer closeOK(t, f)
		if !IsDirect(f) {
			t.Skipf("the file system under %s does not support O_DIRECT; direct I/O cases skipped", dir)
		}
		buf := alignedBuf(2 * Alignment)
		copy(buf, pattern(len(buf), 3))
		if n, err := f.WriteAt(buf, Alignment); err != nil || n != len(buf) {
			t.Fatalf("aligned WriteAt = %d, %v", n, err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		got := alignedBuf(2 * Alignment)
		if n, err := f.ReadAt(got, Alignment); err != nil || n != len(got) || !bytes.Equal(got, buf) {
			t.Fatalf("aligned ReadAt = %d, %v", n, err)
		}
		// Past EOF: a short read and io.EOF, as os.File.ReadAt.
		if n, err := f.ReadAt(got, 2*Alignment); n != Alignment || err != io.EOF {
			t.Errorf("aligned ReadAt across EOF = %d, %v; want %d, EOF", n, err, Alignment)
		}
		for _, c := range []struct {
			what string
			p    []byte
			off  int64
		}{
			// NB: over written data: Linux reads a hole without checking
			// alignment.
			{"offset", alignedBuf(Alignment), Alignment + 1},
			{"length", alignedBuf(1), Alignment},
			{"buffer address", alignedBuf(Alignment + 1)[1:], Alignment},
		} {
			_, err := f.WriteAt(c.p, c.off)
			wantErrIs(t, "misaligned "+c.what+" WriteAt", err, syscall.EINVAL)
			if err != nil && !strings.Contains(err.Error(), c.what) {
				t.Errorf("WriteAt error %q does not say the %s is misaligned", err, c.what)
			}
			_, err = f.ReadAt(c.p, c.off)
			wantErrIs(t, "misaligned "+c.what+" ReadAt", err, syscall.EINVAL)
			if err != nil && !strings.Contains(err.Error(), c.what) {
				t.Errorf("ReadAt error %q does not say the %s is misaligned", err, c.what)
			}
		}

		// A file whose size is not aligned reads up to its end.
		odd := path.Join(dir, "odd")
		closeOK(t, mustCreate(t, fsys, odd, pattern(5000, 9)))
		g, err := fsys.OpenRW(odd, true)
		if err != nil {
			t.Fatal(err)
		}
		defer closeOK(t, g)
		if !IsDirect(g) {
			t.Fatal("OpenRW(direct) of a file on the same file system is not direct")
		}
		got = alignedBuf(2 * Alignment)
		if n, err := g.ReadAt(got, 0); n != 5000 || err != io.EOF || !bytes.Equal(got[:n], pattern(5000, 9)) {
			t.Errorf("direct ReadAt of a 5000-byte file = %d, %v; want 5000, EOF", n, err)
		}
	})
}

func TestIsDirectBuffered(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys FS, dir string) {
		f := mustCreate(t, fsys, path.Join(dir, "f"), nil)
		defer closeOK(t, f)
		if IsDirect(f) {
			t.Error("IsDirect of a file opened with direct=false")
		}
		// Without direct I/O, nothing needs alignment.
		if _, err := f.WriteAt([]byte("x"), 1); err != nil {
			t.Error(err)
		}
	})
}

func TestOpString(t *testing.T) {
	for op, want := range map[Op]string{
		OpCreate: "create", OpOpen: "open", OpRead: "read", OpWrite: "write",
		OpSync: "sync", OpTruncate: "truncate", OpRemove: "remove", OpRename: "rename",
		OpSyncDir: "syncdir", OpMkdir: "mkdir", OpLock: "lock", OpReadDir: "readdir",
		OpStat: "stat", Op(99): "Op(99)",
	} {
		if got := op.String(); got != want {
			t.Errorf("Op(%d).String() = %q, want %q", int(op), got, want)
		}
	}
}
