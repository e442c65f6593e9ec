package cluster_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/cluster"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/replication"
	"github.com/weftfs/weft/internal/testutil"
)

const valueBytes = 4096

// Each chunk of the workload is a register: a write stores a unique value
// (in the first 8 bytes of a 4 KiB block), a read returns it (0: absent).
type regInput struct {
	write bool
	value uint64
}

var registerModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[uint64][]porcupine.Operation{}
		var keys []uint64
		for _, op := range h {
			k := op.Metadata.(uint64)
			if by[k] == nil {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return uint64(0) },
	Step: func(state, input, output any) (bool, any) {
		in := input.(regInput)
		if in.write {
			return true, in.value
		}
		return output.(uint64) == state.(uint64), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		if in.write {
			return fmt.Sprintf("write %#x", in.value)
		}
		return fmt.Sprintf("read -> %#x", output.(uint64))
	},
}

// history records operations with a logical clock: an operation's Call is
// taken before it is sent and its Return after its answer, so real-time
// order between operations is kept.
type history struct {
	clock atomic.Int64
	mu    sync.Mutex
	ops   []porcupine.Operation
	bad   []uint64 // chunks whose history check found illegal
}

func (h *history) add(client int, chunk uint64, in regInput, out uint64, call int64) {
	ret := h.clock.Add(1)
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret, Metadata: chunk})
	h.mu.Unlock()
}

func (h *history) check(t *testing.T, seed uint64) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	res, info := porcupine.CheckOperationsVerbose(registerModel, h.ops, 20*time.Second)
	if res == porcupine.Illegal {
		// The run cannot be replayed (real sockets, real timing): keep
		// the evidence, an HTML timeline of the offending chunk.
		for _, part := range registerModel.Partition(h.ops) {
			if !porcupine.CheckOperations(registerModel, part) {
				h.bad = append(h.bad, part[0].Metadata.(uint64))
			}
		}
		path := filepath.Join(os.TempDir(), fmt.Sprintf("weft-history-%d.html", seed))
		if err := porcupine.VisualizePath(registerModel, info, path); err != nil {
			t.Logf("visualizing the history: %v", err)
		}
		t.Fatalf("history of %d operations is not linearizable (seed %d); timeline in %s", len(h.ops), seed, path)
	}
	t.Logf("%d operations checked: %s (seed %d)", len(h.ops), res, seed)
}

// workload runs workers goroutines of random reads and writes over the
// chunks (inode 1, index 0..chunks-1) until stop is closed or each did
// maxOps; every operation retries until it succeeds.
type workload struct {
	ct      *client.Container
	chunks  int
	hist    *history
	acked   atomic.Int64
	errs    chan error
	wg      sync.WaitGroup
	stop    chan struct{}
	stopped bool
}

func startWorkload(ct *client.Container, seed uint64, workers, chunks, maxOps int) *workload {
	w := &workload{ct: ct, chunks: chunks, hist: &history{}, errs: make(chan error, workers), stop: make(chan struct{})}
	for g := 0; g < workers; g++ {
		w.wg.Add(1)
		go w.run(g, rand.New(rand.NewPCG(seed, uint64(g))), maxOps)
	}
	return w
}

func (w *workload) run(g int, rng *rand.Rand, maxOps int) {
	defer w.wg.Done()
	ctx := context.Background()
	buf := make([]byte, valueBytes)
	for i := 1; i <= maxOps; i++ {
		select {
		case <-w.stop:
			return
		default:
		}
		idx := uint64(rng.IntN(w.chunks))
		call := w.hist.clock.Add(1)
		if rng.IntN(100) < 60 {
			v := uint64(g+1)<<32 | uint64(i)
			binary.LittleEndian.PutUint64(buf, v)
			if _, err := w.ct.Write(ctx, 1, idx, 0, buf); err != nil {
				w.errs <- fmt.Errorf("worker %d: write %d: %w", g, idx, err)
				return
			}
			w.hist.add(g, idx, regInput{write: true, value: v}, 0, call)
			w.acked.Add(1)
			continue
		}
		v, err := readValue(ctx, w.ct, idx, buf)
		if err != nil {
			w.errs <- fmt.Errorf("worker %d: read %d: %w", g, idx, err)
			return
		}
		w.hist.add(g, idx, regInput{}, v, call)
	}
}

func readValue(ctx context.Context, ct *client.Container, idx uint64, buf []byte) (uint64, error) {
	n, err := ct.Read(ctx, 1, idx, 0, buf)
	switch {
	case errors.Is(err, fsproto.ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, err
	case n != valueBytes:
		return 0, fmt.Errorf("read %d bytes, want %d", n, valueBytes)
	}
	return binary.LittleEndian.Uint64(buf), nil
}

// finish stops the workers and fails the test on any worker error.
func (w *workload) finish(t *testing.T) {
	t.Helper()
	if !w.stopped {
		close(w.stop)
		w.stopped = true
	}
	w.wg.Wait()
	close(w.errs)
	for err := range w.errs {
		t.Error(err)
	}
}

// finalReads reads every chunk once more, after all writes completed, and
// records the reads: an acknowledged write that was lost shows up as an
// illegal history.
func (w *workload) finalReads(t *testing.T) map[uint64]uint64 {
	t.Helper()
	buf := make([]byte, valueBytes)
	vals := map[uint64]uint64{}
	for idx := uint64(0); idx < uint64(w.chunks); idx++ {
		call := w.hist.clock.Add(1)
		v, err := readValue(context.Background(), w.ct, idx, buf)
		if err != nil {
			t.Fatalf("final read %d: %v", idx, err)
		}
		w.hist.add(99, idx, regInput{}, v, call)
		vals[idx] = v
	}
	return vals
}

func testSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return seed
}

func TestLinearizable(t *testing.T) {
	testutil.CheckLeaks(t)
	seed := testSeed(t)
	c := newCluster(t, 3, 4, replication.Config{Window: 16})
	ct, err := c.dial(t).Container(testContainer)
	if err != nil {
		t.Fatal(err)
	}
	ops := 150
	if testing.Short() {
		ops = 60
	}
	w := startWorkload(ct, seed, 4, 6, ops)
	w.wg.Wait()
	w.finish(t)
	w.finalReads(t)
	w.hist.check(t, seed)
}

// pgOf returns the PG of chunk (1, idx) and the map.
func pgOf(t *testing.T, m *clustermap.Map, ct *client.Container, idx uint64) *clustermap.PG {
	pg, err := m.Locate(ct.ID(), 1, idx)
	if err != nil {
		t.Fatal(err)
	}
	return pg
}

// TestFailover kills a PG's primary under load, marks it Down, checks the
// clients carry on without losing an acknowledged write, then brings it
// back: it backfills only what it missed, reports CaughtUp, and ends up
// holding the same data as the others.
func TestFailover(t *testing.T) {
	testutil.CheckLeaks(t)
	seed := testSeed(t)
	const window = 8
	c := newCluster(t, 3, 1, replication.Config{Window: window, SyncBytesPerTick: 256 << 10})
	ct, err := c.dial(t).Container(testContainer)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pg := pgOf(t, c.current(), ct, 0)
	victim := pg.Primary()

	// Data the victim will hold when it comes back: 48 chunks of 16 KiB
	// under inode 2, untouched afterwards.
	const baseChunks, baseBytes = 48, 16 << 10
	for i := uint64(0); i < baseChunks; i++ {
		if _, err := ct.Write(ctx, 2, i, 0, pattern(2, i, 0, baseBytes)); err != nil {
			t.Fatal(err)
		}
	}

	w := startWorkload(ct, seed, 4, 8, 1<<30)
	waitFor(t, "writes before the kill", func() bool { return w.acked.Load() >= 20 })
	c.kill(victim)
	c.apply(clustermap.SetNodeState{ID: victim, State: clustermap.Down})
	before := w.acked.Load()
	waitFor(t, "writes after the kill", func() bool { return w.acked.Load() >= before+40 })
	w.finish(t)
	if t.Failed() {
		return
	}
	vals := w.finalReads(t)
	w.hist.check(t, seed)

	// Bring the victim back on its old device.
	c.restart(victim)
	victimMax := c.nodes[victim].eng.PGSeq(uint32(pg.ID))
	base := max(victimMax, window) - window
	victimChanges, err := c.nodes[victim].eng.Changes(uint32(pg.ID), base, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// What it holds of them as it peers (nothing writes any more).
	victimData := map[engine.ObjectID][]byte{}
	for _, vs := range victimChanges {
		if !vs.Deleted {
			victimData[vs.ID] = readObject(t, c.nodes[victim].eng, vs.ID, vs.Size)
		}
	}
	c.caughtUpFails.Store(2) // the first reports are lost and retried
	m, _ := c.apply(clustermap.SetNodeState{ID: victim, State: clustermap.Up})
	npg, _ := m.PG(pg.ID)
	if !npg.IsBackfilling(victim) {
		t.Fatalf("node %d back Up is not backfilling pg %d: %v", victim, pg.ID, npg)
	}
	newPrimary := npg.Primary()
	waitFor(t, "CaughtUp in the map", func() bool {
		p, _ := c.current().PG(pg.ID)
		return p.HasReplica(victim) && !p.IsBackfilling(victim)
	})

	// The primary reconciles every replica again in the epoch CaughtUp
	// made; wait for it before looking at the engines. NB: that primary
	// may be the victim again (a replica that caught up takes its
	// placement rank), so it is read from the newest map.
	waitFor(t, "the primary active in the newest epoch", func() bool {
		p, _ := c.current().PG(pg.ID)
		for _, s := range c.nodes[p.Primary()].ds.Status() {
			if s.PG == pg.ID && s.Epoch == p.Epoch && s.Phase == "active" && len(s.Syncs) == 2 {
				return s.Syncs[0].Done && s.Syncs[1].Done
			}
		}
		return false
	})

	// What it lacked: every object the primary changed after the sync's
	// base (the window below what the victim held), and every object the
	// victim changed after it (possibly divergent, replaced), except those
	// it held in exactly the primary's state: listed at the seq the primary
	// holds them at, both live, with the same data and request ids. The
	// sync only has the victim check those (SyncSame), and they are not
	// installed. One is an object of the victim's last window that no
	// write touched while it was down (about 1 run in 40).
	prim := c.nodes[newPrimary].eng
	want := map[fsproto.ChunkID]bool{}
	changes, err := prim.Changes(uint32(pg.ID), base, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range append(changes, victimChanges...) {
		want[fsproto.ChunkOf(st.ID)] = true
	}
	held := 0
	for _, vs := range victimChanges {
		ch := fsproto.ChunkOf(vs.ID)
		ps, err := prim.Stat(vs.ID)
		if err == nil && !vs.Deleted && ps.PGSeq == vs.PGSeq && slices.Equal(ps.Applied(), vs.Applied()) &&
			c.engineHas(newPrimary, ch, victimData[vs.ID]) == nil {
			delete(want, ch)
			held++
		}
	}
	var wantBytes int64
	for ch := range want {
		st, err := prim.Stat(fsproto.ObjectID(ch))
		if err == nil && !st.Deleted {
			wantBytes += int64(st.Size)
		}
	}
	var st cluster.PGStatus
	for _, s := range c.nodes[victim].ds.Status() {
		if s.PG == pg.ID {
			st = s
		}
	}
	t.Logf("victim %d held seq %d; status %+v; expected %d objects, %d bytes (%d held already)", victim, victimMax, st, len(want), wantBytes, held)
	if st.InstalledBytes != wantBytes || st.InstalledObjects != int64(len(want)) {
		t.Errorf("victim installed %d objects, %d bytes; want %d objects, %d bytes", st.InstalledObjects, st.InstalledBytes, len(want), wantBytes)
	}
	if total := int64(baseChunks * baseBytes); st.InstalledBytes >= total/2 {
		t.Errorf("victim installed %d bytes, the PG holds over %d: it copied the whole PG", st.InstalledBytes, total)
	}

	// Every replica holds every acknowledged value.
	for idx, v := range vals {
		ch := fsproto.ChunkID{Container: uint64(ct.ID()), Inode: 1, Index: idx}
		for id := range c.nodes {
			if v == 0 {
				continue
			}
			got := make([]byte, 8)
			if _, err := c.nodes[id].eng.Read(fsproto.ObjectID(ch), 0, got); err != nil || binary.LittleEndian.Uint64(got) != v {
				st, serr := c.nodes[id].eng.Stat(fsproto.ObjectID(ch))
				t.Errorf("node %d chunk %d: %#x (%v), want %#x; stat %+v %v", id, idx, binary.LittleEndian.Uint64(got), err, v, st, serr)
			}
		}
	}
	for i := uint64(0); i < baseChunks; i++ {
		ch := fsproto.ChunkID{Container: uint64(ct.ID()), Inode: 2, Index: i}
		for id := range c.nodes {
			if err := c.engineHas(id, ch, pattern(2, i, 0, baseBytes)); err != nil {
				t.Error(err)
			}
		}
	}
}

// readObject returns the size bytes of obj in eng.
func readObject(t *testing.T, eng *engine.Engine, obj engine.ObjectID, size uint64) []byte {
	t.Helper()
	p := make([]byte, size)
	if n, err := eng.Read(obj, 0, p); err != nil && !(errors.Is(err, io.EOF) && n == len(p)) {
		t.Fatalf("reading %v: %d of %d bytes: %v", obj, n, size, err)
	}
	return p
}

// waitActive waits until pg's primary serves in the map's newest epoch
// with every replica reconciled.
func (c *tcluster) waitActive(t *testing.T, id clustermap.PGID) {
	t.Helper()
	waitFor(t, "the primary active in the newest epoch", func() bool {
		p, _ := c.current().PG(id)
		tn := c.nodes[p.Primary()]
		if tn.ds == nil {
			return false
		}
		for _, s := range tn.ds.Status() {
			if s.PG != id || s.Epoch != p.Epoch || s.Phase != "active" || len(s.Syncs) != len(p.Replicas)-1 {
				continue
			}
			for _, sy := range s.Syncs {
				if !sy.Done {
					return false
				}
			}
			return true
		}
		return false
	})
}

// checkValues checks that every replica of the chunks' PG holds the
// values read last.
func (c *tcluster) checkValues(t *testing.T, ct *client.Container, vals map[uint64]uint64) {
	t.Helper()
	m := c.current()
	for idx, v := range vals {
		ch := fsproto.ChunkID{Container: uint64(ct.ID()), Inode: 1, Index: idx}
		pg := pgOf(t, m, ct, idx)
		for _, id := range pg.Replicas {
			got := make([]byte, 8)
			_, err := c.nodes[id].eng.Read(fsproto.ObjectID(ch), 0, got)
			if v == 0 {
				if !errors.Is(err, engine.ErrNotFound) {
					t.Errorf("node %d chunk %d: %v, want it absent", id, idx, err)
				}
				continue
			}
			if err != nil || binary.LittleEndian.Uint64(got) != v {
				t.Errorf("node %d chunk %d: %#x (%v), want %#x", id, idx, binary.LittleEndian.Uint64(got), err, v)
			}
		}
	}
}

// TestBackfillUnderLoad kills a replica (not the primary) while clients
// write, and brings it back while they still write: live forwards and
// the backfill's installs interleave. The history stays linearizable and
// every replica ends with the last values.
func TestBackfillUnderLoad(t *testing.T) {
	testutil.CheckLeaks(t)
	seed := testSeed(t)
	c := newCluster(t, 3, 2, replication.Config{Window: 8, SyncBytesPerTick: 16 << 10})
	ct, err := c.dial(t).Container(testContainer)
	if err != nil {
		t.Fatal(err)
	}
	m := c.current()
	pg := pgOf(t, m, ct, 0)
	victim := pg.Replicas[1]

	w := startWorkload(ct, seed, 4, 12, 1<<30)
	c.traceOnFailure(t, ct, w.hist, seed)
	waitFor(t, "writes before the kill", func() bool { return w.acked.Load() >= 20 })
	c.kill(victim)
	c.apply(clustermap.SetNodeState{ID: victim, State: clustermap.Down})
	n := w.acked.Load()
	waitFor(t, "writes while it is down", func() bool { return w.acked.Load() >= n+30 })
	c.restart(victim)
	c.apply(clustermap.SetNodeState{ID: victim, State: clustermap.Up})
	waitFor(t, "CaughtUp of every PG", func() bool {
		for _, p := range c.current().PGs {
			if len(p.Backfilling) > 0 {
				return false
			}
		}
		return true
	})
	n = w.acked.Load()
	waitFor(t, "writes after the backfill", func() bool { return w.acked.Load() >= n+20 })
	w.finish(t)
	if t.Failed() {
		return
	}
	vals := w.finalReads(t)
	w.hist.check(t, seed)
	for _, p := range c.current().PGs {
		if !p.HasReplica(victim) {
			t.Errorf("pg %d does not have node %d back: %v", p.ID, victim, p.Replicas)
		}
		c.waitActive(t, p.ID)
	}
	c.checkValues(t, ct, vals)
}

// traceOnFailure, when WEFT_TRACE is set, records every node's core
// events and, if the history check fails, writes the story of each
// offending chunk to TMPDIR/weft-trace-SEED.txt.
func (c *tcluster) traceOnFailure(t *testing.T, ct *client.Container, h *history, seed uint64) {
	if os.Getenv("WEFT_TRACE") == "" {
		return
	}
	tr := cluster.StartTrace()
	t.Cleanup(func() {
		tr.Stop()
		h.mu.Lock()
		bad := slices.Clone(h.bad)
		h.mu.Unlock()
		if len(bad) == 0 {
			return
		}
		path := filepath.Join(os.TempDir(), fmt.Sprintf("weft-trace-%d.txt", seed))
		f, err := os.Create(path)
		if err != nil {
			t.Log(err)
			return
		}
		defer f.Close()
		for _, idx := range bad {
			pg := pgOf(t, c.current(), ct, idx)
			ch := fsproto.ChunkID{Container: uint64(ct.ID()), Inode: 1, Index: idx}
			fmt.Fprintf(f, "=== chunk %d (object %v) pg %d, map now %v\n", idx, fsproto.ObjectID(ch), pg.ID, pg)
			tr.Dump(f, uint32(pg.ID), fsproto.ObjectID(ch))
		}
		t.Logf("trace in %s", path)
	})
}
