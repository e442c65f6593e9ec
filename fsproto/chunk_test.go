package fsproto

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/weftfs/weft/engine"
)

var (
	sampleChunk = ChunkID{Container: 1<<63 | 5, Inode: InodeMax, Index: IndexMax}
	sampleID    = RequestID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
)

// codec is one message type's encoder and decoder, for the table tests and
// the fuzz target. decode returns the message re-encoded, or an error.
type codec struct {
	name   string
	sample []byte
	decode func([]byte) ([]byte, error)
}

var codecs = []codec{
	{"write", AppendWrite(nil, Write{Chunk: sampleChunk, Off: 1<<32 - 1, PG: 9, Epoch: 1 << 60, RequestID: sampleID}),
		func(b []byte) ([]byte, error) { m, err := DecodeWrite(b); return AppendWrite(nil, m), err }},
	{"read", AppendRead(nil, Read{Chunk: sampleChunk, Off: 4096, Len: MaxReadBytes, Epoch: 3}),
		func(b []byte) ([]byte, error) { m, err := DecodeRead(b); return AppendRead(nil, m), err }},
	{"truncate", AppendTruncate(nil, Truncate{Chunk: sampleChunk, Size: 12345, PG: 1, Epoch: 2, RequestID: sampleID}),
		func(b []byte) ([]byte, error) { m, err := DecodeTruncate(b); return AppendTruncate(nil, m), err }},
	{"delete", AppendDelete(nil, Delete{Chunk: sampleChunk, PG: 1<<32 - 1, Epoch: 2, RequestID: sampleID}),
		func(b []byte) ([]byte, error) { m, err := DecodeDelete(b); return AppendDelete(nil, m), err }},
	{"write result", AppendWriteResult(nil, WriteResult{Version: 77, PGSeq: 1<<64 - 1}),
		func(b []byte) ([]byte, error) { m, err := DecodeWriteResult(b); return AppendWriteResult(nil, m), err }},
	{"read result", AppendReadResult(nil, ReadResult{N: 4096, EOF: true}),
		func(b []byte) ([]byte, error) { m, err := DecodeReadResult(b); return AppendReadResult(nil, m), err }},
}

func TestCodecRoundTrip(t *testing.T) {
	if got, err := DecodeWrite(codecs[0].sample); err != nil || got != (Write{Chunk: sampleChunk, Off: 1<<32 - 1, PG: 9, Epoch: 1 << 60, RequestID: sampleID}) {
		t.Fatalf("write: got %+v, %v", got, err)
	}
	if got, err := DecodeRead(codecs[1].sample); err != nil || got != (Read{Chunk: sampleChunk, Off: 4096, Len: MaxReadBytes, Epoch: 3}) {
		t.Fatalf("read: got %+v, %v", got, err)
	}
	if got, err := DecodeTruncate(codecs[2].sample); err != nil || got != (Truncate{Chunk: sampleChunk, Size: 12345, PG: 1, Epoch: 2, RequestID: sampleID}) {
		t.Fatalf("truncate: got %+v, %v", got, err)
	}
	if got, err := DecodeDelete(codecs[3].sample); err != nil || got != (Delete{Chunk: sampleChunk, PG: 1<<32 - 1, Epoch: 2, RequestID: sampleID}) {
		t.Fatalf("delete: got %+v, %v", got, err)
	}
	if got, err := DecodeWriteResult(codecs[4].sample); err != nil || got != (WriteResult{Version: 77, PGSeq: 1<<64 - 1}) {
		t.Fatalf("write result: got %+v, %v", got, err)
	}
	for _, want := range []ReadResult{{N: 4096, EOF: true}, {N: 0, EOF: false}} {
		if got, err := DecodeReadResult(AppendReadResult(nil, want)); err != nil || got != want {
			t.Fatalf("read result: got %+v, %v, want %+v", got, err, want)
		}
	}
	// Appending keeps what was there.
	if b := AppendWriteResult([]byte("x"), WriteResult{}); len(b) != 1+writeResultLen || b[0] != 'x' {
		t.Fatalf("AppendWriteResult clobbered its prefix: %q", b)
	}
}

func TestCodecRejects(t *testing.T) {
	for _, c := range codecs {
		for _, b := range [][]byte{nil, c.sample[:len(c.sample)-1], append(append([]byte(nil), c.sample...), 0)} {
			_, err := c.decode(b)
			if !errors.Is(err, ErrBadMessage) || !strings.Contains(err.Error(), "bytes, want") {
				t.Errorf("%s of %d bytes: got %v, want a length error", c.name, len(b), err)
			}
		}
	}
	bad := func(name string, b []byte, decode func([]byte) ([]byte, error), want string) {
		t.Helper()
		_, err := decode(b)
		if !errors.Is(err, ErrBadMessage) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, want)
		}
	}
	w := Write{Chunk: ChunkID{Inode: InodeMax + 1}}
	bad("inode", AppendWrite(nil, w), codecs[0].decode, "inode")
	w.Chunk = ChunkID{Index: IndexMax + 1}
	bad("index", AppendWrite(nil, w), codecs[0].decode, "chunk index")
	bad("read len 0", AppendRead(nil, Read{Len: 0}), codecs[1].decode, "read length 0")
	bad("read len max", AppendRead(nil, Read{Len: MaxReadBytes + 1}), codecs[1].decode, "read length")
	d := AppendDelete(nil, Delete{})
	d[28] = 1
	bad("delete reserved", d, codecs[3].decode, "reserved")
	r := AppendReadResult(nil, ReadResult{})
	r[4] = 2
	bad("read flags", r, codecs[5].decode, "flags")
}

func TestObjectIDMapping(t *testing.T) {
	// Injective and inverted by ChunkOf at the edges of the valid ranges.
	seen := map[engine.ObjectID]ChunkID{}
	for _, ct := range []uint64{0, 1, 1<<64 - 1} {
		for _, ino := range []uint64{0, 1, 2, 1 << 24, InodeMax - 1, InodeMax} {
			for _, idx := range []uint64{0, 1, 2, IndexMax - 1, IndexMax} {
				c := ChunkID{ct, ino, idx}
				o := ObjectID(c)
				if prev, ok := seen[o]; ok {
					t.Fatalf("%v and %v both map to %v", prev, c, o)
				}
				seen[o] = c
				if back := ChunkOf(o); back != c {
					t.Fatalf("ChunkOf(ObjectID(%v)) = %v", c, back)
				}
			}
		}
	}
	// Documented layout.
	if o := ObjectID(ChunkID{3, 5, 7}); o != (engine.ObjectID{Hi: 3, Lo: 5<<24 | 7}) {
		t.Fatalf("ObjectID{3,5,7} = %v", o)
	}
	// Out of range is a bug.
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("ObjectID of an out-of-range index did not panic")
			}
		}()
		ObjectID(ChunkID{Index: IndexMax + 1})
	}()
}

func FuzzDecodeChunkMessages(f *testing.F) {
	for i, c := range codecs {
		f.Add(uint8(i), c.sample)
		f.Add(uint8(i), c.sample[:len(c.sample)/2])
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		c := codecs[int(which)%len(codecs)]
		re, err := c.decode(b)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("%s: error %v does not match ErrBadMessage", c.name, err)
			}
			return
		}
		if !bytes.Equal(re, b) {
			t.Fatalf("%s: accepted %x, re-encoded as %x", c.name, b, re)
		}
	})
}
