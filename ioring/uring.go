package ioring

import (
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sysSetup is io_uring_setup(2). Tests replace it to simulate a kernel
// without io_uring (ENOSYS) or a seccomp filter that forbids it (EPERM).
var sysSetup = func(entries uint32, p *params) (int, error) {
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// optionalFlags lists setup flags in the order New gives them up when the
// kernel answers EINVAL: newest first.
var optionalFlags = []uint32{setupDeferTaskrun, setupTaskrunFlag, setupCoopTaskrun, setupSingleIssuer, setupSubmitAll}

// Features is what the running kernel's io_uring offers, found by trying
// each optional setup flag on a small ring and by probing opcodes.
type Features struct {
	Available    bool  // io_uring_setup works at all
	Err          error // why not, when !Available
	SQPoll       bool
	SingleIssuer bool
	CoopTaskrun  bool
	TaskrunFlag  bool
	DeferTaskrun bool
	SubmitAll    bool
	ExtArg       bool // waits with a timeout (IORING_FEAT_EXT_ARG)
	NoDrop       bool // overflowed completions are kept (IORING_FEAT_NODROP)
	Probe        *Probe
}

var (
	detectOnce sync.Once
	detected   Features
)

// Detect reports which io_uring features this kernel grants this process.
// The answer is computed once and cached.
func Detect() Features {
	detectOnce.Do(func() { detected = detect() })
	return detected
}

func detect() Features {
	var f Features
	try := func(flags uint32) (uint32, bool) {
		p := params{flags: flags}
		fd, err := sysSetup(2, &p)
		if err != nil {
			if flags == 0 {
				f.Err = err
			}
			return 0, false
		}
		unix.Close(fd)
		return p.features, true
	}
	feats, ok := try(0)
	if !ok {
		return f
	}
	f.Available = true
	f.ExtArg = feats&featExtArg != 0
	f.NoDrop = feats&featNoDrop != 0
	_, f.SQPoll = try(setupSQPoll)
	_, f.SingleIssuer = try(setupSingleIssuer)
	_, f.CoopTaskrun = try(setupCoopTaskrun)
	_, f.TaskrunFlag = try(setupCoopTaskrun | setupTaskrunFlag)
	_, f.DeferTaskrun = try(setupSingleIssuer | setupDeferTaskrun)
	_, f.SubmitAll = try(setupSubmitAll)
	if r, err := newURing(Options{Entries: 2, CQEntries: 4, Workers: 1}); err == nil {
		f.Probe, _ = r.Probe()
		r.Close()
	}
	return f
}

func newURing(opts Options) (*Ring, error) {
	var flags uint32 = setupCQSize
	if opts.SQPoll {
		flags |= setupSQPoll
		if opts.SQPollCPU >= 0 {
			flags |= setupSQAff
		}
	}
	if opts.SingleIssuer {
		flags |= setupSingleIssuer
	}
	if opts.CoopTaskrun {
		flags |= setupCoopTaskrun | setupTaskrunFlag
	}
	if opts.DeferTaskrun {
		flags |= setupDeferTaskrun | setupTaskrunFlag
	}
	var p params
	var fd int
	var err error
	for {
		p = params{flags: flags, cqEntries: opts.CQEntries}
		if opts.SQPoll {
			p.sqThreadCPU = uint32(max(opts.SQPollCPU, 0))
			p.sqThreadIdle = uint32(opts.SQPollIdle / time.Millisecond)
		}
		fd, err = sysSetup(opts.Entries, &p)
		if err != unix.EINVAL {
			break
		}
		// Drop the newest optional flag still set and try again: an
		// older kernel rejects flags it does not know with EINVAL.
		dropped := false
		for _, f := range optionalFlags {
			if flags&f != 0 {
				flags &^= f
				if f == setupCoopTaskrun || f == setupDeferTaskrun {
					flags &^= setupTaskrunFlag
				}
				dropped = true
				break
			}
		}
		if !dropped {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ioring: io_uring_setup(entries=%d, flags=%s): %w", opts.Entries, orNone(setupFlagNames(flags)), err)
	}
	r := &Ring{backend: BackendIOUring, fd: fd, flags: flags, feats: p.features, rawWait: opts.DedicatedThread}
	if err := r.mapRings(&p); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func (r *Ring) mapRings(p *params) error {
	sqSize := uintptr(p.sqOff.array) + uintptr(p.sqEntries)*4
	cqSize := uintptr(p.cqOff.cqes) + uintptr(p.cqEntries)*unsafe.Sizeof(CQE{})
	if p.features&featSingleMmap != 0 {
		sqSize = max(sqSize, cqSize)
		cqSize = sqSize
	}
	mmap := func(off int64, size uintptr, what string) ([]byte, error) {
		m, err := unix.Mmap(r.fd, off, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return nil, fmt.Errorf("ioring: mmap %s (%d bytes): %w", what, size, err)
		}
		r.mmaps = append(r.mmaps, m)
		return m, nil
	}
	sq, err := mmap(offSQRing, sqSize, "SQ ring")
	if err != nil {
		return err
	}
	cq := sq
	if p.features&featSingleMmap == 0 {
		if cq, err = mmap(offCQRing, cqSize, "CQ ring"); err != nil {
			return err
		}
	}
	sqeMem, err := mmap(offSQEs, uintptr(p.sqEntries)*unsafe.Sizeof(SQE{}), "SQEs")
	if err != nil {
		return err
	}
	u32 := func(m []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&m[off])) }
	r.sqHead, r.sqTail = u32(sq, p.sqOff.head), u32(sq, p.sqOff.tail)
	r.sqFlags, r.sqDropped = u32(sq, p.sqOff.flags), u32(sq, p.sqOff.dropped)
	r.sqMask, r.sqEntries = *u32(sq, p.sqOff.ringMask), *u32(sq, p.sqOff.ringEntries)
	array := unsafe.Slice(u32(sq, p.sqOff.array), r.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	r.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(&sqeMem[0])), r.sqEntries)
	r.sqeTail = *r.sqTail
	r.timespecs = make([]kernelTimespec, r.sqEntries)
	r.cqHead, r.cqTail = u32(cq, p.cqOff.head), u32(cq, p.cqOff.tail)
	r.cqOverflow, r.cqFlags = u32(cq, p.cqOff.overflow), u32(cq, p.cqOff.flags)
	r.cqMask, r.cqEntries = *u32(cq, p.cqOff.ringMask), *u32(cq, p.cqOff.ringEntries)
	r.cqes = unsafe.Slice((*CQE)(unsafe.Pointer(&cq[p.cqOff.cqes])), r.cqEntries)
	return nil
}

func (r *Ring) uringEnter(toSubmit, minComplete, flags uint32, ts *kernelTimespec) (int, error) {
	var argp unsafe.Pointer
	var argsz uintptr
	var arg getEventsArg
	if ts != nil {
		if r.feats&featExtArg == 0 {
			return 0, errors.New("ioring: waiting with a timeout needs IORING_FEAT_EXT_ARG (Linux 5.11)")
		}
		arg.ts = uint64(uintptr(unsafe.Pointer(ts)))
		argp, argsz = unsafe.Pointer(&arg), unsafe.Sizeof(arg)
		flags |= enterExtArg
	}
	var n uintptr
	var errno unix.Errno
	if minComplete == 0 || r.rawWait {
		// Submission and non-waiting reaping do not sleep: keep the P
		// rather than pay the scheduler's hand-off for a short call.
		n, _, errno = unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(minComplete), uintptr(flags), uintptr(argp), argsz)
	} else {
		// A wait may sleep: tell the scheduler so it can run other
		// goroutines on this P meanwhile.
		n, _, errno = unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(minComplete), uintptr(flags), uintptr(argp), argsz)
	}
	if errno != 0 {
		return int(n), errno
	}
	return int(n), nil
}

func (r *Ring) register(op uintptr, arg unsafe.Pointer, nr uint32) error {
	for {
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), op, uintptr(arg), uintptr(nr), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

// Probe says which opcodes the backend supports.
type Probe struct {
	LastOp    Opcode
	supported [probeOpsMax]bool
}

// Supported reports whether op is supported.
func (p *Probe) Supported(op Opcode) bool { return p.supported[op] }

// Probe asks the backend which opcodes it supports.
func (r *Ring) Probe() (*Probe, error) {
	if r.probe != nil {
		return r.probe, nil
	}
	p := &Probe{}
	if r.threads != nil {
		for _, op := range threadsOps {
			p.supported[op] = true
			p.LastOp = max(p.LastOp, op)
		}
		r.probe = p
		return p, nil
	}
	buf := make([]byte, probeHeaderBytes+probeOpsMax*probeOpBytes)
	if err := r.register(registerProbe, unsafe.Pointer(&buf[0]), probeOpsMax); err != nil {
		return nil, fmt.Errorf("ioring: probe opcodes: %w", err)
	}
	p.LastOp = Opcode(buf[0])
	n := int(buf[1])
	for i := 0; i < n && i < probeOpsMax; i++ {
		op := buf[probeHeaderBytes+i*probeOpBytes]
		flags := uint16(buf[probeHeaderBytes+i*probeOpBytes+2]) | uint16(buf[probeHeaderBytes+i*probeOpBytes+3])<<8
		if flags&probeOpSupported != 0 {
			p.supported[op] = true
		}
	}
	r.probe = p
	return p, nil
}
