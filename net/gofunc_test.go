package net

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"

	"github.com/weftfs/weft/internal/testutil"
)

// TestGoFunc: fn runs once per call; a payload that fits is read into the
// caller's buffer (no pooled Buffer taken), one that does not comes in a
// Buffer; a call cancelled before its response leaves into untouched when
// the response arrives later.
func TestGoFunc(t *testing.T) {
	testutil.CheckLeaks(t)
	ts := startServer(t, echoMux(), nil)
	cfg := clientConfig()
	c := dialTest(t, ts.addr, cfg)
	ctx := context.Background()

	type result struct {
		err     error
		into    int
		payload []byte
		header  string
	}
	results := make(chan result, 8)
	var runs atomic.Int32
	fn := func(call *Call) {
		runs.Add(1)
		r := result{err: call.Error}
		if resp := call.Response; resp != nil {
			r.into, r.header = resp.Into, string(resp.Header)
			if resp.Payload != nil {
				r.payload = bytes.Clone(resp.Payload.Bytes())
			}
			resp.Release()
		}
		results <- r
	}

	// Fits: read into into, no Buffer from the pool.
	want := bytes.Repeat([]byte("fits"), 1024)
	into := make([]byte, 8192)
	c.GoFunc(ctx, kindEcho, []byte("h1"), want, into, fn)
	r := <-results
	if r.err != nil || r.into != len(want) || r.payload != nil || r.header != "h1" || !bytes.Equal(into[:r.into], want) {
		t.Fatalf("fitting payload: err %v into %d payload %d header %q", r.err, r.into, len(r.payload), r.header)
	}
	if s := cfg.Buffers.Stats(); s.Gets != 0 {
		t.Fatalf("a payload read into the caller's buffer took %d pooled buffers", s.Gets)
	}

	// Too long for into: a pooled Buffer, into untouched.
	long := bytes.Repeat([]byte("long"), 4096)
	small := make([]byte, 100)
	c.GoFunc(ctx, kindEcho, nil, long, small, fn)
	r = <-results
	if r.err != nil || r.into != 0 || !bytes.Equal(r.payload, long) || !bytes.Equal(small, make([]byte, 100)) {
		t.Fatalf("long payload: err %v into %d payload %d", r.err, r.into, len(r.payload))
	}

	// No payload, no into.
	c.GoFunc(ctx, kindEcho, []byte("h3"), nil, nil, fn)
	if r = <-results; r.err != nil || r.into != 0 || r.payload != nil || r.header != "h3" {
		t.Fatalf("empty: %+v", r)
	}

	// A call failing at once (reserved kind) runs fn too.
	c.GoFunc(ctx, KindPing+1, nil, nil, nil, fn)
	if r = <-results; r.err == nil {
		t.Fatal("a call of a reserved kind succeeded")
	}
	if n := runs.Load(); n != 4 {
		t.Fatalf("fn ran %d times for 4 calls", n)
	}
	if m := c.metrics.Snapshot(); m.CallsInFlight != 0 {
		t.Fatalf("%d calls in flight", m.CallsInFlight)
	}
}

// TestGoFuncCancelled: a cancelled call's late response is dropped, not
// written into the buffer its caller got back.
func TestGoFuncCancelled(t *testing.T) {
	testutil.CheckLeaks(t)
	ts, release, started := blockingServer(t, nil)
	cfg := clientConfig()
	c := dialTest(t, ts.addr, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	into := make([]byte, 4096)
	errs := make(chan error, 1)
	c.GoFunc(ctx, kindEcho, nil, bytes.Repeat([]byte{7}, 4096), into, func(call *Call) {
		if call.Response != nil {
			call.Response.Release()
		}
		errs <- call.Error
	})
	waitFor(t, "handler to start", func() bool { return started.Load() == 1 })
	cancel()
	if err := <-errs; err != context.Canceled {
		t.Fatalf("cancelled call: %v", err)
	}
	close(release)
	// The late response is read into a pooled buffer and dropped.
	waitFor(t, "late response dropped", func() bool {
		s := cfg.Buffers.Stats()
		return s.Gets == 1 && s.Puts == 1
	})
	if !bytes.Equal(into, make([]byte, 4096)) {
		t.Fatal("a cancelled call's response was written into its buffer")
	}
}
