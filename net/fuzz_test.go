package net

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// FuzzDecodeFrame feeds arbitrary bytes to the stream decoder. It must not
// panic, must not allocate more than the limits allow (the payload buffer
// is sized only after the length was checked against the limit), and every
// frame it accepts must re-encode to exactly the bytes it was decoded from.
// The same bytes arriving in bursts (as a socket delivers them, so the
// decoder stages frames ahead) must decode to the same frames and errors in
// both the server's exact mode and the client's copying mode, and the exact
// mode must never copy a payload.
func FuzzDecodeFrame(f *testing.F) {
	const maxPayload = 1 << 16
	body := []byte("hdr")
	f.Add(encodeFrame(frameHeader{kind: 300, id: 1}, body, []byte("payload")))
	f.Add(encodeFrame(frameHeader{kind: 300, id: 1, flags: flagPayloadCRC}, body, bytes.Repeat([]byte{1}, 5000)))
	f.Add(encodeFrame(frameHeader{kind: 300, id: 2, flags: flagResponse | flagError}, appendErrorBody(nil, 7, "nope"), nil))
	f.Add(append(encodeFrame(frameHeader{kind: KindPing, id: 3}, nil, nil), encodeFrame(frameHeader{kind: 301, id: 4}, body, nil)...))
	big := encodeFrame(frameHeader{kind: 300, id: 1}, nil, nil)
	binary.LittleEndian.PutUint32(big[20:], math.MaxUint32)
	f.Add(big)
	f.Add([]byte("garbage garbage garbage garbage garbage"))
	f.Add(encodeFrame(frameHeader{kind: 300, id: 1}, body, []byte("payload"))[:20])
	// Bursts of payload-less requests with payload frames among them, as
	// the server reads them under load.
	var mixed []byte
	for i := range 12 {
		var p []byte
		if i%5 == 4 {
			p = bytes.Repeat([]byte{byte(i)}, 4096)
		}
		mixed = append(mixed, encodeFrame(frameHeader{kind: 300, id: uint64(i + 1), flags: flagPayloadCRC}, []byte("chunk read request"), p)...)
	}
	f.Add(mixed)
	f.Add(mixed[:len(mixed)-100])
	// Payloads as large as a copying reader's stage: read straight into
	// their destinations, with only the next fixed header staged.
	large := encodeFrame(frameHeader{kind: 300, id: 1, flags: flagResponse}, body, bytes.Repeat([]byte{3}, maxPayload))
	f.Add(append(append(large, large...), encodeFrame(frameHeader{kind: 300, id: 2, flags: flagResponse}, body, nil)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		want := decodeTranscript(t, data, newFrameReaderFrom(&seqVectorReader{r: bytes.NewReader(data)}, maxPayload, false, nil), maxPayload)
		for _, copying := range []bool{false, true} {
			var m Metrics
			br := &burstReader{data: data, rng: rand.New(rand.NewPCG(uint64(len(data)), 7))}
			got := decodeTranscript(t, data, newFrameReaderFrom(br, maxPayload, copying, &m), maxPayload)
			if got != want {
				t.Fatalf("copying=%v: bursts decode as\n%s\nbyte-at-a-time reads as\n%s", copying, got, want)
			}
			if c := m.Snapshot().PayloadCopied; !copying && c != 0 {
				t.Fatalf("exact mode copied %d payload bytes", c)
			}
		}
	})
}

// decodeTranscript decodes up to 32 frames of data with fr, checking each
// accepted frame, and describes what it decoded.
func decodeTranscript(t *testing.T, data []byte, fr *frameReader, maxPayload uint32) string {
	var out strings.Builder
	for range 32 {
		start := fr.offset
		h, err := fr.readHeader()
		if err != nil {
			fmt.Fprintf(&out, "header error: %v\n", err)
			break
		}
		if h.bodyLen > MaxHeaderBytes || h.payloadLen > maxPayload {
			t.Fatalf("accepted lengths %d+%d over the limits", h.bodyLen, h.payloadLen)
		}
		b := make([]byte, h.bodyLen)
		p := make([]byte, h.payloadLen)
		if err := fr.readRest(&h, b, p); err != nil {
			if err == io.EOF {
				t.Fatal("io.EOF in the middle of a frame")
			}
			fmt.Fprintf(&out, "rest error: %v\n", err)
			break
		}
		re := encodeFrame(frameHeader{flags: h.flags, kind: h.kind, id: h.id}, b, p)
		if got := data[start:fr.offset]; !bytes.Equal(re, got) {
			t.Fatalf("re-encoded frame differs:\n got %x\nwant %x", re, got)
		}
		if h.flags&flagError != 0 {
			parseErrorBody(b)
		}
		fmt.Fprintf(&out, "frame at %d: %v id %d, %d+%d bytes\n", start, h.kind, h.id, h.bodyLen, h.payloadLen)
	}
	return out.String()
}

// burstReader is a vectorReader over data that delivers it in bursts of
// seeded random sizes, as a socket delivers segments: a readv takes at most
// what has arrived (waiting for the next burst only when nothing has), and
// a peek shows what has arrived.
type burstReader struct {
	data         []byte
	pos, arrived int // data[pos:arrived] has arrived and is unread
	rng          *rand.Rand
}

func (b *burstReader) arrive() bool {
	if b.arrived == len(b.data) {
		return false
	}
	b.arrived = min(len(b.data), b.arrived+1+b.rng.IntN(6000))
	return true
}

func (b *burstReader) peek(p []byte) (int, error) {
	if b.pos == b.arrived && !b.arrive() {
		return 0, nil
	}
	return copy(p, b.data[b.pos:b.arrived]), nil
}

func (b *burstReader) readv(bufs [][]byte, min int) (int, error) {
	total := 0
	for total < min {
		if b.pos == b.arrived && !b.arrive() {
			return total, io.EOF
		}
		// One readv: fill bufs in order from what has arrived.
		skip := total
		for _, buf := range bufs {
			if skip >= len(buf) {
				skip -= len(buf)
				continue
			}
			n := copy(buf[skip:], b.data[b.pos:b.arrived])
			skip = 0
			b.pos += n
			total += n
			if b.pos == b.arrived {
				break
			}
		}
	}
	return total, nil
}

// FuzzHandshake feeds arbitrary bytes to the handshake message decoders:
// no panic, and whatever is accepted re-encodes identically.
func FuzzHandshake(f *testing.F) {
	hello := clientHello{versionMin: 1, versionMax: 3, maxPayload: 1 << 20, clusterID: "c", keyID: "k"}
	sh := serverHello{version: 1, maxPayload: 1 << 24}
	sh.nonce[5] = 9
	proof := clientProof{}
	proof.mac[0] = 1
	w := welcome{version: 1, flags: welcomeReadOnly}
	f.Add(uint8(0), hello.append(nil))
	f.Add(uint8(1), sh.append(nil))
	f.Add(uint8(2), proof.append(nil))
	f.Add(uint8(3), w.append(nil))
	f.Add(uint8(0), []byte{1, 0, 1, 0, 0, 0, 1, 0, 200})
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		var re []byte
		switch which % 4 {
		case 0:
			m, reason := decodeClientHello(data)
			if reason != "" {
				return
			}
			re = m.append(nil)
		case 1:
			m, reason := decodeServerHello(data)
			if reason != "" {
				return
			}
			re = m.append(nil)
		case 2:
			m, reason := decodeClientProof(data)
			if reason != "" {
				return
			}
			re = m.append(nil)
		case 3:
			m, reason := decodeWelcome(data)
			if reason != "" {
				return
			}
			re = m.append(nil)
		}
		if !bytes.Equal(re, data) {
			t.Fatalf("message %d re-encodes as %x, decoded from %x", which%4, re, data)
		}
	})
}

// TestBurstDecodingMatchesSequential runs the differential check of
// FuzzDecodeFrame over seeded random mutations of a stream of read
// requests with writes among them: truncated at random points and with
// random bytes changed, the stream must decode the same in bursts, in
// both modes, as byte-exact sequential reads decode it, and the server's
// exact mode must copy no payload byte.
func TestBurstDecodingMatchesSequential(t *testing.T) {
	const maxPayload = 1 << 16
	var stream []byte
	for i := range 24 {
		var p []byte
		if i%5 == 4 {
			p = bytes.Repeat([]byte{byte(i)}, 4096<<(i%3))
		}
		stream = append(stream, encodeFrame(frameHeader{kind: 300, id: uint64(i + 1), flags: flagPayloadCRC}, []byte("chunk read request"), p)...)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for it := range 3000 {
		d := append([]byte(nil), stream[:rng.IntN(len(stream)+1)]...)
		for k := rng.IntN(3); k > 0 && len(d) > 0; k-- {
			d[rng.IntN(len(d))] = byte(rng.IntN(256))
		}
		want := decodeTranscript(t, d, newFrameReaderFrom(&seqVectorReader{r: bytes.NewReader(d)}, maxPayload, false, nil), maxPayload)
		for _, copying := range []bool{false, true} {
			var m Metrics
			br := &burstReader{data: d, rng: rand.New(rand.NewPCG(uint64(it), 7))}
			got := decodeTranscript(t, d, newFrameReaderFrom(br, maxPayload, copying, &m), maxPayload)
			if got != want {
				t.Fatalf("iteration %d, copying=%v: bursts decode as\n%s\nsequential reads as\n%s", it, copying, got, want)
			}
			if c := m.Snapshot().PayloadCopied; !copying && c != 0 {
				t.Fatalf("iteration %d: exact mode copied %d payload bytes", it, c)
			}
		}
	}
}
