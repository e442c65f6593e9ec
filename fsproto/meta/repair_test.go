package meta

import (
	"fmt"
	stdnet "net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/namespace"
	"github.com/weftfs/weft/fsproto/raftgroup"
	"github.com/weftfs/weft/internal/testutil"
)

func TestNextRepairStep(t *testing.T) {
	ids := func(v ...clustermap.NodeID) []clustermap.NodeID { return v }
	all := map[uint64]bool{1: true, 2: true, 3: true, 4: true}
	cases := []struct {
		name   string
		want   []clustermap.NodeID
		st     raftgroup.Status
		lost   []clustermap.NodeID
		op     RepairOp
		node   clustermap.NodeID
		detail string
	}{
		{"in place", ids(1, 2, 3), raftgroup.Status{ID: 1, Voters: []uint64{1, 2, 3}, Match: map[uint64]uint64{1: 9, 2: 9, 3: 9}, Active: all}, nil,
			RepairNone, 0, ""},
		{"add the replacement as a learner first", ids(1, 2, 4), raftgroup.Status{ID: 1, Voters: []uint64{1, 2, 3}, Match: map[uint64]uint64{1: 9, 2: 9}, Active: map[uint64]bool{1: true, 2: true}}, nil,
			RepairAddLearner, 4, ""},
		{"wait for the learner", ids(1, 2, 4), raftgroup.Status{ID: 1, Voters: []uint64{1, 2, 3}, Learners: []uint64{4}, Match: map[uint64]uint64{1: 900, 2: 900, 4: 100}, Active: all}, nil,
			RepairWait, 4, "to catch up"},
		{"a learner that never answered is not caught up", ids(1, 2, 4), raftgroup.Status{ID: 1, Voters: []uint64{1, 2, 3}, Learners: []uint64{4}, Match: map[uint64]uint64{1: 9, 2: 9}, Active: map[uint64]bool{1: true, 2: true}}, nil,
			RepairWait, 4, "to catch up"},
		{"promote the caught-up learner", ids(1, 2, 4), raftgroup.Status{ID: 1, Voters: []uint64{1, 2, 3}, Learners: []uint64{4}, Match: map[uint64]uint64{1: 900, 2: 900, 4: 850}, Active: all}, nil,
			RepairPromote, 4, ""},
		{"then remove the old voter", ids(1, 2, 4), raftgroup.Status{ID: 1, Voters: []uint64{1, 2, 3, 4}, Match: map[uint64]uint64{1: 9, 2: 9, 4: 9}, Active: map[uint64]bool{1: true, 2: true, 4: true}}, nil,
			RepairRemove, 3, ""},
		{"a learner no longer wanted goes", ids(1, 2, 3), raftgroup.Status{ID: 1, Voters: []uint64{1, 2, 3}, Learners: []uint64{4}, Match: map[uint64]uint64{1: 9, 2: 9, 3: 9, 4: 9}, Active: all}, nil,
			RepairRemove, 4, ""},
		{"inactive extra voters before active ones, the leader last", ids(4, 5, 6), raftgroup.Status{ID: 1, Voters: []uint64{1, 2, 3, 4, 5, 6}, Match: map[uint64]uint64{1: 9, 2: 9, 3: 9, 4: 9, 5: 9, 6: 9},
			Active: map[uint64]bool{1: true, 2: true, 4: true, 5: true, 6: true}}, nil, RepairRemove, 3, ""},
		{"the leader removes itself last", ids(4, 5, 6), raftgroup.Status{ID: 1, Voters: []uint64{1, 4, 5, 6}, Match: map[uint64]uint64{1: 9, 4: 9, 5: 9, 6: 9},
			Active: map[uint64]bool{1: true, 4: true, 5: true, 6: true}}, nil, RepairRemove, 1, ""},
		{"no removal that leaves a minority active", ids(1, 2, 4, 5), raftgroup.Status{ID: 1, Voters: []uint64{1, 2, 3, 4, 5}, Match: map[uint64]uint64{1: 9, 2: 9, 3: 9, 4: 9, 5: 9},
			Active: map[uint64]bool{1: true, 2: true, 3: true}}, nil, RepairWait, 3, "would leave 2 active of 4"},
		{"a voter that lost its log goes out", ids(1, 2, 3), raftgroup.Status{ID: 1, Voters: []uint64{1, 2, 3}, Match: map[uint64]uint64{1: 90, 2: 90, 3: 80},
			Active: map[uint64]bool{1: true, 2: true}}, ids(3), RepairRemove, 3, "raft log was lost"},
		{"then comes back as a learner", ids(1, 2, 3), raftgroup.Status{ID: 1, Voters: []uint64{1, 2}, Match: map[uint64]uint64{1: 90, 2: 90},
			Active: map[uint64]bool{1: true, 2: true}}, nil, RepairAddLearner, 3, ""},
		{"a lost log is not taken out when that leaves a minority active", ids(1, 2, 3), raftgroup.Status{ID: 1, Voters: []uint64{1, 2, 3}, Match: map[uint64]uint64{1: 90, 2: 90, 3: 80},
			Active: map[uint64]bool{1: true}}, ids(3), RepairWait, 3, "would leave 1 active of 2"},
		{"a report of a node that is no voter, or of the leader, changes nothing", ids(1, 2, 3), raftgroup.Status{ID: 1, Voters: []uint64{1, 2, 3}, Match: map[uint64]uint64{1: 9, 2: 9, 3: 9}, Active: all},
			ids(1, 7), RepairNone, 0, ""},
	}
	for _, c := range cases {
		s := NextRepairStep(c.want, c.st, c.lost)
		if s.Op != c.op || s.Node != c.node || (c.detail != "" && !strings.Contains(s.Why, c.detail)) {
			t.Errorf("%s: %v %d (%s), want %v %d (%q)", c.name, s.Op, s.Node, s.Why, c.op, c.node, c.detail)
		}
	}
}

// TestRepairReplacesOutMember: a member's node dies and is taken Out; the
// map's record names a fourth node instead; the leader's Repair adds it
// as a learner (until then its host refuses to start it), promotes it
// once caught up and removes the dead voter. Then another original
// member dies, and the group still serves every entry written before.
func TestRepairReplacesOutMember(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	cl := c.client()
	for i := range 20 {
		if _, err := cl.Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: fmt.Sprintf("d%02d", i), Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const newID = clustermap.NodeID(4)
	m, err := c.m.Apply(clustermap.AddNode{ID: newID, Addr: ln.Addr().String(), Capacity: 1 << 40, Labels: map[string]string{"zone": "z4"}})
	if err != nil {
		t.Fatal(err)
	}
	c.hosts = append(c.hosts, &testHost{id: newID, addr: ln.Addr().String(), dir: filepath.Join(t.TempDir(), "n4")})
	c.serveOn(3, ln)
	victim := (c.leader(ctx) + 1) % 3
	c.kill(victim)
	if m, err = m.Apply(clustermap.SetNodeState{ID: c.hosts[victim].id, State: clustermap.Out}); err != nil {
		t.Fatal(err)
	}
	c.m = m
	want, _ := Members(m, c.ct)
	if !slices.Contains(want, newID) {
		t.Fatalf("members %v, want node %d among them", want, newID)
	}
	if err := c.hosts[3].host.SetMap(m); err == nil || !strings.Contains(err.Error(), "waits for the leader to add it") {
		t.Fatalf("node %d's SetMap before the leader added it: %v, want a refusal", newID, err)
	}
	for deadline := time.Now().Add(waitTimeout); ; {
		if time.Now().After(deadline) {
			t.Fatalf("the group never reached voters %v", want)
		}
		for i, h := range c.hosts {
			if h.host == nil {
				continue
			}
			if err := h.host.SetMap(m); err != nil && i != 3 {
				t.Fatal(err)
			}
			h.host.Repair(ctx)
		}
		lead := c.leader(ctx)
		st := c.hosts[lead].host.Status(ctx)
		if len(st) == 1 && len(st[0].Learners) == 0 && slices.Equal(st[0].Voters, sortedIDs(want)) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Another original member dies: the two left (one of them the new
	// one) are a majority of the repaired group.
	for i := range 3 {
		if i != victim && c.hosts[i].host != nil {
			c.kill(i)
			break
		}
	}
	ents, _, err := c.client().ReadDir(ctx, namespace.RootIno, "", 100)
	if err != nil || len(ents) != 20 {
		t.Fatalf("readdir after a second loss: %d entries, %v; want 20", len(ents), err)
	}
	if _, err := c.client().Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: "after", Mode: 0o755}); err != nil {
		t.Fatalf("mkdir after a second loss: %v", err)
	}
}

func sortedIDs(ids []clustermap.NodeID) []uint64 {
	out := make([]uint64, len(ids))
	for i, id := range ids {
		out[i] = uint64(id)
	}
	slices.Sort(out)
	return out
}
