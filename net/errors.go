package net

import (
	"context"
	"errors"
	"strconv"
)

var (
	// ErrConnClosed is returned (wrapped, with the peer and the reason) by
	// calls on a connection that was closed or whose socket failed, and by
	// calls that were in flight when that happened. A call failed with
	// ErrConnClosed may or may not have been applied by the peer: its
	// request may have been written before the connection died.
	ErrConnClosed = errors.New("net: connection closed")

	// ErrCorrupt marks every decoding failure of bytes read from a peer: a
	// bad magic number, an unknown frame version, a length over the
	// connection's limit, a checksum mismatch, a truncated frame, a
	// malformed handshake message. The stream cannot be trusted after it,
	// so the connection is closed with the *FrameError as its reason.
	ErrCorrupt = errors.New("net: corrupt frame")

	// ErrDraining is the reason (errors.Is) given by calls started on a
	// connection whose server announced a graceful shutdown; their error
	// also matches ErrConnClosed. Such a call was never sent, so it is safe
	// to retry it on another connection.
	ErrDraining = errors.New("net: server is shutting down")

	// ErrTooLarge is returned by Call and Go when a request's header body
	// or payload is over the limits (MaxHeaderBytes, MaxPayloadBytes). The
	// request was not sent.
	ErrTooLarge = errors.New("net: message too large")

	// ErrTimeout is matched (errors.Is) by the error of a call that had no
	// response within its CallWithin or GoFuncWithin limit, which names
	// the peer and the request kind, and by Pool.GetWithin's when no
	// connection came in time. Both also match context.DeadlineExceeded.
	// A call that timed out may or may not have been applied by the peer.
	ErrTimeout = errors.New("time limit reached")

	// ErrPoolClosed is returned by Pool.Get after Pool.Close.
	ErrPoolClosed = errors.New("net: pool closed")

	// ErrServerClosed is returned by Server.Serve after Shutdown or Close.
	ErrServerClosed = errors.New("net: server closed")
)

// timeoutError is the error of a call whose time limit passed.
type timeoutError struct {
	what string // what did not happen in time
}

func (e *timeoutError) Error() string { return "net: " + e.what + ": " + ErrTimeout.Error() }

// Is makes errors.Is(err, ErrTimeout) and errors.Is(err,
// context.DeadlineExceeded) true: callers that bound a call with a
// context and those that bound it with CallWithin test it alike.
func (e *timeoutError) Is(target error) bool {
	return target == ErrTimeout || target == context.DeadlineExceeded
}

// FrameError describes bytes from a peer that could not be decoded. It
// matches ErrCorrupt with errors.Is. When the stream ended in the middle of
// a frame it also matches io.ErrUnexpectedEOF.
type FrameError struct {
	Offset int64  // offset in the stream of the frame's first byte
	Reason string // what was wrong, e.g. "payload length 4294967295 over the limit 16777216"
	Err    error  // underlying error for truncation (io.ErrUnexpectedEOF), else nil
}

func (e *FrameError) Error() string {
	return "net: bad frame at stream offset " + strconv.FormatInt(e.Offset, 10) + ": " + e.Reason
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *FrameError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the underlying I/O error, if any.
func (e *FrameError) Unwrap() error { return e.Err }

// ErrorCode is the status code of an error response. Sent on the wire:
// never renumber. Codes below FirstUserCode belong to the transport; the
// layers above (chunk and metadata protocols) define their own from
// FirstUserCode on.
type ErrorCode uint16

// Error codes. On-wire format: never renumber.
const (
	// CodeUnknownKind: the server has no handler for the request's kind.
	// The request was not applied.
	CodeUnknownKind ErrorCode = 1
	// CodeInternal: the handler panicked or returned without replying.
	// The request may have been applied.
	CodeInternal ErrorCode = 2
	// CodeShuttingDown: the server is shutting down and refused the
	// request without running it. Safe to retry elsewhere.
	CodeShuttingDown ErrorCode = 3
	// CodeAuthFailed: the handshake's key id is unknown or its proof is wrong.
	CodeAuthFailed ErrorCode = 4
	// CodeClusterMismatch: the client asked for another cluster.
	CodeClusterMismatch ErrorCode = 5
	// CodeVersionUnsupported: no protocol version in common.
	CodeVersionUnsupported ErrorCode = 6
	// CodeBadMessage: a handshake message that could not be decoded, or
	// out of order.
	CodeBadMessage ErrorCode = 7

	// FirstUserCode is the first code available to the layers above.
	FirstUserCode ErrorCode = 256
)

func (c ErrorCode) String() string {
	switch c {
	case CodeUnknownKind:
		return "unknown kind"
	case CodeInternal:
		return "internal error"
	case CodeShuttingDown:
		return "shutting down"
	case CodeAuthFailed:
		return "authentication failed"
	case CodeClusterMismatch:
		return "cluster mismatch"
	case CodeVersionUnsupported:
		return "version unsupported"
	case CodeBadMessage:
		return "bad message"
	}
	return "code " + strconv.Itoa(int(c))
}

// RemoteError is an error response from the peer: the request reached it
// and it answered with a status code and a message. Whether the request
// was applied depends on the code (see the Code constants).
type RemoteError struct {
	Code    ErrorCode
	Message string
}

func (e *RemoteError) Error() string {
	return "net: remote error " + strconv.Itoa(int(e.Code)) + ": " + e.Message
}

// maxErrorMessageBytes bounds the message of an error response; longer
// messages are cut when sent.
const maxErrorMessageBytes = 4 << 10
