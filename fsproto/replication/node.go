package replication

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto"
)

// View is what the cluster map says about one PG: its epoch, its replicas
// (node ids, [0] the primary) and which of them are still backfilling.
type View struct {
	PG          uint32
	Epoch       uint64
	Replicas    []uint64
	Backfilling []uint64
}

func (v *View) has(id uint64) bool { return slices.Contains(v.Replicas, id) }

// Errors answered to clients. All but ErrStore promise the mutation was
// not acknowledged; ErrStaleEpoch, ErrNotPrimary, ErrNotReady and ErrBusy
// invite a retry with the same request id (after refreshing the map for
// the first two).
var (
	// ErrStaleEpoch: this node lost the primary role (a newer epoch
	// exists) before the mutation was durable everywhere. It may have
	// been applied on some replicas; retry with the same request id.
	ErrStaleEpoch = errors.New("replication: stale epoch")
	// ErrNotPrimary: this node is not the PG's primary.
	ErrNotPrimary = errors.New("replication: not the primary")
	// ErrBusy: the PG's queue of client operations is full.
	ErrBusy = errors.New("replication: too many queued operations")
	// ErrInvalid: the operation is malformed (empty write, too large).
	ErrInvalid = errors.New("replication: invalid operation")
)

// Config configures a Node.
type Config struct {
	// ID is this node's id, as the views name it. Required (non-zero).
	ID uint64
	// Window W: seq s is issued only once every seq <= s-W is durable on
	// every replica of the view. Default 1024.
	Window int
	// SyncBytesPerTick throttles sync: the object bytes a primary sends
	// per Tick to each syncing replica. Default 4 MiB.
	SyncBytesPerTick int
	// RetransmitTicks: an unanswered request is resent after this many
	// ticks. Default 2.
	RetransmitTicks int
	// RequestIDs bounds the remembered request ids per PG. Default 4096.
	RequestIDs int
	// QueueMax bounds the client operations queued per PG. Default 4096.
	QueueMax int
	// ReadLease, when positive, is how long this node, as a replica,
	// promises a primary whose ReadCheck it answers not to lead the PG
	// (LeaseGrant), and how long, as a primary, it serves reads without a
	// round after one (less a margin, and at most what every replica
	// granted); see "Read leases" in the package doc. Now must then be
	// set. 0: this node grants nothing, and reads wait for a round.
	ReadLease time.Duration
	// Now is a monotonic clock (the time since some fixed start, such as
	// the process's), read only for read leases. Its rate must be within
	// a few percent of every other node's; its value need not agree.
	Now func() time.Duration
	// OnLease, when set, is called inside Step whenever pg's read lease
	// changes: until is when the lease ends on Now's clock, 0 when the
	// node holds none (it is not pg's active primary in epoch, or the
	// lease was dropped). It lets a runner serve reads beside the core
	// (see "Reads beside the core" in the package doc); it must not call
	// into the Node.
	OnLease func(pg uint32, epoch uint64, until time.Duration)
	// ForgetTicks, when positive, lets the node forget tombstones (see
	// "Forgotten tombstones" in the package doc): every ForgetTicks ticks
	// it asks its store to forget those of each PG it serves that are at
	// least ForgetTicks old and far enough behind the PG's newest seq. It
	// must exceed the time for which a client retries a mutation with one
	// request id: a retry that arrives after its object's tombstone was
	// forgotten finds no id and is applied again. 0: tombstones are kept
	// for ever.
	ForgetTicks int
}

func (c *Config) fill() error {
	var errs []error
	if c.ID == 0 {
		errs = append(errs, errors.New("replication: Config.ID is 0, want a node id"))
	}
	def := func(p *int, v int, name string) {
		if *p == 0 {
			*p = v
		} else if *p < 0 {
			errs = append(errs, fmt.Errorf("replication: Config.%s is %d, want > 0", name, *p))
		}
	}
	def(&c.Window, 1024, "Window")
	def(&c.SyncBytesPerTick, 4<<20, "SyncBytesPerTick")
	def(&c.RetransmitTicks, 2, "RetransmitTicks")
	def(&c.RequestIDs, 4096, "RequestIDs")
	if c.RequestIDs > MaxRIDEntries {
		errs = append(errs, fmt.Errorf("replication: Config.RequestIDs is %d, want at most %d", c.RequestIDs, MaxRIDEntries))
	}
	def(&c.QueueMax, 4096, "QueueMax")
	if c.ForgetTicks < 0 {
		errs = append(errs, fmt.Errorf("replication: Config.ForgetTicks is %d, want >= 0", c.ForgetTicks))
	}
	if c.ReadLease < 0 {
		errs = append(errs, fmt.Errorf("replication: Config.ReadLease is %v, want >= 0", c.ReadLease))
	}
	if c.ReadLease > 0 && c.Now == nil {
		errs = append(errs, errors.New("replication: Config.ReadLease is set without Config.Now"))
	}
	return errors.Join(errs...)
}

// OpKind is what a client asks.
type OpKind uint8

func (k OpKind) String() string {
	switch k {
	case OpWrite:
		return "write"
	case OpTruncate:
		return "truncate"
	case OpDelete:
		return "delete"
	case OpRead:
		return "read"
	}
	return fmt.Sprintf("OpKind(%d)", k)
}

// Client operations.
const (
	OpWrite OpKind = iota + 1
	OpTruncate
	OpDelete
	OpRead
)

// Event is an input of Node.Step: ClientOp, Receive, StoreDone, ViewChange
// or Tick.
type Event interface{ isEvent() }

// ClientOp is a client request for PG. Token identifies it in the Reply.
// Mutations carry a RequestID that a retry resends unchanged.
type ClientOp struct {
	Token     uint64
	PG        uint32
	Kind      OpKind
	RequestID fsproto.RequestID
	Object    engine.ObjectID
	Off       uint64 // write, read
	Size      uint64 // truncate
	Len       int    // read
	Data      []byte // write; not to be changed until the Reply
}

// Receive delivers a message from node From.
type Receive struct {
	From uint64
	Msg  Msg
}

// StoreDone delivers a Store completion.
type StoreDone struct{ Result StoreResult }

// ViewChange hands the node the current view of a PG.
type ViewChange struct{ View View }

// Tick advances the node's notion of time (retransmits, sync throttle).
type Tick struct{}

func (ClientOp) isEvent()   {}
func (Receive) isEvent()    {}
func (StoreDone) isEvent()  {}
func (ViewChange) isEvent() {}
func (Tick) isEvent()       {}

// Effect is an output of Node.Step: Send, Submit, Reply, CaughtUp or
// Progress.
type Effect interface{ isEffect() }

// Send asks the loop to send Msg to node To (best effort: loss is
// tolerated by retransmission).
type Send struct {
	To  uint64
	Msg Msg
}

// Submit asks the loop to start Op on the local Store and to feed its
// completion back as a StoreDone.
type Submit struct{ Op StoreOp }

// Reply answers the ClientOp with Token. Seq is a mutation's PG sequence
// number; Data, EOF and NotFound a read's result.
type Reply struct {
	Token    uint64
	Err      error
	Seq      uint64
	Data     []byte
	EOF      bool
	NotFound bool
}

// CaughtUp reports that this replica finished syncing PG in Epoch; the
// integration turns it into the map's CaughtUp command (a no-op for a
// replica that was not backfilling).
type CaughtUp struct {
	PG    uint32
	Epoch uint64
}

// Progress reports a primary's sync of one replica.
type Progress struct {
	PG                        uint32
	Epoch                     uint64
	Replica                   uint64
	ObjectsDone, ObjectsTotal int
	BytesDone, BytesTotal     int64
	Done                      bool
}

func (Send) isEffect()     {}
func (Submit) isEffect()   {}
func (Reply) isEffect()    {}
func (CaughtUp) isEffect() {}
func (Progress) isEffect() {}

// Stats are a node's counters.
type Stats struct {
	SyncObjectsSent uint64 // SyncObject messages sent (resends included)
	SyncBytesSent   uint64 // object bytes in them
	SyncSameSent    uint64 // SyncSame messages sent (resends included): objects checked, not moved
	SyncSameKept    uint64 // objects a replica confirmed it held (SyncSame acknowledged)
	MutationsIssued uint64 // seqs assigned as primary
	Acknowledged    uint64 // mutations acknowledged to clients
	StaleFailures   uint64 // mutations failed with ErrStaleEpoch
	RIDLoads        uint64 // objects whose stored request ids were read into the table
	RetriesAnswered uint64 // mutations answered from the request id table, not applied again
	ReadsJoined     uint64 // reads started while another read of the same object was under way
	// StoredRetries counts, of those, the ones answered by an id the
	// table had only from the store (loadRIDs): without durable ids, a
	// restart or the table's bound would have let them be applied again.
	StoredRetries uint64
	LeaseReads    uint64 // reads served on a read lease, without a ReadCheck round
	// FullSyncs counts syncs that listed every object (from seq 0)
	// because a tombstone floor lay above their base.
	FullSyncs uint64
	// TombstonesForgotten counts the tombstones the store reported
	// forgotten (StoreForget).
	TombstonesForgotten uint64
}

// Node is one node's replication core for every PG it holds. It has no
// goroutines, clock or I/O: Step consumes an event and returns effects.
// It is not safe for concurrent use.
type Node struct {
	cfg   Config
	pgs   map[uint32]*group
	tick  uint64
	opID  uint64
	ops   map[uint64]func(StoreResult)
	out   []Effect
	stats Stats
	// grantFloor: with read leases, no PG is led before then: grants made
	// before this Node started are forgotten, so it assumes it made one
	// in every PG just as it started.
	grantFloor time.Duration
}

// NewNode returns a Node with no PGs; ViewChange events give it some.
func NewNode(cfg Config) (*Node, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, pgs: map[uint32]*group{}, ops: map[uint64]func(StoreResult){}}
	if cfg.ReadLease > 0 {
		n.grantFloor = cfg.Now() + cfg.ReadLease
	}
	return n, nil
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats { return n.stats }

// Progress returns the sync progress of every replica the node is syncing
// as a primary.
func (n *Node) Progress() []Progress {
	var ps []Progress
	for _, g := range n.sortedGroups() {
		for _, id := range g.view.Replicas {
			if s := g.syncs[id]; s != nil {
				ps = append(ps, g.progress(id, s))
			}
		}
	}
	return ps
}

func (n *Node) sortedGroups() []*group {
	var pgs []uint32
	for pg := range n.pgs {
		pgs = append(pgs, pg)
	}
	slices.Sort(pgs)
	gs := make([]*group, len(pgs))
	for i, pg := range pgs {
		gs[i] = n.pgs[pg]
	}
	return gs
}

// Step feeds ev to the node and returns the effects it caused, in order.
// The returned slice is reused by the next Step.
func (n *Node) Step(ev Event) []Effect {
	n.out = n.out[:0]
	switch ev := ev.(type) {
	case ClientOp:
		g := n.pgs[ev.PG]
		if g == nil || g.role != rolePrimary {
			n.reply(Reply{Token: ev.Token, Err: ErrNotPrimary})
			break
		}
		g.client(&ev)
	case Receive:
		n.group(ev.Msg.PG).receive(ev.From, &ev.Msg)
	case StoreDone:
		if fn := n.ops[ev.Result.ID]; fn != nil {
			delete(n.ops, ev.Result.ID)
			fn(ev.Result)
		}
	case ViewChange:
		n.group(ev.View.PG).setView(ev.View)
	case Tick:
		n.tick++
		for _, g := range n.sortedGroups() {
			g.onTick()
			g.maybeForget()
		}
	default:
		panic(fmt.Sprintf("replication: unknown event %T", ev))
	}
	return n.out
}

func (n *Node) group(pg uint32) *group {
	g := n.pgs[pg]
	if g == nil {
		g = &group{n: n, pg: pg, rids: newRIDTable(n.cfg.RequestIDs),
			mutInFlight: map[engine.ObjectID]int{}, sameCheck: map[engine.ObjectID]bool{}, mutEpochs: map[uint64]int{}}
		n.pgs[pg] = g
	}
	return g
}

func (n *Node) send(to uint64, m Msg) { n.out = append(n.out, Send{To: to, Msg: m}) }
func (n *Node) reply(r Reply)         { n.out = append(n.out, r) }

func (n *Node) submit(op StoreOp, done func(StoreResult)) {
	n.opID++
	op.ID = n.opID
	n.ops[op.ID] = done
	n.out = append(n.out, Submit{Op: op})
}

type role uint8

const (
	roleNone role = iota
	rolePrimary
	roleReplica
)

type phase uint8

const (
	phasePeering phase = iota // learning the replicas' highest seqs
	phaseSyncing              // reconciling the non-backfilling replicas
	phaseActive               // serving clients
)

// group is one PG on this node.
type group struct {
	n       *Node
	pg      uint32
	view    View   // the newest view handed to us (may lag epoch)
	epoch   uint64 // the epoch we act in
	role    role
	primary uint64
	rids    *ridTable
	// submittedMax is the highest seq we ever submitted to the store, in
	// any epoch and role: a mutation still in flight shows in no store
	// answer yet, but peering must start above it.
	submittedMax uint64

	// Primary state.
	phase      phase
	peerMax    map[uint64]uint64
	peerMark   map[uint64]uint64 // replicas that reported a sync mark
	peerFloor  map[uint64]uint64 // replicas' tombstone floors (0: none forgotten)
	ownMax     uint64
	ownMaxOK   bool
	ownMark    uint64
	ownMarked  bool
	ownFloor   uint64
	nextSeq    uint64
	epochStart uint64
	pending    map[uint64]*mutation // by seq
	pendingSeq []uint64             // issued seqs in order, lazily pruned
	byRID      map[fsproto.RequestID]*mutation
	objq       map[engine.ObjectID][]*ClientOp
	busy       map[engine.ObjectID]bool
	// readsOut: how many ops at the head of objq[obj] are reads under
	// way (waiting for their round or reading the store); obj is busy
	// while any is. Reads run together, as none changes the object; an
	// op behind them waits for all of them.
	readsOut map[engine.ObjectID]int
	// loading: objects whose stored request ids are being read (see
	// loadRIDs), by load number; the object is busy meanwhile.
	loading    map[engine.ObjectID]uint64
	loadSeq    uint64
	windowWait []engine.ObjectID
	queued     int
	syncs      map[uint64]*syncState
	// Reads: a read waits for a ReadCheck round started after it arrived.
	roundStarted uint64
	roundDone    uint64
	roundAcks    map[uint64]bool
	roundSent    uint64 // tick
	reads        []*readWait
	// Read lease (primary): roundAt is when the round under way started,
	// roundGrant the least lease its answers granted so far (a plain
	// ReadCheckAck grants none); reads are served without a round until
	// leaseUntil.
	roundAt    time.Duration
	roundGrant time.Duration
	leaseUntil time.Duration

	// Replica state.
	// grantUntil: this node promised a primary of an earlier or this
	// epoch, by answering its ReadCheck with a LeaseGrant, not to lead the
	// PG before then (see grantsOut). Kept across views and roles.
	grantUntil  time.Duration
	fwdInFlight map[uint64]bool
	// installing: the seq of each object's install under way in this
	// epoch; a resent SyncObject of that state waits for its ack.
	installing map[engine.ObjectID]uint64
	caughtUp   bool
	// markSet: our store's sync mark covers this epoch's sync, so
	// forwards may be applied (see ListReq).
	markSet bool

	// Every role, every epoch: mutations (Apply, Install) of each object
	// submitted to the store and not yet complete, and the SyncSame
	// checks under way (false once a mutation of the object was submitted
	// while the check read it).
	mutInFlight map[engine.ObjectID]int
	sameCheck   map[engine.ObjectID]bool
	// mutEpochs counts those mutations by the epoch they were submitted in.
	mutEpochs map[uint64]int

	// peeredMax: as a replica, the least max seq we reported to this
	// epoch's primary (PeerInfo): the epoch's seqs start above it.
	peeredMax uint64
	peeredOK  bool
	// Forgetting tombstones (see maybeForget), any role and epoch.
	forgetSample     uint64 // the PG's newest seq forgetSampleTick ...
	forgetSampleTick uint64 // ... at this tick
	forgotUpTo       uint64 // asked of the store since the node started
	forgetting       bool   // a StoreForget is under way
	// announced: as a replica, the highest ForgetUpTo of this epoch's
	// primary: every forward up to it reached us.
	announced uint64
}

type mutation struct {
	seq     uint64
	op      *ClientOp
	waiters []uint64 // client tokens (retries attach here)
	local   bool     // durable locally
	acks    map[uint64]bool
	sent    uint64 // tick of the last forward
}

type readWait struct {
	op    *ClientOp
	round uint64
}

// syncState is a primary's reconciliation of one replica.
type syncState struct {
	base                uint64
	ownDone, remoteDone bool
	remoteAfter         uint64
	listSent            uint64 // tick
	union               map[engine.ObjectID]bool
	sizes               map[engine.ObjectID]uint64 // our objects' sizes, for bytesTot
	queue               []engine.ObjectID
	reading             map[engine.ObjectID]bool
	sent                map[engine.ObjectID]*sentObj
	// remoteSeq: the seq the replica listed for an object; full: objects
	// whose SyncSame the replica refused, sent whole from then on.
	remoteSeq map[engine.ObjectID]uint64
	full      map[engine.ObjectID]bool
	// trustBelow, in a sync listed from 0 because of a floor, is the base
	// it would have had: an object both sides listed at one seq at or
	// below it is left alone, as a sync from that base leaves it (see
	// "Forgotten tombstones"); ownSeq is what we listed.
	trustBelow              uint64
	ownSeq                  map[engine.ObjectID]uint64
	budget                  int
	objectsDone, objectsTot int
	bytesDone, bytesTot     int64
	doneSent                uint64 // tick; 0: not sent
	finished                bool
}

type sentObj struct {
	msg  Msg
	tick uint64
	size int // the object's size (a SyncSame carries no data)
}

func (g *group) others() []uint64 {
	var ids []uint64
	for _, id := range g.view.Replicas {
		if id != g.n.cfg.ID {
			ids = append(ids, id)
		}
	}
	return ids
}

func (g *group) msg(kind MsgKind) Msg { return Msg{Kind: kind, PG: g.pg, Epoch: g.epoch} }

// setView applies a view from the map.
func (g *group) setView(v View) {
	if v.Epoch < g.epoch || (v.Epoch == g.epoch && g.view.Epoch == v.Epoch) {
		if v.Epoch == g.view.Epoch {
			g.view.Backfilling = slices.Clone(v.Backfilling)
		}
		return
	}
	me := g.n.cfg.ID
	newer := v.Epoch > g.epoch
	g.view = View{PG: v.PG, Epoch: v.Epoch, Replicas: slices.Clone(v.Replicas), Backfilling: slices.Clone(v.Backfilling)}
	if len(v.Replicas) > 0 && v.Replicas[0] == me && slices.Contains(v.Backfilling, me) {
		// Every caught-up replica is gone (the map keeps the backfilling
		// ones): leading would serve, and vouch to the others for, a
		// state that may lack acknowledged writes. Wait for a view in
		// which a caught-up replica, or the runner's CaughtUp, leads.
		if g.role == rolePrimary {
			g.stepDown()
		}
		g.epoch = v.Epoch
		g.resetReplica()
		g.role, g.primary = roleNone, 0
		return
	}
	if len(v.Replicas) > 0 && v.Replicas[0] == me {
		if newer || g.role != rolePrimary {
			g.epoch = v.Epoch
			g.becomePrimary()
		}
		return
	}
	if !newer && g.role == roleReplica && len(v.Replicas) > 0 && g.primary == v.Replicas[0] {
		return // the epoch was adopted from the primary's messages: keep its progress
	}
	if g.role == rolePrimary {
		g.stepDown()
	}
	g.epoch = v.Epoch
	g.resetReplica()
	if v.has(me) {
		g.role, g.primary = roleReplica, v.Replicas[0]
	} else {
		g.role, g.primary = roleNone, 0
	}
}

func (g *group) resetReplica() {
	g.fwdInFlight = map[uint64]bool{}
	g.installing = map[engine.ObjectID]uint64{}
	g.caughtUp = false
	g.markSet = false
	g.peeredOK = false
	g.announced = 0
}

// becomePrimary starts peering in g.epoch. Pending mutations survive (they
// are re-forwarded once active); their acks from the old epoch do not.
func (g *group) becomePrimary() {
	g.role, g.primary, g.phase = rolePrimary, g.n.cfg.ID, phasePeering
	g.peerMax = map[uint64]uint64{}
	g.peerMark = map[uint64]uint64{}
	g.peerFloor = map[uint64]uint64{}
	g.ownMaxOK = false
	g.syncs = map[uint64]*syncState{}
	g.roundAcks = nil
	g.setLease(0)
	if g.pending == nil {
		g.pending = map[uint64]*mutation{}
		g.byRID = map[fsproto.RequestID]*mutation{}
		g.objq = map[engine.ObjectID][]*ClientOp{}
		g.busy = map[engine.ObjectID]bool{}
		g.readsOut = map[engine.ObjectID]int{}
		g.loading = map[engine.ObjectID]uint64{}
	}
	for _, m := range g.pending {
		m.acks = map[uint64]bool{}
	}
	g.readOwnMax()
	for _, id := range g.others() {
		g.n.send(id, g.msg(MsgPeerQuery))
	}
	g.roundSent = g.n.tick
	g.checkPeered()
}

// readOwnMax reads our store's highest seq and mark, which starts the
// reconciliation, but only once no mutation of an earlier role or epoch
// is still in our store (a forward or an install we took as a replica,
// our own pending ones): a list or read of our state taken before one
// lands would miss it, and the sync would hand the replicas an older
// state than the one we then hold and serve. Nothing adds to them
// meanwhile (a primary applies no forwards, and issues nothing before it
// is active). onTick calls again until it is read.
func (g *group) readOwnMax() {
	if len(g.mutInFlight) > 0 {
		return
	}
	epoch := g.epoch
	g.n.submit(StoreOp{Kind: StoreMaxSeq, PG: g.pg}, func(r StoreResult) {
		if g.epoch != epoch || g.role != rolePrimary || g.phase != phasePeering {
			return
		}
		if r.Err != nil {
			// Retried from onTick.
			return
		}
		g.ownMax, g.ownMaxOK = r.Seq, true
		g.ownMark, g.ownMarked = r.Mark, r.Marked
		g.ownFloor = r.Floor
		g.checkPeered()
	})
}

// stepDown fails everything the primary holds with ErrStaleEpoch: none of
// it was acknowledged, and none of it will be by this node.
func (g *group) stepDown() {
	fail := func(tok uint64) { g.n.reply(Reply{Token: tok, Err: ErrStaleEpoch}) }
	for _, seq := range g.sortedPending() {
		m := g.pending[seq]
		for _, t := range m.waiters {
			fail(t)
			g.n.stats.StaleFailures++
		}
		if m.local {
			// Failed but applied here: should we lead again, our state
			// holds it, and a retry must be answered, not applied twice
			// (a sync that replaces the object drops the id).
			g.rids.put(m.op.RequestID, m.op.Object, m.seq)
		}
	}
	for _, obj := range g.sortedObjs() {
		q := g.objq[obj]
		for i, op := range q {
			if i == 0 && g.busy[obj] && op.Kind != OpRead {
				continue // its mutation was failed above
			}
			fail(op.Token)
		}
	}
	g.pending, g.byRID, g.objq, g.busy, g.loading, g.readsOut = nil, nil, nil, nil, nil, nil
	g.pendingSeq, g.windowWait, g.reads, g.queued = nil, nil, nil, 0
	g.syncs, g.peerMax, g.peerMark, g.peerFloor, g.roundAcks = nil, nil, nil, nil, nil
	g.setLease(0)
	g.role = roleNone
}

func (g *group) sortedPending() []uint64 {
	seqs := make([]uint64, 0, len(g.pending))
	for s := range g.pending {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	return seqs
}

func objLess(a, b engine.ObjectID) int {
	if a.Hi != b.Hi {
		if a.Hi < b.Hi {
			return -1
		}
		return 1
	}
	if a.Lo < b.Lo {
		return -1
	} else if a.Lo > b.Lo {
		return 1
	}
	return 0
}

func (g *group) sortedObjs() []engine.ObjectID {
	objs := make([]engine.ObjectID, 0, len(g.objq))
	for o := range g.objq {
		objs = append(objs, o)
	}
	slices.SortFunc(objs, objLess)
	return objs
}

func sat(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// checkPeered ends peering once every replica reported its highest seq:
// seqs of this epoch start above all of them, and every other replica is
// reconciled from base = min(its max, ours) - W.
func (g *group) checkPeered() {
	if g.phase != phasePeering || !g.ownMaxOK {
		return
	}
	top := g.ownMax
	for _, id := range g.others() {
		m, ok := g.peerMax[id]
		if !ok {
			return
		}
		top = max(top, m)
	}
	top = max(top, g.submittedMax)
	g.nextSeq = max(g.nextSeq, top+1)
	g.epochStart = g.nextSeq
	g.phase = phaseSyncing
	for _, id := range g.others() {
		// A replica holding seq M durably holds every seq <= M-W, unless
		// a sync of it did not finish: then only below its mark. The
		// same goes for us.
		base := sat(min(g.peerMax[id], g.ownMax), uint64(g.n.cfg.Window))
		if mark, ok := g.peerMark[id]; ok {
			base = min(base, mark)
		}
		if g.ownMarked {
			base = min(base, g.ownMark)
		}
		var trust uint64
		if base > 0 && base < max(g.ownFloor, g.peerFloor[id]) {
			// A change list from base would miss deletes whose
			// tombstones either side forgot: list everything, so that
			// the union holds every object either side has (see
			// "Forgotten tombstones").
			trust, base = base, 0
			g.n.stats.FullSyncs++
		}
		s := &syncState{base: base, remoteAfter: base, union: map[engine.ObjectID]bool{}, sizes: map[engine.ObjectID]uint64{},
			reading: map[engine.ObjectID]bool{}, sent: map[engine.ObjectID]*sentObj{}, budget: g.n.cfg.SyncBytesPerTick,
			remoteSeq: map[engine.ObjectID]uint64{}, full: map[engine.ObjectID]bool{}, trustBelow: trust, ownSeq: map[engine.ObjectID]uint64{}}
		g.syncs[id] = s
		g.listOwn(id, s)
		g.listRemote(id, s)
	}
	g.checkActive()
	g.maybeClearOwnMark()
}

func (g *group) listOwn(id uint64, s *syncState) {
	epoch := g.epoch
	g.n.submit(StoreOp{Kind: StoreChanges, PG: g.pg, Since: s.base}, func(r StoreResult) {
		if g.epoch != epoch || g.role != rolePrimary || g.syncs[id] != s || s.ownDone {
			return
		}
		if r.Err != nil {
			g.listOwn(id, s) // NB: a failing store keeps the PG syncing; the map should move it.
			return
		}
		for i, e := range r.Changes {
			s.union[e.Object] = true
			s.ownSeq[e.Object] = e.Seq
			if i < len(r.Sizes) {
				s.sizes[e.Object] = r.Sizes[i]
			}
		}
		s.ownDone = true
		g.listsDone(id, s)
	})
}

func (g *group) listRemote(id uint64, s *syncState) {
	m := g.msg(MsgListReq)
	m.After, m.Limit = s.remoteAfter, MaxListEntries
	s.listSent = g.n.tick
	g.n.send(id, m)
}

func (g *group) listsDone(id uint64, s *syncState) {
	if !s.ownDone || !s.remoteDone || s.queue != nil {
		return
	}
	s.queue = make([]engine.ObjectID, 0, len(s.union))
	for o := range s.union {
		own, ok := s.ownSeq[o]
		if rs, listed := s.remoteSeq[o]; ok && listed && own == rs && own <= s.trustBelow {
			continue
		}
		s.queue = append(s.queue, o)
	}
	slices.SortFunc(s.queue, objLess)
	s.objectsTot = len(s.queue)
	for _, o := range s.queue {
		s.bytesTot += int64(s.sizes[o])
	}
	g.pump(id, s)
}

// pump sends queued objects to a syncing replica within its byte budget.
func (g *group) pump(id uint64, s *syncState) {
	const maxReading = 16
	epoch := g.epoch
	for len(s.queue) > 0 && s.budget > 0 && len(s.reading)+len(s.sent) < 4*maxReading && len(s.reading) < maxReading {
		obj := s.queue[0]
		s.queue = s.queue[1:]
		if s.reading[obj] || s.sent[obj] != nil {
			continue
		}
		s.reading[obj] = true
		g.n.submit(StoreOp{Kind: StoreGet, PG: g.pg, Object: obj}, func(r StoreResult) {
			if g.epoch != epoch || g.role != rolePrimary || g.syncs[id] != s {
				return
			}
			delete(s.reading, obj)
			if r.Err != nil {
				s.queue = append(s.queue, obj)
				return
			}
			m := g.msg(MsgSyncObject)
			m.Object, m.Seq, m.EpochStart, m.Deleted = obj, r.Seq, g.epochStart, r.NotFound
			if !r.NotFound {
				m.Data = r.Data
			}
			m.RIDs = g.objectRIDs(obj, r.Seq, r.RIDs)
			if rs, ok := s.remoteSeq[obj]; ok && rs == r.Seq && !r.NotFound && !s.full[obj] {
				// The replica listed this very seq: likely the same state,
				// so ask it to check rather than move the data (see the
				// package doc, "Sync moves only what differs").
				m.Kind, m.Data, m.Digest = MsgSyncSame, nil, sha256.Sum256(r.Data)
			}
			s.sent[obj] = &sentObj{msg: m, tick: g.n.tick, size: len(r.Data)}
			g.sendSync(id, s, m)
			g.pump(id, s)
		})
	}
	g.maybeSyncDone(id, s)
}

func (g *group) sendSync(id uint64, s *syncState, m Msg) {
	s.budget -= len(m.Data) + 1
	if m.Kind == MsgSyncSame {
		g.n.stats.SyncSameSent++
	} else {
		g.n.stats.SyncObjectsSent++
		g.n.stats.SyncBytesSent += uint64(len(m.Data))
	}
	g.n.send(id, m)
}

func (g *group) maybeSyncDone(id uint64, s *syncState) {
	if s.queue == nil || len(s.queue) > 0 || len(s.reading) > 0 || len(s.sent) > 0 || s.finished {
		return
	}
	if g.backfilling(id) && g.grantsOut() {
		return // see grantsOut; onTick pumps again
	}
	if s.doneSent == 0 {
		s.doneSent = g.n.tick + 1
		g.n.send(id, g.syncDone())
	}
}

// objectRIDs lists the request ids of obj's mutations up to seq, the ones
// a state of obj at seq includes (one object's mutations are applied in
// seq order), newest MaxObjectRIDs of them: those our store holds with
// the state read (stored), remembered ones and the pending one.
func (g *group) objectRIDs(obj engine.ObjectID, seq uint64, stored []RIDEntry) []RIDEntry {
	var out []RIDEntry
	for _, e := range stored {
		if _, ok := g.rids.m[e.ID]; !ok {
			out = append(out, RIDEntry{ID: e.ID, Seq: e.Seq})
		}
	}
	for _, id := range g.rids.byObj[obj] {
		if e := g.rids.m[id]; e.seq <= seq {
			out = append(out, RIDEntry{ID: id, Seq: e.seq})
		}
	}
	for _, m := range g.pending {
		if m.op.Object == obj && m.seq <= seq {
			out = append(out, RIDEntry{ID: m.op.RequestID, Seq: m.seq})
		}
	}
	slices.SortFunc(out, func(a, b RIDEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	if len(out) > MaxObjectRIDs {
		out = out[len(out)-MaxObjectRIDs:]
	}
	return out
}

// syncDone carries our request ids: the replica now holds what they
// name, by state rather than by forward, and may be the next primary.
func (g *group) syncDone() Msg {
	m := g.msg(MsgSyncDone)
	m.RIDs = g.rids.entries()
	return m
}

func (g *group) progress(id uint64, s *syncState) Progress {
	return Progress{PG: g.pg, Epoch: g.epoch, Replica: id, ObjectsDone: s.objectsDone, ObjectsTotal: s.objectsTot,
		BytesDone: s.bytesDone, BytesTotal: s.bytesTot, Done: s.finished}
}

// maybeClearOwnMark clears the mark a sync left on our store while we
// were a replica, once every replica is reconciled with us: our state is
// then the PG's, whole.
func (g *group) maybeClearOwnMark() {
	if !g.ownMarked {
		return
	}
	for _, id := range g.others() {
		if s := g.syncs[id]; s == nil || !s.finished {
			return
		}
	}
	g.ownMarked = false
	epoch := g.epoch
	g.n.submit(StoreOp{Kind: StoreClearMark, PG: g.pg}, func(r StoreResult) {
		if r.Err != nil && g.epoch == epoch && g.role == rolePrimary {
			g.ownMarked = true // NB: retried at the next SyncDoneAck or epoch
		}
	})
}

func (g *group) backfilling(id uint64) bool { return slices.Contains(g.view.Backfilling, id) }

// checkActive starts serving clients once every non-backfilling replica
// is reconciled: from then on any of them may be chosen as the next
// primary, so each must hold everything a client was told is durable.
func (g *group) checkActive() {
	if g.phase != phaseSyncing {
		return
	}
	if g.grantsOut() {
		// An earlier primary may still serve reads on a lease this node
		// granted: a write acknowledged now could make those stale.
		// onTick checks again.
		return
	}
	for _, id := range g.others() {
		if s := g.syncs[id]; !s.finished && !g.backfilling(id) {
			return
		}
	}
	g.phase = phaseActive
	g.startRound()
	for _, seq := range g.sortedPending() {
		g.forward(g.pending[seq])
	}
	for _, obj := range g.sortedObjs() {
		g.kick(obj)
	}
}

func (g *group) client(op *ClientOp) {
	if op.Kind < OpWrite || op.Kind > OpRead || (op.Kind == OpWrite && (len(op.Data) == 0 || len(op.Data) > MaxDataBytes)) ||
		(op.Kind == OpRead && (op.Len <= 0 || op.Len > MaxDataBytes)) {
		g.n.reply(Reply{Token: op.Token, Err: fmt.Errorf("%w: %v of %d bytes", ErrInvalid, op.Kind, max(len(op.Data), op.Len))})
		return
	}
	if op.Kind != OpRead {
		// A pending id waits for its mutation, even when a replica's
		// table (SyncDoneAck) already names it: not every replica may
		// hold it yet.
		if m := g.byRID[op.RequestID]; m != nil {
			m.waiters = append(m.waiters, op.Token)
			return
		}
		// A remembered id is answered only once active: an id learnt as
		// a replica is durable here, but the other replicas hold it only
		// once reconciled with us.
		if seq, ok := g.rids.get(op.RequestID); ok && g.phase == phaseActive {
			g.n.stats.RetriesAnswered++
			if g.rids.loadedIDs[op.RequestID] {
				g.n.stats.StoredRetries++
			}
			g.n.reply(Reply{Token: op.Token, Seq: seq})
			return
		}
		for _, q := range g.objq[op.Object] {
			if q.Kind != OpRead && q.RequestID == op.RequestID {
				// A retry of a queued op: answer both when it completes.
				g.n.reply(Reply{Token: op.Token, Err: ErrBusy})
				return
			}
		}
	}
	if g.queued >= g.n.cfg.QueueMax {
		g.n.reply(Reply{Token: op.Token, Err: ErrBusy})
		return
	}
	g.queued++
	g.objq[op.Object] = append(g.objq[op.Object], op)
	g.kick(op.Object)
}

// kick starts the head of obj's queue if nothing of obj is in flight.
// Invariant: at most one operation per object is in flight on a primary,
// so replicas see one object's mutations in seq order.
func (g *group) kick(obj engine.ObjectID) {
	q := g.objq[obj]
	if g.phase != phaseActive || len(q) == 0 {
		return
	}
	if n := g.readsOut[obj]; n > 0 || !g.busy[obj] && q[0].Kind == OpRead {
		// The reads at the head of the queue start together, also while
		// earlier ones are under way; the first op that is not a read
		// waits until every read before it is done.
		start := n
		if start > 0 && n < len(q) && q[n].Kind == OpRead {
			g.n.stats.ReadsJoined++
		}
		leased := g.leased()
		for n < len(q) && q[n].Kind == OpRead {
			if leased {
				g.n.stats.LeaseReads++
				g.serveRead(q[n])
			} else {
				g.reads = append(g.reads, &readWait{op: q[n], round: g.roundStarted + 1})
			}
			n++
		}
		g.readsOut[obj] = n
		g.busy[obj] = true
		if n > start {
			g.startRound()
		}
		return
	}
	if g.busy[obj] {
		return
	}
	op := q[0]
	if seq, ok := g.rids.get(op.RequestID); ok {
		g.n.stats.RetriesAnswered++
		if g.rids.loadedIDs[op.RequestID] {
			g.n.stats.StoredRetries++
		}
		g.n.reply(Reply{Token: op.Token, Seq: seq})
		g.popObj(obj)
		return
	}
	if !g.rids.loaded[obj] {
		g.loadRIDs(obj)
		return
	}
	if !g.windowOK() {
		if !slices.Contains(g.windowWait, obj) {
			g.windowWait = append(g.windowWait, obj)
		}
		return
	}
	g.issue(op)
}

// loadRIDs reads the request ids our store holds for obj into the table
// before obj's next mutation is issued, then kicks obj again: a retry of
// a mutation our state holds is then answered, not applied again, also
// after a restart or once the table's FIFO dropped the id (see the
// package doc, "Request ids"). obj stays busy meanwhile. It waits for
// mutations of obj still in our store (from an earlier role or epoch),
// whose completion kicks obj again, so the ids read include theirs.
func (g *group) loadRIDs(obj engine.ObjectID) {
	if g.mutInFlight[obj] > 0 {
		return
	}
	g.busy[obj] = true
	g.loadSeq++
	load := g.loadSeq
	g.loading[obj] = load
	g.n.stats.RIDLoads++
	g.n.submit(StoreOp{Kind: StoreRequests, PG: g.pg, Object: obj}, func(r StoreResult) {
		if g.role != rolePrimary || g.loading[obj] != load {
			return // stepDown failed the op
		}
		delete(g.loading, obj)
		delete(g.busy, obj)
		if r.Err != nil {
			// Nothing was applied: the client may retry.
			op := g.objq[obj][0]
			g.n.reply(Reply{Token: op.Token, Err: fmt.Errorf("%w: reading request ids: %w", ErrStore, r.Err)})
			g.popObj(obj)
			return
		}
		for _, e := range r.RIDs {
			if _, ok := g.rids.get(e.ID); !ok {
				g.rids.put(e.ID, obj, e.Seq)
				g.rids.loadedIDs[e.ID] = true
			}
		}
		g.rids.markLoaded(obj)
		g.kick(obj)
	})
}

// durableEverywhere returns the seq up to which every mutation the
// primary issued is durable on every replica of the view and here: the
// one below the lowest still pending.
func (g *group) durableEverywhere() uint64 {
	if g.prunePending(); len(g.pendingSeq) > 0 {
		return g.pendingSeq[0] - 1
	}
	return g.nextSeq - 1
}

// prunePending drops the completed seqs from the front of pendingSeq.
func (g *group) prunePending() {
	for len(g.pendingSeq) > 0 && g.pending[g.pendingSeq[0]] == nil {
		g.pendingSeq = g.pendingSeq[1:]
	}
}

func (g *group) windowOK() bool {
	g.prunePending()
	return len(g.pendingSeq) == 0 || g.nextSeq < g.pendingSeq[0]+uint64(g.n.cfg.Window)
}

func (g *group) issue(op *ClientOp) {
	seq := g.nextSeq
	if len(g.pendingSeq) > 0 && seq >= g.pendingSeq[0]+uint64(g.n.cfg.Window) {
		panic(fmt.Sprintf("replication: pg %d issuing seq %d with seq %d pending and window %d", g.pg, seq, g.pendingSeq[0], g.n.cfg.Window))
	}
	g.nextSeq++
	g.n.stats.MutationsIssued++
	m := &mutation{seq: seq, op: op, waiters: []uint64{op.Token}, acks: map[uint64]bool{}}
	g.pending[seq] = m
	g.submittedMax = max(g.submittedMax, seq)
	g.pendingSeq = append(g.pendingSeq, seq)
	g.byRID[op.RequestID] = m
	g.busy[op.Object] = true
	st := StoreOp{Kind: StoreApply, PG: g.pg, Object: op.Object, Mut: mutOf(op), Seq: seq, Data: op.Data, RequestID: op.RequestID}
	g.submitMut(st, func(r StoreResult) {
		if g.role != rolePrimary || g.pending[seq] != m {
			if r.Err == nil && !m.local {
				g.rids.put(op.RequestID, op.Object, seq) // see stepDown
			}
			return
		}
		if r.Err != nil {
			// NB: replicas may have applied it; the next peering makes
			// them match this node again.
			g.finish(m, fmt.Errorf("%w: %w", ErrStore, r.Err))
			return
		}
		m.local = true
		g.tryComplete(m)
	})
	g.forward(m)
}

func mutOf(op *ClientOp) Mutation {
	switch op.Kind {
	case OpWrite:
		return Mutation{Kind: MutWrite, Object: op.Object, Off: op.Off}
	case OpTruncate:
		return Mutation{Kind: MutTruncate, Object: op.Object, Size: op.Size}
	default:
		return Mutation{Kind: MutDelete, Object: op.Object}
	}
}

func (g *group) forward(m *mutation) {
	if g.phase != phaseActive {
		return
	}
	m.sent = g.n.tick
	for _, id := range g.others() {
		if !m.acks[id] {
			f := g.msg(MsgForward)
			f.Seq, f.RequestID, f.Mut, f.Data = m.seq, m.op.RequestID, mutOf(m.op), m.op.Data
			g.n.send(id, f)
		}
	}
	g.tryComplete(m)
}

func (g *group) tryComplete(m *mutation) {
	if g.phase != phaseActive || !m.local {
		return
	}
	for _, id := range g.others() {
		if !m.acks[id] {
			return
		}
	}
	g.n.stats.Acknowledged++
	g.rids.put(m.op.RequestID, m.op.Object, m.seq)
	g.finish(m, nil)
}

// finish answers m's waiters and moves its object's queue on.
func (g *group) finish(m *mutation, err error) {
	delete(g.pending, m.seq)
	delete(g.byRID, m.op.RequestID)
	for _, t := range m.waiters {
		g.n.reply(Reply{Token: t, Seq: m.seq, Err: err})
	}
	g.popObj(m.op.Object)
	g.drainWindow()
}

func (g *group) popObj(obj engine.ObjectID) {
	g.dropOp(obj, 0)
	delete(g.busy, obj)
	g.kick(obj)
}

// dropOp removes the op at index i of obj's queue: the head when it
// completes, or a read that finished before reads ahead of it.
func (g *group) dropOp(obj engine.ObjectID, i int) {
	q := g.objq[obj]
	g.queued--
	switch {
	case len(q) == 1:
		delete(g.objq, obj)
	case i == 0:
		g.objq[obj] = q[1:]
	default:
		g.objq[obj] = slices.Delete(q, i, i+1)
	}
}

func (g *group) drainWindow() {
	for len(g.windowWait) > 0 && g.role == rolePrimary && g.windowOK() {
		obj := g.windowWait[0]
		g.windowWait = g.windowWait[1:]
		g.kick(obj)
	}
}

func (g *group) startRound() {
	if g.roundAcks != nil || (len(g.reads) == 0 && !g.renewDue()) {
		return
	}
	if g.n.cfg.ReadLease > 0 {
		g.roundAt, g.roundGrant = g.n.cfg.Now(), g.n.cfg.ReadLease
	}
	g.roundStarted++
	g.roundAcks = map[uint64]bool{}
	g.sendRound()
	g.checkRound()
}

func (g *group) sendRound() {
	g.roundSent = g.n.tick
	for _, id := range g.others() {
		if !g.roundAcks[id] {
			m := g.msg(MsgReadCheck)
			m.Seq = g.roundStarted
			if g.n.cfg.ReadLease > 0 {
				m.Seq |= ReadCheckLease
			}
			g.n.send(id, m)
		}
	}
}

// checkRound completes a read round once every replica of the view
// confirmed our epoch: a newer epoch's primary is a replica of ours, and it
// refuses once it moved on, so no write of a newer epoch was acknowledged
// before the round began.
func (g *group) checkRound() {
	if g.roundAcks == nil {
		return
	}
	for _, id := range g.others() {
		if !g.roundAcks[id] {
			return
		}
	}
	g.roundDone = g.roundStarted
	g.roundAcks = nil
	if l := g.roundGrant; g.n.cfg.ReadLease > 0 && l > 0 {
		// Each replica granted at least l when it answered, after the
		// round started, so its grant runs at least to roundAt + l on
		// its clock; ours ends an eighth of l earlier, which covers
		// clocks whose rates differ by up to 1/7.
		g.setLease(g.roundAt + l - l/8)
	}
	var keep []*readWait
	for _, rw := range g.reads {
		if rw.round <= g.roundDone {
			g.serveRead(rw.op)
		} else {
			keep = append(keep, rw)
		}
	}
	g.reads = keep
	g.startRound()
}

// leased reports whether the primary holds a read lease now: a round
// completed recently enough that no other replica can have led the PG
// since (see "Read leases" in the package doc).
// Invariant: leaseUntil is 0 unless the primary has been active in g.epoch
// since the round it was computed from started (becomePrimary and stepDown
// reset it).
func (g *group) leased() bool {
	return g.n.cfg.ReadLease > 0 && g.phase == phaseActive && g.n.cfg.Now() < g.leaseUntil
}

// setLease sets leaseUntil and tells Config.OnLease when it changed.
func (g *group) setLease(until time.Duration) {
	if until == g.leaseUntil {
		return
	}
	g.leaseUntil = until
	if f := g.n.cfg.OnLease; f != nil {
		f(g.pg, g.epoch, until)
	}
}

// renewDue reports whether a round should start to extend a lease that
// reads use: it has less than half its length left.
func (g *group) renewDue() bool {
	return g.leased() && g.leaseUntil-g.n.cfg.Now() < g.n.cfg.ReadLease/2
}

// grantsOut reports whether this node may still have promised an earlier
// primary not to lead the PG (a LeaseGrant, or any grant before it
// started). Until then it neither serves as primary nor makes a
// backfilling replica caught up (SyncDone): that replica granted the
// earlier primary nothing, and could lead as soon as the map hears it
// caught up (without this hold the simulation fails, seed 171 among
// others: a replica synced while its primary waited led at once and
// acknowledged writes that a deposed primary's lease then read past).
func (g *group) grantsOut() bool {
	until := max(g.grantUntil, g.n.grantFloor)
	return until > 0 && g.n.cfg.Now() < until
}

// ReadReply is the Reply to a client read with token whose store read
// ended with r: its data, or its failure wrapped in ErrStore. A runner
// that serves a read beside the core answers with it too.
func ReadReply(token uint64, r StoreResult) Reply {
	if r.Err != nil {
		return Reply{Token: token, Err: fmt.Errorf("%w: %w", ErrStore, r.Err)}
	}
	return Reply{Token: token, Data: r.Data, EOF: r.EOF, NotFound: r.NotFound}
}

func (g *group) serveRead(op *ClientOp) {
	g.n.submit(StoreOp{Kind: StoreRead, PG: g.pg, Object: op.Object, Off: op.Off, Len: op.Len}, func(r StoreResult) {
		obj := op.Object
		q := g.objq[obj]
		i := -1
		if g.role == rolePrimary {
			i = slices.Index(q[:g.readsOut[obj]], op)
		}
		if i < 0 {
			return // stepDown answered it
		}
		g.n.reply(ReadReply(op.Token, r))
		g.dropOp(obj, i)
		g.readsOut[obj]--
		if g.readsOut[obj] == 0 {
			delete(g.readsOut, obj)
			delete(g.busy, obj)
			g.kick(obj)
		}
	})
}

func (g *group) onTick() {
	t := g.n.tick
	rt := uint64(g.n.cfg.RetransmitTicks)
	if g.role != rolePrimary {
		return
	}
	switch g.phase {
	case phasePeering:
		if t >= g.roundSent+rt {
			g.roundSent = t
			if !g.ownMaxOK {
				g.becomePrimary() // also resends the queries
				return
			}
			for _, id := range g.others() {
				if _, ok := g.peerMax[id]; !ok {
					g.n.send(id, g.msg(MsgPeerQuery))
				}
			}
		}
		return
	}
	g.checkActive() // a lease grant may have run out
	for _, id := range g.others() {
		s := g.syncs[id]
		if s == nil || s.finished {
			continue
		}
		s.budget = g.n.cfg.SyncBytesPerTick
		if !s.remoteDone && t >= s.listSent+rt {
			g.listRemote(id, s)
		}
		for _, obj := range g.sortedSent(s) {
			so := s.sent[obj]
			if t >= so.tick+rt && s.budget > 0 {
				so.tick = t
				g.sendSync(id, s, so.msg)
			}
		}
		if s.doneSent != 0 && t >= s.doneSent+rt {
			s.doneSent = t
			g.n.send(id, g.syncDone())
		}
		if s.queue != nil {
			g.pump(id, s)
		}
	}
	if g.phase != phaseActive {
		return
	}
	for _, seq := range g.sortedPending() {
		if m := g.pending[seq]; t >= m.sent+rt {
			g.forward(m)
		}
	}
	if g.roundAcks != nil && t >= g.roundSent+rt {
		g.sendRound()
	}
}

func (g *group) sortedSent(s *syncState) []engine.ObjectID {
	objs := make([]engine.ObjectID, 0, len(s.sent))
	for o := range s.sent {
		objs = append(objs, o)
	}
	slices.SortFunc(objs, objLess)
	return objs
}

// receive handles a message. Requests (to a replica) are checked against
// our epoch: older ones are answered with MsgStale, newer ones adopted.
// Answers (to a primary) count only in the epoch they were asked in.
func (g *group) receive(from uint64, m *Msg) {
	switch m.Kind {
	case MsgPeerQuery, MsgForward, MsgListReq, MsgSyncObject, MsgSyncSame, MsgSyncDone, MsgReadCheck, MsgForgetUpTo:
		if m.Epoch < g.epoch {
			st := g.msg(MsgStale)
			g.n.send(from, st)
			return
		}
		if m.Epoch > g.epoch {
			if g.role == rolePrimary {
				g.stepDown()
			}
			g.epoch = m.Epoch
			g.role, g.primary = roleReplica, from
			g.resetReplica()
		}
		if g.role != roleReplica || from != g.primary {
			return
		}
		g.replicaReceive(from, m)
		return
	case MsgStale:
		if m.Epoch > g.epoch {
			if g.role == rolePrimary {
				g.stepDown()
			}
			g.epoch = m.Epoch
			g.role, g.primary = roleNone, 0
		}
		return
	}
	if m.Epoch != g.epoch || g.role != rolePrimary || !g.view.has(from) || from == g.n.cfg.ID {
		return
	}
	switch m.Kind {
	case MsgPeerInfo:
		if g.phase == phasePeering {
			g.peerMax[from] = m.Seq
			if m.Marked {
				g.peerMark[from] = m.Mark
			}
			g.peerFloor[from] = m.Floor
			g.checkPeered()
		}
	case MsgForwardAck:
		if p := g.pending[m.Seq]; p != nil && g.phase == phaseActive {
			p.acks[from] = true
			g.tryComplete(p)
		}
	case MsgListResp:
		s := g.syncs[from]
		if s == nil || s.remoteDone || m.After != s.remoteAfter {
			return
		}
		for _, e := range m.Entries {
			s.union[e.Object] = true
			s.remoteAfter = max(s.remoteAfter, e.Seq)
			// Pages follow seqs, so a later page names a newer state.
			s.remoteSeq[e.Object] = e.Seq
		}
		if m.More && len(m.Entries) > 0 {
			g.listRemote(from, s)
			return
		}
		s.remoteDone = true
		g.listsDone(from, s)
	case MsgSyncAck:
		s := g.syncs[from]
		if s == nil || s.sent[m.Object] == nil {
			return
		}
		so := s.sent[m.Object]
		delete(s.sent, m.Object)
		if m.Installed {
			s.objectsDone++
			if so.msg.Kind == MsgSyncSame {
				g.n.stats.SyncSameKept++
			}
			// Totals are what we had when listing; an object that grew
			// since makes done exceed them, so the total follows.
			s.bytesDone += int64(so.size)
			s.bytesTot = max(s.bytesTot, s.bytesDone)
		} else {
			if so.msg.Kind == MsgSyncSame {
				// It holds something else (or could not check): send it whole.
				s.full[m.Object] = true
			}
			// The replica holds a newer live mutation than what we sent
			// (our read raced with it): send the object again.
			s.queue = append(s.queue, m.Object)
		}
		g.n.out = append(g.n.out, g.progress(from, s))
		g.pump(from, s)
	case MsgSyncDoneAck:
		s := g.syncs[from]
		if s == nil || s.finished || s.doneSent == 0 {
			return
		}
		s.finished = true
		g.n.out = append(g.n.out, g.progress(from, s))
		g.checkActive()
		g.maybeClearOwnMark()
	case MsgReadCheckAck, MsgLeaseGrant:
		// Answers echo the round as sent, ReadCheckLease included (a
		// node without leases echoes it too, in a plain ack).
		if g.roundAcks != nil && m.Seq&^ReadCheckLease == g.roundStarted {
			g.roundAcks[from] = true
			// A grant beyond what time.Duration holds is as good as the
			// longest it holds; the lease uses the least grant anyway.
			g.roundGrant = min(g.roundGrant, time.Duration(min(m.Lease, math.MaxInt64)))
			g.checkRound()
		}
	}
}

func (g *group) replicaReceive(from uint64, m *Msg) {
	epoch := g.epoch
	live := func() bool { return g.epoch == epoch && g.role == roleReplica }
	switch m.Kind {
	case MsgPeerQuery:
		g.n.submit(StoreOp{Kind: StoreMaxSeq, PG: g.pg}, func(r StoreResult) {
			if live() && r.Err == nil {
				a := g.msg(MsgPeerInfo)
				a.Seq, a.Mark, a.Marked, a.Floor = max(r.Seq, g.submittedMax), r.Mark, r.Marked, r.Floor
				if !g.peeredOK || a.Seq < g.peeredMax {
					g.peeredMax, g.peeredOK = a.Seq, true
				}
				g.n.send(from, a)
			}
		})
	case MsgForward:
		seq := m.Seq
		if g.fwdInFlight[seq] || !g.markSet {
			// Not before our mark covers this epoch's sync: a forward
			// raises our max seq, which must not vouch for a sync that
			// has not finished. The primary resends.
			return
		}
		g.fwdInFlight[seq] = true
		g.submittedMax = max(g.submittedMax, seq)
		rid, obj := m.RequestID, m.Mut.Object
		g.submitMut(StoreOp{Kind: StoreApply, PG: g.pg, Object: m.Mut.Object, Mut: m.Mut, Seq: seq, KeepIfAtLeast: seq, Data: m.Data, RequestID: rid},
			func(r StoreResult) {
				if r.Err == nil {
					// Remembered so that, as a later primary, we answer a
					// client's retry instead of applying it twice; whatever
					// our role now, our state holds it (the table mirrors
					// the store's ids, see loadRIDs).
					g.rids.put(rid, obj, seq)
				}
				if !live() {
					return
				}
				delete(g.fwdInFlight, seq)
				if r.Err != nil {
					return // the primary resends
				}
				a := g.msg(MsgForwardAck)
				a.Seq = seq
				g.n.send(from, a)
			})
	case MsgListReq:
		after, limit := m.After, m.Limit
		if !g.markSet {
			// The sync starting here may install objects at seqs above
			// what we hold; until it finishes, our max seq must not be
			// trusted above its base, and only a durable mark survives a
			// crash to say so.
			g.n.submit(StoreOp{Kind: StoreSetMark, PG: g.pg, Seq: after}, func(r StoreResult) {
				if live() && r.Err == nil {
					g.markSet = true
					g.replicaReceive(from, &Msg{Kind: MsgListReq, PG: g.pg, Epoch: epoch, After: after, Limit: limit})
				}
			})
			return
		}
		g.n.submit(StoreOp{Kind: StoreChanges, PG: g.pg, Since: after, Limit: int(limit)}, func(r StoreResult) {
			if !live() || r.Err != nil {
				return
			}
			a := g.msg(MsgListResp)
			a.After, a.Entries = after, r.Changes
			a.More = len(r.Changes) >= int(limit)
			g.n.send(from, a)
		})
	case MsgSyncObject:
		obj, seq, rids := m.Object, m.Seq, m.RIDs
		if cur, ok := g.installing[obj]; ok && cur == seq {
			return // a resend: the install under way answers it
		}
		g.installing[obj] = seq
		// Install unless we hold a mutation of this epoch newer than
		// the state sent; state from an older epoch may be divergent
		// (never acknowledged), so the primary's wins.
		keep := max(m.EpochStart, m.Seq+1)
		g.submittedMax = max(g.submittedMax, seq)
		g.submitMut(StoreOp{Kind: StoreInstall, PG: g.pg, Object: obj, Seq: m.Seq, Deleted: m.Deleted, Data: m.Data, KeepIfAtLeast: keep, RIDs: rids},
			func(r StoreResult) {
				if live() && g.installing[obj] == seq {
					delete(g.installing, obj)
				}
				if r.Err != nil {
					return // the primary resends
				}
				if !r.Skipped {
					// The object is now the primary's: so are the ids of the
					// mutations it holds. Ours may name a divergent branch
					// (rolled back, or skipped over by the primary's history)
					// even at the very seq installed: a primary cut off
					// issues seqs the next epoch issues again (sim seed 117).
					// Done whatever our role now: the table mirrors the
					// store's ids (see loadRIDs).
					g.rids.forgetObject(obj)
					for _, e := range rids {
						g.rids.put(e.ID, obj, e.Seq)
					}
				}
				if !live() {
					return
				}
				a := g.msg(MsgSyncAck)
				a.Object, a.Installed = obj, !r.Skipped
				g.n.send(from, a)
			})
	case MsgSyncSame:
		g.checkSame(from, m)
	case MsgForgetUpTo:
		g.announced = max(g.announced, m.Seq)
	case MsgSyncDone:
		if !g.markSet {
			return // a SyncDone from before a restart
		}
		rids := m.RIDs
		g.n.submit(StoreOp{Kind: StoreClearMark, PG: g.pg}, func(r StoreResult) {
			if !live() || r.Err != nil {
				return
			}
			for _, e := range rids {
				g.rids.put(e.ID, e.Object, e.Seq)
			}
			if !g.caughtUp {
				g.caughtUp = true
				g.n.out = append(g.n.out, CaughtUp{PG: g.pg, Epoch: g.epoch})
			}
			g.n.send(from, g.msg(MsgSyncDoneAck))
		})
	case MsgReadCheck:
		a := g.msg(MsgReadCheckAck)
		a.Seq = m.Seq
		// Grant only a primary that asks: one that does not run leases
		// (an older build, during a rolling upgrade) knows no LeaseGrant
		// and would drop it, and its read round would never complete.
		if l := g.n.cfg.ReadLease; l > 0 && m.Seq&ReadCheckLease != 0 {
			// Counted from now, after the primary started the round
			// it counts its lease from.
			g.grantUntil = max(g.grantUntil, g.n.cfg.Now()+l)
			a.Kind, a.Lease = MsgLeaseGrant, uint64(l)
		}
		g.n.send(from, a)
	}
}

// ridTable remembers the seqs of the last n request ids applied (FIFO),
// indexed by object too, so that a rollback can forget the ids it undid.
//
// loaded names the objects whose stored ids are all in the table (see
// loadRIDs). Invariant: every id the store holds for a loaded object is
// in m; so every store completion that adds ids (forwards, installs, our
// own mutations once acknowledged or failed) puts them, and an object
// loses the mark when the FIFO drops one of its ids that may be stored:
// the store keeps an object's newest engine.KeptRequests ids, and the
// table's ids of an object are ids of its history (what makes them
// answerable at all), so an id with that many newer ids of its object
// still in the table is no longer stored. (Dropping the mark on every
// eviction made a primary read the store before nearly every mutation
// once the FIFO was full.) The set is bounded: past 4n objects it is
// emptied, which costs only store reads.
type ridTable struct {
	n      int
	m      map[fsproto.RequestID]ridEntry
	byObj  map[engine.ObjectID][]fsproto.RequestID
	fifo   []fsproto.RequestID
	loaded map[engine.ObjectID]bool
	// loadedIDs: ids that entered the table from the store (statistics).
	loadedIDs map[fsproto.RequestID]bool
}

type ridEntry struct {
	seq uint64
	obj engine.ObjectID
}

func newRIDTable(n int) *ridTable {
	return &ridTable{n: n, m: map[fsproto.RequestID]ridEntry{}, byObj: map[engine.ObjectID][]fsproto.RequestID{},
		loaded: map[engine.ObjectID]bool{}, loadedIDs: map[fsproto.RequestID]bool{}}
}

// newerKept reports whether the table holds engine.KeptRequests ids of
// obj with a seq above seq.
func (t *ridTable) newerKept(obj engine.ObjectID, seq uint64) bool {
	n := 0
	for _, id := range t.byObj[obj] {
		if t.m[id].seq > seq {
			if n++; n >= engine.KeptRequests {
				return true
			}
		}
	}
	return false
}

func (t *ridTable) markLoaded(obj engine.ObjectID) {
	if len(t.loaded) >= 4*t.n {
		clear(t.loaded)
	}
	t.loaded[obj] = true
}

func (t *ridTable) get(id fsproto.RequestID) (uint64, bool) {
	e, ok := t.m[id]
	return e.seq, ok
}

func (t *ridTable) put(id fsproto.RequestID, obj engine.ObjectID, seq uint64) {
	if _, ok := t.m[id]; ok {
		return
	}
	for len(t.fifo) >= t.n {
		if e, ok := t.m[t.fifo[0]]; ok && t.loaded[e.obj] && !t.newerKept(e.obj, e.seq) {
			delete(t.loaded, e.obj)
		}
		t.forget(t.fifo[0])
		t.fifo = t.fifo[1:]
	}
	t.m[id] = ridEntry{seq: seq, obj: obj}
	t.byObj[obj] = append(t.byObj[obj], id)
	t.fifo = append(t.fifo, id)
}

// entries lists the table, oldest first.
func (t *ridTable) entries() []RIDEntry {
	out := make([]RIDEntry, 0, len(t.m))
	for _, id := range t.fifo {
		if e, ok := t.m[id]; ok {
			out = append(out, RIDEntry{ID: id, Object: e.obj, Seq: e.seq})
		}
	}
	return out
}

func (t *ridTable) forget(id fsproto.RequestID) {
	e, ok := t.m[id]
	if !ok {
		return
	}
	delete(t.m, id)
	delete(t.loadedIDs, id)
	ids := slices.DeleteFunc(t.byObj[e.obj], func(x fsproto.RequestID) bool { return x == id })
	if len(ids) == 0 {
		delete(t.byObj, e.obj)
	} else {
		t.byObj[e.obj] = ids
	}
}

// forgetObject forgets obj's ids (a sync replaced the object). Their FIFO
// slots stay until they age out.
func (t *ridTable) forgetObject(obj engine.ObjectID) {
	for _, id := range slices.Clone(t.byObj[obj]) {
		t.forget(id)
	}
}

// submitMut submits a mutation of op.Object (Apply or Install) and counts
// it in flight until it completes, whatever the role or epoch by then.
func (g *group) submitMut(op StoreOp, done func(StoreResult)) {
	obj, epoch := op.Object, g.epoch
	g.mutInFlight[obj]++
	g.mutEpochs[epoch]++
	if _, ok := g.sameCheck[obj]; ok {
		g.sameCheck[obj] = false
	}
	g.n.submit(op, func(r StoreResult) {
		if g.mutInFlight[obj]--; g.mutInFlight[obj] <= 0 {
			delete(g.mutInFlight, obj)
		}
		if g.mutEpochs[epoch]--; g.mutEpochs[epoch] <= 0 {
			delete(g.mutEpochs, epoch)
		}
		done(r)
		if g.role == rolePrimary && g.mutInFlight[obj] == 0 {
			g.kick(obj) // loadRIDs may wait for this
		}
	})
}

// checkSame answers a SyncSame: the object counts as installed only if
// we hold it at m.Seq with data of digest m.Digest, read while no
// mutation of it was in flight, so that the state compared is durable and
// still ours when we answer. Anything else is answered not installed, and
// the primary sends the object whole.
func (g *group) checkSame(from uint64, m *Msg) {
	obj, seq, digest, rids := m.Object, m.Seq, m.Digest, m.RIDs
	if _, ok := g.sameCheck[obj]; ok {
		return // a resend while we check: the check answers
	}
	epoch := g.epoch
	answer := func(installed bool) {
		a := g.msg(MsgSyncAck)
		a.Object, a.Installed = obj, installed
		g.n.send(from, a)
	}
	if g.mutInFlight[obj] > 0 {
		answer(false)
		return
	}
	g.sameCheck[obj] = true
	g.n.submit(StoreOp{Kind: StoreGet, PG: g.pg, Object: obj}, func(r StoreResult) {
		quiet := g.sameCheck[obj]
		delete(g.sameCheck, obj)
		if g.epoch != epoch || g.role != roleReplica {
			return
		}
		// The ids too: the store keeps the primary's (newest) ids only
		// through an install, and a restarted primary answers retries
		// from the store's ids.
		same := quiet && r.Err == nil && !r.NotFound && r.Seq == seq && sha256.Sum256(r.Data) == digest &&
			sameRIDs(r.RIDs, rids)
		if same {
			// As an install would: the object is the primary's state,
			// and so are the ids of the mutations it holds.
			g.rids.forgetObject(obj)
			for _, e := range rids {
				g.rids.put(e.ID, obj, e.Seq)
			}
		}
		answer(same)
	})
}

// sameRIDs reports whether a store's ids of an object (stored) are the
// ones an install of the primary's (sent, oldest first) would leave: its
// newest engine.KeptRequests.
func sameRIDs(stored, sent []RIDEntry) bool {
	sent = sent[max(0, len(sent)-engine.KeptRequests):]
	if len(stored) != len(sent) {
		return false
	}
	for i := range sent {
		if stored[i].ID != sent[i].ID || stored[i].Seq != sent[i].Seq {
			return false
		}
	}
	return true
}

// maybeForget asks the store, every ForgetTicks ticks, to forget the PG's
// tombstones up to the least of (see "Forgotten tombstones" in the package
// doc):
//   - the PG's newest seq as sampled ForgetTicks ago (old enough);
//   - the newest seq less 2*Window, or the newest itself while it is at
//     most Window (a sync's base is 0 then anyway): a sync of a replica
//     that is not behind keeps its usual base;
//   - as a caught-up replica, the highest seq it knows every forward up to
//     which to have reached it: the newest less Window (the window), or
//     what the primary announced (ForgetUpTo);
//   - as a replica still syncing, the max seq it reported at peering.
//
// Only as an active primary or a replica of the epoch, and only once no
// mutation submitted in an earlier epoch is still in the store. A primary
// announces to its replicas what it forgets, capped at the seq below
// which every mutation is durable on every replica.
func (g *group) maybeForget() {
	ft := uint64(g.n.cfg.ForgetTicks)
	t := g.n.tick
	if ft == 0 || g.forgetting || t < g.forgetSampleTick+ft {
		return
	}
	w := uint64(g.n.cfg.Window)
	bound := uint64(math.MaxUint64)
	newest := g.submittedMax
	primary := g.role == rolePrimary && g.phase == phaseActive
	switch {
	case primary:
		newest = max(newest, g.nextSeq-1)
	case g.role == roleReplica && g.caughtUp:
		bound = max(sat(newest, w), g.announced)
	case g.role == roleReplica && g.peeredOK:
		// Still syncing: this epoch's installs may yet come, so only
		// what lies below the epoch.
		bound = g.peeredMax
	default:
		return
	}
	lag := sat(newest, 2*w)
	if newest <= w {
		lag = newest
	}
	upTo := min(bound, g.forgetSample, lag)
	g.forgetSample, g.forgetSampleTick = newest, t
	for e := range g.mutEpochs {
		if e < g.epoch {
			return
		}
	}
	if primary {
		if a := min(upTo, g.durableEverywhere()); a > 0 {
			for _, id := range g.others() {
				m := g.msg(MsgForgetUpTo)
				m.Seq = a
				g.n.send(id, m)
			}
		}
	}
	if upTo <= g.forgotUpTo {
		return
	}
	after := g.forgotUpTo
	g.forgetting = true
	g.n.submit(StoreOp{Kind: StoreForget, PG: g.pg, Since: after, Seq: upTo}, func(r StoreResult) {
		g.forgetting = false
		if r.Err == nil {
			g.forgotUpTo = max(g.forgotUpTo, upTo)
			g.n.stats.TombstonesForgotten += uint64(r.Forgotten)
		}
	})
}
