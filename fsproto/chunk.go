package fsproto

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/net"
)

// Message kinds of the chunk protocol. A response carries the kind of its
// request. A kind fixes its header layout: a new layout gets a new kind,
// so the kinds are the protocol's versions. On-wire: never renumber.
const (
	KindWrite    net.Kind = net.FirstUserKind + 0 // Write header, payload = data; answer WriteResult
	KindRead     net.Kind = net.FirstUserKind + 1 // Read header; answer ReadResult, payload = data
	KindTruncate net.Kind = net.FirstUserKind + 2 // Truncate header; answer WriteResult
	KindDelete   net.Kind = net.FirstUserKind + 3 // Delete header; answer WriteResult
)

// Error codes of the chunk protocol, sent in net error responses.
// On-wire: never renumber. Unless said otherwise the request was not
// applied.
const (
	CodeNotFound         net.ErrorCode = net.FirstUserCode + 0 // the chunk does not exist
	CodeNoSpace          net.ErrorCode = net.FirstUserCode + 1 // the device is full
	CodeInvalid          net.ErrorCode = net.FirstUserCode + 2 // the engine refused the request as asked
	CodeCorrupt          net.ErrorCode = net.FirstUserCode + 3 // stored data failed its checksum
	CodeReadOnly         net.ErrorCode = net.FirstUserCode + 4 // the client's key only grants reads
	CodeUnknownContainer net.ErrorCode = net.FirstUserCode + 5 // the server holds no such container
	CodeStaleEpoch       net.ErrorCode = net.FirstUserCode + 6 // the request's epoch is not the server's
	CodeBadMessage       net.ErrorCode = net.FirstUserCode + 7 // the header could not be decoded
	// CodeUnavailable: the engine is closed or failed. A write may or may
	// not have been applied (engine.ErrFailed); do not retry blindly.
	CodeUnavailable net.ErrorCode = net.FirstUserCode + 8
	// CodeAccessDenied (265): the client's key does not reach the
	// request's container (a container key of another container). The
	// metadata servers answer it too. Nothing was done.
	CodeAccessDenied net.ErrorCode = net.FirstUserCode + 9
)

// Sentinel errors. The client returns errors wrapping one of them (and the
// *net.RemoteError they came from); test with errors.Is.
var (
	// ErrNotFound: the chunk was never written, or was deleted.
	ErrNotFound = errors.New("fsproto: no such chunk")
	// ErrNoSpace: the server's device is full; the write was not applied.
	ErrNoSpace = errors.New("fsproto: no space left on server")
	// ErrInvalid: the request cannot be carried out as asked (too large,
	// empty, offset overflow, request id reused for another chunk).
	ErrInvalid = errors.New("fsproto: invalid request")
	// ErrCorrupt: the server's stored data failed its checksum.
	ErrCorrupt = errors.New("fsproto: corrupt data on server")
	// ErrReadOnly: a mutation sent with a read-only key.
	ErrReadOnly = errors.New("fsproto: key is read-only")
	// ErrUnknownContainer: the server holds no such container.
	ErrUnknownContainer = errors.New("fsproto: unknown container")
	// ErrStaleEpoch: the request's epoch differs from the server's.
	ErrStaleEpoch = errors.New("fsproto: stale epoch")
	// ErrUnavailable: the server's engine is closed or failed; a mutation
	// may or may not have been applied.
	ErrUnavailable = errors.New("fsproto: storage unavailable")
	// ErrAccessDenied: the key does not reach the container.
	ErrAccessDenied = errors.New("fsproto: access denied")
	// ErrBadMessage marks every decoding failure of a chunk message
	// header (wrong length, reserved bits set, id out of range), on
	// either side of the wire.
	ErrBadMessage = errors.New("fsproto: malformed message")
)

var codeErrors = map[net.ErrorCode]error{
	CodeNotFound:         ErrNotFound,
	CodeNoSpace:          ErrNoSpace,
	CodeInvalid:          ErrInvalid,
	CodeCorrupt:          ErrCorrupt,
	CodeReadOnly:         ErrReadOnly,
	CodeUnknownContainer: ErrUnknownContainer,
	CodeStaleEpoch:       ErrStaleEpoch,
	CodeBadMessage:       ErrBadMessage,
	CodeUnavailable:      ErrUnavailable,
	CodeAccessDenied:     ErrAccessDenied,
}

// Limits of the ChunkID → engine.ObjectID mapping (see ObjectID).
const (
	IndexBits = 24
	InodeBits = 64 - IndexBits
	// IndexMax and InodeMax are the largest Index and Inode a ChunkID may
	// carry; decoders refuse larger ones.
	IndexMax = 1<<IndexBits - 1
	InodeMax = 1<<InodeBits - 1
)

// MaxReadBytes is the largest Read.Len; reads are bounded like writes so a
// request cannot make the server allocate more than this per request.
const MaxReadBytes = engine.MaxWriteBytes

// ChunkID names a chunk: the Index-th chunk of file Inode in Container.
// Valid IDs have Inode <= InodeMax and Index <= IndexMax.
type ChunkID struct {
	Container uint64
	Inode     uint64
	Index     uint64
}

func (c ChunkID) String() string {
	return fmt.Sprintf("chunk %d/%d/%d", c.Container, c.Inode, c.Index)
}

// Check returns an error (wrapping ErrBadMessage) if c is out of range.
func (c ChunkID) Check() error {
	if c.Inode > InodeMax {
		return fmt.Errorf("%w: inode %d over the limit %d", ErrBadMessage, c.Inode, uint64(InodeMax))
	}
	if c.Index > IndexMax {
		return fmt.Errorf("%w: chunk index %d over the limit %d", ErrBadMessage, c.Index, IndexMax)
	}
	return nil
}

// ObjectID maps a chunk to the engine object that stores it:
//
//	Hi = Container
//	Lo = Inode<<24 | Index
//
// It is a plain bit packing, so it is injective (and ChunkOf inverts it)
// over every valid ChunkID: any Container, Inode < 2^40, Index < 2^24
// (with 4 MiB chunks, files up to 64 TiB). Invalid IDs are refused by the
// decoders; passing one here is a bug and panics.
func ObjectID(c ChunkID) engine.ObjectID {
	if err := c.Check(); err != nil {
		panic(fmt.Sprintf("fsproto: ObjectID of an invalid %v: %v", c, err))
	}
	return engine.ObjectID{Hi: c.Container, Lo: c.Inode<<IndexBits | c.Index}
}

// ChunkOf inverts ObjectID.
func ChunkOf(o engine.ObjectID) ChunkID {
	return ChunkID{Container: o.Hi, Inode: o.Lo >> IndexBits, Index: o.Lo & IndexMax}
}

// RequestID identifies one mutation across retries: a client picks it at
// random and resends it unchanged, and the server applies it once.
type RequestID [16]byte

// Write writes the request payload at Off of the chunk.
type Write struct {
	Chunk     ChunkID
	Off       uint32
	PG        uint32
	Epoch     uint64
	RequestID RequestID
}

// Read asks for Len bytes at Off of the chunk; 0 < Len <= MaxReadBytes.
type Read struct {
	Chunk ChunkID
	Off   uint32
	Len   uint32
	Epoch uint64
}

// Truncate sets the chunk's size.
type Truncate struct {
	Chunk     ChunkID
	Size      uint32
	PG        uint32
	Epoch     uint64
	RequestID RequestID
}

// Delete removes the chunk.
type Delete struct {
	Chunk     ChunkID
	PG        uint32
	Epoch     uint64
	RequestID RequestID
}

// WriteResult answers Write, Truncate and Delete: the object's version and
// the mutation's sequence number in its placement group.
type WriteResult struct {
	Version uint64
	PGSeq   uint64
}

// ReadResult answers Read; the payload holds the N bytes read. EOF is set
// when the read reached the chunk's end (then N may be below Len).
type ReadResult struct {
	N   uint32
	EOF bool
}

// Header lengths. On-wire: see doc.go for the layouts.
const (
	chunkIDLen     = 24
	writeLen       = chunkIDLen + 4 + 4 + 8 + 16
	readLen        = chunkIDLen + 4 + 4 + 8
	truncateLen    = chunkIDLen + 4 + 4 + 8 + 16
	deleteLen      = chunkIDLen + 4 + 4 + 8 + 16
	writeResultLen = 16
	readResultLen  = 8

	readFlagEOF = 1 << 0
)

var le = binary.LittleEndian

func putChunkID(b []byte, c ChunkID) {
	le.PutUint64(b[0:], c.Container)
	le.PutUint64(b[8:], c.Inode)
	le.PutUint64(b[16:], c.Index)
}

func getChunkID(b []byte) (ChunkID, error) {
	c := ChunkID{Container: le.Uint64(b[0:]), Inode: le.Uint64(b[8:]), Index: le.Uint64(b[16:])}
	return c, c.Check()
}

func checkLen(what string, b []byte, want int) error {
	if len(b) != want {
		return fmt.Errorf("%w: %s header is %d bytes, want %d", ErrBadMessage, what, len(b), want)
	}
	return nil
}

// AppendWrite appends m's encoding to b.
func AppendWrite(b []byte, m Write) []byte {
	o := len(b)
	b = append(b, make([]byte, writeLen)...)
	p := b[o:]
	putChunkID(p, m.Chunk)
	le.PutUint32(p[24:], m.Off)
	le.PutUint32(p[28:], m.PG)
	le.PutUint64(p[32:], m.Epoch)
	copy(p[40:], m.RequestID[:])
	return b
}

// DecodeWrite decodes a Write header.
func DecodeWrite(b []byte) (Write, error) {
	var m Write
	if err := checkLen("write", b, writeLen); err != nil {
		return m, err
	}
	c, err := getChunkID(b)
	if err != nil {
		return m, fmt.Errorf("write: %w", err)
	}
	m.Chunk, m.Off, m.PG, m.Epoch = c, le.Uint32(b[24:]), le.Uint32(b[28:]), le.Uint64(b[32:])
	copy(m.RequestID[:], b[40:])
	return m, nil
}

// AppendRead appends m's encoding to b.
func AppendRead(b []byte, m Read) []byte {
	o := len(b)
	b = append(b, make([]byte, readLen)...)
	p := b[o:]
	putChunkID(p, m.Chunk)
	le.PutUint32(p[24:], m.Off)
	le.PutUint32(p[28:], m.Len)
	le.PutUint64(p[32:], m.Epoch)
	return b
}

// DecodeRead decodes a Read header; Len must be in 1..MaxReadBytes.
func DecodeRead(b []byte) (Read, error) {
	var m Read
	if err := checkLen("read", b, readLen); err != nil {
		return m, err
	}
	c, err := getChunkID(b)
	if err != nil {
		return m, fmt.Errorf("read: %w", err)
	}
	m.Chunk, m.Off, m.Len, m.Epoch = c, le.Uint32(b[24:]), le.Uint32(b[28:]), le.Uint64(b[32:])
	if m.Len == 0 || m.Len > MaxReadBytes {
		return Read{}, fmt.Errorf("%w: read length %d, want 1..%d", ErrBadMessage, m.Len, MaxReadBytes)
	}
	return m, nil
}

// AppendTruncate appends m's encoding to b.
func AppendTruncate(b []byte, m Truncate) []byte {
	o := len(b)
	b = append(b, make([]byte, truncateLen)...)
	p := b[o:]
	putChunkID(p, m.Chunk)
	le.PutUint32(p[24:], m.Size)
	le.PutUint32(p[28:], m.PG)
	le.PutUint64(p[32:], m.Epoch)
	copy(p[40:], m.RequestID[:])
	return b
}

// DecodeTruncate decodes a Truncate header.
func DecodeTruncate(b []byte) (Truncate, error) {
	var m Truncate
	if err := checkLen("truncate", b, truncateLen); err != nil {
		return m, err
	}
	c, err := getChunkID(b)
	if err != nil {
		return m, fmt.Errorf("truncate: %w", err)
	}
	m.Chunk, m.Size, m.PG, m.Epoch = c, le.Uint32(b[24:]), le.Uint32(b[28:]), le.Uint64(b[32:])
	copy(m.RequestID[:], b[40:])
	return m, nil
}

// AppendDelete appends m's encoding to b.
func AppendDelete(b []byte, m Delete) []byte {
	o := len(b)
	b = append(b, make([]byte, deleteLen)...)
	p := b[o:]
	putChunkID(p, m.Chunk)
	le.PutUint32(p[24:], m.PG)
	// p[28:32] reserved, zero.
	le.PutUint64(p[32:], m.Epoch)
	copy(p[40:], m.RequestID[:])
	return b
}

// DecodeDelete decodes a Delete header; its reserved word must be zero.
func DecodeDelete(b []byte) (Delete, error) {
	var m Delete
	if err := checkLen("delete", b, deleteLen); err != nil {
		return m, err
	}
	c, err := getChunkID(b)
	if err != nil {
		return m, fmt.Errorf("delete: %w", err)
	}
	if r := le.Uint32(b[28:]); r != 0 {
		return m, fmt.Errorf("%w: delete reserved field is %#x, want 0", ErrBadMessage, r)
	}
	m.Chunk, m.PG, m.Epoch = c, le.Uint32(b[24:]), le.Uint64(b[32:])
	copy(m.RequestID[:], b[40:])
	return m, nil
}

// AppendWriteResult appends m's encoding to b.
func AppendWriteResult(b []byte, m WriteResult) []byte {
	b = le.AppendUint64(b, m.Version)
	return le.AppendUint64(b, m.PGSeq)
}

// DecodeWriteResult decodes a WriteResult header.
func DecodeWriteResult(b []byte) (WriteResult, error) {
	if err := checkLen("write result", b, writeResultLen); err != nil {
		return WriteResult{}, err
	}
	return WriteResult{Version: le.Uint64(b), PGSeq: le.Uint64(b[8:])}, nil
}

// AppendReadResult appends m's encoding to b.
func AppendReadResult(b []byte, m ReadResult) []byte {
	b = le.AppendUint32(b, m.N)
	var f uint32
	if m.EOF {
		f |= readFlagEOF
	}
	return le.AppendUint32(b, f)
}

// DecodeReadResult decodes a ReadResult header; unknown flag bits are
// refused.
func DecodeReadResult(b []byte) (ReadResult, error) {
	if err := checkLen("read result", b, readResultLen); err != nil {
		return ReadResult{}, err
	}
	f := le.Uint32(b[4:])
	if f&^readFlagEOF != 0 {
		return ReadResult{}, fmt.Errorf("%w: read result flags %#x, only bit 0 is defined", ErrBadMessage, f)
	}
	return ReadResult{N: le.Uint32(b), EOF: f&readFlagEOF != 0}, nil
}
