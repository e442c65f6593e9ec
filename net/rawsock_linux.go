package net

import (
	"errors"
	"io"
	stdnet "net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawSocket is a connected socket taken out of the Go runtime's network
// poller, for a connection that a Loop runs. The runtime registers every
// socket it owns with its epoll instance, edge-triggered, and an idle
// thread of the process waits there: every segment that arrives on the
// socket wakes that thread, though no goroutine waits for it once the loop
// reads the socket itself. On the 2-vCPU dev VM that is a context switch
// per request burst for nothing (strace: two epoll_pwait calls per 4 KiB
// read at qd1). A rawSocket is a duplicate of the descriptor, made before
// the runtime's own is closed, so the socket stays open and leaves the
// poller.
//
// Its blocking calls (the handshake's reads, the writer goroutine's
// writes when the socket is full) wait in poll(2) on their goroutine,
// under the deadlines set. Close shuts the socket down, which wakes every
// such wait and the loop, and closes the descriptor only when its last
// user is done, so a descriptor number is never reused while a loop or a
// waiting call still holds it.
type rawSocket struct {
	fd            int
	local, remote stdnet.Addr
	// refs counts the descriptor's users plus one for the socket being
	// open (dropped by Close); the descriptor is closed when it reaches
	// zero, and cannot be taken again after that.
	refs       atomic.Int64
	closed     atomic.Bool
	rdDeadline atomic.Int64 // unix nanoseconds; 0: none
	wrDeadline atomic.Int64
}

// detachSocket returns nc as a rawSocket, closing nc's own descriptor.
func detachSocket(nc stdnet.Conn) (*rawSocket, error) {
	sc, ok := plainSocket(nc)
	if !ok {
		return nil, errors.New("net: not a plain socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(f uintptr) {
		// The duplicate shares the runtime's O_NONBLOCK, which the loop's
		// calls rely on; socket options (TCP_NODELAY, keep-alive) are the
		// socket's and carry over.
		fd, dupErr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, dupErr
	}
	s := &rawSocket{fd: fd, local: nc.LocalAddr(), remote: nc.RemoteAddr()}
	s.refs.Store(1)
	nc.Close()
	return s, nil
}

// acquire takes a use of the descriptor; false once it is closed.
func (s *rawSocket) acquire() bool {
	for {
		n := s.refs.Load()
		if n <= 0 || s.closed.Load() {
			return false
		}
		if s.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (s *rawSocket) release() {
	if s.refs.Add(-1) == 0 {
		unix.Close(s.fd)
	}
}

// Close shuts the socket down at once and closes the descriptor once no
// call and no loop uses it.
func (s *rawSocket) Close() error {
	if s.closed.Swap(true) {
		return stdnet.ErrClosed
	}
	unix.Shutdown(s.fd, unix.SHUT_RDWR)
	s.release()
	return nil
}

func (s *rawSocket) LocalAddr() stdnet.Addr  { return s.local }
func (s *rawSocket) RemoteAddr() stdnet.Addr { return s.remote }

func deadlineNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func (s *rawSocket) SetDeadline(t time.Time) error {
	s.rdDeadline.Store(deadlineNanos(t))
	s.wrDeadline.Store(deadlineNanos(t))
	return nil
}

func (s *rawSocket) SetReadDeadline(t time.Time) error {
	s.rdDeadline.Store(deadlineNanos(t))
	return nil
}

func (s *rawSocket) SetWriteDeadline(t time.Time) error {
	s.wrDeadline.Store(deadlineNanos(t))
	return nil
}

// wait blocks until the descriptor is ready for events, the deadline
// passes (os.ErrDeadlineExceeded) or the socket is shut down (ready: the
// caller's next system call meets the end).
func (s *rawSocket) wait(events int16, deadline *atomic.Int64) error {
	for {
		timeout := -1
		if d := deadline.Load(); d != 0 {
			left := time.Until(time.Unix(0, d))
			if left <= 0 {
				return os.ErrDeadlineExceeded
			}
			timeout = int(left/time.Millisecond) + 1
		}
		fds := [1]unix.PollFd{{Fd: int32(s.fd), Events: events}}
		n, err := unix.Poll(fds[:], timeout)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case n > 0:
			return nil
		}
	}
}

// SyscallConn gives the loop and the frame reader and writer the
// descriptor, as a TCPConn's does: Read and Write call f until it reports
// done, waiting for the socket in between.
func (s *rawSocket) SyscallConn() (syscall.RawConn, error) { return rawSocketConn{s}, nil }

type rawSocketConn struct{ s *rawSocket }

func (r rawSocketConn) Control(f func(fd uintptr)) error {
	if !r.s.acquire() {
		return stdnet.ErrClosed
	}
	defer r.s.release()
	f(uintptr(r.s.fd))
	return nil
}

func (r rawSocketConn) Read(f func(fd uintptr) bool) error {
	return r.s.do(f, unix.POLLIN, &r.s.rdDeadline)
}

func (r rawSocketConn) Write(f func(fd uintptr) bool) error {
	return r.s.do(f, unix.POLLOUT, &r.s.wrDeadline)
}

func (s *rawSocket) do(f func(fd uintptr) bool, events int16, deadline *atomic.Int64) error {
	if !s.acquire() {
		return stdnet.ErrClosed
	}
	defer s.release()
	for !f(uintptr(s.fd)) {
		if s.closed.Load() {
			return stdnet.ErrClosed
		}
		if err := s.wait(events, deadline); err != nil {
			return err
		}
	}
	return nil
}

func (s *rawSocket) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var (
		n     int
		errno error
	)
	err := rawSocketConn{s}.Read(func(fd uintptr) bool {
		n, errno = unix.Read(int(fd), b)
		return errno != unix.EAGAIN && errno != unix.EINTR
	})
	switch {
	case err != nil:
		return 0, err
	case errno != nil:
		return 0, errno
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (s *rawSocket) Write(b []byte) (int, error) {
	bufs := stdnet.Buffers{b}
	n, err := s.writeBuffers(&bufs)
	return int(n), err
}

// writeBuffers writes all of bufs with writev, consuming them, waiting
// for the socket as needed; the frame writer's batches go out this way.
func (s *rawSocket) writeBuffers(bufs *stdnet.Buffers) (int64, error) {
	var (
		iov   [64]unix.Iovec
		total int64
		errno syscall.Errno
	)
	write := func(fd uintptr) bool {
		for len(*bufs) > 0 {
			niov := 0
			for _, b := range *bufs {
				if niov == len(iov) {
					break
				}
				if len(b) == 0 {
					continue
				}
				iov[niov].Base = &b[0]
				iov[niov].SetLen(len(b))
				niov++
			}
			if niov == 0 {
				*bufs = nil
				return true
			}
			n, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(niov))
			switch e {
			case 0:
				total += int64(n)
				consumeBuffers(bufs, int(n))
			case unix.EINTR:
			case unix.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	}
	err := rawSocketConn{s}.Write(write)
	clear(iov[:])
	if err == nil && errno != 0 {
		err = errno
	}
	return total, err
}

// consumeBuffers drops the first n bytes of bufs.
func consumeBuffers(bufs *stdnet.Buffers, n int) {
	for len(*bufs) > 0 {
		b := (*bufs)[0]
		if n < len(b) {
			(*bufs)[0] = b[n:]
			return
		}
		n -= len(b)
		(*bufs)[0] = nil
		*bufs = (*bufs)[1:]
	}
}
