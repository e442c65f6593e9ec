package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/internal/testutil"
	"github.com/weftfs/weft/internal/vfs"
)

// liveCluster runs Nodes over real engines (EngineStore) with a loop like
// the one a node daemon runs: messages go through the codec into an
// in-memory FIFO, store completions come back on a channel, and the nodes
// tick whenever nothing else is in flight.
type liveCluster struct {
	t           *testing.T
	nodes       map[uint64]*Node
	stores      map[uint64]*EngineStore
	engines     map[uint64]*engine.Engine
	devs        map[uint64]*vfs.Mem
	msgs        []liveMsg
	done        chan liveDone
	inflight    int
	replies     map[uint64]Reply
	caughtUp    map[uint64][]CaughtUp // by node
	token       uint64
	down        map[uint64]bool
	forgetTicks int // the cores' Config.ForgetTicks
}

type liveMsg struct {
	from, to uint64
	b        []byte
}

type liveDone struct {
	node uint64
	r    StoreResult
}

func newLiveCluster(t *testing.T, ids ...uint64) *liveCluster {
	return newForgettingCluster(t, 0, ids...)
}

// newForgettingCluster is newLiveCluster with the cores' ForgetTicks.
func newForgettingCluster(t *testing.T, forgetTicks int, ids ...uint64) *liveCluster {
	c := &liveCluster{t: t, nodes: map[uint64]*Node{}, stores: map[uint64]*EngineStore{}, engines: map[uint64]*engine.Engine{},
		devs: map[uint64]*vfs.Mem{}, done: make(chan liveDone, 1024), replies: map[uint64]Reply{}, caughtUp: map[uint64][]CaughtUp{},
		down: map[uint64]bool{}, forgetTicks: forgetTicks}
	for _, id := range ids {
		fsys := vfs.NewMem()
		if _, err := engine.Format(fsys, engine.FormatRequest{Path: "dev", Size: 16 << 20, Options: engine.FormatOptions{SegmentSize: 1 << 20}}); err != nil {
			t.Fatal(err)
		}
		c.devs[id] = fsys
		c.start(id)
		t.Cleanup(func() { c.stop(id) })
	}
	return c
}

// start opens node id's engine on its device and gives it a fresh core,
// as a node process starting does.
func (c *liveCluster) start(id uint64) {
	c.t.Helper()
	e, err := engine.Open(engine.Options{Path: "dev", FS: c.devs[id], Shards: 1, Mode: engine.Interrupt, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		c.t.Fatal(err)
	}
	n, err := NewNode(Config{ID: id, Window: 16, SyncBytesPerTick: 64 << 10, ForgetTicks: c.forgetTicks})
	if err != nil {
		c.t.Fatal(err)
	}
	st, err := NewEngineStore(e)
	if err != nil {
		c.t.Fatal(err)
	}
	c.nodes[id], c.stores[id], c.engines[id] = n, st, e
}

func (c *liveCluster) stop(id uint64) {
	c.stores[id].Close()
	if err := c.engines[id].Close(); err != nil {
		c.t.Errorf("engine close: %v", err)
	}
}

// crash cuts node id's power once its store is idle (so no completion
// of the old core is pending): the device keeps what was flushed, which
// is everything acknowledged; then the node starts again, with a core
// that remembers nothing.
func (c *liveCluster) crash(id uint64) {
	c.t.Helper()
	c.run(func() bool { return c.inflight == 0 })
	crashed := c.devs[id].Crash(int64(id))
	c.stop(id)
	c.devs[id] = crashed
	c.start(id)
}

func (c *liveCluster) step(id uint64, ev Event) {
	for _, e := range slices.Clone(c.nodes[id].Step(ev)) {
		switch e := e.(type) {
		case Send:
			if !c.down[e.To] && !c.down[id] {
				c.msgs = append(c.msgs, liveMsg{from: id, to: e.To, b: AppendMsg(nil, &e.Msg)})
			}
		case Submit:
			c.inflight++
			c.stores[id].Submit(e.Op, func(r StoreResult) { c.done <- liveDone{node: id, r: r} })
		case Reply:
			c.replies[e.Token] = e
		case CaughtUp:
			c.caughtUp[id] = append(c.caughtUp[id], e)
		}
	}
}

// run processes events until cond holds; it fails the test if the cluster
// goes idle for many ticks without cond holding.
func (c *liveCluster) run(cond func() bool) {
	c.t.Helper()
	idle := 0
	for !cond() {
		switch {
		case len(c.msgs) > 0:
			m := c.msgs[0]
			c.msgs = c.msgs[1:]
			msg, err := DecodeMsg(m.b)
			if err != nil {
				c.t.Fatal(err)
			}
			c.step(m.to, Receive{From: m.from, Msg: msg})
			idle = 0
		case c.inflight > 0:
			d := <-c.done
			c.inflight--
			c.step(d.node, StoreDone{Result: d.r})
			idle = 0
		default:
			if idle++; idle > 100 {
				c.t.Fatalf("cluster idle for %d ticks", idle)
			}
			for _, id := range slices.Sorted(mapKeys(c.nodes)) {
				c.step(id, Tick{})
			}
		}
	}
}

// ticks steps every node through n ticks, letting what each tick starts
// finish before the next.
func (c *liveCluster) ticks(n int) {
	c.t.Helper()
	for range n {
		for _, id := range slices.Sorted(mapKeys(c.nodes)) {
			c.step(id, Tick{})
		}
		c.run(func() bool { return len(c.msgs) == 0 && c.inflight == 0 })
	}
}

// storeDo runs op on node id's store, waits for it and fails the test on
// an error.
func (c *liveCluster) storeDo(id uint64, op StoreOp) StoreResult {
	c.t.Helper()
	ch := make(chan StoreResult, 1)
	c.stores[id].Submit(op, func(r StoreResult) { ch <- r })
	r := <-ch
	if r.Err != nil {
		c.t.Fatalf("%+v: %v", op, r.Err)
	}
	return r
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (c *liveCluster) view(v View) {
	for _, id := range slices.Sorted(mapKeys(c.nodes)) {
		c.step(id, ViewChange{View: v})
	}
}

func (c *liveCluster) do(to uint64, op ClientOp) Reply {
	c.t.Helper()
	c.token++
	op.Token = c.token
	c.step(to, op)
	c.run(func() bool { _, ok := c.replies[op.Token]; return ok })
	r := c.replies[op.Token]
	delete(c.replies, op.Token)
	return r
}

func objN(i int) engine.ObjectID {
	return fsproto.ObjectID(fsproto.ChunkID{Container: 1, Inode: uint64(i), Index: 0})
}

func (c *liveCluster) write(to uint64, pg uint32, i int, data string) Reply {
	c.t.Helper()
	var rid fsproto.RequestID
	copy(rid[:], fmt.Sprintf("w%d-%s", i, data))
	r := c.do(to, ClientOp{PG: pg, Kind: OpWrite, RequestID: rid, Object: objN(i), Data: []byte(data)})
	if r.Err != nil {
		c.t.Fatalf("write %d: %v", i, r.Err)
	}
	return r
}

// TestEngineBackfillMovesOnlyMissing: a replica that leaves a PG and comes
// back backfills only the objects changed since it left (plus at most the
// window), every replica ends up with the same objects, and reads are
// served by the primary.
func TestEngineBackfillMovesOnlyMissing(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newLiveCluster(t, 1, 2, 3)
	const pg, before, after, window = 5, 200, 30, 16
	c.view(View{PG: pg, Epoch: 1, Replicas: []uint64{1, 2, 3}})
	for i := range before {
		c.write(1, pg, i, fmt.Sprintf("v1-%d", i))
	}
	full := c.nodes[1].Stats().SyncObjectsSent
	if full != 0 {
		t.Fatalf("a fresh PG synced %d objects", full)
	}

	// Node 3 leaves; writes go on with two replicas; node 3 comes back
	// backfilling.
	c.down[3] = true
	c.view(View{PG: pg, Epoch: 2, Replicas: []uint64{1, 2}})
	for i := range after {
		c.write(1, pg, before+i, fmt.Sprintf("v2-%d", i))
		c.write(1, pg, i, fmt.Sprintf("v2-%d", i)) // overwrite an old object
	}
	if r := c.do(1, ClientOp{PG: pg, Kind: OpDelete, RequestID: fsproto.RequestID{9}, Object: objN(100)}); r.Err != nil {
		t.Fatal(r.Err)
	}
	c.down[3] = false
	sentBefore := c.nodes[1].Stats().SyncObjectsSent
	c.view(View{PG: pg, Epoch: 3, Replicas: []uint64{1, 2, 3}, Backfilling: []uint64{3}})
	c.run(func() bool { return slices.Contains(c.caughtUp[3], CaughtUp{PG: pg, Epoch: 3}) })
	moved := c.nodes[1].Stats().SyncObjectsSent - sentBefore
	// Changed while away: after new objects, after overwrites, 1 delete;
	// and that delete again to node 2 (within its window; a tombstone
	// carries no data, so it is always sent). The rest of the window
	// before node 3's last seq, and of node 2's, is checked in place
	// (SyncSame), not moved.
	if want := uint64(2*after + 1 + 1); moved != want {
		t.Fatalf("backfill moved %d objects, want %d (of %d)", moved, want, before+after)
	}
	if kept := c.nodes[1].Stats().SyncSameKept; kept < window {
		t.Fatalf("%d objects kept in place, want at least the window %d", kept, window)
	}
	for _, p := range c.nodes[1].Progress() {
		if p.Replica != 3 {
			continue
		}
		if p.ObjectsDone != p.ObjectsTotal || p.ObjectsTotal < 2*after+1 || p.ObjectsTotal > 2*after+1+window ||
			p.BytesDone != p.BytesTotal || p.BytesTotal == 0 {
			t.Fatalf("node 3's progress %+v, want %d..%d objects all done", p, 2*after+1, 2*after+1+window)
		}
	}
	t.Logf("backfill moved %d objects (%d bytes in all syncs); progress %+v", moved, c.nodes[1].Stats().SyncBytesSent, c.nodes[1].Progress())

	// The view marks node 3 caught up; a write and a read still work.
	c.view(View{PG: pg, Epoch: 3, Replicas: []uint64{1, 2, 3}})
	c.write(1, pg, 7, "last")
	r := c.do(1, ClientOp{PG: pg, Kind: OpRead, Object: objN(7), Len: 64})
	if r.Err != nil || string(r.Data) != "last" || !r.EOF {
		t.Fatalf("read %+v", r)
	}
	if r := c.do(2, ClientOp{PG: pg, Kind: OpRead, Object: objN(7), Len: 64}); r.Err != ErrNotPrimary {
		t.Fatalf("read at a replica: %+v", r)
	}

	// A new epoch with nothing changed (as after a restart) moves no
	// data: each replica's window is kept in place but for the deleted
	// object, whose tombstone (no data) is sent again.
	before4 := c.nodes[1].Stats()
	c.view(View{PG: pg, Epoch: 4, Replicas: []uint64{1, 2, 3}})
	c.write(1, pg, 8, "after epoch 4")
	st := c.nodes[1].Stats()
	if moved, kept, bytes := st.SyncObjectsSent-before4.SyncObjectsSent, st.SyncSameKept-before4.SyncSameKept,
		st.SyncBytesSent-before4.SyncBytesSent; moved != 2 || kept != 2*(window-1) || bytes != 0 {
		t.Fatalf("an epoch change without changes moved %d objects (%d bytes) and kept %d, want 2 (0 bytes) and %d",
			moved, bytes, kept, 2*(window-1))
	}

	// Every replica holds the same objects.
	for i := range before + after {
		var want []byte
		for _, id := range []uint64{1, 2, 3} {
			p := make([]byte, 64)
			n, err := c.engines[id].Read(objN(i), 0, p)
			if err != nil && err != io.EOF && i != 100 {
				t.Fatalf("node %d object %d: %v", id, i, err)
			}
			if id == 1 {
				want = p[:n]
			} else if !bytes.Equal(p[:n], want) {
				t.Fatalf("object %d: node %d has %q, primary %q", i, id, p[:n], want)
			}
		}
	}
}

// TestEngineSyncSameDivergent: a replica holding an object at the
// primary's seq but with other data (a seq issued again by a cut-off
// primary) refuses the SyncSame and gets the object whole.
func TestEngineSyncSameDivergent(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newLiveCluster(t, 1, 2)
	const pg = 6
	c.view(View{PG: pg, Epoch: 1, Replicas: []uint64{1, 2}})
	r := c.write(1, pg, 0, "primary's")
	done := make(chan StoreResult, 1)
	c.stores[2].Submit(StoreOp{Kind: StoreInstall, PG: pg, Object: objN(0), Seq: r.Seq, Data: []byte("divergent")},
		func(r StoreResult) { done <- r })
	if res := <-done; res.Err != nil || res.Skipped {
		t.Fatalf("install on node 2: %+v", res)
	}
	c.view(View{PG: pg, Epoch: 2, Replicas: []uint64{1, 2}})
	c.write(1, pg, 1, "epoch 2")
	st := c.nodes[1].Stats()
	if st.SyncObjectsSent != 1 || st.SyncSameSent == 0 || st.SyncSameKept != 0 {
		t.Fatalf("stats %+v, want the divergent object moved once after a refused SyncSame", st)
	}
	p := make([]byte, 64)
	n, err := c.engines[2].Read(objN(0), 0, p)
	if (err != nil && err != io.EOF) || string(p[:n]) != "primary's" {
		t.Fatalf("node 2 holds %q (%v), want the primary's state", p[:n], err)
	}
}

// TestEngineRetryAppliedOnce: a retried request id is answered, not
// applied again, also by a new primary that learnt it as a replica.
func TestEngineRetryAppliedOnce(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newLiveCluster(t, 1, 2, 3)
	c.view(View{PG: 1, Epoch: 1, Replicas: []uint64{1, 2, 3}})
	rid := fsproto.RequestID{1}
	r1 := c.do(1, ClientOp{PG: 1, Kind: OpWrite, RequestID: rid, Object: objN(1), Data: []byte("a")})
	c.write(1, 1, 1, "b")
	r2 := c.do(1, ClientOp{PG: 1, Kind: OpWrite, RequestID: rid, Object: objN(1), Data: []byte("a")})
	if r1.Err != nil || r2.Err != nil || r1.Seq != r2.Seq {
		t.Fatalf("first %+v, retry %+v", r1, r2)
	}
	c.view(View{PG: 1, Epoch: 2, Replicas: []uint64{2, 3, 1}})
	r3 := c.do(2, ClientOp{PG: 1, Kind: OpWrite, RequestID: rid, Object: objN(1), Data: []byte("a")})
	if r3.Err != nil || r3.Seq != r1.Seq {
		t.Fatalf("retry at the new primary: %+v, first %+v", r3, r1)
	}
	r := c.do(2, ClientOp{PG: 1, Kind: OpRead, Object: objN(1), Len: 8})
	if string(r.Data) != "b" {
		t.Fatalf("object holds %q after the retries, want %q", r.Data, "b")
	}
	// The old primary refuses: it is a replica now.
	if r := c.do(1, ClientOp{PG: 1, Kind: OpWrite, RequestID: fsproto.RequestID{2}, Object: objN(1), Data: []byte("c")}); r.Err != ErrNotPrimary {
		t.Fatalf("write at the old primary: %+v", r)
	}
}

// TestEngineRetryAfterRestart: the only caught-up replica of a PG applies
// a truncate and a delete, whose acknowledgements never reach the client
// (the other replica is unreachable), and restarts (power cut: its core
// forgets everything, its engine recovers from the device); it stays
// primary of a new epoch alone. A write of the truncated object is
// acknowledged, then the client's retries of the truncate and the delete
// arrive: they are answered from the ids the engine kept beside the
// mutations, with the first application's seq, and not applied again (a
// second truncate would cut the acknowledged write). The ids also reach
// the other replica when it comes back and syncs.
func TestEngineRetryAfterRestart(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newLiveCluster(t, 1, 2)
	const pg = 4
	c.view(View{PG: pg, Epoch: 1, Replicas: []uint64{1, 2}})
	c.write(1, pg, 1, "0123456789")
	c.write(1, pg, 2, "doomed")
	c.down[2] = true
	trunc := ClientOp{PG: pg, Kind: OpTruncate, RequestID: fsproto.RequestID{'t'}, Object: objN(1), Size: 4}
	del := ClientOp{PG: pg, Kind: OpDelete, RequestID: fsproto.RequestID{'d'}, Object: objN(2)}
	for _, op := range []ClientOp{trunc, del} {
		c.token++
		op.Token = c.token
		c.step(1, op)
	}
	c.run(func() bool { return c.inflight == 0 })
	if len(c.replies) != 0 {
		t.Fatalf("answered without the other replica: %+v", c.replies)
	}
	seqTrunc := c.engines[1].PGSeq(pg) - 1 // issued in order: truncate, delete
	c.crash(1)
	c.view(View{PG: pg, Epoch: 2, Replicas: []uint64{1}})
	w := c.do(1, ClientOp{PG: pg, Kind: OpWrite, RequestID: fsproto.RequestID{'w'}, Object: objN(1), Off: 4, Data: []byte("ACKED")})
	if w.Err != nil {
		t.Fatal(w.Err)
	}
	max := c.engines[1].PGSeq(pg)
	if r := c.do(1, trunc); r.Err != nil || r.Seq != seqTrunc {
		t.Fatalf("retried truncate: %+v, want seq %d of its first application", r, seqTrunc)
	}
	if r := c.do(1, del); r.Err != nil || r.Seq != seqTrunc+1 {
		t.Fatalf("retried delete: %+v, want seq %d of its first application", r, seqTrunc+1)
	}
	if got := c.engines[1].PGSeq(pg); got != max {
		t.Fatalf("the retries were applied again: pg seq %d, was %d", got, max)
	}
	if r := c.do(1, ClientOp{PG: pg, Kind: OpRead, Object: objN(1), Len: 64}); string(r.Data) != "0123ACKED" {
		t.Fatalf("object 1 holds %q, want %q", r.Data, "0123ACKED")
	}
	if st := c.nodes[1].Stats(); st.StoredRetries != 2 {
		t.Fatalf("stats %+v: want the 2 retries answered by stored ids", st)
	}

	// Node 2 comes back and syncs: it ends with the primary's state and
	// ids, so it too answers the retries after a restart of its own.
	c.down[2] = false
	c.view(View{PG: pg, Epoch: 3, Replicas: []uint64{1, 2}, Backfilling: []uint64{2}})
	c.run(func() bool { return slices.Contains(c.caughtUp[2], CaughtUp{PG: pg, Epoch: 3}) })
	c.crash(2)
	c.view(View{PG: pg, Epoch: 4, Replicas: []uint64{2, 1}})
	if r := c.do(2, trunc); r.Err != nil || r.Seq != seqTrunc {
		t.Fatalf("retried truncate at node 2: %+v, want seq %d", r, seqTrunc)
	}
	if r := c.do(2, ClientOp{PG: pg, Kind: OpRead, Object: objN(1), Len: 64}); string(r.Data) != "0123ACKED" {
		t.Fatalf("object 1 holds %q at node 2, want %q", r.Data, "0123ACKED")
	}
}

// TestEngineRetryPastTableBound: a retry whose id the PG's in-memory table
// dropped (its FIFO bound, here 2) is still answered, from the ids the
// store keeps with the object, and not applied again.
func TestEngineRetryPastTableBound(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newLiveCluster(t, 1)
	n, err := NewNode(Config{ID: 1, Window: 16, RequestIDs: 2})
	if err != nil {
		t.Fatal(err)
	}
	c.nodes[1] = n
	const pg = 2
	c.view(View{PG: pg, Epoch: 1, Replicas: []uint64{1}})
	first := ClientOp{PG: pg, Kind: OpTruncate, RequestID: fsproto.RequestID{'f'}, Object: objN(1), Size: 3}
	c.write(1, pg, 1, "abcdef")
	r1 := c.do(1, first)
	c.write(1, pg, 1, "XYZ+more") // the truncate's id is still in the table
	for i := range 3 {
		c.write(1, pg, 10+i, "pushes the FIFO")
	}
	if _, ok := n.group(pg).rids.get(first.RequestID); ok {
		t.Fatal("the table still holds the truncate's id; the test needs it dropped")
	}
	seq := c.engines[1].PGSeq(pg)
	if r := c.do(1, first); r.Err != nil || r.Seq != r1.Seq {
		t.Fatalf("retry: %+v, want seq %d", r, r1.Seq)
	}
	if got := c.engines[1].PGSeq(pg); got != seq {
		t.Fatalf("the retry was applied again: pg seq %d, was %d", got, seq)
	}
	if r := c.do(1, ClientOp{PG: pg, Kind: OpRead, Object: objN(1), Len: 64}); string(r.Data) != "XYZ+more" {
		t.Fatalf("object holds %q", r.Data)
	}
	if st := n.Stats(); st.StoredRetries != 1 {
		t.Fatalf("stats %+v: want the retry answered by a stored id", st)
	}
}

// TestEngineHotObjectLoadsOnce: a hot object's stored ids are read once,
// not again each time the table's FIFO drops one of its old ids (which
// happens at nearly every mutation once the FIFO is full).
func TestEngineHotObjectLoadsOnce(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newLiveCluster(t, 1)
	n, err := NewNode(Config{ID: 1, Window: 16, RequestIDs: 2 * engine.KeptRequests})
	if err != nil {
		t.Fatal(err)
	}
	c.nodes[1] = n
	const pg = 2
	c.view(View{PG: pg, Epoch: 1, Replicas: []uint64{1}})
	for i := range 20 {
		c.write(1, pg, 50, fmt.Sprint("hot ", i))
	}
	if got := n.Stats().RIDLoads; got != 1 {
		t.Fatalf("20 writes of one object read its stored ids %d times, want 1", got)
	}
}

// TestEnginePartitionedPrimary: a primary cut off while a newer epoch
// forms never acknowledges a write or serves a read; once it hears of the
// newer epoch it fails them with ErrStaleEpoch.
func TestEnginePartitionedPrimary(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newLiveCluster(t, 1, 2, 3)
	c.view(View{PG: 1, Epoch: 1, Replicas: []uint64{1, 2, 3}})
	c.write(1, 1, 1, "old")
	c.write(1, 1, 2, "old2")

	c.down[1] = true // node 1 hears nothing and reaches nobody
	for _, id := range []uint64{2, 3} {
		c.step(id, ViewChange{View: View{PG: 1, Epoch: 2, Replicas: []uint64{2, 3}}})
	}
	c.write(2, 1, 1, "new")
	c.write(2, 1, 2, "new2")

	c.token++
	wtok := c.token
	c.step(1, ClientOp{Token: wtok, PG: 1, Kind: OpWrite, RequestID: fsproto.RequestID{7}, Object: objN(1), Data: []byte("lost")})
	c.token++
	rtok := c.token
	// Another object than the write's, so only the read check holds it.
	c.step(1, ClientOp{Token: rtok, PG: 1, Kind: OpRead, Object: objN(2), Len: 16})
	for range 20 { // retransmissions go nowhere
		for _, id := range []uint64{1, 2, 3} {
			c.step(id, Tick{})
		}
		c.run(func() bool { return len(c.msgs) == 0 && c.inflight == 0 })
	}
	if len(c.replies) != 0 {
		t.Fatalf("the cut-off primary answered %+v", c.replies)
	}
	c.down[1] = false
	c.run(func() bool { return len(c.replies) == 2 })
	if r := c.replies[wtok]; r.Err != ErrStaleEpoch {
		t.Fatalf("write at the deposed primary: %+v", r)
	}
	if r := c.replies[rtok]; r.Err != ErrStaleEpoch {
		t.Fatalf("read at the deposed primary: %+v", r)
	}
	r := c.do(2, ClientOp{PG: 1, Kind: OpRead, Object: objN(1), Len: 16})
	if string(r.Data) != "new" {
		t.Fatalf("new primary reads %q, want %q", r.Data, "new")
	}
}

// TestEngineStoreOps drives EngineStore directly: conditional applies,
// installs, tombstone seqs, changes, and the sync mark.
func TestEngineStoreOps(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newLiveCluster(t, 1)
	do := func(op StoreOp) StoreResult { t.Helper(); return c.storeDo(1, op) }
	a, b := objN(1), objN(2)
	do(StoreOp{Kind: StoreApply, PG: 3, Object: a, Mut: Mutation{Kind: MutWrite, Object: a}, Seq: 5, Data: []byte("five")})
	if r := do(StoreOp{Kind: StoreApply, PG: 3, Object: a, Mut: Mutation{Kind: MutWrite, Object: a}, Seq: 4, KeepIfAtLeast: 4, Data: []byte("old")}); !r.Skipped {
		t.Fatal("an older forward was applied over seq 5")
	}
	do(StoreOp{Kind: StoreApply, PG: 3, Object: b, Mut: Mutation{Kind: MutDelete, Object: b}, Seq: 7})
	if r := do(StoreOp{Kind: StoreApply, PG: 3, Object: b, Mut: Mutation{Kind: MutWrite, Object: b}, Seq: 6, KeepIfAtLeast: 6, Data: []byte("x")}); !r.Skipped {
		t.Fatal("a forward older than the delete resurrected the object")
	}
	// A rollback: state of seq 3 over a divergent seq 5 of an older epoch.
	if r := do(StoreOp{Kind: StoreInstall, PG: 3, Object: a, Seq: 3, Data: []byte("three"), KeepIfAtLeast: 6}); r.Skipped {
		t.Fatal("install skipped")
	}
	if r := do(StoreOp{Kind: StoreGet, PG: 3, Object: a}); r.Seq != 3 || string(r.Data) != "three" || r.NotFound {
		t.Fatalf("get after install: %+v", r)
	}
	if r := do(StoreOp{Kind: StoreGet, PG: 3, Object: b}); !r.NotFound {
		t.Fatalf("get of a deleted object: %+v", r)
	}
	r := do(StoreOp{Kind: StoreChanges, PG: 3})
	if want := []Entry{{Object: a, Seq: 3}, {Object: b, Seq: 7}}; !slices.Equal(r.Changes, want) || r.Sizes[0] != 5 {
		t.Fatalf("changes %+v sizes %v, want %+v", r.Changes, r.Sizes, want)
	}
	if r := do(StoreOp{Kind: StoreMaxSeq, PG: 3}); r.Seq != 7 || r.Marked {
		t.Fatalf("max seq %+v", r)
	}
	for _, m := range []struct{ set, want uint64 }{{10, 10}, {12, 10}, {8, 8}} {
		do(StoreOp{Kind: StoreSetMark, PG: 3, Seq: m.set})
		if r := do(StoreOp{Kind: StoreMaxSeq, PG: 3}); !r.Marked || r.Mark != m.want || r.Seq != 7 {
			t.Fatalf("after set mark %d: %+v, want mark %d", m.set, r, m.want)
		}
	}
	do(StoreOp{Kind: StoreClearMark, PG: 3})
	if r := do(StoreOp{Kind: StoreMaxSeq, PG: 3}); r.Marked {
		t.Fatalf("mark survived clear: %+v", r)
	}
	if r := do(StoreOp{Kind: StoreMaxSeq, PG: MarkPG - 1}); r.Seq != 0 || r.Marked {
		t.Fatalf("another pg: %+v", r)
	}

	// Request ids: an apply adds its own, the newest engine.KeptRequests
	// stay, a delete keeps them on the tombstone, an install replaces them
	// by the newest of the primary's.
	rids := func(obj engine.ObjectID) []RIDEntry { return do(StoreOp{Kind: StoreRequests, PG: 3, Object: obj}).RIDs }
	c2 := objN(3)
	var want []RIDEntry
	for i := range engine.KeptRequests + 2 {
		id := fsproto.RequestID{byte(i + 1)}
		do(StoreOp{Kind: StoreApply, PG: 3, Object: c2, Mut: Mutation{Kind: MutWrite, Object: c2}, Seq: uint64(20 + i), Data: []byte("x"), RequestID: id})
		want = append(want, RIDEntry{ID: id, Seq: uint64(20 + i)})
	}
	want = want[len(want)-engine.KeptRequests:]
	if got := rids(c2); !slices.Equal(got, want) {
		t.Fatalf("ids after applies: %+v, want %+v", got, want)
	}
	do(StoreOp{Kind: StoreApply, PG: 3, Object: c2, Mut: Mutation{Kind: MutDelete, Object: c2}, Seq: 30, RequestID: fsproto.RequestID{'D'}})
	want = append(want[1:], RIDEntry{ID: fsproto.RequestID{'D'}, Seq: 30})
	if r := do(StoreOp{Kind: StoreGet, PG: 3, Object: c2}); !r.NotFound || r.Seq != 30 || !slices.Equal(r.RIDs, want) {
		t.Fatalf("get of the deleted object: %+v, want seq 30 and ids %+v", r, want)
	}
	var primary []RIDEntry
	for i := range 6 {
		primary = append(primary, RIDEntry{ID: fsproto.RequestID{'p', byte(i)}, Seq: uint64(40 + i)})
	}
	do(StoreOp{Kind: StoreInstall, PG: 3, Object: c2, Seq: 45, Data: []byte("primary's"), RIDs: primary})
	if r := do(StoreOp{Kind: StoreGet, PG: 3, Object: c2}); r.Seq != 45 || string(r.Data) != "primary's" ||
		!slices.Equal(r.RIDs, primary[len(primary)-engine.KeptRequests:]) {
		t.Fatalf("get after install: %+v, want the primary's newest ids", r)
	}
	// A resent install of the state held writes nothing; one that differs
	// in anything is installed.
	version := func() uint64 {
		st, err := c.engines[1].Stat(c2)
		if err != nil {
			t.Fatal(err)
		}
		return st.Version
	}
	v := version()
	if r := do(StoreOp{Kind: StoreInstall, PG: 3, Object: c2, Seq: 45, Data: []byte("primary's"), RIDs: primary, KeepIfAtLeast: 50}); r.Skipped || version() != v {
		t.Fatalf("a resent install: %+v, version %d -> %d", r, v, version())
	}
	for _, op := range []StoreOp{
		{Seq: 45, Data: []byte("primary's"), RIDs: primary[:5]},
		{Seq: 45, Data: []byte("primarys'"), RIDs: primary},
		{Seq: 44, Data: []byte("primary's"), RIDs: primary},
	} {
		op.Kind, op.PG, op.Object, op.KeepIfAtLeast = StoreInstall, 3, c2, 50
		v := version()
		if r := do(op); r.Skipped || version() == v {
			t.Fatalf("install %+v differing from the state held wrote nothing: %+v", op, r)
		}
		do(StoreOp{Kind: StoreInstall, PG: 3, Object: c2, Seq: 45, Data: []byte("primary's"), RIDs: primary, KeepIfAtLeast: 50})
	}
	do(StoreOp{Kind: StoreInstall, PG: 3, Object: c2, Seq: 46, Deleted: true})
	if got := rids(c2); len(got) != 0 {
		t.Fatalf("an install without ids left %+v", got)
	}
}

// TestEngineStoreMutationsInOrder submits, without waiting, what a
// returning replica meets: a retransmitted install of an old state
// (KeepIfAtLeast = the epoch's first seq) and then the epoch's first
// forward of the same object. Whatever the goroutines do, the store must
// run them in that order, each whole: the forward's state survives. (A
// store that checked KeepIfAtLeast, then let the forward in, then wrote
// the install lost an acknowledged write, found by fsproto/cluster's
// TestBackfillUnderLoad.)
func TestEngineStoreMutationsInOrder(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newLiveCluster(t, 1)
	st := c.stores[1]
	const objects, epochStart = 200, 27
	results := make(chan StoreResult, 3*objects)
	submit := func(op StoreOp) { st.Submit(op, func(r StoreResult) { results <- r }) }
	wait := func(n int) {
		t.Helper()
		for range n {
			if r := <-results; r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	for i := range objects {
		o := objN(i)
		submit(StoreOp{Kind: StoreApply, PG: 3, Object: o, Mut: Mutation{Kind: MutWrite, Object: o}, Seq: 21, Data: []byte("old state")})
	}
	wait(objects)
	for i := range objects {
		o := objN(i)
		submit(StoreOp{Kind: StoreInstall, PG: 3, Object: o, Seq: 21, KeepIfAtLeast: epochStart, Data: []byte("old state")})
		submit(StoreOp{Kind: StoreApply, PG: 3, Object: o, Mut: Mutation{Kind: MutWrite, Object: o}, Seq: epochStart, KeepIfAtLeast: epochStart, Data: []byte("new write")})
		submit(StoreOp{Kind: StoreApply, PG: 3, Object: o, Mut: Mutation{Kind: MutWrite, Object: o}, Seq: epochStart, KeepIfAtLeast: epochStart, Data: []byte("new write")})
	}
	wait(3 * objects)
	for i := range objects {
		ch := make(chan StoreResult, 1)
		st.Submit(StoreOp{Kind: StoreGet, PG: 3, Object: objN(i)}, func(r StoreResult) { ch <- r })
		if r := <-ch; r.Err != nil || r.Seq != epochStart || string(r.Data) != "new write" {
			t.Fatalf("object %d: seq %d data %q (%v), want the forward's seq %d %q", i, r.Seq, r.Data, r.Err, epochStart, "new write")
		}
	}
}

// TestEngineAbsentTombstoneKeepsEpochSeqs replays the history behind
// TestLoseTwoOfFive's "no such chunk" (internal/clustertest): a primary
// that never held an object reconciles replicas holding an unacknowledged
// write of it, sending the absent state (a tombstone at seq 0). The
// replicas' tombstone must stay below the epoch's first seq: the engine
// stamped a PGSeq 0 mutation with the PG's next seq, which was the
// epoch's first seq itself, so the epoch's first forward of the object
// (the client's retry, acknowledged) was skipped as already held, and once
// the primary was lost the replicas' tombstone won.
func TestEngineAbsentTombstoneKeepsEpochSeqs(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newLiveCluster(t, 1, 2, 3)
	const pg = 9
	// Node 3 joins as a backfilling replica and catches up (nothing to copy).
	c.view(View{PG: pg, Epoch: 1, Replicas: []uint64{1, 2, 3}, Backfilling: []uint64{3}})
	c.run(func() bool { return len(c.caughtUp[3]) > 0 })

	// A write reaches nodes 1 and 2 but not node 3: never acknowledged.
	var rid fsproto.RequestID
	copy(rid[:], "the write")
	op := ClientOp{PG: pg, Kind: OpWrite, RequestID: rid, Object: objN(0), Data: []byte("acknowledged")}
	c.down[3] = true
	c.token++
	first := c.token
	op.Token = first
	c.step(1, op)
	c.run(func() bool { return len(c.msgs) == 0 && c.inflight == 0 })
	c.down[3] = false
	for _, id := range []uint64{1, 2} {
		if st, err := c.engines[id].Stat(objN(0)); err != nil || st.PGSeq != 1 {
			t.Fatalf("node %d: object at seq %d (%v), want the unacknowledged write at seq 1", id, st.PGSeq, err)
		}
	}

	// Node 3, caught up, leads epoch 2 (the map's CaughtUp ranks it
	// first): its state of the object is "absent", which wins.
	c.view(View{PG: pg, Epoch: 2, Replicas: []uint64{3, 1, 2}})
	c.run(func() bool { _, ok := c.replies[first]; return ok })
	if r := c.replies[first]; r.Err != ErrStaleEpoch {
		t.Fatalf("the write at the deposed primary: %+v, want ErrStaleEpoch", r)
	}
	op.Token = 0
	if r := c.do(3, op); r.Err != nil {
		t.Fatalf("the retried write at the new primary: %+v", r)
	}
	for _, id := range []uint64{1, 2, 3} {
		p := make([]byte, 64)
		n, err := c.engines[id].Read(objN(0), 0, p)
		if (err != nil && err != io.EOF) || string(p[:n]) != "acknowledged" {
			st, _ := c.engines[id].Stat(objN(0))
			t.Errorf("node %d holds %q (%v, seq %d, deleted %v) after the write was acknowledged", id, p[:n], err, st.PGSeq, st.Deleted)
		}
	}

	// What node 1 holds survives its restart (the tombstone shared the
	// seq of the state it replaced).
	c.crash(1)
	if st, err := c.engines[1].Stat(objN(0)); err != nil || st.PGSeq != 2 || st.Deleted {
		t.Fatalf("node 1 after a restart: object at seq %d, deleted %v (%v); want the write at seq 2", st.PGSeq, st.Deleted, err)
	}

	// Node 3 is lost; a replica leads and serves the write.
	c.down[3] = true
	for _, id := range []uint64{1, 2} {
		c.step(id, ViewChange{View: View{PG: pg, Epoch: 3, Replicas: []uint64{1, 2}}})
	}
	if r := c.do(1, ClientOp{PG: pg, Kind: OpRead, Object: objN(0), Len: 64}); r.Err != nil || r.NotFound || string(r.Data) != "acknowledged" {
		t.Fatalf("read at the next primary: %q, not found %v, err %v; want the acknowledged write", r.Data, r.NotFound, r.Err)
	}
}

// TestEngineStoreAbsentInstall: an install of the absent state (a
// tombstone at seq 0) keeps the seq of the state it replaces, durably,
// leaves a never-written object absent, and does not hold back the
// epoch's first forward of the object.
func TestEngineStoreAbsentInstall(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newLiveCluster(t, 1)
	do := func(op StoreOp) StoreResult { t.Helper(); return c.storeDo(1, op) }
	const pg = 4
	a, b := objN(1), objN(2)
	do(StoreOp{Kind: StoreApply, PG: pg, Object: a, Mut: Mutation{Kind: MutWrite, Object: a}, Seq: 1, Data: []byte("unacknowledged")})
	absent := func(obj engine.ObjectID) StoreOp {
		return StoreOp{Kind: StoreInstall, PG: pg, Object: obj, Deleted: true, KeepIfAtLeast: 2}
	}
	if r := do(absent(a)); r.Skipped || r.Seq != 1 {
		t.Fatalf("install of the absent state: %+v", r)
	}
	st, err := c.engines[1].Stat(a)
	if !errors.Is(err, engine.ErrNotFound) || !st.Deleted || st.PGSeq != 1 {
		t.Fatalf("after the install: seq %d, deleted %v (%v); want a tombstone at seq 1", st.PGSeq, st.Deleted, err)
	}
	if r := do(absent(a)); r.Skipped {
		t.Fatalf("resent install: %+v", r)
	}
	if st2, _ := c.engines[1].Stat(a); st2.Version != st.Version {
		t.Fatalf("a resent install wrote again: version %d -> %d", st.Version, st2.Version)
	}
	if r := do(absent(b)); r.Skipped {
		t.Fatalf("install of the absent state over nothing: %+v", r)
	}
	if st, err := c.engines[1].Stat(b); !errors.Is(err, engine.ErrNotFound) || st.Version != 0 {
		t.Fatalf("a never-written object: version %d (%v), want none", st.Version, err)
	}
	if r := do(StoreOp{Kind: StoreMaxSeq, PG: pg}); r.Seq != 1 {
		t.Fatalf("pg max seq %d after the installs, want 1", r.Seq)
	}
	c.crash(1)
	if st, err := c.engines[1].Stat(a); !errors.Is(err, engine.ErrNotFound) || !st.Deleted || st.PGSeq != 1 {
		t.Fatalf("after a restart: seq %d, deleted %v (%v); want a tombstone at seq 1", st.PGSeq, st.Deleted, err)
	}
	if r := do(StoreOp{Kind: StoreApply, PG: pg, Object: a, Mut: Mutation{Kind: MutWrite, Object: a}, Seq: 2, KeepIfAtLeast: 2, Data: []byte("epoch's first")}); r.Skipped {
		t.Fatal("the epoch's first forward was skipped")
	}
	if r := do(StoreOp{Kind: StoreRead, PG: pg, Object: a, Len: 64}); string(r.Data) != "epoch's first" {
		t.Fatalf("read %q (not found %v)", r.Data, r.NotFound)
	}
}

// TestEngineRetireThenReturn: a node that left a PG deletes its copy
// (Retire), whole, cut short, or cut short by a power cut, while the PG
// goes on without it; when it becomes a replica again, its backfill gives
// it every object the primary holds, including those its retire deleted
// below its highest seq (which a sync from that seq minus the window would
// not send: the mark at 0 makes it start from 0).
func TestEngineRetireThenReturn(t *testing.T) {
	testutil.CheckLeaks(t)
	tests := []struct {
		name      string
		stopAfter int // objects deleted before stop says stop; -1: never
		crash     bool
	}{
		{"whole", -1, false},
		{"cut short", 50, false},
		{"cut short by a power cut", 50, true},
		{"stopped before its first delete", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newLiveCluster(t, 1, 2, 3)
			const pg, objects = 5, 120
			c.view(View{PG: pg, Epoch: 1, Replicas: []uint64{1, 2, 3}})
			for i := range objects {
				c.write(1, pg, i, fmt.Sprintf("v1-%d", i))
			}
			maxBefore := c.engines[3].PGSeq(pg)

			// Node 3 leaves the PG and retires its copy.
			c.view(View{PG: pg, Epoch: 2, Replicas: []uint64{1, 2}})
			c.run(func() bool { return len(c.msgs) == 0 && c.inflight == 0 })
			asked := 0 // once before anything is deleted, then before each object
			st, err := c.stores[3].Retire(context.Background(), pg, func() bool {
				asked++
				return tt.stopAfter >= 0 && asked > 1+tt.stopAfter
			})
			switch {
			case tt.stopAfter < 0 && (err != nil || st.Objects != objects || st.Bytes == 0):
				t.Fatalf("retire: %+v, %v; want %d objects deleted", st, err, objects)
			case tt.stopAfter >= 0 && (!errors.Is(err, ErrRetireStopped) || st.Objects != tt.stopAfter):
				t.Fatalf("retire told to stop after %d objects: %+v, %v", tt.stopAfter, st, err)
			}
			live := 0
			for i := range objects {
				if _, err := c.engines[3].Stat(objN(i)); err == nil {
					live++
				}
			}
			if live != objects-st.Objects {
				t.Fatalf("node 3 holds %d live objects after retiring %d of %d", live, st.Objects, objects)
			}
			if got := c.engines[3].PGSeq(pg); got != maxBefore {
				t.Fatalf("node 3's highest seq went from %d to %d: the tombstones must keep the seqs they replace", maxBefore, got)
			}
			if mark, marked, err := c.stores[3].mark(pg); err != nil || !marked || mark != 0 {
				t.Fatalf("node 3's sync mark after retire: %d, %v (%v); want 0", mark, marked, err)
			}
			// A whole retire forgets the copy's tombstones but the one
			// that keeps the highest seq.
			if ch, err := c.engines[3].Changes(pg, 0, 0); err != nil || (tt.stopAfter < 0 && len(ch) != 1) {
				t.Fatalf("node 3 lists %d objects of the retired pg (%v)", len(ch), err)
			}
			if tt.crash {
				c.crash(3)
			}

			// The PG goes on without node 3: overwrites, a delete, new
			// objects.
			for i := range 10 {
				c.write(1, pg, i*7, fmt.Sprintf("v2-%d", i))
				c.write(1, pg, objects+i, fmt.Sprintf("new-%d", i))
			}
			if r := c.do(1, ClientOp{PG: pg, Kind: OpDelete, RequestID: fsproto.RequestID{7}, Object: objN(3)}); r.Err != nil {
				t.Fatal(r.Err)
			}

			// Node 3 comes back, backfilling.
			c.view(View{PG: pg, Epoch: 3, Replicas: []uint64{1, 2, 3}, Backfilling: []uint64{3}})
			c.run(func() bool { return slices.Contains(c.caughtUp[3], CaughtUp{PG: pg, Epoch: 3}) })
			for i := range objects + 10 {
				want, wantErr := readAll(c.engines[1], objN(i))
				got, gotErr := readAll(c.engines[3], objN(i))
				if !bytes.Equal(got, want) || errors.Is(gotErr, engine.ErrNotFound) != errors.Is(wantErr, engine.ErrNotFound) {
					t.Fatalf("object %d: node 3 holds %q (%v), the primary %q (%v)", i, got, gotErr, want, wantErr)
				}
			}
			if _, marked, err := c.stores[3].mark(pg); err != nil || marked {
				t.Errorf("node 3's sync mark still stands after its backfill (%v)", err)
			}
		})
	}
}

// readAll reads object obj whole: its data, or the engine's error
// (ErrNotFound for a deleted or absent object).
func readAll(e *engine.Engine, obj engine.ObjectID) ([]byte, error) {
	st, err := e.Stat(obj)
	if err != nil {
		return nil, err
	}
	p := make([]byte, st.Size)
	n, err := e.Read(obj, 0, p)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return p[:n], err
}

// TestEngineForgetTombstones: the nodes forget the tombstones of deletes
// of an older epoch once they are old enough, raising their floors; a
// replica that missed deletes whose tombstones its peers forgot comes
// back, and its sync lists every object instead of the changes since its
// max seq, so the objects it still holds live are deleted there too.
func TestEngineForgetTombstones(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newForgettingCluster(t, 5, 1, 2, 3)
	const pg, objects = 5, 100
	del := func(i int) {
		t.Helper()
		if r := c.do(1, ClientOp{PG: pg, Kind: OpDelete, RequestID: fsproto.RequestID{byte(i), 0xde}, Object: objN(i)}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	forgotten := func(id uint64, i int) bool {
		st, err := c.engines[id].Stat(objN(i))
		return errors.Is(err, engine.ErrNotFound) && st.Version == 0
	}
	c.view(View{PG: pg, Epoch: 1, Replicas: []uint64{1, 2, 3}})
	for i := range objects {
		c.write(1, pg, i, fmt.Sprintf("v1-%d", i))
	}
	for i := 0; i < 40; i++ {
		del(i)
	}
	for i := range 40 { // new seqs, so that the deletes fall 2*Window behind
		c.write(1, pg, objects+i, "new")
	}
	// Not before they are ForgetTicks old, then all but those within
	// 2*Window seqs of the newest (which a sync of an up-to-date
	// replica may list) go, on every node.
	c.ticks(c.forgetTicks / 2)
	for _, id := range []uint64{1, 2, 3} {
		if forgotten(id, 0) {
			t.Fatalf("node %d forgot a tombstone younger than ForgetTicks", id)
		}
	}
	c.ticks(3 * c.forgetTicks)
	for _, id := range []uint64{1, 2, 3} {
		if !forgotten(id, 0) || !forgotten(id, 39) {
			t.Fatalf("node %d kept old tombstones", id)
		}
		if r := c.do(1, ClientOp{PG: pg, Kind: OpRead, Object: objN(0), Len: 4}); r.Err != nil || !r.NotFound {
			t.Fatalf("read of a forgotten object: %+v", r)
		}
		floor, err := c.stores[id].floor(pg)
		if err != nil || floor == 0 || floor >= c.engines[id].PGSeq(pg) || c.engines[id].ForgetFloor(pg) != floor {
			t.Fatalf("node %d: floor %d (%v), engine's %d, max seq %d", id, floor, err, c.engines[id].ForgetFloor(pg), c.engines[id].PGSeq(pg))
		}
	}
	// A restart gives the engine its floor back.
	c.run(func() bool { return len(c.msgs) == 0 && c.inflight == 0 })
	floor := c.engines[2].ForgetFloor(pg)
	c.stop(2)
	c.start(2)
	if got := c.engines[2].ForgetFloor(pg); got != floor {
		t.Fatalf("node 2's floor after a restart: %d, want %d", got, floor)
	}
	c.view(View{PG: pg, Epoch: 2, Replicas: []uint64{1, 2, 3}})
	c.run(func() bool { return len(c.msgs) == 0 && c.inflight == 0 })
	if got := c.nodes[1].Stats().TombstonesForgotten; got == 0 {
		t.Fatal("the primary counts no forgotten tombstone")
	}

	// Node 3 leaves; the PG deletes objects it holds, in an epoch that
	// ends, and the others forget those tombstones.
	c.view(View{PG: pg, Epoch: 3, Replicas: []uint64{1, 2}})
	c.run(func() bool { return len(c.msgs) == 0 && c.inflight == 0 })
	for i := 40; i < 70; i++ {
		del(i)
	}
	for i := range 40 {
		c.write(1, pg, objects+40+i, "new")
	}
	c.view(View{PG: pg, Epoch: 4, Replicas: []uint64{1, 2}})
	c.run(func() bool { return len(c.msgs) == 0 && c.inflight == 0 })
	c.ticks(3 * c.forgetTicks)
	if !forgotten(1, 45) || !forgotten(2, 45) {
		t.Fatal("nodes 1 and 2 kept the tombstones of epoch 3")
	}
	if _, err := c.engines[3].Stat(objN(45)); err != nil {
		t.Fatalf("node 3 lost object 45 while away: %v", err)
	}

	// Node 3 comes back: a sync from its max seq would list none of
	// the forgotten deletes.
	before := c.nodes[1].Stats()
	c.view(View{PG: pg, Epoch: 5, Replicas: []uint64{1, 2, 3}, Backfilling: []uint64{3}})
	c.run(func() bool { return slices.Contains(c.caughtUp[3], CaughtUp{PG: pg, Epoch: 5}) })
	after := c.nodes[1].Stats()
	if after.FullSyncs == before.FullSyncs {
		t.Fatal("the sync of node 3 started above the primary's floor")
	}
	// Listed from 0, it still leaves alone what both sides hold at one
	// seq at or below the base it would have had: it sends whole the 30
	// objects node 3 holds and the PG deleted and the 40 it lacks, and
	// checks in place only the objects of the last seqs (without that,
	// 86 of them: every object both sides hold).
	whole, same := after.SyncObjectsSent-before.SyncObjectsSent, after.SyncSameSent-before.SyncSameSent
	t.Logf("the full sync sent %d objects whole and checked %d in place", whole, same)
	if whole > 30+40+16 || same > 2*16 {
		t.Fatalf("the full sync sent %d objects whole and checked %d in place, want at most %d and %d", whole, same, 30+40+16, 2*16)
	}
	for i := range objects + 80 {
		want, wantErr := readAll(c.engines[1], objN(i))
		got, gotErr := readAll(c.engines[3], objN(i))
		if !bytes.Equal(got, want) || errors.Is(gotErr, engine.ErrNotFound) != errors.Is(wantErr, engine.ErrNotFound) {
			t.Fatalf("object %d: node 3 holds %q (%v), the primary %q (%v)", i, got, gotErr, want, wantErr)
		}
	}
}

// TestEngineStoreForget: after StoreForget the floor is durable and
// reported, a forgotten object reads as deleted at the floor, and stale
// mutations its tombstone would have made skip are skipped still, also
// after a restart; a fresh one applies.
func TestEngineStoreForget(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newLiveCluster(t, 1)
	do := func(op StoreOp) StoreResult { t.Helper(); return c.storeDo(1, op) }
	const pg = 3
	x, y := objN(1), objN(2)
	do(StoreOp{Kind: StoreApply, PG: pg, Object: x, Mut: Mutation{Kind: MutWrite, Object: x}, Seq: 5, Data: []byte("five")})
	do(StoreOp{Kind: StoreApply, PG: pg, Object: x, Mut: Mutation{Kind: MutDelete, Object: x}, Seq: 8})
	do(StoreOp{Kind: StoreApply, PG: pg, Object: y, Mut: Mutation{Kind: MutWrite, Object: y}, Seq: 9, Data: []byte("nine")})
	if r := do(StoreOp{Kind: StoreForget, PG: pg, Since: 0, Seq: 8}); r.Forgotten != 1 {
		t.Fatalf("forgot %d tombstones, want 1", r.Forgotten)
	}
	for round := range 2 {
		if r := do(StoreOp{Kind: StoreMaxSeq, PG: pg}); r.Seq != 9 || r.Floor != 8 {
			t.Fatalf("round %d: max seq %d, floor %d; want 9 and 8", round, r.Seq, r.Floor)
		}
		if r := do(StoreOp{Kind: StoreGet, PG: pg, Object: x}); !r.NotFound || r.Seq != 8 {
			t.Fatalf("round %d: get of the forgotten object: %+v", round, r)
		}
		if r := do(StoreOp{Kind: StoreApply, PG: pg, Object: x, Mut: Mutation{Kind: MutWrite, Object: x}, Seq: 6, KeepIfAtLeast: 6, Data: []byte("six")}); !r.Skipped {
			t.Fatalf("round %d: a stale forward older than the forgotten delete applied", round)
		}
		if r := do(StoreOp{Kind: StoreInstall, PG: pg, Object: x, Seq: 5, Data: []byte("five"), KeepIfAtLeast: 7}); !r.Skipped {
			t.Fatalf("round %d: a stale install older than the forgotten delete applied", round)
		}
		// The floor survives a power cut after a checkpoint that left
		// the tombstone out: the store gives it back to the engine when
		// it opens, and it alone makes the stale mutations skip.
		if err := c.engines[1].Checkpoint(); err != nil {
			t.Fatal(err)
		}
		c.crash(1)
		if st, err := c.engines[1].Stat(x); !errors.Is(err, engine.ErrNotFound) || st.Version != 0 {
			t.Fatalf("the forgotten tombstone is back after the checkpoint: %+v, %v", st, err)
		}
	}
	if r := do(StoreOp{Kind: StoreApply, PG: pg, Object: x, Mut: Mutation{Kind: MutWrite, Object: x}, Seq: 10, KeepIfAtLeast: 10, Data: []byte("ten")}); r.Skipped {
		t.Fatal("a fresh forward was skipped")
	}
	if got, err := readAll(c.engines[1], x); err != nil || string(got) != "ten" {
		t.Fatalf("object reads %q, %v", got, err)
	}
}
