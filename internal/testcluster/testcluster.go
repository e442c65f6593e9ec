// Package testcluster runs a whole weft cluster inside one test process:
// N cluster-mode nodes (node.Run), each a storage node, a manager member
// and a host of container metadata groups, on 127.0.0.1 ports, with
// in-memory-sized device files under the test's temporary folder.
//
// It is for tests of the layers above the chunk store (file client,
// mount, tools) that need real nodes but not separate processes; the
// multi-process fault tests live in internal/clustertest.
//
//	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
//	ct := c.CreateContainer(t, "vol", clustermap.Policy{Replicas: 3})
//	pool, mc := c.Pool(), c.Managers()   // cluster key, manager client
//	c.Stop(t)                            // or left to t.Cleanup
//
// Start returns once every node is Up in the map. Stop cancels every
// node and waits for Run to return; a Run error fails the test.
package testcluster

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	stdnet "net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/manager"
	"github.com/weftfs/weft/net"
	"github.com/weftfs/weft/node"
)

// ClusterID is the cluster id of every test cluster; ClusterKeyID and
// ClusterSecret its read-write cluster key.
const (
	ClusterID    = "test"
	ClusterKeyID = "cluster"
)

// ClusterSecret is the secret of ClusterKeyID.
var ClusterSecret = []byte("testcluster-secret-0123456789abc")

// Options configures Start.
type Options struct {
	// Nodes is the number of nodes (default 3); every one is a manager
	// member, so use 1, 3 or 5.
	Nodes int
	// DeviceSize is each node's device size (default 256 MiB).
	DeviceSize int64
	// HeartbeatTimeout (default 2s) bounds how long a stopped node stays
	// Up in the map.
	HeartbeatTimeout time.Duration
	// Logger receives the nodes' events (default: discarded).
	Logger *slog.Logger
	// PinReactors pins each node's engine reactor to a CPU, which locks
	// it to an OS thread of its own. A test that is also a FUSE client
	// of a mount served by these nodes needs it: an unpinned reactor
	// submits device I/O from whatever thread it runs on, the I/O's
	// completion is io_uring task work of that thread, and if the Go
	// scheduler hands the thread to a goroutine that then waits in an
	// uninterruptible FUSE request (close's FLUSH) that waits for the
	// I/O, neither ever completes.
	PinReactors bool
	// ExtraKeys are more lines for the nodes' keys file ("id hex [ro]").
	ExtraKeys []string
}

// Cluster is a running test cluster.
type Cluster struct {
	Dir   string   // the test's folder: devices, keys file
	Addrs []string // node i's listen address is Addrs[i]

	pool *net.Pool
	mc   *manager.Client

	mu    sync.Mutex
	nodes []*running    // nil: stopped
	cfgs  []node.Config // node i's configuration, for RestartNode
}

type running struct {
	cfg    node.Config
	cancel context.CancelFunc
	done   chan error
}

// Start runs the cluster and waits until every node is Up in the map.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.DeviceSize == 0 {
		o.DeviceSize = 256 << 20
	}
	if o.HeartbeatTimeout == 0 {
		o.HeartbeatTimeout = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Cluster{Dir: t.TempDir()}
	keys := filepath.Join(c.Dir, "keys")
	lines := ClusterKeyID + " " + hex.EncodeToString(ClusterSecret) + "\n"
	for _, l := range o.ExtraKeys {
		lines += l + "\n"
	}
	if err := os.WriteFile(keys, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	var peers []string
	for i := 1; i <= o.Nodes; i++ {
		// Reserve a port by listening and closing: the node binds it a
		// moment later (a race with other processes we accept in tests).
		ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c.Addrs = append(c.Addrs, ln.Addr().String())
		peers = append(peers, fmt.Sprintf("%d=%s", i, ln.Addr()))
		ln.Close()
	}
	for i := 1; i <= o.Nodes; i++ {
		cfg := node.Config{
			Device: filepath.Join(c.Dir, fmt.Sprintf("dev%d", i)), FormatSize: o.DeviceSize,
			Listen: c.Addrs[i-1], ClusterID: ClusterID, KeysFile: keys,
			Labels:   map[string]string{"host": fmt.Sprint(i)},
			Managers: c.Addrs, ManagerID: uint64(i), ManagerPeers: peers,
			HeartbeatTimeout: o.HeartbeatTimeout, Logger: o.Logger.With("node", i),
		}
		if o.PinReactors {
			cfg.Cores = []int{(i - 1) % runtime.NumCPU()}
		}
		c.cfgs = append(c.cfgs, cfg)
		c.nodes = append(c.nodes, c.run(cfg))
	}
	t.Cleanup(func() { c.Stop(t) })
	pool, err := net.NewPool(net.PoolConfig{Client: net.ClientConfig{
		ClusterID: ClusterID, KeyID: ClusterKeyID, Secret: ClusterSecret, Logger: o.Logger}})
	if err != nil {
		t.Fatal(err)
	}
	c.pool = pool
	c.mc = manager.NewClient(c.Addrs, pool)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for after := uint64(0); ; {
		m, err := c.mc.Map(ctx, after)
		if err != nil {
			t.Fatalf("testcluster: waiting for %d nodes up: %v", o.Nodes, err)
		}
		after = m.Epoch
		up := 0
		for _, n := range m.Nodes {
			if n.State == clustermap.Up {
				up++
			}
		}
		if up == o.Nodes {
			break
		}
	}
	return c
}

func (c *Cluster) run(cfg node.Config) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- node.Run(ctx, cfg) }()
	return r
}

// Pool is a connection pool authenticated with the cluster key; the
// cluster closes it on Stop.
func (c *Cluster) Pool() *net.Pool { return c.pool }

// Managers is a manager client over Pool.
func (c *Cluster) Managers() *manager.Client { return c.mc }

// CreateContainer creates a container and returns it as the map has it.
func (c *Cluster) CreateContainer(t testing.TB, name string, p clustermap.Policy) clustermap.Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := c.mc.Apply(ctx, clustermap.CreateContainer{Name: name, Policy: p})
	if err != nil {
		t.Fatalf("testcluster: create container %q: %v", name, err)
	}
	ct, ok := m.ContainerByName(name)
	if !ok {
		t.Fatalf("testcluster: container %q not in the map after its creation", name)
	}
	return *ct
}

// StopNode stops node i (0-based) cleanly and waits for it.
func (c *Cluster) StopNode(t testing.TB, i int) {
	t.Helper()
	c.mu.Lock()
	r := c.nodes[i]
	c.mu.Unlock()
	if r == nil {
		return
	}
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("testcluster: node %d: Run: %v", i+1, err)
	}
	c.mu.Lock()
	c.nodes[i] = nil
	c.mu.Unlock()
}

// RestartNode starts node i (0-based) again, after StopNode, with its
// data and its configuration (edit, if not nil, may change it).
func (c *Cluster) RestartNode(t testing.TB, i int, edit func(*node.Config)) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nodes[i] != nil {
		t.Fatalf("testcluster: node %d still runs", i+1)
	}
	cfg := c.cfgs[i]
	if edit != nil {
		edit(&cfg)
	}
	c.nodes[i] = c.run(cfg)
}

// Stop stops every node and closes the pool. Safe to call twice.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	nodes := c.nodes
	c.nodes = make([]*running, len(nodes))
	c.mu.Unlock()
	for _, r := range nodes {
		if r != nil {
			r.cancel()
		}
	}
	for i, r := range nodes {
		if r != nil {
			if err := <-r.done; err != nil {
				t.Errorf("testcluster: node %d: Run: %v", i+1, err)
			}
		}
	}
	if c.pool != nil {
		c.pool.Close()
		c.pool = nil
	}
}
