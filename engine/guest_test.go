package engine

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ncw/directio"
	"golang.org/x/sys/unix"

	"github.com/weftfs/weft/internal/vfs"
)

// pipeGuest takes one byte per request from a pipe and writes, then reads
// back, a 4 KiB block of its own object, submitting from Run on the
// reactor and finishing in Notify on the reactor. Nothing but the pipe's
// descriptor and the device's completions wakes the reactor for it.
type pipeGuest struct {
	e       *Engine
	rfd     int
	req     Request
	block   []byte
	back    []byte
	busy    bool
	done    chan error // one per request: nil, or what went wrong
	stopped chan error

	runs, flushes, waits atomic.Int64
	quit                 atomic.Bool
}

func (g *pipeGuest) Run(readable bool) (worked, done bool) {
	g.runs.Add(1)
	if g.quit.Load() {
		return true, true
	}
	if g.busy || !readable {
		// Trusts readable: a reactor that never reports the pipe
		// readable leaves the request unanswered.
		return false, false
	}
	var b [1]byte
	n, err := unix.Read(g.rfd, b[:])
	if n != 1 || err != nil {
		return false, false // EAGAIN
	}
	g.busy = true
	obj := ObjectID{Lo: 77 + uint64(g.rfd)}
	copy(g.block, pattern(uint64(b[0]), len(g.block)))
	g.req = Request{Op: OpWrite, Object: obj, PG: 1, Buf: g.block}
	g.req.Notify = func(r *Request) {
		if r.Err != nil {
			g.busy = false
			g.done <- r.Err
			return
		}
		if r.Op == OpWrite {
			*r = Request{Op: OpRead, Object: obj, Buf: g.back, Notify: r.Notify}
			g.e.Submit(r)
			return
		}
		g.busy = false
		if !bytes.Equal(g.back, g.block) {
			g.done <- errors.New("read back differs")
			return
		}
		g.done <- nil
	}
	g.e.Submit(&g.req)
	return true, false
}

func (g *pipeGuest) Flush() { g.flushes.Add(1) }

func (g *pipeGuest) Wait() (int, bool) {
	g.waits.Add(1)
	if g.quit.Load() {
		return -1, true
	}
	return g.rfd, false
}

func (g *pipeGuest) Stopped(err error) { g.stopped <- err }

// newPipeGuest returns a pipeGuest on e reading a new pipe, and the
// pipe's write end; both ends close when the test ends.
func newPipeGuest(t *testing.T, e *Engine) (*pipeGuest, int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	return &pipeGuest{e: e, rfd: p[0], block: directio.AlignedBlock(4096), back: directio.AlignedBlock(4096),
		done: make(chan error, 1), stopped: make(chan error, 1)}, p[1]
}

// await waits for the answer to the guest's request what.
func (g *pipeGuest) await(t *testing.T, what string) {
	t.Helper()
	select {
	case err := <-g.done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no answer (runs %d, waits %d)", what, g.runs.Load(), g.waits.Load())
	}
}

// ringDevice formats a 64 MiB device on the OS file system (io_uring).
func ringDevice(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dev")
	if _, err := Format(vfs.Default, FormatRequest{Path: path, Size: 64 << 20, Options: FormatOptions{SegmentSize: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHostGuest(t *testing.T) {
	path := ringDevice(t)
	for _, mode := range []PollMode{Hybrid, Interrupt, Poll} {
		t.Run(mode.String(), func(t *testing.T) {
			e, err := Open(Options{Path: path, Mode: mode, Logger: quietLogger})
			if err != nil {
				t.Fatal(err)
			}
			g, wfd := newPipeGuest(t, e)
			wake, err := e.Host(g)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 20 {
				if mode != Poll {
					// Let the reactor fall asleep on the pipe first.
					time.Sleep(2 * time.Millisecond)
				}
				unix.Write(wfd, []byte{byte(i)})
				g.await(t, fmt.Sprintf("request %d", i))
			}
			if g.flushes.Load() == 0 || (mode != Poll && g.waits.Load() == 0) {
				t.Fatalf("flushes %d, waits %d", g.flushes.Load(), g.waits.Load())
			}
			// Quitting, from outside the reactor: the wake gets it seen.
			g.quit.Store(true)
			wake()
			select {
			case err := <-g.stopped:
				if err != nil {
					t.Fatalf("Stopped(%v) after Run reported done", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("guest not stopped after quitting")
			}

			// A guest still attached when the engine closes is stopped
			// with ErrClosed.
			g2, _ := newPipeGuest(t, e)
			hostThenClose(t, e, g2, g2.stopped)
			if _, err := e.Host(g2); !errors.Is(err, ErrClosed) {
				t.Fatalf("Host on a closed engine: %v", err)
			}
		})
	}
}

// busyGuest always has work: the engine must still close.
type busyGuest struct{ stopped chan error }

func (g busyGuest) Run(bool) (worked, done bool) { return true, false }
func (g busyGuest) Flush()                       {}
func (g busyGuest) Wait() (int, bool)            { return -1, true }
func (g busyGuest) Stopped(err error)            { g.stopped <- err }

func TestCloseWithBusyGuest(t *testing.T) {
	fsys, path := memDevice(t, 64<<20, 1<<20)
	e := openMem(t, fsys, path, 2)
	g := busyGuest{stopped: make(chan error, 1)}
	hostThenClose(t, e, g, g.stopped)
}

// hostThenClose hosts g on e and closes e: g, told on stopped, must be
// stopped with ErrClosed.
func hostThenClose(t *testing.T, e *Engine, g Guest, stopped <-chan error) {
	t.Helper()
	if _, err := e.Host(g); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-stopped; !errors.Is(err, ErrClosed) {
		t.Fatalf("guest stopped with %v at close, want ErrClosed", err)
	}
}

// Several guests on one reactor: it polls their descriptors once a pass
// and runs each with what the poll saw.
func TestHostGuests(t *testing.T) {
	e, err := Open(Options{Path: ringDevice(t), Shards: 1, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	guests := make([]*pipeGuest, n)
	writeFds := make([]int, n)
	for i := range guests {
		guests[i], writeFds[i] = newPipeGuest(t, e)
		if _, err := e.Host(guests[i]); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 10 {
		// Requests to several guests at once, and to one at a time.
		for i := range guests {
			if round%2 == 0 || i == round%n {
				unix.Write(writeFds[i], []byte{byte(round)})
			}
		}
		for i, g := range guests {
			if round%2 != 0 && i != round%n {
				continue
			}
			g.await(t, fmt.Sprintf("round %d guest %d", round, i))
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	for i, g := range guests {
		if err := <-g.stopped; !errors.Is(err, ErrClosed) {
			t.Fatalf("guest %d stopped with %v", i, err)
		}
	}
}
