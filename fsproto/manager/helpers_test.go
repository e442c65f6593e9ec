package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	stdnet "net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/raftgroup"
	"github.com/weftfs/weft/net"
)

const (
	testClusterID = "manager-test"
	testKeyID     = "cluster"
	testReaderKey = "reader"
	// testOtherKey is a read-write key whose Grant the key tests choose
	// (through Config.Access).
	testOtherKey = "other"
	// waitTimeout bounds every wait of the tests; only a hang reaches it.
	waitTimeout = 30 * time.Second
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func testLogger() *slog.Logger {
	if os.Getenv("MANAGER_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testPool returns a pool with key; with fn, its connections go through
// the fault network as endpoint name.
func testPool(t *testing.T, key string, fn *net.FaultNet, name string) *net.Pool {
	t.Helper()
	client := net.ClientConfig{ClusterID: testClusterID, KeyID: key, Secret: testSecret, Logger: testLogger()}
	if fn != nil {
		client.Dial = fn.Dialer(name)
	}
	pool, err := net.NewPool(net.PoolConfig{
		Client:       client,
		ConnsPerPeer: 1, BackoffBase: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond, Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

// testNode is one process of a loopback cluster: a net server serving the
// raft router and a manager member, and a pool to reach the others.
type testNode struct {
	id     uint64
	addr   string
	dir    string
	srv    *net.Server
	pool   *net.Pool
	mgr    *Manager
	served chan error
}

func (n *testNode) name() string { return fmt.Sprintf("m%d", n.id) }

// testCluster runs manager members in one process over loopback TCP, each
// with a real raftlog directory.
type testCluster struct {
	t      *testing.T
	peers  []raftgroup.Peer
	nodes  []*testNode
	mod    func(*Config)
	fn     *net.FaultNet // nil: plain loopback
	pool   *net.Pool     // the clients' pool (write key), endpoint "client"
	roPool *net.Pool     // a read-only key's pool
}

func newTestCluster(t *testing.T, n int, mod func(*Config)) *testCluster {
	t.Helper()
	return newFaultCluster(t, n, nil, mod)
}

// newFaultCluster starts a cluster whose traffic goes through fn (when not
// nil): member i is endpoint "m<i+1>", the clients' pools "client".
func newFaultCluster(t *testing.T, n int, fn *net.FaultNet, mod func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, mod: mod, fn: fn}
	dir := t.TempDir()
	lns := make([]stdnet.Listener, n)
	for i := range n {
		ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		node := &testNode{id: uint64(i + 1), addr: ln.Addr().String(), dir: filepath.Join(dir, fmt.Sprintf("m%d", i+1))}
		c.nodes = append(c.nodes, node)
		c.peers = append(c.peers, raftgroup.Peer{ID: node.id, Addr: node.addr})
	}
	c.pool = testPool(t, testKeyID, fn, "client")
	c.roPool = testPool(t, testReaderKey, fn, "client")
	t.Cleanup(func() {
		for i := range c.nodes {
			c.kill(i)
		}
		c.pool.Close()
		c.roPool.Close()
	})
	// Every member's name is known to the fault net before any starts: a
	// member probes its peers as it starts (see members.go), and a
	// connection dialed to an address the fault net cannot name yet would
	// carry its traffic past every partition of that peer.
	for i := range n {
		if fn != nil {
			fn.Listener(c.nodes[i].name(), lns[i])
		}
	}
	for i := range n {
		c.startOn(i, lns[i])
	}
	c.waitFSID()
	return c
}

// waitFSID waits until a member's map has its FSID, which the first
// leader sets (an epoch of its own, before the test's commands).
func (c *testCluster) waitFSID() {
	c.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		for _, n := range c.nodes {
			if n.mgr != nil && !n.mgr.Map().FSID.IsZero() {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatal("no member's map got an FSID")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// start (re)starts member i on its address, from its directory.
func (c *testCluster) start(i int) {
	c.t.Helper()
	var ln stdnet.Listener
	var err error
	// The old listener's port may take a moment to be free again.
	for range 100 {
		ln, err = stdnet.Listen("tcp", c.nodes[i].addr)
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	c.startOn(i, ln)
}

func (c *testCluster) startOn(i int, ln stdnet.Listener) {
	c.t.Helper()
	n := c.nodes[i]
	if c.fn != nil {
		ln = c.fn.Listener(n.name(), ln)
	}
	var keys net.MemKeyStore
	keys.Add(testKeyID, testSecret, false)
	keys.Add(testReaderKey, testSecret, true)
	keys.Add(testOtherKey, testSecret, false)
	mux := net.NewServeMux()
	n.pool = testPool(c.t, testKeyID, c.fn, n.name())
	router, err := raftgroup.NewNetRouter(raftgroup.NetRouterConfig{Pool: n.pool, Mux: mux, CallTimeout: time.Second, Logger: testLogger()})
	if err != nil {
		c.t.Fatal(err)
	}
	cfg := Config{
		ID: n.id, Peers: c.peers, Dir: n.dir, Router: router, Pool: n.pool,
		// Long enough that nodes which never heartbeat stay Up, so only
		// the test's own commands move the epoch; liveness tests lower it.
		HeartbeatTimeout: time.Hour, MapWaitMax: 500 * time.Millisecond,
		TickInterval: 10 * time.Millisecond, SnapshotEvery: 8, Logger: testLogger(),
	}
	if c.mod != nil {
		c.mod(&cfg)
	}
	mgr, err := Start(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	mgr.Register(mux)
	srv, err := net.NewServer(net.ServerConfig{ClusterID: testClusterID, Keys: &keys, Logger: testLogger()}, mux)
	if err != nil {
		c.t.Fatal(err)
	}
	n.srv, n.mgr, n.served = srv, mgr, make(chan error, 1)
	go func() { n.served <- srv.Serve(ln) }()
}

// kill stops member i as a crashed process would stop: the manager, its
// server and its pool.
func (c *testCluster) kill(i int) {
	n := c.nodes[i]
	if n.mgr == nil {
		return
	}
	n.mgr.Stop()
	n.srv.Close()
	if err := <-n.served; !errors.Is(err, net.ErrServerClosed) {
		c.t.Errorf("member %d: Serve: %v", n.id, err)
	}
	n.pool.Close()
	n.mgr, n.srv, n.pool = nil, nil, nil
}

func (c *testCluster) addrs() []string {
	var a []string
	for _, n := range c.nodes {
		a = append(a, n.addr)
	}
	return a
}

func (c *testCluster) client() *Client { return NewClient(c.addrs(), c.pool) }

// leader waits until the running members agree on a leader and returns
// its index.
func (c *testCluster) leader(ctx context.Context) int {
	c.t.Helper()
	for {
		lead := uint64(0)
		agree := true
		for _, n := range c.nodes {
			if n.mgr == nil {
				continue
			}
			l := n.mgr.Leader()
			if l == 0 || (lead != 0 && l != lead) {
				agree = false
				break
			}
			lead = l
		}
		if agree && lead != 0 && c.nodes[lead-1].mgr != nil {
			return int(lead - 1)
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("no leader agreed on: %v", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitEpoch waits until member i has applied a map at epoch >= e.
func (c *testCluster) waitEpoch(ctx context.Context, i int, e uint64) *clustermap.Map {
	c.t.Helper()
	m, ok := c.nodes[i].mgr.sm.Wait(ctx, nil, e-1)
	if !ok {
		c.t.Fatalf("member %d: map at epoch %d, want %d: %v", i+1, m.Epoch, e, ctx.Err())
	}
	return m
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// addNodes joins storage nodes 1..n, one per zone.
func addNodes(t *testing.T, ctx context.Context, cl *Client, n int) *clustermap.Map {
	t.Helper()
	var m *clustermap.Map
	for i := 1; i <= n; i++ {
		var err error
		m, err = cl.Apply(ctx, clustermap.AddNode{
			ID: clustermap.NodeID(i), Addr: fmt.Sprintf("127.0.0.1:%d", 7000+i),
			Labels: map[string]string{"zone": fmt.Sprintf("z%d", i)}, Capacity: 1 << 40,
		})
		if err != nil {
			t.Fatalf("add node %d: %v", i, err)
		}
	}
	return m
}
