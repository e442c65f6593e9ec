package net

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/weftfs/weft/internal/testutil"
)

// queueStarter takes requests whose header starts with "q" and answers
// them later, from its own goroutine, in reverse order; "x" panics in
// StartRPC; the rest go to ServeRPC (echo).
type queueStarter struct {
	mu     sync.Mutex
	queued []startedReq
}

type startedReq struct {
	req *Request
	w   *ResponseWriter
}

func (q *queueStarter) StartRPC(_ context.Context, req *Request, w *ResponseWriter) bool {
	switch {
	case bytes.HasPrefix(req.Header, []byte("x")):
		panic("starter panics")
	case !bytes.HasPrefix(req.Header, []byte("q")):
		return false
	}
	q.mu.Lock()
	q.queued = append(q.queued, startedReq{req, w})
	q.mu.Unlock()
	return true
}

func (q *queueStarter) ServeRPC(ctx context.Context, req *Request, w *ResponseWriter) {
	echo(ctx, req, w)
}

// answer answers the queued requests, last first, from another goroutine:
// each echoes its header and payload.
func (q *queueStarter) answer() {
	q.mu.Lock()
	queued := q.queued
	q.queued = nil
	q.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := len(queued) - 1; i >= 0; i-- {
			echo(context.Background(), queued[i].req, queued[i].w)
		}
	}()
	<-done
}

func (q *queueStarter) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queued)
}

func TestStarter(t *testing.T) {
	testutil.CheckLeaks(t)
	q := &queueStarter{}
	logger, logs := newLogger()
	ts := startServer(t, q, func(cfg *ServerConfig) { cfg.Logger = logger })
	c := dialTest(t, ts.addr, clientConfig())
	ctx := context.Background()

	const n = 8
	calls := make([]*Call, n)
	for i := range calls {
		calls[i] = c.Go(ctx, kindEcho, fmt.Appendf(nil, "q%d", i), bytes.Repeat([]byte{byte(i)}, 4096), nil)
	}
	waitFor(t, "requests taken", func() bool { return q.len() == n })
	// Requests the Starter leaves go to ServeRPC meanwhile.
	resp, err := c.Call(ctx, kindEcho, []byte("plain"), nil)
	if err != nil || string(resp.Header) != "plain" {
		t.Fatalf("a request the Starter left: %v", err)
	}
	resp.Release()
	q.answer()
	for i, call := range calls {
		<-call.Done
		if call.Error != nil {
			t.Fatalf("call %d: %v", i, call.Error)
		}
		if string(call.Response.Header) != fmt.Sprintf("q%d", i) || !bytes.Equal(call.Response.Payload.Bytes(), bytes.Repeat([]byte{byte(i)}, 4096)) {
			t.Fatalf("call %d: header %q", i, call.Response.Header)
		}
		call.Response.Release()
	}
	// A panic in StartRPC answers CodeInternal and the connection goes on.
	_, err = c.Call(ctx, kindEcho, []byte("xpanic"), nil)
	if re, ok := err.(*RemoteError); !ok || re.Code != CodeInternal {
		t.Fatalf("panicking StartRPC: %v", err)
	}
	mustContain(t, "log", logs.String(), "StartRPC panicked")
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// A request leaves the count once its reply is written and its
	// handler (or Starter) let go, which may be just after the client
	// read the reply: every one must leave it, soon.
	waitFor(t, "no request in flight", func() bool { return ts.Metrics().RequestsInFlight == 0 })
}

// TestStarterShutdown: Shutdown waits for the answers of taken requests.
func TestStarterShutdown(t *testing.T) {
	testutil.CheckLeaks(t)
	q := &queueStarter{}
	ts := startServer(t, q, nil)
	c := dialTest(t, ts.addr, clientConfig())
	call := c.Go(context.Background(), kindEcho, []byte("q"), nil, nil)
	waitFor(t, "request taken", func() bool { return q.len() == 1 })
	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(context.Background()) }()
	q.answer()
	<-call.Done
	if call.Error != nil {
		t.Fatalf("taken request during shutdown: %v", call.Error)
	}
	call.Response.Release()
	c.Close()
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}
