package bench

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCompareMedian(t *testing.T) {
	nan := math.NaN()
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1}, 2},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{nan, 2, 1}, 1.5},
	} {
		in := slices.Clone(c.in)
		if got := compareMedian(in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
		if !slices.EqualFunc(in, c.in, func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }) {
			t.Errorf("median modified its input: %v", in)
		}
	}
	for _, in := range [][]float64{nil, {nan}} {
		if got := compareMedian(in); !math.IsNaN(got) {
			t.Errorf("median(%v) = %v, want NaN", in, got)
		}
	}
}

func TestFioArgs(t *testing.T) {
	randread := Job{
		Name: "rr", Pattern: PatternRandRead, BlockSize: 4096, Size: 1 << 30, IODepth: 32, NumJobs: 1,
		Runtime: 10 * time.Second, TimeBased: true, Direct: true, IOEngine: EngineIOUring, RWMixRead: 50,
		IODepthBatch: 1, BatchCompleteMin: 1, FixedBufs: true,
	}
	want := []string{"--name=rr", "--filename=/f", "--rw=randread", "--bs=4k", "--size=1g", "--iodepth=32",
		"--numjobs=1", "--runtime=10", "--time_based", "--direct=1", "--ioengine=io_uring",
		"--iodepth_batch_submit=1", "--iodepth_batch_complete_min=1", "--fixedbufs", "--output-format=json"}
	if got := FioArgs(&randread, "/f"); !slices.Equal(got, want) {
		t.Errorf("FioArgs(randread) =\n %q\nwant\n %q", got, want)
	}

	mixed := Job{
		Pattern: PatternRandRW, BlockSize: 1000, IODepth: 1, NumJobs: 4, RampTime: 1500 * time.Millisecond,
		Fsync: 8, IOEngine: EnginePsync, RWMixRead: 70,
	}
	got := FioArgs(&mixed, "/data/x")
	for _, a := range []string{"--name=weft", "--filename=/data/x", "--rw=randrw", "--bs=1000", "--numjobs=4",
		"--ramp_time=1500ms", "--direct=0", "--fsync=8", "--ioengine=psync", "--rwmixread=70", "--group_reporting"} {
		if !slices.Contains(got, a) {
			t.Errorf("FioArgs(mixed) = %q, lacks %q", got, a)
		}
	}
	// io_uring engine options are unknown to fio's psync engine.
	for _, prefix := range []string{"--runtime", "--size", "--time_based", "--iodepth_batch", "--fixedbufs"} {
		for _, a := range got {
			if strings.HasPrefix(a, prefix) {
				t.Errorf("FioArgs(mixed) has %q, but the job does not set it", a)
			}
		}
	}

	seq := Job{Pattern: PatternRead, BlockSize: 128 << 10, IODepth: 8, GroupReporting: true, Runtime: 250 * time.Microsecond}
	got = FioArgs(&seq, "/f")
	for _, a := range []string{"--rw=read", "--bs=128k", "--iodepth=8", "--numjobs=1", "--group_reporting", "--runtime=250us"} {
		if !slices.Contains(got, a) {
			t.Errorf("FioArgs(seq) = %q, lacks %q", got, a)
		}
	}
	if slices.ContainsFunc(got, func(a string) bool { return strings.HasPrefix(a, "--rwmixread") }) {
		t.Errorf("FioArgs(seq) = %q: rwmixread for a read-only job", got)
	}
}

// fakeOutput is one run's result with the given read IOPS and clat median.
func fakeOutput(iops float64, clatP50 int64) *FioOutput {
	pct := FioPercentiles{FioPercentileKey(50): clatP50, FioPercentileKey(99): 4 * clatP50}
	return &FioOutput{FioVersion: "fake", Jobs: []FioJob{{
		Jobname: "fake",
		Read: FioDir{
			IOPS: iops, BWBytes: int64(iops) * 4096, TotalIOs: int64(iops),
			ClatNs: FioLat{N: int64(iops), Percentile: pct},
			LatNs:  FioLat{N: int64(iops), Mean: float64(clatP50 + 1000)},
		},
	}}}
}

func TestCompareRunAlternatesAndTakesMedians(t *testing.T) {
	var order []string
	fioIOPS := []float64{1000, 1200, 1100, 900}
	weftIOPS := []float64{1100, 1300, 1000, 1200}
	var fioN, weftN int
	var progress bytes.Buffer
	c := &Compare{
		Job:    Job{Name: "rr", Target: "file:/nonexistent", Pattern: PatternRandRead, BlockSize: 4096, IODepth: 32, NumJobs: 1, Direct: true, Runtime: 10 * time.Second, TimeBased: true},
		Rounds: 4,
		Out:    &progress,
		RunFio: func(ctx context.Context, j Job) (*FioOutput, error) {
			order = append(order, "fio")
			fioN++
			return fakeOutput(fioIOPS[fioN-1], 50000), nil
		},
		RunWeft: func(ctx context.Context, j Job) (*FioOutput, error) {
			order = append(order, "weft")
			weftN++
			return fakeOutput(weftIOPS[weftN-1], 40000), nil
		},
	}
	cm, err := c.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"fio", "weft", "weft", "fio", "fio", "weft", "weft", "fio"}; !slices.Equal(order, want) {
		t.Errorf("run order = %v, want %v", order, want)
	}
	for i, r := range cm.Rounds {
		want := "fio"
		if i%2 == 1 {
			want = "weft"
		}
		if r.Round != i+1 || r.First != want || r.Fio.Read.IOPS != fioIOPS[i] || r.Weft.Read.IOPS != weftIOPS[i] {
			t.Errorf("round %d = %+v, want round %d, %s first", i, r, i+1, want)
		}
	}
	if cm.Fio.Read.IOPS != 1050 || cm.Weft.Read.IOPS != 1150 {
		t.Errorf("median IOPS fio %v weft %v, want 1050 and 1150", cm.Fio.Read.IOPS, cm.Weft.Read.IOPS)
	}
	if cm.Fio.Read.ClatP99 != 200000 || !math.IsNaN(cm.Fio.Read.LatP50) || cm.Fio.Read.LatMean != 51000 {
		t.Errorf("fio medians = %+v", cm.Fio.Read)
	}
	if n := strings.Count(progress.String(), "\n"); n != 8 {
		t.Errorf("%d progress lines, want 8:\n%s", n, progress.String())
	}
	if !strings.Contains(progress.String(), "round 2/4 weft: read IOPS=1300 BW=5200KiB/s clat p50=40.0us p99=160us") {
		t.Errorf("progress:\n%s", progress.String())
	}

	var table bytes.Buffer
	if err := cm.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	got := table.String()
	t.Logf("table:\n%s", got)
	for _, want := range []string{
		"job: rw=randread bs=4k iodepth=32 numjobs=1 direct=1 ioengine=io_uring runtime=10s time_based, 4 rounds, target file:/nonexistent\n",
		"| metric | fio (median) | weft (median) | weft/fio |\n",
		"| read IOPS | 1050 | 1150 | 1.10 |\n",
		"| read MiB/s | 4.10 | 4.49 | 1.10 |\n",
		"| read clat p50 (µs) | 50.0 | 40.0 | 0.80 |\n",
		"| read clat p99 (µs) | 200 | 160 | 0.80 |\n",
		"| read lat mean (µs) | 51.0 | 41.0 | 0.80 |\n",
		"- read IOPS: r1 1000/1100, r2 1200/1300, r3 1100/1000, r4 900/1200\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	for _, unwanted := range []string{"write", "| read lat p50"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("table has %q", unwanted)
		}
	}
}

func TestCompareMixedAndLatPercentiles(t *testing.T) {
	out := func(scale float64) *FioOutput {
		d := func(iops float64) FioDir {
			p := FioPercentiles{FioPercentileKey(50): int64(10000 * scale), FioPercentileKey(99): int64(90000 * scale)}
			return FioDir{IOPS: iops * scale, BWBytes: int64(iops * scale * 4096), TotalIOs: 100,
				ClatNs: FioLat{N: 100, Percentile: p}, LatNs: FioLat{N: 100, Mean: 1e4, Percentile: p}}
		}
		return &FioOutput{FioVersion: "fake", Jobs: []FioJob{{Read: d(700), Write: d(300)}}}
	}
	c := &Compare{
		Job:     Job{Pattern: PatternRandRW, RWMixRead: 70, BlockSize: 4096},
		Rounds:  1,
		RunFio:  func(context.Context, Job) (*FioOutput, error) { return out(1), nil },
		RunWeft: func(context.Context, Job) (*FioOutput, error) { return out(2), nil },
	}
	cm, err := c.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := cm.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"rwmixread=70", "| read IOPS | 700 | 1400 | 2.00 |", "| write IOPS | 300 | 600 | 2.00 |",
		"| write lat p50 (µs) | 10.0 | 20.0 | 2.00 |", "| read clat p99 (µs) | 90.0 | 180 | 2.00 |"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

func TestCompareErrors(t *testing.T) {
	ok := func(context.Context, Job) (*FioOutput, error) { return fakeOutput(1000, 1000), nil }
	errDisk := errors.New("disk on fire")
	job := Job{Pattern: PatternRandRead, BlockSize: 4096, Target: "file:/x"}
	for _, c := range []struct {
		name string
		cmp  Compare
		want string
	}{
		{"no rounds", Compare{Job: job, RunWeft: ok, RunFio: ok}, "rounds must be at least 1"},
		{"no weft", Compare{Job: job, Rounds: 1, RunFio: ok}, "RunWeft is nil"},
		{"weft fails", Compare{Job: job, Rounds: 2, RunFio: ok,
			RunWeft: func(context.Context, Job) (*FioOutput, error) { return nil, errDisk }}, "round 1/2 weft: disk on fire"},
		{"job error", Compare{Job: job, Rounds: 1, RunFio: ok,
			RunWeft: func(context.Context, Job) (*FioOutput, error) {
				return &FioOutput{FioVersion: "x", Jobs: []FioJob{{Jobname: "j", Error: 1, WeftError: "short write"}}}, nil
			}}, `job "j" reported error 1: short write`},
		{"no jobs", Compare{Job: job, Rounds: 1, RunWeft: ok,
			RunFio: func(context.Context, Job) (*FioOutput, error) { return &FioOutput{FioVersion: "x"}, nil }}, "round 1/1 fio: bench: result has no jobs"},
		{"not a file", Compare{Job: Job{Target: "engine:/d"}, Rounds: 1, RunWeft: ok}, "needs a file:PATH target"},
		{"no fio", Compare{Job: job, Rounds: 1, RunWeft: ok, FioPath: "/nonexistent/fio"}, "/nonexistent/fio"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.cmp.Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c := Compare{Job: job, Rounds: 1, RunFio: ok, RunWeft: ok}
	if _, err := c.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("with a cancelled context: err = %v", err)
	}
}

// TestCompareWithRealFio runs the comparison with the real fio binary on
// both sides (the weft runner is wired in by tools/weft), which checks
// FioArgs and ParseFioJSON against fio itself.
func TestCompareWithRealFio(t *testing.T) {
	fio, err := exec.LookPath("fio")
	if err != nil {
		t.Skip("fio not installed: " + err.Error())
	}
	if testing.Short() {
		t.Skip("runs fio four times, about 6 s; skipped with -short")
	}
	// NB: psync and buffered I/O so that the test runs where io_uring is
	// forbidden (seccomp) or the temp directory is tmpfs (no O_DIRECT).
	job := Job{
		Name: "cmp", Target: "file:" + filepath.Join(t.TempDir(), "data"),
		Pattern: PatternRandRW, RWMixRead: 70, BlockSize: 4096, Size: 8 << 20,
		IODepth: 1, NumJobs: 1, Runtime: time.Second, TimeBased: true, IOEngine: EnginePsync,
	}
	var progress bytes.Buffer
	c := &Compare{Job: job, Rounds: 2, FioPath: fio, Out: &progress}
	c.RunWeft = c.execFio
	start := time.Now()
	cm, err := c.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("took %v; progress:\n%s", time.Since(start), progress.String())
	for _, side := range []struct {
		name string
		m    CompareMetrics
	}{{"fio", cm.Fio}, {"weft", cm.Weft}} {
		for _, d := range []struct {
			name string
			m    CompareDirMetrics
		}{{"read", side.m.Read}, {"write", side.m.Write}} {
			if !(d.m.IOPS > 0 && d.m.BW > 0 && d.m.ClatP50 > 0 && d.m.ClatP99 >= d.m.ClatP50 && d.m.LatMean > 0) {
				t.Errorf("%s %s medians = %+v, want positive", side.name, d.name, d.m)
			}
		}
		if side.m.Read.IOPS < side.m.Write.IOPS {
			t.Errorf("%s: read IOPS %v < write IOPS %v with rwmixread=70", side.name, side.m.Read.IOPS, side.m.Write.IOPS)
		}
	}
	var table bytes.Buffer
	if err := cm.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("table:\n%s", table.String())
	for _, want := range []string{"| read IOPS |", "| write clat p99 (µs) |", "- write MiB/s: r1 "} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
	if strings.Contains(table.String(), "n/a") {
		t.Errorf("table has n/a values")
	}
}
