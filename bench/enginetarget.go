package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/internal/vfs"
	"github.com/weftfs/weft/ioring"
)

// This file is the engine: target: the weft storage engine (package
// engine) in-process, driven through its asynchronous Request API by the
// same clone loop (runQueue), with the same job vocabulary and reports, as
// a file is through io_uring.
//
// A job's byte range maps onto objects of EngineOptions.ObjectSize bytes;
// an I/O never spans two objects, as the object size is a multiple of bs:
//
//	job offset  0             objSize         2*objSize            size
//	            +---------------+---------------+------ ... ------+
//	            | object {0, 0} | object {0, 1} |                 |
//	            +---------------+---------------+------ ... ------+
//
//	offset o  ->  offset o % objSize of object ObjectID{Hi: 0, Lo: o / objSize}
//
// All jobs naming the same engine:PATH share one engine (and so one object
// space, as jobs naming one file share its blocks). Its life in a run:
//
//   - Preflight (inspectEngineTarget, addJob for each job, plan) writes
//     nothing: it reads an existing device's superblock, checks the jobs
//     agree and fit, and sizes a device to create.
//   - Prepare (create) writes a missing device in full with zeros, so that
//     first writes do not allocate file blocks, and formats it.
//   - Run opens it (open), writes the range the reading jobs need unless
//     the engine already holds it (layout), runs the clones, and closes it
//     (close) once they have all stopped.

const (
	// engineSegmentDef is the engine's default segment size, which bench
	// passes explicitly so that it can size a device in whole segments.
	engineSegmentDef = 32 << 20
	// engineSegmentsMin is how many segments a device the run creates
	// has at least when engine_segment_size is not given (the segment
	// size shrinks, to 1 MiB at most, to get them): the segments the
	// engine holds back for its cleaner and keeps open per shard are then
	// a small share of the device, and a small job does not run out of
	// space at engine_fill=0.5.
	engineSegmentsMin = 64
	// engineLayoutChunk is the largest write of layout; at most
	// engineLayoutDepth of them are in flight.
	engineLayoutChunk = 1 << 20
	engineLayoutDepth = 32
	// engineSizingRounds bounds engineDeviceSize's search.
	engineSizingRounds = 64
)

// engineTarget is the state of one engine: target, shared by the jobs
// naming it.
type engineTarget struct {
	target   string        // "engine:PATH"
	path     string        // PATH
	opts     EngineOptions // the first job's; every job must agree
	firstJob string        // that job's name, for messages
	// sb is an existing device's superblock (Preflight), or that of the
	// device create formatted.
	sb       *engine.Superblock
	emptyNow bool  // an empty regular file exists: create reuses it
	devSize  int64 // bytes of the device create writes (plan)
	segSize  int64 // its segment size (plan)
	readNeed int64 // bytes from job offset 0 that reading jobs need written
	layoutBS int64 // the largest bs of the reading jobs: layout writes in it
	// bsWrite is the largest bs of a job that writes, and bsWriteJob
	// that job's name: a write must fit in a segment.
	bsWrite    int64
	bsWriteJob string
	created    bool           // create made the device in this run
	laidOut    int64          // bytes layout wrote
	e          *engine.Engine // open between open and close
}

// engineAddr maps job offset off to the object holding it and the offset
// in that object.
func engineAddr(off, objSize int64) (engine.ObjectID, uint64) {
	return engine.ObjectID{Hi: 0, Lo: uint64(off / objSize)}, uint64(off % objSize)
}

// inspectEngineTarget resolves engine:PATH without writing anything. A
// missing or empty file is to be created. Anything else must hold a weft
// device that no other engine has open.
func inspectEngineTarget(path string) (*target, error) {
	name := schemeEngine + path
	t := &target{scheme: schemeEngine, path: path, eng: &engineTarget{target: name, path: path}}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := checkCreatable(name, path); err != nil {
			return nil, err
		}
		t.created = true
		return t, nil
	case err != nil:
		return nil, fmt.Errorf("target %s: %v", name, err)
	}
	switch {
	case st.Mode().IsRegular():
		if st.Size() == 0 {
			// An empty file (from mktemp, say) holds nothing to lose.
			if unix.Access(path, unix.W_OK) != nil {
				return nil, fmt.Errorf("target %s: %s is not writable", name, path)
			}
			t.created, t.eng.emptyNow = true, true
			return t, nil
		}
	case st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0:
		t.blockDev = true
	default:
		return nil, fmt.Errorf("target %s: is a %s; accepted: a regular file or a block device", name, describeMode(st.Mode()))
	}
	f, err := vfs.Default.Open(path)
	if err != nil {
		return nil, fmt.Errorf("target %s: cannot open for reading: %v", name, err)
	}
	sb, _, err := engine.ReadSuperblock(f)
	f.Close()
	switch {
	case errors.Is(err, engine.ErrNotWeft) && t.blockDev:
		return nil, fmt.Errorf("target %s: %s holds no weft device; format it first (weft format %s), which erases it", name, path, path)
	case errors.Is(err, engine.ErrNotWeft):
		return nil, fmt.Errorf("target %s: %s exists but holds no weft device; delete it, and weft bench creates and formats a new one there", name, path)
	case err != nil:
		return nil, fmt.Errorf("target %s: %v", name, err)
	}
	// Fail now, before anything is written, if another engine has it.
	lock, err := vfs.Default.Lock(path)
	if err != nil {
		return nil, fmt.Errorf("target %s: %v (is another engine or weft bench using it?)", name, err)
	}
	lock.Close()
	t.eng.sb = sb
	t.size = int64(sb.DeviceSize)
	return t, nil
}

// addJob checks job j against the target and accounts for what it needs.
// It returns "" or the problem, worded to follow "job NAME: ".
func (et *engineTarget) addJob(t *target, j *Job) string {
	if et.firstJob == "" {
		et.opts, et.firstJob = j.Engine, j.Name
	} else if name, mine, theirs := diffEngineOptions(j.Engine, et.opts); name != "" {
		return fmt.Sprintf("%s=%s differs from job %s's %s=%s; the jobs on %s share one engine and must agree", name, mine, et.firstJob, name, theirs, et.target)
	}
	if j.Size == 0 {
		return fmt.Sprintf("target %s needs size= (the bytes the job addresses), e.g. --size=1g", et.target)
	}
	if j.Size < j.BlockSize {
		return fmt.Sprintf("size=%d is smaller than bs=%d", j.Size, j.BlockSize)
	}
	if sb := et.sb; sb != nil {
		seg := int64(sb.SegmentSize)
		space := int64(sb.SegmentCount) * seg
		if j.Engine.SegmentSize != 0 && j.Engine.SegmentSize != seg {
			return fmt.Sprintf("engine_segment_size=%s: the existing device %s has segments of %s; leave engine_segment_size out, or delete the device to have it created anew",
				formatSize(j.Engine.SegmentSize), et.path, formatSize(seg))
		}
		if float64(j.Size) > engineFillMax*float64(space) {
			return fmt.Sprintf("size=%s is more than 90%% of the %s of segment space on the existing device %s, too full for the engine's cleaner; lower size, or delete the device to have it created at size/engine_fill",
				fmtBytes(j.Size), fmtBytes(space), et.path)
		}
	}
	t.need = max(t.need, j.Size)
	if j.ReadPercent() > 0 {
		et.readNeed = max(et.readNeed, j.Size)
		et.layoutBS = max(et.layoutBS, j.BlockSize)
	}
	if j.ReadPercent() < 100 && j.BlockSize > et.bsWrite {
		et.bsWrite, et.bsWriteJob = j.BlockSize, j.Name
	}
	return ""
}

// diffEngineOptions returns the name of the first option a and b disagree
// on, with both values as the user would write them; "" if they agree.
func diffEngineOptions(a, b EngineOptions) (name, va, vb string) {
	seg := func(n int64) string {
		if n == 0 {
			return "(default)"
		}
		return formatSize(n)
	}
	cores := func(c []int) string {
		if len(c) == 0 {
			return "(none)"
		}
		return formatCPUList(c)
	}
	fill := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	switch {
	case a.ObjectSize != b.ObjectSize:
		return "engine_object_size", formatSize(a.ObjectSize), formatSize(b.ObjectSize)
	case a.Fill != b.Fill:
		return "engine_fill", fill(a.Fill), fill(b.Fill)
	case a.SegmentSize != b.SegmentSize:
		return "engine_segment_size", seg(a.SegmentSize), seg(b.SegmentSize)
	case a.Shards != b.Shards:
		return "engine_shards", strconv.Itoa(a.Shards), strconv.Itoa(b.Shards)
	case a.PLP != b.PLP:
		return "engine_plp", strconv.FormatBool(a.PLP), strconv.FormatBool(b.PLP)
	case a.RecordSize != b.RecordSize:
		return "engine_record_size", seg(int64(a.RecordSize)), seg(int64(b.RecordSize))
	case !slices.Equal(a.Cores, b.Cores):
		return "engine_cores", cores(a.Cores), cores(b.Cores)
	case a.Mode != b.Mode:
		return "engine_mode", a.Mode.String(), b.Mode.String()
	}
	return "", "", ""
}

// plan sizes the device create will write, once every job was added, and
// checks its directory has room. It returns "" or the problem.
func (et *engineTarget) plan(t *target) string {
	if t.need == 0 {
		return "" // every job had a problem
	}
	if !t.created {
		if seg := int64(et.sb.SegmentSize); et.bsWrite > seg/2 {
			return fmt.Sprintf("job %s: bs=%s: the existing device %s has segments of %s, and a write must fit in half a segment; lower bs, or delete the device to have it created anew with larger segments",
				et.bsWriteJob, formatSize(et.bsWrite), et.path, formatSize(seg))
		}
		return ""
	}
	seg := engineSegmentSize(et.opts, t.need, et.bsWrite)
	if et.bsWrite > seg/2 {
		return fmt.Sprintf("job %s: bs=%s: engine_segment_size=%s is too small, as a write must fit in half a segment; give engine_segment_size=%s or more",
			et.bsWriteJob, formatSize(et.bsWrite), formatSize(seg), formatSize(engineSegmentFloor(et.bsWrite)))
	}
	size, err := engineDeviceSize(t.need, et.opts.Fill, seg)
	if err != nil {
		return err.Error()
	}
	et.devSize, et.segSize = size, seg
	var st unix.Statfs_t
	dir := filepath.Dir(et.path)
	if err := unix.Statfs(dir, &st); err == nil {
		if avail := int64(st.Bavail) * int64(st.Bsize); avail < size {
			return fmt.Sprintf("the device to create needs %s (size=%s at engine_fill=%g, in %s segments, plus header and checkpoint area) but %s has %s free",
				fmtBytes(size), fmtBytes(t.need), et.opts.Fill, formatSize(seg), dir, fmtBytes(avail))
		}
	}
	return ""
}

// engineSegmentSize returns the segment size of a device created for need
// bytes and writes of up to bsWrite bytes: engine_segment_size if given,
// else the engine's default, halved until the segment space need/fill has
// engineSegmentsMin segments, but not below engineSegmentFloor(bsWrite).
func engineSegmentSize(o EngineOptions, need, bsWrite int64) int64 {
	if o.SegmentSize != 0 {
		return o.SegmentSize
	}
	space := float64(need) / o.Fill
	seg, floor := int64(engineSegmentDef), engineSegmentFloor(bsWrite)
	for seg/2 >= floor && space < float64(engineSegmentsMin*seg) {
		seg /= 2
	}
	return max(seg, floor)
}

// engineSegmentFloor is the smallest segment size for writes of bsWrite
// bytes: a power of two from 1 MiB with room for two such writes, as a
// write and its batch header must fit in one segment.
func engineSegmentFloor(bsWrite int64) int64 {
	seg := int64(engineSegmentMin)
	for seg < 2*bsWrite {
		seg *= 2
	}
	return seg
}

// engineDeviceSize returns the size of a device whose segment space holds
// need bytes at fill: need/fill rounded up to whole segments of seg bytes,
// plus what engine.Layout puts before the segments (superblocks and the
// checkpoint area, which grows with the device). The device is at least
// as large as Layout's smallest.
func engineDeviceSize(need int64, fill float64, seg int64) (int64, error) {
	if need <= 0 || !(fill > 0 && fill <= 1) || seg <= 0 {
		panic(fmt.Sprintf("bench: engineDeviceSize(%d, %g, %d)", need, fill, seg))
	}
	spaceF := math.Ceil(float64(need) / fill)
	if spaceF > 1<<60 {
		return 0, fmt.Errorf("size=%s at engine_fill=%g needs a device larger than 1 EiB", fmtBytes(need), fill)
	}
	space := (int64(spaceF) + seg - 1) / seg * seg
	opts := engine.FormatOptions{SegmentSize: uint32(seg)}
	size := space + seg // the header area takes at least a segment
	for range engineSizingRounds {
		sb, err := engine.Layout(size, opts)
		if err != nil {
			// Fewer segments than the engine's minimum: grow a segment
			// at a time.
			size += seg
			continue
		}
		have := int64(sb.SegmentCount) * int64(sb.SegmentSize)
		if have >= space {
			return size, nil
		}
		size += space - have
	}
	// Invariant: each round adds what is missing (or a segment, below the
	// engine's minimum of a few segments), and the checkpoint area grows
	// by only 1/64 of that, so a few rounds suffice.
	panic(fmt.Sprintf("bench: no device size found for %d bytes of segment space in %d-byte segments after %d rounds (last %d)", space, seg, engineSizingRounds, size))
}

// create writes a device the run is to create in full with zeros (as fio
// lays out a file, so that the engine's first writes do not allocate
// blocks of a sparse file) and formats it. On failure it removes what it
// made.
func (et *engineTarget) create(ctx context.Context, t *target, progress io.Writer) (err error) {
	if !t.created {
		return nil
	}
	if progress != nil {
		fmt.Fprintf(progress, "creating engine device %s: %s in segments of %s for size=%s at engine_fill=%g, writing it with zeros\n",
			et.path, fmtBytes(et.devSize), fmtBytes(et.segSize), fmtBytes(t.need), et.opts.Fill)
	}
	defer func() {
		if err == nil {
			return
		}
		// Leave no half-made device behind: the next run would refuse it.
		if et.emptyNow {
			os.Truncate(et.path, 0)
		} else {
			os.Remove(et.path)
		}
	}()
	if err := writeZeros(ctx, et.path, et.devSize); err != nil {
		return fmt.Errorf("bench: creating %s: %w", et.target, err)
	}
	sb, err := engine.Format(vfs.Default, engine.FormatRequest{Path: et.path, Options: engine.FormatOptions{SegmentSize: uint32(et.segSize), PLP: et.opts.PLP}})
	if err != nil {
		return fmt.Errorf("bench: formatting %s: %w", et.target, err)
	}
	et.sb, et.created, t.created, t.size = sb, true, false, et.devSize
	return nil
}

// writeZeros creates or overwrites path with size zero bytes, bypassing
// the page cache where the file system allows, and flushes it.
func writeZeros(ctx context.Context, path string, size int64) error {
	const chunk = 1 << 20
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_CLOEXEC
	fd, err := unix.Open(path, flags|unix.O_DIRECT, 0o644)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.Open(path, flags, 0o644) // no O_DIRECT here (tmpfs)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	buf := ioring.AlignedBuffer(chunk)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := unix.Pwrite(fd, buf[:min(chunk, size-off)], off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write %s at %d: %w", path, off, err)
		}
		off += int64(n)
	}
	if err := unix.Fsync(fd); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}

// open opens the engine. The engine's warnings and errors go to log (nil:
// discarded).
func (et *engineTarget) open(log io.Writer) error {
	var h slog.Handler = slog.DiscardHandler
	if log != nil {
		h = slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelWarn})
	}
	e, err := engine.Open(engine.Options{
		Path:        et.path,
		Shards:      et.opts.Shards,
		Cores:       et.opts.Cores,
		Mode:        et.opts.Mode,
		RecordBytes: et.opts.RecordSize,
		Logger:      slog.New(h),
	})
	if err != nil {
		return err
	}
	et.e = e
	sb := e.Superblock()
	et.sb = &sb
	return nil
}

// close closes the engine, if open. Every clone must have stopped.
func (et *engineTarget) close() error {
	if et.e == nil {
		return nil
	}
	err := et.e.Close()
	et.e = nil
	return err
}

// describe is the summary's line for the target: device, size, sharding
// and polling mode, and what the run did to it.
func (et *engineTarget) describe() string {
	s := fmt.Sprintf("%s: %s; %s", et.target, et.e.Describe(), fmtBytes(int64(et.sb.DeviceSize)))
	if et.created {
		s += fmt.Sprintf(", created by this run (engine_fill=%g)", et.opts.Fill)
	} else {
		s += ", existing"
	}
	s += fmt.Sprintf("; objects of %s", fmtBytes(et.opts.ObjectSize))
	if et.laidOut > 0 {
		s += fmt.Sprintf("; %s laid out for reading", fmtBytes(et.laidOut))
	}
	return s
}

// engineMarkerHi is the ObjectID.Hi of the layout marker, an object of
// bench's own (jobs use Hi 0): the marker of object size S is object
// {engineMarkerHi, S}, and its size is how many bytes from job offset 0
// layout has written in objects of S bytes.
//
// NB: an object's own size cannot stand for "laid out": a random write job
// leaves holes below the size, and holes read as zeros without touching
// the device, which would flatter the read jobs that follow.
const engineMarkerHi = 0x7765667462656e63 // "weftbenc"

// layout writes job offsets [0, readNeed), sequentially and
// engineLayoutDepth writes at a time, as fio lays out a file before reading
// it: reads then find data, not holes or the end of an object. What an
// earlier run laid out (the marker says how much) is not written again;
// jobs overwrite data but never make holes, so it stays laid out.
func (et *engineTarget) layout(ctx context.Context, progress io.Writer) error {
	if et.readNeed == 0 {
		return nil
	}
	objSize := et.opts.ObjectSize
	marker := engine.ObjectID{Hi: engineMarkerHi, Lo: uint64(objSize)}
	var done int64
	switch st, err := et.e.Stat(marker); {
	case err == nil && !st.Deleted:
		done = int64(st.Size)
	case err == nil, errors.Is(err, engine.ErrNotFound):
	default:
		return fmt.Errorf("laying out: stat of the layout marker %v: %w", marker, err)
	}
	if done >= et.readNeed {
		return nil
	}
	// Rewrite the object the last layout stopped in from its start.
	from := done - done%objSize
	if progress != nil {
		fmt.Fprintf(progress, "laying out %s: %s from offset %s, in objects of %s\n",
			et.target, fmtBytes(et.readNeed-from), fmtBytes(from), fmtBytes(objSize))
	}
	// Writes of the reading jobs' bs, as fio lays a file out in writes
	// of bs: the engine stores a write as records of at most 64 KiB and
	// reads and verifies a record whole, so laying out in larger writes
	// would make every smaller read read more than it asked for. Half a
	// segment at most, so that each write fits a segment with its batch
	// header.
	buf := ioring.AlignedBuffer(int(min(et.layoutBS, engineLayoutChunk, objSize, int64(et.sb.SegmentSize)/2)))
	newRand(0x5eed).fill(buf)
	off := from
	err := pipeline(ctx, et.e, engineLayoutDepth, func(r *engine.Request) bool {
		if off == et.readNeed {
			return false
		}
		n := min(int64(len(buf)), et.readNeed-off, objSize-off%objSize)
		// NB: every write shares buf, which the engine only reads.
		r.Op, r.Buf = engine.OpWrite, buf[:n]
		r.Object, r.Off = engineAddr(off, objSize)
		off += n
		return true
	}, func(r *engine.Request) error {
		if r.Err != nil {
			return fmt.Errorf("laying out: write of %d bytes at %d of object %v: %w", len(r.Buf), r.Off, r.Object, r.Err)
		}
		et.laidOut += int64(len(r.Buf))
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := et.e.Truncate(marker, 0, uint64(et.readNeed)); err != nil {
		return fmt.Errorf("laying out: recording %s laid out in the marker %v: %w", fmtBytes(et.readNeed), marker, err)
	}
	return nil
}

// pipeline keeps up to depth requests in flight on e. It fills each free
// request with next, which returns false when there is nothing more, and
// hands each completed request to done. It stops submitting at next's
// false, done's first error or ctx's end, and returns, with the first
// error, once nothing is in flight.
func pipeline(ctx context.Context, e *engine.Engine, depth int, next func(*engine.Request) bool, done func(*engine.Request) error) error {
	reqs := make([]engine.Request, depth)
	ch := make(chan *engine.Request, depth) // room for all: the engine never blocks
	free := make([]*engine.Request, depth)
	for i := range reqs {
		free[i] = &reqs[i]
	}
	var firstErr error
	inflight, more := 0, true
	for {
		for more && firstErr == nil && len(free) > 0 {
			if err := ctx.Err(); err != nil {
				firstErr = err
				break
			}
			r := free[len(free)-1]
			if more = next(r); !more {
				break
			}
			free = free[:len(free)-1]
			r.Done = ch
			e.Submit(r)
			inflight++
		}
		if inflight == 0 {
			return firstErr
		}
		r := <-ch
		inflight--
		if err := done(r); err != nil && firstErr == nil {
			firstErr = err
		}
		free = append(free, r)
	}
}

// engineQueue is the ioQueue of an engine: target: one engine.Request
// per unit, submitted to the shared engine and returned on the clone's own
// channel.
type engineQueue struct {
	e       *engine.Engine
	objSize int64
	units   []unit
	reqs    []engine.Request // reqs[i] carries units[i]'s I/O
	index   map[*engine.Request]int
	done    chan *engine.Request // room for every request: the engine never blocks
}

func newEngineQueue(e *engine.Engine, objSize int64, units []unit) *engineQueue {
	q := &engineQueue{
		e: e, objSize: objSize, units: units,
		reqs:  make([]engine.Request, len(units)),
		index: make(map[*engine.Request]int, len(units)),
		done:  make(chan *engine.Request, len(units)),
	}
	for i := range q.reqs {
		q.reqs[i].Done = q.done
		q.index[&q.reqs[i]] = i
	}
	return q
}

func (c *clone) runEngine(ctx context.Context, ph *phase, base time.Time) error {
	et := c.eng
	c.backend = fmt.Sprintf("weft engine (engine_shards=%d, engine_mode=%s, engine_record_size=%s)", et.opts.Shards, et.opts.Mode, formatSize(int64(cmp.Or(et.opts.RecordSize, engine.DefaultRecordBytes))))
	if j := c.job; j.IODepthBatch == 1 && j.BatchCompleteMin == 1 && j.BatchCompleteMax <= 1 {
		// fio's defaults: each completion is followed by the next
		// submission, which the reactor can make itself.
		return c.runEngineInline(ctx, ph, base, et.e, c.job.Engine.ObjectSize)
	}
	units := c.newUnits(c.job.IODepth)
	return c.runQueue(ctx, newEngineQueue(et.e, c.job.Engine.ObjectSize, units), units, ph, base)
}

func (q *engineQueue) prep(idx int) {
	u := &q.units[idx]
	r := &q.reqs[idx]
	switch u.dir {
	case dirRead:
		r.Op = engine.OpRead
	case dirWrite:
		r.Op = engine.OpWrite
	default:
		// Invariant: the parser refuses fsync= with an engine: target.
		panic(fmt.Sprintf("bench: %s I/O on an engine: target", dirName(u.dir)))
	}
	r.Object, r.Off = engineAddr(u.off+int64(u.done), q.objSize)
	r.Buf = u.buf[u.done:]
	if end := r.Off + uint64(len(r.Buf)); end > uint64(q.objSize) {
		// Invariant: the object size is a multiple of bs and I/Os start
		// at multiples of bs.
		panic(fmt.Sprintf("bench: I/O of %d bytes at job offset %d ends at %d of object %v, past its %d bytes",
			len(r.Buf), u.off+int64(u.done), end, r.Object, q.objSize))
	}
}

func (q *engineQueue) submit(pending []int) error {
	for _, idx := range pending {
		q.e.Submit(&q.reqs[idx])
	}
	return nil
}

// engineErr is r's failure, naming the I/O of unit u it was, or nil.
func engineErr(r *engine.Request, u *unit) error {
	if r.Err == nil {
		return nil
	}
	return fmt.Errorf("engine %s of %d bytes at job offset %d (object %v, offset %d): %w",
		r.Op, len(r.Buf), u.off+int64(u.done), r.Object, r.Off, r.Err)
}

func (q *engineQueue) reap(out []completion, min int) (int, error) {
	n := 0
	for n < len(out) {
		var r *engine.Request
		if n < min {
			r = <-q.done
		} else {
			select {
			case r = <-q.done:
			default:
				if n == 0 {
					// Polling (iodepth_batch_complete_min=0): let the
					// reactors have the CPU should they need this one.
					runtime.Gosched()
				}
				return n, nil
			}
		}
		idx, ok := q.index[r]
		if !ok {
			panic(fmt.Sprintf("bench: the engine returned request %p, not one of this clone's %d", r, len(q.reqs)))
		}
		out[n] = completion{idx: idx, n: r.N, err: engineErr(r, &q.units[idx])}
		n++
	}
	return n, nil
}

// runEngineInline runs the clone's I/O the way SPDK's bdevperf does:
// each completion, on the engine's reactor (Request.Notify), records the
// I/O and submits the clone's next one, so a reaped request goes back to
// the device without a hand-off to the clone's goroutine and back. The
// goroutine only starts the queue and waits for it to drain. It is the
// engine target's loop when the job leaves fio's batching options at
// their defaults (one submission per completion, as fio then does);
// runQueue, which implements them, runs the others. At qd32 on the dev
// VM the hand-off made the queue travel as one convoy: 83-92k random
// reads a second through runQueue against 105-107k inline, fio 105-106k
// (2026-11-26 13:56 UTC, 3 warm alternating rounds).
func (c *clone) runEngineInline(ctx context.Context, ph *phase, base time.Time, e *engine.Engine, objSize int64) error {
	depth := c.job.IODepth
	units := c.newUnits(depth)
	q := newEngineQueue(e, objSize, units)
	var (
		mu       sync.Mutex // completions of several reactors
		inflight int
		firstErr error
		drained  = make(chan struct{})
	)
	// issue prepares and submits unit idx; mu held.
	issue := func(idx int, now int64) {
		u := &units[idx]
		u.done = 0
		u.dir, u.off = c.nextIO()
		q.prep(idx)
		u.prep = now
		inflight++
		e.Submit(&q.reqs[idx])
		// The completion cannot run before mu is released.
		u.issue = int64(time.Since(base))
	}
	for i := range q.reqs {
		idx := i
		q.reqs[i].Done = nil
		q.reqs[i].Notify = func(r *engine.Request) {
			mu.Lock()
			defer mu.Unlock()
			now := int64(time.Since(base))
			u := &units[idx]
			inflight--
			complete, err := false, engineErr(r, u)
			if err == nil {
				complete, err = c.advance(ph, u, r.N)
			}
			switch {
			case err != nil:
				if firstErr == nil {
					firstErr = err
				}
			case !complete:
				q.prep(idx)
				inflight++
				e.Submit(r)
			default:
				c.record(ph, u.dir, len(u.buf), u.prep, u.issue, now)
				c.sample(ph, now)
				if firstErr == nil && ctx.Err() == nil && c.moreToIssue(now, ph.end) {
					issue(idx, now)
				}
			}
			if inflight == 0 {
				close(drained)
			}
		}
	}
	mu.Lock()
	now := int64(time.Since(base))
	for idx := range units {
		if !c.moreToIssue(now, ph.end) || ctx.Err() != nil {
			break
		}
		issue(idx, now)
	}
	if inflight == 0 {
		mu.Unlock()
		return nil
	}
	mu.Unlock()
	<-drained
	mu.Lock()
	defer mu.Unlock()
	return firstErr
}
