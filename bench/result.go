package bench

import (
	"math"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/weftfs/weft/engine"
)

// Latency histograms record nanoseconds from 1 ns to latencyMax with three
// significant digits, as fio's percentiles need.
const latencyMax = int64(60 * time.Second)

func newLatencyHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, latencyMax, 3)
}

// DirStats is what one job clone (or a group) did in one direction
// (read or write), counted after ramp_time.
type DirStats struct {
	IOBytes  int64 // bytes transferred
	TotalIOs int64 // I/Os completed
	ShortIOs int64 // I/Os that completed short and were resubmitted for the rest
	Runtime  time.Duration
	// Slat: from the I/O being prepared to its submission system call returning.
	// Clat: from submission returning to the completion being reaped.
	// Lat: Slat + Clat. Same definitions as fio's slat_ns, clat_ns, lat_ns.
	Slat, Clat, Lat *hdrhistogram.Histogram
	// PerSecondBytes and PerSecondIOs hold what completed in each whole
	// second of Runtime, for fio's bw_min/bw_max/bw_mean/bw_dev and iops_*.
	PerSecondBytes []int64
	PerSecondIOs   []int64
}

// JobResult is one job clone's outcome, or a group's when group_reporting
// merged its clones.
type JobResult struct {
	Job         *Job
	Clones      int // 1, or NumJobs when merged by group_reporting
	Backend     string
	Read, Write DirStats
	Sync        *hdrhistogram.Histogram // fsync latencies, ns
	Elapsed     time.Duration           // wall time including ramp
	Runtime     time.Duration           // measured time, after ramp
	UsrCPU      float64                 // percent of one CPU, over Runtime
	SysCPU      float64
	Ctx         int64 // context switches
	Err         error
	// Engine is what an engine: target's engine did while the jobs ran
	// (nil for other targets): the same figures for every job of that
	// target, since its jobs share the engine.
	Engine *EngineActivity
}

// EngineActivity is what an engine did between two snapshots of its stats:
// group commits, device reads and submits, and the cleaner's work. A
// benchmark of the engine without the cleaner reads CleanerSegments 0; one
// with it sees what the cleaner moved for the writes it measured. It is
// also the JSON output's weft_engine.
type EngineActivity struct {
	Batches         uint64  `json:"batches"` // group commits
	Records         uint64  `json:"records"` // the records they carried
	RecordsPerBatch float64 `json:"records_per_batch"`
	DeviceReads     uint64  `json:"device_reads"`
	DeviceSubmits   uint64  `json:"device_submits"`          // io_uring_enter calls that handed the device work
	CleanerSegments uint64  `json:"cleaner_segments"`        // segments the cleaner emptied
	CleanerBytes    uint64  `json:"cleaner_relocated_bytes"` // live bytes it relocated to do so
	CleanerReads    uint64  `json:"cleaner_device_reads"`    // device reads of its victims
	FreeBytes       uint64  `json:"free_bytes"`              // free segment space at the end
}

// engineActivity is b → a, both Stats of one engine.
func engineActivity(b, a *engine.Stats) *EngineActivity {
	sum := func(st *engine.Stats, f func(*engine.ShardStats) uint64) uint64 {
		var n uint64
		for i := range st.Shards {
			n += f(&st.Shards[i])
		}
		return n
	}
	delta := func(f func(*engine.ShardStats) uint64) uint64 { return sum(a, f) - sum(b, f) }
	e := &EngineActivity{
		Batches:         delta(func(s *engine.ShardStats) uint64 { return s.Batches }),
		Records:         delta(func(s *engine.ShardStats) uint64 { return s.Records }),
		DeviceReads:     delta(func(s *engine.ShardStats) uint64 { return s.DeviceReads }),
		DeviceSubmits:   delta(func(s *engine.ShardStats) uint64 { return s.DeviceSubmits }),
		CleanerSegments: delta(func(s *engine.ShardStats) uint64 { return s.Cleaner.SegmentsCleaned }),
		CleanerBytes:    delta(func(s *engine.ShardStats) uint64 { return s.Cleaner.BytesRelocated }),
		CleanerReads:    delta(func(s *engine.ShardStats) uint64 { return s.Cleaner.DeviceReads }),
		FreeBytes:       a.Free,
	}
	if e.Batches > 0 {
		e.RecordsPerBatch = math.Round(100*float64(e.Records)/float64(e.Batches)) / 100
	}
	return e
}

// Result is one weft bench run.
type Result struct {
	Version string
	Start   time.Time
	Jobs    []JobResult
	// Notes are lines the human summary prints before the jobs: one per
	// engine: target, naming its device, size and polling mode. The JSON
	// output leaves them out, to keep fio's shape.
	Notes []string
}
