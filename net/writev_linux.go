package net

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// directWriteIovMax bounds the parts of a frame written directly (its
// header and payload parts); a frame with more goes through the writer
// goroutine.
const directWriteIovMax = 8

// rawFrameWriter writes a frame with one non-blocking writev(2), on the
// goroutine that queues it (see frameWriter.enqueue). It never waits for
// the socket: what does not fit is left to the writer goroutine.
type rawFrameWriter struct {
	rc      syscall.RawConn
	writeFn func(fd uintptr) bool // w.write bound once, so a write allocates nothing
	iovecs  [directWriteIovMax]unix.Iovec
	iovp    *unix.Iovec // what write writes: iovecs, or batchIov
	// batchIov is writeFrames' (a loop's batch), allocated on first use.
	batchIov []unix.Iovec
	niov     int
	n        int
	errno    syscall.Errno
}

func newRawFrameWriter(rc syscall.RawConn) *rawFrameWriter {
	w := &rawFrameWriter{rc: rc}
	w.writeFn = w.write
	return w
}

// write always reports done: on EAGAIN the caller hands the frame over
// rather than wait for the socket here.
func (w *rawFrameWriter) write(fd uintptr) bool {
	for {
		n, _, errno := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(w.iovp)), uintptr(w.niov))
		if errno == unix.EINTR {
			continue
		}
		w.n, w.errno = int(n), errno
		return true
	}
}

// writeFrame writes what it can of f's bytes without blocking and returns
// how many it wrote. It reports ok false when f has too many parts to be
// written this way (nothing was written then). Errors, EAGAIN among them,
// are not returned: the writer goroutine, which takes over whatever is
// left, meets them again and handles them as it always does.
func (w *rawFrameWriter) writeFrame(f *outFrame) (n int, ok bool) {
	w.niov = 0
	add := func(b []byte) bool {
		if len(b) == 0 {
			return true
		}
		if w.niov == len(w.iovecs) {
			return false
		}
		w.iovecs[w.niov].Base = &b[0]
		w.iovecs[w.niov].SetLen(len(b))
		w.niov++
		return true
	}
	ok = add(f.hdr)
	for _, p := range f.payload {
		ok = ok && add(p)
	}
	if !ok {
		w.iovecs = [directWriteIovMax]unix.Iovec{}
		return 0, false
	}
	w.n, w.errno, w.iovp = 0, 0, &w.iovecs[0]
	err := w.rc.Write(w.writeFn)
	// The buffers stay referenced by f; drop the raw pointers.
	w.iovecs = [directWriteIovMax]unix.Iovec{}
	w.iovp = nil
	if err != nil || w.errno != 0 {
		return 0, true
	}
	return w.n, true
}

// batchIovMax bounds the parts writeFrames hands one writev; a batch
// with more is written in part, the rest left to the writer goroutine.
const batchIovMax = 512

// writeFrames writes what it can of the frames' bytes, in order, without
// blocking, and returns how many it wrote and how many there are. Errors,
// EAGAIN among them, are left to the writer goroutine, as in writeFrame.
func (w *rawFrameWriter) writeFrames(frames []*outFrame) (n, total int) {
	if w.batchIov == nil {
		w.batchIov = make([]unix.Iovec, batchIovMax)
	}
	w.niov = 0
	add := func(b []byte) {
		total += len(b)
		if len(b) == 0 || w.niov == len(w.batchIov) {
			return
		}
		w.batchIov[w.niov].Base = &b[0]
		w.batchIov[w.niov].SetLen(len(b))
		w.niov++
	}
	for _, f := range frames {
		add(f.hdr)
		for _, p := range f.payload {
			add(p)
		}
	}
	w.n, w.errno, w.iovp = 0, 0, &w.batchIov[0]
	err := w.rc.Write(w.writeFn)
	clear(w.batchIov[:w.niov])
	w.iovp = nil
	if err != nil || w.errno != 0 {
		return 0, total
	}
	return w.n, total
}
