package engine

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/ncw/directio"

	"github.com/weftfs/weft/internal/vfs"
)

// quietLogger drops engine logs below errors in tests.
var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

func memDevice(t testing.TB, size int64, seg uint32) (*vfs.Mem, string) {
	t.Helper()
	fsys := vfs.NewMem()
	if _, err := Format(fsys, FormatRequest{Path: "dev", Size: size, Options: FormatOptions{SegmentSize: seg}}); err != nil {
		t.Fatal(err)
	}
	return fsys, "dev"
}

func openMem(t testing.TB, fsys vfs.FS, path string, shards int) *Engine {
	t.Helper()
	e, err := Open(Options{Path: path, FS: fsys, Shards: shards, Mode: Interrupt, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustRead(t testing.TB, e *Engine, obj ObjectID, off uint64, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	got, err := e.Read(obj, off, p)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("read %v at %d: %v", obj, off, err)
	}
	return p[:got]
}

func TestEngineBasics(t *testing.T) {
	fsys, path := memDevice(t, 64<<20, 1<<20)
	e := openMem(t, fsys, path, 2)
	a, b := ObjectID{Lo: 1}, ObjectID{Hi: 9, Lo: 2}
	d1 := pattern(1, 10000) // not a 4 KiB multiple: staged
	if r, err := e.Write(a, 7, 100, d1); err != nil || r.Version != 1 || r.PGSeq != 1 {
		t.Fatalf("write: %+v %v", r, err)
	}
	if got := mustRead(t, e, a, 100, len(d1)); !bytes.Equal(got, d1) {
		t.Fatal("read back differs")
	}
	// The hole before offset 100 reads as zeros.
	if got := mustRead(t, e, a, 0, 100); !bytes.Equal(got, make([]byte, 100)) {
		t.Fatal("hole is not zero")
	}
	// Reading past the end: short read and io.EOF.
	p := make([]byte, 200)
	n, err := e.Read(a, 10000, p)
	if n != 100 || !errors.Is(err, io.EOF) {
		t.Fatalf("read past end: %d %v", n, err)
	}
	// Aligned write: zero copy path.
	d2 := directio.AlignedBlock(128 << 10)
	copy(d2, pattern(2, len(d2)))
	if _, err := e.Write(b, 7, 4096, d2); err != nil {
		t.Fatal(err)
	}
	// Overwrite the middle of a.
	d3 := pattern(3, 5000)
	if r, err := e.Write(a, 7, 3000, d3); err != nil || r.Version != 2 {
		t.Fatalf("overwrite: %+v %v", r, err)
	}
	want := append([]byte(nil), make([]byte, 100)...)
	want = append(want, d1...)
	copy(want[3000:], d3)
	if got := mustRead(t, e, a, 0, len(want)); !bytes.Equal(got, want) {
		t.Fatal("overwrite read back differs")
	}
	st, err := e.Stat(a)
	if err != nil || st.Size != 10100 || st.Version != 2 {
		t.Fatalf("stat: %+v %v", st, err)
	}
	if _, err := e.Truncate(a, 7, 4000); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, e, a, 0, 10000); !bytes.Equal(got, want[:4000]) {
		t.Fatal("truncate down")
	}
	if _, err := e.Truncate(a, 7, 8000); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, e, a, 0, 8000); !bytes.Equal(got[:4000], want[:4000]) || !bytes.Equal(got[4000:], make([]byte, 4000)) {
		t.Fatal("truncate up must read zeros")
	}
	ch, err := e.Changes(7, 0, 0)
	if err != nil || len(ch) != 2 || ch[0].ID != b || ch[1].ID != a || ch[1].PGSeq != 5 {
		t.Fatalf("changes: %+v %v", ch, err)
	}
	if ch, _ := e.Changes(7, 4, 0); len(ch) != 1 || ch[0].ID != a {
		t.Fatalf("changes since 4: %+v", ch)
	}
	if _, err := e.Delete(b, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Stat(b); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat deleted: %v", err)
	}
	if _, err := e.Read(ObjectID{Lo: 99}, 0, p); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read unknown: %v", err)
	}
	if err := e.Verify(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen: from the checkpoint Close wrote.
	e = openMem(t, fsys, path, 2)
	defer e.Close()
	if e.Recovery().BatchesReplayed != 0 {
		t.Errorf("clean reopen replayed %d batches", e.Recovery().BatchesReplayed)
	}
	if got := mustRead(t, e, a, 0, 4000); !bytes.Equal(got, want[:4000]) {
		t.Fatal("after reopen")
	}
	if _, err := e.Stat(b); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat deleted after reopen: %v", err)
	}
	if r, err := e.Write(a, 7, 0, []byte("x")); err != nil || r.PGSeq != 7 || r.Version != 5 {
		t.Fatalf("write after reopen: %+v %v", r, err)
	}
	if err := e.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestEngineRingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev")
	if _, err := Format(vfs.Default, FormatRequest{Path: path, Size: 64 << 20, Options: FormatOptions{SegmentSize: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []PollMode{Hybrid, Poll, Interrupt} {
		e, err := Open(Options{Path: path, Mode: mode, Logger: quietLogger})
		if err != nil {
			t.Fatal(err)
		}
		obj := ObjectID{Lo: uint64(mode)}
		d := directio.AlignedBlock(64 << 10)
		copy(d, pattern(uint64(mode), len(d)))
		if _, err := e.Write(obj, 1, 0, d); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, e, obj, 0, len(d)); !bytes.Equal(got, d) {
			t.Fatalf("%v: read back differs", mode)
		}
		if got := mustRead(t, e, obj, 4096, 100); !bytes.Equal(got, d[4096:4196]) {
			t.Fatalf("%v: partial read differs", mode)
		}
		t.Logf("%s", e.Describe())
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
