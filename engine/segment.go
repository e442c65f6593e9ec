package engine

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Segment and batch formats. A segment is a fixed-size region of the
// segment area, written front to back by one shard while it is open:
//
//	segment
//	+----------------+---------+---------+-----
//	| segment header | batch 1 | batch 2 | ...
//	| 4 KiB          |         |         |
//	+----------------+---------+---------+-----
//
//	segment header (little-endian)
//	+-------+---------+-------+------------+-------+------+-----------+-------+
//	| magic | version | index | generation | shard | rsvd | device    | crc   |
//	| u64   | u32     | u32   | u64        | u32   | u32  | uuid [16] | u32   |
//	+-------+---------+-------+------------+-------+------+-----------+-------+
//
// generation is the device-wide allocation counter at the time the segment
// was opened: recovery replays segments in generation order, and a batch
// whose generation differs from its segment header's is left over from an
// earlier use of the segment and ignored.
//
//	batch (4 KiB aligned)
//	+--------------------------------------+---------------------------------+
//	| header blocks (headerBlocks x 4 KiB) | data blocks (dataBlocks x 4 KiB)|
//	+--------------------------------------+---------------------------------+
//	header blocks = 64-byte batch header, then count 80-byte descriptors
//	packed back to back (a descriptor may straddle a block boundary),
//	zero-filled to the block; the batch header's crc covers all header
//	blocks. Each write's data starts at a 4 KiB boundary of the data area.
//
//	batch header
//	+-------+-----+------+-------+--------------+------+-------+------------+------------+----------+-----+
//	| magic | ver | kind | flags | headerBlocks | rsvd | count | dataBlocks | generation | batchSeq | crc |
//	| u32   | u8  | u8   | u16   | u16          | u16  | u32   | u32        | u64        | u64      | u32 |
//	+-------+-----+------+-------+--------------+------+-------+------------+------------+----------+-----+
//
//	descriptor (80 bytes)
//	+--------+--------+--------+------+-------+------+---------+-----+------+-------+---------+------------+---------+
//	| object | offset | length | kind | flags | rsvd | version | pg  | rsvd | pgSeq | dataCRC | request id | descCRC |
//	| 16 B   | u64    | u32    | u8   | u8    | u16  | u64     | u32 | u32  | u64   | u32     | 16 B       | u32     |
//	+--------+--------+--------+------+-------+------+---------+-----+------+-------+---------+------------+---------+
//	  0        16       24       28     29      30     32        40    44     48      56        60           76
//
// A write record with flag descRelocated was written by the cleaner: it
// carries live bytes moved out of the record at (pg, rsvd) = (segment,
// offset), which it replaces only where the index still points there;
// version and pgSeq are the moved bytes' own, and its request id is zero
// (the object's request ids live in its state, which a move leaves alone).
//
// Request ids (format version 2). A write, truncate or delete record may
// carry the client request id of the mutation it belongs to (zero: none;
// a write split into several records carries it on its first); applying
// the record adds (id, pgSeq) to the object's KeptRequests most recent
// ids (ObjectState.Requests). A KindRequestID record (no data, length 0)
// carries one id of the object's history with that id's own seq in the
// offset field; with flag descResetIDs it first empties the object's ids.
// A replica installing the primary's state of an object writes them, in
// the same batch as the install's first mutation, so the object's ids
// become the primary's: a reset record (the first; its id may be zero
// when the list is empty), then one record per further id, oldest first.
// A write or truncate with Request.Replace puts a KindDelete record of the
// same version and seq right before its own records, in the same batch
// (after the id records if any): replay drops the object's old data only
// together with the new state. No format change: old builds read it too.
//
// Format version 1 had 64-byte descriptors without the request id; this
// build refuses such a device with ErrOldFormat.
//
// On-disk constants: never renumber.
const (
	segmentMagic     uint64 = 0x31764745_53544657 // "WFTSEGv1"
	segHeaderSize           = 4096
	batchMagicEngine uint32 = 0x42544657 // "WFTB"
	batchKindData    uint8  = 1
	batchHeaderSize         = 64
	descSize                = 80
	maxHeaderBlocks         = 64

	// RecordKind values, stored in descriptors.
	KindWrite    RecordKind = 1
	KindTruncate RecordKind = 2
	KindDelete   RecordKind = 3
	// KindRequestID records one request id of the object's history
	// (format version 2).
	KindRequestID RecordKind = 4

	descRelocated uint8 = 1 << 0
	// descResetIDs (KindRequestID only): empty the object's request ids
	// before adding this record's.
	descResetIDs uint8 = 1 << 1
)

// RecordKind is what a log record does to its object.
type RecordKind uint8

func (k RecordKind) String() string {
	switch k {
	case KindWrite:
		return "write"
	case KindTruncate:
		return "truncate"
	case KindDelete:
		return "delete"
	case KindRequestID:
		return "request-id"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// SegmentHeader is the first block of an open segment.
type SegmentHeader struct {
	Index      uint32
	Generation uint64
	Shard      uint32
	Device     UUID
}

func (h *SegmentHeader) Encode(b []byte) {
	clear(b[:segHeaderSize])
	le := binary.LittleEndian
	le.PutUint64(b[0:], segmentMagic)
	le.PutUint32(b[8:], recordsVersion)
	le.PutUint32(b[12:], h.Index)
	le.PutUint64(b[16:], h.Generation)
	le.PutUint32(b[24:], h.Shard)
	copy(b[32:48], h.Device[:])
	le.PutUint32(b[48:], crc32.Checksum(b[:48], castagnoli))
}

// DecodeSegmentHeader parses a segment header. A block that is not a
// segment header at all (never written) is reported as ok=false with no
// error; a damaged one is an ErrCorrupt error.
func DecodeSegmentHeader(b []byte) (h SegmentHeader, ok bool, err error) {
	if len(b) < segHeaderSize {
		return h, false, fmt.Errorf("%w: segment header is %d bytes, want %d", ErrCorrupt, len(b), segHeaderSize)
	}
	le := binary.LittleEndian
	if le.Uint64(b[0:]) != segmentMagic {
		return h, false, nil
	}
	if got, want := le.Uint32(b[48:]), crc32.Checksum(b[:48], castagnoli); got != want {
		return h, false, fmt.Errorf("%w: segment header checksum %#08x, computed %#08x", ErrCorrupt, got, want)
	}
	if v := le.Uint32(b[8:]); v != recordsVersion {
		sentinel := ErrNewerFormat
		if v < recordsVersion {
			sentinel = ErrOldFormat
		}
		return h, false, fmt.Errorf("%w: segment format version %d, this build reads %d", sentinel, v, recordsVersion)
	}
	h.Index = le.Uint32(b[12:])
	h.Generation = le.Uint64(b[16:])
	h.Shard = le.Uint32(b[24:])
	copy(h.Device[:], b[32:48])
	if h.Generation == 0 {
		return h, false, fmt.Errorf("%w: segment generation 0", ErrCorrupt)
	}
	return h, true, nil
}

// Desc describes one record of a batch.
type Desc struct {
	Object  ObjectID
	Offset  uint64 // write: where the data goes; truncate: the new size
	Length  uint32 // write: data bytes; 0 otherwise
	Kind    RecordKind
	Version uint64
	PG      uint32
	PGSeq   uint64
	DataCRC uint32 // CRC32C of the data (write only)
	// Relocated marks a cleaner record: its data was copied from the
	// record at From, and replaces only what still points there.
	Relocated bool
	From      Location // Segment and Offset only
	// RequestID is the client request id the record carries (zero: none).
	RequestID RequestID
	// ResetIDs (KindRequestID only) empties the object's request ids
	// before RequestID is added.
	ResetIDs bool
}

// BatchHeader is a decoded batch header.
type BatchHeader struct {
	HeaderBlocks uint16
	Count        uint32
	DataBlocks   uint32
	Generation   uint64
	BatchSeq     uint64
}

// batchBytes is the device bytes of the batch whose header h (from its
// first block) starts at pos of a segment of segSize bytes, or why the
// batch cannot lie there. In 64 bits: a damaged header's block counts
// must not wrap to a size that passes the check.
func batchBytes(h BatchHeader, pos, segSize uint32) (uint32, string) {
	n := (uint64(h.HeaderBlocks) + uint64(h.DataBlocks)) * 4096
	if uint64(pos)+n > uint64(segSize) {
		return 0, fmt.Sprintf("batch of %d bytes runs past the segment end", n)
	}
	return uint32(n), ""
}

// headerBlocksFor is how many 4 KiB header blocks count descriptors need.
func headerBlocksFor(count int) int {
	return (batchHeaderSize + count*descSize + 4095) / 4096
}

// dataBlocksFor is how many 4 KiB blocks a write of n bytes occupies.
func dataBlocksFor(n uint32) uint32 { return (n + 4095) / 4096 }

func putDesc(b []byte, d *Desc) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], d.Object.Hi)
	le.PutUint64(b[8:], d.Object.Lo)
	le.PutUint64(b[16:], d.Offset)
	le.PutUint32(b[24:], d.Length)
	b[28] = uint8(d.Kind)
	b[29] = 0
	le.PutUint16(b[30:], 0)
	le.PutUint64(b[32:], d.Version)
	if d.ResetIDs {
		b[29] = descResetIDs
	}
	if d.Relocated {
		b[29] = descRelocated
		le.PutUint32(b[40:], d.From.Segment)
		le.PutUint32(b[44:], d.From.Offset)
	} else {
		le.PutUint32(b[40:], d.PG)
		le.PutUint32(b[44:], 0)
	}
	le.PutUint64(b[48:], d.PGSeq)
	le.PutUint32(b[56:], d.DataCRC)
	copy(b[60:76], d.RequestID[:])
	le.PutUint32(b[76:], crc32.Checksum(b[:76], castagnoli))
}

func parseDesc(b []byte) (Desc, string) {
	le := binary.LittleEndian
	if got, want := le.Uint32(b[76:]), crc32.Checksum(b[:76], castagnoli); got != want {
		return Desc{}, fmt.Sprintf("descriptor checksum %#08x, computed %#08x", got, want)
	}
	d := Desc{
		Object:  ObjectID{Hi: le.Uint64(b[0:]), Lo: le.Uint64(b[8:])},
		Offset:  le.Uint64(b[16:]),
		Length:  le.Uint32(b[24:]),
		Kind:    RecordKind(b[28]),
		Version: le.Uint64(b[32:]),
		PG:      le.Uint32(b[40:]),
		PGSeq:   le.Uint64(b[48:]),
		DataCRC: le.Uint32(b[56:]),
	}
	copy(d.RequestID[:], b[60:76])
	switch b[29] {
	case 0, descResetIDs:
		if le.Uint32(b[44:]) != 0 {
			return d, "reserved descriptor bytes are not zero"
		}
		if b[29] == descResetIDs {
			if d.Kind != KindRequestID {
				return d, fmt.Sprintf("%s record with the reset-ids flag", d.Kind)
			}
			d.ResetIDs = true
		}
	case descRelocated:
		d.Relocated, d.PG = true, 0
		d.From = Location{Segment: le.Uint32(b[40:]), Offset: le.Uint32(b[44:])}
		if d.Kind != KindWrite || d.From.Offset%4096 != 0 {
			return d, fmt.Sprintf("relocation %s from segment %d offset %d", d.Kind, d.From.Segment, d.From.Offset)
		}
		if d.RequestID != (RequestID{}) {
			return d, "relocation record carries a request id"
		}
	default:
		return d, fmt.Sprintf("unknown descriptor flags %#x", b[29])
	}
	if le.Uint16(b[30:]) != 0 {
		return d, "reserved descriptor bytes are not zero"
	}
	switch d.Kind {
	case KindWrite:
		if d.Length == 0 {
			return d, "write of 0 bytes"
		}
		if d.Offset+uint64(d.Length) < d.Offset {
			return d, fmt.Sprintf("write at %d of %d bytes overflows", d.Offset, d.Length)
		}
	case KindTruncate, KindDelete:
		if d.Length != 0 {
			return d, fmt.Sprintf("%s carries %d data bytes", d.Kind, d.Length)
		}
	case KindRequestID:
		if d.Length != 0 || d.DataCRC != 0 {
			return d, fmt.Sprintf("request-id record carries %d data bytes (data crc %#08x)", d.Length, d.DataCRC)
		}
		if d.RequestID == (RequestID{}) && !d.ResetIDs {
			return d, "request-id record without an id or a reset"
		}
	default:
		return d, fmt.Sprintf("unknown record kind %d", d.Kind)
	}
	return d, ""
}

// EncodeBatchHeader writes the header blocks of a batch into b (which must
// hold headerBlocksFor(len(descs)) blocks) and returns the header.
func EncodeBatchHeader(b []byte, descs []Desc, generation, batchSeq uint64) BatchHeader {
	hb := headerBlocksFor(len(descs))
	var data uint32
	for i := range descs {
		data += dataBlocksFor(descs[i].Length)
	}
	h := BatchHeader{HeaderBlocks: uint16(hb), Count: uint32(len(descs)), DataBlocks: data, Generation: generation, BatchSeq: batchSeq}
	clear(b[:hb*4096])
	for i := range descs {
		putDesc(b[batchHeaderSize+i*descSize:], &descs[i])
	}
	le := binary.LittleEndian
	le.PutUint32(b[0:], batchMagicEngine)
	b[4] = recordsVersion
	b[5] = batchKindData
	le.PutUint16(b[6:], 0)
	le.PutUint16(b[8:], h.HeaderBlocks)
	le.PutUint16(b[10:], 0)
	le.PutUint32(b[12:], h.Count)
	le.PutUint32(b[16:], h.DataBlocks)
	le.PutUint64(b[24:], h.Generation)
	le.PutUint64(b[32:], h.BatchSeq)
	le.PutUint32(b[60:], 0)
	le.PutUint32(b[60:], crc32.Checksum(b[:hb*4096], castagnoli))
	return h
}

// DecodeBatchHeader parses the first header block of a batch (b holds at
// least one block; the caller passes all header blocks when it has them).
// It returns needBlocks > len(b)/4096 when more header blocks must be read
// first. Descriptors are returned only when all blocks were given and
// every check passed; reason is "" then.
func DecodeBatchHeader(b []byte, descs []Desc) (h BatchHeader, out []Desc, needBlocks int, reason string) {
	if len(b) < 4096 {
		return h, nil, 1, fmt.Sprintf("batch header block is %d bytes", len(b))
	}
	le := binary.LittleEndian
	if m := le.Uint32(b[0:]); m != batchMagicEngine {
		return h, nil, 0, fmt.Sprintf("bad batch magic %#08x", m)
	}
	if b[4] != recordsVersion || b[5] != batchKindData || le.Uint16(b[6:]) != 0 {
		return h, nil, 0, fmt.Sprintf("batch version %d kind %d flags %#x not understood", b[4], b[5], le.Uint16(b[6:]))
	}
	h = BatchHeader{
		HeaderBlocks: le.Uint16(b[8:]),
		Count:        le.Uint32(b[12:]),
		DataBlocks:   le.Uint32(b[16:]),
		Generation:   le.Uint64(b[24:]),
		BatchSeq:     le.Uint64(b[32:]),
	}
	if h.HeaderBlocks == 0 || h.HeaderBlocks > maxHeaderBlocks || h.Count == 0 || int(h.HeaderBlocks) != headerBlocksFor(int(h.Count)) {
		return h, nil, 0, fmt.Sprintf("batch claims %d descriptors in %d header blocks", h.Count, h.HeaderBlocks)
	}
	if len(b) < int(h.HeaderBlocks)*4096 {
		return h, nil, int(h.HeaderBlocks), ""
	}
	hdr := b[:int(h.HeaderBlocks)*4096]
	want := le.Uint32(hdr[60:])
	var crc uint32
	{
		var first [batchHeaderSize]byte
		copy(first[:], hdr[:batchHeaderSize])
		le.PutUint32(first[60:], 0)
		crc = crc32.Update(crc32.Checksum(first[:], castagnoli), castagnoli, hdr[batchHeaderSize:])
	}
	if crc != want {
		return h, nil, 0, fmt.Sprintf("batch header checksum %#08x, computed %#08x", want, crc)
	}
	out = descs[:0]
	var data uint32
	for i := 0; i < int(h.Count); i++ {
		d, why := parseDesc(hdr[batchHeaderSize+i*descSize:])
		if why != "" {
			return h, nil, 0, fmt.Sprintf("descriptor %d: %s", i, why)
		}
		data += dataBlocksFor(d.Length)
		out = append(out, d)
	}
	if data != h.DataBlocks {
		return h, nil, 0, fmt.Sprintf("descriptors need %d data blocks, header says %d", data, h.DataBlocks)
	}
	return h, out, int(h.HeaderBlocks), ""
}
