package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"

	"github.com/weftfs/weft/internal/vfs"
)

// Engine is one node's storage engine on one device: a set of shards,
// each a reactor owning a slice of the objects and the segments they are
// logged in.
//
// All methods are safe for concurrent use.
type Engine struct {
	opts Options
	fs   vfs.FS
	dev  *Device
	// sb is the device's superblock. Only SetClusterFSID changes it (its
	// Version, Generation and ClusterFSID, under sbMu); the layout fields
	// the data path reads never change.
	sb     *Superblock
	sbMu   sync.Mutex
	shards []*shard
	alloc  allocator
	pgSeqs sync.Map // uint32 -> *atomic.Uint64: the highest sequence number of each PG
	floors sync.Map // uint32 -> *atomic.Uint64: each PG's forget floor (see forget.go)
	ioDesc string

	ckptMu    sync.Mutex // serialises checkpoints; never taken on the data path
	ckptSeq   uint64
	ckptSlot  int // slot the next checkpoint goes to
	ckptKick  chan struct{}
	ckptStop  chan struct{}
	ckptDone  chan struct{}
	ckptStats checkpointStats

	snapMu   sync.Mutex
	snaps    map[uint64]*Snapshot
	nextSnap uint64

	started    time.Time
	closed     atomic.Bool
	submitting atomic.Int64 // Submit and broadcast calls past their closed check
	// nextGuestShard deals Host's guests out to the shards in turn.
	nextGuestShard atomic.Uint32
	closeMu        sync.Mutex
	recovery       RecoveryStats
}

// RecoveryStats say what Open had to do.
type RecoveryStats struct {
	CheckpointSeq   uint64 // 0: none found
	SegmentsScanned int
	BatchesReplayed int
	BytesScanned    int64
	TornTails       int
	Duration        time.Duration
}

type checkpointStats struct {
	count    atomic.Uint64
	failures atomic.Uint64
	bytes    atomic.Int64
	nanos    atomic.Int64
	lastErr  atomic.Pointer[string]
}

// allocator hands out free segments, each with the next device-wide
// generation. It is taken once per segment opened or freed, never per
// request.
type allocator struct {
	mu      sync.Mutex
	free    []uint32
	nextGen uint64
	reserve int // segments only the cleaner may take
	nfree   atomic.Int64
}

func (a *allocator) take(cleaner bool) (uint32, uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.free) == 0 || (!cleaner && len(a.free) <= a.reserve) {
		return 0, 0, fmt.Errorf("%w: %d free segments, %d held back for the cleaner", ErrNoSpace, len(a.free), a.reserve)
	}
	seg := a.free[len(a.free)-1]
	a.free = a.free[:len(a.free)-1]
	gen := a.nextGen
	a.nextGen++
	a.nfree.Store(int64(len(a.free)))
	return seg, gen, nil
}

func (a *allocator) give(seg uint32) {
	a.mu.Lock()
	a.free = append(a.free, seg)
	a.nfree.Store(int64(len(a.free)))
	a.mu.Unlock()
}

func (a *allocator) generation() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nextGen
}

func (o *Options) normalize() error {
	if o.Path == "" {
		return fmt.Errorf("%w: no device path", ErrInvalid)
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Shards <= 0 {
		o.Shards = max(1, len(o.Cores))
	}
	if o.Shards > 256 {
		return fmt.Errorf("%w: %d shards; at most 256", ErrInvalid, o.Shards)
	}
	if o.SpinTime <= 0 {
		o.SpinTime = 50 * time.Microsecond
	}
	if o.SpaceWait <= 0 {
		o.SpaceWait = 5 * time.Second
	}
	if o.RingEntries == 0 {
		o.RingEntries = 256
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 1 << 20
	}
	if o.ReadCacheBytes < 0 {
		return fmt.Errorf("%w: read cache of %d bytes: want 0 (off) or more", ErrInvalid, o.ReadCacheBytes)
	}
	if o.RecordBytes == 0 {
		o.RecordBytes = DefaultRecordBytes
	}
	if !ValidRecordBytes(int64(o.RecordBytes)) {
		return fmt.Errorf("%w: record size %d: want a multiple of 4096 from 4096 to %d", ErrInvalid, o.RecordBytes, MaxRecordBytes)
	}
	if o.Cleaner.FreeTarget <= 0 {
		o.Cleaner.FreeTarget = 0.15
	}
	if o.Cleaner.MaxLiveRatio <= 0 {
		o.Cleaner.MaxLiveRatio = 0.9
	}
	if o.Cleaner.BytesPerBatch <= 0 {
		o.Cleaner.BytesPerBatch = 256 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch o.IO {
	case IOAuto, IORing, IOSync:
	default:
		return fmt.Errorf("%w: I/O backend %q: want ring or sync", ErrInvalid, o.IO)
	}
	return nil
}

// Open opens the formatted device at opts.Path exclusively, recovers its
// state (newest checkpoint, then the log written after it) and starts the
// reactors. Everything acknowledged before a crash is readable afterwards.
func Open(opts Options) (*Engine, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	dev, err := OpenDevice(opts.FS, opts.Path)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		opts: opts, fs: opts.FS, dev: dev, sb: dev.SB,
		ckptKick: make(chan struct{}, 1), ckptStop: make(chan struct{}), ckptDone: make(chan struct{}),
		snaps: make(map[uint64]*Snapshot),
	}
	if opts.CheckpointBytes <= 0 {
		e.opts.CheckpointBytes = int64(max(e.sb.SegmentCount/4, 4)) * int64(e.sb.SegmentSize)
	}
	e.alloc.reserve = opts.Shards + 1
	if _, ok := vfs.Fd(dev.File); !ok && opts.IO == IORing {
		dev.Close()
		return nil, fmt.Errorf("%w: the ring backend needs a device on the OS file system", ErrInvalid)
	}
	for i := 0; i < opts.Shards; i++ {
		e.shards = append(e.shards, newShard(e, uint32(i)))
	}
	t0 := time.Now()
	if err := e.recover(); err != nil {
		dev.Close()
		return nil, err
	}
	e.recovery.Duration = time.Since(t0)
	for i, s := range e.shards {
		w, err := newWaker()
		if err != nil {
			e.stopShards(i)
			dev.Close()
			return nil, fmt.Errorf("engine: eventfd: %w", err)
		}
		s.w = w
		cpu := -1
		if len(opts.Cores) > 0 {
			cpu = opts.Cores[i%len(opts.Cores)]
		}
		ready := make(chan error, 1)
		go s.run(cpu, ready)
		if err := <-ready; err != nil {
			s.w.close()
			e.stopShards(i)
			dev.Close()
			return nil, err
		}
	}
	e.started = time.Now()
	go e.checkpointer()
	if (e.recovery.BatchesReplayed > 0 || e.recovery.CheckpointSeq == 0) && !opts.noRecoveryCheckpoint {
		e.wantCheckpoint()
	}
	e.opts.Logger.Info("engine: opened", "device", opts.Path, "uuid", e.sb.UUID.String(), "shards", opts.Shards,
		"mode", opts.Mode.String(), "io", e.ioDesc, "checkpoint", e.recovery.CheckpointSeq,
		"replayed_batches", e.recovery.BatchesReplayed, "recovery", e.recovery.Duration)
	return e, nil
}

// newIO makes a reactor's I/O backend.
func (e *Engine) newIO(dedicated bool) (blockIO, error) {
	_, isOS := vfs.Fd(e.dev.File)
	if e.opts.IO == IOSync || (e.opts.IO == IOAuto && !isOS) {
		e.ioDesc = "sync"
		return newSyncIO(e.dev.File), nil
	}
	r, err := newRingIO(e.dev.File, e.opts.RingEntries, dedicated)
	if err != nil {
		return nil, err
	}
	e.ioDesc = r.describe()
	return r, nil
}

// Describe says which device, I/O backend and polling mode are in use.
func (e *Engine) Describe() string {
	return fmt.Sprintf("device %s (%s, %d segments of %d MiB%s), %d shard(s), %s polling, I/O: %s",
		e.opts.Path, e.sb.UUID, e.sb.SegmentCount, e.sb.SegmentSize>>20, map[bool]string{true: ", plp"}[e.sb.PLP],
		len(e.shards), e.opts.Mode, e.ioDesc)
}

// Superblock returns the device's superblock.
func (e *Engine) Superblock() Superblock {
	e.sbMu.Lock()
	defer e.sbMu.Unlock()
	return *e.sb
}

// ErrClusterFSID is returned by SetClusterFSID for a device that already
// records another cluster FSID.
var ErrClusterFSID = errors.New("engine: device records another cluster FSID")

// SetClusterFSID records id (not zero) as the device's cluster FSID (see
// Superblock.ClusterFSID): both superblock copies are rewritten with the
// next generation, in turn, each flushed before the next is written, so
// that a crash leaves one copy whole, the old or the new. Recording the
// FSID the device already has does nothing; a device with another one
// refuses (ErrClusterFSID): only a format clears it. A version 2
// superblock becomes version 3.
func (e *Engine) SetClusterFSID(id [16]byte) error {
	if id == ([16]byte{}) {
		return errors.New("engine: set cluster FSID: the FSID is zero")
	}
	e.closeMu.Lock() // the device stays open throughout
	defer e.closeMu.Unlock()
	if e.closed.Load() {
		return ErrClosed
	}
	e.sbMu.Lock()
	defer e.sbMu.Unlock()
	switch e.sb.ClusterFSID {
	case id:
		return nil
	case [16]byte{}:
	default:
		return fmt.Errorf("%w: %s records %s, not %s; format it to give it to another cluster",
			ErrClusterFSID, e.opts.Path, UUID(e.sb.ClusterFSID), UUID(id))
	}
	next := *e.sb
	next.Version = max(next.Version, 3)
	next.Generation++
	next.ClusterFSID = id
	if err := WriteSuperblock(e.dev.File, &next); err != nil {
		// A copy may hold the new superblock: the next Open reads the
		// newer generation, and recording the same FSID again is harmless.
		return err
	}
	e.sb.Version, e.sb.Generation, e.sb.ClusterFSID = next.Version, next.Generation, next.ClusterFSID
	return nil
}

// Recovery reports what Open did to recover.
func (e *Engine) Recovery() RecoveryStats { return e.recovery }

func (e *Engine) shardOf(obj ObjectID) *shard {
	h := obj.Hi*0x9E3779B97F4A7C15 ^ obj.Lo
	h ^= h >> 31
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 29
	return e.shards[h%uint64(len(e.shards))]
}

// Submit starts r; it comes back on r.Done (or through r.Notify) when
// complete.
func (e *Engine) Submit(r *Request) {
	if r.Done == nil && r.Notify == nil {
		// A caller bug: fail in the caller, not in the reactor.
		panic("engine: Submit of a request with neither a Done channel nor Notify")
	}
	r.Err, r.N, r.Version, r.ResultSeq, r.State, r.Skipped = nil, 0, 0, 0, ObjectState{}, false
	r.submitted = time.Now()
	// Invariant: a request that passes the closed check is pushed before
	// Close stops the reactors (Close waits for submitting to drain after
	// setting closed), so it completes.
	e.submitting.Add(1)
	defer e.submitting.Add(-1)
	if e.closed.Load() {
		r.Err = ErrClosed
		r.refuse()
		return
	}
	switch r.Op {
	case OpRead, OpWrite, OpTruncate, OpDelete, OpStat:
	default:
		r.Err = fmt.Errorf("%w: operation %v cannot be submitted", ErrInvalid, r.Op)
		r.refuse()
		return
	}
	e.push(e.shardOf(r.Object), r)
}

// refuse hands back, from Submit itself, a request that never reached a
// reactor; the submitter's goroutine may wait on Done.
func (r *Request) refuse() {
	if r.Notify != nil {
		r.Notify(r)
		return
	}
	r.Done <- r
}

func (e *Engine) push(s *shard, r *Request) {
	s.q.push(r)
	s.w.wake()
}

// syncRequests recycles the Requests (with their Done channels) of the
// synchronous calls: a Request is the engine's only allocation per
// operation otherwise. The engine drops every reference to a Request when
// it sends it on Done, so it can be reused at once.
var syncRequests = sync.Pool{New: func() any { return &syncReq{done: make(chan *Request, 1)} }}

// syncReq is a Request with the channel its Done sends on.
type syncReq struct {
	Request
	done chan *Request
}

// syncRequest returns a zeroed Request whose Done is its own channel.
func syncRequest(op Op, obj ObjectID) *syncReq {
	r := syncRequests.Get().(*syncReq)
	r.Op, r.Object, r.Done = op, obj, r.done
	return r
}

// run submits r, waits for it, and returns the fields the caller reads;
// r goes back to the pool.
func (e *Engine) run(r *syncReq) syncResult {
	e.Submit(&r.Request)
	<-r.done
	out := syncResult{Err: r.Err, N: r.N, Version: r.Version, ResultSeq: r.ResultSeq, State: r.State}
	r.Request = Request{}
	syncRequests.Put(r)
	return out
}

// syncResult is what a synchronous call reads of its Request.
type syncResult struct {
	Err                error
	N                  int
	Version, ResultSeq uint64
	State              ObjectState
}

// Write writes p at off of obj, creating the object if needed, and
// returns once the write is durable. pg places the write in a placement
// group's history; it gets the PG's next sequence number.
func (e *Engine) Write(obj ObjectID, pg uint32, off uint64, p []byte) (Result, error) {
	r := syncRequest(OpWrite, obj)
	r.PG, r.Off, r.Buf = pg, off, p
	o := e.run(r)
	return Result{o.Version, o.ResultSeq}, o.Err
}

// Truncate sets obj's size (creating it if needed), durably.
func (e *Engine) Truncate(obj ObjectID, pg uint32, size uint64) (Result, error) {
	r := syncRequest(OpTruncate, obj)
	r.PG, r.Off = pg, size
	o := e.run(r)
	return Result{o.Version, o.ResultSeq}, o.Err
}

// Delete removes obj durably. Deleting a missing object succeeds, and is
// recorded (a replica may learn of a delete before the write it undoes).
func (e *Engine) Delete(obj ObjectID, pg uint32) (Result, error) {
	r := syncRequest(OpDelete, obj)
	r.PG = pg
	o := e.run(r)
	return Result{o.Version, o.ResultSeq}, o.Err
}

// Read reads into p from off of obj, as io.ReaderAt: fewer bytes than
// len(p) only with an error, io.EOF at the object's end. Holes read as
// zeros. A record whose checksum does not match fails with ErrCorrupt.
func (e *Engine) Read(obj ObjectID, off uint64, p []byte) (int, error) {
	r := syncRequest(OpRead, obj)
	r.Off, r.Buf = off, p
	o := e.run(r)
	return o.N, o.Err
}

// Stat returns obj's state, or ErrNotFound. A deleted object fails with
// ErrNotFound but returns its tombstone (Deleted set, with the delete's
// version, PG seq and the object's request ids); one never written
// returns the zero ObjectState.
func (e *Engine) Stat(obj ObjectID) (ObjectState, error) {
	o := e.run(syncRequest(OpStat, obj))
	return o.State, o.Err
}

// do runs a caller-built request synchronously (tests).
func (e *Engine) do(r *Request) *Request {
	ch := make(chan *Request, 1)
	r.Done = ch
	e.Submit(r)
	<-ch
	return r
}

// Changes returns the objects of placement group pg whose last mutation
// has a sequence number above since, in sequence order, at most limit of
// them (0: all). Deleted objects are included (Deleted set), so that a
// replica catching up learns of deletes too.
func (e *Engine) Changes(pg uint32, since uint64, limit int) ([]ObjectState, error) {
	outs, err := e.broadcast(func() *Request { return &Request{Op: opChanges, PG: pg, PGSeq: since, Off: uint64(limit)} })
	if err != nil {
		return nil, err
	}
	var all []ObjectState
	for _, o := range outs {
		all = append(all, o.([]ObjectState)...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].PGSeq < all[j].PGSeq })
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}

// PGSeq returns the highest sequence number placement group pg has
// reached on this engine.
func (e *Engine) PGSeq(pg uint32) uint64 { return pgLoad(&e.pgSeqs, pg) }

// PGs returns, in increasing order, the placement groups this engine
// has seen a mutation of (their objects may all be deleted by now).
func (e *Engine) PGs() []uint32 {
	var pgs []uint32
	e.pgSeqs.Range(func(k, _ any) bool {
		pgs = append(pgs, k.(uint32))
		return true
	})
	slices.Sort(pgs)
	return pgs
}

func (e *Engine) pgCounter(pg uint32) *atomic.Uint64 { return pgValue(&e.pgSeqs, pg) }

func (e *Engine) nextPGSeq(pg uint32) uint64 { return e.pgCounter(pg).Add(1) }

func (e *Engine) notePGSeq(pg uint32, seq uint64) { raiseTo(e.pgCounter(pg), seq) }

// pgValue returns pg's value in m (a map of uint32 to *atomic.Uint64),
// adding a zero one if there is none.
func pgValue(m *sync.Map, pg uint32) *atomic.Uint64 {
	if v, ok := m.Load(pg); ok {
		return v.(*atomic.Uint64)
	}
	v, _ := m.LoadOrStore(pg, new(atomic.Uint64))
	return v.(*atomic.Uint64)
}

// pgLoad returns pg's value in m (a map of uint32 to *atomic.Uint64), 0
// when there is none.
func pgLoad(m *sync.Map, pg uint32) uint64 {
	if v, ok := m.Load(pg); ok {
		return v.(*atomic.Uint64).Load()
	}
	return 0
}

// raiseTo makes c max(c, v).
func raiseTo(c *atomic.Uint64, v uint64) {
	for {
		cur := c.Load()
		if v <= cur || c.CompareAndSwap(cur, v) {
			return
		}
	}
}

// broadcast sends one internal request to every shard and collects their
// results in shard order.
func (e *Engine) broadcast(mk func() *Request) ([]any, error) {
	return e.broadcastEach(func(int) *Request { return mk() })
}

// broadcastEach submits mk(i) to shard i, skipping shards for which it
// returns nil, waits for them all and returns their shardOut by shard
// (nil for a skipped one) and the first error.
func (e *Engine) broadcastEach(mk func(shard int) *Request) ([]any, error) {
	e.submitting.Add(1)
	if e.closed.Load() {
		e.submitting.Add(-1)
		return nil, ErrClosed
	}
	ch := make(chan *Request, len(e.shards))
	reqs := make([]*Request, len(e.shards))
	n := 0
	for i, s := range e.shards {
		r := mk(i)
		if r == nil {
			continue
		}
		r.Done = ch
		reqs[i] = r
		e.push(s, r)
		n++
	}
	e.submitting.Add(-1)
	var first error
	for range n {
		r := <-ch
		if r.Err != nil && first == nil {
			first = r.Err
		}
	}
	outs := make([]any, len(reqs))
	for i, r := range reqs {
		if r != nil {
			outs[i] = r.shardOut
		}
	}
	return outs, first
}

// Close writes a final checkpoint (so the next Open replays nothing),
// stops the reactors after they finish what is in flight, and releases the
// device. Requests submitted once Close has begun stopping the reactors
// fail with ErrClosed; every request submitted before completes.
func (e *Engine) Close() error {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if e.closed.Load() {
		return ErrClosed
	}
	close(e.ckptStop)
	<-e.ckptDone
	ckErr := e.checkpoint()
	e.closed.Store(true)
	e.waitSubmitters()
	e.stopShards(len(e.shards))
	err := e.dev.Close()
	if ckErr != nil && !errors.Is(ckErr, ErrFailed) {
		return ckErr
	}
	return err
}

// crashStop stops the engine as a power cut would leave it: no final
// checkpoint, nothing flushed that was not already. Tests and the
// recovery benchmark use it to measure recovery without a checkpoint.
func (e *Engine) crashStop() {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	close(e.ckptStop)
	<-e.ckptDone
	e.ckptMu.Lock() // wait out a checkpoint in progress
	e.closed.Store(true)
	e.ckptMu.Unlock()
	e.waitSubmitters()
	e.stopShards(len(e.shards))
	e.dev.Close()
}

// waitSubmitters waits until no Submit or broadcast is between its closed
// check and its push; closed must already be set.
func (e *Engine) waitSubmitters() {
	for e.submitting.Load() != 0 {
		runtime.Gosched()
	}
}

// stopShards stops the first n reactors, waiting for each to drain.
func (e *Engine) stopShards(n int) {
	ch := make(chan *Request, n)
	for _, s := range e.shards[:n] {
		s.q.push(&Request{Op: opStop, Done: ch})
		s.w.wake()
	}
	for range n {
		<-ch
	}
	for _, s := range e.shards[:n] {
		s.w.close()
	}
}

// ---- checkpoints ----

// wantCheckpoint asks the checkpointer for a checkpoint soon.
func (e *Engine) wantCheckpoint() {
	select {
	case e.ckptKick <- struct{}{}:
	default:
	}
}

func (e *Engine) checkpointer() {
	defer close(e.ckptDone)
	for {
		select {
		case <-e.ckptStop:
			return
		case <-e.ckptKick:
			if err := e.checkpoint(); err != nil {
				e.opts.Logger.Error("engine: checkpoint failed", "err", err)
			}
		}
	}
}

// shardCapture is a shard's state at a point of its log, made of
// copy-on-write clones so the checkpointer can encode it while the shard
// goes on.
type shardCapture struct {
	state shardState // without Objects and Extents
	idx   *Index
	objs  *btree.BTreeG[ObjectState]
	snaps map[uint64]*shardSnap
}

// Checkpoint writes a checkpoint now and returns when it is durable.
func (e *Engine) Checkpoint() error {
	if e.closed.Load() {
		return ErrClosed
	}
	return e.checkpoint()
}

func (e *Engine) checkpoint() error {
	e.ckptMu.Lock()
	defer e.ckptMu.Unlock()
	t0 := time.Now()
	outs, err := e.broadcast(func() *Request { return &Request{Op: opCheckpoint} })
	if err != nil {
		return err
	}
	c := &checkpoint{Seq: e.ckptSeq + 1, Device: e.sb.UUID, NextGen: e.alloc.generation()}
	e.snapMu.Lock()
	c.NextSnap = e.nextSnap + 1
	snapIDs := make([]uint64, 0, len(e.snaps))
	for id := range e.snaps {
		snapIDs = append(snapIDs, id)
	}
	snaps := make(map[uint64]*Snapshot, len(e.snaps))
	for id, sn := range e.snaps {
		snaps[id] = sn
	}
	e.snapMu.Unlock()
	sort.Slice(snapIDs, func(i, j int) bool { return snapIDs[i] < snapIDs[j] })
	for _, o := range outs {
		cp := o.(*shardCapture)
		st := cp.state
		st.Objects = objectsOf(cp.objs)
		st.Extents = extentsOf(cp.idx)
		c.Shards = append(c.Shards, st)
	}
	for _, id := range snapIDs {
		sn := snaps[id]
		ss := snapshotState{ID: id, Name: sn.name, Created: sn.created.UnixNano()}
		for _, o := range outs {
			part := o.(*shardCapture).snaps[id]
			if part == nil {
				// Taken after this capture on some shard: it will be in the
				// next checkpoint.
				ss.Shards = nil
				break
			}
			ss.Shards = append(ss.Shards, snapshotShard{Objects: objectsOf(part.objs), Extents: extentsOf(part.idx)})
		}
		if ss.Shards != nil {
			c.Snapshots = append(c.Snapshots, ss)
		}
	}
	n, werr := writeCheckpoint(e.dev.File, e.sb, e.ckptSlot, c)
	if werr == nil {
		e.ckptSeq = c.Seq
		e.ckptSlot = 1 - e.ckptSlot
		e.ckptStats.count.Add(1)
		e.ckptStats.bytes.Store(int64(n))
		e.ckptStats.nanos.Store(int64(time.Since(t0)))
	} else {
		e.ckptStats.failures.Add(1)
		msg := werr.Error()
		e.ckptStats.lastErr.Store(&msg)
	}
	var durable uint64
	if werr == nil {
		durable = 1
	}
	if _, err := e.broadcast(func() *Request { return &Request{Op: opCheckpointDone, Off: durable} }); err != nil && werr == nil {
		werr = err
	}
	if werr != nil {
		return fmt.Errorf("engine: checkpoint %d: %w", c.Seq, werr)
	}
	return nil
}

func objectsOf(t *btree.BTreeG[ObjectState]) []ObjectState {
	if t == nil || t.Len() == 0 {
		return nil
	}
	out := make([]ObjectState, 0, t.Len())
	t.Ascend(func(o ObjectState) bool { out = append(out, o); return true })
	return out
}

func extentsOf(x *Index) []Extent {
	if x == nil || x.Len() == 0 {
		return nil
	}
	out := make([]Extent, 0, x.Len())
	x.Ascend(func(e Extent) bool { out = append(out, e); return true })
	return out
}

// capture records the shard's state for a checkpoint (on the shard's
// goroutine).
func (s *shard) capture(r *Request) {
	st := shardState{Shard: s.id, OpenSegment: s.open, OpenGen: s.openGen, OpenPos: s.openPos, NextBatchSeq: s.batchSeq}
	if len(s.inflight) > 0 {
		b := s.inflight[0]
		st.OpenPos, st.NextBatchSeq = b.pos, b.seq
	} else if b := s.cur; len(b.descs) > 0 {
		st.OpenPos, st.NextBatchSeq = b.pos, b.seq
	}
	for seg, ss := range s.segs {
		st.Segments = append(st.Segments, segmentRef{Index: seg, Gen: ss.gen})
		ss.capturedFree = ss.closed && ss.pins == 0
	}
	sort.Slice(st.Segments, func(i, j int) bool { return st.Segments[i].Gen < st.Segments[j].Gen })
	snaps := make(map[uint64]*shardSnap, len(s.snaps))
	for id, sn := range s.snaps {
		snaps[id] = sn
	}
	r.shardOut = &shardCapture{state: st, idx: s.idx.Clone(), objs: s.objs.Clone(), snaps: snaps}
	s.sinceCkpt = 0
	s.ckptPending = true
	s.complete(r, nil)
}

// checkpointDone learns whether the captured checkpoint is durable; if it
// is, segments it no longer needs may be freed. A checkpoint that failed
// may be on the device all the same (a flush that failed after its writes
// landed), and recovery loads the newest valid one: so it frees nothing,
// and what it needs (segments its snapshots pinned) stays until a durable
// checkpoint no longer needs it.
func (s *shard) checkpointDone(r *Request) {
	ok := r.Off == 1
	s.ckptPending = false
	for seg, st := range s.segs {
		if ok {
			st.durableFree = st.capturedFree
		} else {
			st.durableFree = st.durableFree && st.capturedFree
		}
		s.maybeFree(seg)
	}
	s.complete(r, nil)
}
