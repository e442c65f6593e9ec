package raftlog

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/weftfs/weft/internal/testutil"
	"github.com/weftfs/weft/internal/vfs"
	"github.com/weftfs/weft/journal"
)

var (
	modelSeed = flag.Int64("model.seed", 0, "run the model test with this seed only")
	modelOps  = flag.Int("model.ops", 0, "operations per seed in the model test (default 200, 3000 without -short)")
)

var _ raft.Storage = (*Storage)(nil)

func openMem(t testing.TB, fs vfs.FS, keep int) *Storage {
	t.Helper()
	s, err := Open(Options{FS: fs, Dir: "/raft", Logger: quietLogger, KeepEntries: keep, SegmentBytes: 64 << 10})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

// TestModel runs random raft-like operations on a Storage and on a
// raft.MemoryStorage, reopening the Storage at random points, and checks
// after every operation that raft reads the same from both.
func TestModel(t *testing.T) {
	ops := 200
	if !testing.Short() {
		ops = 3000
	}
	if *modelOps > 0 {
		ops = *modelOps
	}
	seeds := []int64{1, 2, 3, 4}
	if *modelSeed != 0 {
		seeds = []int64{*modelSeed}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("seed %d (rerun: go test ./fsproto/raftlog -run TestModel -model.seed=%d)", seed, seed)
				}
			}()
			runModel(t, seed, ops)
		})
	}
}

func runModel(t *testing.T, seed int64, ops int) {
	rng := rand.New(rand.NewSource(seed))
	keep := 1 + rng.Intn(30)
	optKeep := keep
	if rng.Intn(4) == 0 {
		keep, optKeep = 0, -1
	}
	d := &driver{rng: rng, keep: keep, bigP: 40}
	fs := vfs.NewMem()
	s := openMem(t, fs, optKeep)
	defer func() { s.Close() }()
	ms := raft.NewMemoryStorage()
	reopens := 0
	kinds := map[string]int{}
	for i := 0; i < ops; i++ {
		o := d.next(ms)
		for _, k := range []string{"create snapshot", "save leader snapshot", "overwriting", "repeating", "save hard state"} {
			if strings.Contains(o.desc, k) {
				kinds[k]++
			}
		}
		errModel := o.applyModel(ms)
		err := o.apply(s)
		if (err == nil) != (errModel == nil) || (err != nil && !errors.Is(err, errModel)) {
			t.Fatalf("seed %d op %d (%s): storage says %v, model says %v", seed, i, o.desc, err, errModel)
		}
		if rng.Intn(25) == 0 {
			if err := s.Close(); err != nil {
				t.Fatalf("seed %d op %d: close: %v", seed, i, err)
			}
			s = openMem(t, fs, optKeep)
			reopens++
		}
		compareStorage(t, fmt.Sprintf("seed %d op %d (%s)", seed, i, o.desc), rng, s, ms)
	}
	st := s.Stats()
	if len(kinds) < 5 || reopens == 0 {
		t.Fatalf("seed %d: the run missed a kind of operation: %v, %d reopens", seed, kinds, reopens)
	}
	if _, _, err := journal.Verify(fs, "/raft"); err != nil {
		t.Fatalf("seed %d: journal verify: %v", seed, err)
	}
	t.Logf("seed %d: %d ops %v, %d reopens; at the end %+v", seed, ops, kinds, reopens, st)
}

// compareStorage checks that s and the model answer every raft.Storage
// call alike, errors included.
func compareStorage(t *testing.T, where string, rng *rand.Rand, s *Storage, ms *raft.MemoryStorage) {
	t.Helper()
	got, err := capture(s)
	if err != nil {
		t.Fatalf("%s: reading the storage: %v", where, err)
	}
	want, err := capture(ms)
	if err != nil {
		t.Fatalf("%s: reading the model: %v", where, err)
	}
	if d := got.diff(want); d != "" {
		t.Fatalf("%s: storage differs from the model: %s", where, d)
	}
	// Out of range reads fail alike.
	for _, i := range []uint64{got.first - 2, got.last + 1, got.last + 5} {
		if got.first < 2 && i == got.first-2 {
			continue
		}
		_, e1 := s.Term(i)
		_, e2 := ms.Term(i)
		if !errors.Is(e1, e2) || (e1 == nil) != (e2 == nil) {
			t.Fatalf("%s: Term(%d): %v, model %v", where, i, e1, e2)
		}
	}
	_, e1 := s.Entries(got.first-1, got.last+1, 1<<20)
	_, e2 := ms.Entries(got.first-1, got.last+1, 1<<20)
	if !errors.Is(e1, raft.ErrCompacted) || !errors.Is(e2, raft.ErrCompacted) {
		t.Fatalf("%s: Entries below FirstIndex: %v, model %v", where, e1, e2)
	}
	// Size-limited reads cut at the same place.
	if got.last >= got.first {
		lo := got.first + uint64(rng.Int63n(int64(got.last-got.first+1)))
		hi := lo + 1 + uint64(rng.Int63n(int64(got.last-lo+1)))
		max := uint64(rng.Intn(2000))
		a, e1 := s.Entries(lo, hi, max)
		b, e2 := ms.Entries(lo, hi, max)
		if e1 != nil || e2 != nil || len(a) != len(b) {
			t.Fatalf("%s: Entries(%d, %d, %d): %d entries (%v), model %d (%v)", where, lo, hi, max, len(a), e1, len(b), e2)
		}
	}
}

// TestErrors checks the raft error values where MemoryStorage returns
// them, and this package's own for arguments raft never passes.
func TestErrors(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs, 2)
	ms := raft.NewMemoryStorage()

	// Empty: only the dummy entry.
	if _, err := s.Entries(1, 1, 0); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("Entries on an empty log: %v, want ErrUnavailable", err)
	}
	if _, err := ms.Entries(1, 1, 0); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("model: Entries on an empty log: %v", err)
	}
	if term, err := s.Term(0); err != nil || term != 0 {
		t.Fatalf("Term(0) = %d, %v", term, err)
	}
	if _, err := s.Term(1); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("Term past the end: %v, want ErrUnavailable", err)
	}

	var ents []*pb.Entry
	for i := uint64(1); i <= 10; i++ {
		ents = append(ents, newEntry(i, 1+i/5, pb.EntryNormal, []byte{byte(i)}))
	}
	hs := &pb.HardState{Term: new(uint64(3)), Commit: new(uint64(8))}
	for _, st := range []interface {
		Append([]*pb.Entry) error
	}{ms} {
		must(st.Append(ents))
	}
	must(ms.SetHardState(hs))
	if err := s.Save(hs, ents, nil); err != nil {
		t.Fatal(err)
	}
	// A gap, unordered entries, a commit beyond the log.
	if err := s.Save(nil, []*pb.Entry{newEntry(12, 3, pb.EntryNormal, nil)}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Save with a gap: %v, want ErrInvalid", err)
	}
	if err := s.Save(nil, []*pb.Entry{newEntry(11, 3, pb.EntryNormal, nil), newEntry(13, 3, pb.EntryNormal, nil)}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Save with unordered entries: %v, want ErrInvalid", err)
	}
	if err := s.Save(nil, []*pb.Entry{newEntry(1, 1, pb.EntryNormal, nil), newEntry(11, 3, pb.EntryNormal, nil)}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Save with unordered entries that end past the log: %v, want ErrInvalid", err)
	}
	if err := s.Save(nil, []*pb.Entry{newEntry(11, 3, pb.EntryNormal, nil), nil}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Save with a nil entry: %v, want ErrInvalid", err)
	}
	if err := s.Save(&pb.HardState{Term: new(uint64(3)), Commit: new(uint64(11))}, nil, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Save with commit past the log: %v, want ErrInvalid", err)
	}
	if err := s.Save(nil, []*pb.Entry{newEntry(11, 3, pb.EntryNormal, make([]byte, 64<<10))}, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Save of an entry larger than a record: %v, want ErrTooLarge", err)
	}

	// Snapshots.
	if _, err := s.CreateSnapshot(9, nil, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("CreateSnapshot past the commit index: %v, want ErrInvalid", err)
	}
	if _, err := s.CreateSnapshot(5, nil, make([]byte, SnapshotBytesMax+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("CreateSnapshot with too much data: %v, want ErrTooLarge", err)
	}
	cs := &pb.ConfState{Voters: []uint64{1}}
	for _, st := range []interface {
		CreateSnapshot(uint64, *pb.ConfState, []byte) (*pb.Snapshot, error)
	}{s, ms} {
		if _, err := st.CreateSnapshot(6, cs, []byte("six")); err != nil {
			t.Fatalf("%T: CreateSnapshot(6): %v", st, err)
		}
		if _, err := st.CreateSnapshot(6, cs, nil); !errors.Is(err, raft.ErrSnapOutOfDate) {
			t.Fatalf("%T: CreateSnapshot at the same index: %v, want ErrSnapOutOfDate", st, err)
		}
		if _, err := st.CreateSnapshot(4, cs, nil); !errors.Is(err, raft.ErrSnapOutOfDate) {
			t.Fatalf("%T: CreateSnapshot below: %v, want ErrSnapOutOfDate", st, err)
		}
	}
	must(ms.Compact(4))
	// Unordered entries reaching from below the compaction point past it.
	if err := s.Save(nil, []*pb.Entry{newEntry(1, 1, pb.EntryNormal, nil), newEntry(12, 3, pb.EntryNormal, nil)}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Save with unordered entries across the compaction point: %v, want ErrInvalid", err)
	}
	// Now the log holds 5..10 after the compaction point 4 (keep 2).
	for _, st := range []raft.Storage{s, ms} {
		if _, err := st.Entries(4, 6, 100); !errors.Is(err, raft.ErrCompacted) {
			t.Fatalf("%T: Entries at the compaction point: %v, want ErrCompacted", st, err)
		}
		if _, err := st.Term(3); !errors.Is(err, raft.ErrCompacted) {
			t.Fatalf("%T: Term below the compaction point: %v, want ErrCompacted", st, err)
		}
		if term, err := st.Term(4); err != nil || term != 1 {
			t.Fatalf("%T: Term at the compaction point = %d, %v; want 1", st, term, err)
		}
		if _, err := st.Term(11); !errors.Is(err, raft.ErrUnavailable) {
			t.Fatalf("%T: Term past the end: %v, want ErrUnavailable", st, err)
		}
	}
	old := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(uint64(5)), Term: new(uint64(2)), ConfState: cs}}
	if err := s.Save(nil, nil, old); !errors.Is(err, raft.ErrSnapOutOfDate) {
		t.Fatalf("Save of an older leader snapshot: %v, want ErrSnapOutOfDate", err)
	}
	if err := ms.ApplySnapshot(old); !errors.Is(err, raft.ErrSnapOutOfDate) {
		t.Fatalf("model: ApplySnapshot of an older snapshot: %v", err)
	}
	big := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(uint64(20)), Term: new(uint64(4))}, Data: make([]byte, SnapshotBytesMax+1)}
	if err := s.Save(nil, nil, big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Save of a leader snapshot over the limit: %v, want ErrTooLarge", err)
	}
	// None of the refused calls changed anything, in memory or on disk.
	compareStorage(t, "after refused calls", rand.New(rand.NewSource(1)), s, ms)
	must(s.Close())
	s = openMem(t, fs, 2)
	compareStorage(t, "after reopening", rand.New(rand.NewSource(1)), s, ms)
	if st := s.Stats(); st.Saves != 0 || st.LastIndex != 10 || st.SnapshotIndex != 6 || st.FirstIndex != 5 {
		t.Fatalf("stats after reopening: %+v", st)
	}

	must(s.Close())
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
	if _, err := s.LastIndex(); !errors.Is(err, ErrClosed) {
		t.Fatalf("LastIndex after Close: %v, want ErrClosed", err)
	}
	if err := s.Save(hs, nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Save after Close: %v, want ErrClosed", err)
	}
}

func TestOptions(t *testing.T) {
	_, err := Open(Options{SegmentBytes: 100})
	if err == nil {
		t.Fatal("Open accepted no Dir and a tiny SegmentBytes")
	}
	for _, want := range []string{"Dir is empty", "SegmentBytes=100"} {
		if !contains(err.Error(), want) {
			t.Errorf("options error %q does not mention %q", err, want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestCompactionBoundsJournal checks that snapshots delete old journal
// segments: the journal stays small however long the log runs.
func TestCompactionBoundsJournal(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs, 10)
	defer s.Close()
	data := make([]byte, 500)
	var maxBytes int64
	for i := uint64(1); i <= 2000; i++ {
		hs := &pb.HardState{Term: new(uint64(1)), Commit: new(i)}
		if err := s.Save(hs, []*pb.Entry{newEntry(i, 1, pb.EntryNormal, data)}, nil); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			if _, err := s.CreateSnapshot(i, &pb.ConfState{Voters: []uint64{1}}, []byte("state")); err != nil {
				t.Fatal(err)
			}
			st := s.Stats()
			if st.Entries != 10 || st.FirstIndex != i-9 || st.LastIndex != i {
				t.Fatalf("after a snapshot at %d: %+v", i, st)
			}
			maxBytes = max(maxBytes, st.JournalBytes)
		}
	}
	st := s.Stats()
	// 100 saves of a 4 KiB batch each between snapshots, in 64 KiB
	// segments: a few segments right after each snapshot, not 2000 saves' worth.
	if st.JournalSegments > 8 || maxBytes > 8*64<<10 {
		t.Fatalf("journal not truncated: %+v, max %d bytes", st, maxBytes)
	}
	if st.SnapshotsTaken != 20 {
		t.Fatalf("SnapshotsTaken = %d, want 20", st.SnapshotsTaken)
	}
}

// TestTornSaveSkipped writes a group without its last record, as a crash
// would leave it, and checks that Open ignores it and that later Saves
// work after it.
func TestTornSaveSkipped(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs, 5)
	e1 := []*pb.Entry{newEntry(1, 1, pb.EntryNormal, []byte("a")), newEntry(2, 1, pb.EntryNormal, []byte("b"))}
	must(s.Save(&pb.HardState{Term: new(uint64(1)), Commit: new(uint64(1))}, e1, nil))
	must(s.Close())

	j, err := journal.Open(journal.Options{FS: fs, Dir: "/raft", SegmentBytes: 64 << 10})
	must(err)
	// The first half of a Save: entries 3.. flagged first but not last.
	torn := encodeEntries(flagFirst, entries{first: 3, prevTerm: 1, ents: []*pb.Entry{newEntry(3, 1, pb.EntryNormal, []byte("torn"))}})
	if _, err := j.Append(typeEntries, torn); err != nil {
		t.Fatal(err)
	}
	must(j.Close())

	s = openMem(t, fs, 5)
	if last, _ := s.LastIndex(); last != 2 {
		t.Fatalf("LastIndex after a torn save = %d, want 2", last)
	}
	e2 := []*pb.Entry{newEntry(3, 2, pb.EntryNormal, []byte("c"))}
	must(s.Save(nil, e2, nil))
	must(s.Close())
	s = openMem(t, fs, 5)
	defer s.Close()
	got, err := s.Entries(1, 4, 1<<20)
	if err != nil || len(got) != 3 || string(got[2].GetData()) != "c" || got[2].GetTerm() != 2 {
		t.Fatalf("entries after the torn save and a new one: %v, %v", got, err)
	}
}

// TestBadRecord checks that a record whose body is bad (the journal's CRC
// is fine) stops Open with a RecordError marked corrupt.
func TestBadRecord(t *testing.T) {
	cases := map[string]struct {
		typ  uint16
		body []byte
	}{
		"unknown type":    {9, []byte{1, 3, 0, 0}},
		"bad version":     {typeHardState, []byte{2, 3, 0, 0}},
		"short hardstate": {typeHardState, []byte{1, 3, 0, 0, 1}},
		"orphan":          {typeHardState, encodeHardState(flagLast, hardState{})},
		"gap": {typeEntries, encodeEntries(flagFirst|flagLast, entries{first: 5, prevTerm: 1,
			ents: []*pb.Entry{newEntry(5, 1, pb.EntryNormal, nil)}})},
		"wrong prev term": {typeEntries, encodeEntries(flagFirst|flagLast, entries{first: 2, prevTerm: 7,
			ents: []*pb.Entry{newEntry(2, 1, pb.EntryNormal, nil)}})},
		"snapshot without reset": {typeSnapshot, encodeSnapshot(flagFirst|flagLast, snapshotMeta{index: 1, term: 1})},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			fs := vfs.NewMem()
			s := openMem(t, fs, 5)
			must(s.Save(&pb.HardState{Term: new(uint64(1)), Commit: new(uint64(1))}, []*pb.Entry{newEntry(1, 1, pb.EntryNormal, nil)}, nil))
			must(s.Close())
			j, err := journal.Open(journal.Options{FS: fs, Dir: "/raft", SegmentBytes: 64 << 10})
			must(err)
			seq, err := j.Append(c.typ, c.body)
			must(err)
			must(j.Close())
			_, err = Open(Options{FS: fs, Dir: "/raft", Logger: quietLogger, SegmentBytes: 64 << 10})
			var re *RecordError
			if !errors.As(err, &re) || !errors.Is(err, journal.ErrCorrupt) || re.Seq != seq {
				t.Fatalf("Open: %v; want a RecordError for record %d marked corrupt", err, seq)
			}
		})
	}
}

// TestMidLogCorruption flips a byte in an old journal segment and checks
// that Open fails naming the file and the offset, rather than guessing.
func TestMidLogCorruption(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs, 5)
	for i := uint64(1); i <= 300; i++ {
		must(s.Save(&pb.HardState{Term: new(uint64(1)), Commit: new(i - 1)}, []*pb.Entry{newEntry(i, 1, pb.EntryNormal, make([]byte, 700))}, nil))
	}
	must(s.Close())
	names, err := fs.ReadDir("/raft")
	must(err)
	if len(names) < 3 {
		t.Fatalf("want several segments, have %v", names)
	}
	f, err := fs.OpenRW("/raft/"+names[0], false)
	must(err)
	// Inside the second batch's first record: in its header's checksum
	// field (batch header 32 bytes, then the record header, whose CRC is
	// at 16). Not further in: the journal may write a Save's records in
	// two batches (the first alone when it found the journal idle), and
	// the second batch then holds only the small hard state record, whose
	// end comes before 100 bytes: a byte flipped past it is padding, which
	// no checksum covers (seen in about 1 of 70 runs).
	const off = 4096 + 32 + 16
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	must(err)
	b[0] ^= 0x40
	_, err = f.WriteAt(b, off)
	must(err)
	must(f.Sync())
	must(f.Close())

	_, err = Open(Options{FS: fs, Dir: "/raft", Logger: quietLogger, SegmentBytes: 64 << 10})
	var ce *journal.CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("Open after corrupting %s at %d: %v; want a *journal.CorruptError", names[0], off, err)
	}
	if ce.File != "/raft/"+names[0] || ce.Offset != 4096 {
		t.Fatalf("corruption reported in %s at %d, want %s at %d (%v)", ce.File, ce.Offset, "/raft/"+names[0], 4096, err)
	}
}

// TestConcurrentReads reads through every method while Saves, snapshots
// and compactions run, for the race detector, and checks that what a
// reader sees is always a consistent log: Entries from FirstIndex to
// LastIndex, with the terms Term reports.
func TestConcurrentReads(t *testing.T) {
	testutil.CheckLeaks(t)
	fs := vfs.NewMem()
	s := openMem(t, fs, 5)
	defer s.Close()
	stop := make(chan struct{})
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				first, _ := s.FirstIndex()
				last, _ := s.LastIndex()
				if last < first {
					continue
				}
				ents, err := s.Entries(first, last+1, ^uint64(0))
				if errors.Is(err, raft.ErrCompacted) || errors.Is(err, raft.ErrUnavailable) {
					continue // compacted or overwritten between the calls
				}
				if err != nil {
					errs <- err
					return
				}
				for i, e := range ents {
					if e.GetIndex() != first+uint64(i) {
						errs <- fmt.Errorf("entry %d of a read from %d has index %d", i, first, e.GetIndex())
						return
					}
				}
				s.Snapshot()
				s.InitialState()
				s.Stats()
			}
		}()
	}
	for i := uint64(1); i <= 300; i++ {
		hs := &pb.HardState{Term: new(uint64(1)), Commit: new(i)}
		if err := s.Save(hs, []*pb.Entry{newEntry(i, 1, pb.EntryNormal, []byte("x"))}, nil); err != nil {
			t.Fatal(err)
		}
		if i%25 == 0 {
			if _, err := s.CreateSnapshot(i, nil, []byte("s")); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	for r := 0; r < 3; r++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestLargeSnapshot round-trips a snapshot that spans many journal
// records and batches, taken and received: 2 MiB on the in-memory file
// system in -short, SnapshotBytesMax on the real one otherwise.
func TestLargeSnapshot(t *testing.T) {
	var fs vfs.FS = vfs.NewMem()
	dir := "/raft"
	size := 2 << 20
	if !testing.Short() {
		fs, dir, size = vfs.Default, t.TempDir(), SnapshotBytesMax
	}
	open := func() *Storage {
		s, err := Open(Options{FS: fs, Dir: dir, Logger: quietLogger})
		must(err)
		return s
	}
	data := make([]byte, size)
	rand.New(rand.NewSource(1)).Read(data)
	s := open()
	var ents []*pb.Entry
	for i := uint64(1); i <= 20; i++ {
		ents = append(ents, newEntry(i, 1, pb.EntryNormal, []byte("e")))
	}
	must(s.Save(&pb.HardState{Term: new(uint64(1)), Commit: new(uint64(20))}, ents, nil))
	if _, err := s.CreateSnapshot(15, &pb.ConfState{Voters: []uint64{1}}, data); err != nil {
		t.Fatal(err)
	}
	must(s.Close())
	s = open()
	snap, err := s.Snapshot()
	must(err)
	if snap.GetMetadata().GetIndex() != 15 || !bytes.Equal(snap.GetData(), data) {
		t.Fatalf("snapshot after reopening: index %d, %d bytes (equal: %v)", snap.GetMetadata().GetIndex(), len(snap.GetData()), bytes.Equal(snap.GetData(), data))
	}
	// A leader's snapshot of the same size, with its data changed.
	data[0]++
	leader := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(uint64(40)), Term: new(uint64(2)), ConfState: &pb.ConfState{Voters: []uint64{1, 2}}}, Data: data}
	must(s.Save(&pb.HardState{Term: new(uint64(2)), Commit: new(uint64(40))}, nil, leader))
	must(s.Close())
	s = open()
	defer s.Close()
	snap, err = s.Snapshot()
	must(err)
	if snap.GetMetadata().GetIndex() != 40 || !bytes.Equal(snap.GetData(), data) {
		t.Fatalf("leader snapshot after reopening: index %d, %d bytes", snap.GetMetadata().GetIndex(), len(snap.GetData()))
	}
	if first, _ := s.FirstIndex(); first != 41 {
		t.Fatalf("FirstIndex after a leader snapshot at 40: %d", first)
	}
	if st := s.Stats(); st.JournalBytes > int64(3*size) {
		t.Fatalf("journal holds %d bytes after two %d-byte snapshots: the first was not truncated away", st.JournalBytes, size)
	}
}

// TestLocked checks that a second Open of a directory in use fails, and
// succeeds once the first is closed.
func TestLocked(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs, 5)
	if _, err := Open(Options{FS: fs, Dir: "/raft", Logger: quietLogger}); !errors.Is(err, vfs.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	must(s.Close())
	s = openMem(t, fs, 5)
	must(s.Close())
}

// TestCompactionPoint checks where CreateSnapshot cuts the log for every
// snapshot index and a few KeepEntries values, including the edges, and
// that the cut survives reopening.
func TestCompactionPoint(t *testing.T) {
	for _, keep := range []int{-1, 1, 2, 5, 10} {
		k := uint64(max(keep, 0))
		for i := uint64(1); i <= 10; i++ {
			fs := vfs.NewMem()
			s := openMem(t, fs, keep)
			var ents []*pb.Entry
			for j := uint64(1); j <= 10; j++ {
				ents = append(ents, newEntry(j, j, pb.EntryNormal, nil))
			}
			must(s.Save(&pb.HardState{Term: new(uint64(10)), Commit: new(uint64(10))}, ents, nil))
			if _, err := s.CreateSnapshot(i, nil, nil); err != nil {
				t.Fatal(err)
			}
			want := uint64(1)
			if i > k {
				want = i - k + 1
			}
			for round := 0; round < 2; round++ {
				first, _ := s.FirstIndex()
				term, err := s.Term(first - 1)
				if first != want || err != nil || term != first-1 {
					t.Fatalf("keep %d, snapshot at %d (round %d): FirstIndex %d, term before it %d (%v); want FirstIndex %d", keep, i, round, first, term, err, want)
				}
				must(s.Close())
				s = openMem(t, fs, keep)
			}
			must(s.Close())
		}
	}
}
