package net

import (
	"bytes"
	"context"
	"testing"
)

// benchServer answers kindEcho (writes: the payload is consumed, the
// response is empty) and kindRead (reads: the response carries a
// preallocated payload, written without a copy).
func benchServer(b *testing.B, readSize int) (*testServer, *Conn) {
	src := bytes.Repeat([]byte{0x5a}, max(readSize, 1))
	parts := [][]byte{src}
	mux := NewServeMux()
	mux.HandleFunc(kindEcho, func(_ context.Context, _ *Request, w *ResponseWriter) {
		w.Reply(nil, nil, nil)
	})
	mux.HandleFunc(kindEcho+1, func(_ context.Context, _ *Request, w *ResponseWriter) {
		w.Reply(nil, parts, nil)
	})
	ts := startServer(b, mux, nil)
	c := dialTest(b, ts.addr, clientConfig())
	return ts, c
}

func benchWrite(b *testing.B, size int) {
	_, c := benchServer(b, 0)
	payload := bytes.Repeat([]byte{1}, size)
	ctx := context.Background()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Call(ctx, kindEcho, nil, payload)
		if err != nil {
			b.Fatal(err)
		}
		resp.Release()
	}
}

// BenchmarkRoundTrip4K: one 4 KiB request payload, empty response, one
// call at a time on loopback (latency-bound).
func BenchmarkRoundTrip4K(b *testing.B) { benchWrite(b, 4<<10) }

// BenchmarkRoundTrip1M: one 1 MiB request payload, empty response.
func BenchmarkRoundTrip1M(b *testing.B) { benchWrite(b, 1<<20) }

// BenchmarkRoundTripRead1M: empty request, 1 MiB response payload.
func BenchmarkRoundTripRead1M(b *testing.B) {
	_, c := benchServer(b, 1<<20)
	ctx := context.Background()
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Call(ctx, kindEcho+1, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		resp.Release()
	}
}

// BenchmarkRoundTrip4KParallel: many 4 KiB calls in flight on one
// connection, where the writer's batching and readv's read-ahead pay off.
func BenchmarkRoundTrip4KParallel(b *testing.B) {
	_, c := benchServer(b, 0)
	payload := bytes.Repeat([]byte{1}, 4<<10)
	ctx := context.Background()
	b.SetBytes(4 << 10)
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Call(ctx, kindEcho, nil, payload)
			if err != nil {
				b.Fatal(err)
			}
			resp.Release()
		}
	})
}
