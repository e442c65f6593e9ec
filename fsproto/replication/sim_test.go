package replication

import (
	"bytes"
	"container/heap"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/clustermap"
)

// The deterministic simulation: the whole cluster in one goroutine over a
// simulated network, simulated stores and a simulated clock, every choice
// drawn from one seed. Replay a failure with -sim.seed=N; run more seeds
// with -sim.seeds=N or WEFT_SIM_SEEDS=N.
//
// Odd seeds run the depose scenario (see deposeTarget): the map notices a
// silent node within a few ticks, one PG takes most of the traffic, one
// client only reads, and that PG's primary is cut off from every node,
// the manager and the writing clients, but not from the reading one,
// which keeps routing to it by the map it cached. The other replicas move
// to a new view whose primary takes writes while the reader still reads
// through the old one: a deposed primary that serves a read it may no
// longer serve fails the porcupine check. Even seeds run as before the
// scenario existed.
//
// Seeds 2 and 3 mod 4 serve reads on read leases (Config.ReadLease 30
// ticks, 20 on even nodes in seeds 6 and 7 mod 8; each node's clock runs
// at its own rate, see simNode.start), far longer than the depose
// scenario takes to move a PG to a new primary, so a new primary that did
// not wait for its grants would serve writes while the deposed one still
// reads on its lease; seeds 0 and 1 mod 4 read after a ReadCheck round
// every time.

var (
	flagSimSeed  = flag.Int64("sim.seed", 0, "run the simulation with this one seed")
	flagSimSeeds = flag.Int("sim.seeds", 0, "number of simulation seeds (default 100 with -short, 300 without)")
	flagSimLog   = flag.Bool("sim.log", false, "log every simulation event")
	flagSimFrom  = flag.Int64("sim.from", 1, "first seed of a -sim.seeds run")
	flagSimAll   = flag.Bool("sim.all", false, "run every seed even after one failed, and list the failing ones")
)

func simSeeds() []int64 {
	if *flagSimSeed != 0 {
		return []int64{*flagSimSeed}
	}
	n := *flagSimSeeds
	if v, err := strconv.Atoi(os.Getenv("WEFT_SIM_SEEDS")); err == nil && n == 0 {
		n = v
	}
	if n == 0 {
		n = 300
		if testing.Short() {
			n = 100
		}
	}
	seeds := make([]int64, n)
	for i := range seeds {
		seeds[i] = *flagSimFrom + int64(i)
	}
	return seeds
}

// simCounts is the fault mix and what happened, summed over seeds.
type simCounts struct {
	seeds, acked, reads, views, crashes, partitions, drops, dups, delayed, torn, readErrs int
	// Map commands applied: SetNodeState Down and Up, NodeRestarted, CaughtUp.
	mapDown, mapUp, mapRestarted, mapCaughtUp int
	mapHeld                                   int // Down commands held back (lastCaughtUp), counted per tick
	syncBytes, syncObjs, syncSame, syncKept   uint64
	ridLoads, retriesAnswered, storedRetries  uint64
	// Depose scenario: primaries cut off, and new primaries crashed and
	// restarted as the only caught-up replica (see deposeTarget).
	deposes, successorCrashes int
	leaseReads                uint64
	forgotten, fullSyncs      int // tombstones forgotten; syncs from seq 0 because of a floor
}

// addStats counts a core's sync traffic and request id work (before a
// restart replaces it).
func (c *simCounts) addStats(st Stats) {
	c.syncBytes += st.SyncBytesSent
	c.syncObjs += st.SyncObjectsSent
	c.syncSame += st.SyncSameSent
	c.syncKept += st.SyncSameKept
	c.ridLoads += st.RIDLoads
	c.retriesAnswered += st.RetriesAnswered
	c.storedRetries += st.StoredRetries
	c.leaseReads += st.LeaseReads
	c.fullSyncs += int(st.FullSyncs)
}

func (c *simCounts) add(o simCounts) {
	c.seeds += o.seeds
	c.acked += o.acked
	c.reads += o.reads
	c.views += o.views
	c.crashes += o.crashes
	c.partitions += o.partitions
	c.drops += o.drops
	c.dups += o.dups
	c.delayed += o.delayed
	c.torn += o.torn
	c.readErrs += o.readErrs
	c.syncBytes += o.syncBytes
	c.mapDown += o.mapDown
	c.mapUp += o.mapUp
	c.mapRestarted += o.mapRestarted
	c.mapCaughtUp += o.mapCaughtUp
	c.mapHeld += o.mapHeld
	c.syncObjs += o.syncObjs
	c.syncSame += o.syncSame
	c.syncKept += o.syncKept
	c.ridLoads += o.ridLoads
	c.retriesAnswered += o.retriesAnswered
	c.storedRetries += o.storedRetries
	c.deposes += o.deposes
	c.successorCrashes += o.successorCrashes
	c.leaseReads += o.leaseReads
	c.forgotten += o.forgotten
	c.fullSyncs += o.fullSyncs
}

func TestSim(t *testing.T) {
	var total simCounts
	var failed []int64
	for _, seed := range simSeeds() {
		s := newSim(t, seed)
		s.run()
		total.add(s.counts)
		if s.fail != "" {
			failed = append(failed, seed)
		}
		if t.Failed() && !*flagSimAll {
			return
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d seeds failed: %v", len(failed), failed)
	}
	t.Logf("%d seeds: %d mutations acknowledged, %d reads, %d view changes, %d crashes (%d with unflushed writes lost), "+
		"%d partitions, %d messages dropped, %d duplicated, %d delayed past others, %d read errors; "+
		"sync: %d objects moved (%d bytes), %d checked in place (SyncSame), %d of them kept; "+
		"map: %d nodes marked down, %d up, %d restarts recorded, %d caught up, %d tick-long holds of a down (last caught-up replica); "+
		"request ids: %d retries answered, not applied again (%d by ids read back from the store), %d objects' stored ids read; "+
		"depose scenario: %d primaries cut off from their PG, %d of their successors crashed as the only caught-up replica; "+
		"%d reads served on a lease; %d tombstones forgotten, %d syncs listed every object because of a floor",
		total.seeds, total.acked, total.reads, total.views, total.crashes, total.torn, total.partitions,
		total.drops, total.dups, total.delayed, total.readErrs, total.syncObjs, total.syncBytes, total.syncSame, total.syncKept,
		total.mapDown, total.mapUp, total.mapRestarted, total.mapCaughtUp, total.mapHeld,
		total.retriesAnswered, total.storedRetries, total.ridLoads, total.deposes, total.successorCrashes, total.leaseReads,
		total.forgotten, total.fullSyncs)
	// Over a few seeds, a seed may draw no depose (none starts while its
	// PG is busy) and the lease seeds may be missing.
	if total.acked == 0 || total.views == 0 || total.crashes == 0 || total.seeds >= 20 && (total.deposes == 0 || total.leaseReads == 0 || total.forgotten == 0 || total.fullSyncs == 0) {
		t.Errorf("the simulation exercised too little: %+v", total)
	}
}

const (
	simNodes     = 5
	simPGs       = 3
	simObjs      = 3 // per PG
	simClients   = 4
	simTick      = 10 // time units between ticks
	simFaultEnd  = 2000
	simClientEnd = 3000
	simDeadline  = 30000
	simDownAfter = 6 // ticks without a heartbeat
	// simDownAfterDepose: the depose scenario's manager notices silence
	// sooner, so a new primary can serve long before a client's timeout
	// (and a lease) runs out; two heartbeats in a row must go missing.
	simDownAfterDepose = 3
	simClientTimeout   = 120 // a client resends (to the map's primary) after this long
	// simClientTimeoutDepose: in the depose scenario clients give up on a
	// silent primary sooner, so writes reach the new primary while the
	// reading client still reads through the deposed one.
	simClientTimeoutDepose = 60
	simLease               = 30 * simTick
	oracleID               = 1000
	clientBase             = 2000
)

type simEvent struct {
	at  int64
	seq uint64
	fn  func()
}

type eventQueue []*simEvent

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*simEvent)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type sim struct {
	t      testing.TB
	seed   int64
	rng    *rand.Rand
	now    int64
	evseq  uint64
	q      eventQueue
	nodes  []*simNode
	or     *oracle
	cls    []*simClient
	faults bool
	cut    map[[2]uint64]bool
	tokens map[uint64]*simClient
	hist   map[engine.ObjectID][]porcupine.Operation
	acked  map[engine.ObjectID]uint64 // highest acknowledged seq per object
	pgOf   map[engine.ObjectID]uint32
	counts simCounts
	fail   string

	nextToken uint64
	window    int
	// forgetTicks is the nodes' Config.ForgetTicks.
	forgetTicks int
	// depose: this seed runs the depose scenario on PG target (see
	// deposeTarget); deposing while a depose is under way; successor: the
	// current depose crashes the node the map next makes the target's
	// primary (other than deposed).
	depose    bool
	target    uint32
	deposing  bool
	successor bool
	deposed   uint64
	lease     time.Duration // Config.ReadLease, in the simulation's time units (see simNode.start)
	// dirty: stores, acknowledgements or views changed since the last
	// checkAcked, which runs after every event that sets it.
	dirty bool
}

type simNode struct {
	s        *sim
	id       uint64
	inc      int
	up       bool
	core     *Node
	store    *simStore
	caughtUp map[uint32]uint64
	// leases is what Config.OnLease last said of each PG: a runner that
	// reads beside the core trusts it (see "Reads beside the core").
	leases map[uint32]simLeaseNote
}

type simLeaseNote struct {
	epoch uint64
	until time.Duration
}

func newSim(t testing.TB, seed int64) *sim {
	s := &sim{t: t, seed: seed, rng: rand.New(rand.NewSource(seed)), faults: true, cut: map[[2]uint64]bool{},
		tokens: map[uint64]*simClient{}, hist: map[engine.ObjectID][]porcupine.Operation{},
		acked: map[engine.ObjectID]uint64{}, pgOf: map[engine.ObjectID]uint32{}}
	s.counts.seeds = 1
	s.window = []int{1, 2, 4, 64}[s.rng.Intn(4)]
	if seed%2 != 0 {
		// From the seed, not the generator: an even seed draws what it
		// drew before the scenario existed.
		s.depose = true
		s.target = uint32(s.rng.Intn(simPGs))
	}
	if seed%4 >= 2 {
		s.lease = simLease
	}
	// Seeds 4-7 mod 16 keep tombstones; the others forget them after 2,
	// 8 or 30 ticks (client timeouts are 6-12 ticks).
	s.forgetTicks = []int{2, 0, 8, 30}[(seed/4)%4]
	for i := range simNodes {
		n := &simNode{s: s, id: uint64(i + 1), store: newSimStore(s)}
		s.nodes = append(s.nodes, n)
		n.start()
	}
	s.or = newOracle(s)
	for pg := range uint32(simPGs) {
		for o := range simObjs {
			s.pgOf[engine.ObjectID{Hi: uint64(pg), Lo: uint64(o)}] = pg
		}
	}
	for i := range simClients {
		s.cls = append(s.cls, &simClient{s: s, id: i})
	}
	return s
}

func (s *sim) logf(format string, args ...any) {
	if *flagSimLog {
		s.t.Logf("t=%d "+format, append([]any{s.now}, args...)...)
	}
}

func (s *sim) failf(format string, args ...any) {
	if s.fail == "" {
		s.fail = fmt.Sprintf("t=%d: ", s.now) + fmt.Sprintf(format, args...)
	}
}

func (s *sim) at(delay int64, fn func()) {
	s.evseq++
	heap.Push(&s.q, &simEvent{at: s.now + delay, seq: s.evseq, fn: fn})
}

func (s *sim) node(id uint64) *simNode { return s.nodes[id-1] }

func (n *simNode) start() {
	if n.core != nil {
		n.s.counts.addStats(n.core.Stats())
	}
	n.inc++
	n.up = true
	n.caughtUp = map[uint32]uint64{}
	n.leases = map[uint32]simLeaseNote{}
	lease := n.s.lease
	if n.id%2 == 0 && n.s.seed%8 >= 6 {
		lease = lease * 2 / 3
	}
	// Clock rates 0.94, 0.97, 1, 1.03 and 1.06 of the simulation's: two
	// nodes' rates differ by up to 1.06/0.94 < 8/7, what the lease's
	// margin allows for.
	rate := 1 + 0.03*(float64(n.id)-3)
	core, err := NewNode(Config{ID: n.id, Window: n.s.window, SyncBytesPerTick: 64, RetransmitTicks: 2, RequestIDs: 1024,
		ForgetTicks: n.s.forgetTicks, ReadLease: lease, Now: func() time.Duration { return time.Duration(float64(n.s.now) * rate) },
		OnLease: func(pg uint32, epoch uint64, until time.Duration) {
			n.leases[pg] = simLeaseNote{epoch, until}
		}})
	if err != nil {
		panic(err)
	}
	n.core = core
}

// checkLeaseNotes checks, after a Step and before its effects, that
// OnLease told of every lease change: what it last said of a PG is the
// core's lease, and a PG of which this node is not the active primary has
// none. A runner reading beside the core relies on both.
func (n *simNode) checkLeaseNotes() {
	for pg, g := range n.core.pgs {
		note := n.leases[pg]
		if note.until != g.leaseUntil {
			n.s.failf("node %d pg %d: OnLease last said the lease ends at %v, the core has %v", n.id, pg, note.until, g.leaseUntil)
		}
		if g.leaseUntil != 0 && (g.role != rolePrimary || g.phase != phaseActive || note.epoch != g.epoch) {
			n.s.failf("node %d pg %d: a lease (OnLease epoch %d) while role %v, phase %v, epoch %d", n.id, pg, note.epoch, g.role, g.phase, g.epoch)
		}
	}
}

// step feeds ev to n's core and carries out its effects.
func (n *simNode) step(ev Event) {
	if !n.up {
		return
	}
	s := n.s
	effs := slices.Clone(n.core.Step(ev))
	n.checkLeaseNotes()
	for _, e := range effs {
		switch e := e.(type) {
		case Send:
			b := AppendMsg(nil, &e.Msg)
			from, to := n.id, e.To
			s.send(from, to, func() {
				m, err := DecodeMsg(b)
				if err != nil {
					s.failf("node %d sent an undecodable %v: %v", from, e.Msg.Kind, err)
					return
				}
				s.node(to).step(Receive{From: from, Msg: m})
			})
		case Submit:
			n.store.submit(n, e.Op)
		case Reply:
			c := s.tokens[e.Token]
			delete(s.tokens, e.Token)
			if c != nil {
				s.send(n.id, clientBase+uint64(c.id), func() { c.reply(e) })
			}
		case CaughtUp:
			n.caughtUp[e.PG] = e.Epoch
		case Progress:
		default:
			panic(fmt.Sprintf("unknown effect %T", e))
		}
	}
}

func (s *sim) linked(a, b uint64) bool {
	return !s.cut[[2]uint64{min(a, b), max(a, b)}]
}

// send carries a message from a to b: cut links drop it; with faults on,
// it may be dropped, duplicated or delayed past later ones.
func (s *sim) send(a, b uint64, deliver func()) {
	if !s.linked(a, b) {
		s.counts.drops++
		return
	}
	copies := 1
	if s.faults {
		switch r := s.rng.Float64(); {
		case r < 0.03:
			s.counts.drops++
			return
		case r < 0.05:
			s.counts.dups++
			copies = 2
		}
	}
	for range copies {
		d := int64(1 + s.rng.Intn(6))
		if s.faults && s.rng.Float64() < 0.05 {
			d += int64(20 + s.rng.Intn(60))
			s.counts.delayed++
		}
		s.at(d, func() {
			if s.linked(a, b) {
				deliver()
			}
		})
	}
}

// simStore keeps objects durable only at a flush: ops queue until the
// next flush applies them in order and completes them; a crash drops the
// queue (what a torn last write and lost unflushed writes leave).
type simObj struct {
	seq     uint64
	deleted bool
	data    []byte
	// rids are the ids of the object's last engine.KeptRequests
	// mutations, or those its last install set, as EngineStore keeps
	// them: durable with the state, so a restart keeps them.
	rids []RIDEntry
}

// withRID returns rids with (id, seq) added, the newest
// engine.KeptRequests kept, as the engine keeps an object's ids.
func withRID(rids []RIDEntry, id fsproto.RequestID, seq uint64) []RIDEntry {
	if id == (fsproto.RequestID{}) {
		return rids
	}
	for _, e := range rids {
		if e.ID == id {
			return rids
		}
	}
	out := append(slices.Clone(rids), RIDEntry{ID: id, Seq: seq})
	return out[max(0, len(out)-engine.KeptRequests):]
}

type simStore struct {
	s       *sim
	objs    map[uint32]map[engine.ObjectID]simObj
	maxSeq  map[uint32]uint64
	marks   map[uint32]uint64          // durable sync marks
	floors  map[uint32]uint64          // durable tombstone floors
	forgot  map[engine.ObjectID]uint64 // the highest seq of each object's tombstones forgotten
	queue   []queuedOp
	flushAt bool
}

type queuedOp struct {
	n   *simNode
	inc int
	op  StoreOp
}

func newSimStore(s *sim) *simStore {
	return &simStore{s: s, objs: map[uint32]map[engine.ObjectID]simObj{}, maxSeq: map[uint32]uint64{}, marks: map[uint32]uint64{}, floors: map[uint32]uint64{}, forgot: map[engine.ObjectID]uint64{}}
}

func (st *simStore) pg(pg uint32) map[engine.ObjectID]simObj {
	m := st.objs[pg]
	if m == nil {
		m = map[engine.ObjectID]simObj{}
		st.objs[pg] = m
	}
	return m
}

func (st *simStore) crash() {
	st.s.dirty = true
	if len(st.queue) > 0 {
		st.s.counts.torn++
	}
	st.queue = nil
}

func (st *simStore) submit(n *simNode, op StoreOp) {
	s := st.s
	inc := n.inc
	complete := func(r StoreResult) {
		r.ID = op.ID
		if n.up && n.inc == inc {
			n.step(StoreDone{Result: r})
		}
	}
	switch op.Kind {
	case StoreApply, StoreInstall, StoreSetMark, StoreClearMark, StoreForget:
		st.queue = append(st.queue, queuedOp{n: n, inc: inc, op: op})
		if !st.flushAt {
			st.flushAt = true
			s.at(int64(1+s.rng.Intn(8)), st.flush)
		}
		return
	}
	readErr := s.faults && (op.Kind == StoreRead || op.Kind == StoreGet || op.Kind == StoreRequests) && s.rng.Float64() < 0.02
	s.at(int64(1+s.rng.Intn(4)), func() {
		if readErr {
			s.counts.readErrs++
			complete(StoreResult{Err: errors.New("sim: read error")})
			return
		}
		complete(st.query(op))
	})
}

func (st *simStore) query(op StoreOp) StoreResult {
	objs := st.pg(op.PG)
	switch op.Kind {
	case StoreRead:
		o, ok := objs[op.Object]
		if !ok || o.deleted {
			return StoreResult{NotFound: true}
		}
		if op.Off >= uint64(len(o.data)) {
			return StoreResult{EOF: true}
		}
		d := o.data[op.Off:]
		eof := len(d) <= op.Len
		d = d[:min(len(d), op.Len)]
		return StoreResult{Data: slices.Clone(d), EOF: eof}
	case StoreGet:
		o, ok := objs[op.Object]
		if !ok {
			return StoreResult{NotFound: true, Seq: st.floors[op.PG]}
		}
		if o.deleted {
			return StoreResult{NotFound: true, Seq: o.seq, RIDs: slices.Clone(o.rids)}
		}
		return StoreResult{Data: slices.Clone(o.data), Seq: o.seq, RIDs: slices.Clone(o.rids)}
	case StoreRequests:
		o := objs[op.Object]
		return StoreResult{Seq: o.seq, RIDs: slices.Clone(o.rids)}
	case StoreMaxSeq:
		mark, marked := st.marks[op.PG]
		return StoreResult{Seq: st.maxSeq[op.PG], Mark: mark, Marked: marked, Floor: st.floors[op.PG]}
	case StoreChanges:
		var es []Entry
		for id, o := range objs {
			if o.seq > op.Since {
				es = append(es, Entry{Object: id, Seq: o.seq})
			}
		}
		slices.SortFunc(es, func(a, b Entry) int {
			if a.Seq != b.Seq {
				return int(a.Seq) - int(b.Seq)
			}
			return objLess(a.Object, b.Object)
		})
		if op.Limit > 0 && len(es) > op.Limit {
			es = es[:op.Limit]
		}
		sizes := make([]uint64, len(es))
		for i, e := range es {
			sizes[i] = uint64(len(objs[e.Object].data))
		}
		return StoreResult{Changes: es, Sizes: sizes}
	}
	panic(fmt.Sprintf("sim store: op %d", op.Kind))
}

func (st *simStore) flush() {
	st.flushAt = false
	st.s.dirty = true
	q := st.queue
	st.queue = nil
	for _, qo := range q {
		op := qo.op
		if op.Kind == StoreForget {
			// The floor and the forgetting land together: a crash
			// before the flush loses both.
			st.floors[op.PG] = max(st.floors[op.PG], op.Seq)
			k := 0
			for id, o := range st.pg(op.PG) {
				if o.deleted && o.seq > op.Since && o.seq <= op.Seq {
					st.forgot[id] = max(st.forgot[id], o.seq)
					delete(st.objs[op.PG], id)
					k++
				}
			}
			st.s.counts.forgotten += k
			st.s.logf("node %d: pg %d forgot %d tombstones in (%d, %d]", qo.n.id, op.PG, k, op.Since, op.Seq)
			if n := qo.n; n.up && n.inc == qo.inc {
				n.step(StoreDone{Result: StoreResult{ID: op.ID, Forgotten: k}})
			}
			continue
		}
		if op.Kind == StoreSetMark || op.Kind == StoreClearMark {
			if mark, ok := st.marks[op.PG]; op.Kind == StoreSetMark && (!ok || op.Seq < mark) {
				st.marks[op.PG] = op.Seq
			} else if op.Kind == StoreClearMark {
				delete(st.marks, op.PG)
			}
			if n := qo.n; n.up && n.inc == qo.inc {
				n.step(StoreDone{Result: StoreResult{ID: op.ID}})
			}
			continue
		}
		objs := st.pg(op.PG)
		o, exists := objs[op.Object]
		prev := o.seq
		cur := o.seq
		if !exists {
			// Never written, or a forgotten tombstone at most the floor,
			// as the engine takes it (engine.Engine.ForgetFloor).
			cur = st.floors[op.PG]
		}
		skip := op.KeepIfAtLeast > 0 && cur >= op.KeepIfAtLeast
		if !skip && (op.Kind != StoreInstall || op.Seq != 0 || exists) {
			if op.Kind == StoreInstall {
				var rids []RIDEntry
				for _, e := range op.RIDs[max(0, len(op.RIDs)-engine.KeptRequests):] {
					rids = append(rids, RIDEntry{ID: e.ID, Seq: e.Seq})
				}
				// An absent state (seq 0) leaves a tombstone at the seq
				// of the state it replaces, as EngineStore does (see
				// StoreInstall); an object never written stays absent.
				seq := op.Seq
				if seq == 0 {
					seq = prev
				}
				o = simObj{seq: seq, deleted: op.Deleted, data: slices.Clone(op.Data), rids: rids}
			} else {
				o = applyMut(o, op.Mut, op.Data)
				o.seq = op.Seq
				o.rids = withRID(o.rids, op.RequestID, op.Seq)
			}
			objs[op.Object] = o
			st.maxSeq[op.PG] = max(st.maxSeq[op.PG], op.Seq)
			st.s.logf("node %d: pg %d %v kind %d seq %d keep %d -> %+v", qo.n.id, op.PG, op.Object, op.Kind, op.Seq, op.KeepIfAtLeast, o)
		}
		n, inc, id := qo.n, qo.inc, op.ID
		if n.up && n.inc == inc {
			n.step(StoreDone{Result: StoreResult{ID: id, Skipped: skip, Seq: prev}})
		}
	}
}

func applyMut(o simObj, m Mutation, data []byte) simObj {
	if o.deleted {
		o = simObj{rids: o.rids}
	}
	switch m.Kind {
	case MutWrite:
		end := int(m.Off) + len(data)
		nd := make([]byte, max(end, len(o.data)))
		copy(nd, o.data)
		copy(nd[m.Off:], data)
		o.data = nd
	case MutTruncate:
		nd := make([]byte, m.Size)
		copy(nd, o.data)
		o.data = nd
	case MutDelete:
		o = simObj{deleted: true, rids: o.rids}
	}
	return o
}

// oracle is the manager: it keeps the real cluster map
// (fsproto/clustermap) and derives every View from it. A Liveness fed by
// the heartbeats that reach it and the simulated clock marks nodes Down
// and Up; a node's restart is recorded with NodeRestarted; a replica's
// CaughtUp effect becomes the map's CaughtUp. The map places the sim's
// PGs 0..simPGs-1 as its PGs firstPG.. of one container.
type oracle struct {
	s       *sim
	m       *clustermap.Map
	live    *clustermap.Liveness
	firstPG clustermap.PGID
	views   map[uint32]*View
}

func newOracle(s *sim) *oracle {
	downAfter := simDownAfter
	if s.depose {
		downAfter = simDownAfterDepose
	}
	o := &oracle{s: s, m: clustermap.New(), live: clustermap.NewLiveness(time.Duration(downAfter * simTick)),
		views: map[uint32]*View{}}
	for id := range simNodes {
		o.apply(clustermap.AddNode{ID: clustermap.NodeID(id + 1), Addr: fmt.Sprintf("node%d:7000", id+1)})
	}
	// PG counts are powers of two: the map holds one PG more than the
	// sim uses, and that one is never looked at.
	o.apply(clustermap.CreateContainer{Name: "sim", Policy: clustermap.Policy{Replicas: 3, PGCount: 4}})
	ct, ok := o.m.ContainerByName("sim")
	if !ok {
		panic("sim: container not created")
	}
	o.firstPG = ct.FirstPG
	o.refresh()
	return o
}

func (o *oracle) clock() time.Time { return time.Unix(0, o.s.now) }

// apply applies cmd to the map; a command the map refuses as changing
// nothing or as stale (a CaughtUp of an older epoch) is dropped, as the
// manager drops it.
func (o *oracle) apply(cmd clustermap.Command) {
	m, err := o.m.Apply(cmd)
	if errors.Is(err, clustermap.ErrNoChange) || errors.Is(err, clustermap.ErrStaleEpoch) {
		return
	}
	if err != nil {
		panic(fmt.Sprintf("sim: map refused %T %+v: %v", cmd, cmd, err))
	}
	if err := m.Check(); err != nil {
		panic(fmt.Sprintf("sim: map after %T %+v: %v", cmd, cmd, err))
	}
	o.m = m
	switch c := cmd.(type) {
	case clustermap.SetNodeState:
		if c.State == clustermap.Down {
			o.s.counts.mapDown++
		} else {
			o.s.counts.mapUp++
		}
	case clustermap.NodeRestarted:
		o.s.counts.mapRestarted++
	case clustermap.CaughtUp:
		o.s.counts.mapCaughtUp++
	}
	o.s.logf("map: %T %+v -> epoch %d", cmd, cmd, m.Epoch)
	o.refresh()
}

// refresh derives the views from the map.
func (o *oracle) refresh() {
	if o.firstPG == 0 {
		return
	}
	for pg := range uint32(simPGs) {
		mp, ok := o.m.PG(o.firstPG + clustermap.PGID(pg))
		if !ok {
			panic(fmt.Sprintf("sim: map lost pg %d", pg))
		}
		v := &View{PG: pg, Epoch: mp.Epoch}
		for _, id := range mp.Replicas {
			v.Replicas = append(v.Replicas, uint64(id))
		}
		for _, id := range mp.Backfilling {
			v.Backfilling = append(v.Backfilling, uint64(id))
		}
		if old := o.views[pg]; old == nil || old.Epoch != v.Epoch {
			o.s.dirty = true
			if old != nil {
				o.s.counts.views++
				if pg == o.s.target && old.Replicas[0] != v.Replicas[0] {
					o.s.newPrimary(v.Replicas[0])
				}
			}
			o.s.logf("view pg %d epoch %d replicas %v backfilling %v", v.PG, v.Epoch, v.Replicas, v.Backfilling)
		} else if !slices.Equal(old.Replicas, v.Replicas) || !slices.Equal(old.Backfilling, v.Backfilling) {
			panic(fmt.Sprintf("sim: pg %d changed in epoch %d: %v %v -> %v %v", pg, v.Epoch, old.Replicas, old.Backfilling, v.Replicas, v.Backfilling))
		}
		o.views[pg] = v
	}
}

// lastCaughtUp reports whether id is the only caught-up replica of a PG.
// The runner keeps such a node Up however long it is silent: Down drops a
// node from its PGs at once, which would leave only backfilling replicas,
// one of them primary without the data acknowledged (the map's NB leaves
// this to the runner). The PG then waits for the node, as a PG must whose
// every up-to-date copy is unreachable.
func (o *oracle) lastCaughtUp(id clustermap.NodeID) bool {
	for _, pg := range o.m.PGs {
		if !pg.HasReplica(id) || pg.IsBackfilling(id) {
			continue
		}
		others := 0
		for _, r := range pg.Replicas {
			if r != id && !pg.IsBackfilling(r) {
				others++
			}
		}
		if others == 0 {
			return true
		}
	}
	return false
}

func (o *oracle) heard(id uint64) { o.live.Heartbeat(clustermap.NodeID(id), o.clock()) }

func (o *oracle) tick() {
	s := o.s
	for _, c := range o.live.Commands(o.m, o.clock()) {
		if sc, ok := c.(clustermap.SetNodeState); ok && sc.State == clustermap.Down && o.lastCaughtUp(sc.ID) {
			o.s.counts.mapHeld++
			continue
		}
		o.apply(c)
	}
	for id := uint64(1); id <= simNodes; id++ {
		for pg := range uint32(simPGs) {
			vc := *o.views[pg]
			vc.Replicas, vc.Backfilling = slices.Clone(vc.Replicas), slices.Clone(vc.Backfilling)
			n := s.node(id)
			s.send(oracleID, id, func() { n.step(ViewChange{View: vc}) })
		}
	}
}

// restarted: the node records its start (NodeRestarted) before it acts,
// as node processes do; the map moves the epoch of its PGs and makes it
// backfilling where another caught-up replica serves.
func (o *oracle) restarted(id uint64) {
	o.apply(clustermap.NodeRestarted{ID: clustermap.NodeID(id)})
}

func (o *oracle) caughtUp(id uint64, pg uint32, epoch uint64) {
	o.apply(clustermap.CaughtUp{PG: o.firstPG + clustermap.PGID(pg), Node: clustermap.NodeID(id), Epoch: epoch})
}

// Clients: one operation at a time on a few objects, retried with the
// same request id on errors and timeouts; each operation's first call and
// final answer go to the history porcupine checks.
type simInput struct {
	kind OpKind
	off  uint64
	data string
	size uint64
}

type simOutput struct {
	notFound bool
	data     string
}

type simClient struct {
	s       *sim
	id      int
	n       int
	op      *ClientOp
	in      simInput
	call    int64
	token   uint64
	done    bool
	retries int
	// prim caches each PG's primary from the map; refreshed only after an
	// error or a timeout, so a client may talk to a deposed primary.
	prim map[uint32]uint64
}

func (c *simClient) next() {
	s := c.s
	if s.now >= simClientEnd {
		c.done = true
		return
	}
	obj := engine.ObjectID{Hi: uint64(s.rng.Intn(simPGs)), Lo: uint64(s.rng.Intn(simObjs))}
	if s.depose && s.rng.Intn(4) > 0 {
		obj.Hi = uint64(s.target)
	}
	var rid fsproto.RequestID
	s.rng.Read(rid[:])
	op := &ClientOp{PG: s.pgOf[obj], Object: obj, RequestID: rid}
	c.n++
	r := s.rng.Intn(10)
	if s.depose && c.id == 0 {
		// Only reads: no write of its own makes it wait for the deposed
		// primary's timeout and refresh its map, so it keeps reading
		// through a deposed primary for as long as that one answers.
		r = 5
	}
	switch {
	case r < 5:
		op.Kind, op.Off = OpWrite, uint64(2*s.rng.Intn(3))
		op.Data = []byte(fmt.Sprintf("%c%03d", 'a'+c.id, c.n%1000))
		c.in = simInput{kind: OpWrite, off: op.Off, data: string(op.Data)}
	case r < 8:
		op.Kind, op.Len = OpRead, 16
		c.in = simInput{kind: OpRead}
	case r < 9:
		op.Kind, op.Size = OpTruncate, uint64(3*s.rng.Intn(3))
		c.in = simInput{kind: OpTruncate, size: op.Size}
	default:
		op.Kind = OpDelete
		c.in = simInput{kind: OpDelete}
	}
	c.op, c.call, c.retries = op, s.now, 0
	c.send()
}

func (c *simClient) send() {
	s := c.s
	s.nextToken++
	c.token = s.nextToken
	op := *c.op
	op.Token = c.token
	s.tokens[c.token] = c
	if c.prim == nil {
		c.prim = map[uint32]uint64{}
	}
	if c.prim[op.PG] == 0 {
		c.prim[op.PG] = s.or.views[op.PG].Replicas[0]
	}
	prim := s.node(c.prim[op.PG])
	s.logf("client %d: %v %v to node %d", c.id, op.Kind, op.Object, prim.id)
	s.send(clientBase+uint64(c.id), prim.id, func() { prim.step(op) })
	tok := c.token
	timeout := int64(simClientTimeout)
	if s.depose {
		timeout = simClientTimeoutDepose
	}
	s.at(timeout, func() {
		if c.token == tok && c.op != nil {
			c.prim[c.op.PG] = 0
			c.retries++
			c.send()
		}
	})
}

func (c *simClient) reply(r Reply) {
	s := c.s
	if r.Token != c.token || c.op == nil {
		return
	}
	if r.Err != nil {
		if !errors.Is(r.Err, ErrStaleEpoch) && !errors.Is(r.Err, ErrNotPrimary) && !errors.Is(r.Err, ErrBusy) && !errors.Is(r.Err, ErrStore) {
			s.failf("client %d: unexpected error %v", c.id, r.Err)
			return
		}
		c.token = 0
		c.prim[c.op.PG] = 0
		s.at(int64(5+s.rng.Intn(15)), func() { c.retries++; c.send() })
		return
	}
	op := c.op
	var out simOutput
	if op.Kind == OpRead {
		s.logf("client %d: read %v -> %q", c.id, op.Object, r.Data)
		out = simOutput{notFound: r.NotFound, data: string(r.Data)}
		s.counts.reads++
	} else {
		s.counts.acked++
		s.logf("client %d: %v %v acked seq %d", c.id, op.Kind, op.Object, r.Seq)
		s.acked[op.Object] = max(s.acked[op.Object], r.Seq)
		s.dirty = true
	}
	s.hist[op.Object] = append(s.hist[op.Object], porcupine.Operation{ClientId: c.id, Input: c.in, Call: c.call, Output: out, Return: s.now})
	c.op, c.token = nil, 0
	s.at(int64(1+s.rng.Intn(20)), c.next)
}

// forgotAtLeast reports whether some node's store forgot a tombstone of
// obj at a seq >= seq.
func (s *sim) forgotAtLeast(obj engine.ObjectID, seq uint64) bool {
	for _, n := range s.nodes {
		if n.store.forgot[obj] >= seq {
			return true
		}
	}
	return false
}

// checkAcked: every caught-up replica of a PG holds every acknowledged
// mutation of its objects durably (seq at least the acknowledged one).
func (s *sim) checkAcked() {
	for obj, seq := range s.acked {
		v := s.or.views[s.pgOf[obj]]
		for _, id := range v.Replicas {
			if slices.Contains(v.Backfilling, id) {
				continue
			}
			o, ok := s.node(id).store.pg(v.PG)[obj]
			if (!ok || o.deleted) && s.forgotAtLeast(obj, seq) {
				// Deleted after the acknowledged mutation, and the
				// delete's tombstone forgotten here, or where a sync
				// took the object's state from (absent, or a tombstone
				// at the seq of the state it replaced).
				continue
			}
			if o.seq < seq {
				s.failf("acknowledged mutation lost: node %d holds %v at seq %d, seq %d was acknowledged (pg %d epoch %d replicas %v backfilling %v)",
					id, obj, o.seq, seq, v.PG, v.Epoch, v.Replicas, v.Backfilling)
			}
		}
	}
}

func (s *sim) tick() {
	s.or.tick()
	for _, n := range s.nodes {
		if !n.up {
			continue
		}
		n.step(Tick{})
		nn := n
		s.send(n.id, oracleID, func() { s.or.heard(nn.id) })
		// In PG order: each send draws from the seed's rng, and the map's
		// epochs follow the order its commands arrive in.
		for _, pg := range slices.Sorted(mapKeys(n.caughtUp)) {
			ep := n.caughtUp[pg]
			s.send(n.id, oracleID, func() { s.or.caughtUp(nn.id, pg, ep) })
		}
	}
	if s.faults && s.now >= simFaultEnd {
		s.faults = false
		clear(s.cut)
		for _, n := range s.nodes {
			if !n.up {
				n.start()
				s.or.restarted(n.id)
			}
		}
		s.logf("faults end")
	}
	if s.faults {
		s.injectFaults()
	}
	s.at(simTick, s.tick)
}

func (s *sim) injectFaults() {
	var up []*simNode
	for _, n := range s.nodes {
		if n.up {
			up = append(up, n)
		}
	}
	if s.deposing {
		// One story at a time: crashes elsewhere would stall the new
		// view's peering and hide what the depose is there to show.
		return
	}
	switch r := s.rng.Float64(); {
	case r < 0.03 && len(up) >= simNodes-1:
		n := up[s.rng.Intn(len(up))]
		s.counts.crashes++
		n.up = false
		n.store.crash()
		s.logf("crash node %d", n.id)
		s.at(int64(50+s.rng.Intn(400)), func() {
			if !n.up {
				n.start()
				s.or.restarted(n.id)
				s.logf("restart node %d", n.id)
			}
		})
	case s.depose && r < 0.3 && len(s.cut) == 0 && s.settled(s.target):
		s.deposeTarget()
	case r < 0.05 && len(s.cut) == 0:
		s.counts.partitions++
		a := uint64(1 + s.rng.Intn(simNodes))
		if s.rng.Intn(2) == 0 {
			// Most interesting: a primary cut off from the rest.
			a = s.or.views[uint32(s.rng.Intn(simPGs))].Replicas[0]
		}
		var cut [][2]uint64
		if s.rng.Intn(3) > 0 {
			for _, b := range []uint64{1, 2, 3, 4, 5, oracleID} {
				if b != a {
					cut = append(cut, [2]uint64{min(a, b), max(a, b)})
				}
			}
		} else {
			b := uint64(1 + s.rng.Intn(simNodes))
			if b != a {
				cut = append(cut, [2]uint64{min(a, b), max(a, b)})
			}
		}
		for _, c := range cut {
			s.cut[c] = true
		}
		s.logf("partition %v", cut)
		s.at(int64(30+s.rng.Intn(300)), func() {
			for _, c := range cut {
				delete(s.cut, c)
			}
		})
	}
}

// deposeTarget cuts the target PG's primary off from every node, the
// manager and every client but the reading one (client 0), for longer than
// the map takes to move the PG to a new view and its new primary to serve:
// the writers time out, find the new primary in the map and write there,
// while the reader, which has no reason to refresh its map as long as the
// deposed primary answers it, reads through the deposed one. (Writes that
// reached the deposed primary would queue there and hold back its reads
// of the same objects, so the writers are on the other side of the cut.)
//
// In half of the deposes the new primary restarts as the only caught-up
// replica, having forgotten whatever it promised the deposed primary: the
// third replica crashes and restarts at once, so the map makes it
// backfilling while the deposed primary still counts as up; the one the
// map then makes primary crashes soon after and restarts, and it keeps
// the role, as no other caught-up replica can take it.
func (s *sim) deposeTarget() {
	v := s.or.views[s.target]
	a := v.Replicas[0]
	s.counts.deposes++
	s.deposed, s.deposing = a, true
	s.successor = s.rng.Intn(2) == 0
	if s.successor {
		s.crash(s.node(v.Replicas[2]), int64(1+s.rng.Intn(15)))
	}
	var cut [][2]uint64
	for _, b := range []uint64{1, 2, 3, 4, 5, oracleID, clientBase + 1, clientBase + 2, clientBase + 3} {
		if b != a {
			cut = append(cut, [2]uint64{min(a, b), max(a, b)})
		}
	}
	for _, c := range cut {
		s.cut[c] = true
	}
	s.logf("depose node %d (pg %d), successor crash %v", a, s.target, s.successor)
	s.at(int64(150+s.rng.Intn(400)), func() {
		for _, c := range cut {
			delete(s.cut, c)
		}
		s.deposing, s.successor = false, false
	})
}

// settled reports whether pg's view has three replicas, none
// backfilling, and its primary serves with no mutation pending or queued:
// a depose then leaves caught-up replicas to take over, and no mutation
// left pending on the deposed primary holds back its reads of the object.
func (s *sim) settled(pg uint32) bool {
	v := s.or.views[pg]
	if len(v.Replicas) < 3 || len(v.Backfilling) > 0 {
		return false
	}
	p := s.node(v.Replicas[0])
	g := p.core.pgs[pg]
	if !p.up || g == nil || g.epoch != v.Epoch || g.role != rolePrimary || g.phase != phaseActive || len(g.pending) > 0 {
		return false
	}
	for _, q := range g.objq {
		for _, op := range q {
			if op.Kind != OpRead {
				return false
			}
		}
	}
	return true
}

// newPrimary: the map made id the target PG's primary. If the depose
// under way asks for it, id crashes soon and restarts at once.
func (s *sim) newPrimary(id uint64) {
	if !s.successor || id == s.deposed || !s.faults {
		return
	}
	s.successor = false
	n := s.node(id)
	s.at(int64(s.rng.Intn(2*simTick)), func() {
		v := s.or.views[s.target]
		if s.deposing && s.crash(n, int64(1+s.rng.Intn(3*simTick))) && len(v.Replicas)-len(v.Backfilling) == 1 {
			s.counts.successorCrashes++
		}
	})
}

// crash crashes n, if it and every other node but one are up, and
// restarts it after down time units; it reports whether n crashed.
func (s *sim) crash(n *simNode, down int64) bool {
	up := 0
	for _, m := range s.nodes {
		if m.up {
			up++
		}
	}
	if !n.up || !s.faults || up < simNodes-1 {
		return false
	}
	s.counts.crashes++
	n.up = false
	n.store.crash()
	s.logf("crash node %d", n.id)
	s.at(down, func() {
		if !n.up {
			n.start()
			s.or.restarted(n.id)
			s.logf("restart node %d", n.id)
		}
	})
	return true
}

func (s *sim) converged() bool {
	for _, c := range s.cls {
		if !c.done || c.op != nil {
			return false
		}
	}
	for pg := range uint32(simPGs) {
		v := s.or.views[pg]
		if len(v.Replicas) != 3 || len(v.Backfilling) != 0 {
			return false
		}
		for _, id := range v.Replicas {
			n := s.node(id)
			if !n.up || len(n.store.queue) > 0 {
				return false
			}
		}
		p := s.node(v.Replicas[0]).core.pgs[pg]
		if p == nil || p.role != rolePrimary || p.phase != phaseActive || len(p.pending) > 0 {
			return false
		}
	}
	return true
}

func (s *sim) run() {
	s.at(0, s.tick)
	for _, c := range s.cls {
		s.at(int64(s.rng.Intn(20)), c.next)
	}
	steps := 0
	for s.q.Len() > 0 && s.fail == "" {
		e := heap.Pop(&s.q).(*simEvent)
		s.now = e.at
		e.fn()
		if s.dirty {
			s.dirty = false
			s.checkAcked()
		}
		steps++
		if !s.faults && s.now > simClientEnd && s.now%simTick == 0 && s.converged() {
			break
		}
		if s.now > simDeadline {
			s.failf("no convergence by t=%d: %s", simDeadline, s.describe())
		}
	}
	for _, n := range s.nodes {
		s.counts.addStats(n.core.Stats())
	}
	if s.fail == "" {
		s.checkIdentical()
	}
	if s.fail == "" {
		s.checkLinearizable()
	}
	if s.fail != "" {
		s.t.Errorf("seed %d: %s\nreplay: go test ./fsproto/replication -run TestSim -sim.seed=%d -sim.log", s.seed, s.fail, s.seed)
	}
}

func (s *sim) describe() string {
	var b strings.Builder
	for pg := range uint32(simPGs) {
		v := s.or.views[pg]
		fmt.Fprintf(&b, "pg %d epoch %d replicas %v backfilling %v; ", pg, v.Epoch, v.Replicas, v.Backfilling)
		if p := s.node(v.Replicas[0]).core.pgs[pg]; p != nil {
			fmt.Fprintf(&b, "primary role %d phase %d pending %d; ", p.role, p.phase, len(p.pending))
		}
	}
	for _, c := range s.cls {
		if c.op != nil {
			fmt.Fprintf(&b, "client %d waits on %v of %v (%d retries); ", c.id, c.op.Kind, c.op.Object, c.retries)
		}
	}
	return b.String()
}

// checkIdentical: after faults stop, every PG's replicas hold the same
// live objects at the same seqs.
func (s *sim) checkIdentical() {
	for pg := range uint32(simPGs) {
		v := s.or.views[pg]
		ref := s.node(v.Replicas[0]).store.pg(pg)
		for _, id := range v.Replicas[1:] {
			got := s.node(id).store.pg(pg)
			for o := range s.pgOf {
				if s.pgOf[o] != pg {
					continue
				}
				a, b := ref[o], got[o]
				if a.deleted || a.seq == 0 {
					a = simObj{}
				}
				if b.deleted || b.seq == 0 {
					b = simObj{}
				}
				if a.seq != b.seq || !bytes.Equal(a.data, b.data) {
					s.failf("pg %d object %v differs: primary %d has seq %d %q, node %d has seq %d %q",
						pg, o, v.Replicas[0], a.seq, a.data, id, b.seq, b.data)
				}
			}
		}
	}
}

type regState struct {
	exists bool
	data   string
}

var objModel = porcupine.Model{
	Init: func() any { return regState{} },
	Step: func(state, input, output any) (bool, any) {
		st, in := state.(regState), input.(simInput)
		switch in.kind {
		case OpRead:
			out := output.(simOutput)
			if !st.exists {
				return out.notFound, st
			}
			want := st.data[:min(len(st.data), 16)]
			return !out.notFound && out.data == want, st
		case OpDelete:
			return true, regState{}
		case OpTruncate:
			d := []byte(st.data)
			nd := make([]byte, in.size)
			copy(nd, d)
			return true, regState{exists: true, data: string(nd)}
		default:
			d := []byte(st.data)
			end := int(in.off) + len(in.data)
			nd := make([]byte, max(end, len(d)))
			copy(nd, d)
			copy(nd[in.off:], in.data)
			return true, regState{exists: true, data: string(nd)}
		}
	},
	DescribeOperation: func(input, output any) string {
		in := input.(simInput)
		if in.kind == OpRead {
			if out, ok := output.(simOutput); ok {
				return fmt.Sprintf("read -> notFound %v %q", out.notFound, out.data)
			}
			return "read -> ?"
		}
		return fmt.Sprintf("%v off %d data %q size %d", in.kind, in.off, in.data, in.size)
	},
}

// checkLinearizable checks each object's history; mutations still
// unanswered have an unknown outcome (they may or may not have happened).
func (s *sim) checkLinearizable() {
	for _, c := range s.cls {
		if c.op != nil && c.op.Kind != OpRead {
			s.hist[c.op.Object] = append(s.hist[c.op.Object], porcupine.Operation{ClientId: c.id, Input: c.in, Call: c.call, Return: math.MaxInt64})
		}
	}
	objs := make([]engine.ObjectID, 0, len(s.hist))
	for o := range s.hist {
		objs = append(objs, o)
	}
	slices.SortFunc(objs, objLess)
	for _, o := range objs {
		res := porcupine.CheckOperationsTimeout(objModel, s.hist[o], 10*time.Second)
		if res == porcupine.Illegal {
			var b strings.Builder
			h := slices.Clone(s.hist[o])
			slices.SortFunc(h, func(a, b porcupine.Operation) int { return int(a.Call - b.Call) })
			for _, op := range h {
				fmt.Fprintf(&b, "\n  [%d, %d] client %d %s", op.Call, op.Return, op.ClientId, objModel.DescribeOperation(op.Input, op.Output))
			}
			s.failf("object %v: history of %d operations is not linearizable:%s", o, len(s.hist[o]), b.String())
		}
	}
}

// TestSimReplays: one seed replays exactly (same histories, same counts,
// same end time), which is what makes a printed seed worth having.
func TestSimReplays(t *testing.T) {
	digest := func() string {
		s := newSim(t, 7)
		s.run()
		var b strings.Builder
		fmt.Fprintf(&b, "%d %+v\n", s.now, s.counts)
		objs := make([]engine.ObjectID, 0, len(s.hist))
		for o := range s.hist {
			objs = append(objs, o)
		}
		slices.SortFunc(objs, objLess)
		for _, o := range objs {
			fmt.Fprintf(&b, "%v %+v\n", o, s.hist[o])
		}
		return b.String()
	}
	a, b := digest(), digest()
	if a != b {
		t.Fatalf("seed 7 ran differently twice:\n%s\n%s", a, b)
	}
}
