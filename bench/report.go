package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// This file renders a Result the way fio does: as fio 3.x JSON
// (--output-format=json) so that existing fio tooling reads it, and as
// fio's human summary. It also reads fio's JSON back, for the comparison
// against fio in compare.go.
//
// Units follow fio's JSON exactly: *_ns latencies in nanoseconds, "runtime"
// and "job_runtime" in milliseconds, "elapsed" in seconds, "bw", "bw_min",
// "bw_max", "bw_mean" and "bw_dev" in KiB/s, "bw_bytes" in bytes/s.

// FioOutput is the top level of fio's JSON output. The JSON key names are
// fio's and must not change: external tools read them.
type FioOutput struct {
	FioVersion  string   `json:"fio version"`
	Timestamp   int64    `json:"timestamp"`    // Unix seconds at the start
	TimestampMs int64    `json:"timestamp_ms"` // Unix milliseconds at the start
	Time        string   `json:"time"`         // ctime(3) format, e.g. "Wed Nov 25 16:16:55 2026"
	Jobs        []FioJob `json:"jobs"`
	// DiskUtil is fio's per-device utilisation. weft bench does not gather
	// disk statistics and writes an empty list (fio itself omits the key
	// when it has none); it is kept so fio's output parses completely.
	DiskUtil []FioDiskUtil `json:"disk_util"`
}

// FioJob is one entry of fio's "jobs": one job, or one group of clones
// under group_reporting.
type FioJob struct {
	Jobname    string            `json:"jobname"`
	Groupid    int               `json:"groupid"`
	Error      int               `json:"error"` // 0, or nonzero when the job failed
	Eta        int64             `json:"eta"`
	Elapsed    int64             `json:"elapsed"` // seconds, wall time including ramp
	JobOptions map[string]string `json:"job options"`
	Read       FioDir            `json:"read"`
	Write      FioDir            `json:"write"`
	Trim       FioDir            `json:"trim"`
	Sync       FioSync           `json:"sync"`
	JobRuntime int64             `json:"job_runtime"` // milliseconds
	UsrCPU     float64           `json:"usr_cpu"`     // percent
	SysCPU     float64           `json:"sys_cpu"`     // percent
	Ctx        int64             `json:"ctx"`
	Majf       int64             `json:"majf"`
	Minf       int64             `json:"minf"`
	// WeftBackend and WeftError are weft's own: the I/O backend that ran the
	// job (io_uring, or the thread-pool fallback) and, when Error is nonzero,
	// what went wrong. fio never writes them.
	WeftBackend string `json:"weft_backend,omitempty"`
	WeftError   string `json:"weft_error,omitempty"`
	// WeftEngine is what an engine: target's engine did during the run.
	WeftEngine *EngineActivity `json:"weft_engine,omitempty"`
}

// FioDir is one direction (read, write or trim) of a FioJob.
type FioDir struct {
	IOBytes     int64   `json:"io_bytes"`
	IOKBytes    int64   `json:"io_kbytes"`
	BWBytes     int64   `json:"bw_bytes"` // bytes/s
	BW          int64   `json:"bw"`       // KiB/s
	IOPS        float64 `json:"iops"`
	Runtime     int64   `json:"runtime"` // milliseconds
	TotalIOs    int64   `json:"total_ios"`
	ShortIOs    int64   `json:"short_ios"`
	DropIOs     int64   `json:"drop_ios"`
	SlatNs      FioLat  `json:"slat_ns"`
	ClatNs      FioLat  `json:"clat_ns"`
	LatNs       FioLat  `json:"lat_ns"`
	BWMin       int64   `json:"bw_min"` // KiB/s, over the per-second samples
	BWMax       int64   `json:"bw_max"`
	BWAgg       float64 `json:"bw_agg"` // percent of the group's bandwidth
	BWMean      float64 `json:"bw_mean"`
	BWDev       float64 `json:"bw_dev"`
	BWSamples   int64   `json:"bw_samples"`
	IOPSMin     int64   `json:"iops_min"`
	IOPSMax     int64   `json:"iops_max"`
	IOPSMean    float64 `json:"iops_mean"`
	IOPSStddev  float64 `json:"iops_stddev"`
	IOPSSamples int64   `json:"iops_samples"`
}

// FioLat is a latency distribution in nanoseconds. Percentile is present
// only when N > 0 and only where fio reports it (clat_ns, sync's lat_ns, and
// lat_ns with lat_percentiles).
type FioLat struct {
	Min        int64          `json:"min"`
	Max        int64          `json:"max"`
	Mean       float64        `json:"mean"`
	Stddev     float64        `json:"stddev"`
	N          int64          `json:"N"`
	Percentile FioPercentiles `json:"percentile,omitempty"`
}

// FioPercentiles maps fio's percentile keys ("50.000000", "99.900000", ...)
// to nanoseconds. It marshals in ascending percentile order, as fio prints.
type FioPercentiles map[string]int64

// FioSync is fio's fsync statistics.
type FioSync struct {
	TotalIOs int64  `json:"total_ios"`
	LatNs    FioLat `json:"lat_ns"`
}

// FioDiskUtil is one entry of fio's "disk_util".
type FioDiskUtil struct {
	Name        string  `json:"name"`
	ReadIOs     int64   `json:"read_ios"`
	WriteIOs    int64   `json:"write_ios"`
	ReadMerges  int64   `json:"read_merges"`
	WriteMerges int64   `json:"write_merges"`
	ReadTicks   int64   `json:"read_ticks"`
	WriteTicks  int64   `json:"write_ticks"`
	InQueue     int64   `json:"in_queue"`
	Util        float64 `json:"util"`
}

// fioPercentileList is the percentiles fio reports by default, in order.
var fioPercentileList = [...]float64{
	1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99,
}

// FioPercentileKey is fio's JSON key for percentile p, e.g. "99.900000".
func FioPercentileKey(p float64) string {
	return strconv.FormatFloat(p, 'f', 6, 64)
}

// MarshalJSON writes the percentiles in ascending numeric order.
func (p FioPercentiles) MarshalJSON() ([]byte, error) {
	if p == nil {
		return []byte("null"), nil
	}
	type kv struct {
		key string
		pct float64
	}
	kvs := make([]kv, 0, len(p))
	for k := range p {
		f, err := strconv.ParseFloat(k, 64)
		if err != nil {
			f = math.Inf(1) // not a number: sort after the numeric keys
		}
		kvs = append(kvs, kv{k, f})
	}
	sort.Slice(kvs, func(i, j int) bool {
		if kvs[i].pct != kvs[j].pct {
			return kvs[i].pct < kvs[j].pct
		}
		return kvs[i].key < kvs[j].key
	})
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range kvs {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(e.key)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(p[e.key], 10))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// FioJSON converts r to fio's JSON structure: one FioJob per JobResult, in
// order. Latencies come from the HDR histograms (so percentiles are within
// the histograms' 3 significant digits); bw_* and iops_* come from the
// per-second samples. The result shares nothing with r.
func (r *Result) FioJSON() *FioOutput {
	out := &FioOutput{
		FioVersion: "weft",
		Jobs:       make([]FioJob, 0, len(r.Jobs)),
		DiskUtil:   []FioDiskUtil{},
	}
	if r.Version != "" {
		out.FioVersion = "weft-" + r.Version
	}
	if !r.Start.IsZero() {
		out.Timestamp = r.Start.Unix()
		out.TimestampMs = r.Start.UnixMilli()
		out.Time = r.Start.Format(time.ANSIC)
	}
	// A group's aggregate bandwidth, in KiB/s, for bw_agg: what share of the
	// group each job's mean per-second bandwidth is.
	var aggKiB [2]float64
	for i := range r.Jobs {
		for d, ds := range []*DirStats{&r.Jobs[i].Read, &r.Jobs[i].Write} {
			if ms := ds.Runtime.Milliseconds(); ms > 0 {
				aggKiB[d] += float64(ds.IOBytes) * 1000 / float64(ms) / 1024
			}
		}
	}
	for i := range r.Jobs {
		jr := &r.Jobs[i]
		latPct := jr.Job != nil && jr.Job.LatPercentiles
		fj := FioJob{
			JobOptions:  map[string]string{},
			Read:        fioDirOf(&jr.Read, latPct),
			Write:       fioDirOf(&jr.Write, latPct),
			JobRuntime:  jr.Runtime.Milliseconds(),
			UsrCPU:      jr.UsrCPU,
			SysCPU:      jr.SysCPU,
			Ctx:         jr.Ctx,
			WeftBackend: jr.Backend,
			WeftEngine:  jr.Engine,
			Elapsed:     int64(math.Ceil(jr.Elapsed.Seconds())),
		}
		if jr.Job != nil {
			fj.Jobname = jr.Job.Name
			for _, o := range jr.Job.Options {
				fj.JobOptions[o.Name] = o.Value
				if o.Name == "weft_key_secret" {
					fj.JobOptions[o.Name] = "(redacted)" // keep the key out of saved results
				}
			}
		}
		if jr.Err != nil {
			fj.Error = 1
			fj.WeftError = jr.Err.Error()
		}
		for d, fd := range []*FioDir{&fj.Read, &fj.Write} {
			switch {
			case fd.BWSamples == 0:
			case len(r.Jobs) == 1:
				fd.BWAgg = 100
			case aggKiB[d] > 0:
				fd.BWAgg = math.Min(100, fd.BWMean*100/aggKiB[d])
			}
		}
		if jr.Sync != nil && jr.Sync.TotalCount() > 0 {
			fj.Sync = FioSync{TotalIOs: jr.Sync.TotalCount(), LatNs: fioLatOf(jr.Sync, true)}
		}
		out.Jobs = append(out.Jobs, fj)
	}
	return out
}

// fioDirOf converts one direction; bw_agg is left for the caller. With
// latPct (lat_percentiles), lat_ns carries percentiles as clat_ns does.
func fioDirOf(d *DirStats, latPct bool) FioDir {
	fd := FioDir{
		IOBytes:  d.IOBytes,
		IOKBytes: d.IOBytes / 1024,
		Runtime:  d.Runtime.Milliseconds(),
		TotalIOs: d.TotalIOs,
		ShortIOs: d.ShortIOs,
		SlatNs:   fioLatOf(d.Slat, false),
		ClatNs:   fioLatOf(d.Clat, true),
		LatNs:    fioLatOf(d.Lat, latPct),
	}
	if fd.Runtime > 0 {
		// As fio: rates over the runtime in whole milliseconds.
		fd.BWBytes = int64(float64(d.IOBytes) * 1000 / float64(fd.Runtime))
		fd.BW = fd.BWBytes / 1024
		fd.IOPS = float64(d.TotalIOs) * 1000 / float64(fd.Runtime)
	}
	bw := fioSampleStats(d.PerSecondBytes, 1024)
	fd.BWMin, fd.BWMax, fd.BWMean, fd.BWDev, fd.BWSamples = bw.min, bw.max, bw.mean, bw.dev, bw.n
	iops := fioSampleStats(d.PerSecondIOs, 1)
	fd.IOPSMin, fd.IOPSMax, fd.IOPSMean, fd.IOPSStddev, fd.IOPSSamples = iops.min, iops.max, iops.mean, iops.dev, iops.n
	return fd
}

// fioLatOf summarises a latency histogram (nanoseconds). An absent or empty
// histogram gives the zero FioLat, as fio writes for a direction without I/O.
func fioLatOf(h *hdrhistogram.Histogram, percentiles bool) FioLat {
	if h == nil || h.TotalCount() == 0 {
		return FioLat{}
	}
	l := FioLat{
		Min:    h.Min(),
		Max:    h.Max(),
		Mean:   h.Mean(),
		Stddev: h.StdDev(),
		N:      h.TotalCount(),
	}
	if percentiles {
		vals := h.ValueAtPercentilesSlice(fioPercentileList[:])
		l.Percentile = make(FioPercentiles, len(vals))
		for i, p := range fioPercentileList {
			l.Percentile[FioPercentileKey(p)] = vals[i]
		}
	}
	return l
}

type fioSamples struct {
	min, max  int64
	mean, dev float64
	n         int64
}

// fioSampleStats reduces per-second samples, each divided by div (integer
// division, like fio's KiB/s samples), to min, max, mean and the sample
// standard deviation fio reports (n-1 in the denominator).
func fioSampleStats(samples []int64, div int64) fioSamples {
	var s fioSamples
	if len(samples) == 0 {
		return s
	}
	s.n = int64(len(samples))
	s.min = math.MaxInt64
	var sum float64
	for _, v := range samples {
		v /= div
		s.min = min(s.min, v)
		s.max = max(s.max, v)
		sum += float64(v)
	}
	s.mean = sum / float64(s.n)
	if s.n > 1 {
		var sq float64
		for _, v := range samples {
			d := float64(v/div) - s.mean
			sq += d * d
		}
		s.dev = math.Sqrt(sq / float64(s.n-1))
	}
	return s
}

// WriteJSON writes r as fio 3.x JSON (see FioJSON), indented, followed by a
// newline. ParseFioJSON reads it back.
func (r *Result) WriteJSON(w io.Writer) error {
	return writeFioJSON(w, r.FioJSON())
}

func writeFioJSON(w io.Writer, out *FioOutput) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("bench: writing JSON: %w", err)
	}
	return nil
}

// ParseFioJSON reads fio's --output-format=json output. fio may print lines
// that are not JSON before the document ("note: both iodepth >= 1 and
// synchronous I/O engine are selected...", "fio: ..."); everything before
// the first line that starts with '{' is skipped, and anything after the
// document is ignored.
func ParseFioJSON(data []byte) (*FioOutput, error) {
	start := -1
	for off := 0; off < len(data); {
		line := data[off:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i+1]
		}
		if t := bytes.TrimLeft(line, " \t\r"); len(t) > 0 && t[0] == '{' {
			start = off + len(line) - len(t)
			break
		}
		off += len(line)
	}
	if start < 0 {
		return nil, fmt.Errorf("bench: no fio JSON in %d bytes of output (no line starts with '{'): %q",
			len(data), reportClip(data, 200))
	}
	var out FioOutput
	dec := json.NewDecoder(bytes.NewReader(data[start:]))
	if err := dec.Decode(&out); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return nil, fmt.Errorf("bench: fio JSON starting at byte %d: at byte %d: %w", start, start+int(syn.Offset), err)
		case errors.As(err, &typ):
			return nil, fmt.Errorf("bench: fio JSON starting at byte %d: field %q: %w", start, typ.Field, err)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, fmt.Errorf("bench: fio JSON starting at byte %d is truncated: %w", start, err)
		}
		return nil, fmt.Errorf("bench: fio JSON starting at byte %d: %w", start, err)
	}
	if out.FioVersion == "" {
		return nil, fmt.Errorf("bench: JSON starting at byte %d is not fio output: it has no \"fio version\"", start)
	}
	return &out, nil
}

func reportClip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// WriteSummary writes r in the shape of fio's human output: r.Notes (and a
// blank line), then per job its header, per direction with I/O the IOPS
// and bandwidth, slat/clat/lat lines, clat percentiles, one line with clat
// min/avg/p50/p90/p99/p99.9/max, bandwidth and IOPS per-second statistics;
// then fsync latency, CPU, and a "Run status" footer over all jobs.
func (r *Result) WriteSummary(w io.Writer) error {
	o := r.FioJSON()
	bw := bufio.NewWriter(w)
	for _, n := range r.Notes {
		bw.WriteString(n)
		bw.WriteString("\n")
	}
	if len(r.Notes) > 0 {
		bw.WriteString("\n")
	}
	for i := range o.Jobs {
		if i > 0 {
			bw.WriteString("\n")
		}
		clones := r.Jobs[i].Clones
		writeFioJobSummary(bw, &o.Jobs[i], clones)
	}
	bw.WriteString("\n")
	writeFioRunStatus(bw, o.Jobs)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("bench: writing summary: %w", err)
	}
	return nil
}

// writeFioJobSummary writes one job's block. clones < 1 counts as 1.
func writeFioJobSummary(w *bufio.Writer, j *FioJob, clones int) {
	clones = max(clones, 1)
	fmt.Fprintf(w, "%s: (groupid=%d, jobs=%d): err=%2d", j.Jobname, j.Groupid, clones, j.Error)
	if j.WeftError != "" {
		fmt.Fprintf(w, " (%s)", j.WeftError)
	}
	if j.WeftBackend != "" {
		fmt.Fprintf(w, ": backend=%s", j.WeftBackend)
	}
	w.WriteString("\n")
	if e := j.WeftEngine; e != nil {
		fmt.Fprintf(w, "  engine: group commits=%d (%.2f records each), device reads=%d, submits=%d; cleaner: %d segments, %s relocated in %d reads; %s free\n",
			e.Batches, e.RecordsPerBatch, e.DeviceReads, e.DeviceSubmits, e.CleanerSegments, fmtBytes(int64(e.CleanerBytes)), e.CleanerReads, fmtBytes(int64(e.FreeBytes)))
	}
	for _, d := range []struct {
		name string
		dir  *FioDir
	}{{"read", &j.Read}, {"write", &j.Write}, {"trim", &j.Trim}} {
		if d.dir.TotalIOs == 0 && d.dir.IOBytes == 0 {
			continue
		}
		writeFioDirSummary(w, d.name, d.dir)
	}
	if j.Sync.TotalIOs > 0 {
		w.WriteString("  fsync/fdatasync/sync_file_range:\n")
		writeFioLat(w, "sync", &j.Sync.LatNs)
		writeFioPercentiles(w, "sync", j.Sync.LatNs.Percentile)
	}
	fmt.Fprintf(w, "  cpu          : usr=%.2f%%, sys=%.2f%%, ctx=%d\n", j.UsrCPU, j.SysCPU, j.Ctx)
}

func writeFioDirSummary(w *bufio.Writer, name string, d *FioDir) {
	var iops int64
	if d.Runtime > 0 {
		iops = d.TotalIOs * 1000 / d.Runtime // integer, as fio
	}
	fmt.Fprintf(w, "  %s: IOPS=%s, BW=%s (%s)(%s/%dmsec)\n", name,
		fioNum(iops, 4, false, ""), fioNum(d.BWBytes, 4, true, "B/s"),
		fioNum(d.BWBytes, 4, false, "B/s"), fioNum(d.IOBytes, 4, true, "B"), d.Runtime)
	writeFioLat(w, "slat", &d.SlatNs)
	writeFioLat(w, "clat", &d.ClatNs)
	writeFioLat(w, " lat", &d.LatNs)
	writeFioPercentiles(w, "clat", d.ClatNs.Percentile)
	writeFioPercentiles(w, " lat", d.LatNs.Percentile)
	if c := &d.ClatNs; c.N > 0 {
		p := c.Percentile
		fmt.Fprintf(w, "    clat: min=%s avg=%s p50=%s p90=%s p99=%s p99.9=%s max=%s\n",
			fioNanos(float64(c.Min)), fioNanos(c.Mean),
			pctNanos(p, 50), pctNanos(p, 90), pctNanos(p, 99), pctNanos(p, 99.9),
			fioNanos(float64(c.Max)))
	}
	if d.BWSamples > 0 {
		unit := "KiB"
		minv, maxv, mean, dev := float64(d.BWMin), float64(d.BWMax), d.BWMean, d.BWDev
		if mean > 1024*1024 {
			unit = "MiB"
			minv, maxv, mean, dev = minv/1024, maxv/1024, mean/1024, dev/1024
		}
		fmt.Fprintf(w, "   bw (%5s/s): min=%5d, max=%5d, per=%3.2f%%, avg=%5.02f, stdev=%5.02f, samples=%d\n",
			unit, int64(minv), int64(maxv), d.BWAgg, mean, dev, d.BWSamples)
	}
	if d.IOPSSamples > 0 {
		fmt.Fprintf(w, "   iops        : min=%5d, max=%5d, avg=%5.02f, stdev=%5.02f, samples=%d\n",
			d.IOPSMin, d.IOPSMax, d.IOPSMean, d.IOPSStddev, d.IOPSSamples)
	}
}

// writeFioLat writes fio's "    clat (usec): min=.., max=.., avg=.., stdev=.."
// choosing the unit as fio's display_lat does.
func writeFioLat(w *bufio.Writer, name string, l *FioLat) {
	if l.N == 0 {
		return
	}
	minv, maxv, mean, dev := l.Min, l.Max, l.Mean, l.Stddev
	unit := "nsec"
	switch {
	case minv > 1_000_000 && mean > 1e6 && dev > 1e6:
		unit = "msec"
		minv, maxv, mean, dev = minv/1_000_000, maxv/1_000_000, mean/1e6, dev/1e6
	case minv > 1000 && mean > 1e3 && dev > 1e3:
		unit = "usec"
		minv, maxv, mean, dev = minv/1000, maxv/1000, mean/1e3, dev/1e3
	}
	fmt.Fprintf(w, "    %s (%s): min=%s, max=%s, avg=%5.02f, stdev=%5.02f\n",
		name, unit, fioNum(minv, 6, false, ""), fioNum(maxv, 6, false, ""), mean, dev)
}

// writeFioPercentiles writes fio's percentile block, four to a line, in the
// unit fio would choose for the range of values.
func writeFioPercentiles(w *bufio.Writer, name string, p FioPercentiles) {
	if len(p) == 0 {
		return
	}
	type pv struct {
		pct float64
		v   int64
	}
	var list []pv
	for k, v := range p {
		f, err := strconv.ParseFloat(k, 64)
		if err != nil {
			continue
		}
		list = append(list, pv{f, v})
	}
	if len(list) == 0 {
		return
	}
	sort.Slice(list, func(i, j int) bool { return list[i].pct < list[j].pct })
	minv, maxv := list[0].v, list[0].v
	for _, e := range list {
		minv, maxv = min(minv, e.v), max(maxv, e.v)
	}
	unit, scale := "nsec", 0
	switch {
	case minv > 2_000_000 && maxv > 99_999_999:
		unit, scale = "msec", 2
	case minv > 2000 && maxv > 99_999:
		unit, scale = "usec", 1
	}
	fmt.Fprintf(w, "    %s percentiles (%s):\n     |", name, unit)
	for i, e := range list {
		if i > 0 && i%4 == 0 {
			w.WriteString("     |")
		}
		v := e.v
		for range scale {
			v = (v + 999) / 1000 // fio rounds up
		}
		sep := ","
		if i == len(list)-1 {
			sep = "\n"
		}
		fmt.Fprintf(w, " %5.2fth=[%5d]%s", e.pct, v, sep)
		if i != len(list)-1 && i%4 == 3 {
			w.WriteString("\n")
		}
	}
}

// writeFioRunStatus writes fio's "Run status" footer for one group of jobs.
func writeFioRunStatus(w *bufio.Writer, jobs []FioJob) {
	w.WriteString("Run status group 0 (all jobs):\n")
	for _, name := range []string{"READ", "WRITE"} {
		var ioBytes, runMin, runMax, bwMin, bwMax int64
		seen := false
		for i := range jobs {
			d := &jobs[i].Read
			if name == "WRITE" {
				d = &jobs[i].Write
			}
			if d.Runtime == 0 {
				continue
			}
			if !seen {
				runMin, bwMin = d.Runtime, d.BWBytes
				seen = true
			}
			ioBytes += d.IOBytes
			runMin, runMax = min(runMin, d.Runtime), max(runMax, d.Runtime)
			bwMin, bwMax = min(bwMin, d.BWBytes), max(bwMax, d.BWBytes)
		}
		if !seen || ioBytes == 0 {
			continue
		}
		agg := int64(float64(ioBytes) * 1000 / float64(runMax))
		fmt.Fprintf(w, "%7s: bw=%s (%s), %s-%s (%s-%s), io=%s (%s), run=%d-%dmsec\n", name,
			fioNum(agg, 4, true, "B/s"), fioNum(agg, 4, false, "B/s"),
			fioNum(bwMin, 4, true, "B/s"), fioNum(bwMax, 4, true, "B/s"),
			fioNum(bwMin, 4, false, "B/s"), fioNum(bwMax, 4, false, "B/s"),
			fioNum(ioBytes, 4, true, "B"), fioNum(ioBytes, 4, false, "B"),
			runMin, runMax)
	}
}

// fioNum formats n as fio's num2str does: at most maxDigits digits before
// the unit prefix (k, M, G... or Ki, Mi, Gi... when pow2), with decimals
// when there is room for them. unit follows the prefix ("B", "B/s" or "").
// Examples: fioNum(52518, 4, false, "") = "52.5k";
// fioNum(215115700, 4, true, "B/s") = "205MiB/s".
func fioNum(n int64, maxDigits int, pow2 bool, unit string) string {
	prefixes := []string{"", "k", "M", "G", "T", "P", "E"}
	thousand := uint64(1000)
	if pow2 {
		prefixes = []string{"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}
		thousand = 1024
	}
	neg := ""
	u := uint64(n)
	if n < 0 {
		neg, u = "-", uint64(-n)
	}
	idx, divided := 0, false
	var modulo uint64
	for idx < len(prefixes)-1 && len(strconv.FormatUint(u, 10)) > maxDigits {
		modulo = u % thousand
		u /= thousand
		idx++
		divided = true
	}
	if !divided {
		return neg + strconv.FormatUint(u, 10) + prefixes[idx] + unit
	}
	decimals := maxDigits - len(strconv.FormatUint(u, 10)) - 1
	if decimals < 1 {
		if modulo >= thousand/2 {
			u++
		}
		return neg + strconv.FormatUint(u, 10) + prefixes[idx] + unit
	}
	v := float64(u) + float64(modulo)/float64(thousand)
	return neg + strconv.FormatFloat(v, 'f', decimals, 64) + prefixes[idx] + unit
}

// fioNanos formats a latency in nanoseconds with three significant digits
// and a unit: "271ns", "63.7us", "3.99ms", "1.20s".
func fioNanos(ns float64) string {
	if math.IsNaN(ns) {
		return "n/a"
	}
	units := []struct {
		div  float64
		name string
	}{{1e9, "s"}, {1e6, "ms"}, {1e3, "us"}}
	for _, u := range units {
		if ns >= u.div {
			return reportSig3(ns/u.div) + u.name
		}
	}
	return strconv.FormatFloat(math.Round(ns), 'f', 0, 64) + "ns"
}

// pctNanos formats percentile p of m, or "n/a" when m lacks it.
func pctNanos(m FioPercentiles, p float64) string {
	v, ok := m[FioPercentileKey(p)]
	if !ok {
		return "n/a"
	}
	return fioNanos(float64(v))
}

// reportSig3 formats v (>= 1) with three significant digits.
func reportSig3(v float64) string {
	switch {
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// MergeResults merges job clones into one result, as fio's group_reporting
// does: histograms merged, bytes, I/Os and per-second samples summed
// (element by element, so the samples are the group's per-second totals),
// runtimes and elapsed time the longest, CPU use summed, errors joined.
// Job and Backend come from the first result. Clones is the number of clones
// merged (a result that already merged k clones counts as k). The inputs are
// not modified.
func MergeResults(jobs []JobResult) JobResult {
	var m JobResult
	if len(jobs) == 0 {
		return m
	}
	m.Job = jobs[0].Job
	var errs []error
	for i := range jobs {
		j := &jobs[i]
		m.Clones += max(j.Clones, 1)
		if m.Backend == "" {
			m.Backend = j.Backend
		}
		if m.Engine == nil {
			m.Engine = j.Engine // the clones of a job share one target
		}
		m.Elapsed = max(m.Elapsed, j.Elapsed)
		m.Runtime = max(m.Runtime, j.Runtime)
		m.UsrCPU += j.UsrCPU
		m.SysCPU += j.SysCPU
		m.Ctx += j.Ctx
		m.Sync = mergeHistogram(m.Sync, j.Sync)
		mergeDirStats(&m.Read, &j.Read)
		mergeDirStats(&m.Write, &j.Write)
		if j.Err != nil {
			errs = append(errs, j.Err)
		}
	}
	m.Err = errors.Join(errs...)
	return m
}

func mergeDirStats(dst, src *DirStats) {
	dst.IOBytes += src.IOBytes
	dst.TotalIOs += src.TotalIOs
	dst.ShortIOs += src.ShortIOs
	dst.Runtime = max(dst.Runtime, src.Runtime)
	dst.Slat = mergeHistogram(dst.Slat, src.Slat)
	dst.Clat = mergeHistogram(dst.Clat, src.Clat)
	dst.Lat = mergeHistogram(dst.Lat, src.Lat)
	dst.PerSecondBytes = mergeSamples(dst.PerSecondBytes, src.PerSecondBytes)
	dst.PerSecondIOs = mergeSamples(dst.PerSecondIOs, src.PerSecondIOs)
}

// mergeHistogram adds src into dst, allocating dst on first use so that the
// sources are never modified. It returns dst.
func mergeHistogram(dst, src *hdrhistogram.Histogram) *hdrhistogram.Histogram {
	if src == nil {
		return dst
	}
	if dst == nil {
		dst = newLatencyHistogram()
	}
	if dropped := dst.Merge(src); dropped != 0 {
		// Invariant: every latency histogram has newLatencyHistogram's range.
		panic(fmt.Sprintf("bench: merging latency histograms dropped %d of %d values", dropped, src.TotalCount()))
	}
	return dst
}

// mergeSamples adds src into dst element by element; the result is as long as
// the longer of the two. dst may be reused; src is not modified.
func mergeSamples(dst, src []int64) []int64 {
	if len(src) > len(dst) {
		dst = append(dst, make([]int64, len(src)-len(dst))...)
	}
	for i, v := range src {
		dst[i] += v
	}
	return dst
}
