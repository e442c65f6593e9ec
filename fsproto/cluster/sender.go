package cluster

import (
	"context"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/replication"
	"github.com/weftfs/weft/net"
)

// peerSender sends one peer's messages in batches, one KindPeer call at a
// time: while a batch is in flight the next one gathers.
type peerSender struct {
	s  *DataServer
	to uint64
	q  chan peerItem
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
		p = &peerSender{s: s, to: id, q: make(chan peerItem, s.cfg.QueueMax)}
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
	var batch []peerItem
	var next *peerItem
	for {
		if next == nil {
			it, ok := <-p.q
			if !ok {
				return
			}
			next = &it
		}
		// Gather what is queued for the same address.
		batch = append(batch[:0], *next)
		next = nil
		size := msgSize(&batch[0].msg)
	gather:
		for len(batch) < PeerBatchMax && size < peerBatchBytes {
			select {
			case it, ok := <-p.q:
				if !ok {
					break gather
				}
				if it.addr != batch[0].addr {
					next = &it
					break gather
				}
				batch = append(batch, it)
				size += msgSize(&it.msg)
			default:
				break gather
			}
		}
		addr := batch[0].addr
		buf := pool.Get(size)
		b := buf.Bytes()[:0]
		for i := range batch {
			b = appendPeerMsg(b, &batch[i].msg)
			if r := batch[i].ref; r != nil {
				r.dec()
			}
			batch[i] = peerItem{}
		}
		var hb [PeerHeaderLen]byte
		hdr := AppendPeerHeader(hb[:0], PeerHeader{Count: uint32(len(batch)), From: p.s.cfg.Node, To: clustermap.NodeID(p.to)})
		p.call(addr, hdr, b)
		buf.Release()
	}
}

// call sends one batch; failures are only logged: the core retransmits.
func (p *peerSender) call(addr string, hdr, payload []byte) {
	ctx, cancel := context.WithTimeout(p.s.ctx, peerCallTimeout)
	defer cancel()
	conn, err := p.s.cfg.Pool.Get(ctx, addr)
	if err != nil {
		p.s.log.Debug("peer unreachable", "peer", p.to, "addr", addr, "err", err)
		return
	}
	resp, err := conn.Call(ctx, KindPeer, hdr, payload)
	if err != nil {
		p.s.log.Debug("peer batch lost", "peer", p.to, "addr", addr, "err", err)
		return
	}
	resp.Release()
}
