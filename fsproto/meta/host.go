package meta

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/namespace"
	"github.com/weftfs/weft/fsproto/raftgroup"
	"github.com/weftfs/weft/fsproto/raftlog"
	"github.com/weftfs/weft/internal/vfs"
	"github.com/weftfs/weft/net"
)

// DefaultProposeTimeout bounds how long an op or a read barrier waits for
// raft on a member, when HostConfig.ProposeTimeout is 0.
const DefaultProposeTimeout = 5 * time.Second

// HostConfig configures a Host.
type HostConfig struct {
	// Node is this node's id in the cluster map; it is also its raft id
	// in every metadata group it belongs to.
	Node clustermap.NodeID
	// Dir is the base directory: container c's raft log is the journal
	// Dir/container-<c> (created if missing) on FS (nil: vfs.Default).
	Dir string
	FS  vfs.FS
	// Router carries raft traffic (kind 300); container c's member uses
	// Router.Transport(GroupID(c)).
	Router *raftgroup.NetRouter
	// Pool reaches the other nodes' Hosts: a member with an empty log asks
	// them whether the group runs already (see the package doc). The host
	// uses it and does not close it.
	Pool *net.Pool
	// ProposeTimeout bounds an op's proposal and a read's barrier on
	// this node. Default DefaultProposeTimeout.
	ProposeTimeout time.Duration
	// TickInterval, ElectionTicks and SnapshotEvery are passed to
	// raftgroup (zero: its defaults), KeepEntries to raftlog (entries kept
	// before a snapshot for slow followers; 0: its default, negative:
	// none, so followers that lag catch up from snapshots).
	TickInterval  time.Duration
	ElectionTicks int
	SnapshotEvery uint64
	KeepEntries   int
	// Access, when set, resolves each request's key to its grant: ops
	// need clustermap.Grant.WritesContainer and reads ReadsContainer of
	// the request's container, else CodeAccessDenied naming the key and
	// the container. nil checks only the read-only flag.
	Access clustermap.Authorizer
	// NoLeaseReads makes every read take a read-index round to the
	// followers; by default a leader serves reads on a raft read lease
	// (raftgroup Config.LeaseReads) while it holds one.
	NoLeaseReads bool
	// MarkFormed, when set, records in the cluster map that container
	// c's group has committed past its bootstrap entries (it applies
	// clustermap.MarkMetaFormed; ErrNoChange counts as done). A group's
	// leader calls it from Repair until the map shows the mark; from then
	// on no member with an empty log bootstraps the group (see probe).
	// nil: groups are never marked, and a majority of the bootstrap set
	// that lost its logs together starts the group afresh.
	MarkFormed func(ctx context.Context, c clustermap.ContainerID) error
	Logger     *slog.Logger // default slog.Default()
}

// CodeAccessDenied (265, the number of fsproto.CodeAccessDenied): the
// request's key does not reach its container. Nothing was done.
const CodeAccessDenied net.ErrorCode = 265

func (c *HostConfig) validate() error {
	var errs []string
	if c.Node == 0 {
		errs = append(errs, "Node is 0, want this node's map id")
	}
	if c.Dir == "" {
		errs = append(errs, "Dir is empty, want the base directory of the raft logs")
	}
	if c.Router == nil {
		errs = append(errs, "Router is nil, want the node's raftgroup.NetRouter")
	}
	if c.Pool == nil {
		errs = append(errs, "Pool is nil, want the node's net.Pool")
	}
	if c.ProposeTimeout < 0 {
		errs = append(errs, fmt.Sprintf("ProposeTimeout %v is negative, want >= 0 (0: default)", c.ProposeTimeout))
	}
	if c.TickInterval < 0 {
		errs = append(errs, fmt.Sprintf("TickInterval %v is negative, want >= 0 (0: default)", c.TickInterval))
	}
	if c.ElectionTicks < 0 {
		errs = append(errs, fmt.Sprintf("ElectionTicks %d is negative, want >= 0 (0: default)", c.ElectionTicks))
	}
	if len(errs) > 0 {
		return fmt.Errorf("meta: invalid host config: %s", strings.Join(errs, "; "))
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.ProposeTimeout == 0 {
		c.ProposeTimeout = DefaultProposeTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Host runs, on one storage node, the metadata group members that the
// cluster map assigns to it (see Members), and serves KindOp and KindRead
// for them. Its methods are safe for concurrent use.
type Host struct {
	cfg HostConfig
	log *slog.Logger

	// setMu serialises SetMap and Close, which start and stop members.
	setMu sync.Mutex
	mu    struct {
		sync.Mutex
		members map[clustermap.ContainerID]*member
		closed  bool
		m       *clustermap.Map // the last map SetMap had; Repair works toward it
		// repair is what the last Repair found to do in each group this
		// host led then, for Status.
		repair map[clustermap.ContainerID]string
		// lost holds, per group this host leads, the voters that asked
		// with an empty raft log where that means a lost one (see
		// emptyVoterLost), with when they last did: Repair takes them
		// out of the group and adds them back.
		lost map[clustermap.ContainerID]map[clustermap.NodeID]time.Time
		// empty holds the containers whose raft log a start of this
		// host found empty and that run no member here since: their
		// log directories exist but hold no group (see holdsLog).
		empty map[clustermap.ContainerID]bool
		// markFailed holds, per container, when this host's last
		// MarkFormed for it failed: Repair waits markRetry before the
		// next try.
		markFailed map[clustermap.ContainerID]time.Time
	}
}

// lostReportTTL is how long a lost-log report counts: the reporting node
// repeats it each time it tries to start its member (Follow, at least
// every followPauseMax), so a report that stopped is of a node that got
// its log back or went away.
const lostReportTTL = 5 * followPauseMax

// member is this node's member of one container's group.
type member struct {
	c     clustermap.ContainerID
	store *raftlog.Storage
	sm    *StateMachine
	g     *raftgroup.Group
}

// NewHost returns a host running no member yet; SetMap starts them.
func NewHost(cfg HostConfig) (*Host, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	h := &Host{cfg: cfg, log: cfg.Logger.With("meta_node", uint64(cfg.Node))}
	h.mu.members = make(map[clustermap.ContainerID]*member)
	h.mu.repair = make(map[clustermap.ContainerID]string)
	h.mu.lost = make(map[clustermap.ContainerID]map[clustermap.NodeID]time.Time)
	h.mu.empty = make(map[clustermap.ContainerID]bool)
	h.mu.markFailed = make(map[clustermap.ContainerID]time.Time)
	return h, nil
}

// Register registers KindOp and KindRead on mux. Call it once, before the
// server starts.
func (h *Host) Register(mux *net.ServeMux) {
	mux.HandleFunc(KindOp, h.serveOp)
	mux.Handle(KindRead, readHandler{h})
}

// readHandler serves KindRead. As a net.Starter it serves a read on the
// connection's reader goroutine when the leader holds its read lease
// (no round to wait for) and the read is small, which saves the hand-off
// to a handler goroutine on every lookup and stat; other reads go to
// serveRead.
type readHandler struct{ h *Host }

func (rh readHandler) ServeRPC(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
	rh.h.serveRead(ctx, req, w)
}

func (rh readHandler) StartRPC(_ context.Context, req *net.Request, w *net.ResponseWriter) bool {
	h := rh.h
	r, err := decodeReadRequest(req.Header)
	if err != nil || r.Op == ReadMembers || (r.Op == ReadDir && r.Limit > inlineReadDirMax) {
		return false // serveRead answers
	}
	mb := h.member(r.Container)
	if mb == nil || mb.g.Err() != nil || mb.g.Leader() != uint64(h.cfg.Node) || !mb.g.LeaseRead() {
		return false
	}
	if err := clustermap.CheckContainerAccess(h.cfg.Access, req.Peer.KeyID, r.Container, false); err != nil {
		return false
	}
	h.answerRead(mb, &r, w)
	return true
}

// inlineReadDirMax is the largest ReadDir page a reader goroutine serves
// itself: a page of thousands of entries would hold up the connection.
const inlineReadDirMax = 256

// SetMap starts the member of every container of m whose Members include
// this node and that does not run yet, and stops the members of
// containers no longer in m and deletes their logs (a container id below
// m's NextContainer that m does not hold was deleted: ids are never
// reused). A member with an
// empty log first asks the group's other nodes (probe): it bootstraps
// the group from the container's Bootstrap set when it belongs to that
// set and nobody runs the group without it, joins the running group when
// the group already counts it (its leader added it), and otherwise
// refuses to start (SetMap fails; Follow tries again). A node that left
// the Members but holds a non-empty log for the container still runs its
// member (after a restart too): raft membership comes from the log (see
// the package doc). Failures to start are returned together; the members
// that did start run. Call it with every new map.
func (h *Host) SetMap(m *clustermap.Map) error {
	h.setMu.Lock()
	defer h.setMu.Unlock()
	h.mu.Lock()
	if h.mu.closed {
		h.mu.Unlock()
		return errors.New("meta: host closed")
	}
	h.mu.m = m
	running := make(map[clustermap.ContainerID]*member, len(h.mu.members))
	for c, mb := range h.mu.members {
		running[c] = mb
	}
	h.mu.Unlock()

	onDisk := h.logsOnDisk()
	var errs []error
	for i := range m.Containers {
		ct := &m.Containers[i]
		delete(running, ct.ID) // still in the map: not to be stopped
		h.mu.Lock()
		_, ok := h.mu.members[ct.ID]
		h.mu.Unlock()
		if ok {
			continue
		}
		// A container whose policy matches no node has no members:
		// not this node's to report.
		ids, _ := Members(m, ct.ID)
		member := slices.Contains(ids, h.cfg.Node)
		if !member && !onDisk[ct.ID] {
			continue
		}
		boot, _ := Bootstrap(m, ct.ID)
		// peers: where the transport finds the members until the log
		// says, and whom the probe asks: the members, the bootstrap
		// set (who may run the group still) and this node.
		var peers []raftgroup.Peer
		for _, id := range slices.Concat(ids, boot, []clustermap.NodeID{h.cfg.Node}) {
			if n, ok := m.Node(id); ok && !slices.ContainsFunc(peers, func(p raftgroup.Peer) bool { return p.ID == uint64(id) }) {
				peers = append(peers, raftgroup.Peer{ID: uint64(id), Addr: n.Addr})
			}
		}
		mb, err := h.start(ct.ID, peers, boot, ct.MetaFormed, !member)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if mb == nil {
			continue // not a member, and its log on disk is empty
		}
		h.mu.Lock()
		h.mu.members[ct.ID] = mb
		delete(h.mu.empty, ct.ID)
		h.mu.Unlock()
		h.log.Info("meta: started container group member", "container", uint64(ct.ID), "members", ids, "bootstrap", boot)
	}
	for c, mb := range running {
		h.mu.Lock()
		delete(h.mu.members, c)
		delete(h.mu.repair, c)
		h.mu.Unlock()
		h.stopMember(mb)
		h.log.Info("meta: container left the map; stopped its member", "container", uint64(c))
	}
	for c := range onDisk {
		if _, ok := m.Container(c); ok || c >= m.NextContainer {
			continue
		}
		h.mu.Lock()
		_, runs := h.mu.members[c]
		h.mu.Unlock()
		if runs {
			continue
		}
		dir := h.logDir(c)
		if err := removeTree(h.cfg.FS, dir); err != nil {
			errs = append(errs, fmt.Errorf("meta: deleted container %d: remove its raft log: %w", c, err))
			continue
		}
		h.log.Info("meta: removed the raft log of a deleted container", "container", uint64(c), "dir", dir)
	}
	return errors.Join(errs...)
}

// removedMark is the file that marks a raft log directory as being
// deleted: its member was removed from the group (see dropRemoved).
const removedMark = "REMOVED"

// dropRemoved stops mb and deletes its raft log when the member applied
// its own removal from the group and the map does not name this node a
// member of the container (a policy that moved the group, a repair that
// took it out): such a log serves nothing, and kept it would wait for the
// container's deletion. The directory is marked first, durably, so that a
// crash in the middle of the delete leaves a directory that start deletes
// the rest of instead of opening a partial log. It reports whether it
// dropped mb.
func (h *Host) dropRemoved(m *clustermap.Map, mb *member) bool {
	if !mb.g.Removed() {
		return false
	}
	if ids, err := Members(m, mb.c); err != nil || slices.Contains(ids, h.cfg.Node) {
		return false // the map wants a member here: repair adds it back
	}
	h.setMu.Lock()
	defer h.setMu.Unlock()
	h.mu.Lock()
	if h.mu.closed || h.mu.members[mb.c] != mb {
		h.mu.Unlock()
		return false
	}
	// Asked again of the newest map, under setMu: one SetMap took after m
	// may name this node again, and would not start its member anew.
	if ids, err := Members(h.mu.m, mb.c); err != nil || slices.Contains(ids, h.cfg.Node) {
		h.mu.Unlock()
		return false
	}
	delete(h.mu.members, mb.c)
	delete(h.mu.repair, mb.c)
	h.mu.Unlock()
	h.stopMember(mb)
	dir := h.logDir(mb.c)
	if err := h.removeLog(dir); err != nil {
		h.log.Warn("meta: remove the raft log of a removed member", "container", uint64(mb.c), "dir", dir, "err", err)
		return true
	}
	h.log.Info("meta: member removed from its group; stopped it and removed its raft log", "container", uint64(mb.c), "dir", dir)
	return true
}

// removeLog deletes a raft log directory: it writes removedMark there
// (synced) first, so that a directory a crash leaves half deleted is
// known for one (see finishRemoval).
func (h *Host) removeLog(dir string) error {
	f, err := h.cfg.FS.Create(filepath.Join(dir, removedMark), false)
	if errors.Is(err, fs.ErrExist) {
		return removeTree(h.cfg.FS, dir)
	}
	if err != nil {
		return err
	}
	serr := f.Sync()
	if err := f.Close(); err != nil || serr != nil {
		return errors.Join(serr, err)
	}
	if err := h.cfg.FS.SyncDir(dir); err != nil {
		return err
	}
	return removeTree(h.cfg.FS, dir)
}

// finishRemoval deletes what is left of dir if it is marked as being
// deleted (removeLog was cut short), and reports whether it was.
func (h *Host) finishRemoval(dir string) (bool, error) {
	if _, err := h.cfg.FS.Stat(filepath.Join(dir, removedMark)); err != nil {
		return false, nil
	}
	return true, removeTree(h.cfg.FS, dir)
}

// removeTree removes dir and everything below it.
func removeTree(fsys vfs.FS, dir string) error {
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		p := filepath.Join(dir, n)
		if err := fsys.Remove(p); err != nil {
			// Not empty: a directory.
			if err := removeTree(fsys, p); err != nil {
				return err
			}
		}
	}
	return fsys.Remove(dir)
}

// logDirPrefix names container c's raft log directory under
// HostConfig.Dir: logDirPrefix + decimal c.
const logDirPrefix = "container-"

// logDir is container c's raft log directory.
func (h *Host) logDir(c clustermap.ContainerID) string { return logDirIn(h.cfg.Dir, c) }

// logDirIn is container c's raft log directory under base directory dir
// (HostConfig.Dir).
func logDirIn(dir string, c clustermap.ContainerID) string {
	return filepath.Join(dir, logDirPrefix+strconv.FormatUint(uint64(c), 10))
}

// logsOnDisk lists the containers that have a raft log directory.
func (h *Host) logsOnDisk() map[clustermap.ContainerID]bool {
	names, err := h.cfg.FS.ReadDir(h.cfg.Dir)
	if err != nil {
		return nil // none yet (or unreadable: then opening a log fails too)
	}
	on := make(map[clustermap.ContainerID]bool)
	for _, n := range names {
		if id, err := strconv.ParseUint(strings.TrimPrefix(n, logDirPrefix), 10, 64); err == nil && strings.HasPrefix(n, logDirPrefix) {
			on[clustermap.ContainerID(id)] = true
		}
	}
	return on
}

// start opens container c's log and starts its member. peers are the
// addresses the transport starts with; boot the group's bootstrap set
// and formed whether the map marks the group formed (see probe). With
// onlyWithLog, a log that turns out empty is closed and
// start returns nil, nil: the node is no member and has nothing to
// resume.
func (h *Host) start(c clustermap.ContainerID, peers []raftgroup.Peer, boot []clustermap.NodeID, formed, onlyWithLog bool) (*member, error) {
	log := h.log.With("container", uint64(c))
	dir := h.logDir(c)
	if marked, err := h.finishRemoval(dir); err != nil {
		return nil, fmt.Errorf("meta: container %d: finish removing the raft log of a removed member: %w", c, err)
	} else if marked && onlyWithLog {
		return nil, nil
	}
	store, err := raftlog.Open(raftlog.Options{FS: h.cfg.FS, Dir: dir, Logger: log, KeepEntries: h.cfg.KeepEntries})
	if err != nil {
		return nil, fmt.Errorf("meta: container %d: open raft log: %w", c, err)
	}
	join := false
	startPeers := peers
	fresh, err := store.Empty()
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("meta: container %d: %w", c, err)
	}
	if fresh {
		h.mu.Lock()
		h.mu.empty[c] = true
		h.mu.Unlock()
	}
	if fresh && onlyWithLog {
		store.Close()
		return nil, nil
	} else if fresh {
		if join, err = h.probe(c, peers, boot, formed); err != nil {
			store.Close()
			return nil, err
		}
		if !join {
			// Bootstrapping: exactly the bootstrap set, so that every
			// member that bootstraps writes the same first entries.
			startPeers = nil
			for _, id := range boot {
				i := slices.IndexFunc(peers, func(p raftgroup.Peer) bool { return p.ID == uint64(id) })
				if i < 0 {
					panic(fmt.Sprintf("meta: container %d: bootstrap member %d has no address among %v", c, id, peers))
				}
				startPeers = append(startPeers, peers[i])
			}
		}
		log.Info("meta: empty raft log", "join", join, "peers", startPeers)
	}
	sm := NewStateMachine()
	g, err := raftgroup.Start(raftgroup.Config{
		ID:            uint64(h.cfg.Node),
		Peers:         startPeers,
		Join:          join,
		Log:           store,
		SM:            sm,
		Transport:     h.cfg.Router.Transport(GroupID(c)),
		TickInterval:  h.cfg.TickInterval,
		ElectionTicks: h.cfg.ElectionTicks,
		SnapshotEvery: h.cfg.SnapshotEvery,
		LeaseReads:    !h.cfg.NoLeaseReads,
		Logger:        log,
	})
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("meta: container %d: start raft group: %w", c, err)
	}
	return &member{c: c, store: store, sm: sm, g: g}, nil
}

// Bounds of probe's questions to one peer.
const (
	probeDialWait = 300 * time.Millisecond
	probeTimeout  = time.Second
)

// probe runs before a member with an empty log starts: it asks the
// group's other nodes (peers) whether they run the group, and decides
// how this node starts, or refuses:
//
//   - a node runs the group without this node among its voters and
//     learners: refuse; the leader's repair adds it (Repair), and the
//     next try joins;
//   - the group counts this node as a learner: join (the leader's
//     repair added it; an added member starts from the leader's log or
//     a snapshot, never with bootstrap entries of its own, which would
//     not match the group's);
//   - the group counts this node as a voter although its log is empty,
//     and this node is not in boot or the group has committed past its
//     bootstrap entries: this node lost its raft log (a replaced disk),
//     or, in boot, never started while the group went on. Raft cannot
//     take such a voter as it is (the leader would commit past its log,
//     and a voter must keep what it acknowledged): refuse; the question
//     told the leader, whose repair removes this node and adds it back
//     as a learner, and a later try joins;
//   - the group counts this node as a voter, this node is in boot and
//     the group has committed nothing past its bootstrap entries:
//     bootstrap with boot (raft's bootstrap entries are then identical
//     to the other bootstrap members');
//   - nobody runs the group: bootstrap when this node is in boot (the
//     group is new) and a majority of boot, this node included, answered
//     that it runs no member (CodeNoMember); else refuse and try again
//     later. A member added later only ever joins. The majority is what
//     keeps a member of boot that lost its log from bootstrapping again
//     while the members that hold the group's log are unreachable: it
//     would come back as a voter that forgot its votes (two leaders in
//     one term). A new group loses nothing by it, since it could not
//     elect a leader without a majority anyway.
//   - a node holds the group's raft log but has not started its member
//     (restarting: CodeNotStarted, see holdsLog): refuse and try again,
//     unless another answer makes this node a learner, a lost voter or
//     one the group runs without; such a node does not count towards the
//     majority;
//   - formed (the map marks the group formed: its leader saw it commit
//     past its bootstrap entries) and any of the cases above that would
//     bootstrap: refuse. This node's log was lost, and so, since no
//     running member answered otherwise, were those of the others that
//     answered or the group's members are unreachable; bootstrapping
//     would start an empty namespace in the group's place (and, when the
//     members that hold its log return, two histories under one group).
//     The group stays down until a member with its log runs again and a
//     leader can add this node back. The majority rule above covers a
//     lost log only while a majority of boot still holds one; the mark
//     covers the rest.
//
// An answer that counts this node as a learner wins over the others
// (members that have not applied its addition yet); one that holds it a
// lost voter wins over one that runs the group without it.
func (h *Host) probe(c clustermap.ContainerID, peers []raftgroup.Peer, boot []clustermap.NodeID, formed bool) (join bool, err error) {
	// Ino names this node, whose log is empty: a leader that counts it
	// as a voter learns that it lost its log (serveMembers).
	hdr := readRequest{Op: ReadMembers, Container: c, Ino: namespace.Ino(h.cfg.Node)}.append(nil)
	inBoot := slices.Contains(boot, h.cfg.Node)
	answered, learner := false, false
	idle := 1 // nodes of boot that run no member: this one, and those that say so
	var without, held error
	lost := ""
	var leaderSeen clustermap.NodeID // a leader some answer names
	for _, p := range peers {
		if p.ID == uint64(h.cfg.Node) {
			continue
		}
		rep, leader, ans := h.askMembers(p.Addr, hdr)
		if leader != 0 {
			leaderSeen = leader
		}
		if ans == answerNoMember && slices.Contains(boot, clustermap.NodeID(p.ID)) {
			idle++
		}
		if ans == answerNotStarted {
			held = fmt.Errorf("meta: container %d: node %d (%s) holds the group's raft log and has not started its member; this node %d, whose log is empty, tries again when it has", c, p.ID, p.Addr, h.cfg.Node)
		}
		if ans != answerMembers {
			continue
		}
		answered = true
		i := slices.IndexFunc(rep.Voters, func(v Voter) bool { return v.Node == h.cfg.Node })
		switch {
		case i < 0:
			without = fmt.Errorf("meta: container %d: node %d (%s) runs the group with members %v, without this node %d: it waits for the leader to add it", c, p.ID, p.Addr, rep.Voters, h.cfg.Node)
		case rep.Voters[i].Learner:
			learner = true
		case emptyVoterLost(boot, h.cfg.Node, max(rep.Commit, rep.Last)):
			// The commit index may lag the log, which may hold entries
			// this node acknowledged.
			lost = fmt.Sprintf("meta: container %d: node %d (%s) counts this node %d a voter and has committed up to %d (its log up to %d), and this node's raft log is empty: the log was lost (or never started)", c, p.ID, p.Addr, h.cfg.Node, rep.Commit, rep.Last)
		}
	}
	switch {
	case learner:
		return true, nil
	case lost != "" && leaderSeen != 0:
		return false, fmt.Errorf("%s; the group's leader (node %d) takes this node out of the group and adds it back, and it then joins", lost, leaderSeen)
	case lost != "":
		return false, fmt.Errorf("%s; no member that answered knows a leader (too few of the group's members run: down, or their logs lost too), and once one leads it takes this node out of the group and adds it back; if a majority of the group's logs is lost for good, see weft node recover-meta", lost)
	case without != nil:
		return false, without
	case held != nil:
		return false, held
	case !answered && !inBoot:
		return false, fmt.Errorf("meta: container %d: no member of the group answered, and this node %d, added after the group began (bootstrap set %v), only joins a running group", c, h.cfg.Node, boot)
	case !answered && idle <= len(boot)/2:
		return false, fmt.Errorf("meta: container %d: %d of the bootstrap set %v (this node %d included) answered that they run no member, and none runs the group: this node's raft log is empty, and it bootstraps the group only when a majority of the set answers (its log may have been lost while the members that hold the group's are unreachable); it tries again", c, idle, boot, h.cfg.Node)
	case inBoot && formed:
		return false, fmt.Errorf("meta: container %d: this node %d's raft log of the group is empty, no running member counts it a learner (%d of the bootstrap set %v say they run no member), and the cluster map marks the group formed: its log was lost, and the group does not start afresh over the namespace it held; it waits for a member that holds the group's log to run, whose leader then adds this node back", c, h.cfg.Node, idle, boot)
	}
	return !inBoot, nil
}

// emptyVoterLost reports whether node, a voter of a group with bootstrap
// set boot that has committed up to commit, lost its raft log when it
// asks with an empty one: always when it is not of boot (it joined as a
// learner and was promoted, so it had a log), and for a member of boot
// once the group committed past its bootstrap entries (it lost its log,
// or never started while the group went on; raft can take neither as a
// voter). A member of boot of a group at its bootstrap entries is about
// to write them, as the others did. probe refuses such a node and the
// leader's serveMembers notes it for Repair, by this one rule: probe with
// the larger of the answering member's commit and last log indexes (the
// commit index can lag what the asker acknowledged), the leader with its
// commit index (so it takes the member out once the group committed past
// the bootstrap entries, and the member waits until then).
func emptyVoterLost(boot []clustermap.NodeID, node clustermap.NodeID, commit uint64) bool {
	return !slices.Contains(boot, node) || pastBootstrap(boot, commit)
}

// pastBootstrap is raftgroup.PastBootstrap for a group bootstrapped with
// boot.
func pastBootstrap(boot []clustermap.NodeID, commit uint64) bool {
	return raftgroup.PastBootstrap(len(boot), commit)
}

// probeAnswer is what a peer told probe.
type probeAnswer uint8

const (
	answerNone       probeAnswer = iota // no answer, or one that tells nothing
	answerNoMember                      // the node runs no member of the group
	answerNotStarted                    // the node holds the group's log, member not started
	answerMembers                       // a member's members and commit index
)

// askMembers asks the host at addr for its group's members and commit
// index and the leader it knows (answerMembers, with rep and leader), and
// tells a node that runs no member of the group (answerNoMember) from one
// that does not answer.
func (h *Host) askMembers(addr string, hdr []byte) (rep readReply, leader clustermap.NodeID, ans probeAnswer) {
	ctx, cancel := context.WithTimeout(context.Background(), probeDialWait)
	conn, err := h.cfg.Pool.Get(ctx, addr)
	cancel()
	if err != nil {
		return rep, 0, answerNone
	}
	ctx, cancel = context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	resp, err := conn.Call(ctx, KindRead, hdr, nil)
	if re := (*net.RemoteError)(nil); errors.As(err, &re) {
		switch re.Code {
		case CodeNoMember:
			return rep, 0, answerNoMember
		case CodeNotStarted:
			return rep, 0, answerNotStarted
		}
	}
	if err != nil {
		return rep, 0, answerNone
	}
	defer resp.Release()
	var body []byte
	if resp.Payload != nil {
		body = resp.Payload.Bytes()
	}
	rh, err := decodeReplyHeader(resp.Header, len(body))
	if err != nil || rh.Status != statusOK {
		return rep, 0, answerNone
	}
	rep, err = decodeReadReply(ReadMembers, body)
	if err != nil || rep.Err != nil || len(rep.Voters) == 0 {
		return readReply{}, 0, answerNone
	}
	return rep, rh.Leader, answerMembers
}

func (h *Host) stopMember(mb *member) {
	mb.g.Stop()
	if err := mb.store.Close(); err != nil {
		h.log.Warn("meta: close raft log", "container", uint64(mb.c), "err", err)
	}
}

// Close stops every member and closes their logs. Requests still arriving
// are answered CodeNoMember. Safe to call more than once.
func (h *Host) Close() {
	h.setMu.Lock()
	defer h.setMu.Unlock()
	h.mu.Lock()
	ms := h.mu.members
	h.mu.members = map[clustermap.ContainerID]*member{}
	h.mu.closed = true
	h.mu.Unlock()
	for _, mb := range ms {
		h.stopMember(mb)
	}
}

// Containers returns the containers this host runs a member of, sorted.
func (h *Host) Containers() []clustermap.ContainerID {
	h.mu.Lock()
	defer h.mu.Unlock()
	var cs []clustermap.ContainerID
	for c := range h.mu.members {
		cs = append(cs, c)
	}
	slices.Sort(cs)
	return cs
}

// Leader returns the leader this host's member of container c knows (0:
// none), and false when it runs no member of c.
func (h *Host) Leader(c clustermap.ContainerID) (clustermap.NodeID, bool) {
	mb := h.member(c)
	if mb == nil {
		return 0, false
	}
	return clustermap.NodeID(mb.g.Leader()), true
}

// Namespace returns this host's replica of container c's namespace (not a
// linearizable read: a follower may lag), or nil.
func (h *Host) Namespace(c clustermap.ContainerID) *namespace.Namespace {
	mb := h.member(c)
	if mb == nil {
		return nil
	}
	return mb.sm.NS()
}

// holdsLog reports whether this host may hold a raft log of container c
// with a group in it while it runs no member of c: the log's directory
// exists, and no start of this host found it empty. It errs towards yes
// (a directory not yet looked at since the host started), so that a
// probe waits rather than let a lost log bootstrap beside a group that
// exists (see probe).
func (h *Host) holdsLog(c clustermap.ContainerID) bool {
	h.mu.Lock()
	empty := h.mu.empty[c]
	h.mu.Unlock()
	return !empty && h.logsOnDisk()[c]
}

func (h *Host) member(c clustermap.ContainerID) *member {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.members[c]
}

// notServing answers the request and returns true when this member
// cannot serve it: its raft member failed, or it does not lead (then the
// reply is not-leader with the leader it knows as the hint).
func (h *Host) notServing(mb *member, w *net.ResponseWriter) bool {
	if err := mb.g.Err(); err != nil {
		w.Error(CodeUnavailable, fmt.Sprintf("meta: node %d, container %d: raft member failed: %v", h.cfg.Node, mb.c, err))
		return true
	}
	if lead := mb.g.Leader(); lead != uint64(h.cfg.Node) {
		w.Reply(replyHeader{Status: statusNotLeader, Leader: clustermap.NodeID(lead)}.append(nil), nil, nil)
		return true
	}
	return false
}

func (h *Host) serveOp(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
	if req.Peer.ReadOnly {
		w.Error(CodeReadOnly, fmt.Sprintf("meta: node %d: key %q is read-only; ops need a write key", h.cfg.Node, req.Peer.KeyID))
		return
	}
	r, err := decodeOpRequest(req.Header)
	var cmd namespace.Command
	if err == nil {
		// Check the command here, so garbage never reaches the log.
		cmd, err = namespace.DecodeCommand(r.Command)
	}
	if err != nil {
		w.Error(CodeBadRequest, err.Error())
		return
	}
	if err := clustermap.CheckContainerAccess(h.cfg.Access, req.Peer.KeyID, r.Container, true); err != nil {
		w.Error(CodeAccessDenied, "meta: "+err.Error())
		return
	}
	mb := h.member(r.Container)
	if mb == nil {
		w.Error(CodeNoMember, fmt.Sprintf("meta: node %d runs no member of container %d", h.cfg.Node, r.Container))
		return
	}
	if h.notServing(mb, w) {
		return
	}
	// The leader stamps the time, so every replica applies the same one
	// and clients' clocks do not matter.
	enc, err := namespace.AppendCommand(nil, namespace.WithNow(cmd, time.Now().UnixNano()))
	if err != nil {
		panic(fmt.Sprintf("meta: decoded command %+v does not encode: %v", cmd, err))
	}
	pctx, cancel := context.WithTimeout(ctx, h.cfg.ProposeTimeout)
	res, err := mb.g.Propose(pctx, appendEntry(nil, r.ID, enc))
	cancel()
	if err != nil {
		code := CodeAmbiguous
		if proposalNotApplied(err) {
			code = CodeUnavailable
		}
		w.Error(code, fmt.Sprintf("meta: node %d, container %d: %v", h.cfg.Node, r.Container, err))
		return
	}
	ar, ok := res.(ApplyResult)
	if !ok {
		panic(fmt.Sprintf("meta: state machine returned %T", res))
	}
	if err := w.Reply(replyHeader{Leader: h.cfg.Node}.append(nil), [][]byte{ar.Encoded}, nil); err != nil {
		w.Error(CodeRejected, fmt.Sprintf("meta: node %d: result of %d bytes does not fit the reply: %v", h.cfg.Node, len(ar.Encoded), err))
	}
}

// proposalNotApplied reports whether a Propose error means the command
// was certainly not applied and never will be.
func proposalNotApplied(err error) bool {
	return errors.Is(err, raftgroup.ErrNoLeader) || errors.Is(err, raftgroup.ErrProposalDropped) ||
		errors.Is(err, raftgroup.ErrBusy) || errors.Is(err, raftgroup.ErrRemoved)
}

func (h *Host) serveRead(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
	r, err := decodeReadRequest(req.Header)
	if err != nil {
		w.Error(CodeBadRequest, err.Error())
		return
	}
	if err := clustermap.CheckContainerAccess(h.cfg.Access, req.Peer.KeyID, r.Container, false); err != nil {
		w.Error(CodeAccessDenied, "meta: "+err.Error())
		return
	}
	mb := h.member(r.Container)
	if mb == nil && r.Op == ReadMembers && h.holdsLog(r.Container) {
		w.Error(CodeNotStarted, fmt.Sprintf("meta: node %d holds a raft log of container %d and has not started its member (yet)", h.cfg.Node, r.Container))
		return
	}
	if mb == nil {
		w.Error(CodeNoMember, fmt.Sprintf("meta: node %d runs no member of container %d", h.cfg.Node, r.Container))
		return
	}
	if r.Op == ReadMembers {
		h.serveMembers(ctx, mb, clustermap.NodeID(r.Ino), w)
		return
	}
	if h.notServing(mb, w) {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, h.cfg.ProposeTimeout)
	err = mb.g.ReadIndex(rctx)
	cancel()
	if err != nil {
		// A barrier changes nothing: always safe to retry.
		w.Error(CodeUnavailable, fmt.Sprintf("meta: node %d, container %d: read barrier: %v", h.cfg.Node, r.Container, err))
		return
	}
	h.answerRead(mb, &r, w)
}

// answerRead serves r from mb's namespace, past its read barrier.
func (h *Host) answerRead(mb *member, r *readRequest, w *net.ResponseWriter) {
	var rep readReply
	err := doRead(mb.sm.NS(), r, &rep)
	var ne *namespace.Error
	switch {
	case err == nil:
	case errors.As(err, &ne):
		rep = readReply{Err: ne}
	default:
		w.Error(CodeRejected, fmt.Sprintf("meta: node %d, container %d: read: %v", h.cfg.Node, r.Container, err))
		return
	}
	body := appendReadReply(nil, r.Op, &rep)
	if err := w.Reply(replyHeader{Leader: h.cfg.Node}.append(nil), [][]byte{body}, nil); err != nil {
		w.Error(CodeRejected, fmt.Sprintf("meta: node %d: read reply of %d bytes: %v", h.cfg.Node, len(body), err))
	}
}

// serveMembers answers ReadMembers from this member's configuration,
// leader or not. asker, when not 0, is the asking node, whose log of the
// group is empty: a leader that counts it as a voter notes whether that
// means a lost log (noteLostLog).
func (h *Host) serveMembers(ctx context.Context, mb *member, asker clustermap.NodeID, w *net.ResponseWriter) {
	sctx, cancel := context.WithTimeout(ctx, h.cfg.ProposeTimeout)
	st, err := mb.g.Status(sctx)
	cancel()
	if err == nil {
		err = mb.g.Err()
	}
	if err != nil {
		w.Error(CodeUnavailable, fmt.Sprintf("meta: node %d, container %d: status: %v", h.cfg.Node, mb.c, err))
		return
	}
	if asker != 0 && st.Leader == uint64(h.cfg.Node) && slices.Contains(st.Voters, uint64(asker)) {
		h.noteLostLog(mb.c, asker, st.Commit)
	}
	last, err := mb.store.LastIndex()
	if err != nil {
		w.Error(CodeUnavailable, fmt.Sprintf("meta: node %d, container %d: raft log: %v", h.cfg.Node, mb.c, err))
		return
	}
	rep := readReply{Commit: st.Commit, Last: last}
	for _, v := range st.Voters {
		rep.Voters = append(rep.Voters, Voter{Node: clustermap.NodeID(v), Match: st.Match[v]})
	}
	for _, v := range st.Learners {
		rep.Voters = append(rep.Voters, Voter{Node: clustermap.NodeID(v), Match: st.Match[v], Learner: true})
	}
	body := appendReadReply(nil, ReadMembers, &rep)
	w.Reply(replyHeader{Leader: clustermap.NodeID(st.Leader)}.append(nil), [][]byte{body}, nil)
}

// noteLostLog records, on the group's leader, that voter asker asked
// with an empty log while the group had committed up to commit, when
// that means a lost log (emptyVoterLost): Repair then takes it out and
// adds it back.
func (h *Host) noteLostLog(c clustermap.ContainerID, asker clustermap.NodeID, commit uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mu.m == nil {
		return
	}
	ct, ok := h.mu.m.Container(c)
	if !ok || !emptyVoterLost(ct.MetaBootstrap, asker, commit) {
		return
	}
	if h.mu.lost[c] == nil {
		h.mu.lost[c] = map[clustermap.NodeID]time.Time{}
	}
	if _, seen := h.mu.lost[c][asker]; !seen {
		h.log.Warn("meta: a voter lost its raft log; the repair takes it out and adds it back", "container", uint64(c),
			"node", uint64(asker), "commit", commit)
	}
	h.mu.lost[c][asker] = time.Now()
}

// lostVoters returns the voters of st that reported a lost log within
// lostReportTTL, and forgets the reports of nodes that are not voters
// any more (taken out: once added back, they are members like any other).
func (h *Host) lostVoters(c clustermap.ContainerID, st raftgroup.Status) []clustermap.NodeID {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []clustermap.NodeID
	for n, at := range h.mu.lost[c] {
		switch {
		case !slices.Contains(st.Voters, uint64(n)) || time.Since(at) > lostReportTTL:
			delete(h.mu.lost[c], n)
		default:
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func doRead(ns *namespace.Namespace, r *readRequest, rep *readReply) (err error) {
	switch r.Op {
	case ReadLookup:
		rep.Attr, err = ns.Lookup(r.Ino, r.Name)
	case ReadGetAttr:
		rep.Attr, err = ns.GetAttr(r.Ino)
	case ReadDir:
		rep.Entries, rep.Next, err = ns.ReadDir(r.Ino, r.Name, int(r.Limit))
	case ReadLink:
		rep.Target, err = ns.Readlink(r.Ino)
	case ReadGetXattr:
		rep.Value, err = ns.GetXattr(r.Ino, r.Name)
	case ReadListXattr:
		rep.Names, err = ns.ListXattr(r.Ino)
	case ReadStatFS:
		rep.StatFS = ns.StatFS()
	default:
		panic(fmt.Sprintf("meta: read op %d passed the decoder", r.Op))
	}
	return err
}

// Bounds of Follow's retries.
const (
	followPauseMin = 50 * time.Millisecond
	followPauseMax = 2 * time.Second
)

// Follow keeps the host on the latest map until ctx ends: it calls SetMap
// with the current map of maps, then with each newer one (long-polling
// Map(ctx, epoch)). A map that fails to fetch, or whose SetMap fails
// (a raft log that does not open, a member that waits to be added), is
// tried again after a pause that doubles up to 2 s. Meanwhile it runs
// Repair every RepairInterval. Run it on its own goroutine; it returns
// when ctx ends.
func (h *Host) Follow(ctx context.Context, maps MapSource) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(RepairInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				h.Repair(ctx)
			}
		}
	}()
	defer wg.Wait()
	var epoch uint64
	pause := followPauseMin
	for ctx.Err() == nil {
		m, err := maps.Map(ctx, epoch)
		if err == nil {
			if err = h.SetMap(m); err == nil {
				epoch, pause = m.Epoch, followPauseMin
				continue
			}
			// Not advancing epoch: the next Map answers at once, and
			// SetMap tries the failed starts again.
		}
		if ctx.Err() != nil {
			return
		}
		h.log.Warn("meta: following the map", "epoch", epoch, "err", err)
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		pause = min(2*pause, followPauseMax)
	}
}

// MemberStatus is one member's view of its container's group.
type MemberStatus struct {
	Container clustermap.ContainerID
	raftgroup.Status
	// Repair is, on the leader, what its last Repair found to do (see
	// RepairStep.String), or "" elsewhere.
	Repair string
}

// Status returns the status of every member this host runs, by
// container. A member that cannot answer within ctx is left out.
func (h *Host) Status(ctx context.Context) []MemberStatus {
	h.mu.Lock()
	ms := make([]*member, 0, len(h.mu.members))
	for _, mb := range h.mu.members {
		ms = append(ms, mb)
	}
	h.mu.Unlock()
	slices.SortFunc(ms, func(a, b *member) int { return cmp.Compare(a.c, b.c) })
	var out []MemberStatus
	for _, mb := range ms {
		st, err := mb.g.Status(ctx)
		if err != nil {
			continue
		}
		ms := MemberStatus{Container: mb.c, Status: st}
		if st.Leader == uint64(h.cfg.Node) {
			h.mu.Lock()
			ms.Repair = h.mu.repair[mb.c]
			h.mu.Unlock()
		}
		out = append(out, ms)
	}
	return out
}
