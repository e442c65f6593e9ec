package manager

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weftfs/weft/fsproto/raftgroup"
	"github.com/weftfs/weft/net"
)

// KindMembers asks a manager member for its raft group's voters, learners
// and commit index; a member whose log is empty asks its peers before it
// starts (see probe). On-wire: never renumber.
const KindMembers net.Kind = 314

// Header body sizes of KindMembers. On-wire.
const (
	membersRequestLen     = 16
	membersReplyPrefixLen = 32
)

// membersListMax bounds the voters and the learners a members reply may
// list (each): far above any managers' group (1, 3 or 5 members), low
// enough that a reply fits a header (32 + 2 × 255 × 8 bytes < 64 KiB).
const membersListMax = 255

// membersFlagEmptyLog says the asker's raft log is empty: a running member
// that counts the asker as a voter past the bootstrap entries notes it as
// lost (see serveMembers). On-wire.
const membersFlagEmptyLog = 1 << 0

// membersRequest is the header body of KindMembers:
//
//	0     1       2                  8
//	+-----+-------+------------------+-----------+
//	| ver | flags | reserved 6×u8=0  | asker id  |
//	| u8  | u8    |                  | u64 != 0  |
//	+-----+-------+------------------+-----------+
//	flags: bit 0 the asker's raft log is empty; other bits 0
//
// No payload.
type membersRequest struct {
	Asker    uint64
	EmptyLog bool
}

func (r membersRequest) append(b []byte) []byte {
	var flags byte
	if r.EmptyLog {
		flags |= membersFlagEmptyLog
	}
	b = append(b, msgVersion, flags, 0, 0, 0, 0, 0, 0)
	return binary.LittleEndian.AppendUint64(b, r.Asker)
}

func decodeMembersRequest(b []byte) (membersRequest, error) {
	var r membersRequest
	if len(b) != membersRequestLen {
		return r, corrupt("members request of %d bytes, want %d", len(b), membersRequestLen)
	}
	if b[0] != msgVersion {
		return r, corrupt("members request version %d, want %d", b[0], msgVersion)
	}
	if b[1]&^membersFlagEmptyLog != 0 {
		return r, corrupt("members request flags %#x: unknown bits", b[1])
	}
	for i := 2; i < 8; i++ {
		if b[i] != 0 {
			return r, corrupt("members request reserved byte %d is %#x, want 0", i, b[i])
		}
	}
	r.EmptyLog = b[1]&membersFlagEmptyLog != 0
	r.Asker = binary.LittleEndian.Uint64(b[8:])
	if r.Asker == 0 {
		return r, corrupt("members request from member 0")
	}
	return r, nil
}

// States a members reply reports. On-wire.
const (
	// membersStateProbing: the member's log is empty and it has not
	// started its raft member; it is asking its peers itself. The reply
	// lists the members it would bootstrap the group with (its Peers) as
	// voters.
	membersStateProbing = 0
	// membersStateRunning: the member runs; the reply lists the
	// configuration it knows.
	membersStateRunning = 1
)

// membersReply is the header body of a successful KindMembers answer:
//
//	0     1       2        3          4          8        16       24       32
//	+-----+-------+--------+----------+----------+--------+--------+--------+-----------------+
//	| ver | state | voters | learners | reserved | commit | leader | last   | ids: voters,    |
//	| u8  | u8    | u8 = v | u8 = l   | u32 = 0  | u64    | u64    | u64    | then learners   |
//	+-----+-------+--------+----------+----------+--------+--------+--------+-----------------+
//	last: the member's last log index
//	state 0: probing (empty log, not started): voters = the peers it
//	         would bootstrap with, l = 0, commit = leader = last = 0
//	state 1: running: the configuration it knows
//	v >= 1; ids (v + l) × u64, each nonzero, no repeats
//
// No payload.
type membersReply struct {
	Running  bool
	Voters   []uint64
	Learners []uint64
	Commit   uint64
	Leader   uint64 // 0: none known
	Last     uint64 // the member's last log index
}

func (r membersReply) append(b []byte) []byte {
	state := byte(membersStateProbing)
	if r.Running {
		state = membersStateRunning
	}
	b = append(b, msgVersion, state, byte(len(r.Voters)), byte(len(r.Learners)), 0, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, r.Commit)
	b = binary.LittleEndian.AppendUint64(b, r.Leader)
	b = binary.LittleEndian.AppendUint64(b, r.Last)
	for _, id := range r.Voters {
		b = binary.LittleEndian.AppendUint64(b, id)
	}
	for _, id := range r.Learners {
		b = binary.LittleEndian.AppendUint64(b, id)
	}
	return b
}

func decodeMembersReply(b []byte) (membersReply, error) {
	var r membersReply
	if len(b) < membersReplyPrefixLen {
		return r, corrupt("members reply of %d bytes, want at least %d", len(b), membersReplyPrefixLen)
	}
	if b[0] != msgVersion {
		return r, corrupt("members reply version %d, want %d", b[0], msgVersion)
	}
	if b[1] != membersStateProbing && b[1] != membersStateRunning {
		return r, corrupt("members reply state %d, want %d (probing) or %d (running)", b[1], membersStateProbing, membersStateRunning)
	}
	for i := 4; i < 8; i++ {
		if b[i] != 0 {
			return r, corrupt("members reply reserved byte %d is %#x, want 0", i, b[i])
		}
	}
	nv, nl := int(b[2]), int(b[3])
	if want := membersReplyPrefixLen + 8*(nv+nl); len(b) != want {
		return r, corrupt("members reply of %d bytes with %d voters and %d learners, want %d", len(b), nv, nl, want)
	}
	r.Running = b[1] == membersStateRunning
	r.Commit = binary.LittleEndian.Uint64(b[8:])
	r.Leader = binary.LittleEndian.Uint64(b[16:])
	r.Last = binary.LittleEndian.Uint64(b[24:])
	if !r.Running && (nl != 0 || r.Commit != 0 || r.Leader != 0 || r.Last != 0) {
		return r, corrupt("members reply of a probing member lists %d learners, commit %d, leader %d, last index %d; want none", nl, r.Commit, r.Leader, r.Last)
	}
	if nv == 0 {
		return r, corrupt("members reply lists no voter")
	}
	ids := make([]uint64, nv+nl)
	for i := range ids {
		id := binary.LittleEndian.Uint64(b[membersReplyPrefixLen+8*i:])
		if id == 0 {
			return r, corrupt("members reply lists member 0")
		}
		if slices.Contains(ids[:i], id) {
			return r, corrupt("members reply lists member %d twice", id)
		}
		ids[i] = id
	}
	r.Voters, r.Learners = ids[:nv:nv], ids[nv:]
	if nl == 0 {
		r.Learners = nil
	}
	return r, nil
}

// Bounds of probe's questions to one peer.
const (
	probeDialWait = 300 * time.Millisecond
	probeTimeout  = time.Second
)

// probeInterval is how long a member whose log is empty waits between
// probes that did not let it start: ten raft ticks, within 50 ms .. 1 s.
func (c *Config) probeInterval() time.Duration {
	tick := c.TickInterval
	if tick == 0 {
		tick = raftgroup.DefaultTickInterval
	}
	return min(max(10*tick, 50*time.Millisecond), time.Second)
}

// lostReportTTL is how long a member's report of its lost log counts on
// the leader: a member that stopped asking (it joined, or was stopped) is
// not taken out on an old report.
const lostReportTTL = 10 * time.Second

// peerAnswer is one peer's answer to a probe.
type peerAnswer struct {
	Peer     raftgroup.Peer
	Answered bool
	Reply    membersReply
}

// startMode is how a member whose log is empty starts, as decided by
// decideStart.
type startMode uint8

const (
	startWait      startMode = iota // not now: ask again later
	startBootstrap                  // bootstrap the group from Peers
	startJoin                       // join the running group as a learner
)

// decideStart decides how member self, whose raft log is empty, starts in
// the managers' group bootstrapped from n members (Config.Peers), given
// its peers' answers (every peer but self):
//
//   - a running member counts self as a learner: join (a leader's repair
//     added it; it gets the log or a snapshot from the leader);
//   - a running member counts self as a voter and the group is past its
//     bootstrap entries (that member's commit index, or its log, which
//     may hold entries self acknowledged before a commit index past them
//     was persisted anywhere): self lost its log (a replaced disk), or
//     never started while the group went on. Raft cannot take such a
//     voter back (its leader would commit past the empty log; a voter
//     must keep its votes and what it acknowledged): wait; the question
//     told the leader, whose repair takes self out and adds it back as a
//     learner, and a later probe joins;
//   - a running member does not count self at all: wait for the leader
//     to add it;
//   - a peer does not answer: wait. Unlike a container's metadata group,
//     whose formed mark lives in the cluster map, nothing outside these
//     logs records that the managers' group exists, so a member with an
//     empty log cannot tell a new group from one whose logs it and others
//     lost while the rest are down: bootstrapping then would start an
//     empty cluster map, and with the members that hold the map's log
//     back, two histories in one group. So the group is bootstrapped only
//     while every member answers, each with an empty log or at the
//     bootstrap entries; a group whose members lost a majority of their
//     logs stays down until an operator forces a survivor's log to be
//     the sole voter (raftgroup.ForceSoleVoter, `weft node
//     recover-manager`);
//   - a peer probing would bootstrap with other members than self's
//     peers, or one at the bootstrap entries was bootstrapped with
//     others: wait. Members given different --manager-peers would write
//     different bootstrap entries, and raft cannot reconcile two
//     committed first configurations;
//   - every peer answered, each probing with the same peers or running
//     at the bootstrap entries of the same voters: bootstrap (raft's
//     bootstrap entries are then the same on every member).
//
// why says what self waits for (startWait) or why it starts.
func decideStart(self uint64, peers []uint64, answers []peerAnswer) (mode startMode, why string) {
	n := len(peers)
	var lost, without, silent, differ []string
	leader := uint64(0) // a leader some answer names
	for _, a := range answers {
		if a.Answered && a.Reply.Leader != 0 {
			leader = a.Reply.Leader
		}
		switch {
		case !a.Answered:
			silent = append(silent, fmt.Sprintf("%d (%s)", a.Peer.ID, a.Peer.Addr))
		case !a.Reply.Running:
			if !sameIDs(a.Reply.Voters, peers) {
				differ = append(differ, fmt.Sprintf("member %d, probing, would bootstrap with %v", a.Peer.ID, a.Reply.Voters))
			}
		case slices.Contains(a.Reply.Learners, self):
			return startJoin, fmt.Sprintf("member %d counts this member a learner", a.Peer.ID)
		case slices.Contains(a.Reply.Voters, self):
			// The commit index may lag (not yet persisted past the
			// bootstrap entries); the log holds what this member may
			// have acknowledged.
			if raftgroup.PastBootstrap(n, max(a.Reply.Commit, a.Reply.Last)) {
				lost = append(lost, fmt.Sprintf("member %d (voters %v, commit %d, last index %d)", a.Peer.ID, a.Reply.Voters, a.Reply.Commit, a.Reply.Last))
			} else if !sameIDs(a.Reply.Voters, peers) || len(a.Reply.Learners) > 0 {
				differ = append(differ, fmt.Sprintf("member %d, bootstrapped with voters %v, learners %v", a.Peer.ID, a.Reply.Voters, a.Reply.Learners))
			}
		default:
			without = append(without, fmt.Sprintf("member %d (voters %v, learners %v)", a.Peer.ID, a.Reply.Voters, a.Reply.Learners))
		}
	}
	switch {
	case len(lost) > 0 && leader != 0:
		return startWait, fmt.Sprintf("this member's raft log is empty and the group counts it a voter past its bootstrap entries (%s): its log was lost; the leader (member %d) takes it out of the group and adds it back as a learner, and it then joins", strings.Join(lost, ", "), leader)
	case len(lost) > 0:
		return startWait, fmt.Sprintf("this member's raft log is empty and the group counts it a voter past its bootstrap entries (%s): its log was lost; no member that answered knows a leader (too few members run: down, or their logs lost too), and once one leads it takes this member out and adds it back; if a majority of the logs is lost for good, see weft node recover-manager", strings.Join(lost, ", "))
	case len(without) > 0:
		return startWait, fmt.Sprintf("the group runs without this member (%s): it waits for the leader to add it as a learner", strings.Join(without, ", "))
	case len(differ) > 0:
		return startWait, fmt.Sprintf("this member's raft log is empty and it would bootstrap the group with members %v, but %s: a new group starts only when every member is given the same --manager-peers", peers, strings.Join(differ, "; "))
	case len(silent) > 0:
		return startWait, fmt.Sprintf("this member's raft log is empty and peers %s do not answer: it bootstraps the group only when every member answers (the log may have been lost while members that hold the group's are down); if the logs of a majority are lost for good, see weft node recover-manager", strings.Join(silent, ", "))
	}
	return startBootstrap, "every member answered with an empty log or at the bootstrap entries"
}

// probeAndStart runs while a member whose log is empty has not started:
// it asks the peers each probeInterval until decideStart lets it start,
// then starts the raft member. A refusal is logged when its reason
// changes and kept for Starting.
func (m *Manager) probeAndStart() {
	defer m.wg.Done()
	// Stop does not wait out a probe's questions.
	ctx, cancel := m.stopContext()
	defer cancel()
	t := time.NewTimer(0)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-m.stopc:
			return
		case <-t.C:
		}
		mode, why := decideStart(m.cfg.ID, peerIDs(m.cfg.Peers), m.askPeers(ctx))
		if ctx.Err() != nil {
			return
		}
		if mode == startWait {
			m.setStarting("waiting: " + why)
			if why != last {
				m.log.Warn("manager: raft log empty; not starting yet", "why", why)
				last = why
			}
			t.Reset(m.cfg.probeInterval())
			continue
		}
		m.log.Info("manager: raft log empty", "start", map[startMode]string{startBootstrap: "bootstrap", startJoin: "join"}[mode], "why", why, "peers", m.cfg.Peers)
		if err := m.startGroup(mode == startJoin); err != nil {
			m.repair.Lock()
			m.repair.starting, m.repair.startErr = "failed: "+err.Error(), err
			m.repair.Unlock()
			m.log.Error("manager: start raft member", "err", err)
		}
		return
	}
}

// askPeers asks every peer but this member, at once, for its members.
func (m *Manager) askPeers(ctx context.Context) []peerAnswer {
	hdr := membersRequest{Asker: m.cfg.ID, EmptyLog: true}.append(nil)
	var answers []peerAnswer
	for _, p := range m.cfg.Peers {
		if p.ID != m.cfg.ID {
			answers = append(answers, peerAnswer{Peer: p})
		}
	}
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			answers[i].Reply, answers[i].Answered = m.askMembers(ctx, answers[i].Peer.Addr, hdr)
		})
	}
	wg.Wait()
	return answers
}

func (m *Manager) askMembers(ctx context.Context, addr string, hdr []byte) (membersReply, bool) {
	dctx, cancel := context.WithTimeout(ctx, probeDialWait)
	conn, err := m.cfg.Pool.Get(dctx, addr)
	cancel()
	if err != nil {
		return membersReply{}, false
	}
	cctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	resp, err := conn.Call(cctx, KindMembers, hdr, nil)
	if err != nil {
		return membersReply{}, false
	}
	defer resp.Release()
	rep, err := decodeMembersReply(resp.Header)
	if err != nil {
		m.log.Warn("manager: a peer's members reply does not decode", "addr", addr, "err", err)
		return membersReply{}, false
	}
	return rep, true
}

// serveMembers answers KindMembers: the member's configuration and commit
// index, or that it is probing itself. A running member notes an asker
// with an empty log that it counts as a voter past the bootstrap entries
// as lost, for its repair (it acts on the note only while it leads).
func (m *Manager) serveMembers(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
	r, err := decodeMembersRequest(req.Header)
	if err != nil {
		w.Error(CodeBadRequest, err.Error())
		return
	}
	if _, err := authorize(m.cfg.Access, &req.Peer, KindMembers, nil, nil, ""); err != nil {
		w.Error(CodeAccessDenied, fmt.Sprintf("manager %d: access denied: %v", m.cfg.ID, err))
		return
	}
	if m.stopped() {
		w.Error(CodeUnavailable, fmt.Sprintf("manager %d: stopped", m.cfg.ID))
		return
	}
	g := m.g.Load()
	if g == nil {
		w.Reply(membersReply{Voters: peerIDs(m.cfg.Peers)}.append(nil), nil, nil)
		return
	}
	sctx, cancel := context.WithTimeout(ctx, m.cfg.ProposeTimeout)
	st, err := g.Status(sctx)
	cancel()
	if err != nil {
		w.Error(CodeUnavailable, fmt.Sprintf("manager %d: status: %v", m.cfg.ID, err))
		return
	}
	if len(st.Voters) > membersListMax || len(st.Learners) > membersListMax {
		w.Error(CodeRejected, fmt.Sprintf("manager %d: %d voters and %d learners do not fit a members reply (at most %d each)", m.cfg.ID, len(st.Voters), len(st.Learners), membersListMax))
		return
	}
	if r.EmptyLog && r.Asker != m.cfg.ID && slices.Contains(st.Voters, r.Asker) && raftgroup.PastBootstrap(len(m.cfg.Peers), st.Commit) {
		m.noteLost(r.Asker)
	}
	last, err := m.store.LastIndex()
	if err != nil {
		w.Error(CodeUnavailable, fmt.Sprintf("manager %d: raft log: %v", m.cfg.ID, err))
		return
	}
	w.Reply(membersReply{Running: true, Voters: st.Voters, Learners: st.Learners, Commit: st.Commit, Leader: st.Leader, Last: last}.append(nil), nil, nil)
}

func (m *Manager) noteLost(id uint64) {
	m.repair.Lock()
	defer m.repair.Unlock()
	if m.repair.lost == nil {
		m.repair.lost = map[uint64]time.Time{}
	}
	if _, seen := m.repair.lost[id]; !seen {
		m.log.Warn("manager: a voter asks with an empty raft log: its log was lost; the leader takes it out and adds it back", "member", id)
	}
	m.repair.lost[id] = time.Now()
}

// lostVoters returns the voters of st that reported a lost log within
// lostReportTTL, and forgets the reports that lapsed or are of members
// that are no voters any more (taken out: once added back, they are
// members like any other).
func (m *Manager) lostVoters(st raftgroup.Status) []uint64 {
	m.repair.Lock()
	defer m.repair.Unlock()
	var out []uint64
	for id, at := range m.repair.lost {
		if !slices.Contains(st.Voters, id) || time.Since(at) > lostReportTTL {
			delete(m.repair.lost, id)
			continue
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// repairRound, while this member leads, takes one step of the group's
// membership repair (raftgroup.NextRepairStep) toward Config.Peers and
// the members the group has: a member that lost its log goes out and
// comes back as a learner, a caught-up learner is promoted, a peer the
// group lacks is added as a learner. A step that fails is logged and
// found again next round.
func (m *Manager) repairRound(ctx context.Context) {
	g := m.g.Load()
	if g == nil {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, m.cfg.ProposeTimeout)
	defer cancel()
	st, err := g.Status(sctx)
	if err != nil || st.Leader != m.cfg.ID || st.Match == nil {
		m.setRepair("")
		return
	}
	// Members Peers does not name are wanted too: the repair adds and
	// repairs, it never shrinks the group. Members given different peer
	// lists (a rolling change of --manager-peers) would otherwise undo
	// each other's steps whenever the leadership moves.
	want := slices.Concat(st.Voters, st.Learners)
	for _, p := range m.cfg.Peers {
		if !slices.Contains(want, p.ID) {
			want = append(want, p.ID)
		}
	}
	step := raftgroup.NextRepairStep(want, st, m.lostVoters(st))
	m.setRepair(step.String())
	switch step.Op {
	case raftgroup.RepairNone:
		return
	case raftgroup.RepairWait:
		m.log.Debug("manager: membership repair waits", "why", step.Why)
		return
	}
	addr := st.Members[step.ID] // known from the log
	if i := slices.IndexFunc(m.cfg.Peers, func(p raftgroup.Peer) bool { return p.ID == step.ID }); i >= 0 {
		addr = m.cfg.Peers[i].Addr
	}
	m.log.Info("manager: membership repair", "op", step.Op.String(), "member", step.ID, "why", step.Why, "voters", st.Voters, "learners", st.Learners)
	switch step.Op {
	case raftgroup.RepairAddLearner:
		err = g.AddLearner(sctx, step.ID, addr)
	case raftgroup.RepairPromote:
		err = g.AddMember(sctx, step.ID, addr)
	case raftgroup.RepairRemove:
		err = g.RemoveMember(sctx, step.ID)
	}
	if err != nil {
		m.log.Warn("manager: membership repair step failed; trying again", "op", step.Op.String(), "member", step.ID, "err", err)
	}
}

func (m *Manager) setRepair(s string) {
	m.repair.Lock()
	m.repair.step = s
	m.repair.Unlock()
}

func (m *Manager) setStarting(s string) {
	m.repair.Lock()
	m.repair.starting = s
	m.repair.Unlock()
}

// Starting says why this member has not started its raft member yet
// (its log is empty and decideStart refused so far), or "" once it has.
func (m *Manager) Starting() string {
	if m.g.Load() != nil {
		return ""
	}
	m.repair.Lock()
	defer m.repair.Unlock()
	if m.repair.starting == "" {
		return "probing its peers"
	}
	return m.repair.starting
}

// Repair returns the membership repair step this member, as leader, took
// or waits for last (raftgroup.RepairStep.String), "" when the group's
// members are Config.Peers or this member does not lead.
func (m *Manager) Repair() string {
	m.repair.Lock()
	defer m.repair.Unlock()
	return m.repair.step
}

func peerIDs(peers []raftgroup.Peer) []uint64 {
	ids := make([]uint64, len(peers))
	for i, p := range peers {
		ids[i] = p.ID
	}
	return ids
}

// sameIDs reports whether a and b hold the same ids, in any order.
func sameIDs(a, b []uint64) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(id uint64) bool { return !slices.Contains(b, id) })
}
