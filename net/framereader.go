package net

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	stdnet "net"
	"syscall"
)

// vectorReader fills several buffers in order from a stream.
type vectorReader interface {
	// readv reads into bufs, in order, and returns once at least min bytes
	// have been read (or an error occurred). It may read more, up to the
	// total length of bufs, if the bytes are already there: that is how
	// the next frame's fixed header is read ahead without a second system
	// call. It returns the number of bytes read.
	readv(bufs [][]byte, min int) (int, error)
}

// newVectorReader returns a readv-based reader for sockets that expose
// their file descriptor (TCP, Unix), and a sequential one for anything else
// (the fault transport's connections, pipes).
func newVectorReader(c stdnet.Conn) vectorReader {
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			if r := newRawVectorReader(rc); r != nil {
				return r
			}
		}
	}
	return &seqVectorReader{r: c}
}

// seqVectorReader reads each buffer with io.ReadFull. It never reads ahead
// past min: a plain Read cannot be told to stop at a frame boundary and
// then continue into a second buffer without blocking.
type seqVectorReader struct{ r io.Reader }

func (s *seqVectorReader) readv(bufs [][]byte, min int) (int, error) {
	total := 0
	for _, b := range bufs {
		if total >= min {
			break
		}
		if len(b) > min-total {
			b = b[:min-total]
		}
		n, err := io.ReadFull(s.r, b)
		total += n
		if err != nil {
			if err == io.ErrUnexpectedEOF {
				err = io.EOF // the caller tells truncation from a clean end by total
			}
			return total, err
		}
	}
	return total, nil
}

// frameReader decodes frames from one connection's stream. Only that
// connection's reader goroutine uses it.
//
// Reading a frame takes two steps, so that the caller can pick the
// destination of the body and payload after seeing the fixed header (the
// client looks up the call by request id; the server takes a payload
// buffer from the pool): readHeader, then readRest. readRest reads body,
// payload and the next frame's fixed header in one readv when the bytes
// are there, so under load a frame costs one system call, and the payload
// lands directly in its final buffer: it is never copied.
type frameReader struct {
	vr         vectorReader
	maxPayload uint32
	offset     int64 // stream offset of the frame being read

	cur  [frameHeaderSize]byte // fixed header of the frame being read
	next [frameHeaderSize]byte // read-ahead of the following frame's fixed header
	// nextN is how many bytes of next are valid.
	// Invariant: 0 <= nextN <= frameHeaderSize.
	nextN int
	iov   [3][]byte
}

func newFrameReader(c stdnet.Conn, maxPayload int) *frameReader {
	return &frameReader{vr: newVectorReader(c), maxPayload: uint32(maxPayload)}
}

// readHeader reads and validates the next fixed header. At a frame
// boundary, a stream that ends cleanly returns io.EOF; anything else wrong
// is a *FrameError (ErrCorrupt) or the connection's I/O error.
func (r *frameReader) readHeader() (frameHeader, error) {
	if r.nextN < frameHeaderSize {
		r.iov[0] = r.next[r.nextN:]
		n, err := r.vr.readv(r.iov[:1], frameHeaderSize-r.nextN)
		r.iov[0] = nil
		r.nextN += n
		if err != nil {
			if errors.Is(err, io.EOF) {
				if r.nextN == 0 {
					return frameHeader{}, io.EOF
				}
				return frameHeader{}, &FrameError{Offset: r.offset, Err: io.ErrUnexpectedEOF,
					Reason: fmt.Sprintf("truncated frame: stream ended after %d of %d header bytes", r.nextN, frameHeaderSize)}
			}
			return frameHeader{}, err
		}
	}
	r.cur = r.next
	r.nextN = 0
	h, reason := parseFrameHeader(r.cur[:], r.maxPayload)
	if reason != "" {
		return h, &FrameError{Offset: r.offset, Reason: reason}
	}
	return h, nil
}

// readRest reads the body and payload of the frame whose header
// readHeader returned, into body (len h.bodyLen) and payload (len
// h.payloadLen), and checks the checksums.
func (r *frameReader) readRest(h *frameHeader, body, payload []byte) error {
	if len(body) != int(h.bodyLen) || len(payload) != int(h.payloadLen) {
		panic(fmt.Sprintf("net: readRest with %d+%d bytes for a frame of %d+%d", len(body), len(payload), h.bodyLen, h.payloadLen))
	}
	need := len(body) + len(payload)
	if need > 0 {
		iov := r.iov[:0]
		if len(body) > 0 {
			iov = append(iov, body)
		}
		if len(payload) > 0 {
			iov = append(iov, payload)
		}
		iov = append(iov, r.next[:])
		n, err := r.vr.readv(iov, need)
		clear(r.iov[:])
		if n > need {
			r.nextN = n - need
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return &FrameError{Offset: r.offset, Err: io.ErrUnexpectedEOF,
					Reason: fmt.Sprintf("truncated frame: stream ended after %d of %d body and payload bytes", n, need)}
			}
			return err
		}
	}
	if got := headerCRC(r.cur[:], body); got != h.headerCRC {
		return &FrameError{Offset: r.offset, Reason: fmt.Sprintf("header checksum %#08x, computed %#08x", h.headerCRC, got)}
	}
	if h.flags&flagPayloadCRC != 0 {
		if got := crc32.Checksum(payload, castagnoli); got != h.payloadCRC {
			return &FrameError{Offset: r.offset, Reason: fmt.Sprintf("payload checksum %#08x, computed %#08x", h.payloadCRC, got)}
		}
	}
	r.offset += int64(frameHeaderSize + need)
	return nil
}

// frameSize is the number of bytes a frame occupies on the wire.
func frameSize(h *frameHeader) int64 {
	return frameHeaderSize + int64(h.bodyLen) + int64(h.payloadLen)
}
