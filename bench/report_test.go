package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

const fioFixture = "testdata/fio-3.33-randread.json"

// histOf returns a latency histogram holding each of vs count times.
func histOf(t *testing.T, count int64, vs ...int64) *hdrhistogram.Histogram {
	t.Helper()
	h := newLatencyHistogram()
	for _, v := range vs {
		if err := h.RecordValues(v, count); err != nil {
			t.Fatalf("recording %d: %v", v, err)
		}
	}
	return h
}

// testResult is a 4k randread job that did 2000 reads in 2 s whose clat
// values are 1..1000 ns, each twice (values below 2048 are exact in the
// histogram, so percentiles are known).
func testResult(t *testing.T) *Result {
	t.Helper()
	seq := make([]int64, 1000)
	lat := make([]int64, 1000)
	for i := range seq {
		seq[i] = int64(i + 1)
		lat[i] = int64(i + 51)
	}
	job := &Job{
		Name: "rr", Target: "file:/tmp/x", Pattern: PatternRandRead, BlockSize: 4096,
		IODepth: 4, NumJobs: 1, IOEngine: EngineIOUring,
		Options: []Option{{"name", "rr"}, {"rw", "randread"}, {"bs", "4k"}, {"iodepth", "4"}},
	}
	return &Result{
		Version: "0.1.0",
		Start:   time.Date(2026, 11, 25, 16, 16, 55, 212e6, time.UTC),
		Jobs: []JobResult{{
			Job: job, Clones: 1, Backend: "io_uring",
			Read: DirStats{
				IOBytes: 2000 * 4096, TotalIOs: 2000, Runtime: 2 * time.Second,
				Slat: histOf(t, 2000, 50), Clat: histOf(t, 2, seq...), Lat: histOf(t, 2, lat...),
				PerSecondBytes: []int64{4000 * 1024, 4200 * 1024},
				PerSecondIOs:   []int64{1000, 1050},
			},
			Elapsed: 2500 * time.Millisecond, Runtime: 2 * time.Second,
			UsrCPU: 5.5, SysCPU: 40.25, Ctx: 1234,
		}},
	}
}

func readFixture(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(fioFixture)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not valid JSON: %v\n%s", err, b)
	}
	return m
}

func sortedKeys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestReportJSONValues(t *testing.T) {
	var buf bytes.Buffer
	if err := testResult(t).WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	top := jsonMap(t, buf.Bytes())
	job := top["jobs"].([]any)[0].(map[string]any)
	read := job["read"].(map[string]any)
	clat := read["clat_ns"].(map[string]any)
	pct := clat["percentile"].(map[string]any)
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"fio version", top["fio version"], "weft-0.1.0"},
		{"timestamp", top["timestamp"], float64(1795623415)},
		{"timestamp_ms", top["timestamp_ms"], float64(1795623415212)},
		{"time", top["time"], "Wed Nov 25 16:16:55 2026"},
		{"jobname", job["jobname"], "rr"},
		{"error", job["error"], 0.0},
		{"elapsed", job["elapsed"], 3.0},
		{"job_runtime", job["job_runtime"], 2000.0},
		{"usr_cpu", job["usr_cpu"], 5.5},
		{"ctx", job["ctx"], 1234.0},
		{"weft_backend", job["weft_backend"], "io_uring"},
		{"job options.rw", job["job options"].(map[string]any)["rw"], "randread"},
		{"io_bytes", read["io_bytes"], 8192000.0},
		{"io_kbytes", read["io_kbytes"], 8000.0},
		{"bw_bytes", read["bw_bytes"], 4096000.0},
		{"bw", read["bw"], 4000.0},
		{"iops", read["iops"], 1000.0},
		{"runtime", read["runtime"], 2000.0},
		{"total_ios", read["total_ios"], 2000.0},
		{"bw_min", read["bw_min"], 4000.0},
		{"bw_max", read["bw_max"], 4200.0},
		{"bw_mean", read["bw_mean"], 4100.0},
		{"bw_agg", read["bw_agg"], 100.0},
		{"bw_samples", read["bw_samples"], 2.0},
		{"iops_min", read["iops_min"], 1000.0},
		{"iops_max", read["iops_max"], 1050.0},
		{"iops_mean", read["iops_mean"], 1025.0},
		{"clat N", clat["N"], 2000.0},
		{"clat min", clat["min"], 1.0},
		{"clat max", clat["max"], 1000.0},
		{"clat mean", clat["mean"], 500.5},
		{"p1", pct["1.000000"], 10.0},
		{"p50", pct["50.000000"], 500.0},
		{"p90", pct["90.000000"], 900.0},
		{"p99", pct["99.000000"], 990.0},
		{"p99.9", pct["99.900000"], 999.0},
		{"p99.99", pct["99.990000"], 1000.0},
		{"slat mean", read["slat_ns"].(map[string]any)["mean"], 50.0},
		{"lat min", read["lat_ns"].(map[string]any)["min"], 51.0},
		{"write io_bytes", job["write"].(map[string]any)["io_bytes"], 0.0},
		{"write bw_agg", job["write"].(map[string]any)["bw_agg"], 0.0},
		{"sync total_ios", job["sync"].(map[string]any)["total_ios"], 0.0},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v (%T), want %v", c.name, c.got, c.got, c.want)
		}
	}
	if d := read["bw_dev"].(float64); math.Abs(d-141.4213562) > 1e-6 {
		t.Errorf("bw_dev = %v, want 141.42 (sample stddev of 4000, 4200)", d)
	}
	if d := clat["stddev"].(float64); math.Abs(d-288.6749902) > 1e-6 {
		t.Errorf("clat stddev = %v, want 288.67", d)
	}
	if len(pct) != len(fioPercentileList) {
		t.Errorf("clat has %d percentiles, want %d: %v", len(pct), len(fioPercentileList), pct)
	}
	for _, k := range []string{"slat_ns", "lat_ns"} {
		if _, ok := read[k].(map[string]any)["percentile"]; ok {
			t.Errorf("read.%s has percentiles; fio writes them for clat_ns only", k)
		}
	}
	if _, ok := job["write"].(map[string]any)["clat_ns"].(map[string]any)["percentile"]; ok {
		t.Errorf("write.clat_ns has percentiles without I/O")
	}
	// fio's order of percentile keys, not encoding/json's sorted order.
	if i, j := bytes.Index(buf.Bytes(), []byte(`"5.000000"`)), bytes.Index(buf.Bytes(), []byte(`"10.000000"`)); i < 0 || j < i {
		t.Errorf("percentile 5 at byte %d, 10 at byte %d: want ascending order", i, j)
	}
}

// TestReportJSONKeysMatchFio checks our document against real fio output:
// the same top-level keys, the same keys in every direction, and no job key
// fio does not have besides weft's own.
func TestReportJSONKeysMatchFio(t *testing.T) {
	fio := jsonMap(t, readFixture(t))
	var buf bytes.Buffer
	if err := testResult(t).WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	ours := jsonMap(t, buf.Bytes())
	if got, want := sortedKeys(ours), sortedKeys(fio); !slices.Equal(got, want) {
		t.Errorf("top-level keys = %v, want fio's %v", got, want)
	}
	fioJob := fio["jobs"].([]any)[0].(map[string]any)
	ourJob := ours["jobs"].([]any)[0].(map[string]any)
	for _, dir := range []string{"read", "write", "trim"} {
		got, want := sortedKeys(ourJob[dir].(map[string]any)), sortedKeys(fioJob[dir].(map[string]any))
		if !slices.Equal(got, want) {
			t.Errorf("%s keys = %v, want fio's %v", dir, got, want)
		}
		for _, lat := range []string{"slat_ns", "clat_ns", "lat_ns"} {
			got := sortedKeys(ourJob[dir].(map[string]any)[lat].(map[string]any))
			want := sortedKeys(fioJob[dir].(map[string]any)[lat].(map[string]any))
			if !slices.Equal(got, want) {
				t.Errorf("%s.%s keys = %v, want fio's %v", dir, lat, got, want)
			}
		}
	}
	for k := range ourJob {
		if _, ok := fioJob[k]; !ok && !strings.HasPrefix(k, "weft_") {
			t.Errorf("job key %q is not fio's", k)
		}
	}
	// What fio has that we do not write: its depth and latency-bucket tables.
	var missing []string
	for k := range fioJob {
		if _, ok := ourJob[k]; !ok {
			missing = append(missing, k)
		}
	}
	slices.Sort(missing)
	want := []string{"iodepth_complete", "iodepth_level", "iodepth_submit", "latency_depth", "latency_ms",
		"latency_ns", "latency_percentile", "latency_target", "latency_us", "latency_window"}
	if !slices.Equal(missing, want) {
		t.Errorf("fio job keys we do not write = %v, want %v", missing, want)
	}
}

func TestReportJSONRoundTrip(t *testing.T) {
	r := testResult(t)
	r.Jobs[0].Write = DirStats{
		IOBytes: 10 * 4096, TotalIOs: 10, Runtime: 1500 * time.Millisecond,
		Clat: histOf(t, 1, 3000, 5000), Slat: histOf(t, 1, 10), Lat: histOf(t, 1, 3010, 5010),
	}
	r.Jobs[0].Sync = histOf(t, 3, 20000, 40000)
	r.Jobs[0].Err = errors.New("short read at 4096")
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ParseFioJSON(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if want := r.FioJSON(); !reflect.DeepEqual(got, want) {
		t.Errorf("ParseFioJSON(WriteJSON) differs from FioJSON:\n got %+v\nwant %+v", got, want)
	}
	j := got.Jobs[0]
	if j.Error != 1 || j.WeftError != "short read at 4096" {
		t.Errorf("error = %d %q, want 1 and the message", j.Error, j.WeftError)
	}
	if j.Sync.TotalIOs != 6 || !histOf(t, 1, 20000).ValuesAreEquivalent(j.Sync.LatNs.Percentile[FioPercentileKey(50)], 20000) {
		t.Errorf("sync = %+v, want 6 fsyncs with p50 ~20000", j.Sync)
	}
	if j.Write.IOPS != 10*1000/1500.0 || j.Write.BWBytes != 10*4096*1000/1500 {
		t.Errorf("write iops %v bw_bytes %d, want rates over 1500 ms", j.Write.IOPS, j.Write.BWBytes)
	}
}

func TestParseFioJSONFixture(t *testing.T) {
	data := readFixture(t)
	o, err := ParseFioJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	if o.FioVersion != "fio-3.33" || len(o.Jobs) != 1 {
		t.Fatalf("version %q, %d jobs; want fio-3.33 and 1 job", o.FioVersion, len(o.Jobs))
	}
	j := o.Jobs[0]
	r := j.Read
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"jobname", j.Jobname, "t"},
		{"job options rw", j.JobOptions["rw"], "randread"},
		{"job_runtime", j.JobRuntime, int64(1000)},
		{"sys_cpu", j.SysCPU, 64.1},
		{"io_kbytes", r.IOKBytes, int64(210284)},
		{"bw", r.BW, int64(210073)},
		{"iops", r.IOPS, 52518.481518},
		{"runtime", r.Runtime, int64(1001)},
		{"total_ios", r.TotalIOs, int64(52571)},
		{"clat p99", r.ClatNs.Percentile[FioPercentileKey(99)], int64(175104)},
		{"clat mean", r.ClatNs.Mean, 63637.100493},
		{"lat max", r.LatNs.Max, int64(2309429)},
		{"bw_agg", r.BWAgg, 100.0},
		{"iops_samples", r.IOPSSamples, int64(1)},
		{"write total_ios", j.Write.TotalIOs, int64(0)},
		{"disk", o.DiskUtil[0].Name, "vda"},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	// fio prints notes before the JSON when iodepth > 1 meets a sync engine.
	noisy := append([]byte("note: both iodepth >= 1 and synchronous I/O engine are selected, queue depth will be capped at 1\n"+
		"note: both iodepth >= 1 and synchronous I/O engine are selected, queue depth will be capped at 1\n"+
		"fio: this platform does not support process shared mutexes, forcing use of threads\n"), data...)
	noisy = append(noisy, "fio: trailing message\n"...)
	o2, err := ParseFioJSON(noisy)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o, o2) {
		t.Errorf("with warnings before it, the fixture parses differently")
	}
}

func TestParseFioJSONErrors(t *testing.T) {
	fixture := readFixture(t)
	for _, c := range []struct {
		name, in, want string
	}{
		{"empty", "", "no fio JSON"},
		{"only warnings", "fio: failed parsing rw=bogus\n", "no fio JSON"},
		{"truncated", string(fixture[:len(fixture)/2]), "truncated"},
		{"syntax", "note: x\n{\"fio version\": \"fio-3.33\", \"jobs\": [,]}\n", "at byte"},
		{"wrong type", `{"fio version": "fio-3.33", "jobs": [{"jobname": 5}]}`, "jobname"},
		{"not fio", `{"hello": "world"}`, `no "fio version"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseFioJSON([]byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
}

func TestReportSummary(t *testing.T) {
	var buf bytes.Buffer
	if err := testResult(t).WriteSummary(&buf); err != nil {
		t.Fatal(err)
	}
	got := buf.String()
	t.Logf("summary:\n%s", got)
	for _, want := range []string{
		"rr: (groupid=0, jobs=1): err= 0: backend=io_uring\n",
		"  read: IOPS=1000, BW=4000KiB/s (4096kB/s)(8000KiB/2000msec)\n",
		"    slat (nsec): min=50, max=50, avg=50.00, stdev= 0.00\n",
		"    clat (nsec): min=1, max=1000, avg=500.50, stdev=288.67\n",
		"     lat (nsec): min=51, max=1050, avg=550.50, stdev=288.67\n",
		"    clat percentiles (nsec):\n" +
			"     |  1.00th=[   10],  5.00th=[   50], 10.00th=[  100], 20.00th=[  200],\n" +
			"     | 30.00th=[  300], 40.00th=[  400], 50.00th=[  500], 60.00th=[  600],\n" +
			"     | 70.00th=[  700], 80.00th=[  800], 90.00th=[  900], 95.00th=[  950],\n" +
			"     | 99.00th=[  990], 99.50th=[  995], 99.90th=[  999], 99.95th=[ 1000],\n" +
			"     | 99.99th=[ 1000]\n",
		"    clat: min=1ns avg=501ns p50=500ns p90=900ns p99=990ns p99.9=999ns max=1.00us\n",
		"   bw (  KiB/s): min= 4000, max= 4200, per=100.00%, avg=4100.00, stdev=141.42, samples=2\n",
		"   iops        : min= 1000, max= 1050, avg=1025.00, stdev=35.36, samples=2\n",
		"  cpu          : usr=5.50%, sys=40.25%, ctx=1234\n",
		"\nRun status group 0 (all jobs):\n" +
			"   READ: bw=4000KiB/s (4096kB/s), 4000KiB/s-4000KiB/s (4096kB/s-4096kB/s), io=8000KiB (8192kB), run=2000-2000msec\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	for _, unwanted := range []string{"write:", "WRITE:", "fsync", "sync ("} {
		if strings.Contains(got, unwanted) {
			t.Errorf("summary has %q for a read-only job without fsync", unwanted)
		}
	}
}

// TestReportSummaryUnits uses microsecond latencies, writes with fsync, and
// a failed job.
func TestReportSummaryUnits(t *testing.T) {
	r := testResult(t)
	jr := &r.Jobs[0]
	jr.Read = DirStats{}
	jr.Job.Name = "w"
	jr.Clones = 4
	jr.Err = errors.New("pwrite /x: no space left on device")
	jr.Write = DirStats{
		IOBytes: 215330816, TotalIOs: 52571, Runtime: 1001 * time.Millisecond,
		Slat: histOf(t, 1, 3000, 12000, 40000, 296000),
		Clat: histOf(t, 100, 20000, 64000, 65000, 175000, 3800000),
		Lat:  histOf(t, 1, 30000, 80000, 5000000),
	}
	jr.Sync = histOf(t, 10, 100000, 300000, 900000)
	var buf bytes.Buffer
	if err := r.WriteSummary(&buf); err != nil {
		t.Fatal(err)
	}
	got := buf.String()
	t.Logf("summary:\n%s", got)
	for _, want := range []string{
		"w: (groupid=0, jobs=4): err= 1 (pwrite /x: no space left on device): backend=io_uring\n",
		"  write: IOPS=52.5k, BW=205MiB/s (215MB/s)(205MiB/1001msec)\n",
		"    slat (usec): min=3, max=296, ",
		"    clat (usec): min=20, max=3801, ",
		"     lat (usec): min=30, max=5001, ",
		"    clat percentiles (usec):\n     |  1.00th=[   21],",
		"99.99th=[ 3802]\n",
		"    clat: min=20.0us avg=825us p50=65.0us p90=3.80ms p99=3.80ms p99.9=3.80ms max=3.80ms\n",
		"  fsync/fdatasync/sync_file_range:\n    sync (usec): min=99, max=900, ",
		"    sync percentiles (usec):\n",
		"  WRITE: bw=205MiB/s (215MB/s), 205MiB/s-205MiB/s (215MB/s-215MB/s), io=205MiB (215MB), run=1001-1001msec\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	if strings.Contains(got, "  read:") || strings.Contains(got, "READ:") {
		t.Errorf("summary has a read block without reads")
	}
}

func TestReportFioNum(t *testing.T) {
	for _, c := range []struct {
		n    int64
		max  int
		pow2 bool
		unit string
		want string
	}{
		{0, 4, false, "", "0"},
		{999, 4, false, "", "999"},
		{9999, 4, false, "", "9999"},
		{52518, 4, false, "", "52.5k"},
		{123456, 4, false, "", "123k"},
		{123756, 4, false, "", "124k"},
		{1500000, 4, false, "", "1500k"},
		{215115700, 4, true, "B/s", "205MiB/s"},
		{215115700, 4, false, "B/s", "215MB/s"},
		{43200000, 4, true, "B", "41.2MiB"},
		{43200000, 4, false, "B", "43.2MB"},
		{4096000, 4, true, "B/s", "4000KiB/s"},
		{3994400, 6, false, "", "3994.4k"},
		{296641, 6, false, "", "296641"},
	} {
		if got := fioNum(c.n, c.max, c.pow2, c.unit); got != c.want {
			t.Errorf("fioNum(%d, %d, %v, %q) = %q, want %q", c.n, c.max, c.pow2, c.unit, got, c.want)
		}
	}
}

func TestMergeResults(t *testing.T) {
	errB := errors.New("clone b failed")
	a := JobResult{
		Clones: 1, Backend: "io_uring",
		Read: DirStats{
			IOBytes: 100, TotalIOs: 10, ShortIOs: 1, Runtime: time.Second,
			Clat: histOf(t, 1, 100, 200), PerSecondBytes: []int64{50, 50}, PerSecondIOs: []int64{5, 5},
		},
		Sync:    histOf(t, 1, 1000),
		Elapsed: 1500 * time.Millisecond, Runtime: time.Second, UsrCPU: 1, SysCPU: 2, Ctx: 3,
	}
	b := JobResult{
		Clones: 1, Backend: "io_uring",
		Read: DirStats{
			IOBytes: 300, TotalIOs: 30, Runtime: 2 * time.Second,
			Clat: histOf(t, 1, 300), PerSecondBytes: []int64{100, 100, 100}, PerSecondIOs: []int64{10, 10, 10},
		},
		Write:   DirStats{IOBytes: 7, TotalIOs: 1, Runtime: time.Second, Clat: histOf(t, 1, 42)},
		Elapsed: 2500 * time.Millisecond, Runtime: 2 * time.Second, UsrCPU: 2, SysCPU: 3, Ctx: 4, Err: errB,
	}
	m := MergeResults([]JobResult{a, b})
	r := m.Read
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"clones", m.Clones, 2},
		{"backend", m.Backend, "io_uring"},
		{"io bytes", r.IOBytes, int64(400)},
		{"ios", r.TotalIOs, int64(40)},
		{"short", r.ShortIOs, int64(1)},
		{"read runtime", r.Runtime, 2 * time.Second},
		{"clat n", r.Clat.TotalCount(), int64(3)},
		{"clat min", r.Clat.Min(), int64(100)},
		{"clat max", r.Clat.Max(), int64(300)},
		{"per-second bytes", r.PerSecondBytes, []int64{150, 150, 100}},
		{"per-second ios", r.PerSecondIOs, []int64{15, 15, 10}},
		{"write bytes", m.Write.IOBytes, int64(7)},
		{"write clat n", m.Write.Clat.TotalCount(), int64(1)},
		{"write slat", m.Write.Slat == nil, true},
		{"sync n", m.Sync.TotalCount(), int64(1)},
		{"elapsed", m.Elapsed, 2500 * time.Millisecond},
		{"runtime", m.Runtime, 2 * time.Second},
		{"usr", m.UsrCPU, 3.0},
		{"sys", m.SysCPU, 5.0},
		{"ctx", m.Ctx, int64(7)},
		{"err", errors.Is(m.Err, errB), true},
		// The inputs are unchanged.
		{"a clat n", a.Read.Clat.TotalCount(), int64(2)},
		{"a per-second", a.Read.PerSecondBytes, []int64{50, 50}},
		{"a sync n", a.Sync.TotalCount(), int64(1)},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if e := MergeResults(nil); e.Clones != 0 || e.Err != nil {
		t.Errorf("MergeResults(nil) = %+v, want zero", e)
	}

	// A merged group reports as one job with jobs=2.
	m.Job = &Job{Name: "g"}
	m.Err = nil
	var buf bytes.Buffer
	if err := (&Result{Jobs: []JobResult{m}}).WriteSummary(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "g: (groupid=0, jobs=2): err= 0") {
		t.Errorf("summary of a merged group:\n%s", buf.String())
	}
}

// TestReportJSONSeveralJobs checks bw_agg, each job's share of the group.
func TestReportJSONSeveralJobs(t *testing.T) {
	job := func(kib int64) JobResult {
		return JobResult{Read: DirStats{
			IOBytes: kib * 1024, TotalIOs: kib / 4, Runtime: time.Second,
			PerSecondBytes: []int64{kib * 1024}, PerSecondIOs: []int64{kib / 4},
		}}
	}
	o := (&Result{Jobs: []JobResult{job(1000), job(3000)}}).FioJSON()
	if got := []float64{o.Jobs[0].Read.BWAgg, o.Jobs[1].Read.BWAgg}; !slices.Equal(got, []float64{25, 75}) {
		t.Errorf("bw_agg = %v, want [25 75]", got)
	}
	if o.FioVersion != "weft" || o.Timestamp != 0 {
		t.Errorf("without version and start: %q %d", o.FioVersion, o.Timestamp)
	}
}

// TestReportLatPercentiles: lat_ns carries percentiles only when the job
// asked for them (lat_percentiles), as fio's JSON does; they describe the
// total latency, slat included.
func TestReportLatPercentiles(t *testing.T) {
	r := testResult(t)
	if got := r.FioJSON().Jobs[0].Read.LatNs.Percentile; len(got) != 0 {
		t.Fatalf("lat_ns percentiles without lat_percentiles: %v", got)
	}
	r.Jobs[0].Job.LatPercentiles = true
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	read := jsonMap(t, buf.Bytes())["jobs"].([]any)[0].(map[string]any)["read"].(map[string]any)
	pct, ok := read["lat_ns"].(map[string]any)["percentile"].(map[string]any)
	if !ok {
		t.Fatalf("lat_ns has no percentile map with lat_percentiles: %v", read["lat_ns"])
	}
	// Lat values are 51..1050, each twice: the median is 550.
	if got := pct["50.000000"]; got != float64(550) {
		t.Errorf("lat_ns p50 = %v, want 550", got)
	}
	var text bytes.Buffer
	if err := r.WriteSummary(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), " lat percentiles") {
		t.Errorf("summary has no lat percentiles section:\n%s", text.String())
	}
}
