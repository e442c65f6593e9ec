package engine

import (
	"hash/crc32"
	"time"
)

// cleanerState is a shard's cleaner: it picks one victim segment at a
// time, finds its live extents with an incremental index scan, reads them,
// and rewrites them as relocation records through the shard's normal
// batches. The victim is freed (after a checkpoint) once no extent points
// into it.
//
// Throttling: one step of at most Cleaner.BytesPerBatch live bytes is in
// flight at a time, and its records ride in the same group-commit batches
// as foreground writes, so a foreground write waits behind at most one
// step's worth of relocation. While free space is not short, steps are
// also paced by the foreground's writes: each byte a foreground record
// writes earns pace bytes of relocation (credit), pace being what
// cleaning the victim costs per byte it frees, u/(1-u) for a live ratio
// u, with a margin. That spreads the relocation over the batches: a
// durable write at depth 1 carries a few KiB of it instead of a whole
// step (which doubled its latency). The cleaner goes unpaced when free
// segments fall below half the target, or when no foreground record was
// written for cleanerIdle (seen at the reactor's next pass: a reactor
// asleep with nothing to do leaves a paced victim for later, which is
// safe while free space is above half the target). The pace counts data, not the batch headers
// that small batches also take from the log, so under a steady load of
// small writes free space drifts down to half the target and the
// cleaner alternates there between paced and unpaced steps; the lower
// level is also cheaper to hold, since the segments it cleans have more
// dead space (at 80% full, holding the whole target relocated three
// times as much for the same writes).
type cleanerState struct {
	victim   uint32 // NoSegment when idle
	scanning bool
	cursor   Extent // next index key to scan from
	todo     []Extent
	reading  int
	ready    []relocPiece
	queued   int // relocation records in the current or in-flight batch
	nextPick time.Time
	// pace is the relocation bytes a foreground byte earns for the
	// current victim; credit what is earned and not yet spent (negative
	// after a step that read more than it had); lastForeground when a
	// batch last carried a foreground record.
	pace           float64
	credit         float64
	lastForeground time.Time

	cleaned   uint64
	relocated uint64
	failures  uint64
}

type relocPiece struct {
	ext  Extent
	data []byte // the extent's bytes, verified
	buf  []byte // scratch buffer holding data
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

// cleanStep advances the cleaner by one bounded step; it reports whether
// it did anything.
func (s *shard) cleanStep() bool {
	c := &s.clean
	if s.e.opts.Cleaner.Disabled || s.failed != nil {
		return false
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
		return true
	}
	worked := false
	if len(c.ready) > 0 && s.queueRelocations() {
		worked = true
	}
	if c.reading == 0 && len(c.ready) == 0 && c.queued == 0 {
		if len(c.todo) == 0 {
			s.victimDone()
			return true
		}
		budget, paced := cleanerBudget(s.e.opts.Cleaner, s.e.alloc.nfree.Load(), s.e.alloc.reserve, s.e.sb.SegmentCount,
			time.Since(c.lastForeground) >= cleanerIdle, c.credit)
		if budget == 0 {
			return worked // earned by the next foreground writes
		}
		for len(c.todo) > 0 && budget > 0 {
			x := c.todo[0]
			c.todo = c.todo[1:]
			budget -= int(x.Len)
			if paced {
				c.credit -= float64(x.Len)
			}
			c.reading++
			op := &readOp{ext: x, buf: s.getCleanScratch(int(dataBlocksFor(x.Loc.Length)) * 4096), own: true,
				off: s.segBase(x.Loc.Segment) + int64(x.Loc.Offset), done: s.cleanReadDone}
			s.queueRead(op)
		}
		worked = true
	}
	return worked
}

// cleanerBudget is the live bytes the next cleaner step may read, and
// whether they are paced (spent from credit), given free segments (of
// segments, reserve held back for the cleaner), whether the foreground
// has been idle for cleanerIdle, and the credit earned. 0: wait for
// credit.
func cleanerBudget(o CleanerOptions, free int64, reserve int, segments uint32, idle bool, credit float64) (int, bool) {
	switch {
	case free <= int64(reserve)+1:
		// Writes wait for the cleaner: clean at full speed.
		return 4 * o.BytesPerBatch, false
	case float64(free) < o.FreeTarget*float64(segments)/2, idle:
		return o.BytesPerBatch, false
	case credit <= 0:
		return 0, true
	}
	// At least a byte, so that a step reads an extent; a step may read
	// past its budget by one extent and leave the credit negative.
	return min(o.BytesPerBatch, int(credit)+1), true
}

// pickVictim chooses the closed, unpinned segment with the best
// cost-benefit score (1-u)·age/(1+u), u being its live ratio, when free
// segments are below the target.
func (s *shard) pickVictim() bool {
	c := &s.clean
	sb := s.e.sb
	if float64(s.e.alloc.nfree.Load()) >= s.e.opts.Cleaner.FreeTarget*float64(sb.SegmentCount) {
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
	c.victim, c.scanning, c.cursor, c.todo = best, true, Extent{}, c.todo[:0]
	u := float64(s.segs[best].live) / float64(sb.SegmentSize)
	c.pace, c.credit = cleanerPaceMargin*u/(1-u), 0
	return true
}

func (s *shard) cleanReadDone(op *readOp, err error) {
	c := &s.clean
	c.reading--
	if err != nil || c.victim == NoSegment {
		if err != nil {
			c.failures++
			s.e.opts.Logger.Error("engine: cleaner cannot read a live extent; leaving its segment alone", "shard", s.id, "segment", op.ext.Loc.Segment, "err", err)
			// Give up on this victim: its live data stays where it is.
			c.todo = c.todo[:0]
		}
		s.putScratch(op.buf)
		return
	}
	x := op.ext
	c.ready = append(c.ready, relocPiece{ext: x, data: op.buf[x.Skip : x.Skip+x.Len], buf: op.buf})
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
	c.victim, c.scanning = NoSegment, false
}
