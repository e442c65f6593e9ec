package journal

import (
	"bytes"
	"errors"
	"math/rand"
	"path"
	"sync"
	"testing"
	"time"

	"github.com/weftfs/weft/internal/vfs"
)

// fileSystems returns the file systems every behaviour test runs on.
func fileSystems(t *testing.T) map[string]func() (vfs.FS, string) {
	return map[string]func() (vfs.FS, string){
		"os":  func() (vfs.FS, string) { return vfs.Default, path.Join(t.TempDir(), "wal") },
		"mem": func() (vfs.FS, string) { return vfs.NewMem(), "/wal" },
	}
}

func payload(seq uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewSource(int64(seq)))
	r.Read(b)
	return b
}

func collect(t *testing.T, j *Journal, from uint64) []Record {
	t.Helper()
	var out []Record
	if err := j.Replay(from, func(r Record) error {
		out = append(out, Record{Seq: r.Seq, Type: r.Type, Data: bytes.Clone(r.Data)})
		return nil
	}); err != nil {
		t.Fatalf("Replay(%d): %v", from, err)
	}
	return out
}

func TestAppendReplayReopen(t *testing.T) {
	for name, mk := range fileSystems(t) {
		t.Run(name, func(t *testing.T) {
			fs, dir := mk()
			j, err := Open(Options{FS: fs, Dir: dir, Direct: true})
			if err != nil {
				t.Fatal(err)
			}
			sizes := []int{0, 1, 7, 8, 100, 4096, 5000, 70000}
			for i, n := range sizes {
				seq, err := j.Append(uint16(i+1), payload(uint64(i+1), n))
				if err != nil {
					t.Fatal(err)
				}
				if seq != uint64(i+1) {
					t.Fatalf("seq %d, want %d", seq, i+1)
				}
			}
			check := func(j *Journal) {
				recs := collect(t, j, 0)
				if len(recs) != len(sizes) {
					t.Fatalf("replayed %d records, want %d", len(recs), len(sizes))
				}
				for i, r := range recs {
					if r.Seq != uint64(i+1) || r.Type != uint16(i+1) || !bytes.Equal(r.Data, payload(uint64(i+1), sizes[i])) {
						t.Fatalf("record %d: seq %d type %d len %d", i, r.Seq, r.Type, len(r.Data))
					}
				}
				if recs := collect(t, j, 5); len(recs) != 4 || recs[0].Seq != 5 {
					t.Fatalf("Replay(5) gave %d records starting at %v", len(recs), recs)
				}
			}
			check(j)
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := j.Append(1, nil); !errors.Is(err, ErrClosed) {
				t.Errorf("append after close: %v", err)
			}
			j, err = Open(Options{FS: fs, Dir: dir, Direct: true})
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			check(j)
			if seq, err := j.Append(9, []byte("after reopen")); err != nil || seq != uint64(len(sizes)+1) {
				t.Fatalf("append after reopen: seq %d, %v", seq, err)
			}
			if n, next, err := Verify(fs, dir); err != nil || n != uint64(len(sizes)+1) || next != uint64(len(sizes)+2) {
				t.Errorf("Verify: %d records, next %d, %v", n, next, err)
			}
		})
	}
}

func TestGroupCommit(t *testing.T) {
	fs := vfs.NewMem()
	// A flush that takes a millisecond, like a real device's.
	fs.SetFault(func(op vfs.Op, _ string) error {
		if op == vfs.OpSync {
			time.Sleep(time.Millisecond)
		}
		return nil
	})
	j, err := Open(Options{FS: fs, Dir: "/wal"})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	const writers, each = 16, 100
	var wg sync.WaitGroup
	seqs := make(chan uint64, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				seq, err := j.Append(1, payload(uint64(w*each+i), 300))
				if err != nil {
					t.Error(err)
					return
				}
				seqs <- seq
			}
		}()
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for s := range seqs {
		if seen[s] {
			t.Fatalf("sequence %d handed out twice", s)
		}
		seen[s] = true
	}
	st := j.Stats()
	if st.Appends != writers*each || len(seen) != writers*each {
		t.Fatalf("appends %d, distinct seqs %d", st.Appends, len(seen))
	}
	if st.Syncs >= st.Appends/2 {
		t.Errorf("%d flushes for %d concurrent appends: no group commit", st.Syncs, st.Appends)
	}
	t.Logf("%d appends in %d batches, %d flushes", st.Appends, st.Batches, st.Syncs)
	if got := len(collect(t, j, 0)); got != writers*each {
		t.Errorf("replayed %d records", got)
	}
}

func TestSegmentsAndTruncate(t *testing.T) {
	for name, mk := range fileSystems(t) {
		t.Run(name, func(t *testing.T) {
			fs, dir := mk()
			opts := Options{FS: fs, Dir: dir, SegmentBytes: 16 << 10, BatchBytesMax: 4096, RecordBytesMax: 6000}
			j, err := Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 60; i++ {
				if _, err := j.Append(2, payload(uint64(i), 1000)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := j.Append(2, make([]byte, 6001)); !errors.Is(err, ErrTooLarge) {
				t.Errorf("oversized record: %v", err)
			}
			big, err := j.Append(3, payload(61, 6000)) // larger than a batch buffer
			if err != nil || big != 61 {
				t.Fatalf("record larger than BatchBytesMax: %d %v", big, err)
			}
			st := j.Stats()
			if st.Segments < 4 {
				t.Fatalf("%d segments for 61 KiB of records in 16 KiB segments", st.Segments)
			}
			n, err := j.TruncateBefore(30)
			if err != nil || n == 0 {
				t.Fatalf("TruncateBefore(30) removed %d: %v", n, err)
			}
			first := j.FirstSeq()
			if first > 30 || first < 2 {
				t.Fatalf("FirstSeq %d after TruncateBefore(30)", first)
			}
			if err := j.Replay(1, func(Record) error { return nil }); !errors.Is(err, ErrCompacted) {
				t.Errorf("Replay before the oldest kept: %v", err)
			}
			recs := collect(t, j, 0)
			if recs[0].Seq != first || recs[len(recs)-1].Seq != 61 || len(recs) != int(62-first) {
				t.Fatalf("after truncation replayed %d..%d (%d records)", recs[0].Seq, recs[len(recs)-1].Seq, len(recs))
			}
			j.Close()
			j, err = Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			if j.FirstSeq() != first || j.NextSeq() != 62 {
				t.Errorf("reopened: first %d next %d", j.FirstSeq(), j.NextSeq())
			}
			if got := collect(t, j, 40); len(got) != 22 || !bytes.Equal(got[0].Data, payload(40, 1000)) {
				t.Errorf("Replay(40) after reopen: %d records", len(got))
			}
		})
	}
}

func segmentFiles(t *testing.T, fs vfs.FS, dir string) []string {
	names, err := fs.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestTornTailIsCut(t *testing.T) {
	fs := vfs.NewMem()
	j, err := Open(Options{FS: fs, Dir: "/wal"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		j.Append(1, payload(uint64(i), 2000))
	}
	j.Close()
	base := segmentFiles(t, fs, "/wal")[0]
	name := "/wal/" + base
	// The batches end before the file does: zeros were written ahead.
	size, _, err := scanSegment(fs, "/wal", segment{first: 1, name: base})
	if err != nil {
		t.Fatal(err)
	}
	if fileSize, _ := fs.Stat(name); fileSize <= size {
		t.Errorf("segment of %d bytes whose batches end at %d: no zeros written ahead", fileSize, size)
	}
	f, _ := fs.OpenRW(name, false)
	// A torn batch: a valid-looking header whose records never made it.
	var hdr [blockSize]byte
	putBatchHeader(hdr[:], batchHeader{version: formatV1, length: 2 * blockSize, count: 3, firstSeq: 6})
	f.WriteAt(hdr[:], size)
	f.WriteAt([]byte("garbage"), size+blockSize+100)
	f.Sync()
	f.Close()

	j, err = Open(Options{FS: fs, Dir: "/wal"})
	if err != nil {
		t.Fatalf("open with a torn tail: %v", err)
	}
	defer j.Close()
	if j.NextSeq() != 6 {
		t.Fatalf("next seq %d, want 6", j.NextSeq())
	}
	if got, _ := fs.Stat(name); got != size {
		t.Errorf("torn tail not cut: size %d, want %d", got, size)
	}
	if seq, err := j.Append(1, payload(6, 10)); err != nil || seq != 6 {
		t.Fatalf("append after repair: %d %v", seq, err)
	}
	if recs := collect(t, j, 0); len(recs) != 6 {
		t.Errorf("%d records after repair", len(recs))
	}
}

func TestMidLogCorruptionIsReported(t *testing.T) {
	fs := vfs.NewMem()
	j, err := Open(Options{FS: fs, Dir: "/wal"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 6; i++ {
		j.Append(1, payload(uint64(i), 3000)) // one batch per append, 4 KiB each
	}
	j.Close()
	name := "/wal/" + segmentFiles(t, fs, "/wal")[0]
	f, _ := fs.OpenRW(name, false)
	f.WriteAt([]byte{0xff}, 2*blockSize+200) // inside the third batch's record
	f.Sync()
	f.Close()

	_, _, err = Verify(fs, "/wal")
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || ce.File != name || ce.Offset != 2*blockSize {
		t.Fatalf("Verify of a log with a flipped byte mid-log: %v", err)
	}
	if _, err := Open(Options{FS: fs, Dir: "/wal"}); !errors.As(err, &ce) {
		t.Fatalf("Open of a log corrupt mid-segment: %v", err)
	}
	t.Logf("reported: %v", err)
}

func TestFailedFlushIsSticky(t *testing.T) {
	fs := vfs.NewMem()
	j, err := Open(Options{FS: fs, Dir: "/wal"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(1, []byte("first")); err != nil {
		t.Fatal(err)
	}
	fs.SetFault(vfs.FailNth(vfs.OpSync, 1))
	if _, err := j.Append(1, []byte("second")); !errors.Is(err, ErrFailed) || !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("append whose flush fails: %v", err)
	}
	fs.SetFault(nil)
	if _, err := j.Append(1, []byte("third")); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after a failed flush: %v (the journal must refuse: the tail is unknown)", err)
	}
	j.Close()
	crashed := fs.CrashClean()
	j, err = Open(Options{FS: crashed, Dir: "/wal"})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	recs := collect(t, j, 0)
	if len(recs) != 1 || string(recs[0].Data) != "first" {
		t.Fatalf("after a failed flush and a crash: %d records", len(recs))
	}
}

func TestOptionsValidation(t *testing.T) {
	_, err := Open(Options{FS: vfs.NewMem(), SegmentBytes: 1000, BatchBytesMax: 10})
	if err == nil {
		t.Fatal("bad options accepted")
	}
	for _, want := range []string{"Dir is empty", "SegmentBytes=1000", "BatchBytesMax=10"} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestBadSegmentName(t *testing.T) {
	fs := vfs.NewMem()
	fs.MkdirAll("/wal")
	f, _ := fs.Create("/wal/zzzz.wlog", false)
	f.Close()
	if _, err := Open(Options{FS: fs, Dir: "/wal"}); err == nil || !bytes.Contains([]byte(err.Error()), []byte("zzzz.wlog")) {
		t.Fatalf("open with a bad segment name: %v", err)
	}
}

// TestZerosAheadOfRolledSegments: a segment rolled before it was full ends
// in the zeros written ahead of its batches. Replay and recovery read past
// them into the next segment; damage to the segment's last batch is still
// corruption, not an end.
func TestZerosAheadOfRolledSegments(t *testing.T) {
	fs := vfs.NewMem()
	opts := Options{FS: fs, Dir: "/wal", SegmentBytes: 64 << 10}
	j, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 12; i++ {
		// 12 KiB a batch: five fill 60 KiB of a 64 KiB segment, and the
		// sixth rolls, leaving 4 KiB of zeros behind.
		if _, err := j.Append(1, payload(uint64(i), 9000)); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	names := segmentFiles(t, fs, "/wal")
	if len(names) != 3 {
		t.Fatalf("%d segments, want 3: %v", len(names), names)
	}
	first := "/wal/" + names[0]
	if size, _ := fs.Stat(first); size != 64<<10 {
		t.Fatalf("first segment is %d bytes, want the zeros up to 64 KiB", size)
	}
	j, err = Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	recs := collect(t, j, 0)
	if len(recs) != 12 || !bytes.Equal(recs[11].Data, payload(12, 9000)) {
		t.Fatalf("replay across rolled segments: %d records", len(recs))
	}
	j.Close()

	f, _ := fs.OpenRW(first, false)
	f.WriteAt([]byte{0xff}, 4*12<<10+100) // inside the first segment's last batch
	f.Sync()
	f.Close()
	_, _, err = Verify(fs, "/wal")
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.File != first || ce.Offset != 4*12<<10 {
		t.Fatalf("Verify of a log whose first segment's last batch is damaged: %v", err)
	}
}
