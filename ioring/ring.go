package ioring

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Backend names, as reported by Ring.Backend.
const (
	BackendIOUring = "io_uring"
	BackendThreads = "threads"
)

// BackendEnv is the environment variable that forces a backend: "io_uring",
// "threads", or "auto" (the default: io_uring, falling back to threads when
// the kernel lacks it or forbids it).
const BackendEnv = "WEFT_IO_BACKEND"

// Options configure New. The zero value is a 128-entry ring with default
// flags on the automatically chosen backend.
type Options struct {
	// Entries is the SQ size, rounded up to a power of two; default 128,
	// at most 32768.
	Entries uint32
	// CQEntries is the CQ size; 0 means twice Entries.
	CQEntries uint32
	// SQPoll starts a kernel thread that polls the SQ, so submission needs
	// no system call while it is awake. SQPollCPU >= 0 pins that thread
	// (SQ_AFF); SQPollIdle is how long it spins before sleeping.
	SQPoll     bool
	SQPollCPU  int
	SQPollIdle time.Duration
	// SingleIssuer promises that one OS thread submits: the caller must
	// runtime.LockOSThread before New and use the ring only from that
	// goroutine. It lets the kernel skip locking.
	SingleIssuer bool
	// CoopTaskrun defers completion work to the next kernel entry instead
	// of interrupting the task; the package then enters the kernel when
	// the SQ ring says work is pending.
	CoopTaskrun bool
	// DeferTaskrun (requires SingleIssuer) runs completion work only when
	// the application waits for completions.
	DeferTaskrun bool
	// DedicatedThread says the ring's goroutine has its OS thread and Go P
	// to itself (a benchmark job, a reactor in poll mode): waits for
	// completions then keep the P instead of handing it to the scheduler,
	// which saves two thread wake-ups per wait but blocks other goroutines
	// from that P while waiting.
	DedicatedThread bool
	// Backend overrides BackendEnv: "", "auto", "io_uring" or "threads".
	Backend string
	// Workers is the thread backend's pool size; default 4.
	Workers int
}

// Ring is one submission/completion queue pair. Both backends present the
// same shared-ring protocol: the application fills SQEs obtained from
// GetSQE, publishes them with Submit, and consumes CQEs from the completion
// ring. Only the side that consumes SQEs and produces CQEs differs: the
// kernel, or a pool of pread/pwrite threads.
//
// A Ring is not safe for concurrent use: one goroutine owns it (with
// SingleIssuer, one locked OS thread). Buffers, iovec arrays and files
// named by an SQE must stay alive and unmoved (heap or mmap, never a
// goroutine stack) until its CQE has been reaped.
type Ring struct {
	backend string
	reason  string // why the thread backend was chosen, if it was
	fd      int    // ring fd (io_uring backend), -1 otherwise
	flags   uint32 // setup flags granted
	rawWait bool   // Options.DedicatedThread: waits keep the P
	feats   uint32
	threads *threads

	sqHead, sqTail, sqFlags, sqDropped *uint32
	sqMask, sqEntries                  uint32
	sqes                               []SQE
	sqeTail                            uint32 // next SQE slot GetSQE hands out
	timespecs                          []kernelTimespec

	cqHead, cqTail, cqOverflow, cqFlags *uint32
	cqMask, cqEntries                   uint32
	cqes                                []CQE

	mmaps      [][]byte
	registered [][]byte // registered buffers, referenced so they stay alive
	probe      *Probe
	closed     bool
}

// Errors returned by Ring methods. Test with errors.Is.
var (
	// ErrBusy is returned by Submit when the kernel could not take the SQEs
	// now (EAGAIN or EBUSY: completions must be reaped first). Nothing was
	// lost: reap and submit again.
	ErrBusy = errors.New("ioring: ring busy; reap completions and retry")
	// ErrClosed is returned by methods of a closed Ring.
	ErrClosed = errors.New("ioring: ring closed")
	// ErrTimeout is returned by WaitCQETimeout when no completion arrived.
	ErrTimeout = errors.New("ioring: timed out waiting for a completion")
	// ErrSQFull is returned by helpers that need an SQE when the SQ is full
	// even after submitting.
	ErrSQFull = errors.New("ioring: submission queue full")
)

// New sets up a ring. The backend comes from opts.Backend, else
// BackendEnv, else auto: io_uring, falling back to the thread backend when
// io_uring_setup fails with ENOSYS or EPERM (missing, or forbidden by
// seccomp or kernel.io_uring_disabled). Optional setup flags the kernel
// rejects are dropped; SetupFlags reports what was granted.
func New(opts Options) (*Ring, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	choice := opts.Backend
	if choice == "" {
		choice = os.Getenv(BackendEnv)
	}
	switch choice {
	case "", "auto":
		r, err := newURing(opts)
		if err == nil {
			return r, nil
		}
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return newThreadsRing(opts, "io_uring unavailable: "+err.Error())
		}
		return nil, err
	case BackendIOUring:
		return newURing(opts)
	case BackendThreads:
		return newThreadsRing(opts, "requested")
	default:
		return nil, fmt.Errorf("ioring: backend %q (from Options.Backend or %s): accepted: auto, io_uring, threads", choice, BackendEnv)
	}
}

func (o *Options) normalize() error {
	if o.Entries == 0 {
		o.Entries = 128
	}
	if o.Entries > 32768 {
		return fmt.Errorf("ioring: Entries=%d: at most 32768", o.Entries)
	}
	o.Entries = roundPow2(o.Entries)
	if o.CQEntries == 0 {
		o.CQEntries = 2 * o.Entries
	}
	if o.CQEntries < o.Entries || o.CQEntries > 65536 {
		return fmt.Errorf("ioring: CQEntries=%d: must be between Entries (%d) and 65536", o.CQEntries, o.Entries)
	}
	o.CQEntries = roundPow2(o.CQEntries)
	if o.DeferTaskrun && !o.SingleIssuer {
		return errors.New("ioring: DeferTaskrun requires SingleIssuer")
	}
	if o.Workers == 0 {
		o.Workers = 4
	}
	if o.Workers < 1 || o.Workers > 256 {
		return fmt.Errorf("ioring: Workers=%d: must be between 1 and 256", o.Workers)
	}
	return nil
}

func roundPow2(v uint32) uint32 {
	p := uint32(1)
	for p < v {
		p <<= 1
	}
	return p
}

// Backend returns BackendIOUring or BackendThreads.
func (r *Ring) Backend() string { return r.backend }

// Describe says which backend is active and how it was set up, for logs
// and benchmark reports, e.g. "io_uring (SINGLE_ISSUER|COOP_TASKRUN)" or
// "threads (4 workers; io_uring unavailable: operation not permitted)".
func (r *Ring) Describe() string {
	if r.backend == BackendThreads {
		return fmt.Sprintf("threads (%d workers; %s)", r.threads.workers, r.reason)
	}
	if f := setupFlagNames(r.flags); f != "" {
		return "io_uring (" + f + ")"
	}
	return "io_uring"
}

// SetupFlags returns the names of the optional setup flags in effect.
func (r *Ring) SetupFlags() string { return setupFlagNames(r.flags) }

func setupFlagNames(f uint32) string {
	names := []struct {
		bit  uint32
		name string
	}{
		{setupSQPoll, "SQPOLL"}, {setupSQAff, "SQ_AFF"}, {setupSingleIssuer, "SINGLE_ISSUER"},
		{setupCoopTaskrun, "COOP_TASKRUN"}, {setupTaskrunFlag, "TASKRUN_FLAG"}, {setupDeferTaskrun, "DEFER_TASKRUN"},
	}
	var out []string
	for _, n := range names {
		if f&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	return strings.Join(out, "|")
}

// SQEntries and CQEntries return the ring sizes.
func (r *Ring) SQEntries() uint32 { return r.sqEntries }

// CQEntries returns the completion ring size.
func (r *Ring) CQEntries() uint32 { return r.cqEntries }

// GetSQE returns the next free, zeroed submission entry, or nil when the SQ
// is full (every slot is filled and not yet consumed: Submit, then retry).
// The entry belongs to the caller until the next Submit.
func (r *Ring) GetSQE() *SQE {
	head := atomic.LoadUint32(r.sqHead)
	if r.sqeTail-head >= r.sqEntries {
		return nil
	}
	sqe := &r.sqes[r.sqeTail&r.sqMask]
	r.sqeTail++
	*sqe = SQE{}
	return sqe
}

// SQReady is the number of SQEs obtained but not yet consumed by the
// backend.
func (r *Ring) SQReady() uint32 { return r.sqeTail - atomic.LoadUint32(r.sqHead) }

// SQSpace is the number of SQEs GetSQE can still hand out.
func (r *Ring) SQSpace() uint32 { return r.sqEntries - r.SQReady() }

// flushSQ publishes filled SQEs and returns how many the backend has yet
// to consume.
func (r *Ring) flushSQ() uint32 {
	// Invariant: the SQ array is the identity map set up at creation, so
	// publishing is a single release store of the tail.
	atomic.StoreUint32(r.sqTail, r.sqeTail)
	return r.sqeTail - atomic.LoadUint32(r.sqHead)
}

// Submit hands every filled SQE to the backend without waiting, and
// returns how many were consumed.
func (r *Ring) Submit() (int, error) { return r.submit(0, nil) }

// SubmitAndWait submits like Submit and then waits, in the same system call,
// until at least waitNr completions are in the CQ ring.
func (r *Ring) SubmitAndWait(waitNr uint32) (int, error) { return r.submit(waitNr, nil) }

// SubmitAndWaitTimeout submits like Submit and then waits, in the same
// system call, until a completion is in the CQ ring or d has passed. It
// returns ErrTimeout when the CQ ring is empty on return: d passed, or
// the wait ended early (the kernel reports the submission, not the
// wait's end, when one call does both). An event loop sleeps in it when
// everything that can wake it is an operation on the ring (a
// PrepPollAdd on its wake-up descriptor included).
func (r *Ring) SubmitAndWaitTimeout(d time.Duration) (int, error) {
	ts := kernelTimespec{sec: int64(d / time.Second), nsec: int64(d % time.Second)}
	n, err := r.submit(1, &ts)
	switch {
	case err != nil && !errors.Is(err, ErrTimeout):
		return n, err
	case r.CQReady() == 0:
		return n, ErrTimeout
	}
	return n, nil
}

// submit hands the filled SQEs to the backend and waits for waitNr
// completions, for at most ts when ts is not nil, in one system call.
func (r *Ring) submit(waitNr uint32, ts *kernelTimespec) (int, error) {
	if r.closed {
		return 0, ErrClosed
	}
	pending := r.flushSQ()
	if r.flags&setupSQPoll != 0 {
		// The poller consumes the SQ itself; enter only to wake it, to
		// wait, or to flush completions parked kernel-side.
		var flags uint32
		if waitNr > 0 || r.needsFlush() {
			flags |= enterGetEvents
		}
		if atomic.LoadUint32(r.sqFlags)&sqNeedWakeup != 0 {
			flags |= enterSQWakeup
		}
		if flags == 0 {
			return int(pending), nil
		}
		_, err := r.enter(pending, waitNr, flags, ts)
		return int(pending), err
	}
	// GETEVENTS with min_complete 0 waits for nothing, but lets the kernel
	// post completions it has deferred (COOP/DEFER_TASKRUN) in the same
	// call, so an I/O that completed during submission is reaped without a
	// second system call.
	return r.enter(pending, waitNr, enterGetEvents, ts)
}

// needsFlush reports that completions exist only kernel-side: overflowed
// CQEs, or task work deferred by COOP/DEFER_TASKRUN.
func (r *Ring) needsFlush() bool {
	return atomic.LoadUint32(r.sqFlags)&(sqCQOverflow|sqTaskrun) != 0
}

// enter calls the backend's io_uring_enter, retrying on EINTR. EAGAIN and
// EBUSY become ErrBusy.
func (r *Ring) enter(toSubmit, minComplete, flags uint32, ts *kernelTimespec) (int, error) {
	for {
		var n int
		var err error
		if r.threads != nil {
			n, err = r.threads.enter(toSubmit, minComplete, flags, ts)
		} else {
			n, err = r.uringEnter(toSubmit, minComplete, flags, ts)
		}
		switch err {
		case nil:
			return n, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.EBUSY:
			return n, fmt.Errorf("%w (%v)", ErrBusy, err)
		case unix.ETIME:
			return n, ErrTimeout
		case unix.EEXIST:
			if r.flags&setupSingleIssuer != 0 {
				return n, errors.New("ioring: io_uring_enter: ring set up with SINGLE_ISSUER was used from another OS thread (runtime.LockOSThread before New, and stay on that goroutine)")
			}
			return n, fmt.Errorf("ioring: io_uring_enter: %w", err)
		default:
			return n, fmt.Errorf("ioring: io_uring_enter: %w", err)
		}
	}
}

// PeekCQE returns the oldest unconsumed completion without a system call,
// or nil when there is none. The only exception: when the kernel holds
// overflowed or deferred completions, PeekCQE enters it once to flush them.
// The CQE stays valid until CQESeen or CQAdvance.
func (r *Ring) PeekCQE() (*CQE, error) {
	if cqe := r.peek(); cqe != nil {
		return cqe, nil
	}
	if !r.needsFlush() {
		return nil, nil
	}
	if _, err := r.enter(0, 0, enterGetEvents, nil); err != nil {
		return nil, err
	}
	return r.peek(), nil
}

func (r *Ring) peek() *CQE {
	head := atomic.LoadUint32(r.cqHead)
	if head == atomic.LoadUint32(r.cqTail) {
		return nil
	}
	return &r.cqes[head&r.cqMask]
}

// CQReady is the number of completions in the CQ ring.
func (r *Ring) CQReady() uint32 {
	return atomic.LoadUint32(r.cqTail) - atomic.LoadUint32(r.cqHead)
}

// CQESeen marks the completion returned by PeekCQE or WaitCQE consumed.
func (r *Ring) CQESeen() { r.CQAdvance(1) }

// CQAdvance marks n completions consumed.
func (r *Ring) CQAdvance(n uint32) {
	atomic.StoreUint32(r.cqHead, atomic.LoadUint32(r.cqHead)+n)
}

// PeekBatch copies up to len(dst) completions into dst, marks them
// consumed and returns how many. It makes no system call unless the kernel
// holds overflowed or deferred completions.
func (r *Ring) PeekBatch(dst []CQE) (int, error) {
	if r.CQReady() == 0 && r.needsFlush() {
		if _, err := r.enter(0, 0, enterGetEvents, nil); err != nil {
			return 0, err
		}
	}
	return r.drain(dst), nil
}

// drain copies up to len(dst) ready completions into dst and marks them
// consumed; it never enters the kernel.
func (r *Ring) drain(dst []CQE) int {
	head := atomic.LoadUint32(r.cqHead)
	n := min(atomic.LoadUint32(r.cqTail)-head, uint32(len(dst)))
	for i := uint32(0); i < n; i++ {
		dst[i] = r.cqes[(head+i)&r.cqMask]
	}
	atomic.StoreUint32(r.cqHead, head+n)
	return int(n)
}

// WaitBatch reaps like PeekBatch, but first waits, in one system call,
// until at least min completions are ready. It is the reaping step of an
// event loop: one io_uring_enter when the CQ holds fewer than min
// completions, none otherwise.
func (r *Ring) WaitBatch(dst []CQE, min uint32) (int, error) {
	if r.closed {
		return 0, ErrClosed
	}
	if min > uint32(len(dst)) {
		min = uint32(len(dst))
	}
	for r.CQReady() < min {
		if _, err := r.enter(0, min, enterGetEvents, nil); err != nil {
			return 0, err
		}
	}
	return r.drain(dst), nil
}

// WaitCQE returns the oldest completion, blocking until one arrives. It
// submits nothing.
func (r *Ring) WaitCQE() (*CQE, error) {
	return r.WaitCQENr(1)
}

// WaitCQENr blocks until at least n completions are ready and returns the
// oldest.
func (r *Ring) WaitCQENr(n uint32) (*CQE, error) {
	for {
		if r.closed {
			return nil, ErrClosed
		}
		if r.CQReady() >= n && n > 0 {
			return r.peek(), nil
		}
		if _, err := r.enter(0, n, enterGetEvents, nil); err != nil {
			return nil, err
		}
		if cqe := r.peek(); cqe != nil && r.CQReady() >= n {
			return cqe, nil
		}
	}
}

// WaitCQETimeout is WaitCQE with a limit; it returns ErrTimeout when no
// completion arrived within d.
func (r *Ring) WaitCQETimeout(d time.Duration) (*CQE, error) {
	if cqe, err := r.PeekCQE(); cqe != nil || err != nil {
		return cqe, err
	}
	ts := kernelTimespec{sec: int64(d / time.Second), nsec: int64(d % time.Second)}
	deadline := time.Now().Add(d)
	for {
		if _, err := r.enter(0, 1, enterGetEvents, &ts); err != nil {
			return nil, err
		}
		if cqe := r.peek(); cqe != nil {
			return cqe, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, ErrTimeout
		}
		ts = kernelTimespec{sec: int64(left / time.Second), nsec: int64(left % time.Second)}
	}
}

// Dropped is the number of SQEs the kernel discarded as invalid, and
// Overflow the number of completions it could not keep (zero on kernels
// with IORING_FEAT_NODROP unless memory ran out).
func (r *Ring) Dropped() uint32 { return atomic.LoadUint32(r.sqDropped) }

// Overflow: see Dropped.
func (r *Ring) Overflow() uint32 { return atomic.LoadUint32(r.cqOverflow) }

// SetEventfdEnabled turns eventfd notification on or off without
// unregistering it.
func (r *Ring) SetEventfdEnabled(on bool) {
	for {
		old := atomic.LoadUint32(r.cqFlags)
		nv := old | cqEventfdDisabled
		if on {
			nv = old &^ cqEventfdDisabled
		}
		if atomic.CompareAndSwapUint32(r.cqFlags, old, nv) {
			return
		}
	}
}

// PrepTimeout makes sqe a timeout that completes with -ETIME after d, or
// with 0 once count other completions have been posted (count 0: time
// only). The timespec lives in the ring, tied to the SQE's slot, so the
// caller need keep nothing alive.
func (r *Ring) PrepTimeout(sqe *SQE, d time.Duration, count uint32) {
	slot := (uintptr(unsafe.Pointer(sqe)) - uintptr(unsafe.Pointer(&r.sqes[0]))) / unsafe.Sizeof(SQE{})
	if slot >= uintptr(len(r.sqes)) {
		panic(fmt.Sprintf("ioring: PrepTimeout: SQE %p is not from this ring", sqe))
	}
	ts := &r.timespecs[slot]
	ts.sec, ts.nsec = int64(d/time.Second), int64(d%time.Second)
	sqe.Opcode = OpTimeout
	sqe.Fd = -1
	sqe.Addr = uint64(uintptr(unsafe.Pointer(ts)))
	sqe.Len = 1
	sqe.Off = uint64(count)
}

// RegisterBuffers registers buffers for READ_FIXED/WRITE_FIXED (index =
// position in bufs). The ring keeps them referenced until
// UnregisterBuffers or Close.
func (r *Ring) RegisterBuffers(bufs [][]byte) error {
	if len(bufs) == 0 {
		return errors.New("ioring: RegisterBuffers: no buffers")
	}
	iovs := make([]unix.Iovec, len(bufs))
	for i, b := range bufs {
		if len(b) == 0 {
			return fmt.Errorf("ioring: RegisterBuffers: buffer %d is empty", i)
		}
		iovs[i].Base = &b[0]
		iovs[i].SetLen(len(b))
	}
	var err error
	if r.threads != nil {
		err = r.threads.registerBuffers(iovs)
	} else {
		err = r.register(registerBuffers, unsafe.Pointer(&iovs[0]), uint32(len(iovs)))
	}
	if err != nil {
		return fmt.Errorf("ioring: register %d buffers: %w", len(bufs), err)
	}
	r.registered = bufs
	return nil
}

// UnregisterBuffers drops the registered buffers.
func (r *Ring) UnregisterBuffers() error {
	var err error
	if r.threads != nil {
		err = r.threads.registerBuffers(nil)
	} else {
		err = r.register(unregisterBuffers, nil, 0)
	}
	if err != nil {
		return fmt.Errorf("ioring: unregister buffers: %w", err)
	}
	r.registered = nil
	return nil
}

// RegisterFiles registers file descriptors; an SQE with SQEFixedFile then
// names one by its index in fds.
func (r *Ring) RegisterFiles(fds []int) error {
	if len(fds) == 0 {
		return errors.New("ioring: RegisterFiles: no files")
	}
	table := make([]int32, len(fds))
	for i, fd := range fds {
		table[i] = int32(fd)
	}
	var err error
	if r.threads != nil {
		err = r.threads.registerFiles(table)
	} else {
		err = r.register(registerFiles, unsafe.Pointer(&table[0]), uint32(len(table)))
	}
	if err != nil {
		return fmt.Errorf("ioring: register %d files: %w", len(fds), err)
	}
	return nil
}

// UnregisterFiles drops the registered files.
func (r *Ring) UnregisterFiles() error {
	var err error
	if r.threads != nil {
		err = r.threads.registerFiles(nil)
	} else {
		err = r.register(unregisterFiles, nil, 0)
	}
	if err != nil {
		return fmt.Errorf("ioring: unregister files: %w", err)
	}
	return nil
}

// RegisterEventfd makes the backend signal fd (an eventfd) whenever it
// posts a completion, so an event loop can wait on it.
func (r *Ring) RegisterEventfd(fd int) error {
	var err error
	if r.threads != nil {
		err = r.threads.registerEventfd(fd)
	} else {
		v := int32(fd)
		err = r.register(registerEventfd, unsafe.Pointer(&v), 1)
	}
	if err != nil {
		return fmt.Errorf("ioring: register eventfd %d: %w", fd, err)
	}
	return nil
}

// UnregisterEventfd stops eventfd notification.
func (r *Ring) UnregisterEventfd() error {
	var err error
	if r.threads != nil {
		err = r.threads.registerEventfd(-1)
	} else {
		err = r.register(unregisterEventfd, nil, 0)
	}
	if err != nil {
		return fmt.Errorf("ioring: unregister eventfd: %w", err)
	}
	return nil
}

// Close releases the ring. In-flight operations of the io_uring backend are
// cancelled by the kernel; the thread backend finishes those it started.
func (r *Ring) Close() error {
	if r.closed {
		return ErrClosed
	}
	r.closed = true
	if r.threads != nil {
		r.threads.close()
		return nil
	}
	var first error
	for _, m := range r.mmaps {
		if err := unix.Munmap(m); err != nil && first == nil {
			first = err
		}
	}
	if err := unix.Close(r.fd); err != nil && first == nil {
		first = err
	}
	r.mmaps, r.registered = nil, nil
	if first != nil {
		return fmt.Errorf("ioring: close: %w", first)
	}
	return nil
}
