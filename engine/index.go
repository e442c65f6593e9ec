package engine

import (
	"fmt"
	"math"
)

// indexBlockSize is the alignment of Location.Offset.
const indexBlockSize = 4096

// indexScratchMax bounds the capacity, in extents, of the displaced or
// dropped slice an Index keeps for reuse between calls; a larger one (left
// by deleting a big object) is released at the next mutation.
const indexScratchMax = 1024

// ObjectID names an object: 128 bits.
type ObjectID struct{ Hi, Lo uint64 }

// String formats o as 32 hex digits, Hi first.
func (o ObjectID) String() string { return fmt.Sprintf("%016x%016x", o.Hi, o.Lo) }

// Location is where a record's data lives: segment, byte offset of the
// record's data within the segment, the record's data length and CRC32C
// of the record's whole data (a read of part of it must read and verify
// the whole record).
type Location struct {
	Segment uint32
	Offset  uint32 // bytes from the segment start, multiple of 4096
	Length  uint32 // bytes of data in the record
	CRC     uint32
}

// Extent maps [Off, Off+Len) of Object to bytes [Skip, Skip+Len) of the
// record at Loc. Version is the object version that wrote it.
type Extent struct {
	Object  ObjectID
	Off     uint64
	Len     uint32
	Skip    uint32
	Loc     Location
	Version uint64
}

// End returns Off+Len, the offset just past e.
func (e Extent) End() uint64 { return e.Off + uint64(e.Len) }

// String formats e for test failures and panics.
func (e Extent) String() string {
	return fmt.Sprintf("%v[%d,%d) skip %d seg %d off %d len %d crc %08x v%d",
		e.Object, e.Off, e.End(), e.Skip, e.Loc.Segment, e.Loc.Offset, e.Loc.Length, e.Loc.CRC, e.Version)
}

// check returns an error if e on its own breaks an Index invariant.
func (e Extent) check() error {
	switch {
	case e.Len == 0:
		return fmt.Errorf("engine: index: extent %v: Len is 0", e)
	case uint64(e.Skip)+uint64(e.Len) > uint64(e.Loc.Length):
		return fmt.Errorf("engine: index: extent %v: Skip %d + Len %d > record length %d",
			e, e.Skip, e.Len, e.Loc.Length)
	case e.Off > math.MaxUint64-uint64(e.Len):
		return fmt.Errorf("engine: index: extent %v: Off %d + Len %d overflows", e, e.Off, e.Len)
	case e.Loc.Offset%indexBlockSize != 0:
		return fmt.Errorf("engine: index: extent %v: record offset %d is not a multiple of %d",
			e, e.Loc.Offset, indexBlockSize)
	}
	return nil
}

// mustCheck panics if e breaks an Index invariant.
func (e Extent) mustCheck() {
	if err := e.check(); err != nil {
		panic(err)
	}
}

// extentLess orders extents by (Object.Hi, Object.Lo, Off).
func extentLess(a, b Extent) bool {
	if a.Object != b.Object {
		return objectLess(a.Object, b.Object)
	}
	return a.Off < b.Off
}

// Index is the extent index: it maps (object, offset) to the record that
// holds those bytes. Each shard owns one Index; a snapshot is a Clone of
// it.
//
// Structure (index_tree.go): a github.com/google/btree of objects, each
// with its own B+tree of 40-byte items, an Extent without its ObjectID:
//
//	objects (btree, degree 32)     one object's tree
//	+--------------------------+
//	| ObjectID | root leaf or  |-->  branch: keys[i] <= items of child i
//	|          | root branch   |     +--------------------------------+
//	+--------------------------+     | 0 | k1 | k2 | ... (<= 64)       |
//	                                 +--------------------------------+
//	                                   |    |    |
//	                                   v    v    v
//	                                 leaf: up to 102 items by Off, in an
//	                                 array sized to its fill
//	                                 +-------------------------------+
//	                                 | Off Len Skip Loc(16) Version  |
//	                                 +-------------------------------+
//
// A full leaf takes an insert past its end by starting a new leaf with
// it, so an object written front to back fills its leaves completely; an
// insert elsewhere splits the leaf in the middle. A leaf's array grows a
// quarter at a time (doubling on appends) up to 4080 bytes, and shrinks
// when half empty, each time to the runtime size class that fits it: a
// leaf costs about what it holds, whatever order extents arrive in. A
// leaf that drops below a quarter full merges with a sibling or takes
// some of its items; branches below an object's root keep 16..64
// children, so its tree stays shallow.
//
// Copy-on-write: every leaf and branch carries the generation of the
// tree that made it, and a tree modifies a node in place only if it
// carries its own generation; otherwise it copies the node (and every
// node above it, on the way down). Clone gives both trees new
// generations, so after a Clone neither modifies a node the other can
// see. The btree of objects is cloned by btree.Clone.
//
// Invariants (Check verifies all of them):
//   - No two extents of one object overlap.
//   - Every extent has Len > 0 and Skip+Len <= Loc.Length; Off+Len does
//     not overflow uint64; Loc.Offset is a multiple of 4096.
//   - Extents are kept as written: adjacent extents are never merged, even
//     when one continues the other, because they point to different
//     records (and a record is always read and verified whole).
//   - The tree's own (index_tree.go): every object has an extent, leaves
//     are non-empty and at one depth, branch keys bound their children.
//
// Caller bugs (a zero-length record, a misaligned record offset, a write
// whose end overflows uint64) make Insert panic before it changes
// anything, and a broken internal invariant panics too; the messages carry
// the numbers involved.
//
// An Index is not safe for concurrent use. After Clone, the Index and its
// clone may be used from different goroutines.
//
// Memory: TestIndexMemoryPerExtent measures, for 1M 4 KiB extents in
// 1 MiB objects, about 46 bytes per extent when they arrive in random
// order and 44 when every object is written front to back (a single
// google/btree of 56-byte Extents took 82 and 116: it split full nodes in
// the middle, so nodes filled in ascending order stayed half empty). An
// object with a single extent costs about 130 to 150 bytes: its item in
// the tree of objects, a leaf and a one-item array.
//
// The zero Index is not usable; call NewIndex.
type Index struct {
	tree *extentTree

	// scratch is reused for the displaced or dropped extents a mutation
	// returns, so that a steady stream of Inserts does not allocate.
	// Invariant: a Clone never shares it.
	scratch []Extent
}

// NewIndex returns an empty Index.
func NewIndex() *Index {
	return newIndexSized(leafItemsMax, branchKidsMax)
}

// newIndexSized returns an empty Index whose leaves hold up to leafMax
// extents and whose branches have up to branchMax children; tests use
// small ones to reach every shape of the tree with few extents.
func newIndexSized(leafMax, branchMax int) *Index {
	return &Index{tree: newExtentTree(leafMax, branchMax)}
}

// takeScratch returns x's scratch slice emptied, for a mutation to fill.
func (x *Index) takeScratch() []Extent {
	if cap(x.scratch) > indexScratchMax {
		x.scratch = nil
	}
	return x.scratch[:0]
}

// Insert records that [off, off+loc.Length) of obj now lives at loc (Skip
// 0) and was written by version, trimming or splitting every older extent
// it overlaps. It returns the extents (or parts of them) it displaced, in
// no particular order, so the caller can account dead bytes per segment.
//
// The returned slice belongs to x and is valid only until the next Insert,
// Truncate or Delete on x; copy what must be kept.
//
// loc.Length must be > 0, loc.Offset a multiple of 4096, and off+loc.Length
// must not overflow uint64: otherwise Insert panics (a caller bug).
func (x *Index) Insert(obj ObjectID, off uint64, loc Location, version uint64) (displaced []Extent) {
	n := Extent{Object: obj, Off: off, Len: loc.Length, Loc: loc, Version: version}
	if loc.Length == 0 {
		panic(fmt.Sprintf("engine: index: Insert of %v at %d: record length is 0", obj, off))
	}
	n.mustCheck()
	end := n.End()

	old := x.takeScratch()
	r, ok := x.tree.root(obj)
	if !ok {
		x.tree.create(obj, itemOf(n))
		x.scratch = old
		return old
	}
	orig := r

	// Collect the overlapped extents: walking down from the last extent
	// that starts before end, they overlap until one ends at or before
	// off (extents of one object are disjoint and sorted, so their ends
	// are sorted too).
	var c cursor
	for ok := c.seekLE(r, end-1); ok && c.item().end() > off; ok = c.prev() {
		old = append(old, c.item().extent(obj))
	}

	// NB: when an old extent starts at off, n takes its place in the tree
	// (one replace) instead of a remove and an insert.
	before := x.tree.Len()
	added, removed := 0, 0
	takeover := false
	for i, e := range old {
		eEnd := e.End()
		switch {
		case e.Off < off && eEnd > end:
			// n lies strictly inside e: split e into a head and a tail.
			head, mid, tail := e, e, e
			head.Len = uint32(off - e.Off)
			mid.Off, mid.Len, mid.Skip = off, loc.Length, e.Skip+head.Len
			tail.Off, tail.Len, tail.Skip = end, uint32(eEnd-end), e.Skip+uint32(end-e.Off)
			x.replace(&r, head)
			x.insertNew(&r, tail)
			added++
			old[i] = mid
		case e.Off < off:
			// n covers e's tail.
			head, gone := e, e
			head.Len = uint32(off - e.Off)
			gone.Off, gone.Len, gone.Skip = off, uint32(eEnd-off), e.Skip+head.Len
			x.replace(&r, head)
			old[i] = gone
		case eEnd > end:
			// n covers e's head (e.Off >= off).
			gone, tail := e, e
			gone.Len = uint32(end - e.Off)
			tail.Off, tail.Len, tail.Skip = end, uint32(eEnd-end), e.Skip+gone.Len
			if e.Off == off {
				takeover = true
			} else {
				x.remove(&r, e)
				removed++
			}
			x.insertNew(&r, tail)
			added++
			old[i] = gone
		default:
			// n covers all of e.
			if e.Off == off {
				takeover = true
			} else {
				x.remove(&r, e)
				removed++
			}
		}
		old[i].mustCheck()
	}
	if takeover {
		x.replace(&r, n)
	} else {
		x.insertNew(&r, n)
		added++
	}
	x.tree.store(orig, r)
	if got, want := x.tree.Len(), before+added-removed; got != want {
		panic(fmt.Sprintf("engine: index: Insert %v: tree has %d extents, want %d+%d-%d",
			n, got, before, added, removed))
	}
	x.scratch = old
	return old
}

// replace overwrites the extent of r's object that starts at e.Off with
// e; one must exist.
func (x *Index) replace(r *objRoot, e Extent) {
	e.mustCheck()
	if prev, ok := x.tree.set(r, itemOf(e)); !ok {
		panic(fmt.Sprintf("engine: index: replacing %v: no extent there", e))
	} else if prev.off != e.Off {
		panic(fmt.Sprintf("engine: index: replacing %v: found %v", e, prev.extent(r.id)))
	}
}

// insertNew adds e to r's object; e's start offset must not be in use.
func (x *Index) insertNew(r *objRoot, e Extent) {
	e.mustCheck()
	if prev, ok := x.tree.set(r, itemOf(e)); ok {
		panic(fmt.Sprintf("engine: index: inserting %v: replaced %v", e, prev.extent(r.id)))
	}
}

// remove deletes the extent of r's object that starts at e.Off; one must
// exist.
func (x *Index) remove(r *objRoot, e Extent) {
	if _, ok := x.tree.remove(r, e.Off); !ok {
		panic(fmt.Sprintf("engine: index: deleting %v: not found", e))
	}
}

// Lookup calls fn, in offset order, for each extent of obj overlapping
// [off, off+n), clipped to that range (Off, Len and Skip adjusted). Holes
// get no call. It stops early when fn returns false. If off+n overflows,
// the range runs to the end of the offset space. fn must not modify x.
func (x *Index) Lookup(obj ObjectID, off uint64, n uint64, fn func(Extent) bool) {
	if n == 0 {
		return
	}
	end := off + n
	if end < off {
		end = math.MaxUint64
	}
	r, ok := x.tree.root(obj)
	if !ok {
		return
	}
	// The last extent that starts at or before off may straddle it; in the
	// common case it holds all of [off, end) and one descent is enough.
	var c cursor
	if !c.seekLE(r, off) {
		ok = c.seekGE(r, off)
	} else if c.item().end() <= off {
		ok = c.next()
	}
	for ; ok; ok = c.next() {
		it := c.item()
		if it.off >= end {
			return
		}
		if !fn(clip(it.extent(obj), off, end)) || it.end() >= end {
			return
		}
	}
}

// clip returns the part of e within [off, end), which must overlap e.
func clip(e Extent, off, end uint64) Extent {
	if e.Off < off {
		cut := uint32(off - e.Off)
		e.Off, e.Len, e.Skip = off, e.Len-cut, e.Skip+cut
	}
	if e.End() > end {
		e.Len = uint32(end - e.Off)
	}
	return e
}

// Truncate drops every byte of obj at or beyond size, trimming the extent
// that straddles size, and returns what it dropped, highest offset first.
// The returned slice belongs to x and is valid only until the next Insert,
// Truncate or Delete on x.
func (x *Index) Truncate(obj ObjectID, size uint64) (dropped []Extent) {
	dropped = x.takeScratch()
	r, ok := x.tree.root(obj)
	if !ok {
		x.scratch = dropped
		return dropped
	}
	var c cursor
	ok = c.seekLE(r, math.MaxUint64)
	for ; ok && c.item().end() > size; ok = c.prev() {
		dropped = append(dropped, c.item().extent(obj))
	}
	if !ok && len(dropped) > 0 && dropped[len(dropped)-1].Off >= size {
		// Every extent goes: drop the object whole.
		x.tree.drop(obj, len(dropped))
		x.scratch = dropped
		return dropped
	}
	orig := r
	for i, e := range dropped {
		if e.Off >= size {
			x.remove(&r, e)
			continue
		}
		head, gone := e, e
		head.Len = uint32(size - e.Off)
		gone.Off, gone.Len, gone.Skip = size, e.Len-head.Len, e.Skip+head.Len
		x.replace(&r, head)
		gone.mustCheck()
		dropped[i] = gone
	}
	x.tree.store(orig, r)
	x.scratch = dropped
	return dropped
}

// Delete drops every extent of obj and returns them in offset order. The
// returned slice belongs to x and is valid only until the next Insert,
// Truncate or Delete on x.
func (x *Index) Delete(obj ObjectID) (dropped []Extent) {
	dropped = x.takeScratch()
	r, ok := x.tree.root(obj)
	if !ok {
		x.scratch = dropped
		return dropped
	}
	var c cursor
	for ok := c.seekGE(r, 0); ok; ok = c.next() {
		dropped = append(dropped, c.item().extent(obj))
	}
	x.tree.drop(obj, len(dropped))
	x.scratch = dropped
	return dropped
}

// End returns the end offset of obj's last extent, or 0 and false if obj
// has no extents.
func (x *Index) End(obj ObjectID) (end uint64, ok bool) {
	r, ok := x.tree.root(obj)
	if !ok {
		return 0, false
	}
	var c cursor
	if !c.seekLE(r, math.MaxUint64) {
		return 0, false
	}
	return c.item().end(), true
}

// Clone returns a copy-on-write snapshot of x in O(1): later changes to
// either are invisible to the other. x and the clone may then be used
// from different goroutines, but Clone itself must not run concurrently
// with any other use of x.
func (x *Index) Clone() *Index {
	return &Index{tree: x.tree.Clone()}
}

// Len returns the number of extents in x.
func (x *Index) Len() int { return x.tree.Len() }

// Ascend calls fn for every extent in (object, offset) order until fn
// returns false. fn must not modify x.
func (x *Index) Ascend(fn func(Extent) bool) { x.tree.Ascend(fn) }

// Check walks the whole index and returns an error describing the first
// broken invariant: an extent with Len 0, Skip+Len beyond its record, a
// misaligned record offset, extents out of order, overlapping extents
// of one object, or a broken tree. It costs O(Len()); tests call it after
// every mutation.
func (x *Index) Check() error {
	var (
		prev  Extent
		first = true
	)
	return x.tree.check(func(e Extent) error {
		if err := e.check(); err != nil {
			return err
		}
		if !first {
			switch {
			case !extentLess(prev, e):
				return fmt.Errorf("engine: index: extent %v follows %v: out of order", e, prev)
			case prev.Object == e.Object && prev.End() > e.Off:
				return fmt.Errorf("engine: index: extent %v overlaps %v", e, prev)
			}
		}
		prev, first = e, false
		return nil
	})
}

// Relocate points the parts of obj's [off, off+to.Length) that still live
// in the record at (from.Segment, from.Offset) at the record to instead,
// whose data holds obj's bytes [off, off+to.Length) (Skip = offset - off).
// Parts since overwritten, truncated or deleted are left alone: that is
// what makes a cleaner's copy safe to apply after foreground writes that
// raced with it, and safe to replay. It returns the bytes it moved.
func (x *Index) Relocate(obj ObjectID, off uint64, from Location, to Location) (moved uint64) {
	if to.Length == 0 {
		return 0
	}
	var hits []Extent
	x.Lookup(obj, off, uint64(to.Length), func(e Extent) bool {
		if e.Loc.Segment == from.Segment && e.Loc.Offset == from.Offset {
			hits = append(hits, e)
		}
		return true
	})
	if len(hits) == 0 {
		return 0
	}
	r, _ := x.tree.root(obj)
	orig := r
	for _, e := range hits {
		n := e
		n.Skip = uint32(e.Off - off)
		n.Loc = to
		moved += uint64(e.Len)
		// The hit may be a clipped view of a longer stored extent: cut
		// the stored one around it so only the hit changes records.
		var c cursor
		if c.seekLE(r, e.Off) {
			if s := c.item().extent(obj); s.End() >= e.End() {
				x.splitAround(&r, s, n)
			}
		}
	}
	x.tree.store(orig, r)
	return moved
}

// splitAround replaces the part of stored extent s covered by n (same
// object, n within s) with n, keeping s's head and tail.
func (x *Index) splitAround(r *objRoot, s, n Extent) {
	if s.Off < n.Off {
		head := s
		head.Len = uint32(n.Off - s.Off)
		x.replace(r, head)
		x.insertNew(r, n)
	} else {
		x.replace(r, n)
	}
	if s.End() > n.End() {
		tail := s
		cut := uint32(n.End() - s.Off)
		tail.Off, tail.Len, tail.Skip = n.End(), s.Len-cut, s.Skip+cut
		x.insertNew(r, tail)
	}
}

// load inserts extents decoded from a checkpoint, which the decoder has
// checked to be valid, sorted and disjoint.
func (x *Index) load(exts []Extent) {
	for i := 0; i < len(exts); {
		obj := exts[i].Object
		j := i + 1
		for j < len(exts) && exts[j].Object == obj {
			j++
		}
		r, ok := x.tree.root(obj)
		if !ok {
			exts[i].mustCheck()
			x.tree.create(obj, itemOf(exts[i]))
			r, _ = x.tree.root(obj)
			i++
		}
		orig := r
		for _, e := range exts[i:j] {
			x.insertNew(&r, e)
		}
		x.tree.store(orig, r)
		i = j
	}
}
