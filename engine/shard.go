package engine

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/google/btree"
	"github.com/ncw/directio"
	"golang.org/x/sys/unix"
)

// maxInflight is how many batches a shard has in flight at once. With
// one, a shard alternates between a batch that is being flushed and one
// that fills; with two, the next batch is written while the previous
// one's flush completes, which doubled 4 KiB random-write IOPS at depth
// 32 here. Recovery accepts up to maxInflight-1 valid batches after a
// torn one (written, never acknowledged) before it calls the damage
// corruption.
const maxInflight = 2

// Limits of one group-commit batch.
const (
	batchRecordsMax = 256
	// ioTag kinds, in the top byte of a completion tag.
	tagWrite   = 1 << 56
	tagFlush   = 2 << 56
	tagRead    = 3 << 56
	tagKindMax = 0xff << 56
)

// segState is what a shard knows of one of its segments.
type segState struct {
	gen    uint64
	live   uint64 // bytes of the live index's extents stored here
	pins   int    // snapshots referencing it
	reads  int    // device reads in flight from it
	closed bool   // no longer appended to
	// capturedFree: closed and unpinned when the checkpoint being written
	// was captured; durableFree: the same of the last durable checkpoint.
	// Invariant: a segment is freed only when durableFree holds, so a
	// recovery never loads a checkpoint that needs a freed segment.
	capturedFree, durableFree bool
}

// pgEntry orders a shard's objects by (PG, PGSeq) for Changes.
type pgEntry struct {
	PG     uint32
	Seq    uint64
	Object ObjectID
}

func pgLess(a, b pgEntry) bool {
	if a.PG != b.PG {
		return a.PG < b.PG
	}
	if a.Seq != b.Seq {
		return a.Seq < b.Seq
	}
	return objectLess(a.Object, b.Object)
}

// objectLess orders object IDs by (Hi, Lo): the order of the extent
// index, of the object states and of a checkpoint's lists.
func objectLess(a, b ObjectID) bool {
	if a.Hi != b.Hi {
		return a.Hi < b.Hi
	}
	return a.Lo < b.Lo
}

func objStateLess(a, b ObjectState) bool { return objectLess(a.ID, b.ID) }

// batch is one group commit: descriptors, their data, and the requests
// it completes.
type batch struct {
	descs []Desc
	// data[i] is descs[i]'s data, padded to 4 KiB (KindWrite only).
	data [][]byte
	// done lists the requests the batch completes, with the index of
	// their last descriptor.
	done    []batchReq
	reloc   int // descriptors written by the cleaner
	blocks  uint32
	hdr     []byte
	iov     [][]byte
	staging []byte // aligned copies of unaligned or short write data
	used    int    // bytes of staging handed out

	seg        uint32
	gen        uint64
	pos        uint32 // batch offset in the segment
	withHeader bool   // the segment header block goes first
	seq        uint64
	writeRes   int32
	flushRes   int32
	waiting    int    // completions outstanding
	tag        uint64 // of its write and flush
	started    time.Time
}

type batchReq struct {
	r *Request
}

// foregroundBytes is the log the batch's foreground records take (not
// the cleaner's relocations): their data blocks and their share of the
// batch's header blocks. The header counts: a durable 4 KiB write at
// depth 1 is a batch of its own, a header block and a data block, and a
// cleaner paced by the data alone freed half of what such writes took.
func (b *batch) foregroundBytes() uint64 {
	fg := len(b.descs) - b.reloc
	if fg == 0 {
		return 0
	}
	var n uint64
	for i := range b.descs {
		if d := &b.descs[i]; d.Kind == KindWrite && !d.Relocated {
			n += uint64(dataBlocksFor(d.Length)) * 4096
		}
	}
	return n + uint64(headerBlocksFor(len(b.descs))*4096*fg/len(b.descs))
}

func (b *batch) reset() {
	clear(b.descs)
	b.descs = b.descs[:0]
	clear(b.data)
	b.data = b.data[:0]
	clear(b.done)
	b.done = b.done[:0]
	clear(b.iov)
	b.iov = b.iov[:0]
	b.reloc, b.blocks, b.used = 0, 0, 0
	b.withHeader = false
	b.writeRes, b.flushRes, b.waiting = 0, 0, 0
}

// bytesWith is the device bytes the batch takes with n more descriptors of
// blocks more data blocks.
func (b *batch) bytesWith(n int, blocks uint32) uint32 {
	return uint32(headerBlocksFor(len(b.descs)+n))*4096 + (b.blocks+blocks)*4096
}

// stage returns an aligned, zero-padded copy of p.
func (b *batch) stage(p []byte) []byte {
	n := int(dataBlocksFor(uint32(len(p)))) * 4096
	if b.used+n > len(b.staging) {
		// Buffers handed out earlier stay referenced by b.data; a new,
		// larger staging area serves the rest of this batch.
		b.staging = directio.AlignedBlock(max(2*len(b.staging), n, 256<<10))
		b.used = 0
	}
	s := b.staging[b.used : b.used+n]
	b.used += n
	copy(s, p)
	clear(s[len(p):])
	return s
}

// readOp is one device read serving a Request or the cleaner.
type readOp struct {
	r    *Request // nil for the cleaner
	ext  Extent   // the first part's
	buf  []byte   // the records as read: the device range from off
	off  int64
	own  bool // buf is scratch, not r.Buf
	done func(*readOp, error)
	// parts lists the extents the read serves, in device order (see
	// readSpan and queueCleanRead): one for a lone record, several for a
	// coalesced read.
	parts []spanPart
	one   [1]spanPart // parts' storage for a lone record
}

// spanPart is one extent a coalesced read serves: its record starts at
// byte at of the read's buffer.
type spanPart struct {
	ext Extent
	dst []byte
	at  int
}

// Coalescing: the extents one read request needs are often records that
// lie next to each other on the device (data written in order, batch
// after batch), and reading them one device read each made a 1 MiB read
// of data laid out in 4 KiB writes 256 device reads. Records of one
// segment whose device ranges ascend with gaps of at most spanGapMax
// (batch headers, mostly) are read with one device read of at most
// spanBytesMax into a scratch buffer, then verified record by record and
// copied out. Records that are whole and contiguous, a lone one most
// often, are read straight into the caller's buffer (no copy).
const (
	spanGapMax   = 16 << 10
	spanBytesMax = 1 << 20
)

// readSpan collects the extents of one coalesced read.
type readSpan struct {
	seg        uint32
	start, end int64 // device range, 4096-aligned
	parts      []spanPart
}

// add appends e (whose bytes go to dst) if it continues the span, and
// reports whether it did; an empty span takes any extent.
func (sp *readSpan) add(s *shard, e Extent, dst []byte) bool {
	off := s.segBase(e.Loc.Segment) + int64(e.Loc.Offset)
	end := off + int64(dataBlocksFor(e.Loc.Length))*4096
	if len(sp.parts) > 0 && (e.Loc.Segment != sp.seg || off < sp.end || off-sp.end > spanGapMax || end-sp.start > spanBytesMax) {
		return false
	}
	if len(sp.parts) == 0 {
		sp.seg, sp.start = e.Loc.Segment, off
	}
	sp.end = end
	sp.parts = append(sp.parts, spanPart{ext: e, dst: dst, at: int(off - sp.start)})
	return true
}

// shard owns a slice of the objects (those whose ID hashes to it), the
// segments it wrote them to, and one reactor goroutine; only that
// goroutine touches anything below the queue.
type shard struct {
	e  *Engine
	id uint32
	q  reqQueue
	w  *waker
	io blockIO

	idx   *Index
	objs  *btree.BTreeG[ObjectState]
	pgLog *btree.BTreeG[pgEntry]
	// pendVer is the version of objects with mutations batched but not
	// yet durable, so versions are assigned in log order.
	pendVer map[ObjectID]pendingVersion

	segs     map[uint32]*segState
	open     uint32 // NoSegment when none
	openGen  uint64
	openPos  uint32
	batchSeq uint64 // next batch sequence number

	cur *batch // being filled
	// inflight holds the batches being written, oldest first, at most
	// maxInflight; they are acknowledged and applied in this order.
	inflight []*batch
	spares   []*batch
	// waitq holds mutations, in arrival order, that wait for room in the
	// log (the batch in flight, or space); later mutations queue behind
	// them so a shard's mutations stay in order, while reads and internal
	// requests go on being served.
	waitq     []*Request
	waitSince time.Time // when waitq's head started waiting
	failed    error

	reads   map[uint64]*readOp
	pollFds []unix.PollFd // sleep's, kept here so that it does not allocate
	// guests run on this reactor's loop (see Guest); guestReady says,
	// for the pass, which may have bytes to read, guestSlot where each
	// one's descriptor is in the last poll's set (-1: not there), and
	// guestPolled that the sleep's poll set guestReady already.
	guests      []Guest
	guestReady  []bool
	guestSlot   []int
	guestPolled bool
	// freeReads keeps request readOps for reuse: a 4 KiB read allocated
	// one each before (the reactor's only allocation per read).
	freeReads []*readOp
	nextTag   uint64
	// scratch holds free record-size read buffers, spanScratch free
	// buffers for coalesced reads, cleanScratch the cleaner's buffers for
	// small extents (see getCleanScratch).
	scratch, spanScratch, cleanScratch scratchPool
	// cache keeps records read from the device (Options.ReadCacheBytes);
	// nil when off.
	cache *readCache
	comps []ioCompletion

	snaps map[uint64]*shardSnap
	// recovering: the log is being replayed onto a checkpoint; space
	// counters are recounted afterwards.
	recovering bool

	clean cleanerState

	// Checkpoint bookkeeping: log bytes since the last capture.
	sinceCkpt   int64
	ckptWanted  bool
	ckptPending bool

	stats shardStats
	span  readSpan // startRead's, reused
	// delivered: a request was completed since the reactor last slept.
	delivered bool
}

type pendingVersion struct {
	version uint64
	seq     uint64 // batch that carries it
}

// shardSnap is one snapshot's frozen view of a shard.
type shardSnap struct {
	idx  *Index
	objs *btree.BTreeG[ObjectState]
	pins []uint32
}

func newShard(e *Engine, id uint32) *shard {
	s := &shard{
		e: e, id: id,
		idx:     NewIndex(),
		objs:    btree.NewG(32, objStateLess),
		pgLog:   btree.NewG(32, pgLess),
		pendVer: make(map[ObjectID]pendingVersion),
		segs:    make(map[uint32]*segState),
		open:    NoSegment,
		reads:   make(map[uint64]*readOp),
		pollFds: make([]unix.PollFd, 0, 4),
		snaps:   make(map[uint64]*shardSnap),
		cur:     &batch{hdr: directio.AlignedBlock(maxHeaderBlocks * 4096)},
		scratch: scratchPool{capacity: max(scratchRecordBytes, e.opts.RecordBytes), keep: 64},
		cache:   newReadCache(int(e.opts.ReadCacheBytes / int64(e.opts.Shards))),
		// Coalesced reads are fewer and larger: a few buffers serve them.
		spanScratch: scratchPool{capacity: spanBytesMax, keep: 8},
		// A full-speed cleaner step reads 4 × BytesPerBatch (see
		// cleanStep), in extents of at least 4 KiB.
		cleanScratch: scratchPool{capacity: cleanScratchBytes, keep: min(1024, 4*e.opts.Cleaner.BytesPerBatch/4096+16)},
	}
	s.q.init()
	s.stats.init()
	s.clean.victim = NoSegment
	s.batchSeq = 1 // 0 means "not known" to recovery
	return s
}

func (s *shard) segBase(seg uint32) int64 {
	sb := s.e.sb
	return int64(sb.SegmentsOffset) + int64(seg)*int64(sb.SegmentSize)
}

// run is the reactor: it runs to completion until an opStop request
// arrives and the shard drains. A reactor pinned to a CPU (cpu >= 0) is
// locked to its OS thread; an unpinned one is a plain goroutine.
//
// Why unpinned reactors are not locked: a request's submitter waits on its
// Done channel, and the Go scheduler puts the goroutine a channel send
// wakes on the sender's P, where it runs only when the sender gives the P
// up or another P steals it (after a back-off of a few µs stretched by the
// kernel's timer slack, and a futex wake of an idle thread). A locked
// reactor never gives its P to another goroutine: while it spins, what it
// woke waits. Unlocked, a spinning reactor yields (runtime.Gosched) and
// the woken submitter runs at once on the same thread, as fio's submit and
// reap do. Measured on the 2-core dev VM, in-process 4 KiB randread qd1
// p50 in hybrid mode: 202-219 µs locked, 89-103 µs unlocked (interrupt:
// 97-115 µs either way); the raw ring's own submit-and-wait is 76 µs.
func (s *shard) run(cpu int, ready chan<- error) {
	locked := cpu >= 0
	if locked {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			ready <- fmt.Errorf("engine: pinning reactor %d to CPU %d: %w", s.id, cpu, err)
			return
		}
	}
	io, err := s.e.newIO(s.e.opts.Mode == Poll)
	if err != nil {
		ready <- err
		return
	}
	s.io = io
	ready <- nil
	defer s.io.close()

	mode, spin := s.e.opts.Mode, s.e.opts.SpinTime
	lastWork := time.Now()
	var stop *Request
	for {
		t0 := nanotime()
		worked := false
		for len(s.waitq) > 0 && !s.addMutation(s.waitq[0]) {
			s.waitq[0] = nil
			s.waitq = s.waitq[1:]
			s.waitSince = time.Time{}
			worked = true
		}
		if len(s.waitq) > 0 {
			// The head waits for the batch in flight (milliseconds) or for
			// space; a write never waits for space longer than
			// Options.SpaceWait, whatever the cleaner and checkpoints
			// manage.
			if s.waitSince.IsZero() {
				s.waitSince = time.Now()
			} else if wait := s.e.opts.SpaceWait; time.Since(s.waitSince) > wait {
				s.failWaiting(fmt.Errorf("%w: shard %d: no segment became free within %v", ErrNoSpace, s.id, wait))
				s.waitSince = time.Time{}
			}
		}
		if len(s.guests) > 0 && s.runGuests() {
			worked = true
		}
		for i := 0; i < 256; i++ {
			r := s.q.pop()
			if r == nil {
				break
			}
			worked = true
			if r.Op == opStop {
				stop = r
				// Guests go at once: a busy one would keep every pass
				// working, and the reactor stops only after an idle
				// pass. Their requests in flight still complete.
				s.stopGuests()
				continue
			}
			s.handle(r)
		}
		if s.cleanStep() {
			worked = true
		}
		if s.maybeSeal() {
			worked = true
		}
		if err := s.io.submit(); err != nil {
			s.fail(fmt.Errorf("engine: shard %d: submit: %w", s.id, err))
		}
		if s.reap() {
			worked = true
		}
		if len(s.guests) > 0 {
			s.flushGuests()
		}
		s.stats.loops.Add(1)
		if worked {
			s.stats.busyNs.Add(nanotime() - t0)
			lastWork = time.Now()
			continue
		}
		if stop != nil && s.idle() {
			s.complete(stop, nil)
			return
		}
		if s.ckptWanted && !s.ckptPending {
			s.ckptWanted = false
			s.e.wantCheckpoint()
		}
		switch {
		case mode == Poll,
			mode == Hybrid && len(s.guests) == 0 && !s.ioPending() && time.Since(lastWork) < spin && !(locked && s.delivered):
			// Hybrid spins only for requests: device completions wake it
			// through the ring's eventfd, because a spinning reactor takes
			// the CPU the kernel needs to complete them (measured: the
			// p50 of a durable 4 KiB write rose from 0.33 to 0.5 ms on two
			// cores when hybrid spun while a write was in flight). A
			// locked hybrid reactor that has completed requests since it
			// last slept sleeps instead of spinning, so that its P (and
			// the submitters woken onto it) can be taken by another
			// thread; Poll spins regardless, which suits a reactor with a
			// core of its own and submitters on other cores. A reactor
			// with guests sleeps as in Interrupt mode: their descriptors
			// wake it, and each pass would cost a guest a system call to
			// look at its socket (measured on one node at 4 KiB randread
			// qd1: 26 system calls per read and a p50 of 195-202 µs
			// spinning, 14 and 158-172 µs not).
			if !locked {
				runtime.Gosched()
			}
			continue
		case mode == Hybrid && len(s.guests) == 0 && !locked && s.delivered:
			// About to block with submitters just woken onto this P: let
			// them run here first (they often submit again at once), not
			// on another thread after a steal. Measured, in-process 4 KiB
			// randread qd32, 6 alternating rounds: median 76k IOPS
			// without, 89k with. (Interrupt mode sleeps at once, by
			// definition.)
			s.delivered = false
			runtime.Gosched()
			continue
		}
		s.delivered = false
		s.sleep()
	}
}

// ioPending reports device I/O in flight.
func (s *shard) ioPending() bool {
	return len(s.inflight) > 0 || len(s.reads) > 0
}

// idle reports that nothing is in flight or waiting.
func (s *shard) idle() bool {
	return len(s.inflight) == 0 && len(s.cur.descs) == 0 && len(s.reads) == 0 && len(s.waitq) == 0 && s.clean.reading == 0
}

// sleep blocks until a request or a completion arrives (or 100 ms pass,
// so housekeeping such as checkpoint requests still runs).
func (s *shard) sleep() {
	// With device I/O in flight and no guests, a completion most likely
	// ends the sleep, and the ring's own wait takes it with the least
	// work; a producer wakes it through the ring's poll of ringEfd.
	// Otherwise a producer (or a guest's socket) most likely does, and
	// its eventfd write wakes a poll(2) directly, where the ring's poll
	// would add the ring's task work to every such wake-up.
	inRing := len(s.guests) == 0 && s.ioPending() && s.io.canSleepOn()
	if inRing {
		s.w.sleeping.Store(sleepRing)
	} else {
		s.w.sleeping.Store(sleepPoll)
	}
	if s.q.pending.Load() > 0 {
		s.w.sleeping.Store(awake)
		return
	}
	if inRing {
		t0 := nanotime()
		// If the ring had no room to arm its poll, this returns at
		// once, and the loop's next pass submits and sleeps again.
		if s.io.sleepOn(s.w.ringEfd, 100*time.Millisecond) {
			s.stats.sleeps.Add(1)
			s.stats.sleepNs.Add(nanotime() - t0)
		}
		s.w.sleeping.Store(awake)
		return
	}
	fds := append(s.pollFds[:0], unix.PollFd{Fd: int32(s.w.efd), Events: unix.POLLIN})
	ring := -1 // index of the ring's descriptor in fds
	if fd := s.io.wakeFd(); fd >= 0 {
		s.io.arm(true)
		ring = len(fds)
		fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
		// A completion posted before arming signalled nothing.
		if s.comps = s.io.reap(s.comps[:0]); len(s.comps) > 0 {
			s.w.sleeping.Store(awake)
			s.io.arm(false)
			s.dispatch(s.comps)
			return
		}
	} else if s.ioPending() {
		s.w.sleeping.Store(awake)
		return
	}
	if len(s.guests) > 0 {
		var now bool
		fds, now = s.guestFds(fds)
		s.pollFds = fds // keep what it grew to
		if now {
			s.w.sleeping.Store(awake)
			if ring >= 0 {
				s.io.arm(false)
			}
			return
		}
	}
	s.stats.sleeps.Add(1)
	t0 := nanotime()
	perr := poll(fds, 100)
	s.stats.sleepNs.Add(nanotime() - t0)
	s.w.sleeping.Store(awake)
	// Drain only the descriptors that woke the poll: a read of an empty
	// eventfd is a system call for nothing, two per wake-up before. A
	// signal that lands after the poll returned is drained at the next
	// sleep, whose poll it ends at once.
	if fds[0].Revents != 0 {
		s.w.drain()
	}
	if len(s.guests) > 0 {
		s.readyFromPoll(fds, perr == nil)
		s.guestPolled = true
	}
	if ring >= 0 {
		s.io.arm(false)
		if fds[ring].Revents != 0 {
			s.io.drainWake()
		}
	}
}

// handle starts one request.
func (s *shard) handle(r *Request) {
	switch r.Op {
	case OpRead:
		s.startRead(r)
	case OpWrite, OpTruncate, OpDelete:
		if len(s.waitq) > 0 || s.addMutation(r) {
			s.waitq = append(s.waitq, r)
		}
	case OpStat:
		st, ok := s.objs.Get(ObjectState{ID: r.Object})
		if !ok || st.Deleted {
			// A tombstone's state (seq, request ids) still answers
			// whether a delete was applied.
			r.State = st
			s.complete(r, fmt.Errorf("%w: %v", ErrNotFound, r.Object))
			return
		}
		r.State = st
		r.Version = st.Version
		s.complete(r, nil)
	case opChanges:
		s.changes(r)
	case opForget:
		s.forget(r)
	case opSnapshot:
		s.snapshot(r)
	case opRelease:
		s.release(r)
	case opStats:
		if r.Off == 1 {
			owned, err := s.verify()
			if err != nil {
				r.shardOut = err
			} else {
				r.shardOut = owned
			}
			// Hold still until Verify has compared every shard with the
			// free list, so that no segment changes hands in between.
			hold := r.shardIn.(chan struct{})
			s.complete(r, nil)
			<-hold
			return
		} else {
			r.shardOut = s.statsSnapshot()
		}
		s.complete(r, nil)
	case opCheckpoint:
		s.capture(r)
	case opCheckpointDone:
		s.checkpointDone(r)
	case opHost:
		s.host(r)
	default:
		s.complete(r, fmt.Errorf("%w: unknown operation %v", ErrInvalid, r.Op))
	}
}

// complete hands r back to its submitter.
func (s *shard) complete(r *Request, err error) {
	r.Err = err
	if !r.submitted.IsZero() {
		s.stats.observe(r.Op, time.Since(r.submitted))
	}
	s.delivered = true
	r.deliver()
}

// deliver hands a completed r to its submitter: Notify, or a send on
// Done that must not block.
func (r *Request) deliver() {
	if r.Notify != nil {
		r.Notify(r)
		return
	}
	select {
	case r.Done <- r:
	default:
		panic(fmt.Sprintf("engine: the Done channel of a %v request is full; it must hold every request outstanding on it", r.Op))
	}
}

// ---- mutations ----

// recordsOf returns how many records and data blocks r needs.
func recordsOf(r *Request, recordBytes int) (n int, blocks uint32) {
	n = idRecordsOf(r)
	if r.Replace {
		n++ // the delete record
	}
	if r.Op != OpWrite {
		return n + 1, 0
	}
	for rest := len(r.Buf); rest > 0; rest -= recordBytes {
		n++
		blocks += dataBlocksFor(uint32(min(rest, recordBytes)))
	}
	return n, blocks
}

// idRecordsOf is how many KindRequestID records r's ReplaceRequests needs:
// one per id, and a lone reset when the list is empty.
func idRecordsOf(r *Request) int {
	if !r.ReplaceRequests {
		return 0
	}
	return max(1, len(r.Requests))
}

func (s *shard) checkMutation(r *Request) error {
	switch {
	case s.failed != nil:
		return s.failed
	case r.Op == OpWrite && len(r.Buf) == 0:
		return fmt.Errorf("%w: write of 0 bytes to %v", ErrInvalid, r.Object)
	case r.Op == OpWrite && len(r.Buf) > MaxWriteBytes:
		return fmt.Errorf("%w: write of %d bytes to %v; at most %d per request", ErrInvalid, len(r.Buf), r.Object, MaxWriteBytes)
	case r.Op == OpWrite && (r.Off > MaxObjectSize || uint64(len(r.Buf)) > MaxObjectSize-r.Off):
		return fmt.Errorf("%w: write of %d bytes at %d to %v passes the largest object size %d", ErrInvalid, len(r.Buf), r.Off, r.Object, uint64(MaxObjectSize))
	case r.Op == OpTruncate && r.Off > MaxObjectSize:
		return fmt.Errorf("%w: truncate of %v to %d passes the largest object size %d", ErrInvalid, r.Object, r.Off, uint64(MaxObjectSize))
	case r.Replace && r.Op != OpWrite && r.Op != OpTruncate:
		return fmt.Errorf("%w: Replace on a %v of %v; only writes and truncates replace an object", ErrInvalid, r.Op, r.Object)
	case !r.ReplaceRequests && len(r.Requests) > 0:
		return fmt.Errorf("%w: %v of %v lists %d request ids without ReplaceRequests", ErrInvalid, r.Op, r.Object, len(r.Requests))
	case len(r.Requests) > KeptRequests:
		return fmt.Errorf("%w: %v of %v replaces the request ids by %d, at most %d are kept", ErrInvalid, r.Op, r.Object, len(r.Requests), KeptRequests)
	}
	for i, a := range r.Requests {
		if a.ID == (RequestID{}) {
			return fmt.Errorf("%w: %v of %v: replacement request id %d is zero", ErrInvalid, r.Op, r.Object, i)
		}
	}
	return nil
}

// roomFor reports whether r fits in the current batch now, or could once
// the batch is sealed; false means r must wait (held) for the in-flight
// batch or for space.
func (s *shard) roomFor(r *Request) bool {
	n, blocks := recordsOf(r, s.e.opts.RecordBytes)
	b := s.cur
	if len(b.descs) > 0 {
		if len(b.descs)+n > batchRecordsMax || int(b.blocks+blocks)*4096 > s.e.opts.BatchBytes && len(b.descs) > 0 {
			return false
		}
		return b.pos+b.bytesWith(n, blocks) <= s.e.sb.SegmentSize
	}
	return true
}

// addMutation puts a write, truncate or delete into the current batch,
// or completes it with an error. It reports wait when there is no room
// for r yet; r is then left to the caller.
func (s *shard) addMutation(r *Request) (wait bool) {
	if err := s.checkMutation(r); err != nil {
		s.complete(r, err)
		return false
	}
	if r.KeepIfAtLeast > 0 {
		if _, ok := s.pendVer[r.Object]; ok {
			// Decided once the object's batched mutation is durable: a
			// skip must rest on a durable state.
			return true
		}
		st, ok := s.objs.Get(ObjectState{ID: r.Object})
		if !ok {
			// Absent: never written, or a forgotten tombstone, whose seq
			// was at most the PG's forget floor (see forget.go).
			st.PGSeq = s.e.ForgetFloor(r.PG)
		}
		if st.PGSeq >= r.KeepIfAtLeast {
			r.Skipped, r.ResultSeq, r.Version = true, st.PGSeq, st.Version
			s.complete(r, nil)
			return false
		}
	}
	if !s.roomFor(r) {
		return true
	}
	if r.Op == OpWrite && s.e.alloc.nfree.Load() <= int64(s.e.alloc.reserve) {
		// The free segments left are the cleaner's: a write waits for it
		// to free some, even when the open segment has room, or the
		// cleaner could find no room to relocate into and the device
		// would stay full of dead data.
		s.wantCheckpointIfFrees()
		if !s.reclaimable() {
			s.complete(r, fmt.Errorf("%w: shard %d: every segment holds live or snapshot data", ErrNoSpace, s.id))
			return false
		}
		return true
	}
	n, blocks := recordsOf(r, s.e.opts.RecordBytes)
	b := s.cur
	if len(b.descs) == 0 {
		// A new batch starts where the log ends; it opens a segment when
		// the open one cannot take it.
		// Truncates and deletes free space, so on a full device they may
		// use the segments held back for the cleaner.
		if err := s.placeBatch(n, blocks, r.Op != OpWrite); err != nil {
			if errors.Is(err, errRetryLater) {
				return true
			}
			s.complete(r, err)
			return false
		}
	}
	ver := s.nextVersion(r.Object)
	seq := r.PGSeq
	if seq == 0 {
		seq = s.e.nextPGSeq(r.PG)
	} else {
		s.e.notePGSeq(r.PG, seq)
	}
	if r.ReplaceRequests {
		// The ids go first, in the mutation's batch: replay applies
		// them with it or not at all.
		for i := range idRecordsOf(r) {
			d := Desc{Object: r.Object, Kind: KindRequestID, Version: ver, PG: r.PG, PGSeq: seq, ResetIDs: i == 0}
			if i < len(r.Requests) {
				d.Offset, d.RequestID = r.Requests[i].Seq, r.Requests[i].ID
			}
			b.descs = append(b.descs, d)
			b.data = append(b.data, nil)
		}
	}
	if r.Replace {
		// Invariant, as for the ids: the mutation's own records follow
		// in this batch, so replay drops the old data only together with
		// writing the new.
		b.descs = append(b.descs, Desc{Object: r.Object, Kind: KindDelete, Version: ver, PG: r.PG, PGSeq: seq})
		b.data = append(b.data, nil)
	}
	d := Desc{Object: r.Object, Kind: KindWrite, Version: ver, PG: r.PG, PGSeq: seq, RequestID: r.RequestID}
	switch r.Op {
	case OpTruncate:
		d.Kind, d.Offset = KindTruncate, r.Off
		b.descs = append(b.descs, d)
		b.data = append(b.data, nil)
	case OpDelete:
		d.Kind = KindDelete
		b.descs = append(b.descs, d)
		b.data = append(b.data, nil)
	case OpWrite:
		for done, size := 0, s.e.opts.RecordBytes; done < len(r.Buf); done += size {
			p := r.Buf[done:min(len(r.Buf), done+size)]
			d.Offset, d.Length = r.Off+uint64(done), uint32(len(p))
			d.DataCRC = crc32.Checksum(p, castagnoli)
			b.descs = append(b.descs, d)
			d.RequestID = RequestID{} // on the first record only
			if len(p)%4096 != 0 || uintptr(unsafe.Pointer(&p[0]))%4096 != 0 {
				p = b.stage(p)
				s.stats.copiedIn.Add(uint64(d.Length))
			}
			b.data = append(b.data, p)
		}
	}
	b.blocks += blocks
	s.pendVer[r.Object] = pendingVersion{version: ver, seq: b.seq}
	r.Version, r.ResultSeq = ver, seq
	b.done = append(b.done, batchReq{r: r})
	return false
}

var errRetryLater = errors.New("engine: retry when space is reclaimed")

// placeBatch sets where the (empty) current batch goes, opening a new
// segment when the open one has no room for n records of blocks blocks.
func (s *shard) placeBatch(n int, blocks uint32, cleaner bool) error {
	b := s.cur
	need := b.bytesWith(n, blocks)
	if s.open != NoSegment && s.openPos+need <= s.e.sb.SegmentSize {
		b.seg, b.gen, b.pos, b.withHeader = s.open, s.openGen, s.openPos, false
		b.seq = s.batchSeq
		return nil
	}
	if len(s.inflight) > 0 {
		// The segment switch waits for the batches in flight, so that a
		// segment's last batch is durable before the next segment is
		// written (recovery then finds a torn tail only in a shard's last
		// segment).
		return errRetryLater
	}
	seg, gen, err := s.e.alloc.take(cleaner)
	if err != nil {
		if s.reclaimable() {
			s.wantCheckpointIfFrees()
			return errRetryLater
		}
		return err
	}
	if s.open != NoSegment {
		s.segs[s.open].closed = true
	}
	s.segs[seg] = &segState{gen: gen}
	s.open, s.openGen, s.openPos = seg, gen, segHeaderSize
	if segHeaderSize+need > s.e.sb.SegmentSize {
		return fmt.Errorf("%w: a batch of %d bytes does not fit a segment of %d", ErrInvalid, need, s.e.sb.SegmentSize)
	}
	b.seg, b.gen, b.pos, b.withHeader = seg, gen, segHeaderSize, true
	b.seq = s.batchSeq
	return nil
}

func (s *shard) nextVersion(obj ObjectID) uint64 {
	if p, ok := s.pendVer[obj]; ok {
		return p.version + 1
	}
	st, _ := s.objs.Get(ObjectState{ID: obj})
	return st.Version + 1
}

// maybeSeal writes the current batch when fewer than maxInflight batches
// are in flight: group commit, since everything that arrived while the
// earlier batches were being written rides in this one, and pipelining,
// since a second batch is written while the first one's flush completes.
func (s *shard) maybeSeal() bool {
	b := s.cur
	if len(s.inflight) >= maxInflight || len(b.descs) == 0 {
		return false
	}
	h := EncodeBatchHeader(b.hdr, b.descs, b.gen, b.seq)
	hdr := b.hdr[:int(h.HeaderBlocks)*4096]
	off := s.segBase(b.seg) + int64(b.pos)
	if b.withHeader {
		seghdr := directio.AlignedBlock(segHeaderSize)
		(&SegmentHeader{Index: b.seg, Generation: b.gen, Shard: s.id, Device: s.e.sb.UUID}).Encode(seghdr)
		b.iov = append(b.iov, seghdr)
		off -= segHeaderSize
	}
	b.iov = append(b.iov, hdr)
	for _, d := range b.data {
		if d != nil {
			b.iov = append(b.iov, d)
		}
	}
	// Flush unless the device is power-loss protected.
	flush := !s.e.sb.PLP
	tag := s.newTag()
	if !s.io.queueWrite(off, b.iov, tagWrite|tag, flush, tagFlush|tag) {
		b.iov = b.iov[:0]
		return false
	}
	b.waiting = 1
	if flush {
		b.waiting = 2
	}
	b.started = time.Now()
	s.creditForeground(b.foregroundBytes(), b.started)
	size := uint32(len(hdr)) + b.blocks*4096
	s.openPos = b.pos + size
	s.batchSeq++
	s.sinceCkpt += int64(size)
	b.tag = tag
	s.inflight = append(s.inflight, b)
	s.cur = s.spareBatch()
	s.stats.batches.Add(1)
	s.stats.records.Add(uint64(len(b.descs)))
	return true
}

func (s *shard) newTag() uint64 {
	s.nextTag++
	return s.nextTag &^ tagKindMax
}

// reap handles every completion that is ready.
func (s *shard) reap() bool {
	s.comps = s.io.reap(s.comps[:0])
	if len(s.comps) == 0 {
		return false
	}
	s.dispatch(s.comps)
	return true
}

func (s *shard) dispatch(comps []ioCompletion) {
	for _, c := range comps {
		switch c.tag & tagKindMax {
		case tagWrite, tagFlush:
			s.batchIO(c)
		case tagRead:
			s.readDone(c)
		}
	}
}

func (s *shard) spareBatch() *batch {
	if n := len(s.spares); n > 0 {
		b := s.spares[n-1]
		s.spares = s.spares[:n-1]
		return b
	}
	return &batch{hdr: directio.AlignedBlock(maxHeaderBlocks * 4096)}
}

func (s *shard) batchIO(c ioCompletion) {
	tag := c.tag &^ tagKindMax
	var b *batch
	for _, x := range s.inflight {
		if x.tag == tag {
			b = x
		}
	}
	if b == nil {
		panic(fmt.Sprintf("engine: shard %d: completion %#x of no batch in flight", s.id, c.tag))
	}
	if c.tag&tagKindMax == tagWrite {
		b.writeRes = c.res
	} else {
		b.flushRes = c.res
	}
	b.waiting--
	// Acknowledge in log order: a batch that is durable before an older
	// one waits for it.
	for len(s.inflight) > 0 && s.inflight[0].waiting == 0 {
		b := s.inflight[0]
		// Shift rather than reslice: s.inflight[1:] would shed capacity
		// and make the next append allocate, once per batch.
		n := copy(s.inflight, s.inflight[1:])
		s.inflight[n] = nil
		s.inflight = s.inflight[:n]
		s.batchDone(b)
	}
}

// batchDone acknowledges and applies a batch whose write and flush have
// completed, or fails it.
func (s *shard) batchDone(b *batch) {
	want := 0
	for _, v := range b.iov {
		want += len(v)
	}
	var err error
	switch {
	case s.failed != nil:
		// An older batch failed: this one may be on the device, but
		// nothing after a failed batch may be acknowledged.
		err = s.failed
	case b.writeRes < 0:
		err = fmt.Errorf("%w: shard %d: writing batch %d at segment %d offset %d: %v", ErrFailed, s.id, b.seq, b.seg, b.pos, unix.Errno(-b.writeRes))
	case int(b.writeRes) != want:
		err = fmt.Errorf("%w: shard %d: batch %d: short write of %d of %d bytes", ErrFailed, s.id, b.seq, b.writeRes, want)
	case b.flushRes < 0:
		err = fmt.Errorf("%w: shard %d: flushing batch %d: %v", ErrFailed, s.id, b.seq, unix.Errno(-b.flushRes))
	}
	s.stats.batchLat.observe(time.Since(b.started))
	if err != nil {
		// The batch may or may not be on the device; the shard stops
		// taking mutations.
		s.fail(err)
		for _, br := range b.done {
			s.complete(br.r, err)
		}
		s.cleanAbort()
	} else {
		s.applyBatch(b.descs, b.seg, b.pos, b.gen)
		for _, br := range b.done {
			br.r.N = len(br.r.Buf)
			if br.r.Op != OpWrite {
				br.r.N = 0
			}
			s.complete(br.r, nil)
		}
		s.cleanApplied(b)
	}
	for obj, p := range s.pendVer {
		if p.seq == b.seq {
			delete(s.pendVer, obj)
		}
	}
	b.reset()
	s.spares = append(s.spares, b)
	if s.sinceCkpt >= s.e.opts.CheckpointBytes {
		s.ckptWanted = true
	}
}

// fail makes the shard refuse mutations from now on.
func (s *shard) fail(err error) {
	if s.failed == nil {
		s.failed = err
		s.e.opts.Logger.Error("engine: shard stopped taking writes", "shard", s.id, "err", err)
	}
	s.failWaiting(s.failed)
	// Queued mutations in the current batch were never written.
	for _, br := range s.cur.done {
		s.complete(br.r, s.failed)
	}
	s.cur.reset()
	s.cleanAbort()
}

// failWaiting completes every waiting mutation with err.
func (s *shard) failWaiting(err error) {
	for _, r := range s.waitq {
		s.complete(r, err)
	}
	clear(s.waitq)
	s.waitq = s.waitq[:0]
}

// applyBatch applies a durable batch's records, in order, to the index,
// the object table and the space accounting. Recovery calls it too.
func (s *shard) applyBatch(descs []Desc, seg uint32, pos uint32, gen uint64) {
	dataOff := pos + uint32(headerBlocksFor(len(descs)))*4096
	for i := range descs {
		d := &descs[i]
		switch d.Kind {
		case KindWrite:
			loc := Location{Segment: seg, Offset: dataOff, Length: d.Length, CRC: d.DataCRC}
			dataOff += dataBlocksFor(d.Length) * 4096
			if d.Relocated {
				moved := s.idx.Relocate(d.Object, d.Offset, d.From, loc)
				s.addLive(seg, int64(moved))
				s.addLive(d.From.Segment, -int64(moved))
				continue
			}
			for _, x := range s.idx.Insert(d.Object, d.Offset, loc, d.Version) {
				s.addLive(x.Loc.Segment, -int64(x.Len))
			}
			s.addLive(seg, int64(d.Length))
			st := s.objState(d.Object)
			st.Size = max(st.Size, d.Offset+uint64(d.Length))
			if st.Deleted {
				st.Deleted, st.Size = false, d.Offset+uint64(d.Length)
			}
			st.addRequest(d.RequestID, d.PGSeq)
			s.setObj(st, d)
		case KindTruncate:
			for _, x := range s.idx.Truncate(d.Object, d.Offset) {
				s.addLive(x.Loc.Segment, -int64(x.Len))
			}
			st := s.objState(d.Object)
			st.Size, st.Deleted = d.Offset, false
			st.addRequest(d.RequestID, d.PGSeq)
			s.setObj(st, d)
		case KindDelete:
			for _, x := range s.idx.Delete(d.Object) {
				s.addLive(x.Loc.Segment, -int64(x.Len))
			}
			st := s.objState(d.Object)
			st.Size, st.Deleted = 0, true
			st.addRequest(d.RequestID, d.PGSeq)
			s.setObj(st, d)
		case KindRequestID:
			// Invariant: the request's mutation record follows in this
			// batch and sets the version, seq and PG log entry, so an
			// object created here is never seen half made.
			st := s.objState(d.Object)
			if d.ResetIDs {
				st.Requests = [KeptRequests]AppliedRequest{}
			}
			st.addRequest(d.RequestID, d.Offset)
			s.objs.ReplaceOrInsert(st)
		}
	}
}

func (s *shard) objState(obj ObjectID) ObjectState {
	st, ok := s.objs.Get(ObjectState{ID: obj})
	if !ok {
		st = ObjectState{ID: obj}
	}
	return st
}

// setObj records st after mutation d and moves the object in the PG log.
func (s *shard) setObj(st ObjectState, d *Desc) {
	if st.PGSeq != 0 || st.Version != 0 {
		s.pgLog.Delete(pgEntry{PG: st.PG, Seq: st.PGSeq, Object: st.ID})
	}
	st.Version, st.PG, st.PGSeq = d.Version, d.PG, d.PGSeq
	s.objs.ReplaceOrInsert(st)
	s.pgLog.ReplaceOrInsert(pgEntry{PG: st.PG, Seq: st.PGSeq, Object: st.ID})
	s.e.notePGSeq(d.PG, d.PGSeq)
}

func (s *shard) addLive(seg uint32, n int64) {
	if s.recovering {
		return // recount sets the counters once the log is replayed
	}
	st := s.segs[seg]
	if st == nil {
		panic(fmt.Sprintf("engine: shard %d: extent in segment %d, which the shard does not own", s.id, seg))
	}
	if n < 0 && uint64(-n) > st.live {
		panic(fmt.Sprintf("engine: shard %d: segment %d live bytes %d would go negative by %d", s.id, seg, st.live, -n))
	}
	st.live = uint64(int64(st.live) + n)
	if st.live == 0 {
		s.maybeFree(seg)
	}
}

// maybeFree returns seg to the allocator when nothing can need it any
// more: no live extent, no snapshot, no read in flight, and the last
// durable checkpoint already had it closed and unpinned.
func (s *shard) maybeFree(seg uint32) {
	st := s.segs[seg]
	if st == nil || st.live != 0 || st.pins != 0 || st.reads != 0 || !st.closed || !st.durableFree || seg == s.clean.victim {
		return
	}
	delete(s.segs, seg)
	s.e.alloc.give(seg)
	s.stats.segsFreed.Add(1)
}

// wantCheckpointIfFrees asks for a checkpoint when one would free a
// segment: one that is dead and unpinned but was not yet closed (or was
// pinned) when the last durable checkpoint was captured. Checkpoints
// write the whole index, so they are not asked for otherwise.
func (s *shard) wantCheckpointIfFrees() {
	if s.ckptPending || s.ckptWanted {
		return
	}
	for seg, st := range s.segs {
		if st.live == 0 && st.pins == 0 && st.closed && !st.durableFree && seg != s.clean.victim {
			s.ckptWanted = true
			return
		}
	}
}

// reclaimable reports whether a checkpoint or the cleaner can free a
// segment of this shard.
func (s *shard) reclaimable() bool {
	for seg, st := range s.segs {
		if st.pins == 0 && st.closed && seg != s.open {
			if st.live == 0 || float64(st.live) < float64(s.e.sb.SegmentSize)*s.e.opts.Cleaner.MaxLiveRatio && !s.e.opts.Cleaner.Disabled {
				return true
			}
		}
	}
	return false
}

// ---- reads ----

func (s *shard) startRead(r *Request) {
	s.clean.readStarted = true // reads hold the cleaner back too (cleanerState)
	st, ok := s.objs.Get(ObjectState{ID: r.Object})
	if !ok || st.Deleted {
		s.complete(r, fmt.Errorf("%w: %v", ErrNotFound, r.Object))
		return
	}
	if r.Off >= st.Size || len(r.Buf) == 0 {
		r.N = 0
		err := error(nil)
		if len(r.Buf) > 0 {
			err = io.EOF
		}
		s.complete(r, err)
		return
	}
	n := uint64(len(r.Buf))
	if n > st.Size-r.Off {
		n = st.Size - r.Off
	}
	r.N = int(n)
	r.pending = 1 // released below, after every read is queued
	covered := uint64(0)
	sp := &s.span
	cached := s.cachesRead(r)
	s.idx.Lookup(r.Object, r.Off, n, func(e Extent) bool {
		covered += uint64(e.Len)
		dst := r.Buf[e.Off-r.Off : e.End()-r.Off]
		if cached && s.readCached(e, dst) {
			return true
		}
		if !sp.add(s, e, dst) {
			s.queueSpan(r, sp)
			sp.add(s, e, dst)
		}
		return true
	})
	s.queueSpan(r, sp)
	if covered < n {
		// Holes read as zeros; clear the gaps between extents.
		pos := r.Off
		s.idx.Lookup(r.Object, r.Off, n, func(e Extent) bool {
			clear(r.Buf[pos-r.Off : e.Off-r.Off])
			pos = e.End()
			return true
		})
		clear(r.Buf[pos-r.Off : n])
	}
	s.readFinished(r, nil)
}

// direct returns the caller's buffer for sp's whole range when the span
// can be read straight into it: whole records of whole blocks, with no
// gap between them on the device or in the buffer, and an aligned start.
func (sp *readSpan) direct() ([]byte, bool) {
	first := sp.parts[0].dst
	if uintptr(unsafe.Pointer(&first[0]))%4096 != 0 {
		return nil, false
	}
	n := 0
	for _, p := range sp.parts {
		e := p.ext
		if e.Skip != 0 || e.Len != e.Loc.Length || e.Len%4096 != 0 || p.at != n ||
			n >= cap(first) || &p.dst[0] != &first[:cap(first)][n] {
			return nil, false
		}
		n += int(e.Len)
	}
	return first[:n:n], true
}

// queueSpan queues the read of what sp collected (the records are read
// and verified whole), and empties it. The read goes straight into the
// caller's buffer when sp.direct allows, through scratch otherwise.
func (s *shard) queueSpan(r *Request, sp *readSpan) {
	if len(sp.parts) == 0 {
		return
	}
	op := s.newReadOp()
	op.r, op.ext, op.off = r, sp.parts[0].ext, sp.start
	if len(sp.parts) == 1 {
		// The common 4 KiB read: no allocation beyond the op.
		op.one[0] = sp.parts[0]
		op.parts = op.one[:]
	} else {
		op.parts = slices.Clone(sp.parts)
	}
	if dst, ok := sp.direct(); ok {
		op.buf = dst
	} else {
		op.buf, op.own = s.getScratch(int(sp.end-sp.start)), true
	}
	r.pending++
	s.queueRead(op)
	clear(sp.parts)
	sp.parts = sp.parts[:0]
}

// newReadOp returns a zeroed readOp for a request's read.
func (s *shard) newReadOp() *readOp {
	if n := len(s.freeReads); n > 0 {
		op := s.freeReads[n-1]
		s.freeReads[n-1] = nil
		s.freeReads = s.freeReads[:n-1]
		return op
	}
	return new(readOp)
}

// recycleRead keeps a finished request read's op for newReadOp. Invariant:
// nothing refers to op any more (it left s.reads, and its request was
// told).
func (s *shard) recycleRead(op *readOp) {
	if len(s.freeReads) < 256 {
		*op = readOp{}
		s.freeReads = append(s.freeReads, op)
	}
}

func (s *shard) queueRead(op *readOp) {
	tag := s.newTag()
	for !s.io.queueRead(op.off, op.buf, tagRead|tag) {
		// The ring is full: submit and reap to make room.
		s.io.submit()
		s.reap()
	}
	s.reads[tag] = op
	s.segs[op.ext.Loc.Segment].reads++
	s.stats.deviceReads.Add(1)
	s.stats.deviceReadBytes.Add(uint64(len(op.buf)))
}

// scratchPool keeps free aligned buffers of one capacity, at most keep.
type scratchPool struct {
	capacity, keep int
	free           [][]byte
}

// get returns an aligned buffer of n <= capacity bytes.
func (p *scratchPool) get(n int) []byte {
	if k := len(p.free); k > 0 {
		b := p.free[k-1]
		p.free = p.free[:k-1]
		return b[:n]
	}
	return directio.AlignedBlock(p.capacity)[:n:p.capacity]
}

// put keeps b if get made it and there is room.
func (p *scratchPool) put(b []byte) bool {
	if cap(b) != p.capacity {
		return false
	}
	if len(p.free) < p.keep {
		p.free = append(p.free, b[:cap(b)])
	}
	return true
}

func (s *shard) getScratch(size int) []byte {
	switch {
	case size <= s.scratch.capacity:
		return s.scratch.get(size)
	case size <= s.spanScratch.capacity:
		return s.spanScratch.get(size)
	}
	return directio.AlignedBlock(size)
}

// cleanScratchBytes is the capacity of the cleaner's buffers for small
// extents: the default record size.
const cleanScratchBytes = 16 << 10

// getCleanScratch returns a buffer of size bytes for the cleaner to read
// an extent into. Extents of up to cleanScratchBytes come from a pool of
// their own, sized for a whole cleaner step: a step reads hundreds of
// small extents at once, which the record pool (64 buffers of 64 KiB)
// served by allocating and zeroing a new 68 KiB block for most of them
// (12% of the CPU of 4 KiB random writes at qd32 on an 80%-full device).
// putScratch takes the buffers back.
func (s *shard) getCleanScratch(size int) []byte {
	if size <= s.cleanScratch.capacity {
		return s.cleanScratch.get(size)
	}
	return s.getScratch(size)
}

// putScratch keeps a buffer getScratch or getCleanScratch made for
// reuse.
func (s *shard) putScratch(b []byte) {
	if !s.scratch.put(b) && !s.cleanScratch.put(b) {
		s.spanScratch.put(b)
	}
}

func (s *shard) readDone(c ioCompletion) {
	tag := c.tag &^ tagKindMax
	op := s.reads[tag]
	delete(s.reads, tag)
	seg := op.ext.Loc.Segment
	var err error
	switch {
	case c.res < 0:
		err = fmt.Errorf("engine: reading %v at device offset %d: %w", op.ext.Object, op.off, unix.Errno(-c.res))
	case int(c.res) != len(op.buf):
		err = fmt.Errorf("engine: reading %v at device offset %d: short read of %d of %d bytes", op.ext.Object, op.off, c.res, len(op.buf))
	case op.done != nil:
		// The cleaner verifies the records its read covers.
	default:
		cached := s.cachesRead(op.r)
		for _, p := range op.parts {
			if err = s.verifyRecord(p.ext, op.buf[p.at:], op.off+int64(p.at)); err != nil {
				break
			}
			if cached {
				if k, ok := s.cacheKey(p.ext); ok {
					s.cache.put(k, op.buf[p.at:p.at+int(p.ext.Loc.Length)])
				}
			}
			if op.own {
				copy(p.dst, op.buf[p.at+int(p.ext.Skip):p.at+int(p.ext.Skip+p.ext.Len)])
				s.stats.copiedOut.Add(uint64(p.ext.Len))
			}
		}
		if cached {
			s.stats.cacheBytes.Store(int64(s.cache.bytes))
		}
	}
	if op.done != nil {
		op.done(op, err)
	} else {
		if op.own {
			s.putScratch(op.buf)
		}
		s.readFinished(op.r, err)
		s.recycleRead(op)
	}
	if st := s.segs[seg]; st != nil {
		st.reads--
		if st.reads == 0 && st.live == 0 {
			s.maybeFree(seg)
		}
	}
}

// cacheReadMax is the largest request the read cache serves and fills: a
// large read is most likely a scan, whose data would push out what small
// reads come back for (and cost a copy of everything it reads), and whose
// records read together in a few device reads, which cached records in
// the middle would only split.
const cacheReadMax = 64 << 10

// cachesRead reports whether r's records are looked up in the read cache
// and, once read from the device, put there.
func (s *shard) cachesRead(r *Request) bool {
	return s.cache != nil && len(r.Buf) <= cacheReadMax
}

// cacheKey names e's record in the read cache; false when the shard
// does not own e's segment (never, for an extent of its index), whose
// generation it then cannot name.
func (s *shard) cacheKey(e Extent) (cacheKey, bool) {
	st := s.segs[e.Loc.Segment]
	if st == nil {
		return cacheKey{}, false
	}
	return cacheKey{gen: st.gen, seg: e.Loc.Segment, offset: e.Loc.Offset}, true
}

// readCached copies e's bytes into dst from the read cache (which the
// caller has: cachesRead), if its record is there and still matches the
// index's checksum.
func (s *shard) readCached(e Extent, dst []byte) bool {
	k, ok := s.cacheKey(e)
	if !ok {
		return false
	}
	rec, ok := s.cache.get(k)
	if !ok {
		return false
	}
	if len(rec) != int(e.Loc.Length) || crc32.Checksum(rec, castagnoli) != e.Loc.CRC {
		// Memory gone bad (or a bug): never serve it; the device read
		// that follows decides.
		s.cache.forget(k)
		s.stats.cacheBytes.Store(int64(s.cache.bytes))
		return false
	}
	copy(dst, rec[e.Skip:e.Skip+e.Len])
	s.stats.cacheHits.Add(1)
	return true
}

// verifyRecord checks the CRC of e's record, read into rec (which starts
// with it) from device offset off.
func (s *shard) verifyRecord(e Extent, rec []byte, off int64) error {
	if got := crc32.Checksum(rec[:e.Loc.Length], castagnoli); got != e.Loc.CRC {
		s.stats.corrupt.Add(1)
		return fmt.Errorf("%w: %v bytes [%d,%d): record at segment %d offset %d (device offset %d) has checksum %#08x, index says %#08x",
			ErrCorrupt, e.Object, e.Off, e.End(), e.Loc.Segment, e.Loc.Offset, off, got, e.Loc.CRC)
	}
	return nil
}

func (s *shard) readFinished(r *Request, err error) {
	if err != nil && r.Err == nil {
		r.Err = err
	}
	r.pending--
	if r.pending > 0 {
		return
	}
	err = r.Err
	if err == nil && r.N < len(r.Buf) {
		err = io.EOF
	}
	if err != nil && !errors.Is(err, io.EOF) {
		r.N = 0
	}
	s.complete(r, err)
}

// ---- changes ----

// changes lists the shard's objects of PG r.PG changed after r.PGSeq.
func (s *shard) changes(r *Request) {
	limit := int(r.Off)
	var out []ObjectState
	s.pgLog.AscendGreaterOrEqual(pgEntry{PG: r.PG, Seq: r.PGSeq + 1}, func(p pgEntry) bool {
		if p.PG != r.PG || (limit > 0 && len(out) >= limit) {
			return false
		}
		st, _ := s.objs.Get(ObjectState{ID: p.Object})
		out = append(out, st)
		return true
	})
	r.shardOut = out
	s.complete(r, nil)
}

func nanotime() int64 { return time.Now().UnixNano() }

var _ = atomic.Int64{}
