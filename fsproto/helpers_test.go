package fsproto

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	stdnet "net"
	"testing"
	"time"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/internal/vfs"
	"github.com/weftfs/weft/net"
)

const (
	testCluster = "fsproto-test"
	testKey     = "rw"
	testROKey   = "ro"
	testEpoch   = 7
)

var (
	testSecret   = []byte("0123456789abcdef0123456789abcdef")
	testROSecret = []byte("read-only-secret")
	quietLogger  = slog.New(slog.NewTextHandler(io.Discard, nil))
)

// openEngine opens an engine on a 32 MiB in-memory device with 1 MiB
// segments; it is closed when the test ends.
func openEngine(t testing.TB) *engine.Engine {
	t.Helper()
	fsys := vfs.NewMem()
	if _, err := engine.Format(fsys, engine.FormatRequest{Path: "dev", Size: 32 << 20, Options: engine.FormatOptions{SegmentSize: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
	e, err := engine.Open(engine.Options{Path: "dev", FS: fsys, Shards: 1, Mode: engine.Interrupt, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("engine close: %v", err)
		}
	})
	return e
}

// testContainer is the only container the test servers hold.
const testContainer = 42

type fixture struct {
	e    *engine.Engine
	cs   *ChunkServer
	addr string
}

// fixtureOnReactors makes fixtures serve their connections on the
// engine's reactors (net.ServerConfig.Loop), as weft node does by
// default; TestConnsOnGoroutines runs tests with it off.
var fixtureOnReactors = true

// engineLoop runs a server's connections on an engine's reactors.
type engineLoop struct{ e *engine.Engine }

func (l engineLoop) Host(g net.LoopGuest) (func(), error) { return l.e.Host(g) }

// startFixture starts an engine and a chunk server on a loopback port,
// stopped when the test ends.
func startFixture(t testing.TB) *fixture {
	t.Helper()
	return startFixtureAsync(t, asyncOpsMax)
}

// startFixtureAsync is startFixture with asyncMax asynchronous ops.
func startFixtureAsync(t testing.TB, asyncMax int) *fixture {
	t.Helper()
	e := openEngine(t)
	cs, err := newChunkServer(e, ChunkServerConfig{
		Containers: func(c uint64) bool { return c == testContainer },
		Epoch:      testEpoch,
		Logger:     quietLogger,
	}, asyncMax)
	if err != nil {
		t.Fatal(err)
	}
	var ks net.MemKeyStore
	ks.Add(testKey, testSecret, false)
	ks.Add(testROKey, testROSecret, true)
	scfg := net.ServerConfig{ClusterID: testCluster, Keys: &ks, Logger: quietLogger}
	if fixtureOnReactors {
		scfg.Loop = engineLoop{e}
	}
	srv, err := net.NewServer(scfg, cs)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; err != nil && !errors.Is(err, net.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return &fixture{e: e, cs: cs, addr: ln.Addr().String()}
}

// dial connects with key (testKey or testROKey); closed when the test ends.
func (f *fixture) dial(t testing.TB, key string) *net.Conn {
	t.Helper()
	secret := testSecret
	if key == testROKey {
		secret = testROSecret
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := net.Dial(ctx, f.addr, net.ClientConfig{ClusterID: testCluster, KeyID: key, Secret: secret, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (f *fixture) client(t testing.TB, key string) *ChunkClient {
	return NewChunkClient(f.dial(t, key), ChunkClientConfig{Epoch: testEpoch})
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
