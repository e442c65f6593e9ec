package net

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loopConn is a server connection that a Loop runs (ServerConfig.Loop):
// the loop's goroutine reads the requests with non-blocking system calls,
// starts them, and at the end of each pass writes the answers it queued
// in one writev (frameWriter.cork and uncork).
//
// Reading is the frameReader's exact mode made resumable: fixed headers
// and bodies are staged (the stage is filled up to what a peek at the
// socket shows to be headers and bodies, so a payload byte is never
// staged), and a payload is read straight into its pooled buffer, over as
// many passes as it takes to arrive. Invariants: stage[r:w] holds the
// unconsumed bytes after the last byte decoded, never a payload byte; when
// sc is set, hdr is its frame's header and got counts the body and
// payload bytes it has, and the stage is empty unless got is complete.
//
// Back-pressure is the reader's: a request needs a slot and its payload's
// in-flight bytes before its body is read; without them the loop leaves
// the socket unread (Wait gives no descriptor, so a socket with bytes
// waiting does not keep the loop awake) until a call's end pokes it.
type loopConn struct {
	c      *serverConn
	rc     syscall.RawConn
	sock   *rawSocket
	fd     int
	wakeFn atomic.Pointer[func()]

	// Used by the loop's goroutine only.
	stage   []byte
	r, w    int
	offset  int64 // stream offset of the frame being read
	cur     [frameHeaderSize]byte
	hdr     frameHeader
	haveHdr bool
	sc      *serverCall // the request whose body and payload are being read
	got     int
	more    bool // Run stopped with whole frames possibly left to read
	// drained: a read in this pass left the socket empty, so another
	// would only meet EAGAIN (a system call for nothing).
	drained bool
	reason  error // why Run reported done

	// blocked: a request waits for a slot or in-flight bytes; attention:
	// something the loop waits for happened on another goroutine (a call
	// ended, the connection was closed).
	blocked   atomic.Bool
	attention atomic.Bool
	stopped   chan error // the reason, when the loop dropped the connection

	// System call plumbing, bound once so that a call allocates nothing.
	iov    [3]unix.Iovec
	niov   int
	buf    []byte
	flags  int
	n      int
	errno  syscall.Errno
	readFn func(fd uintptr) bool
	recvFn func(fd uintptr) bool
}

// loopFramesPerPass bounds the requests one pass takes from a connection,
// so that one busy client cannot hold the loop's other work back.
const loopFramesPerPass = 64

var (
	errWouldBlock = errors.New("net: socket has no more bytes now")
	errNoRoom     = errors.New("net: no room for another request now")
)

// newLoopConn returns c as a loop guest, or nil when c's socket is not a
// rawSocket (Server.Serve detaches plain sockets when it has a Loop; a
// wrapper's Read may do more than read, and the loop would go around
// it). It takes over what c's frame reader read ahead.
func newLoopConn(c *serverConn) *loopConn {
	rs, ok := c.nc.(*rawSocket)
	if !ok || !rs.acquire() {
		return nil
	}
	// The loop holds the descriptor (one use of it) until Stopped: the
	// number it sleeps on is never another socket's.
	rc, _ := rs.SyscallConn()
	l := &loopConn{c: c, rc: rc, sock: rs, fd: rs.fd, stage: make([]byte, exactStageBytes), stopped: make(chan error, 1)}
	fr := c.fr
	l.w = copy(l.stage, fr.stage[fr.r:fr.w])
	l.offset = fr.offset
	fr.r, fr.w = 0, 0
	l.readFn = l.readv
	l.recvFn = l.recv
	return l
}

// abandon undoes newLoopConn for a connection the loop did not take: the
// bytes read ahead go back to the frame reader, and the socket's use is
// given back.
func (l *loopConn) abandon() {
	fr := l.c.fr
	fr.r, fr.w = 0, copy(fr.stage, l.stage[l.r:l.w])
	fr.offset = l.offset
	l.sock.release()
}

// setWake installs the loop's wake function and wakes it once, for what
// was poked before there was one to call.
func (l *loopConn) setWake(wake func()) {
	l.wakeFn.Store(&wake)
	wake()
}

// poke tells the loop, from any goroutine, that what it waits for may
// have happened.
func (l *loopConn) poke() {
	l.attention.Store(true)
	if f := l.wakeFn.Load(); f != nil {
		(*f)()
	}
}

// blockedOnRoom reports that reading waits for a call to end.
func (l *loopConn) blockedOnRoom() bool { return l.blocked.Load() }

// wait returns the reason the loop dropped the connection, once it has.
func (l *loopConn) wait() error { return <-l.stopped }

// Run implements LoopGuest: it reads and starts the requests that have
// arrived whole. When the loop saw nothing arrive (readable false), it
// reads only what earlier passes left: whole frames over the pass's
// budget, or a request that waited for room.
func (l *loopConn) Run(readable bool) (worked, done bool) {
	c := l.c
	c.w.cork()
	poked := l.attention.Swap(false)
	if c.ctx.Err() != nil {
		l.reason = context.Cause(c.ctx)
		return true, true
	}
	if !readable && !l.more && !poked {
		return false, false
	}
	l.more, l.drained = false, false
	for range loopFramesPerPass {
		switch err := l.step(); err {
		case nil:
			worked = true
		case errWouldBlock, errNoRoom:
			return worked, false
		default:
			l.reason = err
			return true, true
		}
	}
	l.more = true
	return worked, false
}

// Flush implements LoopGuest: it writes the answers queued in the pass.
func (l *loopConn) Flush() { l.c.w.uncork() }

// Wait implements LoopGuest.
func (l *loopConn) Wait() (fd int, now bool) {
	if l.more || l.attention.Load() {
		return -1, true
	}
	if l.blocked.Load() {
		return -1, false
	}
	return l.fd, false
}

// Stopped implements LoopGuest: the connection's serve goroutine tears it
// down.
func (l *loopConn) Stopped(err error) {
	if l.sc != nil {
		l.c.dropCall(l.sc)
		l.sc = nil
	}
	l.c.w.uncork()
	l.sock.release()
	if err == nil {
		err = l.reason
	}
	l.stopped <- err
}

// step reads one request and dispatches it. It returns errWouldBlock when
// the socket holds no more of it yet, errNoRoom under back-pressure, and
// what ends the connection otherwise (io.EOF at a clean end).
func (l *loopConn) step() error {
	c := l.c
	if !l.haveHdr {
		if l.w-l.r < frameHeaderSize {
			if err := l.fill(); err != nil {
				if errors.Is(err, io.EOF) && l.w-l.r > 0 {
					return truncatedHeader(l.offset, l.w-l.r)
				}
				return err
			}
			if l.w-l.r < frameHeaderSize {
				return errWouldBlock
			}
		}
		copy(l.cur[:], l.stage[l.r:])
		l.r += frameHeaderSize
		h, reason := parseFrameHeader(l.cur[:], c.fr.maxPayload)
		if reason != "" {
			return &FrameError{Offset: l.offset, Reason: reason}
		}
		if err := checkRequestHeader(&h, l.offset); err != nil {
			return err
		}
		l.hdr, l.haveHdr = h, true
	}
	if l.sc == nil {
		if !l.takeRoom() {
			// Mark, then look again: a call that ended before the mark
			// left its room to this second look, one after it pokes.
			l.blocked.Store(true)
			if !l.takeRoom() {
				return errNoRoom
			}
		}
		l.blocked.Store(false)
		l.sc = c.newCall(&l.hdr)
		l.got = copy(l.sc.store, l.stage[l.r:l.w])
		l.r += l.got
	}
	sc := l.sc
	body := sc.store
	var payload []byte
	if sc.req.Payload != nil {
		payload = sc.req.Payload.Bytes()
	}
	need := len(body) + len(payload)
	if l.got < need {
		if l.drained {
			return errWouldBlock
		}
		// Invariant: the stage is empty (the frame's bytes come first).
		l.r, l.w = 0, 0
		l.niov = 0
		if l.got < len(body) {
			l.addIov(body[l.got:])
		}
		if pg := max(0, l.got-len(body)); pg < len(payload) {
			l.addIov(payload[pg:])
		}
		l.addIov(l.stage[:frameHeaderSize]) // the next fixed header, never payload
		n, err := l.sys(l.readFn)
		l.drained = n < need-l.got+frameHeaderSize
		if n > 0 {
			take := min(n, need-l.got)
			l.got += take
			l.w = n - take
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = truncatedRest(l.offset, l.got, need)
			}
			if err != errWouldBlock {
				l.sc = nil
				c.dropCall(sc)
			}
			return err
		}
		if l.got < need {
			return errWouldBlock
		}
	}
	if err := checkFrameSums(l.offset, l.cur[:], &l.hdr, body, payload); err != nil {
		l.sc = nil
		c.dropCall(sc)
		return err
	}
	l.offset += int64(frameHeaderSize + need)
	l.sc, l.haveHdr, l.got = nil, false, 0
	c.dispatch(sc, &l.hdr)
	return nil
}

// takeRoom takes a slot and the in-flight bytes of the request whose
// header was read, or nothing.
func (l *loopConn) takeRoom() bool {
	c := l.c
	select {
	case c.slots <- struct{}{}:
	default:
		return false
	}
	if !c.inflight.tryAcquire(int64(l.hdr.payloadLen)) {
		<-c.slots
		return false
	}
	return true
}

// fill stages the rest of a fixed header, and with it every whole
// payload-less frame and the header and body of a frame with a payload
// that the socket holds: a peek shows how far that is, then one read
// takes it.
func (l *loopConn) fill() error {
	if l.r > 0 {
		l.w = copy(l.stage, l.stage[l.r:l.w])
		l.r = 0
	}
	if l.drained {
		return errWouldBlock
	}
	room := len(l.stage) - l.w
	n, err := l.sysRecv(l.stage[l.w:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	if err != nil {
		return err
	}
	safe := safeFrameBytes(l.stage[:l.w+n]) - l.w
	// What the peek saw is all the socket holds, unless it filled the
	// stage; taking all of it leaves the socket empty.
	l.drained = n < room && safe == n
	if safe <= 0 {
		return nil
	}
	n, err = l.sysRecv(l.stage[l.w:l.w+safe], unix.MSG_DONTWAIT)
	l.w += n
	return err
}

func (l *loopConn) addIov(b []byte) {
	l.iov[l.niov].Base = &b[0]
	l.iov[l.niov].SetLen(len(b))
	l.niov++
}

func (l *loopConn) readv(fd uintptr) bool {
	for {
		n, _, errno := unix.Syscall(unix.SYS_READV, fd, uintptr(unsafe.Pointer(&l.iov[0])), uintptr(l.niov))
		if errno == unix.EINTR {
			continue
		}
		l.n, l.errno = int(n), errno
		return true // never wait: the loop does not block
	}
}

func (l *loopConn) recv(fd uintptr) bool {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&l.buf[0])), uintptr(len(l.buf)), uintptr(l.flags), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		l.n, l.errno = int(n), errno
		return true
	}
}

// sys runs f through the connection's RawConn (which keeps the
// descriptor from being closed under it) and maps the result: bytes
// read, errWouldBlock, io.EOF, or the error.
func (l *loopConn) sys(f func(uintptr) bool) (int, error) {
	l.n, l.errno = 0, 0
	l.c.metrics.reads.Add(1)
	err := l.rc.Read(f)
	l.iov = [3]unix.Iovec{}
	switch {
	case err != nil:
		return 0, err
	case l.errno == unix.EAGAIN:
		return 0, errWouldBlock
	case l.errno != 0:
		return 0, l.errno
	case l.n == 0:
		return 0, io.EOF
	}
	return l.n, nil
}

func (l *loopConn) sysRecv(b []byte, flags int) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	l.buf, l.flags = b, flags
	n, err := l.sys(l.recvFn)
	l.buf = nil
	return n, err
}
