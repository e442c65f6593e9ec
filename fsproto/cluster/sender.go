package cluster

import (
	"context"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/replication"
	"github.com/weftfs/weft/net"
)

// peerSender sends one peer's messages in batches, one KindPeer call at a
// time: while a batch is in flight the next one gathers. Everything a
// batch needs (header, call channel, timer, connection) is kept from one
// batch to the next, so a batch costs the net layer's Call and nothing
// else.
type peerSender struct {
	s  *DataServer
	to uint64
	q  chan peerItem

	batch []peerItem
	next  peerItem // taken from q but for another address
	// hasNext: next holds an item.
	hasNext bool
	hb      [PeerHeaderLen]byte
	done    chan *net.Call
	timer   *time.Timer
	conn    *net.Conn // the pool's connection to connAddr, while it works
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
		t := time.NewTimer(time.Hour)
		t.Stop()
		p = &peerSender{s: s, to: id, q: make(chan peerItem, s.cfg.QueueMax), done: make(chan *net.Call, 1),
			timer: t}
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

// call sends one batch and releases buf once the net layer is done with
// it. Failures are only logged: the core retransmits.
//
// NB: the call runs under a context that cannot end (no per-call
// context, timer or AfterFunc to allocate); the sender's own timer bounds
// the wait instead. A batch the peer did not answer within
// peerCallTimeout is abandoned: its connection is not used again by this
// sender (the pool redials it if it is broken), and a goroutine releases
// the batch's buffer when the call finally completes, which happens at
// the latest when the pool closes the connection.
func (p *peerSender) call(addr string, hdr, payload []byte, buf *net.Buffer) {
	if p.conn == nil || p.connAddr != addr || p.conn.Err() != nil {
		p.conn = nil
		ctx, cancel := context.WithTimeout(p.s.ctx, peerCallTimeout)
		conn, err := p.s.cfg.Pool.Get(ctx, addr)
		cancel()
		if err != nil {
			p.s.log.Debug("peer unreachable", "peer", p.to, "addr", addr, "err", err)
			buf.Release()
			return
		}
		p.conn, p.connAddr = conn, addr
	}
	p.conn.Go(context.Background(), KindPeer, hdr, payload, p.done)
	p.timer.Reset(peerCallTimeout)
	select {
	case c := <-p.done:
		p.timer.Stop()
		p.finish(c, addr)
		buf.Release()
	case <-p.timer.C:
		p.s.log.Debug("peer batch unanswered", "peer", p.to, "addr", addr, "after", peerCallTimeout)
		p.abandon(p.done, buf, addr)
		p.conn, p.done = nil, make(chan *net.Call, 1)
	case <-p.s.ctx.Done():
		p.timer.Stop()
		p.abandon(p.done, buf, addr)
		p.conn, p.done = nil, make(chan *net.Call, 1)
	}
}

func (p *peerSender) finish(c *net.Call, addr string) {
	if c.Error != nil {
		p.s.log.Debug("peer batch lost", "peer", p.to, "addr", addr, "err", c.Error)
		return
	}
	c.Response.Release()
}

func (p *peerSender) abandon(done chan *net.Call, buf *net.Buffer, addr string) {
	// Not waited for by Close: the call ends when the pool, which the
	// owner closes after the DataServer, closes the connection.
	go func() {
		p.finish(<-done, addr)
		buf.Release()
	}()
}
