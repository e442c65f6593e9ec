package engine

import (
	"fmt"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// shardStats are a reactor's counters. The atomics may be read from any
// goroutine; the histograms only by the shard, which copies them when
// asked (opStats), so recording stays lock-free.
type shardStats struct {
	loops, busyNs, sleeps, sleepNs atomic.Int64
	batches, records, deviceReads  atomic.Uint64
	deviceReadBytes                atomic.Uint64
	cacheHits                      atomic.Uint64
	cacheBytes                     atomic.Int64
	segsFreed, corrupt             atomic.Uint64
	// copiedIn and copiedOut count payload bytes the engine copied: write
	// data staged because the caller's buffer was unaligned or not whole
	// blocks, and read data served through a scratch buffer because the
	// caller asked for part of a record or gave an unaligned buffer. The
	// zero-copy tests of the layers above assert they stay zero.
	copiedIn, copiedOut         atomic.Uint64
	readLat, writeLat, otherLat latency
	batchLat                    latency
	reads, writes, others       uint64
	tombstonesForgotten         uint64
}

// latency is a histogram of microseconds, 1 µs to 100 s.
type latency struct{ h *hdrhistogram.Histogram }

func (l *latency) init() { l.h = hdrhistogram.New(1, 100_000_000, 3) }

func (l *latency) observe(d time.Duration) {
	us := d.Microseconds()
	if us < 1 {
		us = 1
	}
	l.h.RecordValue(us)
}

func (l *latency) snapshot() LatencyStats {
	h := l.h
	if h.TotalCount() == 0 {
		return LatencyStats{}
	}
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	return LatencyStats{Count: h.TotalCount(), Mean: time.Duration(h.Mean() * float64(time.Microsecond)),
		P50: us(h.ValueAtQuantile(50)), P90: us(h.ValueAtQuantile(90)), P99: us(h.ValueAtQuantile(99)),
		P999: us(h.ValueAtQuantile(99.9)), Max: us(h.Max())}
}

func (st *shardStats) init() {
	st.readLat.init()
	st.writeLat.init()
	st.otherLat.init()
	st.batchLat.init()
}

func (st *shardStats) observe(op Op, d time.Duration) {
	switch op {
	case OpRead:
		st.reads++
		st.readLat.observe(d)
	case OpWrite:
		st.writes++
		st.writeLat.observe(d)
	case OpTruncate, OpDelete, OpStat:
		st.others++
		st.otherLat.observe(d)
	}
}

// LatencyStats summarise a latency histogram (submit to completion).
type LatencyStats struct {
	Count                          int64
	Mean, P50, P90, P99, P999, Max time.Duration
}

// ShardStats describe one reactor.
type ShardStats struct {
	Shard int
	// Loops counts reactor loop iterations; BusyShare is the share of
	// wall time spent in iterations that did work, SleepShare the share
	// spent blocked (interrupt and hybrid modes).
	Loops                 int64
	BusyShare, SleepShare float64
	Sleeps                int64
	Wakeups               uint64
	QueueDepth            int64 // requests waiting in the queue now
	ReadsInFlight         int   // device reads in flight now
	Reads, Writes, Others uint64
	Batches, Records      uint64 // group commits and the records they carried
	DeviceReads           uint64
	// DeviceReadBytes is what those reads fetched: against the bytes
	// requests read, the read amplification of records larger than the
	// reads (see Options.RecordBytes).
	DeviceReadBytes uint64
	// ReadCacheHits counts the records served from the read cache
	// (Options.ReadCacheBytes) instead of the device; ReadCacheBytes is
	// what the cache holds now.
	ReadCacheHits  uint64
	ReadCacheBytes int64
	// DeviceSubmits counts the calls that handed the device operations
	// (io_uring_enter system calls): (DeviceReads+Batches)/DeviceSubmits
	// is how many operations one call carried on average.
	DeviceSubmits uint64
	CorruptReads  uint64
	// CopiedInBytes and CopiedOutBytes count payload bytes copied on the
	// way to and from the device: writes from unaligned or partial-block
	// buffers are staged, reads of part of a record or into unaligned
	// buffers go through scratch. Aligned whole-block I/O copies nothing.
	CopiedInBytes, CopiedOutBytes uint64
	SegmentsOwned                 int
	PinnedSegments                int
	LiveBytes                     uint64
	SegmentsFreed                 uint64
	IndexExtents                  int
	Objects                       int // live objects and tombstones in the object table
	TombstonesForgotten           uint64
	ReadLatency                   LatencyStats
	WriteLatency                  LatencyStats
	OtherLatency                  LatencyStats
	BatchLatency                  LatencyStats // write+flush of one batch
	Cleaner                       CleanerStats
	Failed                        string // why the shard refuses writes, if it does
}

// CleanerStats describe a shard's cleaner.
type CleanerStats struct {
	Active          bool
	Victim          uint32
	Pending         int // live extents of the victim found and still to move
	SegmentsCleaned uint64
	BytesRelocated  uint64
	// DeviceReads and BytesRead are the cleaner's reads of its victims:
	// a walk reads a victim's batches front to back, dead blocks
	// included.
	DeviceReads  uint64
	BytesRead    uint64
	ReadFailures uint64
	// IndexScans counts victims whose batches did not account for all
	// their live bytes (a header that does not decode), whose remaining
	// extents the cleaner found by scanning the whole index.
	IndexScans uint64
}

// Stats is the engine's state for operators. Space figures are exact:
// Used = Live + Dead + Open, in bytes of segment space.
type Stats struct {
	SegmentSize   uint64
	Segments      uint32 // on the device
	FreeSegments  int64
	Used          uint64 // bytes in segments that are not free
	Live          uint64 // bytes the live index references
	Free          uint64 // bytes in free segments
	Pinned        uint64 // bytes in segments snapshots pin
	Snapshots     int
	Checkpoints   uint64
	CheckpointErr string
	// CheckpointBytes and CheckpointTime are of the last checkpoint.
	CheckpointBytes int64
	CheckpointTime  time.Duration
	Recovery        RecoveryStats
	Shards          []ShardStats
}

func (s *shard) statsSnapshot() ShardStats {
	st := &s.stats
	out := ShardStats{
		Shard: int(s.id), Loops: st.loops.Load(), Sleeps: st.sleeps.Load(), Wakeups: s.w.wakeups.Load(),
		QueueDepth: s.q.pending.Load(), ReadsInFlight: len(s.reads),
		Reads: st.reads, Writes: st.writes, Others: st.others,
		Batches: st.batches.Load(), Records: st.records.Load(), DeviceReads: st.deviceReads.Load(),
		DeviceReadBytes: st.deviceReadBytes.Load(),
		ReadCacheHits:   st.cacheHits.Load(), ReadCacheBytes: st.cacheBytes.Load(),
		DeviceSubmits: s.io.submitted(),
		CorruptReads:  st.corrupt.Load(),
		CopiedInBytes: st.copiedIn.Load(), CopiedOutBytes: st.copiedOut.Load(), SegmentsOwned: len(s.segs), SegmentsFreed: st.segsFreed.Load(),
		IndexExtents: s.idx.Len(), Objects: s.objs.Len(), TombstonesForgotten: st.tombstonesForgotten,
		ReadLatency: st.readLat.snapshot(), WriteLatency: st.writeLat.snapshot(),
		OtherLatency: st.otherLat.snapshot(), BatchLatency: st.batchLat.snapshot(),
		Cleaner: CleanerStats{Active: s.clean.victim != NoSegment, Victim: s.clean.victim, Pending: len(s.clean.todo) + len(s.clean.ready),
			SegmentsCleaned: s.clean.cleaned, BytesRelocated: s.clean.relocated, DeviceReads: s.clean.reads, BytesRead: s.clean.readBytes,
			ReadFailures: s.clean.failures, IndexScans: s.clean.scans},
	}
	if s.failed != nil {
		out.Failed = s.failed.Error()
	}
	for _, seg := range s.segs {
		out.LiveBytes += seg.live
		if seg.pins > 0 {
			out.PinnedSegments++
		}
	}
	return out
}

// verify recomputes the shard's space accounting from its index and
// snapshots and compares it with the running counters, and checks the
// index invariants. It returns the segments the shard owns.
func (s *shard) verify() (owned []uint32, err error) {
	if err := s.idx.Check(); err != nil {
		return nil, err
	}
	live := make(map[uint32]uint64)
	if _, err := s.segmentsOf(s.idx, live); err != nil {
		return nil, err
	}
	pins := make(map[uint32]int)
	for _, sn := range s.snaps {
		segs, err := s.segmentsOf(sn.idx, nil)
		if err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
		for _, seg := range segs {
			pins[seg]++
		}
	}
	for seg, st := range s.segs {
		if st.live != live[seg] {
			return nil, fmt.Errorf("engine: shard %d: segment %d counts %d live bytes, its extents hold %d", s.id, seg, st.live, live[seg])
		}
		if st.pins != pins[seg] {
			return nil, fmt.Errorf("engine: shard %d: segment %d counts %d pins, snapshots hold %d", s.id, seg, st.pins, pins[seg])
		}
		owned = append(owned, seg)
	}
	return owned, nil
}

// Verify checks the engine's invariants from scratch: every shard's index,
// live-byte and pin counts recomputed from the extents, and every segment
// either free or owned by exactly one shard. Tests call it after every
// recovery; it costs O(extents).
func (e *Engine) Verify() error {
	hold := make(chan struct{})
	defer close(hold)
	outs, err := e.broadcast(func() *Request { return &Request{Op: opStats, Off: 1, shardIn: hold} })
	if err != nil {
		return err
	}
	owner := make(map[uint32]int)
	for i, o := range outs {
		if err, ok := o.(error); ok {
			return err
		}
		for _, seg := range o.([]uint32) {
			if j, dup := owner[seg]; dup {
				return fmt.Errorf("engine: segment %d owned by shards %d and %d", seg, j, i)
			}
			owner[seg] = i
		}
	}
	e.alloc.mu.Lock()
	defer e.alloc.mu.Unlock()
	for _, seg := range e.alloc.free {
		if i, dup := owner[seg]; dup {
			return fmt.Errorf("engine: segment %d is free and owned by shard %d", seg, i)
		}
		owner[seg] = -1
	}
	if len(owner) != int(e.sb.SegmentCount) {
		var lost []uint32
		for i := uint32(0); i < e.sb.SegmentCount && len(lost) < 10; i++ {
			if _, ok := owner[i]; !ok {
				lost = append(lost, i)
			}
		}
		return fmt.Errorf("engine: %d segments accounted for (%d free), device has %d; neither free nor owned: %v", len(owner), len(e.alloc.free), e.sb.SegmentCount, lost)
	}
	return nil
}

// Stats gathers every shard's figures and the space accounting.
func (e *Engine) Stats() Stats {
	out := Stats{SegmentSize: uint64(e.sb.SegmentSize), Segments: e.sb.SegmentCount, Recovery: e.recovery}
	outs, err := e.broadcast(func() *Request { return &Request{Op: opStats} })
	if err != nil {
		return out
	}
	elapsed := time.Since(e.started)
	for _, o := range outs {
		ss := o.(ShardStats)
		ss.BusyShare = float64(e.shards[ss.Shard].stats.busyNs.Load()) / float64(elapsed)
		ss.SleepShare = float64(e.shards[ss.Shard].stats.sleepNs.Load()) / float64(elapsed)
		out.Shards = append(out.Shards, ss)
	}
	out.FreeSegments = e.alloc.nfree.Load()
	for _, ss := range out.Shards {
		out.Used += uint64(ss.SegmentsOwned) * out.SegmentSize
		out.Live += ss.LiveBytes
		out.Pinned += uint64(ss.PinnedSegments) * out.SegmentSize
	}
	out.Free = uint64(out.FreeSegments) * out.SegmentSize
	e.snapMu.Lock()
	out.Snapshots = len(e.snaps)
	e.snapMu.Unlock()
	out.Checkpoints = e.ckptStats.count.Load()
	if p := e.ckptStats.lastErr.Load(); p != nil {
		out.CheckpointErr = *p
	}
	out.CheckpointBytes = e.ckptStats.bytes.Load()
	out.CheckpointTime = time.Duration(e.ckptStats.nanos.Load())
	return out
}
