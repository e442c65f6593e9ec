package engine

import (
	"errors"
	"hash/crc32"
	"reflect"
	"testing"
)

func sampleDescs(n int) []Desc {
	out := make([]Desc, n)
	for i := range out {
		out[i] = Desc{
			Object: ObjectID{Hi: uint64(i), Lo: uint64(i) * 7}, Offset: uint64(i) * 4096, Length: uint32(1 + i*1000),
			Kind: KindWrite, Version: uint64(i + 1), PG: uint32(i % 5), PGSeq: uint64(100 + i),
			DataCRC: crc32.Checksum([]byte{byte(i)}, castagnoli),
		}
	}
	if n > 2 {
		out[1] = Desc{Object: ObjectID{Lo: 9}, Offset: 123, Kind: KindTruncate, Version: 5, RequestID: RequestID{1, 2, 3}}
		out[2] = Desc{Object: ObjectID{Lo: 9}, Kind: KindDelete, Version: 6}
	}
	if n > 5 {
		// An install's ids: a reset carrying the first, then another.
		out[3] = Desc{Object: ObjectID{Lo: 10}, Offset: 17, Kind: KindRequestID, Version: 7, PG: 2, PGSeq: 40, RequestID: RequestID{4}, ResetIDs: true}
		out[4] = Desc{Object: ObjectID{Lo: 10}, Offset: 39, Kind: KindRequestID, Version: 7, PG: 2, PGSeq: 40, RequestID: RequestID{15: 5}}
		out[5] = Desc{Object: ObjectID{Lo: 11}, Kind: KindRequestID, Version: 1, PG: 2, PGSeq: 41, ResetIDs: true}
		out[n-1].RequestID = RequestID{0xff, 15: 0xee}
	}
	return out
}

// descsInFirstBlock is how many descriptors fit beside the batch header.
const descsInFirstBlock = (4096 - batchHeaderSize) / descSize

// TestDescRejects: descriptors that break a rule of the format are
// refused with a reason, even with a valid checksum.
func TestDescRejects(t *testing.T) {
	cases := map[string]Desc{
		"request-id record with data":  {Kind: KindRequestID, Length: 5, RequestID: RequestID{1}},
		"request-id record, no id":     {Kind: KindRequestID},
		"reset flag on a write":        {Kind: KindWrite, Length: 1, ResetIDs: true},
		"relocation with a request id": {Kind: KindWrite, Length: 1, Relocated: true, RequestID: RequestID{1}},
	}
	for name, d := range cases {
		b := make([]byte, descSize)
		putDesc(b, &d)
		if _, why := parseDesc(b); why == "" {
			t.Errorf("%s: accepted", name)
		}
	}
	good := Desc{Kind: KindRequestID, ResetIDs: true, Offset: 9}
	b := make([]byte, descSize)
	putDesc(b, &good)
	if got, why := parseDesc(b); why != "" || got != good {
		t.Errorf("lone reset record: %q, %+v", why, got)
	}
}

func TestBatchHeaderRoundTrip(t *testing.T) {
	for _, n := range []int{1, 3, 6, descsInFirstBlock, descsInFirstBlock + 1, 200} {
		descs := sampleDescs(n)
		hb := headerBlocksFor(n)
		buf := make([]byte, hb*4096)
		h := EncodeBatchHeader(buf, descs, 42, 7)
		// First block alone: the decoder asks for the rest.
		if hb > 1 {
			_, out, need, why := DecodeBatchHeader(buf[:4096], nil)
			if why != "" || out != nil || need != hb {
				t.Fatalf("n=%d: first block only: need %d, why %q", n, need, why)
			}
		}
		got, out, _, why := DecodeBatchHeader(buf, nil)
		if why != "" {
			t.Fatalf("n=%d: %s", n, why)
		}
		if got != h || !reflect.DeepEqual(out, descs) {
			t.Fatalf("n=%d: round trip changed the batch", n)
		}
		// Every flipped byte in the header blocks is caught.
		for _, off := range []int{0, 5, 13, 30, 61, batchHeaderSize + 3, batchHeaderSize + 63, batchHeaderSize + 75, len(buf) - 1} {
			bad := append([]byte(nil), buf...)
			bad[off] ^= 0x40
			if _, _, _, why := DecodeBatchHeader(bad, nil); why == "" {
				t.Errorf("n=%d: flipped byte %d not detected", n, off)
			}
		}
	}
}

func TestSegmentHeader(t *testing.T) {
	h := SegmentHeader{Index: 3, Generation: 99, Shard: 1, Device: UUID{1, 2, 3}}
	buf := make([]byte, segHeaderSize)
	h.Encode(buf)
	got, ok, err := DecodeSegmentHeader(buf)
	if err != nil || !ok || got != h {
		t.Fatalf("round trip: %+v %v %v", got, ok, err)
	}
	if _, ok, err := DecodeSegmentHeader(make([]byte, segHeaderSize)); ok || err != nil {
		t.Errorf("never-written block: ok=%v err=%v", ok, err)
	}
	buf[20] ^= 1
	if _, _, err := DecodeSegmentHeader(buf); !errors.Is(err, ErrCorrupt) {
		t.Errorf("damaged header: %v", err)
	}
}

func FuzzDecodeBatchHeader(f *testing.F) {
	for _, n := range []int{1, 3, 8, 70} {
		descs := sampleDescs(n)
		buf := make([]byte, headerBlocksFor(n)*4096)
		EncodeBatchHeader(buf, descs, 1, 1)
		f.Add(buf)
	}
	f.Add(make([]byte, 4096))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, descs, _, why := DecodeBatchHeader(b, nil)
		if why != "" || descs == nil {
			return
		}
		again := make([]byte, int(h.HeaderBlocks)*4096)
		h2 := EncodeBatchHeader(again, descs, h.Generation, h.BatchSeq)
		got, back, _, why := DecodeBatchHeader(again, nil)
		if why != "" || got != h2 || h2 != h || !reflect.DeepEqual(back, descs) {
			t.Fatalf("accepted batch does not survive encode/decode: %s", why)
		}
	})
}

func FuzzDecodeSegmentHeader(f *testing.F) {
	buf := make([]byte, segHeaderSize)
	(&SegmentHeader{Index: 1, Generation: 2, Shard: 3}).Encode(buf)
	f.Add(buf)
	f.Add(make([]byte, segHeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, ok, err := DecodeSegmentHeader(b)
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNewerFormat) && !errors.Is(err, ErrOldFormat) {
			t.Fatalf("unclassified error: %v", err)
		}
		if !ok {
			return
		}
		again := make([]byte, segHeaderSize)
		h.Encode(again)
		if back, ok, err := DecodeSegmentHeader(again); !ok || err != nil || back != h {
			t.Fatalf("accepted header does not survive encode/decode")
		}
	})
}
