package engine

import (
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/google/btree"
)

// This file holds the storage behind an Index: an extentTree, which is an
// ordered set of extents keyed by (Object, Off) with a copy-on-write
// Clone. index.go keeps the extent semantics (overlaps, trimming,
// relocation) on top of it. The layout is drawn in the comment on Index.

// item is an Extent without its Object: what a leaf stores per extent.
type item struct {
	off  uint64
	len  uint32
	skip uint32
	loc  Location
	ver  uint64
}

// itemBytes is the size of an item: 40 bytes, 16 fewer than an Extent.
const itemBytes = int(unsafe.Sizeof(item{}))

const (
	// leafItemsMax is the most items a leaf holds: a full leaf's array
	// is 102*40 = 4080 bytes, in the runtime's 4096-byte size class.
	leafItemsMax = 4096 / itemBytes

	// branchKidsMax is the most children a branch has.
	branchKidsMax = 64

	// treeDepthMax bounds the depth of one object's tree: every branch
	// but the root has at least 2 children (16 with the default limits),
	// so that many levels would need 2^16 leaves at the very least, and
	// 2^61 with the default limits.
	treeDepthMax = 16

	// indexObjectDegree is the google/btree degree of the outer tree of
	// objects, whose items are 32-byte objRoots.
	indexObjectDegree = 32
)

// end returns the offset just past it, off+len.
func (it *item) end() uint64 { return it.off + uint64(it.len) }

// itemOf returns e without its Object.
func itemOf(e Extent) item {
	return item{off: e.Off, len: e.Len, skip: e.Skip, loc: e.Loc, ver: e.Version}
}

// extent returns it as an extent of obj.
func (it *item) extent(obj ObjectID) Extent {
	return Extent{Object: obj, Off: it.off, Len: it.len, Skip: it.skip, Loc: it.loc, Version: it.ver}
}

// leaf holds 1..leafMax items of one object in offset order (an object's
// root leaf may be empty for the length of one operation).
//
// Invariant: len(items) <= cap(items) <= leafMax. The capacity follows
// the fill (see newItems), so a half-full leaf does not cost a full one.
type leaf struct {
	gen   uint64 // the extentTree generation that may modify it in place
	items []item
}

// branch is an inner node of one object's tree: children leaves (when
// leaves is not nil) or branches, and their separators.
//
// Invariants: len(keys) == len(kids or leaves) <= branchMax; keys[0] is
// 0 and unused; keys[1:] ascend strictly, and every item under child i
// has keys[i] <= Off < keys[i+1] (for i > 0 and i+1 < len(keys)). A
// branch other than an object's root has at least branchMin children, a
// root at least 2. All leaves of an object are at the same depth.
type branch struct {
	gen    uint64
	keys   []uint64
	leaves []*leaf
	kids   []*branch
}

// objRoot is the outer tree's item: an object and the root of its tree,
// a leaf or a branch (exactly one of the two is set).
type objRoot struct {
	id   ObjectID
	leaf *leaf
	br   *branch
}

func objRootLess(a, b objRoot) bool { return objectLess(a.id, b.id) }

// treeGens hands out extentTree generations. A tree modifies a node in
// place only if the node carries the tree's generation; Clone gives both
// trees new ones, so every node that existed before is then shared and
// copied before it is modified.
var treeGens atomic.Uint64

// extentTree is an ordered set of extents keyed by (Object, Off): a
// google/btree of objects, each with its own B+tree of items. Every
// method but Clone works on one tree from one goroutine; after Clone the
// two trees share nodes that neither modifies.
type extentTree struct {
	objs *btree.BTreeG[objRoot]
	gen  uint64
	n    int // items in all objects

	// leafMax and branchMax are the most items of a leaf and children of
	// a branch: leafItemsMax and branchKidsMax, but for tests of the
	// tree's shapes. Invariant: leafMax >= 2, branchMax >= 4.
	leafMax, branchMax int
}

// newExtentTree returns an empty tree whose leaves hold up to leafMax
// items and branches have up to branchMax children.
func newExtentTree(leafMax, branchMax int) *extentTree {
	if leafMax < 2 || leafMax > leafItemsMax || branchMax < 4 {
		panic(fmt.Sprintf("engine: index: leaves of %d items, branches of %d children", leafMax, branchMax))
	}
	return &extentTree{objs: btree.NewG(indexObjectDegree, objRootLess), gen: treeGens.Add(1),
		leafMax: leafMax, branchMax: branchMax}
}

// Clone returns a copy-on-write copy of t in O(1).
func (t *extentTree) Clone() *extentTree {
	c := *t
	c.objs, c.gen = t.objs.Clone(), treeGens.Add(1)
	t.gen = treeGens.Add(1)
	return &c
}

// leafMin is the fill below which a leaf that lost items is merged with
// a sibling or takes some of its items. It is not an invariant: a leaf
// split off by an append starts with one item.
func (t *extentTree) leafMin() int { return max(t.leafMax/4, 1) }

// branchMin is the fewest children of a branch other than a root.
func (t *extentTree) branchMin() int { return max(t.branchMax/4, 2) }

// Len returns the number of extents in t.
func (t *extentTree) Len() int { return t.n }

// root returns obj's root, if t holds extents of obj.
func (t *extentTree) root(obj ObjectID) (objRoot, bool) {
	return t.objs.Get(objRoot{id: obj})
}

// create adds obj, which t must not hold, with the one extent it.
func (t *extentTree) create(obj ObjectID, it item) {
	l := &leaf{gen: t.gen, items: append(t.newItems(1), it)}
	if _, ok := t.objs.ReplaceOrInsert(objRoot{id: obj, leaf: l}); ok {
		panic(fmt.Sprintf("engine: index: creating %v: object exists", obj))
	}
	t.n++
}

// store writes r back to the outer tree after the operations on it that
// began with orig: it drops the object if it has no extents left, and
// records a new root.
func (t *extentTree) store(orig, r objRoot) {
	switch {
	case r.leaf != nil && len(r.leaf.items) == 0:
		t.objs.Delete(r)
	case r != orig:
		t.objs.ReplaceOrInsert(r)
	}
}

// drop removes obj and the n extents it holds.
func (t *extentTree) drop(obj ObjectID, n int) {
	if _, ok := t.objs.Delete(objRoot{id: obj}); !ok {
		panic(fmt.Sprintf("engine: index: dropping %v: no such object", obj))
	}
	t.n -= n
}

// newItems returns an empty slice with room for at least want items, at
// most t.leafMax.
//
// NB: growing a nil slice by want rounds the capacity up to the size
// class of the allocation, so the room the runtime allocates anyway is
// used.
func (t *extentTree) newItems(want int) []item {
	if want > t.leafMax {
		panic(fmt.Sprintf("engine: index: leaf array of %d items, limit %d", want, t.leafMax))
	}
	s := slices.Grow([]item(nil), want)
	return s[:0:min(cap(s), t.leafMax)]
}

// roomy returns the capacity a leaf of n items gets when it is
// reallocated: a quarter more, so that a run of inserts does not
// reallocate each time.
func (t *extentTree) roomy(n int) int { return min(n+n/4+1, t.leafMax) }

// resize moves items to a new array with room for want (>= len(items)).
func (t *extentTree) resize(items []item, want int) []item {
	return append(t.newItems(want), items...)
}

// cloneLeaf returns a copy of l that t owns.
func (t *extentTree) cloneLeaf(l *leaf) *leaf {
	return &leaf{gen: t.gen, items: t.resize(l.items, len(l.items))}
}

// cloneBranch returns a copy of b that t owns.
func (t *extentTree) cloneBranch(b *branch) *branch {
	c := &branch{gen: t.gen, keys: slices.Clone(b.keys)}
	if b.leaves != nil {
		c.leaves = slices.Clone(b.leaves)
	} else {
		c.kids = slices.Clone(b.kids)
	}
	return c
}

// search returns the index of the first item at or after off, and
// whether that item starts at off.
func (l *leaf) search(off uint64) (int, bool) {
	lo, hi := 0, len(l.items)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if l.items[m].off < off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(l.items) && l.items[lo].off == off
}

// find returns the child whose range holds off.
func (b *branch) find(off uint64) int {
	lo, hi := 1, len(b.keys)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b.keys[m] <= off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

func (b *branch) len() int { return len(b.keys) }

// pathElem is a branch on the way from a root to a leaf, and the child
// taken.
type pathElem struct {
	b *branch
	i int
}

// cursor is a position in one object's tree, for reading: the leaf, the
// item in it, and the branches above. It is invalid (l is nil) once it
// has moved past either end. A cursor must not be used after the tree
// changes.
type cursor struct {
	path  [treeDepthMax]pathElem
	depth int
	l     *leaf
	i     int
}

// descend walks from r's root to the leaf whose range holds off.
func (c *cursor) descend(r objRoot, off uint64) {
	c.depth = 0
	if r.br == nil {
		c.l = r.leaf
		return
	}
	b := r.br
	for {
		i := b.find(off)
		c.push(b, i)
		if b.leaves != nil {
			c.l = b.leaves[i]
			return
		}
		b = b.kids[i]
	}
}

func (c *cursor) push(b *branch, i int) {
	if c.depth == treeDepthMax {
		panic(fmt.Sprintf("engine: index: tree deeper than %d levels", treeDepthMax))
	}
	c.path[c.depth] = pathElem{b, i}
	c.depth++
}

// seekLE moves c to the last item that starts at or before off; false if
// there is none.
func (c *cursor) seekLE(r objRoot, off uint64) bool {
	c.descend(r, off)
	i, found := c.l.search(off)
	if found {
		c.i = i
		return true
	}
	c.i = i
	return c.prev()
}

// seekGE moves c to the first item that starts at or after off; false if
// there is none.
func (c *cursor) seekGE(r objRoot, off uint64) bool {
	c.descend(r, off)
	c.i, _ = c.l.search(off)
	if c.i < len(c.l.items) {
		return true
	}
	c.i = len(c.l.items) - 1
	return c.next()
}

// item returns the item c is at; c must be valid.
func (c *cursor) item() *item { return &c.l.items[c.i] }

// next moves c to the following item; false if there is none.
func (c *cursor) next() bool {
	if c.i+1 < len(c.l.items) {
		c.i++
		return true
	}
	for d := c.depth - 1; d >= 0; d-- {
		e := &c.path[d]
		if e.i+1 == e.b.len() {
			continue
		}
		e.i++
		c.depth = d + 1
		b := e.b
		for b.leaves == nil {
			b = b.kids[c.path[c.depth-1].i]
			c.push(b, 0)
		}
		c.l, c.i = b.leaves[c.path[c.depth-1].i], 0
		return true
	}
	c.l = nil
	return false
}

// prev moves c to the item before; false if there is none.
func (c *cursor) prev() bool {
	if c.i > 0 {
		c.i--
		return true
	}
	for d := c.depth - 1; d >= 0; d-- {
		e := &c.path[d]
		if e.i == 0 {
			continue
		}
		e.i--
		c.depth = d + 1
		b := e.b
		for b.leaves == nil {
			b = b.kids[c.path[c.depth-1].i]
			c.push(b, b.len()-1)
		}
		c.l = b.leaves[c.path[c.depth-1].i]
		c.i = len(c.l.items) - 1
		return true
	}
	c.l = nil
	return false
}

// mutPath is the path of a modification: every branch on it, and the
// leaf below, belong to the tree modifying it.
type mutPath struct {
	elems [treeDepthMax]pathElem
	depth int
}

// descendMut walks from r's root to the leaf whose range holds off,
// copying every node on the way that t does not own (and r's root), and
// records the path in p.
func (t *extentTree) descendMut(r *objRoot, off uint64, p *mutPath) *leaf {
	p.depth = 0
	if r.br == nil {
		if r.leaf.gen != t.gen {
			r.leaf = t.cloneLeaf(r.leaf)
		}
		return r.leaf
	}
	if r.br.gen != t.gen {
		r.br = t.cloneBranch(r.br)
	}
	b := r.br
	for {
		i := b.find(off)
		if p.depth == treeDepthMax {
			panic(fmt.Sprintf("engine: index: tree deeper than %d levels", treeDepthMax))
		}
		p.elems[p.depth] = pathElem{b, i}
		p.depth++
		if b.leaves != nil {
			return t.ownLeaf(b, i)
		}
		b = t.ownBranch(b, i)
	}
}

// ownLeaf returns b's child leaf i, copied first if t does not own it.
// b must belong to t.
func (t *extentTree) ownLeaf(b *branch, i int) *leaf {
	l := b.leaves[i]
	if l.gen != t.gen {
		l = t.cloneLeaf(l)
		b.leaves[i] = l
	}
	return l
}

// ownBranch returns b's child branch i, copied first if t does not own
// it. b must belong to t.
func (t *extentTree) ownBranch(b *branch, i int) *branch {
	k := b.kids[i]
	if k.gen != t.gen {
		k = t.cloneBranch(k)
		b.kids[i] = k
	}
	return k
}

// set stores it in r's tree, replacing the item that starts at it.off if
// there is one.
func (t *extentTree) set(r *objRoot, it item) (old item, replaced bool) {
	var p mutPath
	l := t.descendMut(r, it.off, &p)
	i, found := l.search(it.off)
	if found {
		old, l.items[i] = l.items[i], it
		return old, true
	}
	t.insertAt(r, &p, l, i, it)
	t.n++
	return item{}, false
}

// remove deletes the item of r's tree that starts at off, if any.
func (t *extentTree) remove(r *objRoot, off uint64) (old item, ok bool) {
	var p mutPath
	l := t.descendMut(r, off, &p)
	i, found := l.search(off)
	if !found {
		return item{}, false
	}
	old = l.items[i]
	l.items = slices.Delete(l.items, i, i+1)
	t.n--
	t.leafShrank(r, &p, l)
	return old, true
}

// insertAt inserts it at index i of leaf l, the end of path p.
func (t *extentTree) insertAt(r *objRoot, p *mutPath, l *leaf, i int, it item) {
	n := len(l.items)
	if n < cap(l.items) {
		l.items = slices.Insert(l.items, i, it)
		return
	}
	if n < t.leafMax {
		want := t.roomy(n)
		if i == n {
			// Appends double, reallocating a leaf a few times
			// before it is full.
			want = min(max(2*n, 1), t.leafMax)
		}
		l.items = slices.Insert(t.resize(l.items, want), i, it)
		return
	}
	var right *leaf
	if i == n {
		// Past the end of a full leaf, as when an object is written
		// front to back: l stays full and the new leaf starts with it.
		right = &leaf{gen: t.gen, items: append(t.newItems(1), it)}
	} else {
		m := (n + 1) / 2
		right = &leaf{gen: t.gen, items: append(t.newItems(t.roomy(n-m)), l.items[m:]...)}
		l.items = t.resize(l.items[:m], t.roomy(m))
		if i <= m {
			l.items = slices.Insert(l.items, i, it)
		} else {
			right.items = slices.Insert(right.items, i-m, it)
		}
	}
	t.addLeaf(r, p, right)
}

// addLeaf puts leaf right into the tree just after the leaf at the end
// of path p, splitting branches that overflow.
func (t *extentTree) addLeaf(r *objRoot, p *mutPath, right *leaf) {
	sep := right.items[0].off
	if p.depth == 0 {
		r.br = &branch{gen: t.gen, keys: []uint64{0, sep}, leaves: []*leaf{r.leaf, right}}
		r.leaf = nil
		return
	}
	e := p.elems[p.depth-1]
	e.b.keys = slices.Insert(e.b.keys, e.i+1, sep)
	e.b.leaves = slices.Insert(e.b.leaves, e.i+1, right)
	if e.b.len() > t.branchMax {
		t.splitBranch(r, p, p.depth-1)
	}
}

// splitBranch splits the branch at depth d of p, which has one child too
// many, into two halves.
func (t *extentTree) splitBranch(r *objRoot, p *mutPath, d int) {
	b := p.elems[d].b
	m := b.len() / 2
	nb := &branch{gen: t.gen, keys: slices.Clone(b.keys[m:])}
	sep := nb.keys[0]
	nb.keys[0] = 0
	b.keys = b.keys[:m]
	if b.leaves != nil {
		nb.leaves = slices.Clone(b.leaves[m:])
		clear(b.leaves[m:])
		b.leaves = b.leaves[:m]
	} else {
		nb.kids = slices.Clone(b.kids[m:])
		clear(b.kids[m:])
		b.kids = b.kids[:m]
	}
	if d == 0 {
		r.br = &branch{gen: t.gen, keys: []uint64{0, sep}, kids: []*branch{b, nb}}
		return
	}
	e := p.elems[d-1]
	e.b.keys = slices.Insert(e.b.keys, e.i+1, sep)
	e.b.kids = slices.Insert(e.b.kids, e.i+1, nb)
	if e.b.len() > t.branchMax {
		t.splitBranch(r, p, d-1)
	}
}

// leafShrank restores the invariants after leaf l, the end of path p,
// lost an item: it drops or refills a leaf that has become small and
// gives a leaf whose array is mostly empty a smaller one.
func (t *extentTree) leafShrank(r *objRoot, p *mutPath, l *leaf) {
	if p.depth == 0 || len(l.items) >= t.leafMin() {
		t.fitItems(l)
		return
	}
	e := p.elems[p.depth-1]
	li := e.i - 1
	if e.i == 0 {
		li = 0
	}
	left, right := t.ownLeaf(e.b, li), t.ownLeaf(e.b, li+1)
	nl, nr := len(left.items), len(right.items)
	if nl+nr <= t.leafMax {
		if cap(left.items) < nl+nr {
			left.items = t.resize(left.items, nl+nr)
		}
		left.items = append(left.items, right.items...)
		e.b.keys = slices.Delete(e.b.keys, li+1, li+2)
		e.b.leaves = slices.Delete(e.b.leaves, li+1, li+2)
		t.fitItems(left)
		t.branchShrank(r, p, p.depth-1)
		return
	}
	// Share the items of both evenly; each gets at least leafMax/2.
	half := (nl + nr) / 2
	if nl < half {
		k := half - nl
		if cap(left.items) < half {
			left.items = t.resize(left.items, t.roomy(half))
		}
		left.items = append(left.items, right.items[:k]...)
		right.items = slices.Delete(right.items, 0, k)
	} else {
		k := nl - half
		if cap(right.items) < nr+k {
			right.items = t.resize(right.items, t.roomy(nr+k))
		}
		right.items = slices.Insert(right.items, 0, left.items[half:]...)
		left.items = left.items[:half]
	}
	t.fitItems(left)
	t.fitItems(right)
	e.b.keys[li+1] = right.items[0].off
}

// fitItems gives l a smaller array when most of its own is empty.
func (t *extentTree) fitItems(l *leaf) {
	if n := len(l.items); n > 0 && cap(l.items) > 4 && 2*n < cap(l.items) {
		l.items = t.resize(l.items, t.roomy(n))
	}
}

// branchShrank restores the invariants after the branch at depth d of
// p lost a child: a root with one child gives way to it, and a branch
// with fewer than branchMin children is merged with a sibling or takes
// some of its children.
func (t *extentTree) branchShrank(r *objRoot, p *mutPath, d int) {
	b := p.elems[d].b
	if d == 0 {
		if b.len() == 1 {
			r.br = nil
			if b.leaves != nil {
				r.leaf = b.leaves[0]
			} else {
				r.br = b.kids[0]
			}
		}
		return
	}
	if b.len() >= t.branchMin() {
		return
	}
	e := p.elems[d-1]
	li := e.i - 1
	if e.i == 0 {
		li = 0
	}
	left, right := t.ownBranch(e.b, li), t.ownBranch(e.b, li+1)
	sep := e.b.keys[li+1]
	nl, nr := left.len(), right.len()
	if nl+nr <= t.branchMax {
		left.keys = append(append(left.keys, sep), right.keys[1:]...)
		left.leaves = append(left.leaves, right.leaves...)
		left.kids = append(left.kids, right.kids...)
		e.b.keys = slices.Delete(e.b.keys, li+1, li+2)
		e.b.kids = slices.Delete(e.b.kids, li+1, li+2)
		t.branchShrank(r, p, d-1)
		return
	}
	// Share the children evenly, rotating the separator through the
	// parent; each gets at least branchMax/2.
	half := (nl + nr) / 2
	if nl < half {
		k := half - nl
		left.keys = append(append(left.keys, sep), right.keys[1:k]...)
		e.b.keys[li+1] = right.keys[k]
		right.keys = slices.Delete(right.keys, 0, k)
		right.keys[0] = 0
		if left.leaves != nil {
			left.leaves = append(left.leaves, right.leaves[:k]...)
			right.leaves = slices.Delete(right.leaves, 0, k)
		} else {
			left.kids = append(left.kids, right.kids[:k]...)
			right.kids = slices.Delete(right.kids, 0, k)
		}
	} else {
		right.keys[0] = sep
		right.keys = slices.Insert(right.keys, 0, left.keys[half:]...)
		e.b.keys[li+1] = right.keys[0]
		right.keys[0] = 0
		left.keys = left.keys[:half]
		if left.leaves != nil {
			right.leaves = slices.Insert(right.leaves, 0, left.leaves[half:]...)
			clear(left.leaves[half:])
			left.leaves = left.leaves[:half]
		} else {
			right.kids = slices.Insert(right.kids, 0, left.kids[half:]...)
			clear(left.kids[half:])
			left.kids = left.kids[:half]
		}
	}
}

// ReplaceOrInsert stores e, replacing the extent of e.Object that starts
// at e.Off if there is one, and returns the one it replaced. It checks
// nothing about e: tests use it to plant broken extents for Check.
func (t *extentTree) ReplaceOrInsert(e Extent) (Extent, bool) {
	r, ok := t.root(e.Object)
	if !ok {
		t.create(e.Object, itemOf(e))
		return Extent{}, false
	}
	orig := r
	old, replaced := t.set(&r, itemOf(e))
	t.store(orig, r)
	if !replaced {
		return Extent{}, false
	}
	return old.extent(e.Object), true
}

// AscendGreaterOrEqual calls fn for every extent at or after pivot's
// (Object, Off), in order, until fn returns false. fn must not modify t.
func (t *extentTree) AscendGreaterOrEqual(pivot Extent, fn func(Extent) bool) {
	t.objs.AscendGreaterOrEqual(objRoot{id: pivot.Object}, func(r objRoot) bool {
		from := uint64(0)
		if r.id == pivot.Object {
			from = pivot.Off
		}
		var c cursor
		for ok := c.seekGE(r, from); ok; ok = c.next() {
			if !fn(c.item().extent(r.id)) {
				return false
			}
		}
		return true
	})
}

// Ascend calls fn for every extent in (Object, Off) order until fn
// returns false. fn must not modify t.
func (t *extentTree) Ascend(fn func(Extent) bool) {
	t.AscendGreaterOrEqual(Extent{}, fn)
}

// check verifies the structure of t (see leaf and branch), calling
// visit for every extent in order; it returns the first error, of the
// structure or from visit.
func (t *extentTree) check(visit func(e Extent) error) error {
	var (
		err   error
		prev  ObjectID
		first = true
		count int
	)
	t.objs.Ascend(func(r objRoot) bool {
		switch {
		case !first && !objRootLess(objRoot{id: prev}, r):
			err = fmt.Errorf("engine: index: object %v follows %v: out of order", r.id, prev)
		case (r.leaf == nil) == (r.br == nil):
			err = fmt.Errorf("engine: index: object %v: root leaf %p, root branch %p: want exactly one", r.id, r.leaf, r.br)
		case r.leaf != nil && len(r.leaf.items) == 0:
			err = fmt.Errorf("engine: index: object %v has no extents", r.id)
		}
		if err != nil {
			return false
		}
		prev, first = r.id, false
		w := treeWalk{t: t, obj: r.id, visit: visit, leafDepth: -1}
		if r.leaf != nil {
			err = w.leaf(r.leaf, 0, 0, math.MaxUint64)
		} else {
			err = w.branch(r.br, 0, 0, math.MaxUint64, true)
		}
		count += w.count
		return err == nil
	})
	if err == nil && count != t.n {
		err = fmt.Errorf("engine: index: walked %d extents, Len says %d", count, t.n)
	}
	return err
}

// treeWalk is check's walk of one object's tree.
type treeWalk struct {
	t         *extentTree
	obj       ObjectID
	visit     func(Extent) error
	leafDepth int
	count     int
}

// leaf checks l, at depth d, whose items must start in [lo, hi].
func (w *treeWalk) leaf(l *leaf, d int, lo, hi uint64) error {
	if w.leafDepth == -1 {
		w.leafDepth = d
	} else if d != w.leafDepth {
		return fmt.Errorf("engine: index: object %v: leaf at depth %d, another at %d", w.obj, d, w.leafDepth)
	}
	if n, c := len(l.items), cap(l.items); n == 0 || c > w.t.leafMax {
		return fmt.Errorf("engine: index: object %v: leaf of %d items, capacity %d, want 1..%d", w.obj, n, c, w.t.leafMax)
	}
	for i := range l.items {
		it := &l.items[i]
		if it.off < lo || it.off > hi {
			return fmt.Errorf("engine: index: object %v: extent at %d outside its leaf's range [%d,%d]", w.obj, it.off, lo, hi)
		}
		w.count++
		if err := w.visit(it.extent(w.obj)); err != nil {
			return err
		}
	}
	return nil
}

// branch checks b, at depth d, whose items must start in [lo, hi].
func (w *treeWalk) branch(b *branch, d int, lo, hi uint64, root bool) error {
	n := b.len()
	switch {
	case d >= treeDepthMax:
		return fmt.Errorf("engine: index: object %v: branch at depth %d", w.obj, d)
	case (b.leaves == nil) == (b.kids == nil):
		return fmt.Errorf("engine: index: object %v: branch with %d leaves and %d branches", w.obj, len(b.leaves), len(b.kids))
	case len(b.leaves)+len(b.kids) != n:
		return fmt.Errorf("engine: index: object %v: branch with %d keys and %d children", w.obj, n, len(b.leaves)+len(b.kids))
	case n > w.t.branchMax || root && n < 2 || !root && n < w.t.branchMin():
		return fmt.Errorf("engine: index: object %v: branch with %d children, want %d..%d (root %v)",
			w.obj, n, w.t.branchMin(), w.t.branchMax, root)
	case b.keys[0] != 0:
		return fmt.Errorf("engine: index: object %v: branch key 0 is %d, want 0", w.obj, b.keys[0])
	}
	for i := range n {
		klo, khi := lo, hi
		if i > 0 {
			klo = b.keys[i]
		}
		if i+1 < n {
			// Child i holds an item at or above klo.
			if b.keys[i+1] <= klo || b.keys[i+1] > hi {
				return fmt.Errorf("engine: index: object %v: branch keys %v out of order or outside [%d,%d]", w.obj, b.keys, lo, hi)
			}
			khi = b.keys[i+1] - 1
		}
		var err error
		if b.leaves != nil {
			err = w.leaf(b.leaves[i], d+1, klo, khi)
		} else {
			err = w.branch(b.kids[i], d+1, klo, khi, false)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
