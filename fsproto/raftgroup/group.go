package raftgroup

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"
)

// StateMachine is the replicated state a Group drives. The Group calls it
// from its one Ready-loop goroutine only, so it needs no locking against
// the Group (it does against its own readers).
type StateMachine interface {
	// Apply applies the command committed at index and returns its result,
	// which the member that proposed it hands to Propose's caller. Apply
	// must be deterministic: every member applies the same commands in the
	// same order and must reach the same state. data is valid only during
	// the call.
	Apply(index uint64, data []byte) (result any)
	// Snapshot returns the state as of the last applied index.
	Snapshot() ([]byte, error)
	// Restore replaces the state with a snapshot's.
	Restore(data []byte) error
}

// LogStore is the durable raft log of one member (package raftlog on the
// journal; MemLog in memory).
//
// NB: raft v3.7 uses protobuf-go messages, which must not be copied, so
// this interface takes and returns pointers; nil or empty HardState and
// Snapshot mean "no change".
type LogStore interface {
	raft.Storage
	// Save makes hs, ents and snap durable before returning. Entries may
	// overwrite a suffix of the log.
	Save(hs *raftpb.HardState, ents []*raftpb.Entry, snap *raftpb.Snapshot) error
	// CreateSnapshot records an application snapshot at index with data,
	// then compacts the log up to index.
	CreateSnapshot(index uint64, cs *raftpb.ConfState, data []byte) (*raftpb.Snapshot, error)
}

// Peer is a member of the group: its raft id and the address its
// transport reaches it at.
type Peer struct {
	ID   uint64
	Addr string
}

// Config configures a member (see Start).
type Config struct {
	// ID is this member's raft id, nonzero and unique in the group.
	ID uint64
	// Peers is the initial membership, this member included, when the
	// group is new (Log is empty and Join is false). When Join is set or
	// the Log already holds state, membership comes from the log and Peers
	// only tells the transport where members are until the log does.
	Peers []Peer
	// Join starts a member with an empty log that an existing group adds
	// with AddMember: it waits for the leader to contact it.
	Join bool
	// Log is the durable raft log. The Group uses it but does not close it.
	Log LogStore
	// SM is the state machine. The Group restores it from Log's snapshot
	// at start, then applies the committed entries after it.
	SM StateMachine
	// Transport carries messages; Start attaches it, Stop detaches it.
	Transport Transport

	TickInterval   time.Duration // default 100ms
	ElectionTicks  int           // default 10
	HeartbeatTicks int           // default 1
	// SnapshotEvery is how many applied entries pass between automatic
	// snapshots (each compacts the log). Default 10000.
	SnapshotEvery uint64
	// MaxPending bounds the proposals and reads waiting at once; more fail
	// with ErrBusy. Default 4096.
	MaxPending int
	// LeaseReads lets a leader answer ReadIndex without a round to its
	// followers while it holds a lease (see "Read leases" in the package
	// doc). Every member of a group must run with the same TickInterval
	// and ElectionTicks, and their clocks must run at rates within 1/8 of
	// each other.
	LeaseReads bool
	Logger     *slog.Logger // default slog.Default()
}

// Defaults of Config.
const (
	DefaultTickInterval   = 100 * time.Millisecond
	DefaultElectionTicks  = 10
	DefaultHeartbeatTicks = 1
	DefaultSnapshotEvery  = 10000
	DefaultMaxPending     = 4096
)

// maxSizePerMsg bounds the entries of one append message; maxInflight the
// append messages in flight to one follower.
const (
	maxSizePerMsg = 1 << 20
	maxInflight   = 256
)

// Errors. Retryable says which invite a retry.
var (
	// ErrStopped is returned by calls on a Group that was stopped (or
	// stopped itself after a storage or state machine failure: Err says
	// why) and by calls waiting when that happened. A proposal that was
	// waiting may or may not be applied.
	ErrStopped = errors.New("raftgroup: group stopped")
	// ErrNoLeader is returned when this member knows no leader: the
	// proposal or read was not submitted. Safe to retry (after a while).
	ErrNoLeader = errors.New("raftgroup: no leader")
	// ErrProposalDropped is returned when the proposal was not and will
	// never be applied: raft refused it, or another entry was committed at
	// the index it had. Safe to retry.
	ErrProposalDropped = errors.New("raftgroup: proposal dropped")
	// ErrLost is returned when a proposal did not reach this member's log,
	// or a read's index did not come back, before the leader (or term)
	// changed or within two election timeouts: raft forwards a follower's
	// proposals and reads without acknowledgement, so a message the
	// network dropped leaves no other sign. A read was not served: retry
	// it. A proposal was most likely lost, but an old leader may still
	// have it and commit it: retry only a command that the state machine
	// deduplicates or that is idempotent.
	ErrLost = errors.New("raftgroup: request lost before it reached the log")
	// ErrRemoved is returned once this member was removed from the group.
	ErrRemoved = errors.New("raftgroup: member removed from the group")
	// ErrBusy is returned when MaxPending proposals and reads are waiting.
	// Nothing was submitted; retry later.
	ErrBusy = errors.New("raftgroup: too many pending requests")
)

// Retryable reports whether err says the request was not applied (or,
// for ErrLost, most likely not: see there) and may be retried.
func Retryable(err error) bool {
	return errors.Is(err, ErrNoLeader) || errors.Is(err, ErrProposalDropped) ||
		errors.Is(err, ErrLost) || errors.Is(err, ErrBusy)
}

// Status is a member's view of the group.
type Status struct {
	ID        uint64
	Leader    uint64
	Term      uint64
	Commit    uint64
	Applied   uint64
	State     string            // "StateLeader", "StateFollower", ...
	Voters    []uint64          // the current configuration's voters
	Learners  []uint64          // and its learners (they replicate but do not vote)
	Members   map[uint64]string // addresses of the members known from the log
	SnapIndex uint64            // index of the last snapshot this member took or installed
	// Match is, on the leader, the highest index known replicated on each
	// member (its own: its last index); nil elsewhere.
	Match map[uint64]uint64
	// Active is, on the leader, whether it heard from each member within
	// the last election timeout (itself included); nil elsewhere.
	Active map[uint64]bool
	// LeaseReads counts the read barriers this member passed on its read
	// lease, without a round (Config.LeaseReads); Lease is what is left of
	// the lease now (0: none).
	LeaseReads uint64
	Lease      time.Duration
	// CommitNoticesDropped counts the appends this member, as leader, did
	// not send because they only carried a new commit index to a follower
	// that had every entry (see Group.dropCommitNotices).
	CommitNoticesDropped uint64
}

// Group runs one member of a Raft group. Its methods are safe for
// concurrent use.
type Group struct {
	cfg    Config
	id     uint64
	log    *slog.Logger
	rn     *raft.RawNode // Ready loop only
	tr     Transport
	nextID atomic.Uint64

	// confIndex is at least the index of every conf change entry in the
	// log: commit notices are kept while it is above the applied index
	// (see dropCommitNotices). Ready loop only.
	confIndex            uint64
	commitNoticesDropped uint64 // Ready loop only

	leader atomic.Uint64
	term   atomic.Uint64
	// removedNow mirrors removed for Removed (any goroutine).
	removedNow atomic.Bool

	// The read lease (Config.LeaseReads). leaseUntil is the monotonic
	// time (ns since epoch) until which this member may serve reads
	// without a round, 0 when it holds no lease; the Ready loop sets it
	// and clears it before anything that could end its leadership is
	// acted on. commit and applied are the loop's commit index (stored
	// before a Ready's messages leave) and applied index (stored after
	// the entries are applied), so a lease read can tell that nothing
	// committed is unapplied here.
	epoch      time.Time
	leaseUntil atomic.Int64
	commit     atomic.Uint64
	appliedPub atomic.Uint64
	leaseReads atomic.Uint64 // reads served on the lease
	// voteHoldUntil: until then (ns since epoch) the loop drops vote
	// requests, as if it had heard from a leader just before it started.
	voteHoldUntil int64
	// leaseWanted is when a read last found the lease missing or past
	// half its life (ns since epoch).
	leaseWanted atomic.Int64

	propc chan *waiter
	readc chan *waiter
	confc chan *waiter
	// transferc carries leadership transfer requests (TransferLeadership).
	transferc chan uint64
	statusc   chan chan Status
	recvc     chan *raftpb.Message
	reportc   chan struct{} // wakes the loop for reports
	stopc     chan struct{}
	donec     chan struct{}
	stopOne   sync.Once

	reports struct {
		sync.Mutex
		unreachable map[uint64]bool
		snapshot    map[uint64]raft.SnapshotStatus
	}

	errMu sync.Mutex
	err   error // why the loop stopped on its own

	// Ready loop only.
	pending   map[uint64]*waiter // proposals by id
	indexed   map[uint64]uint64  // proposal id by the log index it was seen at
	reads     map[uint64]*waiter // reads by id
	applied   uint64
	snapIndex uint64
	confState *raftpb.ConfState
	members   map[uint64]string
	lastLead  uint64
	lastTerm  uint64
	// savedTerm and savedVote are the term and vote of the hard state
	// last persisted (see handleReady's early send).
	savedTerm uint64
	savedVote uint64
	removed   bool
}

// waiter is a proposal, a conf change or a read waiting for the loop.
type waiter struct {
	id        uint64
	data      []byte             // proposal envelope
	cc        *raftpb.ConfChange // conf change
	index     uint64             // log index the proposal was seen at, or the read's index
	ready     bool               // read: index is known
	sent      int64              // read: when its index was asked for (ns since epoch)
	term      uint64             // read: the term it was asked for in
	ticks     int                // ticks since submission, while not seen
	abandoned atomic.Bool        // the caller gave up
	done      chan result        // capacity 1
}

type result struct {
	val any
	err error
}

func (w *waiter) finish(val any, err error) {
	select {
	case w.done <- result{val, err}:
	default:
		panic(fmt.Sprintf("raftgroup: waiter %d finished twice", w.id))
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.ID == 0 {
		errs = append(errs, errors.New("raftgroup: Config.ID is 0, want a nonzero member id"))
	}
	if c.Log == nil {
		errs = append(errs, errors.New("raftgroup: Config.Log is nil"))
	}
	if c.SM == nil {
		errs = append(errs, errors.New("raftgroup: Config.SM is nil"))
	}
	if c.Transport == nil {
		errs = append(errs, errors.New("raftgroup: Config.Transport is nil"))
	}
	if c.TickInterval < 0 {
		errs = append(errs, fmt.Errorf("raftgroup: Config.TickInterval %v, want > 0", c.TickInterval))
	}
	if c.ElectionTicks < 0 || c.HeartbeatTicks < 0 {
		errs = append(errs, fmt.Errorf("raftgroup: Config.ElectionTicks %d and HeartbeatTicks %d, want >= 0", c.ElectionTicks, c.HeartbeatTicks))
	}
	seen := make(map[uint64]bool)
	for _, p := range c.Peers {
		if p.ID == 0 || seen[p.ID] {
			errs = append(errs, fmt.Errorf("raftgroup: Config.Peers: id %d is zero or repeated", p.ID))
		}
		if len(p.Addr) > maxAddrLen {
			errs = append(errs, fmt.Errorf("raftgroup: Config.Peers: address of %d is %d bytes, over %d", p.ID, len(p.Addr), maxAddrLen))
		}
		seen[p.ID] = true
	}
	if c.ElectionTicks > 0 && c.HeartbeatTicks > 0 && c.ElectionTicks <= c.HeartbeatTicks {
		errs = append(errs, fmt.Errorf("raftgroup: Config.ElectionTicks %d must be over HeartbeatTicks %d", c.ElectionTicks, c.HeartbeatTicks))
	}
	return errors.Join(errs...)
}

// Start starts a member: it restores the state machine from the log's
// snapshot, bootstraps a new group from cfg.Peers when the log is empty
// (unless cfg.Join), attaches the transport and runs the Ready loop until
// Stop.
func Start(cfg Config) (*Group, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.TickInterval == 0 {
		cfg.TickInterval = DefaultTickInterval
	}
	if cfg.ElectionTicks == 0 {
		cfg.ElectionTicks = DefaultElectionTicks
	}
	if cfg.HeartbeatTicks == 0 {
		cfg.HeartbeatTicks = DefaultHeartbeatTicks
	}
	if cfg.ElectionTicks <= cfg.HeartbeatTicks {
		return nil, fmt.Errorf("raftgroup: Config.ElectionTicks %d must be over HeartbeatTicks %d", cfg.ElectionTicks, cfg.HeartbeatTicks)
	}
	if cfg.SnapshotEvery == 0 {
		cfg.SnapshotEvery = DefaultSnapshotEvery
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g := &Group{
		cfg:       cfg,
		id:        cfg.ID,
		log:       cfg.Logger.With("raft", cfg.ID),
		tr:        cfg.Transport,
		propc:     make(chan *waiter),
		readc:     make(chan *waiter),
		confc:     make(chan *waiter),
		transferc: make(chan uint64),
		statusc:   make(chan chan Status),
		recvc:     make(chan *raftpb.Message, 256),
		reportc:   make(chan struct{}, 1),
		stopc:     make(chan struct{}),
		donec:     make(chan struct{}),
		pending:   make(map[uint64]*waiter),
		indexed:   make(map[uint64]uint64),
		reads:     make(map[uint64]*waiter),
		members:   make(map[uint64]string),
		epoch:     time.Now(),
	}
	g.leaseWanted.Store(math.MinInt64 / 2)
	if cfg.LeaseReads {
		// A restarted member may have acknowledged a leader just before it
		// stopped, and the leader may count on that for its lease: it
		// must not help elect another leader until that lease is over.
		g.voteHoldUntil = int64(time.Duration(cfg.ElectionTicks) * cfg.TickInterval)
	}
	g.reports.unreachable = make(map[uint64]bool)
	g.reports.snapshot = make(map[uint64]raft.SnapshotStatus)
	var seed [8]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("raftgroup: seed proposal ids: %w", err)
	}
	// Why random: ids must not repeat those of entries a previous run of
	// this member proposed, which the log may still commit and replay.
	g.nextID.Store(binary.LittleEndian.Uint64(seed[:]) >> 1)

	hs, cs, err := cfg.Log.InitialState()
	if err != nil {
		return nil, fmt.Errorf("raftgroup: member %d: read initial state: %w", cfg.ID, err)
	}
	last, err := cfg.Log.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("raftgroup: member %d: read last index: %w", cfg.ID, err)
	}
	snap, err := cfg.Log.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("raftgroup: member %d: read snapshot: %w", cfg.ID, err)
	}
	g.confState = proto.Clone(cs).(*raftpb.ConfState)
	g.savedTerm, g.savedVote = hs.GetTerm(), hs.GetVote()
	// The log may hold conf changes not applied yet (see dropCommitNotices).
	g.confIndex = last
	if !raft.IsEmptySnap(snap) {
		if err := g.restore(snap); err != nil {
			return nil, err
		}
	}
	fresh := raft.IsEmptyHardState(hs) && last == 0
	rc := &raft.Config{
		ID:              cfg.ID,
		ElectionTick:    cfg.ElectionTicks,
		HeartbeatTick:   cfg.HeartbeatTicks,
		Storage:         cfg.Log,
		Applied:         g.applied,
		MaxSizePerMsg:   maxSizePerMsg,
		MaxInflightMsgs: maxInflight,
		CheckQuorum:     true,
		PreVote:         true,
		// A leader that applied its own removal steps down, so the rest
		// elect a leader at once rather than after an election timeout.
		StepDownOnRemoval: true,
		Logger:            raftLogger{g.log},
	}
	rn, err := raft.NewRawNode(rc)
	if err != nil {
		return nil, fmt.Errorf("raftgroup: member %d: %w", cfg.ID, err)
	}
	g.rn = rn
	if fresh && !cfg.Join {
		if len(cfg.Peers) == 0 {
			return nil, fmt.Errorf("raftgroup: member %d: empty log, no Peers and not Join: nothing to start", cfg.ID)
		}
		peers := make([]raft.Peer, len(cfg.Peers))
		for i, p := range cfg.Peers {
			peers[i] = raft.Peer{ID: p.ID, Context: encodeContext(0, p.Addr)}
		}
		if err := rn.Bootstrap(peers); err != nil {
			return nil, fmt.Errorf("raftgroup: member %d: bootstrap: %w", cfg.ID, err)
		}
	}
	for _, p := range cfg.Peers {
		if _, ok := g.members[p.ID]; !ok && p.ID != cfg.ID {
			g.tr.SetPeer(p.ID, p.Addr)
		}
	}
	if err := g.tr.Attach(cfg.ID, g); err != nil {
		return nil, fmt.Errorf("raftgroup: member %d: attach transport: %w", cfg.ID, err)
	}
	g.log.Info("raft member starting", "fresh", fresh, "join", cfg.Join, "applied", g.applied, "last", last)
	go g.run()
	return g, nil
}

// restore installs a snapshot into the state machine (loop or Start).
func (g *Group) restore(snap *raftpb.Snapshot) error {
	members, sm, err := decodeSnapshot(snap.GetData())
	if err != nil {
		return fmt.Errorf("raftgroup: member %d: snapshot at %d: %w", g.id, snap.GetMetadata().GetIndex(), err)
	}
	if err := g.cfg.SM.Restore(sm); err != nil {
		return fmt.Errorf("raftgroup: member %d: restore snapshot at %d: %w", g.id, snap.GetMetadata().GetIndex(), err)
	}
	for id := range g.members {
		if _, ok := members[id]; !ok && id != g.id {
			g.tr.RemovePeer(id)
		}
	}
	g.members = members
	for id, addr := range members {
		if id != g.id {
			g.tr.SetPeer(id, addr)
		}
	}
	g.applied = snap.GetMetadata().GetIndex()
	g.snapIndex = g.applied
	g.confState = proto.Clone(snap.GetMetadata().GetConfState()).(*raftpb.ConfState)
	return nil
}

// ID returns this member's id.
func (g *Group) ID() uint64 { return g.id }

// Leader returns the id of the leader this member knows, or 0.
func (g *Group) Leader() uint64 { return g.leader.Load() }

// Removed reports whether this member has applied its own removal from
// the group (and no later re-addition): it takes no part in the group.
func (g *Group) Removed() bool { return g.removedNow.Load() }

// Err returns why the group stopped on its own (a storage or state
// machine failure), or nil.
func (g *Group) Err() error {
	g.errMu.Lock()
	defer g.errMu.Unlock()
	return g.err
}

// Stop ends the Ready loop and detaches the transport; waiting calls fail
// with ErrStopped. It closes neither the log nor the transport. Safe to
// call more than once.
func (g *Group) Stop() {
	g.stopOne.Do(func() { close(g.stopc) })
	<-g.donec
}

func (g *Group) newID() uint64 {
	for {
		if id := g.nextID.Add(1); id != 0 {
			return id
		}
	}
}

func (g *Group) stoppedErr() error {
	if err := g.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrStopped, err)
	}
	return ErrStopped
}

// submit hands w to the loop on c and waits for its result.
func (g *Group) submit(ctx context.Context, c chan *waiter, w *waiter, what string) (any, error) {
	select {
	case c <- w:
	case <-ctx.Done():
		return nil, fmt.Errorf("raftgroup: member %d: %s not submitted: %w", g.id, what, ctx.Err())
	case <-g.donec:
		return nil, g.stoppedErr()
	}
	select {
	case r := <-w.done:
		if r.err != nil {
			return nil, fmt.Errorf("raftgroup: member %d: %s: %w", g.id, what, r.err)
		}
		return r.val, nil
	case <-ctx.Done():
		w.abandoned.Store(true)
		return nil, fmt.Errorf("raftgroup: member %d: %s not done before the deadline (leader %d): %w", g.id, what, g.Leader(), ctx.Err())
	case <-g.donec:
		select {
		case r := <-w.done:
			if r.err == nil {
				return r.val, nil
			}
		default:
		}
		return nil, g.stoppedErr()
	}
}

// Propose submits a command and returns the state machine's result once
// the command is committed and applied on this member. On a follower raft
// forwards the proposal to the leader. It fails with ErrNoLeader when this
// member knows no leader, ErrProposalDropped or ErrLost when the
// proposal was lost (see there), or ctx's error, wrapped, when ctx ends
// first: then the command may still be applied.
func (g *Group) Propose(ctx context.Context, data []byte) (any, error) {
	w := &waiter{id: g.newID(), done: make(chan result, 1)}
	w.data = encodeEntry(w.id, data)
	return g.submit(ctx, g.propc, w, "proposal")
}

// ReadIndex is a linearizable read barrier: it returns once this member
// has applied everything the leader had committed when the call was made,
// so a read of the state machine that follows sees every write completed
// before the call. It fails with ErrNoLeader or ErrLost (retry) or
// ctx's error.
func (g *Group) ReadIndex(ctx context.Context) error {
	if g.LeaseRead() {
		return nil
	}
	w := &waiter{id: g.newID(), done: make(chan result, 1)}
	_, err := g.submit(ctx, g.readc, w, "read index")
	return err
}

// AddMember adds a voter with id at addr and returns once the change is
// applied on this member. Call it on the leader: raft forwards a conf
// change from a follower, but if the leader then drops it the call only
// ends with ctx. Start the new member with Config.Join first or soon
// after.
func (g *Group) AddMember(ctx context.Context, id uint64, addr string) error {
	if id == 0 || len(addr) > maxAddrLen {
		return fmt.Errorf("raftgroup: AddMember(%d, %q): want a nonzero id and an address of at most %d bytes", id, addr, maxAddrLen)
	}
	return g.changeConf(ctx, raftpb.ConfChangeAddNode, id, addr)
}

// AddLearner adds a learner with id at addr (a member that receives the
// log but does not vote, so a new member catches up without counting
// toward the quorum) and returns once the change is applied on this
// member. AddMember on a learner makes it a voter. Call it on the leader,
// as AddMember; start the learner with Config.Join.
func (g *Group) AddLearner(ctx context.Context, id uint64, addr string) error {
	if id == 0 || len(addr) > maxAddrLen {
		return fmt.Errorf("raftgroup: AddLearner(%d, %q): want a nonzero id and an address of at most %d bytes", id, addr, maxAddrLen)
	}
	return g.changeConf(ctx, raftpb.ConfChangeAddLearnerNode, id, addr)
}

// TransferLeadership asks this member, if it leads, to hand the
// leadership to member to (raft's leadership transfer: to takes over as
// soon as its log is caught up, the leader taking no proposal meanwhile,
// for up to an election timeout). It returns once the member's loop has
// the request; Leader shows the outcome. A follower ignores it.
func (g *Group) TransferLeadership(ctx context.Context, to uint64) error {
	select {
	case g.transferc <- to:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-g.donec:
		return g.stoppedErr()
	}
}

// RemoveMember removes member id and returns once the change is applied on
// this member.
func (g *Group) RemoveMember(ctx context.Context, id uint64) error {
	if id == 0 {
		return errors.New("raftgroup: RemoveMember(0): want a nonzero id")
	}
	return g.changeConf(ctx, raftpb.ConfChangeRemoveNode, id, "")
}

func (g *Group) changeConf(ctx context.Context, t raftpb.ConfChangeType, id uint64, addr string) error {
	w := &waiter{id: g.newID(), done: make(chan result, 1)}
	w.cc = &raftpb.ConfChange{Type: t.Enum(), NodeId: proto.Uint64(id), Context: encodeContext(w.id, addr)}
	_, err := g.submit(ctx, g.confc, w, fmt.Sprintf("%s %d", t, id))
	return err
}

// Status returns this member's view of the group.
func (g *Group) Status(ctx context.Context) (Status, error) {
	c := make(chan Status, 1)
	select {
	case g.statusc <- c:
	case <-ctx.Done():
		return Status{}, ctx.Err()
	case <-g.donec:
		return Status{}, g.stoppedErr()
	}
	return <-c, nil
}

// Step delivers a message from a peer (Receiver). It waits while the
// loop's inbox is full, as long as ctx allows.
func (g *Group) Step(ctx context.Context, m *raftpb.Message) error {
	if err := g.checkTo(m); err != nil {
		return err
	}
	select {
	case g.recvc <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-g.donec:
		return g.stoppedErr()
	}
}

// TryStep delivers a message from a peer if the loop's inbox has room
// (Receiver); it never waits.
func (g *Group) TryStep(m *raftpb.Message) (bool, error) {
	if err := g.checkTo(m); err != nil {
		return false, err
	}
	select {
	case <-g.donec:
		return false, g.stoppedErr()
	default:
	}
	select {
	case g.recvc <- m:
		return true, nil
	default:
		return false, nil
	}
}

// checkTo refuses a message addressed to another member.
func (g *Group) checkTo(m *raftpb.Message) error {
	if m.GetTo() != g.id {
		return fmt.Errorf("raftgroup: member %d: %s message for member %d", g.id, m.GetType(), m.GetTo())
	}
	return nil
}

// ReportUnreachable tells raft a message to id could not be sent
// (Receiver). It never blocks.
func (g *Group) ReportUnreachable(id uint64) {
	g.reports.Lock()
	g.reports.unreachable[id] = true
	g.reports.Unlock()
	g.wake()
}

// ReportSnapshot tells raft whether a snapshot reached id (Receiver). It
// never blocks.
func (g *Group) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	g.reports.Lock()
	// A failure wins over a finish: raft then probes again.
	if old, ok := g.reports.snapshot[id]; !ok || old != raft.SnapshotFailure {
		g.reports.snapshot[id] = status
	}
	g.reports.Unlock()
	g.wake()
}

func (g *Group) wake() {
	select {
	case g.reportc <- struct{}{}:
	default:
	}
}

// run is the Ready loop.
func (g *Group) run() {
	defer close(g.donec)
	// A member that stopped serves no reads, lease or not.
	defer g.leaseUntil.Store(0)
	defer g.tr.Detach()
	defer func() { g.failAll(g.stoppedErr()) }()
	ticker := time.NewTicker(g.cfg.TickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			g.rn.Tick()
			g.sweep()
			g.renewLease()
		case m := <-g.recvc:
			g.step(m)
			g.drain()
		case w := <-g.propc:
			g.propose(w)
			g.drain()
		case w := <-g.confc:
			g.propose(w)
		case to := <-g.transferc:
			// raft would forward a follower's request to the leader;
			// only a leader's own request is meant.
			if g.leader.Load() == g.id {
				g.log.Info("raft leadership transfer asked", "to", to)
				g.rn.TransferLeader(to)
			}
		case w := <-g.readc:
			g.readIndex(w)
			g.drain()
		case <-g.reportc:
			g.applyReports()
		case c := <-g.statusc:
			c <- g.status()
		case <-g.stopc:
			return
		}
		for g.rn.HasReady() {
			if err := g.handleReady(g.rn.Ready()); err != nil {
				g.errMu.Lock()
				g.err = err
				g.errMu.Unlock()
				g.log.Error("raft member stopping", "err", err)
				return
			}
		}
	}
}

// drain takes whatever else has arrived (messages, proposals, reads)
// before the next Ready, so that one Save, one flush and one round of
// messages cover all of it: concurrent proposals share a commit. It
// takes at most drainMax, so that ticks still come through a flood.
func (g *Group) drain() {
	for range drainMax {
		select {
		case m := <-g.recvc:
			g.step(m)
		case w := <-g.propc:
			g.propose(w)
		case w := <-g.readc:
			g.readIndex(w)
		default:
			return
		}
	}
}

// drainMax bounds what one drain takes (see drain).
const drainMax = 256

func (g *Group) step(m *raftpb.Message) {
	if g.voteHoldUntil != 0 {
		if t := m.GetType(); t == raftpb.MsgVote || t == raftpb.MsgPreVote {
			if g.now() < g.voteHoldUntil {
				g.log.Debug("raft vote request dropped: holding votes after start for the lease a leader may count on", "type", t.String(), "from", m.GetFrom())
				return
			}
		}
	}
	if err := g.rn.Step(m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
		g.log.Debug("raft step", "type", m.GetType().String(), "from", m.GetFrom(), "err", err)
	}
}

func (g *Group) pendingFull() bool {
	return len(g.pending)+len(g.reads) >= g.cfg.MaxPending
}

// propose submits a waiter's command, or its conf change when it carries
// one.
func (g *Group) propose(w *waiter) {
	switch {
	case g.removed:
		w.finish(nil, ErrRemoved)
	case g.pendingFull():
		w.finish(nil, ErrBusy)
	case g.rn.BasicStatus().Lead == raft.None:
		w.finish(nil, ErrNoLeader)
	default:
		var err error
		if w.cc != nil {
			err = g.rn.ProposeConfChange(w.cc)
		} else {
			err = g.rn.Propose(w.data)
		}
		if err != nil {
			w.finish(nil, fmt.Errorf("%w: %w", ErrProposalDropped, err))
			return
		}
		g.pending[w.id] = w
	}
}

func (g *Group) readIndex(w *waiter) {
	switch {
	case g.removed:
		w.finish(nil, ErrRemoved)
	case g.pendingFull():
		w.finish(nil, ErrBusy)
	case g.rn.BasicStatus().Lead == raft.None:
		// A follower without a leader drops read requests silently.
		w.finish(nil, ErrNoLeader)
	default:
		var rctx [8]byte
		binary.LittleEndian.PutUint64(rctx[:], w.id)
		w.sent, w.term = g.now(), g.lastTerm
		g.rn.ReadIndex(rctx[:])
		g.reads[w.id] = w
	}
}

func (g *Group) applyReports() {
	g.reports.Lock()
	un, sn := g.reports.unreachable, g.reports.snapshot
	g.reports.unreachable = make(map[uint64]bool)
	g.reports.snapshot = make(map[uint64]raft.SnapshotStatus)
	g.reports.Unlock()
	for id := range un {
		g.rn.ReportUnreachable(id)
	}
	for id, st := range sn {
		g.rn.ReportSnapshot(id, st)
	}
}

// sweep runs at each tick: it forgets waiters whose callers gave up, and
// fails with ErrLost those not seen in the log (reads: not answered)
// within two election timeouts, which a dropped forwarded message leaves
// waiting.
func (g *Group) sweep() {
	lostTicks := 2 * g.cfg.ElectionTicks
	for id, w := range g.pending {
		switch {
		case w.abandoned.Load():
			delete(g.pending, id)
			if w.index != 0 && g.indexed[w.index] == id {
				delete(g.indexed, w.index)
			}
		case w.index == 0:
			if w.ticks++; w.ticks > lostTicks {
				w.finish(nil, fmt.Errorf("%w (not in the log after %d ticks)", ErrLost, w.ticks))
				delete(g.pending, id)
			}
		}
	}
	for id, w := range g.reads {
		switch {
		case w.abandoned.Load():
			delete(g.reads, id)
		case !w.ready:
			if w.ticks++; w.ticks > lostTicks {
				w.finish(nil, fmt.Errorf("%w (no read index after %d ticks)", ErrLost, w.ticks))
				delete(g.reads, id)
			}
		}
	}
}

// failAll ends every waiter with err.
func (g *Group) failAll(err error) {
	for id, w := range g.pending {
		w.finish(nil, err)
		delete(g.pending, id)
	}
	clear(g.indexed)
	for id, w := range g.reads {
		w.finish(nil, err)
		delete(g.reads, id)
	}
}

// leaderChanged fails what a change of leader or term may have lost:
// proposals not yet seen in the log, and reads whose index is unknown.
func (g *Group) leaderChanged(lead, term uint64) {
	for id, w := range g.pending {
		if w.index == 0 {
			w.finish(nil, fmt.Errorf("%w (leader %d term %d)", ErrLost, lead, term))
			delete(g.pending, id)
		}
	}
	for id, w := range g.reads {
		if !w.ready {
			w.finish(nil, fmt.Errorf("%w (leader %d term %d)", ErrLost, lead, term))
			delete(g.reads, id)
		}
	}
}

// entryProposal returns the proposal id an entry carries, or 0.
func entryProposal(e *raftpb.Entry) uint64 {
	switch e.GetType() {
	case raftpb.EntryNormal:
		if len(e.GetData()) == 0 {
			return 0
		}
		id, _, err := decodeEntry(e.GetData())
		if err != nil {
			return 0
		}
		return id
	case raftpb.EntryConfChange:
		_, id, _, err := decodeConfChange(e.GetData())
		if err != nil {
			return 0
		}
		return id
	}
	return 0
}

// handleReady performs one Ready in the order raft requires: persist,
// send, apply, advance.
func (g *Group) handleReady(rd raft.Ready) error {
	if rd.SoftState != nil {
		g.leader.Store(rd.SoftState.Lead)
	}
	if rd.HardState != nil {
		g.term.Store(rd.HardState.GetTerm())
	}
	if lead, term := g.leader.Load(), g.term.Load(); lead != g.lastLead || term != g.lastTerm {
		g.leaseUntil.Store(0)
		if g.lastTerm != 0 {
			g.leaderChanged(lead, term)
		}
		g.lastLead, g.lastTerm = lead, term
	}
	if rd.HardState != nil {
		g.commit.Store(rd.HardState.GetCommit())
	}

	hasSnap := rd.Snapshot != nil && !raft.IsEmptySnap(rd.Snapshot)
	for _, e := range rd.Entries {
		if t := e.GetType(); t == raftpb.EntryConfChange || t == raftpb.EntryConfChangeV2 {
			g.confIndex = max(g.confIndex, e.GetIndex())
		}
	}
	if g.leader.Load() == g.id && g.confIndex <= g.applied {
		rd.Messages = g.dropCommitNotices(rd.Messages)
	}
	// A leader sends before it persists, so that its own flush overlaps
	// its followers' (Raft thesis 10.2.1; etcd's server does the same):
	// raft counts the leader's own copy of new entries only once Advance
	// reports them persisted, so an entry commits on durable copies
	// alone. Everything else waits for the Save: a follower's append
	// acknowledgement and a vote promise state that must be on disk
	// first, and so does any message of a Ready that changes the term or
	// vote (a leader's Ready changes neither, but the check costs
	// nothing).
	g.refreshSnapshots(rd.Messages)
	early := g.leader.Load() == g.id && !hasSnap &&
		(rd.HardState == nil || rd.HardState.GetTerm() == g.savedTerm && rd.HardState.GetVote() == g.savedVote)
	if early {
		g.tr.Send(rd.Messages)
	}
	if rd.HardState != nil || len(rd.Entries) > 0 || hasSnap {
		var snap *raftpb.Snapshot
		if hasSnap {
			snap = rd.Snapshot
		}
		if err := g.cfg.Log.Save(rd.HardState, rd.Entries, snap); err != nil {
			return fmt.Errorf("raftgroup: member %d: save: %w", g.id, err)
		}
		if rd.HardState != nil {
			g.savedTerm, g.savedVote = rd.HardState.GetTerm(), rd.HardState.GetVote()
		}
	}
	for _, e := range rd.Entries {
		id := entryProposal(e)
		if w, ok := g.pending[id]; ok && id != 0 {
			if old, ok := g.indexed[e.GetIndex()]; ok && old != id {
				// Our earlier proposal at this index was overwritten in our
				// log; whether another log still commits it is unknown.
				if ow, ok := g.pending[old]; ok {
					ow.finish(nil, fmt.Errorf("%w (its entry at %d was overwritten)", ErrLost, e.GetIndex()))
					delete(g.pending, old)
				}
			}
			w.index = e.GetIndex()
			g.indexed[w.index] = id
		}
	}

	if !early {
		g.tr.Send(rd.Messages)
	}

	if hasSnap {
		if err := g.restore(rd.Snapshot); err != nil {
			return err
		}
		// Proposals at or below the snapshot were applied or not: the
		// snapshot does not say which.
		for idx, id := range g.indexed {
			if idx <= g.applied {
				if w, ok := g.pending[id]; ok {
					w.finish(nil, fmt.Errorf("%w (installed a snapshot at %d over its entry at %d)", ErrLost, g.applied, idx))
					delete(g.pending, id)
				}
				delete(g.indexed, idx)
			}
		}
		g.log.Info("raft snapshot installed", "index", g.applied)
	}
	for _, e := range rd.CommittedEntries {
		if err := g.apply(e); err != nil {
			return err
		}
	}
	for _, rs := range rd.ReadStates {
		if len(rs.RequestCtx) != 8 {
			continue
		}
		if w, ok := g.reads[binary.LittleEndian.Uint64(rs.RequestCtx)]; ok {
			w.index, w.ready = rs.Index, true
			g.leaseFrom(w)
		}
	}
	g.appliedPub.Store(g.applied)
	for id, w := range g.reads {
		if w.ready && w.index <= g.applied {
			w.finish(nil, nil)
			delete(g.reads, id)
		}
	}
	if g.applied-g.snapIndex >= g.cfg.SnapshotEvery {
		g.snapshot()
	}
	g.rn.Advance(rd)
	return nil
}

// dropCommitNotices removes from a leader's messages the appends that
// carry no entries to a follower that has acknowledged every entry up
// to the append's index: raft sends one to each follower whenever the
// commit index moves, only to tell it the new commit index. A follower
// learns that index from the next append or heartbeat anyway (each
// carries it), and nothing the leader does waits for the follower to
// know it: commits, replies and lease reads depend only on the
// followers' acknowledgements. So each op costs one append round per
// follower instead of two. Dropping a message is what a lossy network
// does, which raft tolerates; this drops only ones it does not need.
//
// Except around a conf change: while one is in the log and not applied
// (confIndex above the applied index), every notice goes out, because a
// member that the change removes gets no heartbeat once the leader
// applied it, and the notice is how it learns the change committed (and
// so that it was removed).
func (g *Group) dropCommitNotices(msgs []*raftpb.Message) []*raftpb.Message {
	out := msgs[:0]
	for _, m := range msgs {
		if m.GetType() == raftpb.MsgApp && len(m.GetEntries()) == 0 && g.caughtUp(m.GetTo(), m.GetIndex()) {
			g.commitNoticesDropped++
			continue
		}
		out = append(out, m)
	}
	return out
}

// caughtUp reports whether follower id replicates in raft's pipelined
// state and has acknowledged the log up to index.
func (g *Group) caughtUp(id, index uint64) bool {
	up := false
	g.rn.WithProgress(func(pid uint64, _ raft.ProgressType, pr tracker.Progress) {
		if pid == id {
			up = pr.State == tracker.StateReplicate && pr.Match >= index
		}
	})
	return up
}

// now is the monotonic time since the Group started, in nanoseconds.
func (g *Group) now() int64 { return int64(time.Since(g.epoch)) }

// leaseDuration is how long after asking for a read index a leader may
// serve reads on the quorum's answer. A follower that accepted a
// leader's message refuses votes until ElectionTicks of its ticks have
// passed, and a candidate does not campaign sooner; with one tick
// already buffered in its ticker and one firing at once, that is at
// least ElectionTicks-2 tick intervals of its clock; 7/8 of that allows
// for clocks running at different rates. 0: no lease possible.
func (g *Group) leaseDuration() int64 {
	if !g.cfg.LeaseReads || g.cfg.ElectionTicks <= 2 {
		return 0
	}
	return int64(time.Duration(g.cfg.ElectionTicks-2) * g.cfg.TickInterval * 7 / 8)
}

// LeaseRead reports whether a read may be served now, without a round
// (Config.LeaseReads): this member leads on a lease and has applied
// everything it knows to be committed. It never waits, so a caller that
// must not (a network reader) serves the read at once when it reports
// true, and otherwise leaves it to a goroutine that calls ReadIndex,
// which asks it first. It notes that reads want the lease when it is
// missing or past half its life, so the loop renews it.
func (g *Group) LeaseRead() bool {
	d := g.leaseDuration()
	if d == 0 {
		return false
	}
	now := g.now()
	until := g.leaseUntil.Load()
	if until-now < d/2 {
		g.leaseWanted.Store(now)
	}
	if now >= until {
		return false
	}
	// commit first: an entry committed before the read began is applied.
	if c := g.commit.Load(); g.appliedPub.Load() < c {
		return false
	}
	g.leaseReads.Add(1)
	return true
}

// leaseFrom extends the lease with a read index the quorum answered:
// every member that answered accepted this leader's heartbeat after w
// was asked for, in w's term (loop only).
func (g *Group) leaseFrom(w *waiter) {
	d := g.leaseDuration()
	if d == 0 || g.removed || g.lastLead != g.id || w.term != g.lastTerm {
		return
	}
	if until := w.sent + d; until > g.leaseUntil.Load() {
		g.leaseUntil.Store(until)
	}
}

// renewLease asks for a read index, at a tick, when reads wanted the
// lease within its duration and it has less than half of it left, so
// that steady reads find it valid (loop only).
func (g *Group) renewLease() {
	d := g.leaseDuration()
	if d == 0 || g.removed || g.lastLead != g.id {
		return
	}
	now := g.now()
	if now-g.leaseWanted.Load() > d || g.leaseUntil.Load()-now >= d/2 {
		return
	}
	g.readIndex(&waiter{id: g.newID(), done: make(chan result, 1)})
}

// apply applies one committed entry.
func (g *Group) apply(e *raftpb.Entry) error {
	idx := e.GetIndex()
	if idx <= g.applied {
		return nil
	}
	if idx != g.applied+1 {
		panic(fmt.Sprintf("raftgroup: member %d: committed entry %d after applied %d", g.id, idx, g.applied))
	}
	var id uint64
	var val any
	switch e.GetType() {
	case raftpb.EntryNormal:
		if len(e.GetData()) > 0 {
			pid, cmd, err := decodeEntry(e.GetData())
			if err != nil {
				return fmt.Errorf("raftgroup: member %d: committed entry %d: %w", g.id, idx, err)
			}
			id = pid
			val = g.cfg.SM.Apply(idx, cmd)
		}
	case raftpb.EntryConfChange:
		cc, pid, addr, err := decodeConfChange(e.GetData())
		if err != nil {
			return fmt.Errorf("raftgroup: member %d: committed conf change %d: %w", g.id, idx, err)
		}
		id = pid
		g.confState = g.rn.ApplyConfChange(cc)
		node := cc.GetNodeId()
		switch cc.GetType() {
		case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
			g.members[node] = addr
			if node != g.id {
				g.tr.SetPeer(node, addr)
			} else {
				// Added back after a removal: a member that lost its
				// log and joined again replays both entries.
				g.removed = false
				g.removedNow.Store(false)
			}
		case raftpb.ConfChangeRemoveNode:
			delete(g.members, node)
			if node == g.id {
				g.removed = true
				g.removedNow.Store(true)
				g.leaseUntil.Store(0)
			} else {
				g.tr.RemovePeer(node)
			}
		}
		g.log.Info("raft conf change applied", "index", idx, "type", cc.GetType().String(), "node", node, "addr", addr)
	default:
		return fmt.Errorf("raftgroup: member %d: committed entry %d of unsupported type %s", g.id, idx, e.GetType())
	}
	g.applied = idx

	if pid, ok := g.indexed[idx]; ok {
		delete(g.indexed, idx)
		if pid != id {
			if w, ok := g.pending[pid]; ok {
				w.finish(nil, fmt.Errorf("%w (another entry was committed at %d)", ErrProposalDropped, idx))
				delete(g.pending, pid)
			}
		}
	}
	if w, ok := g.pending[id]; ok && id != 0 {
		w.finish(val, nil)
		delete(g.pending, id)
	}
	if g.removed {
		g.failAll(ErrRemoved)
	}
	return nil
}

// refreshSnapshots replaces the snapshot of each outgoing MsgSnap whose
// configuration does not name its recipient by a fresh one at the
// applied index. raft sends the log's last snapshot to a member that
// needs entries the log compacted away; for a member added after that
// snapshot (a learner that joins with an empty log) the snapshot's
// configuration lacks it, and raft's receiving side ignores such a
// snapshot ("not in the ConfState"), so without this the member would
// wait, probed again and again, until the group happened to take its
// next snapshot (SnapshotEvery entries later: never, in an idle group).
// The conf change that added the recipient is applied here (raft
// replicates only to members of its applied configuration), so the
// fresh snapshot names it. A larger snapshot index than raft asked for
// is fine: the member acknowledges the index it installed.
func (g *Group) refreshSnapshots(msgs []*raftpb.Message) {
	var fresh *raftpb.Snapshot
	for _, m := range msgs {
		if m.GetType() != raftpb.MsgSnap || m.Snapshot == nil {
			continue
		}
		if names(m.Snapshot.GetMetadata().GetConfState(), m.GetTo()) {
			continue
		}
		if fresh == nil {
			if g.snapIndex < g.applied {
				g.snapshot()
			}
			snap, err := g.cfg.Log.Snapshot()
			if err != nil {
				g.log.Warn("raft snapshot for a new member: read", "to", m.GetTo(), "err", err)
				return
			}
			fresh = snap
		}
		if !names(fresh.GetMetadata().GetConfState(), m.GetTo()) {
			g.log.Warn("raft snapshot for a new member: the applied configuration does not name it", "to", m.GetTo(), "index", fresh.GetMetadata().GetIndex())
			continue
		}
		g.log.Info("raft snapshot for a new member taken afresh", "to", m.GetTo(), "was", m.Snapshot.GetMetadata().GetIndex(), "now", fresh.GetMetadata().GetIndex())
		m.Snapshot = fresh
	}
}

// names reports whether configuration cs has id as a voter or learner
// (incoming or outgoing).
func names(cs *raftpb.ConfState, id uint64) bool {
	return slices.Contains(cs.GetVoters(), id) || slices.Contains(cs.GetLearners(), id) ||
		slices.Contains(cs.GetVotersOutgoing(), id) || slices.Contains(cs.GetLearnersNext(), id)
}

// snapshot records a snapshot at the applied index and compacts the log.
// A failure is logged and retried at the next Ready: the log only grows.
func (g *Group) snapshot() {
	sm, err := g.cfg.SM.Snapshot()
	if err != nil {
		g.log.Warn("raft snapshot: state machine", "index", g.applied, "err", err)
		return
	}
	if _, err := g.cfg.Log.CreateSnapshot(g.applied, g.confState, encodeSnapshot(g.members, sm)); err != nil {
		g.log.Warn("raft snapshot: log", "index", g.applied, "err", err)
		return
	}
	g.snapIndex = g.applied
	g.log.Debug("raft snapshot taken", "index", g.applied)
}

func (g *Group) status() Status {
	st := g.rn.Status()
	s := Status{
		ID:         g.id,
		Leader:     st.Lead,
		Term:       st.HardState.GetTerm(),
		Commit:     st.HardState.GetCommit(),
		Applied:    g.applied,
		State:      st.RaftState.String(),
		Members:    make(map[uint64]string, len(g.members)),
		SnapIndex:  g.snapIndex,
		LeaseReads: g.leaseReads.Load(),

		CommitNoticesDropped: g.commitNoticesDropped,
	}
	if left := g.leaseUntil.Load() - g.now(); left > 0 {
		s.Lease = time.Duration(left)
	}
	for id, addr := range g.members {
		s.Members[id] = addr
	}
	for id := range st.Config.Voters.IDs() {
		s.Voters = append(s.Voters, id)
	}
	slices.Sort(s.Voters)
	for id := range st.Config.Learners {
		s.Learners = append(s.Learners, id)
	}
	slices.Sort(s.Learners)
	if len(st.Progress) > 0 {
		s.Match = make(map[uint64]uint64, len(st.Progress))
		s.Active = make(map[uint64]bool, len(st.Progress))
		for id, pr := range st.Progress {
			s.Match[id] = pr.Match
			s.Active[id] = pr.RecentActive || id == g.id
		}
	}
	return s
}

// raftLogger sends raft's log to slog: debug and info at debug level,
// since raft is chatty and the Group logs the events that matter.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)              { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(f string, v ...any)   { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Info(v ...any)               { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(f string, v ...any)    { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Warning(v ...any)            { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(f string, v ...any) { r.l.Warn(fmt.Sprintf(f, v...)) }
func (r raftLogger) Error(v ...any)              { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(f string, v ...any)   { r.l.Error(fmt.Sprintf(f, v...)) }
func (r raftLogger) Fatal(v ...any)              { r.Panic(v...) }
func (r raftLogger) Fatalf(f string, v ...any)   { r.Panicf(f, v...) }
func (r raftLogger) Panic(v ...any)              { s := fmt.Sprint(v...); r.l.Error(s); panic(s) }
func (r raftLogger) Panicf(f string, v ...any)   { s := fmt.Sprintf(f, v...); r.l.Error(s); panic(s) }
