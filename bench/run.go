package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/ioring"
)

// RunOptions control Run.
type RunOptions struct {
	// Progress, when set, receives a live one-line display (carriage
	// return, no newline) every ProgressInterval while jobs run, and
	// messages such as file layout. Nil: silent.
	Progress         io.Writer
	ProgressInterval time.Duration // default 1s
	Version          string
	// Log, when set, receives the warnings and errors the engine of an
	// engine: target logs (checkpoint or cleaner trouble). Nil: discarded.
	Log io.Writer
}

// target is a resolved target shared by every job naming it.
type target struct {
	scheme   string // schemeFile or schemeEngine
	path     string
	created  bool // did not exist (or, for engine:, was empty): Prepare creates it
	blockDev bool
	size     int64         // current size (bytes)
	need     int64         // bytes the jobs touch
	dioOff   uint32        // O_DIRECT offset and length alignment (buffers are page aligned)
	eng      *engineTarget // engine: targets only
	wft      *weftTarget   // weft:// targets only
}

// Preflight resolves and checks every job's target without writing
// anything: the path can be opened as needed, a missing file has a size
// to be created at, the jobs fit in a block device, and direct=1 block
// sizes meet the device's O_DIRECT alignment; for engine: targets, see
// engineTarget.addJob and plan. Problems come back as one *UsageError
// listing each.
func Preflight(jobs []Job) (map[string]*target, error) {
	var problems []string
	targets := map[string]*target{}
	byPath := map[string]string{} // path -> the first target naming it
	for i := range jobs {
		j := &jobs[i]
		scheme, path := targetScheme(j.Target)
		if scheme == "" || path == "" {
			problems = append(problems, fmt.Sprintf("bench: job %s: target %q: accepted: file:PATH, engine:PATH, weft://ADDR/CONTAINER", j.Name, j.Target))
			continue
		}
		t := targets[j.Target]
		if t == nil {
			if other, ok := byPath[path]; ok {
				// NB: only the same spelling is caught; another path to
				// the same file is not.
				problems = append(problems, fmt.Sprintf("bench: job %s: target %s names the file of target %s; a file: job would overwrite the engine's device", j.Name, j.Target, other))
				continue
			}
			var err error
			switch scheme {
			case schemeWeft:
				t, err = inspectWeftTarget(j.Target)
			case schemeEngine:
				t, err = inspectEngineTarget(path)
			default:
				t, err = inspectTarget(path)
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("bench: job %s: %v", j.Name, err))
				continue
			}
			targets[j.Target] = t
			byPath[path] = j.Target
		}
		if scheme == schemeWeft {
			if why := t.wft.addJob(t, j); why != "" {
				problems = append(problems, fmt.Sprintf("bench: job %s: %s", j.Name, why))
			}
			continue
		}
		if scheme == schemeEngine {
			if why := t.eng.addJob(t, j); why != "" {
				problems = append(problems, fmt.Sprintf("bench: job %s: %s", j.Name, why))
			}
			continue
		}
		if j.Size == 0 {
			if t.created || t.size == 0 {
				problems = append(problems, fmt.Sprintf("bench: job %s: target %s does not exist (or is empty) and no size= was given; give size=, e.g. --size=1g", j.Name, path))
				continue
			}
			j.Size = t.size - t.size%j.BlockSize
		}
		if j.Size < j.BlockSize {
			problems = append(problems, fmt.Sprintf("bench: job %s: size=%d is smaller than bs=%d", j.Name, j.Size, j.BlockSize))
			continue
		}
		if t.blockDev && j.Size > t.size {
			problems = append(problems, fmt.Sprintf("bench: job %s: size=%s is larger than the device %s (%s)", j.Name, fmtBytes(j.Size), path, fmtBytes(t.size)))
			continue
		}
		if j.Direct {
			if j.BlockSize%int64(t.dioOff) != 0 {
				problems = append(problems, fmt.Sprintf("bench: job %s: bs=%d: %s needs O_DIRECT I/O in multiples of %d bytes", j.Name, j.BlockSize, path, t.dioOff))
			}
		}
		t.need = max(t.need, j.Size)
	}
	for _, key := range targetKeys(targets) {
		if t := targets[key]; t.eng != nil {
			if why := t.eng.plan(t); why != "" {
				problems = append(problems, fmt.Sprintf("bench: target %s: %s", key, why))
			}
		}
	}
	if len(problems) > 0 {
		return nil, &UsageError{Problems: problems}
	}
	return targets, nil
}

func targetKeys(targets map[string]*target) []string {
	keys := make([]string, 0, len(targets))
	for k := range targets {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// checkCreatable returns an error unless a missing file at path could be
// created: its directory exists and is writable.
func checkCreatable(target, path string) error {
	dir := filepath.Dir(path)
	ds, err := os.Stat(dir)
	if err != nil || !ds.IsDir() {
		return fmt.Errorf("target %s: directory %s does not exist", target, dir)
	}
	if unix.Access(dir, unix.W_OK) != nil {
		return fmt.Errorf("target %s: cannot create it: directory %s is not writable", target, dir)
	}
	return nil
}

func inspectTarget(path string) (*target, error) {
	t := &target{scheme: schemeFile, path: path, dioOff: ioring.DefaultAlignment}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := checkCreatable(path, path); err != nil {
			return nil, err
		}
		dir := filepath.Dir(path)
		t.created = true
		if _, o, err := ioring.DirectIOAlignment(dir); err == nil {
			t.dioOff = o
		}
		return t, nil
	case err != nil:
		return nil, fmt.Errorf("target %s: %v", path, err)
	}
	switch {
	case st.Mode().IsRegular():
		t.size = st.Size()
	case st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0:
		t.blockDev = true
	default:
		return nil, fmt.Errorf("target %s: is a %s; accepted: a regular file or a block device", path, describeMode(st.Mode()))
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("target %s: cannot open for reading and writing: %v", path, err)
	}
	defer f.Close()
	if t.blockDev {
		end, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, fmt.Errorf("target %s: cannot find the device size: %v", path, err)
		}
		t.size = end
	}
	if _, o, err := ioring.DirectIOAlignment(path); err == nil {
		t.dioOff = o
	}
	return t, nil
}

func describeMode(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeCharDevice != 0:
		return "character device"
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// Run runs the jobs, each clone on its own locked OS thread, and returns
// their results. Jobs must come from ParseArgs/ParseJobFile (validated);
// Run calls Preflight first and writes nothing if it fails. Missing or
// short files are laid out (written in full) before any job starts, as
// fio does, so reads hit real blocks. Each engine: target is opened once,
// for all the jobs naming it, has the range its reading jobs need written
// (see engineTarget.layout), and is closed when they are done.
func Run(ctx context.Context, jobs []Job, opts RunOptions) (res *Result, err error) {
	jobs = append([]Job(nil), jobs...)
	targets, err := prepare(ctx, jobs, opts.Progress)
	if err != nil {
		return nil, err
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = time.Second
	}
	var engines []*engineTarget
	defer func() {
		// Closing waits for the engine's work in flight, so it comes
		// after every clone has stopped.
		for _, et := range engines {
			if cerr := et.close(); cerr != nil && err == nil {
				err = fmt.Errorf("bench: target %s: %w", et.target, cerr)
			}
		}
	}()
	var notes []string
	for _, key := range targetKeys(targets) {
		t := targets[key]
		if t.wft != nil {
			if err := t.wft.layout(ctx, opts.Progress); err != nil {
				return nil, fmt.Errorf("bench: target %s: %w", key, err)
			}
			notes = append(notes, t.wft.describe())
			continue
		}
		if t.eng == nil {
			continue
		}
		if err := t.eng.open(opts.Log); err != nil {
			return nil, fmt.Errorf("bench: target %s: %w", key, err)
		}
		engines = append(engines, t.eng)
		if err := t.eng.layout(ctx, opts.Progress); err != nil {
			return nil, fmt.Errorf("bench: target %s: %w", key, err)
		}
		notes = append(notes, t.eng.describe())
	}
	res = &Result{Version: opts.Version, Start: time.Now(), Notes: notes}

	var clones []*clone
	for i := range jobs {
		for c := 0; c < jobs[i].NumJobs; c++ {
			cl := newClone(&jobs[i], c)
			cl.eng = targets[jobs[i].Target].eng
			cl.wft = targets[jobs[i].Target].wft
			clones = append(clones, cl)
		}
	}
	// Each engine's stats before and after the jobs: what its group
	// commits and its cleaner did while they ran.
	before := make([]engine.Stats, len(engines))
	for i, et := range engines {
		before[i] = et.e.Stats()
	}
	dedicated := len(clones) < runtime.GOMAXPROCS(0)
	for _, c := range clones {
		c.dedicated = dedicated
	}
	var wg sync.WaitGroup
	start := time.Now()
	for _, c := range clones {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(ctx, start)
		}()
	}
	stopProgress := startProgress(opts, clones, start)
	wg.Wait()
	stopProgress()
	activity := map[*engineTarget]*EngineActivity{}
	for i, et := range engines {
		after := et.e.Stats()
		activity[et] = engineActivity(&before[i], &after)
	}

	// Results in job order; clones of a group_reporting job are merged.
	k := 0
	for i := range jobs {
		var rs []JobResult
		for c := 0; c < jobs[i].NumJobs; c++ {
			r := clones[k].result()
			r.Engine = activity[clones[k].eng]
			rs = append(rs, r)
			k++
		}
		if jobs[i].GroupReporting && len(rs) > 1 {
			res.Jobs = append(res.Jobs, MergeResults(rs))
		} else {
			res.Jobs = append(res.Jobs, rs...)
		}
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	for _, jr := range res.Jobs {
		if jr.Err != nil {
			return res, fmt.Errorf("bench: job %s: %w", jr.Job.Name, jr.Err)
		}
	}
	return res, nil
}

// Prepare runs Preflight and then lays out every file target that is
// missing or shorter than its jobs need, and creates (writes in full and
// formats) every engine: device that is missing. It fills in Job.Size
// where it was taken from the existing file.
func Prepare(ctx context.Context, jobs []Job, progress io.Writer) error {
	_, err := prepare(ctx, jobs, progress)
	return err
}

func prepare(ctx context.Context, jobs []Job, progress io.Writer) (map[string]*target, error) {
	targets, err := Preflight(jobs)
	if err != nil {
		return nil, err
	}
	for _, key := range targetKeys(targets) {
		t := targets[key]
		switch {
		case t.wft != nil:
			err = nil // a running node: nothing to create
		case t.eng != nil:
			err = t.eng.create(ctx, t, progress)
		default:
			err = layout(ctx, t, progress)
		}
		if err != nil {
			return nil, err
		}
	}
	return targets, nil
}

// layout creates or extends a file target to t.need bytes, writing every
// block with non-zero data, and flushes it.
func layout(ctx context.Context, t *target, progress io.Writer) error {
	if t.blockDev || (!t.created && t.size >= t.need) {
		return nil
	}
	f, err := os.OpenFile(t.path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("bench: target %s: %v", t.path, err)
	}
	defer f.Close()
	if progress != nil {
		fmt.Fprintf(progress, "laying out %s: %s\n", t.path, fmtBytes(t.need))
	}
	const chunk = 1 << 20
	buf := make([]byte, chunk)
	rng := newRand(0x5eed)
	for off := t.size - t.size%chunk; off < t.need; off += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		rng.fill(buf)
		n := min(int64(chunk), t.need-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return fmt.Errorf("bench: laying out %s at offset %d: %v", t.path, off, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("bench: laying out %s: fsync: %v", t.path, err)
	}
	t.size = t.need
	return nil
}

// rand is xorshift64*: tiny, fast and allocation free; each clone has its
// own, seeded from the job name and clone index so runs repeat (fio's
// randrepeat=1).
type rand struct{ s uint64 }

func newRand(seed uint64) *rand {
	if seed == 0 {
		seed = 0x9E3779B97F4A7C15
	}
	return &rand{s: seed}
}

func (r *rand) next() uint64 {
	r.s ^= r.s >> 12
	r.s ^= r.s << 25
	r.s ^= r.s >> 27
	return r.s * 2685821657736338717
}

func (r *rand) fill(b []byte) {
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.next()
		for k := 0; k < 8; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
}

// offsetSeed seeds a clone's random offsets from the job name, the clone
// index and the pattern. With the pattern in it, a randread job does not
// visit blocks in the order an earlier randwrite job of the same name
// wrote them: on a log-structured target (engine:, weft://) that order is
// the order of the blocks on the device, so the "random" reads would be
// sequential there (the block layer merged 40-70% of them) and beat a raw
// file's truly random reads unfairly.
func offsetSeed(j *Job, clone int) uint64 {
	return seedFor(fmt.Sprintf("%s\x00offsets\x00%d", j.Name, j.Pattern), clone)
}

func seedFor(name string, clone int) uint64 {
	h := uint64(1469598103934665603)
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * 1099511628211
	}
	return h ^ uint64(clone+1)*0x9E3779B97F4A7C15
}

// Direction indexes.
const (
	dirRead = iota
	dirWrite
	dirSync
)

// dirCounters are updated by the clone's thread and read by the progress
// display.
type dirCounters struct {
	bytes atomic.Int64
	ios   atomic.Int64
}

// clone is one running copy of a job.
type clone struct {
	job     *Job
	index   int
	backend string
	rng     *rand // directions and data
	offRng  *rand // random offsets (offsetSeed)

	live [2]dirCounters // cumulative, ramp included, for the progress line

	stats      [2]DirStats
	sync       *hdrhistogram.Histogram
	elapsed    time.Duration
	runtime    time.Duration
	usr, sys   time.Duration
	ctx        int64
	err        error
	nextOff    int64         // sequential position
	issuedIOs  int64         // I/Os started, for size-bounded runs
	totalIOs   int64         // I/Os a size-bounded run does
	writesSync int           // writes since the last fsync
	dedicated  bool          // fewer clones than Ps: waits may keep the P
	eng        *engineTarget // the open engine of an engine: target; nil for a file
	wft        *weftTarget   // a weft:// target; nil otherwise
}

func newClone(j *Job, index int) *clone {
	c := &clone{job: j, index: index, rng: newRand(seedFor(j.Name, index)), offRng: newRand(offsetSeed(j, index)), sync: newLatencyHistogram()}
	for d := range c.stats {
		c.stats[d].Slat = newLatencyHistogram()
		c.stats[d].Clat = newLatencyHistogram()
		c.stats[d].Lat = newLatencyHistogram()
	}
	c.totalIOs = j.Size / j.BlockSize
	return c
}

func (c *clone) result() JobResult {
	jr := JobResult{
		Job: c.job, Clones: 1, Backend: c.backend,
		Read: c.stats[dirRead], Write: c.stats[dirWrite], Sync: c.sync,
		Elapsed: c.elapsed, Runtime: c.runtime, Err: c.err, Ctx: c.ctx,
	}
	if c.runtime > 0 {
		jr.UsrCPU = 100 * float64(c.usr) / float64(c.runtime)
		jr.SysCPU = 100 * float64(c.sys) / float64(c.runtime)
	}
	return jr
}

// nextIO chooses the next operation of the job: an fsync when fsync=N
// writes have been issued since the last one, else a read or write at the
// next offset.
func (c *clone) nextIO() (dir int, off int64) {
	if c.job.Fsync > 0 && c.writesSync >= c.job.Fsync {
		c.writesSync = 0
		return dirSync, 0
	}
	dir, off = c.pickDir(), c.pickOffset()
	c.issuedIOs++
	if dir == dirWrite {
		c.writesSync++
	}
	return dir, off
}

// pickDir chooses the direction of the next I/O.
func (c *clone) pickDir() int {
	p := c.job.ReadPercent()
	switch p {
	case 100:
		return dirRead
	case 0:
		return dirWrite
	}
	if int(c.rng.next()%100) < p {
		return dirRead
	}
	return dirWrite
}

// pickOffset chooses the offset of the next I/O.
func (c *clone) pickOffset() int64 {
	bs := c.job.BlockSize
	blocks := c.job.Size / bs
	if c.job.IsRandom() {
		return int64(c.offRng.next()%uint64(blocks)) * bs
	}
	off := c.nextOff
	c.nextOff += bs
	if c.nextOff+bs > blocks*bs {
		c.nextOff = 0
	}
	return off
}

// moreToIssue reports whether a new I/O may start at now (ns since start).
func (c *clone) moreToIssue(now, end int64) bool {
	if now >= end {
		return false
	}
	return c.job.TimeBased || c.issuedIOs < c.totalIOs
}

// phase tracks the ramp and measurement windows of a clone, in ns since
// the run started.
type phase struct {
	rampEnd, end int64
	sampleNext   int64
	sampleBytes  [2]int64
	sampleIOs    [2]int64
}

func (c *clone) newPhase() phase {
	ramp := int64(c.job.RampTime)
	end := int64(1<<62 - 1)
	if c.job.Runtime > 0 {
		end = ramp + int64(c.job.Runtime)
	}
	secs := 2
	if c.job.Runtime > 0 {
		secs += int(c.job.Runtime / time.Second)
	}
	for d := range c.stats {
		c.stats[d].PerSecondBytes = make([]int64, 0, secs)
		c.stats[d].PerSecondIOs = make([]int64, 0, secs)
	}
	return phase{rampEnd: ramp, end: end, sampleNext: ramp + int64(time.Second)}
}

// record accounts one completed I/O that began at prep and was issued at
// issue, completing at now (ns since start).
func (c *clone) record(ph *phase, dir int, n int, prep, issue, now int64) {
	if dir == dirSync {
		if prep >= ph.rampEnd && now <= ph.end {
			c.sync.RecordValue(clampLat(now - prep))
		}
		return
	}
	c.live[dir].bytes.Add(int64(n))
	c.live[dir].ios.Add(1)
	if prep < ph.rampEnd || now > ph.end {
		return
	}
	s := &c.stats[dir]
	s.IOBytes += int64(n)
	s.TotalIOs++
	s.Slat.RecordValue(clampLat(issue - prep))
	s.Clat.RecordValue(clampLat(now - issue))
	s.Lat.RecordValue(clampLat(now - prep))
}

// sample closes per-second buckets up to now.
func (c *clone) sample(ph *phase, now int64) {
	for now >= ph.sampleNext && ph.sampleNext <= ph.end {
		for d := range c.stats {
			s := &c.stats[d]
			s.PerSecondBytes = append(s.PerSecondBytes, s.IOBytes-ph.sampleBytes[d])
			s.PerSecondIOs = append(s.PerSecondIOs, s.TotalIOs-ph.sampleIOs[d])
			ph.sampleBytes[d], ph.sampleIOs[d] = s.IOBytes, s.TotalIOs
		}
		ph.sampleNext += int64(time.Second)
	}
}

func clampLat(v int64) int64 {
	if v < 1 {
		return 1
	}
	if v > latencyMax {
		return latencyMax
	}
	return v
}

func (c *clone) run(ctx context.Context, start time.Time) {
	// A file clone owns its ring and thread, as an fio job does, and its
	// CPU figures are its thread's. An engine: or weft:// clone waits on
	// channels for completions that other goroutines deliver: locked to a
	// thread, every such wait hands its P away and every wake-up hands it
	// back through a futex (measured here: engine 4k randread qd1 p50 241
	// -> 108 us unlocked, in interrupt mode), which is not how the
	// engine's or the client's users run. Its CPU figures are therefore the
	// whole process's, the in-process engine's reactors included.
	who := unix.RUSAGE_SELF
	if c.eng == nil && c.wft == nil {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		who = unix.RUSAGE_THREAD
	}
	var ru0, ru1 unix.Rusage
	unix.Getrusage(who, &ru0)
	t0 := time.Now()

	fd := -1
	if c.eng == nil && c.wft == nil {
		path := strings.TrimPrefix(c.job.Target, schemeFile)
		flags := unix.O_RDWR | unix.O_CLOEXEC
		if c.job.Direct {
			flags |= unix.O_DIRECT
		}
		var err error
		fd, err = unix.Open(path, flags, 0)
		if err != nil {
			c.err = fmt.Errorf("open %s: %w", path, err)
			return
		}
		defer unix.Close(fd)
	}

	ph := c.newPhase()
	// Time origin: every clone measures from the shared start so ramp and
	// runtime windows line up, as fio's do.
	base := start
	switch {
	case c.wft != nil:
		c.err = c.runWeft(ctx, &ph, base)
	case c.eng != nil:
		c.err = c.runEngine(ctx, &ph, base)
	case c.job.IOEngine == EnginePsync:
		c.backend = "psync"
		c.err = c.runPsync(ctx, fd, &ph, base)
	default:
		c.err = c.runRing(ctx, fd, &ph, base)
	}

	c.elapsed = time.Since(t0)
	measuredEnd := min(time.Duration(ph.end), time.Since(base))
	c.runtime = max(measuredEnd-time.Duration(ph.rampEnd), 0)
	for d := range c.stats {
		c.stats[d].Runtime = c.runtime
	}
	unix.Getrusage(who, &ru1)
	c.usr = time.Duration(unix.TimevalToNsec(ru1.Utime) - unix.TimevalToNsec(ru0.Utime))
	c.sys = time.Duration(unix.TimevalToNsec(ru1.Stime) - unix.TimevalToNsec(ru0.Stime))
	c.ctx = (ru1.Nvcsw - ru0.Nvcsw) + (ru1.Nivcsw - ru0.Nivcsw)
}

// unit is one I/O slot of the queue.
type unit struct {
	buf         []byte
	dir         int
	off         int64
	done        int // bytes already transferred (short I/O resubmission)
	prep, issue int64
}

// newUnits allocates the depth I/O slots of a queue, each with an aligned
// buffer of the job's block size filled from the clone's generator (so a
// write job writes recognisable, repeatable data).
func (c *clone) newUnits(depth int) []unit {
	units := make([]unit, depth)
	for i := range units {
		units[i].buf = ioring.AlignedBuffer(int(c.job.BlockSize))
		c.rng.fill(units[i].buf)
	}
	return units
}

// ioQueue is an asynchronous I/O engine as runQueue drives it: the file
// through an ioring.Ring (ringQueue) or the weft engine (engineQueue).
// It reads runQueue's units and never changes them.
type ioQueue interface {
	// prep queues unit idx for the next submit: an fsync, or a read or
	// write of buf[done:] at off+done. Invariant: at most len(units)
	// units are prepared or in flight at once.
	prep(idx int)
	// submit starts the I/Os prepared since the last submit, which
	// pending lists in the order they were prepared.
	submit(pending []int) error
	// reap waits until at least min I/Os have completed (0: it does not
	// wait) and returns at most len(out) of them. min is at most the
	// number in flight.
	reap(out []completion, min int) (int, error)
}

// completion is the outcome of one I/O returned by ioQueue.reap.
type completion struct {
	idx int   // the unit
	n   int   // bytes transferred, when err is nil
	err error // the I/O failed, with the target and offset in the message
}

// runQueue runs the clone's I/O through q, keeping up to len(units) I/Os
// in flight, submitting and reaping them as fio's iodepth_batch_submit
// and iodepth_batch_complete_min/max say, until the job is done, the
// runtime is up, ctx ends or an I/O fails; then it waits for every I/O in
// flight and returns the first error. An error of q.submit or q.reap
// itself returns at once.
func (c *clone) runQueue(ctx context.Context, q ioQueue, units []unit, ph *phase, base time.Time) error {
	depth := len(units)
	// batch is fio's iodepth_batch_submit: queued I/Os go to the kernel
	// this many at a time (1: each at once, so adjacent sequential I/Os
	// are not merged by the block layer's plug; fio's default).
	batch := c.job.IODepthBatch
	if batch <= 0 || batch > depth {
		batch = depth
	}
	// fio's iodepth_batch_complete_min/max, with fio's defaults: max is
	// min unless given, and at least 1.
	minReap := min(c.job.BatchCompleteMin, depth)
	maxReap := c.job.BatchCompleteMax
	if maxReap == 0 {
		maxReap = minReap
	}
	maxReap = min(max(maxReap, minReap, 1), depth)
	free := make([]int, 0, depth)
	for i := depth - 1; i >= 0; i-- {
		free = append(free, i)
	}
	pending := make([]int, 0, depth) // prepared, not yet submitted
	done := make([]completion, maxReap)
	inflight := 0
	var firstErr error

	queue := func(idx int, now int64) {
		q.prep(idx)
		units[idx].prep = now
		pending = append(pending, idx)
		inflight++
	}

	submit := func() error {
		if err := q.submit(pending); err != nil {
			return err
		}
		now := int64(time.Since(base))
		for _, idx := range pending {
			units[idx].issue = now
		}
		pending = pending[:0]
		return nil
	}

	now := int64(time.Since(base))
	for {
		// Fill the queue.
		for len(free) > 0 && firstErr == nil && c.moreToIssue(now, ph.end) && ctx.Err() == nil {
			idx := free[len(free)-1]
			free = free[:len(free)-1]
			u := &units[idx]
			u.done = 0
			u.dir, u.off = c.nextIO()
			queue(idx, now)
			if len(pending) >= batch {
				if err := submit(); err != nil {
					return err
				}
				now = int64(time.Since(base))
			}
		}
		if len(pending) > 0 {
			if err := submit(); err != nil {
				return err
			}
		}
		if inflight == 0 {
			break
		}
		// Reap as fio does: wait until minReap completions are ready
		// (or as many as are in flight, at the end of a size-bounded
		// run), take at most maxReap, then top the queue up again
		// before reaping more.
		n, err := q.reap(done, min(minReap, inflight))
		if err != nil {
			return err
		}
		now = int64(time.Since(base))
		for _, d := range done[:n] {
			u := &units[d.idx]
			inflight--
			complete, err := false, d.err
			if err == nil {
				complete, err = c.advance(ph, u, d.n)
			}
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				free = append(free, d.idx)
				continue
			}
			if !complete {
				p0 := u.prep
				queue(d.idx, now)
				u.prep = p0
				if err := submit(); err != nil {
					return err
				}
				continue
			}
			c.record(ph, u.dir, len(u.buf), u.prep, u.issue, now)
			free = append(free, d.idx)
		}
		c.sample(ph, now)
	}
	return firstErr
}

// advance accounts for n bytes of unit u's I/O done and reports whether
// the I/O is complete. A short transfer (the kernel may split an I/O) is
// counted and left incomplete: the caller submits the rest, and the
// latency spans the whole I/O. No bytes at all is an error: the target
// ends early.
func (c *clone) advance(ph *phase, u *unit, n int) (bool, error) {
	if u.dir == dirSync || n >= len(u.buf)-u.done {
		return true, nil
	}
	if n == 0 {
		return false, fmt.Errorf("%s at offset %d returned 0 bytes: %s ends early", dirName(u.dir), u.off+int64(u.done), c.job.Target)
	}
	u.done += n
	if u.prep >= ph.rampEnd {
		c.stats[u.dir].ShortIOs++
	}
	return false, nil
}

// ringQueue is the ioQueue of a file target: io_uring, or ioring's
// thread backend.
type ringQueue struct {
	ring      *ioring.Ring
	units     []unit
	fd        int // the file's descriptor, for error messages
	fileIdx   int // fd, or its index among the registered files
	fixedFile bool
	fixedBufs bool // units' buffers are registered, by unit index
	cqes      []ioring.CQE
}

func (c *clone) runRing(ctx context.Context, fd int, ph *phase, base time.Time) error {
	depth := c.job.IODepth
	f := ioring.Detect()
	opts := ioring.Options{Entries: uint32(depth), SingleIssuer: f.SingleIssuer, DeferTaskrun: f.DeferTaskrun && f.SingleIssuer, CoopTaskrun: f.CoopTaskrun && !f.DeferTaskrun,
		// With a P to spare for the runtime, a clone keeps its P while it
		// waits for completions, as fio's job thread keeps its CPU.
		DedicatedThread: c.dedicated}
	if c.job.SQThreadPoll {
		opts.SQPoll = true
		opts.SQPollCPU = -1
		opts.SQPollIdle = 10 * time.Millisecond
	}
	ring, err := ioring.New(opts)
	if err != nil {
		return err
	}
	defer ring.Close()
	c.backend = ring.Describe()

	units := c.newUnits(depth)
	q := &ringQueue{ring: ring, units: units, fd: fd, fileIdx: fd, cqes: make([]ioring.CQE, depth)}
	if c.job.FixedBufs {
		bufs := make([][]byte, depth)
		for i := range units {
			bufs[i] = units[i].buf
		}
		if err := ring.RegisterBuffers(bufs); err != nil {
			return err
		}
		q.fixedBufs = true
	}
	if c.job.RegisterFiles {
		if err := ring.RegisterFiles([]int{fd}); err != nil {
			return err
		}
		q.fileIdx, q.fixedFile = 0, true
	}
	return c.runQueue(ctx, q, units, ph, base)
}

func (q *ringQueue) prep(idx int) {
	u := &q.units[idx]
	sqe := q.ring.GetSQE()
	if sqe == nil {
		// Invariant: the SQ has depth entries and at most depth units
		// are ever prepared or in flight.
		panic(fmt.Sprintf("bench: SQ full preparing unit %d of %d", idx, len(q.units)))
	}
	if u.dir == dirSync {
		sqe.PrepFsync(q.fileIdx, 0)
	} else {
		b := u.buf[u.done:]
		off := uint64(u.off) + uint64(u.done)
		switch {
		case q.fixedBufs && u.dir == dirRead:
			sqe.PrepReadFixed(q.fileIdx, b, off, uint16(idx))
		case q.fixedBufs:
			sqe.PrepWriteFixed(q.fileIdx, b, off, uint16(idx))
		case u.dir == dirRead:
			sqe.PrepRead(q.fileIdx, b, off)
		default:
			sqe.PrepWrite(q.fileIdx, b, off)
		}
	}
	if q.fixedFile {
		sqe.SetFixedFile()
	}
	sqe.UserData = uint64(idx)
}

// submit submits every SQE prepared; the ring holds them, so pending is
// not needed.
func (q *ringQueue) submit([]int) error {
	if _, err := q.ring.Submit(); err != nil && !errors.Is(err, ioring.ErrBusy) {
		return err
	}
	return nil
}

func (q *ringQueue) reap(out []completion, min int) (int, error) {
	// One system call at most.
	n, err := q.ring.WaitBatch(q.cqes[:len(out)], uint32(min))
	if err != nil {
		return 0, err
	}
	if n == 0 && min == 0 {
		// Polling: let the kernel post completions it deferred.
		if _, err := q.ring.Submit(); err != nil && !errors.Is(err, ioring.ErrBusy) {
			return 0, err
		}
	}
	for i, cqe := range q.cqes[:n] {
		idx := int(cqe.UserData)
		out[i] = completion{idx: idx}
		if cqe.Res < 0 {
			u := &q.units[idx]
			op := ioring.OpRead
			if u.dir == dirWrite {
				op = ioring.OpWrite
			} else if u.dir == dirSync {
				op = ioring.OpFsync
			}
			out[i].err = cqe.Err(op, q.fd, u.off+int64(u.done), len(u.buf)-u.done)
			continue
		}
		out[i].n = int(cqe.Res)
	}
	return n, nil
}

func (c *clone) runPsync(ctx context.Context, fd int, ph *phase, base time.Time) error {
	buf := ioring.AlignedBuffer(int(c.job.BlockSize))
	c.rng.fill(buf)
	now := int64(time.Since(base))
	for c.moreToIssue(now, ph.end) && ctx.Err() == nil {
		dir, off := c.nextIO()
		start := now
		var err error
		switch dir {
		case dirSync:
			err = unix.Fsync(fd)
		default:
			for done := 0; done < len(buf) && err == nil; {
				var n int
				if dir == dirRead {
					n, err = unix.Pread(fd, buf[done:], off+int64(done))
				} else {
					n, err = unix.Pwrite(fd, buf[done:], off+int64(done))
				}
				if err == unix.EINTR {
					err = nil
					continue
				}
				if err == nil && n == 0 {
					err = fmt.Errorf("%s at offset %d returned 0 bytes: %s ends early", dirName(dir), off+int64(done), c.job.Target)
				}
				if err == nil && done+n < len(buf) && start >= ph.rampEnd {
					c.stats[dir].ShortIOs++
				}
				done += n
			}
		}
		now = int64(time.Since(base))
		if err != nil {
			return fmt.Errorf("%s fd %d off %d len %d: %w", dirName(dir), fd, off, len(buf), err)
		}
		// A blocking call has no separate submission: slat is zero and
		// clat is the whole call, as fio reports for psync.
		c.record(ph, dir, len(buf), start, start, now)
		c.sample(ph, now)
	}
	return nil
}

func dirName(d int) string {
	switch d {
	case dirRead:
		return "read"
	case dirWrite:
		return "write"
	}
	return "fsync"
}

func fmtBytes(n int64) string {
	const (
		kib = 1 << 10
		mib = 1 << 20
		gib = 1 << 30
	)
	switch {
	case n >= gib && n%gib == 0:
		return fmt.Sprintf("%dGiB", n/gib)
	case n >= gib:
		return fmt.Sprintf("%.1fGiB", float64(n)/gib)
	case n >= mib:
		return fmt.Sprintf("%.1fMiB", float64(n)/mib)
	case n >= kib:
		return fmt.Sprintf("%.1fKiB", float64(n)/kib)
	}
	return fmt.Sprintf("%dB", n)
}
