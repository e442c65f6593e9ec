package raftlog

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand"
	"strings"
	"sync/atomic"
	"testing"

	"go.etcd.io/raft/v3"

	"github.com/weftfs/weft/internal/testutil"
	"github.com/weftfs/weft/internal/vfs"
	"github.com/weftfs/weft/journal"
)

var (
	crashSeed   = flag.Int64("crash.seed", 0, "run the crash test with this seed only")
	crashCycles = flag.Int("crash.cycles", 0, "crash/recover cycles per seed (default 100, 2000 without -short)")
)

// TestCrash runs raft-like operations against the in-memory file system,
// fails a random write, flush, file creation, removal or directory sync
// (or none), cuts the power, reopens, and checks that the recovered
// storage reads exactly as the model did after the last operation that
// returned nil, or, when the last operation failed, either that or as if
// it had succeeded: never anything in between.
//
// The seed is printed on failure; rerun with -crash.seed=N.
func TestCrash(t *testing.T) {
	testutil.CheckLeaks(t)
	cycles := 100
	if !testing.Short() {
		cycles = 2000
	}
	if *crashCycles > 0 {
		cycles = *crashCycles
	}
	seeds := []int64{1, 2}
	if *crashSeed != 0 {
		seeds = []int64{*crashSeed}
	}
	var total crashCounts
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("seed %d (rerun: go test ./fsproto/raftlog -run TestCrash -crash.seed=%d)", seed, seed)
				}
			}()
			c := runCrash(t, seed, cycles)
			total.failedOps += c.failedOps
			total.tookBefore += c.tookBefore
			total.tookAfter += c.tookAfter
			total.flips += c.flips
			total.torn += c.torn
			total.lagged += c.lagged
		})
	}
	// NB: checked over all seeds, since which batches a Save's records
	// share depends on goroutine scheduling, so a short run of one seed
	// may by chance never see a failed Save survive whole.
	if !t.Failed() && (total.failedOps == 0 || total.tookBefore == 0 || total.tookAfter == 0 || total.flips == 0 || total.torn == 0 || total.lagged == 0) {
		t.Fatalf("the faults never bit every way: %+v", total)
	}
}

// crashCounts says which cases a crash run met.
type crashCounts struct {
	failedOps  int   // operations failed by an injected fault
	tookBefore int   // recoveries after a failed operation without it
	tookAfter  int   // recoveries after a failed operation with it whole
	flips      int   // flipped bytes Open reported
	torn       int64 // torn saves replay skipped
	lagged     int   // recoveries whose commit index was behind a lazy save's
}

func runCrash(t *testing.T, seed int64, cycles int) crashCounts {
	rng := rand.New(rand.NewSource(seed))
	keep := 1 + rng.Intn(20)
	d := &driver{rng: rng, keep: keep, bigP: 30}
	fs := vfs.NewMem()
	fs.SetSeed(seed)
	empty, err := capture(raft.NewMemoryStorage())
	must(err)
	candidates := []image{empty}
	torn := &countHandler{}
	log := slog.New(torn)
	var failedOps, tookAfter, tookBefore, acked, flips, lagged int
	// floor is the commit index of the newest state known durable: what
	// was recovered, or what the last waited-for operation recorded.
	var floor uint64
	for cycle := 0; cycle < cycles; cycle++ {
		where := fmt.Sprintf("seed %d cycle %d", seed, cycle)
		opts := Options{FS: fs, Dir: "/raft", Logger: log, KeepEntries: keep, SegmentBytes: 64 << 10, BatchBytesMax: 16 << 10}
		var flipped *image
		if rng.Intn(10) == 0 {
			var noticed bool
			noticed, flipped = flipOldByte(t, where, rng, fs, opts)
			if noticed {
				flips++
			}
		}
		s, err := Open(opts)
		if err != nil {
			t.Fatalf("%s: open after crash: %v", where, err)
		}
		got, err := capture(s)
		if err != nil {
			s.Close()
			t.Fatalf("%s: reading recovered storage: %v", where, err)
		}
		match := -1
		var diffs []string
		for i, c := range candidates {
			// A save that only moved the commit index was not waited
			// for: the commit index may be anywhere from the last
			// waited-for one (floor) up to the candidate's.
			behind := got.hs[0] == c.hs[0] && got.hs[1] == c.hs[1] && floor <= got.hs[2] && got.hs[2] < c.hs[2]
			if behind {
				c.hs[2] = got.hs[2]
			}
			if dd := got.diff(c); dd == "" {
				if behind {
					lagged++
				}
				match = i
				break
			} else {
				diffs = append(diffs, dd)
			}
		}
		if match < 0 {
			s.Close()
			t.Fatalf("%s: recovered storage matches no allowed state: %q", where, diffs)
		}
		if len(candidates) == 2 {
			if match == 0 {
				tookBefore++
			} else {
				tookAfter++
			}
		}
		if flipped != nil {
			if d := flipped.diff(got); d != "" {
				t.Fatalf("%s: a flipped byte went unnoticed but changed the state: %s", where, d)
			}
		}
		ms := got.rebuild()
		floor = got.hs[2]

		k := 1 + rng.Intn(25)
		switch rng.Intn(8) {
		case 0, 1:
			fs.SetFault(vfs.FailNth(vfs.OpWrite, k))
		case 2, 3:
			fs.SetFault(vfs.FailNth(vfs.OpSync, k))
		case 4:
			fs.SetFault(vfs.FailNth(vfs.OpSyncDir, 1+rng.Intn(3)))
		case 5:
			fs.SetFault(vfs.FailNth(vfs.OpRemove, 1))
		case 6:
			fs.SetFault(vfs.FailNth(vfs.OpCreate, 1))
		default:
			fs.SetFault(nil)
		}
		now, err := capture(ms)
		must(err)
		candidates = []image{now}
		ops := 1 + rng.Intn(20)
		for i := 0; i < ops; i++ {
			o := d.next(ms)
			before := candidates[0]
			if errModel := o.applyModel(ms); errModel != nil {
				t.Fatalf("%s: the driver made an invalid operation (%s): %v", where, o.desc, errModel)
			}
			after, err := capture(ms)
			must(err)
			if err := o.apply(s); err != nil {
				if !errors.Is(err, ErrFailed) || !errors.Is(err, vfs.ErrInjected) {
					t.Fatalf("%s: %s failed with %v, want an injected journal failure", where, o.desc, err)
				}
				// The storage is failed from now on.
				if err := s.Save(nil, nil, nil); !errors.Is(err, ErrFailed) {
					t.Fatalf("%s: Save after a failure: %v, want ErrFailed", where, err)
				}
				candidates = []image{before, after}
				failedOps++
				break
			}
			acked++
			candidates = []image{after}
			lazy := len(o.ents) == 0 && o.snap == nil && !o.create && !raft.IsEmptyHardState(o.hs) &&
				before.hs[0] == o.hs.GetTerm() && before.hs[1] == o.hs.GetVote()
			if !lazy {
				floor = after.hs[2]
			}
		}
		crashed := fs.Crash(rng.Int63())

		s.Close()
		fs = crashed
		if cycle%50 == 49 {
			if _, _, err := journal.Verify(fs, "/raft"); err != nil {
				t.Fatalf("%s: journal verify: %v", where, err)
			}
		}
	}
	t.Logf("seed %d: %d cycles, %d operations acknowledged, %d failed; after a failure %d recoveries had the old state and %d the new; %d torn saves skipped; %d flipped bytes reported; %d recoveries had a lazily saved commit index behind",
		seed, cycles, acked, failedOps, tookBefore, tookAfter, torn.n.Load(), flips, lagged)
	return crashCounts{failedOps: failedOps, tookBefore: tookBefore, tookAfter: tookAfter, flips: flips, torn: torn.n.Load(), lagged: lagged}
}

// countHandler counts the log records about torn saves.
type countHandler struct{ n atomic.Int64 }

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "torn") {
		h.n.Add(1)
	}
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

// flipOldByte flips a random byte of a segment that is not the newest
// (a flip in the newest one may look like a torn tail, which the journal
// cuts off by design) and checks that Open refuses the log with a
// *journal.CorruptError naming that segment, or the next one when the flip
// hit the segment's last batch, rather than guessing. Bytes no checksum
// covers (padding) may flip unnoticed. The byte is restored before it
// returns; it reports whether Open noticed, and if it did not, what it
// read.
func flipOldByte(t *testing.T, where string, rng *rand.Rand, fs *vfs.Mem, opts Options) (bool, *image) {
	t.Helper()
	names, err := fs.ReadDir(opts.Dir)
	if err != nil {
		return false, nil // not created yet
	}
	var segs []string
	for _, n := range names {
		if strings.HasSuffix(n, segmentSuffix) {
			segs = append(segs, opts.Dir+"/"+n)
		}
	}
	// NB: not the newest two: when the newest holds no complete batch (it
	// was being created at the cut), journal.Open removes it and the one
	// before is the tail.
	if len(segs) < 3 {
		return false, nil
	}
	i := rng.Intn(len(segs) - 2)
	size, err := fs.Stat(segs[i])
	must(err)
	if size == 0 {
		return false, nil
	}
	off, bit := rng.Int63n(size), byte(1)<<rng.Intn(8)
	flip := func() {
		t.Helper()
		f, err := fs.OpenRW(segs[i], false)
		if err != nil {
			t.Fatalf("%s: flipping a byte: %v", where, err)
		}
		defer f.Close()
		b := make([]byte, 1)
		if _, err = f.ReadAt(b, off); err != nil {
			t.Fatalf("%s: flipping a byte of %s at %d: %v", where, segs[i], off, err)
		}
		b[0] ^= bit
		if _, err = f.WriteAt(b, off); err != nil {
			t.Fatalf("%s: flipping a byte: %v", where, err)
		}
		if err := f.Sync(); err != nil {
			t.Fatalf("%s: flipping a byte: %v", where, err)
		}
	}
	flip()
	s, err := Open(opts)
	var ce *journal.CorruptError
	var im *image
	switch {
	case err == nil:
		got, cerr := capture(s)
		must(cerr)
		im = &got
		s.Close()
	case !errors.As(err, &ce) || (ce.File != segs[i] && ce.File != segs[i+1]):
		t.Fatalf("%s: Open after flipping a byte of %s at %d: %v; want a *journal.CorruptError naming it", where, segs[i], off, err)
	case ce.File == segs[i] && ce.Offset > off:
		t.Fatalf("%s: flipped a byte of %s at %d, corruption reported after it at %d", where, segs[i], off, ce.Offset)
	}
	flip() // restores it
	return err != nil, im
}
