package engine

import (
	"fmt"
	"hash/crc32"
	"sort"
	"time"

	"github.com/ncw/directio"
)

// recoveryWindow is how much of a segment recovery reads at once.
const recoveryWindow = 16 << 20

// segHeaderInfo is what recovery learned from one segment's header.
type segHeaderInfo struct {
	valid bool
	shard uint32
	gen   uint64
}

// replaySeg is one segment a shard must replay, from pos.
type replaySeg struct {
	seg uint32
	gen uint64
	pos uint32
}

// recover rebuilds every shard's state: the newest checkpoint, then the
// records logged after it (see the package doc, Recovery). It runs before
// the reactors start, on the caller's goroutine.
func (e *Engine) recover() error {
	sb := e.sb
	f := e.dev.File
	c, slot, err := readCheckpoint(f, sb)
	if err != nil {
		return fmt.Errorf("engine: recovery: %w", err)
	}
	nshards := len(e.shards)
	e.alloc.nextGen = 1
	if c != nil {
		if len(c.Shards) != nshards {
			return fmt.Errorf("engine: %s was last used with %d shards; open it with Shards=%d (changing the shard count of a device is not supported yet)", e.opts.Path, len(c.Shards), len(c.Shards))
		}
		e.recovery.CheckpointSeq = c.Seq
		e.ckptSeq, e.ckptSlot = c.Seq, 1-slot
		e.nextSnap = max(c.NextSnap, 1) - 1
		e.alloc.nextGen = c.NextGen
	}

	// Every segment header: which segments hold records, of which shard
	// and generation.
	hdrs := make([]segHeaderInfo, sb.SegmentCount)
	blk := directio.AlignedBlock(segHeaderSize)
	for i := range hdrs {
		off := int64(sb.SegmentsOffset) + int64(i)*int64(sb.SegmentSize)
		if _, err := f.ReadAt(blk, off); err != nil {
			return fmt.Errorf("engine: recovery: reading segment %d header at offset %d: %w", i, off, err)
		}
		h, ok, err := DecodeSegmentHeader(blk)
		// A damaged header is a torn first write of a segment (its header
		// goes out with its first batch); the segment holds nothing then.
		if err == nil && ok && h.Device == sb.UUID && h.Index == uint32(i) {
			hdrs[i] = segHeaderInfo{valid: true, shard: h.Shard, gen: h.Generation}
			if h.Generation >= e.alloc.nextGen {
				e.alloc.nextGen = h.Generation + 1
			}
		}
	}
	e.recovery.SegmentsScanned = len(hdrs)

	owned := make(map[uint32]bool)
	replays := make([][]replaySeg, nshards)
	// Segments the checkpoint lists are the shard's if their header still
	// carries the listed generation; the open one is replayed from the
	// checkpoint's position.
	if c != nil {
		for i := range c.Shards {
			cs := &c.Shards[i]
			s := e.shards[i]
			s.loadState(cs)
			for _, ref := range cs.Segments {
				h := hdrs[ref.Index]
				if !h.valid || h.gen != ref.Gen || h.shard != uint32(i) {
					continue
				}
				owned[ref.Index] = true
				s.segs[ref.Index] = &segState{gen: ref.Gen, closed: true, durableFree: ref.Index != cs.OpenSegment}
				if ref.Index == cs.OpenSegment {
					replays[i] = append(replays[i], replaySeg{seg: ref.Index, gen: ref.Gen, pos: max(cs.OpenPos, segHeaderSize)})
				}
			}
			s.batchSeq = cs.NextBatchSeq
			s.openGen = cs.OpenGen
		}
	}
	// Any other segment whose header is newer than its shard's open
	// segment at the checkpoint was opened after the checkpoint: replay
	// it whole. Older ones were freed before the checkpoint.
	for i, h := range hdrs {
		if !h.valid || owned[uint32(i)] {
			continue
		}
		if c != nil && int(h.shard) < nshards && h.gen <= c.Shards[h.shard].OpenGen {
			continue
		}
		if int(h.shard) >= nshards {
			return fmt.Errorf("engine: %s holds segments of shard %d; open it with Shards=%d or more (changing the shard count of a device is not supported yet)", e.opts.Path, h.shard, h.shard+1)
		}
		owned[uint32(i)] = true
		e.shards[h.shard].segs[uint32(i)] = &segState{gen: h.gen, closed: true}
		replays[h.shard] = append(replays[h.shard], replaySeg{seg: uint32(i), gen: h.gen, pos: segHeaderSize})
	}

	win := &segWindow{f: f, sb: sb}
	for i, s := range e.shards {
		s.recovering = true
		rs := replays[i]
		sort.Slice(rs, func(a, b int) bool { return rs[a].gen < rs[b].gen })
		for j, r := range rs {
			if err := s.replay(win, r, j == len(rs)-1, &e.recovery); err != nil {
				return err
			}
			// openGen stays the highest generation the shard has opened,
			// with or without an open segment: the next checkpoint's
			// boundary between its segments and newer ones.
			s.openGen = max(s.openGen, r.gen)
		}
	}
	if c != nil {
		for _, ss := range c.Snapshots {
			sn := &Snapshot{e: e, id: ss.ID, name: ss.Name, created: timeOf(ss.Created)}
			if len(ss.Shards) != nshards {
				return fmt.Errorf("%w: checkpoint %d: snapshot %q has %d shard parts, want %d", ErrCorrupt, c.Seq, ss.Name, len(ss.Shards), nshards)
			}
			for i, part := range ss.Shards {
				p := &shardSnap{idx: NewIndex(), objs: newObjTree()}
				p.idx.load(part.Extents)
				for _, o := range part.Objects {
					p.objs.ReplaceOrInsert(o)
				}
				sn.parts = append(sn.parts, p)
				e.shards[i].snaps[ss.ID] = p
			}
			e.snaps[ss.ID] = sn
		}
	}

	// Space accounting from scratch, and the free list.
	for _, s := range e.shards {
		s.recovering = false
		if err := s.recount(); err != nil {
			if debugRecovery {
				for i, h := range hdrs {
					fmt.Printf("seg %d: %+v\n", i, h)
				}
				if c != nil {
					for i := range c.Shards {
						fmt.Printf("ckpt %d shard %d: open %d gen %d pos %d segs %v\n", c.Seq, i, c.Shards[i].OpenSegment, c.Shards[i].OpenGen, c.Shards[i].OpenPos, c.Shards[i].Segments)
					}
					for _, sn := range c.Snapshots {
						fmt.Printf("snap %d %s\n", sn.ID, sn.Name)
					}
				}
			}
			return fmt.Errorf("engine: recovery: %w", err)
		}
	}
	for i := uint32(0); i < sb.SegmentCount; i++ {
		if !owned[i] {
			e.alloc.free = append(e.alloc.free, i)
		}
	}
	// Hand out low segments first: the stack pops from the end.
	sort.Slice(e.alloc.free, func(a, b int) bool { return e.alloc.free[a] > e.alloc.free[b] })
	e.alloc.nfree.Store(int64(len(e.alloc.free)))
	for _, s := range e.shards {
		for seg := range s.segs {
			s.maybeFree(seg)
		}
	}
	return nil
}

// loadState installs a checkpointed shard state.
func (s *shard) loadState(cs *shardState) {
	s.idx.load(cs.Extents)
	for _, o := range cs.Objects {
		s.objs.ReplaceOrInsert(o)
		if o.PGSeq != 0 || o.Version != 0 {
			s.pgLog.ReplaceOrInsert(pgEntry{PG: o.PG, Seq: o.PGSeq, Object: o.ID})
			s.e.notePGSeq(o.PG, o.PGSeq)
		}
	}
}

// replay applies the valid batches of one segment from r.pos on. A batch
// that fails its checks ends the shard's log if it is the torn tail: in
// the shard's last segment, with no valid batch after it. Anywhere else it
// is corruption, reported with its device offset.
func (s *shard) replay(win *segWindow, r replaySeg, last bool, rs *RecoveryStats) error {
	sb := s.e.sb
	base := s.segBase(r.seg)
	pos := r.pos
	var descs []Desc
	for pos+4096 <= sb.SegmentSize {
		blk, err := win.at(r.seg, pos, 4096)
		if err != nil {
			return err
		}
		h, _, need, why := DecodeBatchHeader(blk, nil)
		if h.Generation != r.gen {
			// Zeros, or a batch left over from an earlier use of the
			// segment (a header whose generation bytes are not this
			// segment's was never written in this use): the log ends.
			break
		}
		var size uint32
		if why == "" {
			size, why = batchBytes(h, pos, sb.SegmentSize)
		}
		var all []byte
		if why == "" {
			all, err = win.at(r.seg, pos, size)
			if err != nil {
				return err
			}
			h, descs, _, why = DecodeBatchHeader(all[:need*4096], descs[:0])
		}
		if why == "" && s.batchSeq != 0 && h.BatchSeq != s.batchSeq {
			why = fmt.Sprintf("batch sequence %d, expected %d", h.BatchSeq, s.batchSeq)
		}
		if why == "" {
			why = checkBatchData(all[need*4096:], descs)
		}
		if why != "" {
			if !last || s.validAfter(win, r, pos, s.batchSeq+maxInflight-1) {
				return fmt.Errorf("%w: %s: shard %d segment %d (generation %d), batch at device offset %d: %s; later records exist, so this is not a torn write",
					ErrCorrupt, s.e.opts.Path, s.id, r.seg, r.gen, base+int64(pos), why)
			}
			s.e.opts.Logger.Warn("engine: recovery: dropping torn tail", "shard", s.id, "segment", r.seg, "offset", base+int64(pos), "reason", why)
			rs.TornTails++
			// Zero the torn batch's first block so that, once this
			// segment is no longer the shard's last, the end of its log
			// reads as clean.
			zero := directio.AlignedBlock(4096)
			if _, err := win.f.WriteAt(zero, base+int64(pos)); err != nil {
				return fmt.Errorf("engine: recovery: sealing torn tail at offset %d: %w", base+int64(pos), err)
			}
			if err := win.f.Sync(); err != nil {
				return fmt.Errorf("engine: recovery: sealing torn tail: %w", err)
			}
			win.forget()
			break
		}
		s.applyBatch(descs, r.seg, pos, r.gen)
		s.batchSeq = h.BatchSeq + 1
		rs.BatchesReplayed++
		rs.BytesScanned += int64(size)
		pos += size
	}
	return nil
}

// validAfter reports whether a valid batch of the segment's generation
// with a sequence number above limit lies after the bad one at pos: then
// the bad one was once acknowledged and is corruption, not a torn write.
// Valid batches up to limit are the bad one's companions in flight,
// written but never acknowledged, and are dropped with it.
func (s *shard) validAfter(win *segWindow, r replaySeg, pos uint32, limit uint64) bool {
	for p := pos + 4096; p+4096 <= s.e.sb.SegmentSize; p += 4096 {
		blk, err := win.at(r.seg, p, 4096)
		if err != nil {
			return false
		}
		h, _, need, why := DecodeBatchHeader(blk, nil)
		if h.Generation != r.gen || why != "" && need <= 1 {
			continue
		}
		if need > 1 && p+uint32(need)*4096 <= s.e.sb.SegmentSize {
			if all, err := win.at(r.seg, p, uint32(need)*4096); err == nil {
				h, _, _, why = DecodeBatchHeader(all, nil)
			}
		}
		if why == "" && h.Generation == r.gen && (s.batchSeq == 0 || h.BatchSeq > limit) {
			return true
		}
	}
	return false
}

// checkBatchData verifies every write record's data checksum.
func checkBatchData(data []byte, descs []Desc) string {
	off := 0
	for i := range descs {
		d := &descs[i]
		if d.Kind != KindWrite {
			continue
		}
		if got := crc32.Checksum(data[off:off+int(d.Length)], castagnoli); got != d.DataCRC {
			return fmt.Sprintf("record %d (%v at %d, %d bytes): data checksum %#08x, descriptor says %#08x", i, d.Object, d.Offset, d.Length, got, d.DataCRC)
		}
		off += int(dataBlocksFor(d.Length)) * 4096
	}
	return ""
}

// segmentsOf returns the distinct segments idx references, in the order
// first met, and adds each extent's bytes to live (when not nil). An
// extent in a segment the shard does not own is corruption.
func (s *shard) segmentsOf(idx *Index, live map[uint32]uint64) ([]uint32, error) {
	var segs []uint32
	seen := make(map[uint32]bool)
	var bad error
	idx.Ascend(func(x Extent) bool {
		if s.segs[x.Loc.Segment] == nil {
			bad = fmt.Errorf("%w: shard %d: %v points into segment %d, which holds no records of the shard", ErrCorrupt, s.id, x, x.Loc.Segment)
			return false
		}
		if !seen[x.Loc.Segment] {
			seen[x.Loc.Segment] = true
			segs = append(segs, x.Loc.Segment)
		}
		if live != nil {
			live[x.Loc.Segment] += uint64(x.Len)
		}
		return true
	})
	return segs, bad
}

// recount sets every segment's live bytes and pins from the index and the
// snapshots, after recovery.
func (s *shard) recount() error {
	live := make(map[uint32]uint64)
	if _, err := s.segmentsOf(s.idx, live); err != nil {
		return err
	}
	for seg, st := range s.segs {
		st.live, st.pins = live[seg], 0
	}
	for _, sn := range s.snaps {
		pins, err := s.segmentsOf(sn.idx, nil)
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		sn.pins = pins
		for _, seg := range sn.pins {
			s.segs[seg].pins++
			s.segs[seg].durableFree = false
		}
	}
	return nil
}

// segWindow caches a window of one segment for recovery's reads.
type segWindow struct {
	f interface {
		ReadAt([]byte, int64) (int, error)
		WriteAt([]byte, int64) (int, error)
		Sync() error
	}
	sb    *Superblock
	buf   []byte
	seg   uint32
	start uint32 // segment offset of buf[0]
	n     uint32 // valid bytes in buf
	ok    bool
}

// at returns n bytes of segment seg at pos, reading a new window when the
// cached one does not hold them.
func (w *segWindow) at(seg, pos, n uint32) ([]byte, error) {
	if w.ok && w.seg == seg && pos >= w.start && pos+n <= w.start+w.n {
		return w.buf[pos-w.start : pos-w.start+n], nil
	}
	size := max(min(recoveryWindow, w.sb.SegmentSize-pos), n)
	if uint32(len(w.buf)) < size {
		w.buf = directio.AlignedBlock(int(size))
	}
	off := int64(w.sb.SegmentsOffset) + int64(seg)*int64(w.sb.SegmentSize) + int64(pos)
	if _, err := w.f.ReadAt(w.buf[:size], off); err != nil {
		w.ok = false
		return nil, fmt.Errorf("engine: recovery: reading segment %d at offset %d: %w", seg, off, err)
	}
	w.seg, w.start, w.n, w.ok = seg, pos, size, true
	return w.buf[:n], nil
}

func (w *segWindow) forget() { w.ok = false }

func timeOf(unixNano int64) time.Time { return time.Unix(0, unixNano).UTC() }

var debugRecovery = false
