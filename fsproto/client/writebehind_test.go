package client_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/namespace"
)

// TestWriteBehind runs the write-behind scenarios on one test cluster.
func TestWriteBehind(t *testing.T) {
	e := startEnv(t)
	t.Run("Order", func(t *testing.T) { testWriteBehindOrder(t, e) })
	t.Run("Errors", func(t *testing.T) { testWriteBehindErrors(t, e) })
	t.Run("Close", func(t *testing.T) { testWriteBehindClose(t, e) })
	t.Run("DataSync", func(t *testing.T) { testDataSync(t, e) })
	t.Run("Exerciser", func(t *testing.T) {
		name, f := e.container(t, client.WithCredentials(0, 0), client.WithWriteBehind(1<<20))
		g := e.open(t, name, e.key, client.WithCredentials(0, 0))
		exercise(t, f, g, seedOf(t), 100, 3<<30, 1<<20)
	})
}

// jitter delays every chunk write by up to max, at random, so writes in
// flight land out of the order they were made unless the FS orders them.
func jitter(f *client.FS, seed uint64, max time.Duration) {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, 1))
	client.WrapWrites(f, func(_ namespace.Ino, _ int64, _ int, write func() error) error {
		mu.Lock()
		d := time.Duration(rng.Int64N(int64(max)))
		mu.Unlock()
		time.Sleep(d)
		return write()
	})
}

// testWriteBehindOrder: overlapping writes behind WriteAt, with their
// chunk writes delayed at random, land in the order they were made;
// reads through the same FS see every write made before them; a
// truncation in between drops what was written before it and nothing
// after; after Sync another client reads exactly the model.
func testWriteBehindOrder(t *testing.T, e *env) {
	name, f := e.container(t, client.WithCredentials(0, 0), client.WithWriteBehind(256<<10))
	g := e.open(t, name, e.key, client.WithCredentials(0, 0))
	seed := seedOf(t)
	jitter(f, seed, 3*time.Millisecond)
	rng := rand.New(rand.NewPCG(seed, 2))
	fl, err := f.OpenFile("o", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	must(t, "OpenFile", err)
	defer fl.Close()
	m := &model{pages: map[int64][]byte{}}
	const span = 3*chunk64K + 5000
	for i := range 300 {
		switch r := rng.IntN(20); {
		case r == 0:
			size := rng.Int64N(span)
			must(t, "Truncate", fl.Truncate(size))
			m.truncate(size)
		case r < 5:
			n, off := 1+rng.IntN(3*4096), rng.Int64N(span)
			got := make([]byte, n)
			k, err := fl.ReadAt(got, off)
			want, eof := m.readAt(n, off)
			if k != len(want) || !bytes.Equal(got[:k], want) || (err == io.EOF) != eof || (err != nil && err != io.EOF) {
				t.Fatalf("seed %d, op %d: ReadAt(%d, %d) = %d, %v; want %d bytes (eof %v), first diff at %d",
					seed, i, n, off, k, err, len(want), eof, firstDiff(got[:k], want))
			}
		default:
			n, off := 1+rng.IntN(2*4096), rng.Int64N(span)
			p := make([]byte, n)
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
			if k, err := fl.WriteAt(p, off); err != nil || k != n {
				t.Fatalf("seed %d, op %d: WriteAt(%d, %d) = %d, %v", seed, i, n, off, k, err)
			}
			m.writeAt(p, off)
		}
	}
	must(t, "Sync", fl.Sync())
	got, err := g.ReadFile("o")
	must(t, "ReadFile through another client", err)
	want, _ := m.readAt(int(m.size), 0)
	if !bytes.Equal(got, want) {
		t.Fatalf("seed %d: the other client reads %d bytes, want %d; first diff at %d", seed, len(got), len(want), firstDiff(got, want))
	}
}

// testWriteBehindErrors: a write-behind write that fails returns at
// once without error; the next Flush (Sync, Close) reports it, once;
// the writes that did land are readable.
func testWriteBehindErrors(t *testing.T, e *env) {
	_, f := e.container(t, client.WithCredentials(0, 0), client.WithWriteBehind(1<<20))
	var fail atomic.Int64
	fail.Store(-1)
	client.WrapWrites(f, func(_ namespace.Ino, off int64, _ int, write func() error) error {
		if off == fail.Load() {
			return fmt.Errorf("injected: %w", syscall.EIO)
		}
		return write()
	})
	fl, err := f.Create("e")
	must(t, "Create", err)
	good := pattern(8192, 3)
	if _, err := fl.WriteAt(good, 0); err != nil {
		t.Fatalf("WriteAt: %v", err)
	}
	fail.Store(8192)
	if n, err := fl.WriteAt(pattern(4096, 4), 8192); err != nil || n != 4096 {
		t.Fatalf("the failing write behind WriteAt: %d, %v; want 4096, nil (its failure is Sync's to report)", n, err)
	}
	err = fl.Sync()
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync after a failed write: %v, want EIO", err)
	}
	if err := fl.Sync(); err != nil {
		t.Fatalf("second Sync: %v, want nil (the failure is reported once)", err)
	}
	got := make([]byte, len(good))
	if _, err := fl.ReadAt(got, 0); err != nil || !bytes.Equal(got, good) {
		t.Fatalf("ReadAt of the write that landed: %v, equal %v", err, bytes.Equal(got, good))
	}
	fail.Store(0)
	if _, err := fl.WriteAt(good, 0); err != nil {
		t.Fatalf("WriteAt: %v", err)
	}
	if err := fl.Close(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Close after a failed write: %v, want EIO", err)
	}
}

// testWriteBehindClose: FS.Close waits for the writes in flight and
// commits the sizes they made, so another client reads them all.
func testWriteBehindClose(t *testing.T, e *env) {
	name, f := e.container(t, client.WithCredentials(0, 0), client.WithWriteBehind(4<<20))
	jitter(f, 7, 20*time.Millisecond)
	var want [4][]byte
	for i := range want {
		fl, err := f.Create(fmt.Sprintf("c%d", i))
		must(t, "Create", err)
		want[i] = pattern(chunk64K+1000*i, byte(i))
		for off := 0; off < len(want[i]); off += 4096 {
			if _, err := fl.WriteAt(want[i][off:min(off+4096, len(want[i]))], int64(off)); err != nil {
				t.Fatalf("WriteAt: %v", err)
			}
		}
		// Left open: FS.Close must still land and commit it.
	}
	must(t, "FS.Close", f.Close())
	g := e.open(t, name, e.key, client.WithCredentials(0, 0))
	for i := range want {
		got, err := g.ReadFile(fmt.Sprintf("c%d", i))
		must(t, "ReadFile", err)
		if !bytes.Equal(got, want[i]) {
			t.Fatalf("c%d: read %d bytes, want %d; first diff at %d", i, len(got), len(want[i]), firstDiff(got, want[i]))
		}
	}
}

// testDataSync: DataSync makes the data and the growth visible to
// another client (fdatasync's promise) but leaves an mtime-only change
// uncommitted until Flush.
func testDataSync(t *testing.T, e *env) {
	name, f := e.container(t, client.WithCredentials(0, 0), client.WithWriteBehind(1<<20),
		client.WithFlushInterval(time.Hour))
	g := e.open(t, name, e.key, client.WithCredentials(0, 0))
	fl, err := f.Create("d")
	must(t, "Create", err)
	defer fl.Close()
	data := pattern(3*4096, 5)
	if _, err := fl.WriteAt(data, 0); err != nil {
		t.Fatalf("WriteAt: %v", err)
	}
	must(t, "DataSync after growth", fl.DataSync())
	got, err := g.ReadFile("d")
	must(t, "ReadFile", err)
	if !bytes.Equal(got, data) {
		t.Fatalf("after DataSync the other client reads %d bytes, want %d", len(got), len(data))
	}
	before, err := g.Stat("d")
	must(t, "Stat", err)
	time.Sleep(20 * time.Millisecond) // the leader's clock moves on
	copy(data[4096:], pattern(4096, 6))
	if _, err := fl.WriteAt(data[4096:8192], 4096); err != nil {
		t.Fatalf("WriteAt: %v", err)
	}
	must(t, "DataSync after an overwrite", fl.DataSync())
	got, err = g.ReadFile("d")
	must(t, "ReadFile", err)
	if !bytes.Equal(got, data) {
		t.Fatal("after DataSync the other client does not read the overwrite")
	}
	after, err := g.Stat("d")
	must(t, "Stat", err)
	if !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("DataSync after an overwrite committed the mtime (%v → %v); it is Sync's to commit", before.ModTime(), after.ModTime())
	}
	must(t, "Sync", fl.Sync())
	after, err = g.Stat("d")
	must(t, "Stat", err)
	if !after.ModTime().After(before.ModTime()) {
		t.Fatalf("Sync left the mtime at %v", after.ModTime())
	}
}
