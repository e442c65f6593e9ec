package meta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	stdnet "net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/raftgroup"
	"github.com/weftfs/weft/net"
)

const (
	testClusterID = "meta-test"
	testKeyID     = "cluster"
	testReaderKey = "reader"
	// waitTimeout bounds every wait of the tests; only a hang reaches it.
	waitTimeout = 30 * time.Second
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func testLogger() *slog.Logger {
	if os.Getenv("META_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testPool(t *testing.T) *net.Pool { return testKeyPool(t, testKeyID) }

func testKeyPool(t *testing.T, key string) *net.Pool { return testLimitPool(t, key, 0) }

// testLimitPool is a pool whose connections take payloads of at most
// limit bytes (0: net's default).
func testLimitPool(t *testing.T, key string, limit int) *net.Pool {
	t.Helper()
	pool, err := net.NewPool(net.PoolConfig{
		Client:       net.ClientConfig{ClusterID: testClusterID, KeyID: key, Secret: testSecret, MaxPayloadBytes: limit, Logger: testLogger()},
		ConnsPerPeer: 1, BackoffBase: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond, Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

// staticMaps is a MapSource that always answers one map.
type staticMaps struct{ m *clustermap.Map }

func (s staticMaps) Map(context.Context, uint64) (*clustermap.Map, error) { return s.m, nil }

// testHost is one storage node of a loopback cluster: a server with the
// raft router and a Host.
type testHost struct {
	id     clustermap.NodeID
	addr   string
	dir    string
	srv    *net.Server
	pool   *net.Pool
	host   *Host
	served chan error
}

// testCluster runs n Hosts in one process over loopback TCP, with a
// static map of n nodes (one zone each) and one container.
type testCluster struct {
	t     *testing.T
	hosts []*testHost
	m     *clustermap.Map
	ct    clustermap.ContainerID
	pool  *net.Pool // the clients'
	mods  []func(*HostConfig)
	// limit bounds the payloads between the hosts (0: net's default).
	limit int
}

func newTestCluster(t *testing.T, n int, mods ...func(*HostConfig)) *testCluster {
	t.Helper()
	return newTestClusterLimit(t, n, 0, mods...)
}

// newTestClusterLimit is newTestCluster with payloads between the hosts
// of at most limit bytes (0: net's default).
func newTestClusterLimit(t *testing.T, n, limit int, mods ...func(*HostConfig)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, mods: mods, limit: limit}
	dir := t.TempDir()
	lns := make([]stdnet.Listener, n)
	m := clustermap.New()
	for i := range n {
		ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		h := &testHost{id: clustermap.NodeID(i + 1), addr: ln.Addr().String(), dir: filepath.Join(dir, fmt.Sprintf("n%d", i+1))}
		c.hosts = append(c.hosts, h)
		if m, err = m.Apply(clustermap.AddNode{ID: h.id, Addr: h.addr, Capacity: 1 << 40,
			Labels: map[string]string{"zone": fmt.Sprintf("z%d", i+1)}}); err != nil {
			t.Fatal(err)
		}
	}
	m, err := m.Apply(clustermap.CreateContainer{Name: "fs", Policy: clustermap.Policy{Replicas: 3, FailureDomain: "zone"}})
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := m.ContainerByName("fs")
	c.m, c.ct = m, ct.ID
	c.pool = testPool(t)
	t.Cleanup(func() {
		for i := range c.hosts {
			c.kill(i)
		}
		c.pool.Close()
	})
	// Servers first, then the members: a member's probe of its peers
	// then gets answers rather than waiting for a server to start.
	for i := range n {
		c.serveOn(i, lns[i])
	}
	for i := range n {
		c.setMap(i)
	}
	return c
}

// start restarts host i on its address, from its directory.
func (c *testCluster) start(i int) {
	c.t.Helper()
	c.restartServer(i)
	c.setMap(i)
}

// restartServer restarts host i's server and Host on its address, with
// no member yet.
func (c *testCluster) restartServer(i int) {
	c.t.Helper()
	var ln stdnet.Listener
	var err error
	// The old listener's port may take a moment to be free again.
	for range 100 {
		if ln, err = stdnet.Listen("tcp", c.hosts[i].addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	c.serveOn(i, ln)
}

func (c *testCluster) setMap(i int) {
	c.t.Helper()
	if err := c.hosts[i].host.SetMap(c.m); err != nil {
		c.t.Fatal(err)
	}
}

// serveOn starts host i's server and Host, with no member yet.
func (c *testCluster) serveOn(i int, ln stdnet.Listener) {
	c.t.Helper()
	h := c.hosts[i]
	var keys net.MemKeyStore
	keys.Add(testKeyID, testSecret, false)
	keys.Add(testReaderKey, testSecret, true)
	mux := net.NewServeMux()
	h.pool = testLimitPool(c.t, testKeyID, c.limit)
	router, err := raftgroup.NewNetRouter(raftgroup.NetRouterConfig{Pool: h.pool, Mux: mux, CallTimeout: time.Second, Logger: testLogger()})
	if err != nil {
		c.t.Fatal(err)
	}
	cfg := HostConfig{
		Node: h.id, Dir: h.dir, Router: router, Pool: h.pool,
		TickInterval: 10 * time.Millisecond, SnapshotEvery: 8, Logger: testLogger(),
	}
	for _, mod := range c.mods {
		mod(&cfg)
	}
	host, err := NewHost(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	host.Register(mux)
	srv, err := net.NewServer(net.ServerConfig{ClusterID: testClusterID, Keys: &keys, MaxPayloadBytes: c.limit, Logger: testLogger()}, mux)
	if err != nil {
		c.t.Fatal(err)
	}
	h.srv, h.host, h.served = srv, host, make(chan error, 1)
	go func() { h.served <- srv.Serve(ln) }()
}

// kill stops host i as a crashed process would stop.
func (c *testCluster) kill(i int) {
	h := c.hosts[i]
	if h.host == nil {
		return
	}
	h.host.Close()
	h.srv.Close()
	if err := <-h.served; !errors.Is(err, net.ErrServerClosed) {
		c.t.Errorf("node %d: Serve: %v", h.id, err)
	}
	h.pool.Close()
	h.host, h.srv, h.pool = nil, nil, nil
}

// leader waits until the running hosts agree on the container's leader
// and returns its index.
func (c *testCluster) leader(ctx context.Context) int {
	c.t.Helper()
	for {
		lead := clustermap.NodeID(0)
		agree := true
		for _, h := range c.hosts {
			if h.host == nil {
				continue
			}
			l, ok := h.host.Leader(c.ct)
			if !ok {
				continue // runs no member of the container
			}
			if l == 0 || (lead != 0 && l != lead) {
				agree = false
				break
			}
			lead = l
		}
		if agree && lead != 0 && c.hosts[lead-1].host != nil {
			return int(lead - 1)
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("no leader agreed on: %v", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (c *testCluster) client() *Client { return NewClient(c.ct, staticMaps{c.m}, c.pool) }

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// movingMaps is a MapSource whose map the test replaces; Map long-polls
// as the managers' client does.
type movingMaps struct {
	mu      sync.Mutex
	m       *clustermap.Map
	changed chan struct{}
}

func newMovingMaps(m *clustermap.Map) *movingMaps {
	return &movingMaps{m: m, changed: make(chan struct{})}
}

func (s *movingMaps) set(m *clustermap.Map) {
	s.mu.Lock()
	s.m = m
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *movingMaps) Map(ctx context.Context, after uint64) (*clustermap.Map, error) {
	for {
		s.mu.Lock()
		m, changed := s.m, s.changed
		s.mu.Unlock()
		if m.Epoch > after {
			return m, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
