package journal

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"path"

	"github.com/weftfs/weft/internal/vfs"
)

// ErrCompacted is returned by Replay for a start before the oldest record
// still on disk.
var ErrCompacted = errors.New("journal: requested records were truncated away")

// segReader reads batches out of one segment file.
type segReader struct {
	f    vfs.File
	name string
	size int64
	buf  []byte
}

func openSegReader(fs vfs.FS, dir string, s segment, buf []byte) (*segReader, error) {
	name := path.Join(dir, s.name)
	f, err := fs.Open(name)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &segReader{f: f, name: name, size: size, buf: buf}, nil
}

// batchAt returns the bytes of the batch at off, or the reason there is no
// valid batch there (I/O failures are errors, not reasons).
func (r *segReader) batchAt(off int64) ([]byte, string, error) {
	n := min(int64(blockSize), r.size-off)
	if n < batchHdrSize {
		return nil, fmt.Sprintf("%d bytes left, less than a batch header", max(n, 0)), nil
	}
	if err := r.readAt(0, n, off); err != nil {
		return nil, "", err
	}
	h, why := parseBatchHeader(r.buf[:n])
	if why != "" {
		return nil, why, nil
	}
	if off+int64(h.length) > r.size {
		return nil, fmt.Sprintf("batch of %d bytes runs past the end of the file (%d bytes)", h.length, r.size), nil
	}
	if int64(h.length) > n {
		if err := r.readAt(n, int64(h.length), off+n); err != nil {
			return nil, "", err
		}
	}
	return r.buf[:h.length], "", nil
}

// readAt fills r.buf[from:to] from the file at off, growing the buffer.
func (r *segReader) readAt(from, to, off int64) error {
	if int64(len(r.buf)) < to {
		nb := make([]byte, max(to, 2*int64(len(r.buf))))
		copy(nb, r.buf[:from])
		r.buf = nb
	}
	if _, err := r.f.ReadAt(r.buf[from:to], off); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("journal: read %s at %d: %w", r.name, off, err)
	}
	return nil
}

// validBatchAfter reports whether a batch header that is valid and starts
// at or after sequence minSeq exists at a block boundary at or after off.
func (r *segReader) validBatchAfter(off int64, minSeq uint64) (bool, error) {
	var hdr [batchHdrSize]byte
	for q := alignUp64(off, blockSize); q+batchHdrSize <= r.size; q += blockSize {
		if _, err := r.f.ReadAt(hdr[:], q); err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("journal: read %s at %d: %w", r.name, q, err)
		}
		if h, why := parseBatchHeader(hdr[:]); why == "" && h.firstSeq >= minSeq {
			return true, nil
		}
	}
	return false, nil
}

func alignUp64(n, a int64) int64 { return (n + a - 1) / a * a }

// walk reads segments in order from segs[0], delivering records of valid
// batches to fn (nil: validate only). It stops at the torn tail and
// returns where it is: the index of the last segment read, the offset just
// past its last valid batch, and the next sequence number. Mid-log
// corruption is a *CorruptError.
func walk(fs vfs.FS, dir string, segs []segment, limit uint64, fn func(Record) error) (int, int64, uint64, error) {
	var buf []byte
	expected := segs[0].first
	for i, s := range segs {
		if s.first != expected {
			return i, 0, expected, &CorruptError{File: path.Join(dir, s.name), Offset: 0,
				Reason: fmt.Sprintf("segment starts at sequence %d, but the previous one ends before %d", s.first, expected)}
		}
		r, err := openSegReader(fs, dir, s, buf)
		if err != nil {
			return i, 0, expected, err
		}
		off := int64(0)
		for off < r.size && expected <= limit {
			b, why, err := r.batchAt(off)
			if err == nil && why == "" {
				var h batchHeader
				h, why, err = decodeBatch(b, nil)
				if why == "" && err == nil && h.firstSeq != expected {
					why = fmt.Sprintf("batch starts at sequence %d, want %d", h.firstSeq, expected)
				}
				if why == "" && err == nil && fn != nil {
					_, _, err = decodeBatch(b, func(rec Record) error {
						if rec.Seq > limit {
							return nil
						}
						return fn(rec)
					})
				}
				if why == "" && err == nil {
					expected += uint64(h.count)
					off += int64(h.length)
					continue
				}
			}
			if err != nil {
				r.f.Close()
				return i, off, expected, err
			}
			// A bad batch: torn tail if nothing valid follows it.
			corrupt, perr := r.validBatchAfter(off+blockSize, expected)
			if perr == nil && !corrupt && i+1 < len(segs) && segs[i+1].first == expected {
				// The zeros written ahead of the batches (or, in
				// segments of older versions, nothing) end a segment
				// that was rolled: the next one starts where its
				// records end, so nothing of this one is missing.
				break
			}
			for k := i + 1; perr == nil && !corrupt && k < len(segs); k++ {
				nr, err := openSegReader(fs, dir, segs[k], nil)
				if err != nil {
					perr = err
					break
				}
				corrupt, perr = nr.validBatchAfter(0, expected)
				nr.f.Close()
			}
			r.f.Close()
			if perr != nil {
				return i, off, expected, perr
			}
			if corrupt {
				return i, off, expected, &CorruptError{File: r.name, Offset: off, Reason: why + "; valid records follow, so this is not a torn tail"}
			}
			return i, off, expected, nil
		}
		buf = r.buf
		r.f.Close()
		if expected > limit {
			return i, off, expected, nil
		}
		if i == len(segs)-1 {
			return i, off, expected, nil
		}
	}
	panic("journal: walk fell out of its loop")
}

// scanSegment finds the end of the log in the newest segment: the offset
// just past its last valid batch and the next sequence number.
func scanSegment(fs vfs.FS, dir string, last segment) (int64, uint64, error) {
	_, end, next, err := walk(fs, dir, []segment{last}, ^uint64(0), nil)
	return end, next, err
}

// Replay calls fn for every durable record with sequence number >= from,
// in order (from 0 means the oldest record kept). It stops at the first
// error fn returns and returns it. Records appended while Replay runs may
// or may not be included. Record.Data is valid only during fn.
func (j *Journal) Replay(from uint64, fn func(Record) error) error {
	j.mu.Lock()
	segs := append([]segment(nil), j.mu.segments...)
	limit := j.mu.stats.DurableSeq
	j.mu.Unlock()
	if len(segs) == 0 || limit == 0 {
		return nil
	}
	if from == 0 {
		from = segs[0].first
	}
	if from < segs[0].first {
		return fmt.Errorf("%w: from %d, oldest kept is %d", ErrCompacted, from, segs[0].first)
	}
	start := 0
	for i := range segs {
		if segs[i].first <= from {
			start = i
		}
	}
	_, _, _, err := walk(j.opts.FS, j.opts.Dir, segs[start:], limit, func(r Record) error {
		if r.Seq < from {
			return nil
		}
		return fn(r)
	})
	return err
}

// FirstSeq is the sequence number of the oldest record kept (that
// TruncateBefore has not removed), or NextSeq when the log is empty.
func (j *Journal) FirstSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.mu.segments) == 0 {
		return j.mu.nextSeq
	}
	return j.mu.segments[0].first
}

// TruncateBefore removes the segment files all of whose records have
// sequence numbers below seq: a checkpoint covering them makes them
// obsolete. The segment being written is never removed, so records below
// seq may survive. It returns how many segments it removed.
//
// Segments go oldest first, one removal made durable (SyncDir) before the
// next: a crash or a failure part way leaves a suffix of the log without
// a gap, which replays. A segment already gone (an earlier call failed
// after removing it) counts as removed.
func (j *Journal) TruncateBefore(seq uint64) (int, error) {
	j.mu.Lock()
	segs := j.mu.segments
	n := 0
	for n+1 < len(segs) && segs[n+1].first <= seq {
		n++
	}
	doomed := append([]segment(nil), segs[:n]...)
	j.mu.Unlock()
	for i, s := range doomed {
		if err := j.opts.FS.Remove(path.Join(j.opts.Dir, s.name)); err != nil && !errors.Is(err, iofs.ErrNotExist) {
			return i, fmt.Errorf("journal: truncate: %w", err)
		}
		if err := j.opts.FS.SyncDir(j.opts.Dir); err != nil {
			return i, fmt.Errorf("journal: truncate: %w", err)
		}
		j.mu.Lock()
		j.mu.segments = j.mu.segments[1:]
		j.mu.Unlock()
	}
	return n, nil
}

// Verify walks every segment in dir and checks every batch and record,
// without opening the log for writing: the Check walker of this format.
// It returns the number of records and the next sequence number.
func Verify(fs vfs.FS, dir string) (records uint64, next uint64, err error) {
	segs, err := listSegments(fs, dir)
	if err != nil || len(segs) == 0 {
		return 0, 1, err
	}
	_, _, next, err = walk(fs, dir, segs, ^uint64(0), func(Record) error { records++; return nil })
	return records, next, err
}
