package net

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftfs/weft/internal/testutil"
)

func TestCallRoundTrip(t *testing.T) {
	testutil.CheckLeaks(t)
	const kindReply = FirstUserKind + 99
	// NB: the race detector does not see the socket as synchronization, so
	// what the handler saw comes back on a channel.
	seen := make(chan Request, 4)
	mux := NewServeMux()
	mux.HandleFunc(kindEcho, func(ctx context.Context, req *Request, w *ResponseWriter) {
		seen <- Request{Kind: req.Kind, ID: req.ID, Header: bytes.Clone(req.Header), Peer: req.Peer}
		w.SetKind(kindReply)
		echo(ctx, req, w)
	})
	ts := startServer(t, mux, nil)
	c := dialTest(t, ts.addr, clientConfig())
	payload := bytes.Repeat([]byte("weft"), 3000)
	resp, err := c.Call(context.Background(), kindEcho, []byte("the header"), payload)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Release()
	if resp.Kind != kindReply || string(resp.Header) != "the header" || !bytes.Equal(resp.Payload.Bytes(), payload) {
		t.Fatalf("response kind %v header %q payload %d bytes", resp.Kind, resp.Header, resp.Payload.Len())
	}
	got := <-seen
	if got.Kind != kindEcho || got.ID == 0 || string(got.Header) != "the header" {
		t.Fatalf("handler saw %+v", got)
	}
	if got.Peer.KeyID != testKey || got.Peer.ReadOnly || got.Peer.Version != ProtocolVersionMax || got.Peer.RemoteAddr == "" {
		t.Fatalf("peer %+v", got.Peer)
	}
	if c.ReadOnly() || c.Version() != ProtocolVersionMax {
		t.Fatalf("conn read-only %v version %d", c.ReadOnly(), c.Version())
	}
	// No payload, empty header.
	resp2, err := c.Call(context.Background(), kindEcho, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp2.Header) != 0 || resp2.Payload != nil {
		t.Fatalf("empty echo: header %q payload %v", resp2.Header, resp2.Payload)
	}
	resp2.Release()
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := ts.Metrics()
	if m.Requests != 3 || m.FramesIn < 5 || m.BytesIn < uint64(len(payload)) {
		t.Fatalf("server metrics %+v", m)
	}
}

func TestOutOfOrderCompletion(t *testing.T) {
	testutil.CheckLeaks(t)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, 1))
	var maxRunning, running atomic.Int32
	mux := NewServeMux()
	mux.HandleFunc(kindEcho, func(ctx context.Context, req *Request, w *ResponseWriter) {
		n := running.Add(1)
		for m := maxRunning.Load(); n > m && !maxRunning.CompareAndSwap(m, n); m = maxRunning.Load() {
		}
		mu.Lock()
		d := time.Duration(rng.IntN(2000)) * time.Microsecond
		mu.Unlock()
		time.Sleep(d)
		running.Add(-1)
		echo(ctx, req, w)
	})
	ts := startServer(t, mux, nil)
	c := dialTest(t, ts.addr, clientConfig())
	const workers, perWorker = 32, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan *Call, 8)
			for i := 0; i < perWorker; i += 8 {
				// 8 calls in flight per worker, completing in any order.
				for j := range 8 {
					hdr := binary.LittleEndian.AppendUint64(nil, uint64(w<<32|(i+j)))
					payload := bytes.Repeat(hdr, 64*(j+1))
					c.Go(context.Background(), kindEcho, hdr, payload, done)
				}
				for range 8 {
					call := <-done
					if call.Error != nil {
						errs <- call.Error
						return
					}
					r := call.Response
					if !bytes.Equal(r.Header, call.Header) || !bytes.Equal(r.Payload.Bytes(), call.Payload) {
						errs <- fmt.Errorf("call %x got the response of %x", call.Header, r.Header)
						return
					}
					r.Release()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if maxRunning.Load() < 2 {
		t.Fatalf("handlers never overlapped (max %d running)", maxRunning.Load())
	}
	waitFor(t, "buffers back in the pools", func() bool {
		s := ts.buffers.Stats()
		return s.Gets == s.Puts
	})
}

// blockingServer's handler waits on release before replying.
func blockingServer(t *testing.T, mod func(*ServerConfig)) (*testServer, chan struct{}, *atomic.Int32) {
	release := make(chan struct{})
	var started atomic.Int32
	mux := NewServeMux()
	mux.HandleFunc(kindEcho, func(ctx context.Context, req *Request, w *ResponseWriter) {
		started.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			// The connection is closing: a reply could still race out
			// ahead of the close and make the in-flight call succeed.
			return
		}
		echo(ctx, req, w)
	})
	return startServer(t, mux, mod), release, &started
}

func TestDeadlineAndCancel(t *testing.T) {
	testutil.CheckLeaks(t)
	ts, release, started := blockingServer(t, nil)
	cfg := clientConfig()
	c := dialTest(t, ts.addr, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Call(ctx, kindEcho, []byte("late"), bytes.Repeat([]byte{1}, 8192))
	if !errors.Is(err, context.DeadlineExceeded) || err != ctx.Err() {
		t.Fatalf("deadline: err %v, want ctx.Err()", err)
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	call := c.Go(ctx2, kindEcho, []byte("cancelled"), bytes.Repeat([]byte{2}, 8192), nil)
	waitFor(t, "second handler to start", func() bool { return started.Load() == 2 })
	cancel2()
	<-call.Done
	if call.Error != context.Canceled || call.Response != nil {
		t.Fatalf("cancel: %v, %v", call.Error, call.Response)
	}
	// An already-cancelled context fails before sending.
	if _, err := c.Call(ctx2, kindEcho, nil, nil); err != context.Canceled {
		t.Fatalf("cancelled ctx: %v", err)
	}

	// The late responses arrive, are dropped, and their buffers released;
	// the connection keeps working.
	close(release)
	resp, err := c.Call(context.Background(), kindEcho, []byte("after"), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Release()
	waitFor(t, "late response buffers released", func() bool {
		s := cfg.Buffers.Stats()
		return s.Gets == 2 && s.Puts == 2
	})
	if now, _ := c.InFlightBytes(); now != 0 {
		t.Fatalf("%d in-flight bytes left", now)
	}
	if m := c.metrics.Snapshot(); m.Errors.Canceled != 3 || m.CallsInFlight != 0 {
		t.Fatalf("client metrics %+v", m)
	}
}

// TestCallTimeLimits checks CallWithin and GoFuncWithin: calls without an
// answer fail with ErrTimeout once their own limit has passed (not the
// others'), the connection's one timer re-arms for the limits still
// pending, and calls answered in time are untouched.
func TestCallTimeLimits(t *testing.T) {
	testutil.CheckLeaks(t)
	ts, release, started := blockingServer(t, nil)
	cfg := clientConfig()
	c := dialTest(t, ts.addr, cfg)

	// The longer limit first: the timer, armed for it, must be brought
	// forward for the shorter one.
	start := time.Now()
	longDone := make(chan error, 1)
	go func() {
		_, err := c.CallWithin(context.Background(), 2*time.Second, kindEcho, []byte("long"), nil)
		longDone <- err
	}()
	waitFor(t, "the long call's handler to start", func() bool { return started.Load() == 1 })
	short := make(chan error, 1)
	shortStart := time.Now()
	c.GoFuncWithin(context.Background(), 40*time.Millisecond, kindEcho, []byte("short"), nil, nil, func(call *Call) {
		short <- call.Error
	})
	// No limit at all: answered once the handlers are released.
	unlimited := c.Go(context.Background(), kindEcho, []byte("unlimited"), nil, nil)

	err := <-short
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("short call: %v, want ErrTimeout", err)
	}
	if el := time.Since(shortStart); el >= time.Second {
		t.Fatalf("the short call ended after %v: at the long call's limit, not its own", el)
	}
	if !strings.Contains(err.Error(), ts.addr) {
		t.Fatalf("short call's error %q does not name the peer %s", err, ts.addr)
	}
	select {
	case err := <-longDone:
		t.Fatalf("long call ended after %v with the short one's limit: %v", time.Since(start), err)
	default:
	}
	err = <-longDone
	if el := time.Since(start); !errors.Is(err, ErrTimeout) || el < 2*time.Second {
		t.Fatalf("long call: %v after %v, want ErrTimeout after 2s", err, el)
	}
	waitFor(t, "three handlers to start", func() bool { return started.Load() == 3 })

	// A call answered within its limit succeeds, and the connection works.
	close(release)
	resp, err := c.CallWithin(context.Background(), 10*time.Second, kindEcho, []byte("in time"), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Release()
	<-unlimited.Done
	if unlimited.Error != nil {
		t.Fatalf("call without a limit: %v", unlimited.Error)
	}
	unlimited.Response.Release()
	if m := c.metrics.Snapshot(); m.Errors.Canceled != 2 || m.CallsInFlight != 0 {
		t.Fatalf("client metrics %+v", m)
	}
}

func TestBackPressureBoundsInFlightBytes(t *testing.T) {
	testutil.CheckLeaks(t)
	ts, release, started := blockingServer(t, nil)
	cfg := clientConfig()
	cfg.MaxPayloadBytes = 64 << 10
	cfg.MaxInFlightBytes = maxFrameBytes(cfg.MaxPayloadBytes) + 3*(64<<10) // room for about 4 calls
	c := dialTest(t, ts.addr, cfg)

	const calls = 24
	payload := bytes.Repeat([]byte{3}, 64<<10)
	done := make(chan *Call, calls)
	var launched atomic.Int32
	go func() {
		for range calls {
			c.Go(context.Background(), kindEcho, []byte("bp"), payload, done)
			launched.Add(1)
		}
	}()
	perCall := int64(frameHeaderSize + 2 + len(payload))
	fit := int32(int64(cfg.MaxInFlightBytes) / perCall)
	waitFor(t, "the bound to be reached", func() bool { return started.Load() == fit })
	// The producer is blocked in Go: no more requests reach the server.
	time.Sleep(20 * time.Millisecond)
	if l, s := launched.Load(), started.Load(); l != fit || s != fit {
		t.Fatalf("with room for %d calls, %d were launched and %d reached the server", fit, l, s)
	}
	// A call that cannot get room in time gives up with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	_, err := c.Call(ctx, kindEcho, nil, payload)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("blocked call: %v", err)
	}
	close(release)
	for range calls {
		call := <-done
		if call.Error != nil {
			t.Fatal(call.Error)
		}
		call.Response.Release()
	}
	now, peak := c.InFlightBytes()
	if now != 0 || peak > int64(cfg.MaxInFlightBytes) || peak < int64(fit)*perCall {
		t.Fatalf("in-flight bytes now %d peak %d, bound %d", now, peak, cfg.MaxInFlightBytes)
	}
}

func TestServerConcurrencyBound(t *testing.T) {
	testutil.CheckLeaks(t)
	const maxConc = 4
	ts, release, started := blockingServer(t, func(c *ServerConfig) { c.MaxConcurrent = maxConc })
	c := dialTest(t, ts.addr, clientConfig())
	done := make(chan *Call, 20)
	for range 20 {
		c.Go(context.Background(), kindEcho, nil, []byte("x"), done)
	}
	waitFor(t, "handlers to start", func() bool { return started.Load() == maxConc })
	time.Sleep(20 * time.Millisecond)
	if n := started.Load(); n != maxConc {
		t.Fatalf("%d handlers running, bound %d", n, maxConc)
	}
	close(release)
	for range 20 {
		call := <-done
		if call.Error != nil {
			t.Fatal(call.Error)
		}
		call.Response.Release()
	}
}

func TestRemoteErrors(t *testing.T) {
	testutil.CheckLeaks(t)
	const kindFail, kindPanic, kindSilent = FirstUserKind + 2, FirstUserKind + 3, FirstUserKind + 4
	logger, lb := newLogger()
	mux := NewServeMux()
	mux.HandleFunc(kindFail, func(_ context.Context, _ *Request, w *ResponseWriter) {
		w.Error(FirstUserCode+5, "chunk 7 not found")
	})
	mux.HandleFunc(kindPanic, func(context.Context, *Request, *ResponseWriter) { panic("boom") })
	mux.HandleFunc(kindSilent, func(context.Context, *Request, *ResponseWriter) {})
	ts := startServer(t, mux, func(c *ServerConfig) { c.Logger = logger })
	c := dialTest(t, ts.addr, clientConfig())
	for _, tc := range []struct {
		kind Kind
		code ErrorCode
		msg  string
	}{
		{kindFail, FirstUserCode + 5, "chunk 7 not found"},
		{FirstUserKind + 999, CodeUnknownKind, "unknown message kind 1255"},
		{kindPanic, CodeInternal, "handler for kind 259 panicked"},
		{kindSilent, CodeInternal, "handler for kind 260 returned without replying"},
	} {
		_, err := c.Call(context.Background(), tc.kind, nil, []byte("payload"))
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != tc.code || re.Message != tc.msg {
			t.Fatalf("kind %d: %v, want code %d %q", tc.kind, err, tc.code, tc.msg)
		}
	}
	mustContain(t, "server log", lb.String(), "handler panicked")
	// The connection survived all of it.
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	// Reserved kinds are refused locally.
	if _, err := c.Call(context.Background(), 7, nil, nil); err == nil {
		t.Fatal("reserved kind accepted")
	}
	if _, err := c.Call(context.Background(), kindEcho, nil, make([]byte, c.MaxPayloadBytes()+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized payload: %v", err)
	}
}

func TestReadOnlyKeyReachesHandler(t *testing.T) {
	testutil.CheckLeaks(t)
	peers := make(chan Peer, 1)
	mux := NewServeMux()
	mux.HandleFunc(kindEcho, func(ctx context.Context, req *Request, w *ResponseWriter) {
		peers <- req.Peer
		echo(ctx, req, w)
	})
	ts := startServer(t, mux, nil)
	cfg := clientConfig()
	cfg.KeyID, cfg.Secret = testROKey, []byte("read-only-secret")
	c := dialTest(t, ts.addr, cfg)
	resp, err := c.Call(context.Background(), kindEcho, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Release()
	if p := <-peers; p.KeyID != testROKey || !p.ReadOnly {
		t.Fatalf("handler saw peer %+v", p)
	}
	if !c.ReadOnly() {
		t.Fatal("client not told its key is read-only")
	}
}

// TestZeroCopyReceive checks that payloads land in pooled aligned buffers
// on both sides, as read from the socket, and counts allocations per call.
func TestZeroCopyReceive(t *testing.T) {
	testutil.CheckLeaks(t)
	var bad atomic.Value
	mux := NewServeMux()
	srvPool := NewBufferPool()
	mux.HandleFunc(kindEcho, func(ctx context.Context, req *Request, w *ResponseWriter) {
		switch p := req.Payload; {
		case p == nil:
			bad.Store("no payload")
		case !isAligned(p.Bytes()):
			bad.Store("request payload not 4096-aligned")
		case p.Pool() != srvPool:
			bad.Store("request payload not from the server's pool")
		case p.Cap() != 4096:
			bad.Store(fmt.Sprintf("request payload in a %d-byte buffer", p.Cap()))
		}
		echo(ctx, req, w)
	})
	ts := startServer(t, mux, func(c *ServerConfig) { c.Buffers = srvPool })
	cfg := clientConfig()
	cfg.NoPayloadChecksum = true
	c := dialTest(t, ts.addr, cfg)
	payload := bytes.Repeat([]byte{9}, 4096)
	roundTrip := func() {
		resp, err := c.Call(context.Background(), kindEcho, nil, payload)
		if err != nil {
			t.Fatal(err)
		}
		if !isAligned(resp.Payload.Bytes()) || resp.Payload.Pool() != cfg.Buffers || !bytes.Equal(resp.Payload.Bytes(), payload) {
			t.Fatal("response payload not aligned, not from the client's pool, or wrong")
		}
		resp.Release()
	}
	for range 100 {
		roundTrip()
	}
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
	before := ts.buffers.Stats()
	allocs := testing.AllocsPerRun(500, roundTrip)
	after := ts.buffers.Stats()
	t.Logf("%.1f allocations per 4 KiB round trip (client and server); server buffers: %d gets, %d new", allocs, after.Gets-before.Gets, after.Allocs-before.Allocs)
	// No payload-sized allocation per call: the buffers are reused. The
	// remaining allocations are the handler goroutine, its closure and the
	// echo handler's [][]byte and release closure.
	if allocs > 4 && !raceEnabled { // the race detector allocates, and sync.Pool drops items under it
		t.Fatalf("%.1f allocations per round trip", allocs)
	}
}

func TestConnFailureFailsInFlightCalls(t *testing.T) {
	testutil.CheckLeaks(t)
	ts, _, started := blockingServer(t, nil)
	c := dialTest(t, ts.addr, clientConfig())
	done := make(chan *Call, 3)
	for range 3 {
		c.Go(context.Background(), kindEcho, nil, []byte("x"), done)
	}
	waitFor(t, "handlers", func() bool { return started.Load() == 3 })
	ts.Close() // kills the connection under the calls
	for range 3 {
		call := <-done
		if !errors.Is(call.Error, ErrConnClosed) {
			t.Fatalf("in-flight call: %v, want ErrConnClosed", call.Error)
		}
	}
	if err := c.Err(); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("Err() = %v", err)
	}
	if _, err := c.Call(context.Background(), kindEcho, nil, nil); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("call on a dead conn: %v", err)
	}
}

func TestGracefulShutdown(t *testing.T) {
	testutil.CheckLeaks(t)
	ts, release, started := blockingServer(t, nil)
	c := dialTest(t, ts.addr, clientConfig())
	idle := dialTest(t, ts.addr, clientConfig())
	call := c.Go(context.Background(), kindEcho, []byte("in flight"), nil, nil)
	waitFor(t, "handler", func() bool { return started.Load() == 1 })
	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(context.Background()) }()
	waitFor(t, "go-away to reach the client", func() bool { return errors.Is(c.Err(), ErrDraining) })
	// New calls are refused before being sent: safe to retry elsewhere.
	if _, err := c.Call(context.Background(), kindEcho, nil, nil); !errors.Is(err, ErrDraining) || !errors.Is(err, ErrConnClosed) {
		t.Fatalf("call during shutdown: %v", err)
	}
	close(release)
	<-call.Done
	if call.Error != nil {
		t.Fatalf("in-flight call failed during graceful shutdown: %v", call.Error)
	}
	call.Response.Release()
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "idle conn closed", func() bool { return idle.Err() != nil })
}
