package client

import (
	"context"
	"errors"
	"io"
	"log/slog"
	stdnet "net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/internal/testutil"
	"github.com/weftfs/weft/net"
)

const (
	testCluster = "client-test"
	testKey     = "k"
)

var (
	testSecret = []byte("client-test-secret-0123456789abc")
	quiet      = slog.New(slog.NewTextHandler(io.Discard, nil))
)

// feed is a MapSource the test publishes to.
type feed struct {
	mu sync.Mutex
	m  *clustermap.Map
	ch chan struct{}
}

func newFeed(m *clustermap.Map) *feed { return &feed{m: m, ch: make(chan struct{})} }

func (f *feed) publish(m *clustermap.Map) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m = m
	close(f.ch)
	f.ch = make(chan struct{})
}

func (f *feed) Map(ctx context.Context, after uint64) (*clustermap.Map, error) {
	for {
		f.mu.Lock()
		m, ch := f.m, f.ch
		f.mu.Unlock()
		if after == 0 || m.Epoch > after {
			return m, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// fakeNode answers the chunk kinds with a scripted function and records
// what it was sent.
type fakeNode struct {
	addr string
	srv  *net.Server
	done chan error

	mu     sync.Mutex
	writes []fsproto.Write
	answer func(n int, w fsproto.Write, rw *net.ResponseWriter) // n: writes so far, this one included
	reads  int
}

func startFake(t *testing.T) *fakeNode {
	t.Helper()
	f := &fakeNode{done: make(chan error, 1)}
	mux := net.NewServeMux()
	mux.HandleFunc(fsproto.KindWrite, func(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
		m, err := fsproto.DecodeWrite(req.Header)
		if err != nil {
			w.Error(fsproto.CodeBadMessage, err.Error())
			return
		}
		f.mu.Lock()
		f.writes = append(f.writes, m)
		n, answer := len(f.writes), f.answer
		f.mu.Unlock()
		answer(n, m, w)
	})
	mux.HandleFunc(fsproto.KindRead, func(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
		m, err := fsproto.DecodeRead(req.Header)
		if err != nil {
			w.Error(fsproto.CodeBadMessage, err.Error())
			return
		}
		f.mu.Lock()
		f.reads++
		f.mu.Unlock()
		if m.Chunk.Index == 9 {
			w.Error(fsproto.CodeNotFound, "no such chunk")
			return
		}
		data := []byte("hello")
		w.Reply(fsproto.AppendReadResult(nil, fsproto.ReadResult{N: uint32(len(data)), EOF: true}), [][]byte{data}, nil)
	})
	var ks net.MemKeyStore
	ks.Add(testKey, testSecret, false)
	srv, err := net.NewServer(net.ServerConfig{ClusterID: testCluster, Keys: &ks, Logger: quiet}, mux)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr, f.srv = ln.Addr().String(), srv
	go func() { f.done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		<-f.done
	})
	return f
}

func (f *fakeNode) setAnswer(fn func(n int, w fsproto.Write, rw *net.ResponseWriter)) {
	f.mu.Lock()
	f.answer = fn
	f.mu.Unlock()
}

// seen returns the writes received and the number of reads.
func (f *fakeNode) seen() ([]fsproto.Write, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fsproto.Write(nil), f.writes...), f.reads
}

func okWrite(seq uint64) func(int, fsproto.Write, *net.ResponseWriter) {
	return func(_ int, _ fsproto.Write, w *net.ResponseWriter) {
		w.Reply(fsproto.AppendWriteResult(nil, fsproto.WriteResult{PGSeq: seq}), nil, nil)
	}
}

// failOver takes pg's primary, first, down in a map after m: first
// answers a write with CodeStaleEpoch and publishes that map on f, and
// second, the new primary, acknowledges writes with PGSeq 42. It returns
// the new map.
func failOver(t *testing.T, m *clustermap.Map, pg clustermap.PG, f *feed, first, second *fakeNode) *clustermap.Map {
	t.Helper()
	m2, err := m.Apply(clustermap.SetNodeState{ID: pg.Primary(), State: clustermap.Down})
	if err != nil {
		t.Fatal(err)
	}
	first.setAnswer(func(n int, w fsproto.Write, rw *net.ResponseWriter) {
		f.publish(m2)
		rw.Error(fsproto.CodeStaleEpoch, "stale")
	})
	second.setAnswer(okWrite(42))
	return m2
}

// testMap builds a map of the given nodes (id i+1 at addrs[i]) with one
// container of one PG, replicated on all of them.
func testMap(t *testing.T, addrs ...string) *clustermap.Map {
	t.Helper()
	m := clustermap.New()
	var err error
	for i, a := range addrs {
		if m, err = m.Apply(clustermap.AddNode{ID: clustermap.NodeID(i + 1), Addr: a}); err != nil {
			t.Fatal(err)
		}
	}
	if m, err = m.Apply(clustermap.CreateContainer{Name: "db", Policy: clustermap.Policy{Replicas: len(addrs), PGCount: 1}}); err != nil {
		t.Fatal(err)
	}
	return m
}

func dial(t *testing.T, f *feed) *Client {
	t.Helper()
	c, err := Dial(context.Background(), Config{Maps: f, ClusterID: testCluster, KeyID: testKey, Secret: testSecret,
		Logger: quiet, RefreshWait: 20 * time.Millisecond, AttemptTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDialValidates(t *testing.T) {
	_, err := Dial(context.Background(), Config{RefreshWait: -1})
	if err == nil {
		t.Fatal("Dial accepted an empty config")
	}
	for _, want := range []string{"Maps is nil", "ClusterID", "RefreshWait -1ns is negative"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestStaleEpochRefreshesAndKeepsRequestID: the node refuses the first
// attempt as stale; the client takes the newer map (which moved the
// primary) and resends the same RequestID with the new epoch there.
func TestStaleEpochRefreshesAndKeepsRequestID(t *testing.T) {
	testutil.CheckLeaks(t)
	a, b := startFake(t), startFake(t)
	m := testMap(t, a.addr, b.addr)
	pg := m.PGs[0]
	f := newFeed(m)
	c := dial(t, f)
	ct, err := c.Container("db")
	if err != nil {
		t.Fatal(err)
	}
	// Move the primary away from whichever node holds it.
	first, second := a, b
	if pg.Primary() == 2 {
		first, second = b, a
	}
	m2 := failOver(t, m, pg, f, first, second)
	res, err := ct.Write(context.Background(), 3, 4, 0, []byte("data"))
	if err != nil || res.PGSeq != 42 {
		t.Fatalf("write: %+v, %v", res, err)
	}
	fw, _ := first.seen()
	sw, _ := second.seen()
	if len(fw) != 1 || len(sw) != 1 {
		t.Fatalf("attempts: %d on the old primary, %d on the new", len(fw), len(sw))
	}
	w1, w2 := fw[0], sw[0]
	if w1.RequestID != w2.RequestID {
		t.Error("the retry carried another RequestID")
	}
	npg, _ := m2.PG(pg.ID)
	if w1.Epoch != pg.Epoch || w2.Epoch != npg.Epoch || w2.PG != uint32(pg.ID) {
		t.Errorf("epochs %d then %d, want %d then %d", w1.Epoch, w2.Epoch, pg.Epoch, npg.Epoch)
	}
	if c.Map().Epoch != m2.Epoch {
		t.Errorf("client map at epoch %d, want %d", c.Map().Epoch, m2.Epoch)
	}
}

// TestRetryWithoutNewMap: CodeUnavailable with no newer map is retried
// on the same node after a backoff, with the same RequestID.
func TestRetryWithoutNewMap(t *testing.T) {
	testutil.CheckLeaks(t)
	a := startFake(t)
	c := dial(t, newFeed(testMap(t, a.addr)))
	ct, _ := c.Container("db")
	a.setAnswer(func(n int, w fsproto.Write, rw *net.ResponseWriter) {
		if n < 3 {
			rw.Error(fsproto.CodeUnavailable, "busy")
			return
		}
		okWrite(7)(n, w, rw)
	})
	if _, err := ct.Write(context.Background(), 1, 1, 0, []byte("x")); err != nil {
		t.Fatal(err)
	}
	ws, _ := a.seen()
	if len(ws) != 3 || ws[0].RequestID != ws[1].RequestID || ws[0].RequestID != ws[2].RequestID {
		t.Fatalf("%d attempts, want 3 with one RequestID", len(ws))
	}
}

// TestErrorsNotRetried: answers that retrying cannot change come back at
// once, wrapping fsproto's sentinels.
func TestErrorsNotRetried(t *testing.T) {
	testutil.CheckLeaks(t)
	a := startFake(t)
	c := dial(t, newFeed(testMap(t, a.addr)))
	ct, _ := c.Container("db")
	a.setAnswer(func(n int, w fsproto.Write, rw *net.ResponseWriter) { rw.Error(fsproto.CodeNoSpace, "full") })
	if _, err := ct.Write(context.Background(), 1, 1, 0, []byte("x")); !errors.Is(err, fsproto.ErrNoSpace) {
		t.Fatalf("write: %v, want ErrNoSpace", err)
	}
	if ws, _ := a.seen(); len(ws) != 1 {
		t.Fatalf("%d attempts, want 1", len(ws))
	}
	p := make([]byte, 10)
	if _, err := ct.Read(context.Background(), 1, 9, 0, p); !errors.Is(err, fsproto.ErrNotFound) {
		t.Fatalf("read: %v, want ErrNotFound", err)
	}
	n, err := ct.Read(context.Background(), 1, 1, 0, p)
	if n != 5 || err != io.EOF || string(p[:n]) != "hello" {
		t.Fatalf("read: %d %q %v", n, p[:n], err)
	}
	if _, err := ct.Write(context.Background(), fsproto.InodeMax+1, 0, 0, []byte("x")); !errors.Is(err, fsproto.ErrBadMessage) {
		t.Fatalf("write to a bad chunk id: %v", err)
	}
	if _, err := ct.Write(context.Background(), 1, 0, 0, nil); !errors.Is(err, fsproto.ErrInvalid) {
		t.Fatalf("empty write: %v", err)
	}
	if _, err := c.Container("nope"); !errors.Is(err, ErrNoContainer) {
		t.Fatalf("unknown container: %v", err)
	}
}

// TestDeadPrimaryUntilContextEnds: a primary that cannot be reached is
// retried until the caller's context ends, and the error says both.
func TestDeadPrimaryUntilContextEnds(t *testing.T) {
	testutil.CheckLeaks(t)
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c := dial(t, newFeed(testMap(t, addr)))
	ct, _ := c.Container("db")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = ct.Write(ctx, 1, 1, 0, []byte("x"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write to a dead node: %v, want DeadlineExceeded", err)
	}
}

func TestGoWriteGoRead(t *testing.T) {
	testutil.CheckLeaks(t)
	a := startFake(t)
	a.setAnswer(okWrite(1))
	c := dial(t, newFeed(testMap(t, a.addr)))
	ct, _ := c.Container("db")
	done := make(chan *fsproto.Op, 8)
	for i := uint64(0); i < 4; i++ {
		ct.GoWrite(context.Background(), 1, i, 0, []byte("x"), done)
	}
	bufs := make([][]byte, 4)
	for i := range bufs {
		bufs[i] = make([]byte, 8)
		ct.GoRead(context.Background(), 1, uint64(i), 0, bufs[i], done)
	}
	for i := 0; i < 8; i++ {
		op := <-done
		if op.Err != nil && op.Err != io.EOF {
			t.Fatal(op.Err)
		}
	}
	if ws, reads := a.seen(); len(ws) != 4 || reads != 4 {
		t.Fatalf("%d writes, %d reads", len(ws), reads)
	}
}

// TestGoOpsRetry: GoWrite and GoRead start their first attempt without a
// goroutine, and an attempt that must be retried (a stale epoch, a busy
// node, a primary that does not answer within AttemptTimeout) continues
// as Write and Read do, a write under the same RequestID; answers that a
// retry cannot change come back at once.
func TestGoOpsRetry(t *testing.T) {
	testutil.CheckLeaks(t)
	a, b := startFake(t), startFake(t)
	m := testMap(t, a.addr, b.addr)
	pg := m.PGs[0]
	f := newFeed(m)
	c, err := Dial(context.Background(), Config{Maps: f, ClusterID: testCluster, KeyID: testKey, Secret: testSecret,
		Logger: quiet, RefreshWait: 20 * time.Millisecond, AttemptTimeout: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ct, _ := c.Container("db")
	first, second := a, b
	if pg.Primary() == 2 {
		first, second = b, a
	}
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	done := make(chan *fsproto.Op, 1)

	// Busy twice, then the write applies: three attempts, one RequestID.
	first.setAnswer(func(n int, w fsproto.Write, rw *net.ResponseWriter) {
		if n < 3 {
			rw.Error(fsproto.CodeUnavailable, "busy")
			return
		}
		okWrite(7)(n, w, rw)
	})
	if op := <-ct.GoWrite(context.Background(), 1, 1, 0, []byte("x"), done).Done; op.Err != nil || op.Result.PGSeq != 7 {
		t.Fatalf("write after busy answers: %+v, %v", op.Result, op.Err)
	}
	ws, _ := first.seen()
	if len(ws) != 3 || ws[0].RequestID != ws[1].RequestID || ws[0].RequestID != ws[2].RequestID {
		t.Fatalf("%d attempts, want 3 with one RequestID", len(ws))
	}

	// No answer at all: the attempt ends after AttemptTimeout and is
	// retried with the same RequestID.
	first.setAnswer(func(n int, w fsproto.Write, rw *net.ResponseWriter) {
		if n == 4 {
			<-hang
			return
		}
		okWrite(8)(n, w, rw)
	})
	start := time.Now()
	if op := <-ct.GoWrite(context.Background(), 1, 1, 0, []byte("y"), done).Done; op.Err != nil || op.Result.PGSeq != 8 {
		t.Fatalf("write after a silent attempt: %+v, %v", op.Result, op.Err)
	}
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Fatalf("the retry came after %v, before AttemptTimeout", el)
	}
	ws, _ = first.seen()
	if len(ws) != 5 || ws[3].RequestID != ws[4].RequestID {
		t.Fatalf("%d attempts, want 5, the last two with one RequestID", len(ws))
	}

	// A stale epoch and a new map: the write moves to the new primary.
	failOver(t, m, pg, f, first, second)
	if op := <-ct.GoWrite(context.Background(), 3, 4, 0, []byte("data"), done).Done; op.Err != nil || op.Result.PGSeq != 42 {
		t.Fatalf("write after a stale epoch: %+v, %v", op.Result, op.Err)
	}
	fw, _ := first.seen()
	sw, _ := second.seen()
	if len(fw) != 6 || len(sw) != 1 || fw[5].RequestID != sw[0].RequestID {
		t.Fatalf("attempts: %d on the old primary, %d on the new, or RequestIDs differ", len(fw), len(sw))
	}

	// Not retried: no space, no such chunk; a read lands in p.
	second.setAnswer(func(n int, w fsproto.Write, rw *net.ResponseWriter) { rw.Error(fsproto.CodeNoSpace, "full") })
	if op := <-ct.GoWrite(context.Background(), 1, 1, 0, []byte("x"), done).Done; !errors.Is(op.Err, fsproto.ErrNoSpace) || !strings.Contains(op.Err.Error(), second.addr) {
		t.Fatalf("write: %v, want ErrNoSpace naming the node", op.Err)
	}
	if sw, _ := second.seen(); len(sw) != 2 {
		t.Fatalf("%d attempts on a full node, want 1", len(sw)-1)
	}
	p := make([]byte, 10)
	if op := <-ct.GoRead(context.Background(), 1, 9, 0, p, done).Done; !errors.Is(op.Err, fsproto.ErrNotFound) {
		t.Fatalf("read: %v, want ErrNotFound", op.Err)
	}
	if op := <-ct.GoRead(context.Background(), 1, 1, 0, p, done).Done; op.N != 5 || op.Err != io.EOF || string(p[:5]) != "hello" {
		t.Fatalf("read: %d %q %v", op.N, p[:op.N], op.Err)
	}
	if op := <-ct.GoRead(context.Background(), 1, 1, 0, nil, done).Done; !errors.Is(op.Err, fsproto.ErrInvalid) {
		t.Fatalf("empty read: %v, want ErrInvalid", op.Err)
	}
	if op := <-ct.GoWrite(context.Background(), fsproto.InodeMax+1, 0, 0, []byte("x"), done).Done; !errors.Is(op.Err, fsproto.ErrBadMessage) {
		t.Fatalf("write to a bad chunk id: %v", op.Err)
	}
}

// countingFeed records how many long polls (after > 0) run at once.
type countingFeed struct {
	*feed
	mu        sync.Mutex
	now, peak int
}

func (f *countingFeed) Map(ctx context.Context, after uint64) (*clustermap.Map, error) {
	if after > 0 {
		f.mu.Lock()
		f.now++
		f.peak = max(f.peak, f.now)
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			f.now--
			f.mu.Unlock()
		}()
	}
	return f.feed.Map(ctx, after)
}

// TestOneLongPollAtATime: many operations refused as stale share one
// map poll, then all succeed on the new map.
func TestOneLongPollAtATime(t *testing.T) {
	testutil.CheckLeaks(t)
	a := startFake(t)
	m := testMap(t, a.addr)
	m2, err := m.Apply(clustermap.AddNode{ID: 9, Addr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	f := &countingFeed{feed: newFeed(m)}
	c, err := Dial(context.Background(), Config{Maps: f, ClusterID: testCluster, KeyID: testKey, Secret: testSecret,
		Logger: quiet, RefreshWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ct, _ := c.Container("db")
	var once sync.Once
	a.setAnswer(func(n int, w fsproto.Write, rw *net.ResponseWriter) {
		if w.Epoch < m2.Epoch && n <= 8 {
			if n == 8 {
				once.Do(func() { f.publish(m2) })
			}
			rw.Error(fsproto.CodeStaleEpoch, "stale")
			return
		}
		okWrite(1)(n, w, rw)
	})
	done := make(chan *fsproto.Op, 8)
	for i := uint64(0); i < 8; i++ {
		ct.GoWrite(context.Background(), 1, i, 0, []byte("x"), done)
	}
	for i := 0; i < 8; i++ {
		if op := <-done; op.Err != nil {
			t.Fatal(op.Err)
		}
	}
	if f.peak != 1 {
		t.Fatalf("%d long polls at once, want 1", f.peak)
	}
}
