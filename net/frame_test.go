package net

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math"
	"strings"
	"testing"
)

// encodeFrame builds a whole frame in one slice.
func encodeFrame(h frameHeader, body, payload []byte) []byte {
	b := make([]byte, frameHeaderSize, frameHeaderSize+len(body)+len(payload))
	b = append(b, body...)
	h.payloadLen = uint32(len(payload))
	if h.flags&flagPayloadCRC != 0 {
		h.payloadCRC = crc32.Checksum(payload, castagnoli)
	}
	putFrameHeader(b, &h, b[frameHeaderSize:])
	return append(b, payload...)
}

func readOne(t *testing.T, b []byte, maxPayload int) (frameHeader, []byte, []byte, error) {
	t.Helper()
	fr := newFrameReaderFrom(&seqVectorReader{r: bytes.NewReader(b)}, maxPayload, false, nil)
	h, err := fr.readHeader()
	if err != nil {
		return h, nil, nil, err
	}
	body := make([]byte, h.bodyLen)
	payload := make([]byte, h.payloadLen)
	err = fr.readRest(&h, body, payload)
	return h, body, payload, err
}

func TestFrameRoundTripEveryField(t *testing.T) {
	body := []byte("header body bytes")
	payload := bytes.Repeat([]byte{0xa5, 0x5a, 0x01}, 5000)
	for _, tc := range []struct {
		name  string
		h     frameHeader
		body  []byte
		pay   []byte
		isErr bool
	}{
		{name: "request", h: frameHeader{kind: FirstUserKind + 7, id: 1}, body: body, pay: payload},
		{name: "request-crc", h: frameHeader{flags: flagPayloadCRC, kind: math.MaxUint16, id: math.MaxUint64}, body: body, pay: payload},
		{name: "response-crc", h: frameHeader{flags: flagResponse | flagPayloadCRC, kind: 300, id: 0x0102030405060708}, body: body, pay: payload},
		{name: "empty", h: frameHeader{kind: KindPing, id: 9}},
		{name: "max-body", h: frameHeader{kind: 400, id: 2}, body: bytes.Repeat([]byte{7}, MaxHeaderBytes)},
		{name: "error", h: frameHeader{flags: flagResponse | flagError, kind: 401, id: 3}, body: appendErrorBody(nil, FirstUserCode+1, "no such chunk"), isErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := encodeFrame(tc.h, tc.body, tc.pay)
			if got := binary.LittleEndian.Uint32(enc); got != frameMagic {
				t.Fatalf("magic %#x", got)
			}
			h, gotBody, gotPay, err := readOne(t, enc, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if h.version != frameVersion1 || h.flags != tc.h.flags || h.kind != tc.h.kind || h.id != tc.h.id ||
				int(h.bodyLen) != len(tc.body) || int(h.payloadLen) != len(tc.pay) {
				t.Fatalf("decoded %+v, encoded %+v with %d+%d bytes", h, tc.h, len(tc.body), len(tc.pay))
			}
			if tc.h.flags&flagPayloadCRC != 0 && h.payloadCRC != crc32.Checksum(tc.pay, castagnoli) {
				t.Fatalf("payload crc %#x", h.payloadCRC)
			}
			if !bytes.Equal(gotBody, tc.body) || !bytes.Equal(gotPay, tc.pay) {
				t.Fatal("body or payload differ")
			}
			if tc.isErr {
				re := parseErrorBody(gotBody)
				if re.Code != FirstUserCode+1 || re.Message != "no such chunk" {
					t.Fatalf("error body %+v", re)
				}
			}
		})
	}
}

func TestFrameDecodeErrors(t *testing.T) {
	good := encodeFrame(frameHeader{flags: flagPayloadCRC, kind: 500, id: 4}, []byte("hdr"), []byte("payload"))
	mutate := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	// reseal recomputes the header crc after a change, so that the check
	// under test is the one that fires.
	reseal := func(b []byte) {
		bl := binary.LittleEndian.Uint32(b[16:])
		if int(bl) <= len(b)-frameHeaderSize {
			binary.LittleEndian.PutUint32(b[28:], headerCRC(b, b[frameHeaderSize:frameHeaderSize+bl]))
		}
	}
	for _, tc := range []struct {
		name, want string
		in         []byte
		truncated  bool
	}{
		{"garbage", "bad magic", []byte("GET / HTTP/1.1\r\nHost: weft.example.com\r\n\r\n"), false},
		{"version", "unknown frame version 9; this build reads version 1", mutate(func(b []byte) { b[4] = 9; reseal(b) }), false},
		{"flags", "unknown flags 0x80", mutate(func(b []byte) { b[5] |= 0x80; reseal(b) }), false},
		{"header-too-long", "header length 65537 over the limit 65536", mutate(func(b []byte) { binary.LittleEndian.PutUint32(b[16:], MaxHeaderBytes+1) }), false},
		{"4GiB-payload", "payload length 4294967295 over the limit 1048576", mutate(func(b []byte) { binary.LittleEndian.PutUint32(b[20:], math.MaxUint32) }), false},
		{"header-crc", "header checksum", mutate(func(b []byte) { b[frameHeaderSize] ^= 1 }), false},
		{"header-crc-field", "header checksum", mutate(func(b []byte) { b[9] ^= 1 }), false},
		{"payload-crc", "payload checksum", mutate(func(b []byte) { b[len(b)-1] ^= 1 }), false},
		{"crc-without-flag", "without the payload-crc flag", mutate(func(b []byte) { b[5] &^= flagPayloadCRC; reseal(b) }), false},
		{"error-on-request", "error flag on a request", mutate(func(b []byte) { b[5] |= flagError; reseal(b) }), false},
		{"truncated-header", "stream ended after 10 of 32 header bytes", good[:10], true},
		{"truncated-body", "stream ended after 5 of 10 body and payload bytes", good[:frameHeaderSize+5], true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := readOne(t, tc.in, 1<<20)
			if err == nil {
				t.Fatal("decoded a bad frame")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			if got := errors.Is(err, io.ErrUnexpectedEOF); got != tc.truncated {
				t.Fatalf("errors.Is(%v, io.ErrUnexpectedEOF) = %v", err, got)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
	// A clean end at a frame boundary is io.EOF, not corruption.
	if _, _, _, err := readOne(t, nil, 1<<20); err != io.EOF {
		t.Fatalf("empty stream: %v, want io.EOF", err)
	}
}

func TestBufferPool(t *testing.T) {
	p := NewBufferPool()
	for _, n := range []int{1, 4095, 4096, 4097, 100 << 10, 1 << 20, 16 << 20} {
		b := p.Get(n)
		if b.Len() != n || len(b.Bytes()) != n || b.Cap() < n || b.Cap()&(b.Cap()-1) != 0 || b.Cap() < bufferAlign {
			t.Fatalf("Get(%d): len %d cap %d", n, b.Len(), b.Cap())
		}
		if !isAligned(b.Bytes()) {
			t.Fatalf("Get(%d) not %d-aligned", n, bufferAlign)
		}
		if b.Pool() != p {
			t.Fatal("wrong pool")
		}
		b.Release()
	}
	b := p.Get(10)
	b.Release()
	defer func() {
		if recover() == nil {
			t.Fatal("double Release did not panic")
		}
	}()
	b.Release()
}
