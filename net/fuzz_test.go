package net

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"testing"
)

// FuzzDecodeFrame feeds arbitrary bytes to the stream decoder. It must not
// panic, must not allocate more than the limits allow (the payload buffer
// is sized only after the length was checked against the limit), and every
// frame it accepts must re-encode to exactly the bytes it was decoded from.
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
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := &frameReader{vr: &seqVectorReader{r: bytes.NewReader(data)}, maxPayload: maxPayload}
		for range 16 {
			start := fr.offset
			h, err := fr.readHeader()
			if err != nil {
				return
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
				return
			}
			re := encodeFrame(frameHeader{flags: h.flags, kind: h.kind, id: h.id}, b, p)
			if got := data[start:fr.offset]; !bytes.Equal(re, got) {
				t.Fatalf("re-encoded frame differs:\n got %x\nwant %x", re, got)
			}
			if h.flags&flagError != 0 {
				parseErrorBody(b)
			}
		}
	})
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
