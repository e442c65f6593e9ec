package engine

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// FuzzDecodeCheckpoint requires that decodeCheckpoint never panics, that
// it rejects only with ErrCorrupt, and that whatever it accepts encodes
// back to exactly the same bytes (the encoding is canonical).
func FuzzDecodeCheckpoint(f *testing.F) {
	for _, name := range []string{"zero", "empty", "empty shards", "full"} {
		f.Add(encodeCheckpoint(ckptHandMade()[name]))
	}
	r := rand.New(rand.NewPCG(11, 0))
	for range 4 {
		f.Add(encodeCheckpoint(ckptRandom(r)))
	}
	f.Add(encodeCheckpoint(ckptRandom4K(r, 200, 3)))
	f.Add([]byte{})
	f.Add([]byte{ckptPayloadVersion})
	f.Add([]byte{ckptPayloadVersion, 0x80, 0x00})
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Add(append(encodeCheckpoint(ckptHandMade()["empty"]), 0))
	f.Add([]byte("WFTCKPv1 not a payload"))

	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCheckpoint(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode %x: error %v does not wrap ErrCorrupt", b, err)
			}
			return
		}
		if e := encodeCheckpoint(c); !bytes.Equal(e, b) {
			t.Fatalf("decode then encode changed the bytes:\nin  %x\nout %x", b, e)
		}
	})
}
