package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file compares weft bench against fio: the same job on the same file,
// run alternately by both for several rounds, reduced to medians.

// FioArgs returns fio's command-line arguments for j on filename, asking for
// JSON output. With more than one clone, --group_reporting is always passed
// so that fio reports the group as one job, like MergeResults does.
func FioArgs(j *Job, filename string) []string {
	name := j.Name
	if name == "" {
		name = "weft"
	}
	numJobs := max(j.NumJobs, 1)
	args := []string{
		"--name=" + name,
		"--filename=" + filename,
		"--rw=" + j.Pattern.String(),
		"--bs=" + fioSize(max(j.BlockSize, 1)),
	}
	if j.Size > 0 {
		args = append(args, "--size="+fioSize(j.Size))
	}
	args = append(args,
		"--iodepth="+strconv.Itoa(max(j.IODepth, 1)),
		"--numjobs="+strconv.Itoa(numJobs))
	if j.Runtime > 0 {
		args = append(args, "--runtime="+fioTime(j.Runtime))
	}
	if j.TimeBased {
		args = append(args, "--time_based")
	}
	if j.RampTime > 0 {
		args = append(args, "--ramp_time="+fioTime(j.RampTime))
	}
	args = append(args, "--direct="+strconv.Itoa(fioBool(j.Direct)))
	if j.Fsync > 0 {
		args = append(args, "--fsync="+strconv.Itoa(j.Fsync))
	}
	args = append(args, "--ioengine="+j.IOEngine.String())
	if j.IOEngine == EngineIOUring {
		// fio's io_uring engine options must follow --ioengine.
		args = append(args, "--iodepth_batch_submit="+strconv.Itoa(j.IODepthBatch),
			"--iodepth_batch_complete_min="+strconv.Itoa(j.BatchCompleteMin))
		if j.BatchCompleteMax > 0 {
			args = append(args, "--iodepth_batch_complete_max="+strconv.Itoa(j.BatchCompleteMax))
		}
		for _, o := range []struct {
			on   bool
			name string
		}{{j.FixedBufs, "--fixedbufs"}, {j.RegisterFiles, "--registerfiles"}, {j.SQThreadPoll, "--sqthread_poll"}} {
			if o.on {
				args = append(args, o.name)
			}
		}
	}
	if j.Pattern == PatternRandRW || j.Pattern == PatternReadWrite {
		args = append(args, "--rwmixread="+strconv.Itoa(j.RWMixRead))
	}
	if numJobs > 1 || j.GroupReporting {
		args = append(args, "--group_reporting")
	}
	if j.LatPercentiles {
		args = append(args, "--lat_percentiles=1")
	}
	return append(args, "--output-format=json")
}

// fioTime writes d as a fio time value: whole seconds bare ("10"), else
// with a unit fio accepts ("1500ms", "250us").
func fioTime(d time.Duration) string {
	switch {
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10)
	case d%time.Millisecond == 0:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	return strconv.FormatInt(max(d.Microseconds(), 1), 10) + "us"
}

// fioSize writes a byte count as fio accepts it: "4k", "128k", "1g", or
// plain bytes when it is not a whole number of KiB. (fio's k is 1024.)
func fioSize(n int64) string {
	for _, s := range []struct {
		shift  uint
		suffix string
	}{{40, "t"}, {30, "g"}, {20, "m"}, {10, "k"}} {
		if n > 0 && n%(1<<s.shift) == 0 {
			return strconv.FormatInt(n>>s.shift, 10) + s.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func fioBool(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fioJobLabel describes a job on one line, in fio's vocabulary:
// "rw=randread bs=4k iodepth=32 numjobs=1 direct=1 ioengine=io_uring runtime=10s".
func fioJobLabel(j *Job) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rw=%s bs=%s iodepth=%d numjobs=%d direct=%d ioengine=%s",
		j.Pattern, fioSize(j.BlockSize), max(j.IODepth, 1), max(j.NumJobs, 1), fioBool(j.Direct), j.IOEngine)
	if j.Pattern == PatternRandRW || j.Pattern == PatternReadWrite {
		fmt.Fprintf(&b, " rwmixread=%d", j.RWMixRead)
	}
	if j.Size > 0 {
		fmt.Fprintf(&b, " size=%s", fioSize(j.Size))
	}
	if j.Runtime > 0 {
		fmt.Fprintf(&b, " runtime=%s", j.Runtime)
	}
	if j.TimeBased {
		b.WriteString(" time_based")
	}
	if j.RampTime > 0 {
		fmt.Fprintf(&b, " ramp_time=%s", j.RampTime)
	}
	if j.Fsync > 0 {
		fmt.Fprintf(&b, " fsync=%d", j.Fsync)
	}
	return b.String()
}

// fioTargetFile returns the file path of a "file:PATH" (or bare path)
// target; fio can only be compared on a file.
func fioTargetFile(target string) (string, error) {
	for _, scheme := range []string{"engine:", "path:", "weft://"} {
		if strings.HasPrefix(target, scheme) {
			return "", fmt.Errorf("bench: comparing with fio needs a file:PATH target, got %q", target)
		}
	}
	path := strings.TrimPrefix(target, "file:")
	if path == "" {
		return "", fmt.Errorf("bench: comparing with fio needs a file:PATH target, got %q", target)
	}
	return path, nil
}

// Compare runs one job with fio and with weft on the same target, round
// after round, alternating which goes first so that drift (device
// temperature, background writeback, caches) affects both alike: odd rounds
// run fio first, even rounds weft first.
type Compare struct {
	Job    Job
	Rounds int       // >= 1
	Out    io.Writer // one progress line per run; nil discards them
	// FioPath is the fio binary for the default RunFio; "" means "fio" on PATH.
	FioPath string
	// RunWeft runs the job with weft and returns its result as fio JSON
	// (Result.FioJSON). Required.
	RunWeft func(ctx context.Context, j Job) (*FioOutput, error)
	// RunFio runs the job with fio. nil runs FioPath with FioArgs on the file
	// of Job.Target and parses its JSON output.
	RunFio func(ctx context.Context, j Job) (*FioOutput, error)
}

// CompareDirMetrics is what a comparison looks at in one direction of one run.
// Latencies are in nanoseconds; NaN means the run did not report it.
type CompareDirMetrics struct {
	IOPS    float64
	BW      float64 // bytes/s
	ClatP50 float64
	ClatP99 float64
	LatMean float64
	// LatP50 is only known when lat_ns carries percentiles, which fio and
	// weft write with --lat_percentiles=1; NaN otherwise.
	LatP50 float64
}

// CompareMetrics is one run's metrics, or the medians over rounds.
type CompareMetrics struct {
	Read, Write CompareDirMetrics
	Elapsed     time.Duration // wall time of the run, including fio's start-up
}

// CompareRound is one round: one fio run and one weft run.
type CompareRound struct {
	Round     int    // 1-based
	First     string // "fio" or "weft": which ran first
	Fio, Weft CompareMetrics
}

// Comparison is the outcome of Compare.Run.
type Comparison struct {
	Job       Job
	Rounds    []CompareRound
	Fio, Weft CompareMetrics // per-metric medians over Rounds
}

// Run runs the comparison. It stops at the first failed run, or when ctx is
// done, and returns that error, naming the round and the side.
func (c *Compare) Run(ctx context.Context) (*Comparison, error) {
	if c.Rounds < 1 {
		return nil, fmt.Errorf("bench: compare rounds must be at least 1, got %d", c.Rounds)
	}
	if c.RunWeft == nil {
		return nil, errors.New("bench: Compare.RunWeft is nil")
	}
	runFio := c.RunFio
	if runFio == nil {
		runFio = c.execFio
	}
	out := c.Out
	if out == nil {
		out = io.Discard
	}
	sides := []struct {
		name string
		run  func(context.Context, Job) (*FioOutput, error)
	}{{"fio", runFio}, {"weft", c.RunWeft}}

	cm := &Comparison{Job: c.Job}
	for round := 1; round <= c.Rounds; round++ {
		order := []int{0, 1}
		if round%2 == 0 {
			order = []int{1, 0}
		}
		cr := CompareRound{Round: round, First: sides[order[0]].name}
		for _, s := range order {
			side := sides[s]
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("bench: compare round %d/%d %s: %w", round, c.Rounds, side.name, err)
			}
			start := time.Now()
			o, err := side.run(ctx, c.Job)
			elapsed := time.Since(start)
			if err != nil {
				return nil, fmt.Errorf("bench: compare round %d/%d %s: %w", round, c.Rounds, side.name, err)
			}
			m, err := compareMetricsOf(o)
			if err != nil {
				return nil, fmt.Errorf("bench: compare round %d/%d %s: %w", round, c.Rounds, side.name, err)
			}
			m.Elapsed = elapsed
			if s == 0 {
				cr.Fio = m
			} else {
				cr.Weft = m
			}
			fmt.Fprintf(out, "round %d/%d %-4s: %s (%.2fs)\n",
				round, c.Rounds, side.name, c.progress(&m), elapsed.Seconds())
		}
		cm.Rounds = append(cm.Rounds, cr)
	}
	cm.Fio = compareMedians(cm.Rounds, func(r *CompareRound) *CompareMetrics { return &r.Fio })
	cm.Weft = compareMedians(cm.Rounds, func(r *CompareRound) *CompareMetrics { return &r.Weft })
	return cm, nil
}

// progress is one run's metrics on one line.
func (c *Compare) progress(m *CompareMetrics) string {
	var parts []string
	for _, d := range compareDirs(&c.Job) {
		dm := d.of(m)
		parts = append(parts, fmt.Sprintf("%s IOPS=%s BW=%s clat p50=%s p99=%s", d.name,
			fioNum(int64(math.Round(dm.IOPS)), 4, false, ""), fioNum(int64(math.Round(dm.BW)), 4, true, "B/s"),
			fioNanos(dm.ClatP50), fioNanos(dm.ClatP99)))
	}
	return strings.Join(parts, "; ")
}

// execFio is the default RunFio.
func (c *Compare) execFio(ctx context.Context, j Job) (*FioOutput, error) {
	path, err := fioTargetFile(j.Target)
	if err != nil {
		return nil, err
	}
	fio := c.FioPath
	if fio == "" {
		fio = "fio"
	}
	args := FioArgs(&j, path)
	cmd := exec.CommandContext(ctx, fio, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("bench: %s %s: %w: %s", fio, strings.Join(args, " "), err, stderrTail(stderr.Bytes(), 2048))
	}
	o, err := ParseFioJSON(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("bench: output of %s %s: %w (stderr: %s)", fio, strings.Join(args, " "), err, stderrTail(stderr.Bytes(), 2048))
	}
	return o, nil
}

// tail is the last n bytes of b, trimmed, for error messages.
func stderrTail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// compareMetricsOf reduces one run's output to its metrics. Several jobs (clones
// reported without group_reporting) are combined: IOPS and bandwidth add
// up; latencies are averaged weighted by I/O count, which is exact for one
// job and an approximation for percentiles of several.
func compareMetricsOf(o *FioOutput) (CompareMetrics, error) {
	var m CompareMetrics
	if o == nil || len(o.Jobs) == 0 {
		return m, errors.New("bench: result has no jobs")
	}
	for i := range o.Jobs {
		if j := &o.Jobs[i]; j.Error != 0 {
			msg := ""
			if j.WeftError != "" {
				msg = ": " + j.WeftError
			}
			return m, fmt.Errorf("bench: job %q reported error %d%s", j.Jobname, j.Error, msg)
		}
	}
	m.Read = compareDirMetricsOf(o.Jobs, func(j *FioJob) *FioDir { return &j.Read })
	m.Write = compareDirMetricsOf(o.Jobs, func(j *FioJob) *FioDir { return &j.Write })
	return m, nil
}

func compareDirMetricsOf(jobs []FioJob, dir func(*FioJob) *FioDir) CompareDirMetrics {
	var dm CompareDirMetrics
	var clatP50, clatP99, latMean, latP50 compareWeighted
	for i := range jobs {
		d := dir(&jobs[i])
		dm.IOPS += d.IOPS
		dm.BW += float64(d.BWBytes)
		w := float64(d.TotalIOs)
		clatP50.add(comparePct(d.ClatNs.Percentile, 50), w)
		clatP99.add(comparePct(d.ClatNs.Percentile, 99), w)
		latP50.add(comparePct(d.LatNs.Percentile, 50), w)
		if d.LatNs.N > 0 {
			latMean.add(d.LatNs.Mean, float64(d.LatNs.N))
		}
	}
	dm.ClatP50, dm.ClatP99 = clatP50.value(), clatP99.value()
	dm.LatMean, dm.LatP50 = latMean.value(), latP50.value()
	return dm
}

// comparePct is percentile p in ns, or NaN when absent.
func comparePct(m FioPercentiles, p float64) float64 {
	if v, ok := m[FioPercentileKey(p)]; ok {
		return float64(v)
	}
	return math.NaN()
}

// compareWeighted ignores NaN values; its value is NaN when it saw none.
type compareWeighted struct{ sum, weight float64 }

func (w *compareWeighted) add(v, weight float64) {
	if math.IsNaN(v) {
		return
	}
	if weight <= 0 {
		weight = 1e-9 // a value without I/O count still counts, barely
	}
	w.sum += v * weight
	w.weight += weight
}

func (w *compareWeighted) value() float64 {
	if w.weight == 0 {
		return math.NaN()
	}
	return w.sum / w.weight
}

// median is the median of the non-NaN values of vs (the mean of the middle
// two for an even count), NaN when there are none. vs is not modified.
func compareMedian(vs []float64) float64 {
	s := make([]float64, 0, len(vs))
	for _, v := range vs {
		if !math.IsNaN(v) {
			s = append(s, v)
		}
	}
	if len(s) == 0 {
		return math.NaN()
	}
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func compareMedians(rounds []CompareRound, side func(*CompareRound) *CompareMetrics) CompareMetrics {
	med := func(f func(*CompareMetrics) float64) float64 {
		vs := make([]float64, len(rounds))
		for i := range rounds {
			vs[i] = f(side(&rounds[i]))
		}
		return compareMedian(vs)
	}
	var m CompareMetrics
	for _, d := range []func(*CompareMetrics) *CompareDirMetrics{
		func(m *CompareMetrics) *CompareDirMetrics { return &m.Read },
		func(m *CompareMetrics) *CompareDirMetrics { return &m.Write },
	} {
		out := d(&m)
		out.IOPS = med(func(m *CompareMetrics) float64 { return d(m).IOPS })
		out.BW = med(func(m *CompareMetrics) float64 { return d(m).BW })
		out.ClatP50 = med(func(m *CompareMetrics) float64 { return d(m).ClatP50 })
		out.ClatP99 = med(func(m *CompareMetrics) float64 { return d(m).ClatP99 })
		out.LatMean = med(func(m *CompareMetrics) float64 { return d(m).LatMean })
		out.LatP50 = med(func(m *CompareMetrics) float64 { return d(m).LatP50 })
	}
	m.Elapsed = time.Duration(med(func(m *CompareMetrics) float64 { return float64(m.Elapsed) }))
	return m
}

// compareDir is a direction the job does I/O in.
type compareDir struct {
	name string
	of   func(*CompareMetrics) *CompareDirMetrics
}

func compareDirs(j *Job) []compareDir {
	var dirs []compareDir
	if j.ReadPercent() > 0 {
		dirs = append(dirs, compareDir{"read", func(m *CompareMetrics) *CompareDirMetrics { return &m.Read }})
	}
	if j.ReadPercent() < 100 {
		dirs = append(dirs, compareDir{"write", func(m *CompareMetrics) *CompareDirMetrics { return &m.Write }})
	}
	return dirs
}

// compareMetric is one row of the table: a label and how to get the value
// from a direction's metrics, already in the label's unit.
type compareMetric struct {
	label string
	value func(*CompareDirMetrics) float64
	// optional rows are left out when either median is unknown.
	optional bool
}

var compareMetrics = []compareMetric{
	{label: "IOPS", value: func(d *CompareDirMetrics) float64 { return d.IOPS }},
	{label: "MiB/s", value: func(d *CompareDirMetrics) float64 { return d.BW / (1 << 20) }},
	{label: "clat p50 (µs)", value: func(d *CompareDirMetrics) float64 { return d.ClatP50 / 1e3 }},
	{label: "clat p99 (µs)", value: func(d *CompareDirMetrics) float64 { return d.ClatP99 / 1e3 }},
	{label: "lat mean (µs)", value: func(d *CompareDirMetrics) float64 { return d.LatMean / 1e3 }},
	{label: "lat p50 (µs)", value: func(d *CompareDirMetrics) float64 { return d.LatP50 / 1e3 }, optional: true},
}

// WriteTable writes the comparison as markdown: the job, a table of
// medians with the weft/fio ratio, and every round's raw values.
func (cm *Comparison) WriteTable(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "job: %s, %d rounds", fioJobLabel(&cm.Job), len(cm.Rounds))
	if cm.Job.Target != "" {
		fmt.Fprintf(&b, ", target %s", cm.Job.Target)
	}
	b.WriteString("\n\n| metric | fio (median) | weft (median) | weft/fio |\n|---|---:|---:|---:|\n")
	type row struct {
		label string
		dir   compareDir
		m     compareMetric
	}
	var rows []row
	for _, d := range compareDirs(&cm.Job) {
		for _, m := range compareMetrics {
			f, wv := m.value(d.of(&cm.Fio)), m.value(d.of(&cm.Weft))
			if m.optional && (math.IsNaN(f) || math.IsNaN(wv)) {
				continue
			}
			rows = append(rows, row{d.name + " " + m.label, d, m})
			fmt.Fprintf(&b, "| %s %s | %s | %s | %s |\n", d.name, m.label, compareNum(f), compareNum(wv), compareRatio(wv, f))
		}
	}
	if len(cm.Rounds) > 0 {
		b.WriteString("\nper round, fio/weft (odd rounds ran fio first, even rounds weft first):\n")
		for _, r := range rows {
			fmt.Fprintf(&b, "- %s:", r.label)
			for i := range cm.Rounds {
				cr := &cm.Rounds[i]
				sep := ","
				if i == 0 {
					sep = ""
				}
				fmt.Fprintf(&b, "%s r%d %s/%s", sep, cr.Round,
					compareNum(r.m.value(r.dir.of(&cr.Fio))), compareNum(r.m.value(r.dir.of(&cr.Weft))))
			}
			b.WriteString("\n")
		}
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("bench: writing comparison: %w", err)
	}
	return nil
}

// compareNum formats a table value with at least three significant digits:
// "4.49", "63.7", "1050".
func compareNum(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "n/a"
	case a < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// ratio is num/den with two decimals, "n/a" when undefined.
func compareRatio(num, den float64) string {
	r := num / den
	if den == 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(r, 'f', 2, 64)
}
