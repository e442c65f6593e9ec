package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// On-disk constants. Stored on disk: never renumber.
const (
	batchMagic   uint32 = 0x4a544657 // "WFTJ" little-endian
	formatV1     uint8  = 1
	kindBatch    uint8  = 1
	batchHdrSize        = 32
	recHdrSize          = 24
	blockSize           = 4096
	recAlign            = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt marks every decoding failure of bytes read back from disk, so
// that callers can tell corruption from I/O errors with errors.Is.
var ErrCorrupt = errors.New("journal: corrupt data")

// CorruptError is mid-log corruption, or a bad record found by a decoder:
// which file, where, and what was wrong.
type CorruptError struct {
	File   string
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("journal: corrupt log %s at offset %d: %s", e.File, e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// batchHeader is the decoded 32-byte header of a batch.
type batchHeader struct {
	version  uint8
	flags    uint16
	length   uint32
	count    uint32
	firstSeq uint64
}

func putBatchHeader(b []byte, h batchHeader) {
	binary.LittleEndian.PutUint32(b[0:], batchMagic)
	b[4] = h.version
	b[5] = kindBatch
	binary.LittleEndian.PutUint16(b[6:], h.flags)
	binary.LittleEndian.PutUint32(b[8:], h.length)
	binary.LittleEndian.PutUint32(b[12:], h.count)
	binary.LittleEndian.PutUint64(b[16:], h.firstSeq)
	binary.LittleEndian.PutUint32(b[24:], 0)
	binary.LittleEndian.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
}

// parseBatchHeader validates the header in b (at least batchHdrSize
// bytes). The returned reason is "" when the header is valid.
func parseBatchHeader(b []byte) (batchHeader, string) {
	var h batchHeader
	if len(b) < batchHdrSize {
		return h, fmt.Sprintf("batch header truncated: %d of %d bytes", len(b), batchHdrSize)
	}
	if m := binary.LittleEndian.Uint32(b[0:]); m != batchMagic {
		return h, fmt.Sprintf("bad batch magic %#08x", m)
	}
	if got, want := binary.LittleEndian.Uint32(b[28:]), crc32.Checksum(b[:28], castagnoli); got != want {
		return h, fmt.Sprintf("batch header checksum %#08x, computed %#08x", got, want)
	}
	h.version = b[4]
	if h.version != formatV1 {
		return h, fmt.Sprintf("batch format version %d; this build reads version %d", h.version, formatV1)
	}
	if k := b[5]; k != kindBatch {
		return h, fmt.Sprintf("unknown batch kind %d", k)
	}
	h.flags = binary.LittleEndian.Uint16(b[6:])
	h.length = binary.LittleEndian.Uint32(b[8:])
	h.count = binary.LittleEndian.Uint32(b[12:])
	h.firstSeq = binary.LittleEndian.Uint64(b[16:])
	switch {
	case h.length < blockSize || h.length%blockSize != 0:
		return h, fmt.Sprintf("batch length %d is not a positive multiple of %d", h.length, blockSize)
	case h.count == 0:
		return h, "batch holds no records"
	case uint64(h.count) > uint64(h.length-batchHdrSize)/recHdrSize:
		return h, fmt.Sprintf("batch claims %d records in %d bytes", h.count, h.length)
	case h.firstSeq == 0:
		return h, "batch first sequence number is 0"
	case h.firstSeq+uint64(h.count) < h.firstSeq:
		return h, "batch sequence numbers overflow"
	}
	return h, ""
}

// Record is one log record. Data returned by Replay is valid only during
// the callback.
type Record struct {
	Seq  uint64
	Type uint16
	Data []byte
}

func recordSize(n int) int { return recHdrSize + alignUp(n, recAlign) }

func alignUp(n, a int) int { return (n + a - 1) / a * a }

// putRecord encodes a record at b[0:] and returns the bytes used.
func putRecord(b []byte, typ uint16, seq uint64, data []byte) int {
	binary.LittleEndian.PutUint16(b[0:], typ)
	binary.LittleEndian.PutUint16(b[2:], 0)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(data)))
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint32(b[16:], 0)
	binary.LittleEndian.PutUint32(b[20:], 0)
	copy(b[recHdrSize:], data)
	crc := crc32.Update(crc32.Checksum(b[:recHdrSize], castagnoli), castagnoli, data)
	binary.LittleEndian.PutUint32(b[16:], crc)
	n := recordSize(len(data))
	clear(b[recHdrSize+len(data) : n])
	return n
}

// decodeBatch checks a whole batch (header included) and calls fn for
// each record in order. It returns the header and "" on success, or the
// reason the batch is invalid; fn is never called for an invalid batch.
// Record data passed to fn aliases b.
func decodeBatch(b []byte, fn func(Record) error) (batchHeader, string, error) {
	h, why := parseBatchHeader(b)
	if why != "" {
		return h, why, nil
	}
	if int(h.length) > len(b) {
		return h, fmt.Sprintf("batch of %d bytes truncated to %d", h.length, len(b)), nil
	}
	body := b[batchHdrSize:h.length]
	// Validate every record before delivering any: a batch is all or nothing.
	off := 0
	for i := uint32(0); i < h.count; i++ {
		r, n, why := parseRecord(body[off:])
		if why != "" {
			return h, fmt.Sprintf("record %d of %d (offset %d in batch): %s", i+1, h.count, batchHdrSize+off, why), nil
		}
		if want := h.firstSeq + uint64(i); r.Seq != want {
			return h, fmt.Sprintf("record %d has sequence %d, want %d", i+1, r.Seq, want), nil
		}
		off += n
	}
	if fn == nil {
		return h, "", nil
	}
	off = 0
	for i := uint32(0); i < h.count; i++ {
		r, n, _ := parseRecord(body[off:])
		if err := fn(r); err != nil {
			return h, "", err
		}
		off += n
	}
	return h, "", nil
}

func parseRecord(b []byte) (Record, int, string) {
	if len(b) < recHdrSize {
		return Record{}, 0, "record header runs past the batch"
	}
	n := binary.LittleEndian.Uint32(b[4:])
	if uint64(n) > uint64(len(b)-recHdrSize) {
		return Record{}, 0, fmt.Sprintf("record length %d runs past the batch", n)
	}
	size := recordSize(int(n))
	if size > len(b) {
		return Record{}, 0, "record padding runs past the batch"
	}
	want := binary.LittleEndian.Uint32(b[16:])
	var hdr [recHdrSize]byte
	copy(hdr[:], b[:recHdrSize])
	binary.LittleEndian.PutUint32(hdr[16:], 0)
	data := b[recHdrSize : recHdrSize+int(n)]
	if got := crc32.Update(crc32.Checksum(hdr[:], castagnoli), castagnoli, data); got != want {
		return Record{}, 0, fmt.Sprintf("record checksum %#08x, computed %#08x", want, got)
	}
	if f := binary.LittleEndian.Uint16(b[2:]); f != 0 {
		return Record{}, 0, fmt.Sprintf("unknown record flags %#04x", f)
	}
	return Record{
		Type: binary.LittleEndian.Uint16(b[0:]),
		Seq:  binary.LittleEndian.Uint64(b[8:]),
		Data: data,
	}, size, ""
}
