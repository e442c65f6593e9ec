package journal

import (
	"bytes"
	"testing"
)

// encodeBatch builds a batch the way the committer does.
func encodeBatch(first uint64, recs []Record) []byte {
	n := batchHdrSize
	for _, r := range recs {
		n += recordSize(len(r.Data))
	}
	buf := make([]byte, alignUp(n, blockSize))
	off := batchHdrSize
	for i, r := range recs {
		off += putRecord(buf[off:], r.Type, first+uint64(i), r.Data)
	}
	putBatchHeader(buf, batchHeader{version: formatV1, length: uint32(len(buf)), count: uint32(len(recs)), firstSeq: first})
	return buf
}

// FuzzDecodeBatch: no panic on any bytes, bounded work, and a batch that
// decodes re-encodes to the same bytes.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch(1, []Record{{Type: 1, Data: []byte("hello")}}))
	f.Add(encodeBatch(42, []Record{{Type: 2}, {Type: 3, Data: bytes.Repeat([]byte{7}, 5000)}, {Type: 4, Data: []byte("x")}}))
	f.Add(make([]byte, blockSize))
	f.Add([]byte("WFTJ"))
	torn := encodeBatch(9, []Record{{Type: 1, Data: bytes.Repeat([]byte{1}, 6000)}})
	f.Add(torn[:5000])
	f.Fuzz(func(t *testing.T, b []byte) {
		var recs []Record
		h, why, err := decodeBatch(b, func(r Record) error {
			recs = append(recs, Record{Seq: r.Seq, Type: r.Type, Data: bytes.Clone(r.Data)})
			return nil
		})
		if err != nil {
			t.Fatalf("decodeBatch returned an error without a callback failing: %v", err)
		}
		if why != "" {
			if len(recs) != 0 {
				t.Fatalf("invalid batch (%s) delivered %d records", why, len(recs))
			}
			return
		}
		// Whatever decodes re-encodes, and decodes again to the same records.
		again := encodeBatch(h.firstSeq, recs)
		if len(again) > int(h.length) {
			t.Fatalf("re-encoded batch is %d bytes, original %d", len(again), h.length)
		}
		var back []Record
		if _, why, _ := decodeBatch(again, func(r Record) error {
			back = append(back, Record{Seq: r.Seq, Type: r.Type, Data: bytes.Clone(r.Data)})
			return nil
		}); why != "" {
			t.Fatalf("re-encoded batch does not decode: %s", why)
		}
		if len(back) != len(recs) {
			t.Fatalf("re-encoded batch decodes to %d records, want %d", len(back), len(recs))
		}
		for i := range recs {
			if back[i].Seq != recs[i].Seq || back[i].Type != recs[i].Type || !bytes.Equal(back[i].Data, recs[i].Data) {
				t.Fatalf("record %d changed through encode/decode", i)
			}
		}
	})
}
