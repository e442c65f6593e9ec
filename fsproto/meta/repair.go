package meta

import (
	"context"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/raftgroup"
)

// RepairInterval is how often Follow runs Repair.
const RepairInterval = 500 * time.Millisecond

// Repair takes one membership repair step (raftgroup.NextRepairStep,
// toward the map's record: Members) in each group
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
	step := raftgroup.NextRepairStep(nodeIDs(want), st, nodeIDs(h.lostVoters(mb.c, st)))
	note(step.String())
	log := h.log.With("container", uint64(mb.c), "voters", st.Voters, "learners", st.Learners, "want", want)
	var addr string
	switch step.Op {
	case raftgroup.RepairNone:
		return
	case raftgroup.RepairWait:
		log.Debug("meta: membership repair waits", "why", step.Why)
		return
	case raftgroup.RepairAddLearner, raftgroup.RepairPromote:
		n, ok := m.Node(clustermap.NodeID(step.ID))
		if !ok {
			return
		}
		addr = n.Addr
	}
	log.Info("meta: membership repair", "op", step.Op.String(), "node", step.ID, "why", step.Why)
	switch step.Op {
	case raftgroup.RepairAddLearner:
		err = mb.g.AddLearner(ctx, step.ID, addr)
	case raftgroup.RepairPromote:
		err = mb.g.AddMember(ctx, step.ID, addr)
	case raftgroup.RepairRemove:
		err = mb.g.RemoveMember(ctx, step.ID)
	}
	if err != nil {
		log.Warn("meta: membership repair step failed; trying again", "op", step.Op.String(), "node", step.ID, "err", err)
	}
}

func nodeIDs(ns []clustermap.NodeID) []uint64 {
	ids := make([]uint64, len(ns))
	for i, n := range ns {
		ids[i] = uint64(n)
	}
	return ids
}
