package journal

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/ncw/directio"

	"github.com/weftfs/weft/internal/vfs"
)

// Errors returned by Journal methods. Test with errors.Is.
var (
	// ErrClosed is returned by appends to a closed journal.
	ErrClosed = errors.New("journal: closed")
	// ErrTooLarge is returned for a record larger than Options.RecordBytesMax.
	ErrTooLarge = errors.New("journal: record too large")
	// ErrFailed wraps the first write or flush error; after it the journal
	// refuses every append, because the state of the unflushed tail is
	// unknown (a failed fsync cannot be retried). Reopen to recover.
	ErrFailed = errors.New("journal: failed")
)

// Options configure Open.
type Options struct {
	// Dir holds the segment files. Required.
	Dir string
	// FS is the file system; nil means vfs.Default.
	FS vfs.FS
	// SegmentBytes caps a segment file; default 64 MiB.
	SegmentBytes int64
	// BatchBytesMax caps one group commit; default 1 MiB. A record larger
	// than it is written in a batch of its own.
	BatchBytesMax int
	// RecordBytesMax caps one record's data; default 4 MiB, at most
	// SegmentBytes/2.
	RecordBytesMax int
	// NoSync skips the flush after each batch: only for a power-loss
	// protected device whose completed writes are durable.
	NoSync bool
	// Direct writes segments with O_DIRECT where the file system allows.
	Direct bool
}

func (o *Options) validate() error {
	var probs []string
	if o.Dir == "" {
		probs = append(probs, "Dir is empty")
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = 64 << 20
	}
	if o.BatchBytesMax == 0 {
		o.BatchBytesMax = 1 << 20
	}
	if o.RecordBytesMax == 0 {
		o.RecordBytesMax = min(4<<20, int(o.SegmentBytes/2))
	}
	if o.SegmentBytes < 4*blockSize || o.SegmentBytes%blockSize != 0 || o.SegmentBytes > 1<<32-blockSize {
		probs = append(probs, fmt.Sprintf("SegmentBytes=%d: want a multiple of %d between %d and 4 GiB", o.SegmentBytes, blockSize, 4*blockSize))
	}
	if o.BatchBytesMax < blockSize || o.BatchBytesMax%blockSize != 0 {
		probs = append(probs, fmt.Sprintf("BatchBytesMax=%d: want a positive multiple of %d", o.BatchBytesMax, blockSize))
	}
	if o.RecordBytesMax < 1 || int64(o.RecordBytesMax) > o.SegmentBytes/2 {
		probs = append(probs, fmt.Sprintf("RecordBytesMax=%d: want 1 to SegmentBytes/2 (%d)", o.RecordBytesMax, o.SegmentBytes/2))
	}
	if len(probs) > 0 {
		return errors.New("journal: options: " + strings.Join(probs, "; "))
	}
	return nil
}

const segmentSuffix = ".wlog"

func segmentName(first uint64) string { return fmt.Sprintf("%016x%s", first, segmentSuffix) }

// segment is one segment file: its first sequence number and name.
type segment struct {
	first uint64
	name  string
}

// commit is the outcome of one batch, shared by the records in it.
type commit struct {
	done chan struct{}
	err  error
	fns  []func(uint64, error)
	seqs []uint64
}

// batch is the buffer appenders fill and the committer writes.
type batch struct {
	buf   []byte // aligned; header space reserved at buf[0:batchHdrSize]
	n     int    // bytes used, header included
	first uint64
	count int
	// due is set once something waits for the batch to be durable: a
	// record appended by Append or AppendAsync, a Sync, or a full
	// buffer. A batch of lazy records only is not written until then.
	due bool
	res *commit
}

func (b *batch) reset(first uint64) {
	b.n, b.first, b.count, b.due = batchHdrSize, first, 0, false
	b.res = &commit{done: make(chan struct{})}
}

// Stats are the journal's counters.
type Stats struct {
	Appends      uint64 // records appended
	Batches      uint64 // group commits written
	Syncs        uint64 // flushes issued
	BytesWritten uint64 // bytes written to segments, padding included
	Segments     int    // segment files present
	NextSeq      uint64 // sequence number the next record gets
	DurableSeq   uint64 // highest sequence number known durable
}

// Journal is an open log. See the package doc.
type Journal struct {
	opts Options

	mu struct {
		sync.Mutex
		fill, spare *batch
		nextSeq     uint64
		err         error // sticky: ErrFailed-wrapped
		closed      bool
		// writing is set while a batch is being written (by the
		// committer or inline by an Append); its writer owns seg and
		// segOff until it clears it.
		writing  bool
		segments []segment
		stats    Stats
	}
	work  *sync.Cond // committer: a batch has records, or closing
	space *sync.Cond // appenders: the fill buffer was swapped out

	// Owned by the writer of the current batch (see mu.writing).
	seg    vfs.File
	segOff int64
	// segZeroed is how far the segment file has been written, by batches
	// or by the zeros written ahead of them (see writeBatch): below it, a
	// batch overwrites bytes the file already has.
	segZeroed int64

	stopped chan struct{}
}

// Open opens the log in opts.Dir, creating the directory if needed,
// recovers the tail (cutting off a torn last batch) and starts the
// committer. Mid-log corruption in the last segment is an error here;
// elsewhere Replay reports it.
func Open(opts Options) (*Journal, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := opts.FS.MkdirAll(opts.Dir); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	segs, err := listSegments(opts.FS, opts.Dir)
	if err != nil {
		return nil, err
	}
	j := &Journal{opts: opts, stopped: make(chan struct{})}
	j.work = sync.NewCond(&j.mu)
	j.space = sync.NewCond(&j.mu)
	next := uint64(1)
	// Walk back from the newest segment to the one holding the tail: a
	// segment created just before a crash may hold no complete batch.
	for len(segs) > 0 {
		last := segs[len(segs)-1]
		end, nextSeq, err := scanSegment(opts.FS, opts.Dir, last)
		if err != nil {
			return nil, err
		}
		if end > 0 || len(segs) == 1 {
			f, err := opts.FS.OpenRW(path.Join(opts.Dir, last.name), opts.Direct)
			if err != nil {
				return nil, fmt.Errorf("journal: %w", err)
			}
			// Tail repair: drop the torn bytes so that nothing but zeros
			// follows the last good batch.
			if size, err := f.Size(); err == nil && size > end {
				if err := f.Truncate(end); err != nil {
					f.Close()
					return nil, fmt.Errorf("journal: cutting torn tail of %s at %d: %w", last.name, end, err)
				}
				if err := f.Sync(); err != nil {
					f.Close()
					return nil, fmt.Errorf("journal: cutting torn tail of %s: %w", last.name, err)
				}
			}
			j.seg, j.segOff, j.segZeroed = f, end, end
			if end > 0 {
				next = nextSeq
			} else {
				next = last.first
			}
			break
		}
		// No complete batch in the newest segment: it was never
		// acknowledged into; remove it.
		if err := opts.FS.Remove(path.Join(opts.Dir, last.name)); err != nil {
			return nil, fmt.Errorf("journal: removing empty segment: %w", err)
		}
		if err := opts.FS.SyncDir(opts.Dir); err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		segs = segs[:len(segs)-1]
	}
	j.mu.segments = segs
	j.mu.nextSeq = next
	j.mu.stats.DurableSeq = next - 1
	j.mu.fill = j.newBatch(opts.BatchBytesMax)
	j.mu.spare = j.newBatch(opts.BatchBytesMax)
	j.mu.fill.reset(next)
	go j.commitLoop()
	return j, nil
}

func (j *Journal) newBatch(size int) *batch {
	return &batch{buf: directio.AlignedBlock(alignUp(size, blockSize))}
}

func listSegments(fs vfs.FS, dir string) ([]segment, error) {
	names, err := fs.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var segs []segment
	for _, n := range names {
		hex, ok := strings.CutSuffix(n, segmentSuffix)
		if !ok {
			continue
		}
		first, err := strconv.ParseUint(hex, 16, 64)
		if err != nil || len(hex) != 16 || first == 0 {
			return nil, fmt.Errorf("journal: %s: not a segment name (want 16 hex digits of a sequence number, then %s)", path.Join(dir, n), segmentSuffix)
		}
		segs = append(segs, segment{first: first, name: n})
	}
	sort.Slice(segs, func(a, b int) bool { return segs[a].first < segs[b].first })
	return segs, nil
}

// Append adds a record and returns its sequence number once it is
// durable. data is copied into the batch before Append blocks; the caller
// keeps ownership of it.
func (j *Journal) Append(typ uint16, data []byte) (uint64, error) {
	seq, res, err := j.enqueue(typ, data, nil, dueInline)
	if err != nil {
		return 0, err
	}
	// When no batch is being written, the appender writes its own batch
	// (and whatever joined it) rather than waking the committer and
	// waiting to be woken: two goroutine hand-offs fewer on an idle
	// journal, which is the latency of a lone Raft Save. Under load the
	// committer keeps batching as before.
	j.mu.Lock()
	if !j.mu.writing && j.mu.fill.res == res && !j.mu.closed {
		b, failed := j.takeLocked()
		j.mu.Unlock()
		j.write(b, failed)
	} else {
		// The committer writes it (enqueue left it unwoken, for this
		// case only).
		j.work.Signal()
		j.mu.Unlock()
	}
	<-res.done
	if res.err != nil {
		return 0, res.err
	}
	return seq, nil
}

// AppendAsync queues a record and returns its sequence number at once;
// done is called when the record is durable or has failed, by the
// goroutine that wrote its batch (the committer, or an Append writing
// inline). done must not block or call back into the journal.
func (j *Journal) AppendAsync(typ uint16, data []byte, done func(seq uint64, err error)) (uint64, error) {
	seq, _, err := j.enqueue(typ, data, done, dueNow)
	return seq, err
}

// AppendLazy queues a record that nothing waits for: it is written, in
// order, with the next batch something does wait for (an Append, an
// AppendAsync, a Sync) or at Close, and costs no flush of its own. A
// crash before then loses it, and with it only lazy records after it.
// A failure shows in the next Append, AppendAsync or Sync.
func (j *Journal) AppendLazy(typ uint16, data []byte) (uint64, error) {
	seq, _, err := j.enqueue(typ, data, nil, dueLater)
	return seq, err
}

// How soon an enqueued record is to be written.
type due uint8

const (
	dueLater  due = iota // with the next batch something waits for (AppendLazy)
	dueNow               // the committer writes it now (AppendAsync)
	dueInline            // now, by the caller unless a batch is being written (Append)
)

func (j *Journal) enqueue(typ uint16, data []byte, fn func(uint64, error), when due) (uint64, *commit, error) {
	if len(data) > j.opts.RecordBytesMax {
		return 0, nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(data), j.opts.RecordBytesMax)
	}
	size := recordSize(len(data))
	j.mu.Lock()
	defer j.mu.Unlock()
	for {
		if j.mu.err != nil {
			return 0, nil, j.mu.err
		}
		if j.mu.closed {
			return 0, nil, ErrClosed
		}
		b := j.mu.fill
		if b.n+size <= len(b.buf) {
			break
		}
		if b.count == 0 {
			// A record bigger than the buffer gets a buffer of its own.
			b.buf = directio.AlignedBlock(alignUp(batchHdrSize+size, blockSize))
			break
		}
		if !b.due {
			// A full buffer of lazy records is written now.
			b.due = true
			j.work.Signal()
		}
		j.space.Wait()
	}
	b := j.mu.fill
	seq := j.mu.nextSeq
	j.mu.nextSeq++
	b.n += putRecord(b.buf[b.n:], typ, seq, data)
	b.count++
	if fn != nil {
		b.res.fns = append(b.res.fns, fn)
		b.res.seqs = append(b.res.seqs, seq)
	}
	j.mu.stats.Appends++
	if when != dueLater {
		b.due = true
	}
	if when == dueNow {
		j.work.Signal()
	}
	return seq, b.res, nil
}

func (j *Journal) commitLoop() {
	defer close(j.stopped)
	for {
		j.mu.Lock()
		for j.mu.writing || !j.mu.fill.due && !j.mu.closed {
			j.work.Wait()
		}
		if j.mu.fill.count == 0 {
			j.mu.Unlock()
			return
		}
		b, failed := j.takeLocked()
		j.mu.Unlock()
		j.write(b, failed)
	}
}

// takeLocked swaps the fill batch out for writing, and marks the journal
// writing: whoever takes a batch (the committer, or an Append writing
// inline) owns the segment until write clears the mark, so batches are
// written one at a time and in order.
func (j *Journal) takeLocked() (b *batch, failed error) {
	b = j.mu.fill
	next := j.mu.spare
	next.reset(j.mu.nextSeq)
	j.mu.fill, j.mu.spare = next, nil
	j.mu.writing = true
	j.space.Broadcast()
	return b, j.mu.err
}

// write writes and flushes b (unless the journal failed before), makes
// its outcome known to its appenders, and hands the segment back: the
// committer takes the next batch if one filled meanwhile.
func (j *Journal) write(b *batch, failed error) {
	err := failed
	if err == nil {
		err = j.writeBatch(b)
	}
	j.mu.Lock()
	if err != nil && j.mu.err == nil {
		j.mu.err = fmt.Errorf("%w: %w", ErrFailed, err)
	}
	if err == nil {
		j.mu.stats.DurableSeq = b.first + uint64(b.count) - 1
	}
	res := b.res
	res.err = j.mu.err
	if len(b.buf) > j.opts.BatchBytesMax {
		b.buf = directio.AlignedBlock(alignUp(j.opts.BatchBytesMax, blockSize))
	}
	j.mu.spare = b
	j.mu.writing = false
	j.space.Broadcast()
	if j.mu.fill.due || j.mu.closed {
		// Only then has the committer something to do: waking it for
		// nothing after each inline write cost a goroutine hand-off.
		j.work.Signal()
	}
	j.mu.Unlock()

	close(res.done)
	for i, fn := range res.fns {
		fn(res.seqs[i], res.err)
	}
}

// writeBatch seals b, writes it at the end of the current segment (rolling
// to a new segment when it does not fit) and flushes.
func (j *Journal) writeBatch(b *batch) error {
	length := alignUp(b.n, blockSize)
	clear(b.buf[b.n:length])
	putBatchHeader(b.buf, batchHeader{version: formatV1, length: uint32(length), count: uint32(b.count), firstSeq: b.first})
	if j.seg == nil || j.segOff+int64(length) > j.opts.SegmentBytes {
		if err := j.roll(b.first); err != nil {
			return err
		}
	}
	if _, err := j.seg.WriteAt(b.buf[:length], j.segOff); err != nil {
		return fmt.Errorf("write %s at %d: %w", j.seg.Name(), j.segOff, err)
	}
	if end := j.segOff + int64(length); end > j.segZeroed {
		if err := j.zeroAhead(end); err != nil {
			return err
		}
	}
	if !j.opts.NoSync {
		if err := j.seg.Sync(); err != nil {
			return fmt.Errorf("flush %s: %w", j.seg.Name(), err)
		}
	}
	j.segOff += int64(length)
	j.mu.Lock()
	j.mu.stats.Batches++
	j.mu.stats.BytesWritten += uint64(length)
	if !j.opts.NoSync {
		j.mu.stats.Syncs++
	}
	j.mu.Unlock()
	return nil
}

// zeroAheadBytes is how far past a batch that grows its segment file the
// journal writes zeros. A flush after a write that changes the file's size
// (or turns a hole into data) must also commit the file system's own
// metadata (on ext4, a jbd2 transaction, one at a time for the whole file
// system), which costs more than the data flush itself; with the zeros
// written ahead, only one batch in zeroAheadBytes/4 KiB pays for it.
const zeroAheadBytes = 1 << 20

// zeroBlock is zeroAheadBytes of zeros, aligned for O_DIRECT, shared by
// every journal: it is only ever read.
var zeroBlock = sync.OnceValue(func() []byte { return directio.AlignedBlock(zeroAheadBytes) })

// zeroAhead writes zeros from end (the end of the batch just written) to
// zeroAheadBytes past it, within the segment, in the same flush as the
// batch. Recovery reads the zeros as the end of the log: no batch header
// is all zeros (see walk for segments before the last).
func (j *Journal) zeroAhead(end int64) error {
	to := min(end+zeroAheadBytes, j.opts.SegmentBytes)
	if to > end {
		if _, err := j.seg.WriteAt(zeroBlock()[:to-end], end); err != nil {
			return fmt.Errorf("write zeros ahead in %s at %d: %w", j.seg.Name(), end, err)
		}
	}
	j.segZeroed = to
	return nil
}

// roll starts a new segment whose first record is first.
func (j *Journal) roll(first uint64) error {
	if j.seg != nil {
		if err := j.seg.Close(); err != nil {
			return fmt.Errorf("close %s: %w", j.seg.Name(), err)
		}
		j.seg = nil
	}
	name := segmentName(first)
	f, err := j.opts.FS.Create(path.Join(j.opts.Dir, name), j.opts.Direct)
	if err != nil {
		return err
	}
	// The new name must be durable before anything in it is acknowledged.
	if err := j.opts.FS.SyncDir(j.opts.Dir); err != nil {
		f.Close()
		return err
	}
	j.seg, j.segOff, j.segZeroed = f, 0, 0
	j.mu.Lock()
	j.mu.segments = append(j.mu.segments, segment{first: first, name: name})
	j.mu.Unlock()
	return nil
}

// Sync waits until every record appended before the call is durable.
func (j *Journal) Sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	target := j.mu.nextSeq - 1
	if j.mu.fill.count > 0 && !j.mu.fill.due {
		j.mu.fill.due = true // lazy records wait for nobody else
		j.work.Signal()
	}
	for j.mu.stats.DurableSeq < target && j.mu.err == nil {
		// The committer broadcasts space after every batch.
		j.space.Wait()
	}
	return j.mu.err
}

// Stats returns the counters.
func (j *Journal) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.mu.stats
	s.NextSeq = j.mu.nextSeq
	s.Segments = len(j.mu.segments)
	return s
}

// NextSeq is the sequence number the next appended record will get.
func (j *Journal) NextSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.mu.nextSeq
}

// Close flushes what is queued, stops the committer and closes the
// segment. Appends after Close fail with ErrClosed.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.mu.closed {
		j.mu.Unlock()
		return ErrClosed
	}
	j.mu.closed = true
	j.work.Broadcast()
	j.space.Broadcast()
	j.mu.Unlock()
	<-j.stopped
	var err error
	if j.seg != nil {
		err = j.seg.Close()
		j.seg = nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.mu.err != nil {
		return j.mu.err
	}
	if err != nil {
		return fmt.Errorf("journal: close: %w", err)
	}
	return nil
}
