package bench

import "time"

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
	Target         string // "file:/path"; a bare path means file:PATH
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
	Options          []Option // as given, [global] first, for JSON "job options"
}

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
