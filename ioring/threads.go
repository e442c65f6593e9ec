package ioring

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The thread backend plays the kernel's side of the ring protocol: enter
// consumes SQEs from the same SQ layout, a small pool of worker goroutines
// runs them with blocking system calls, and completions are posted into
// the same CQ layout, so a Ring behaves the same on either backend.
//
// Semantics kept from io_uring: linked SQEs run in order and a failure or
// a short transfer cancels the rest of the chain with -ECANCELED (hard
// links carry on); completions that do not fit the CQ are held and
// flushed on the next enter (IORING_FEAT_NODROP); an eventfd is signalled
// per completion; fixed files and buffers are checked like the kernel
// does (-EBADF, -EFAULT).

// threadsOps are the opcodes the thread backend executes.
var threadsOps = []Opcode{OpNop, OpReadv, OpWritev, OpFsync, OpReadFixed, OpWriteFixed, OpTimeout, OpRead, OpWrite}

type threadsRings struct {
	sqHead, sqTail, sqFlags, sqDropped  uint32
	cqHead, cqTail, cqOverflow, cqFlags uint32
}

type chain struct {
	sqes []SQE
}

type countTimeout struct {
	userData uint64
	target   uint64
	timer    *time.Timer
	done     bool
}

type threads struct {
	ring    *Ring
	rings   *threadsRings
	workers int

	// mu guards the kernel-side state: CQ production, overflow, timeouts
	// and registrations.
	mu       sync.Mutex
	cond     *sync.Cond // signalled when completions are posted
	overflow []CQE
	posted   uint64 // completions posted, for count timeouts
	timeouts []*countTimeout
	bufs     []unix.Iovec
	files    []int32
	eventfd  int
	closed   bool
	waiting  int

	// qmu guards the work queue between enter and the workers.
	qmu   sync.Mutex
	qcond *sync.Cond
	queue []*chain
	free  []*chain
	wg    sync.WaitGroup
}

func newThreadsRing(opts Options, reason string) (*Ring, error) {
	t := &threads{workers: opts.Workers, rings: &threadsRings{}, eventfd: -1}
	t.cond = sync.NewCond(&t.mu)
	t.qcond = sync.NewCond(&t.qmu)
	rg := t.rings
	r := &Ring{
		backend: BackendThreads, reason: reason, fd: -1, threads: t,
		sqHead: &rg.sqHead, sqTail: &rg.sqTail, sqFlags: &rg.sqFlags, sqDropped: &rg.sqDropped,
		sqMask: opts.Entries - 1, sqEntries: opts.Entries,
		sqes:      make([]SQE, opts.Entries),
		timespecs: make([]kernelTimespec, opts.Entries),
		cqHead:    &rg.cqHead, cqTail: &rg.cqTail, cqOverflow: &rg.cqOverflow, cqFlags: &rg.cqFlags,
		cqMask: opts.CQEntries - 1, cqEntries: opts.CQEntries,
		cqes: make([]CQE, opts.CQEntries),
	}
	t.ring = r
	for i := 0; i < t.workers; i++ {
		t.wg.Add(1)
		go t.work()
	}
	return r, nil
}

func (t *threads) close() {
	t.qmu.Lock()
	t.closed = true
	t.qcond.Broadcast()
	t.qmu.Unlock()
	t.wg.Wait()
	t.mu.Lock()
	for _, to := range t.timeouts {
		to.timer.Stop()
	}
	t.timeouts = nil
	t.mu.Unlock()
}

// enter is io_uring_enter: consume up to toSubmit SQEs, then, with
// GETEVENTS, wait until minComplete completions are in the CQ ring.
func (t *threads) enter(toSubmit, minComplete, flags uint32, ts *kernelTimespec) (int, error) {
	r := t.ring
	t.mu.Lock()
	t.flushOverflowLocked()
	t.mu.Unlock()

	head := atomic.LoadUint32(r.sqHead)
	avail := atomic.LoadUint32(r.sqTail) - head
	n := min(toSubmit, avail)
	for i := uint32(0); i < n; {
		c := t.getChain()
		for {
			sqe := r.sqes[(head+i)&r.sqMask]
			i++
			c.sqes = append(c.sqes, sqe)
			if sqe.Opcode == OpTimeout && len(c.sqes) == 1 && sqe.Flags&(SQEIOLink|SQEIOHardlink) == 0 {
				// A lone timeout is armed here rather than parked on a worker.
				c.sqes = c.sqes[:0]
				t.putChain(c)
				t.armTimeout(&sqe, r.timespecOf(&sqe))
				c = nil
				break
			}
			if sqe.Flags&(SQEIOLink|SQEIOHardlink) == 0 || i == n {
				break
			}
		}
		if c != nil {
			// A timeout inside a chain is read now: its slot may be reused
			// once the SQ head moves past it.
			for k := range c.sqes {
				if c.sqes[k].Opcode == OpTimeout {
					ts := r.timespecOf(&c.sqes[k])
					c.sqes[k].Addr3 = uint64(ts.sec*int64(time.Second) + ts.nsec)
				}
			}
			t.dispatch(c)
		}
	}
	atomic.StoreUint32(r.sqHead, head+n)

	if flags&enterGetEvents == 0 || minComplete == 0 {
		return int(n), nil
	}
	var deadline time.Time
	var timer *time.Timer
	if ts != nil {
		d := time.Duration(ts.sec)*time.Second + time.Duration(ts.nsec)
		deadline = time.Now().Add(d)
		timer = time.AfterFunc(d, func() {
			t.mu.Lock()
			t.cond.Broadcast()
			t.mu.Unlock()
		})
		defer timer.Stop()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		t.flushOverflowLocked()
		if atomic.LoadUint32(r.cqTail)-atomic.LoadUint32(r.cqHead) >= minComplete {
			return int(n), nil
		}
		if ts != nil && !time.Now().Before(deadline) {
			return int(n), unix.ETIME
		}
		if t.closed {
			return int(n), unix.EBADF
		}
		t.waiting++
		t.cond.Wait()
		t.waiting--
	}
}

// timespecOf returns the timeout an SQE points at: a slot of r.timespecs,
// where PrepTimeout puts it. Any other address reads as a zero timeout.
func (r *Ring) timespecOf(sqe *SQE) kernelTimespec {
	base := uint64(uintptr(unsafe.Pointer(&r.timespecs[0])))
	size := uint64(unsafe.Sizeof(kernelTimespec{}))
	if sqe.Addr < base || (sqe.Addr-base)%size != 0 || (sqe.Addr-base)/size >= uint64(len(r.timespecs)) {
		return kernelTimespec{}
	}
	return r.timespecs[(sqe.Addr-base)/size]
}

// pointerAt turns an address taken from an SQE back into a pointer. NB: the
// submitter keeps that memory alive and unmoved until the completion (the
// Ring's contract), which is what makes this sound; it is only used for
// iovec arrays, which the thread backend must read as the kernel would.
func pointerAt(addr uint64) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&addr))
}

func (t *threads) getChain() *chain {
	t.qmu.Lock()
	defer t.qmu.Unlock()
	if n := len(t.free); n > 0 {
		c := t.free[n-1]
		t.free = t.free[:n-1]
		return c
	}
	return &chain{sqes: make([]SQE, 0, 4)}
}

func (t *threads) putChain(c *chain) {
	c.sqes = c.sqes[:0]
	t.qmu.Lock()
	t.free = append(t.free, c)
	t.qmu.Unlock()
}

func (t *threads) dispatch(c *chain) {
	t.qmu.Lock()
	t.queue = append(t.queue, c)
	t.qcond.Signal()
	t.qmu.Unlock()
}

func (t *threads) work() {
	defer t.wg.Done()
	for {
		t.qmu.Lock()
		for len(t.queue) == 0 && !t.closed {
			t.qcond.Wait()
		}
		if len(t.queue) == 0 {
			t.qmu.Unlock()
			return
		}
		c := t.queue[0]
		copy(t.queue, t.queue[1:])
		t.queue = t.queue[:len(t.queue)-1]
		t.qmu.Unlock()
		t.runChain(c)
		t.putChain(c)
	}
}

func (t *threads) runChain(c *chain) {
	failed := false
	for i := range c.sqes {
		sqe := &c.sqes[i]
		if failed {
			t.post(sqe.UserData, -int32(unix.ECANCELED), sqe.Flags)
			continue
		}
		res := t.execute(sqe)
		t.post(sqe.UserData, res, sqe.Flags)
		if sqe.Flags&SQEIOHardlink != 0 {
			continue
		}
		if res < 0 || (isRW(sqe.Opcode) && uint32(res) != rwLen(sqe)) {
			failed = true
		}
	}
}

func isRW(op Opcode) bool {
	switch op {
	case OpRead, OpWrite, OpReadFixed, OpWriteFixed, OpReadv, OpWritev:
		return true
	}
	return false
}

func rwLen(sqe *SQE) uint32 {
	if sqe.Opcode == OpReadv || sqe.Opcode == OpWritev {
		iovs := unsafe.Slice((*unix.Iovec)(pointerAt(sqe.Addr)), sqe.Len)
		var n uint64
		for _, v := range iovs {
			n += v.Len
		}
		return uint32(n)
	}
	return sqe.Len
}

func (t *threads) fileOf(sqe *SQE) (int, int32) {
	if sqe.Flags&SQEFixedFile == 0 {
		return int(sqe.Fd), 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if sqe.Fd < 0 || int(sqe.Fd) >= len(t.files) || t.files[sqe.Fd] < 0 {
		return -1, -int32(unix.EBADF)
	}
	return int(t.files[sqe.Fd]), 0
}

func (t *threads) checkFixed(sqe *SQE) int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if int(sqe.BufIndex) >= len(t.bufs) {
		return -int32(unix.EFAULT)
	}
	b := t.bufs[sqe.BufIndex]
	start := uint64(uintptr(unsafe.Pointer(b.Base)))
	if sqe.Addr < start || sqe.Addr+uint64(sqe.Len) > start+b.Len {
		return -int32(unix.EFAULT)
	}
	return 0
}

// execute runs one SQE with blocking system calls and returns its result
// as the kernel would put it in cqe->res.
func (t *threads) execute(sqe *SQE) int32 {
	if sqe.Flags&^sqeFlagsKnownMaskV != 0 {
		return -int32(unix.EINVAL)
	}
	switch sqe.Opcode {
	case OpNop:
		return 0
	case OpTimeout:
		time.Sleep(time.Duration(sqe.Addr3))
		return -int32(unix.ETIME)
	}
	fd, res := t.fileOf(sqe)
	if res < 0 {
		return res
	}
	var trap uintptr
	a3 := uintptr(sqe.Len)
	switch sqe.Opcode {
	case OpRead:
		trap = unix.SYS_PREAD64
	case OpWrite:
		trap = unix.SYS_PWRITE64
	case OpReadFixed, OpWriteFixed:
		if res := t.checkFixed(sqe); res < 0 {
			return res
		}
		trap = unix.SYS_PREAD64
		if sqe.Opcode == OpWriteFixed {
			trap = unix.SYS_PWRITE64
		}
	case OpReadv:
		trap = unix.SYS_PREADV
	case OpWritev:
		trap = unix.SYS_PWRITEV
	case OpFsync:
		if sqe.OpFlags&^fsyncDatasyncFlag != 0 {
			return -int32(unix.EINVAL)
		}
		trap = unix.SYS_FSYNC
		if sqe.OpFlags&fsyncDatasyncFlag != 0 {
			trap = unix.SYS_FDATASYNC
		}
		return retryEINTR(trap, uintptr(fd), 0, 0, 0)
	default:
		return -int32(unix.EINVAL)
	}
	if sqe.OpFlags != 0 {
		// RWF_* flags need preadv2/pwritev2; the fallback does not carry them.
		return -int32(unix.EOPNOTSUPP)
	}
	if sqe.Off == ^uint64(0) {
		// Offset -1: use and advance the file position, like read(2).
		switch trap {
		case unix.SYS_PREAD64:
			return retryEINTR(unix.SYS_READ, uintptr(fd), uintptr(sqe.Addr), a3, 0)
		case unix.SYS_PWRITE64:
			return retryEINTR(unix.SYS_WRITE, uintptr(fd), uintptr(sqe.Addr), a3, 0)
		case unix.SYS_PREADV:
			return retryEINTR(unix.SYS_READV, uintptr(fd), uintptr(sqe.Addr), a3, 0)
		default:
			return retryEINTR(unix.SYS_WRITEV, uintptr(fd), uintptr(sqe.Addr), a3, 0)
		}
	}
	return retryEINTR(trap, uintptr(fd), uintptr(sqe.Addr), a3, uintptr(sqe.Off))
}

func retryEINTR(trap, a1, a2, a3, a4 uintptr) int32 {
	for {
		n, _, errno := unix.Syscall6(trap, a1, a2, a3, a4, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return -int32(errno)
		}
		return int32(n)
	}
}

// armTimeout starts a stand-alone timeout: -ETIME after the duration, or 0
// once Off other completions have been posted.
func (t *threads) armTimeout(sqe *SQE, ts kernelTimespec) {
	d := time.Duration(ts.sec)*time.Second + time.Duration(ts.nsec)
	to := &countTimeout{userData: sqe.UserData}
	t.mu.Lock()
	defer t.mu.Unlock()
	to.timer = time.AfterFunc(d, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if to.done {
			return
		}
		to.done = true
		t.removeTimeoutLocked(to)
		t.postLocked(to.userData, -int32(unix.ETIME), 0, false)
	})
	if sqe.Off > 0 {
		to.target = t.posted + sqe.Off
		t.timeouts = append(t.timeouts, to)
	}
}

func (t *threads) removeTimeoutLocked(to *countTimeout) {
	for i, x := range t.timeouts {
		if x == to {
			t.timeouts = append(t.timeouts[:i], t.timeouts[i+1:]...)
			return
		}
	}
}

func (t *threads) post(userData uint64, res int32, sqeFlags uint8) {
	if res >= 0 && sqeFlags&SQECQESkipSuccess != 0 {
		return
	}
	t.mu.Lock()
	t.postLocked(userData, res, 0, true)
	t.mu.Unlock()
}

// postLocked appends a completion to the CQ ring, or to the overflow list
// when the ring is full. counts says whether it counts toward count
// timeouts (timeouts themselves do not).
func (t *threads) postLocked(userData uint64, res int32, flags uint32, counts bool) {
	r := t.ring
	cqe := CQE{UserData: userData, Res: res, Flags: flags}
	tail := atomic.LoadUint32(r.cqTail)
	if len(t.overflow) == 0 && tail-atomic.LoadUint32(r.cqHead) < r.cqEntries {
		r.cqes[tail&r.cqMask] = cqe
		atomic.StoreUint32(r.cqTail, tail+1)
	} else {
		t.overflow = append(t.overflow, cqe)
		atomic.OrUint32(r.sqFlags, sqCQOverflow)
	}
	if counts {
		t.posted++
		for i := 0; i < len(t.timeouts); {
			to := t.timeouts[i]
			if t.posted >= to.target && !to.done {
				to.done = true
				to.timer.Stop()
				t.timeouts = append(t.timeouts[:i], t.timeouts[i+1:]...)
				t.postLocked(to.userData, 0, 0, false)
				continue
			}
			i++
		}
	}
	if t.eventfd >= 0 && atomic.LoadUint32(r.cqFlags)&cqEventfdDisabled == 0 {
		one := uint64(1)
		unix.Write(t.eventfd, (*[8]byte)(unsafe.Pointer(&one))[:])
	}
	if t.waiting > 0 {
		t.cond.Broadcast()
	}
}

func (t *threads) flushOverflowLocked() {
	r := t.ring
	if len(t.overflow) == 0 {
		return
	}
	tail := atomic.LoadUint32(r.cqTail)
	head := atomic.LoadUint32(r.cqHead)
	n := 0
	for n < len(t.overflow) && tail-head < r.cqEntries {
		r.cqes[tail&r.cqMask] = t.overflow[n]
		tail++
		n++
	}
	atomic.StoreUint32(r.cqTail, tail)
	t.overflow = append(t.overflow[:0], t.overflow[n:]...)
	if len(t.overflow) == 0 {
		atomic.AndUint32(r.sqFlags, ^sqCQOverflow)
	}
}

func (t *threads) registerBuffers(iovs []unix.Iovec) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if iovs != nil && t.bufs != nil {
		return unix.EBUSY
	}
	if iovs == nil && t.bufs == nil {
		return unix.ENXIO
	}
	t.bufs = iovs
	return nil
}

func (t *threads) registerFiles(fds []int32) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if fds != nil && t.files != nil {
		return unix.EBUSY
	}
	if fds == nil && t.files == nil {
		return unix.ENXIO
	}
	t.files = fds
	return nil
}

func (t *threads) registerEventfd(fd int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if fd >= 0 && t.eventfd >= 0 {
		return unix.EBUSY
	}
	if fd < 0 && t.eventfd < 0 {
		return unix.ENXIO
	}
	t.eventfd = fd
	return nil
}
