package net

import (
	"context"
	"errors"
	stdnet "net"
	"strings"
	"testing"
	"time"

	"github.com/weftfs/weft/internal/testutil"
)

func TestPoolReconnectsAfterServerRestart(t *testing.T) {
	testutil.CheckLeaks(t)
	ts := startServer(t, echoMux(), nil)
	addr := ts.addr
	p, err := NewPool(PoolConfig{Client: clientConfig(), ConnsPerPeer: 3, BackoffBase: time.Millisecond, BackoffMax: 20 * time.Millisecond, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	call := func(c *Conn) error {
		resp, err := c.Call(ctx, kindEcho, []byte("hi"), nil)
		if err == nil {
			resp.Release()
		}
		return err
	}
	// Round-robin over ConnsPerPeer connections once they are up.
	seen := map[*Conn]bool{}
	for i := 0; len(seen) < 3; i++ {
		c, err := p.Get(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := call(c); err != nil {
			t.Fatal(err)
		}
		seen[c] = true
		if i > 1000 {
			t.Fatalf("Get handed out %d distinct connections, want 3", len(seen))
		}
	}

	// The server goes away: its connections die with ErrConnClosed.
	ts.stop()
	for c := range seen {
		waitFor(t, "old connection to fail", func() bool { return c.Err() != nil })
		if err := call(c); !errors.Is(err, ErrConnClosed) {
			t.Fatalf("call on a dead connection: %v", err)
		}
	}
	// While it is down, Get gives up with the context and says why.
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = p.Get(short, addr)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get while the server is down: %v", err)
	}
	mustContain(t, "Get error", err.Error(), "last dial error")

	// The server comes back on the same address: Get redials.
	ln, err := stdnet.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	startServerOn(t, ln, echoMux(), nil)
	c, err := p.Get(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if seen[c] {
		t.Fatal("Get returned a dead connection")
	}
	if err := call(c); err != nil {
		t.Fatal(err)
	}
}

func TestPoolRefusalIsNotRetried(t *testing.T) {
	testutil.CheckLeaks(t)
	ts := startServer(t, echoMux(), nil)
	cfg := clientConfig()
	cfg.Secret = []byte("wrong")
	p, err := NewPool(PoolConfig{Client: cfg, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = p.Get(ctx, ts.addr)
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != CodeAuthFailed {
		t.Fatalf("Get with a wrong key: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Get waited for its context instead of returning the refusal")
	}
	p.Close()
	if _, err := p.Get(ctx, ts.addr); !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}

func TestPoolBackoff(t *testing.T) {
	p, err := NewPool(PoolConfig{Client: clientConfig(), BackoffBase: 10 * time.Millisecond, BackoffMax: 80 * time.Millisecond, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for n, want := range map[int]time.Duration{1: 10 * time.Millisecond, 2: 20 * time.Millisecond, 3: 40 * time.Millisecond, 4: 80 * time.Millisecond, 10: 80 * time.Millisecond, 100: 80 * time.Millisecond} {
		for range 50 {
			if d := p.backoff(n); d > want || d < want/2 {
				t.Fatalf("backoff after %d failures: %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

// TestPoolGetWithin: with no server to dial, GetWithin gives up after its
// limit with ErrTimeout and the last dial error, not after its context's.
func TestPoolGetWithin(t *testing.T) {
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // dials to addr are refused from now on
	p, err := NewPool(PoolConfig{Client: clientConfig(), BackoffBase: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = p.GetWithin(ctx, 100*time.Millisecond, addr)
	if el := time.Since(start); el < 100*time.Millisecond || el > 5*time.Second {
		t.Fatalf("GetWithin returned after %v, want about 100ms", el)
	}
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		t.Fatalf("GetWithin: %v, want ErrTimeout", err)
	}
	if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "last dial error") {
		t.Fatalf("GetWithin's error %q names neither the address nor the dial error", err)
	}
}
