package ioring

import (
	"testing"
)

// BenchmarkSubmitReap measures one submit+reap round of a batch of
// operations on each backend. The data path must not allocate: run with
// -benchmem and expect 0 allocs/op.
func BenchmarkSubmitReap(b *testing.B) {
	for _, backend := range backends(b) {
		b.Run(backend+"/nop", func(b *testing.B) { benchSubmitReap(b, backend, false) })
		b.Run(backend+"/read4k", func(b *testing.B) { benchSubmitReap(b, backend, true) })
	}
}

func benchSubmitReap(b *testing.B, backend string, read bool) {
	const depth = 8
	r := newRing(b, backend, Options{Entries: depth})
	f := tempFile(b, 1<<20)
	fd := int(f.Fd())
	bufs := make([][]byte, depth)
	for i := range bufs {
		bufs[i] = AlignedBuffer(4096)
	}
	cqes := make([]CQE, depth)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < depth; j++ {
			sqe := r.GetSQE()
			if read {
				sqe.PrepRead(fd, bufs[j], uint64(j)*4096)
			} else {
				sqe.PrepNop()
			}
			sqe.UserData = uint64(j)
		}
		if _, err := r.SubmitAndWait(depth); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < depth; {
			n, err := r.PeekBatch(cqes)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				if _, err := r.WaitCQE(); err != nil {
					b.Fatal(err)
				}
				continue
			}
			for _, c := range cqes[:n] {
				if c.Res < 0 {
					b.Fatalf("res %d", c.Res)
				}
			}
			got += n
		}
	}
	b.SetBytes(0)
}
