package net

import (
	stdnet "net"
	"slices"
	"sync"
	"time"
)

// Why a writer goroutine per connection, rather than a mutex around the
// socket: Conn.Go is asynchronous and must not block on a slow socket, and
// a single goroutine that owns the write side can take every frame queued
// while it was busy and send them all with one writev (group commit for the
// network: under load, many small requests cost one system call). It also
// gives cancellation a simple rule (see cancel). The price is one goroutine
// hand-off per frame when the connection is idle.

// frameState is where a queued frame is in its life. Guarded by
// frameWriter.mu.
type frameState uint8

const (
	frameNew       frameState = iota // not queued yet
	frameQueued                      // in the queue; the writer has not looked at it
	frameWriting                     // taken by the writer; its buffers are in use
	frameDone                        // written or dropped; frameWritten called or about to be
	frameCancelled                   // removed from the queue before the writer took it
)

// outFrame is one frame to send: hdr holds the fixed header and the body,
// payload the payload parts, which are written as they are, not copied.
type outFrame struct {
	hdr     []byte
	payload [][]byte
	owner   frameOwner
	state   frameState
}

// frameOwner learns when the writer is done with a frame's buffers.
type frameOwner interface {
	// frameWritten is called exactly once for every frame the writer took,
	// from the writer goroutine, after the frame's bytes were written (err
	// nil) or dropped because the connection failed. It must not block.
	frameWritten(f *outFrame, err error)
}

// frameWriter serializes a connection's writes.
type frameWriter struct {
	conn    stdnet.Conn
	timeout time.Duration // per batch; 0: none
	metrics *Metrics
	onFail  func(error) // called once from the writer goroutine when a write fails

	mu struct {
		sync.Mutex
		queue []*outFrame
		err   error // set once the writer stops; enqueue fails with it
	}
	wake chan struct{} // cap 1: "the queue is not empty or err is set"
	done chan struct{} // closed when run returns

	// Used by the writer goroutine only.
	batch []*outFrame
	bufs  stdnet.Buffers
	iov   [][]byte
}

// writeBatchBytesMax bounds the bytes one writev takes, so the frames at
// the front of a long queue learn early that they were written.
const writeBatchBytesMax = 4 << 20

// writeBatchFramesMax bounds the frames in one batch.
const writeBatchFramesMax = 256

func newFrameWriter(conn stdnet.Conn, timeout time.Duration, m *Metrics, onFail func(error)) *frameWriter {
	return &frameWriter{
		conn:    conn,
		timeout: timeout,
		metrics: m,
		onFail:  onFail,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
}

// enqueue queues f for writing. It returns the writer's error, without
// queueing, once the writer has stopped; then f's owner is not called.
func (w *frameWriter) enqueue(f *outFrame) error {
	w.mu.Lock()
	if w.mu.err != nil {
		err := w.mu.err
		w.mu.Unlock()
		return err
	}
	f.state = frameQueued
	w.mu.queue = append(w.mu.queue, f)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return nil
}

// cancel takes back a queued frame. It reports true when f was still
// queued: it will never be written and its owner will not be called. When
// it reports false the writer has taken f (or never had it) and calls the
// owner as usual if it took it.
func (w *frameWriter) cancel(f *outFrame) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if f.state == frameQueued {
		f.state = frameCancelled
		// Out of the queue too: its owner reuses the frame (and resets
		// it) once it has its call back, and the writer must not look at
		// it after that.
		if i := slices.Index(w.mu.queue, f); i >= 0 {
			w.mu.queue = slices.Delete(w.mu.queue, i, i+1)
		}
		return true
	}
	return false
}

// stop makes the writer finish: frames still queued are dropped (their
// owners called with err), and enqueue fails from now on with err. It does
// not interrupt a write in progress; close the socket for that.
func (w *frameWriter) stop(err error) {
	w.mu.Lock()
	if w.mu.err == nil {
		w.mu.err = err
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run is the writer goroutine.
func (w *frameWriter) run() {
	defer close(w.done)
	for {
		w.mu.Lock()
		for len(w.mu.queue) == 0 && w.mu.err == nil {
			w.mu.Unlock()
			<-w.wake
			w.mu.Lock()
		}
		if err := w.mu.err; err != nil {
			// Drop whatever is queued.
			w.batch = w.batch[:0]
			for _, f := range w.mu.queue {
				if f.state == frameQueued {
					f.state = frameDone
					w.batch = append(w.batch, f)
				}
			}
			clear(w.mu.queue)
			w.mu.queue = w.mu.queue[:0]
			w.mu.Unlock()
			w.finish(err)
			return
		}
		// Take a batch from the front of the queue.
		w.batch = w.batch[:0]
		bytes, k := 0, 0
		for _, f := range w.mu.queue {
			if len(w.batch) == writeBatchFramesMax || (len(w.batch) > 0 && bytes >= writeBatchBytesMax) {
				break
			}
			k++
			if f.state != frameQueued {
				continue // cancelled
			}
			f.state = frameWriting
			w.batch = append(w.batch, f)
			bytes += len(f.hdr)
			for _, p := range f.payload {
				bytes += len(p)
			}
		}
		n := copy(w.mu.queue, w.mu.queue[k:])
		clear(w.mu.queue[n:])
		w.mu.queue = w.mu.queue[:n]
		w.mu.Unlock()

		if len(w.batch) == 0 {
			continue
		}
		err := w.write()
		if err == nil {
			w.metrics.framesOut.Add(uint64(len(w.batch)))
			w.metrics.writes.Add(1)
			w.metrics.bytesOut.Add(uint64(bytes))
		}
		w.mu.Lock()
		for _, f := range w.batch {
			f.state = frameDone
		}
		if err != nil && w.mu.err == nil {
			w.mu.err = err
		}
		w.mu.Unlock()
		w.finish(err)
		if err != nil {
			w.onFail(err)
		}
	}
}

// write sends the batch with one vectored write (writev for TCP).
func (w *frameWriter) write() error {
	w.iov = w.iov[:0]
	for _, f := range w.batch {
		w.iov = append(w.iov, f.hdr)
		for _, p := range f.payload {
			if len(p) > 0 {
				w.iov = append(w.iov, p)
			}
		}
	}
	if w.timeout > 0 {
		if err := w.conn.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
			return err
		}
	}
	// NB: WriteTo consumes w.bufs (it advances the slice as it writes), so
	// it is rebuilt from w.iov every time.
	w.bufs = w.iov
	_, err := w.bufs.WriteTo(w.conn)
	w.bufs = nil
	clear(w.iov) // do not keep payloads reachable after their release
	return err
}

// finish reports the batch's frames to their owners.
func (w *frameWriter) finish(err error) {
	for i, f := range w.batch {
		f.owner.frameWritten(f, err)
		w.batch[i] = nil
	}
	w.batch = w.batch[:0]
}
