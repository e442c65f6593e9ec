package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	stdnet "net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/cluster"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/replication"
	"github.com/weftfs/weft/internal/vfs"
	"github.com/weftfs/weft/net"
)

const (
	testCluster   = "cluster-test"
	clusterKey    = "cluster"
	clientKey     = "client"
	testContainer = "db"
)

var (
	clusterSecret = []byte("cluster-secret-0123456789abcdef!")
	clientSecret  = []byte("client-secret-0123456789abcdef!!")
	quiet         = slog.New(slog.NewTextHandler(io.Discard, nil))
)

func testLogger() *slog.Logger {
	if os.Getenv("CLUSTER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return quiet
}

// feed is one process's view of the map: a MapSource the test publishes to.
type feed struct {
	mu sync.Mutex
	m  *clustermap.Map
	ch chan struct{} // closed when m changes
}

func newFeed() *feed { return &feed{ch: make(chan struct{})} }

func (f *feed) publish(m *clustermap.Map) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m != nil && m.Epoch <= f.m.Epoch {
		return
	}
	f.m = m
	close(f.ch)
	f.ch = make(chan struct{})
}

// Map implements cluster.MapSource and client.MapSource.
func (f *feed) Map(ctx context.Context, after uint64) (*clustermap.Map, error) {
	for {
		f.mu.Lock()
		m, ch := f.m, f.ch
		f.mu.Unlock()
		if m != nil && (after == 0 || m.Epoch > after) {
			return m, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// tnode is one storage process: an engine (kept across restarts, as a
// device is), and while it runs a DataServer on a loopback listener.
type tnode struct {
	id    clustermap.NodeID
	fsys  vfs.FS
	eng   *engine.Engine
	addr  string
	feed  *feed
	ds    *cluster.DataServer
	srv   *net.Server
	pool  *net.Pool
	serve chan error
}

// tcluster is a test cluster: nodes, the authoritative map (what the
// managers would hold) and the clients' map feed.
type tcluster struct {
	t       testing.TB
	mu      sync.Mutex
	m       *clustermap.Map
	nodes   map[clustermap.NodeID]*tnode
	clients *feed
	repl    replication.Config
	lease   time.Duration // DataServerConfig.ReadLease
	// cut: nodes whose feed no longer gets new maps (a partitioned node).
	cut map[clustermap.NodeID]bool
	// fn sits between the nodes (not between clients and nodes): node i
	// is the endpoint "n<i>".
	fn *net.FaultNet
	// caughtUpFails: OnCaughtUp fails this many times before it applies.
	caughtUpFails atomic.Int32
	// tune, when set, adjusts each node's DataServerConfig.
	tune func(*cluster.DataServerConfig)
}

func nodeName(id clustermap.NodeID) string { return fmt.Sprintf("n%d", id) }

func newCluster(t testing.TB, n int, pgCount uint32, repl replication.Config) *tcluster {
	t.Helper()
	return newClusterLease(t, n, pgCount, repl, 0)
}

// newClusterLease is newCluster with the nodes' DataServerConfig.ReadLease
// (0: the default; negative: no leases).
func newClusterLease(t testing.TB, n int, pgCount uint32, repl replication.Config, lease time.Duration) *tcluster {
	t.Helper()
	return newClusterTuned(t, n, pgCount, repl, lease, nil)
}

// newClusterTuned is newClusterLease with tune adjusting each node's
// DataServerConfig.
func newClusterTuned(t testing.TB, n int, pgCount uint32, repl replication.Config, lease time.Duration, tune func(*cluster.DataServerConfig)) *tcluster {
	t.Helper()
	c := &tcluster{t: t, m: clustermap.New(), nodes: map[clustermap.NodeID]*tnode{}, clients: newFeed(), repl: repl,
		lease: lease, cut: map[clustermap.NodeID]bool{}, fn: net.NewFaultNet(1), tune: tune}
	for i := 1; i <= n; i++ {
		id := clustermap.NodeID(i)
		fsys := vfs.NewMem()
		if _, err := engine.Format(fsys, engine.FormatRequest{Path: "dev", Size: 64 << 20, Options: engine.FormatOptions{SegmentSize: 1 << 20}}); err != nil {
			t.Fatal(err)
		}
		tn := &tnode{id: id, fsys: fsys, feed: newFeed()}
		tn.eng = openEngine(t, fsys)
		ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tn.addr = ln.Addr().String()
		c.fn.Listener(nodeName(id), ln)
		c.nodes[id] = tn
		c.apply(clustermap.AddNode{ID: id, Addr: tn.addr, Capacity: 1 << 30})
		c.start(tn, ln)
	}
	m, _ := c.apply(clustermap.CreateContainer{Name: testContainer, Policy: clustermap.Policy{Replicas: 3, PGCount: pgCount}})
	t.Cleanup(c.close)
	// Tests that speak to a node with a raw ChunkClient (no map refresh
	// and retry) must not race the node's map watch: a node routes by the
	// newest map it has seen, and one without the container refuses it.
	deadline := time.Now().Add(30 * time.Second)
	for _, tn := range c.nodes {
		for tn.ds.Map() == nil || tn.ds.Map().Epoch < m.Epoch {
			if time.Now().After(deadline) {
				t.Fatalf("node %d did not see map epoch %d", tn.id, m.Epoch)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return c
}

func openEngine(t testing.TB, fsys vfs.FS) *engine.Engine {
	e, err := engine.Open(engine.Options{Path: "dev", FS: fsys, Shards: 1, Mode: engine.Interrupt, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// apply applies cmd to the authoritative map and publishes the result to
// every feed but the cut nodes'. ErrNoChange and ErrStaleEpoch are
// returned, other errors fail the test.
func (c *tcluster) apply(cmd clustermap.Command) (*clustermap.Map, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.m.Apply(cmd)
	if errors.Is(err, clustermap.ErrNoChange) || errors.Is(err, clustermap.ErrStaleEpoch) {
		return c.m, err
	}
	if err != nil {
		c.t.Fatalf("apply %#v: %v", cmd, err)
	}
	c.m = m
	for id, tn := range c.nodes {
		if !c.cut[id] {
			tn.feed.publish(m)
		}
	}
	c.clients.publish(m)
	return m, nil
}

func (c *tcluster) current() *clustermap.Map {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m
}

// start runs a DataServer for tn on ln (a fresh listener on its address
// when ln is nil).
func (c *tcluster) start(tn *tnode, ln stdnet.Listener) {
	t := c.t
	if ln == nil {
		var err error
		ln, err = stdnet.Listen("tcp", tn.addr)
		if err != nil {
			t.Fatal(err)
		}
	}
	pool, err := net.NewPool(net.PoolConfig{Client: net.ClientConfig{ClusterID: testCluster, KeyID: clusterKey,
		Secret: clusterSecret, Logger: quiet, Dial: c.fn.Dialer(nodeName(tn.id))}, BackoffBase: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond, Seed: uint64(tn.id)})
	if err != nil {
		t.Fatal(err)
	}
	id := tn.id
	cfg := cluster.DataServerConfig{
		Node: id, Engine: tn.eng, Maps: tn.feed, Pool: pool, Replication: c.repl, ReadLease: c.lease, PeerKeyID: clusterKey,
		TickInterval: 5 * time.Millisecond, Logger: testLogger(),
		OnCaughtUp: func(pg clustermap.PGID, epoch uint64) error {
			if c.caughtUpFails.Add(-1) >= 0 {
				return errors.New("test: managers unreachable")
			}
			c.apply(clustermap.CaughtUp{PG: pg, Node: id, Epoch: epoch})
			return nil
		},
		CaughtUpRetry: 10 * time.Millisecond,
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	ds, err := cluster.NewDataServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ks net.MemKeyStore
	ks.Add(clusterKey, clusterSecret, false)
	ks.Add(clientKey, clientSecret, false)
	mux := net.NewServeMux()
	ds.Register(mux)
	srv, err := net.NewServer(net.ServerConfig{ClusterID: testCluster, Keys: &ks, Logger: quiet}, mux)
	if err != nil {
		t.Fatal(err)
	}
	tn.ds, tn.srv, tn.pool, tn.serve = ds, srv, pool, make(chan error, 1)
	go func() { tn.serve <- srv.Serve(ln) }()
}

// kill stops tn's server and DataServer at once, as a crash would (the
// engine stays: it is the node's device, which a restart reopens).
func (c *tcluster) kill(id clustermap.NodeID) {
	tn := c.nodes[id]
	if tn.srv == nil {
		return
	}
	tn.srv.Close()
	<-tn.serve
	tn.ds.Close()
	tn.pool.Close()
	tn.srv, tn.ds, tn.pool = nil, nil, nil
}

// restart reopens tn's engine from its device and starts it again.
func (c *tcluster) restart(id clustermap.NodeID) {
	tn := c.nodes[id]
	c.kill(id)
	if err := tn.eng.Close(); err != nil {
		c.t.Fatal(err)
	}
	tn.eng = openEngine(c.t, tn.fsys)
	c.start(tn, nil)
}

func (c *tcluster) close() {
	for _, tn := range c.nodes {
		c.kill(tn.id)
		if err := tn.eng.Close(); err != nil {
			c.t.Errorf("engine %d close: %v", tn.id, err)
		}
	}
}

func (c *tcluster) dial(t testing.TB) *client.Client {
	t.Helper()
	cl, err := client.Dial(context.Background(), client.Config{Maps: c.clients, ClusterID: testCluster, KeyID: clientKey,
		Secret: clientSecret, Logger: quiet, RefreshWait: 50 * time.Millisecond, AttemptTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// container dials the cluster (see dial) and opens the test container.
func (c *tcluster) container(t testing.TB) *client.Container {
	t.Helper()
	ct, err := c.dial(t).Container(testContainer)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

// pinnedClient dials node id with a raw chunk client that routes every
// chunk to pg at pg's epoch, whatever the map says later (no refresh, no
// retry): what a client with a stale map sends. The connection closes at
// the test's end.
func (c *tcluster) pinnedClient(t testing.TB, id clustermap.NodeID, pg clustermap.PG) *fsproto.ChunkClient {
	t.Helper()
	conn, err := net.Dial(context.Background(), c.nodes[id].addr, net.ClientConfig{ClusterID: testCluster, KeyID: clientKey, Secret: clientSecret, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return fsproto.NewChunkClient(conn, fsproto.ChunkClientConfig{Epoch: pg.Epoch, PG: func(fsproto.ChunkID) uint32 { return uint32(pg.ID) }})
}

// waitFor polls cond until it holds or the test's patience (30s) ends.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

type atomicCounter struct{ n atomic.Uint64 }

func (c *atomicCounter) add() uint64 { return c.n.Add(1) }
