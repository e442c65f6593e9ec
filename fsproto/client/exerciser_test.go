package client_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/client"
)

var (
	exLong    = flag.Bool("exerciser.long", false, "run TestExerciserLong: unrestricted truncations over several GiB (minutes)")
	exSeed    = flag.Uint64("exerciser.seed", 0, "seed of the random exercisers (0: a fresh one, printed on failure)")
	exOps     = flag.Int("exerciser.ops", 0, "operations of TestExerciserLong (default 2000)")
	exMaxSize = flag.Int64("exerciser.maxsize", 0, "largest file offset of TestExerciserLong (default 6 GiB)")
)

// model is a sparse file in memory: its size and the 4 KiB pages that
// hold something; a missing page reads as zeros.
type model struct {
	size  int64
	pages map[int64][]byte
}

const pageSize = 4096

func (m *model) writeAt(p []byte, off int64) {
	for len(p) > 0 {
		pg, in := off/pageSize, off%pageSize
		b := m.pages[pg]
		if b == nil {
			b = make([]byte, pageSize)
			m.pages[pg] = b
		}
		n := copy(b[in:], p)
		p, off = p[n:], off+int64(n)
		m.size = max(m.size, off)
	}
}

// readAt returns what ReadAt(len n, off) must give: the bytes, and
// whether it must report io.EOF.
func (m *model) readAt(n int, off int64) ([]byte, bool) {
	if off >= m.size {
		return nil, n > 0
	}
	k := int(min(int64(n), m.size-off))
	out := make([]byte, k)
	for i := 0; i < k; {
		pos := off + int64(i)
		pg, in := pos/pageSize, pos%pageSize
		c := min(k-i, int(pageSize-in))
		if b := m.pages[pg]; b != nil {
			copy(out[i:i+c], b[in:])
		}
		i += c
	}
	return out, k < n
}

func (m *model) truncate(size int64) {
	if size < m.size {
		for pg, b := range m.pages {
			switch {
			case pg*pageSize >= size:
				delete(m.pages, pg)
			case (pg+1)*pageSize > size:
				clear(b[size-pg*pageSize:])
			}
		}
	}
	m.size = size
}

// hot returns the written pages' offsets, sorted, for reads that hit data.
func (m *model) hot() []int64 {
	out := make([]int64, 0, len(m.pages))
	for pg := range m.pages {
		out = append(out, pg*pageSize)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// exercise runs ops random operations on one file of f against the
// model: WriteAt, ReadAt and Truncate up and down at offsets up to
// maxSize, near chunk boundaries more often than not; Sync, Close and
// reopen; and reads through g (another client) after a Sync. A
// truncation drops at most dropMax bytes (0: no bound), which bounds
// its cost: deleting costs a request per chunk, holes included.
func exercise(t *testing.T, f, g *client.FS, seed uint64, ops int, maxSize, dropMax int64) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d: %s", seed, fmt.Sprintf(format, args...))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("exerciser seed %d (replay with -exerciser.seed=%d)", seed, seed)
		}
	})
	c := f.ChunkSize()
	m := &model{pages: map[int64][]byte{}}
	name := fmt.Sprintf("ex-%d", seed)
	fl, err := f.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		fail("create: %v", err)
	}
	defer func() {
		if fl != nil {
			fl.Close()
		}
	}()
	offset := func() int64 {
		switch rng.IntN(4) {
		case 0, 1: // around a chunk boundary
			k := rng.Int64N(maxSize/c + 1)
			return max(0, k*c+rng.Int64N(512)-256)
		case 2: // around the end
			return max(0, m.size+rng.Int64N(2*c)-c)
		default:
			return rng.Int64N(maxSize)
		}
	}
	length := func() int {
		if rng.IntN(4) == 0 {
			return 1 + rng.IntN(3*int(c)) // across several chunks
		}
		return 1 + rng.IntN(8192)
	}
	var seq byte
	for i := 0; i < ops; i++ {
		switch op := rng.IntN(100); {
		case op < 40: // write
			off := offset()
			n := length()
			if off+int64(n) > maxSize {
				off = maxSize - int64(n)
			}
			seq++
			p := pattern(n, seq)
			if k, err := fl.WriteAt(p, off); err != nil || k != n {
				fail("op %d: WriteAt(%d bytes at %d): %d, %v", i, n, off, k, err)
			}
			m.writeAt(p, off)
		case op < 75: // read, at data half of the time
			off := offset()
			if hot := m.hot(); len(hot) > 0 && rng.IntN(2) == 0 {
				off = max(0, hot[rng.IntN(len(hot))]+rng.Int64N(2*pageSize)-pageSize)
			}
			n := length()
			got := make([]byte, n)
			k, err := fl.ReadAt(got, off)
			want, eof := m.readAt(n, off)
			if k != len(want) || (eof != (err == io.EOF)) || (err != nil && err != io.EOF) {
				fail("op %d: ReadAt(%d at %d) of size %d: %d, %v; want %d, eof %v", i, n, off, m.size, k, err, len(want), eof)
			}
			if !bytes.Equal(got[:k], want) {
				fail("op %d: ReadAt(%d at %d): bytes differ from the model at %d", i, n, off, off+int64(firstDiff(got[:k], want)))
			}
		case op < 87: // truncate up or down
			var size int64
			if rng.IntN(2) == 0 || m.size == 0 {
				size = m.size + rng.Int64N(min(maxSize-m.size, 4*c)+1)
				if rng.IntN(8) == 0 {
					size = m.size + rng.Int64N(maxSize-m.size+1) // a big hole
				}
			} else {
				low := int64(0)
				if dropMax > 0 {
					low = max(0, m.size-dropMax)
				}
				size = low + rng.Int64N(m.size-low+1)
			}
			if err := fl.Truncate(size); err != nil {
				fail("op %d: Truncate(%d) from %d: %v", i, size, m.size, err)
			}
			m.truncate(size)
		case op < 92: // sync, then a read through the other client
			if err := fl.Sync(); err != nil {
				fail("op %d: Sync: %v", i, err)
			}
			fi, err := g.Stat(name)
			if err != nil || fi.Size() != m.size {
				fail("op %d: the other client's Stat after Sync: %v, %v; want size %d", i, fi, err, m.size)
			}
			if hot := m.hot(); len(hot) > 0 {
				off := hot[rng.IntN(len(hot))]
				other, err := g.OpenFile(name, os.O_RDONLY, 0)
				if err != nil {
					fail("op %d: open on the other client: %v", i, err)
				}
				got := make([]byte, 2*pageSize)
				k, err := other.ReadAt(got, off)
				want, _ := m.readAt(len(got), off)
				other.Close()
				if (err != nil && err != io.EOF) || !bytes.Equal(got[:k], want) {
					d := firstDiff(got[:k], want)
					fail("op %d: the other client read %d at %d (size %d): %v; want %d bytes, first difference at %d (got %d, want %d), the writer reads %s",
						i, k, off, m.size, err, len(want), off+int64(d), at(got[:k], d), at(want, d), check(fl, off, want))
				}
			}
		case op < 96: // close and reopen
			if err := fl.Close(); err != nil {
				fail("op %d: Close: %v", i, err)
			}
			if fl, err = f.OpenFile(name, os.O_RDWR, 0); err != nil {
				fail("op %d: reopen: %v", i, err)
			}
			if fi, err := fl.Stat(); err != nil || fi.Size() != m.size {
				fail("op %d: Stat after reopen: %v, %v; want size %d", i, fi, err, m.size)
			}
		default: // stat
			if fi, err := f.Stat(name); err != nil || fi.Size() != m.size {
				fail("op %d: Stat: %v, %v; want size %d", i, fi, err, m.size)
			}
		}
	}
	// Every page the model holds reads back.
	for _, off := range m.hot() {
		got := make([]byte, pageSize)
		k, err := fl.ReadAt(got, off)
		want, _ := m.readAt(pageSize, off)
		if (err != nil && err != io.EOF) || !bytes.Equal(got[:k], want) {
			fail("final check at %d: %d, %v, equal %v", off, k, err, bytes.Equal(got[:k], want))
		}
	}
	err = fl.Close()
	fl = nil
	if err != nil {
		fail("Close: %v", err)
	}
}

func at(b []byte, i int) int {
	if i < len(b) {
		return int(b[i])
	}
	return -1
}

// check says whether fl reads want at off (for failure messages).
func check(fl *client.File, off int64, want []byte) string {
	got := make([]byte, len(want))
	k, err := fl.ReadAt(got, off)
	return fmt.Sprintf("%d bytes, %v, equal %v", k, err, bytes.Equal(got[:k], want))
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func seedOf(t *testing.T) uint64 {
	if *exSeed != 0 {
		return *exSeed
	}
	s := uint64(time.Now().UnixNano())
	t.Logf("exerciser seed %d", s)
	return s
}

// testExerciser is the short exerciser of make test: sizes up to 3 GiB
// (64 KiB chunks, so about 49,000 chunk boundaries), truncations that
// drop at most 1 MiB (16 chunks).
func testExerciser(t *testing.T, e *env) {
	name, f := e.container(t, client.WithCredentials(0, 0))
	g := e.open(t, name, e.key, client.WithCredentials(0, 0))
	exercise(t, f, g, seedOf(t), 100, 3<<30, 1<<20)
}

// TestExerciserLong runs the exerciser for long, with unrestricted
// truncations (each costs a request per chunk it drops): go test
// -run TestExerciserLong -exerciser.long [-exerciser.seed N -exerciser.ops N
// -exerciser.maxsize BYTES].
func TestExerciserLong(t *testing.T) {
	if !*exLong {
		t.Skip("needs -exerciser.long")
	}
	ops, maxSize := *exOps, *exMaxSize
	if ops == 0 {
		ops = 2000
	}
	if maxSize == 0 {
		maxSize = 6 << 30
	}
	e := startEnv(t)
	name, f := e.container(t, client.WithCredentials(0, 0))
	g := e.open(t, name, e.key, client.WithCredentials(0, 0))
	exercise(t, f, g, seedOf(t), ops, maxSize, 0)
}

// testConcurrentIO: ReadAt and WriteAt on one File from several
// goroutines at once, each request spanning several chunks.
func testConcurrentIO(t *testing.T, e *env) {
	_, f := e.container(t, client.WithCredentials(0, 0))
	fl, err := f.Create("cc")
	must(t, "Create", err)
	const writers, span = 4, 3*chunk64K + 1000
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := pattern(span, byte(w))
			if _, err := fl.WriteAt(p, int64(w)*span); err != nil {
				errs <- err
				return
			}
			got := make([]byte, span)
			if _, err := fl.ReadAt(got, int64(w)*span); err != nil && !errors.Is(err, io.EOF) {
				errs <- err
				return
			}
			if !bytes.Equal(got, p) {
				errs <- fmt.Errorf("writer %d read back other bytes", w)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	must(t, "Close", fl.Close())
	got, err := f.ReadFile("cc")
	must(t, "ReadFile", err)
	if len(got) != writers*span {
		t.Fatalf("size %d, want %d", len(got), writers*span)
	}
	for w := range writers {
		if !bytes.Equal(got[w*span:(w+1)*span], pattern(span, byte(w))) {
			t.Errorf("writer %d's range differs", w)
		}
	}
}
