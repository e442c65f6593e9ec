package cluster

import (
	"sync"
	"time"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/replication"
	"github.com/weftfs/weft/net"
)

// Reads beside the loop. A chunk read that the loop would serve at once
// on its PG's read lease is served from the connection's reader instead:
// submitted to the store there, answered from the engine's reactor. It
// skips two hand-offs (reader to loop, reactor to loop), which on a busy
// node are two wake-ups of the loop's goroutine per read. The rules that
// keep such a read linearizable are in package replication's doc,
// "Reads beside the core"; readGates keeps them:
//   - the lease is what the core last told Config.OnLease, recorded
//     under the PG's gate lock inside Step, so a step that drops it is
//     ordered after every read submitted under it;
//   - an object is refused from the moment the loop takes a client
//     mutation of it (before it steps the core with it) until the core's
//     Reply to that mutation;
//   - a read checks both and submits under the same lock.
// Anything else (no lease, a lease with less than half left, a mutation
// of the object in progress, a read the core would refuse) goes to the
// loop as before.
//
// Unlike a request started through the loop (startOp), a read beside it
// is not answered early when its connection ends: the connection's
// teardown waits for the engine's read, which only the device bounds,
// where the loop may hold an operation for as long as its PG waits for
// replicas.

// readGates holds every PG's gate. Gates are made by the loop (OnLease
// and mutation marks run there) and never removed: a node holds a
// bounded set of PGs.
type readGates struct {
	// margin is ReadLease/2: reads go beside the loop only while more than
	// that is left of the lease (see renewDue in package replication).
	margin time.Duration
	m      sync.Map // clustermap.PGID as uint32 -> *readGate
}

// readGate is one PG's permission to read beside the loop.
type readGate struct {
	mu    sync.Mutex
	epoch uint64        // the epoch of the lease
	until time.Duration // reads beside the loop until then (monotonicNow); 0: none
	// writing counts the client mutations of each object that the loop
	// took and the core has not answered yet.
	writing map[engine.ObjectID]int32
}

func (gs *readGates) gate(pg uint32) *readGate {
	if g, ok := gs.m.Load(pg); ok {
		return g.(*readGate)
	}
	g, _ := gs.m.LoadOrStore(pg, &readGate{writing: map[engine.ObjectID]int32{}})
	return g.(*readGate)
}

// onLease is the core's Config.OnLease: it runs on the loop, inside Step.
func (gs *readGates) onLease(pg uint32, epoch uint64, until time.Duration) {
	g := gs.gate(pg)
	g.mu.Lock()
	g.epoch, g.until = epoch, 0
	if until > gs.margin {
		g.until = until - gs.margin
	}
	g.mu.Unlock()
}

// writing counts a client mutation of obj in (d = 1, before the core
// takes it) or out (d = -1, at the core's Reply). Loop only.
func (gs *readGates) writing(pg uint32, obj engine.ObjectID, d int32) {
	g := gs.gate(pg)
	g.mu.Lock()
	if n := g.writing[obj] + d; n > 0 {
		g.writing[obj] = n
	} else {
		delete(g.writing, obj)
	}
	g.mu.Unlock()
}

// readBeside serves op, a routed chunk read at epoch, beside the loop if
// the gate lets it, and reports whether it did; the answer then comes
// from the store's completion, on the engine's reactor.
func (s *DataServer) readBeside(op replication.ClientOp, epoch uint64, w *net.ResponseWriter, chunk fsproto.ChunkID) bool {
	if s.gates == nil || op.Len <= 0 || op.Len > replication.MaxDataBytes {
		return false // the core answers what it would refuse
	}
	v, ok := s.gates.m.Load(op.PG)
	if !ok {
		return false
	}
	g := v.(*readGate)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.epoch != epoch || g.until == 0 || monotonicNow() >= g.until || g.writing[op.Object] > 0 {
		return false
	}
	s.readsBeside.Add(1)
	s.store.Submit(replication.StoreOp{Kind: replication.StoreRead, PG: op.PG, Object: op.Object, Off: op.Off, Len: op.Len},
		func(r replication.StoreResult) { answerRead(w, replication.ReadReply(0, r), chunk) })
	return true
}
