package cluster

import (
	"context"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/replication"
	"github.com/weftfs/weft/net"
)

// peerSender sends one peer's messages in batches, one KindPeer call at a
// time: while a batch is in flight the next one gathers. The batch slice,
// header and connection are kept from one batch to the next.
type peerSender struct {
	s  *DataServer
	to uint64
	q  chan peerItem

	batch []peerItem
	next  peerItem // taken from q but for another address
	// hasNext: next holds an item.
	hasNext bool
	hb      [PeerHeaderLen]byte
	conn    *net.Conn // the pool's connection to connAddr, while it works
	// callCtx is the context of this sender's calls until one times out
	// (see call); callCancel ends it.
	callCtx    context.Context
	callCancel context.CancelFunc
	done       chan *net.Call // receives each call, one at a time
	timer      *time.Timer    // bounds one call
	// connAddr is the address conn reaches.
	connAddr string
}

type peerItem struct {
	addr string
	msg  replication.Msg
	ref  *bufRef // holds msg.Data when it lies in a payload buffer
}

// send queues e for its peer. Called by the loop only.
func (s *DataServer) send(e replication.Send) {
	m := s.latest.Load()
	if m == nil {
		return
	}
	n, ok := m.Node(clustermap.NodeID(e.To))
	if !ok {
		return
	}
	it := peerItem{addr: n.Addr, msg: e.Msg}
	if len(e.Msg.Data) > 0 && e.Msg.Kind == replication.MsgForward {
		it.ref = s.dataRefs[dataPtr(e.Msg.Data)]
		if it.ref == nil {
			// Invariant: a forward's data is a pending client write's
			// payload, which is tracked until its Reply.
			panic("cluster: forward of untracked data")
		}
		it.ref.inc()
	}
	if e.Msg.Kind == replication.MsgSyncObject {
		s.pg(clustermap.PGID(e.Msg.PG)).syncSent += int64(len(e.Msg.Data))
	}
	p := s.peer(e.To)
	select {
	case p.q <- it:
	default:
		if it.ref != nil {
			it.ref.dec()
		}
	}
}

func (s *DataServer) peer(id uint64) *peerSender {
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	p := s.peers[id]
	if p == nil {
		t := time.NewTimer(peerCallTimeout)
		t.Stop()
		p = &peerSender{s: s, to: id, q: make(chan peerItem, s.cfg.QueueMax), done: make(chan *net.Call, 1), timer: t}
		s.peers[id] = p
		s.sendWG.Add(1)
		go p.run()
	}
	return p
}

func msgSize(m *replication.Msg) int {
	return 4 + 128 + len(m.Data) + 24*len(m.Entries)
}

func (p *peerSender) run() {
	defer p.s.sendWG.Done()
	defer func() {
		if p.callCancel != nil {
			p.callCancel()
		}
	}()
	pool := net.DefaultBufferPool()
	for {
		if !p.hasNext {
			it, ok := <-p.q
			if !ok {
				return
			}
			p.next, p.hasNext = it, true
		}
		// Gather what is queued for the same address.
		p.batch = append(p.batch[:0], p.next)
		p.next, p.hasNext = peerItem{}, false
		size := msgSize(&p.batch[0].msg)
	gather:
		for len(p.batch) < PeerBatchMax && size < peerBatchBytes {
			select {
			case it, ok := <-p.q:
				if !ok {
					break gather
				}
				if it.addr != p.batch[0].addr {
					p.next, p.hasNext = it, true
					break gather
				}
				p.batch = append(p.batch, it)
				size += msgSize(&it.msg)
			default:
				break gather
			}
		}
		addr := p.batch[0].addr
		buf := pool.Get(size)
		b := buf.Bytes()[:0]
		for i := range p.batch {
			b = appendPeerMsg(b, &p.batch[i].msg)
			if r := p.batch[i].ref; r != nil {
				r.dec()
			}
			p.batch[i] = peerItem{}
		}
		hdr := AppendPeerHeader(p.hb[:0], PeerHeader{Count: uint32(len(p.batch)), From: p.s.cfg.Node, To: clustermap.NodeID(p.to)})
		p.call(addr, hdr, b, buf)
	}
}

// call sends one batch and releases buf. Failures are only logged: the
// core retransmits.
//
// The calls of a sender share one context (callCtx, a child of the
// server's), and the sender's own timer bounds each call: a call the
// peer does not answer in peerCallTimeout (its frame was lost) is
// aborted by cancelling that context, which frees its bytes in the
// connection's in-flight bound, and the next call gets a fresh context.
// This spares a context and a timer per call. NB: the net layer still
// registers an AfterFunc per call on a context that can end; a way to
// abort a call without one would remove that too.
func (p *peerSender) call(addr string, hdr, payload []byte, buf *net.Buffer) {
	defer buf.Release()
	if p.callCtx == nil {
		p.callCtx, p.callCancel = context.WithCancel(p.s.ctx)
	}
	if p.conn == nil || p.connAddr != addr || p.conn.Err() != nil {
		p.conn = nil
		ctx, cancel := context.WithTimeout(p.s.ctx, peerCallTimeout)
		conn, err := p.s.cfg.Pool.Get(ctx, addr)
		cancel()
		if err != nil {
			p.s.log.Debug("peer unreachable", "peer", p.to, "addr", addr, "err", err)
			return
		}
		p.conn, p.connAddr = conn, addr
	}
	p.conn.Go(p.callCtx, KindPeer, hdr, payload, p.done)
	p.timer.Reset(peerCallTimeout)
	var c *net.Call
	select {
	case c = <-p.done:
		p.timer.Stop()
	case <-p.timer.C:
		p.callCancel()
		p.callCtx, p.callCancel = nil, nil
		c = <-p.done // the abort completes the call
	}
	if c.Error != nil {
		// The next batch asks the pool again: it replaces broken
		// connections.
		p.conn = nil
		p.s.log.Debug("peer batch lost", "peer", p.to, "addr", addr, "err", c.Error)
		return
	}
	c.Response.Release()
}
