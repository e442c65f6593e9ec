package net

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Kind says what a frame carries. Kinds below FirstUserKind belong to the
// transport (handshake, ping, shutdown notice); the chunk and metadata
// protocols define theirs from FirstUserKind on. Sent on the wire: never
// renumber.
type Kind uint16

// Transport kinds. On-wire format: never renumber.
const (
	kindInvalid     Kind = 0
	kindClientHello Kind = 1 // client → server, first frame of a connection
	kindServerHello Kind = 2 // server → client: chosen version and nonce
	kindClientProof Kind = 3 // client → server: HMAC over the nonce
	kindWelcome     Kind = 4 // server → client: handshake accepted
	// KindPing is answered by the server's transport itself with an empty
	// response of the same kind; see Conn.Ping.
	KindPing Kind = 5
	// kindGoAway (server → client, request id 0) announces a graceful
	// shutdown: the client sends no new requests on this connection.
	kindGoAway Kind = 6

	// FirstUserKind is the first kind available to the layers above.
	FirstUserKind Kind = 256
)

func (k Kind) String() string {
	switch k {
	case kindInvalid:
		return "invalid"
	case kindClientHello:
		return "client-hello"
	case kindServerHello:
		return "server-hello"
	case kindClientProof:
		return "client-proof"
	case kindWelcome:
		return "welcome"
	case KindPing:
		return "ping"
	case kindGoAway:
		return "go-away"
	}
	return fmt.Sprintf("kind-%d", uint16(k))
}

// Frame layout constants. On-wire format: never renumber.
const (
	frameMagic    uint32 = 0x4e544657 // "WFTN" read as little-endian bytes
	frameVersion1 uint8  = 1
	// frameHeaderSize is the size of the fixed header.
	frameHeaderSize = 32

	// flagResponse marks frames sent by the server in answer to a request
	// (and the server's handshake and go-away frames).
	flagResponse uint8 = 1 << 0
	// flagError marks an error response: the body is a u16 code followed
	// by a UTF-8 message, and there is no payload.
	flagError uint8 = 1 << 1
	// flagPayloadCRC says the payload crc field holds the CRC32C of the
	// payload. Without it the field is zero.
	flagPayloadCRC uint8 = 1 << 2

	flagsKnown = flagResponse | flagError | flagPayloadCRC
)

// MaxHeaderBytes is the largest header body a frame may carry. Part of the
// protocol: a peer rejects a longer one.
const MaxHeaderBytes = 64 << 10

// DefaultMaxPayloadBytes is the default per-connection payload limit.
const DefaultMaxPayloadBytes = 16 << 20

// maxPayloadLimit is the largest MaxPayloadBytes a configuration may set:
// the payload length is a u32 on the wire, and buffers are powers of two.
const maxPayloadLimit = 1 << 30

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameHeader is the decoded fixed header of a frame.
type frameHeader struct {
	version    uint8
	flags      uint8
	kind       Kind
	id         uint64
	bodyLen    uint32
	payloadLen uint32
	payloadCRC uint32
	headerCRC  uint32
}

// putFrameHeader encodes h into b[:frameHeaderSize] and computes the header
// checksum over the fixed header and body. h.version, h.bodyLen and
// h.headerCRC are taken from the arguments, not from h.
//
// Invariant (checked): len(body) <= MaxHeaderBytes. A caller that breaks it
// is a bug in this package, since every public entry point checks sizes.
func putFrameHeader(b []byte, h *frameHeader, body []byte) {
	if len(body) > MaxHeaderBytes {
		panic(fmt.Sprintf("net: frame body of %d bytes over the limit %d", len(body), MaxHeaderBytes))
	}
	if h.flags&flagPayloadCRC == 0 && h.payloadCRC != 0 {
		panic(fmt.Sprintf("net: payload crc %#x set without its flag", h.payloadCRC))
	}
	_ = b[frameHeaderSize-1]
	binary.LittleEndian.PutUint32(b[0:], frameMagic)
	b[4] = frameVersion1
	b[5] = h.flags
	binary.LittleEndian.PutUint16(b[6:], uint16(h.kind))
	binary.LittleEndian.PutUint64(b[8:], h.id)
	binary.LittleEndian.PutUint32(b[16:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[20:], h.payloadLen)
	binary.LittleEndian.PutUint32(b[24:], h.payloadCRC)
	crc := crc32.Update(0, castagnoli, b[:28])
	crc = crc32.Update(crc, castagnoli, body)
	binary.LittleEndian.PutUint32(b[28:], crc)
}

// parseFrameHeader decodes and validates the fixed header in b (exactly
// frameHeaderSize bytes) against the connection's payload limit. It checks
// everything that can be checked before the body is read, so that no
// length is trusted before it is known to be within the limits; the header
// checksum covers the body too and is checked by checkHeaderCRC. The
// returned reason is "" when the header is acceptable.
func parseFrameHeader(b []byte, maxPayload uint32) (frameHeader, string) {
	var h frameHeader
	if m := binary.LittleEndian.Uint32(b[0:]); m != frameMagic {
		return h, fmt.Sprintf("bad magic %#08x (want %#08x): not a weft frame", m, frameMagic)
	}
	h.version = b[4]
	if h.version != frameVersion1 {
		return h, fmt.Sprintf("unknown frame version %d; this build reads version %d", h.version, frameVersion1)
	}
	h.flags = b[5]
	h.kind = Kind(binary.LittleEndian.Uint16(b[6:]))
	h.id = binary.LittleEndian.Uint64(b[8:])
	h.bodyLen = binary.LittleEndian.Uint32(b[16:])
	h.payloadLen = binary.LittleEndian.Uint32(b[20:])
	h.payloadCRC = binary.LittleEndian.Uint32(b[24:])
	h.headerCRC = binary.LittleEndian.Uint32(b[28:])
	switch {
	case h.flags&^flagsKnown != 0:
		return h, fmt.Sprintf("unknown flags %#02x", h.flags&^flagsKnown)
	case h.bodyLen > MaxHeaderBytes:
		return h, fmt.Sprintf("header length %d over the limit %d", h.bodyLen, MaxHeaderBytes)
	case h.payloadLen > maxPayload:
		return h, fmt.Sprintf("payload length %d over the limit %d", h.payloadLen, maxPayload)
	case h.flags&flagPayloadCRC == 0 && h.payloadCRC != 0:
		return h, fmt.Sprintf("payload crc %#08x without the payload-crc flag", h.payloadCRC)
	case h.flags&flagError != 0 && h.flags&flagResponse == 0:
		return h, "error flag on a request"
	case h.flags&flagError != 0 && (h.payloadLen != 0 || h.bodyLen < 2):
		return h, fmt.Sprintf("error response with a %d-byte body and a %d-byte payload (want >= 2 and 0)", h.bodyLen, h.payloadLen)
	}
	return h, ""
}

// headerCRC returns the checksum of the fixed header b (its first 28
// bytes) and body.
func headerCRC(b []byte, body []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, b[:28]), castagnoli, body)
}

// payloadCRC returns the CRC32C of the concatenated parts.
func payloadCRC(parts [][]byte) uint32 {
	var crc uint32
	for _, p := range parts {
		crc = crc32.Update(crc, castagnoli, p)
	}
	return crc
}

// errorBody encodes the body of an error response into dst.
func appendErrorBody(dst []byte, code ErrorCode, msg string) []byte {
	if len(msg) > maxErrorMessageBytes {
		msg = msg[:maxErrorMessageBytes]
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(code))
	return append(dst, msg...)
}

// parseErrorBody decodes the body of an error response (at least 2 bytes,
// checked by parseFrameHeader).
func parseErrorBody(body []byte) *RemoteError {
	return &RemoteError{
		Code:    ErrorCode(binary.LittleEndian.Uint16(body)),
		Message: string(body[2:]),
	}
}
