package manager

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/raftgroup"
	"github.com/weftfs/weft/fsproto/raftlog"
	"github.com/weftfs/weft/internal/vfs"
	"github.com/weftfs/weft/net"
)

// GroupID is the raft group id of the cluster map on a node's
// raftgroup.NetRouter. Container metadata groups use other ids. On-wire:
// never renumber.
const GroupID uint64 = 1

// Defaults of Config.
const (
	DefaultHeartbeatTimeout = 5 * time.Second
	DefaultMapWaitMax       = 10 * time.Second
	DefaultProposeTimeout   = 5 * time.Second
)

// Bounds of the liveness loop's period (HeartbeatTimeout/5, clamped), so
// that a node is marked Down within HeartbeatTimeout plus a fifth of it.
// While the map has no FSID the loop comes round every fsidRoundWait.
const (
	livenessPeriodMin = 10 * time.Millisecond
	livenessPeriodMax = time.Second
	fsidRoundWait     = 50 * time.Millisecond
)

// Config configures a manager member (see Start).
type Config struct {
	// ID is this member's raft id: nonzero, and one of Peers' ids.
	ID uint64
	// Peers is the initial group, this member included; used when Dir
	// holds no log yet (bootstrap). A restarted member takes membership
	// from its log and Peers only gives the transport addresses.
	Peers []raftgroup.Peer
	// Dir is the raft log's directory (a journal; created if missing) on
	// FS (nil: vfs.Default).
	Dir string
	FS  vfs.FS
	// Router carries raft traffic (kind 300); the member uses
	// Router.Transport(GroupID).
	Router *raftgroup.NetRouter
	// Pool reaches the peers, with the cluster key, for the questions a
	// member whose log is empty asks before it starts (KindMembers, see
	// decideStart). Needed when Peers has more than this member.
	Pool *net.Pool

	// HeartbeatTimeout is how long a node may stay silent before the
	// leader marks it Down. Default DefaultHeartbeatTimeout.
	HeartbeatTimeout time.Duration
	// MapWaitMax bounds how long a get-map long poll waits on this member
	// before it answers "no newer map". Default DefaultMapWaitMax.
	MapWaitMax time.Duration
	// ProposeTimeout bounds how long an apply request (or read barrier)
	// waits for raft on this member. Default DefaultProposeTimeout.
	ProposeTimeout time.Duration

	// TickInterval, ElectionTicks and SnapshotEvery are passed to
	// raftgroup (zero: its defaults). Tests shorten the tick.
	TickInterval  time.Duration
	ElectionTicks int
	SnapshotEvery uint64

	// Access resolves request keys to grants (the node's keys file and
	// map keys); nil checks nothing but the read-only flag. See
	// authorize for what each kind needs.
	Access clustermap.Authorizer
	// ClusterSecret is the cluster key's secret, from which container
	// key secrets are derived (clustermap.KeySecret) for KindKeySecret;
	// nil makes that RPC fail with CodeRejected.
	ClusterSecret []byte

	Logger *slog.Logger // default slog.Default()
}

func (c *Config) validate() error {
	var errs []string
	if c.ID == 0 {
		errs = append(errs, "ID is 0, want a nonzero member id")
	}
	if !slices.ContainsFunc(c.Peers, func(p raftgroup.Peer) bool { return p.ID == c.ID }) {
		errs = append(errs, fmt.Sprintf("Peers %v do not include ID %d", c.Peers, c.ID))
	}
	if c.Dir == "" {
		errs = append(errs, "Dir is empty, want the raft log directory")
	}
	if c.Router == nil {
		errs = append(errs, "Router is nil, want the node's raftgroup.NetRouter")
	}
	if c.Pool == nil && len(c.Peers) > 1 {
		errs = append(errs, "Pool is nil, want the node's connection pool (a member asks its peers before it starts on an empty log)")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"HeartbeatTimeout", c.HeartbeatTimeout}, {"MapWaitMax", c.MapWaitMax}, {"ProposeTimeout", c.ProposeTimeout}, {"TickInterval", c.TickInterval}} {
		if d.v < 0 {
			errs = append(errs, fmt.Sprintf("%s %v is negative, want >= 0 (0: default)", d.name, d.v))
		}
	}
	if c.ElectionTicks < 0 {
		errs = append(errs, fmt.Sprintf("ElectionTicks %d is negative, want >= 0 (0: default)", c.ElectionTicks))
	}
	if len(errs) > 0 {
		return fmt.Errorf("manager: invalid config: %s", strings.Join(errs, "; "))
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.MapWaitMax == 0 {
		c.MapWaitMax = DefaultMapWaitMax
	}
	if c.ProposeTimeout == 0 {
		c.ProposeTimeout = DefaultProposeTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Manager is one member of the managers' raft group: it replicates the
// cluster map, serves the manager RPCs and, while it leads, turns node
// heartbeats into state changes. Its methods are safe for concurrent use.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	store *raftlog.Storage
	sm    *StateMachine
	// g is the raft member: nil until it starts, which for a member
	// whose log is empty (and with peers) waits for probeAndStart; never
	// nil again once set.
	g atomic.Pointer[raftgroup.Group]

	stopc    chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	// live is the leader's liveness tracker: nil while this member does
	// not lead. A new one (fresh grace for every node) starts with each
	// term this member leads.
	live struct {
		sync.Mutex
		term  uint64
		l     *clustermap.Liveness
		fresh bool // not yet seeded with the map's Down nodes
	}

	// repair is the membership repair's state: the lost-log reports this
	// member received (noteLost), its last step as leader, and why it has
	// not started (probeAndStart).
	repair struct {
		sync.Mutex
		lost     map[uint64]time.Time
		step     string
		starting string
		startErr error // the raft member's start failed (probeAndStart)
		// joined: the member started empty and joined as a learner a
		// leader added (its log lost, or new), rather than from its log
		// or bootstrapping.
		joined bool
	}
}

// Start opens the raft log in cfg.Dir and starts the member and its
// liveness loop. A member whose log is empty and that has peers starts
// its raft member only once its peers' answers allow (decideStart:
// bootstrap, or join as a learner a leader added), asking them each
// probeInterval in the background; until then it answers CodeUnavailable
// and Starting says why. Call Register to serve the RPCs (the peers'
// questions too).
func Start(cfg Config) (*Manager, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With("manager", cfg.ID)
	store, err := raftlog.Open(raftlog.Options{FS: cfg.FS, Dir: cfg.Dir, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("manager %d: open raft log: %w", cfg.ID, err)
	}
	empty, err := store.Empty()
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("manager %d: %w", cfg.ID, err)
	}
	m := &Manager{cfg: cfg, log: log, store: store, sm: NewStateMachine(), stopc: make(chan struct{})}
	if empty && len(cfg.Peers) > 1 {
		m.wg.Add(1)
		go m.probeAndStart()
	} else if err := m.startGroup(false); err != nil {
		store.Close()
		return nil, err
	}
	m.wg.Add(1)
	go m.livenessLoop()
	return m, nil
}

// startGroup starts the raft member: from the log when it holds state,
// else bootstrapping the group from Peers, or, with join, as a learner
// that a leader added (it waits for the leader's log or snapshot).
func (m *Manager) startGroup(join bool) error {
	g, err := raftgroup.Start(raftgroup.Config{
		ID:            m.cfg.ID,
		Peers:         m.cfg.Peers,
		Join:          join,
		Log:           m.store,
		SM:            m.sm,
		Transport:     m.cfg.Router.Transport(GroupID),
		TickInterval:  m.cfg.TickInterval,
		ElectionTicks: m.cfg.ElectionTicks,
		SnapshotEvery: m.cfg.SnapshotEvery,
		Logger:        m.log,
	})
	if err != nil {
		return fmt.Errorf("manager %d: start raft group: %w", m.cfg.ID, err)
	}
	m.repair.Lock()
	m.repair.joined = join
	m.repair.Unlock()
	m.g.Store(g)
	return nil
}

// Stop stops the liveness loop and the raft member and closes the log.
// RPCs still arriving are answered CodeUnavailable (the handlers stay
// registered on the mux). Safe to call more than once.
func (m *Manager) Stop() {
	m.stopOnce.Do(func() {
		close(m.stopc)
		m.wg.Wait()
		if g := m.g.Load(); g != nil {
			g.Stop()
		}
		if err := m.store.Close(); err != nil {
			m.log.Warn("close raft log", "err", err)
		}
	})
}

// Map returns the latest map applied on this member (not a linearizable
// read: a follower may lag). It is never modified afterwards.
func (m *Manager) Map() *clustermap.Map { return m.sm.Map() }

// ID returns this member's raft id.
func (m *Manager) ID() uint64 { return m.cfg.ID }

// Leader returns the id of the leader this member knows, or 0.
func (m *Manager) Leader() uint64 {
	if g := m.g.Load(); g != nil {
		return g.Leader()
	}
	return 0
}

// Status returns this member's view of the raft group; an error while
// its raft member has not started (Starting).
func (m *Manager) Status(ctx context.Context) (raftgroup.Status, error) {
	g := m.g.Load()
	if g == nil {
		return raftgroup.Status{}, fmt.Errorf("manager %d: not started: %s", m.cfg.ID, m.Starting())
	}
	return g.Status(ctx)
}

// Err returns why the raft member stopped on its own (a log or state
// machine failure), or nil.
func (m *Manager) Err() error {
	if g := m.g.Load(); g != nil {
		return g.Err()
	}
	m.repair.Lock()
	defer m.repair.Unlock()
	return m.repair.startErr
}

// stopContext returns a context that ends when the manager stops, or
// when cancel is called.
func (m *Manager) stopContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-m.stopc:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (m *Manager) stopped() bool {
	select {
	case <-m.stopc:
		return true
	default:
		return false
	}
}

// down says why this member cannot serve (stopped, or its raft member
// failed on its own), or "" when it can.
func (m *Manager) down() string {
	if m.stopped() {
		return fmt.Sprintf("manager %d: stopped", m.cfg.ID)
	}
	g := m.g.Load()
	if g == nil {
		return fmt.Sprintf("manager %d: raft member not started: %s", m.cfg.ID, m.Starting())
	}
	if err := g.Err(); err != nil {
		return fmt.Sprintf("manager %d: raft member failed: %v", m.cfg.ID, err)
	}
	return ""
}

// Register registers the manager RPCs (KindGetMap, KindApply,
// KindHeartbeat, KindKeySecret) on mux. Call it once, before the server
// starts.
func (m *Manager) Register(mux *net.ServeMux) {
	mux.HandleFunc(KindGetMap, m.serveGetMap)
	mux.HandleFunc(KindApply, m.serveApply)
	mux.HandleFunc(KindHeartbeat, m.serveHeartbeat)
	mux.HandleFunc(KindKeySecret, m.serveKeySecret)
	mux.HandleFunc(KindMembers, m.serveMembers)
	mux.HandleFunc(KindRemoveMember, m.serveRemoveMember)
}

func (m *Manager) serveGetMap(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
	r, err := decodeGetMapRequest(req.Header)
	if err != nil {
		w.Error(CodeBadRequest, err.Error())
		return
	}
	if why := m.down(); why != "" {
		w.Error(CodeUnavailable, why)
		return
	}
	g, err := authorize(m.cfg.Access, &req.Peer, KindGetMap, nil, nil, "")
	if err != nil {
		w.Error(CodeAccessDenied, fmt.Sprintf("manager %d: access denied: %v", m.cfg.ID, err))
		return
	}
	if r.Linearizable {
		rctx, cancel := context.WithTimeout(ctx, m.cfg.ProposeTimeout)
		err := m.g.Load().ReadIndex(rctx)
		cancel()
		if err != nil {
			// A read barrier changes nothing, so any failure is safe
			// to retry.
			w.Error(CodeUnavailable, fmt.Sprintf("manager %d: read barrier: %v", m.cfg.ID, err))
			return
		}
	}
	var cur *clustermap.Map
	ok := false
	if r.After == 0 {
		cur, ok = m.sm.Map(), true
	} else {
		wait := min(r.Wait, m.cfg.MapWaitMax)
		wctx, cancel := context.WithTimeout(ctx, wait)
		cur, ok = m.sm.Wait(wctx, m.stopc, r.After)
		cancel()
	}
	if !ok {
		if why := m.down(); why != "" {
			w.Error(CodeUnavailable, why)
			return
		}
		w.Reply(reply{Epoch: cur.Epoch}.append(nil), nil, nil)
		return
	}
	if g.Role == clustermap.RoleContainer {
		// A container key sees its own container only (and, an admin
		// key, its keys).
		m.replyReducedMap(w, cur.ForContainer(g.Container, g.Access == clustermap.AccessAdmin))
		return
	}
	m.replyMap(w, cur)
}

// replyReducedMap answers with a map made for one container key (not the
// state machine's cached encoding, which is the whole map).
func (m *Manager) replyReducedMap(w *net.ResponseWriter, cur *clustermap.Map) {
	enc, err := cur.MarshalBinary()
	if err != nil {
		panic(fmt.Sprintf("manager %d: reduced map at epoch %d does not encode: %v", m.cfg.ID, cur.Epoch, err))
	}
	if err := w.Reply(reply{HasMap: true, Epoch: cur.Epoch}.append(nil), [][]byte{enc}, nil); err != nil {
		w.Error(CodeRejected, fmt.Sprintf("manager %d: map at epoch %d (%d bytes) does not fit the reply: %v; raise MaxPayloadBytes", m.cfg.ID, cur.Epoch, len(enc), err))
	}
}

func (m *Manager) replyMap(w *net.ResponseWriter, cur *clustermap.Map) {
	enc, err := m.sm.encoded(cur)
	if err != nil {
		// Maps come from Apply or the decoder, which both check them.
		panic(fmt.Sprintf("manager %d: map at epoch %d does not encode: %v", m.cfg.ID, cur.Epoch, err))
	}
	if err := w.Reply(reply{HasMap: true, Epoch: cur.Epoch}.append(nil), [][]byte{enc}, nil); err != nil {
		// Over the connection's payload limit: asking again cannot
		// help, so not CodeUnavailable. (An apply did apply.)
		w.Error(CodeRejected, fmt.Sprintf("manager %d: map at epoch %d (%d bytes) does not fit the reply: %v; raise MaxPayloadBytes", m.cfg.ID, cur.Epoch, len(enc), err))
	}
}

func (m *Manager) serveApply(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
	if req.Peer.ReadOnly {
		w.Error(CodeReadOnly, fmt.Sprintf("manager %d: key %q is read-only; apply needs a write key", m.cfg.ID, req.Peer.KeyID))
		return
	}
	r, err := decodeApplyRequest(req.Header)
	var cmd clustermap.Command
	if err == nil {
		// Check the command here, so that garbage never reaches the log.
		cmd, err = clustermap.DecodeCommand(r.Command)
	}
	if err != nil {
		w.Error(CodeBadRequest, err.Error())
		return
	}
	if why := m.down(); why != "" {
		w.Error(CodeUnavailable, why)
		return
	}
	// NB: checked against this member's map; a container admin key's
	// RevokeKey is judged by the key's container there, and key records
	// never change container, so a lagging member judges alike.
	g, err := authorize(m.cfg.Access, &req.Peer, KindApply, m.sm.Map(), cmd, "")
	if err != nil {
		w.Error(CodeAccessDenied, fmt.Sprintf("manager %d: access denied: %v", m.cfg.ID, err))
		return
	}
	pctx, cancel := context.WithTimeout(ctx, m.cfg.ProposeTimeout)
	res, err := m.g.Load().Propose(pctx, appendEntry(nil, r.ID, r.Command))
	cancel()
	if err != nil {
		code := CodeAmbiguous
		if proposalNotApplied(err) {
			code = CodeUnavailable
		}
		w.Error(code, fmt.Sprintf("manager %d: %v", m.cfg.ID, err))
		return
	}
	ar, ok := res.(ApplyResult)
	if !ok {
		panic(fmt.Sprintf("manager %d: state machine returned %T", m.cfg.ID, res))
	}
	if ar.Err != nil {
		w.Error(commandErrorCode(ar.Err), ar.Err.Error())
		return
	}
	if g.Role == clustermap.RoleContainer {
		// The reply map is a map read too: a container admin key sees
		// its container only.
		m.replyReducedMap(w, ar.Map.ForContainer(g.Container, g.Access == clustermap.AccessAdmin))
		return
	}
	m.replyMap(w, ar.Map)
}

// proposalNotApplied reports whether a Propose error means the command was
// certainly not applied (and never will be), so the client may retry it
// as if it had never been sent.
func proposalNotApplied(err error) bool {
	return errors.Is(err, raftgroup.ErrNoLeader) || errors.Is(err, raftgroup.ErrProposalDropped) ||
		errors.Is(err, raftgroup.ErrBusy) || errors.Is(err, raftgroup.ErrRemoved)
}

// commandErrorCode maps the map's refusal of a command to its wire code.
func commandErrorCode(err error) net.ErrorCode {
	switch {
	case errors.Is(err, clustermap.ErrNoChange):
		return CodeNoChange
	case errors.Is(err, clustermap.ErrNotFound):
		return CodeNotFound
	case errors.Is(err, clustermap.ErrExists):
		return CodeExists
	case errors.Is(err, clustermap.ErrInvalid):
		return CodeInvalid
	case errors.Is(err, clustermap.ErrStaleEpoch):
		return CodeStaleEpoch
	}
	return CodeRejected
}

func (m *Manager) serveHeartbeat(_ context.Context, req *net.Request, w *net.ResponseWriter) {
	if req.Peer.ReadOnly {
		// A heartbeat keeps a node Up (or brings it back): it changes
		// the map, so it needs a write key.
		w.Error(CodeReadOnly, fmt.Sprintf("manager %d: key %q is read-only; heartbeats need a write key", m.cfg.ID, req.Peer.KeyID))
		return
	}
	r, err := decodeHeartbeatRequest(req.Header)
	if err != nil {
		w.Error(CodeBadRequest, err.Error())
		return
	}
	if _, err := authorize(m.cfg.Access, &req.Peer, KindHeartbeat, nil, nil, ""); err != nil {
		w.Error(CodeAccessDenied, fmt.Sprintf("manager %d: access denied: %v", m.cfg.ID, err))
		return
	}
	if why := m.down(); why != "" {
		w.Error(CodeUnavailable, why)
		return
	}
	cur := m.sm.Map()
	m.live.Lock()
	l := m.live.l
	if l != nil && m.Leader() == m.cfg.ID {
		l.Heartbeat(clustermap.NodeID(r.Node), time.Now())
	} else {
		l = nil
	}
	m.live.Unlock()
	if l == nil {
		w.Error(CodeUnavailable, fmt.Sprintf("manager %d: not the leader (leader %d)", m.cfg.ID, m.Leader()))
		return
	}
	if _, ok := cur.Node(clustermap.NodeID(r.Node)); !ok {
		// Recorded anyway: the node may be joining right now.
		w.Error(CodeNotFound, fmt.Sprintf("manager %d: node %d is not in the map at epoch %d; join it first", m.cfg.ID, r.Node, cur.Epoch))
		return
	}
	w.Reply(reply{Epoch: cur.Epoch}.append(nil), nil, nil)
}

// livenessLoop runs on every member; it acts only while the member leads.
func (m *Manager) livenessLoop() {
	defer m.wg.Done()
	period := min(max(m.cfg.HeartbeatTimeout/5, livenessPeriodMin), livenessPeriodMax)
	t := time.NewTimer(period)
	defer t.Stop()
	ctx, cancel := m.stopContext()
	defer cancel()
	for {
		select {
		case <-m.stopc:
			return
		case <-t.C:
		}
		m.livenessRound(ctx)
		m.repairRound(ctx)
		if m.sm.Map().FSID.IsZero() {
			// The map gets its FSID from its first leader's round: soon,
			// not a whole period after the group formed.
			t.Reset(min(period, fsidRoundWait))
		} else {
			t.Reset(period)
		}
	}
}

// livenessRound makes one pass of the leader's duty: Down for nodes silent
// longer than HeartbeatTimeout, Up for Down nodes heard again, and an
// FSID for a map that has none (clustermap.SetFSID).
func (m *Manager) livenessRound(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, m.cfg.ProposeTimeout)
	defer cancel()
	st, err := m.Status(sctx)
	if err != nil {
		return
	}
	if st.State != "StateLeader" {
		m.live.Lock()
		m.live.l, m.live.term = nil, 0
		m.live.Unlock()
		return
	}
	m.live.Lock()
	if m.live.l == nil || m.live.term != st.Term {
		m.live.l = clustermap.NewLiveness(m.cfg.HeartbeatTimeout)
		m.live.term = st.Term
		m.live.fresh = true
		m.log.Info("leading: every node gets a fresh heartbeat grace", "term", st.Term, "timeout", m.cfg.HeartbeatTimeout)
	}
	m.live.Unlock()
	// Decide on a map that holds everything committed before this round,
	// not on what this member happened to have applied when it won the
	// election.
	if err := m.g.Load().ReadIndex(sctx); err != nil {
		return
	}
	cur := m.sm.Map()
	now := time.Now()
	m.live.Lock()
	if m.live.l == nil || m.live.term != st.Term {
		m.live.Unlock()
		return
	}
	if m.live.fresh {
		seedLiveness(m.live.l, cur, now)
		m.live.fresh = false
	}
	cmds := m.live.l.Commands(cur, now)
	m.live.Unlock()
	if cur.FSID.IsZero() {
		// A new map (or one from before FSIDs) gets its identity from
		// its first leader; a lost proposal is made again next round.
		var id clustermap.FSID
		if _, err := rand.Read(id[:]); err != nil {
			panic(fmt.Sprintf("manager %d: crypto/rand: %v", m.cfg.ID, err))
		}
		cmds = append([]clustermap.Command{clustermap.SetFSID{FSID: id}}, cmds...)
	}
	for _, cmd := range cmds {
		data, err := clustermap.AppendCommand(nil, cmd)
		if err != nil {
			panic(fmt.Sprintf("manager %d: liveness command %+v does not encode: %v", m.cfg.ID, cmd, err))
		}
		// No request id: a lost proposal is not retried as such; the
		// next round decides afresh.
		res, err := m.g.Load().Propose(sctx, appendEntry(nil, RequestID{}, data))
		if err != nil {
			m.log.Info("liveness proposal failed; next round retries", "cmd", fmt.Sprintf("%+v", cmd), "err", err)
			return
		}
		if ar := res.(ApplyResult); ar.Err != nil {
			if !errors.Is(ar.Err, clustermap.ErrNoChange) {
				m.log.Warn("liveness command refused", "cmd", fmt.Sprintf("%+v", cmd), "err", ar.Err)
			}
			continue
		}
		m.log.Info("liveness", "cmd", fmt.Sprintf("%+v", cmd), "epoch", res.(ApplyResult).Map.Epoch)
	}
}

// seedLiveness prepares a new leader's fresh Liveness l with map m at now.
// NB: Liveness counts a node it never heard of as heard now, which gives
// Up nodes their grace but would also make a new leader mark every Down
// node Up. So Down nodes are recorded as silent for two timeouts: only a
// real heartbeat brings them back. A heartbeat already recorded (a Down
// node that came back) is newer and stays.
func seedLiveness(l *clustermap.Liveness, m *clustermap.Map, now time.Time) {
	for i := range m.Nodes {
		if m.Nodes[i].State == clustermap.Down {
			l.Heartbeat(m.Nodes[i].ID, now.Add(-2*l.Timeout))
		}
	}
}
