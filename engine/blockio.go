package engine

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/weftfs/weft/internal/vfs"
	"github.com/weftfs/weft/ioring"
)

// blockIO is how a reactor reaches its device: queue operations, submit
// them, reap completions without blocking. Each queued operation yields
// exactly one completion carrying its tag; res is the bytes transferred or
// a negative errno. A flush linked to a write starts only after the write
// completed in full, and fails with -ECANCELED if the write did not.
//
// Implementations are used by one goroutine (the reactor's).
type blockIO interface {
	// queueWrite queues a gather write of iov at off, and with flush a
	// flush after it (tagged flushTag). It returns false if there is no
	// room; the caller reaps and tries again.
	queueWrite(off int64, iov [][]byte, tag uint64, flush bool, flushTag uint64) bool
	// queueRead queues a read of len(buf) bytes at off.
	queueRead(off int64, buf []byte, tag uint64) bool
	submit() error
	// submitted is how many submit calls handed the device operations
	// (io_uring_enter system calls, for the ring).
	submitted() uint64
	// reap appends the completions that are ready to dst.
	reap(dst []ioCompletion) []ioCompletion
	// wakeFd is a descriptor that becomes readable when a completion is
	// posted while armed with arm(true), or -1 if completions are never
	// pending after submit returns.
	wakeFd() int
	arm(on bool)
	// drainWake consumes the signals posted on wakeFd, so that the next
	// wait on it blocks. A signal left there only wakes a wait early.
	drainWake()
	// sleepOn blocks until a completion is posted, efd (the reactor's
	// wake-up eventfd) becomes readable, or d passes, in one wait on the
	// backend itself; it reports false, without waiting, when the backend
	// cannot, and the caller then polls wakeFd and efd. A wake-up seen
	// this way is consumed (efd read) by the reap that finds it; reap
	// never returns it.
	sleepOn(efd int, d time.Duration) bool
	// canSleepOn reports that sleepOn can wait on this backend (it still
	// returns false when the ring has no room to arm its poll).
	canSleepOn() bool
	describe() string
	close() error
}

type ioCompletion struct {
	tag uint64
	res int32
}

// ringIO drives a device file through an ioring.Ring.
type ringIO struct {
	ring *ioring.Ring
	fd   int
	efd  int
	// iovs keeps each queued write's iovec array alive until its
	// completion: the kernel reads it at submit time, the thread backend
	// later.
	iovs map[uint64][]unix.Iovec
	cqes []ioring.CQE
	// dsync: durable writes are one write with RWF_DSYNC (O_DSYNC for
	// that write) instead of a write and a linked fdatasync: one
	// operation that the kernel completes inline (a FUA write, or a
	// flush right behind the write), where an fsync would be punted to
	// an io-wq worker thread. flushTags maps such a write's tag to the
	// flush completion the caller expects. The thread backend has no
	// RWF_* flags, so it keeps the linked fdatasync.
	dsync     bool
	flushTags map[uint64]uint64
	submits   uint64
	// pollArmed: a poll of pollFd (the reactor's wake-up eventfd) is in
	// the ring, tagged wakePollTag, from a sleepOn not yet woken by it.
	// Sleeping in the ring's own wait, rather than in poll(2) on the
	// ring's eventfd and the reactor's, saves the eventfd signal, the
	// read that drains it and the poll's set-up on every completion a
	// reactor sleeps for (and a completion's task work runs in the
	// waiting call instead of interrupting a poll).
	pollArmed bool
	pollFd    int
}

// wakePollTag tags the ring's poll of the reactor's wake-up eventfd; the
// shard's tags never have all of the top byte set (tagKindMax).
const wakePollTag = ^uint64(0)

func newRingIO(f vfs.File, entries uint32, dedicated bool) (*ringIO, error) {
	fd, ok := vfs.Fd(f)
	if !ok {
		return nil, errors.New("engine: io_uring backend needs a device on the OS file system")
	}
	ring, err := ioring.New(ioring.Options{Entries: entries, CQEntries: entries * 4, DedicatedThread: dedicated})
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		ring.Close()
		return nil, fmt.Errorf("engine: eventfd: %w", err)
	}
	if err := ring.RegisterEventfd(efd); err != nil {
		unix.Close(efd)
		ring.Close()
		return nil, fmt.Errorf("engine: %w", err)
	}
	ring.SetEventfdEnabled(false)
	return &ringIO{ring: ring, fd: fd, efd: efd, iovs: make(map[uint64][]unix.Iovec), cqes: make([]ioring.CQE, 256),
		dsync: ring.Backend() == ioring.BackendIOUring, flushTags: make(map[uint64]uint64)}, nil
}

func (r *ringIO) queueWrite(off int64, iov [][]byte, tag uint64, flush bool, flushTag uint64) bool {
	need := uint32(1)
	if flush {
		need = 2
	}
	if r.ring.SQSpace() < need {
		return false
	}
	// Records of one write lie back to back in its buffer: their data
	// goes as one iovec, so the kernel maps the buffer in large pieces
	// rather than record by record.
	vec := make([]unix.Iovec, 0, len(iov))
	for _, b := range iov {
		if n := len(vec); n > 0 && uintptr(unsafe.Pointer(vec[n-1].Base))+uintptr(vec[n-1].Len) == uintptr(unsafe.Pointer(&b[0])) {
			vec[n-1].SetLen(int(vec[n-1].Len) + len(b))
			continue
		}
		vec = append(vec, unix.Iovec{Base: &b[0]})
		vec[len(vec)-1].SetLen(len(b))
	}
	r.iovs[tag] = vec
	sqe := r.ring.GetSQE()
	sqe.PrepWritev(r.fd, vec, uint64(off))
	sqe.UserData = tag
	if flush && r.dsync {
		sqe.OpFlags = unix.RWF_DSYNC
		r.flushTags[tag] = flushTag
		return true
	}
	if flush {
		sqe.SetLink()
		f := r.ring.GetSQE()
		f.PrepFsync(r.fd, ioring.FsyncDatasync)
		f.UserData = flushTag
	}
	return true
}

func (r *ringIO) queueRead(off int64, buf []byte, tag uint64) bool {
	sqe := r.ring.GetSQE()
	if sqe == nil {
		return false
	}
	sqe.PrepRead(r.fd, buf, uint64(off))
	sqe.UserData = tag
	return true
}

func (r *ringIO) submit() error {
	if r.ring.SQReady() == 0 {
		// The reactor calls submit on every pass, and a pass with nothing
		// queued must not cost a system call: the engine's ring has no
		// deferred task work, so there is nothing for an enter to flush
		// (PeekBatch enters when the kernel says otherwise).
		return nil
	}
	r.submits++
	_, err := r.ring.Submit()
	if errors.Is(err, ioring.ErrBusy) {
		// Completions must be reaped first; the reactor does that on its
		// next pass and submits again.
		return nil
	}
	return err
}

func (r *ringIO) reap(dst []ioCompletion) []ioCompletion {
	n, _ := r.ring.PeekBatch(r.cqes)
	for _, c := range r.cqes[:n] {
		if c.UserData == wakePollTag {
			r.pollArmed = false
			var b [8]byte
			unix.Read(r.pollFd, b[:])
			continue
		}
		delete(r.iovs, c.UserData)
		dst = append(dst, ioCompletion{tag: c.UserData, res: c.Res})
		if ft, ok := r.flushTags[c.UserData]; ok {
			delete(r.flushTags, c.UserData)
			res := int32(0)
			if c.Res < 0 {
				res = -int32(syscall.ECANCELED)
			}
			dst = append(dst, ioCompletion{tag: ft, res: res})
		}
	}
	return dst
}

func (r *ringIO) submitted() uint64 { return r.submits }

func (r *ringIO) wakeFd() int { return r.efd }

func (r *ringIO) arm(on bool) { r.ring.SetEventfdEnabled(on) }

func (r *ringIO) drainWake() {
	var b [8]byte
	unix.Read(r.efd, b[:])
}

// canSleepOn: the thread backend has no POLL_ADD.
func (r *ringIO) canSleepOn() bool { return r.dsync }

func (r *ringIO) sleepOn(efd int, d time.Duration) bool {
	if !r.canSleepOn() {
		return false
	}
	if !r.pollArmed {
		sqe := r.ring.GetSQE()
		if sqe == nil {
			return false
		}
		sqe.PrepPollAdd(efd, unix.POLLIN)
		sqe.UserData = wakePollTag
		r.pollArmed, r.pollFd = true, efd
	}
	// A timeout, an early end or a failed wait is a spurious wake-up,
	// which the loop tolerates (it reaps on its next pass), as it does a
	// failed poll(2); a ring that no longer works fails the next submit.
	_, _ = r.ring.SubmitAndWaitTimeout(d)
	return true
}

func (r *ringIO) describe() string { return r.ring.Describe() }

func (r *ringIO) close() error {
	err := r.ring.Close()
	unix.Close(r.efd)
	return err
}

// syncIO performs each operation synchronously when it is submitted, with
// vfs.File calls: the backend of the in-memory crash-test file system.
type syncIO struct {
	f       vfs.File
	ops     []syncOp
	done    []ioCompletion
	submits uint64
}

type syncOp struct {
	write    bool
	off      int64
	iov      [][]byte
	buf      []byte
	tag      uint64
	flush    bool
	flushTag uint64
}

func newSyncIO(f vfs.File) *syncIO { return &syncIO{f: f} }

func (s *syncIO) queueWrite(off int64, iov [][]byte, tag uint64, flush bool, flushTag uint64) bool {
	s.ops = append(s.ops, syncOp{write: true, off: off, iov: iov, tag: tag, flush: flush, flushTag: flushTag})
	return true
}

func (s *syncIO) queueRead(off int64, buf []byte, tag uint64) bool {
	s.ops = append(s.ops, syncOp{off: off, buf: buf, tag: tag})
	return true
}

func (s *syncIO) submitted() uint64 { return s.submits }

func (s *syncIO) submit() error {
	if len(s.ops) > 0 {
		s.submits++
	}
	for _, op := range s.ops {
		if !op.write {
			n, err := s.f.ReadAt(op.buf, op.off)
			if err != nil && !(errors.Is(err, io.EOF) && n == len(op.buf)) {
				s.done = append(s.done, ioCompletion{op.tag, -errnoOf(err)})
			} else {
				s.done = append(s.done, ioCompletion{op.tag, int32(n)})
			}
			continue
		}
		total, off := 0, op.off
		var werr error
		for _, b := range op.iov {
			n, err := s.f.WriteAt(b, off)
			total += n
			off += int64(n)
			if err != nil {
				werr = err
				break
			}
		}
		if werr != nil {
			s.done = append(s.done, ioCompletion{op.tag, -errnoOf(werr)})
		} else {
			s.done = append(s.done, ioCompletion{op.tag, int32(total)})
		}
		if op.flush {
			res := -int32(syscall.ECANCELED)
			if werr == nil {
				res = 0
				if err := s.f.Sync(); err != nil {
					res = -errnoOf(err)
				}
			}
			s.done = append(s.done, ioCompletion{op.flushTag, res})
		}
	}
	clear(s.ops)
	s.ops = s.ops[:0]
	return nil
}

func (s *syncIO) reap(dst []ioCompletion) []ioCompletion {
	dst = append(dst, s.done...)
	s.done = s.done[:0]
	return dst
}

func (s *syncIO) wakeFd() int                     { return -1 }
func (s *syncIO) arm(bool)                        {}
func (s *syncIO) drainWake()                      {}
func (s *syncIO) sleepOn(int, time.Duration) bool { return false }
func (s *syncIO) canSleepOn() bool                { return false }
func (s *syncIO) describe() string                { return "sync vfs calls" }
func (s *syncIO) close() error                    { return nil }

// errnoOf maps an error to a positive errno for a completion: the errno it
// wraps, or EIO.
func errnoOf(err error) int32 {
	var en syscall.Errno
	if errors.As(err, &en) {
		return int32(en)
	}
	return int32(syscall.EIO)
}
