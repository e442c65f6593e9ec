package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ncw/directio"

	"github.com/weftfs/weft/internal/vfs"
)

// ckptRoundTrip checks both round-trip properties for c and returns its
// encoding.
func ckptRoundTrip(t *testing.T, c *checkpoint) []byte {
	t.Helper()
	b := encodeCheckpoint(c)
	got, err := decodeCheckpoint(b)
	if err != nil {
		t.Fatalf("decode of encoded checkpoint: %v", err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip changed the checkpoint:\ngot  %+v\nwant %+v", got, c)
	}
	if b2 := encodeCheckpoint(got); !bytes.Equal(b2, b) {
		t.Fatalf("re-encoding differs:\n%x\n%x", b2, b)
	}
	return b
}

func ckptObj(hi, lo uint64) ObjectID { return ObjectID{Hi: hi, Lo: lo} }

// ckptHandMade returns checkpoints that cover every field and flag with
// chosen values, including the extremes.
func ckptHandMade() map[string]*checkpoint {
	dev := UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	a, b := ckptObj(1, 2), ckptObj(1, 3)
	big := ckptObj(math.MaxUint64, math.MaxUint64)
	return map[string]*checkpoint{
		"zero":  {},
		"empty": {Seq: 1, Device: dev, NextGen: 1, NextSnap: 1},
		"empty shards": {Seq: 2, Device: dev, NextGen: 5, NextSnap: 1, Shards: []shardState{
			{Shard: 0, OpenSegment: NoSegment},
			{Shard: 1, OpenSegment: NoSegment, NextBatchSeq: 7},
			{Shard: 9, OpenSegment: 3, OpenGen: 4, OpenPos: 8192, Segments: []segmentRef{{Index: 3, Gen: 4}}},
		}},
		"full": {Seq: math.MaxUint64, Device: dev, NextGen: math.MaxUint64, NextSnap: math.MaxUint64,
			Shards: []shardState{{
				Shard: math.MaxUint32, OpenSegment: NoSegment - 1, OpenGen: math.MaxUint64 - 1,
				OpenPos: math.MaxUint32 &^ 4095, NextBatchSeq: math.MaxUint64,
				Segments: []segmentRef{{Index: 0, Gen: 1}, {Index: 7, Gen: 2}, {Index: NoSegment - 1, Gen: math.MaxUint64 - 1}},
				Objects: []ObjectState{
					{ID: a, Size: 1 << 40, Version: 9, PG: 3, PGSeq: 100, Requests: [KeptRequests]AppliedRequest{
						{ID: RequestID{1}, Seq: 97}, {ID: RequestID{15: 0xff}, Seq: math.MaxUint64}, {ID: RequestID{2}}, {ID: RequestID{3}, Seq: 100}}},
					{ID: b, Version: 10, PG: math.MaxUint32, PGSeq: math.MaxUint64, Deleted: true, Requests: [KeptRequests]AppliedRequest{{ID: RequestID{9}, Seq: 5}}},
					{ID: big, Size: math.MaxUint64, Version: math.MaxUint64},
				},
				Extents: []Extent{
					// whole record, then a head, a tail and a middle piece
					{Object: a, Off: 0, Len: 4096, Loc: Location{Segment: 1, Offset: 0, Length: 4096, CRC: 0xdeadbeef}, Version: 1},
					{Object: a, Off: 4096, Len: 100, Loc: Location{Segment: 2, Offset: 4096, Length: 8192, CRC: 1}, Version: 2},
					{Object: a, Off: 5000, Len: 8000, Skip: 192, Loc: Location{Segment: 2, Offset: 8192, Length: 8192}, Version: 3},
					{Object: a, Off: 13000, Len: 1, Skip: 1, Loc: Location{Segment: NoSegment, Offset: math.MaxUint32 &^ 4095, Length: math.MaxUint32}, Version: 4},
					{Object: b, Off: 1 << 50, Len: math.MaxUint32, Loc: Location{Length: math.MaxUint32}, Version: math.MaxUint64},
					{Object: big, Off: math.MaxUint64 - 4096, Len: 4096, Loc: Location{Length: 4096}},
				},
			}},
			Snapshots: []snapshotState{
				{ID: 0, Name: "", Created: math.MinInt64},
				{ID: 1, Name: "nightly-снимок", Created: -1, Shards: []snapshotShard{
					{},
					{Objects: []ObjectState{{ID: a, Size: 4096, Version: 1}}, Extents: []Extent{
						{Object: a, Len: 4096, Loc: Location{Length: 4096}, Version: 1},
					}},
					{Objects: []ObjectState{{ID: b, Deleted: true, Version: 2, Requests: [KeptRequests]AppliedRequest{{ID: RequestID{9}, Seq: 2}}}}},
				}},
				{ID: 7, Name: strings.Repeat("x", ckptNameMax), Created: math.MaxInt64},
			},
		},
	}
}

func TestCheckpointRoundTripHandMade(t *testing.T) {
	for name, c := range ckptHandMade() {
		t.Run(name, func(t *testing.T) { ckptRoundTrip(t, c) })
	}
}

func TestCheckpointEmptyListsEncodeAsNil(t *testing.T) {
	withNil := &checkpoint{Seq: 3, NextGen: 2, NextSnap: 2,
		Shards:    []shardState{{OpenSegment: NoSegment}},
		Snapshots: []snapshotState{{ID: 1, Shards: []snapshotShard{{}}}}}
	withEmpty := &checkpoint{Seq: 3, NextGen: 2, NextSnap: 2,
		Shards: []shardState{{OpenSegment: NoSegment, Segments: []segmentRef{}, Objects: []ObjectState{}, Extents: []Extent{}}},
		Snapshots: []snapshotState{{ID: 1, Shards: []snapshotShard{
			{Objects: []ObjectState{}, Extents: []Extent{}}}}}}
	if a, b := encodeCheckpoint(withNil), encodeCheckpoint(withEmpty); !bytes.Equal(a, b) {
		t.Fatalf("nil and empty lists encode differently:\n%x\n%x", a, b)
	}
	ckptRoundTrip(t, withNil)
	if b := encodeCheckpoint(&checkpoint{Shards: []shardState{}, Snapshots: []snapshotState{}}); !bytes.Equal(b, encodeCheckpoint(&checkpoint{})) {
		t.Fatalf("empty top-level lists encode differently")
	}
}

// ckptRandIDs returns n distinct object IDs, ascending.
func ckptRandIDs(r *rand.Rand, n int) []ObjectID {
	ids := make([]ObjectID, 0, n)
	for len(ids) < n {
		id := ObjectID{Hi: r.Uint64N(4), Lo: r.Uint64()}
		if r.IntN(8) == 0 {
			id.Hi = r.Uint64()
		}
		ids = append(ids, id)
		slices.SortFunc(ids, func(a, b ObjectID) int {
			if objectLess(a, b) {
				return -1
			} else if a == b {
				return 0
			}
			return 1
		})
		ids = slices.Compact(ids)
	}
	return ids
}

func ckptRandObjects(r *rand.Rand) []ObjectState {
	n := r.IntN(6)
	if n == 0 {
		return nil
	}
	objs := make([]ObjectState, n)
	for i, id := range ckptRandIDs(r, n) {
		objs[i] = ObjectState{ID: id, Size: r.Uint64N(1 << 40), Version: r.Uint64N(1 << 30), PG: r.Uint32N(1024),
			PGSeq: r.Uint64(), Deleted: r.IntN(4) == 0}
		for range r.IntN(KeptRequests + 2) {
			var rid RequestID
			for k := range rid {
				rid[k] = byte(r.Uint32())
			}
			objs[i].addRequest(rid, r.Uint64N(1<<40))
		}
	}
	return objs
}

// ckptRandExtents returns a valid list of extents: a few objects, each
// with extents ascending and disjoint, mixing whole records, heads,
// tails and middle pieces.
func ckptRandExtents(r *rand.Rand) []Extent {
	var exts []Extent
	for _, obj := range ckptRandIDs(r, r.IntN(5)) {
		off := r.Uint64N(1 << 30)
		if r.IntN(10) == 0 {
			off = r.Uint64()>>1 + r.Uint64N(1<<62)
		}
		for range r.IntN(8) {
			length := uint32(4096)
			if r.IntN(2) == 0 {
				length = 1 + r.Uint32N(1<<17)
			}
			var skip uint32
			if r.IntN(2) == 0 {
				skip = r.Uint32N(length)
			}
			n := length - skip
			if r.IntN(2) == 0 {
				n = 1 + r.Uint32N(n)
			}
			if off > math.MaxUint64-uint64(n) {
				break
			}
			e := Extent{Object: obj, Off: off, Len: n, Skip: skip, Version: r.Uint64N(1 << 20),
				Loc: Location{Segment: r.Uint32N(4096), Offset: r.Uint32N(1<<20) * 4096, Length: length, CRC: r.Uint32()}}
			if r.IntN(10) == 0 {
				e.Loc.Segment, e.Version = r.Uint32(), r.Uint64()
			}
			exts = append(exts, e)
			off = e.End()
			if r.IntN(2) == 0 {
				gap := r.Uint64N(1 << 24)
				if off > math.MaxUint64-gap {
					break
				}
				off += gap
			}
		}
	}
	return exts
}

// ckptRandom returns a valid random checkpoint; empty lists are nil, as
// decodeCheckpoint returns them.
func ckptRandom(r *rand.Rand) *checkpoint {
	c := &checkpoint{Seq: r.Uint64N(1 << 40), NextGen: 100 + r.Uint64N(1<<40), NextSnap: 100 + r.Uint64N(1000)}
	for i := range c.Device {
		c.Device[i] = byte(r.Uint32())
	}
	shard := uint32(0)
	for range r.IntN(4) {
		shard += 1 + r.Uint32N(3)
		s := shardState{Shard: shard, OpenSegment: NoSegment, NextBatchSeq: r.Uint64N(1 << 30)}
		gen := r.Uint64N(c.NextGen - 50)
		for range r.IntN(5) {
			gen += 1 + r.Uint64N(8)
			s.Segments = append(s.Segments, segmentRef{Index: r.Uint32N(4096), Gen: gen})
		}
		if len(s.Segments) > 0 && r.IntN(4) != 0 {
			last := s.Segments[len(s.Segments)-1]
			s.OpenSegment, s.OpenGen, s.OpenPos = last.Index, last.Gen, r.Uint32N(8192)*4096
		}
		s.Objects = ckptRandObjects(r)
		s.Extents = ckptRandExtents(r)
		c.Shards = append(c.Shards, s)
	}
	id := uint64(0)
	names := []string{"", "a", "daily", "snapshot before upgrade", "日本語"}
	for range r.IntN(3) {
		id += r.Uint64N(30)
		s := snapshotState{ID: id, Name: names[r.IntN(len(names))], Created: int64(r.Uint64())}
		id++
		for range r.IntN(3) {
			s.Shards = append(s.Shards, snapshotShard{Objects: ckptRandObjects(r), Extents: ckptRandExtents(r)})
		}
		c.Snapshots = append(c.Snapshots, s)
	}
	return c
}

func TestCheckpointRoundTripRandom(t *testing.T) {
	const seed = 42
	r := rand.New(rand.NewPCG(seed, 0))
	for i := range 2000 {
		c := ckptRandom(r)
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("seed %d, checkpoint %d", seed, i)
				}
			}()
			ckptRoundTrip(t, c)
		})
	}
}

// TestCheckpointDecodeDamaged checks that every truncation of valid
// payloads and every single-byte change either is rejected as ErrCorrupt
// or decodes to something that re-encodes to exactly the damaged bytes.
func TestCheckpointDecodeDamaged(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 0))
	inputs := [][]byte{encodeCheckpoint(ckptHandMade()["full"])}
	for range 10 {
		inputs = append(inputs, encodeCheckpoint(ckptRandom(r)))
	}
	for k, b := range inputs {
		for n := range len(b) {
			if _, err := decodeCheckpoint(b[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("input %d cut to %d of %d bytes: err %v, want ErrCorrupt", k, n, len(b), err)
			}
		}
		if _, err := decodeCheckpoint(append(slices.Clip(b), 0)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "after the end") {
			t.Fatalf("input %d with a trailing byte: err %v", k, err)
		}
		for i := range b {
			for _, x := range []byte{0x01, 0x80, 0xff, byte(r.Uint32())} {
				d := bytes.Clone(b)
				d[i] ^= x
				c, err := decodeCheckpoint(d)
				if err != nil {
					if !errors.Is(err, ErrCorrupt) {
						t.Fatalf("input %d byte %d ^ %#x: err %v, want ErrCorrupt", k, i, x, err)
					}
					continue
				}
				if e := encodeCheckpoint(c); !bytes.Equal(e, d) {
					t.Fatalf("input %d byte %d ^ %#x: decoded, but re-encodes differently", k, i, x)
				}
			}
		}
	}
}

// ckptRaw builds payload bytes by hand, for inputs encodeCheckpoint
// refuses to produce.
type ckptRaw []byte

func (b ckptRaw) uv(vs ...uint64) ckptRaw {
	for _, v := range vs {
		b = binary.AppendUvarint(b, v)
	}
	return b
}
func (b ckptRaw) raw(p ...byte) ckptRaw { return append(b, p...) }
func (b ckptRaw) id(o ObjectID) ckptRaw {
	return binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(b, o.Hi), o.Lo)
}
func (b ckptRaw) crc() ckptRaw { return append(b, 0, 0, 0, 0) }

// ckptHead is a payload up to the first shard's segment refs: version,
// seq 1, zero device, nextGen 100, nextSnap 10, one shard 0 with no open
// segment.
func ckptHead() ckptRaw {
	return ckptRaw{ckptPayloadVersion}.uv(1).raw(make([]byte, 16)...).uv(100, 10, 1).uv(0, 0, 0, 0, 0)
}

// ckptWithExtents is a valid payload around the encoded extents exts.
func ckptWithExtents(n uint64, exts ckptRaw) ckptRaw {
	return ckptHead().uv(0, 0, n).raw(exts...).uv(0)
}

func TestCheckpointDecodeRejects(t *testing.T) {
	a, b := ckptObj(0, 5), ckptObj(0, 9)
	const same, skip0, toEnd = ckptExtSameObject, ckptExtSkipZero, ckptExtToEnd
	// ext4k is a valid whole-record 4 KiB extent of o at off.
	ext4k := func(o ObjectID, off uint64) ckptRaw {
		return ckptRaw{skip0 | toEnd}.id(o).uv(off, 1, 0, 4096).crc().uv(1)
	}
	obj := func(o ObjectID, flags byte) ckptRaw { return ckptRaw{}.id(o).raw(flags).uv(0, 0, 0, 0) }
	// reqs is n request entries with ids 1..n and seq 7.
	reqs := func(n int) ckptRaw {
		var r ckptRaw
		for i := range n {
			r = r.raw(append(make([]byte, 15), byte(i+1))...).uv(7)
		}
		return r
	}
	snap := func(id uint64, name []byte) ckptRaw {
		return ckptWithExtents(0, nil)[:len(ckptWithExtents(0, nil))-1].uv(1, id, uint64(len(name))).raw(name...).uv(0, 0)
	}
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "format version: truncated"},
		{"version", ckptRaw{1}.uv(1), "format version 1"},
		{"newer version", ckptRaw{3}.uv(1), "format version 3"},
		{"over-long varint", ckptRaw{ckptPayloadVersion, 0x81, 0x00}, "over-long varint"},
		{"over-long zero", ckptRaw{ckptPayloadVersion, 0x80, 0x00}, "over-long varint"},
		{"varint overflow", ckptRaw{ckptPayloadVersion}.raw(bytes.Repeat([]byte{0xff}, 10)...).raw(1), "overflows 64 bits"},
		{"short device", ckptRaw{ckptPayloadVersion}.uv(1).raw(1, 2, 3), "device uuid: truncated"},
		{"trailing", ckptWithExtents(0, nil).raw(0), "1 bytes after the end"},
		{"huge count", ckptHead().uv(1 << 40), "segment ref count 1099511627776: only"},
		{"shard order", ckptRaw{ckptPayloadVersion}.uv(1).raw(make([]byte, 16)...).uv(100, 10, 2).
			uv(3, 0, 0, 0, 0, 0, 0, 0).uv(3, 0, 0, 0, 0, 0, 0, 0).uv(0), "shard 3 follows shard 3"},
		{"shard number", ckptRaw{ckptPayloadVersion}.uv(1).raw(make([]byte, 16)...).uv(100, 10, 1).
			uv(1<<32, 0, 0, 0, 0, 0, 0, 0).uv(0), "shard number 4294967296 does not fit"},
		{"open gen 0", ckptRaw{ckptPayloadVersion}.uv(1).raw(make([]byte, 16)...).uv(100, 10, 1).
			uv(0, 5, 0, 0, 0, 0, 0, 0).uv(0), "open segment 4 has generation 0"},
		{"open gen too new", ckptRaw{ckptPayloadVersion}.uv(1).raw(make([]byte, 16)...).uv(100, 10, 1).
			uv(0, 5, 100, 0, 0, 0, 0, 0).uv(0), "generation 100, want 1 to next generation 100"},
		{"open position", ckptRaw{ckptPayloadVersion}.uv(1).raw(make([]byte, 16)...).uv(100, 10, 1).
			uv(0, 0, 0, 1<<20, 0, 0, 0, 0).uv(0), "open position of 1048576 blocks"},
		{"segment gen 0", ckptHead().uv(1, 3, 0, 0, 0, 0), "generation 0 does not follow generation 0"},
		{"segment gen repeated", ckptHead().uv(2, 3, 5, 4, 0, 0, 0, 0), "segment 4 generation 5 does not follow generation 5"},
		{"segment gen too new", ckptHead().uv(1, 3, 100, 0, 0, 0), "not below next generation 100"},
		{"segment NoSegment", ckptHead().uv(1, uint64(NoSegment), 1, 0, 0, 0), "is NoSegment"},
		{"segment gen overflow", ckptHead().uv(2, 1, 50, 2, math.MaxUint64, 0, 0, 0), "overflows"},
		{"object order", ckptHead().uv(0, 2).raw(obj(b, 0)...).raw(obj(a, 0)...).uv(0, 0), "object 1: object"},
		{"object repeated", ckptHead().uv(0, 2).raw(obj(a, 0)...).raw(obj(a, 0)...).uv(0, 0), "does not follow"},
		{"object flags", ckptHead().uv(0, 1).raw(obj(a, 4)...).uv(0, 0), "unknown object flags 0x04"},
		{"request count 0", ckptHead().uv(0, 1).raw(obj(a, ckptObjRequests)...).raw(0).uv(0, 0), "request count 0, want 1 to 4"},
		{"request count 5", ckptHead().uv(0, 1).raw(obj(a, ckptObjRequests)...).raw(5).raw(reqs(5)...).uv(0, 0), "request count 5, want 1 to 4"},
		{"request id zero", ckptHead().uv(0, 1).raw(obj(a, ckptObjRequests)...).raw(1).raw(make([]byte, 16)...).uv(3).uv(0, 0), "request id 0 is zero"},
		{"request id repeated", ckptHead().uv(0, 1).raw(obj(a, ckptObjRequests)...).raw(2).raw(reqs(1)...).raw(reqs(1)...).uv(0, 0), "repeats"},
		{"request truncated", ckptHead().uv(0, 1).raw(obj(a, ckptObjRequests)...).raw(1).raw(1, 2, 3), "request id: truncated"},
		{"object pg", ckptHead().uv(0, 1).id(a).raw(0).uv(0, 0, 1<<32, 0).uv(0, 0), "placement group 4294967296"},
		{"extent flags", ckptWithExtents(1, ckptRaw{0x08}.id(a).uv(0, 1, 0, 4096, 4096).crc().uv(1)), "unknown extent flags 0x08"},
		{"first same", ckptWithExtents(1, ckptRaw{same | skip0 | toEnd}.uv(0, 1, 0, 4096).crc().uv(1)), "first extent of the list"},
		{"same not flagged", ckptWithExtents(2, ext4k(a, 0).raw(ext4k(a, 0)...)), "repeated instead of flagged"},
		{"object order in extents", ckptWithExtents(2, ext4k(b, 0).raw(ext4k(a, 0)...)), "objects out of order"},
		{"skip stored as 0", ckptWithExtents(1, ckptRaw{toEnd}.id(a).uv(0, 1, 0, 4096, 0).crc().uv(1)), "skip 0 stored instead of flagged"},
		{"len stored to end", ckptWithExtents(1, ckptRaw{skip0}.id(a).uv(0, 1, 0, 4096, 4096).crc().uv(1)), "stored instead of flagged"},
		{"len 0", ckptWithExtents(1, ckptRaw{skip0}.id(a).uv(0, 1, 0, 4096, 0).crc().uv(1)), "Len is 0"},
		{"to end, empty", ckptWithExtents(1, ckptRaw{toEnd}.id(a).uv(0, 1, 0, 4096, 4096).crc().uv(1)), "Len is 0"},
		{"skip beyond record", ckptWithExtents(1, ckptRaw{toEnd}.id(a).uv(0, 1, 0, 4096, 5000).crc().uv(1)), "skip 5000 is beyond record length 4096"},
		{"past record", ckptWithExtents(1, ckptRaw{0}.id(a).uv(0, 1, 0, 4096, 10, 4090).crc().uv(1)), "Skip 10 + Len 4090 > record length 4096"},
		{"record offset", ckptWithExtents(1, ckptRaw{skip0 | toEnd}.id(a).uv(0, 1, 1<<20, 4096).crc().uv(1)), "record offset of 1048576 blocks"},
		{"record length", ckptWithExtents(1, ckptRaw{skip0 | toEnd}.id(a).uv(0, 1, 0, 1<<32).crc().uv(1)), "record length 4294967296"},
		{"end overflows", ckptWithExtents(1, ext4k(a, math.MaxUint64-100)), "overflows"},
		{"delta overflows", ckptWithExtents(2, ext4k(a, 1<<63).raw(ckptRaw{same | skip0 | toEnd}.uv(1<<63, 1, 0, 4096).crc().uv(1)...)), "+ delta 9223372036854775808 overflows"},
		{"truncated crc", ckptHead().uv(0, 0, 1).raw(skip0|toEnd).id(a).uv(0, 1, 0, 4096).raw(1, 2), "record CRC: truncated (2 bytes, want 4)"},
		{"snapshot name length", snap(1, make([]byte, 256)), "name length 256, more than 255"},
		{"snapshot name utf-8", snap(1, []byte{0xff, 0xfe}), "not valid UTF-8"},
		{"snapshot ID", snap(10, nil), "snapshot 10 is not below next snapshot ID 10"},
		{"snapshot order", ckptWithExtents(0, nil)[:len(ckptWithExtents(0, nil))-1].uv(2, 3, 0, 0, 0, 3, 0, 0, 0), "snapshot 3 follows snapshot 3"},
		{"snapshot shard count", ckptWithExtents(0, nil)[:len(ckptWithExtents(0, nil))-1].uv(1, 3, 0, 0, 5, 0, 0), "snapshot shard count 5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := decodeCheckpoint(tc.b)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decode %x: %v, %v; want ErrCorrupt containing %q", tc.b, c, err, tc.want)
			}
			if !strings.Contains(err.Error(), "byte ") {
				t.Errorf("error %q names no byte offset", err)
			}
		})
	}
	// The builders above must make valid payloads when nothing is wrong.
	for i, b := range []ckptRaw{
		ckptWithExtents(0, nil),
		ckptWithExtents(2, ext4k(a, 0).raw(ckptRaw{same | skip0 | toEnd}.uv(0, 1, 0, 4096).crc().uv(1)...)),
		ckptHead().uv(2, 3, 5, 4, 1, 0, 0).uv(0),
		snap(1, []byte("ok")),
		ckptHead().uv(0, 1).raw(obj(a, ckptObjRequests)...).raw(4).raw(reqs(4)...).uv(0, 0),
	} {
		if _, err := decodeCheckpoint(b); err != nil {
			t.Errorf("valid input %d: %v", i, err)
		}
	}
}

func TestCheckpointEncodePanics(t *testing.T) {
	a := ckptObj(0, 1)
	ext := Extent{Object: a, Len: 4096, Loc: Location{Length: 4096}}
	shifted := ext
	shifted.Off = 100
	misaligned := ext
	misaligned.Loc.Offset = 512
	tests := map[string]*checkpoint{
		"overlap": {NextGen: 1, Shards: []shardState{{OpenSegment: NoSegment, Extents: []Extent{ext, shifted}}}},
		"unsorted": {NextGen: 1, Shards: []shardState{{OpenSegment: NoSegment,
			Extents: []Extent{{Object: ckptObj(0, 2), Len: 1, Loc: Location{Length: 1}}, ext}}}},
		"misaligned record":   {NextGen: 1, Shards: []shardState{{OpenSegment: NoSegment, Extents: []Extent{misaligned}}}},
		"misaligned open pos": {NextGen: 1, Shards: []shardState{{OpenSegment: NoSegment, OpenPos: 100}}},
		"objects unsorted":    {Shards: []shardState{{OpenSegment: NoSegment, Objects: []ObjectState{{ID: a}, {ID: a}}}}},
		"segment gen":         {NextGen: 5, Shards: []shardState{{OpenSegment: NoSegment, Segments: []segmentRef{{Gen: 2}, {Gen: 2}}}}},
		"snapshot ID":         {NextSnap: 1, Snapshots: []snapshotState{{ID: 1}}},
		"long name":           {NextSnap: 1, Snapshots: []snapshotState{{Name: strings.Repeat("n", 256)}}},
		"snapshot extents": {NextSnap: 1, Snapshots: []snapshotState{{Shards: []snapshotShard{
			{Extents: []Extent{misaligned}}}}}},
	}
	for name, c := range tests {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatalf("encodeCheckpoint did not panic")
				}
			}()
			encodeCheckpoint(c)
		})
	}
}

// ckptRandom4K returns a checkpoint of one shard holding n random whole
// 4 KiB extents spread evenly over objs objects of up to 1 GiB, in
// segments of 32 MiB on a 32 GiB device: the encoding's common case.
func ckptRandom4K(r *rand.Rand, n, objs int) *checkpoint {
	s := shardState{OpenSegment: NoSegment}
	for _, id := range ckptRandIDs(r, objs) {
		s.Objects = append(s.Objects, ObjectState{ID: id, Size: 1 << 30, Version: r.Uint64N(1 << 20), PG: r.Uint32N(256), PGSeq: r.Uint64N(1 << 30)})
		blocks := map[uint64]bool{}
		for len(blocks) < n/objs {
			blocks[r.Uint64N(1<<30/4096)] = true
		}
		for _, blk := range slices.Sorted(maps.Keys(blocks)) {
			s.Extents = append(s.Extents, Extent{Object: id, Off: blk * 4096, Len: 4096, Version: 1 + r.Uint64N(1<<20),
				Loc: Location{Segment: r.Uint32N(1024), Offset: r.Uint32N(8192) * 4096, Length: 4096, CRC: r.Uint32()}})
		}
	}
	return &checkpoint{Seq: 1, NextGen: 1 << 20, NextSnap: 1, Shards: []shardState{s}}
}

func TestCheckpointBytesPerExtent(t *testing.T) {
	const extents, objects = 100_000, 1000
	c := ckptRandom4K(rand.New(rand.NewPCG(1, 2)), extents, objects)
	b := ckptRoundTrip(t, c)
	exts := c.Shards[0].Extents
	c.Shards[0].Extents = nil
	extBytes := len(b) - len(encodeCheckpoint(c))
	c.Shards[0].Extents = exts
	perExtent := float64(len(b)) / extents
	t.Logf("%d random 4 KiB extents of %d objects: payload %d bytes, %.2f bytes per extent (%.2f for the extents alone)",
		extents, objects, len(b), perExtent, float64(extBytes)/extents)
	if perExtent > 32 {
		t.Errorf("%.2f bytes per extent, want at most 32", perExtent)
	}
}

// ckptDevice returns a direct Mem file sized and laid out as a small
// device, and its superblock.
func ckptDevice(t *testing.T) (*vfs.Mem, vfs.File, *Superblock) {
	t.Helper()
	const size = 8 << 20
	sb, err := Layout(size, FormatOptions{SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	fsys := vfs.NewMem()
	f, err := fsys.Create("dev", true)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.SyncDir("."); err != nil {
		t.Fatal(err)
	}
	return fsys, f, sb
}

func ckptSmall(sb *Superblock, seq uint64) *checkpoint {
	c := ckptHandMade()["full"]
	c.Seq, c.Device = seq, sb.UUID
	return c
}

func mustWriteCheckpoint(t *testing.T, f vfs.File, sb *Superblock, slot int, c *checkpoint) {
	t.Helper()
	n, err := writeCheckpoint(f, sb, slot, c)
	if err != nil {
		t.Fatal(err)
	}
	if want := ckptHeaderSize + int(ckptRoundUp(uint64(len(encodeCheckpoint(c))))); n != want {
		t.Fatalf("writeCheckpoint wrote %d bytes, want %d", n, want)
	}
}

// ckptFlip XORs x into the byte at off, with an aligned read and write.
func ckptFlip(t *testing.T, f vfs.File, off int64, x byte) {
	t.Helper()
	blk := directio.AlignedBlock(4096)
	base := off &^ 4095
	if _, err := f.ReadAt(blk, base); err != nil {
		t.Fatal(err)
	}
	blk[off-base] ^= x
	if _, err := f.WriteAt(blk, base); err != nil {
		t.Fatal(err)
	}
}

func wantCheckpoint(t *testing.T, f vfs.File, sb *Superblock, seq uint64, slot int) {
	t.Helper()
	c, gotSlot, err := readCheckpoint(f, sb)
	if err != nil {
		t.Fatalf("readCheckpoint: %v", err)
	}
	if c == nil || c.Seq != seq || gotSlot != slot {
		t.Fatalf("readCheckpoint: %v in slot %d, want seq %d in slot %d", c, gotSlot, seq, slot)
	}
	if want := ckptSmall(sb, seq); !reflect.DeepEqual(c, want) {
		t.Fatalf("readCheckpoint: got %+v\nwant %+v", c, want)
	}
}

func TestCheckpointSlots(t *testing.T) {
	t.Run("never written", func(t *testing.T) {
		_, f, sb := ckptDevice(t)
		if c, slot, err := readCheckpoint(f, sb); c != nil || slot != -1 || err != nil {
			t.Fatalf("readCheckpoint of a fresh device: %v, %d, %v", c, slot, err)
		}
	})
	t.Run("newest seq wins", func(t *testing.T) {
		_, f, sb := ckptDevice(t)
		mustWriteCheckpoint(t, f, sb, 0, ckptSmall(sb, 1))
		wantCheckpoint(t, f, sb, 1, 0)
		mustWriteCheckpoint(t, f, sb, 1, ckptSmall(sb, 2))
		wantCheckpoint(t, f, sb, 2, 1)
		mustWriteCheckpoint(t, f, sb, 0, ckptSmall(sb, 3))
		wantCheckpoint(t, f, sb, 3, 0)
	})
	t.Run("torn payload", func(t *testing.T) {
		_, f, sb := ckptDevice(t)
		mustWriteCheckpoint(t, f, sb, 0, ckptSmall(sb, 1))
		mustWriteCheckpoint(t, f, sb, 1, ckptSmall(sb, 2))
		ckptFlip(t, f, ckptSlotOffset(sb, 1)+ckptHeaderSize+20, 0x10)
		wantCheckpoint(t, f, sb, 1, 0)
	})
	t.Run("damaged header", func(t *testing.T) {
		_, f, sb := ckptDevice(t)
		mustWriteCheckpoint(t, f, sb, 1, ckptSmall(sb, 1))
		mustWriteCheckpoint(t, f, sb, 0, ckptSmall(sb, 2))
		ckptFlip(t, f, ckptSlotOffset(sb, 0)+17, 0x01) // seq
		wantCheckpoint(t, f, sb, 1, 1)
	})
	t.Run("both damaged", func(t *testing.T) {
		_, f, sb := ckptDevice(t)
		mustWriteCheckpoint(t, f, sb, 0, ckptSmall(sb, 1))
		mustWriteCheckpoint(t, f, sb, 1, ckptSmall(sb, 2))
		ckptFlip(t, f, ckptSlotOffset(sb, 0)+ckptHeaderSize+5, 0x04)
		ckptFlip(t, f, ckptSlotOffset(sb, 1)+200, 0x01) // in the zero tail of the header
		c, slot, err := readCheckpoint(f, sb)
		if !errors.Is(err, ErrCorrupt) || c != nil || slot != -1 {
			t.Fatalf("readCheckpoint: %v, %d, %v; want ErrCorrupt", c, slot, err)
		}
		for _, s := range []string{
			fmt.Sprintf("slot 0 at %d: checkpoint 1: payload checksum", ckptSlotOffset(sb, 0)),
			fmt.Sprintf("slot 1 at %d: header byte 200 is 0x01, want 0", ckptSlotOffset(sb, 1)),
		} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not say %q", err, s)
			}
		}
	})
	t.Run("only slot damaged", func(t *testing.T) {
		_, f, sb := ckptDevice(t)
		mustWriteCheckpoint(t, f, sb, 1, ckptSmall(sb, 1))
		ckptFlip(t, f, ckptSlotOffset(sb, 1)+ckptHeaderSize, 0xff)
		if _, _, err := readCheckpoint(f, sb); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "slot 1") {
			t.Fatalf("readCheckpoint: %v; want ErrCorrupt naming slot 1", err)
		}
	})
	t.Run("other device", func(t *testing.T) {
		_, f, sb := ckptDevice(t)
		other := *sb
		other.UUID[0] ^= 1
		mustWriteCheckpoint(t, f, &other, 1, ckptSmall(&other, 1))
		if c, slot, err := readCheckpoint(f, sb); c != nil || slot != -1 || err != nil {
			t.Fatalf("readCheckpoint with only a foreign checkpoint: %v, %d, %v", c, slot, err)
		}
		mustWriteCheckpoint(t, f, sb, 0, ckptSmall(sb, 5))
		mustWriteCheckpoint(t, f, &other, 1, ckptSmall(&other, 9))
		wantCheckpoint(t, f, sb, 5, 0)
	})
	t.Run("too large", func(t *testing.T) {
		_, f, sb := ckptDevice(t)
		c := ckptRandom4K(rand.New(rand.NewPCG(3, 4)), 40_000, 100)
		c.Device = sb.UUID
		n, err := writeCheckpoint(f, sb, 0, c)
		if !errors.Is(err, ErrCheckpointTooLarge) || n != 0 {
			t.Fatalf("writeCheckpoint of %d extents: %d, %v; want ErrCheckpointTooLarge", 40_000, n, err)
		}
		need := fmt.Sprintf("needs %d bytes", ckptHeaderSize+ckptRoundUp(uint64(len(encodeCheckpoint(c)))))
		holds := fmt.Sprintf("a slot holds %d", ckptSlotBytes(sb))
		if !strings.Contains(err.Error(), need) || !strings.Contains(err.Error(), holds) {
			t.Errorf("error %q does not say %q and %q", err, need, holds)
		}
		if c, slot, err := readCheckpoint(f, sb); c != nil || slot != -1 || err != nil {
			t.Fatalf("a refused checkpoint left something: %v, %d, %v", c, slot, err)
		}
	})
}

// TestCheckpointCrash cuts power at each step of writeCheckpoint (by
// failing the n-th write or sync, then crashing the Mem with unsynced
// writes dropped, applied or torn at random) and checks that the device
// then holds the previous checkpoint or the new one, never neither.
func TestCheckpointCrash(t *testing.T) {
	seeds := int64(8)
	if testing.Short() {
		seeds = 3
	}
	for _, prior := range []int{0, 1, 2} { // checkpoints written before the one that crashes
		for _, op := range []vfs.Op{vfs.OpWrite, vfs.OpSync} {
			for nth := 1; nth <= 3; nth++ {
				for seed := range seeds {
					name := fmt.Sprintf("prior %d %v %d seed %d", prior, op, nth, seed)
					fsys, f, sb := ckptDevice(t)
					for i := range prior {
						mustWriteCheckpoint(t, f, sb, i%2, ckptSmall(sb, uint64(i+1)))
					}
					next := uint64(prior + 1)
					fsys.SetFault(vfs.FailNth(op, nth))
					_, werr := writeCheckpoint(f, sb, prior%2, ckptSmall(sb, next))
					fsys.SetFault(nil)
					after := fsys.Crash(seed)
					g, err := after.OpenRW("dev", true)
					if err != nil {
						t.Fatal(err)
					}
					c, _, err := readCheckpoint(g, sb)
					switch {
					case err != nil:
						t.Fatalf("%s: readCheckpoint after crash: %v", name, err)
					case werr == nil && (c == nil || c.Seq != next):
						t.Fatalf("%s: writeCheckpoint succeeded but the crash left %v", name, c)
					case c == nil && prior > 0, c != nil && c.Seq != next && c.Seq != next-1:
						t.Fatalf("%s: crash left %v, want seq %d or %d", name, c, next-1, next)
					}
				}
			}
		}
	}
}

// A snapshot whose checkpoint failed is dropped, but the failed
// checkpoint, which lists it, may be on the device all the same (here: its
// flush failed and the next flush made it durable) and is then the newest
// one recovery loads. The segments the snapshot pinned must outlive it
// until a checkpoint without the snapshot is durable: a segment freed on
// the strength of an older checkpoint, and reused, left recovery with a
// snapshot pointing into another generation's segment (seen once as
// TestCrashRecovery seed 3: "points into segment 6, which holds no records
// of the shard").
func TestFailedSnapshotCheckpointKeepsPinnedSegments(t *testing.T) {
	fsys := vfs.NewMem()
	if _, err := Format(fsys, FormatRequest{Path: "dev", Size: 12 << 20, Options: FormatOptions{SegmentSize: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
	opts := Options{Path: "dev", FS: fsys, Shards: 1, Mode: Interrupt, Logger: quietLogger,
		CheckpointBytes: 1 << 40, Cleaner: CleanerOptions{Disabled: true}}
	e, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if e != nil {
			e.Close()
		}
	}()
	a, b := ObjectID{Lo: 1}, ObjectID{Lo: 2}
	chunk := bytes.Repeat([]byte{0xa1}, 64<<10)
	write := func(obj ObjectID, n int, fill byte) {
		t.Helper()
		for i := range chunk {
			chunk[i] = fill
		}
		for off := 0; off < n; off += len(chunk) {
			if _, err := e.Write(obj, 1, uint64(off), chunk); err != nil {
				t.Fatalf("write %v at %d: %v", obj, off, err)
			}
		}
	}
	// a fills the first data segment and more, so that one is closed and
	// unpinned when the next checkpoint is captured.
	write(a, 3<<19, 1)
	if err := e.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	// The snapshot's checkpoint is written whole, but the flush of its
	// header (the second of its two) fails.
	fsys.SetFault(vfs.FailNth(vfs.OpSync, 2))
	if _, err := e.Snapshot("s"); err == nil {
		t.Fatal("Snapshot succeeded with its checkpoint's flush failing")
	} else {
		t.Logf("snapshot: %v", err)
	}
	fsys.SetFault(nil)
	// a's first records die, and b's writes (each flushed, which makes
	// the failed checkpoint durable too) take every segment that is free.
	write(a, 3<<19, 2)
	freed := e.Stats().Shards[0].SegmentsFreed
	write(b, 4<<20, 3)
	t.Logf("segments freed after the failed snapshot: %d, then %d", freed, e.Stats().Shards[0].SegmentsFreed)

	// The power fails: what was flushed stays.
	crashed := fsys.CrashClean()
	e.Close()
	opts.FS = crashed
	e, err = Open(opts)
	if err != nil {
		t.Fatalf("open after the crash: %v", err)
	}
	if err := e.Verify(); err != nil {
		t.Fatal(err)
	}
	t.Logf("recovered: checkpoint %d, snapshots %v", e.Recovery().CheckpointSeq, e.Snapshots())
	got := make([]byte, 64<<10)
	// Snapshot failed, so the snapshot may be there or not: there when
	// recovery loaded the failed checkpoint (the newest unless a later one
	// became durable), and then it must read as taken: a's first version.
	sn, err := e.OpenSnapshot("s")
	if errors.Is(err, ErrNoSnapshot) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < 3<<19; off += len(got) {
		if _, err := sn.Read(a, uint64(off), got); err != nil {
			t.Fatalf("snapshot read of %v at %d: %v", a, off, err)
		}
		if i := slices.IndexFunc(got, func(c byte) bool { return c != 1 }); i >= 0 {
			t.Fatalf("snapshot read of %v at %d: byte %d is %#x, want 0x1", a, off, i, got[i])
		}
	}
	if _, err := e.Read(b, 0, got); err != nil || got[0] != 3 {
		t.Fatalf("b reads back %#x, %v", got[0], err)
	}
}
