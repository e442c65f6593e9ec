package engine

import (
	"cmp"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"time"
)

// cleanerState is a shard's cleaner: it picks one victim segment at a
// time, walks its batches front to back, and rewrites the extents of the
// live index that still point into it as relocation records through the
// shard's normal batches. The victim is freed (after a checkpoint) once no
// extent points into it.
//
// Finding the live extents: a victim's log is self-describing, so the
// walk reads it in large sequential reads, decodes each batch header and
// asks the index, record by record, which parts of the record are still
// live (Index.Lookup, then the location); those parts are relocated from
// the same read. The cost is proportional to the victim, not to the
// index: finding a victim's extents by visiting every extent of the shard
// cost 11-13% of the engine's CPU under 4 KiB random writes on a 1 GiB
// device, and grows with the device. The walk reads the dead blocks too,
// which the extent-by-extent reads of the past mostly read anyway (they
// took neighbours within 16 KiB together). What the walk cannot see, a
// batch header that does not decode, leaves live bytes in the victim
// after its last relocation; the exact live count (segState.live) shows
// it, and the cleaner then finds the rest by scanning the whole index
// (CleanerStats.IndexScans), since a victim is freed only when nothing
// live is left in it.
//
// When: under foreground I/O the cleaner waits until free segments fall
// to its start level, a quarter of the way from its low level (the
// reserve plus 2% of the device, at least two segments) up to
// Cleaner.FreeTarget; an idle foreground (no write batched and no read
// started for cleanerIdle, seen at the reactor's next pass) lets it clean
// up to the target, banking free space for the next burst. Cleaning late
// is cheaper: the longer a segment is left, the more of it the
// foreground's overwrites kill before it is relocated. Under durable 4
// KiB random writes at depth 1 on an 80%-full device its victims were
// 82% live when it held free space at half the target, and are 74-77%
// starting late: 40% less relocation per write (README, session 18).
// Reads count as foreground, so that a read-heavy spell after a write
// burst does not share the device with the cleaner while free space is
// not short.
//
// Throttling: a step reads about Cleaner.BytesPerBatch live bytes (a
// walk's read is sized by the victim's live ratio, and holds at least one
// whole batch), and its records ride in the same group-commit batches as
// foreground writes,
// so a foreground write waits behind at most one step's worth of
// relocation; one step is in flight at a time. Between the low and the
// start level, steps are paced by the foreground's writes: each byte of
// log a foreground record takes earns pace bytes of relocation
// (credit), pace being what cleaning the victim costs per byte it frees,
// u/(1-u) for a live ratio u, with a margin. That spreads the relocation
// over the batches: a durable write at depth 1 carries a few KiB of it
// instead of a whole step (which doubled its latency). Below the low
// level, or with an idle foreground, the cleaner goes unpaced, and at the
// reserve it reads four steps at once. The pace counts the log the
// foreground takes, its share of batch headers included; what it leaves
// out (segment headers, the relocation records' own share of the batch
// headers, a victim's live ratio changing under it) lets free space
// drift down to the low level under a steady load, where the cleaner
// alternates between paced and unpaced steps.
type cleanerState struct {
	victim uint32 // NoSegment when idle
	// The walk: walkPos is the victim's offset of the next batch header;
	// walkNext the bytes of the batch there when the last read cut it
	// short (0: not known); walkPaced that the read in flight spends
	// credit; liveRatio the victim's live share when it was picked.
	walking   bool
	walkPos   uint32
	walkNext  uint32
	walkPaced bool
	liveRatio float64
	descs     []Desc // decoding scratch
	// The fallback (see above): an incremental scan of the whole index
	// from cursor for extents in the victim, collected in todo. scanned:
	// it ran for this victim; gaveUp: a live record of the victim did not
	// read back, so its data stays where it is.
	scanning bool
	scanned  bool
	gaveUp   bool
	cursor   Extent
	todo     []Extent
	reading  int
	ready    []relocPiece
	queued   int // relocation records in the current or in-flight batch
	nextPick time.Time
	// shunned holds victims given up on (a live record that did not read
	// back) with when they may be picked again, for their generation:
	// picked again at once, a segment with a damaged record would hold
	// the cleaner on it for good while the device fills.
	shunned map[uint32]shunnedSeg
	// pace is the relocation bytes a foreground byte earns for the
	// current victim; credit what is earned and not yet spent (negative
	// after a step that read more than it had); lastForeground when a
	// batch last carried a foreground record or a pass started a read;
	// readStarted that the pass did (folded into lastForeground by
	// cleanStep, so a read costs no clock reading of its own).
	pace           float64
	credit         float64
	lastForeground time.Time
	readStarted    bool

	cleaned   uint64
	relocated uint64
	reads     uint64 // device reads of victims, and their bytes
	readBytes uint64
	failures  uint64
	scans     uint64 // fallback index scans
}

type shunnedSeg struct {
	gen   uint64
	until time.Time
}

// cleanerShunTime is how long the cleaner leaves a victim it gave up on
// before it tries the segment again (a read error may pass; a damaged
// record may be overwritten meanwhile, and the segment then cleaned).
const cleanerShunTime = time.Minute

type relocPiece struct {
	ext  Extent
	data []byte // the extent's bytes, verified
	buf  []byte // scratch buffer holding data, on the last piece of its read; nil on the others
}

const cleanerScanStep = 8192

// cleanerIdle is how long without a foreground record the cleaner waits
// before it runs unpaced; cleanerPaceMargin is how much faster than the
// foreground consumes space a paced cleaner frees it.
const (
	cleanerIdle       = 10 * time.Millisecond
	cleanerPaceMargin = 1.25
)

// creditForeground credits the cleaner for a batch's foreground records
// (fg bytes of data), started at now.
func (s *shard) creditForeground(fg uint64, now time.Time) {
	c := &s.clean
	if fg == 0 {
		return
	}
	c.lastForeground = now
	if c.victim == NoSegment {
		return
	}
	// Capped so that a long quiet spell of the cleaner (a victim being
	// scanned) does not turn into one burst.
	c.credit = min(c.credit+float64(fg)*c.pace, float64(4*s.e.opts.Cleaner.BytesPerBatch))
}

// foregroundIdle reports that no foreground write was batched and no read
// started for cleanerIdle.
func (s *shard) foregroundIdle() bool {
	return time.Since(s.clean.lastForeground) >= cleanerIdle
}

// cleanStep advances the cleaner by one bounded step; it reports whether
// it did anything.
func (s *shard) cleanStep() bool {
	c := &s.clean
	if s.e.opts.Cleaner.Disabled || s.failed != nil {
		return false
	}
	if c.readStarted {
		c.readStarted = false
		c.lastForeground = time.Now()
	}
	if c.victim == NoSegment {
		return s.pickVictim()
	}
	if c.scanning {
		n := 0
		c.scanning = false
		s.idx.tree.AscendGreaterOrEqual(c.cursor, func(x Extent) bool {
			if n == cleanerScanStep {
				c.cursor, c.scanning = x, true
				return false
			}
			n++
			if x.Loc.Segment == c.victim {
				c.todo = append(c.todo, x)
			}
			return true
		})
		if !c.scanning {
			// In device order, so that a step reads neighbours together
			// (queueCleanRead).
			slices.SortFunc(c.todo, func(a, b Extent) int { return cmp.Compare(a.Loc.Offset, b.Loc.Offset) })
		}
		return true
	}
	worked := false
	if len(c.ready) > 0 && s.queueRelocations() {
		worked = true
	}
	// A step starts once the one before is durable. Reading the next
	// step while the last one's relocations were still in a batch put a
	// whole unpaced step into every batch instead of every other one:
	// durable 4 KiB writes at depth 1 on an 80%-full device, 30 s in the
	// cleaner's steady state, p99 1.9 ms against 1.2-1.35 ms waiting
	// (README, session 18), with no gain at depth 32.
	if c.reading != 0 || len(c.ready) != 0 || c.queued != 0 {
		return worked
	}
	if !c.walking && len(c.todo) == 0 {
		if st := s.segs[c.victim]; st != nil && st.live != 0 && !c.scanned && !c.gaveUp {
			s.e.opts.Logger.Warn("engine: cleaner: the victim's batches do not account for all its live bytes; scanning the index for the rest",
				"shard", s.id, "segment", c.victim, "live", st.live)
			c.scanning, c.scanned, c.cursor = true, true, Extent{}
			c.scans++
			return true
		}
		s.victimDone()
		return true
	}
	budget, paced := cleanerBudget(s.e.opts.Cleaner, s.e.alloc.nfree.Load(), s.e.alloc.reserve, s.e.sb.SegmentCount,
		s.foregroundIdle(), c.credit)
	if budget == 0 {
		return worked // earned by the next foreground writes
	}
	if c.walking {
		s.queueWalkRead(budget, paced)
		return true
	}
	for len(c.todo) > 0 && budget > 0 {
		live := s.queueCleanRead(budget)
		budget -= live
		if paced {
			c.credit -= float64(live)
		}
	}
	return true
}

// Bounds of one read of a victim's walk: at least a few records' worth,
// so that a paced step at depth 1 still reads a batch or two, and at most
// a coalesced read's size (its buffers are pooled), unless one batch is
// larger.
const (
	walkReadMin = 16 << 10
	walkReadMax = spanBytesMax
)

// queueWalkRead reads the victim's next stretch of batches: about budget
// live bytes at the victim's live ratio, and at least the batch the last
// read cut short.
func (s *shard) queueWalkRead(budget int, paced bool) {
	c := &s.clean
	n := uint32(walkReadMax)
	if want := float64(budget) / max(c.liveRatio, 0.01); want < float64(walkReadMax) {
		n = max(uint32(want+4095)&^4095, walkReadMin)
	}
	n = min(max(n, c.walkNext), s.e.sb.SegmentSize-c.walkPos)
	c.walkPaced = paced
	c.reading++
	c.reads++
	c.readBytes += uint64(n)
	s.queueRead(&readOp{ext: Extent{Loc: Location{Segment: c.victim, Offset: c.walkPos}}, buf: s.getCleanScratch(int(n)), own: true,
		off: s.segBase(c.victim) + int64(c.walkPos), done: s.walkReadDone})
}

// walkReadDone takes the live parts of every whole batch a walk read
// holds, verified, into c.ready, and moves the walk past those batches.
// The walk ends at the first block that is not a batch header of the
// victim's generation (zeros, or an older use of the segment: where its
// log ends, as recovery reads it), or at a header that does not decode,
// whose live records the fallback then finds.
func (s *shard) walkReadDone(op *readOp, err error) {
	c := &s.clean
	c.reading--
	if err != nil || c.victim == NoSegment {
		if err != nil {
			s.cleanFailed(op.ext.Loc.Segment, err)
		}
		s.putScratch(op.buf)
		return
	}
	st, segSize := s.segs[c.victim], s.e.sb.SegmentSize
	buf, base := op.buf, c.walkPos
	first, live := len(c.ready), 0
	var p uint32
	c.walkNext = 0
	for err == nil {
		pos := base + p
		if pos+4096 > segSize {
			c.walking = false
			break
		}
		if int(p)+4096 > len(buf) {
			break
		}
		h, _, _, why := DecodeBatchHeader(buf[p:p+4096], nil)
		if h.Generation != st.gen {
			c.walking = false
			break
		}
		var size uint32
		if why == "" {
			size, why = batchBytes(h, pos, segSize)
		}
		if why == "" && int(p+size) > len(buf) {
			c.walkNext = size
			break
		}
		if why == "" {
			h, c.descs, _, why = DecodeBatchHeader(buf[p:p+uint32(h.HeaderBlocks)*4096], c.descs[:0])
		}
		if why != "" {
			s.e.opts.Logger.Warn("engine: cleaner: a batch header of the victim does not decode; the walk stops there",
				"shard", s.id, "segment", c.victim, "offset", op.off+int64(p), "reason", why)
			c.walking = false
			break
		}
		at := p + uint32(h.HeaderBlocks)*4096
		for i := range c.descs {
			d := &c.descs[i]
			if d.Kind != KindWrite {
				continue
			}
			rec, loc := buf[at:], base+at
			at += dataBlocksFor(d.Length) * 4096
			verified := false
			s.idx.Lookup(d.Object, d.Offset, uint64(d.Length), func(x Extent) bool {
				if x.Loc.Segment != c.victim || x.Loc.Offset != loc {
					return true
				}
				if !verified {
					if x.Loc.Length != d.Length || x.Loc.CRC != d.DataCRC {
						err = fmt.Errorf("%w: %v: the index says record at segment %d offset %d holds %d bytes of checksum %#08x, its descriptor %d bytes of %#08x",
							ErrCorrupt, x, x.Loc.Segment, x.Loc.Offset, x.Loc.Length, x.Loc.CRC, d.Length, d.DataCRC)
					} else {
						err = s.verifyRecord(x, rec, op.off+int64(loc-base))
					}
					if err != nil {
						return false
					}
					verified = true
				}
				c.ready = append(c.ready, relocPiece{ext: x, data: rec[x.Skip : x.Skip+x.Len]})
				live += int(x.Len)
				return true
			})
			if err != nil {
				break
			}
		}
		p += size
	}
	c.walkPos = base + p
	if err != nil {
		clear(c.ready[first:])
		c.ready = c.ready[:first]
		s.cleanFailed(c.victim, err)
		s.putScratch(buf)
		return
	}
	if c.walkPaced {
		c.credit -= float64(live)
	}
	if len(c.ready) > first {
		// c.ready is taken in order, so the buffer goes back once the
		// read's last piece is queued.
		c.ready[len(c.ready)-1].buf = buf
	} else {
		s.putScratch(buf)
	}
}

// cleanFailed gives up on the victim after a live record of it did not
// read back: its data stays where it is, for reads to report.
func (s *shard) cleanFailed(seg uint32, err error) {
	c := &s.clean
	c.failures++
	s.e.opts.Logger.Error("engine: cleaner cannot read a live extent; leaving its segment alone for a while", "shard", s.id, "segment", seg, "retry_in", cleanerShunTime, "err", err)
	c.walking, c.gaveUp, c.todo = false, true, c.todo[:0]
	if st := s.segs[seg]; st != nil {
		if c.shunned == nil {
			c.shunned = make(map[uint32]shunnedSeg)
		}
		c.shunned[seg] = shunnedSeg{gen: st.gen, until: time.Now().Add(cleanerShunTime)}
	}
}

// queueCleanRead queues one device read of the victim's next extents:
// the first in c.todo, and those after it that lie within spanGapMax of
// the range so far, up to spanBytesMax of device range and budget live
// bytes; it returns the live bytes the read covers. One read per extent
// cost the device 4 KiB reads by the thousand per victim, and the reactor
// an operation and a completion each: at 70% live, a victim's extents lie
// a dead block or two apart.
func (s *shard) queueCleanRead(budget int) int {
	c := &s.clean
	first := c.todo[0]
	start := int64(first.Loc.Offset)
	end := start + int64(dataBlocksFor(first.Loc.Length))*4096
	n, live := 1, int(first.Len)
	for ; n < len(c.todo) && live < budget; n++ {
		x := c.todo[n]
		off := int64(x.Loc.Offset)
		xend := max(end, off+int64(dataBlocksFor(x.Loc.Length))*4096)
		// Extents split from one record share its location: off < end.
		if off-end > spanGapMax || xend-start > spanBytesMax {
			break
		}
		end = xend
		live += int(x.Len)
	}
	parts := make([]spanPart, n)
	for i, x := range c.todo[:n] {
		parts[i] = spanPart{ext: x, at: int(int64(x.Loc.Offset) - start)}
	}
	c.todo = c.todo[n:]
	c.reading++
	c.reads++
	c.readBytes += uint64(end - start)
	s.queueRead(&readOp{ext: first, buf: s.getCleanScratch(int(end - start)), own: true,
		off: s.segBase(first.Loc.Segment) + start, done: s.cleanReadDone, parts: parts})
	return live
}

// cleanerBudget is the live bytes the next cleaner step may read, and
// whether they are paced (spent from credit), given free segments (of
// segments, reserve held back for the cleaner), whether the foreground
// has been idle for cleanerIdle, and the credit earned. 0: wait for
// credit.
func cleanerBudget(o CleanerOptions, free int64, reserve int, segments uint32, idle bool, credit float64) (int, bool) {
	low, _ := cleanerLevels(o, reserve, segments)
	switch {
	case free <= int64(reserve)+1:
		// Writes wait for the cleaner: clean at full speed.
		return 4 * o.BytesPerBatch, false
	case free < low, idle:
		return o.BytesPerBatch, false
	case credit <= 0:
		return 0, true
	}
	// At least a byte, so that a step reads an extent; a step may read
	// past its budget by one extent and leave the credit negative.
	return min(o.BytesPerBatch, int(credit)+1), true
}

// cleanerLevels returns, in free segments, the level below which the
// cleaner runs unpaced whatever the foreground does (low: the reserve
// plus 2% of the segments, at least two), and the level below which
// foreground I/O starts it (start: a quarter of the way from low to
// FreeTarget, and above low).
func cleanerLevels(o CleanerOptions, reserve int, segments uint32) (low, start int64) {
	low = int64(reserve) + max(2, int64(math.Ceil(0.02*float64(segments))))
	high := int64(o.FreeTarget * float64(segments))
	return low, max(low+(high-low)/4, low+1)
}

// pickVictim chooses the closed, unpinned segment with the best
// cost-benefit score (1-u)·age/(1+u), u being its live ratio, when free
// segments are below the start level, or below the target with the
// foreground idle; not one given up on within cleanerShunTime.
func (s *shard) pickVictim() bool {
	c := &s.clean
	sb := s.e.sb
	free := s.e.alloc.nfree.Load()
	if float64(free) >= s.e.opts.Cleaner.FreeTarget*float64(sb.SegmentCount) {
		return false
	}
	// Under foreground I/O, not before free space is down to the start
	// level (see cleanerState).
	if _, start := cleanerLevels(s.e.opts.Cleaner, s.e.alloc.reserve, sb.SegmentCount); free >= start && !s.foregroundIdle() {
		return false
	}
	now := time.Now()
	if now.Before(c.nextPick) {
		return false
	}
	c.nextPick = now.Add(time.Millisecond)
	best, bestScore := NoSegment, 0.0
	waiting := false
	for seg, st := range s.segs {
		if !st.closed || st.pins != 0 || seg == s.open {
			continue
		}
		if sh, ok := c.shunned[seg]; ok {
			if sh.gen == st.gen && now.Before(sh.until) {
				continue
			}
			delete(c.shunned, seg)
		}
		if st.live == 0 {
			waiting = true // freed by the next checkpoint
			continue
		}
		u := float64(st.live) / float64(sb.SegmentSize)
		if u > s.e.opts.Cleaner.MaxLiveRatio {
			continue
		}
		age := float64(s.openGen-st.gen) + 1
		if score := (1 - u) * age / (1 + u); score > bestScore {
			best, bestScore = seg, score
		}
	}
	if waiting {
		s.wantCheckpointIfFrees()
	}
	// With no room beyond the reserve, a new victim would relocate into
	// segments that only a checkpoint can give back: free the cleaned
	// ones first.
	if best == NoSegment || waiting && s.e.alloc.nfree.Load() <= int64(s.e.alloc.reserve) {
		return false
	}
	c.victim, c.todo = best, c.todo[:0]
	c.walking, c.walkPos, c.walkNext = true, segHeaderSize, 0
	c.scanning, c.scanned, c.gaveUp = false, false, false
	u := float64(s.segs[best].live) / float64(sb.SegmentSize)
	c.liveRatio, c.pace, c.credit = u, cleanerPaceMargin*u/(1-u), 0
	return true
}

func (s *shard) cleanReadDone(op *readOp, err error) {
	c := &s.clean
	c.reading--
	for _, p := range op.parts {
		if err != nil {
			break
		}
		err = s.verifyRecord(p.ext, op.buf[p.at:], op.off+int64(p.at))
	}
	if err != nil || c.victim == NoSegment {
		if err != nil {
			s.cleanFailed(op.ext.Loc.Segment, err)
		}
		s.putScratch(op.buf)
		return
	}
	for i, p := range op.parts {
		x := p.ext
		piece := relocPiece{ext: x, data: op.buf[p.at+int(x.Skip) : p.at+int(x.Skip+x.Len)]}
		if i == len(op.parts)-1 {
			// c.ready is taken in order, so the buffer goes back once
			// the read's last piece is queued.
			piece.buf = op.buf
		}
		c.ready = append(c.ready, piece)
	}
}

// queueRelocations adds ready pieces to the current batch while it has
// room; it reports whether it added any.
func (s *shard) queueRelocations() bool {
	c := &s.clean
	added := false
	for len(c.ready) > 0 {
		p := c.ready[0]
		blocks := dataBlocksFor(p.ext.Len)
		b := s.cur
		if len(b.descs) == 0 {
			if err := s.placeBatch(1, blocks, true); err != nil {
				break
			}
		} else if len(b.descs)+1 > batchRecordsMax || b.pos+b.bytesWith(1, blocks) > s.e.sb.SegmentSize {
			break
		}
		d := Desc{Object: p.ext.Object, Offset: p.ext.Off, Length: p.ext.Len, Kind: KindWrite,
			Version: p.ext.Version, Relocated: true, From: p.ext.Loc, DataCRC: crc32.Checksum(p.data, castagnoli)}
		b.descs = append(b.descs, d)
		b.data = append(b.data, b.stage(p.data))
		b.blocks += blocks
		b.reloc++
		c.queued++
		s.putScratch(p.buf)
		c.ready = c.ready[1:]
		added = true
	}
	return added
}

// cleanApplied notes a durable batch's relocation records.
func (s *shard) cleanApplied(b *batch) {
	if b.reloc == 0 {
		return
	}
	c := &s.clean
	c.queued -= b.reloc
	for i := range b.descs {
		if b.descs[i].Relocated {
			c.relocated += uint64(b.descs[i].Length)
		}
	}
}

// victimDone ends the victim's cleaning; the next checkpoint lets it go.
func (s *shard) victimDone() {
	c := &s.clean
	seg := c.victim
	c.victim = NoSegment
	c.cleaned++
	if st := s.segs[seg]; st != nil && st.live != 0 {
		s.e.opts.Logger.Warn("engine: cleaned segment still has live data", "shard", s.id, "segment", seg, "live", st.live)
	}
	// A victim closed before the last durable checkpoint is freed now; a
	// younger one needs a checkpoint first.
	s.maybeFree(seg)
	s.wantCheckpointIfFrees()
}

// cleanAbort drops the cleaner's work after a device failure.
func (s *shard) cleanAbort() {
	c := &s.clean
	for _, p := range c.ready {
		s.putScratch(p.buf)
	}
	c.ready, c.todo, c.queued = nil, nil, 0
	c.victim, c.scanning, c.walking = NoSegment, false, false
}
