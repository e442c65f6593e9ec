package bench

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/weftfs/weft/engine"
)

// This file turns a `weft bench` command line, or an fio job file, into
// validated Jobs. Parsing goes in three steps:
//
//  1. Split the input into raw jobs: a name and the options that apply to
//     it, in the order they take effect (a job file's [global] options
//     first, then the job's own, then on the command line the global
//     options that override job files).
//  2. Check each option's value on its own, once, where it was written, so
//     that a bad [global] value is reported once and not once per job.
//  3. Build each Job from defaults and its options, then check the rules
//     that tie options together (bs with direct, iodepth with ioengine, ...).
//
// Every step adds to one problem list instead of stopping, so the user sees
// every mistake at once.

// Limits on what the parser accepts. They keep what a mistaken or hostile
// job file costs bounded, fuzzing included.
const (
	jobFileBytesMax = 1 << 20 // bytes in one job file
	jobFileLineMax  = 4096    // bytes in one job file line, newline excluded
	jobsMax         = 1024    // jobs in one run (clones not counted)
	jobOptionsMax   = 256     // options applying to one job, [global] ones included
	// argValueMax bounds a command-line value, job name or target, so that
	// FormatJobFile never writes a line over jobFileLineMax.
	argValueMax = 4000
	problemsMax = 100 // problem lines in one UsageError; the rest are counted

	bsMin       = 512
	bsMax       = 64 << 20
	directAlign = 4096 // O_DIRECT block size alignment we require
	iodepthMax  = 4096
	numJobsMax  = 256
	roundsMax   = 100
	roundsDef   = 3

	// engine: target options.
	engineObjectSizeDef = 1 << 20
	engineObjectSizeMin = 4 << 10
	engineObjectSizeMax = 1 << 40
	engineFillDef       = 0.5
	engineFillMax       = 0.9 // the cleaner needs free segments to work with
	engineSegmentMin    = 1 << 20
	engineSegmentMax    = 1 << 30
	engineShardsMax     = 256  // the engine's own limit
	engineCoresMax      = 256  // CPUs listed in engine_cores
	engineCPUMax        = 1023 // highest CPU number a CPU set holds
)

// ErrHelp is returned by ParseArgs when the arguments ask for help (-h or
// --help). The caller prints Usage and exits successfully.
var ErrHelp = errors.New("bench: help requested")

// UsageError is returned by ParseArgs and ParseJobFile for any problem with
// their input. Each problem is one line that starts with "bench: " and names
// the option (and the job, or file:line, where that helps), the value given
// and what is accepted.
type UsageError struct {
	Problems []string
}

// Error returns the problems, one per line.
func (e *UsageError) Error() string { return strings.Join(e.Problems, "\n") }

// Spec is a parsed `weft bench` invocation.
type Spec struct {
	Jobs         []Job  // in order; clones (numjobs) are NOT expanded
	OutputFormat string // "normal" (default) or "json"
	CompareFio   bool   // --compare-fio
	Rounds       int    // --rounds=N, default 3, 1..100; only meaningful with CompareFio
	ETA          string // --eta=auto (default: progress line only when stderr is a terminal) | always | never
	FioPath      string // --fio=PATH, default "fio"
}

// Usage documents every option and target form ParseArgs accepts.
const Usage = `usage: weft bench [flags] [job options] [--name=JOB [job options]]... [JOBFILE]... [TARGET]

Runs fio-style jobs against a target and prints a fio-like report.

Targets (one at most; it applies to every job without filename=):
  file:PATH               a file or block device, driven through io_uring or psync
  engine:PATH             the weft storage engine, in-process, on the device (a
                          file or block device) at PATH; a missing file is
                          created, written in full and formatted
  path:DIR                any mounted directory (not supported yet)
  weft://ADDR/CONTAINER   a running weft node at ADDR (HOST:PORT), container
                          CONTAINER (a number), through the chunk client
  weft://ADDR[,ADDR...]/NAME
                          a weft cluster whose managers are at the ADDRs,
                          container NAME, through the cluster client (each
                          chunk goes to its PG's primary)
Any other argument is an fio job file.

Job options use fio's names: --opt=VALUE or --opt VALUE on the command line,
opt=VALUE in a job file. Options before the first --name apply to every job
(and override the job files' values); options after a --name belong to that
job. Without --name or a job file there is one job, named "job".
  --name=NAME          start a new job (command line only)
  --rw=PATTERN         read (default), write, randread, randwrite, randrw,
                       readwrite (or rw)
  --bs=SIZE            block size: 512 to 64m, a multiple of 512, and of 4096
                       with direct=1; default 4k
  --size=SIZE          bytes per job clone; default: the existing file's size
  --iodepth=N          I/Os in flight per clone, 1 to 4096; default 1
  --numjobs=N          identical clones of the job, 1 to 256; default 1
  --runtime=TIME       stop after this long; default: when size is done
  --time_based         repeat over size until runtime is up (needs runtime)
  --ramp_time=TIME     run this long before measuring; default 0
  --direct=0|1         1: bypass the page cache (O_DIRECT); default 0
  --fsync=N            fsync after every N writes; default 0 (never)
  --ioengine=ENGINE    io_uring (default) or psync (needs iodepth=1)
  --rwmixread=PCT      percent reads for randrw and readwrite, 0 to 100;
                       default 50
  --group_reporting    report a job's clones together
  --lat_percentiles    report percentiles of the total latency (submission
                       plus completion) too, as fio does; compare these with
                       fio's: its io_uring clat leaves out the submission
                       call, in which the kernel starts a direct I/O
  --filename=PATH      this job's target: PATH, file:PATH, engine:PATH or
                       weft://ADDR/CONTAINER
  --description=TEXT   accepted and ignored
io_uring engine options, with fio's names and defaults:
  --iodepth_batch_submit=N  submit queued I/Os N at a time; 0 means iodepth;
                       default 1 (each I/O as soon as it is queued). Alias
                       iodepth_batch. Batches let the block layer merge
                       adjacent I/Os.
  --iodepth_batch_complete_min=N  reap only once N completions are ready
                       (alias iodepth_batch_complete); 0 polls; default 1
  --iodepth_batch_complete_max=N  reap at most N completions at once;
                       default: the min (so one at a time, as fio)
  --fixedbufs          register the I/O buffers with the ring (READ_FIXED,
                       WRITE_FIXED); default off
  --registerfiles      register the file with the ring; default off
  --sqthread_poll      a kernel thread polls the submission queue; default off
engine: target options (weft's own; file: targets ignore them, and every job
on the same engine:PATH must give the same values):
  --engine_object_size=SIZE  job offset o is offset o%SIZE of object o/SIZE;
                       4k to 1t and a multiple of bs; default 1m
  --engine_fill=F      a device the run creates gets size/F bytes of segment
                       space, plus its header and checkpoint area; above 0,
                       at most 0.9; default 0.5
  --engine_segment_size=SIZE  segment size of a device the run creates: a
                       power of two from 1m to 1g, at least twice the largest
                       bs that writes; default 32m, or less (down to 1m) to
                       give the device at least 64 segments
  --engine_shards=N    reactors, 1 to 256; default 1
  --engine_record_size=SIZE  largest record a write is stored as (a read
                       reads whole records): a multiple of 4k up to 1m;
                       default the engine's, 16k
  --engine_cores=LIST  CPUs to pin the reactors to, e.g. 2,3 or 4-7; default
                       none (no pinning)
  --engine_mode=MODE   how idle reactors wait: poll, hybrid (default) or
                       interrupt
  --engine_plp=1       format a device the run creates as power-loss
                       protected: the engine skips flushes (measures the log
                       without the flush cost; true only of PLP devices)
With engine:, size= is required (the bytes the job addresses); every write
is durable when it completes, so fsync= and ioengine=psync are refused; bs
is at most 4m for jobs that write; direct, fixedbufs, registerfiles and
sqthread_poll are ignored (the engine does its own device I/O), while the
iodepth_batch options apply as to a file. Jobs that read first have their
range written once, sequentially, unless the engine already holds it.
weft:// options (weft's own; weft:// targets only):
  --weft_chunk_size=SIZE  job offset o is offset o%SIZE of chunk o/SIZE of
                       the inode; a multiple of bs; default 1m
  --weft_inode=N       the inode of the chunks; default 1
  --weft_cluster_id=ID, --weft_key_id=ID, --weft_key_secret=HEX
                       credentials; default $WEFT_CLUSTER_ID, $WEFT_KEY_ID,
                       $WEFT_KEY_SECRET (required one way or the other)
  --weft_layout=0|1    1 (default): jobs that read first write their range
                       sequentially in bs, on every run; 0: read what is there
With weft://, size= is required; each clone has its own connection (its own
cluster client on a cluster); fsync= and ioengine=psync are refused.
time_based, group_reporting, lat_percentiles, fixedbufs, registerfiles and
sqthread_poll may be given bare, or as =1 or =0.

SIZE is a whole number of bytes, optionally followed by k, m, g or t (or kb,
kib, mb, ...: all are powers of 1024, any case), e.g. 4k or 1g.
TIME is a whole number, optionally followed by us, ms, s, m, h or d; a bare
number is seconds.

Flags:
  --output-format=FMT  normal (default) or json (shaped like fio's)
  --compare-fio        also run the jobs under fio and compare the results
  --rounds=N           with --compare-fio, rounds of each, 1 to 100; default 3
  --eta=WHEN           progress line: auto (default: when stderr is a
                       terminal), always or never
  --fio=PATH           the fio binary for --compare-fio; default fio
  -h, --help           print this help

Job files are fio's ini format: [global] and [jobname] sections of opt=value
lines (bare opt for the on/off options); lines starting with ; or
# are comments. A [global] section applies to the jobs after it.
`

// Indexes into jobOptionDefs.
const (
	optRW = iota
	optBS
	optSize
	optIODepth
	optNumJobs
	optRuntime
	optTimeBased
	optRampTime
	optDirect
	optFsync
	optIOEngine
	optRWMixRead
	optGroupReporting
	optLatPercentiles
	optFilename
	optDescription
	optIODepthBatch
	optIODepthBatchAlias
	optFixedBufs
	optRegisterFiles
	optSQThreadPoll
	optBatchCompleteMin
	optBatchCompleteMinAlias
	optBatchCompleteMax
	optEngineObjectSize
	optEngineFill
	optEngineSegmentSize
	optEngineShards
	optEngineCores
	optEngineMode
	optEnginePLP
	optEngineRecordSize
	optWeftInode
	optWeftChunkSize
	optWeftClusterID
	optWeftKeyID
	optWeftKeySecret
	optWeftLayout
	optCount
)

// jobOptionDef describes one fio job option.
type jobOptionDef struct {
	name string
	// flag: the option may be given bare, which means 1.
	flag bool
	// set checks value and stores it in j. It returns "" or why the value is
	// not accepted (said after "name=value: "), leaving j unchanged.
	set func(j *Job, value string) string
}

var jobOptionDefs = [optCount]jobOptionDef{
	optRW: {name: "rw", set: func(j *Job, v string) string {
		p, ok := parsePattern(v)
		if !ok {
			return "unknown pattern; accepted: read, write, randread, randwrite, randrw, readwrite"
		}
		j.Pattern = p
		return ""
	}},
	optBS: {name: "bs", set: func(j *Job, v string) string {
		n, why := parseSize(v)
		switch {
		case why != "":
			return why
		case n < bsMin || n > bsMax:
			return "must be between 512 bytes and 64m"
		case n%bsMin != 0:
			return "must be a multiple of 512 bytes"
		}
		j.BlockSize = n
		return ""
	}},
	optSize: {name: "size", set: func(j *Job, v string) string {
		n, why := parseSize(v)
		switch {
		case why != "":
			return why
		case n == 0:
			return "must be greater than 0; leave size out to use the whole existing file"
		}
		j.Size = n
		return ""
	}},
	optIODepth:   {name: "iodepth", set: setInt(1, iodepthMax, func(j *Job) *int { return &j.IODepth })},
	optNumJobs:   {name: "numjobs", set: setInt(1, numJobsMax, func(j *Job) *int { return &j.NumJobs })},
	optRuntime:   {name: "runtime", set: setDuration(func(j *Job) *time.Duration { return &j.Runtime })},
	optTimeBased: {name: "time_based", flag: true, set: setFlag("time_based", func(j *Job) *bool { return &j.TimeBased })},
	optRampTime:  {name: "ramp_time", set: setDuration(func(j *Job) *time.Duration { return &j.RampTime })},
	optDirect: {name: "direct", set: func(j *Job, v string) string {
		switch v {
		case "0":
			j.Direct = false
		case "1":
			j.Direct = true
		default:
			return "accepted: 0 or 1"
		}
		return ""
	}},
	optFsync: {name: "fsync", set: setInt(0, math.MaxInt32, func(j *Job) *int { return &j.Fsync })},
	optIOEngine: {name: "ioengine", set: func(j *Job, v string) string {
		switch v {
		case EngineIOUring.String():
			j.IOEngine = EngineIOUring
		case EnginePsync.String():
			j.IOEngine = EnginePsync
		default:
			return "unknown engine; accepted: io_uring, psync"
		}
		return ""
	}},
	optRWMixRead:      {name: "rwmixread", set: setInt(0, 100, func(j *Job) *int { return &j.RWMixRead })},
	optGroupReporting: {name: "group_reporting", flag: true, set: setFlag("group_reporting", func(j *Job) *bool { return &j.GroupReporting })},
	optLatPercentiles: {name: "lat_percentiles", flag: true, set: setFlag("lat_percentiles", func(j *Job) *bool { return &j.LatPercentiles })},
	optFilename: {name: "filename", set: func(j *Job, v string) string {
		t, why := parseFilename(v)
		if why != "" {
			return why
		}
		j.Target = t
		return ""
	}},
	optDescription:           {name: "description", set: func(*Job, string) string { return "" }},
	optIODepthBatch:          {name: "iodepth_batch_submit", set: setIODepthBatch},
	optIODepthBatchAlias:     {name: "iodepth_batch", set: setIODepthBatch},
	optFixedBufs:             {name: "fixedbufs", flag: true, set: setFlag("fixedbufs", func(j *Job) *bool { return &j.FixedBufs })},
	optRegisterFiles:         {name: "registerfiles", flag: true, set: setFlag("registerfiles", func(j *Job) *bool { return &j.RegisterFiles })},
	optBatchCompleteMin:      {name: "iodepth_batch_complete_min", set: setBatchCompleteMin},
	optBatchCompleteMinAlias: {name: "iodepth_batch_complete", set: setBatchCompleteMin},
	optBatchCompleteMax:      {name: "iodepth_batch_complete_max", set: setInt(0, iodepthMax, func(j *Job) *int { return &j.BatchCompleteMax })},
	optSQThreadPoll:          {name: "sqthread_poll", flag: true, set: setFlag("sqthread_poll", func(j *Job) *bool { return &j.SQThreadPoll })},
	optEngineObjectSize: {name: "engine_object_size", set: func(j *Job, v string) string {
		n, why := parseSize(v)
		switch {
		case why != "":
			return why
		case n < engineObjectSizeMin || n > engineObjectSizeMax:
			return "must be between 4k and 1t"
		}
		j.Engine.ObjectSize = n
		return ""
	}},
	optEngineFill: {name: "engine_fill", set: func(j *Job, v string) string {
		f, err := strconv.ParseFloat(v, 64)
		switch {
		case err != nil && !errors.Is(err, strconv.ErrRange), math.IsNaN(f):
			return "not a number; accepted: a fraction above 0 and at most 0.9, e.g. 0.5"
		case err != nil || f <= 0 || f > engineFillMax:
			return "must be above 0 and at most 0.9 (the engine's cleaner needs free segments)"
		}
		j.Engine.Fill = f
		return ""
	}},
	optEngineSegmentSize: {name: "engine_segment_size", set: func(j *Job, v string) string {
		n, why := parseSize(v)
		switch {
		case why != "":
			return why
		case n < engineSegmentMin || n > engineSegmentMax || n&(n-1) != 0:
			return "must be a power of two from 1m to 1g"
		}
		j.Engine.SegmentSize = n
		return ""
	}},
	optEngineShards: {name: "engine_shards", set: setInt(1, engineShardsMax, func(j *Job) *int { return &j.Engine.Shards })},
	optEngineCores: {name: "engine_cores", set: func(j *Job, v string) string {
		cpus, why := parseCPUList(v)
		if why != "" {
			return why
		}
		j.Engine.Cores = cpus
		return ""
	}},
	optEnginePLP: {name: "engine_plp", set: setFlag("engine_plp", func(j *Job) *bool { return &j.Engine.PLP })},
	optEngineRecordSize: {name: "engine_record_size", set: func(j *Job, v string) string {
		n, why := parseSize(v)
		switch {
		case why != "":
			return why
		case !engine.ValidRecordBytes(n):
			return "must be a multiple of 4k from 4k to 1m"
		}
		j.Engine.RecordSize = int(n)
		return ""
	}},
	optWeftInode: {name: "weft_inode", set: func(j *Job, v string) string {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return "not a whole number; accepted: 0 to 18446744073709551615"
		}
		j.Weft.Inode = n
		return ""
	}},
	optWeftChunkSize: {name: "weft_chunk_size", set: func(j *Job, v string) string {
		n, why := parseSize(v)
		switch {
		case why != "":
			return why
		case n < 512 || n > weftChunkSizeMax:
			return "must be between 512 and 1g"
		}
		j.Weft.ChunkSize = n
		return ""
	}},
	optWeftClusterID: {name: "weft_cluster_id", set: func(j *Job, v string) string {
		if len(v) > 255 {
			return "at most 255 bytes"
		}
		j.Weft.ClusterID = v
		return ""
	}},
	optWeftKeyID: {name: "weft_key_id", set: func(j *Job, v string) string {
		if len(v) > 255 {
			return "at most 255 bytes"
		}
		j.Weft.KeyID = v
		return ""
	}},
	optWeftKeySecret: {name: "weft_key_secret", set: func(j *Job, v string) string {
		if _, err := hex.DecodeString(v); err != nil {
			return "not hex; accepted: the key's secret as hex digits"
		}
		j.Weft.Secret = v
		return ""
	}},
	optWeftLayout: {name: "weft_layout", flag: true, set: func(j *Job, v string) string {
		on, why := parseFlag(v, "weft_layout")
		if why != "" {
			return why
		}
		j.Weft.NoLayout = !on
		return ""
	}},
	optEngineMode: {name: "engine_mode", set: func(j *Job, v string) string {
		m, err := engine.ParsePollMode(v)
		if err != nil || v == "" {
			return "unknown mode; accepted: poll, hybrid, interrupt"
		}
		j.Engine.Mode = m
		return ""
	}},
}

// parseCPUList parses engine_cores: CPU numbers and ranges (2-5) separated
// by commas, e.g. 0,2,4-7, in the order given.
func parseCPUList(v string) ([]int, string) {
	const accepted = "accepted: CPU numbers from 0 to 1023 and ranges such as 4-7, separated by commas"
	var cpus []int
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, why := parseIntIn(lo, 0, engineCPUMax)
		b := a
		if isRange && why == "" {
			b, why = parseIntIn(hi, 0, engineCPUMax)
		}
		switch {
		case why != "":
			return nil, fmt.Sprintf("%q is not a CPU number or range; %s", part, accepted)
		case b < a:
			return nil, fmt.Sprintf("CPU range %q runs backwards; %s", part, accepted)
		case len(cpus)+b-a+1 > engineCoresMax:
			return nil, fmt.Sprintf("more than %d CPUs listed", engineCoresMax)
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, ""
}

// formatCPUList writes cpus as parseCPUList reads them.
func formatCPUList(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}

// setBatchCompleteMin sets iodepth_batch_complete_min (alias
// iodepth_batch_complete): the fewest completions a reap waits for; 0
// polls without waiting. fio's default is 1.
var setBatchCompleteMin = setInt(0, iodepthMax, func(j *Job) *int { return &j.BatchCompleteMin })

// setIODepthBatch sets iodepth_batch_submit (alias iodepth_batch): how many
// queued I/Os are submitted together; 0 means iodepth, as in fio.
var setIODepthBatch = setInt(0, iodepthMax, func(j *Job) *int { return &j.IODepthBatch })

// setFlag, setInt and setDuration make the setters of on/off, integer and
// time options: parse the value, and store it in the field that field
// returns, or say why the value is not accepted.
func setFlag(name string, field func(*Job) *bool) func(*Job, string) string {
	return func(j *Job, v string) string {
		b, why := parseFlag(v, name)
		if why == "" {
			*field(j) = b
		}
		return why
	}
}

func setInt(lo, hi int, field func(*Job) *int) func(*Job, string) string {
	return func(j *Job, v string) string {
		n, why := parseIntIn(v, lo, hi)
		if why == "" {
			*field(j) = n
		}
		return why
	}
}

func setDuration(field func(*Job) *time.Duration) func(*Job, string) string {
	return func(j *Job, v string) string {
		d, why := parseDuration(v)
		if why == "" {
			*field(j) = d
		}
		return why
	}
}

// jobOptionNames lists the job options for "accepted:" in messages.
const jobOptionNames = "rw, bs, size, iodepth, numjobs, runtime, time_based, ramp_time, direct, " +
	"fsync, ioengine, rwmixread, group_reporting, lat_percentiles, filename, description, iodepth_batch_submit, " +
	"iodepth_batch, fixedbufs, registerfiles, sqthread_poll, iodepth_batch_complete_min, " +
	"iodepth_batch_complete, iodepth_batch_complete_max, engine_object_size, engine_fill, " +
	"engine_segment_size, engine_shards, engine_cores, engine_mode, engine_plp, engine_record_size, weft_inode, weft_chunk_size, weft_cluster_id, weft_key_id, " +
	"weft_key_secret, weft_layout"

// cliOptionNames lists everything ParseArgs takes after "--".
const cliOptionNames = "name, " + jobOptionNames + ", output-format, compare-fio, rounds, eta, fio, help"

func lookupJobOption(name string) (int, bool) {
	for i := range jobOptionDefs {
		if jobOptionDefs[i].name == name {
			return i, true
		}
	}
	return 0, false
}

// defaultJob returns a Job named name with fio's defaults and nothing else.
func defaultJob(name string) Job {
	return Job{
		Name:      name,
		Pattern:   PatternRead,
		BlockSize: 4096,
		IODepth:   1,
		NumJobs:   1,
		IOEngine:  EngineIOUring,
		RWMixRead: 50,
		// fio submits each I/O as soon as it is queued (iodepth_batch=1)
		// and reaps one completion at a time (iodepth_batch_complete_min=1,
		// iodepth_batch_complete_max defaults to the min).
		IODepthBatch:     1,
		BatchCompleteMin: 1,
		Engine: EngineOptions{
			ObjectSize: engineObjectSizeDef,
			Fill:       engineFillDef,
			Shards:     1,
			Mode:       engine.Hybrid,
		},
		Weft: WeftOptions{Inode: 1, ChunkSize: weftChunkSizeDef},
	}
}

// rawOption is one option as written, before it is applied to a Job.
type rawOption struct {
	Option
	def   int    // index into jobOptionDefs
	where string // "file:line" in a job file, "" on the command line
	bad   bool   // its value was rejected and reported
}

// check reports o's value if it is not acceptable on its own. job names the
// job o was written for, "" for global options.
func (o *rawOption) check(job string, jobAlways bool, probs *problemList) {
	var scratch Job
	if why := jobOptionDefs[o.def].set(&scratch, o.Value); why != "" {
		o.bad = true
		probs.add(problem{where: o.where, job: job, jobAlways: jobAlways, text: showOption(o.Name, o.Value) + ": " + why})
	}
}

// rawJob is a job section or --name with the options that apply to it, in
// the order they take effect.
type rawJob struct {
	name     string
	where    string // its [section] header as "file:line"; "" on the command line
	fromFile bool
	opts     []*rawOption
}

// problem is one line of a UsageError, before it is worded.
type problem struct {
	where     string // "file:line", "file" or ""
	job       string // the job it concerns, or ""
	jobAlways bool   // name the job even if it is the only one (it is in a job file)
	text      string
}

// problemList collects problems, keeping the first problemsMax.
type problemList struct {
	list []problem
	more int
}

func (p *problemList) add(pr problem) {
	if len(p.list) >= problemsMax {
		p.more++
		return
	}
	p.list = append(p.list, pr)
}

func (p *problemList) len() int { return len(p.list) + p.more }

// err returns nil, or a *UsageError with one line per problem. jobs is how
// many jobs there are: with more than one, every job problem names its job.
func (p *problemList) err(jobs int) error {
	if p.len() == 0 {
		return nil
	}
	lines := make([]string, 0, len(p.list)+1)
	for _, pr := range p.list {
		var b strings.Builder
		b.WriteString("bench: ")
		if pr.where != "" {
			b.WriteString(pr.where)
			b.WriteString(": ")
		}
		if pr.job != "" && (pr.jobAlways || jobs > 1) {
			b.WriteString("job ")
			b.WriteString(pr.job)
			b.WriteString(": ")
		}
		b.WriteString(pr.text)
		lines = append(lines, b.String())
	}
	if p.more > 0 {
		lines = append(lines, fmt.Sprintf("bench: %d more problems not shown", p.more))
	}
	return &UsageError{Problems: lines}
}

// showOption renders name=value for a message, quoting a value that would
// not read plainly.
func showOption(name, value string) string {
	if strings.ContainsFunc(value, func(r rune) bool { return !unicode.IsPrint(r) }) {
		value = strconv.Quote(value)
	}
	return name + "=" + value
}

// ParseArgs parses the arguments of `weft bench` (the program and subcommand
// names excluded; see Usage). It reads the job files named in args. Every
// problem with the input is reported in one *UsageError; -h or --help returns
// ErrHelp. On success every Job is valid and has a Target.
func ParseArgs(args []string) (*Spec, error) {
	spec := &Spec{OutputFormat: "normal", Rounds: roundsDef, ETA: "auto", FioPath: "fio"}
	var (
		probs   problemList
		globals []*rawOption // before the first --name
		jobs    []*rawJob    // job file jobs and --name jobs, in order
		cur     *rawJob      // the last --name job
		targets []string
		sawFile bool
	)
	cliProblem := func(text string) { probs.add(problem{text: text}) }
	positional := func(arg string) {
		if isTargetArg(arg) {
			targets = append(targets, arg)
			return
		}
		sawFile = true
		data, err := readJobFile(arg)
		if err != nil {
			text := "job file: " + err.Error()
			if errors.Is(err, os.ErrNotExist) {
				text += " (a target is written file:PATH)"
			}
			cliProblem(text)
			return
		}
		jobs = append(jobs, parseJobFileRaw(arg, data, &probs)...)
	}

	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "--":
			for _, a := range args[i+1:] {
				positional(a)
			}
			i = len(args)
			continue
		case arg == "-h" || arg == "-help" || arg == "--help" || strings.HasPrefix(arg, "--help="):
			return nil, ErrHelp
		case arg == "-" || !strings.HasPrefix(arg, "-"):
			positional(arg)
			continue
		case !strings.HasPrefix(arg, "--"):
			cliProblem(fmt.Sprintf("unknown option %s; options start with -- (accepted: %s)", arg, cliOptionNames))
			continue
		}

		name, value, hasValue := strings.Cut(arg[2:], "=")
		def, isJobOpt := lookupJobOption(name)
		takesValue := false
		switch name {
		case "name", "output-format", "rounds", "eta", "fio":
			takesValue = true
		default:
			takesValue = isJobOpt && !jobOptionDefs[def].flag
		}
		if !hasValue && takesValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			i++
			value, hasValue = args[i], true
		}
		value = strings.TrimSpace(value)
		if takesValue && !hasValue {
			cliProblem(fmt.Sprintf("--%s: needs a value (--%s=VALUE)", name, name))
			continue
		}
		if hasValue {
			if why := checkArgValue(value); why != "" {
				cliProblem(fmt.Sprintf("--%s: %s", name, why))
				continue
			}
		}

		switch name {
		case "output-format":
			if value != "normal" && value != "json" {
				cliProblem(fmt.Sprintf("--output-format=%s: unknown format; accepted: normal, json", value))
				continue
			}
			spec.OutputFormat = value
		case "compare-fio":
			if !hasValue {
				value = "1"
			}
			b, why := parseFlag(value, "--compare-fio")
			if why != "" {
				cliProblem(fmt.Sprintf("--compare-fio=%s: %s", value, why))
				continue
			}
			spec.CompareFio = b
		case "rounds":
			n, why := parseIntIn(value, 1, roundsMax)
			if why != "" {
				cliProblem(fmt.Sprintf("--rounds=%s: %s", value, why))
				continue
			}
			spec.Rounds = n
		case "eta":
			if value != "auto" && value != "always" && value != "never" {
				cliProblem(fmt.Sprintf("--eta=%s: accepted: auto, always, never", value))
				continue
			}
			spec.ETA = value
		case "fio":
			if value == "" {
				cliProblem("--fio=: needs the path of the fio binary")
				continue
			}
			spec.FioPath = value
		case "name":
			if why := checkJobName(value); why != "" {
				cliProblem(fmt.Sprintf("--name=%s: %s", value, why))
				// Carry on with the job so that its options are still
				// checked, under the name as given.
			}
			// Invariant: globals are complete, because every option after
			// this --name belongs to a job.
			cur = &rawJob{name: value, opts: append([]*rawOption(nil), globals...)}
			jobs = append(jobs, cur)
		default:
			if !isJobOpt {
				cliProblem(fmt.Sprintf("unknown option --%s; accepted: %s", name, cliOptionNames))
				continue
			}
			if !hasValue {
				value = "1" // a bare flag
			}
			o := &rawOption{Option: Option{Name: name, Value: value}, def: def}
			if cur == nil {
				o.check("", false, &probs)
				globals = append(globals, o)
			} else {
				o.check(cur.name, false, &probs)
				cur.opts = append(cur.opts, o)
			}
		}
	}

	if cur == nil && !sawFile {
		jobs = append(jobs, &rawJob{name: "job", opts: globals})
	}

	defaultTarget := ""
	switch len(targets) {
	case 0:
	case 1:
		t, why := parseTargetArg(targets[0])
		if why != "" {
			cliProblem(why)
		}
		defaultTarget = t
	default:
		cliProblem(fmt.Sprintf("%d targets (%s); give one, or filename= in each job",
			len(targets), strings.Join(targets, ", ")))
	}

	if len(jobs) > jobsMax {
		cliProblem(fmt.Sprintf("%d jobs; the limit is %d", len(jobs), jobsMax))
		return nil, probs.err(len(jobs))
	}
	spec.Jobs = make([]Job, 0, len(jobs))
	for _, rj := range jobs {
		opts := rj.opts
		if rj.fromFile {
			// Command-line globals override the job file's values.
			opts = append(opts[:len(opts):len(opts)], globals...)
		}
		spec.Jobs = append(spec.Jobs, buildJob(rj, opts, defaultTarget, len(targets) > 0, &probs))
	}
	if spec.CompareFio {
		for i := range spec.Jobs {
			if j := &spec.Jobs[i]; j.IsEngine() {
				probs.add(problem{job: j.Name, text: fmt.Sprintf("--compare-fio: target %s: fio cannot drive the weft engine; compare a file:PATH target", j.Target)})
			}
		}
	}
	if err := probs.err(len(jobs)); err != nil {
		return nil, err
	}
	return spec, nil
}

// ParseJobFile parses an fio job file (see Usage); name is used in
// messages, as name:line. Problems come back as one *UsageError. Every job
// returned is valid and has a Target, so each needs filename= (ParseArgs
// instead lets a target argument supply it).
func ParseJobFile(name string, data []byte) ([]Job, error) {
	var probs problemList
	raw := parseJobFileRaw(name, data, &probs)
	jobs := make([]Job, 0, len(raw))
	for _, rj := range raw {
		jobs = append(jobs, buildJob(rj, rj.opts, "", false, &probs))
	}
	if err := probs.err(len(raw)); err != nil {
		return nil, err
	}
	return jobs, nil
}

// readJobFile reads at most jobFileBytesMax+1 bytes of the file at path, so
// that parseJobFileRaw can tell it is too large without reading it all.
func readJobFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, jobFileBytesMax+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

// parseJobFileRaw splits an fio ini file into raw jobs. Each job's options
// are the [global] options in effect at its header, then its own. It checks
// every option's value once and reports problems as name:line.
func parseJobFileRaw(name string, data []byte, probs *problemList) []*rawJob {
	if len(data) > jobFileBytesMax {
		probs.add(problem{where: name, text: fmt.Sprintf("job file is over the limit of %d bytes (1 MiB)", jobFileBytesMax)})
		return nil
	}
	const (
		beforeSection = iota
		inGlobal
		inJob
		inBadSection // options are skipped: the header was already reported
	)
	var (
		jobs         []*rawJob
		globals      []*rawOption
		cur          *rawJob
		state        = beforeSection
		tooMany      bool // the current section's option limit was reported
		problemsBase = probs.len()
	)
	text := string(data) // one copy; lines and values are substrings of it
	for lineNo := 1; text != ""; lineNo++ {
		line, rest, _ := strings.Cut(text, "\n")
		text = rest
		where := name + ":" + strconv.Itoa(lineNo)
		if len(line) > jobFileLineMax {
			probs.add(problem{where: where, text: fmt.Sprintf("line is %d bytes; the limit is %d", len(line), jobFileLineMax)})
			continue
		}
		t := strings.TrimSpace(line)
		if t == "" || t[0] == ';' || t[0] == '#' {
			continue
		}

		if t[0] == '[' {
			tooMany = false
			if len(t) < 2 || t[len(t)-1] != ']' {
				probs.add(problem{where: where, text: fmt.Sprintf("bad section header %s; expected [global] or [jobname]", showLine(t))})
				state = inBadSection
				continue
			}
			sec := strings.TrimSpace(t[1 : len(t)-1])
			if sec == "global" {
				state = inGlobal
				continue
			}
			if why := checkJobName(sec); why != "" {
				probs.add(problem{where: where, text: fmt.Sprintf("bad section header %s: %s", showLine(t), why)})
				state = inBadSection
				continue
			}
			if len(jobs) == jobsMax {
				probs.add(problem{where: where, text: fmt.Sprintf("more than %d jobs; the limit is %d", jobsMax, jobsMax)})
				return jobs
			}
			cur = &rawJob{name: sec, where: where, fromFile: true, opts: append([]*rawOption(nil), globals...)}
			jobs = append(jobs, cur)
			state = inJob
			continue
		}

		key, value, hasValue := strings.Cut(t, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		job := ""
		switch state {
		case beforeSection:
			probs.add(problem{where: where, text: fmt.Sprintf("%s: option before any section; put it under [global] or a [jobname]", showLine(t))})
			continue
		case inBadSection:
			continue
		case inJob:
			job = cur.name
		}
		def, ok := lookupJobOption(key)
		switch {
		case key == "name":
			probs.add(problem{where: where, job: job, jobAlways: true, text: showOption(key, value) + ": not accepted in a job file; the [section] header names the job"})
			continue
		case !ok:
			probs.add(problem{where: where, job: job, jobAlways: true, text: fmt.Sprintf("unknown option %s; accepted: %s", showLine(key), jobOptionNames)})
			continue
		case !hasValue && !jobOptionDefs[def].flag:
			probs.add(problem{where: where, job: job, jobAlways: true, text: fmt.Sprintf("%s: needs a value (%s=VALUE)", key, key)})
			continue
		case !hasValue:
			value = "1" // a bare flag
		}
		opts := &globals
		if state == inJob {
			opts = &cur.opts
		}
		if len(*opts) >= jobOptionsMax {
			if !tooMany {
				probs.add(problem{where: where, job: job, jobAlways: true, text: fmt.Sprintf("more than %d options apply; the limit is %d", jobOptionsMax, jobOptionsMax)})
				tooMany = true
			}
			continue
		}
		o := &rawOption{Option: Option{Name: key, Value: value}, def: def, where: where}
		o.check(job, true, probs)
		*opts = append(*opts, o)
	}
	if len(jobs) == 0 && probs.len() == problemsBase {
		probs.add(problem{where: name, text: "no jobs; a job file needs a [jobname] section"})
	}
	return jobs
}

// showLine renders a job file fragment for a message, quoted if it would not
// read plainly.
func showLine(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return s
}

// buildJob applies opts, in order, to a default Job, then checks the rules
// that tie options together. Options whose value was rejected are skipped,
// and so are the rules they take part in, so that one mistake is reported
// once. defaultTarget is used when no filename= applies; targetGiven says a
// target argument was given (and reported if it was bad).
func buildJob(rj *rawJob, opts []*rawOption, defaultTarget string, targetGiven bool, probs *problemList) Job {
	j := defaultJob(rj.name)
	if len(opts) > jobOptionsMax {
		probs.add(problem{where: rj.where, job: rj.name, jobAlways: rj.fromFile,
			text: fmt.Sprintf("%d options apply; the limit is %d", len(opts), jobOptionsMax)})
		return j
	}
	var last [optCount]*rawOption // the option that set each field
	for _, o := range opts {
		last[o.def] = o
		if o.bad {
			continue
		}
		if why := jobOptionDefs[o.def].set(&j, o.Value); why != "" {
			panic(fmt.Sprintf("bench: option %s=%q passed its check but then failed: %s", o.Name, o.Value, why))
		}
		j.Options = append(j.Options, o.Option)
	}
	if j.Target == "" {
		j.Target = defaultTarget
	}

	good := func(defs ...int) bool {
		for _, d := range defs {
			if last[d] != nil && last[d].bad {
				return false
			}
		}
		return true
	}
	report := func(def int, why string) {
		o := last[def]
		if o == nil {
			// Invariant: each rule below fails only on a value given, as the
			// defaults satisfy them all.
			panic(fmt.Sprintf("bench: job %s: default %s broke a rule: %s", rj.name, jobOptionDefs[def].name, why))
		}
		probs.add(problem{where: o.where, job: rj.name, jobAlways: rj.fromFile, text: showOption(o.Name, o.Value) + ": " + why})
	}
	// The target's scheme decides which options apply; "" while the
	// target is missing or bad (reported elsewhere).
	scheme, _ := targetScheme(j.Target)
	if j.Direct && j.BlockSize%directAlign != 0 && scheme != schemeEngine && good(optBS, optDirect) {
		report(optBS, "with direct=1 must be a multiple of 4096 bytes (the O_DIRECT alignment)")
	}
	if j.IOEngine == EnginePsync && j.IODepth != 1 && scheme != schemeEngine && good(optIOEngine, optIODepth) {
		report(optIODepth, "with ioengine=psync must be 1 (psync has one I/O in flight)")
	}
	// NB: options of the other target kind (engine_* for file:, direct=,
	// fixedbufs, registerfiles and sqthread_poll for engine:) are ignored,
	// not refused, so that one job file or [global] section can drive a
	// file and an engine side by side.
	if scheme == schemeEngine {
		checkEngineJob(&j, last[optEngineObjectSize] != nil, good, report)
	}
	if scheme == schemeWeft {
		checkWeftJob(&j, last[optWeftChunkSize] != nil, good, report, func(text string) {
			probs.add(problem{where: rj.where, job: rj.name, jobAlways: rj.fromFile, text: text})
		})
	}
	if j.TimeBased && j.Runtime <= 0 && good(optTimeBased, optRuntime) {
		report(optTimeBased, "needs runtime greater than 0")
	}
	if j.Size > 0 && j.Size < j.BlockSize && good(optSize, optBS) {
		bs := formatSize(j.BlockSize)
		if last[optBS] != nil {
			bs = last[optBS].Value
		}
		report(optSize, "must be at least bs="+bs)
	}
	if j.Target == "" && good(optFilename) && !targetGiven {
		probs.add(problem{where: rj.where, job: rj.name, jobAlways: rj.fromFile, text: "no target; give file:PATH, engine:PATH, weft://ADDR/CONTAINER or filename="})
	}
	return j
}

// checkEngineJob checks the rules an engine: target adds; objSizeGiven
// says engine_object_size was given; good and report are buildJob's.
func checkEngineJob(j *Job, objSizeGiven bool, good func(...int) bool, report func(int, string)) {
	if j.IOEngine == EnginePsync && good(optIOEngine) {
		report(optIOEngine, "not accepted with an engine: target, which the weft engine drives through its own queues; leave ioengine out")
	}
	if j.Fsync > 0 && good(optFsync) {
		report(optFsync, "not accepted with an engine: target: every engine write is durable when it completes, so there is nothing to fsync")
	}
	if j.ReadPercent() < 100 && j.BlockSize > engine.MaxWriteBytes && good(optBS, optRW, optRWMixRead) {
		report(optBS, fmt.Sprintf("with an engine: target and writes must be at most %s (the engine's largest write)", formatSize(engine.MaxWriteBytes)))
	}
	if j.Engine.ObjectSize%j.BlockSize != 0 && good(optBS, optEngineObjectSize) {
		// Either was given: the defaults (4k, 1m) agree.
		if objSizeGiven {
			report(optEngineObjectSize, fmt.Sprintf("must be a multiple of bs=%s, so that no I/O spans two objects", formatSize(j.BlockSize)))
		} else {
			report(optBS, fmt.Sprintf("must divide engine_object_size (default %s), so that no I/O spans two objects; give engine_object_size= a multiple of bs", formatSize(j.Engine.ObjectSize)))
		}
	}
}

// checkJobName returns "" or why name cannot name a job. Names must survive
// being written as an ini [section] header.
func checkJobName(name string) string {
	switch {
	case name == "":
		return "job name must not be empty"
	case name == "global":
		return "global names the [global] section, not a job"
	case len(name) > argValueMax:
		return fmt.Sprintf("job name is %d bytes; the limit is %d", len(name), argValueMax)
	case strings.ContainsAny(name, "[]"):
		return "job name must not contain [ or ]"
	case strings.ContainsFunc(name, unicode.IsControl):
		return "job name must not contain control characters"
	case strings.TrimSpace(name) != name:
		return "job name must not begin or end with white space"
	}
	return ""
}

// checkArgValue returns "" or why a command-line value is not accepted. The
// rules make every accepted value fit a job file line.
func checkArgValue(v string) string {
	switch {
	case len(v) > argValueMax:
		return fmt.Sprintf("value is %d bytes; the limit is %d", len(v), argValueMax)
	case strings.ContainsFunc(v, unicode.IsControl):
		return fmt.Sprintf("value %q contains control characters", v)
	}
	return ""
}

// Target schemes. path: is not runnable yet.
var targetSchemes = []string{schemeFile, schemeEngine, "path:", schemeWeft}

func isTargetArg(arg string) bool {
	for _, s := range targetSchemes {
		if strings.HasPrefix(arg, s) {
			return true
		}
	}
	return false
}

// parseTargetArg turns a target argument into a Job.Target, or says why it
// cannot, as a whole problem line (without "bench: ").
func parseTargetArg(arg string) (string, string) {
	scheme, path := targetScheme(arg)
	if scheme == "" {
		return "", fmt.Sprintf("target %s: not supported yet; accepted: file:PATH, engine:PATH, weft://ADDR/CONTAINER", arg)
	}
	if len(arg) > argValueMax {
		return "", fmt.Sprintf("target is %d bytes; the limit is %d", len(arg), argValueMax)
	}
	if why := checkPath(path); why != "" {
		return "", fmt.Sprintf("target %s: %s; accepted: %sPATH", showLine(arg), why, scheme)
	}
	return arg, ""
}

// parseFilename turns a filename= value (PATH, file:PATH or engine:PATH)
// into a Job.Target, "file:PATH" or "engine:PATH", or says why it cannot.
func parseFilename(v string) (string, string) {
	const accepted = "accepted: a path, file:PATH, engine:PATH or weft://ADDR/CONTAINER"
	scheme, path := targetScheme(v)
	if scheme == "" && isTargetArg(v) {
		return "", "not supported yet; " + accepted
	}
	if scheme == "" {
		scheme = schemeFile
	}
	if why := checkPath(path); why != "" {
		return "", why + "; " + accepted
	}
	return scheme + path, ""
}

func checkPath(path string) string {
	switch {
	case path == "":
		return "empty path"
	case strings.ContainsFunc(path, unicode.IsControl):
		return "path contains control characters"
	case strings.TrimSpace(path) != path:
		return "path begins or ends with white space"
	}
	return ""
}

func parsePattern(v string) (Pattern, bool) {
	if v == "rw" {
		return PatternReadWrite, true
	}
	for p := PatternRead; p <= PatternReadWrite; p++ {
		if v == p.String() {
			return p, true
		}
	}
	return 0, false
}

// parseFlag parses a boolean option's value: 1 or 0.
func parseFlag(v, name string) (bool, string) {
	switch v {
	case "1":
		return true, ""
	case "0":
		return false, ""
	}
	return false, fmt.Sprintf("accepted: 1 or 0 (or bare %s)", name)
}

// parseIntIn parses a decimal integer in [lo, hi].
func parseIntIn(v string, lo, hi int) (int, string) {
	n, err := strconv.Atoi(v)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return 0, fmt.Sprintf("not a whole number; accepted: %d to %d", lo, hi)
	case err != nil || n < lo || n > hi:
		return 0, fmt.Sprintf("must be between %d and %d", lo, hi)
	}
	return n, ""
}

// sizeUnits are fio's size suffixes. All are powers of 1024, as with fio's
// default kb_base=1024.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"", 1},
	{"k", 1 << 10}, {"kb", 1 << 10}, {"kib", 1 << 10},
	{"m", 1 << 20}, {"mb", 1 << 20}, {"mib", 1 << 20},
	{"g", 1 << 30}, {"gb", 1 << 30}, {"gib", 1 << 30},
	{"t", 1 << 40}, {"tb", 1 << 40}, {"tib", 1 << 40},
}

const sizeAccepted = "accepted: a whole number of bytes, optionally followed by k, m, g or t " +
	"(or kb, kib, ...: powers of 1024), e.g. 4k"

// parseSize parses an fio size, or says why it cannot.
func parseSize(s string) (int64, string) {
	digits, suffix := splitDigits(s)
	if digits == "" {
		if strings.HasPrefix(s, "-") {
			return 0, "must not be negative"
		}
		return 0, "not a size; " + sizeAccepted
	}
	mult := int64(0)
	for _, u := range sizeUnits {
		if strings.EqualFold(suffix, u.suffix) {
			mult = u.mult
			break
		}
	}
	if mult == 0 {
		return 0, fmt.Sprintf("unknown suffix %q; %s", suffix, sizeAccepted)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, "too large; the limit is 8 EiB"
	}
	return n * mult, ""
}

// timeUnits are fio's time suffixes; a bare number is seconds.
var timeUnits = []struct {
	suffix string
	unit   time.Duration
}{
	{"", time.Second},
	{"us", time.Microsecond},
	{"ms", time.Millisecond},
	{"s", time.Second},
	{"m", time.Minute},
	{"h", time.Hour},
	{"d", 24 * time.Hour},
}

const timeAccepted = "accepted: a whole number, optionally followed by us, ms, s, m, h or d " +
	"(seconds if bare), e.g. 30s"

// parseDuration parses an fio time, or says why it cannot.
func parseDuration(s string) (time.Duration, string) {
	digits, suffix := splitDigits(s)
	if digits == "" {
		if strings.HasPrefix(s, "-") {
			return 0, "must not be negative"
		}
		return 0, "not a time; " + timeAccepted
	}
	unit := time.Duration(0)
	for _, u := range timeUnits {
		if strings.EqualFold(suffix, u.suffix) {
			unit = u.unit
			break
		}
	}
	if unit == 0 {
		return 0, fmt.Sprintf("unknown unit %q; %s", suffix, timeAccepted)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > math.MaxInt64/int64(unit) {
		return 0, "too long; the limit is 106751d"
	}
	return time.Duration(n) * unit, ""
}

// splitDigits splits s after its leading ASCII digits.
func splitDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:]
}

// ParseSize parses an fio size: a whole number of bytes with an optional
// case-insensitive suffix k, kb, kib, m, mb, mib, g, gb, gib, t, tb or tib,
// all powers of 1024. Fractions, signs and overflow are errors.
func ParseSize(s string) (int64, error) {
	n, why := parseSize(s)
	if why != "" {
		return 0, fmt.Errorf("bench: size %q: %s", s, why)
	}
	return n, nil
}

// ParseDuration parses an fio time: a whole number with an optional
// case-insensitive unit us, ms, s, m (minutes), h or d; a bare number is
// seconds. Fractions, signs and overflow are errors.
func ParseDuration(s string) (time.Duration, error) {
	d, why := parseDuration(s)
	if why != "" {
		return 0, fmt.Errorf("bench: time %q: %s", s, why)
	}
	return d, nil
}

// formatSize writes n in the largest size unit that divides it exactly, so
// that parseSize reads it back as n.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"t", 1 << 40}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// formatDuration writes d in the largest time unit that divides it exactly.
// NB: fio times have no unit below a microsecond; a finer d is truncated.
func formatDuration(d time.Duration) string {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}} {
		if d != 0 && d%u.unit == 0 {
			return strconv.FormatInt(int64(d/u.unit), 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(d/time.Microsecond), 10) + "us"
}

// FormatJobFile writes jobs as an fio job file that ParseJobFile reads back
// to equal Jobs: each job's Options in order, then any option needed for a
// field its Options do not produce (such as a Target that came from a target
// argument). Options shared by a run of jobs are written once, in [global]
// sections, as fio's own files do, so the output is about as large as the
// job file the jobs came from. The jobs must be valid, as ParseArgs and
// ParseJobFile return them.
func FormatJobFile(jobs []Job) []byte {
	// Only job file options can be written; skip anything else.
	opts := make([][]Option, len(jobs))
	for i := range jobs {
		for _, o := range jobs[i].Options {
			if _, ok := lookupJobOption(o.Name); ok {
				opts[i] = append(opts[i], o)
			}
		}
	}
	// shared[i] is how many leading options job i takes from [global]: the
	// longest prefix common to jobs i.. onwards, which grows with i as a
	// [global] section can only add options for the jobs after it. The last
	// job shares only what the one before it does.
	shared := make([]int, len(jobs))
	if n := len(jobs); n > 1 {
		common := len(opts[n-1])
		for i := n - 2; i >= 0; i-- {
			common = commonPrefixLen(opts[i], opts[i+1][:common])
			shared[i] = common
		}
		shared[n-1] = shared[n-2]
	}

	var b strings.Builder
	written := 0 // options written in [global] so far
	header := func(name string) {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("[" + name + "]\n")
	}
	for i := range jobs {
		if shared[i] > written {
			header("global")
			writeOptions(&b, opts[i][written:shared[i]])
			written = shared[i]
		}
		name := jobs[i].Name
		if name == "" {
			name = "job"
		}
		header(name)
		writeOptions(&b, opts[i][written:])
		writeOptions(&b, missingOptions(&jobs[i], opts[i]))
	}
	return []byte(b.String())
}

func writeOptions(b *strings.Builder, opts []Option) {
	for _, o := range opts {
		b.WriteString(o.Name)
		b.WriteByte('=')
		b.WriteString(o.Value)
		b.WriteByte('\n')
	}
}

func commonPrefixLen(a, b []Option) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// missingOptions returns the options that, written after opts, turn what
// opts alone make of a job into j.
func missingOptions(j *Job, opts []Option) []Option {
	got := defaultJob(j.Name)
	for _, o := range opts {
		def, _ := lookupJobOption(o.Name)
		jobOptionDefs[def].set(&got, o.Value) // a bad value leaves got as it was
	}
	var out []Option
	add := func(def int, value string) {
		out = append(out, Option{Name: jobOptionDefs[def].name, Value: value})
	}
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	if j.Target != got.Target && j.Target != "" {
		add(optFilename, j.Target)
	}
	if j.Pattern != got.Pattern {
		add(optRW, j.Pattern.String())
	}
	if j.BlockSize != got.BlockSize {
		add(optBS, formatSize(j.BlockSize))
	}
	if j.Size != got.Size && j.Size != 0 {
		add(optSize, formatSize(j.Size))
	}
	if j.IODepth != got.IODepth {
		add(optIODepth, strconv.Itoa(j.IODepth))
	}
	if j.NumJobs != got.NumJobs {
		add(optNumJobs, strconv.Itoa(j.NumJobs))
	}
	if j.Runtime != got.Runtime {
		add(optRuntime, formatDuration(j.Runtime))
	}
	if j.TimeBased != got.TimeBased {
		add(optTimeBased, flag(j.TimeBased))
	}
	if j.RampTime != got.RampTime {
		add(optRampTime, formatDuration(j.RampTime))
	}
	if j.Direct != got.Direct {
		add(optDirect, flag(j.Direct))
	}
	if j.Fsync != got.Fsync {
		add(optFsync, strconv.Itoa(j.Fsync))
	}
	if j.IOEngine != got.IOEngine {
		add(optIOEngine, j.IOEngine.String())
	}
	if j.RWMixRead != got.RWMixRead {
		add(optRWMixRead, strconv.Itoa(j.RWMixRead))
	}
	if j.GroupReporting != got.GroupReporting {
		add(optGroupReporting, flag(j.GroupReporting))
	}
	if j.LatPercentiles != got.LatPercentiles {
		add(optLatPercentiles, flag(j.LatPercentiles))
	}
	if j.IODepthBatch != got.IODepthBatch {
		add(optIODepthBatch, strconv.Itoa(j.IODepthBatch))
	}
	if j.FixedBufs != got.FixedBufs {
		add(optFixedBufs, flag(j.FixedBufs))
	}
	if j.RegisterFiles != got.RegisterFiles {
		add(optRegisterFiles, flag(j.RegisterFiles))
	}
	if j.SQThreadPoll != got.SQThreadPoll {
		add(optSQThreadPoll, flag(j.SQThreadPoll))
	}
	if j.BatchCompleteMin != got.BatchCompleteMin {
		add(optBatchCompleteMin, strconv.Itoa(j.BatchCompleteMin))
	}
	if j.BatchCompleteMax != got.BatchCompleteMax {
		add(optBatchCompleteMax, strconv.Itoa(j.BatchCompleteMax))
	}
	if j.Engine.ObjectSize != got.Engine.ObjectSize {
		add(optEngineObjectSize, formatSize(j.Engine.ObjectSize))
	}
	if j.Engine.Fill != got.Engine.Fill {
		add(optEngineFill, strconv.FormatFloat(j.Engine.Fill, 'g', -1, 64))
	}
	if j.Engine.SegmentSize != got.Engine.SegmentSize && j.Engine.SegmentSize != 0 {
		add(optEngineSegmentSize, formatSize(j.Engine.SegmentSize))
	}
	if j.Engine.Shards != got.Engine.Shards {
		add(optEngineShards, strconv.Itoa(j.Engine.Shards))
	}
	if !slices.Equal(j.Engine.Cores, got.Engine.Cores) && len(j.Engine.Cores) > 0 {
		add(optEngineCores, formatCPUList(j.Engine.Cores))
	}
	if j.Engine.Mode != got.Engine.Mode {
		add(optEngineMode, j.Engine.Mode.String())
	}
	if j.Engine.PLP != got.Engine.PLP {
		add(optEnginePLP, "1")
	}
	if j.Engine.RecordSize != got.Engine.RecordSize && j.Engine.RecordSize != 0 {
		add(optEngineRecordSize, formatSize(int64(j.Engine.RecordSize)))
	}
	return out
}
