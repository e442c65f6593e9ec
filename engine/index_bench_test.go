package engine

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"unsafe"
)

// Benchmarks and the memory measurement of the extent index. The index
// spans indexBenchObjects objects of indexBenchExtents 4 KiB extents each:
// 1M extents, 4 GiB of object space.
const (
	indexBenchObjects = 16
	indexBenchExtents = 1 << 16
)

func benchObj(i int) ObjectID { return ObjectID{Hi: uint64(i) * 0x9e3779b97f4a7c15, Lo: uint64(i)} }

// fillIndex returns an index holding every 4 KiB extent of the benchmark
// space, each its own record.
func fillIndex() *Index {
	x := NewIndex()
	rec := uint32(0)
	for o := range indexBenchObjects {
		for i := range indexBenchExtents {
			rec++
			x.Insert(benchObj(o), uint64(i)*k4, testLoc(rec, k4), uint64(rec))
		}
	}
	return x
}

// BenchmarkIndexInsert4K overwrites random 4 KiB-aligned blocks of a full
// index: each Insert displaces exactly one extent.
func BenchmarkIndexInsert4K(b *testing.B) {
	x := fillIndex()
	rng := rand.New(rand.NewPCG(1, 2))
	rec := uint32(1 << 24)
	b.ReportAllocs()
	for b.Loop() {
		rec++
		off := uint64(rng.IntN(indexBenchExtents)) * k4
		if d := x.Insert(benchObj(rng.IntN(indexBenchObjects)), off, testLoc(rec, k4), uint64(rec)); len(d) != 1 {
			b.Fatalf("displaced %d extents, want 1", len(d))
		}
	}
}

// BenchmarkIndexInsert4KAppend appends 4 KiB records to fresh objects, the
// pattern of a file written front to back: no overlaps.
func BenchmarkIndexInsert4KAppend(b *testing.B) {
	x := NewIndex()
	i := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		i++
		obj := ObjectID{Lo: i / indexBenchExtents}
		if d := x.Insert(obj, i%indexBenchExtents*k4, testLoc(uint32(i), k4), i); len(d) != 0 {
			b.Fatalf("displaced %d extents, want 0", len(d))
		}
	}
}

// BenchmarkIndexLookup4K looks up random 4 KiB-aligned blocks of a full
// index: each finds exactly one extent.
func BenchmarkIndexLookup4K(b *testing.B) {
	x := fillIndex()
	rng := rand.New(rand.NewPCG(1, 2))
	n := 0
	count := func(Extent) bool { n++; return true }
	b.ReportAllocs()
	for b.Loop() {
		off := uint64(rng.IntN(indexBenchExtents)) * k4
		x.Lookup(benchObj(rng.IntN(indexBenchObjects)), off, k4, count)
	}
	if n != b.N {
		b.Fatalf("%d extents found in %d lookups", n, b.N)
	}
}

func heapAlloc() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestIndexMemoryPerExtent measures the heap an Index uses per 4 KiB extent
// (items, leaves, branches, the tree of objects and their slack) for two
// arrival orders: random, and each object front to back. The latter was
// the worst case of the single google/btree of Extents the index used to
// be: it split full nodes in the middle, which left nodes filled in
// ascending order half empty; leaves now stay full. One-extent objects
// cost more per extent: each has its own leaf and an item in the tree of
// objects. See the comment on Index.
func TestIndexMemoryPerExtent(t *testing.T) {
	n := 1 << 20
	if testing.Short() || raceEnabled() {
		// Smaller trees measure about the same; the race detector
		// only slows this single-goroutine test down.
		n = 200 << 10
	}
	for _, tc := range []struct {
		name      string
		order     string
		perObject uint32
		max       float64 // bytes per extent
	}{
		{"random", "random", 256, 64}, // 1 MiB objects
		{"ascending", "ascending", 256, 64},
		// NB: these bounds only guard against regressions; see above.
		{"one-extent objects, random", "random", 1, 192},
		{"one-extent objects, ascending", "ascending", 1, 192},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Allocate the order before measuring.
			order := make([]uint32, n)
			for i := range order {
				order[i] = uint32(i)
			}
			if tc.order == "random" {
				rng := rand.New(rand.NewPCG(3, 4))
				rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
			}
			before := heapAlloc()
			x := NewIndex()
			for _, i := range order {
				obj := ObjectID{Hi: uint64(i / tc.perObject), Lo: 1}
				x.Insert(obj, uint64(i%tc.perObject)*k4, testLoc(i+1, k4), uint64(i))
			}
			x.scratch = nil
			after := heapAlloc()
			if x.Len() != n {
				t.Fatalf("Len() = %d, want %d", x.Len(), n)
			}
			per := float64(int64(after-before)) / float64(n)
			t.Logf("%s: %d extents, %d per object, %.1f bytes/extent (%d-byte item, %d per leaf)",
				tc.name, n, tc.perObject, per, unsafe.Sizeof(item{}), leafItemsMax)
			if per > tc.max {
				t.Errorf("%.1f bytes per extent, want <= %.0f", per, tc.max)
			}
			runtime.KeepAlive(x)
			runtime.KeepAlive(order)
		})
	}
}
