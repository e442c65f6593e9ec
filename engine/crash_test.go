package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftfs/weft/internal/vfs"
)

var (
	engineCrashSeed   = flag.Uint64("crash.seed", 0, "run the engine crash tests with this seed only")
	engineCrashCycles = flag.Int("crash.cycles", 0, "crash/recover cycles per seed (default 200; with -short 50, or 12 under the race detector)")
)

// objHistory is one object's states, owned by one worker so that its
// mutations are sequential: states[0] is the state recovery last
// confirmed, states[i] the state after the i-th mutation since. Every
// mutation up to definite was acknowledged before the crash.
type objHistory struct {
	states   []objContent
	definite int
}

type objContent struct {
	exists bool
	data   []byte
	// reqs are the request ids the object's state must report: those of
	// its last KeptRequests mutations (a seq of 0 is unknown: the
	// mutation failed before the engine told it).
	reqs [KeptRequests]AppliedRequest
	// restarts are the ids the object may report instead of reqs: one
	// for each delete in its history whose tombstone may have been
	// forgotten (ForgetTombstones drops the ids with the tombstone, and
	// the object's next mutation starts a fresh list), holding the ids of
	// the mutations since that delete.
	restarts [][KeptRequests]AppliedRequest
}

// idsMatch reports whether got are ids the state may report.
func (c objContent) idsMatch(got [KeptRequests]AppliedRequest) bool {
	if sameRequests(got, c.reqs) {
		return true
	}
	for _, alt := range c.restarts {
		if sameRequests(got, alt) {
			return true
		}
	}
	return false
}

func withID(ids [KeptRequests]AppliedRequest, op crashOp) [KeptRequests]AppliedRequest {
	st := ObjectState{Requests: ids}
	st.addRequest(op.rid, op.seq)
	return st.Requests
}

func (c objContent) apply(op crashOp) objContent {
	n := objContent{exists: true, data: bytes.Clone(c.data), reqs: withID(c.reqs, op)}
	for _, alt := range c.restarts {
		if alt = withID(alt, op); alt != n.reqs && !slices.Contains(n.restarts, alt) {
			n.restarts = append(n.restarts, alt)
		}
	}
	switch op.kind {
	case OpWrite:
		end := int(op.off) + len(op.data)
		if end > len(n.data) {
			n.data = append(n.data, make([]byte, end-len(n.data))...)
		}
		copy(n.data[op.off:], op.data)
	case OpTruncate:
		if int(op.off) <= len(n.data) {
			n.data = n.data[:op.off]
		} else {
			n.data = append(n.data, make([]byte, int(op.off)-len(n.data))...)
		}
	case OpDelete:
		n = objContent{reqs: n.reqs, restarts: n.restarts}
		if empty := ([KeptRequests]AppliedRequest{}); !slices.Contains(n.restarts, empty) {
			n.restarts = append(n.restarts, empty)
		}
	}
	return n
}

// sameRequests reports whether got holds want's ids in want's order, with
// want's seqs where they are known.
func sameRequests(got, want [KeptRequests]AppliedRequest) bool {
	for i := range got {
		if got[i].ID != want[i].ID || (want[i].Seq != 0 && got[i].Seq != want[i].Seq) {
			return false
		}
	}
	return true
}

type crashOp struct {
	kind Op
	off  uint64
	data []byte
	rid  RequestID
	seq  uint64 // the PG seq the engine gave it, once known
}

// crashMutate runs op on obj with its request id, as a replication
// layer would, and returns the PG seq the engine assigned.
func crashMutate(e *Engine, obj ObjectID, pg uint32, op crashOp) (uint64, error) {
	done := make(chan *Request, 1)
	r := &Request{Op: op.kind, Object: obj, PG: pg, Off: op.off, Buf: op.data, RequestID: op.rid, Done: done}
	e.Submit(r)
	<-done
	return r.ResultSeq, r.Err
}

// snapRecord is a snapshot the test took, with the content of the taking
// worker's objects at that moment.
type snapRecord struct {
	name     string
	objects  map[ObjectID]objContent
	definite bool // Snapshot returned before the crash
	released bool
	relDef   bool // Release returned before the crash
}

// TestCrashRecovery runs random concurrent workloads (writes, overwrites,
// truncates, deletes, snapshots, with the cleaner and frequent checkpoints
// on a small device) on the in-memory file system, cuts the power at a
// random point with random torn and lost unflushed writes, injects write
// and flush errors now and then, recovers, and checks after every
// recovery that every acknowledged mutation is there byte for byte, that
// every unacknowledged one is whole or absent, that the space accounting
// recounted from scratch matches, and that durable snapshots read back as
// taken. The seed is printed on failure; rerun with -crash.seed=N.
func TestCrashRecovery(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	if *engineCrashSeed != 0 {
		seeds = []uint64{*engineCrashSeed}
	}
	cycles := 200
	switch {
	case testing.Short() && raceEnabled():
		cycles = 12
	case testing.Short():
		cycles = 50
	}
	if *engineCrashCycles > 0 {
		cycles = *engineCrashCycles
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Logf("rerun: go test ./engine -run TestCrashRecovery -crash.seed=%d", seed)
			runEngineCrash(t, seed, cycles)
		})
	}
}

const (
	crashWorkers    = 3
	crashObjsPerW   = 6
	crashObjMax     = 96 << 10
	crashShards     = 2
	crashDeviceSize = 16 << 20
)

func runEngineCrash(t *testing.T, seed uint64, cycles int) {
	rng := rand.New(rand.NewPCG(seed, 0xc0ffee))
	fsys := vfs.NewMem()
	if _, err := Format(fsys, FormatRequest{Path: "dev", Size: crashDeviceSize, Options: FormatOptions{SegmentSize: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
	hist := make(map[ObjectID]*objHistory)
	var objs [crashWorkers][]ObjectID
	for w := range crashWorkers {
		for i := range crashObjsPerW {
			id := ObjectID{Hi: uint64(w), Lo: uint64(i)}
			objs[w] = append(objs[w], id)
			hist[id] = &objHistory{states: []objContent{{}}}
		}
	}
	var snaps []*snapRecord
	var stats struct{ ops, acked, torn, failed, nospace, snapshots, cleaned, replayed, cacheHits, forgotten int }

	for cycle := 0; cycle < cycles; cycle++ {
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d cycle %d: %s", seed, cycle, fmt.Sprintf(format, args...))
		}
		e, err := Open(Options{Path: "dev", FS: fsys, Shards: crashShards, Mode: Interrupt, Logger: quietLogger,
			CheckpointBytes: 3 << 20, Cleaner: CleanerOptions{FreeTarget: 0.4, BytesPerBatch: 64 << 10},
			// The small device fills now and then, and the injected
			// faults fail the checkpoints that would free it: a write
			// then waits all of SpaceWait (runs took minutes at 5s).
			SpaceWait: 200 * time.Millisecond,
			// Every other cycle reads through a read cache, so that the
			// reads of cleaned, freed and reused segments meet it.
			ReadCacheBytes: int64(cycle%2) << 20})
		if err != nil {
			fail("open after crash: %v", err)
		}
		rec := e.Recovery()
		stats.torn += rec.TornTails
		stats.replayed += rec.BatchesReplayed
		if err := e.Verify(); err != nil {
			fail("after recovery: %v", err)
		}
		checkObjects(t, e, hist, fail)
		snaps = checkSnapshots(t, e, snaps, fail)

		// Faults: now and then writes or flushes start failing.
		if rng.IntN(4) == 0 {
			op := vfs.OpWrite
			if rng.IntN(2) == 0 {
				op = vfs.OpSync
			}
			fsys.SetFault(vfs.FailRandom(int64(rng.Uint64()>>1), op, 0.02))
		}
		var crashing, faulted atomic.Bool
		var mu sync.Mutex
		var wg sync.WaitGroup
		opsPerWorker := 20 + rng.IntN(60)
		crashAfter := int64(rng.IntN(crashWorkers * opsPerWorker))
		var done atomic.Int64
		crashNow := make(chan struct{})
		var crashOnce sync.Once
		for w := range crashWorkers {
			wseed := rng.Uint64()
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(wseed, uint64(w)))
				for i := 0; i < opsPerWorker; i++ {
					if crashing.Load() {
						return // the device image is taken: nothing reaches it
					}
					if done.Add(1) == crashAfter {
						crashOnce.Do(func() { close(crashNow) })
					}
					// Worker 1 now and then forgets every tombstone of a
					// worker's PG (each worker writes its own PG) that the
					// engine may drop.
					if w == 1 && r.IntN(10) == 0 {
						pg := uint32(r.IntN(crashWorkers))
						n, err := e.ForgetTombstones(pg, 0, e.PGSeq(pg))
						if err != nil && !errors.Is(err, ErrClosed) {
							t.Errorf("seed %d cycle %d: forget tombstones of pg %d: %v", seed, cycle, pg, err)
						}
						mu.Lock()
						stats.forgotten += n
						mu.Unlock()
						continue
					}
					// A snapshot records the worker's last states, which a
					// failed mutation leaves unknown.
					if w == 0 && r.IntN(25) == 0 && !faulted.Load() {
						snaps = crashSnapshotOp(e, r, objs[w], hist, snaps, &mu, &crashing, &stats.snapshots)
						continue
					}
					id := objs[w][r.IntN(len(objs[w]))]
					h := hist[id]
					mu.Lock()
					cur := h.states[len(h.states)-1]
					mu.Unlock()
					op := randomCrashOp(r, cur)
					// Most mutations carry a request id, as replicated ones do.
					if r.IntN(8) != 0 {
						for k := range op.rid {
							op.rid[k] = byte(r.Uint32())
						}
					}
					seq, err := crashMutate(e, id, uint32(w), op)
					if err == nil {
						op.seq = seq
					}
					before := !crashing.Load()
					mu.Lock()
					stats.ops++
					if errors.Is(err, ErrNoSpace) {
						// Refused before it was logged: the object is unchanged.
						stats.nospace++
						mu.Unlock()
						continue
					}
					h.states = append(h.states, cur.apply(op))
					if err == nil && before {
						h.definite = len(h.states) - 1
						stats.acked++
					}
					if err != nil {
						stats.failed++
						faulted.Store(true)
					}
					mu.Unlock()
					if err != nil && !errors.Is(err, ErrFailed) && !errors.Is(err, ErrNoSpace) && !errors.Is(err, ErrClosed) {
						t.Errorf("seed %d cycle %d: %v: %v", seed, cycle, op.kind, err)
					}
					// A failed mutation leaves the live state unknown until
					// the next recovery.
					if r.IntN(4) == 0 && !faulted.Load() {
						verifyRead(t, e, id, h, &mu, seed, cycle)
					}
				}
			}()
		}
		go func() { wg.Wait(); crashOnce.Do(func() { close(crashNow) }) }()
		<-crashNow
		crashing.Store(true)
		crashed := fsys.Crash(int64(rng.Uint64() >> 1))
		wg.Wait()
		st := e.Stats()
		for _, s := range st.Shards {
			stats.cleaned += int(s.Cleaner.SegmentsCleaned)
			stats.cacheHits += int(s.ReadCacheHits)
			// Crashes tear only a shard's last batches, which recovery
			// seals: every victim's batches must account for all its
			// live bytes, with no index scan to fall back on.
			if s.Cleaner.IndexScans != 0 {
				fail("the cleaner scanned the index for %d victims whose batches did not account for their live bytes", s.Cleaner.IndexScans)
			}
		}
		fsys.SetFault(nil)
		e.Close()
		fsys = crashed
	}
	e, err := Open(Options{Path: "dev", FS: fsys, Shards: crashShards, Logger: quietLogger})
	if err != nil {
		t.Fatalf("seed %d: final open: %v", seed, err)
	}
	defer e.Close()
	checkObjects(t, e, hist, func(format string, args ...any) { t.Fatalf("seed %d final: "+format, append([]any{seed}, args...)...) })
	if err := e.Verify(); err != nil {
		t.Fatalf("seed %d final: %v", seed, err)
	}
	t.Logf("seed %d: %d cycles, %d mutations (%d acknowledged before a crash, %d failed by injected faults), %d torn tails dropped, %d batches replayed, %d snapshots, %d segments cleaned, %d writes refused for space, %d records read from the read cache, %d tombstones forgotten",
		seed, cycles, stats.ops, stats.acked, stats.failed, stats.torn, stats.replayed, stats.snapshots, stats.cleaned, stats.nospace, stats.cacheHits, stats.forgotten)
}

func randomCrashOp(r *rand.Rand, cur objContent) crashOp {
	switch n := r.IntN(20); {
	case n == 0:
		return crashOp{kind: OpDelete}
	case n <= 2:
		return crashOp{kind: OpTruncate, off: uint64(r.IntN(crashObjMax))}
	default:
		size := 1 + r.IntN(16<<10)
		if r.IntN(4) == 0 {
			size = 4096 * (1 + r.IntN(20)) // aligned sizes, some above a record
		}
		off := uint64(r.IntN(crashObjMax - size))
		if r.IntN(3) == 0 {
			off &^= 4095
		}
		data := make([]byte, size)
		var seed [32]byte
		binary.LittleEndian.PutUint64(seed[:], r.Uint64())
		rand.NewChaCha8(seed).Read(data)
		return crashOp{kind: OpWrite, off: off, data: data}
	}
}

// verifyRead checks a live read against the states the object may be in
// (the worker owns it, so it is one of the last two: its last mutation
// either took effect or failed).
func verifyRead(t *testing.T, e *Engine, id ObjectID, h *objHistory, mu *sync.Mutex, seed uint64, cycle int) {
	got, exists, err := readWhole(e, id)
	if err != nil {
		t.Errorf("seed %d cycle %d: read %v: %v", seed, cycle, id, err)
		return
	}
	mu.Lock()
	defer mu.Unlock()
	for i := len(h.states) - 1; i >= max(0, len(h.states)-2); i-- {
		if s := h.states[i]; s.exists == exists && bytes.Equal(s.data, got) {
			return
		}
	}
	t.Errorf("seed %d cycle %d: live read of %v (%d bytes, exists %v) matches neither of its last two states", seed, cycle, id, len(got), exists)
}

func readWhole(e *Engine, id ObjectID) ([]byte, bool, error) {
	p, exists, _, err := readWholeState(e, id)
	return p, exists, err
}

// readWholeState reads id's data and returns its state too (a deleted
// object's tombstone, or the zero state of one never written).
func readWholeState(e *Engine, id ObjectID) ([]byte, bool, ObjectState, error) {
	st, err := e.Stat(id)
	if errors.Is(err, ErrNotFound) {
		if !st.Deleted && st != (ObjectState{}) {
			return nil, false, st, fmt.Errorf("stat of missing %v returned a live state %+v", id, st)
		}
		return nil, false, st, nil
	}
	if err != nil {
		return nil, false, st, err
	}
	p := make([]byte, st.Size)
	n, err := e.Read(id, 0, p)
	if err != nil && !(errors.Is(err, io.EOF) && len(p) == 0) {
		return nil, true, st, err
	}
	return p[:n], true, st, nil
}

// checkObjects requires every object to be in one of the states between
// its last definite one and its last attempted one, with that state's
// request ids (so every acknowledged mutation's id is reported, up to
// KeptRequests per object), and adopts that state.
func checkObjects(t *testing.T, e *Engine, hist map[ObjectID]*objHistory, fail func(string, ...any)) {
	t.Helper()
	for id, h := range hist {
		got, exists, st, err := readWholeState(e, id)
		if err != nil {
			fail("reading %v: %v", id, err)
		}
		match := -1
		for i := len(h.states) - 1; i >= h.definite; i-- {
			// A forgotten tombstone (ForgetTombstones) is a deleted
			// object without a state: its request ids went with it.
			forgotten := !exists && st == (ObjectState{})
			if s := h.states[i]; s.exists == exists && bytes.Equal(s.data, got) && (s.idsMatch(st.Requests) || forgotten) {
				match = i
				break
			}
		}
		if match < 0 {
			for i, s := range h.states {
				diff := -1
				for j := 0; j < min(len(s.data), len(got)); j++ {
					if s.data[j] != got[j] {
						diff = j
						break
					}
				}
				t.Logf("state %d: exists %v, %d bytes, first difference at %d, request ids %x", i, s.exists, len(s.data), diff, s.reqs)
			}
			t.Logf("engine: request ids %x", st.Requests)
			fail("%v holds %d bytes (exists %v); no state from the last acknowledged one (%d of %d) matches with its request ids: an acknowledged write or its id was lost or an unacknowledged one is torn",
				id, len(got), exists, h.definite, len(h.states)-1)
		}
		// The engine's seqs stand for the unknown ones from now on.
		adopted := h.states[match]
		adopted.reqs, adopted.restarts = st.Requests, nil
		if !exists && st != (ObjectState{}) {
			adopted.restarts = [][KeptRequests]AppliedRequest{{}} // the tombstone may be forgotten yet
		}
		h.states = []objContent{adopted}
		h.definite = 0
	}
}

// crashSnapshotOp takes or releases a snapshot of worker 0's objects.
func crashSnapshotOp(e *Engine, r *rand.Rand, ids []ObjectID, hist map[ObjectID]*objHistory, snaps []*snapRecord, mu *sync.Mutex, crashing *atomic.Bool, count *int) []*snapRecord {
	mu.Lock()
	var live []*snapRecord
	for _, s := range snaps {
		if !s.released {
			live = append(live, s)
		}
	}
	mu.Unlock()
	if len(live) >= 2 || (len(live) > 0 && r.IntN(2) == 0) {
		s := live[r.IntN(len(live))]
		sn, err := e.OpenSnapshot(s.name)
		if err != nil {
			return snaps
		}
		err = sn.Release()
		before := !crashing.Load()
		mu.Lock()
		s.released = true
		s.relDef = err == nil && before
		mu.Unlock()
		return snaps
	}
	mu.Lock()
	*count++
	rec := &snapRecord{name: fmt.Sprintf("s%d-%d", *count, r.Uint32()), objects: make(map[ObjectID]objContent)}
	for _, id := range ids {
		h := hist[id]
		rec.objects[id] = h.states[len(h.states)-1]
	}
	snaps = append(snaps, rec)
	mu.Unlock()
	_, err := e.Snapshot(rec.name)
	before := !crashing.Load()
	mu.Lock()
	rec.definite = err == nil && before
	mu.Unlock()
	return snaps
}

// checkSnapshots requires every durable snapshot to exist and read back
// as taken, and every durably released one to be gone; it returns the
// snapshots that exist now.
func checkSnapshots(t *testing.T, e *Engine, snaps []*snapRecord, fail func(string, ...any)) []*snapRecord {
	t.Helper()
	var keep []*snapRecord
	for _, s := range snaps {
		sn, err := e.OpenSnapshot(s.name)
		switch {
		case err != nil && s.definite && !s.released:
			fail("snapshot %s was acknowledged but is gone: %v", s.name, err)
		case err == nil && s.relDef:
			fail("snapshot %s was released but is back", s.name)
		case err != nil:
			continue
		}
		for id, want := range s.objects {
			st, err := sn.Stat(id)
			exists := err == nil
			if exists && !want.idsMatch(st.Requests) {
				fail("snapshot %s: %v has request ids %x, took %x", s.name, id, st.Requests, want.reqs)
			}
			var got []byte
			if exists {
				got = make([]byte, st.Size)
				n, err := sn.Read(id, 0, got)
				if err != nil && !(errors.Is(err, io.EOF) && st.Size == 0) {
					fail("snapshot %s: read %v: %v", s.name, id, err)
				}
				got = got[:n]
			}
			if exists != want.exists || !bytes.Equal(got, want.data) {
				fail("snapshot %s: %v reads %d bytes (exists %v), took %d (exists %v)", s.name, id, len(got), exists, len(want.data), want.exists)
			}
		}
		s.definite, s.released, s.relDef = true, false, false
		keep = append(keep, s)
	}
	return keep
}
