package engine

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ncw/directio"

	"github.com/weftfs/weft/internal/vfs"
)

// TestCleanerBudget: the cleaner runs unpaced when free space is short
// (4 steps' worth at the reserve) or the foreground is idle, and otherwise
// spends only the credit the foreground's writes earned.
func TestCleanerBudget(t *testing.T) {
	o := CleanerOptions{FreeTarget: 0.15, BytesPerBatch: 256 << 10}
	const segments, reserve = 1000, 2 // low level 22, start 54, target 150
	tests := []struct {
		name      string
		free      int64
		idle      bool
		credit    float64
		want      int
		wantPaced bool
	}{
		{name: "at the reserve", free: 3, credit: 0, want: 4 * o.BytesPerBatch},
		{name: "below the low level", free: 21, credit: 0, want: o.BytesPerBatch},
		{name: "idle foreground", free: 40, idle: true, credit: 0, want: o.BytesPerBatch},
		{name: "idle foreground above the start level", free: 120, idle: true, credit: 0, want: o.BytesPerBatch},
		{name: "no credit", free: 40, credit: 0, want: 0, wantPaced: true},
		{name: "in debt", free: 40, credit: -5000, want: 0, wantPaced: true},
		{name: "some credit", free: 40, credit: 6000.5, want: 6001, wantPaced: true},
		{name: "credit above a step", free: 40, credit: 1 << 20, want: o.BytesPerBatch, wantPaced: true},
		{name: "at the low level", free: 22, credit: 100, want: 101, wantPaced: true},
	}
	for _, tt := range tests {
		got, paced := cleanerBudget(o, tt.free, reserve, segments, tt.idle, tt.credit)
		if got != tt.want || paced != tt.wantPaced {
			t.Errorf("%s: budget %d, paced %v; want %d, %v", tt.name, got, paced, tt.want, tt.wantPaced)
		}
	}
}

// TestCleanerLevels: the low level is the reserve plus 2% of the segments
// (at least two), the start level a quarter of the way from it to the
// target and always above it.
func TestCleanerLevels(t *testing.T) {
	tests := []struct {
		segments       uint32
		reserve        int
		target         float64
		low, wantStart int64
	}{
		{segments: 80, reserve: 2, target: 0.15, low: 4, wantStart: 6},
		{segments: 1000, reserve: 2, target: 0.15, low: 22, wantStart: 54},
		{segments: 1000, reserve: 5, target: 0.15, low: 25, wantStart: 56},
		{segments: 10, reserve: 2, target: 0.15, low: 4, wantStart: 5},  // target below low
		{segments: 100, reserve: 3, target: 0.6, low: 5, wantStart: 18}, // the crash tests' target
	}
	for _, tt := range tests {
		low, start := cleanerLevels(CleanerOptions{FreeTarget: tt.target}, tt.reserve, tt.segments)
		if low != tt.low || start != tt.wantStart {
			t.Errorf("%d segments, reserve %d, target %g: low %d, start %d; want %d, %d",
				tt.segments, tt.reserve, tt.target, low, start, tt.low, tt.wantStart)
		}
	}
}

// TestCleanerWaitsForStart: under foreground I/O no victim is picked
// while free segments are at or above the start level; with the
// foreground idle one is, up to the target; below the start level one is
// whatever the foreground does.
func TestCleanerWaitsForStart(t *testing.T) {
	const segSize = 1 << 20
	e := &Engine{sb: &Superblock{SegmentCount: 100, SegmentSize: segSize},
		opts: Options{Cleaner: CleanerOptions{FreeTarget: 0.15, MaxLiveRatio: 0.9, BytesPerBatch: 64 << 10}}}
	e.alloc.reserve = 2 // low level 4, start 6, target 15
	s := &shard{e: e, open: NoSegment, segs: map[uint32]*segState{
		1: {gen: 1, live: segSize / 2, closed: true},
		2: {gen: 2, live: segSize / 4, closed: true},
	}, openGen: 3}
	pick := func(free int64, idle bool) bool {
		t.Helper()
		s.clean = cleanerState{victim: NoSegment, lastForeground: time.Now()}
		if idle {
			s.clean.lastForeground = time.Now().Add(-time.Second)
		}
		e.alloc.nfree.Store(free)
		return s.pickVictim()
	}
	for _, tt := range []struct {
		free       int64
		idle, want bool
	}{
		{free: 15, idle: true, want: false}, // at the target
		{free: 14, idle: true, want: true},
		{free: 14, idle: false, want: false},
		{free: 6, idle: false, want: false}, // at the start level
		{free: 5, idle: false, want: true},
	} {
		if got := pick(tt.free, tt.idle); got != tt.want {
			t.Errorf("free %d, idle %v: picked %v, want %v", tt.free, tt.idle, got, tt.want)
		}
		if tt.want && s.clean.victim != 2 {
			t.Errorf("free %d: victim %d, want the emptier segment 2", tt.free, s.clean.victim)
		}
	}
}

// TestCleanerCredit: a batch's foreground bytes earn pace bytes each
// while there is a victim, up to four steps' worth; relocation-only
// batches earn nothing and do not count as foreground activity.
func TestCleanerCredit(t *testing.T) {
	s := &shard{e: &Engine{opts: Options{Cleaner: CleanerOptions{BytesPerBatch: 64 << 10}}}}
	s.clean.victim = NoSegment
	now := time.Now()
	s.creditForeground(4096, now)
	if s.clean.credit != 0 || !s.clean.lastForeground.Equal(now) {
		t.Fatalf("without a victim: credit %v, last foreground %v; want 0 and the batch's start", s.clean.credit, s.clean.lastForeground)
	}
	s.clean.victim, s.clean.pace = 7, 2.5
	s.creditForeground(4096, now.Add(time.Millisecond))
	if s.clean.credit != 10240 {
		t.Fatalf("credit %v after 4096 bytes at pace 2.5, want 10240", s.clean.credit)
	}
	s.creditForeground(0, now.Add(time.Hour))
	if s.clean.credit != 10240 || !s.clean.lastForeground.Equal(now.Add(time.Millisecond)) {
		t.Fatalf("a relocation-only batch changed credit to %v or the last foreground to %v", s.clean.credit, s.clean.lastForeground)
	}
	s.creditForeground(1<<30, now)
	if s.clean.credit != 4*64<<10 {
		t.Fatalf("credit %v after a huge batch, want the cap %d", s.clean.credit, 4*64<<10)
	}
	// A relocation-only batch has no foreground bytes; a mixed one counts
	// its foreground records' data blocks and their share of the header.
	b := &batch{descs: []Desc{{Kind: KindWrite, Length: 4096, Relocated: true}}, reloc: 1}
	if n := b.foregroundBytes(); n != 0 {
		t.Fatalf("relocation-only batch: %d foreground bytes", n)
	}
	// Two data blocks, and two thirds of the one header block.
	b.descs = append(b.descs, Desc{Kind: KindWrite, Length: 5000}, Desc{Kind: KindTruncate})
	if n, want := b.foregroundBytes(), uint64(8192+4096*2/3); n != want {
		t.Fatalf("mixed batch: %d foreground bytes, want %d", n, want)
	}
}

// cleanerLayout writes 1024 4 KiB objects, one batch each, then a third
// of them again, with the cleaner off, and closes the engine: about 11 of
// the 22 segments of a 24 MiB device, the first ones two thirds live with
// dead records between the live ones. (A slow writer, under the race
// detector on one CPU, pauses long enough for an idle cleaner to start
// and then paces it to a few extents per step; cleaned on reopen with
// nothing else running, its steps are unpaced.)
func cleanerLayout(t *testing.T) (fsys *vfs.Mem, path string, n int, open func(disabled bool) *Engine) {
	fsys, path = memDevice(t, 24<<20, 1<<20)
	open = func(disabled bool) *Engine {
		e, err := Open(Options{Path: path, FS: fsys, Shards: 1, Mode: Interrupt, Logger: quietLogger,
			Cleaner: CleanerOptions{Disabled: disabled, FreeTarget: 0.6, MaxLiveRatio: 0.95}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := open(true)
	n = 1024
	for i := range n {
		if _, err := e.Write(ObjectID{Lo: uint64(i + 1)}, 1, 0, pattern(uint64(i), 4096)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i += 3 {
		if _, err := e.Write(ObjectID{Lo: uint64(i + 1)}, 1, 0, pattern(uint64(i), 4096)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	return fsys, path, n, open
}

// waitCleaner waits up to 20 s until the engine's cleaner stats satisfy
// done, and returns them.
func waitCleaner(t *testing.T, e *Engine, done func(CleanerStats) bool) CleanerStats {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		cs := e.Stats().Shards[0].Cleaner
		if done(cs) {
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the idle cleaner after 20 s: %+v", cs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitCleaned waits until the engine's cleaner has emptied segs segments
// and checks that every object of cleanerLayout reads back whole.
func waitCleaned(t *testing.T, e *Engine, segs uint64, n int) CleanerStats {
	t.Helper()
	cs := waitCleaner(t, e, func(cs CleanerStats) bool { return cs.SegmentsCleaned >= segs })
	for i := range n {
		if got := mustRead(t, e, ObjectID{Lo: uint64(i + 1)}, 0, 4096); string(got) != string(pattern(uint64(i), 4096)) {
			t.Fatalf("object %d reads back wrong after cleaning", i+1)
		}
	}
	if err := e.Verify(); err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestCleanerReadsNeighboursTogether: the cleaner finds a victim's live
// extents by walking its batches, reads them many to a device read, and
// what it relocates reads back whole.
func TestCleanerReadsNeighboursTogether(t *testing.T) {
	_, _, n, open := cleanerLayout(t)
	e := open(false)
	defer e.Close()
	cs := waitCleaned(t, e, 2, n)
	extents, reads := cs.BytesRelocated/4096, cs.DeviceReads
	t.Logf("cleaner: %d segments, %d extents relocated in %d device reads of %d bytes", cs.SegmentsCleaned, extents, reads, cs.BytesRead)
	if reads == 0 || extents < 8*reads {
		t.Fatalf("%d extents relocated in %d device reads; want at least 8 per read", extents, reads)
	}
	if cs.IndexScans != 0 {
		t.Fatalf("the cleaner scanned the index for %d victims; their batches hold all their live extents", cs.IndexScans)
	}
}

// TestCleanerWalkFallsBackToScan damages a batch header in the middle of
// every segment (behind the checkpoint the engine's close wrote, so
// recovery does not read it): each victim's walk stops there, the live
// bytes it leaves behind show in the segment's live count, and the
// cleaner finds them by scanning the index. Nothing is lost, and no
// segment with live data is freed.
func TestCleanerWalkFallsBackToScan(t *testing.T) {
	fsys, path, n, open := cleanerLayout(t)
	e := open(true)
	sb := e.sb
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := fsys.OpenRW(path, true)
	if err != nil {
		t.Fatal(err)
	}
	blk := directio.AlignedBlock(4096)
	damaged := 0
	for seg := range sb.SegmentCount {
		base := int64(sb.SegmentsOffset) + int64(seg)*int64(sb.SegmentSize)
		if _, err := f.ReadAt(blk, base); err != nil {
			t.Fatal(err)
		}
		sh, ok, _ := DecodeSegmentHeader(blk)
		if !ok {
			continue
		}
		// The eleventh batch: each is a header block and a data block.
		at := base + segHeaderSize + 10*8192
		if _, err := f.ReadAt(blk, at); err != nil {
			t.Fatal(err)
		}
		if h, _, _, why := DecodeBatchHeader(blk, nil); why != "" || h.Generation != sh.Generation {
			continue
		}
		blk[100] ^= 1 // a descriptor byte: the header's checksum fails
		if _, err := f.WriteAt(blk, at); err != nil {
			t.Fatal(err)
		}
		damaged++
	}
	f.Close()
	if damaged < 4 {
		t.Fatalf("damaged %d segments' headers, want at least 4", damaged)
	}
	e = open(false)
	defer e.Close()
	cs := waitCleaned(t, e, 2, n)
	t.Logf("cleaner: %d segments, %d index scans, %d bytes relocated", cs.SegmentsCleaned, cs.IndexScans, cs.BytesRelocated)
	if cs.IndexScans == 0 {
		t.Fatalf("no index scan after %d victims with damaged headers", cs.SegmentsCleaned)
	}
}

// TestCleanerShunsDamagedVictim damages live records in five segments:
// the cleaner gives each up when its record does not read back (the
// record stays where it is, for reads to report), cleans the other
// segments rather than picking a damaged one again and again, and the
// space accounting stays exact.
func TestCleanerShunsDamagedVictim(t *testing.T) {
	fsys, path, n, open := cleanerLayout(t)
	// Objects written once (index i not a multiple of 3), about 127
	// batches apart: five segments.
	damaged := []int{1, 200, 401, 602, 803}
	for _, i := range damaged {
		e := open(true)
		damageRecord(t, e, fsys, path, ObjectID{Lo: uint64(i + 1)}, 0, 17)
	}
	e := open(false)
	defer e.Close()
	cs := waitCleaner(t, e, func(cs CleanerStats) bool { return cs.SegmentsCleaned >= 8 && cs.ReadFailures >= 1 })
	t.Logf("cleaner: %+v", cs)
	if cs.ReadFailures > uint64(len(damaged)) {
		t.Fatalf("%d read failures for %d damaged segments: the cleaner went back to a damaged victim", cs.ReadFailures, len(damaged))
	}
	if cs.IndexScans != 0 {
		t.Fatalf("%d index scans: a victim given up on needs none", cs.IndexScans)
	}
	for i := range n {
		got, err := e.Read(ObjectID{Lo: uint64(i + 1)}, 0, make([]byte, 4096))
		if slices.Contains(damaged, i) {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("damaged object %d: %v, want ErrCorrupt", i+1, err)
			}
			continue
		}
		if err != nil || got != 4096 {
			t.Fatalf("object %d: %d bytes, %v", i+1, got, err)
		}
	}
	if err := e.Verify(); err != nil {
		t.Fatal(err)
	}
}
