package net

import (
	"encoding/binary"
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
	// peek waits until the stream has bytes ready (or has ended) and
	// copies what is ready into b without consuming it. It returns
	// errNoPeek when the reader cannot peek, and 0, nil at the end of the
	// stream.
	peek(b []byte) (int, error)
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

func (s *seqVectorReader) peek([]byte) (int, error) { return 0, errNoPeek }

// errNoPeek: the vectorReader cannot look ahead without consuming.
var errNoPeek = errors.New("net: peek not supported")

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
// buffer from the pool): readHeader, then readRest.
//
// Bytes read from the socket ahead of the frame being decoded wait in
// stage, so that a burst of frames costs one or two system calls rather
// than one or two per frame. What may be staged depends on the side:
//
//   - Exact (the server: copyPayloads false). Payload bytes are never
//     staged: a request's payload is read straight into the pooled buffer
//     that the engine then writes, never copied. Fixed headers and bodies
//     are staged. The reader learns how far it may read by peeking at the
//     socket (MSG_PEEK) and walking the frame headers it sees: every
//     payload-less frame (read requests, metadata calls) is taken whole,
//     and the walk stops at the first payload. A frame with a payload is
//     read with one readv: body, payload, and the next fixed header (which
//     is never payload).
//   - Copying (the client: copyPayloads true). Everything may be staged,
//     up to len(stage) bytes a read: a response's payload that arrived in
//     the same read as others is copied out of stage into its buffer
//     (copying 4 KiB costs a fraction of a system call); the part of a
//     large payload not yet read is read straight into its buffer.
//
// Invariants: stage[r:w] holds the unconsumed bytes that follow the last
// byte decoded; in exact mode they are header or body bytes only.
type frameReader struct {
	vr           vectorReader
	maxPayload   uint32
	copyPayloads bool
	offset       int64 // stream offset of the frame being read

	cur   [frameHeaderSize]byte // fixed header of the frame being read
	stage []byte
	r, w  int
	iov   [3][]byte

	metrics *Metrics // receive system calls and copied payload bytes; may be nil
	// lastPayload: the last frame read had a payload. An exact reader
	// then reads the next header without peeking first: in a stream of
	// writes, the peek would show a payload and save nothing.
	lastPayload bool
}

// Stage sizes: an exact reader stages headers and bodies of requests (a
// chunk read request is under 100 bytes); a copying reader stages
// responses with their payloads.
const (
	exactStageBytes = 8 << 10
	copyStageBytes  = 64 << 10
)

// newFrameReader returns a reader of c's frames. copyPayloads picks the
// copying mode (the client's); the server's is exact.
func newFrameReader(c stdnet.Conn, maxPayload int, copyPayloads bool, m *Metrics) *frameReader {
	return newFrameReaderFrom(newVectorReader(c), maxPayload, copyPayloads, m)
}

func newFrameReaderFrom(vr vectorReader, maxPayload int, copyPayloads bool, m *Metrics) *frameReader {
	n := exactStageBytes
	if copyPayloads {
		n = copyStageBytes
	}
	return &frameReader{vr: vr, maxPayload: uint32(maxPayload), copyPayloads: copyPayloads, stage: make([]byte, n), metrics: m}
}

func (r *frameReader) counted() {
	if r.metrics != nil {
		r.metrics.reads.Add(1)
	}
}

// staged is how many unconsumed bytes stage holds.
func (r *frameReader) staged() int { return r.w - r.r }

// compact moves the staged bytes to the front of stage.
func (r *frameReader) compact() {
	if r.r == 0 {
		return
	}
	r.w = copy(r.stage, r.stage[r.r:r.w])
	r.r = 0
}

// fill stages at least need bytes (need <= frameHeaderSize), taking more
// when the mode allows and the bytes are there.
func (r *frameReader) fill(need int) error {
	r.compact()
	for r.staged() < need {
		want := need - r.staged()
		ahead := len(r.stage) - r.w // copying: whatever has arrived
		switch {
		case r.copyPayloads:
		case r.lastPayload:
			ahead = want
		default:
			var err error
			if ahead, err = r.safeAhead(want); err != nil {
				return err
			}
		}
		r.iov[0] = r.stage[r.w : r.w+ahead]
		r.counted()
		n, err := r.vr.readv(r.iov[:1], want)
		r.iov[0] = nil
		r.w += n
		if err != nil {
			return err
		}
	}
	return nil
}

// safeAhead returns how many bytes past stage[:w] an exact reader may
// read: at least want (the rest of a fixed header, which is never payload),
// and more when a peek at the socket shows whole payload-less frames or
// the header and body of the next frame with a payload. The peek waits
// for the stream to have bytes ready; without peeking, it returns want.
func (r *frameReader) safeAhead(want int) (int, error) {
	room := len(r.stage) - r.w
	n, err := r.vr.peek(r.stage[r.w:])
	if err == errNoPeek {
		return want, nil
	}
	r.counted()
	if err != nil {
		return 0, err
	}
	if n <= want {
		return want, nil
	}
	// The frames of stage[r:w] followed by the n peeked bytes.
	safe := safeFrameBytes(r.stage[r.r : r.w+n])
	return min(max(want, safe-r.staged()), room), nil
}

// safeFrameBytes returns how many bytes at the front of view, which
// starts at a frame boundary, are headers and bodies: whole payload-less
// frames, then the fixed header and whatever arrived of the body of the
// next frame. A frame with a payload ends the count at its body's end,
// so that its payload is read straight into its own buffer.
func safeFrameBytes(view []byte) int {
	pos := 0
	for len(view)-pos >= frameHeaderSize {
		h := view[pos:]
		bodyEnd := pos + frameHeaderSize + int(binary.LittleEndian.Uint32(h[16:]))
		if bodyEnd > len(view) {
			break // its body has not all arrived; what has is safe
		}
		if binary.LittleEndian.Uint32(h[20:]) != 0 {
			return bodyEnd
		}
		pos = bodyEnd
	}
	return len(view)
}

// readHeader reads and validates the next fixed header. At a frame
// boundary, a stream that ends cleanly returns io.EOF; anything else wrong
// is a *FrameError (ErrCorrupt) or the connection's I/O error.
func (r *frameReader) readHeader() (frameHeader, error) {
	if r.staged() < frameHeaderSize {
		if err := r.fill(frameHeaderSize); err != nil {
			if errors.Is(err, io.EOF) {
				if r.staged() == 0 {
					return frameHeader{}, io.EOF
				}
				return frameHeader{}, truncatedHeader(r.offset, r.staged())
			}
			return frameHeader{}, err
		}
	}
	copy(r.cur[:], r.stage[r.r:])
	r.r += frameHeaderSize
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
	// What is staged first: it precedes anything still in the socket.
	nb := copy(body, r.stage[r.r:r.w])
	r.r += nb
	np := 0
	if r.copyPayloads {
		np = copy(payload, r.stage[r.r:r.w])
		r.r += np
		if np > 0 && r.metrics != nil {
			r.metrics.payloadCopied.Add(uint64(np))
		}
	}
	bodyRest, payloadRest := body[nb:], payload[np:]
	if rest := len(bodyRest) + len(payloadRest); rest > 0 {
		// Invariant: stage is empty (the frame's own bytes come first),
		// and in exact mode it held no payload byte.
		r.r, r.w = 0, 0
		ahead := r.stage
		if !r.copyPayloads || len(payloadRest) >= len(r.stage) {
			// The next fixed header only: never payload (exact), or, after
			// a large payload, likely the start of another large one that
			// is better read straight into its destination than copied.
			ahead = r.stage[:frameHeaderSize]
		}
		iov := r.iov[:0]
		if len(bodyRest) > 0 {
			iov = append(iov, bodyRest)
		}
		if len(payloadRest) > 0 {
			iov = append(iov, payloadRest)
		}
		iov = append(iov, ahead)
		r.counted()
		n, err := r.vr.readv(iov, rest)
		clear(r.iov[:])
		if n > rest {
			r.w = n - rest
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return truncatedRest(r.offset, need-rest+n, need)
			}
			return err
		}
	}
	if err := checkFrameSums(r.offset, r.cur[:], h, body, payload); err != nil {
		return err
	}
	r.offset += int64(frameHeaderSize + need)
	r.lastPayload = len(payload) > 0
	return nil
}

// truncatedHeader is the error of a stream that ended got bytes into the
// fixed header of the frame at offset off.
func truncatedHeader(off int64, got int) error {
	return &FrameError{Offset: off, Err: io.ErrUnexpectedEOF,
		Reason: fmt.Sprintf("truncated frame: stream ended after %d of %d header bytes", got, frameHeaderSize)}
}

// truncatedRest is the error of a stream that ended got of need bytes
// into the body and payload of the frame at offset off.
func truncatedRest(off int64, got, need int) error {
	return &FrameError{Offset: off, Err: io.ErrUnexpectedEOF,
		Reason: fmt.Sprintf("truncated frame: stream ended after %d of %d body and payload bytes", got, need)}
}

// checkFrameSums checks the header checksum of the frame at offset off
// (fixed header hdr, decoded as h, and body) and, when it has one, its
// payload's.
func checkFrameSums(off int64, hdr []byte, h *frameHeader, body, payload []byte) error {
	if got := headerCRC(hdr, body); got != h.headerCRC {
		return &FrameError{Offset: off, Reason: fmt.Sprintf("header checksum %#08x, computed %#08x", h.headerCRC, got)}
	}
	if h.flags&flagPayloadCRC != 0 {
		if got := crc32.Checksum(payload, castagnoli); got != h.payloadCRC {
			return &FrameError{Offset: off, Reason: fmt.Sprintf("payload checksum %#08x, computed %#08x", h.payloadCRC, got)}
		}
	}
	return nil
}

// frameSize is the number of bytes a frame occupies on the wire.
func frameSize(h *frameHeader) int64 {
	return frameHeaderSize + int64(h.bodyLen) + int64(h.payloadLen)
}
