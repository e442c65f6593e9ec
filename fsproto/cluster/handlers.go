package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/replication"
	"github.com/weftfs/weft/net"
)

// route checks a client request against the key's grant and the newest
// map: the key reaches the container (reads, or writes when hasPG: the
// mutations name their PG), the container exists, pg (when the request
// names one) is the chunk's PG, the request's PG epoch is the PG's, and
// this node is its primary.
func (s *DataServer) route(w *net.ResponseWriter, peer *net.Peer, chunk fsproto.ChunkID, pg uint32, hasPG bool, epoch uint64) (clustermap.PGID, bool) {
	if err := clustermap.CheckContainerAccess(s.cfg.Access, peer.KeyID, clustermap.ContainerID(chunk.Container), hasPG); err != nil {
		w.Error(fsproto.CodeAccessDenied, "cluster: "+err.Error())
		return 0, false
	}
	m := s.latest.Load()
	if m == nil || s.closing.Load() {
		w.Error(fsproto.CodeStaleEpoch, "cluster: node has no map yet or is closing")
		return 0, false
	}
	if _, ok := m.Container(clustermap.ContainerID(chunk.Container)); !ok {
		w.Error(fsproto.CodeUnknownContainer, fmt.Sprintf("cluster: container %d is not in map epoch %d", chunk.Container, m.Epoch))
		return 0, false
	}
	p, err := m.Locate(clustermap.ContainerID(chunk.Container), chunk.Inode, chunk.Index)
	if err != nil {
		w.Error(fsproto.CodeInvalid, fmt.Sprintf("cluster: locate %v: %v", chunk, err))
		return 0, false
	}
	if hasPG && clustermap.PGID(pg) != p.ID {
		w.Error(fsproto.CodeInvalid, fmt.Sprintf("cluster: chunk %v is in pg %d, request names pg %d", chunk, p.ID, pg))
		return 0, false
	}
	if epoch != p.Epoch {
		w.Error(fsproto.CodeStaleEpoch, fmt.Sprintf("cluster: pg %d is at epoch %d (map %d), request has %d", p.ID, p.Epoch, m.Epoch, epoch))
		return 0, false
	}
	if p.Primary() != s.cfg.Node {
		w.Error(fsproto.CodeStaleEpoch, fmt.Sprintf("cluster: node %d is not the primary of pg %d at epoch %d (%d is)", s.cfg.Node, p.ID, p.Epoch, p.Primary()))
		return 0, false
	}
	return p.ID, true
}

// do hands op to the loop and waits for its Reply. ref, if set, is the
// write's payload: the loop releases it when the core is done with it.
func (s *DataServer) do(ctx context.Context, op replication.ClientOp, epoch uint64, ref *bufRef) (replication.Reply, bool) {
	r := newReq(op, epoch, ref)
	select {
	case s.ops <- r:
	case <-s.ctx.Done():
		if ref != nil {
			ref.dec()
		}
		r.release()
		r.release() // the loop never had it
		return replication.Reply{Err: errClosing}, true
	case <-ctx.Done():
		// The connection is gone: nobody would read the answer.
		if ref != nil {
			ref.dec()
		}
		r.release()
		r.release()
		return replication.Reply{}, false
	}
	defer r.release()
	select {
	case rep := <-r.done:
		return rep, true
	case <-s.closed:
		// Close drained the queue; r may have been put in it after.
		// NB: then nobody holds it for the loop, and it is not recycled.
		select {
		case rep := <-r.done:
			return rep, true
		default:
			return replication.Reply{Err: errClosing}, true
		}
	case <-ctx.Done():
		return replication.Reply{}, false
	}
}

// replyError answers a failed operation with the chunk protocol's code.
func replyError(w *net.ResponseWriter, op string, chunk fsproto.ChunkID, err error) {
	code := fsproto.CodeUnavailable
	switch {
	case errors.Is(err, replication.ErrStaleEpoch), errors.Is(err, replication.ErrNotPrimary), errors.Is(err, errClosing):
		// Not acknowledged; the client refreshes its map and retries
		// with the same request id.
		code = fsproto.CodeStaleEpoch
	case errors.Is(err, replication.ErrInvalid), errors.Is(err, engine.ErrInvalid):
		code = fsproto.CodeInvalid
	case errors.Is(err, engine.ErrNoSpace):
		code = fsproto.CodeNoSpace
	case errors.Is(err, engine.ErrCorrupt):
		code = fsproto.CodeCorrupt
	}
	// ErrBusy and store failures: CodeUnavailable (a store failure may
	// have applied the mutation on some replicas; a retry with the same
	// request id is the way to find out).
	w.Error(code, fmt.Sprintf("cluster: %s %v: %v", op, chunk, err))
}

func (s *DataServer) mutation(ctx context.Context, w *net.ResponseWriter, op replication.ClientOp, epoch uint64, ref *bufRef, name string, chunk fsproto.ChunkID) {
	rep, ok := s.do(ctx, op, epoch, ref)
	if !ok {
		w.Error(fsproto.CodeStaleEpoch, "cluster: connection closed")
		return
	}
	answerMutation(w, rep, name, chunk)
}

// answerMutation answers a mutation with the core's Reply.
func answerMutation(w *net.ResponseWriter, rep replication.Reply, name string, chunk fsproto.ChunkID) {
	if rep.Err != nil {
		replyError(w, name, chunk, rep.Err)
		return
	}
	var hb [16]byte
	// NB: Version is 0: replicas number versions independently, the PG
	// seq is what the cluster agrees on.
	w.Reply(fsproto.AppendWriteResult(hb[:0], fsproto.WriteResult{PGSeq: rep.Seq}), nil, nil)
}

// writeRequest checks and decodes a chunk write and takes its payload,
// which op.Data lies in; when it reports false it has answered the
// request with the reason.
func (s *DataServer) writeRequest(req *net.Request, w *net.ResponseWriter) (op replication.ClientOp, m fsproto.Write, buf *net.Buffer, ok bool) {
	m, err := fsproto.DecodeWrite(req.Header)
	if err != nil {
		w.Error(fsproto.CodeBadMessage, err.Error())
		return op, m, nil, false
	}
	if req.Peer.ReadOnly {
		w.Error(fsproto.CodeReadOnly, "cluster: write with a read-only key")
		return op, m, nil, false
	}
	if req.Payload == nil || req.Payload.Len() == 0 {
		w.Error(fsproto.CodeInvalid, "cluster: write without data")
		return op, m, nil, false
	}
	pg, ok := s.route(w, &req.Peer, m.Chunk, m.PG, true, m.Epoch)
	if !ok {
		return op, m, nil, false
	}
	buf = req.TakePayload()
	op = replication.ClientOp{PG: uint32(pg), Kind: replication.OpWrite, RequestID: m.RequestID,
		Object: fsproto.ObjectID(m.Chunk), Off: uint64(m.Off), Data: buf.Bytes()}
	return op, m, buf, true
}

func (s *DataServer) serveWrite(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
	if op, m, buf, ok := s.writeRequest(req, w); ok {
		s.mutation(ctx, w, op, m.Epoch, newRef(buf), "write", m.Chunk)
	}
}

func (s *DataServer) serveTruncate(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
	m, err := fsproto.DecodeTruncate(req.Header)
	if err != nil {
		w.Error(fsproto.CodeBadMessage, err.Error())
		return
	}
	if req.Peer.ReadOnly {
		w.Error(fsproto.CodeReadOnly, "cluster: truncate with a read-only key")
		return
	}
	pg, ok := s.route(w, &req.Peer, m.Chunk, m.PG, true, m.Epoch)
	if !ok {
		return
	}
	op := replication.ClientOp{PG: uint32(pg), Kind: replication.OpTruncate, RequestID: m.RequestID,
		Object: fsproto.ObjectID(m.Chunk), Size: uint64(m.Size)}
	s.mutation(ctx, w, op, m.Epoch, nil, "truncate", m.Chunk)
}

func (s *DataServer) serveDelete(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
	m, err := fsproto.DecodeDelete(req.Header)
	if err != nil {
		w.Error(fsproto.CodeBadMessage, err.Error())
		return
	}
	if req.Peer.ReadOnly {
		w.Error(fsproto.CodeReadOnly, "cluster: delete with a read-only key")
		return
	}
	pg, ok := s.route(w, &req.Peer, m.Chunk, m.PG, true, m.Epoch)
	if !ok {
		return
	}
	op := replication.ClientOp{PG: uint32(pg), Kind: replication.OpDelete, RequestID: m.RequestID,
		Object: fsproto.ObjectID(m.Chunk)}
	s.mutation(ctx, w, op, m.Epoch, nil, "delete", m.Chunk)
}

// readRequest checks and decodes a chunk read; when it reports false it
// has answered the request with the reason.
func (s *DataServer) readRequest(req *net.Request, w *net.ResponseWriter) (op replication.ClientOp, m fsproto.Read, ok bool) {
	m, err := fsproto.DecodeRead(req.Header)
	if err != nil {
		w.Error(fsproto.CodeBadMessage, err.Error())
		return op, m, false
	}
	pg, ok := s.route(w, &req.Peer, m.Chunk, 0, false, m.Epoch)
	if !ok {
		return op, m, false
	}
	op = replication.ClientOp{PG: uint32(pg), Kind: replication.OpRead, Object: fsproto.ObjectID(m.Chunk),
		Off: uint64(m.Off), Len: int(m.Len)}
	return op, m, true
}

func (s *DataServer) serveRead(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
	op, m, ok := s.readRequest(req, w)
	if !ok {
		return
	}
	rep, ok := s.do(ctx, op, m.Epoch, nil)
	if !ok {
		w.Error(fsproto.CodeStaleEpoch, "cluster: connection closed")
		return
	}
	answerRead(w, rep, m.Chunk)
}

// answerRead answers a read with the core's Reply.
func answerRead(w *net.ResponseWriter, rep replication.Reply, chunk fsproto.ChunkID) {
	switch {
	case rep.Err != nil:
		replyError(w, "read", chunk, rep.Err)
		return
	case rep.NotFound:
		w.Error(fsproto.CodeNotFound, fmt.Sprintf("cluster: read %v: no such chunk", chunk))
		return
	}
	var hb [8]byte
	// The store read into a buffer of its own that nothing else holds:
	// the response is sent from it without a copy.
	hdr := fsproto.AppendReadResult(hb[:0], fsproto.ReadResult{N: uint32(len(rep.Data)), EOF: rep.EOF})
	var payload [][]byte
	if len(rep.Data) > 0 {
		payload = [][]byte{rep.Data}
	}
	w.Reply(hdr, payload, nil)
}

// servePeer takes a batch of replication messages from another node. It
// is one-way: the answer only says the batch was taken (or dropped,
// which the core's retransmission tolerates).
func (s *DataServer) servePeer(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
	if s.cfg.PeerKeyID != "" && req.Peer.KeyID != s.cfg.PeerKeyID {
		w.Error(CodeNotForMe, fmt.Sprintf("cluster: peer batch with key %q, want the cluster key", req.Peer.KeyID))
		return
	}
	if s.cfg.Access != nil {
		if g, ok := s.cfg.Access.Grant(req.Peer.KeyID); !ok || !g.Internal() {
			w.Error(fsproto.CodeAccessDenied, fmt.Sprintf("cluster: access denied: peer batch with key %q; peer batches need the cluster key", req.Peer.KeyID))
			return
		}
	}
	h, err := DecodePeerHeader(req.Header)
	if err != nil {
		w.Error(fsproto.CodeBadMessage, err.Error())
		return
	}
	if h.To != s.cfg.Node {
		w.Error(CodeNotForMe, fmt.Sprintf("cluster: peer batch for node %d reached node %d", h.To, s.cfg.Node))
		return
	}
	if req.Payload == nil {
		w.Error(fsproto.CodeBadMessage, fmt.Sprintf("%v: no payload for %d messages", ErrBadPeerBatch, h.Count))
		return
	}
	buf := req.TakePayload()
	b := batchPool.Get().(*peerBatch)
	b.msgs, err = DecodePeerBatch(b.msgs[:0], buf.Bytes(), h.Count)
	if err != nil {
		freeBatch(b)
		buf.Release()
		w.Error(fsproto.CodeBadMessage, fmt.Sprintf("from node %d: %v", h.From, err))
		return
	}
	b.from, b.ref = uint64(h.From), newRef(buf)
	select {
	case s.recv <- b:
	default:
		b.ref.dec() // the loop is behind: drop, the sender retransmits
		freeBatch(b)
	}
	w.Reply(nil, nil, nil)
}

// startHandler is a chunk kind's handler with a StartRPC (net.Starter)
// that takes the request on the connection's reader goroutine when it
// can, and leaves it to the handler otherwise.
type startHandler struct {
	serve func(context.Context, *net.Request, *net.ResponseWriter)
	start func(context.Context, *net.Request, *net.ResponseWriter) bool
}

func (h startHandler) ServeRPC(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
	h.serve(ctx, req, w)
}

func (h startHandler) StartRPC(ctx context.Context, req *net.Request, w *net.ResponseWriter) bool {
	return h.start(ctx, req, w)
}

// startOp queues op for the loop, which answers the client itself
// (answer runs on the loop): no handler goroutine waits for the Reply,
// which saves two goroutine hand-offs per request. It reports false,
// having queued nothing and answered nothing, when the loop's queue is
// full: the handler then waits for room. The caller holds s.starting and
// has checked closing (route does), so Close answers whatever it queued.
//
// The connection's teardown waits for the answers of the requests it
// started, and the core may hold an operation for as long as its PG
// waits for replicas: when the connection's ctx ends first, the request
// is answered at once (the answer is dropped with the connection) and
// the loop's answer, when it comes, is not sent. Exactly one of the two
// uses w.
func (s *DataServer) startOp(ctx context.Context, op replication.ClientOp, epoch uint64, ref *bufRef, answer func(replication.Reply)) bool {
	var answered atomic.Bool
	stop := context.AfterFunc(ctx, func() {
		if answered.CompareAndSwap(false, true) {
			answer(replication.Reply{Err: errClosing})
		}
	})
	r := newReq(op, epoch, ref)
	r.answer = func(rep replication.Reply) {
		if answered.CompareAndSwap(false, true) {
			stop()
			answer(rep)
		}
	}
	r.holders.Store(1) // the loop's
	select {
	case s.ops <- r:
		return true
	default:
		r.ref = nil
		r.release()
		if answered.CompareAndSwap(false, true) {
			stop()
			return false
		}
		// The connection ended meanwhile, and that answered: the request
		// is taken after all, and its payload goes.
		if ref != nil {
			ref.dec()
		}
		return true
	}
}

// startRead takes a chunk read on the reader goroutine (see startOp).
func (s *DataServer) startRead(ctx context.Context, req *net.Request, w *net.ResponseWriter) bool {
	s.starting.Add(1)
	defer s.starting.Add(-1)
	op, m, ok := s.readRequest(req, w)
	if !ok {
		return true // answered
	}
	chunk := m.Chunk
	if s.readBeside(op, m.Epoch, w, chunk) {
		return true
	}
	return s.startOp(ctx, op, m.Epoch, nil, func(rep replication.Reply) { answerRead(w, rep, chunk) })
}

// startWrite takes a chunk write on the reader goroutine (see startOp).
func (s *DataServer) startWrite(ctx context.Context, req *net.Request, w *net.ResponseWriter) bool {
	s.starting.Add(1)
	defer s.starting.Add(-1)
	op, m, buf, ok := s.writeRequest(req, w)
	if !ok {
		return true // answered
	}
	chunk := m.Chunk
	ref := newRef(buf)
	if s.startOp(ctx, op, m.Epoch, ref, func(rep replication.Reply) { answerMutation(w, rep, "write", chunk) }) {
		return true
	}
	// Declined: the handler takes the request as it came, payload and all.
	ref.buf = nil
	refPool.Put(ref)
	req.Payload = buf
	return false
}
