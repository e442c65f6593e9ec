package meta

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/raftgroup"
)

// RepairInterval is how often Follow runs Repair.
const RepairInterval = 500 * time.Millisecond

// repairLagMax is how many entries a learner may trail the leader's last
// index by and still be promoted: close enough that, as a voter, it acks
// new entries at once rather than stalling commits while it catches up.
const repairLagMax = 64

// RepairOp is what one membership repair step does.
type RepairOp uint8

const (
	// RepairNone: raft's configuration is the map's record.
	RepairNone RepairOp = iota
	// RepairWait: a step is due but not yet safe (a learner catching up,
	// a removal that would leave too few active voters).
	RepairWait
	// RepairAddLearner: add a member of the record as a learner.
	RepairAddLearner
	// RepairPromote: make a caught-up learner a voter.
	RepairPromote
	// RepairRemove: remove a voter or learner that the record no longer
	// names.
	RepairRemove
)

var repairOpNames = [...]string{RepairNone: "none", RepairWait: "wait", RepairAddLearner: "add learner", RepairPromote: "promote", RepairRemove: "remove"}

func (o RepairOp) String() string {
	if int(o) < len(repairOpNames) {
		return repairOpNames[o]
	}
	return fmt.Sprintf("RepairOp(%d)", uint8(o))
}

// RepairStep is the next step of a group's membership repair.
type RepairStep struct {
	Op   RepairOp
	Node clustermap.NodeID
	Why  string // for logs and status: what the step is waiting for or fixing
}

func (s RepairStep) String() string {
	switch s.Op {
	case RepairNone:
		return ""
	case RepairWait:
		return "waiting: " + s.Why
	}
	return fmt.Sprintf("%v %d: %s", s.Op, s.Node, s.Why)
}

// NextRepairStep returns the step that moves a group whose leader reports
// st toward the membership want (the map's record, Members), one change
// at a time, never lowering the group's fault tolerance in between:
//
//  1. a learner that want does not name is removed;
//     1b. a voter that lost its raft log (lost: it asked with an empty
//     log where that means a lost one, see emptyVoterLost) is
//     removed, when the voters left keep a majority of active ones;
//     rule 3 then adds it back as a learner, and it joins afresh;
//  2. a learner that want names is promoted once caught up (its Match
//     within repairLagMax of the leader's own, and recently active),
//     else the repair waits for it: one learner at a time;
//  3. a node of want that is neither voter nor learner is added as a
//     learner, which does not count toward the quorum, so a new member
//     that never comes up costs the group nothing;
//  4. only once every node of want votes, a voter that want does not
//     name is removed: inactive ones first, the leader itself last, and
//     only when the remaining voters keep a majority of active ones.
//
// The step depends on nothing but want and st, so a new leader, or the
// same one after a restart, carries on where the last one stopped.
// st must be the leader's (its Match and Active are set).
func NextRepairStep(want []clustermap.NodeID, st raftgroup.Status, lost []clustermap.NodeID) RepairStep {
	has := func(ids []uint64, n clustermap.NodeID) bool { return slices.Contains(ids, uint64(n)) }
	wanted := func(id uint64) bool { return slices.Contains(want, clustermap.NodeID(id)) }
	// leavesMajority reports whether the voters other than v include a
	// majority of active ones, and if not, why.
	leavesMajority := func(v uint64) (bool, string) {
		active := 0
		for _, x := range st.Voters {
			if x != v && st.Active[x] {
				active++
			}
		}
		if rest := len(st.Voters) - 1; active < rest/2+1 {
			return false, fmt.Sprintf("removing voter %d would leave %d active of %d voters", v, active, rest)
		}
		return true, ""
	}
	for _, l := range st.Learners {
		if !wanted(l) {
			return RepairStep{RepairRemove, clustermap.NodeID(l), "a learner the map's record does not name"}
		}
	}
	for _, n := range lost {
		if !has(st.Voters, n) || uint64(n) == st.ID {
			continue
		}
		if ok, why := leavesMajority(uint64(n)); !ok {
			return RepairStep{RepairWait, n, why}
		}
		return RepairStep{RepairRemove, n, "its raft log was lost (it asked with an empty log while a voter): out, then back as a learner"}
	}
	last := st.Match[st.ID]
	// Learners are promoted one at a time, the first one first (every
	// learner left here is one the record names).
	if len(st.Learners) > 0 {
		l := st.Learners[0]
		if m := st.Match[l]; m > 0 && m+repairLagMax >= last && st.Active[l] {
			return RepairStep{RepairPromote, clustermap.NodeID(l), fmt.Sprintf("caught up (match %d, leader's last index %d)", m, last)}
		}
		return RepairStep{RepairWait, clustermap.NodeID(l), fmt.Sprintf("learner %d to catch up (match %d, leader's last index %d, active %v)", l, st.Match[l], last, st.Active[l])}
	}
	for _, n := range want {
		if !has(st.Voters, n) {
			return RepairStep{RepairAddLearner, n, fmt.Sprintf("in the map's record %v, not in the group's voters %v", want, st.Voters)}
		}
	}
	var extra []uint64
	for _, v := range st.Voters {
		if !wanted(v) {
			extra = append(extra, v)
		}
	}
	if len(extra) == 0 {
		return RepairStep{Op: RepairNone}
	}
	// Inactive first, the leader last, then by id.
	rank := func(v uint64) int {
		switch {
		case v == st.ID:
			return 2
		case st.Active[v]:
			return 1
		}
		return 0
	}
	slices.SortFunc(extra, func(a, b uint64) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return int(a) - int(b)
	})
	v := extra[0]
	if ok, why := leavesMajority(v); !ok {
		return RepairStep{RepairWait, clustermap.NodeID(v), why}
	}
	return RepairStep{RepairRemove, clustermap.NodeID(v), fmt.Sprintf("a voter the map's record %v does not name", want)}
}

// Repair takes one membership repair step (NextRepairStep) in each group
// this host leads, toward the Members of the last map SetMap had, and
// logs it. Follow runs it every RepairInterval; a step that fails (a
// conf change raft dropped, a lost leadership) is logged and found again
// next time. A new member's host refuses to start until the leader added
// it (see probe), and then joins.
func (h *Host) Repair(ctx context.Context) {
	h.mu.Lock()
	m := h.mu.m
	ms := make([]*member, 0, len(h.mu.members))
	for _, mb := range h.mu.members {
		ms = append(ms, mb)
	}
	h.mu.Unlock()
	if m == nil {
		return
	}
	for _, mb := range ms {
		if ctx.Err() != nil {
			return
		}
		if h.dropRemoved(m, mb) {
			continue
		}
		h.repairGroup(ctx, m, mb)
	}
}

// markRetry is how long Repair waits after a failed MarkFormed before it
// tries again for the same container; markTimeout bounds one try.
const (
	markRetry   = 5 * time.Second
	markTimeout = 2 * time.Second
)

// markFormed, on the leader of container c's group with commit index
// commit, asks HostConfig.MarkFormed to mark the group formed once it has
// committed past its bootstrap entries and the map m does not show the
// mark yet. A map that has not caught up with an earlier mark makes the
// next try an ErrNoChange, which MarkFormed counts as done.
func (h *Host) markFormed(ctx context.Context, m *clustermap.Map, c clustermap.ContainerID, commit uint64) {
	ct, ok := m.Container(c)
	if h.cfg.MarkFormed == nil || !ok || ct.MetaFormed || len(ct.MetaBootstrap) == 0 || !pastBootstrap(ct.MetaBootstrap, commit) {
		return
	}
	h.mu.Lock()
	failed, waiting := h.mu.markFailed[c]
	h.mu.Unlock()
	if waiting && time.Since(failed) < markRetry {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, markTimeout)
	defer cancel()
	err := h.cfg.MarkFormed(ctx, c)
	h.mu.Lock()
	if err != nil {
		h.mu.markFailed[c] = time.Now()
	} else {
		delete(h.mu.markFailed, c)
	}
	h.mu.Unlock()
	if err != nil {
		h.log.Warn("meta: marking the group formed in the map failed; trying again", "container", uint64(c), "commit", commit, "err", err)
		return
	}
	h.log.Info("meta: group marked formed in the map", "container", uint64(c), "commit", commit)
}

func (h *Host) repairGroup(ctx context.Context, m *clustermap.Map, mb *member) {
	note := func(s string) {
		h.mu.Lock()
		if s == "" {
			delete(h.mu.repair, mb.c)
		} else {
			h.mu.repair[mb.c] = s
		}
		h.mu.Unlock()
	}
	if mb.g.Leader() != uint64(h.cfg.Node) {
		note("")
		return
	}
	want, err := Members(m, mb.c)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.ProposeTimeout)
	defer cancel()
	st, err := mb.g.Status(ctx)
	if err != nil || st.Leader != uint64(h.cfg.Node) || st.Match == nil {
		return
	}
	h.markFormed(ctx, m, mb.c, st.Commit)
	step := NextRepairStep(want, st, h.lostVoters(mb.c, st))
	note(step.String())
	log := h.log.With("container", uint64(mb.c), "voters", st.Voters, "learners", st.Learners, "want", want)
	var addr string
	switch step.Op {
	case RepairNone:
		return
	case RepairWait:
		log.Debug("meta: membership repair waits", "why", step.Why)
		return
	case RepairAddLearner, RepairPromote:
		n, ok := m.Node(step.Node)
		if !ok {
			return
		}
		addr = n.Addr
	}
	log.Info("meta: membership repair", "op", step.Op.String(), "node", uint64(step.Node), "why", step.Why)
	switch step.Op {
	case RepairAddLearner:
		err = mb.g.AddLearner(ctx, uint64(step.Node), addr)
	case RepairPromote:
		err = mb.g.AddMember(ctx, uint64(step.Node), addr)
	case RepairRemove:
		err = mb.g.RemoveMember(ctx, uint64(step.Node))
	}
	if err != nil {
		log.Warn("meta: membership repair step failed; trying again", "op", step.Op.String(), "node", uint64(step.Node), "err", err)
	}
}
