package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/internal/testutil"
	"github.com/weftfs/weft/net"
)

const (
	rwSecret = "00112233445566778899aabbccddeeff"
	roSecret = "ffeeddccbbaa99887766554433221100"
)

// writeFile writes a file under dir and returns its path.
func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// started is a node running in the background.
type started struct {
	addr, metricsAddr string
	cancel            context.CancelFunc
	done              chan error
}

// start runs a node on a 64 MiB file device in dir (created on the
// first start), listening on a free loopback port.
func start(t *testing.T, dir string) *started { return startOn(t, dir, "127.0.0.1:0") }

// startOn is start listening on listen.
func startOn(t *testing.T, dir, listen string) *started {
	t.Helper()
	keys := writeFile(t, dir, "keys", "# test keys\nrw "+rwSecret+"\n\nro "+roSecret+" ro\n")
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{cancel: cancel, done: make(chan error, 1)}
	ready := make(chan struct{})
	cfg := Config{
		Device: filepath.Join(dir, "dev"), FormatSize: 64 << 20,
		Listen: listen, MetricsListen: "127.0.0.1:0",
		Labels:    map[string]string{"site": "s1", "zone-a": "z1"},
		ClusterID: "c1", KeysFile: keys, Containers: []uint64{7},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnListening: func(addr, metricsAddr string) {
			s.addr, s.metricsAddr = addr, metricsAddr
			close(ready)
		},
	}
	go func() { s.done <- Run(ctx, cfg) }()
	select {
	case <-ready:
	case err := <-s.done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("node did not start")
	}
	return s
}

// stop cancels the node and waits for Run's result.
func (s *started) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func dial(t *testing.T, addr, keyID, secretHex string) (*net.Conn, *fsproto.ChunkClient) {
	t.Helper()
	secret, err := hex.DecodeString(secretHex)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial(context.Background(), addr, net.ClientConfig{ClusterID: "c1", KeyID: keyID, Secret: secret,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("dial %s as %s: %v", addr, keyID, err)
	}
	return conn, fsproto.NewChunkClient(conn, fsproto.ChunkClientConfig{})
}

func TestNodeServes(t *testing.T) {
	testutil.CheckLeaks(t)
	dir := t.TempDir()
	s := start(t, dir)
	ctx := context.Background()

	conn, c := dial(t, s.addr, "rw", rwSecret)
	chunk := fsproto.ChunkID{Container: 7, Inode: 1, Index: 0}
	data := bytes.Repeat([]byte("weft"), 1024)
	if _, err := c.Write(ctx, chunk, 0, data); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(data))
	if n, err := c.Read(ctx, chunk, 0, got); (err != nil && !errors.Is(err, io.EOF)) || n != len(data) || !bytes.Equal(got, data) {
		t.Fatalf("read: n=%d err=%v equal=%v", n, err, bytes.Equal(got[:n], data[:n]))
	}
	if _, err := c.Write(ctx, fsproto.ChunkID{Container: 8, Inode: 1}, 0, data); !errors.Is(err, fsproto.ErrUnknownContainer) {
		t.Errorf("write to container 8: %v, want ErrUnknownContainer", err)
	}

	roConn, ro := dial(t, s.addr, "ro", roSecret)
	if _, err := ro.Write(ctx, chunk, 0, data); !errors.Is(err, fsproto.ErrReadOnly) {
		t.Errorf("write with the read-only key: %v, want ErrReadOnly", err)
	}
	if n, err := ro.Read(ctx, chunk, 0, got); (err != nil && !errors.Is(err, io.EOF)) || n != len(data) {
		t.Errorf("read with the read-only key: n=%d err=%v", n, err)
	}
	roConn.Close()

	resp, err := http.Get("http://" + s.metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %v, status %d", err, resp.StatusCode)
	}
	text := string(body)
	for _, want := range []string{
		`weft_engine_space_bytes{kind="used"}`,
		`weft_engine_space_bytes{kind="free"}`,
		`weft_engine_reactor_busy_ratio{shard="0"}`,
		`weft_engine_reactor_queue_depth{shard="0"}`,
		`weft_engine_ops_total{op="write",shard="0"} 1`,
		`weft_engine_latency_seconds{op="read",quantile="0.99",shard="0"}`,
		`weft_engine_cleaner_relocated_bytes_total{shard="0"}`,
		`weft_engine_device_ops_total{op="batch",shard="0"}`,
		`weft_engine_device_submits_total{shard="0"}`,
		`weft_net_frames_total{dir="in"}`,
		`weft_net_requests_total`,
		`weft_net_errors_total{class="remote"}`,
		// Single-node mode serves its connections on the reactors: the
		// two clients above.
		"weft_net_loop_connections_total 2",
		`weft_node_info{site="s1",zone_a="z1"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}

	// A call in flight when the node is told to stop completes.
	op := c.GoWrite(ctx, fsproto.ChunkID{Container: 7, Inode: 2}, 0, data, nil)
	s.cancel()
	<-op.Done
	// It either ran to completion or, if it reached the server after the
	// go-away, was refused cleanly; it was not cut off.
	var re *net.RemoteError
	if op.Err != nil && !(errors.As(op.Err, &re) && re.Code == net.CodeShuttingDown) {
		t.Errorf("write in flight at shutdown: %v", op.Err)
	}
	conn.Close()
	s.stop(t)

	// The device is released: it opens again at once, with the data.
	e, err := engine.Open(engine.Options{Path: filepath.Join(dir, "dev"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("reopen after stop: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRunBadConfig(t *testing.T) {
	testutil.CheckLeaks(t)
	err := Run(context.Background(), Config{Mode: "spin", Shards: -1})
	if err == nil {
		t.Fatal("Run with a bad config: nil error")
	}
	for _, want := range []string{"device: missing", `mode "spin"`, "shards -1", "cluster_id: missing", "keys_file: missing"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestClientReconnectsAfterRestart restarts a node under a client that
// keeps writing: calls that meet the dead connection are retried through
// the pool once the node is back (with their request ids), and every write
// the client saw acknowledged, before or after the restart, reads back.
func TestClientReconnectsAfterRestart(t *testing.T) {
	testutil.CheckLeaks(t)
	dir := t.TempDir()
	s := start(t, dir)
	addr := s.addr
	secret, _ := hex.DecodeString(rwSecret)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	pool, err := net.NewPool(net.PoolConfig{Client: net.ClientConfig{ClusterID: "c1", KeyID: "rw", Secret: secret, Logger: quiet},
		ConnsPerPeer: 1, BackoffBase: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pool.Get(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	c := fsproto.NewChunkClient(conn, fsproto.ChunkClientConfig{
		Redial: func(ctx context.Context) (*net.Conn, error) { return pool.Get(ctx, addr) },
	})
	acked := map[uint64][]byte{}
	write := func(ctx context.Context, i uint64) error {
		data := bytes.Repeat([]byte{byte(i), byte(i >> 8), 0xAB, 0xCD}, 1024)
		_, err := c.Write(ctx, fsproto.ChunkID{Container: 7, Inode: 100 + i}, 0, data)
		if err == nil {
			acked[i] = data
		}
		return err
	}
	for i := range uint64(20) {
		if err := write(ctx, i); err != nil {
			t.Fatalf("write %d before the restart: %v", i, err)
		}
	}
	s.stop(t)
	// While the node is down a write waits for the pool's redial until
	// its deadline; it is not acknowledged.
	downCtx, downCancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = write(downCtx, 1000)
	downCancel()
	if err == nil {
		t.Fatal("a write succeeded while the node was down")
	}
	s = startOn(t, dir, addr)
	defer s.stop(t)
	for i := uint64(20); i < 40; i++ {
		if err := write(ctx, i); err != nil {
			t.Fatalf("write %d after the restart: %v", i, err)
		}
	}
	got := make([]byte, 4096)
	for i, want := range acked {
		n, err := c.Read(ctx, fsproto.ChunkID{Container: 7, Inode: 100 + i}, 0, got)
		if (err != nil && !errors.Is(err, io.EOF)) || n != len(want) || !bytes.Equal(got[:n], want) {
			t.Errorf("chunk %d after the restart: n=%d err=%v, want its %d acknowledged bytes", i, n, err, len(want))
		}
	}
	if len(acked) != 40 {
		t.Errorf("%d writes acknowledged, want 40", len(acked))
	}
}
