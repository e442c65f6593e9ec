package journal

import (
	"bytes"
	"errors"
	"flag"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/weftfs/weft/internal/vfs"
)

var (
	crashSeed   = flag.Int64("crash.seed", 0, "run the journal crash test with this seed only")
	crashCycles = flag.Int("crash.cycles", 0, "crash/recover cycles per seed (default 300)")
)

// TestCrashRecovery runs random concurrent appends against the in-memory
// file system, cuts the power at random moments (with write and flush
// faults injected on the way), recovers, and checks after every cycle:
//   - every record acknowledged before the cut is there, byte-exact;
//   - every record there is one that was appended, whole, with its own
//     sequence number: unacknowledged ones are whole or absent;
//   - sequence numbers run without a gap from the oldest kept record;
//   - Verify finds no corruption.
//
// The seed is printed on failure; rerun with -crash.seed=N.
func TestCrashRecovery(t *testing.T) {
	cycles := 300
	if *crashCycles > 0 {
		cycles = *crashCycles
	}
	seeds := []int64{1, 2, 3}
	if *crashSeed != 0 {
		seeds = []int64{*crashSeed}
	}
	for _, seed := range seeds {
		t.Run("", func(t *testing.T) {
			t.Logf("seed %d (rerun: go test ./journal -run TestCrashRecovery -crash.seed=%d)", seed, seed)
			runCrashCycles(t, seed, cycles)
		})
	}
}

// history is what the test knows about every record it ever appended.
type history struct {
	mu    sync.Mutex
	data  map[uint64][]byte // seq → data, for every record handed to the journal
	acked map[uint64]bool
}

func runCrashCycles(t *testing.T, seed int64, cycles int) {
	rng := rand.New(rand.NewSource(seed))
	fs := vfs.NewMem()
	fs.SetSeed(seed)
	opts := Options{Dir: "/wal", SegmentBytes: 64 << 10, BatchBytesMax: 16 << 10, RecordBytesMax: 20 << 10}
	h := &history{data: map[uint64][]byte{}, acked: map[uint64]bool{}}
	var durable []uint64 // acknowledged seqs that must survive every later crash
	for cycle := 0; cycle < cycles; cycle++ {
		opts.FS = fs
		j, err := Open(opts)
		if err != nil {
			t.Fatalf("seed %d cycle %d: open after crash: %v", seed, cycle, err)
		}
		checkRecovered(t, seed, cycle, j, h, durable)
		// Truncation now and then, as a checkpoint would do it.
		if rng.Intn(8) == 0 {
			if _, err := j.TruncateBefore(j.NextSeq() - uint64(rng.Intn(50))); err != nil {
				t.Fatalf("seed %d cycle %d: truncate: %v", seed, cycle, err)
			}
			first := j.FirstSeq()
			kept := durable[:0]
			for _, s := range durable {
				if s >= first {
					kept = append(kept, s)
				}
			}
			durable = kept
		}

		switch rng.Intn(4) {
		case 0:
			fs.SetFault(vfs.FailRandom(rng.Int63(), vfs.OpWrite, 0.05))
		case 1:
			fs.SetFault(vfs.FailRandom(rng.Int63(), vfs.OpSync, 0.05))
		default:
			fs.SetFault(nil)
		}
		writers := 1 + rng.Intn(4)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wseed := rng.Int63()
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewSource(wseed))
				for {
					select {
					case <-stop:
						return
					default:
					}
					data := make([]byte, r.Intn(3000))
					r.Read(data)
					if r.Intn(20) == 0 {
						data = make([]byte, 12000+r.Intn(8000)) // larger than a batch
						r.Read(data)
					}
					seq, err := j.AppendAsync(uint16(1+r.Intn(3)), data, func(seq uint64, err error) {
						if err == nil {
							h.mu.Lock()
							h.data[seq] = data
							h.acked[seq] = true
							h.mu.Unlock()
						}
					})
					if err == nil {
						h.mu.Lock()
						h.data[seq] = data
						h.mu.Unlock()
					}
					if err != nil {
						return // failed journal, or closed
					}
					if r.Intn(4) == 0 {
						time.Sleep(time.Duration(r.Intn(200)) * time.Microsecond)
					}
				}
			}()
		}
		time.Sleep(time.Duration(rng.Intn(3000)) * time.Microsecond)
		// The power cut: what was acknowledged before it must survive.
		h.mu.Lock()
		for s := range h.acked {
			durable = append(durable, s)
		}
		clear(h.acked)
		crashed := fs.Crash(rng.Int63())
		h.mu.Unlock()
		close(stop)
		wg.Wait()
		fs.SetFault(nil)
		j.Close()
		h.mu.Lock()
		clear(h.acked) // acks after the cut say nothing about the crashed image
		h.mu.Unlock()
		fs = crashed
	}
	opts.FS = fs
	n, next, err := Verify(fs, opts.Dir)
	if err != nil {
		t.Fatalf("seed %d: final Verify: %v", seed, err)
	}
	t.Logf("seed %d: %d cycles; log ends at sequence %d with %d records kept; %d acknowledged records checked after the last crash",
		seed, cycles, next-1, n, len(durable))
}

func checkRecovered(t *testing.T, seed int64, cycle int, j *Journal, h *history, durable []uint64) {
	t.Helper()
	present := map[uint64]bool{}
	prev := uint64(0)
	err := j.Replay(0, func(r Record) error {
		if prev != 0 && r.Seq != prev+1 {
			t.Fatalf("seed %d cycle %d: sequence gap: %d after %d", seed, cycle, r.Seq, prev)
		}
		prev = r.Seq
		want, ok := h.data[r.Seq]
		if !ok {
			t.Fatalf("seed %d cycle %d: record %d was never appended", seed, cycle, r.Seq)
		}
		if !bytes.Equal(r.Data, want) {
			t.Fatalf("seed %d cycle %d: record %d differs from what was appended (%d bytes, want %d)", seed, cycle, r.Seq, len(r.Data), len(want))
		}
		present[r.Seq] = true
		return nil
	})
	if err != nil {
		t.Fatalf("seed %d cycle %d: replay after crash: %v", seed, cycle, err)
	}
	for _, s := range durable {
		if !present[s] {
			t.Fatalf("seed %d cycle %d: acknowledged record %d lost (log holds %d..%d)", seed, cycle, s, j.FirstSeq(), j.NextSeq()-1)
		}
	}
	// Records past the recovered end were never durable: forget them, so
	// that the same sequence numbers can be reused by new appends.
	for s := range h.data {
		if s >= j.NextSeq() {
			delete(h.data, s)
		}
	}
	if _, _, err := Verify(j.opts.FS, j.opts.Dir); err != nil && !errors.Is(err, ErrCorrupt) {
		t.Fatalf("seed %d cycle %d: verify: %v", seed, cycle, err)
	} else if err != nil {
		t.Fatalf("seed %d cycle %d: corruption after recovery: %v", seed, cycle, err)
	}
}
