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
		out[1] = Desc{Object: ObjectID{Lo: 9}, Offset: 123, Kind: KindTruncate, Version: 5}
		out[2] = Desc{Object: ObjectID{Lo: 9}, Kind: KindDelete, Version: 6}
	}
	return out
}

func TestBatchHeaderRoundTrip(t *testing.T) {
	for _, n := range []int{1, 3, descsPerBlock0, descsPerBlock0 + 1, 200} {
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
		for _, off := range []int{0, 5, 13, 30, 61, batchHeaderSize + 3, len(buf) - 1} {
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
	for _, n := range []int{1, 3, 70} {
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
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNewerFormat) {
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
