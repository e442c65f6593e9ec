package net

import (
	stdnet "net"
	"slices"
	"sync"
	"syscall"
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
	// after the frame's bytes were written (err nil) or dropped because
	// the connection failed: from the writer goroutine, or from the
	// goroutine that queued the frame when it wrote it directly (see
	// frameWriter). It must not block.
	frameWritten(f *outFrame, err error)
}

// frameWriter serializes a connection's writes.
//
// Direct writes: a frame queued while the socket's write side is idle
// (nothing queued, nothing being written) is written at once by the
// goroutine that queues it, with one non-blocking writev, and its owner is
// called from there. That saves the hand-off to the writer goroutine (a
// wake-up of another thread, when the queuer is an engine reactor) on an
// idle connection, where batching has nothing to batch. What the socket
// does not take at once (a full send buffer, an error) is handed to the
// writer goroutine, which sends the rest, or meets the error, as for any
// batch. Invariant: at most one goroutine writes to the socket at a time
// (mu.busy), and frames reach it in the order they were queued.
type frameWriter struct {
	conn    stdnet.Conn
	timeout time.Duration // per batch; 0: none
	metrics *Metrics
	onFail  func(error)     // called once from the writer goroutine when a write fails
	direct  *rawFrameWriter // nil: no direct writes (not a socket, or not Linux)

	mu struct {
		sync.Mutex
		queue []*outFrame
		err   error // set once the writer stops; enqueue fails with it
		// busy: a goroutine is writing to the socket (the writer with a
		// batch, or a queuer with a direct write); nobody else may.
		busy bool
		// partial holds directly written frames the socket did not take
		// whole, handed to the writer goroutine with busy still set; their
		// first partialOff bytes were written.
		partial    []*outFrame
		partialOff int
		// corked: a loop (ServerConfig.Loop) is in a pass and writes what
		// is queued at its end (uncork); frames queued meanwhile wait for
		// it rather than go direct or wake the writer.
		corked bool
	}
	wake chan struct{} // cap 1: "there may be work for the writer"
	done chan struct{} // closed when run returns

	// loopBatch is uncork's batch; used by the loop only.
	loopBatch []*outFrame

	// Used by the writer goroutine only.
	batch []*outFrame
	bufs  stdnet.Buffers
	iov   [][]byte
}

// buffersWriter is a connection that writes net.Buffers with writev
// itself (a rawSocket; net.Buffers.WriteTo does for the standard
// library's sockets only).
type buffersWriter interface {
	writeBuffers(bufs *stdnet.Buffers) (int64, error)
}

// writeBatchBytesMax bounds the bytes one writev takes, so the frames at
// the front of a long queue learn early that they were written.
const writeBatchBytesMax = 4 << 20

// writeBatchFramesMax bounds the frames in one batch.
const writeBatchFramesMax = 256

func newFrameWriter(conn stdnet.Conn, timeout time.Duration, m *Metrics, onFail func(error)) *frameWriter {
	w := &frameWriter{
		conn:    conn,
		timeout: timeout,
		metrics: m,
		onFail:  onFail,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	// Direct writes on sockets only, not on wrappers that expose one's
	// descriptor: a wrapper's Write may do more than write (count, check,
	// inject faults), and a direct write would go around it.
	sc, ok := plainSocket(conn)
	if rs, raw := conn.(*rawSocket); raw {
		sc, ok = rs, true
	}
	if ok {
		if rc, err := sc.SyscallConn(); err == nil {
			w.direct = newRawFrameWriter(rc)
		}
	}
	return w
}

// plainSocket returns c as a syscall.Conn when it is one of the standard
// library's sockets (TCP or Unix), not a wrapper whose Read and Write may
// do more than read and write.
func plainSocket(c stdnet.Conn) (syscall.Conn, bool) {
	switch c := c.(type) {
	case *stdnet.TCPConn:
		return c, true
	case *stdnet.UnixConn:
		return c, true
	}
	return nil, false
}

// enqueue queues f for writing, or writes it at once when the connection
// is idle (see frameWriter); either way its owner is called once f's
// buffers are no longer in use, possibly before enqueue returns, so the
// caller must not hold a lock the owner takes. It returns the writer's
// error, without queueing, once the writer has stopped; then f's owner is
// not called.
func (w *frameWriter) enqueue(f *outFrame) error { return w.enqueueOrWrite(f, false) }

// enqueueOrWrite is enqueue that writes f at once when now is set and the
// connection is idle (see frameWriter). Callers set now when nothing else
// is in progress on the connection, so that there is nothing to batch f
// with: a server's answer when no other request waits for one, a client's
// call when no other call waits. (At depth, writing every frame as it
// comes costs a system call each on the queuing thread and gives up the
// writer's batching: measured with every frame written at once, a 4 KiB
// randread at iodepth 32 lost 15-17% of its IOPS, on either side.)
func (w *frameWriter) enqueueOrWrite(f *outFrame, now bool) error {
	w.mu.Lock()
	if w.mu.err != nil {
		err := w.mu.err
		w.mu.Unlock()
		return err
	}
	if now && w.direct != nil && !w.mu.busy && !w.mu.corked && len(w.mu.queue) == 0 {
		w.mu.busy = true
		f.state = frameWriting
		w.mu.Unlock()
		w.writeDirect(f)
		return nil
	}
	f.state = frameQueued
	w.mu.queue = append(w.mu.queue, f)
	idle := !w.mu.busy && !w.mu.corked
	w.mu.Unlock()
	if idle {
		w.signal()
	}
	// When busy, whoever writes signals the writer when done; when
	// corked, the loop writes it at the end of its pass.
	return nil
}

func (w *frameWriter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// writeDirect writes f, which the caller made busy, without waiting for
// the socket; what is left goes to the writer goroutine.
func (w *frameWriter) writeDirect(f *outFrame) {
	one := [1]*outFrame{f}
	n, total := w.direct.writeFrames(one[:])
	w.directDone(one[:], n, total)
}

// directDone ends a direct write of frames (the caller made the writer
// busy), of which n of total bytes went out: when all did, it frees the
// socket and reports the frames to their owners; otherwise it hands the
// frames, and how far they got, to the writer goroutine, which sends the
// rest or meets the socket's error.
func (w *frameWriter) directDone(frames []*outFrame, n, total int) {
	if n == total {
		w.metrics.framesOut.Add(uint64(len(frames)))
		w.metrics.writes.Add(1)
		w.metrics.directWrites.Add(uint64(len(frames)))
		w.metrics.bytesOut.Add(uint64(total))
		w.mu.Lock()
		for _, f := range frames {
			f.state = frameDone
		}
		w.mu.busy = false
		ready := w.ready()
		w.mu.Unlock()
		if ready {
			w.signal()
		}
		for _, f := range frames {
			f.owner.frameWritten(f, nil)
		}
		return
	}
	if n > 0 {
		w.metrics.writes.Add(1)
		w.metrics.bytesOut.Add(uint64(n))
	}
	w.mu.Lock()
	w.mu.partial, w.mu.partialOff = append(w.mu.partial[:0], frames...), n
	w.mu.Unlock()
	w.signal()
}

// cork holds the frames queued from now on until uncork, which writes
// them together: a loop corks at the start of its pass, in which it
// answers many requests, and uncorks at its end.
func (w *frameWriter) cork() {
	w.mu.Lock()
	w.mu.corked = true
	w.mu.Unlock()
}

// uncork ends a cork. When nobody is writing, it writes what is queued
// itself, with one non-blocking writev, and hands what the socket does
// not take to the writer goroutine, as a direct write does.
func (w *frameWriter) uncork() {
	w.mu.Lock()
	w.mu.corked = false
	if w.mu.busy || len(w.mu.queue) == 0 || w.mu.err != nil || w.direct == nil {
		ready := w.ready()
		w.mu.Unlock()
		if ready {
			w.signal()
		}
		return
	}
	batch := w.takeBatchLocked(w.loopBatch[:0])
	w.mu.busy = len(batch) > 0
	w.mu.Unlock()
	w.loopBatch = batch
	if len(batch) == 0 {
		return
	}
	defer clear(w.loopBatch)
	n, total := w.direct.writeFrames(batch)
	w.directDone(batch, n, total)
}

// takeBatchLocked moves frames from the front of the queue into dst (up
// to the batch limits), marking them as being written, and returns dst.
// Called with mu held.
func (w *frameWriter) takeBatchLocked(dst []*outFrame) []*outFrame {
	bytes, k := 0, 0
	for _, f := range w.mu.queue {
		if len(dst) == writeBatchFramesMax || (len(dst) > 0 && bytes >= writeBatchBytesMax) {
			break
		}
		k++
		if f.state != frameQueued {
			continue // cancelled
		}
		f.state = frameWriting
		dst = append(dst, f)
		bytes += len(f.hdr)
		for _, p := range f.payload {
			bytes += len(p)
		}
	}
	n := copy(w.mu.queue, w.mu.queue[k:])
	clear(w.mu.queue[n:])
	w.mu.queue = w.mu.queue[:n]
	return dst
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
	w.signal()
}

// ready reports that the writer goroutine has work: frames handed over by
// a direct write, or, with nobody writing, frames queued (and no loop
// about to write them) or an error to drop them with. Called with mu held.
func (w *frameWriter) ready() bool {
	return len(w.mu.partial) > 0 || (!w.mu.busy && (w.mu.err != nil || (!w.mu.corked && len(w.mu.queue) > 0)))
}

// run is the writer goroutine.
func (w *frameWriter) run() {
	defer close(w.done)
	for {
		w.mu.Lock()
		for !w.ready() {
			w.mu.Unlock()
			<-w.wake
			w.mu.Lock()
		}
		if len(w.mu.partial) > 0 && w.mu.err == nil {
			// Finish a direct write (busy is still set): a batch whose
			// first partialOff bytes were sent.
			off := w.mu.partialOff
			w.batch = append(w.batch[:0], w.mu.partial...)
			clear(w.mu.partial)
			w.mu.partial = w.mu.partial[:0]
			w.mu.Unlock()
			w.send(off)
			continue
		}
		if err := w.mu.err; err != nil {
			// Drop whatever is queued (and a handed-over frame).
			w.batch = w.batch[:0]
			for _, f := range w.mu.partial {
				f.state = frameDone
				w.batch = append(w.batch, f)
			}
			clear(w.mu.partial)
			w.mu.partial = w.mu.partial[:0]
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
		w.batch = w.takeBatchLocked(w.batch[:0])
		w.mu.busy = len(w.batch) > 0
		w.mu.Unlock()

		if len(w.batch) == 0 {
			continue
		}
		w.send(0)
	}
}

// send writes the batch (busy set; its first skip bytes already sent by a
// direct write), reports its frames to their owners and frees the socket.
func (w *frameWriter) send(skip int) {
	n, err := w.write(skip)
	if err == nil {
		w.metrics.framesOut.Add(uint64(len(w.batch)))
		w.metrics.writes.Add(1)
		w.metrics.bytesOut.Add(uint64(n))
	}
	w.mu.Lock()
	for _, f := range w.batch {
		f.state = frameDone
	}
	if err != nil && w.mu.err == nil {
		w.mu.err = err
	}
	w.mu.busy = false
	w.mu.Unlock()
	w.finish(err)
	if err != nil {
		w.onFail(err)
	}
}

// write sends the batch's bytes from skip on with one vectored write
// (writev for TCP), waiting for the socket, under the write timeout. It
// returns how many bytes that is.
func (w *frameWriter) write(skip int) (int, error) {
	w.iov = w.iov[:0]
	n := 0
	add := func(b []byte) {
		if skip >= len(b) { // sent already, or empty
			skip -= len(b)
			return
		}
		w.iov = append(w.iov, b[skip:])
		n += len(b) - skip
		skip = 0
	}
	for _, f := range w.batch {
		add(f.hdr)
		for _, p := range f.payload {
			add(p)
		}
	}
	defer clear(w.iov) // do not keep payloads reachable after their release
	if w.timeout > 0 {
		if err := w.conn.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
			return n, err
		}
	}
	// NB: WriteTo consumes w.bufs (it advances the slice as it writes), so
	// it is rebuilt from w.iov every time.
	w.bufs = w.iov
	var err error
	if bw, ok := w.conn.(buffersWriter); ok {
		_, err = bw.writeBuffers(&w.bufs)
	} else {
		_, err = w.bufs.WriteTo(w.conn)
	}
	w.bufs = nil
	return n, err
}

// finish reports the batch's frames to their owners.
func (w *frameWriter) finish(err error) {
	for i, f := range w.batch {
		f.owner.frameWritten(f, err)
		w.batch[i] = nil
	}
	w.batch = w.batch[:0]
}
