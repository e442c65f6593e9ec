package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/bits"
	"strings"
	"unicode/utf8"

	"github.com/ncw/directio"

	"github.com/weftfs/weft/internal/vfs"
)

// Checkpoint format. A checkpoint is the whole engine state (type
// checkpoint) encoded as one payload and stored in one of the two slots of
// the device's checkpoint area. The slots alternate, so writing a new
// checkpoint never touches the newest valid one:
//
//	checkpoint area (sb.CheckpointOffset, sb.CheckpointSize bytes)
//	+------------------------------------+------------------------------------+
//	| slot 0 (CheckpointSize/2 bytes)    | slot 1 (CheckpointSize/2 bytes)    |
//	+------------------------------------+------------------------------------+
//
//	slot
//	+---------------------+-------------------------+----------+--------------
//	| slot header (4 KiB) | payload (payloadLen)    | zero pad | unused ...
//	+---------------------+-------------------------+----------+--------------
//	                        padded to a 4 KiB multiple
//
//	slot header (little-endian; every byte after headerCRC is zero)
//	+-------+---------+------+-----+------------+------------+-----------+-----------+
//	| magic | version | slot | seq | payloadLen | payloadCRC | device    | headerCRC |
//	| u64   | u32     | u32  | u64 | u64        | u32        | uuid [16] | u32       |
//	+-------+---------+------+-----+------------+------------+-----------+-----------+
//	  0       8         12     16    24           32           36          52
//
// payloadCRC is the CRC32C of the payload bytes (not the padding),
// headerCRC that of header bytes [0, 52). seq and device repeat the
// payload's, so a slot can be judged (empty, foreign, damaged, older)
// from its header alone.
//
// The payload is these fields in this order. uv is a uvarint and zz a
// zigzag varint (encoding/binary), u8 and u32 are fixed-width
// little-endian, id is an ObjectID as 16 bytes (Hi, then Lo, each a
// little-endian u64). [x] is present only as its flag says.
//
//	payload    version u8 (2) | seq uv | device [16] | nextGen uv | nextSnap uv
//	           | shardCount uv | shard... | snapCount uv | snapshot...
//	shard      shard uv | openSegment+1 uv (0 is NoSegment) | openGen uv
//	           | openPos/4096 uv | nextBatchSeq uv
//	           | segCount uv | segRef... | objects | extents
//	segRef     index uv | gen - previous gen uv (previous is 0 for the first)
//	snapshot   id uv | nameLen uv | name | created zz
//	           | shardCount uv | (objects | extents)...
//	objects    count uv | object...
//	object     id | flags u8 | size uv | version uv | pg uv | pgSeq uv
//	           | [reqCount u8 | request...]
//	request    request id [16] | seq uv
//	extents    count uv | extent...
//	extent     flags u8 | [object id] | offDelta uv | segment uv
//	           | recordOffset/4096 uv | recordLength uv | [skip uv] | [len uv]
//	           | recordCRC u32 | version uv
//
//	object flags   bit 0  Deleted
//	               bit 1  the object holds request ids: reqCount (1 to
//	                      KeptRequests) and that many requests, oldest
//	                      first, each id non-zero and distinct
//	extent flags   bit 0  same object as the previous extent in the list: no
//	                      object id, and offDelta = Off - previous End();
//	                      otherwise offDelta = Off
//	               bit 1  Skip is 0: no skip field
//	               bit 2  Len = recordLength - Skip (the extent runs to its
//	                      record's end): no len field
//
// Payload version 1 had no request ids (format version 1); this build
// reads version 2 only.
//
// A random 4 KiB extent takes about 18 bytes (TestCheckpointBytesPerExtent).
//
// The encoding is canonical: a checkpoint has exactly one encoding, and
// decodeCheckpoint rejects every other byte string (over-long varints,
// unknown flag bits, a flag cleared where its condition holds or a field
// present that its flag would omit, trailing bytes), so that
// encodeCheckpoint(decodeCheckpoint(b)) == b for every b that decodes.
// decodeCheckpoint returns nil, never an empty slice, for every empty
// list; encodeCheckpoint treats nil and empty alike.
//
// Invariants of a checkpoint, checked by encodeCheckpoint (a violation is
// a caller bug: it panics) and by decodeCheckpoint (ErrCorrupt):
//   - Shards strictly ascending by Shard; snapshots strictly ascending by
//     ID, each ID below NextSnap.
//   - A shard's OpenPos is a multiple of 4096. Its Segments are strictly
//     ascending by Gen, every Gen in [1, NextGen), no Index is NoSegment;
//     OpenGen is in [1, NextGen) unless OpenSegment is NoSegment.
//   - Every list of objects is strictly ascending by ID; every list of
//     extents is strictly ascending by (object, Off), extents of one
//     object do not overlap, and each passes Extent.check.
//   - A snapshot's name is valid UTF-8 of at most 255 bytes.
//
// NB: nothing here ties extents to objects (an extent's object need not
// be listed, nor be live, nor be that long): that is the engine's
// invariant, not the codec's.
//
// On-disk format: never renumber.
const (
	ckptMagic           uint64 = 0x3176504B_43544657 // "WFTCKPv1"
	ckptSlotVersion     uint32 = 1
	ckptPayloadVersion  byte   = 2
	ckptSlots                  = 2
	ckptHeaderSize             = 4096
	ckptHeaderCRCOffset        = 52
	ckptHeaderEnd              = ckptHeaderCRCOffset + 4

	ckptObjDeleted    byte = 1 << 0
	ckptObjRequests   byte = 1 << 1
	ckptExtSameObject byte = 1 << 0
	ckptExtSkipZero   byte = 1 << 1
	ckptExtToEnd      byte = 1 << 2

	ckptNameMax = 255
)

// Smallest encodings of the payload's list items, in bytes; a count that
// the remaining bytes cannot hold at this size is rejected before anything
// is allocated for it.
const (
	ckptShardMin     = 8  // 5 one-byte fields and 3 empty lists
	ckptSegRefMin    = 2  // 2 one-byte fields
	ckptObjectMin    = 21 // id, flags and 4 one-byte fields
	ckptExtentMin    = 10 // flags, 5 one-byte fields and the CRC
	ckptSnapshotMin  = 4  // id, empty name, created, shardCount
	ckptSnapShardMin = 2  // 2 empty lists
)

// ErrCheckpointTooLarge is returned by writeCheckpoint when the encoded
// checkpoint does not fit in a checkpoint slot; the message says how many
// bytes it needs and how many a slot holds.
var ErrCheckpointTooLarge = errors.New("engine: checkpoint does not fit in a checkpoint slot")

// encodeCheckpoint returns the payload encoding of c (see the format
// above). It panics if c breaks one of the format's invariants, since a
// checkpoint that cannot be read back must never be written.
func encodeCheckpoint(c *checkpoint) []byte {
	b := make([]byte, 0, ckptSizeHint(c))
	b = append(b, ckptPayloadVersion)
	b = binary.AppendUvarint(b, c.Seq)
	b = append(b, c.Device[:]...)
	b = binary.AppendUvarint(b, c.NextGen)
	b = binary.AppendUvarint(b, c.NextSnap)

	b = binary.AppendUvarint(b, uint64(len(c.Shards)))
	for i := range c.Shards {
		s := &c.Shards[i]
		var prev *shardState
		if i > 0 {
			prev = &c.Shards[i-1]
		}
		if r := ckptCheckShard(prev, s, c.NextGen); r != "" {
			panic(fmt.Sprintf("engine: checkpoint: encode: shard %d (#%d): %s", s.Shard, i, r))
		}
		b = binary.AppendUvarint(b, uint64(s.Shard))
		b = binary.AppendUvarint(b, uint64(s.OpenSegment+1)) // NoSegment wraps to 0
		b = binary.AppendUvarint(b, s.OpenGen)
		b = binary.AppendUvarint(b, uint64(s.OpenPos/indexBlockSize))
		b = binary.AppendUvarint(b, s.NextBatchSeq)
		b = binary.AppendUvarint(b, uint64(len(s.Segments)))
		var prevGen uint64
		for j, r := range s.Segments {
			if why := ckptCheckSegRef(prevGen, r, c.NextGen); why != "" {
				panic(fmt.Sprintf("engine: checkpoint: encode: shard %d (#%d) segment ref %d: %s", s.Shard, i, j, why))
			}
			b = binary.AppendUvarint(b, uint64(r.Index))
			b = binary.AppendUvarint(b, r.Gen-prevGen)
			prevGen = r.Gen
		}
		b = appendCkptObjects(b, s.Objects, i, -1)
		b = appendCkptExtents(b, s.Extents, i, -1)
	}

	b = binary.AppendUvarint(b, uint64(len(c.Snapshots)))
	for i := range c.Snapshots {
		s := &c.Snapshots[i]
		var prev *snapshotState
		if i > 0 {
			prev = &c.Snapshots[i-1]
		}
		if r := ckptCheckSnapshot(prev, s, c.NextSnap); r != "" {
			panic(fmt.Sprintf("engine: checkpoint: encode: snapshot %d (#%d): %s", s.ID, i, r))
		}
		b = binary.AppendUvarint(b, s.ID)
		b = binary.AppendUvarint(b, uint64(len(s.Name)))
		b = append(b, s.Name...)
		b = binary.AppendVarint(b, s.Created)
		b = binary.AppendUvarint(b, uint64(len(s.Shards)))
		for j := range s.Shards {
			b = appendCkptObjects(b, s.Shards[j].Objects, j, i)
			b = appendCkptExtents(b, s.Shards[j].Extents, j, i)
		}
	}
	return b
}

// ckptSizeHint estimates the encoded size of c, to allocate once.
func ckptSizeHint(c *checkpoint) int {
	n := 64
	lists := func(objs, exts int) int { return 4 + objs*32 + exts*20 }
	for i := range c.Shards {
		s := &c.Shards[i]
		n += 32 + 12*len(s.Segments) + lists(len(s.Objects), len(s.Extents))
	}
	for i := range c.Snapshots {
		s := &c.Snapshots[i]
		n += 24 + len(s.Name)
		for j := range s.Shards {
			n += lists(len(s.Shards[j].Objects), len(s.Shards[j].Extents))
		}
	}
	return n
}

// ckptWhere names a list of a checkpoint for messages: shard is the
// shard's position in its list, snap the snapshot's or -1.
func ckptWhere(shard, snap int) string {
	if snap >= 0 {
		return fmt.Sprintf("snapshot #%d shard #%d", snap, shard)
	}
	return fmt.Sprintf("shard #%d", shard)
}

func appendCkptObjects(b []byte, objs []ObjectState, shard, snap int) []byte {
	b = binary.AppendUvarint(b, uint64(len(objs)))
	for i := range objs {
		o := &objs[i]
		if i > 0 && !objectLess(objs[i-1].ID, o.ID) {
			panic(fmt.Sprintf("engine: checkpoint: encode: %s object %d: %v does not follow %v",
				ckptWhere(shard, snap), i, o.ID, objs[i-1].ID))
		}
		b = binary.LittleEndian.AppendUint64(b, o.ID.Hi)
		b = binary.LittleEndian.AppendUint64(b, o.ID.Lo)
		if why := ckptCheckRequests(o); why != "" {
			panic(fmt.Sprintf("engine: checkpoint: encode: %s object %d (%v): %s", ckptWhere(shard, snap), i, o.ID, why))
		}
		var flags byte
		if o.Deleted {
			flags |= ckptObjDeleted
		}
		n := o.requestCount()
		if n > 0 {
			flags |= ckptObjRequests
		}
		b = append(b, flags)
		b = binary.AppendUvarint(b, o.Size)
		b = binary.AppendUvarint(b, o.Version)
		b = binary.AppendUvarint(b, uint64(o.PG))
		b = binary.AppendUvarint(b, o.PGSeq)
		if n > 0 {
			b = append(b, byte(n))
			for _, r := range o.Requests[:n] {
				b = append(b, r.ID[:]...)
				b = binary.AppendUvarint(b, r.Seq)
			}
		}
	}
	return b
}

// ckptCheckRequests returns why o's request ids break the format's rules
// (packed at the front, distinct), or "".
func ckptCheckRequests(o *ObjectState) string {
	n := o.requestCount()
	for i, r := range o.Requests {
		switch {
		case i >= n && r != (AppliedRequest{}):
			return fmt.Sprintf("request %d follows an unused slot", i)
		case i < n:
			for _, q := range o.Requests[:i] {
				if q.ID == r.ID {
					return fmt.Sprintf("request id %x repeats", r.ID)
				}
			}
		}
	}
	return ""
}

func appendCkptExtents(b []byte, exts []Extent, shard, snap int) []byte {
	b = binary.AppendUvarint(b, uint64(len(exts)))
	for i := range exts {
		e := &exts[i]
		var prev *Extent
		if i > 0 {
			prev = &exts[i-1]
		}
		if r := ckptCheckExtent(prev, e); r != "" {
			panic(fmt.Sprintf("engine: checkpoint: encode: %s extent %d: %s", ckptWhere(shard, snap), i, r))
		}
		var flags byte
		base := uint64(0)
		if prev != nil && prev.Object == e.Object {
			flags |= ckptExtSameObject
			base = prev.End()
		}
		if e.Skip == 0 {
			flags |= ckptExtSkipZero
		}
		// Invariant (Extent.check): Skip+Len <= Loc.Length.
		if e.Len == e.Loc.Length-e.Skip {
			flags |= ckptExtToEnd
		}
		b = append(b, flags)
		if flags&ckptExtSameObject == 0 {
			b = binary.LittleEndian.AppendUint64(b, e.Object.Hi)
			b = binary.LittleEndian.AppendUint64(b, e.Object.Lo)
		}
		b = binary.AppendUvarint(b, e.Off-base)
		b = binary.AppendUvarint(b, uint64(e.Loc.Segment))
		b = binary.AppendUvarint(b, uint64(e.Loc.Offset/indexBlockSize))
		b = binary.AppendUvarint(b, uint64(e.Loc.Length))
		if flags&ckptExtSkipZero == 0 {
			b = binary.AppendUvarint(b, uint64(e.Skip))
		}
		if flags&ckptExtToEnd == 0 {
			b = binary.AppendUvarint(b, uint64(e.Len))
		}
		b = binary.LittleEndian.AppendUint32(b, e.Loc.CRC)
		b = binary.AppendUvarint(b, e.Version)
	}
	return b
}

// The ckptCheck functions hold the invariants both encodeCheckpoint and
// decodeCheckpoint enforce. Each returns "" or what is wrong; prev is the
// previous item of the list, nil (or 0) for the first.

func ckptCheckShard(prev, s *shardState, nextGen uint64) string {
	switch {
	case prev != nil && s.Shard <= prev.Shard:
		return fmt.Sprintf("shard %d follows shard %d", s.Shard, prev.Shard)
	case s.OpenPos%indexBlockSize != 0:
		return fmt.Sprintf("open position %d is not a multiple of %d", s.OpenPos, indexBlockSize)
	case s.OpenSegment != NoSegment && (s.OpenGen == 0 || s.OpenGen >= nextGen):
		return fmt.Sprintf("open segment %d has generation %d, want 1 to next generation %d - 1",
			s.OpenSegment, s.OpenGen, nextGen)
	}
	return ""
}

func ckptCheckSegRef(prevGen uint64, r segmentRef, nextGen uint64) string {
	switch {
	case r.Index == NoSegment:
		return fmt.Sprintf("segment index %d is NoSegment", r.Index)
	case r.Gen <= prevGen:
		return fmt.Sprintf("segment %d generation %d does not follow generation %d", r.Index, r.Gen, prevGen)
	case r.Gen >= nextGen:
		return fmt.Sprintf("segment %d generation %d is not below next generation %d", r.Index, r.Gen, nextGen)
	}
	return ""
}

func ckptCheckSnapshot(prev, s *snapshotState, nextSnap uint64) string {
	switch {
	case prev != nil && s.ID <= prev.ID:
		return fmt.Sprintf("snapshot %d follows snapshot %d", s.ID, prev.ID)
	case s.ID >= nextSnap:
		return fmt.Sprintf("snapshot %d is not below next snapshot ID %d", s.ID, nextSnap)
	case len(s.Name) > ckptNameMax:
		return fmt.Sprintf("name is %d bytes, more than %d", len(s.Name), ckptNameMax)
	case !utf8.ValidString(s.Name):
		return fmt.Sprintf("name %q is not valid UTF-8", s.Name)
	}
	return ""
}

func ckptCheckExtent(prev, e *Extent) string {
	if err := e.check(); err != nil {
		return err.Error()
	}
	switch {
	case prev == nil:
	case prev.Object == e.Object && e.Off < prev.End():
		return fmt.Sprintf("extent %v overlaps or precedes %v", e, prev)
	case prev.Object != e.Object && !objectLess(prev.Object, e.Object):
		return fmt.Sprintf("extent %v follows %v: objects out of order", e, prev)
	}
	return ""
}

// ckptUvarintLen is the length of the canonical uvarint encoding of v.
func ckptUvarintLen(v uint64) int { return max(1, (bits.Len64(v)+6)/7) }

// ckptDecoder reads a payload. The first error sticks: later reads return
// zero values and later failures are ignored, so a decoding step can read
// all its fields and check d.err once.
type ckptDecoder struct {
	b   []byte
	off int
	err error

	// Position in the payload's lists for messages; -1 or "" outside.
	shard, snap int
	list        string
	item        int
}

// decodeCheckpoint parses a payload written by encodeCheckpoint. Every
// error wraps ErrCorrupt and names the byte offset and the item at fault.
// It never panics and allocates in proportion to len(b). Empty lists
// decode as nil. The result does not alias b.
func decodeCheckpoint(b []byte) (*checkpoint, error) {
	d := ckptDecoder{b: b, shard: -1, snap: -1, item: -1}
	c := d.checkpoint()
	if d.err == nil && d.off != len(b) {
		d.failAt(d.off, "%d bytes after the end of the checkpoint", len(b)-d.off)
	}
	if d.err != nil {
		return nil, d.err
	}
	return c, nil
}

func (d *ckptDecoder) failAt(off int, format string, args ...any) {
	if d.err != nil {
		return
	}
	var where []string
	if d.snap >= 0 {
		where = append(where, fmt.Sprintf("snapshot #%d", d.snap))
	}
	if d.shard >= 0 {
		where = append(where, fmt.Sprintf("shard #%d", d.shard))
	}
	if d.list != "" && d.item >= 0 {
		where = append(where, fmt.Sprintf("%s %d", d.list, d.item))
	}
	what := fmt.Sprintf(format, args...)
	if len(where) > 0 {
		what = strings.Join(where, " ") + ": " + what
	}
	d.err = fmt.Errorf("%w: checkpoint: byte %d: %s", ErrCorrupt, off, what)
}

func (d *ckptDecoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	switch {
	case n == 0:
		d.failAt(d.off, "%s: truncated", what)
	case n < 0:
		d.failAt(d.off, "%s: varint overflows 64 bits", what)
	case n != ckptUvarintLen(v):
		d.failAt(d.off, "%s: over-long varint (%d bytes for %d)", what, n, v)
	}
	if d.err != nil {
		return 0
	}
	d.off += n
	return v
}

func (d *ckptDecoder) uvarint32(what string) uint32 {
	at := d.off
	v := d.uvarint(what)
	if v > math.MaxUint32 {
		d.failAt(at, "%s %d does not fit in 32 bits", what, v)
		return 0
	}
	return uint32(v)
}

// blocks reads a uvarint count of 4096-byte blocks that must fit in a
// uint32 once multiplied out.
func (d *ckptDecoder) blocks(what string) uint32 {
	at := d.off
	v := d.uvarint(what)
	if v > math.MaxUint32/indexBlockSize {
		d.failAt(at, "%s of %d blocks of %d bytes does not fit in 32 bits", what, v, indexBlockSize)
		return 0
	}
	return uint32(v) * indexBlockSize
}

// count reads a list length and checks that the remaining bytes can hold
// that many items of at least itemMin bytes each.
func (d *ckptDecoder) count(what string, itemMin int) int {
	at := d.off
	n := d.uvarint(what)
	if d.err != nil {
		return 0
	}
	if rem := len(d.b) - d.off; n > uint64(rem/itemMin) {
		d.failAt(at, "%s %d: only %d bytes remain, and each takes at least %d", what, n, rem, itemMin)
		return 0
	}
	return int(n)
}

func (d *ckptDecoder) fixed(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b)-d.off < n {
		d.failAt(d.off, "%s: truncated (%d bytes, want %d)", what, len(d.b)-d.off, n)
		return nil
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p
}

func (d *ckptDecoder) byte1(what string) byte {
	if p := d.fixed(1, what); p != nil {
		return p[0]
	}
	return 0
}

func (d *ckptDecoder) u32(what string) uint32 {
	if p := d.fixed(4, what); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (d *ckptDecoder) objectID(what string) ObjectID {
	if p := d.fixed(16, what); p != nil {
		return ObjectID{Hi: binary.LittleEndian.Uint64(p), Lo: binary.LittleEndian.Uint64(p[8:])}
	}
	return ObjectID{}
}

func (d *ckptDecoder) checkpoint() *checkpoint {
	if v := d.byte1("format version"); d.err == nil && v != ckptPayloadVersion {
		d.failAt(0, "format version %d, this build reads %d", v, ckptPayloadVersion)
	}
	c := &checkpoint{}
	c.Seq = d.uvarint("seq")
	copy(c.Device[:], d.fixed(len(c.Device), "device uuid"))
	c.NextGen = d.uvarint("next generation")
	c.NextSnap = d.uvarint("next snapshot ID")

	if n := d.count("shard count", ckptShardMin); n > 0 {
		c.Shards = make([]shardState, n)
		for i := range c.Shards {
			d.shard = i
			d.shardState(c, i)
			if d.err != nil {
				return nil
			}
		}
		d.shard = -1
	}

	if n := d.count("snapshot count", ckptSnapshotMin); n > 0 {
		c.Snapshots = make([]snapshotState, n)
		for i := range c.Snapshots {
			d.snap = i
			d.snapshot(c, i)
			if d.err != nil {
				return nil
			}
		}
		d.snap = -1
	}
	return c
}

func (d *ckptDecoder) shardState(c *checkpoint, i int) {
	at := d.off
	s := &c.Shards[i]
	s.Shard = d.uvarint32("shard number")
	s.OpenSegment = d.uvarint32("open segment") - 1 // 0 wraps to NoSegment
	s.OpenGen = d.uvarint("open generation")
	s.OpenPos = d.blocks("open position")
	s.NextBatchSeq = d.uvarint("next batch seq")
	if d.err != nil {
		return
	}
	var prev *shardState
	if i > 0 {
		prev = &c.Shards[i-1]
	}
	if r := ckptCheckShard(prev, s, c.NextGen); r != "" {
		d.failAt(at, "%s", r)
		return
	}

	if n := d.count("segment ref count", ckptSegRefMin); n > 0 {
		s.Segments = make([]segmentRef, n)
		d.list = "segment ref"
		var prevGen uint64
		for j := range s.Segments {
			d.item = j
			at := d.off
			r := &s.Segments[j]
			r.Index = d.uvarint32("segment index")
			delta := d.uvarint("generation delta")
			if d.err != nil {
				return
			}
			if delta > math.MaxUint64-prevGen {
				d.failAt(at, "generation %d + %d overflows", prevGen, delta)
				return
			}
			r.Gen = prevGen + delta
			if why := ckptCheckSegRef(prevGen, *r, c.NextGen); why != "" {
				d.failAt(at, "%s", why)
				return
			}
			prevGen = r.Gen
		}
		d.list, d.item = "", -1
	}
	s.Objects = d.objects()
	s.Extents = d.extents()
}

func (d *ckptDecoder) snapshot(c *checkpoint, i int) {
	at := d.off
	s := &c.Snapshots[i]
	s.ID = d.uvarint("snapshot ID")
	nameAt := d.off
	if n := d.uvarint("name length"); n > ckptNameMax {
		d.failAt(nameAt, "name length %d, more than %d", n, ckptNameMax)
	} else {
		s.Name = string(d.fixed(int(n), "name"))
	}
	u := d.uvarint("creation time")
	s.Created = int64(u>>1) ^ -int64(u&1) // zigzag, as binary.Varint
	if d.err != nil {
		return
	}
	var prev *snapshotState
	if i > 0 {
		prev = &c.Snapshots[i-1]
	}
	if r := ckptCheckSnapshot(prev, s, c.NextSnap); r != "" {
		d.failAt(at, "%s", r)
		return
	}
	if n := d.count("snapshot shard count", ckptSnapShardMin); n > 0 {
		s.Shards = make([]snapshotShard, n)
		for j := range s.Shards {
			d.shard = j
			s.Shards[j].Objects = d.objects()
			s.Shards[j].Extents = d.extents()
			if d.err != nil {
				return
			}
		}
		d.shard = -1
	}
}

func (d *ckptDecoder) objects() []ObjectState {
	n := d.count("object count", ckptObjectMin)
	if n == 0 {
		return nil
	}
	objs := make([]ObjectState, n)
	d.list = "object"
	for i := range objs {
		d.item = i
		at := d.off
		o := &objs[i]
		o.ID = d.objectID("object ID")
		flagsAt := d.off
		flags := d.byte1("object flags")
		o.Deleted = flags&ckptObjDeleted != 0
		o.Size = d.uvarint("size")
		o.Version = d.uvarint("version")
		o.PG = d.uvarint32("placement group")
		o.PGSeq = d.uvarint("placement group seq")
		if flags&ckptObjRequests != 0 && d.err == nil {
			countAt := d.off
			n := int(d.byte1("request count"))
			if d.err == nil && (n == 0 || n > KeptRequests) {
				d.failAt(countAt, "request count %d, want 1 to %d", n, KeptRequests)
			}
			for j := 0; j < n && d.err == nil; j++ {
				idAt := d.off
				copy(o.Requests[j].ID[:], d.fixed(16, "request id"))
				o.Requests[j].Seq = d.uvarint("request seq")
				if d.err == nil && o.Requests[j].ID == (RequestID{}) {
					d.failAt(idAt, "request id %d is zero", j)
				}
			}
			if why := ckptCheckRequests(o); d.err == nil && why != "" {
				d.failAt(countAt, "%s", why)
			}
		}
		switch {
		case d.err != nil:
			return nil
		case flags&^(ckptObjDeleted|ckptObjRequests) != 0:
			d.failAt(flagsAt, "unknown object flags %#02x", flags)
			return nil
		case i > 0 && !objectLess(objs[i-1].ID, o.ID):
			d.failAt(at, "object %v does not follow %v", o.ID, objs[i-1].ID)
			return nil
		}
	}
	d.list, d.item = "", -1
	return objs
}

func (d *ckptDecoder) extents() []Extent {
	n := d.count("extent count", ckptExtentMin)
	if n == 0 {
		return nil
	}
	exts := make([]Extent, n)
	d.list = "extent"
	for i := range exts {
		d.item = i
		at := d.off
		e := &exts[i]
		var prev *Extent
		if i > 0 {
			prev = &exts[i-1]
		}
		flags := d.byte1("extent flags")
		if d.err == nil && flags&^(ckptExtSameObject|ckptExtSkipZero|ckptExtToEnd) != 0 {
			d.failAt(at, "unknown extent flags %#02x", flags)
		}
		base := uint64(0)
		if flags&ckptExtSameObject != 0 {
			if prev == nil {
				d.failAt(at, "first extent of the list is marked as continuing the previous one's object")
				return nil
			}
			e.Object, base = prev.Object, prev.End()
		} else {
			idAt := d.off
			e.Object = d.objectID("extent object")
			if prev != nil && prev.Object == e.Object {
				d.failAt(idAt, "object %v repeated instead of flagged as the previous extent's", e.Object)
			}
		}
		deltaAt := d.off
		delta := d.uvarint("offset delta")
		if delta > math.MaxUint64-base {
			d.failAt(deltaAt, "offset %d + delta %d overflows", base, delta)
		}
		e.Off = base + delta
		e.Loc.Segment = d.uvarint32("record segment")
		e.Loc.Offset = d.blocks("record offset")
		e.Loc.Length = d.uvarint32("record length")
		if flags&ckptExtSkipZero == 0 {
			skipAt := d.off
			if e.Skip = d.uvarint32("skip"); d.err == nil && e.Skip == 0 {
				d.failAt(skipAt, "skip 0 stored instead of flagged")
			}
		}
		if d.err == nil && e.Skip > e.Loc.Length {
			d.failAt(at, "skip %d is beyond record length %d", e.Skip, e.Loc.Length)
		}
		if flags&ckptExtToEnd != 0 {
			e.Len = e.Loc.Length - e.Skip
		} else {
			lenAt := d.off
			if e.Len = d.uvarint32("length"); d.err == nil && e.Len == e.Loc.Length-e.Skip {
				d.failAt(lenAt, "length %d runs to the record's end but is stored instead of flagged", e.Len)
			}
		}
		e.Loc.CRC = d.u32("record CRC")
		e.Version = d.uvarint("version")
		if d.err != nil {
			return nil
		}
		if r := ckptCheckExtent(prev, e); r != "" {
			d.failAt(at, "%s", r)
			return nil
		}
	}
	d.list, d.item = "", -1
	return exts
}

// ckptSlotHeader is a decoded slot header.
type ckptSlotHeader struct {
	Slot       uint32
	Seq        uint64
	PayloadLen uint64
	PayloadCRC uint32
	Device     UUID
}

// encode writes h into b, a ckptHeaderSize buffer.
func (h *ckptSlotHeader) encode(b []byte) {
	clear(b[:ckptHeaderSize])
	le := binary.LittleEndian
	le.PutUint64(b[0:], ckptMagic)
	le.PutUint32(b[8:], ckptSlotVersion)
	le.PutUint32(b[12:], h.Slot)
	le.PutUint64(b[16:], h.Seq)
	le.PutUint64(b[24:], h.PayloadLen)
	le.PutUint32(b[32:], h.PayloadCRC)
	copy(b[36:52], h.Device[:])
	le.PutUint32(b[ckptHeaderCRCOffset:], crc32.Checksum(b[:ckptHeaderCRCOffset], castagnoli))
}

// decodeCkptSlotHeader parses a slot header. A block without the magic is
// an empty slot (present false); a damaged header is present with a
// reason.
func decodeCkptSlotHeader(b []byte) (h ckptSlotHeader, present bool, reason string) {
	le := binary.LittleEndian
	if le.Uint64(b[0:]) != ckptMagic {
		return h, false, ""
	}
	if got, want := le.Uint32(b[ckptHeaderCRCOffset:]), crc32.Checksum(b[:ckptHeaderCRCOffset], castagnoli); got != want {
		return h, true, fmt.Sprintf("header checksum %#08x, computed %#08x", got, want)
	}
	if v := le.Uint32(b[8:]); v != ckptSlotVersion {
		return h, true, fmt.Sprintf("slot format version %d, this build reads %d", v, ckptSlotVersion)
	}
	for i := ckptHeaderEnd; i < ckptHeaderSize; i++ {
		if b[i] != 0 {
			return h, true, fmt.Sprintf("header byte %d is %#02x, want 0", i, b[i])
		}
	}
	h.Slot = le.Uint32(b[12:])
	h.Seq = le.Uint64(b[16:])
	h.PayloadLen = le.Uint64(b[24:])
	h.PayloadCRC = le.Uint32(b[32:])
	copy(h.Device[:], b[36:52])
	return h, true, ""
}

// ckptSlotBytes is the size of one slot of sb's checkpoint area. sb must
// be valid (Layout or DecodeSuperblock checked it): a slot too small for
// its header panics.
func ckptSlotBytes(sb *Superblock) uint64 {
	n := (sb.CheckpointSize / ckptSlots) &^ (vfs.Alignment - 1)
	if n <= ckptHeaderSize {
		panic(fmt.Sprintf("engine: checkpoint area of %d bytes: slots of %d bytes cannot hold a %d-byte header and a payload",
			sb.CheckpointSize, n, ckptHeaderSize))
	}
	return n
}

// ckptSlotOffset is the device offset of slot.
func ckptSlotOffset(sb *Superblock, slot int) int64 {
	return int64(sb.CheckpointOffset + uint64(slot)*ckptSlotBytes(sb))
}

func ckptRoundUp(n uint64) uint64 { return (n + vfs.Alignment - 1) &^ (vfs.Alignment - 1) }

// writeCheckpoint writes c to checkpoint slot 0 or 1 of f, whose layout sb
// describes, and flushes: when it returns nil, c is durable. It returns
// the bytes written (header and padded payload). The caller alternates
// slots, writing to the slot that readCheckpoint did not return (either
// when it returned -1), and gives each checkpoint a higher Seq than the
// last; otherwise a crash during the write can lose the newest valid
// checkpoint. A checkpoint that does not fit gets an error wrapping
// ErrCheckpointTooLarge and nothing is written.
//
// c.Device must be sb.UUID, slot 0 or 1, and c must keep the format's
// invariants (see encodeCheckpoint); otherwise writeCheckpoint panics.
func writeCheckpoint(f vfs.File, sb *Superblock, slot int, c *checkpoint) (n int, err error) {
	if slot < 0 || slot >= ckptSlots {
		panic(fmt.Sprintf("engine: write checkpoint %d: slot %d, want 0 to %d", c.Seq, slot, ckptSlots-1))
	}
	if c.Device != sb.UUID {
		panic(fmt.Sprintf("engine: write checkpoint %d: device %s, superblock says %s", c.Seq, c.Device, sb.UUID))
	}
	payload := encodeCheckpoint(c)
	padded := ckptRoundUp(uint64(len(payload)))
	slotBytes := ckptSlotBytes(sb)
	if need := ckptHeaderSize + padded; need > slotBytes {
		return 0, fmt.Errorf("%w: checkpoint %d of %s needs %d bytes (a %d-byte header and %d of payload padded to %d); a slot holds %d",
			ErrCheckpointTooLarge, c.Seq, f.Name(), need, ckptHeaderSize, len(payload), padded, slotBytes)
	}
	off := ckptSlotOffset(sb, slot)

	// The payload is made durable before the header is written, so a
	// header that reached the device always describes a payload that did:
	// a crash leaves the slot's old header (whose payload no longer
	// matches its CRC, or absent on first use) or the new one, never a
	// new header over a torn payload. The header fits in one sector, so
	// it cannot be torn itself.
	buf := directio.AlignedBlock(int(padded))
	copy(buf, payload)
	if _, err := f.WriteAt(buf, off+ckptHeaderSize); err != nil {
		return 0, fmt.Errorf("engine: write checkpoint %d payload to slot %d of %s at %d: %w", c.Seq, slot, f.Name(), off+ckptHeaderSize, err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("engine: flush checkpoint %d payload in slot %d of %s: %w", c.Seq, slot, f.Name(), err)
	}
	h := ckptSlotHeader{
		Slot: uint32(slot), Seq: c.Seq, PayloadLen: uint64(len(payload)),
		PayloadCRC: crc32.Checksum(payload, castagnoli), Device: c.Device,
	}
	hdr := directio.AlignedBlock(ckptHeaderSize)
	h.encode(hdr)
	if _, err := f.WriteAt(hdr, off); err != nil {
		return 0, fmt.Errorf("engine: write checkpoint %d header to slot %d of %s at %d: %w", c.Seq, slot, f.Name(), off, err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("engine: flush checkpoint %d header in slot %d of %s: %w", c.Seq, slot, f.Name(), err)
	}
	return ckptHeaderSize + int(padded), nil
}

// readCheckpoint returns the newest valid checkpoint in f's checkpoint
// area and the slot it came from; the next writeCheckpoint goes to the
// other slot. A slot is skipped when it is empty (no magic: never
// written), foreign (its device UUID is not sb.UUID: left over from an
// earlier format of the device) or damaged (a header or payload check
// fails). Of the valid slots, the one with the higher seq wins (slot 0 on
// a tie). A damaged slot next to a valid one is the expected result of a
// crash during writeCheckpoint and is not reported.
//
// It returns (nil, -1, nil) when no slot holds a checkpoint of this
// device, and an error wrapping ErrCorrupt, naming each damaged slot, its
// device offset and what was wrong, when slots hold damaged checkpoints
// and none is valid. I/O errors are returned as they are.
func readCheckpoint(f vfs.File, sb *Superblock) (c *checkpoint, slot int, err error) {
	type candidate struct {
		slot int
		off  int64
		h    ckptSlotHeader
	}
	var cands []candidate
	var damaged []string
	slotBytes := ckptSlotBytes(sb)
	hdr := directio.AlignedBlock(ckptHeaderSize)
	for i := range ckptSlots {
		off := ckptSlotOffset(sb, i)
		if err := ckptReadFull(f, hdr, off); err != nil {
			return nil, -1, fmt.Errorf("engine: read checkpoint slot %d header of %s at %d: %w", i, f.Name(), off, err)
		}
		h, present, reason := decodeCkptSlotHeader(hdr)
		switch {
		case !present:
			continue
		case reason != "":
		case h.Slot != uint32(i):
			reason = fmt.Sprintf("header says slot %d", h.Slot)
		case h.PayloadLen == 0 || h.PayloadLen > slotBytes-ckptHeaderSize:
			reason = fmt.Sprintf("payload length %d, want 1 to %d", h.PayloadLen, slotBytes-ckptHeaderSize)
		}
		if reason != "" {
			damaged = append(damaged, fmt.Sprintf("slot %d at %d: %s", i, off, reason))
			continue
		}
		if h.Device != sb.UUID {
			continue
		}
		cands = append(cands, candidate{i, off, h})
	}
	if len(cands) == 2 && cands[1].h.Seq > cands[0].h.Seq {
		cands[0], cands[1] = cands[1], cands[0]
	}
	for _, cd := range cands {
		c, reason, err := readCkptPayload(f, cd.off, cd.h)
		if err != nil {
			return nil, -1, fmt.Errorf("engine: read checkpoint %d in slot %d of %s: %w", cd.h.Seq, cd.slot, f.Name(), err)
		}
		if reason == "" {
			return c, cd.slot, nil
		}
		damaged = append(damaged, fmt.Sprintf("slot %d at %d: checkpoint %d: %s", cd.slot, cd.off, cd.h.Seq, reason))
	}
	if len(damaged) == 0 {
		return nil, -1, nil
	}
	return nil, -1, fmt.Errorf("engine: %s: %w: no valid checkpoint: %s", f.Name(), ErrCorrupt, strings.Join(damaged, "; "))
}

// readCkptPayload reads and checks the payload of the slot at off whose
// header is h. A failed check is returned as reason, an I/O error as err.
func readCkptPayload(f vfs.File, off int64, h ckptSlotHeader) (c *checkpoint, reason string, err error) {
	buf := directio.AlignedBlock(int(ckptRoundUp(h.PayloadLen)))
	if err := ckptReadFull(f, buf, off+ckptHeaderSize); err != nil {
		return nil, "", err
	}
	p := buf[:h.PayloadLen]
	if got := crc32.Checksum(p, castagnoli); got != h.PayloadCRC {
		return nil, fmt.Sprintf("payload checksum %#08x, header says %#08x (torn write?)", got, h.PayloadCRC), nil
	}
	c, err = decodeCheckpoint(p)
	switch {
	case err != nil:
		return nil, err.Error(), nil
	case c.Seq != h.Seq:
		return nil, fmt.Sprintf("payload seq %d, header says %d", c.Seq, h.Seq), nil
	case c.Device != h.Device:
		return nil, fmt.Sprintf("payload device %s, header says %s", c.Device, h.Device), nil
	}
	return c, "", nil
}

// ckptReadFull reads len(b) bytes at off; a short read is an error.
func ckptReadFull(f vfs.File, b []byte, off int64) error {
	n, err := f.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}
