package ioring

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The Prep methods fill an SQE obtained from GetSQE for one operation.
// They set every field the operation reads; UserData, Flags and IOPrio are
// left for the caller. Buffers passed in must stay alive, and must not be
// on a goroutine stack, until the completion is reaped.

func bufAddr(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(&b[0])))
}

func iovAddr(iovs []unix.Iovec) uint64 {
	if len(iovs) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(&iovs[0])))
}

func (s *SQE) prepRW(op Opcode, fd int32, addr uint64, n uint32, off uint64) {
	s.Opcode, s.Fd, s.Addr, s.Len, s.Off = op, fd, addr, n, off
}

// PrepNop makes s a no-op that completes with 0.
func (s *SQE) PrepNop() { s.Opcode = OpNop; s.Fd = -1 }

// PrepRead reads len(buf) bytes at off from fd into buf.
func (s *SQE) PrepRead(fd int, buf []byte, off uint64) {
	s.prepRW(OpRead, int32(fd), bufAddr(buf), uint32(len(buf)), off)
}

// PrepWrite writes buf to fd at off.
func (s *SQE) PrepWrite(fd int, buf []byte, off uint64) {
	s.prepRW(OpWrite, int32(fd), bufAddr(buf), uint32(len(buf)), off)
}

// PrepReadFixed reads into buf, which must lie inside registered buffer
// index bufIndex.
func (s *SQE) PrepReadFixed(fd int, buf []byte, off uint64, bufIndex uint16) {
	s.prepRW(OpReadFixed, int32(fd), bufAddr(buf), uint32(len(buf)), off)
	s.BufIndex = bufIndex
}

// PrepWriteFixed writes buf, which must lie inside registered buffer
// index bufIndex.
func (s *SQE) PrepWriteFixed(fd int, buf []byte, off uint64, bufIndex uint16) {
	s.prepRW(OpWriteFixed, int32(fd), bufAddr(buf), uint32(len(buf)), off)
	s.BufIndex = bufIndex
}

// PrepReadv reads into the buffers described by iovs (scatter).
func (s *SQE) PrepReadv(fd int, iovs []unix.Iovec, off uint64) {
	s.prepRW(OpReadv, int32(fd), iovAddr(iovs), uint32(len(iovs)), off)
}

// PrepWritev writes the buffers described by iovs (gather).
func (s *SQE) PrepWritev(fd int, iovs []unix.Iovec, off uint64) {
	s.prepRW(OpWritev, int32(fd), iovAddr(iovs), uint32(len(iovs)), off)
}

// FsyncFlags select what PrepFsync flushes.
type FsyncFlags uint32

// FsyncDatasync flushes data and only the metadata needed to read it back,
// like fdatasync(2).
const FsyncDatasync FsyncFlags = fsyncDatasyncFlag

// PrepFsync flushes fd, as fsync(2) or, with FsyncDatasync, fdatasync(2).
func (s *SQE) PrepFsync(fd int, flags FsyncFlags) {
	s.prepRW(OpFsync, int32(fd), 0, 0, 0)
	s.OpFlags = uint32(flags)
}

// PrepPollAdd makes s a one-shot poll of fd: it completes once fd is
// ready for one of events (unix.POLLIN, ...), at once if it is already,
// with the ready events as the result. The io_uring backend only.
func (s *SQE) PrepPollAdd(fd int, events uint32) {
	s.prepRW(OpPollAdd, int32(fd), 0, 0, 0)
	s.OpFlags = events // poll32_events, little-endian
}

// SetLink chains the next SQE to this one: it starts only after this one
// completes successfully, and is cancelled (-ECANCELED) otherwise. A short
// read or write counts as a failure.
func (s *SQE) SetLink() { s.Flags |= SQEIOLink }

// SetFixedFile marks Fd as an index into the registered files.
func (s *SQE) SetFixedFile() { s.Flags |= SQEFixedFile }
