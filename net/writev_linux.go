package net

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Bounds of the iovec array of a direct write: a single frame (header and
// payload parts) fits the inline part, a loop's batch grows it up to
// batchIovMax; a batch with more parts is written in part, the rest left
// to the writer goroutine.
const (
	directIovInline = 8
	batchIovMax     = 512
)

// rawFrameWriter writes frames with one non-blocking writev(2), on the
// goroutine that queues them (see frameWriter.enqueue) or on the loop that
// serves the connection (frameWriter.uncork). It never waits for the
// socket: what does not fit is left to the writer goroutine.
type rawFrameWriter struct {
	rc      syscall.RawConn
	writeFn func(fd uintptr) bool // w.write bound once, so a write allocates nothing
	inline  [directIovInline]unix.Iovec
	iov     []unix.Iovec // inline, or an array grown for a large batch
	n       int
	errno   syscall.Errno
}

func newRawFrameWriter(rc syscall.RawConn) *rawFrameWriter {
	w := &rawFrameWriter{rc: rc}
	w.writeFn = w.write
	w.iov = w.inline[:0]
	return w
}

// write always reports done: on EAGAIN the caller hands the frames over
// rather than wait for the socket here.
func (w *rawFrameWriter) write(fd uintptr) bool {
	for {
		n, _, errno := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iov[0])), uintptr(len(w.iov)))
		if errno == unix.EINTR {
			continue
		}
		w.n, w.errno = int(n), errno
		return true
	}
}

// writeFrames writes what it can of the frames' bytes, in order, without
// blocking, and returns how many it wrote and how many there are. Errors,
// EAGAIN among them, are not returned: the writer goroutine, which takes
// over whatever is left, meets them again and handles them as it always
// does.
func (w *rawFrameWriter) writeFrames(frames []*outFrame) (n, total int) {
	iov := w.iov[:0]
	add := func(b []byte) {
		total += len(b)
		if len(b) == 0 || len(iov) == batchIovMax {
			return
		}
		iov = append(iov, unix.Iovec{Base: &b[0]})
		iov[len(iov)-1].SetLen(len(b))
	}
	for _, f := range frames {
		add(f.hdr)
		for _, p := range f.payload {
			add(p)
		}
	}
	if len(iov) == 0 {
		return 0, total
	}
	w.iov, w.n, w.errno = iov, 0, 0
	err := w.rc.Write(w.writeFn)
	// The buffers stay referenced by the frames; drop the raw pointers.
	clear(iov)
	w.iov = iov[:0]
	if err != nil || w.errno != 0 {
		return 0, total
	}
	return w.n, total
}
