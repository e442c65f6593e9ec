package net

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	stdnet "net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftfs/weft/internal/testutil"
)

// testLoop is a Loop with a goroutine per guest, run as a reactor runs
// its guests: Run, Flush, and, after a pass without work, Wait and a
// poll(2) on the guest's descriptor and the loop's eventfd.
type testLoop struct {
	hosted atomic.Int64
}

func newTestLoop() *testLoop { return &testLoop{} }

func (tl *testLoop) Host(g LoopGuest) (func(), error) {
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	tl.hosted.Add(1)
	var sleeping, stopped atomic.Bool
	wake := func() {
		// The eventfd outlives the guest: a wake may come after Stopped.
		if sleeping.Swap(false) && !stopped.Load() {
			one := [8]byte{1}
			unix.Write(efd, one[:])
		}
	}
	go func() {
		for {
			worked, done := g.Run(true)
			if done {
				stopped.Store(true)
				g.Stopped(nil)
				return
			}
			g.Flush()
			if worked {
				continue
			}
			sleeping.Store(true)
			fd, now := g.Wait()
			if now {
				sleeping.Store(false)
				continue
			}
			fds := []unix.PollFd{{Fd: int32(efd), Events: unix.POLLIN}}
			if fd >= 0 {
				fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
			}
			unix.Poll(fds, 100)
			sleeping.Store(false)
			var b [8]byte
			unix.Read(efd, b[:])
		}
	}()
	return wake, nil
}

func TestLoopServesRequests(t *testing.T) {
	testutil.CheckLeaks(t)
	loop := newTestLoop()
	ts := startServer(t, echoMux(), func(c *ServerConfig) { c.Loop = loop; c.MaxPayloadBytes = 8 << 20 })
	c := dialTest(t, ts.addr, clientConfig())
	ctx := context.Background()
	// Sizes that fit a pass, that span passes (a payload read over many
	// reads), and none; many in flight at once.
	sizes := []int{0, 1, 100, 4096, 65536 + 17, 1 << 20, 4 << 20}
	done := make(chan *Call, 64)
	want := make(map[*Call][]byte)
	for i := range 64 {
		p := bytes.Repeat([]byte{byte(i)}, sizes[i%len(sizes)])
		hdr := fmt.Appendf(nil, "h%d", i)
		want[c.Go(ctx, kindEcho, hdr, p, done)] = append(hdr, p...)
	}
	for range 64 {
		call := <-done
		if call.Error != nil {
			t.Fatal(call.Error)
		}
		got := bytes.Clone(call.Response.Header)
		if p := call.Response.Payload; p != nil {
			got = append(got, p.Bytes()...)
		}
		if !bytes.Equal(got, want[call]) {
			t.Fatalf("echo of %d bytes came back as %d different bytes", len(want[call]), len(got))
		}
		call.Response.Release()
	}
	m := ts.Metrics()
	if m.LoopConns != 1 || loop.hosted.Load() != 1 {
		t.Fatalf("loop connections %d, hosted %d: want 1", m.LoopConns, loop.hosted.Load())
	}
	if m.PayloadCopied != 0 {
		t.Fatalf("server copied %d payload bytes", m.PayloadCopied)
	}
	if m.DirectWrites == 0 {
		t.Fatal("no answer was written by the loop")
	}
}

// A connection at its MaxConcurrent leaves the socket unread until an
// answer from another goroutine frees a slot, which wakes the loop.
func TestLoopBackPressure(t *testing.T) {
	testutil.CheckLeaks(t)
	q := &queueStarter{}
	ts := startServer(t, q, func(c *ServerConfig) { c.Loop = newTestLoop(); c.MaxConcurrent = 2 })
	c := dialTest(t, ts.addr, clientConfig())
	const n = 9
	done := make(chan *Call, n)
	for i := range n {
		c.Go(context.Background(), kindEcho, fmt.Appendf(nil, "q%d", i), nil, done)
	}
	answered := 0
	for answered < n {
		waitFor(t, "requests taken", func() bool { return q.len() == min(2, n-answered) })
		q.answer()
		for range min(2, n-answered) {
			call := <-done
			if call.Error != nil {
				t.Fatal(call.Error)
			}
			call.Response.Release()
			answered++
		}
	}
}

// Close with a request taken and a client idle: the loop, asleep on the
// socket, learns of it from the poke. (Shutdown with a loop runs in
// TestStarterShutdown under WEFT_TEST_NET_LOOP.)
func TestLoopClose(t *testing.T) {
	testutil.CheckLeaks(t)
	q := &queueStarter{}
	ts2 := startServer(t, q, func(c *ServerConfig) { c.Loop = newTestLoop() })
	c2 := dialTest(t, ts2.addr, clientConfig())
	call := c2.Go(context.Background(), kindEcho, []byte("q"), nil, nil)
	waitFor(t, "request taken", func() bool { return q.len() == 1 })
	closed := make(chan struct{})
	go func() { ts2.Close(); close(closed) }()
	q.answer() // teardown waits for the taken request's answer
	<-closed
	<-call.Done
	if call.Response != nil {
		call.Response.Release()
	}
}

// A client that writes its frames in random pieces, with pauses, makes
// the loop stop and resume at every point of a frame: header, body and
// payload alike. Every request is answered, in full.
func TestLoopFragmentedFrames(t *testing.T) {
	testutil.CheckLeaks(t)
	ts := startServer(t, echoMux(), func(c *ServerConfig) { c.Loop = newTestLoop(); c.MaxConcurrent = 4 })
	nc, err := stdnet.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	rawHandshake(t, nc)

	rng := rand.New(rand.NewPCG(1, 2))
	const n = 60
	var stream []byte
	want := make(map[uint64][]byte, n)
	for i := range n {
		id := uint64(i + 1)
		body := fmt.Appendf(nil, "request %d", id)
		var payload []byte
		if i%3 != 0 {
			payload = make([]byte, rng.IntN(20000)+1)
			for j := range payload {
				payload[j] = byte(rng.Uint32())
			}
		}
		stream = append(stream, encodeFrame(frameHeader{kind: kindEcho, id: id, flags: flagPayloadCRC}, body, payload)...)
		want[id] = append(body, payload...)
	}
	sent := make(chan error, 1)
	go func() {
		for off := 0; off < len(stream); {
			k := min(len(stream)-off, 1+rng.IntN(700))
			if _, err := nc.Write(stream[off : off+k]); err != nil {
				sent <- err
				return
			}
			off += k
			if rng.IntN(4) == 0 {
				time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
			}
		}
		sent <- nil
	}()
	fr := newFrameReader(nc, 1<<20, true, nil)
	for range n {
		h, err := fr.readHeader()
		if err != nil {
			t.Fatal(err)
		}
		body := make([]byte, h.bodyLen)
		payload := make([]byte, h.payloadLen)
		if err := fr.readRest(&h, body, payload); err != nil {
			t.Fatal(err)
		}
		if h.flags&flagError != 0 {
			t.Fatalf("request %d answered with an error: %q", h.id, body)
		}
		if got := append(body, payload...); !bytes.Equal(got, want[h.id]) {
			t.Fatalf("request %d: echo of %d bytes differs (%d bytes back)", h.id, len(want[h.id]), len(got))
		}
		delete(want, h.id)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if len(want) != 0 {
		t.Fatalf("%d requests unanswered", len(want))
	}
	if m := ts.Metrics(); m.LoopConns != 1 || m.PayloadCopied != 0 {
		t.Fatalf("loop connections %d, payload bytes copied %d", m.LoopConns, m.PayloadCopied)
	}
}

// refusingLoop takes no connection.
type refusingLoop struct{}

func (refusingLoop) Host(LoopGuest) (func(), error) { return nil, errors.New("no room") }

func openFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("counting descriptors: %v", err)
	}
	return len(ents)
}

// A connection the loop refuses is served on goroutines, with what the
// server read ahead during the handshake, and its socket is closed in
// the end like any other.
func TestLoopRefusedFallsBack(t *testing.T) {
	testutil.CheckLeaks(t)
	before := openFds(t)
	logger, logs := newLogger()
	ts := startServer(t, echoMux(), func(c *ServerConfig) { c.Loop = refusingLoop{}; c.Logger = logger })
	for i := range 3 {
		c := dialTest(t, ts.addr, clientConfig())
		// Several calls at once, so that some may arrive with the
		// handshake's last frame and be read ahead.
		done := make(chan *Call, 8)
		for j := range 8 {
			c.Go(context.Background(), kindEcho, fmt.Appendf(nil, "c%d r%d", i, j), []byte("payload"), done)
		}
		for range 8 {
			call := <-done
			if call.Error != nil {
				t.Fatal(call.Error)
			}
			call.Response.Release()
		}
		c.Close()
	}
	mustContain(t, "log", logs.String(), "the loop refused the connection")
	if m := ts.Metrics(); m.LoopConns != 0 {
		t.Fatalf("loop connections %d, want 0", m.LoopConns)
	}
	ts.stop()
	waitFor(t, "descriptors closed", func() bool { return openFds(t) <= before+1 })
}
