package net

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	stdnet "net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*stdnet.TCPConn, *stdnet.TCPConn) {
	t.Helper()
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan stdnet.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	a, err := stdnet.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.FailNow()
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*stdnet.TCPConn), b.(*stdnet.TCPConn)
}

// recordingOwner counts frameWritten calls per frame and remembers errors.
type recordingOwner struct {
	mu    sync.Mutex
	calls map[*outFrame]int
	errs  []error
	fired chan struct{} // gets a token per call
}

func newRecordingOwner() *recordingOwner {
	return &recordingOwner{calls: map[*outFrame]int{}, fired: make(chan struct{}, 1<<16)}
}

func (o *recordingOwner) frameWritten(f *outFrame, err error) {
	o.mu.Lock()
	o.calls[f]++
	if err != nil {
		o.errs = append(o.errs, err)
	}
	o.mu.Unlock()
	o.fired <- struct{}{}
}

func (o *recordingOwner) count(f *outFrame) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.calls[f]
}

// record is a test frame: 16 bytes (writer, sequence, payload length,
// check) then the payload, each byte a function of writer and sequence.
func record(o frameOwner, writer, seq uint32, n int) *outFrame {
	hdr := make([]byte, 16)
	binary.LittleEndian.PutUint32(hdr, writer)
	binary.LittleEndian.PutUint32(hdr[4:], seq)
	binary.LittleEndian.PutUint32(hdr[8:], uint32(n))
	binary.LittleEndian.PutUint32(hdr[12:], writer^seq^uint32(n))
	p := make([]byte, n)
	copy(p, recordPattern(writer, seq, n))
	// Two payload parts, as a reply with a header and data has.
	return &outFrame{hdr: hdr, payload: [][]byte{p[:n/2], p[n/2:]}, owner: o}
}

// pattern is random bytes that records' payloads are cut from.
var pattern = func() []byte {
	p := make([]byte, 16<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], rng.Uint64())
	}
	return p
}()

// recordPattern is the payload of record (writer, seq) of n bytes.
func recordPattern(writer, seq uint32, n int) []byte {
	off := int(writer*7919+seq*104729) % (len(pattern) - n)
	return pattern[off : off+n]
}

// readRecords reads records from r until it has want of them (or fails),
// checking each, and returns their (writer, seq) in arrival order.
func readRecords(r io.Reader, want int) ([][2]uint32, error) {
	var got [][2]uint32
	hdr := make([]byte, 16)
	for len(got) < want {
		if _, err := io.ReadFull(r, hdr); err != nil {
			return got, fmt.Errorf("record %d: header: %w", len(got), err)
		}
		w, s := binary.LittleEndian.Uint32(hdr), binary.LittleEndian.Uint32(hdr[4:])
		n := binary.LittleEndian.Uint32(hdr[8:])
		if binary.LittleEndian.Uint32(hdr[12:]) != w^s^n {
			return got, fmt.Errorf("record %d: torn header % x", len(got), hdr)
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(r, p); err != nil {
			return got, fmt.Errorf("record %d (writer %d seq %d): payload: %w", len(got), w, s, err)
		}
		if !bytes.Equal(p, recordPattern(w, s, int(n))) {
			return got, fmt.Errorf("record %d (writer %d seq %d): payload differs", len(got), w, s)
		}
		got = append(got, [2]uint32{w, s})
	}
	return got, nil
}

func startWriter(t *testing.T, c stdnet.Conn, m *Metrics, onFail func(error)) *frameWriter {
	t.Helper()
	w := newFrameWriter(c, 0, m, onFail)
	if w.direct == nil && runtime.GOOS == "linux" {
		t.Fatal("no direct writer on a TCP connection")
	}
	go w.run()
	t.Cleanup(func() {
		w.stop(errors.New("test over"))
		<-w.done
	})
	return w
}

// On an idle connection a frame queued with now set is written before
// enqueueOrWrite returns, its owner called from there; one queued without
// it goes through the writer goroutine.
func TestDirectWriteOnIdleConnection(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("direct writes are wired up on Linux only")
	}
	a, b := tcpPair(t)
	var m Metrics
	w := startWriter(t, a, &m, func(err error) { t.Errorf("write failed: %v", err) })
	o := newRecordingOwner()

	f := record(o, 1, 1, 4096)
	if err := w.enqueueOrWrite(f, true); err != nil {
		t.Fatal(err)
	}
	if o.count(f) != 1 {
		t.Fatalf("owner called %d times when enqueueOrWrite returned, want 1 (written directly)", o.count(f))
	}
	g := record(o, 1, 2, 4096)
	if err := w.enqueue(g); err != nil {
		t.Fatal(err)
	}
	got, err := readRecords(b, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != [2]uint32{1, 1} || got[1] != [2]uint32{1, 2} {
		t.Fatalf("records arrived as %v", got)
	}
	waitFor(t, "the queued frame's owner", func() bool { return o.count(g) == 1 })
	if s := m.Snapshot(); s.DirectWrites != 1 || s.FramesOut != 2 || s.Writes != 2 {
		t.Fatalf("metrics: %d direct writes, %d frames, %d writes; want 1, 2, 2", s.DirectWrites, s.FramesOut, s.Writes)
	}
}

// A direct write that the socket takes only in part hands the rest to the
// writer goroutine: the frame arrives whole, before the frames queued
// after it, and its owner is called once.
func TestDirectWriteHandsOverWhatTheSocketRefuses(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("direct writes are wired up on Linux only")
	}
	a, b := tcpPair(t)
	// Small buffers, so that 8 MiB cannot go in one write.
	if err := a.SetWriteBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
	if err := b.SetReadBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
	var m Metrics
	w := startWriter(t, a, &m, func(err error) { t.Errorf("write failed: %v", err) })
	o := newRecordingOwner()

	big := record(o, 1, 1, 8<<20)
	if err := w.enqueueOrWrite(big, true); err != nil {
		t.Fatal(err)
	}
	if o.count(big) != 0 {
		t.Fatal("an 8 MiB frame was written whole to a 16 KiB socket buffer with nobody reading")
	}
	var small []*outFrame
	for i := range 5 {
		f := record(o, 2, uint32(i), 100)
		small = append(small, f)
		now := i%2 == 0 // the connection is busy: now must not matter
		if err := w.enqueueOrWrite(f, now); err != nil {
			t.Fatal(err)
		}
	}
	got, err := readRecords(b, 6)
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]uint32{{1, 1}, {2, 0}, {2, 1}, {2, 2}, {2, 3}, {2, 4}}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("records arrived as %v, want %v", got, want)
		}
	}
	waitFor(t, "every owner", func() bool {
		for _, f := range append(small, big) {
			if o.count(f) != 1 {
				return false
			}
		}
		return true
	})
	if s := m.Snapshot(); s.DirectWrites != 0 || s.FramesOut != 6 {
		t.Fatalf("metrics: %d direct writes, %d frames; want 0 and 6", s.DirectWrites, s.FramesOut)
	}
}

// A direct write to a connection the peer reset fails the connection like
// any write: the owner hears of it once, onFail runs once, and later
// frames are refused.
func TestDirectWriteErrorFailsTheConnection(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("direct writes are wired up on Linux only")
	}
	a, b := tcpPair(t)
	b.SetLinger(0) // close sends a reset
	b.Close()
	var fails atomic.Int32
	failed := make(chan error, 1)
	w := startWriter(t, a, &Metrics{}, func(err error) {
		if fails.Add(1) == 1 {
			failed <- err
		}
	})
	o := newRecordingOwner()
	// The first write after a reset may still succeed (the reset is
	// learnt from it); keep writing until the connection fails.
	var sent []*outFrame
	deadline := time.Now().Add(10 * time.Second)
	for {
		f := record(o, 1, uint32(len(sent)), 4096)
		if err := w.enqueueOrWrite(f, true); err != nil {
			break // refused: the writer has stopped
		}
		sent = append(sent, f)
		select {
		case <-failed:
		case <-time.After(10 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("writes to a reset connection kept succeeding")
			}
			continue
		}
		break
	}
	waitFor(t, "every owner", func() bool {
		for _, f := range sent {
			if o.count(f) != 1 {
				return false
			}
		}
		return true
	})
	o.mu.Lock()
	nerr := len(o.errs)
	o.mu.Unlock()
	if nerr == 0 {
		t.Fatal("no frame's owner heard of the failure")
	}
	if err := w.enqueueOrWrite(record(o, 1, 999, 10), true); err == nil {
		t.Fatal("a frame was accepted after the connection failed")
	}
	if n := fails.Load(); n != 1 {
		t.Fatalf("onFail ran %d times, want 1", n)
	}
}

// Many goroutines queueing frames at once, some asking for direct writes,
// some not, with a slow reader now and then: every frame arrives once,
// whole, each goroutine's in its order, and every owner is called once.
func TestDirectAndQueuedWritesInterleave(t *testing.T) {
	a, b := tcpPair(t)
	var m Metrics
	w := startWriter(t, a, &m, func(err error) { t.Errorf("write failed: %v", err) })
	o := newRecordingOwner()
	const writers, perWriter = 4, 300
	done := make(chan error, 1)
	go func() {
		got, err := readRecords(&slowReader{r: b, rng: rand.New(rand.NewPCG(1, 2))}, writers*perWriter)
		if err == nil {
			next := make([]uint32, writers)
			for _, r := range got {
				if r[0] >= writers || r[1] != next[r[0]] {
					err = fmt.Errorf("writer %d's record %d arrived when %d was due", r[0], r[1], next[r[0]%writers])
					break
				}
				next[r[0]]++
			}
		}
		done <- err
	}()
	var wg sync.WaitGroup
	var frames sync.Map
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for s := range perWriter {
				n := rng.IntN(8 << 10)
				if rng.IntN(40) == 0 {
					n = 2 << 20 // more than the send buffer takes at once
				}
				f := record(o, uint32(g), uint32(s), n)
				frames.Store(f, true)
				if err := w.enqueueOrWrite(f, rng.IntN(2) == 0); err != nil {
					t.Error(err)
					return
				}
				switch rng.IntN(4) {
				case 0:
					runtime.Gosched()
				case 1:
					time.Sleep(100 * time.Microsecond) // let the connection go idle
				}
			}
		}()
	}
	wg.Wait()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every owner", func() bool {
		ok := true
		frames.Range(func(k, _ any) bool {
			if o.count(k.(*outFrame)) != 1 {
				ok = false
			}
			return ok
		})
		return ok
	})
	s := m.Snapshot()
	if s.FramesOut != writers*perWriter {
		t.Fatalf("%d frames out, want %d", s.FramesOut, writers*perWriter)
	}
	t.Logf("%d frames, %d writes, %d direct", s.FramesOut, s.Writes, s.DirectWrites)
	if runtime.GOOS == "linux" && s.DirectWrites == 0 {
		t.Fatal("no frame was written directly: the test did not exercise what it is for")
	}
}

// slowReader reads in random small pieces and pauses now and then, so
// that the writer side meets full socket buffers.
type slowReader struct {
	r   io.Reader
	rng *rand.Rand
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.rng.IntN(200) == 0 {
		time.Sleep(time.Millisecond)
	}
	if n := 1 + s.rng.IntN(256<<10); len(p) > n {
		p = p[:n]
	}
	return s.r.Read(p)
}

// Through a Conn and a Server: a call made while no other waits, and its
// answer, are written directly; when requests pile up, the answers queue
// behind each other for the writer goroutine to batch, and so do the
// calls behind the first.
func TestDirectWritesOnlyWhenAlone(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("direct writes are wired up on Linux only")
	}
	const depth = 16
	var arrived atomic.Int32
	release := make(chan struct{})
	mux := NewServeMux()
	mux.HandleFunc(kindEcho, echo)
	const kindHeld = FirstUserKind + 98
	mux.HandleFunc(kindHeld, func(ctx context.Context, req *Request, w *ResponseWriter) {
		if arrived.Add(1) == depth {
			close(release)
		}
		<-release
		echo(ctx, req, w)
	})
	ts := startServer(t, mux, nil)
	cfg := clientConfig()
	cfg.Metrics = &Metrics{}
	c := dialTest(t, ts.addr, cfg)
	payload := make([]byte, 4096)

	const sequential = 40
	for range sequential {
		resp, err := c.Call(context.Background(), kindEcho, []byte("h"), payload)
		if err != nil {
			t.Fatal(err)
		}
		resp.Release()
	}
	srv, cli := ts.Metrics().DirectWrites, cfg.Metrics.Snapshot().DirectWrites
	// Not every one: an answer that comes while the writer goroutine
	// still holds the socket after sending the previous one (it was
	// descheduled between its writev and marking the socket free, which
	// the race detector makes likely) is queued behind it.
	if srv < sequential/4 || cli < sequential/4 {
		t.Fatalf("%d calls one at a time: %d answers and %d calls written directly, want most", sequential, srv, cli)
	}
	t.Logf("%d calls one at a time: %d answers and %d calls written directly", sequential, srv, cli)

	var wg sync.WaitGroup
	for range depth {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Call(context.Background(), kindHeld, []byte("h"), payload)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Release()
		}()
	}
	wg.Wait()
	// Only the last answer can find nothing else unanswered, and only the
	// first call nothing else pending.
	srvDeep := ts.Metrics().DirectWrites - srv
	cliDeep := cfg.Metrics.Snapshot().DirectWrites - cli
	if srvDeep > 1 || cliDeep > 1 {
		t.Fatalf("%d calls at once: %d answers and %d calls written directly, want at most 1 each", depth, srvDeep, cliDeep)
	}
}
