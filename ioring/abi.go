package ioring

// Kernel ABI of io_uring, from include/uapi/linux/io_uring.h. These values
// and layouts are fixed by the kernel and never renumbered; abi_test.go
// checks the struct layouts against the header's offsets.

import "unsafe"

// Opcode is an io_uring operation code (enum io_uring_op).
type Opcode uint8

// Opcodes in kernel numbering.
const (
	OpNop         Opcode = 0
	OpReadv       Opcode = 1
	OpWritev      Opcode = 2
	OpFsync       Opcode = 3
	OpReadFixed   Opcode = 4
	OpWriteFixed  Opcode = 5
	OpPollAdd     Opcode = 6
	OpTimeout     Opcode = 11
	OpLinkTimeout Opcode = 15
	OpRead        Opcode = 22
	OpWrite       Opcode = 23
	opLastKnown   Opcode = 23 // highest opcode this package names
)

// SQE flags (sqe->flags).
const (
	SQEFixedFile       uint8 = 1 << 0 // Fd is an index into the registered files
	SQEIODrain         uint8 = 1 << 1 // issue after all earlier SQEs complete
	SQEIOLink          uint8 = 1 << 2 // next SQE starts only after this one succeeds
	SQEIOHardlink      uint8 = 1 << 3 // like SQEIOLink, but the chain survives failure
	SQEAsync           uint8 = 1 << 4 // always go through the async worker
	SQECQESkipSuccess  uint8 = 1 << 6 // post no CQE on success
	sqeFlagsKnownMaskV uint8 = SQEFixedFile | SQEIODrain | SQEIOLink | SQEIOHardlink | SQEAsync | SQECQESkipSuccess
)

// io_uring_setup flags.
const (
	setupIOPoll       uint32 = 1 << 0
	setupSQPoll       uint32 = 1 << 1
	setupSQAff        uint32 = 1 << 2
	setupCQSize       uint32 = 1 << 3
	setupClamp        uint32 = 1 << 4
	setupSubmitAll    uint32 = 1 << 7
	setupCoopTaskrun  uint32 = 1 << 8
	setupTaskrunFlag  uint32 = 1 << 9
	setupSingleIssuer uint32 = 1 << 12
	setupDeferTaskrun uint32 = 1 << 13
)

// Feature bits returned by io_uring_setup in params.features.
const (
	featSingleMmap uint32 = 1 << 0
	featNoDrop     uint32 = 1 << 1
	featExtArg     uint32 = 1 << 8
)

// SQ ring flags (sq_ring->flags), written by the kernel.
const (
	sqNeedWakeup uint32 = 1 << 0
	sqCQOverflow uint32 = 1 << 1
	sqTaskrun    uint32 = 1 << 2
)

// CQ ring flags (cq_ring->flags), written by the application.
const cqEventfdDisabled uint32 = 1 << 0

// io_uring_enter flags.
const (
	enterGetEvents uint32 = 1 << 0
	enterSQWakeup  uint32 = 1 << 1
	enterSQWait    uint32 = 1 << 2
	enterExtArg    uint32 = 1 << 3
)

// io_uring_register opcodes.
const (
	registerBuffers     = 0
	unregisterBuffers   = 1
	registerFiles       = 2
	unregisterFiles     = 3
	registerEventfd     = 4
	unregisterEventfd   = 5
	registerProbe       = 8
	registerRingFds     = 20
	unregisterRingFds   = 21
	probeOpSupported    = 1 << 0
	probeOpsMax         = 256
	probeHeaderBytes    = 16
	probeOpBytes        = 8
	fsyncDatasyncFlag   = 1 << 0
	timeoutAbsFlag      = 1 << 0
	timeoutETimeSuccess = 1 << 5
)

// mmap offsets of the rings.
const (
	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000
)

// SQE is a submission queue entry (struct io_uring_sqe, 64 bytes). The
// union members the package uses are named by their most common meaning;
// prep methods fill them for each opcode.
type SQE struct {
	Opcode      Opcode
	Flags       uint8
	IOPrio      uint16
	Fd          int32
	Off         uint64 // offset; addr2; or the completion count of a timeout
	Addr        uint64 // buffer, iovec array or timespec address
	Len         uint32 // bytes, iovec count, or 1 for a timeout
	OpFlags     uint32 // rw_flags, fsync_flags, timeout_flags, ...
	UserData    uint64
	BufIndex    uint16 // registered buffer index for READ_FIXED/WRITE_FIXED
	Personality uint16
	FileIndex   uint32 // splice_fd_in / file_index
	Addr3       uint64
	pad2        uint64
}

// CQE is a completion queue entry (struct io_uring_cqe, 16 bytes). Res is
// the operation's result: a byte count or other non-negative value on
// success, a negated errno on failure.
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqringOffsets
	cqOff                                                                  cqringOffsets
}

// kernelTimespec is struct __kernel_timespec.
type kernelTimespec struct {
	sec, nsec int64
}

// getEventsArg is struct io_uring_getevents_arg, used with enterExtArg.
type getEventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	pad       uint32
	ts        uint64
}

// Compile-time size checks: a mismatch makes the array length negative.
var (
	_ [unsafe.Sizeof(SQE{}) - 64]byte
	_ [64 - unsafe.Sizeof(SQE{})]byte
	_ [unsafe.Sizeof(CQE{}) - 16]byte
	_ [16 - unsafe.Sizeof(CQE{})]byte
	_ [unsafe.Sizeof(params{}) - 120]byte
	_ [120 - unsafe.Sizeof(params{})]byte
)
