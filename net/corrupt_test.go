package net

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	stdnet "net"
	"syscall"
	"testing"
	"time"

	"github.com/weftfs/weft/internal/testutil"
)

// listenSilent returns the address of a listener that accepts connections
// and never writes; closed when the test ends.
func listenSilent(t *testing.T) string {
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []stdnet.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// rawHandshake authenticates a raw TCP connection, so that what it sends
// next reaches the server's request reader.
func rawHandshake(t *testing.T, nc stdnet.Conn) {
	t.Helper()
	cfg := clientConfig()
	cfg, _ = cfg.resolve()
	cfg.Metrics = new(Metrics)
	if _, err := clientHandshake(nc, newFrameReader(nc, 1<<20, false, nil), &cfg); err != nil {
		t.Fatal(err)
	}
}

func TestServerClosesConnectionOnBadBytes(t *testing.T) {
	testutil.CheckLeaks(t)
	ts := startServer(t, echoMux(), func(c *ServerConfig) { c.MaxPayloadBytes = 1 << 20 })
	// A well-behaved client keeps working throughout, concurrently.
	good := dialTest(t, ts.addr, clientConfig())
	stop := make(chan struct{})
	goodErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				goodErr <- nil
				return
			default:
			}
			resp, err := good.Call(context.Background(), kindEcho, []byte("still here"), []byte("payload"))
			if err != nil {
				goodErr <- err
				return
			}
			resp.Release()
		}
	}()

	valid := encodeFrame(frameHeader{kind: kindEcho, id: 1, flags: flagPayloadCRC}, []byte("hdr"), []byte("payload"))
	corrupt := func(f func([]byte)) []byte {
		b := bytes.Clone(valid)
		f(b)
		return b
	}
	for _, tc := range []struct {
		name      string
		handshake bool
		send      []byte
		logged    string
	}{
		{"garbage before handshake", false, bytes.Repeat([]byte("garbage!"), 8), "bad magic"},
		{"garbage", true, bytes.Repeat([]byte("garbage!"), 8), "bad magic"},
		{"truncated frame", true, valid[:frameHeaderSize+4], "truncated frame: stream ended after 4 of 10 body and payload bytes"},
		{"4 GiB payload", true, corrupt(func(b []byte) { binary.LittleEndian.PutUint32(b[20:], math.MaxUint32) }), "payload length 4294967295 over the limit 1048576"},
		{"bad header crc", true, corrupt(func(b []byte) { b[frameHeaderSize+1] ^= 0x40 }), "header checksum"},
		{"bad payload crc", true, corrupt(func(b []byte) { b[len(b)-2] ^= 0x40 }), "payload checksum"},
		{"unknown version", true, corrupt(func(b []byte) { b[4] = 2 }), "unknown frame version 2; this build reads version 1"},
		{"response from client", true, encodeFrame(frameHeader{kind: kindEcho, id: 1, flags: flagResponse}, nil, nil), "response frame"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := stdnet.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if tc.handshake {
				rawHandshake(t, nc)
			}
			if _, err := nc.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if tc.name == "truncated frame" {
				nc.(*stdnet.TCPConn).CloseWrite() // the stream ends mid-frame
			}
			// The server closes the connection: the client reads EOF.
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			// (A reset is a close too: the server had unread bytes.)
			if n, err := io.Copy(io.Discard, nc); (err != nil && !errors.Is(err, syscall.ECONNRESET)) || n != 0 {
				t.Fatalf("after bad bytes: read %d bytes, err %v; want the server to close", n, err)
			}
			waitFor(t, "the reason in the server log", func() bool { return contains(ts.log.String(), tc.logged) })
		})
	}
	close(stop)
	if err := <-goodErr; err != nil {
		t.Fatalf("the well-behaved client failed: %v", err)
	}
	if m := ts.Metrics(); m.Errors.Corrupt != 8 {
		t.Fatalf("server counted %d corrupt streams, want 8", m.Errors.Corrupt)
	}
}
