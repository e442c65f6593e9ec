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
	crashCycles = flag.Int("crash.cycles", 0, "crash/recover cycles per seed (default 150, 2000 without -short)")
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
	cycles := 150
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
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("seed %d (rerun: go test ./fsproto/raftlog -run TestCrash -crash.seed=%d)", seed, seed)
				}
			}()
			runCrash(t, seed, cycles)
		})
	}
}

func runCrash(t *testing.T, seed int64, cycles int) {
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
	var failedOps, tookAfter, tookBefore, acked int
	for cycle := 0; cycle < cycles; cycle++ {
		where := fmt.Sprintf("seed %d cycle %d", seed, cycle)
		s, err := Open(Options{FS: fs, Dir: "/raft", Logger: log, KeepEntries: keep, SegmentBytes: 64 << 10, BatchBytesMax: 16 << 10})
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
			if dd := got.diff(c); dd == "" {
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
		ms := got.rebuild()

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
	if torn.n.Load() == 0 {
		t.Fatalf("seed %d: no recovery met a torn save", seed)
	}
	if failedOps == 0 || tookBefore == 0 || tookAfter == 0 {
		t.Fatalf("seed %d: the faults never bit both ways: %d failed operations, recovered %d before and %d after", seed, failedOps, tookBefore, tookAfter)
	}
	t.Logf("seed %d: %d cycles, %d operations acknowledged, %d failed; after a failure %d recoveries had the old state and %d the new; %d torn saves skipped",
		seed, cycles, acked, failedOps, tookBefore, tookAfter, torn.n.Load())
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
