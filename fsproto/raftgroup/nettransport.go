package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/net"
)

// KindRaft is the net.Kind of a batch of raft messages (see NetRouter).
// User range; fsproto's chunk protocol uses 256-259. On-wire: never
// renumber.
const KindRaft net.Kind = 300

// Error codes a NetRouter answers with. On-wire: never renumber.
const (
	// CodeBadBatch: the batch did not decode; nothing in it was stepped.
	CodeBadBatch net.ErrorCode = 300
	// CodeUnknownGroup: no member of the batch's group runs here (or it
	// stopped while the batch was stepped).
	CodeUnknownGroup net.ErrorCode = 301
	// CodeReadOnly: the batch came on a connection whose key only grants
	// reads.
	CodeReadOnly net.ErrorCode = 302
	// CodeAccessDenied (265, the number of fsproto.CodeAccessDenied):
	// the batch came with a key other than the cluster key (see
	// NetRouterConfig.Access). Nothing in it was stepped.
	CodeAccessDenied net.ErrorCode = 265
)

// Bounds of the network transport.
const (
	// netQueueLen bounds the messages queued for one peer; more are
	// dropped with ReportUnreachable.
	netQueueLen = 1024
	// netBatchBytesMax bounds the messages gathered into one batch before
	// it is cut to the connection's payload limit.
	netBatchBytesMax = 4 << 20
	// DefaultCallTimeout bounds the send of one batch, dial included.
	DefaultCallTimeout = 5 * time.Second
)

// NetRouterConfig configures a NetRouter.
type NetRouterConfig struct {
	// Pool dials the other nodes; the router uses it and does not close it.
	Pool *net.Pool
	// Mux is the node's server mux; NewNetRouter registers KindRaft on it,
	// so call it before the server starts.
	Mux *net.ServeMux
	// CallTimeout bounds the send of one batch, dial included. Default
	// DefaultCallTimeout.
	CallTimeout time.Duration
	// Access, when set, resolves each batch's key (net.Peer.KeyID) and
	// the router steps only batches whose key is the cluster key
	// (clustermap.Grant.Internal): admin and container keys may not speak
	// raft. nil accepts any key that is not read-only.
	Access clustermap.Authorizer
	Logger *slog.Logger // default slog.Default()
}

// NetRouter carries the raft messages of every group member on one node
// over package net: one NetTransport per group, one kind (KindRaft) on the
// node's server for all of them, dispatched by the batch's group id.
type NetRouter struct {
	pool        *net.Pool
	log         *slog.Logger
	callTimeout time.Duration
	access      clustermap.Authorizer

	mu struct {
		sync.Mutex
		groups map[uint64]*NetTransport // attached transports by group id
		// parts holds the messages arriving in parts (see takePart).
		parts map[partKey]*assembly
	}
}

// partKey names a transfer in progress: its group, its recipient and the
// sender's transfer id.
type partKey struct{ groupID, to, transfer uint64 }

// assembly is a transfer's bytes received so far.
type assembly struct {
	buf  []byte
	last time.Time // when the last part arrived
}

// transfersMax bounds the transfers a router assembles at once; a stalled
// transfer is dropped after two call timeouts without a part.
const transfersMax = 4

// NewNetRouter registers the raft handler on cfg.Mux and returns the
// router.
func NewNetRouter(cfg NetRouterConfig) (*NetRouter, error) {
	var errs []error
	if cfg.Pool == nil {
		errs = append(errs, errors.New("raftgroup: NetRouterConfig.Pool is nil"))
	}
	if cfg.Mux == nil {
		errs = append(errs, errors.New("raftgroup: NetRouterConfig.Mux is nil"))
	}
	if cfg.CallTimeout < 0 {
		errs = append(errs, fmt.Errorf("raftgroup: NetRouterConfig.CallTimeout %v, want >= 0", cfg.CallTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &NetRouter{pool: cfg.Pool, log: cfg.Logger, callTimeout: cfg.CallTimeout, access: cfg.Access}
	r.mu.groups = make(map[uint64]*NetTransport)
	r.mu.parts = make(map[partKey]*assembly)
	cfg.Mux.Handle(KindRaft, raftHandler{r})
	return r, nil
}

// raftHandler serves KindRaft. As a net.Starter it takes a batch on the
// connection's reader goroutine and hands the messages straight to the
// member's inbox when it has room, saving the hand-off to a handler
// goroutine on every hop of every commit; what does not fit goes on a
// goroutine that waits for room, which then answers.
type raftHandler struct{ r *NetRouter }

func (h raftHandler) ServeRPC(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
	h.r.serve(ctx, req, w)
}

func (h raftHandler) StartRPC(ctx context.Context, req *net.Request, w *net.ResponseWriter) bool {
	b, ok := h.r.prepare(req, w)
	if !ok {
		return true // answered
	}
	for i, m := range b.msgs {
		took, err := b.recv.TryStep(m)
		if err != nil {
			b.refuse(w, i, err)
			return true
		}
		if !took {
			go h.r.deliver(ctx, b, i, w)
			return true
		}
	}
	w.Reply(nil, nil, nil)
	return true
}

// batch is a KindRaft request checked and decoded for delivery.
type batch struct {
	recv    Receiver
	groupID uint64
	to      uint64
	msgs    []*raftpb.Message
}

// refuse answers that message i could not be delivered.
func (b batch) refuse(w *net.ResponseWriter, i int, err error) {
	w.Error(CodeUnknownGroup, fmt.Sprintf("raftgroup: group %d member %d took %d of %d messages: %v", b.groupID, b.to, i, len(b.msgs), err))
}

// Transport returns a transport for this node's member of group groupID.
// Peer addresses given to it (SetPeer) are net addresses ("host:port") of
// the nodes' servers.
func (r *NetRouter) Transport(groupID uint64) *NetTransport {
	return &NetTransport{router: r, groupID: groupID, peers: make(map[uint64]*netPeer)}
}

// authorizeBatch is the router's access check: nil when a batch sent
// with keyID may be stepped (the cluster key only, or any key with a nil
// Authorizer).
func authorizeBatch(a clustermap.Authorizer, keyID string) error {
	if a == nil {
		return nil
	}
	g, ok := a.Grant(keyID)
	switch {
	case !ok:
		return fmt.Errorf("raftgroup: access denied: key %q is unknown or revoked", keyID)
	case !g.Internal():
		return fmt.Errorf("raftgroup: access denied: key %q is a %v key; raft messages need the cluster key", keyID, g.Role)
	}
	return nil
}

// serve handles one batch.
func (r *NetRouter) serve(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
	if b, ok := r.prepare(req, w); ok {
		r.deliver(ctx, b, 0, w)
	}
}

// deliver steps b's messages from the one at index from on into the
// member, waiting for room as long as the call timeout allows, and
// answers.
func (r *NetRouter) deliver(ctx context.Context, b batch, from int, w *net.ResponseWriter) {
	ctx, cancel := context.WithTimeout(ctx, r.callTimeout)
	defer cancel()
	for i := from; i < len(b.msgs); i++ {
		if err := b.recv.Step(ctx, b.msgs[i]); err != nil {
			b.refuse(w, i, err)
			return
		}
	}
	w.Reply(nil, nil, nil)
}

// prepare checks and decodes a KindRaft request; when it reports false
// it has answered the request with the reason.
func (r *NetRouter) prepare(req *net.Request, w *net.ResponseWriter) (batch, bool) {
	if req.Peer.ReadOnly {
		w.Error(CodeReadOnly, fmt.Sprintf("raftgroup: key %q is read-only; raft messages need a write key", req.Peer.KeyID))
		return batch{}, false
	}
	if err := authorizeBatch(r.access, req.Peer.KeyID); err != nil {
		r.log.Warn("raft batch refused", "peer", req.Peer.RemoteAddr, "err", err)
		w.Error(CodeAccessDenied, err.Error())
		return batch{}, false
	}
	var payload []byte
	if req.Payload != nil {
		payload = req.Payload.Bytes()
	}
	var h batchHeader
	var msgs []*raftpb.Message
	var err error
	if len(req.Header) > 0 && req.Header[0] == partVersion {
		ph, whole, perr := r.takePart(req.Header, payload)
		if perr == nil && whole == nil {
			w.Reply(nil, nil, nil) // more parts to come
			return batch{}, false
		}
		if err = perr; err == nil {
			h = batchHeader{count: 1, groupID: ph.groupID, to: ph.to}
			msgs, err = decodeMessages(h, whole)
		}
	} else {
		h, msgs, err = decodeBatch(req.Header, payload)
	}
	if err != nil {
		r.log.Warn("raft batch refused", "peer", req.Peer.RemoteAddr, "err", err)
		w.Error(CodeBadBatch, err.Error())
		return batch{}, false
	}
	r.mu.Lock()
	t := r.mu.groups[h.groupID]
	r.mu.Unlock()
	var recv Receiver
	var local uint64
	if t != nil {
		recv, local = t.receiver()
	}
	if recv == nil || local != h.to {
		w.Error(CodeUnknownGroup, fmt.Sprintf("raftgroup: member %d of group %d does not run here", h.to, h.groupID))
		return batch{}, false
	}
	return batch{recv: recv, groupID: h.groupID, to: h.to, msgs: msgs}, true
}

// takePart adds a part (see partHeader) to its transfer and returns its
// header and the transfer's payload once the part completes it, nil
// before. A part that does not continue its transfer where the last one
// ended, or that would start a transfer beyond transfersMax, is an error,
// and the transfer is dropped: the sender reports the message
// unreachable, and raft sends it again, as a new transfer. The payload is
// copied: the request's buffer goes back to its pool after the call.
func (r *NetRouter) takePart(hdr, payload []byte) (partHeader, []byte, error) {
	h, err := decodePart(hdr, len(payload))
	if err != nil {
		return h, nil, err
	}
	key := partKey{h.groupID, h.to, h.transfer}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, a := range r.mu.parts {
		if now.Sub(a.last) > 2*r.callTimeout {
			delete(r.mu.parts, k)
		}
	}
	a := r.mu.parts[key]
	switch {
	case a == nil && h.offset == 0:
		if len(r.mu.parts) >= transfersMax {
			return h, nil, fmt.Errorf("raftgroup: %d transfers in progress here already; transfer %d to member %d of group %d refused", len(r.mu.parts), h.transfer, h.to, h.groupID)
		}
		a = &assembly{}
		r.mu.parts[key] = a
	case a == nil:
		return h, nil, fmt.Errorf("raftgroup: part at offset %d of transfer %d to member %d of group %d, whose start this node does not hold", h.offset, h.transfer, h.to, h.groupID)
	case uint64(len(a.buf)) != h.offset:
		delete(r.mu.parts, key)
		return h, nil, fmt.Errorf("raftgroup: part at offset %d of transfer %d to member %d of group %d, which holds %d bytes", h.offset, h.transfer, h.to, h.groupID, len(a.buf))
	}
	a.buf = append(a.buf, payload...)
	a.last = now
	if uint64(len(a.buf)) < h.total {
		return h, nil, nil
	}
	delete(r.mu.parts, key)
	return h, a.buf, nil
}

// NetTransport is one member's Transport over a NetRouter. Messages to
// each peer go through a queue (netQueueLen) to a sender goroutine that
// batches what accumulated and sends it with one call on a pooled
// connection. A batch fits the connection's payload limit (net's
// MaxPayloadBytes, the smaller of both sides', default 16 MiB); a single
// message larger than that (a snapshot of a large state machine) goes as
// a transfer of parts (see partHeader), up to transferBytesMax; a larger
// one fails with ReportSnapshot(SnapshotFailure).
type NetTransport struct {
	router  *NetRouter
	groupID uint64

	mu    sync.Mutex
	local uint64
	recv  Receiver
	peers map[uint64]*netPeer
}

type netPeer struct {
	id     uint64
	queue  chan *raftpb.Message
	ctx    context.Context // ends at RemovePeer or Detach
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	addr string

	// conn is the connection the sender last sent on, nil until it has
	// sent and after a direct send on it failed (see Send).
	conn atomic.Pointer[net.Conn]
	// queued counts the messages in queue and in the sender's batch: a
	// direct send waits until it is 0.
	queued atomic.Int64
	// direct counts the batches sent directly (for tests).
	direct atomic.Uint64
}

func (p *netPeer) address() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

func (t *NetTransport) receiver() (Receiver, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.recv, t.local
}

// Attach implements Transport.
func (t *NetTransport) Attach(local uint64, recv Receiver) error {
	r := t.router
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.mu.groups[t.groupID]; ok {
		_, id := old.receiver()
		return fmt.Errorf("raftgroup: group %d already has member %d attached on this node", t.groupID, id)
	}
	t.mu.Lock()
	t.local, t.recv = local, recv
	t.mu.Unlock()
	r.mu.groups[t.groupID] = t
	return nil
}

// Detach implements Transport: it stops the sender goroutines and
// unregisters the group; batches arriving for it are then refused. A batch
// being sent is let finish (within the router's CallTimeout), not
// cancelled.
func (t *NetTransport) Detach() {
	r := t.router
	r.mu.Lock()
	if r.mu.groups[t.groupID] == t {
		delete(r.mu.groups, t.groupID)
	}
	r.mu.Unlock()
	t.mu.Lock()
	peers := t.peers
	t.peers = make(map[uint64]*netPeer)
	t.recv = nil
	t.mu.Unlock()
	for _, p := range peers {
		p.cancel()
		<-p.done
	}
}

// SetPeer implements Transport.
func (t *NetTransport) SetPeer(id uint64, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.peers[id]; ok {
		p.mu.Lock()
		if p.addr != addr {
			p.addr = addr
			// Direct sends wait for the sender to dial the new address.
			p.conn.Store(nil)
		}
		p.mu.Unlock()
		return
	}
	p := &netPeer{id: id, addr: addr, queue: make(chan *raftpb.Message, netQueueLen), done: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	t.peers[id] = p
	go t.sendLoop(p)
}

// RemovePeer implements Transport.
func (t *NetTransport) RemovePeer(id uint64) {
	t.mu.Lock()
	p := t.peers[id]
	delete(t.peers, id)
	t.mu.Unlock()
	if p != nil {
		p.cancel()
		<-p.done
	}
}

// Send implements Transport. A peer's messages go straight onto its
// connection from the caller (the Ready loop), without waiting for the
// answer, when nothing for that peer waits in its queue or is being sent
// by its sender goroutine and the connection the sender last used is
// still up: then the batch costs no goroutine hand-off on this side and
// keeps the order of the peer's messages, since the sender's batches were
// stepped before its call returned. Anything else (no connection yet, a
// snapshot, a batch over the connection's limits) goes through the
// queue to the sender, which dials and waits for each answer.
func (t *NetTransport) Send(msgs []*raftpb.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := 0; i < len(msgs); {
		to := msgs[i].GetTo()
		j := i + 1
		for j < len(msgs) && msgs[j].GetTo() == to {
			j++
		}
		run := msgs[i:j]
		i = j
		p, ok := t.peers[to]
		if !ok {
			t.reportLocked(to, run)
			continue
		}
		if t.sendDirect(p, run) {
			continue
		}
		for _, m := range run {
			p.queued.Add(1)
			select {
			case p.queue <- m:
				continue
			default:
			}
			p.queued.Add(-1)
			t.reportLocked(to, []*raftpb.Message{m})
		}
	}
}

// directInFlightMax bounds the bytes in flight on a connection under
// which Send writes a batch itself: the connection's own bound
// (net.ClientConfig.MaxInFlightBytes, 64 MiB by default) would make the
// caller wait for room, and the Ready loop must not wait on the network.
const directInFlightMax = 16 << 20

// sendDirect sends run, messages to p, on the connection p's sender last
// used, unless the queue path must take them (see Send); it reports
// whether it did. A failed call reports the peer unreachable.
func (t *NetTransport) sendDirect(p *netPeer, run []*raftpb.Message) bool {
	conn := p.conn.Load()
	if conn == nil || p.queued.Load() != 0 || conn.Err() != nil {
		return false
	}
	var payload []byte
	for _, m := range run {
		if m.GetType() == raftpb.MsgSnap {
			return false
		}
		var err error
		if payload, err = appendMessage(payload, m); err != nil {
			panic(err) // a message raft made must marshal
		}
	}
	if len(payload) > conn.MaxPayloadBytes() || len(run) > maxBatchMessages {
		return false
	}
	if now, _ := conn.InFlightBytes(); now+int64(len(payload)) > directInFlightMax {
		return false
	}
	hdr := encodeBatchHeader(batchHeader{count: uint32(len(run)), groupID: t.groupID, to: p.id})
	to, n := p.id, len(run)
	p.direct.Add(1)
	conn.GoFuncWithin(context.Background(), t.router.callTimeout, KindRaft, hdr, payload, nil, func(c *net.Call) {
		if c.Response != nil {
			c.Response.Release()
		}
		if c.Error == nil {
			return
		}
		// The next batch for p goes through the sender, which dials anew.
		p.conn.CompareAndSwap(conn, nil)
		t.router.log.Debug("raft batch not delivered", "group", t.groupID, "peer", to, "messages", n, "err", c.Error)
		// This may run on Send's goroutine, under t.mu: report from
		// another.
		go t.report(to, nil, false)
	})
	return true
}

// directBatches is the number of batches Send sent directly.
func (t *NetTransport) directBatches() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n uint64
	for _, p := range t.peers {
		n += p.direct.Load()
	}
	return n
}

// reportLocked tells raft that msgs to id were lost.
func (t *NetTransport) reportLocked(id uint64, msgs []*raftpb.Message) {
	if t.recv == nil {
		return
	}
	t.recv.ReportUnreachable(id)
	for _, m := range msgs {
		if m.GetType() == raftpb.MsgSnap {
			t.recv.ReportSnapshot(id, raft.SnapshotFailure)
		}
	}
}

func (t *NetTransport) report(id uint64, msgs []*raftpb.Message, sent bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !sent {
		t.reportLocked(id, msgs)
		return
	}
	for _, m := range msgs {
		if m.GetType() == raftpb.MsgSnap && t.recv != nil {
			t.recv.ReportSnapshot(id, raft.SnapshotFinish)
		}
	}
}

func (t *NetTransport) sendLoop(p *netPeer) {
	defer close(p.done)
	for {
		var batch []*raftpb.Message
		select {
		case m := <-p.queue:
			batch = append(batch, m)
		case <-p.ctx.Done():
			return
		}
		size := proto.Size(batch[0])
	gather:
		for len(batch) < maxBatchMessages && size < netBatchBytesMax {
			select {
			case m := <-p.queue:
				batch = append(batch, m)
				size += proto.Size(m)
			default:
				break gather
			}
		}
		t.sendBatch(p, batch)
		p.queued.Add(-int64(len(batch)))
	}
}

// sendBatch sends batch to p in as many calls as the connection's payload
// limit needs.
func (t *NetTransport) sendBatch(p *netPeer, batch []*raftpb.Message) {
	log := t.router.log
	getCtx, cancelGet := context.WithTimeout(p.ctx, t.router.callTimeout)
	defer cancelGet()
	// NB: the calls' context is not p.ctx: a call cancelled while its frame
	// is still queued in net's writer races with the writer (net's
	// Call.finish resets the frame the queue still points to). So Detach
	// lets a batch in flight finish, within callTimeout, instead of
	// cancelling it. TODO(net): remove once cancelling a queued call is
	// race-free.
	ctx, cancel := context.WithTimeout(context.Background(), t.router.callTimeout)
	defer cancel()
	addr := p.address()
	conn, err := t.router.pool.Get(getCtx, addr)
	if err != nil {
		log.Debug("raft peer unreachable", "group", t.groupID, "peer", p.id, "addr", addr, "err", err)
		t.report(p.id, batch, false)
		return
	}
	// Direct sends may use conn once this batch is counted sent (see
	// Send): they wait for p.queued, which counts it until then.
	p.conn.Store(conn)
	limit := conn.MaxPayloadBytes()
	for len(batch) > 0 {
		var payload []byte
		n := 0
		for n < len(batch) {
			next, err := appendMessage(payload, batch[n])
			if err != nil {
				panic(err) // a message raft made must marshal
			}
			if len(next) > limit {
				break
			}
			payload = next
			n++
		}
		if n == 0 {
			// One message over the limit (a large snapshot): in parts.
			m := batch[0]
			if err := t.sendParts(conn, p.id, m, limit); err != nil {
				log.Warn("raft message in parts not delivered", "group", t.groupID, "peer", p.id, "addr", addr,
					"type", m.GetType().String(), "bytes", proto.Size(m), "limit", limit, "err", err)
				t.report(p.id, batch, false)
				p.conn.Store(nil)
				return
			}
			t.report(p.id, batch[:1], true)
			batch = batch[1:]
			continue
		}
		hdr := encodeBatchHeader(batchHeader{count: uint32(n), groupID: t.groupID, to: p.id})
		resp, err := conn.Call(ctx, KindRaft, hdr, payload)
		if err != nil {
			log.Debug("raft batch not delivered", "group", t.groupID, "peer", p.id, "addr", addr, "messages", len(batch), "err", err)
			t.report(p.id, batch, false)
			p.conn.Store(nil)
			return
		}
		resp.Release()
		t.report(p.id, batch[:n], true)
		batch = batch[n:]
	}
}

// sendParts sends m to member to as a transfer of parts of at most limit
// bytes (see partHeader), one call after another on conn, each within the
// call timeout.
func (t *NetTransport) sendParts(conn *net.Conn, to uint64, m *raftpb.Message, limit int) error {
	payload, err := appendMessage(nil, m)
	if err != nil {
		panic(err) // a message raft made must marshal
	}
	if len(payload) > transferBytesMax {
		return fmt.Errorf("raftgroup: %s of %d bytes is over the %d bytes a transfer carries", m.GetType(), len(payload), transferBytesMax)
	}
	transfer := rand.Uint64() | 1
	for off := 0; off < len(payload); off += limit {
		end := min(off+limit, len(payload))
		hdr := encodePartHeader(partHeader{groupID: t.groupID, to: to, transfer: transfer, offset: uint64(off), total: uint64(len(payload))})
		// Not p.ctx: see sendBatch.
		ctx, cancel := context.WithTimeout(context.Background(), t.router.callTimeout)
		resp, err := conn.Call(ctx, KindRaft, hdr, payload[off:end])
		cancel()
		if err != nil {
			return fmt.Errorf("part of %d bytes at offset %d of %d: %w", end-off, off, len(payload), err)
		}
		resp.Release()
	}
	return nil
}

var (
	_ Transport = (*NetTransport)(nil)
	_ Transport = (*MemTransport)(nil)
	_ Receiver  = (*Group)(nil)
)
