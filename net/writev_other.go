//go:build !linux

package net

import "syscall"

// rawFrameWriter: direct writes are wired up on Linux only; elsewhere
// every frame goes through the writer goroutine.
type rawFrameWriter struct{}

func newRawFrameWriter(syscall.RawConn) *rawFrameWriter { return nil }

func (*rawFrameWriter) writeFrames(frames []*outFrame) (n, total int) {
	for _, f := range frames {
		total += len(f.hdr)
		for _, p := range f.payload {
			total += len(p)
		}
	}
	return 0, total
}
