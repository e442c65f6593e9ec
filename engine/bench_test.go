package engine

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ncw/directio"

	"github.com/weftfs/weft/internal/vfs"
)

// benchDir is where benchmarks put their device files: a real file
// system (O_DIRECT), not tmpfs. WEFT_BENCH_DIR overrides it.
func benchDir(b *testing.B) string {
	if d := os.Getenv("WEFT_BENCH_DIR"); d != "" {
		return d
	}
	return b.TempDir()
}

func benchDevice(b *testing.B, size int64) string {
	path := filepath.Join(benchDir(b), "engine-bench.dev")
	os.Remove(path)
	b.Cleanup(func() { os.Remove(path) })
	if _, err := Format(vfs.Default, FormatRequest{Path: path, Size: size}); err != nil {
		b.Fatal(err)
	}
	return path
}

// fillRandom writes total bytes as 4 KiB writes at random offsets over
// objects of 1 MiB, depth requests in flight.
func fillRandom(b *testing.B, e *Engine, total int64, span int64, depth int) {
	rng := rand.New(rand.NewPCG(1, 2))
	done := make(chan *Request, depth)
	bufs := make([][]byte, depth)
	for i := range bufs {
		bufs[i] = directio.AlignedBlock(4096)
		for j := range bufs[i] {
			bufs[i][j] = byte(rng.Uint32())
		}
	}
	issue := func(r *Request) {
		off := uint64(rng.Int64N(span/4096)) * 4096
		r.Op, r.Object, r.Off = OpWrite, ObjectID{Lo: off >> 20}, off&(1<<20-1)
		e.Submit(r)
	}
	n := total / 4096
	inflight := 0
	for i := 0; i < depth && int64(i) < n; i++ {
		issue(&Request{Buf: bufs[i], Done: done})
		inflight++
	}
	for sent := int64(inflight); inflight > 0; {
		r := <-done
		inflight--
		if r.Err != nil {
			b.Fatal(r.Err)
		}
		if sent < n {
			issue(r)
			sent++
			inflight++
		}
	}
}

// BenchmarkRecovery measures how long Open takes to replay a log with no
// checkpoint after it: 256 MiB of 4 KiB random writes (65536 records).
// It reports seconds per GiB of log replayed.
func BenchmarkRecovery(b *testing.B) {
	const logBytes = 256 << 20
	path := benchDevice(b, 2<<30)
	e, err := Open(Options{Path: path, Logger: quietLogger, CheckpointBytes: 1 << 40, noRecoveryCheckpoint: true})
	if err != nil {
		b.Fatal(err)
	}
	fillRandom(b, e, logBytes, 1<<30, 64)
	e.crashStop()
	b.ResetTimer()
	var scanned int64
	var elapsed time.Duration
	for range b.N {
		t0 := time.Now()
		e, err := Open(Options{Path: path, Logger: quietLogger, CheckpointBytes: 1 << 40, noRecoveryCheckpoint: true})
		if err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(t0)
		scanned += e.Recovery().BytesScanned
		e.crashStop()
	}
	b.ReportMetric(elapsed.Seconds()/(float64(scanned)/(1<<30)), "s/GiB")
	b.ReportMetric(float64(scanned)/float64(b.N)/(1<<20), "MiB-replayed/op")
}

// BenchmarkCheckpointRecovery measures Open when a checkpoint covers the
// same log: it loads the index instead of replaying records.
func BenchmarkCheckpointRecovery(b *testing.B) {
	path := benchDevice(b, 2<<30)
	e, err := Open(Options{Path: path, Logger: quietLogger})
	if err != nil {
		b.Fatal(err)
	}
	fillRandom(b, e, 256<<20, 1<<30, 64)
	extents := 0
	for _, s := range e.Stats().Shards {
		extents += s.IndexExtents
	}
	if err := e.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		e, err := Open(Options{Path: path, Logger: quietLogger})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		e.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(extents), "extents")
}

// BenchmarkRandRead4K reads 4 KiB at random offsets of 64 MiB of data
// written as 4 KiB records, 32 reads in flight.
func BenchmarkRandRead4K(b *testing.B) {
	const span = 64 << 20
	path := benchDevice(b, 512<<20)
	e, err := Open(Options{Path: path, Logger: quietLogger})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	buf := directio.AlignedBlock(1 << 20)
	for off := int64(0); off < span; off += 1 << 20 {
		if _, err := e.Write(ObjectID{Lo: uint64(off >> 20)}, 0, 0, buf); err != nil {
			b.Fatal(err)
		}
	}
	fillRandom(b, e, span, span, 64) // 4 KiB records over the span
	const depth = 32
	done := make(chan *Request, depth)
	rng := rand.New(rand.NewPCG(3, 4))
	issue := func(r *Request) {
		off := uint64(rng.Int64N(span/4096)) * 4096
		r.Op, r.Object, r.Off = OpRead, ObjectID{Lo: off >> 20}, off&(1<<20-1)
		e.Submit(r)
	}
	b.ResetTimer()
	inflight := 0
	for i := 0; i < depth && i < b.N; i++ {
		issue(&Request{Buf: directio.AlignedBlock(4096), Done: done})
		inflight++
	}
	for sent := inflight; inflight > 0; {
		r := <-done
		inflight--
		if r.Err != nil {
			b.Fatal(r.Err)
		}
		if sent < b.N {
			issue(r)
			sent++
			inflight++
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "IOPS")
}
