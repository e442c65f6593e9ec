package ioring

import (
	"fmt"
	"io"
	"syscall"

	"github.com/ncw/directio"
	"golang.org/x/sys/unix"
)

// syncUserData marks the completions of the synchronous helpers.
const syncUserData = 0x5359_4E43_0000_0000 // "SYNC"

// do runs one prepared operation to completion and returns its result. It
// is for setup paths and tests, not the data path: the ring must have no
// other operation in flight.
func (r *Ring) do(prep func(*SQE)) (int32, error) {
	sqe := r.GetSQE()
	if sqe == nil {
		if _, err := r.Submit(); err != nil {
			return 0, err
		}
		if sqe = r.GetSQE(); sqe == nil {
			return 0, ErrSQFull
		}
	}
	prep(sqe)
	sqe.UserData = syncUserData
	if _, err := r.SubmitAndWait(1); err != nil {
		return 0, err
	}
	for {
		cqe, err := r.WaitCQE()
		if err != nil {
			return 0, err
		}
		ud, res := cqe.UserData, cqe.Res
		r.CQESeen()
		if ud == syncUserData {
			return res, nil
		}
		// NB: a completion of someone else's operation means the caller
		// broke the precondition; dropping it would lose a result.
		panic(fmt.Sprintf("ioring: synchronous helper reaped foreign completion user_data=%#x res=%d", ud, res))
	}
}

// ReadAt reads len(buf) bytes from fd at off through the ring, resubmitting
// after short reads. It returns io.ErrUnexpectedEOF (or io.EOF when nothing
// was read) if the file ends first. The ring must have nothing else in
// flight.
func (r *Ring) ReadAt(fd int, buf []byte, off int64) (int, error) {
	return r.transfer(OpRead, fd, buf, off)
}

// WriteAt writes buf to fd at off through the ring, resubmitting the rest
// after short writes. The ring must have nothing else in flight.
func (r *Ring) WriteAt(fd int, buf []byte, off int64) (int, error) {
	return r.transfer(OpWrite, fd, buf, off)
}

// transfer runs a READ or WRITE of all of buf, resubmitting what a short
// transfer left.
func (r *Ring) transfer(op Opcode, fd int, buf []byte, off int64) (int, error) {
	done := 0
	for done < len(buf) {
		b := buf[done:]
		o := off + int64(done)
		res, err := r.do(func(s *SQE) { s.prepRW(op, int32(fd), bufAddr(b), uint32(len(b)), uint64(o)) })
		if err != nil {
			return done, err
		}
		if res < 0 {
			c := CQE{Res: res}
			return done, c.Err(op, fd, o, len(b))
		}
		if res == 0 {
			switch {
			case op == OpWrite:
				return done, &OpError{Op: OpWrite, Fd: fd, Off: o, Len: len(b), Err: io.ErrShortWrite}
			case done == 0:
				return 0, io.EOF
			default:
				return done, io.ErrUnexpectedEOF
			}
		}
		done += int(res)
	}
	return done, nil
}

// Fsync flushes fd through the ring (fdatasync with FsyncDatasync).
func (r *Ring) Fsync(fd int, flags FsyncFlags) error {
	res, err := r.do(func(s *SQE) { s.PrepFsync(fd, flags) })
	if err != nil {
		return err
	}
	c := CQE{Res: res}
	return c.Err(OpFsync, fd, 0, 0)
}

// Nop round-trips a no-op through the backend.
func (r *Ring) Nop() error {
	res, err := r.do(func(s *SQE) { s.PrepNop() })
	if err != nil {
		return err
	}
	if res != 0 {
		return &OpError{Op: OpNop, Err: syscall.Errno(-res)}
	}
	return nil
}

// DefaultAlignment is the direct I/O alignment assumed when the kernel does
// not report one.
const DefaultAlignment = 4096

// AlignedBuffer returns a zeroed heap buffer of size bytes whose address
// is aligned for O_DIRECT (4096 bytes). Heap memory does not move, so it
// may be handed to the kernel; keep it referenced until its I/O completes.
func AlignedBuffer(size int) []byte {
	if size <= 0 {
		panic(fmt.Sprintf("ioring: AlignedBuffer(%d): size must be positive", size))
	}
	return directio.AlignedBlock(size)
}

// DirectIOAlignment returns the memory and offset alignment that O_DIRECT
// I/O on path requires (statx STATX_DIOALIGN), or DefaultAlignment for
// both when the kernel or file system does not say.
func DirectIOAlignment(path string) (mem, offset uint32, err error) {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_DIOALIGN, &st); err != nil {
		return 0, 0, fmt.Errorf("ioring: statx %s: %w", path, err)
	}
	if st.Mask&unix.STATX_DIOALIGN == 0 || st.Dio_mem_align == 0 {
		return DefaultAlignment, DefaultAlignment, nil
	}
	return st.Dio_mem_align, st.Dio_offset_align, nil
}
