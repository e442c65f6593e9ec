package engine

import (
	"cmp"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"
)

var indexSeed = flag.Uint64("index.seed", 0, "seed for TestIndexRandomized (0: pick one from the clock)")

// Test objects, chosen so that neighbours in key order differ in Hi as
// well as in Lo.
var (
	objA = ObjectID{Hi: 0, Lo: 7}
	objB = ObjectID{Hi: 0, Lo: math.MaxUint64}
	objC = ObjectID{Hi: 1, Lo: 0}
)

// w is a write in a table test: record rec, of n bytes, at off of obj.
type w struct {
	obj ObjectID
	off uint64
	n   uint32
	rec uint32
}

// ex is an expected extent: [off, off+n) of obj is bytes [skip, skip+n) of
// record rec.
type ex struct {
	obj  ObjectID
	off  uint64
	n    uint32
	skip uint32
	rec  uint32
}

func (e ex) String() string {
	return fmt.Sprintf("%v[%d,%d)=rec%d+%d", e.obj, e.off, e.off+uint64(e.n), e.rec, e.skip)
}

// testLoc returns the Location of test record rec, n bytes long. Segment
// is rec, so an extent names its record.
func testLoc(rec, n uint32) Location {
	return Location{Segment: rec, Offset: rec % 1000 * indexBlockSize, Length: n, CRC: rec * 2654435761}
}

// testVersion returns the version that wrote test record rec.
func testVersion(rec uint32) uint64 { return uint64(rec)<<32 | 0xbeef }

// apply inserts every write of ws into x, returning the bytes written.
func apply(t *testing.T, x *Index, ws []w) (inserted uint64) {
	t.Helper()
	for _, wr := range ws {
		x.Insert(wr.obj, wr.off, testLoc(wr.rec, wr.n), testVersion(wr.rec))
		mustCheckIndex(t, x)
		inserted += uint64(wr.n)
	}
	return inserted
}

func mustCheckIndex(t *testing.T, x *Index) {
	t.Helper()
	if err := x.Check(); err != nil {
		t.Fatal(err)
	}
}

// toEx turns extents into ex values, checking that each one's Loc and
// Version are those of the record its Segment names, given record lengths.
func toEx(t *testing.T, es []Extent, recLen map[uint32]uint32) []ex {
	t.Helper()
	out := make([]ex, 0, len(es))
	for _, e := range es {
		rec := e.Loc.Segment
		if want := testLoc(rec, recLen[rec]); e.Loc != want {
			t.Errorf("extent %v: Loc %+v, want %+v", e, e.Loc, want)
		}
		if e.Version != testVersion(rec) {
			t.Errorf("extent %v: Version %#x, want %#x", e, e.Version, testVersion(rec))
		}
		out = append(out, ex{obj: e.Object, off: e.Off, n: e.Len, skip: e.Skip, rec: rec})
	}
	return out
}

func sortEx(es []ex) []ex {
	slices.SortFunc(es, func(a, b ex) int {
		if c := cmp.Compare(a.obj.Hi, b.obj.Hi); c != 0 {
			return c
		}
		if c := cmp.Compare(a.obj.Lo, b.obj.Lo); c != 0 {
			return c
		}
		return cmp.Compare(a.off, b.off)
	})
	return es
}

func all(x *Index) []Extent {
	var es []Extent
	x.Ascend(func(e Extent) bool { es = append(es, e); return true })
	return es
}

func liveBytes(x *Index) (n uint64) {
	x.Ascend(func(e Extent) bool { n += uint64(e.Len); return true })
	return n
}

func sumLen(es []Extent) (n uint64) {
	for _, e := range es {
		n += uint64(e.Len)
	}
	return n
}

func recLens(wss ...[]w) map[uint32]uint32 {
	m := map[uint32]uint32{}
	for _, ws := range wss {
		for _, wr := range ws {
			m[wr.rec] = wr.n
		}
	}
	return m
}

func diffEx(got, want []ex) string {
	if slices.Equal(got, want) {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n got: %v\nwant: %v", got, want)
	return b.String()
}

const k4 = 4096

func TestIndexInsertOverlap(t *testing.T) {
	for _, tc := range []struct {
		name      string
		before    []w
		write     w
		after     []ex // every extent afterwards
		displaced []ex
	}{{
		name:      "empty",
		write:     w{objA, 0, k4, 1},
		after:     []ex{{objA, 0, k4, 0, 1}},
		displaced: nil,
	}, {
		name:      "covers one exactly",
		before:    []w{{objA, 0, 2 * k4, 1}},
		write:     w{objA, 0, 2 * k4, 2},
		after:     []ex{{objA, 0, 2 * k4, 0, 2}},
		displaced: []ex{{objA, 0, 2 * k4, 0, 1}},
	}, {
		name:   "covers several whole",
		before: []w{{objA, k4, k4, 1}, {objA, 2 * k4, k4, 2}, {objA, 4 * k4, k4, 3}},
		write:  w{objA, 0, 6 * k4, 4},
		after:  []ex{{objA, 0, 6 * k4, 0, 4}},
		displaced: []ex{
			{objA, k4, k4, 0, 1}, {objA, 2 * k4, k4, 0, 2}, {objA, 4 * k4, k4, 0, 3},
		},
	}, {
		name:   "covers several, trims both ends",
		before: []w{{objA, 0, 2 * k4, 1}, {objA, 2 * k4, 2 * k4, 2}, {objA, 4 * k4, 2 * k4, 3}},
		write:  w{objA, k4, 4 * k4, 4},
		after:  []ex{{objA, 0, k4, 0, 1}, {objA, k4, 4 * k4, 0, 4}, {objA, 5 * k4, k4, k4, 3}},
		displaced: []ex{
			{objA, k4, k4, k4, 1}, {objA, 2 * k4, 2 * k4, 0, 2}, {objA, 4 * k4, k4, 0, 3},
		},
	}, {
		name:      "inside one: split into two",
		before:    []w{{objA, 0, 4 * k4, 1}},
		write:     w{objA, k4, k4, 2},
		after:     []ex{{objA, 0, k4, 0, 1}, {objA, k4, k4, 0, 2}, {objA, 2 * k4, 2 * k4, 2 * k4, 1}},
		displaced: []ex{{objA, k4, k4, k4, 1}},
	}, {
		name:   "inside an already trimmed one, odd bytes",
		before: []w{{objA, 0, 4 * k4, 1}, {objA, 0, k4, 2}},
		write:  w{objA, 8000, 100, 3},
		after: []ex{
			{objA, 0, k4, 0, 2}, {objA, k4, 8000 - k4, k4, 1}, {objA, 8000, 100, 0, 3},
			{objA, 8100, 4*k4 - 8100, 8100, 1},
		},
		displaced: []ex{{objA, 8000, 100, 8000, 1}},
	}, {
		name:      "overlaps head",
		before:    []w{{objA, 2 * k4, 2 * k4, 1}},
		write:     w{objA, k4, 2 * k4, 2},
		after:     []ex{{objA, k4, 2 * k4, 0, 2}, {objA, 3 * k4, k4, k4, 1}},
		displaced: []ex{{objA, 2 * k4, k4, 0, 1}},
	}, {
		name:      "overlaps head, same start",
		before:    []w{{objA, 0, 4 * k4, 1}},
		write:     w{objA, 0, k4, 2},
		after:     []ex{{objA, 0, k4, 0, 2}, {objA, k4, 3 * k4, k4, 1}},
		displaced: []ex{{objA, 0, k4, 0, 1}},
	}, {
		name:      "overlaps tail",
		before:    []w{{objA, 0, 2 * k4, 1}},
		write:     w{objA, k4, 2 * k4, 2},
		after:     []ex{{objA, 0, k4, 0, 1}, {objA, k4, 2 * k4, 0, 2}},
		displaced: []ex{{objA, k4, k4, k4, 1}},
	}, {
		name:      "overlaps tail, same end",
		before:    []w{{objA, 0, 2 * k4, 1}},
		write:     w{objA, k4, k4, 2},
		after:     []ex{{objA, 0, k4, 0, 1}, {objA, k4, k4, 0, 2}},
		displaced: []ex{{objA, k4, k4, k4, 1}},
	}, {
		name:      "overlaps one byte",
		before:    []w{{objA, 0, k4, 1}},
		write:     w{objA, k4 - 1, k4, 2},
		after:     []ex{{objA, 0, k4 - 1, 0, 1}, {objA, k4 - 1, k4, 0, 2}},
		displaced: []ex{{objA, k4 - 1, 1, k4 - 1, 1}},
	}, {
		name:   "adjacent both sides: no overlap, no merge",
		before: []w{{objA, 0, k4, 1}, {objA, 2 * k4, k4, 2}},
		write:  w{objA, k4, k4, 3},
		after: []ex{
			{objA, 0, k4, 0, 1}, {objA, k4, k4, 0, 3}, {objA, 2 * k4, k4, 0, 2},
		},
		displaced: nil,
	}, {
		name: "different objects never interact",
		before: []w{
			{objA, 0, 8 * k4, 1}, {objB, 0, 8 * k4, 2}, {objC, 0, 8 * k4, 3},
			{objA, 1 << 40, k4, 4}, {objC, 0x7fff_ffff_ffff_0000, k4, 5},
		},
		write: w{objB, k4, 2 * k4, 6},
		after: []ex{
			{objA, 0, 8 * k4, 0, 1}, {objA, 1 << 40, k4, 0, 4},
			{objB, 0, k4, 0, 2}, {objB, k4, 2 * k4, 0, 6}, {objB, 3 * k4, 5 * k4, 3 * k4, 2},
			{objC, 0, 8 * k4, 0, 3}, {objC, 0x7fff_ffff_ffff_0000, k4, 0, 5},
		},
		displaced: []ex{{objB, k4, 2 * k4, k4, 2}},
	}, {
		name:      "write at the top of the offset space",
		before:    []w{{objA, math.MaxUint64 - 2*k4, 2 * k4, 1}},
		write:     w{objA, math.MaxUint64 - k4, k4, 2},
		after:     []ex{{objA, math.MaxUint64 - 2*k4, k4, 0, 1}, {objA, math.MaxUint64 - k4, k4, 0, 2}},
		displaced: []ex{{objA, math.MaxUint64 - k4, k4, k4, 1}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			x := NewIndex()
			apply(t, x, tc.before)
			live := liveBytes(x)
			d := x.Insert(tc.write.obj, tc.write.off, testLoc(tc.write.rec, tc.write.n), testVersion(tc.write.rec))
			mustCheckIndex(t, x)
			lens := recLens(tc.before, []w{tc.write})
			if diff := diffEx(toEx(t, all(x), lens), tc.after); diff != "" {
				t.Errorf("extents after:%s", diff)
			}
			if diff := diffEx(sortEx(toEx(t, d, lens)), tc.displaced); diff != "" {
				t.Errorf("displaced:%s", diff)
			}
			// The bytes that disappeared are exactly the displaced ones.
			if got, want := live+uint64(tc.write.n)-liveBytes(x), sumLen(d); got != want {
				t.Errorf("%d bytes disappeared, displaced sum to %d", got, want)
			}
			if x.Len() != len(tc.after) {
				t.Errorf("Len() = %d, want %d", x.Len(), len(tc.after))
			}
		})
	}
}

func TestIndexLookup(t *testing.T) {
	x := NewIndex()
	ws := []w{
		{objA, 0, 2 * k4, 1}, {objA, 3 * k4, k4, 2}, {objA, 4 * k4, k4, 3},
		{objB, 0, 8 * k4, 4}, {objC, 100, 10, 5},
	}
	apply(t, x, ws)
	lens := recLens(ws)
	for _, tc := range []struct {
		name string
		obj  ObjectID
		off  uint64
		n    uint64
		want []ex
	}{
		{"whole object", objA, 0, math.MaxUint64, []ex{{objA, 0, 2 * k4, 0, 1}, {objA, 3 * k4, k4, 0, 2}, {objA, 4 * k4, k4, 0, 3}}},
		{"clipped both ends", objA, 100, 4*k4 - 200, []ex{{objA, 100, 2*k4 - 100, 100, 1}, {objA, 3 * k4, k4 - 100, 0, 2}}},
		{"inside one", objA, 10, 20, []ex{{objA, 10, 20, 10, 1}}},
		{"hole only", objA, 2 * k4, k4, nil},
		{"starts in hole", objA, 2*k4 + 5, k4, []ex{{objA, 3 * k4, 5, 0, 2}}},
		{"beyond end", objA, 5 * k4, k4, nil},
		{"zero length", objA, 0, 0, nil},
		{"end overflows", objA, 4*k4 + 1, math.MaxUint64, []ex{{objA, 4*k4 + 1, k4 - 1, 1, 3}}},
		{"other object", objC, 0, 1000, []ex{{objC, 100, 10, 0, 5}}},
		{"absent object", ObjectID{Hi: 0, Lo: 8}, 0, math.MaxUint64, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []Extent
			x.Lookup(tc.obj, tc.off, tc.n, func(e Extent) bool { got = append(got, e); return true })
			if diff := diffEx(toEx(t, got, lens), tc.want); diff != "" {
				t.Error(diff)
			}
		})
	}
	t.Run("stops early", func(t *testing.T) {
		calls := 0
		x.Lookup(objA, 0, math.MaxUint64, func(Extent) bool { calls++; return false })
		if calls != 1 {
			t.Errorf("%d calls after returning false, want 1", calls)
		}
	})
}

func TestIndexTruncate(t *testing.T) {
	base := []w{
		{objA, 0, 2 * k4, 1}, {objA, 2 * k4, 2 * k4, 2}, {objA, 5 * k4, k4, 3},
		{objB, 0, 8 * k4, 4},
	}
	objBAfter := ex{objB, 0, 8 * k4, 0, 4}
	for _, tc := range []struct {
		name    string
		size    uint64
		after   []ex // of objA
		dropped []ex
		end     uint64
	}{{
		name:    "straddling extent",
		size:    3 * k4,
		after:   []ex{{objA, 0, 2 * k4, 0, 1}, {objA, 2 * k4, k4, 0, 2}},
		dropped: []ex{{objA, 3 * k4, k4, k4, 2}, {objA, 5 * k4, k4, 0, 3}},
		end:     3 * k4,
	}, {
		name:    "straddling, odd byte",
		size:    5*k4 + 1,
		after:   []ex{{objA, 0, 2 * k4, 0, 1}, {objA, 2 * k4, 2 * k4, 0, 2}, {objA, 5 * k4, 1, 0, 3}},
		dropped: []ex{{objA, 5*k4 + 1, k4 - 1, 1, 3}},
		end:     5*k4 + 1,
	}, {
		name:    "at an extent boundary",
		size:    2 * k4,
		after:   []ex{{objA, 0, 2 * k4, 0, 1}},
		dropped: []ex{{objA, 2 * k4, 2 * k4, 0, 2}, {objA, 5 * k4, k4, 0, 3}},
		end:     2 * k4,
	}, {
		name:    "in a hole",
		size:    4*k4 + 10,
		after:   []ex{{objA, 0, 2 * k4, 0, 1}, {objA, 2 * k4, 2 * k4, 0, 2}},
		dropped: []ex{{objA, 5 * k4, k4, 0, 3}},
		end:     4 * k4,
	}, {
		name:  "at the end",
		size:  6 * k4,
		after: []ex{{objA, 0, 2 * k4, 0, 1}, {objA, 2 * k4, 2 * k4, 0, 2}, {objA, 5 * k4, k4, 0, 3}},
		end:   6 * k4,
	}, {
		name:  "beyond the end",
		size:  1 << 50,
		after: []ex{{objA, 0, 2 * k4, 0, 1}, {objA, 2 * k4, 2 * k4, 0, 2}, {objA, 5 * k4, k4, 0, 3}},
		end:   6 * k4,
	}, {
		name:    "to 0",
		size:    0,
		dropped: []ex{{objA, 0, 2 * k4, 0, 1}, {objA, 2 * k4, 2 * k4, 0, 2}, {objA, 5 * k4, k4, 0, 3}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			x := NewIndex()
			apply(t, x, base)
			live := liveBytes(x)
			d := x.Truncate(objA, tc.size)
			mustCheckIndex(t, x)
			lens := recLens(base)
			want := sortEx(append(slices.Clone(tc.after), objBAfter))
			if diff := diffEx(toEx(t, all(x), lens), want); diff != "" {
				t.Errorf("extents after:%s", diff)
			}
			if diff := diffEx(sortEx(toEx(t, d, lens)), tc.dropped); diff != "" {
				t.Errorf("dropped:%s", diff)
			}
			if got, want := live-liveBytes(x), sumLen(d); got != want {
				t.Errorf("%d bytes disappeared, dropped sum to %d", got, want)
			}
			end, ok := x.End(objA)
			if end != tc.end || ok != (len(tc.after) > 0) {
				t.Errorf("End = %d, %v; want %d, %v", end, ok, tc.end, len(tc.after) > 0)
			}
		})
	}
	t.Run("absent object", func(t *testing.T) {
		x := NewIndex()
		apply(t, x, base)
		if d := x.Truncate(ObjectID{Lo: 8}, 0); len(d) != 0 {
			t.Errorf("dropped %v", d)
		}
		mustCheckIndex(t, x)
		if x.Len() != len(base) {
			t.Errorf("Len() = %d, want %d", x.Len(), len(base))
		}
	})
}

func TestIndexDelete(t *testing.T) {
	ws := []w{
		{objA, 0, k4, 1}, {objB, 0, 2 * k4, 2}, {objB, 4 * k4, k4, 3}, {objB, 1 << 45, 7, 4},
		{objC, 0, k4, 5},
	}
	lens := recLens(ws)
	x := NewIndex()
	apply(t, x, ws)
	live := liveBytes(x)
	d := x.Delete(objB)
	mustCheckIndex(t, x)
	want := []ex{{objB, 0, 2 * k4, 0, 2}, {objB, 4 * k4, k4, 0, 3}, {objB, 1 << 45, 7, 0, 4}}
	if diff := diffEx(toEx(t, d, lens), want); diff != "" {
		t.Errorf("dropped:%s", diff)
	}
	if diff := diffEx(toEx(t, all(x), lens), []ex{{objA, 0, k4, 0, 1}, {objC, 0, k4, 0, 5}}); diff != "" {
		t.Errorf("extents after:%s", diff)
	}
	if got, want := live-liveBytes(x), sumLen(d); got != want {
		t.Errorf("%d bytes disappeared, dropped sum to %d", got, want)
	}
	if end, ok := x.End(objB); ok {
		t.Errorf("End(objB) = %d, true after Delete", end)
	}
	if d := x.Delete(objB); len(d) != 0 {
		t.Errorf("second Delete dropped %v", d)
	}
	if end, ok := x.End(objC); !ok || end != k4 {
		t.Errorf("End(objC) = %d, %v; want %d, true", end, ok, k4)
	}
}

func TestIndexCloneIsolation(t *testing.T) {
	ws := []w{{objA, 0, 4 * k4, 1}, {objB, 0, 4 * k4, 2}, {objC, 0, 4 * k4, 3}}
	lens := recLens(ws)
	lens[10], lens[11], lens[12] = k4, k4, 2*k4
	x := NewIndex()
	apply(t, x, ws)
	orig := toEx(t, all(x), lens)

	c := x.Clone()
	x.Insert(objA, k4, testLoc(10, k4), testVersion(10))
	x.Truncate(objB, k4)
	x.Delete(objC)
	mustCheckIndex(t, x)
	mustCheckIndex(t, c)
	xWant := []ex{
		{objA, 0, k4, 0, 1}, {objA, k4, k4, 0, 10}, {objA, 2 * k4, 2 * k4, 2 * k4, 1},
		{objB, 0, k4, 0, 2},
	}
	if diff := diffEx(toEx(t, all(x), lens), xWant); diff != "" {
		t.Errorf("original after its changes:%s", diff)
	}
	if diff := diffEx(toEx(t, all(c), lens), orig); diff != "" {
		t.Errorf("clone after changes to the original:%s", diff)
	}

	// Now change the clone, and clone the clone.
	c2 := c.Clone()
	c.Insert(objC, 3*k4, testLoc(11, k4), testVersion(11))
	c.Delete(objA)
	c2.Insert(objB, 0, testLoc(12, 2*k4), testVersion(12))
	for _, v := range []*Index{x, c, c2} {
		mustCheckIndex(t, v)
	}
	if diff := diffEx(toEx(t, all(x), lens), xWant); diff != "" {
		t.Errorf("original after changes to the clone:%s", diff)
	}
	cWant := []ex{
		{objB, 0, 4 * k4, 0, 2},
		{objC, 0, 3 * k4, 0, 3}, {objC, 3 * k4, k4, 0, 11},
	}
	if diff := diffEx(toEx(t, all(c), lens), cWant); diff != "" {
		t.Errorf("clone after its changes:%s", diff)
	}
	c2Want := []ex{
		{objA, 0, 4 * k4, 0, 1},
		{objB, 0, 2 * k4, 0, 12}, {objB, 2 * k4, 2 * k4, 2 * k4, 2},
		{objC, 0, 4 * k4, 0, 3},
	}
	if diff := diffEx(toEx(t, all(c2), lens), c2Want); diff != "" {
		t.Errorf("clone of the clone:%s", diff)
	}
}

// TestIndexAppendFillsLeaves checks, with the real node limits, the split
// that the memory of an object written front to back depends on: every
// leaf but the last is full. Then it overwrites random blocks of the
// object and of a clone of it, which must not see each other's writes.
func TestIndexAppendFillsLeaves(t *testing.T) {
	const n = 3 * leafItemsMax * branchKidsMax // a root over branches over leaves
	x := NewIndex()
	for i := range uint32(n) {
		x.Insert(objA, uint64(i)*k4, testLoc(i+1, k4), testVersion(i+1))
	}
	mustCheckIndex(t, x)
	r, _ := x.tree.root(objA)
	if r.br == nil || r.br.kids == nil {
		t.Fatalf("%d extents: the tree is not three levels deep", n)
	}
	leaves := leavesOf(r)
	if want := (n + leafItemsMax - 1) / leafItemsMax; len(leaves) != want {
		t.Errorf("%d leaves, want %d", len(leaves), want)
	}
	for i, l := range leaves[:len(leaves)-1] {
		if len(l.items) != leafItemsMax {
			t.Errorf("leaf %d of %d holds %d items, want %d", i, len(leaves), len(l.items), leafItemsMax)
		}
	}

	views := []*Index{x, x.Clone()}
	var recs [2][]uint32 // record of each block, by view
	for v := range recs {
		recs[v] = make([]uint32, n)
		for i := range recs[v] {
			recs[v][i] = uint32(i + 1)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	rec := uint32(n)
	for range 3000 {
		v, b := rng.IntN(2), rng.IntN(n)
		rec++
		d := views[v].Insert(objA, uint64(b)*k4, testLoc(rec, k4), testVersion(rec))
		if len(d) != 1 || d[0].Loc.Segment != recs[v][b] {
			t.Fatalf("view %d: overwriting block %d displaced %v, want record %d", v, b, d, recs[v][b])
		}
		recs[v][b] = rec
	}
	for v, x := range views {
		mustCheckIndex(t, x)
		i := 0
		x.Ascend(func(e Extent) bool {
			if e.Off != uint64(i)*k4 || e.Loc.Segment != recs[v][i] {
				t.Fatalf("view %d: extent %d is %v, want record %d", v, i, e, recs[v][i])
			}
			i++
			return true
		})
		if i != n {
			t.Errorf("view %d: %d extents, want %d", v, i, n)
		}
	}
}

// leavesOf returns the leaves of the tree under r, in order.
func leavesOf(r objRoot) []*leaf {
	if r.leaf != nil {
		return []*leaf{r.leaf}
	}
	var out []*leaf
	var walk func(b *branch)
	walk = func(b *branch) {
		out = append(out, b.leaves...)
		for _, k := range b.kids {
			walk(k)
		}
	}
	walk(r.br)
	return out
}

// TestIndexScratchReuse checks the documented lifetime of a returned slice:
// the next mutation may reuse it, and a Clone never shares it.
func TestIndexScratchReuse(t *testing.T) {
	x := NewIndex()
	x.Insert(objA, 0, testLoc(1, k4), 1)
	d1 := x.Insert(objA, 0, testLoc(2, k4), 2)
	if len(d1) != 1 || d1[0].Loc.Segment != 1 {
		t.Fatalf("displaced %v", d1)
	}
	c := x.Clone()
	d2 := c.Insert(objA, 0, testLoc(3, k4), 3)
	if len(d2) != 1 || d2[0].Loc.Segment != 2 || d1[0].Loc.Segment != 1 {
		t.Fatalf("clone displaced %v, original's result now %v", d2, d1)
	}
	if testing.AllocsPerRun(100, func() {
		x.Insert(objA, 0, testLoc(4, k4), 4)
	}) > 0 {
		t.Errorf("a steady-state overwrite allocates")
	}
}

func TestIndexPanics(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func(x *Index)
		msg  string
	}{
		{"zero length", func(x *Index) { x.Insert(objA, 0, Location{Length: 0}, 1) }, "record length is 0"},
		{"misaligned record", func(x *Index) { x.Insert(objA, 0, Location{Offset: 512, Length: 1}, 1) }, "not a multiple of 4096"},
		{"end overflows", func(x *Index) { x.Insert(objA, math.MaxUint64-10, Location{Length: 11}, 1) }, "overflows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := NewIndex()
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), tc.msg) {
					t.Errorf("panic %v, want one containing %q", r, tc.msg)
				}
				mustCheckIndex(t, x)
				if x.Len() != 0 {
					t.Errorf("Len() = %d after a refused Insert", x.Len())
				}
			}()
			tc.fn(x)
		})
	}
}

// The randomized test runs an Index against a slow, obvious model: each
// object is an array of bytes, each naming the record and the byte within
// it that the object's byte lives in.

const (
	modelObjects  = 4
	modelSpace    = 64 << 10 // writes start below this
	modelWriteMax = 16 << 10
	modelSize     = modelSpace + modelWriteMax
)

// cell is a byte of an object in the model: byte idx of record rec, or a
// hole if rec is 0.
type cell struct {
	rec uint32
	idx uint32
}

type model [modelObjects][]cell

func newModel() *model {
	var m model
	for i := range m {
		m[i] = make([]cell, modelSize)
	}
	return &m
}

func (m *model) clone() *model {
	var c model
	for i := range m {
		c[i] = slices.Clone(m[i])
	}
	return &c
}

// view is an Index, its model and its byte accounting.
type view struct {
	x        *Index
	m        *model
	inserted uint64 // bytes inserted over the view's history
	gone     uint64 // bytes displaced or dropped over its history
}

func modelObj(i int) ObjectID { return ObjectID{Hi: uint64(i / 2), Lo: uint64(i % 2)} }

type randomized struct {
	t      *testing.T
	rng    *rand.Rand
	views  []*view
	recLen []uint32 // by record id; id 0 is unused
	recVer []uint64 // version of the extents in each record, by id
	ops    int
	buf    []Extent
}

// indexShapes are the node limits TestIndexRandomized runs every seed
// with: the real ones, and small ones under which a few dozen extents
// per object make leaves split, merge and share items, branches do the
// same, and trees several levels deep.
var indexShapes = []struct {
	name               string
	leafMax, branchMax int
}{
	{"default", leafItemsMax, branchKidsMax},
	{"small", 2, 4},
	{"odd", 9, 5},
}

func TestIndexRandomized(t *testing.T) {
	seeds := []uint64{*indexSeed}
	ops := 3000
	if *indexSeed == 0 {
		base := uint64(time.Now().UnixNano())
		seeds = []uint64{base, base + 1, base + 2}
		if testing.Short() {
			seeds, ops = seeds[:2], 1500
		}
	}
	if raceEnabled() {
		// The race detector slows the byte-by-byte model about 20 times.
		ops /= 5
	}
	for _, seed := range seeds {
		for _, shape := range indexShapes {
			t.Run(fmt.Sprintf("%d/%s", seed, shape.name), func(t *testing.T) {
				t.Cleanup(func() {
					if t.Failed() {
						t.Logf("replay with: go test -run 'TestIndexRandomized' ./engine -index.seed=%d", seed)
					}
				})
				r := &randomized{
					t:      t,
					rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
					views:  []*view{{x: newIndexSized(shape.leafMax, shape.branchMax), m: newModel()}},
					recLen: []uint32{0},
					recVer: []uint64{0},
				}
				for r.ops = 0; r.ops < ops && !t.Failed(); r.ops++ {
					r.step()
				}
			})
		}
	}
}

func (r *randomized) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("op %d: %s", r.ops, fmt.Sprintf(format, args...))
}

// step performs one random operation on a random view and checks it.
func (r *randomized) step() {
	vi := 0
	if len(r.views) > 1 && r.rng.IntN(3) == 0 {
		vi = 1 + r.rng.IntN(len(r.views)-1)
	}
	v := r.views[vi]
	o := r.rng.IntN(modelObjects)
	obj := modelObj(o)
	switch p := r.rng.IntN(100); {
	case p < 80:
		off := r.pos(v, o, modelSpace-1)
		n := uint32(1 + r.rng.IntN(modelWriteMax))
		if end := r.pos(v, o, modelSize); end > off && end-off <= modelWriteMax {
			n = uint32(end - off)
		}
		switch q := r.rng.IntN(8); {
		case q < 2:
			// Small writes split extents and build up many of them.
			n = uint32(1 + r.rng.IntN(64))
		case q < 4:
			// Appends: an object written front to back.
			if end, _ := v.x.End(obj); end < modelSpace {
				off, n = end, uint32(1+r.rng.IntN(256))
			}
		}
		rec := r.newRecord(n)
		d := v.x.Insert(obj, off, testLoc(rec, n), testVersion(rec))
		r.checkGone("Insert", v, o, off, off+uint64(n), d)
		for i := range n {
			v.m[o][off+uint64(i)] = cell{rec, i}
		}
		v.inserted += uint64(n)
	case p < 92:
		size := r.pos(v, o, modelSize)
		d := v.x.Truncate(obj, size)
		r.checkGone("Truncate", v, o, size, modelSize, d)
		clear(v.m[o][size:])
	case p < 94:
		d := v.x.Delete(obj)
		r.checkGone("Delete", v, o, 0, modelSize, d)
		clear(v.m[o])
	case p < 97:
		r.relocate(v, o)
	default:
		c := &view{x: v.x.Clone(), m: v.m.clone(), inserted: v.inserted, gone: v.gone}
		if len(r.views) < 4 {
			r.views = append(r.views, c)
		} else {
			r.views[1+r.rng.IntN(len(r.views)-1)] = c
		}
	}

	if err := v.x.Check(); err != nil {
		r.fatalf("%v", err)
	}
	if live := liveBytes(v.x); v.inserted != v.gone+live {
		r.fatalf("inserted %d bytes, displaced or dropped %d, live %d", v.inserted, v.gone, live)
	}
	for range 2 {
		o := r.rng.IntN(modelObjects)
		from := r.pos(v, o, modelSize-1)
		to := min(from+uint64(1+r.rng.IntN(modelWriteMax)), modelSize)
		if end := r.pos(v, o, modelSize); end > from {
			to = end
		}
		r.compare(v, o, from, to)
	}
	if r.ops%100 == 0 {
		// Every view, whole: clones must not see each other's changes.
		for _, v := range r.views {
			for o := range modelObjects {
				r.compare(v, o, 0, modelSize)
			}
			if err := v.x.Check(); err != nil {
				r.fatalf("%v", err)
			}
		}
	}
}

// newRecord adds a record of n bytes, written by version testVersion of
// its id, and returns the id.
func (r *randomized) newRecord(n uint32) uint32 {
	rec := uint32(len(r.recLen))
	r.recLen = append(r.recLen, n)
	r.recVer = append(r.recVer, testVersion(rec))
	return rec
}

// relocate moves the bytes of object o that live in one record to a new
// record, over a random range around them, as the cleaner does (with an
// exact extent) or a replay after later writes does (with a stale one).
func (r *randomized) relocate(v *view, o int) {
	obj := modelObj(o)
	from := v.m[o][r.pos(v, o, modelSize-1)].rec
	if from == 0 {
		return
	}
	off := r.pos(v, o, modelSpace-1)
	n := uint32(1 + r.rng.IntN(modelWriteMax))
	if end := r.pos(v, o, modelSize); end > off && end-off <= modelWriteMax {
		n = uint32(end - off)
	}
	// The copy keeps the version of the extents it moves.
	to := r.newRecord(n)
	r.recVer[to] = r.recVer[from]
	moved := v.x.Relocate(obj, off, testLoc(from, r.recLen[from]), testLoc(to, n))
	want := uint64(0)
	for i := range n {
		if c := &v.m[o][off+uint64(i)]; c.rec == from {
			*c = cell{to, i}
			want++
		}
	}
	if moved != want {
		r.fatalf("Relocate of %v [%d,%d) from record %d: moved %d bytes, model %d", obj, off, off+uint64(n), from, moved, want)
	}
}

// pos returns a random offset in [0, limit] of object o. Half the time it
// is at or next to a boundary of one of the object's extents in v, so that
// writes, truncates and lookups that start or end exactly where an extent
// does are common.
func (r *randomized) pos(v *view, o int, limit uint64) uint64 {
	if r.rng.IntN(2) == 0 {
		var bounds []uint64
		v.x.Lookup(modelObj(o), 0, math.MaxUint64, func(e Extent) bool {
			bounds = append(bounds, e.Off, e.End())
			return true
		})
		if len(bounds) > 0 {
			// NB: 0-1 wraps around and is then refused by the limit.
			if p := bounds[r.rng.IntN(len(bounds))] + uint64(r.rng.IntN(3)) - 1; p <= limit {
				return p
			}
		}
	}
	return uint64(r.rng.IntN(int(limit) + 1))
}

// checkGone checks that the displaced or dropped extents d are exactly the
// live bytes of object o in [from, to) of v's model, before the operation.
func (r *randomized) checkGone(op string, v *view, o int, from, to uint64, d []Extent) {
	r.t.Helper()
	r.buf = append(r.buf[:0], d...)
	slices.SortFunc(r.buf, func(a, b Extent) int { return cmp.Compare(a.Off, b.Off) })
	next := from
	for _, e := range r.buf {
		if e.Object != modelObj(o) || e.Off < next || e.End() > to || e.Len == 0 {
			r.fatalf("%s of %v [%d,%d): returned %v, overlapping another or out of range",
				op, modelObj(o), from, to, e)
		}
		r.checkRecord(e)
		r.checkModel(op, v, o, next, e.Off, Extent{})
		r.checkModel(op, v, o, e.Off, e.End(), e)
		next = e.End()
		v.gone += uint64(e.Len)
	}
	r.checkModel(op, v, o, next, to, Extent{})
}

// checkModel checks that [from, to) of object o in v's model holds the
// bytes of e from from on, or is a hole if e.Len is 0.
func (r *randomized) checkModel(op string, v *view, o int, from, to uint64, e Extent) {
	r.t.Helper()
	want := cell{}
	for p := from; p < to; p++ {
		if e.Len != 0 {
			want = cell{e.Loc.Segment, e.Skip + uint32(p-e.Off)}
		}
		if v.m[o][p] != want {
			r.fatalf("%s of %v: byte %d: index has %+v (%v), model %+v", op, modelObj(o), p, want, e, v.m[o][p])
		}
	}
}

// checkRecord checks that e's Loc and Version are those of the record its
// Segment names.
func (r *randomized) checkRecord(e Extent) {
	r.t.Helper()
	rec := e.Loc.Segment
	if rec == 0 || int(rec) >= len(r.recLen) || e.Loc != testLoc(rec, r.recLen[rec]) || e.Version != r.recVer[rec] {
		r.fatalf("extent %v does not match its record", e)
	}
}

// compare checks Lookup of object o over [from, to) against v's model.
func (r *randomized) compare(v *view, o int, from, to uint64) {
	r.t.Helper()
	next := from // no extent may start before the end of the previous one
	v.x.Lookup(modelObj(o), from, to-from, func(e Extent) bool {
		if e.Object != modelObj(o) || e.Off < next || e.End() > to || e.Len == 0 {
			r.fatalf("Lookup %v [%d,%d): extent %v out of place (after %d)", modelObj(o), from, to, e, next)
		}
		r.checkRecord(e)
		if e.Skip+e.Len > e.Loc.Length {
			r.fatalf("Lookup: extent %v beyond its record", e)
		}
		r.checkModel("Lookup", v, o, next, e.Off, Extent{})
		r.checkModel("Lookup", v, o, e.Off, e.End(), e)
		next = e.End()
		return true
	})
	r.checkModel("Lookup", v, o, next, to, Extent{})
}

// TestIndexCheck plants each kind of broken invariant straight into the
// tree and expects Check to name it.
func TestIndexCheck(t *testing.T) {
	good := Extent{Object: objA, Off: k4, Len: k4, Loc: testLoc(1, 2*k4)}
	for _, tc := range []struct {
		name  string
		plant []Extent
		msg   string
	}{
		{"fine", []Extent{good, {Object: objB, Off: 0, Len: k4, Loc: testLoc(2, k4)}}, ""},
		{"adjacent is fine", []Extent{good, {Object: objA, Off: 2 * k4, Len: k4, Loc: testLoc(2, k4)}}, ""},
		{"zero length", []Extent{{Object: objA, Off: 0, Len: 0, Loc: testLoc(2, k4)}}, "Len is 0"},
		{"beyond record", []Extent{{Object: objA, Off: 0, Len: k4, Skip: 1, Loc: testLoc(2, k4)}}, "> record length"},
		{"misaligned record", []Extent{{Object: objA, Off: 0, Len: 1, Loc: Location{Offset: 1, Length: 1}}}, "not a multiple"},
		{"overflow", []Extent{{Object: objA, Off: math.MaxUint64, Len: 1, Loc: testLoc(2, 1)}}, "overflows"},
		{"overlap", []Extent{good, {Object: objA, Off: 2*k4 - 1, Len: k4, Loc: testLoc(2, k4)}}, "overlaps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := NewIndex()
			for _, e := range tc.plant {
				x.tree.ReplaceOrInsert(e)
			}
			err := x.Check()
			if tc.msg == "" && err != nil || tc.msg != "" && (err == nil || !strings.Contains(err.Error(), tc.msg)) {
				t.Errorf("Check() = %v, want an error containing %q", err, tc.msg)
			}
		})
	}
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}
