package raftgroup

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Transport carries one member's raft messages. The Group calls Attach
// once from Start, then SetPeer, RemovePeer and Send from its Ready loop,
// and Detach from Stop.
type Transport interface {
	// Attach starts delivering messages addressed to member local to r.
	Attach(local uint64, r Receiver) error
	// Detach stops deliveries; no call into the Receiver starts after it
	// returns. It ends the goroutines Attach started.
	Detach()
	// Send sends msgs, best effort: it must not block on the network. A
	// message that cannot be sent is dropped after Receiver's
	// ReportUnreachable (and ReportSnapshot(SnapshotFailure) for a
	// snapshot); raft retries. Send may keep msgs and the messages in it.
	Send(msgs []*raftpb.Message)
	// SetPeer records (or changes) the address of member id.
	SetPeer(id uint64, addr string)
	// RemovePeer forgets member id and drops what is queued for it.
	RemovePeer(id uint64)
}

// Receiver is what a Transport delivers to: a Group.
type Receiver interface {
	// Step delivers a message addressed to this member; it may wait as
	// long as ctx allows when the member is busy.
	Step(ctx context.Context, m *raftpb.Message) error
	// TryStep delivers m only if that needs no waiting, and reports
	// whether it did; an error says m can never be delivered.
	TryStep(m *raftpb.Message) (bool, error)
	// ReportUnreachable and ReportSnapshot tell raft about failed sends.
	// They never block, so a Transport may call them from Send.
	ReportUnreachable(id uint64)
	ReportSnapshot(id uint64, status raft.SnapshotStatus)
}

// MemNetwork is an in-memory network for tests: it connects the
// MemTransports made from it, by member id, and drops, delays or
// partitions their messages. Every random choice comes from its seed. All
// methods are safe for concurrent use.
//
// Each member has one inbox goroutine that delivers its messages in the
// order they were sent; messages to a member that is not attached are
// dropped with ReportUnreachable.
type MemNetwork struct {
	mu        sync.Mutex
	rng       *rand.Rand
	seed      uint64
	endpoints map[uint64]*memEndpoint
	cut       map[[2]uint64]bool // (from, to) pairs that lose everything
	dropProb  float64
	delay     time.Duration
}

// NewMemNetwork returns a network with no faults.
func NewMemNetwork(seed uint64) *MemNetwork {
	return &MemNetwork{
		rng:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		seed:      seed,
		endpoints: make(map[uint64]*memEndpoint),
		cut:       make(map[[2]uint64]bool),
	}
}

// Seed returns the seed, for failure messages.
func (n *MemNetwork) Seed() uint64 { return n.seed }

// Isolate cuts member id off from every other member, both ways, until
// Heal.
func (n *MemNetwork) Isolate(id uint64, others ...uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, o := range others {
		n.cut[[2]uint64{id, o}] = true
		n.cut[[2]uint64{o, id}] = true
	}
}

// Cut loses every message from one member to another (one way) until
// Heal.
func (n *MemNetwork) Cut(from, to uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[[2]uint64{from, to}] = true
}

// Partition cuts every member of a off from every member of b, both ways.
func (n *MemNetwork) Partition(a, b []uint64) {
	for _, x := range a {
		n.Isolate(x, b...)
	}
}

// Heal ends every partition.
func (n *MemNetwork) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cut)
}

// SetDrop makes each message lost with probability p.
func (n *MemNetwork) SetDrop(p float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dropProb = p
}

// SetDelay holds each message for d before delivering it.
func (n *MemNetwork) SetDelay(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.delay = d
}

// Transport returns a transport on this network; Attach names its member.
func (n *MemNetwork) Transport() *MemTransport { return &MemTransport{net: n} }

// memInboxLen bounds the messages queued for one member.
const memInboxLen = 4096

type memEndpoint struct {
	id    uint64
	r     Receiver
	inbox chan memDelivery
	stop  chan struct{}
	done  chan struct{}
	// ctx ends at Detach, so a Step waiting on a busy member returns.
	ctx    context.Context
	cancel context.CancelFunc
}

type memDelivery struct {
	m      *raftpb.Message
	sender Receiver
	delay  time.Duration
}

// MemTransport is one member's Transport on a MemNetwork.
type MemTransport struct {
	net *MemNetwork
	ep  *memEndpoint
}

// Attach implements Transport.
func (t *MemTransport) Attach(local uint64, r Receiver) error {
	n := t.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if t.ep != nil {
		return fmt.Errorf("raftgroup: memory transport already attached as %d", t.ep.id)
	}
	if _, ok := n.endpoints[local]; ok {
		return fmt.Errorf("raftgroup: member %d is already attached to the memory network", local)
	}
	ep := &memEndpoint{id: local, r: r, inbox: make(chan memDelivery, memInboxLen), stop: make(chan struct{}), done: make(chan struct{})}
	ep.ctx, ep.cancel = context.WithCancel(context.Background())
	n.endpoints[local] = ep
	t.ep = ep
	go ep.deliver(n)
	return nil
}

// Detach implements Transport.
func (t *MemTransport) Detach() {
	n := t.net
	n.mu.Lock()
	ep := t.ep
	if ep != nil && n.endpoints[ep.id] == ep {
		delete(n.endpoints, ep.id)
	}
	n.mu.Unlock()
	if ep != nil {
		ep.cancel()
		close(ep.stop)
		<-ep.done
	}
}

// SetPeer implements Transport; the memory network routes by id.
func (t *MemTransport) SetPeer(uint64, string) {}

// RemovePeer implements Transport.
func (t *MemTransport) RemovePeer(uint64) {}

// Send implements Transport.
func (t *MemTransport) Send(msgs []*raftpb.Message) {
	n := t.net
	for _, m := range msgs {
		n.mu.Lock()
		dst, ok := n.endpoints[m.GetTo()]
		lost := !ok || n.cut[[2]uint64{m.GetFrom(), m.GetTo()}] || (n.dropProb > 0 && n.rng.Float64() < n.dropProb)
		delay := n.delay
		n.mu.Unlock()
		if !lost {
			// Clone: the receiver's raft may keep the message while ours
			// keeps its entries; a real network would copy too.
			select {
			case dst.inbox <- memDelivery{m: proto.Clone(m).(*raftpb.Message), sender: t.ep.r, delay: delay}:
				continue
			default:
			}
		}
		t.ep.r.ReportUnreachable(m.GetTo())
		if m.GetType() == raftpb.MsgSnap {
			t.ep.r.ReportSnapshot(m.GetTo(), raft.SnapshotFailure)
		}
	}
}

func (ep *memEndpoint) deliver(n *MemNetwork) {
	defer close(ep.done)
	for {
		select {
		case d := <-ep.inbox:
			if d.delay > 0 {
				select {
				case <-time.After(d.delay):
				case <-ep.stop:
					return
				}
			}
			n.mu.Lock()
			// A partition made while the message was queued loses it too.
			lost := n.cut[[2]uint64{d.m.GetFrom(), ep.id}]
			n.mu.Unlock()
			snap := d.m.GetType() == raftpb.MsgSnap
			if lost || ep.r.Step(ep.ctx, d.m) != nil {
				if snap {
					d.sender.ReportSnapshot(ep.id, raft.SnapshotFailure)
				}
				continue
			}
			if snap {
				d.sender.ReportSnapshot(ep.id, raft.SnapshotFinish)
			}
		case <-ep.stop:
			return
		}
	}
}
