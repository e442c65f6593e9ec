package raftgroup

import (
	"context"
	"errors"
	"fmt"
	stdnet "net"
	"strings"
	"testing"
	"time"

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

func startNetNode(t *testing.T) *netNode {
	t.Helper()
	var keys net.MemKeyStore
	keys.Add(testKeyID, testSecret, false)
	keys.Add("reader", testSecret, true)
	mux := net.NewServeMux()
	pool, err := net.NewPool(net.PoolConfig{
		Client:       net.ClientConfig{ClusterID: testCluster, KeyID: testKeyID, Secret: testSecret, Logger: testLogger()},
		ConnsPerPeer: 1, BackoffBase: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond, Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	router, err := NewNetRouter(NetRouterConfig{Pool: pool, Mux: mux, CallTimeout: time.Second, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := net.NewServer(net.ServerConfig{ClusterID: testCluster, Keys: &keys, Logger: testLogger()}, mux)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
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

func TestNetTransportLoopback(t *testing.T) {
	testutil.CheckLeaks(t)
	nodes := make([]*netNode, 3)
	var peers []Peer
	for i := range nodes {
		nodes[i] = startNetNode(t)
		peers = append(peers, Peer{ID: uint64(i + 1), Addr: nodes[i].addr})
	}
	defer func() {
		for _, n := range nodes {
			n.close(t)
		}
	}()
	logs := make([]*MemLog, 3)
	sms := make([]*testSM, 3)
	groups := make([]*Group, 3)
	start := func(i int) {
		sms[i] = newTestSM()
		g, err := Start(Config{
			ID: uint64(i + 1), Peers: peers, Log: logs[i], SM: sms[i],
			Transport:    nodes[i].router.Transport(testGroup),
			TickInterval: 10 * time.Millisecond, SnapshotEvery: 5, Logger: testLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		groups[i] = g
	}
	for i := range groups {
		logs[i] = NewMemLog()
		start(i)
	}
	defer func() {
		for _, g := range groups {
			g.Stop()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	propose := func(i int, cmd string) {
		t.Helper()
		for {
			_, err := groups[i].Propose(ctx, []byte(cmd))
			if err == nil {
				return
			}
			if !Retryable(err) || ctx.Err() != nil {
				t.Fatalf("propose %q on %d: %v", cmd, i+1, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	converge := func(want int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d commands everywhere", want), func() bool {
			for _, sm := range sms {
				if len(sm.History()) != want {
					return false
				}
			}
			return true
		})
		for i := 1; i < 3; i++ {
			if a, b := sms[i].History(), sms[0].History(); fmt.Sprint(a) != fmt.Sprint(b) {
				t.Fatalf("member %d applied %v, member 1 %v", i+1, a, b)
			}
		}
	}
	for i := range 9 {
		propose(i%3, fmt.Sprintf("k%d=v", i))
	}
	converge(9)

	// A stopped member misses enough to need a snapshot, sent over TCP.
	lead := int(groups[0].Leader()) - 1
	f := (lead + 1) % 3
	groups[f].Stop()
	fLast, _ := logs[f].LastIndex()
	for i := range 20 {
		propose(lead, fmt.Sprintf("s%d=v", i))
	}
	waitFor(t, "the leader's log compacted past the stopped member's", func() bool {
		first, _ := logs[lead].FirstIndex()
		return first > fLast+1
	})
	start(f)
	converge(29)
	st, err := groups[f].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.SnapIndex <= fLast {
		t.Fatalf("restarted member caught up without installing a snapshot: %+v", st)
	}

	// Bad bytes get a clear error and change nothing.
	conn, err := net.Dial(ctx, nodes[0].addr, net.ClientConfig{ClusterID: testCluster, KeyID: testKeyID, Secret: testSecret, Logger: testLogger()})
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
	ro, err := net.Dial(ctx, nodes[0].addr, net.ClientConfig{ClusterID: testCluster, KeyID: "reader", Secret: testSecret, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	_, err = ro.Call(ctx, KindRaft, hdr, good)
	if !errors.As(err, &re) || re.Code != CodeReadOnly {
		t.Fatalf("batch on a read-only key: %v, want CodeReadOnly", err)
	}
	propose(0, "after-garbage=v")
	converge(30)
}
