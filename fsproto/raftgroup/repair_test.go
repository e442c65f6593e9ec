package raftgroup

import (
	"strings"
	"testing"
)

func TestNextRepairStep(t *testing.T) {
	ids := func(v ...uint64) []uint64 { return v }
	all := map[uint64]bool{1: true, 2: true, 3: true, 4: true}
	cases := []struct {
		name   string
		want   []uint64
		st     Status
		lost   []uint64
		op     RepairOp
		id     uint64
		detail string
	}{
		{"in place", ids(1, 2, 3), Status{ID: 1, Voters: []uint64{1, 2, 3}, Match: map[uint64]uint64{1: 9, 2: 9, 3: 9}, Active: all}, nil,
			RepairNone, 0, ""},
		{"add the replacement as a learner first", ids(1, 2, 4), Status{ID: 1, Voters: []uint64{1, 2, 3}, Match: map[uint64]uint64{1: 9, 2: 9}, Active: map[uint64]bool{1: true, 2: true}}, nil,
			RepairAddLearner, 4, ""},
		{"wait for the learner", ids(1, 2, 4), Status{ID: 1, Voters: []uint64{1, 2, 3}, Learners: []uint64{4}, Match: map[uint64]uint64{1: 900, 2: 900, 4: 100}, Active: all}, nil,
			RepairWait, 4, "to catch up"},
		{"a learner that never answered is not caught up", ids(1, 2, 4), Status{ID: 1, Voters: []uint64{1, 2, 3}, Learners: []uint64{4}, Match: map[uint64]uint64{1: 9, 2: 9}, Active: map[uint64]bool{1: true, 2: true}}, nil,
			RepairWait, 4, "to catch up"},
		{"promote the caught-up learner", ids(1, 2, 4), Status{ID: 1, Voters: []uint64{1, 2, 3}, Learners: []uint64{4}, Match: map[uint64]uint64{1: 900, 2: 900, 4: 850}, Active: all}, nil,
			RepairPromote, 4, ""},
		{"then remove the old voter", ids(1, 2, 4), Status{ID: 1, Voters: []uint64{1, 2, 3, 4}, Match: map[uint64]uint64{1: 9, 2: 9, 4: 9}, Active: map[uint64]bool{1: true, 2: true, 4: true}}, nil,
			RepairRemove, 3, ""},
		{"a learner no longer wanted goes", ids(1, 2, 3), Status{ID: 1, Voters: []uint64{1, 2, 3}, Learners: []uint64{4}, Match: map[uint64]uint64{1: 9, 2: 9, 3: 9, 4: 9}, Active: all}, nil,
			RepairRemove, 4, ""},
		{"inactive extra voters before active ones, the leader last", ids(4, 5, 6), Status{ID: 1, Voters: []uint64{1, 2, 3, 4, 5, 6}, Match: map[uint64]uint64{1: 9, 2: 9, 3: 9, 4: 9, 5: 9, 6: 9},
			Active: map[uint64]bool{1: true, 2: true, 4: true, 5: true, 6: true}}, nil, RepairRemove, 3, ""},
		{"the leader removes itself last", ids(4, 5, 6), Status{ID: 1, Voters: []uint64{1, 4, 5, 6}, Match: map[uint64]uint64{1: 9, 4: 9, 5: 9, 6: 9},
			Active: map[uint64]bool{1: true, 4: true, 5: true, 6: true}}, nil, RepairRemove, 1, ""},
		{"no removal that leaves a minority active", ids(1, 2, 4, 5), Status{ID: 1, Voters: []uint64{1, 2, 3, 4, 5}, Match: map[uint64]uint64{1: 9, 2: 9, 3: 9, 4: 9, 5: 9},
			Active: map[uint64]bool{1: true, 2: true, 3: true}}, nil, RepairWait, 3, "would leave 2 active of 4"},
		{"a voter that lost its log goes out", ids(1, 2, 3), Status{ID: 1, Voters: []uint64{1, 2, 3}, Match: map[uint64]uint64{1: 90, 2: 90, 3: 80},
			Active: map[uint64]bool{1: true, 2: true}}, ids(3), RepairRemove, 3, "raft log was lost"},
		{"then comes back as a learner", ids(1, 2, 3), Status{ID: 1, Voters: []uint64{1, 2}, Match: map[uint64]uint64{1: 90, 2: 90},
			Active: map[uint64]bool{1: true, 2: true}}, nil, RepairAddLearner, 3, ""},
		{"a lost log is not taken out when that leaves a minority active", ids(1, 2, 3), Status{ID: 1, Voters: []uint64{1, 2, 3}, Match: map[uint64]uint64{1: 90, 2: 90, 3: 80},
			Active: map[uint64]bool{1: true}}, ids(3), RepairWait, 3, "would leave 1 active of 2"},
		{"a report of a node that is no voter, or of the leader, changes nothing", ids(1, 2, 3), Status{ID: 1, Voters: []uint64{1, 2, 3}, Match: map[uint64]uint64{1: 9, 2: 9, 3: 9}, Active: all},
			ids(1, 7), RepairNone, 0, ""},
	}
	for _, c := range cases {
		s := NextRepairStep(c.want, c.st, c.lost)
		if s.Op != c.op || s.ID != c.id || (c.detail != "" && !strings.Contains(s.Why, c.detail)) {
			t.Errorf("%s: %v %d (%s), want %v %d (%q)", c.name, s.Op, s.ID, s.Why, c.op, c.id, c.detail)
		}
	}
}
