package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto"
)

// EngineStore is the Store over a real *engine.Engine. A read and an
// apply are one engine request each, completed by a callback on the
// engine's reactor: their done runs there (see Store), without a
// goroutine that waits for the engine. The other ops (an install is
// several engine calls) run on goroutines of their own. Close waits for
// all of them. Safe for concurrent use.
//
// Invariant: the mutations (Apply, Install) of one object run one at a
// time, in the order they were submitted: the next starts when the one
// before has completed. An install is several engine calls (a Stat, a
// check of what is there, then the write), so without this a forward
// could land between an install's check and its writes and be
// overwritten by an older state, and the core's order (an install resent
// before the epoch's first forward of the object) would be lost. An
// apply's KeepIfAtLeast is checked by the engine with the write
// (engine.Request.KeepIfAtLeast), against the state the object's earlier
// mutations left. Reads, Gets and the rest are not ordered against them.
//
// Request ids are the engine's (engine.Request.RequestID, and
// ReplaceRequests for an install), so they are durable with the mutation
// they name and reported by Stat, also for a deleted object. An install is
// one engine request (a Replace write or truncate, or a delete, carrying
// the installed state's ids), so a crash leaves the object whole: as it
// was, or as installed.
type EngineStore struct {
	e  *engine.Engine
	wg sync.WaitGroup

	mu sync.Mutex
	// waiting holds, per object with a mutation running, the mutations
	// submitted after it (possibly none); an object is absent when none
	// runs.
	waiting map[engine.ObjectID][]storeCall
}

type storeCall struct {
	op   StoreOp
	done func(StoreResult)
}

// NewEngineStore returns a Store over e. The caller keeps owning e, and
// must Close the store before closing e. It hands e the tombstone floors
// kept on it (engine.Engine.SetForgetFloor), so e must not have served a
// request with KeepIfAtLeast since it opened.
func NewEngineStore(e *engine.Engine) (*EngineStore, error) {
	s := &EngineStore{e: e, waiting: map[engine.ObjectID][]storeCall{}}
	objs, err := e.Changes(MarkPG, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("replication: list the tombstone floors: %w", err)
	}
	for _, o := range objs {
		if o.ID.Hi != floorContainer || o.Deleted || o.ID.Lo > uint64(^uint32(0)) {
			continue
		}
		pg := uint32(o.ID.Lo)
		f, err := s.floor(pg)
		if err != nil {
			return nil, err
		}
		e.SetForgetFloor(pg, f)
	}
	return s, nil
}

// Close waits for every op in flight to complete.
func (s *EngineStore) Close() { s.wg.Wait() }

// Submit implements Store. A read's done runs on the engine's reactor
// (see Store).
func (s *EngineStore) Submit(op StoreOp, done func(StoreResult)) {
	s.wg.Add(1)
	if op.Kind == StoreRead {
		s.read(op, done)
		return
	}
	if op.Kind != StoreApply && op.Kind != StoreInstall {
		go func() {
			defer s.wg.Done()
			s.call(storeCall{op, done})
		}()
		return
	}
	s.mu.Lock()
	if q, running := s.waiting[op.Object]; running {
		s.waiting[op.Object] = append(q, storeCall{op, done})
		s.mu.Unlock()
		return
	}
	s.waiting[op.Object] = nil
	s.mu.Unlock()
	s.start(storeCall{op, done})
}

// start runs c, now its object's running mutation: an apply as one engine
// request completed on the reactor, an install on a goroutine.
func (s *EngineStore) start(c storeCall) {
	if c.op.Kind != StoreApply {
		go func() {
			s.call(c)
			s.finish(c.op.Object)
		}()
		return
	}
	r := applyRequest(&c.op)
	r.Notify = func(r *engine.Request) {
		res := StoreResult{ID: c.op.ID, Err: r.Err}
		if r.Skipped {
			res.Skipped, res.Seq = true, r.ResultSeq
		}
		c.done(res)
		s.finish(c.op.Object)
	}
	s.e.Submit(r)
}

// finish ends obj's running mutation and starts the next one submitted
// meanwhile, if any.
func (s *EngineStore) finish(obj engine.ObjectID) {
	s.wg.Done()
	s.mu.Lock()
	q := s.waiting[obj]
	if len(q) == 0 {
		delete(s.waiting, obj)
		s.mu.Unlock()
		return
	}
	c := q[0]
	q[0] = storeCall{}
	s.waiting[obj] = q[1:]
	s.mu.Unlock()
	s.start(c)
}

// applyRequest is the one engine request of an apply, its KeepIfAtLeast
// check included.
func applyRequest(op *StoreOp) *engine.Request {
	r := &engine.Request{Object: op.Object, PG: op.PG, PGSeq: op.Seq, RequestID: engine.RequestID(op.RequestID),
		KeepIfAtLeast: op.KeepIfAtLeast}
	switch op.Mut.Kind {
	case MutWrite:
		r.Op, r.Off, r.Buf = engine.OpWrite, op.Mut.Off, op.Data
	case MutTruncate:
		r.Op, r.Off = engine.OpTruncate, op.Mut.Size
	case MutDelete:
		r.Op = engine.OpDelete
	default:
		panic(fmt.Sprintf("replication: apply of mutation kind %d", op.Mut.Kind))
	}
	return r
}

// read submits a read to the engine with a completion callback rather
// than on a goroutine that waits for it: the result reaches done from
// the reactor, without the goroutine's start and wake-up.
func (s *EngineStore) read(op StoreOp, done func(StoreResult)) {
	r := &engine.Request{Op: engine.OpRead, Object: op.Object, Off: op.Off, Buf: make([]byte, op.Len)}
	r.Notify = func(r *engine.Request) {
		done(readResult(op.ID, r.Buf[:r.N], r.Err))
		s.wg.Done()
	}
	s.e.Submit(r)
}

// readResult is a StoreRead's result for the engine's outcome.
func readResult(id uint64, data []byte, err error) StoreResult {
	res := StoreResult{ID: id, Data: data}
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		res.EOF = true
	case errors.Is(err, engine.ErrNotFound):
		res.NotFound = true
	default:
		res.Err = err
	}
	return res
}

func (s *EngineStore) call(c storeCall) {
	r := s.run(&c.op)
	r.ID = c.op.ID
	c.done(r)
}

// Sync marks and tombstone floors live in engine objects of their own
// placement group, so they never show in a PG's Changes or move its seqs.
// On-disk: never renumber.
const (
	// MarkPG is the engine placement group holding sync marks and
	// tombstone floors.
	MarkPG = ^uint32(0)
	// markContainer is the ObjectID.Hi of mark objects (Lo = the PG): a
	// container id no container gets.
	markContainer = ^uint64(0)
	// floorContainer is the ObjectID.Hi of tombstone floor objects (Lo =
	// the PG), likewise.
	floorContainer = ^uint64(0) - 1
)

func markObject(pg uint32) engine.ObjectID { return engine.ObjectID{Hi: markContainer, Lo: uint64(pg)} }
func floorObject(pg uint32) engine.ObjectID {
	return engine.ObjectID{Hi: floorContainer, Lo: uint64(pg)}
}

// floor reads pg's tombstone floor (see readSeqObject); absent = 0.
func (s *EngineStore) floor(pg uint32) (uint64, error) {
	f, _, err := s.readSeqObject(floorObject(pg), "tombstone floor", pg)
	return f, err
}

// readSeqObject reads a seq kept in an object of MarkPG (a sync mark, a
// tombstone floor): 8 bytes, little-endian; ok is false when the object
// is absent. what and pg name it in errors.
func (s *EngineStore) readSeqObject(obj engine.ObjectID, what string, pg uint32) (seq uint64, ok bool, err error) {
	var b [8]byte
	n, err := s.e.Read(obj, 0, b[:])
	switch {
	case errors.Is(err, engine.ErrNotFound):
		return 0, false, nil
	case n == 8:
		return le.Uint64(b[:]), true, nil
	case err == nil || errors.Is(err, io.EOF):
		return 0, false, fmt.Errorf("replication: %s of pg %d is %d bytes, want 8: %w", what, pg, n, engine.ErrCorrupt)
	}
	return 0, false, err
}

// forgetMarks forgets MarkPG's tombstones (cleared sync marks, deleted
// floors): such a tombstone says what the object's absence says, and
// MarkPG is never synced.
func (s *EngineStore) forgetMarks() error {
	_, err := s.e.ForgetTombstones(MarkPG, 0, s.e.PGSeq(MarkPG))
	return err
}

// forget raises pg's tombstone floor durably to upTo, then has the engine
// forget pg's tombstones at seqs in (after, upTo] (see StoreForget), and
// those of MarkPG (forgetMarks).
func (s *EngineStore) forget(pg uint32, after, upTo uint64) (int, error) {
	if pg == MarkPG {
		return 0, fmt.Errorf("replication: forget in pg %d: that is the sync marks' PG", pg)
	}
	f, err := s.floor(pg)
	if err != nil {
		return 0, err
	}
	if f < upTo {
		if _, err := s.e.Write(floorObject(pg), MarkPG, 0, le.AppendUint64(nil, upTo)); err != nil {
			return 0, fmt.Errorf("replication: raise the tombstone floor of pg %d to %d: %w", pg, upTo, err)
		}
	}
	n, err := s.e.ForgetTombstones(pg, after, upTo)
	if err != nil {
		return n, err
	}
	return n, s.forgetMarks()
}

// mark reads pg's sync mark: 8 bytes, little-endian; absent = none.
func (s *EngineStore) mark(pg uint32) (uint64, bool, error) {
	return s.readSeqObject(markObject(pg), "sync mark", pg)
}

// lowerMark durably makes pg's sync mark min(mark, seq), seq when there
// is none; it writes nothing when the mark is that low already.
func (s *EngineStore) lowerMark(pg uint32, seq uint64) error {
	mark, marked, err := s.mark(pg)
	if err != nil || (marked && mark <= seq) {
		return err
	}
	_, err = s.e.Write(markObject(pg), MarkPG, 0, le.AppendUint64(nil, seq))
	return err
}

// stat returns obj's state: live, a tombstone (Deleted), or the zero
// state of an object never written.
func (s *EngineStore) stat(obj engine.ObjectID) (engine.ObjectState, error) {
	st, err := s.e.Stat(obj)
	if errors.Is(err, engine.ErrNotFound) {
		return st, nil
	}
	return st, err
}

// ridsOf converts the engine's ids of an object.
func ridsOf(st *engine.ObjectState) []RIDEntry {
	var out []RIDEntry
	for _, a := range st.Applied() {
		out = append(out, RIDEntry{ID: fsproto.RequestID(a.ID), Seq: a.Seq})
	}
	return out
}

// keptRIDs returns the newest engine.KeptRequests of rids (oldest first,
// as sent), as the engine takes them.
func keptRIDs(rids []RIDEntry) []engine.AppliedRequest {
	rids = rids[max(0, len(rids)-engine.KeptRequests):]
	out := make([]engine.AppliedRequest, 0, len(rids))
	for _, e := range rids {
		if e.ID != (fsproto.RequestID{}) {
			out = append(out, engine.AppliedRequest{ID: engine.RequestID(e.ID), Seq: e.Seq})
		}
	}
	return out
}

// holds reports whether the store holds exactly the state op installs
// at seq (op.Seq, or for an absent state the seq its tombstone keeps):
// the same seq, liveness, data and kept request ids. st is the object's
// state (s.stat); only at the same seq (a resent install) is the data
// read.
func (s *EngineStore) holds(op *StoreOp, seq uint64, st *engine.ObjectState) (bool, error) {
	if st.Version == 0 || st.PGSeq != seq || st.Deleted != op.Deleted ||
		(!op.Deleted && st.Size != uint64(len(op.Data))) || !slices.Equal(st.Applied(), keptRIDs(op.RIDs)) {
		return false, nil // never written, or another state
	}
	if op.Deleted {
		return true, nil
	}
	p := make([]byte, len(op.Data))
	n, err := s.e.Read(op.Object, 0, p)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	return n == len(p) && bytes.Equal(p, op.Data), nil
}

func (s *EngineStore) do(r *engine.Request) error {
	done := make(chan *engine.Request, 1)
	r.Done = done
	s.e.Submit(r)
	<-done
	return r.Err
}

func (s *EngineStore) run(op *StoreOp) StoreResult {
	var res StoreResult
	switch op.Kind {
	case StoreInstall:
		st, err := s.stat(op.Object)
		if err != nil {
			return StoreResult{Err: err}
		}
		cur := st.PGSeq
		if st.Version == 0 {
			// Absent: never written, or a forgotten tombstone that was
			// at most the floor (see engine.Engine.ForgetFloor).
			cur = s.e.ForgetFloor(op.PG)
		}
		if op.KeepIfAtLeast > 0 && cur >= op.KeepIfAtLeast {
			return StoreResult{Skipped: true, Seq: cur}
		}
		seq := op.Seq
		if seq == 0 {
			// The primary never wrote the object: it is to be
			// absent here too. NB: never PGSeq 0 to the engine,
			// which would stamp the tombstone with the PG's next
			// seq: at or above the epoch's first seq (KeepIfAtLeast),
			// that would make us skip, and acknowledge, the epoch's
			// forwards of the object up to it, as if we held them
			// (TestEngineAbsentTombstoneKeepsEpochSeqs).
			if !op.Deleted {
				return StoreResult{Err: fmt.Errorf("replication: install of live object %v at seq 0", op.Object)}
			}
			if st.Version == 0 {
				return StoreResult{} // never written here either
			}
			// A tombstone at the seq of the state it replaces, which
			// is below KeepIfAtLeast (or the install would skip).
			seq = st.PGSeq
			if seq == 0 {
				return StoreResult{Err: fmt.Errorf("replication: object %v of pg %d has version %d and no pg seq", op.Object, op.PG, st.Version)}
			}
		}
		if same, err := s.holds(op, seq, &st); err != nil || same {
			// Installed already (a resend that crossed its ack):
			// nothing to write.
			return StoreResult{Err: err, Seq: st.PGSeq}
		}
		// One engine request, so one batch: the installed state's
		// ids, and for a live object the old data dropped with the
		// new written (Replace), land together or not at all.
		r := &engine.Request{Op: engine.OpDelete, Object: op.Object, PG: op.PG, PGSeq: seq}
		if !op.Deleted {
			r.Op, r.Replace = engine.OpTruncate, true
			if len(op.Data) > 0 {
				r.Op, r.Buf = engine.OpWrite, op.Data
			}
		}
		r.ReplaceRequests, r.Requests = true, keptRIDs(op.RIDs)
		return StoreResult{Err: s.do(r), Seq: st.PGSeq}
	case StoreRequests:
		st, err := s.stat(op.Object)
		if err != nil {
			return StoreResult{Err: err}
		}
		res.Seq, res.RIDs = st.PGSeq, ridsOf(&st)
	case StoreGet:
		st, err := s.e.Stat(op.Object)
		if errors.Is(err, engine.ErrNotFound) {
			res.NotFound, res.Seq, res.RIDs = true, st.PGSeq, ridsOf(&st)
			if st.Version == 0 {
				res.Seq = s.e.ForgetFloor(op.PG)
			}
			return res
		}
		if err != nil {
			return StoreResult{Err: err}
		}
		if st.Size > MaxDataBytes {
			return StoreResult{Err: fmt.Errorf("replication: object %v of %d bytes is above the %d a sync moves", op.Object, st.Size, MaxDataBytes)}
		}
		p := make([]byte, st.Size)
		n, err := s.e.Read(op.Object, 0, p)
		if err != nil && !errors.Is(err, io.EOF) {
			return StoreResult{Err: err}
		}
		res.Data, res.Seq, res.RIDs = p[:n], st.PGSeq, ridsOf(&st)
	case StoreMaxSeq:
		res.Seq = s.e.PGSeq(op.PG)
		res.Mark, res.Marked, res.Err = s.mark(op.PG)
		if res.Err == nil {
			res.Floor, res.Err = s.floor(op.PG)
		}
	case StoreForget:
		res.Forgotten, res.Err = s.forget(op.PG, op.Since, op.Seq)
	case StoreSetMark:
		res.Err = s.lowerMark(op.PG, op.Seq)
	case StoreClearMark:
		_, res.Err = s.e.Delete(markObject(op.PG), MarkPG)
	case StoreChanges:
		ch, err := s.e.Changes(op.PG, op.Since, op.Limit)
		if err != nil {
			return StoreResult{Err: err}
		}
		res.Changes = make([]Entry, len(ch))
		res.Sizes = make([]uint64, len(ch))
		for i, c := range ch {
			res.Changes[i] = Entry{Object: c.ID, Seq: c.PGSeq}
			if !c.Deleted {
				res.Sizes[i] = c.Size
			}
		}
	default:
		panic(fmt.Sprintf("replication: store op kind %d", op.Kind))
	}
	return res
}

// PurgeStats is what Purge deleted.
type PurgeStats struct {
	Objects int    // live objects deleted
	Bytes   uint64 // their logical sizes
}

// Purge deletes every live object of placement group pg and its sync
// mark: for a PG that no longer exists (its container was deleted), whose
// data nothing will read again. A mutation of pg still in flight when the
// objects are listed may leave its object behind (a later Purge finds
// it); an object whose delete fails stays, and the error says which. ctx
// ends it between objects.
func (s *EngineStore) Purge(ctx context.Context, pg uint32) (PurgeStats, error) {
	if pg == MarkPG {
		return PurgeStats{}, fmt.Errorf("replication: purge of pg %d: that is the sync marks' PG", pg)
	}
	st, err := s.deleteLive(ctx, pg, "purge", func() bool { return false }, func(o *engine.ObjectState) error {
		_, err := s.e.Delete(o.ID, pg)
		return err
	})
	if err != nil {
		return st, err
	}
	// Deleting a missing object records a tombstone: delete the mark only
	// when there is one, so purging a purged PG again writes nothing.
	if _, ok, err := s.mark(pg); err != nil || ok {
		if _, err := s.e.Delete(markObject(pg), MarkPG); err != nil {
			return st, fmt.Errorf("replication: purge of pg %d: delete its sync mark: %w", pg, err)
		}
	}
	// The PG will not be synced again: its tombstones and floor can go.
	if f, err := s.floor(pg); err != nil || f != 0 {
		if _, err := s.e.Delete(floorObject(pg), MarkPG); err != nil {
			return st, fmt.Errorf("replication: purge of pg %d: delete its tombstone floor: %w", pg, err)
		}
	}
	if _, err := s.e.ForgetTombstones(pg, 0, s.e.PGSeq(pg)); err != nil {
		return st, fmt.Errorf("replication: purge of pg %d: %w", pg, err)
	}
	if err := s.forgetMarks(); err != nil {
		return st, fmt.Errorf("replication: purge of pg %d: %w", pg, err)
	}
	return st, nil
}

// ErrRetireStopped is Retire's error when its stop function asked it to
// stop before every object was deleted.
var ErrRetireStopped = errors.New("replication: retire stopped before the copy was deleted")

// Retire deletes this node's copy of placement group pg, a PG that lives on
// without this node (it left the PG's replicas and they hold the data).
// Unlike Purge it keeps the PG sound for a return: before it deletes
// anything it durably lowers the PG's sync mark to 0, so that if this node
// becomes a replica of pg again, the sync it then gets starts from seq 0
// and installs every object (the node's highest seq vouches for nothing
// while a mark stands; see "Sync marks"). Each object becomes a tombstone
// at the seq of the state it replaces, never the PG's next seq, which
// would raise the node's highest seq over seqs the PG goes on to issue
// without it (see StoreInstall on such tombstones). So a Retire cut
// short, by stop, ctx or a crash, leaves a copy that the next sync
// repairs, never one that vouches for data it lacks.
//
// The caller must keep the replication core from acting in pg until Retire
// returns (no view that includes this node): a sync's install could
// otherwise land between the listing and a delete and be deleted after it
// was acknowledged. stop is asked before each object; when it returns true
// Retire returns ErrRetireStopped with what it deleted so far.
func (s *EngineStore) Retire(ctx context.Context, pg uint32, stop func() bool) (PurgeStats, error) {
	var st PurgeStats
	if pg == MarkPG {
		return st, fmt.Errorf("replication: retire of pg %d: that is the sync marks' PG", pg)
	}
	if stop() {
		return st, ErrRetireStopped // before the mark: the copy stays as good as it was
	}
	if err := s.lowerMark(pg, 0); err != nil {
		return st, fmt.Errorf("replication: retire of pg %d: lower its sync mark to 0: %w", pg, err)
	}
	st, err := s.deleteLive(ctx, pg, "retire", stop, func(o *engine.ObjectState) error {
		if o.PGSeq == 0 {
			return fmt.Errorf("object has no pg seq")
		}
		return s.do(&engine.Request{Op: engine.OpDelete, Object: o.ID, PG: pg, PGSeq: o.PGSeq})
	})
	if err != nil {
		return st, err
	}
	// With the mark at 0 a sync of this copy lists every object, so no
	// tombstone of it is needed (the floor is raised all the same).
	if _, err := s.forget(pg, 0, s.e.PGSeq(pg)); err != nil {
		return st, fmt.Errorf("replication: retire of pg %d: %w", pg, err)
	}
	return st, nil
}

// deleteLive deletes every live object of pg with del, counting them,
// for Purge and Retire (what names the operation in errors). ctx ends it
// between objects; stop, asked before each, returns ErrRetireStopped.
func (s *EngineStore) deleteLive(ctx context.Context, pg uint32, what string, stop func() bool, del func(*engine.ObjectState) error) (PurgeStats, error) {
	var st PurgeStats
	objs, err := s.e.Changes(pg, 0, 0)
	if err != nil {
		return st, fmt.Errorf("replication: %s of pg %d: list its objects: %w", what, pg, err)
	}
	for i := range objs {
		o := &objs[i]
		if o.Deleted || o.PG != pg {
			continue
		}
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if stop() {
			return st, ErrRetireStopped
		}
		if err := del(o); err != nil && !errors.Is(err, engine.ErrNotFound) {
			return st, fmt.Errorf("replication: %s of pg %d: delete object %v: %w", what, pg, o.ID, err)
		}
		st.Objects++
		st.Bytes += o.Size
	}
	return st, nil
}
