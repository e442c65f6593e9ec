package mount

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	exSeed = flag.Uint64("exercise.seed", 0, "seed of the random exerciser (0: from the clock)")
	exOps  = flag.Int("exercise.ops", 0, "operations of the random exerciser (0: 200 with -short, else 2000)")
)

type exConfig struct {
	seed    uint64
	ops     int
	files   int
	sizeMax int64 // offsets and sizes stay below
	ioMax   int   // bytes per write or read
}

func exerciserConfig(t *testing.T) exConfig {
	c := exConfig{seed: *exSeed, ops: *exOps, files: 3, sizeMax: 4 << 30, ioMax: 256 << 10}
	if c.seed == 0 {
		c.seed = uint64(time.Now().UnixNano())
	}
	if c.ops == 0 {
		c.ops = 2000
		if testing.Short() {
			c.ops = 200
		}
	}
	if testing.Short() {
		// Truncating a sparse file deletes every chunk of the dropped
		// range, holes included: keep -short's files smaller, and its
		// I/Os (the race detector checks every byte copied).
		c.sizeMax, c.ioMax = 32<<20, 64<<10
	}
	return c
}

// model is a sparse file in memory: its size and the extents written,
// sorted and disjoint; the rest reads as zeros.
type model struct {
	size int64
	ext  []extent
}

type extent struct {
	off  int64
	data []byte
}

func (m *model) end(e extent) int64 { return e.off + int64(len(e.data)) }

// cut removes [from, to) from the extents.
func (m *model) cut(from, to int64) {
	var out []extent
	for _, e := range m.ext {
		if m.end(e) <= from || e.off >= to {
			out = append(out, e)
			continue
		}
		if e.off < from {
			out = append(out, extent{e.off, e.data[:from-e.off]})
		}
		if m.end(e) > to {
			out = append(out, extent{to, e.data[to-e.off:]})
		}
	}
	m.ext = out
}

func (m *model) write(off int64, p []byte) {
	m.cut(off, off+int64(len(p)))
	m.ext = append(m.ext, extent{off, slices.Clone(p)})
	slices.SortFunc(m.ext, func(a, b extent) int { return int(min(max(a.off-b.off, -1), 1)) })
	m.size = max(m.size, off+int64(len(p)))
}

func (m *model) truncate(n int64) {
	m.cut(n, max(n, m.size)+1)
	m.size = n
}

// read returns what a read of n bytes at off gives.
func (m *model) read(off int64, n int) []byte {
	if off >= m.size {
		return nil
	}
	p := make([]byte, min(int64(n), m.size-off))
	for _, e := range m.ext {
		if m.end(e) <= off || e.off >= off+int64(len(p)) {
			continue
		}
		s := max(e.off, off)
		copy(p[s-off:], e.data[s-e.off:])
	}
	return p
}

// exercise runs c.ops random operations on c.files files under dir
// through open descriptors (writes, reads, truncations up and down,
// fsyncs, reopens) and checks every read and size against the model.
func exercise(t *testing.T, dir string, c exConfig) {
	t.Logf("exerciser: seed %d (rerun with -exercise.seed=%d), %d ops, sizes below %d", c.seed, c.seed, c.ops, c.sizeMax)
	rng := rand.New(rand.NewPCG(c.seed, 0))
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], c.seed)
	fill := rand.NewChaCha8(key) // the bytes written
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d: "+format, append([]any{c.seed}, args...)...)
	}
	type file struct {
		path string
		fd   int
		m    model
	}
	files := make([]*file, c.files)
	for i := range files {
		p := filepath.Join(dir, fmt.Sprintf("ex%d", i))
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_RDWR|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
		if err != nil {
			fail("create %s: %v", p, err)
		}
		files[i] = &file{path: p, fd: fd}
	}
	defer func() {
		for _, f := range files {
			unix.Close(f.fd)
		}
	}()
	// offset picks where an operation lands: mostly near the data or the
	// end, sometimes anywhere (far holes, sparse GiB files).
	offset := func(f *file) int64 {
		switch rng.IntN(4) {
		case 0:
			return rng.Int64N(c.sizeMax - int64(c.ioMax))
		case 1:
			if len(f.m.ext) > 0 {
				e := f.m.ext[rng.IntN(len(f.m.ext))]
				return max(0, min(e.off+rng.Int64N(int64(len(e.data))+1)-int64(c.ioMax)/2, c.sizeMax-int64(c.ioMax)))
			}
		case 2:
			return max(0, min(f.m.size-rng.Int64N(int64(c.ioMax)), c.sizeMax-int64(c.ioMax)))
		}
		return rng.Int64N(max(f.m.size, 1))
	}
	buf := make([]byte, c.ioMax)
	for op := range c.ops {
		f := files[rng.IntN(len(files))]
		switch k := rng.IntN(100); {
		case k < 40: // write
			off, n := offset(f), 1+rng.IntN(c.ioMax)
			p := buf[:n]
			_, _ = fill.Read(p)
			if w, err := unix.Pwrite(f.fd, p, off); err != nil || w != n {
				fail("op %d: pwrite %s [%d,+%d): %d, %v", op, f.path, off, n, w, err)
			}
			f.m.write(off, p)
		case k < 70: // read
			off, n := offset(f), 1+rng.IntN(c.ioMax)
			p := buf[:n]
			got, err := unix.Pread(f.fd, p, off)
			if err != nil {
				fail("op %d: pread %s [%d,+%d): %v", op, f.path, off, n, err)
			}
			if want := f.m.read(off, n); !bytes.Equal(p[:got], want) {
				fail("op %d: pread %s [%d,+%d) of size %d: got %d bytes, want %d; first difference at %d",
					op, f.path, off, n, f.m.size, got, len(want), firstDiff(p[:got], want))
			}
		case k < 82: // truncate, through the descriptor or the path
			n := rng.Int64N(c.sizeMax)
			if rng.IntN(2) == 0 {
				n = max(0, f.m.size-rng.Int64N(int64(c.ioMax)*4))
			}
			var err error
			if rng.IntN(2) == 0 {
				err = unix.Ftruncate(f.fd, n)
			} else {
				err = unix.Truncate(f.path, n)
			}
			if err != nil {
				fail("op %d: truncate %s to %d: %v", op, f.path, n, err)
			}
			f.m.truncate(n)
		case k < 90: // size
			var st unix.Stat_t
			var err error
			if rng.IntN(2) == 0 {
				err = unix.Fstat(f.fd, &st)
			} else {
				err = unix.Stat(f.path, &st)
			}
			if err != nil || st.Size != f.m.size {
				fail("op %d: stat %s: size %d, %v; want %d", op, f.path, st.Size, err, f.m.size)
			}
		case k < 95: // fsync
			if err := unix.Fsync(f.fd); err != nil {
				fail("op %d: fsync %s: %v", op, f.path, err)
			}
		default: // close and open again
			if err := unix.Close(f.fd); err != nil {
				fail("op %d: close %s: %v", op, f.path, err)
			}
			fd, err := unix.Open(f.path, unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				fail("op %d: reopen %s: %v", op, f.path, err)
			}
			f.fd = fd
		}
	}
	// Final check through fresh descriptors: the size, every extent and
	// the bytes around it.
	for _, f := range files {
		if err := unix.Close(f.fd); err != nil {
			fail("close %s: %v", f.path, err)
		}
		fd, err := unix.Open(f.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			fail("open %s: %v", f.path, err)
		}
		f.fd = fd
		fi, err := os.Stat(f.path)
		if err != nil || fi.Size() != f.m.size {
			fail("final stat %s: %v, %v; want size %d", f.path, fi, err, f.m.size)
		}
		for _, e := range f.m.ext {
			off := max(0, e.off-4096)
			n := int(min(int64(len(e.data))+8192, int64(c.ioMax)))
			p := buf[:n]
			got, err := unix.Pread(f.fd, p, off)
			if err != nil {
				fail("final pread %s [%d,+%d): %v", f.path, off, n, err)
			}
			if want := f.m.read(off, n); !bytes.Equal(p[:got], want) {
				fail("final pread %s [%d,+%d): got %d bytes, want %d; first difference at %d", f.path, off, n, got, len(want), firstDiff(p[:got], want))
			}
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestModel checks the exerciser's model against a byte slice.
func TestModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var m model
	var flat []byte
	for range 2000 {
		switch rng.IntN(3) {
		case 0:
			off, n := rng.Int64N(300), 1+rng.IntN(50)
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(rng.UintN(255) + 1)
			}
			m.write(off, p)
			if need := off + int64(n); need > int64(len(flat)) {
				flat = append(flat, make([]byte, need-int64(len(flat)))...)
			}
			copy(flat[off:], p)
		case 1:
			n := rng.Int64N(350)
			m.truncate(n)
			if n < int64(len(flat)) {
				flat = flat[:n]
			} else {
				flat = append(flat, make([]byte, n-int64(len(flat)))...)
			}
		default:
			off, n := rng.Int64N(400), rng.IntN(100)
			var want []byte
			if off < int64(len(flat)) {
				want = flat[off:min(int64(len(flat)), off+int64(n))]
			}
			if got := m.read(off, n); !bytes.Equal(got, want) && (len(got) != 0 || len(want) != 0) {
				t.Fatalf("read [%d,+%d): %v, want %v", off, n, got, want)
			}
		}
	}
}

// TestExerciseMem runs the exerciser on a mount of the in-memory backend
// (files below 4 MiB: its files are flat byte slices).
func TestExerciseMem(t *testing.T) {
	m := mountT(t, newMemBackend(), Options{})
	c := exerciserConfig(t)
	c.sizeMax = min(c.sizeMax, 4<<20)
	exercise(t, m.Dir(), c)
}
