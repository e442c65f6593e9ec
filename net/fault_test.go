package net

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftfs/weft/internal/testutil"
)

// faultSetup serves an echo handler (counting invocations and recording
// request ids in arrival order) behind a FaultNet, with the client named
// "client" and the server "server".
func faultSetup(t *testing.T, mod func(*ServerConfig)) (*FaultNet, *Conn, *atomic.Int32, func() []uint64) {
	seed := rand.Uint64()
	fn := NewFaultNet(seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("fault seed %d (replay with NewFaultNet(%d))", seed, seed)
		}
	})
	var count atomic.Int32
	var mu sync.Mutex
	var ids []uint64
	mux := NewServeMux()
	mux.HandleFunc(kindEcho, func(ctx context.Context, req *Request, w *ResponseWriter) {
		count.Add(1)
		mu.Lock()
		ids = append(ids, req.ID)
		mu.Unlock()
		echo(ctx, req, w)
	})
	ts := startServer(t, mux, mod)
	fn.Listener("server", ts.ln)
	cfg := clientConfig()
	cfg.Dial = fn.Dialer("client")
	c := dialTest(t, ts.addr, cfg)
	return fn, c, &count, func() []uint64 {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(ids)
	}
}

func callWithin(c *Conn, d time.Duration, payload []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	resp, err := c.Call(ctx, kindEcho, []byte("f"), payload)
	if err == nil {
		if !bytes.Equal(resp.Payload.Bytes(), payload) {
			err = errors.New("wrong payload")
		}
		resp.Release()
	}
	return err
}

func TestFaultDelay(t *testing.T) {
	testutil.CheckLeaks(t)
	fn, c, _, _ := faultSetup(t, nil)
	fn.SetRule("client", "server", FaultRule{Delay: 20 * time.Millisecond, DelayJitter: 10 * time.Millisecond})
	fn.SetRule("server", "client", FaultRule{Delay: 20 * time.Millisecond})
	start := time.Now()
	if err := callWithin(c, 10*time.Second, []byte("slow")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("round trip took %v through 40ms of delay", d)
	}
}

func TestFaultDuplicate(t *testing.T) {
	testutil.CheckLeaks(t)
	fn, c, count, _ := faultSetup(t, nil)
	fn.SetRule("client", "server", FaultRule{DupProb: 1})
	fn.SetRule("server", "client", FaultRule{DupProb: 1})
	for range 10 {
		if err := callWithin(c, 10*time.Second, []byte("twice")); err != nil {
			t.Fatal(err)
		}
	}
	// Each request ran twice; each duplicate response was dropped.
	waitFor(t, "duplicates to be handled", func() bool { return count.Load() == 20 })
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestFaultReorder(t *testing.T) {
	testutil.CheckLeaks(t)
	// One request at a time on the server, so handlers run in arrival order.
	fn, c, _, ids := faultSetup(t, func(c *ServerConfig) { c.MaxConcurrent = 1 })
	fn.SetRule("client", "server", FaultRule{ReorderProb: 1, ReorderWindow: 5 * time.Second})
	fn.SetRule("server", "client", FaultRule{ReorderProb: 0.5, ReorderWindow: time.Millisecond})
	done := make(chan *Call, 10)
	for range 10 {
		c.Go(context.Background(), kindEcho, nil, []byte("r"), done)
	}
	for range 10 {
		call := <-done
		if call.Error != nil {
			t.Fatal(call.Error)
		}
		call.Response.Release()
	}
	got := ids()
	if slices.IsSorted(got) {
		t.Fatalf("requests arrived in order %v despite reordering", got)
	}
	// Pairs are swapped: 2 1 4 3 ...
	for i := 0; i+1 < len(got); i += 2 {
		if got[i] != got[i+1]+1 {
			t.Fatalf("arrival order %v, want pairs swapped", got)
		}
	}
}

func TestFaultDropBlackhole(t *testing.T) {
	testutil.CheckLeaks(t)
	fn, c, count, _ := faultSetup(t, nil)
	fn.SetRule("client", "server", FaultRule{DropProb: 1, DropMode: DropBlackhole})
	if err := callWithin(c, 50*time.Millisecond, []byte("lost")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call into a black hole: %v", err)
	}
	if count.Load() != 0 {
		t.Fatal("a dropped request reached the handler")
	}
	fn.ClearRules()
	if err := callWithin(c, 10*time.Second, []byte("found")); err != nil {
		t.Fatal(err)
	}
}

func TestFaultDropClose(t *testing.T) {
	testutil.CheckLeaks(t)
	fn, c, _, _ := faultSetup(t, nil)
	fn.SetRule("server", "client", FaultRule{DropProb: 1, DropMode: DropClose})
	if err := callWithin(c, 10*time.Second, []byte("reset")); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("call whose response closes the connection: %v", err)
	}
	if !errors.Is(c.Err(), ErrConnClosed) {
		t.Fatalf("Err() = %v", c.Err())
	}
}

func TestFaultPartition(t *testing.T) {
	testutil.CheckLeaks(t)
	fn, c, _, _ := faultSetup(t, nil)
	fn.Partition("client", "server")
	if err := callWithin(c, 50*time.Millisecond, []byte("cut")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call across a partition: %v", err)
	}
	fn.Heal("client", "server")
	// The held request is delivered, its late response dropped, and the
	// connection carries on.
	if err := callWithin(c, 10*time.Second, []byte("healed")); err != nil {
		t.Fatal(err)
	}
}

// TestFaultSeedReplays checks that a seed decides the same fates.
func TestFaultSeedReplays(t *testing.T) {
	fates := func(seed uint64) []int {
		fn := NewFaultNet(seed)
		fn.SetRule("a", "b", FaultRule{DropProb: 0.5})
		s := newFaultStream(fn, &faultConn{closed: make(chan struct{})}, faultLink{"a", "b"}, 0, nil)
		var kept []int
		for i := range 200 {
			before := len(s.mu.queue)
			if err := s.feed(encodeFrame(frameHeader{kind: kindEcho, id: uint64(i + 1)}, nil, nil)); err != nil {
				t.Fatal(err)
			}
			if len(s.mu.queue) > before {
				kept = append(kept, i)
			}
		}
		return kept
	}
	a, b, other := fates(42), fates(42), fates(43)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed dropped different frames")
	}
	if slices.Equal(a, other) {
		t.Fatal("different seeds dropped the same frames")
	}
	if len(a) < 50 || len(a) > 150 {
		t.Fatalf("kept %d of 200 frames at drop probability 0.5", len(a))
	}
}
