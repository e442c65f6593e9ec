package raftgroup

import (
	"fmt"
	"slices"
)

// Membership repair: the steps by which a leader moves its group's raft
// configuration toward a wanted set of members, used by the metadata
// groups (the map's record of each container) and the managers' group
// (its configured peers).

// repairLagMax is how many entries a learner may trail the leader's last
// index by and still be promoted: close enough that, as a voter, it acks
// new entries at once rather than stalling commits while it catches up.
const repairLagMax = 64

// RepairOp is what one membership repair step does.
type RepairOp uint8

const (
	// RepairNone: raft's configuration is the wanted one.
	RepairNone RepairOp = iota
	// RepairWait: a step is due but not yet safe (a learner catching up,
	// a removal that would leave too few active voters).
	RepairWait
	// RepairAddLearner: add a wanted member as a learner.
	RepairAddLearner
	// RepairPromote: make a caught-up learner a voter.
	RepairPromote
	// RepairRemove: remove a voter or learner that is not wanted.
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
	Op  RepairOp
	ID  uint64
	Why string // for logs and status: what the step is waiting for or fixing
}

func (s RepairStep) String() string {
	switch s.Op {
	case RepairNone:
		return ""
	case RepairWait:
		return "waiting: " + s.Why
	}
	return fmt.Sprintf("%v %d: %s", s.Op, s.ID, s.Why)
}

// NextRepairStep returns the step that moves a group whose leader reports
// st toward the membership want, one change at a time, never lowering the
// group's fault tolerance in between:
//
//  1. a learner that want does not name is removed;
//     1b. a voter that lost its raft log (lost: it asked with an empty
//     log while the group is past its bootstrap entries, PastBootstrap)
//     is removed, when the voters left keep a majority of active ones;
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
func NextRepairStep(want []uint64, st Status, lost []uint64) RepairStep {
	has := func(ids []uint64, n uint64) bool { return slices.Contains(ids, n) }
	wanted := func(id uint64) bool { return slices.Contains(want, id) }
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
			return RepairStep{RepairRemove, l, "a learner the wanted membership does not name"}
		}
	}
	for _, n := range lost {
		if !has(st.Voters, n) || n == st.ID {
			continue
		}
		if ok, why := leavesMajority(n); !ok {
			return RepairStep{RepairWait, n, why}
		}
		return RepairStep{RepairRemove, n, "its raft log was lost (it asked with an empty log while a voter): out, then back as a learner"}
	}
	last := st.Match[st.ID]
	// Learners are promoted one at a time, the first one first (every
	// learner left here is wanted).
	if len(st.Learners) > 0 {
		l := st.Learners[0]
		if m := st.Match[l]; m > 0 && m+repairLagMax >= last && st.Active[l] {
			return RepairStep{RepairPromote, l, fmt.Sprintf("caught up (match %d, leader's last index %d)", m, last)}
		}
		return RepairStep{RepairWait, l, fmt.Sprintf("learner %d to catch up (match %d, leader's last index %d, active %v)", l, st.Match[l], last, st.Active[l])}
	}
	for _, n := range want {
		if !has(st.Voters, n) {
			return RepairStep{RepairAddLearner, n, fmt.Sprintf("wanted (%v), not among the group's voters %v", want, st.Voters)}
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
		return RepairStep{RepairWait, v, why}
	}
	return RepairStep{RepairRemove, v, fmt.Sprintf("a voter the wanted membership %v does not name", want)}
}

// PastBootstrap reports whether a group bootstrapped with n members has
// committed an entry past its bootstrap entries (one conf change per
// member) once its commit index is commit. A voter that asks to start
// with an empty log before that is about to write the same bootstrap
// entries as the others; after it, the voter lost its log (or never
// started while the group went on), and raft can take it back only as a
// new member: out, then in as a learner (NextRepairStep).
func PastBootstrap(n int, commit uint64) bool {
	return commit > uint64(n)
}
