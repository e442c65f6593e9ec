package raftgroup

import (
	"context"
	"errors"
	"fmt"
	stdnet "net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/weftfs/weft/internal/testutil"
	"github.com/weftfs/weft/net"
)

const (
	testCluster = "raft-test"
	testKeyID   = "node"
	testGroup   = 7
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// netNode is one node of a loopback cluster: a server with a router, and
// a pool to dial the others.
type netNode struct {
	addr   string
	srv    *net.Server
	pool   *net.Pool
	router *NetRouter
	served chan error
}

// startNetNode starts a node; with fn, its traffic goes through the fault
// network as the endpoint name.
func startNetNode(t *testing.T, fn *net.FaultNet, name string) *netNode {
	t.Helper()
	return startNetNodeLimit(t, fn, name, 0)
}

// startNetNodeLimit starts a node whose server and client take payloads
// of at most limit bytes (0: net's default).
func startNetNodeLimit(t *testing.T, fn *net.FaultNet, name string, limit int) *netNode {
	t.Helper()
	var keys net.MemKeyStore
	keys.Add(testKeyID, testSecret, false)
	keys.Add("reader", testSecret, true)
	mux := net.NewServeMux()
	client := net.ClientConfig{ClusterID: testCluster, KeyID: testKeyID, Secret: testSecret, MaxPayloadBytes: limit, Logger: testLogger()}
	if fn != nil {
		client.Dial = fn.Dialer(name)
	}
	pool, err := net.NewPool(net.PoolConfig{
		Client: client, ConnsPerPeer: 1, BackoffBase: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond, Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	router, err := NewNetRouter(NetRouterConfig{Pool: pool, Mux: mux, CallTimeout: time.Second, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := net.NewServer(net.ServerConfig{ClusterID: testCluster, Keys: &keys, MaxPayloadBytes: limit, Logger: testLogger()}, mux)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if fn != nil {
		ln = fn.Listener(name, ln)
	}
	n := &netNode{addr: ln.Addr().String(), srv: srv, pool: pool, router: router, served: make(chan error, 1)}
	go func() { n.served <- srv.Serve(ln) }()
	return n
}

func (n *netNode) close(t *testing.T) {
	n.pool.Close()
	n.srv.Close()
	if err := <-n.served; !errors.Is(err, net.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
}

// netCluster is a group of three members, one per node, over loopback TCP.
type netCluster struct {
	t      *testing.T
	nodes  []*netNode
	peers  []Peer
	logs   []*MemLog
	sms    []*testSM
	groups []*Group
	trs    []*NetTransport
	ctx    context.Context
}

func newNetCluster(t *testing.T, fn *net.FaultNet) *netCluster {
	return newNetClusterLimit(t, fn, 0)
}

// newNetClusterLimit is newNetCluster with nodes whose payloads are at
// most limit bytes (0: net's default).
func newNetClusterLimit(t *testing.T, fn *net.FaultNet, limit int) *netCluster {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	c := &netCluster{t: t, ctx: ctx, logs: make([]*MemLog, 3), sms: make([]*testSM, 3), groups: make([]*Group, 3), trs: make([]*NetTransport, 3)}
	for i := range 3 {
		n := startNetNodeLimit(t, fn, fmt.Sprintf("n%d", i+1), limit)
		c.nodes = append(c.nodes, n)
		c.peers = append(c.peers, Peer{ID: uint64(i + 1), Addr: n.addr})
	}
	t.Cleanup(func() {
		for _, g := range c.groups {
			if g != nil {
				g.Stop()
			}
		}
		for _, n := range c.nodes {
			n.close(t)
		}
		cancel()
	})
	for i := range 3 {
		c.logs[i] = NewMemLog()
		c.start(i)
	}
	return c
}

func (c *netCluster) start(i int) {
	c.t.Helper()
	c.sms[i] = newTestSM()
	c.trs[i] = c.nodes[i].router.Transport(testGroup)
	g, err := Start(Config{
		ID: uint64(i + 1), Peers: c.peers, Log: c.logs[i], SM: c.sms[i],
		Transport:    c.trs[i],
		TickInterval: 10 * time.Millisecond, SnapshotEvery: 5, Logger: testLogger().With("member", i+1),
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.groups[i] = g
}

func (c *netCluster) stop(i int) {
	c.groups[i].Stop()
	c.groups[i] = nil
}

func (c *netCluster) propose(i int, cmd string) {
	c.t.Helper()
	for {
		_, err := c.groups[i].Propose(c.ctx, []byte(cmd))
		if err == nil {
			return
		}
		if !Retryable(err) || c.ctx.Err() != nil {
			c.t.Fatalf("propose %q on %d: %v", cmd, i+1, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leader waits until the members at idx agree on a leader among them and
// returns its index.
func (c *netCluster) leader(idx ...int) int {
	c.t.Helper()
	var lead int
	waitFor(c.t, fmt.Sprintf("a leader among %v", idx), func() bool {
		l := int(c.groups[idx[0]].Leader()) - 1
		if !slices.Contains(idx, l) {
			return false
		}
		for _, i := range idx {
			if int(c.groups[i].Leader())-1 != l {
				return false
			}
		}
		lead = l
		return true
	})
	return lead
}

func (c *netCluster) converge(want int, idx ...int) {
	c.t.Helper()
	waitFor(c.t, fmt.Sprintf("%d commands on %v", want, idx), func() bool {
		for _, i := range idx {
			if len(c.sms[i].History()) != want {
				return false
			}
		}
		return true
	})
	for _, i := range idx[1:] {
		if a, b := c.sms[i].History(), c.sms[idx[0]].History(); !slices.Equal(a, b) {
			c.t.Fatalf("member %d applied %v, member %d %v", i+1, a, idx[0]+1, b)
		}
	}
}

func TestNetTransportLoopback(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newNetCluster(t, nil)
	ctx := c.ctx
	for i := range 9 {
		c.propose(i%3, fmt.Sprintf("k%d=v", i))
	}
	c.converge(9, 0, 1, 2)
	// Once a peer's sender has a connection, batches go out directly.
	var direct uint64
	for _, tr := range c.trs {
		direct += tr.directBatches()
	}
	if direct == 0 {
		t.Fatal("no batch was sent directly on a connection the senders had dialled")
	}

	// A stopped member misses enough to need a snapshot, sent over TCP.
	lead := c.leader(0, 1, 2)
	f := (lead + 1) % 3
	c.stop(f)
	fLast, _ := c.logs[f].LastIndex()
	for i := range 20 {
		c.propose(lead, fmt.Sprintf("s%d=v", i))
	}
	waitFor(t, "the leader's log compacted past the stopped member's", func() bool {
		first, _ := c.logs[lead].FirstIndex()
		return first > fLast+1
	})
	c.start(f)
	c.converge(29, 0, 1, 2)
	st, err := c.groups[f].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.SnapIndex <= fLast {
		t.Fatalf("restarted member caught up without installing a snapshot: %+v", st)
	}

	// Bad bytes get a clear error and change nothing.
	conn, err := net.Dial(ctx, c.nodes[0].addr, net.ClientConfig{ClusterID: testCluster, KeyID: testKeyID, Secret: testSecret, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hdr := encodeBatchHeader(batchHeader{count: 1, groupID: testGroup, to: 1})
	_, err = conn.Call(ctx, KindRaft, hdr, []byte{3, 0, 0, 0, 0xff, 0xff, 0xff})
	var re *net.RemoteError
	if !errors.As(err, &re) || re.Code != CodeBadBatch || !strings.Contains(re.Message, "batch message 0 of 1") {
		t.Fatalf("garbage batch: %v, want CodeBadBatch naming the message", err)
	}
	good, _ := appendMessage(nil, &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), To: proto.Uint64(1), From: proto.Uint64(2)})
	_, err = conn.Call(ctx, KindRaft, encodeBatchHeader(batchHeader{count: 1, groupID: 99, to: 1}), good)
	if !errors.As(err, &re) || re.Code != CodeUnknownGroup {
		t.Fatalf("batch for an unknown group: %v, want CodeUnknownGroup", err)
	}
	ro, err := net.Dial(ctx, c.nodes[0].addr, net.ClientConfig{ClusterID: testCluster, KeyID: "reader", Secret: testSecret, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	_, err = ro.Call(ctx, KindRaft, hdr, good)
	if !errors.As(err, &re) || re.Code != CodeReadOnly {
		t.Fatalf("batch on a read-only key: %v, want CodeReadOnly", err)
	}
	c.propose(0, "after-garbage=v")
	c.converge(30, 0, 1, 2)
}

func TestNetTransportPartition(t *testing.T) {
	testutil.CheckLeaks(t)
	fn := net.NewFaultNet(11)
	c := newNetCluster(t, fn)
	old := c.leader(0, 1, 2)
	c.propose(old, "before=1")
	var majority []int
	for i := range 3 {
		if i != old {
			majority = append(majority, i)
			fn.Partition(fmt.Sprintf("n%d", old+1), fmt.Sprintf("n%d", i+1))
		}
	}
	lead := c.leader(majority...)
	for i := range 5 {
		c.propose(lead, fmt.Sprintf("maj%d=1", i))
	}
	c.converge(6, majority...)
	fn.HealAll()
	c.converge(6, 0, 1, 2)
	c.propose(old, "healed=1")
	c.converge(7, 0, 1, 2)
	if t.Failed() {
		t.Logf("fault network seed %d", fn.Seed())
	}
}

// inboxRecv is a Receiver whose inbox takes room messages without
// waiting (TryStep) and the rest only through Step, recording the order.
type inboxRecv struct {
	mu     sync.Mutex
	room   int
	tried  []uint64 // indexes of the messages TryStep took
	waited []uint64 // and Step
}

func (r *inboxRecv) TryStep(m *raftpb.Message) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.room == 0 {
		return false, nil
	}
	r.room--
	r.tried = append(r.tried, m.GetIndex())
	return true, nil
}

func (r *inboxRecv) Step(_ context.Context, m *raftpb.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waited = append(r.waited, m.GetIndex())
	return nil
}

func (r *inboxRecv) ReportUnreachable(uint64)                   {}
func (r *inboxRecv) ReportSnapshot(uint64, raft.SnapshotStatus) {}

// TestNetRouterFullInbox: a batch the member's inbox cannot take whole
// without waiting is taken as far as it goes on the connection's reader,
// and the rest is stepped, in order, by a goroutine that may wait, before
// the call is answered.
func TestNetRouterFullInbox(t *testing.T) {
	testutil.CheckLeaks(t)
	a, b := startNetNode(t, nil, ""), startNetNode(t, nil, "")
	defer a.close(t)
	defer b.close(t)
	recv := &inboxRecv{room: 2}
	tr := b.router.Transport(testGroup)
	if err := tr.Attach(2, recv); err != nil {
		t.Fatal(err)
	}
	defer tr.Detach()
	var payload []byte
	for i := range 5 {
		var err error
		payload, err = appendMessage(payload, &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), To: proto.Uint64(2), From: proto.Uint64(1), Index: proto.Uint64(uint64(i))})
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, err := a.pool.Get(ctx, b.addr)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := conn.Call(ctx, KindRaft, encodeBatchHeader(batchHeader{count: 5, groupID: testGroup, to: 2}), payload)
	if err != nil {
		t.Fatalf("batch into a full inbox: %v", err)
	}
	resp.Release()
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if !slices.Equal(recv.tried, []uint64{0, 1}) || !slices.Equal(recv.waited, []uint64{2, 3, 4}) {
		t.Fatalf("taken without waiting %v, then with %v; want [0 1] then [2 3 4]", recv.tried, recv.waited)
	}
}

// TestNetTransportSnapshotInParts: on connections that take payloads of
// at most 32 KiB, a member that fell behind a compacted log gets a
// snapshot several times that size, sent as a transfer of parts, and
// catches up. Before transfers, the snapshot was dropped at the sender
// and the member never caught up.
func TestNetTransportSnapshotInParts(t *testing.T) {
	testutil.CheckLeaks(t)
	const limit = 32 << 10
	c := newNetClusterLimit(t, nil, limit)
	lead := c.leader(0, 1, 2)
	c.propose(lead, "a=1")
	c.converge(1, 0, 1, 2)
	behind := (lead + 1) % 3
	c.stop(behind)
	rest := []int{lead, (lead + 2) % 3}
	big := strings.Repeat("x", 2000)
	for i := range 60 {
		c.propose(lead, fmt.Sprintf("k%02d=%s", i, big))
	}
	c.converge(61, rest...)
	snap, err := c.logs[lead].Snapshot()
	if err != nil || snap.GetMetadata().GetIndex() == 0 || len(snap.GetData()) <= 2*limit {
		t.Fatalf("leader's snapshot: index %d, %d bytes (%v); want one over %d bytes", snap.GetMetadata().GetIndex(), len(snap.GetData()), err, 2*limit)
	}
	c.start(behind)
	c.converge(61, 0, 1, 2)
	if got := c.sms[behind].Get("k59"); got != big {
		t.Fatalf("member %d's k59 holds %d bytes", behind+1, len(got))
	}
}

// TestTakePartRefuses: parts out of order, of an unknown transfer, or
// beyond the transfers a router holds at once are refused, and a refused
// transfer is dropped.
func TestTakePartRefuses(t *testing.T) {
	n := startNetNode(t, nil, "")
	defer n.close(t)
	r := n.router
	part := func(transfer, off, total uint64) []byte {
		return encodePartHeader(partHeader{groupID: testGroup, to: 2, transfer: transfer, offset: off, total: total})
	}
	if _, whole, err := r.takePart(part(1, 0, 6), []byte("abc")); err != nil || whole != nil {
		t.Fatalf("first part: %q, %v", whole, err)
	}
	if _, _, err := r.takePart(part(1, 4, 6), []byte("ef")); err == nil || !strings.Contains(err.Error(), "holds 3 bytes") {
		t.Fatalf("a part past the end: %v", err)
	}
	if _, _, err := r.takePart(part(1, 3, 6), []byte("def")); err == nil || !strings.Contains(err.Error(), "does not hold") {
		t.Fatalf("the refused transfer's next part: %v", err)
	}
	for i := range uint64(transfersMax) {
		if _, _, err := r.takePart(part(10+i, 0, 9), []byte("x")); err != nil {
			t.Fatalf("transfer %d: %v", 10+i, err)
		}
	}
	if _, _, err := r.takePart(part(99, 0, 9), []byte("x")); err == nil || !strings.Contains(err.Error(), "transfers in progress") {
		t.Fatalf("one transfer too many: %v", err)
	}
	if _, whole, err := r.takePart(part(10, 1, 9), []byte("12345678")); err != nil || string(whole) != "x12345678" {
		t.Fatalf("last part: %q, %v", whole, err)
	}
	if _, _, err := r.takePart(part(5, 9, 9), []byte("x")); err == nil || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a part outside its transfer: %v", err)
	}
}
