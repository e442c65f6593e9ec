package bench

import (
	"strings"
	"time"

	"github.com/weftfs/weft/engine"
)

// Target schemes: the prefix of Job.Target that says what drives the I/O.
const (
	// schemeFile: a file or block device, through io_uring or psync.
	schemeFile = "file:"
	// schemeEngine: the weft storage engine, in-process, on the device at
	// the path; offsets map to objects (see EngineOptions.ObjectSize).
	schemeEngine = "engine:"
	// schemeWeft: a running weft node, weft://ADDR/CONTAINER, through the
	// chunk client (package fsproto), or a cluster, weft://ADDR[,ADDR...]/NAME
	// (the managers, a container name), through the cluster client (package
	// fsproto/client); offsets map to chunks (see WeftOptions.ChunkSize).
	schemeWeft = "weft://"
)

// Pattern is fio's rw= value: the direction and order of a job's I/O.
type Pattern int

// Values of rw=, named as fio names them. The numbering is internal; the
// fio spelling (String) is what appears in job files and JSON.
const (
	PatternRead      Pattern = iota // rw=read: sequential reads
	PatternWrite                    // rw=write: sequential writes
	PatternRandRead                 // rw=randread
	PatternRandWrite                // rw=randwrite
	PatternRandRW                   // rw=randrw: random mix, rwmixread percent reads
	PatternReadWrite                // rw=readwrite (alias rw=rw): sequential mix
)

// IOEngine is fio's ioengine= value for the file target.
type IOEngine int

const (
	// EngineIOUring drives the target through an ioring.Ring (io_uring, or the
	// thread-pool backend when io_uring is unavailable).
	EngineIOUring IOEngine = iota
	// EnginePsync issues one blocking pread/pwrite at a time, like fio's psync;
	// iodepth must then be 1.
	EnginePsync
)

// Option is one name=value pair as the user wrote it, kept in order so that
// the JSON "job options" map can echo it like fio does.
type Option struct {
	Name, Value string
}

// Job is one fio job section with [global] and defaults applied and every
// value validated. A Job with NumJobs > 1 is run as NumJobs identical clones.
type Job struct {
	Name           string
	Target         string // "file:PATH" or "engine:PATH"; a bare filename= path means file:PATH
	Pattern        Pattern
	BlockSize      int64         // bs=, bytes; default 4096
	Size           int64         // size=, bytes per job clone; required unless the target exists
	IODepth        int           // iodepth=, default 1
	NumJobs        int           // numjobs=, default 1
	Runtime        time.Duration // runtime=; 0 = until Size is done (or forever if TimeBased... see Validate)
	TimeBased      bool          // time_based: loop over Size until Runtime
	RampTime       time.Duration // ramp_time=: I/O done before this is not counted
	Direct         bool          // direct=1: O_DIRECT
	Fsync          int           // fsync=N: an fsync after every N writes; 0 = never
	IOEngine       IOEngine      // ioengine=io_uring|psync, default io_uring
	RWMixRead      int           // rwmixread=, percent reads for mixed patterns; default 50
	GroupReporting bool          // group_reporting: one report for all clones of a job
	LatPercentiles bool          // lat_percentiles: report percentiles of the total latency (slat+clat) too
	IODepthBatch   int           // iodepth_batch_submit=: I/Os submitted together; 0 = IODepth; default 1
	FixedBufs      bool          // fixedbufs: registered buffers (READ_FIXED/WRITE_FIXED)
	RegisterFiles  bool          // registerfiles: registered file
	SQThreadPoll   bool          // sqthread_poll: kernel SQ polling thread
	// BatchCompleteMin and BatchCompleteMax are fio's
	// iodepth_batch_complete_min/max: a reap waits for at least Min
	// completions (0: never waits) and takes at most Max (0: Min, or 1 when
	// Min is 0... see runRing), so by default one completion is reaped
	// before the queue is topped up again, keeping it full.
	BatchCompleteMin int
	BatchCompleteMax int
	// Engine holds the weft-only engine_* options; they apply to engine:
	// targets only.
	Engine EngineOptions
	// Weft holds the weft-only weft_* options; they apply to weft://
	// targets only.
	Weft    WeftOptions
	Options []Option // as given, [global] first, for JSON "job options"
}

// EngineOptions are the options of an engine: target, weft's own (fio has
// no such ioengine). Every job naming the same engine:PATH shares one
// engine, so they must agree on all of them.
type EngineOptions struct {
	// ObjectSize is engine_object_size=: the job's byte offset o is
	// offset o%ObjectSize of object {Hi: 0, Lo: o/ObjectSize}. A multiple
	// of the block size, so no I/O spans two objects; default 1 MiB.
	ObjectSize int64
	// Fill is engine_fill=: a device the run creates gets Size/Fill bytes
	// of segment space (0 < Fill <= 0.9); default 0.5. It has no effect
	// on an existing device.
	Fill float64
	// SegmentSize is engine_segment_size=: the segment size of a device
	// the run creates; 0 (the default) means the engine's default (32
	// MiB), or less to give a new device at least 64 segments (see
	// engineSegmentSize), and whatever an existing device has.
	SegmentSize int64
	// Shards is engine_shards=: reactors; default 1.
	Shards int
	// RecordSize is engine_record_size=: the largest record a write is
	// stored as (engine.Options.RecordBytes); 0, the default, is the
	// engine's (16 KiB).
	RecordSize int
	// Cores is engine_cores=: CPUs the reactors are pinned to (reactor i
	// on Cores[i%len]); default none, no pinning.
	Cores []int
	// Mode is engine_mode=: how idle reactors wait; default hybrid.
	Mode engine.PollMode
	// PLP is engine_plp=1: a device the run creates is formatted as
	// power-loss protected, so the engine skips flushes (it measures the
	// log without the device's flush cost; only true of devices with
	// power-loss protection).
	PLP bool
}

// targetScheme splits a Job.Target into its scheme (schemeFile or
// schemeEngine) and path; scheme is "" for anything else.
func targetScheme(target string) (scheme, path string) {
	for _, s := range []string{schemeFile, schemeEngine, schemeWeft} {
		if p, ok := strings.CutPrefix(target, s); ok {
			return s, p
		}
	}
	return "", target
}

// IsEngine reports whether the job drives the weft engine (an engine:
// target) rather than a file.
func (j *Job) IsEngine() bool { return strings.HasPrefix(j.Target, schemeEngine) }

// IsRandom reports whether the job picks offsets at random.
func (j *Job) IsRandom() bool {
	return j.Pattern == PatternRandRead || j.Pattern == PatternRandWrite || j.Pattern == PatternRandRW
}

// ReadPercent is the share of I/Os that are reads, 0..100.
func (j *Job) ReadPercent() int {
	switch j.Pattern {
	case PatternRead, PatternRandRead:
		return 100
	case PatternWrite, PatternRandWrite:
		return 0
	default:
		return j.RWMixRead
	}
}
