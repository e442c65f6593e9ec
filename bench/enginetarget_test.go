package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/internal/vfs"
)

func TestEngineAddr(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		off, objSize int64
		obj          engine.ObjectID
		objOff       uint64
	}{
		{0, mib, engine.ObjectID{}, 0},
		{4096, mib, engine.ObjectID{Lo: 0}, 4096},
		{mib - 4096, mib, engine.ObjectID{Lo: 0}, mib - 4096},
		{mib, mib, engine.ObjectID{Lo: 1}, 0},
		{5*mib + 12288, 4 * mib, engine.ObjectID{Lo: 1}, mib + 12288},
		{1 << 40, 4096, engine.ObjectID{Lo: 1 << 28}, 0},
		{math.MaxInt64 - 4095, 4096, engine.ObjectID{Lo: (math.MaxInt64 - 4095) / 4096}, 0},
	}
	for _, tt := range tests {
		obj, off := engineAddr(tt.off, tt.objSize)
		if obj != tt.obj || off != tt.objOff {
			t.Errorf("engineAddr(%d, %d) = %v, %d; want %v, %d", tt.off, tt.objSize, obj, off, tt.obj, tt.objOff)
		}
	}
	// Every offset maps back to itself, and the blocks of a job never
	// span two objects (the parser makes the object size a multiple of bs).
	rng := newRand(1)
	for range 10000 {
		bs := int64(512) << (rng.next() % 14) // 512 B .. 4 MiB
		objSize := bs * int64(1+rng.next()%64)
		off := int64(rng.next()%(1<<40)) / bs * bs
		obj, o := engineAddr(off, objSize)
		if obj.Hi != 0 || int64(obj.Lo)*objSize+int64(o) != off {
			t.Fatalf("engineAddr(%d, %d) = %v, %d: does not map back", off, objSize, obj, o)
		}
		if int64(o)+bs > objSize {
			t.Fatalf("block of %d at %d (object size %d) spans two objects", bs, off, objSize)
		}
	}
}

func TestEngineSegmentSize(t *testing.T) {
	def := defaultJob("x").Engine
	tests := []struct {
		need, bsWrite int64
		opts          func(*EngineOptions)
		want          int64
	}{
		{64 << 20, 4096, nil, 2 << 20},  // 128 MiB of segment space: 64 segments of 2 MiB
		{1 << 30, 4096, nil, 32 << 20},  // 2 GiB: 64 of the default 32 MiB
		{64 << 30, 4096, nil, 32 << 20}, // never above the default...
		{1 << 20, 0, nil, 1 << 20},      // ...nor below 1 MiB
		{100 << 20, 4096, func(o *EngineOptions) { o.Fill = 0.9 }, 1 << 20},
		{1 << 20, 1 << 20, nil, 2 << 20},                                                 // room for two writes
		{1 << 20, 4 << 20, nil, 8 << 20},                                                 // even above 64 segments
		{64 << 30, 4 << 20, nil, 32 << 20},                                               // the default has room already
		{64 << 20, 768 << 10, nil, 2 << 20},                                              // room for two writes
		{1 << 20, 4096, func(o *EngineOptions) { o.SegmentSize = 256 << 20 }, 256 << 20}, // given: as given
	}
	for _, tt := range tests {
		o := def
		if tt.opts != nil {
			tt.opts(&o)
		}
		if got := engineSegmentSize(o, tt.need, tt.bsWrite); got != tt.want {
			t.Errorf("engineSegmentSize(%+v, %d, %d) = %d, want %d", o, tt.need, tt.bsWrite, got, tt.want)
		}
	}
}

// TestEngineDeviceSize checks the sizing against engine.Layout: the device
// has room for need/fill in whole segments, and one segment less would not
// do.
func TestEngineDeviceSize(t *testing.T) {
	for _, need := range []int64{4096, 1 << 20, 64 << 20, 1<<30 + 4096, 100 << 30, 3 << 40} {
		for _, fill := range []float64{0.01, 0.1, 0.5, 0.9} {
			for _, seg := range []int64{1 << 20, 32 << 20, 1 << 30} {
				size, err := engineDeviceSize(need, fill, seg)
				if err != nil {
					t.Fatalf("engineDeviceSize(%d, %g, %d): %v", need, fill, seg, err)
				}
				want := int64(math.Ceil(float64(need) / fill))
				sb, err := engine.Layout(size, engine.FormatOptions{SegmentSize: uint32(seg)})
				if err != nil {
					t.Fatalf("engineDeviceSize(%d, %g, %d) = %d, which Layout refuses: %v", need, fill, seg, size, err)
				}
				if have := int64(sb.SegmentCount) * seg; have < want {
					t.Errorf("engineDeviceSize(%d, %g, %d) = %d: %d bytes of segments, want at least %d", need, fill, seg, size, have, want)
				}
				if sb, err := engine.Layout(size-seg, engine.FormatOptions{SegmentSize: uint32(seg)}); err == nil && int64(sb.SegmentCount)*seg >= want {
					t.Errorf("engineDeviceSize(%d, %g, %d) = %d, but %d would do", need, fill, seg, size, size-seg)
				}
			}
		}
	}
	if _, err := engineDeviceSize(math.MaxInt64, 0.01, 1<<20); err == nil || !strings.Contains(err.Error(), "larger than 1 EiB") {
		t.Errorf("huge size: %v", err)
	}
}

// formatDevice makes a small formatted engine device (a sparse file).
func formatDevice(t *testing.T, path string, size int64) *engine.Superblock {
	t.Helper()
	sb, err := engine.Format(vfs.Default, engine.FormatRequest{Path: path, Size: size, Options: engine.FormatOptions{SegmentSize: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	return sb
}

// TestEnginePreflight covers the problems an engine: target can only show
// at run time, before anything is written.
func TestEnginePreflight(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "dev")
	formatDevice(t, dev, 64<<20) // 1 MiB segments after a 1 MiB checkpoint area
	sb, err := engine.Layout(64<<20, engine.FormatOptions{SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	space := int64(sb.SegmentCount) << 20
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("x"), 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, "fresh")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no size", []string{"engine:" + fresh}, []string{"bench: job job: target engine:" + fresh + " needs size= (the bytes the job addresses), e.g. --size=1g"}},
		{"not a weft device", []string{"--size=1m", "engine:" + junk}, []string{
			"bench: job job: target engine:" + junk + ": " + junk + " exists but holds no weft device; delete it, and weft bench creates and formats a new one there"}},
		{"jobs disagree", []string{"--size=1m", "--name=a", "--engine_shards=2", "--name=b", "--engine_shards=3", "--name=c", "--engine_cores=1", "engine:" + dev}, []string{
			"bench: job b: engine_shards=3 differs from job a's engine_shards=2; the jobs on engine:" + dev + " share one engine and must agree",
			"bench: job c: engine_shards=1 differs from job a's engine_shards=2; the jobs on engine:" + dev + " share one engine and must agree"}},
		{"cores disagree", []string{"--size=1m", "--name=a", "--engine_cores=1-2", "--name=b", "engine:" + dev}, []string{
			"bench: job b: engine_cores=(none) differs from job a's engine_cores=1,2; the jobs on engine:" + dev + " share one engine and must agree"}},
		{"file and engine on one path", []string{"--size=1m", "--name=a", "--filename=engine:" + dev, "--name=b", "--filename=" + dev}, []string{
			"bench: job b: target file:" + dev + " names the file of target engine:" + dev + "; a file: job would overwrite the engine's device"}},
		{"too full", []string{"--size=" + formatSize(space), "engine:" + dev}, []string{
			"bench: job job: size=" + fmtBytes(space) + " is more than 90% of the " + fmtBytes(space) + " of segment space on the existing device " + dev + ", too full for the engine's cleaner; lower size, or delete the device to have it created at size/engine_fill"}},
		{"segment size differs", []string{"--size=1m", "--engine_segment_size=2m", "engine:" + dev}, []string{
			"bench: job job: engine_segment_size=2m: the existing device " + dev + " has segments of 1m; leave engine_segment_size out, or delete the device to have it created anew"}},
		{"no room for the device", []string{"--size=1t", "--engine_fill=0.01", "engine:" + fresh}, []string{"the device to create needs "}},
		{"writes too large for the segments", []string{"--size=64m", "--engine_object_size=4m", "--engine_segment_size=2m", "--name=r", "--bs=4m", "--name=w", "--rw=write", "--bs=2m", "engine:" + fresh}, []string{
			"bench: target engine:" + fresh + ": job w: bs=2m: engine_segment_size=2m is too small, as a write must fit in half a segment; give engine_segment_size=4m or more"}},
		{"writes too large for the existing device", []string{"--size=1m", "--rw=randrw", "--bs=1m", "engine:" + dev}, []string{
			"bench: target engine:" + dev + ": job job: bs=1m: the existing device " + dev + " has segments of 1m, and a write must fit in half a segment; lower bs, or delete the device to have it created anew with larger segments"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jobs := mustParse(t, tt.args...)
			_, err := Preflight(jobs)
			ue, ok := err.(*UsageError)
			if !ok {
				t.Fatalf("Preflight: %v, want a *UsageError", err)
			}
			if len(ue.Problems) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant:\n%s", err, strings.Join(tt.want, "\n"))
			}
			for i, w := range tt.want {
				if !strings.Contains(ue.Problems[i], w) {
					t.Errorf("problem %q, want %q", ue.Problems[i], w)
				}
			}
		})
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("Preflight created %s", fresh)
	}
	// In use by an engine.
	e, err := engine.Open(engine.Options{Path: dev, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Skipf("engine.Open: %v", err)
	}
	defer e.Close()
	if _, err := Preflight(mustParse(t, "--size=1m", "engine:"+dev)); err == nil || !strings.Contains(err.Error(), "is another engine or weft bench using it?") {
		t.Errorf("device in use: %v", err)
	}
}

// TestMainEngineBadInput: bad engine: input gets exit status 2 and one line
// per problem, and nothing is written.
func TestMainEngineBadInput(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "never")
	junk := filepath.Join(dir, "junk")
	junkData := bytes.Repeat([]byte("not weft "), 1000)
	if err := os.WriteFile(junk, junkData, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"psync", []string{"--size=1m", "--ioengine=psync", "engine:" + path}, []string{"ioengine=psync", "engine: target"}},
		{"fsync", []string{"--size=1m", "--rw=write", "--fsync=4", "engine:" + path}, []string{"fsync=4", "durable when it completes"}},
		{"empty path", []string{"--size=1m", "engine:"}, []string{"engine:: empty path"}},
		{"empty filename path", []string{"--size=1m", "--filename=engine:"}, []string{"filename=engine:: empty path"}},
		{"fill too high", []string{"--size=1m", "--engine_fill=0.95", "engine:" + path}, []string{"engine_fill=0.95", "at most 0.9"}},
		{"fill zero", []string{"--size=1m", "--engine_fill=0", "engine:" + path}, []string{"engine_fill=0", "above 0"}},
		{"unknown mode", []string{"--size=1m", "--engine_mode=spin", "engine:" + path}, []string{"engine_mode=spin", "poll, hybrid, interrupt"}},
		{"no size", []string{"engine:" + path}, []string{"needs size="}},
		{"not a weft device", []string{"--size=1m", "engine:" + junk}, []string{junk, "holds no weft device", "delete it"}},
		{"compare-fio", []string{"--size=1m", "--compare-fio", "engine:" + path}, []string{"--compare-fio", "fio cannot drive the weft engine"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkUsageError(t, path, c.args, c.want)
			if data, _ := os.ReadFile(junk); !bytes.Equal(data, junkData) {
				t.Errorf("bad input changed %s", junk)
			}
		})
	}
}

// runEngine runs jobs and skips the test if the engine cannot run here.
func runEngine(t *testing.T, jobs []Job, opts RunOptions) *Result {
	t.Helper()
	res, err := Run(context.Background(), jobs, opts)
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "io_uring") && (strings.Contains(msg, "not available") || strings.Contains(msg, "unavailable")) {
			t.Skipf("the engine cannot run here: %v", err)
		}
		t.Fatal(err)
	}
	return res
}

// TestRunEngine runs the engine: target end to end: a device is created,
// written at random for a while, then read at random (after its range is
// laid out once), then driven with batched submissions and polling reaps.
func TestRunEngine(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "e.dev")
	common := []string{"--bs=4k", "--size=16m", "--iodepth=8", "--runtime=2s", "--time_based", "engine:" + dev}

	// A random writer on a new device.
	var progress bytes.Buffer
	res := runEngine(t, mustParse(t, append([]string{"--name=w", "--rw=randwrite"}, common...)...), RunOptions{Progress: &syncWriter{w: &progress}})
	jr := res.Jobs[0]
	if jr.Write.TotalIOs == 0 || jr.Read.TotalIOs != 0 || jr.Err != nil {
		t.Fatalf("randwrite: %d writes, %d reads, error %v", jr.Write.TotalIOs, jr.Read.TotalIOs, jr.Err)
	}
	if !strings.HasPrefix(jr.Backend, "weft engine") {
		t.Errorf("backend %q", jr.Backend)
	}
	// Every write is one record of a group commit made during the job; the
	// cleaner's relocations are records too. Once the job wrote more than
	// the whole device holds, the log went round, so the cleaner must have
	// run (16 MiB rewritten for 2 s usually gets there; a slow machine may
	// not, and then the cleaner need not run).
	fi, err := os.Stat(dev)
	if err != nil {
		t.Fatal(err)
	}
	wrapped := jr.Write.TotalIOs*4096 > fi.Size()
	if a := jr.Engine; a == nil || a.Records < uint64(jr.Write.TotalIOs) || a.Batches == 0 || a.Batches > a.Records ||
		a.DeviceSubmits < a.Batches || (wrapped && a.CleanerSegments == 0) || a.FreeBytes == 0 {
		t.Errorf("engine activity %+v for %d writes on a device of %d bytes", jr.Engine, jr.Write.TotalIOs, fi.Size())
	}
	if !wrapped {
		t.Logf("the job wrote %d bytes, less than the device's %d: the cleaner was not needed", jr.Write.TotalIOs*4096, fi.Size())
	}
	for _, d := range []DirStats{jr.Read, jr.Write} {
		if d.Clat.TotalCount() != d.TotalIOs || d.Slat.TotalCount() != d.TotalIOs || d.Lat.TotalCount() != d.TotalIOs {
			t.Errorf("histograms hold %d/%d/%d values for %d I/Os", d.Slat.TotalCount(), d.Clat.TotalCount(), d.Lat.TotalCount(), d.TotalIOs)
		}
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "engine:"+dev+": ") || !strings.Contains(res.Notes[0], "created by this run") ||
		!strings.Contains(res.Notes[0], "hybrid") || strings.Contains(res.Notes[0], "laid out") {
		t.Errorf("notes: %q", res.Notes)
	}
	if !strings.Contains(progress.String(), "creating engine device "+dev) {
		t.Errorf("progress lacks the device creation: %q", progress.String())
	}
	// Written in full, not sparse.
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil || st.Blocks*512 < st.Size {
		t.Errorf("device is sparse: %d bytes, %d allocated (%v)", st.Size, st.Blocks*512, err)
	}

	// A random reader on the existing device: its range is laid out first
	// (the writer left holes), and only once.
	res = runEngine(t, mustParse(t, append([]string{"--name=r", "--rw=randread"}, common...)...), RunOptions{})
	jr = res.Jobs[0]
	if jr.Read.TotalIOs == 0 || jr.Write.TotalIOs != 0 || jr.Err != nil {
		t.Fatalf("randread: %d reads, %d writes, error %v", jr.Read.TotalIOs, jr.Write.TotalIOs, jr.Err)
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "existing") || !strings.Contains(res.Notes[0], "16.0MiB laid out for reading") {
		t.Errorf("notes: %q", res.Notes)
	}

	// Size-bounded with fio's default batching (the inline loop, which
	// resubmits from the reactor): exactly size/bs I/Os.
	res = runEngine(t, mustParse(t, "--name=s", "--rw=randread", "--bs=4k", "--size=1m", "--iodepth=8", "engine:"+dev), RunOptions{})
	if jr = res.Jobs[0]; jr.Read.TotalIOs != 256 || jr.Err != nil || jr.Read.Clat.TotalCount() != 256 {
		t.Fatalf("size-bounded randread: %d reads (%d latencies), error %v; want 256", jr.Read.TotalIOs, jr.Read.Clat.TotalCount(), jr.Err)
	}

	// Mixed, size-bounded, with two clones, batched submissions and
	// polling reaps; already laid out. The summary names the engine, the
	// JSON stays fio's.
	args := []string{"--rw=randrw", "--bs=8k", "--size=1m", "--iodepth=8", "--numjobs=2", "--group_reporting",
		"--iodepth_batch_submit=4", "--iodepth_batch_complete_min=0", "--iodepth_batch_complete_max=4", "engine:" + dev}
	out, errs, status := runMain(t, args...)
	if status != 0 {
		t.Fatalf("status %d: %s", status, errs)
	}
	if !strings.HasPrefix(out, "engine:"+dev+": ") || strings.Contains(out, "laid out") || !strings.Contains(out, "backend=weft engine") {
		t.Errorf("summary:\n%s", out)
	}
	out, errs, status = runMain(t, append([]string{"--output-format=json"}, args...)...)
	if status != 0 {
		t.Fatalf("status %d: %s", status, errs)
	}
	var doc FioOutput
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("JSON output does not parse: %v\n%s", err, out)
	}
	if len(doc.Jobs) != 1 || doc.Jobs[0].Read.IOBytes+doc.Jobs[0].Write.IOBytes != 2<<20 || doc.Jobs[0].Error != 0 {
		t.Errorf("JSON jobs: %+v", doc.Jobs)
	}
	// Both clones' writes, each one record, and their reads.
	if e := doc.Jobs[0].WeftEngine; e == nil || e.Records < uint64(doc.Jobs[0].Write.TotalIOs) || e.DeviceReads == 0 || e.FreeBytes == 0 {
		t.Errorf("JSON weft_engine %+v for %d reads and %d writes", doc.Jobs[0].WeftEngine, doc.Jobs[0].Read.TotalIOs, doc.Jobs[0].Write.TotalIOs)
	}
}

// TestRunReapMinAtTail: when fewer I/Os are in flight than
// iodepth_batch_complete_min at the end of a size-bounded run, the reap
// waits for those, not for completions that will never come.
func TestRunReapMinAtTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	// 10 I/Os: 8, then 2 after the first reap of 4, leaving 6, then 2.
	jobs := mustParse(t, "--rw=randread", "--bs=4k", "--size=40k", "--iodepth=8", "--iodepth_batch_complete_min=4", "file:"+path)
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), jobs, RunOptions{})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not finish: the last reap waits for more completions than are in flight")
	}
}
