package net

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	stdnet "net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testCluster = "test-cluster"
	testKey     = "writer"
	testROKey   = "reader"
	kindEcho    = FirstUserKind + 1
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// logBuffer captures a logger's output.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond until it holds or 5s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func newLogger() (*slog.Logger, *logBuffer) {
	lb := new(logBuffer)
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

func testKeys() *MemKeyStore {
	var ks MemKeyStore
	ks.Add(testKey, testSecret, false)
	ks.Add(testROKey, []byte("read-only-secret"), true)
	return &ks
}

type testServer struct {
	*Server
	ln      stdnet.Listener
	addr    string
	log     *logBuffer
	buffers *BufferPool
	served  chan error
}

// startServer serves h on a loopback port; it is closed when the test
// ends. mod may adjust the configuration.
func startServer(t testing.TB, h Handler, mod func(*ServerConfig)) *testServer {
	t.Helper()
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startServerOn(t, ln, h, mod)
}

func startServerOn(t testing.TB, ln stdnet.Listener, h Handler, mod func(*ServerConfig)) *testServer {
	t.Helper()
	logger, lb := newLogger()
	cfg := ServerConfig{ClusterID: testCluster, Keys: testKeys(), Logger: logger, Buffers: NewBufferPool()}
	if os.Getenv("WEFT_TEST_NET_LOOP") != "" {
		// The whole suite again with the loop serving the connections
		// whose handler is a Starter (make test runs it both ways).
		if l := newTestLoop(); l != nil {
			cfg.Loop = l
		}
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := NewServer(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: srv, ln: ln, addr: ln.Addr().String(), log: lb, buffers: cfg.Buffers, served: make(chan error, 1)}
	go func() { ts.served <- srv.Serve(ln) }()
	t.Cleanup(ts.stop)
	return ts
}

// stop closes the server and waits for Serve to return.
func (ts *testServer) stop() {
	ts.Close()
	if err := <-ts.served; err != nil && !errors.Is(err, ErrServerClosed) {
		panic("Serve: " + err.Error())
	}
	ts.served <- ErrServerClosed // stop is idempotent
}

func clientConfig() ClientConfig {
	logger, _ := newLogger()
	return ClientConfig{ClusterID: testCluster, KeyID: testKey, Secret: testSecret, Logger: logger, Buffers: NewBufferPool()}
}

func dialTest(t testing.TB, addr string, cfg ClientConfig) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echo replies with the request's header and payload (copied, as a
// handler that keeps nothing would).
func echo(_ context.Context, req *Request, w *ResponseWriter) {
	var payload [][]byte
	p := req.TakePayload()
	if p != nil {
		payload = [][]byte{p.Bytes()}
	}
	w.Reply(req.Header, payload, func() {
		if p != nil {
			p.Release()
		}
	})
}

func echoMux() *ServeMux {
	m := NewServeMux()
	m.HandleFunc(kindEcho, echo)
	return m
}

func mustContain(t testing.TB, what, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%s %q does not contain %q", what, s, sub)
	}
}
