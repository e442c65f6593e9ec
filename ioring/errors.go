package ioring

import (
	"fmt"
	"syscall"
)

var opNames = [...]string{
	OpNop: "nop", OpReadv: "readv", OpWritev: "writev", OpFsync: "fsync",
	OpReadFixed: "read_fixed", OpWriteFixed: "write_fixed", OpPollAdd: "poll_add", OpTimeout: "timeout",
	OpLinkTimeout: "link_timeout", OpRead: "read", OpWrite: "write",
}

// String returns the opcode's lower-case name ("read", "write_fixed"), or
// "op(N)" for opcodes this package does not name.
func (op Opcode) String() string {
	if int(op) < len(opNames) && opNames[op] != "" {
		return opNames[op]
	}
	return fmt.Sprintf("op(%d)", uint8(op))
}

// OpError is a failed operation: the opcode, the file and the range it
// touched, and the errno the backend returned.
type OpError struct {
	Op     Opcode
	Fd     int
	Off    int64
	Len    int
	Err    error // a syscall.Errno
	Detail string
}

func (e *OpError) Error() string {
	s := fmt.Sprintf("ioring: %s fd %d", e.Op, e.Fd)
	switch e.Op {
	case OpNop, OpTimeout, OpLinkTimeout:
		s = "ioring: " + e.Op.String()
	case OpFsync:
	default:
		s += fmt.Sprintf(" off %d len %d", e.Off, e.Len)
	}
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s + ": " + e.Err.Error()
}

func (e *OpError) Unwrap() error { return e.Err }

// Err converts a completion into an error for the operation sqe described:
// nil when Res >= 0, else an *OpError wrapping the errno.
func (c *CQE) Err(op Opcode, fd int, off int64, n int) error {
	if c.Res >= 0 {
		return nil
	}
	err := &OpError{Op: op, Fd: fd, Off: off, Len: n, Err: syscall.Errno(-c.Res)}
	if err.Err == syscall.EINVAL && (op == OpRead || op == OpWrite || op == OpReadFixed || op == OpWriteFixed || op == OpReadv || op == OpWritev) {
		err.Detail = "with O_DIRECT, buffer address, length and offset must be aligned to the device's direct I/O alignment"
	}
	return err
}
