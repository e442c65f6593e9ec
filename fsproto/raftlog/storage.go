package raftlog

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/weftfs/weft/internal/vfs"
	"github.com/weftfs/weft/journal"
)

// Errors. Test with errors.Is. Storage also returns raft.ErrCompacted,
// raft.ErrUnavailable and raft.ErrSnapOutOfDate where raft.MemoryStorage
// does.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("raftlog: closed")
	// ErrFailed wraps the first failed journal write; after it Save and
	// CreateSnapshot refuse to run, because the journal may hold a group the
	// in-memory state does not. Reopen to recover.
	ErrFailed = errors.New("raftlog: failed")
	// ErrTooLarge is returned for a snapshot larger than SnapshotBytesMax or
	// an entry that does not fit in one journal record.
	ErrTooLarge = errors.New("raftlog: too large")
	// ErrInvalid is returned when Save or CreateSnapshot is called with
	// arguments raft would never pass: a gap in the log, entries out of
	// order, a snapshot beyond the log or beyond the commit index.
	ErrInvalid = errors.New("raftlog: invalid argument")
)

// Options configure Open.
type Options struct {
	// FS is the file system; nil means vfs.Default.
	FS vfs.FS
	// Dir is the journal directory, created if missing. Required.
	Dir string
	// Logger receives recovery notes; nil means slog.Default().
	Logger *slog.Logger
	// KeepEntries is how many entries before a snapshot's index
	// CreateSnapshot keeps, so that slow followers can catch up from the log
	// rather than from a snapshot. 0 means 1000; a negative value keeps none.
	KeepEntries int
	// SegmentBytes caps a journal segment file; 0 means 64 MiB. The largest
	// entry Save accepts is min(4 MiB, SegmentBytes/2) less 64 bytes.
	SegmentBytes int64
	// BatchBytesMax caps one journal group commit; 0 means 1 MiB. A Save
	// larger than it spans several (and stays atomic).
	BatchBytesMax int
	// NoSync skips the journal's flushes: only for a power-loss protected
	// device (see journal.Options.NoSync).
	NoSync bool
}

func (o *Options) validate() error {
	var probs []string
	if o.Dir == "" {
		probs = append(probs, "Dir is empty")
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch {
	case o.KeepEntries == 0:
		o.KeepEntries = 1000
	case o.KeepEntries < 0:
		o.KeepEntries = 0
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = 64 << 20
	}
	if o.SegmentBytes < 64<<10 {
		probs = append(probs, fmt.Sprintf("SegmentBytes=%d: want at least %d", o.SegmentBytes, 64<<10))
	}
	if len(probs) > 0 {
		return errors.New("raftlog: options: " + strings.Join(probs, "; "))
	}
	return nil
}

// lockName is the file in the journal directory that Open locks.
const lockName = "LOCK"

// segmentSuffix ends the name of a journal segment file (see package journal).
const segmentSuffix = ".wlog"

// Stats describe a Storage.
type Stats struct {
	Entries         int    // live entries held in memory (not counting the compaction point)
	FirstIndex      uint64 // first index available from Entries
	LastIndex       uint64 // last index in the log
	SnapshotIndex   uint64 // index of the latest snapshot, 0 for none
	EntryBytes      int64  // bytes of entry data held in memory
	SnapshotBytes   int64  // bytes of snapshot data held in memory
	JournalBytes    int64  // bytes of the journal's segment files
	JournalSegments int    // journal segment files
	Saves           uint64 // Save calls that wrote something, since Open
	LazySaves       uint64 // of Saves, those that only moved the commit index (not waited for)
	SnapshotsTaken  uint64 // CreateSnapshot calls that succeeded, since Open
	SnapshotsSaved  uint64 // snapshots from a leader recorded by Save, since Open
}

// Storage is a durable raft.Storage for one Raft group. See the package doc.
type Storage struct {
	opts      Options
	j         *journal.Journal
	lock      io.Closer
	recordMax int // largest journal record body
	chunkMax  int // snapshot data per record

	mu struct {
		sync.Mutex
		st     state
		closed bool
		err    error // sticky, wraps ErrFailed
		stats  Stats
	}
}

// state is the log as raft sees it. Every field is replaced, never mutated
// in place, once a reader may have seen it.
type state struct {
	hs   *pb.HardState // never nil
	snap *pb.Snapshot  // never nil; Metadata never nil
	// ents[0] is the compaction point: its index and term only. The live
	// entries follow with consecutive indexes.
	ents []*pb.Entry
}

func emptyState() state {
	return state{
		hs:   &pb.HardState{},
		snap: pb.EnsureSnapshot(nil),
		ents: []*pb.Entry{newEntry(0, 0, pb.EntryNormal, nil)},
	}
}

func (st *state) offset() uint64    { return st.ents[0].GetIndex() }
func (st *state) lastIndex() uint64 { return st.offset() + uint64(len(st.ents)) - 1 }

// term returns the term of index i, which must be in [offset, lastIndex].
func (st *state) term(i uint64) uint64 {
	if i < st.offset() || i > st.lastIndex() {
		panic(fmt.Sprintf("raftlog: term of %d outside the log [%d, %d]", i, st.offset(), st.lastIndex()))
	}
	return st.ents[i-st.offset()].GetTerm()
}

// check verifies the invariants of a state: consecutive indexes from the
// compaction point, the snapshot (if any) inside the log with the same
// term there, the commit index inside the log.
func (st *state) check() error {
	for i, e := range st.ents {
		if e.GetIndex() != st.offset()+uint64(i) {
			return fmt.Errorf("entry %d of the log has index %d, want %d", i, e.GetIndex(), st.offset()+uint64(i))
		}
	}
	if si := st.snap.GetMetadata().GetIndex(); si != 0 {
		if si < st.offset() || si > st.lastIndex() {
			return fmt.Errorf("snapshot at %d outside the log [%d, %d]", si, st.offset(), st.lastIndex())
		}
		if t := st.term(si); t != st.snap.GetMetadata().GetTerm() {
			return fmt.Errorf("snapshot at %d has term %d, the log %d", si, st.snap.GetMetadata().GetTerm(), t)
		}
	}
	if c := st.hs.GetCommit(); c > st.lastIndex() {
		return fmt.Errorf("commit index %d past the last index %d", c, st.lastIndex())
	}
	return nil
}

// appendEnts returns the log with ents (consecutive, each at index >
// offset, the first at most lastIndex+1) replacing the suffix from
// ents[0]'s index. st.ents is not modified below its length.
func (st *state) appendEnts(ents []*pb.Entry) []*pb.Entry {
	if len(ents) == 0 {
		return st.ents
	}
	at := ents[0].GetIndex() - st.offset()
	if at == 0 || at > uint64(len(st.ents)) {
		panic(fmt.Sprintf("raftlog: appending at %d to the log [%d, %d]", ents[0].GetIndex(), st.offset(), st.lastIndex()))
	}
	// NB: the three-index slice makes append copy when it overwrites, so
	// slices handed out by Entries never change.
	return append(st.ents[:at:at], ents...)
}

// OpenExisting opens the log in opts.Dir as Open does, for an offline
// tool: a missing directory is an error naming it rather than a new, empty
// log, and a failure to open says that the log may be in use (a running
// member holds its lock).
func OpenExisting(opts Options) (*Storage, error) {
	fsys := opts.FS
	if fsys == nil {
		fsys = vfs.Default
	}
	if _, err := fsys.Stat(opts.Dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("raftlog: no raft log at %s", opts.Dir)
		}
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	s, err := Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open raft log %s (is its member stopped?): %w", opts.Dir, err)
	}
	return s, nil
}

// Open opens (creating if needed) the log in opts.Dir and replays it: the
// latest snapshot, the hard state and the live entries. A Save that was
// torn by a crash is left out whole.
func Open(opts Options) (*Storage, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	// NB: two Storages on one journal would interleave their groups and
	// cut each other's tails; the lock keeps a second Open out.
	if err := opts.FS.MkdirAll(opts.Dir); err != nil {
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	lock, err := opts.FS.Lock(path.Join(opts.Dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("raftlog: %s is in use: %w", opts.Dir, err)
	}
	recordMax := int(min(4<<20, opts.SegmentBytes/2))
	// Direct: a batch written with O_DIRECT and then flushed costs about
	// half of a buffered write's flush, which must first write the page
	// back (fio, 4 KiB write + fdatasync, three writers on one ext4 file
	// system: flush p50 216 µs after a 75 µs direct write, 528 µs after a
	// buffered one), and every Raft Save pays one.
	j, err := journal.Open(journal.Options{Dir: opts.Dir, FS: opts.FS, SegmentBytes: opts.SegmentBytes, BatchBytesMax: opts.BatchBytesMax, RecordBytesMax: recordMax, NoSync: opts.NoSync, Direct: true})
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	s := &Storage{opts: opts, j: j, lock: lock, recordMax: recordMax, chunkMax: min(256<<10, recordMax-64)}
	st, err := replay(j, opts.Logger)
	if err != nil {
		j.Close()
		lock.Close()
		return nil, fmt.Errorf("raftlog: replaying %s: %w", opts.Dir, err)
	}
	if err := st.check(); err != nil {
		j.Close()
		lock.Close()
		return nil, fmt.Errorf("raftlog: replaying %s: %w", opts.Dir, corruptf("%v", err))
	}
	s.mu.st = st
	return s, nil
}

// Close closes the journal. Every Save that returned nil is durable
// already.
func (s *Storage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return ErrClosed
	}
	s.mu.closed = true
	err := s.j.Close()
	s.lock.Close()
	if err != nil && s.mu.err == nil {
		return fmt.Errorf("raftlog: close: %w", err)
	}
	return nil
}

func (s *Storage) checkLocked() error {
	if s.mu.closed {
		return ErrClosed
	}
	return nil
}

// InitialState implements raft.Storage.
func (s *Storage) InitialState() (*pb.HardState, *pb.ConfState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return nil, nil, err
	}
	cs := pb.EnsureConfState(s.mu.st.snap.GetMetadata().GetConfState())
	return proto.Clone(s.mu.st.hs).(*pb.HardState), proto.Clone(cs).(*pb.ConfState), nil
}

// Entries implements raft.Storage: the entries in [lo, hi), at least one
// and at most maxSize bytes (as raft measures them) otherwise. The caller
// may append to the returned slice but must not modify the entries.
func (s *Storage) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return nil, err
	}
	st := &s.mu.st
	off := st.offset()
	if lo <= off {
		return nil, raft.ErrCompacted
	}
	if hi > st.lastIndex()+1 || lo > hi {
		return nil, fmt.Errorf("%w: entries [%d, %d) outside the log [%d, %d]", raft.ErrUnavailable, lo, hi, off+1, st.lastIndex())
	}
	if len(st.ents) == 1 {
		return nil, raft.ErrUnavailable
	}
	ents := st.ents[lo-off : hi-off]
	if len(ents) > 1 {
		size := uint64(proto.Size(ents[0]))
		for n := 1; n < len(ents); n++ {
			size += uint64(proto.Size(ents[n]))
			if size > maxSize {
				ents = ents[:n]
				break
			}
		}
	}
	return ents[:len(ents):len(ents)], nil
}

// Term implements raft.Storage.
func (s *Storage) Term(i uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return 0, err
	}
	st := &s.mu.st
	if i < st.offset() {
		return 0, raft.ErrCompacted
	}
	if i > st.lastIndex() {
		return 0, raft.ErrUnavailable
	}
	return st.term(i), nil
}

// LastIndex implements raft.Storage.
func (s *Storage) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return 0, err
	}
	return s.mu.st.lastIndex(), nil
}

// Empty reports whether the log holds nothing: no hard state, no entry,
// no snapshot. A raft member starting on it bootstraps or joins; one
// that had been a member before lost its log.
func (s *Storage) Empty() (bool, error) {
	hs, _, err := s.InitialState()
	if err != nil {
		return false, fmt.Errorf("read raft state: %w", err)
	}
	last, err := s.LastIndex()
	if err != nil {
		return false, fmt.Errorf("read raft last index: %w", err)
	}
	return hs.GetTerm() == 0 && hs.GetVote() == 0 && hs.GetCommit() == 0 && last == 0, nil
}

// FirstIndex implements raft.Storage.
func (s *Storage) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return 0, err
	}
	return s.mu.st.offset() + 1, nil
}

// Snapshot implements raft.Storage. The returned snapshot's Data is shared
// with the Storage: the caller must not modify it.
func (s *Storage) Snapshot() (*pb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return nil, err
	}
	return shareSnapshot(s.mu.st.snap), nil
}

// shareSnapshot copies the metadata of snap and shares its data, which is
// never modified once stored.
func shareSnapshot(snap *pb.Snapshot) *pb.Snapshot {
	return &pb.Snapshot{Metadata: proto.Clone(snap.GetMetadata()).(*pb.SnapshotMetadata), Data: snap.GetData()}
}

// group collects the records of one Save or CreateSnapshot. Bodies are
// encoded only as they are appended (the journal copies each one into its
// batch), so a large snapshot is not held encoded whole on top of its copy
// in the state.
type group struct {
	typs   []uint16
	bodies []func(flags uint8) []byte
}

func (g *group) add(typ uint16, body func(flags uint8) []byte) {
	g.typs = append(g.typs, typ)
	g.bodies = append(g.bodies, body)
}

// writeLocked appends the group, the first record flagged first and the
// last flagged last, and returns the sequence number of its first record
// once every record is durable; or, when lazy, once they are queued, in
// order behind everything appended before (a later failure fails every
// later write).
func (s *Storage) writeLocked(g *group, lazy bool) (uint64, error) {
	var first uint64
	last := len(g.bodies) - 1
	for i, encode := range g.bodies {
		var flags uint8
		if i == 0 {
			flags |= flagFirst
		}
		if i == last {
			flags |= flagLast
		}
		body := encode(flags)
		var seq uint64
		var err error
		switch {
		case lazy:
			// Written with the next batch something waits for: no
			// flush of its own.
			seq, err = s.j.AppendLazy(g.typs[i], body)
		case i < last:
			// Written with the group's last record at the latest, which
			// is waited for. Invariant: the journal writes batches in
			// order and fails every batch after a failed one, so the
			// last record being durable means all of them are. (Lazy
			// rather than asynchronous: that would wake the journal's
			// committer to write the batch the last record's Append
			// writes itself.)
			seq, err = s.j.AppendLazy(g.typs[i], body)
		default:
			seq, err = s.j.Append(g.typs[i], body)
		}
		if err != nil {
			s.mu.err = fmt.Errorf("%w: %w", ErrFailed, err)
			return 0, s.mu.err
		}
		if i == 0 {
			first = seq
		}
	}
	return first, nil
}

// addEntries adds entries records for ents (consecutive from first),
// split so that each fits in a journal record. The first record resets
// the log when reset is set.
func (s *Storage) addEntries(g *group, first, prevTerm uint64, reset bool, ents []*pb.Entry) {
	for {
		n, size := 0, entriesHdrSize
		for n < len(ents) && (n == 0 || size+entryHdrSize+len(ents[n].GetData()) <= s.recordMax) {
			size += entryHdrSize + len(ents[n].GetData())
			n++
		}
		r := entries{first: first, prevTerm: prevTerm, reset: reset, ents: ents[:n]}
		g.add(typeEntries, func(f uint8) []byte { return encodeEntries(f, r) })
		if n == len(ents) {
			return
		}
		first, prevTerm, reset = first+uint64(n), ents[n-1].GetTerm(), false
		ents = ents[n:]
	}
}

// addSnapshot adds a snapshot record and its data chunks.
func (s *Storage) addSnapshot(g *group, snap *pb.Snapshot) {
	md := snap.GetMetadata()
	m := snapshotMeta{index: md.GetIndex(), term: md.GetTerm(), dataLen: uint64(len(snap.GetData())), cs: md.GetConfState()}
	g.add(typeSnapshot, func(f uint8) []byte { return encodeSnapshot(f, m) })
	data := snap.GetData()
	for off := 0; off < len(data); off += s.chunkMax {
		d := snapshotData{off: uint64(off), data: data[off:min(off+s.chunkMax, len(data))]}
		g.add(typeSnapshotData, func(f uint8) []byte { return encodeSnapshotData(f, d) })
	}
}

func (s *Storage) checkEntry(e *pb.Entry) error {
	if entriesHdrSize+entryHdrSize+len(e.GetData()) > s.recordMax {
		return fmt.Errorf("%w: entry %d has %d bytes of data, at most %d fit in a journal record", ErrTooLarge, e.GetIndex(), len(e.GetData()), s.recordMax-entriesHdrSize-entryHdrSize)
	}
	if _, ok := pb.EntryType_name[int32(e.GetType())]; !ok {
		return fmt.Errorf("%w: entry %d has unknown type %d", ErrInvalid, e.GetIndex(), e.GetType())
	}
	return nil
}

// Save makes hs, ents and snap durable before it returns, and atomically:
// after a crash either all of them are in the log or none is. Its records
// usually share one journal group commit (one write, one flush); the
// journal may split them across batches when they exceed
// Options.BatchBytesMax or its committer takes the first ones early, which
// costs a flush but not atomicity. A nil or empty hs or snap is
// skipped. snap, when given, is applied first (as
// raft.MemoryStorage.ApplySnapshot does: the log becomes just the
// snapshot), then ents replace the suffix of the log from their first
// index (entries below FirstIndex are ignored), then hs is recorded. Save
// copies what it keeps: the caller may reuse ents and snap afterwards.
//
// It returns raft.ErrSnapOutOfDate for a snapshot not newer than the
// current one, ErrInvalid for entries that would leave a gap, ErrTooLarge
// for oversized data, and an ErrFailed error when the journal failed; in
// every case the state is unchanged.
func (s *Storage) Save(hs *pb.HardState, ents []*pb.Entry, snap *pb.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return err
	}
	if s.mu.err != nil {
		return s.mu.err
	}
	st := s.mu.st // the new state, built without touching the old
	var g group
	withSnap := !raft.IsEmptySnap(snap)
	if withSnap {
		md := snap.GetMetadata()
		if cur := st.snap.GetMetadata().GetIndex(); cur != 0 && cur >= md.GetIndex() {
			return raft.ErrSnapOutOfDate
		}
		if len(snap.GetData()) > SnapshotBytesMax {
			return fmt.Errorf("%w: snapshot data of %d bytes, at most %d", ErrTooLarge, len(snap.GetData()), SnapshotBytesMax)
		}
		st.snap = &pb.Snapshot{Metadata: proto.Clone(md).(*pb.SnapshotMetadata), Data: cloneBytes(snap.GetData())}
		st.ents = []*pb.Entry{newEntry(md.GetIndex(), md.GetTerm(), pb.EntryNormal, nil)}
		s.addSnapshot(&g, st.snap)
	}
	for i, e := range ents {
		if e.GetIndex() != ents[0].GetIndex()+uint64(i) {
			return fmt.Errorf("%w: entry %d of the batch has index %d, want %d", ErrInvalid, i, e.GetIndex(), ents[0].GetIndex()+uint64(i))
		}
	}
	// Keep only what is above the compaction point, as MemoryStorage.Append.
	if len(ents) > 0 && ents[len(ents)-1].GetIndex() <= st.offset() {
		ents = nil
	}
	if len(ents) > 0 {
		if first := st.offset() + 1; ents[0].GetIndex() < first {
			ents = ents[first-ents[0].GetIndex():]
		}
		if at := ents[0].GetIndex(); at > st.lastIndex()+1 {
			return fmt.Errorf("%w: entries from %d would leave a gap after the last index %d", ErrInvalid, at, st.lastIndex())
		}
		own := make([]*pb.Entry, len(ents))
		for i, e := range ents {
			if err := s.checkEntry(e); err != nil {
				return err
			}
			own[i] = newEntry(e.GetIndex(), e.GetTerm(), e.GetType(), cloneBytes(e.GetData()))
		}
		first := own[0].GetIndex()
		s.addEntries(&g, first, st.term(first-1), withSnap, own)
		st.ents = st.appendEnts(own)
	} else if withSnap {
		s.addEntries(&g, st.offset()+1, st.snap.GetMetadata().GetTerm(), true, nil)
	}
	if !raft.IsEmptyHardState(hs) {
		st.hs = &pb.HardState{Term: new(hs.GetTerm()), Vote: new(hs.GetVote()), Commit: new(hs.GetCommit())}
	}
	if st.hs.GetCommit() > st.lastIndex() {
		return fmt.Errorf("%w: commit index %d beyond the last index %d", ErrInvalid, st.hs.GetCommit(), st.lastIndex())
	}
	if withSnap || !raft.IsEmptyHardState(hs) {
		// A snapshot group is a checkpoint: it carries the hard state too,
		// so that the journal before it can go.
		h := hardState{term: st.hs.GetTerm(), vote: st.hs.GetVote(), commit: st.hs.GetCommit()}
		g.add(typeHardState, func(f uint8) []byte { return encodeHardState(f, h) })
	}
	if len(g.bodies) == 0 {
		return nil
	}
	// A save that only moves the commit index is written in order but
	// not waited for (see the package doc).
	lazy := len(ents) == 0 && !withSnap && !raft.IsEmptyHardState(hs) &&
		hs.GetTerm() == s.mu.st.hs.GetTerm() && hs.GetVote() == s.mu.st.hs.GetVote()
	seq, err := s.writeLocked(&g, lazy)
	if err != nil {
		return err
	}
	if lazy {
		s.mu.stats.LazySaves++
	}
	s.mu.st = st
	s.mu.stats.Saves++
	if withSnap {
		s.mu.stats.SnapshotsSaved++
		s.truncateLocked(seq)
	}
	return nil
}

// CreateSnapshot records the application's snapshot at index (which must
// be at most the commit index, and is at most the applied index in
// practice) with its ConfState (nil keeps the previous one) and data, and
// then compacts: entries up to index-KeepEntries are dropped from memory
// and journal segments holding only older records are deleted. data is
// copied. It returns raft.ErrSnapOutOfDate for an index not above the
// current snapshot's, ErrInvalid for an index past the commit index, and
// ErrTooLarge for data over SnapshotBytesMax.
//
// The snapshot is written as a checkpoint group: snapshot, data, every
// entry kept, and the hard state, so that nothing before it is needed.
func (s *Storage) CreateSnapshot(index uint64, cs *pb.ConfState, data []byte) (*pb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return nil, err
	}
	if s.mu.err != nil {
		return nil, s.mu.err
	}
	st := s.mu.st
	if index <= st.snap.GetMetadata().GetIndex() {
		return nil, raft.ErrSnapOutOfDate
	}
	if index > st.hs.GetCommit() || index > st.lastIndex() {
		return nil, fmt.Errorf("%w: snapshot at %d beyond the commit index %d (last index %d)", ErrInvalid, index, st.hs.GetCommit(), st.lastIndex())
	}
	if len(data) > SnapshotBytesMax {
		return nil, fmt.Errorf("%w: snapshot data of %d bytes, at most %d", ErrTooLarge, len(data), SnapshotBytesMax)
	}
	md := &pb.SnapshotMetadata{Index: new(index), Term: new(st.term(index)), ConfState: st.snap.GetMetadata().GetConfState()}
	if cs != nil {
		md.ConfState = proto.Clone(cs).(*pb.ConfState)
	}
	st.snap = &pb.Snapshot{Metadata: md, Data: cloneBytes(data)}
	compact := st.offset()
	if index > uint64(s.opts.KeepEntries) {
		compact = max(compact, index-uint64(s.opts.KeepEntries))
	}
	i := compact - st.offset()
	ents := make([]*pb.Entry, 1, uint64(len(st.ents))-i)
	ents[0] = newEntry(compact, st.term(compact), pb.EntryNormal, nil)
	st.ents = append(ents, st.ents[i+1:]...)

	var g group
	s.addSnapshot(&g, st.snap)
	s.addEntries(&g, compact+1, st.term(compact), true, st.ents[1:])
	h := hardState{term: st.hs.GetTerm(), vote: st.hs.GetVote(), commit: st.hs.GetCommit()}
	g.add(typeHardState, func(f uint8) []byte { return encodeHardState(f, h) })
	seq, err := s.writeLocked(&g, false)
	if err != nil {
		return nil, err
	}
	s.mu.st = st
	s.mu.stats.SnapshotsTaken++
	s.truncateLocked(seq)
	return shareSnapshot(st.snap), nil
}

// truncateLocked drops the journal segments before a checkpoint group that
// starts at seq. A failure is only logged: the old segments are still
// correct, just no longer needed, and the next checkpoint retries.
//
// NB: journal.TruncateBefore removes several segments and then syncs the
// directory once; a crash before that sync may keep any subset of the
// removals, and a surviving old segment with a removed one after it is a
// gap that replay must call corruption. So segments go one at a time,
// oldest first, each removal synced before the next: a crash leaves a
// contiguous run. The segment names come from the journal's documented
// on-disk format (%016x.wlog, the first sequence number). TODO: remove
// once journal.TruncateBefore syncs removals in order itself.
func (s *Storage) truncateLocked(seq uint64) {
	firsts, err := s.segmentFirsts()
	if err != nil {
		s.opts.Logger.Warn("raftlog: listing journal segments failed", "dir", s.opts.Dir, "err", err)
		return
	}
	for i := 1; i < len(firsts) && firsts[i] <= seq; i++ {
		if _, err := s.j.TruncateBefore(firsts[i]); err != nil {
			s.opts.Logger.Warn("raftlog: dropping old journal segments failed", "dir", s.opts.Dir, "before", firsts[i], "err", err)
			return
		}
	}
}

// segmentFirsts returns the first sequence numbers of the journal's
// segments, in order.
func (s *Storage) segmentFirsts() ([]uint64, error) {
	names, err := s.opts.FS.ReadDir(s.opts.Dir)
	if err != nil {
		return nil, err
	}
	var firsts []uint64
	for _, n := range names {
		hex, ok := strings.CutSuffix(n, segmentSuffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(hex, 16, 64)
		if err != nil || len(hex) != 16 {
			return nil, fmt.Errorf("%s: not a journal segment name", n)
		}
		firsts = append(firsts, v)
	}
	slices.Sort(firsts)
	return firsts, nil
}

// Stats returns counters and sizes. It lists the journal directory.
func (s *Storage) Stats() Stats {
	s.mu.Lock()
	st := s.mu.stats
	cur := s.mu.st
	s.mu.Unlock()
	st.Entries = len(cur.ents) - 1
	st.FirstIndex = cur.offset() + 1
	st.LastIndex = cur.lastIndex()
	st.SnapshotIndex = cur.snap.GetMetadata().GetIndex()
	st.SnapshotBytes = int64(len(cur.snap.GetData()))
	for _, e := range cur.ents[1:] {
		st.EntryBytes += int64(len(e.GetData()))
	}
	if names, err := s.opts.FS.ReadDir(s.opts.Dir); err == nil {
		for _, n := range names {
			if !strings.HasSuffix(n, segmentSuffix) {
				continue
			}
			if size, err := s.opts.FS.Stat(path.Join(s.opts.Dir, n)); err == nil {
				st.JournalBytes += size
				st.JournalSegments++
			}
		}
	}
	return st
}

func cloneBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
