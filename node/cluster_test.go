package node

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	stdnet "net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/manager"
	"github.com/weftfs/weft/fsproto/meta"
	"github.com/weftfs/weft/fsproto/namespace"
	"github.com/weftfs/weft/internal/testutil"
	"github.com/weftfs/weft/net"
)

// TestClusterMode runs three cluster-mode nodes in this process, each a
// manager member: they join the map, serve a container through the
// cluster client, answer KindStatus, and stop cleanly.
func TestClusterMode(t *testing.T) {
	testutil.CheckLeaks(t)
	dir := t.TempDir()
	keys := writeFile(t, dir, "keys", "cluster "+rwSecret+"\n")
	var addrs, peers []string
	for i := 1; i <= 3; i++ {
		ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, ln.Addr().String())
		peers = append(peers, fmt.Sprintf("%d=%s", i, ln.Addr()))
		ln.Close()
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	type running struct {
		cancel context.CancelFunc
		done   chan error
	}
	var nodes []running
	metricsAddr := make(chan string, 1)
	for i := 1; i <= 3; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		r := running{cancel, make(chan error, 1)}
		cfg := Config{
			Device: filepath.Join(dir, fmt.Sprintf("dev%d", i)), FormatSize: 64 << 20,
			Listen: addrs[i-1], ClusterID: "c1", KeysFile: keys,
			Labels:   map[string]string{"host": fmt.Sprint(i)},
			Managers: addrs, ManagerID: uint64(i), ManagerPeers: peers, HeartbeatTimeout: time.Second,
			Logger: quiet,
		}
		if i == 1 {
			cfg.MetricsListen = "127.0.0.1:0"
			cfg.OnListening = func(_, m string) { metricsAddr <- m }
		}
		go func() { r.done <- Run(ctx, cfg) }()
		nodes = append(nodes, r)
	}
	stopped := false
	stopAll := func() {
		if stopped {
			return
		}
		stopped = true
		for _, r := range nodes {
			r.cancel()
		}
		for i, r := range nodes {
			if err := <-r.done; err != nil {
				t.Errorf("node %d: Run: %v", i+1, err)
			}
		}
	}
	defer stopAll()

	secret, _ := hex.DecodeString(rwSecret)
	pool, err := net.NewPool(net.PoolConfig{Client: net.ClientConfig{ClusterID: "c1", KeyID: "cluster", Secret: secret, Logger: quiet}})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	mc := manager.NewClient(addrs, pool)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var m *clustermap.Map
	for after := uint64(0); ; after = m.Epoch {
		if m, err = mc.Map(ctx, after); err != nil {
			t.Fatalf("waiting for three nodes up: %v", err)
		}
		up := 0
		for _, n := range m.Nodes {
			if n.State == clustermap.Up {
				up++
			}
		}
		if up == 3 {
			break
		}
	}
	if m, err = mc.Apply(ctx, clustermap.CreateContainer{Name: "t", Policy: clustermap.Policy{Replicas: 3, PGCount: 4}}); err != nil {
		t.Fatal(err)
	}
	cl, err := client.Dial(ctx, client.Config{Maps: mc, Pool: pool, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ct, err := cl.Container("t")
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("cluster mode, replicated three times")
	if _, err := ct.Write(ctx, 1, 0, 0, data); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(data))
	if n, err := ct.Read(ctx, 1, 0, 0, got); err != nil || string(got[:n]) != string(data) {
		t.Fatalf("read %q, %v; want %q", got[:n], err, data)
	}

	// The container's metadata group runs on the nodes: a mkdir commits
	// and reads back through the leader.
	mcl := meta.NewClient(ct.ID(), mc, pool)
	if _, err := mcl.Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: "etc", Mode: 0o755}); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	if a, err := mcl.Lookup(ctx, namespace.RootIno, "etc"); err != nil || a.Mode&0o777 != 0o755 {
		t.Fatalf("lookup etc: %+v, %v", a, err)
	}

	// Node 1's metrics show the cluster: replication counters (its
	// loop publishes them each tick), the purger's, and its metadata
	// member's indexes.
	maddr := <-metricsAddr
	for _, want := range []string{`weft_replication_events_total{event="acknowledged"}`, `weft_purged_total{what="objects"} 0`, `weft_retired_total{what="objects"} 0`,
		fmt.Sprintf(`weft_meta_raft_index{container="%d",index="applied"}`, ct.ID()), fmt.Sprintf(`weft_meta_leader{container="%d"}`, ct.ID())} {
		waitMetric(t, maddr, want)
	}

	// Every node reports itself: the id the map has for its address, its
	// manager member, the PGs of the container.
	leaders := map[uint64]bool{}
	for i, addr := range addrs {
		conn, err := pool.Get(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		s, err := FetchStatus(ctx, conn)
		if err != nil {
			t.Fatalf("node %d status: %v", i+1, err)
		}
		var id clustermap.NodeID
		for _, n := range m.Nodes {
			if n.Addr == addr {
				id = n.ID
				if n.Labels["host"] != fmt.Sprint(i+1) || n.Capacity != 64<<20 {
					t.Errorf("node %d in the map: labels %v, capacity %d", i+1, n.Labels, n.Capacity)
				}
			}
		}
		if s.Node != uint64(id) || s.Addr != addr || s.ManagerID != uint64(i+1) || s.Space.Device != 64<<20 {
			t.Errorf("node %d status: node %d addr %s manager %d device %d; want node %d addr %s manager %d", i+1, s.Node, s.Addr, s.ManagerID, s.Space.Device, id, addr, i+1)
		}
		if len(s.PGs) != 4 {
			t.Errorf("node %d status: %d PGs, want the container's 4 (replication 3 on 3 nodes)", i+1, len(s.PGs))
		}
		leaders[s.ManagerLeader] = true
		if len(s.Meta) != 1 || s.Meta[0].Container != uint64(ct.ID()) || len(s.Meta[0].Voters) != 3 || s.Meta[0].Leader == 0 {
			t.Errorf("node %d status: metadata members %+v; want container %d's, 3 voters, a leader", i+1, s.Meta, ct.ID())
		}
	}
	if len(leaders) != 1 || leaders[0] {
		t.Errorf("nodes report manager leaders %v; want one, the same", leaders)
	}
	// A status request with a body is refused.
	conn, _ := pool.Get(ctx, addrs[0])
	if _, err := conn.Call(ctx, KindStatus, []byte{1}, nil); err == nil {
		t.Error("a status request with a header body was answered")
	}
	cl.Close()
	stopAll()
}

// waitMetric polls addr's /metrics until a line starts with want.
func waitMetric(t *testing.T, addr, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, line := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(line, want) {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("/metrics of %s has no line starting %s:\n%s", addr, want, b)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("GET /metrics of %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
