package fsproto

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/net"
)

// DedupeEntries is the default bound of a ChunkServer's table of applied
// request ids.
const DedupeEntries = 65536

// ChunkServerConfig configures a ChunkServer.
type ChunkServerConfig struct {
	// Containers reports whether the server holds a container. Required.
	// It is called concurrently.
	Containers func(container uint64) bool
	// Epoch is the server's epoch; requests carrying another are refused
	// with CodeStaleEpoch.
	// TODO(cluster): compare against the cluster map's epoch per
	// placement group once there is one, instead of equality with a
	// constant.
	Epoch uint64
	// DedupeEntries bounds the table of applied request ids. Default
	// DedupeEntries.
	DedupeEntries int
	// Buffers is the pool read buffers come from. Default
	// net.DefaultBufferPool().
	Buffers *net.BufferPool
	// Logger receives server events. Default slog.Default().
	Logger *slog.Logger
}

// ChunkServer serves the chunk protocol from one engine. It is a
// net.Handler (answering the chunk kinds and CodeUnknownKind for the
// rest), or registers its kinds on an existing mux with Register. It is
// safe for concurrent use.
type ChunkServer struct {
	e      *engine.Engine
	cfg    ChunkServerConfig
	mux    *net.ServeMux
	dedupe *dedupe

	// Reads and writes are started on the connection's reader
	// (net.Starter) and submitted to the engine, whose reactor answers
	// them as it completes them (engine.Request.Notify): no goroutine
	// waits for a request, and no thread is woken between the device's
	// completion and the answer's frame being queued. What runs there
	// (finishRead, finishWrite) must not block.
	free chan *asyncOp                // the ops not in use; empty: requests take the blocking path
	ops  map[*engine.Request]*asyncOp // read-only after NewChunkServer
	// notifyFn is s.finish bound once, so that a submit allocates nothing.
	notifyFn func(*engine.Request)
	// fullTimes counts requests that found every op in use and took the
	// blocking path (tests).
	fullTimes atomic.Uint64
}

// asyncOpsMax bounds the requests a ChunkServer has in the engine at once
// on the asynchronous path. Past it, a request is served by a handler
// goroutine that waits for the engine, as net does by default.
const asyncOpsMax = 1024

// asyncOp is one read or write on the asynchronous path: its engine
// request and what its answer needs. Preallocated (asyncOpsMax of them).
type asyncOp struct {
	r     engine.Request
	s     *ChunkServer
	w     *net.ResponseWriter
	buf   *net.Buffer // read: the destination; write: the payload
	chunk ChunkID
	// write: its dedupe entry
	id    RequestID
	entry *dedupeEntry
	parts [1][]byte
	// releaseFn is op.release bound once, so a read's answer allocates
	// nothing: it runs when the answer's frame was written.
	releaseFn func()
}

// NewChunkServer validates cfg and returns a server over e.
func NewChunkServer(e *engine.Engine, cfg ChunkServerConfig) (*ChunkServer, error) {
	return newChunkServer(e, cfg, asyncOpsMax)
}

// newChunkServer is NewChunkServer with asyncMax asynchronous ops.
func newChunkServer(e *engine.Engine, cfg ChunkServerConfig, asyncMax int) (*ChunkServer, error) {
	var errs []error
	if e == nil {
		errs = append(errs, errors.New("fsproto: chunk server: no engine"))
	}
	if cfg.Containers == nil {
		errs = append(errs, errors.New("fsproto: chunk server: Containers is nil; it must say which containers exist"))
	}
	if cfg.DedupeEntries < 0 {
		errs = append(errs, fmt.Errorf("fsproto: chunk server: DedupeEntries %d, want >= 0 (0: default %d)", cfg.DedupeEntries, DedupeEntries))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.DedupeEntries == 0 {
		cfg.DedupeEntries = DedupeEntries
	}
	if cfg.Buffers == nil {
		cfg.Buffers = net.DefaultBufferPool()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &ChunkServer{e: e, cfg: cfg, mux: net.NewServeMux(), dedupe: newDedupe(cfg.DedupeEntries)}
	s.notifyFn = s.finish
	s.free = make(chan *asyncOp, asyncMax)
	s.ops = make(map[*engine.Request]*asyncOp, asyncMax)
	ops := make([]asyncOp, asyncMax)
	for i := range ops {
		op := &ops[i]
		op.s = s
		op.releaseFn = op.release
		s.ops[&op.r] = op
		s.free <- op
	}
	s.Register(s.mux)
	return s, nil
}

// Register registers the chunk kinds on mux.
func (s *ChunkServer) Register(mux *net.ServeMux) {
	mux.Handle(KindWrite, startHandler{serve: s.serveWrite, start: s.startWrite})
	mux.Handle(KindRead, startHandler{serve: s.serveRead, start: s.startRead})
	mux.HandleFunc(KindTruncate, s.serveTruncate)
	mux.HandleFunc(KindDelete, s.serveDelete)
}

// ServeRPC implements net.Handler.
func (s *ChunkServer) ServeRPC(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
	s.mux.ServeRPC(ctx, req, w)
}

// StartRPC implements net.Starter: reads and writes are submitted to the
// engine without a goroutine waiting for each.
func (s *ChunkServer) StartRPC(ctx context.Context, req *net.Request, w *net.ResponseWriter) bool {
	return s.mux.StartRPC(ctx, req, w)
}

// startHandler is a kind's blocking handler and its net.Starter.
type startHandler struct {
	serve func(context.Context, *net.Request, *net.ResponseWriter)
	start func(*net.Request, *net.ResponseWriter) bool
}

func (h startHandler) ServeRPC(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
	h.serve(ctx, req, w)
}

func (h startHandler) StartRPC(_ context.Context, req *net.Request, w *net.ResponseWriter) bool {
	return h.start(req, w)
}

// takeOp returns a free asyncOp, or nil when all are in use.
func (s *ChunkServer) takeOp() *asyncOp {
	select {
	case op := <-s.free:
		return op
	default:
		s.fullTimes.Add(1)
		return nil
	}
}

// submit hands op's engine request to the engine; finish answers it.
func (s *ChunkServer) submit(op *asyncOp) {
	op.r.Notify = s.notifyFn
	s.e.Submit(&op.r)
}

// finish answers a completed request. It runs on the engine's reactor
// (engine.Request.Notify): answering queues a frame, which never blocks.
func (s *ChunkServer) finish(r *engine.Request) {
	op := s.ops[r]
	if op == nil {
		panic(fmt.Sprintf("fsproto: engine completed request %p, not one of the server's", r))
	}
	switch r.Op {
	case engine.OpRead:
		s.finishRead(op)
	case engine.OpWrite:
		s.finishWrite(op)
	default:
		panic(fmt.Sprintf("fsproto: completed asynchronous %v request", r.Op))
	}
}

// release gives op back; for a read, once its answer's frame is written.
func (op *asyncOp) release() {
	if op.buf != nil {
		op.buf.Release()
	}
	s := op.s
	*op = asyncOp{s: s, releaseFn: op.releaseFn}
	s.free <- op // never blocks: the capacity is the number of ops
}

func (s *ChunkServer) startRead(req *net.Request, w *net.ResponseWriter) bool {
	m, err := DecodeRead(req.Header)
	if err != nil {
		s.fail(w, KindRead, errf(CodeBadMessage, "%v", err))
		return true
	}
	if pe := s.check(m.Chunk, m.Epoch); pe != nil {
		s.fail(w, KindRead, pe)
		return true
	}
	op := s.takeOp()
	if op == nil {
		return false
	}
	op.w, op.chunk = w, m.Chunk
	op.buf = s.cfg.Buffers.Get(int(m.Len))
	op.r = engine.Request{Op: engine.OpRead, Object: ObjectID(m.Chunk), Off: uint64(m.Off), Buf: op.buf.Bytes()}
	s.submit(op)
	return true
}

func (s *ChunkServer) finishRead(op *asyncOp) {
	n, err, w := op.r.N, op.r.Err, op.w
	eof := errors.Is(err, io.EOF)
	if err != nil && !eof {
		s.fail(w, KindRead, engineError("read", op.chunk, err))
		op.release()
		return
	}
	// op (and its buffer) come back when the frame was written.
	replyRead(w, op.r.Buf, n, eof, op.parts[:], op.releaseFn)
}

// replyRead answers a read that put n bytes into buf (eof: it reached the
// chunk's end). The data goes out from buf itself, in parts (one slot);
// release runs once the frame was written, or at once when no data goes.
func replyRead(w *net.ResponseWriter, buf []byte, n int, eof bool, parts [][]byte, release func()) {
	if n < 0 || n > len(buf) {
		panic(fmt.Sprintf("fsproto: engine read %d bytes into a buffer of %d", n, len(buf)))
	}
	var hb [readResultLen]byte
	hdr := AppendReadResult(hb[:0], ReadResult{N: uint32(n), EOF: eof})
	if n == 0 {
		_ = w.Reply(hdr, nil, nil)
		release()
		return
	}
	parts[0] = buf[:n]
	_ = w.Reply(hdr, parts, release)
}

func (s *ChunkServer) startWrite(req *net.Request, w *net.ResponseWriter) bool {
	m, err := DecodeWrite(req.Header)
	if err != nil {
		s.fail(w, KindWrite, errf(CodeBadMessage, "%v", err))
		return true
	}
	if !s.admitMutation(w, req, KindWrite, m.Chunk, m.Epoch) {
		return true
	}
	if req.Payload == nil {
		return false // the blocking path refuses it, through the dedupe table
	}
	op := s.takeOp()
	if op == nil {
		return false
	}
	e, first, res, pe := s.dedupe.begin(m.RequestID, m.Chunk)
	switch {
	case pe != nil:
		op.release()
		s.fail(w, KindWrite, pe)
		return true
	case !first && e == nil:
		// A retry of a write applied already: its first result.
		op.release()
		s.replyResult(w, res)
		return true
	case !first:
		// A retry of a write still being applied: a handler goroutine
		// waits for it (rare).
		op.release()
		return false
	}
	// Zero copy: the engine writes from the buffer the payload was read
	// into, released once the write is durable.
	op.w, op.chunk, op.id, op.entry = w, m.Chunk, m.RequestID, e
	op.buf = req.TakePayload()
	op.r = engine.Request{Op: engine.OpWrite, Object: ObjectID(m.Chunk), PG: m.PG, Off: uint64(m.Off), Buf: op.buf.Bytes()}
	s.submit(op)
	return true
}

func (s *ChunkServer) finishWrite(op *asyncOp) {
	var (
		res WriteResult
		pe  *protoError
	)
	if err := op.r.Err; err != nil {
		pe = engineError("write", op.chunk, err)
	} else {
		res = WriteResult{Version: op.r.Version, PGSeq: op.r.ResultSeq}
	}
	s.dedupe.end(op.id, op.entry, res, pe)
	w := op.w
	op.release()
	if pe != nil {
		s.fail(w, KindWrite, pe)
		return
	}
	s.replyResult(w, res)
}

// protoError is an error answered with a code.
type protoError struct {
	code net.ErrorCode
	msg  string
}

func (e *protoError) Error() string { return e.msg }

func errf(code net.ErrorCode, format string, args ...any) *protoError {
	return &protoError{code: code, msg: fmt.Sprintf(format, args...)}
}

// engineError maps an engine error to its code.
func engineError(op string, c ChunkID, err error) *protoError {
	code := CodeUnavailable
	switch {
	case errors.Is(err, engine.ErrNotFound):
		code = CodeNotFound
	case errors.Is(err, engine.ErrNoSpace):
		code = CodeNoSpace
	case errors.Is(err, engine.ErrInvalid):
		code = CodeInvalid
	case errors.Is(err, engine.ErrCorrupt):
		code = CodeCorrupt
	}
	return errf(code, "%s %v: %v", op, c, err)
}

// check refuses requests for unknown containers or from another epoch.
func (s *ChunkServer) check(c ChunkID, epoch uint64) *protoError {
	if !s.cfg.Containers(c.Container) {
		return errf(CodeUnknownContainer, "%v: container %d is not on this server", c, c.Container)
	}
	if epoch != s.cfg.Epoch {
		return errf(CodeStaleEpoch, "%v: request epoch %d, server epoch %d", c, epoch, s.cfg.Epoch)
	}
	return nil
}

func (s *ChunkServer) fail(w *net.ResponseWriter, kind net.Kind, pe *protoError) {
	if pe.code == CodeUnavailable || pe.code == CodeCorrupt {
		s.cfg.Logger.Warn("fsproto: request failed", "kind", kind, "code", pe.code, "err", pe.msg)
	}
	_ = w.Error(pe.code, pe.msg)
}

func (s *ChunkServer) replyResult(w *net.ResponseWriter, r WriteResult) {
	var b [writeResultLen]byte
	_ = w.Reply(AppendWriteResult(b[:0], r), nil, nil)
}

// mutate runs apply once per request id (see dedupe) after the checks
// every mutation shares.
func (s *ChunkServer) mutate(w *net.ResponseWriter, req *net.Request, kind net.Kind, c ChunkID, epoch uint64, id RequestID, apply func() (WriteResult, *protoError)) {
	if !s.admitMutation(w, req, kind, c, epoch) {
		return
	}
	r, pe := s.dedupe.do(id, c, apply)
	if pe != nil {
		s.fail(w, kind, pe)
		return
	}
	s.replyResult(w, r)
}

// admitMutation reports whether req may mutate c at epoch; if not, it has
// answered w: the key is read-only, or this server does not serve c
// there.
func (s *ChunkServer) admitMutation(w *net.ResponseWriter, req *net.Request, kind net.Kind, c ChunkID, epoch uint64) bool {
	if req.Peer.ReadOnly {
		s.fail(w, kind, errf(CodeReadOnly, "%v: key %q is read-only", c, req.Peer.KeyID))
		return false
	}
	if pe := s.check(c, epoch); pe != nil {
		s.fail(w, kind, pe)
		return false
	}
	return true
}

func (s *ChunkServer) serveWrite(_ context.Context, req *net.Request, w *net.ResponseWriter) {
	m, err := DecodeWrite(req.Header)
	if err != nil {
		s.fail(w, KindWrite, errf(CodeBadMessage, "%v", err))
		return
	}
	s.mutate(w, req, KindWrite, m.Chunk, m.Epoch, m.RequestID, func() (WriteResult, *protoError) {
		// Zero copy: the engine writes straight from the buffer the
		// payload was read into (4096-aligned); it is released only after
		// the write is durable. A retried write never reaches here, so its
		// payload is released by the server when the handler returns.
		buf := req.TakePayload()
		if buf == nil {
			return WriteResult{}, errf(CodeInvalid, "write %v: empty payload", m.Chunk)
		}
		defer buf.Release()
		r, err := s.e.Write(ObjectID(m.Chunk), m.PG, uint64(m.Off), buf.Bytes())
		if err != nil {
			return WriteResult{}, engineError("write", m.Chunk, err)
		}
		return WriteResult(r), nil
	})
}

func (s *ChunkServer) serveTruncate(_ context.Context, req *net.Request, w *net.ResponseWriter) {
	m, err := DecodeTruncate(req.Header)
	if err != nil {
		s.fail(w, KindTruncate, errf(CodeBadMessage, "%v", err))
		return
	}
	s.mutate(w, req, KindTruncate, m.Chunk, m.Epoch, m.RequestID, func() (WriteResult, *protoError) {
		r, err := s.e.Truncate(ObjectID(m.Chunk), m.PG, uint64(m.Size))
		if err != nil {
			return WriteResult{}, engineError("truncate", m.Chunk, err)
		}
		return WriteResult(r), nil
	})
}

func (s *ChunkServer) serveDelete(_ context.Context, req *net.Request, w *net.ResponseWriter) {
	m, err := DecodeDelete(req.Header)
	if err != nil {
		s.fail(w, KindDelete, errf(CodeBadMessage, "%v", err))
		return
	}
	s.mutate(w, req, KindDelete, m.Chunk, m.Epoch, m.RequestID, func() (WriteResult, *protoError) {
		r, err := s.e.Delete(ObjectID(m.Chunk), m.PG)
		if err != nil {
			return WriteResult{}, engineError("delete", m.Chunk, err)
		}
		return WriteResult(r), nil
	})
}

func (s *ChunkServer) serveRead(_ context.Context, req *net.Request, w *net.ResponseWriter) {
	m, err := DecodeRead(req.Header)
	if err != nil {
		s.fail(w, KindRead, errf(CodeBadMessage, "%v", err))
		return
	}
	if pe := s.check(m.Chunk, m.Epoch); pe != nil {
		s.fail(w, KindRead, pe)
		return
	}
	// The data is read into a pooled aligned buffer and sent from it; the
	// transport releases it once the frame is written.
	buf := s.cfg.Buffers.Get(int(m.Len))
	n, err := s.e.Read(ObjectID(m.Chunk), uint64(m.Off), buf.Bytes())
	eof := errors.Is(err, io.EOF)
	if err != nil && !eof {
		buf.Release()
		s.fail(w, KindRead, engineError("read", m.Chunk, err))
		return
	}
	replyRead(w, buf.Bytes(), n, eof, make([][]byte, 1), buf.Release)
}

// dedupe remembers the results of the last N applied mutations by request
// id, so that a retried mutation returns its first result instead of being
// applied again. The bound is a FIFO ring: the id applied N mutations ago
// is forgotten, and so is everything on restart (the table lives in
// memory).
//
// TODO(cluster): durable request ids, recorded with the mutation, remove
// both limits.
//
// Only successes are remembered: a mutation that failed was not applied
// (or, for CodeUnavailable, the engine refuses every later one anyway),
// so a retry may run it again. A retry arriving while the first attempt
// is still being applied waits for it and shares its outcome.
type dedupe struct {
	mu struct {
		sync.Mutex
		m    map[RequestID]*dedupeEntry
		ring []RequestID // ids in insertion order; ring[next] is the oldest once full
		next int
		n    int
	}
}

type dedupeEntry struct {
	chunk ChunkID
	slot  int // ring slot that evicts this entry
	// Guarded by dedupe.mu: finished is set with res and err; done, made
	// by the first retry that has to wait, is closed then.
	finished bool
	done     chan struct{}
	res      WriteResult
	err      *protoError
}

func newDedupe(n int) *dedupe {
	d := &dedupe{}
	d.mu.m = make(map[RequestID]*dedupeEntry, n)
	d.mu.ring = make([]RequestID, n)
	return d
}

func (d *dedupe) do(id RequestID, c ChunkID, apply func() (WriteResult, *protoError)) (WriteResult, *protoError) {
	e, first, res, pe := d.begin(id, c)
	switch {
	case first:
		res, pe = apply()
		d.end(id, e, res, pe)
		return res, pe
	case e == nil:
		return res, pe
	}
	// A retry overtook its first attempt: wait for it. Rare, so the
	// channel is made only now.
	d.mu.Lock()
	defer d.mu.Unlock()
	if !e.finished {
		if e.done == nil {
			e.done = make(chan struct{})
		}
		done := e.done
		d.mu.Unlock()
		<-done
		d.mu.Lock()
	}
	return e.res, e.err
}

// begin is do without waiting, for callers that apply the mutation
// asynchronously. When id is new it inserts an unfinished entry and
// returns it with first set: the caller applies the mutation and then
// calls end. Otherwise first is false and: pe is set when id was used for
// another chunk; e is nil and res is the result when the first attempt
// finished; e is the unfinished entry when it is still being applied
// (the caller waits for it with do).
func (d *dedupe) begin(id RequestID, c ChunkID) (e *dedupeEntry, first bool, res WriteResult, pe *protoError) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.mu.m[id]; ok {
		switch {
		case old.chunk != c:
			return nil, false, WriteResult{}, errf(CodeInvalid, "%v: request id %x was used for %v", c, id, old.chunk)
		case !old.finished:
			return old, false, WriteResult{}, nil
		}
		// Invariant: only successes stay in the map once finished.
		return nil, false, old.res, old.err
	}
	e = &dedupeEntry{chunk: c}
	d.insertLocked(id, e)
	return e, true, WriteResult{}, nil
}

// end records the outcome of the mutation e (from do or begin) and wakes
// the retries waiting for it.
func (d *dedupe) end(id RequestID, e *dedupeEntry, res WriteResult, err *protoError) {
	d.mu.Lock()
	e.res, e.err, e.finished = res, err, true
	if err != nil && d.mu.m[id] == e {
		// The slot stays in the ring; evicting it later finds another
		// entry or none and leaves it alone.
		delete(d.mu.m, id)
	}
	if e.done != nil {
		close(e.done)
	}
	d.mu.Unlock()
}

func (d *dedupe) insertLocked(id RequestID, e *dedupeEntry) {
	slot := d.mu.next
	if d.mu.n == len(d.mu.ring) {
		old := d.mu.ring[slot]
		// An id removed after a failure and inserted again holds two ring
		// slots; only the slot its current entry was given evicts it.
		if oe, ok := d.mu.m[old]; ok && oe.slot == slot {
			delete(d.mu.m, old)
		}
	} else {
		d.mu.n++
	}
	e.slot = slot
	d.mu.ring[slot] = id
	d.mu.next = (slot + 1) % len(d.mu.ring)
	d.mu.m[id] = e
	if len(d.mu.m) > d.mu.n {
		panic(fmt.Sprintf("fsproto: dedupe map holds %d ids, ring %d", len(d.mu.m), d.mu.n))
	}
}

// len returns the number of ids remembered.
func (d *dedupe) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.mu.m)
}
