package engine

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/btree"
	"github.com/ncw/directio"
)

// ErrSnapshotExists and ErrNoSnapshot are returned by Snapshot and
// OpenSnapshot.
var (
	ErrSnapshotExists = errors.New("engine: snapshot name in use")
	ErrNoSnapshot     = errors.New("engine: no such snapshot")
)

// snapshotNameMax is the longest snapshot name, in bytes.
const snapshotNameMax = ckptNameMax

// Snapshot is a read-only, point-in-time view of every object: a
// copy-on-write clone of each shard's index and object table, plus a pin
// on every segment the clone references, so the cleaner never frees or
// moves what it reads. Snapshots survive restarts (they are part of every
// checkpoint) until released.
//
// Each shard takes its clone when the snapshot request reaches it, after
// every request submitted to it before; a write that completed before
// Snapshot was called is in the snapshot.
type Snapshot struct {
	e       *Engine
	id      uint64
	name    string
	created time.Time
	parts   []*shardSnap

	mu       sync.RWMutex // held shared by reads, exclusively by Release
	released bool
}

// SnapshotInfo describes a snapshot.
type SnapshotInfo struct {
	ID      uint64
	Name    string
	Created time.Time
	Objects int
	Extents int
}

// Snapshot takes a snapshot named name ("" picks "snap-ID") and returns
// once it is durable.
func (e *Engine) Snapshot(name string) (*Snapshot, error) {
	if len(name) > snapshotNameMax || !utf8.ValidString(name) || strings.ContainsRune(name, 0) {
		return nil, fmt.Errorf("%w: snapshot name %q: want at most %d bytes of UTF-8 without NUL", ErrInvalid, name, snapshotNameMax)
	}
	e.snapMu.Lock()
	e.nextSnap++
	id := e.nextSnap
	if name == "" {
		name = fmt.Sprintf("snap-%d", id)
	}
	for _, sn := range e.snaps {
		if sn.name == name {
			e.snapMu.Unlock()
			return nil, fmt.Errorf("%w: %q", ErrSnapshotExists, name)
		}
	}
	sn := &Snapshot{e: e, id: id, name: name, created: time.Now().UTC()}
	e.snaps[id] = sn // reserves the name; parts are filled below
	e.snapMu.Unlock()

	outs, err := e.broadcast(func() *Request { return &Request{Op: opSnapshot, PGSeq: id} })
	for _, o := range outs {
		if p, ok := o.(*shardSnap); ok {
			sn.parts = append(sn.parts, p)
		}
	}
	if err == nil {
		err = e.checkpoint()
	}
	if err != nil {
		e.dropSnapshot(sn)
		return nil, fmt.Errorf("engine: snapshot %q: %w", name, err)
	}
	return sn, nil
}

// Snapshots lists the snapshots, oldest first.
func (e *Engine) Snapshots() []SnapshotInfo {
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	var out []SnapshotInfo
	for _, sn := range e.snaps {
		if len(sn.parts) != len(e.shards) {
			continue
		}
		out = append(out, sn.Info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// OpenSnapshot returns the snapshot named name.
func (e *Engine) OpenSnapshot(name string) (*Snapshot, error) {
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	for _, sn := range e.snaps {
		if sn.name == name && len(sn.parts) == len(e.shards) {
			return sn, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrNoSnapshot, name)
}

// Info describes sn.
func (sn *Snapshot) Info() SnapshotInfo {
	in := SnapshotInfo{ID: sn.id, Name: sn.name, Created: sn.created}
	for _, p := range sn.parts {
		in.Objects += p.objs.Len()
		in.Extents += p.idx.Len()
	}
	return in
}

// Name returns the snapshot's name.
func (sn *Snapshot) Name() string { return sn.name }

// Release drops the snapshot; the space only it referenced becomes
// reclaimable once the next checkpoint (written before Release returns)
// no longer lists it.
func (sn *Snapshot) Release() error {
	sn.mu.Lock()
	if sn.released {
		sn.mu.Unlock()
		return fmt.Errorf("%w: %q already released", ErrNoSnapshot, sn.name)
	}
	sn.released = true
	sn.mu.Unlock()
	if err := sn.e.dropSnapshot(sn); err != nil {
		return err
	}
	return sn.e.checkpoint()
}

func (e *Engine) dropSnapshot(sn *Snapshot) error {
	e.snapMu.Lock()
	delete(e.snaps, sn.id)
	e.snapMu.Unlock()
	_, err := e.broadcast(func() *Request { return &Request{Op: opRelease, PGSeq: sn.id} })
	return err
}

func (sn *Snapshot) part(obj ObjectID) *shardSnap {
	return sn.parts[sn.e.shardOf(obj).id]
}

// Stat returns obj's state in the snapshot, as Engine.Stat does (a
// deleted object fails with ErrNotFound and returns its tombstone).
func (sn *Snapshot) Stat(obj ObjectID) (ObjectState, error) {
	sn.mu.RLock()
	defer sn.mu.RUnlock()
	if sn.released {
		return ObjectState{}, fmt.Errorf("%w: %q was released", ErrNoSnapshot, sn.name)
	}
	st, ok := sn.part(obj).objs.Get(ObjectState{ID: obj})
	if !ok || st.Deleted {
		return st, fmt.Errorf("%w: %v in snapshot %q", ErrNotFound, obj, sn.name)
	}
	return st, nil
}

// Read reads obj as it was when the snapshot was taken, with the same
// semantics as Engine.Read. It reads synchronously on the caller's
// goroutine; snapshots are not on the reactors' data path.
func (sn *Snapshot) Read(obj ObjectID, off uint64, p []byte) (int, error) {
	sn.mu.RLock()
	defer sn.mu.RUnlock()
	if sn.released {
		return 0, fmt.Errorf("%w: %q was released", ErrNoSnapshot, sn.name)
	}
	part := sn.part(obj)
	st, ok := part.objs.Get(ObjectState{ID: obj})
	if !ok || st.Deleted {
		return 0, fmt.Errorf("%w: %v in snapshot %q", ErrNotFound, obj, sn.name)
	}
	if off >= st.Size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := min(uint64(len(p)), st.Size-off)
	clear(p[:n])
	var err error
	var buf []byte
	part.idx.Lookup(obj, off, n, func(x Extent) bool {
		size := int(dataBlocksFor(x.Loc.Length)) * 4096
		if cap(buf) < size {
			buf = directio.AlignedBlock(max(size, scratchRecordBytes))
		}
		rec := buf[:size]
		devOff := int64(sn.e.sb.SegmentsOffset) + int64(x.Loc.Segment)*int64(sn.e.sb.SegmentSize) + int64(x.Loc.Offset)
		if _, rerr := sn.e.dev.File.ReadAt(rec, devOff); rerr != nil {
			err = fmt.Errorf("engine: snapshot %q: reading %v at device offset %d: %w", sn.name, obj, devOff, rerr)
			return false
		}
		if got := crc32.Checksum(rec[:x.Loc.Length], castagnoli); got != x.Loc.CRC {
			err = fmt.Errorf("%w: snapshot %q: %v bytes [%d,%d): record at segment %d offset %d has checksum %#08x, index says %#08x",
				ErrCorrupt, sn.name, obj, x.Off, x.End(), x.Loc.Segment, x.Loc.Offset, got, x.Loc.CRC)
			return false
		}
		copy(p[x.Off-off:x.End()-off], rec[x.Skip:x.Skip+x.Len])
		return true
	})
	if err != nil {
		return 0, err
	}
	if n < uint64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// snapshot clones the shard's state for snapshot r.PGSeq and pins the
// segments the clone references.
func (s *shard) snapshot(r *Request) {
	sn := &shardSnap{idx: s.idx.Clone(), objs: s.objs.Clone()}
	s.pinAll(sn)
	s.snaps[r.PGSeq] = sn
	r.shardOut = sn
	s.complete(r, nil)
}

// pinAll pins every segment sn's index references.
func (s *shard) pinAll(sn *shardSnap) {
	pins, err := s.segmentsOf(sn.idx, nil)
	if err != nil {
		// The live index only points into segments the shard owns.
		panic(err)
	}
	sn.pins = pins
	for _, seg := range sn.pins {
		s.segs[seg].pins++
	}
}

func (s *shard) release(r *Request) {
	sn := s.snaps[r.PGSeq]
	if sn != nil {
		delete(s.snaps, r.PGSeq)
		for _, seg := range sn.pins {
			if st := s.segs[seg]; st != nil {
				st.pins--
				s.maybeFree(seg)
			}
		}
	}
	s.complete(r, nil)
}

func newObjTree() *btree.BTreeG[ObjectState] { return btree.NewG(32, objStateLess) }
