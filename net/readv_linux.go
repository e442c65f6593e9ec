package net

import (
	"io"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawVectorReader reads with readv(2) through the runtime's poller
// (syscall.RawConn.Read waits for readability and honours deadlines and
// Close), so body, payload and the next header arrive with one system call.
type rawVectorReader struct {
	rc     syscall.RawConn
	readFn func(fd uintptr) bool // r.read bound once, so each readv allocates nothing
	peekFn func(fd uintptr) bool // r.peekOnce, likewise
	peekTo []byte
	iovecs [4]unix.Iovec
	niov   int
	n      int
	errno  syscall.Errno
}

func newRawVectorReader(rc syscall.RawConn) vectorReader {
	r := &rawVectorReader{rc: rc}
	r.readFn = r.read
	r.peekFn = r.peekOnce
	return r
}

func (r *rawVectorReader) peekOnce(fd uintptr) bool {
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&r.peekTo[0])), uintptr(len(r.peekTo)), unix.MSG_PEEK, 0, 0)
	r.n, r.errno = int(n), errno
	return errno != unix.EAGAIN
}

func (r *rawVectorReader) peek(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	r.peekTo = b
	defer func() { r.peekTo = nil }()
	for {
		if err := r.rc.Read(r.peekFn); err != nil {
			return 0, err
		}
		switch r.errno {
		case 0:
			return r.n, nil
		case unix.EINTR:
			continue
		case unix.ENOTSOCK:
			return 0, errNoPeek
		default:
			return 0, r.errno
		}
	}
}

func (r *rawVectorReader) read(fd uintptr) bool {
	n, _, errno := unix.Syscall(unix.SYS_READV, fd, uintptr(unsafe.Pointer(&r.iovecs[0])), uintptr(r.niov))
	r.n, r.errno = int(n), errno
	return errno != unix.EAGAIN
}

func (r *rawVectorReader) readv(bufs [][]byte, min int) (int, error) {
	if len(bufs) > len(r.iovecs) {
		panic("net: readv with too many buffers")
	}
	total := 0
	for total < min {
		// Point the iovecs at what is still unfilled.
		r.niov = 0
		skip := total
		for _, b := range bufs {
			if skip >= len(b) {
				skip -= len(b)
				continue
			}
			b = b[skip:]
			skip = 0
			r.iovecs[r.niov].Base = &b[0]
			r.iovecs[r.niov].SetLen(len(b))
			r.niov++
		}
		err := r.rc.Read(r.readFn)
		// The buffers stay referenced by bufs; drop the raw pointers.
		r.iovecs = [4]unix.Iovec{}
		if err != nil {
			return total, err
		}
		switch {
		case r.errno == unix.EINTR:
			continue
		case r.errno != 0:
			return total, r.errno
		case r.n == 0:
			return total, io.EOF
		}
		total += r.n
	}
	return total, nil
}
