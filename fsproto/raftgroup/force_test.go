package raftgroup

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftfs/weft/internal/testutil"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// TestForceSoleVoter: a group of three loses two members' logs for good;
// the third's log, forced, makes it the sole voter. It elects itself
// with everything its log held (snapshot and entries, including entries
// it appended that were never committed), serves new proposals, and
// takes new members as learners that then vote.
func TestForceSoleVoter(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 21, 3, func(cfg *Config) { cfg.SnapshotEvery = 8 })
	lead := c.leader()
	for i := range 20 {
		c.propose(lead, fmt.Sprintf("a%d=1", i))
	}
	want := c.converge(20)
	survivor := lead%3 + 1
	c.stopAll()
	// An entry the survivor holds but nobody committed: appended
	// through its log as a leader's own append would be.
	log := c.logs[survivor]
	last, _ := log.LastIndex()
	term, _ := log.Term(last)
	hs, _, _ := log.InitialState()
	e := &raftpb.Entry{Term: proto.Uint64(term), Index: proto.Uint64(last + 1), Type: raftpb.EntryNormal.Enum(), Data: encodeEntry(999, []byte("uncommitted=1"))}
	if err := log.Save(nil, []*raftpb.Entry{e}, nil); err != nil {
		t.Fatal(err)
	}

	res, err := ForceSoleVoter(log, survivor, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("forced: %+v (commit was %d)", res, hs.GetCommit())
	if !slices.Equal(res.Voters, []uint64{1, 2, 3}) || len(res.Learners) != 0 || res.Promoted || res.LogLast != last+1 ||
		!slices.Equal(res.Removed, c.others(survivor)) || res.Last != last+1+2 {
		t.Fatalf("result %+v, want voters 1..3, removed %v, last %d", res, c.others(survivor), last+3)
	}
	g := c.start(survivor, false)
	waitFor(t, "the survivor to lead alone", func() bool { return g.Leader() == survivor })
	c.propose(survivor, "b=1")
	want = append(want, "uncommitted=1", "b=1")
	if got := c.converge(len(want), survivor); !slices.Equal(got, want) {
		t.Fatalf("survivor applied %v, want %v", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	st, err := g.Status(ctx)
	if err != nil || !slices.Equal(st.Voters, []uint64{survivor}) || len(st.Learners) != 0 {
		t.Fatalf("status voters %v learners %v, %v", st.Voters, st.Learners, err)
	}

	// A lost member comes back with an empty log: as a new member.
	back := c.others(survivor)[0]
	c.logs[back] = NewMemLog()
	if err := g.AddLearner(ctx, back, fmt.Sprintf("mem-%d", back)); err != nil {
		t.Fatal(err)
	}
	c.start(back, true)
	waitFor(t, "the returning member to catch up", func() bool {
		st, err := g.Status(ctx)
		return err == nil && st.Match[back] >= st.Match[survivor] && st.Active[back]
	})
	if err := g.AddMember(ctx, back, fmt.Sprintf("mem-%d", back)); err != nil {
		t.Fatal(err)
	}
	c.propose(back, "c=1")
	want = append(want, "c=1")
	c.converge(len(want), survivor, back)
}

// TestForceSoleVoterRefuses: an empty log, a member the log does not
// name; and a learner is promoted as it is forced.
func TestForceSoleVoterRefuses(t *testing.T) {
	if _, err := ForceSoleVoter(NewMemLog(), 1, false); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty log: %v", err)
	}
	testutil.CheckLeaks(t)
	c := newCluster(t, 22, 3, nil)
	lead := c.leader()
	c.propose(lead, "a=1")
	c.addLearner(lead, 4)
	c.converge(1)
	c.stopAll()
	if _, err := ForceSoleVoter(c.logs[4], 9, false); err == nil || !strings.Contains(err.Error(), "not in the log's configuration") {
		t.Fatalf("member 9: %v", err)
	}
	before, _ := c.logs[4].LastIndex()
	dry, err := ForceSoleVoter(c.logs[4], 4, true)
	if after, _ := c.logs[4].LastIndex(); err != nil || after != before || !dry.Promoted || dry.Last != before+4 {
		t.Fatalf("dry run: %+v, %v; last index %d -> %d", dry, err, before, after)
	}
	res, err := ForceSoleVoter(c.logs[4], 4, false)
	if err != nil || !res.Promoted || !slices.Equal(res.Learners, []uint64{4}) || !slices.Equal(res.Removed, []uint64{1, 2, 3}) {
		t.Fatalf("forcing learner 4: %+v, %v", res, err)
	}
	g := c.start(4, false)
	waitFor(t, "the forced learner to lead alone", func() bool { return g.Leader() == 4 })
	c.propose(4, "b=1")
	c.converge(2, 4)
}

// TestSeedSoleVoter: a state kept outside the group's logs starts a
// group of one from an empty log: the member restores it, leads, serves
// proposals on top of it, and takes a new member that joins from a
// snapshot. A log that is not empty is refused.
func TestSeedSoleVoter(t *testing.T) {
	testutil.CheckLeaks(t)
	kept := newTestSM()
	kept.Apply(1, []byte("a=1"))
	kept.Apply(2, []byte("b=2"))
	state, err := kept.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := SeedSoleVoter(NewMemLog(), 0, "m0", state); err == nil {
		t.Fatal("member 0 seeded")
	}
	log := NewMemLog()
	if err := SeedSoleVoter(log, 1, "m1", state); err != nil {
		t.Fatal(err)
	}
	if err := SeedSoleVoter(log, 1, "m1", state); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("seeding a seeded log: %v", err)
	}
	mn := NewMemNetwork(1)
	sm := newTestSM()
	g, err := Start(Config{ID: 1, Peers: []Peer{{1, "m1"}}, Log: log, SM: sm, Transport: mn.Transport(),
		TickInterval: 10 * time.Millisecond, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	waitFor(t, "the seeded member to lead", func() bool { return g.Leader() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := g.Propose(ctx, []byte("c=3")); err != nil {
		t.Fatal(err)
	}
	if got := sm.History(); !slices.Equal(got, []string{"a=1", "b=2", "c=3"}) {
		t.Fatalf("history %v", got)
	}
	if err := g.AddLearner(ctx, 2, "m2"); err != nil {
		t.Fatal(err)
	}
	sm2 := newTestSM()
	g2, err := Start(Config{ID: 2, Peers: []Peer{{1, "m1"}, {2, "m2"}}, Join: true, Log: NewMemLog(), SM: sm2, Transport: mn.Transport(),
		TickInterval: 10 * time.Millisecond, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Stop()
	waitFor(t, "the new member to hold the seeded state", func() bool { return slices.Equal(sm2.History(), []string{"a=1", "b=2", "c=3"}) })
}

// TestTransferLeadership: the leader hands the leadership to the member
// it names, which then serves proposals; a follower asked does nothing.
func TestTransferLeadership(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 23, 3, nil)
	lead := c.leader()
	c.propose(lead, "a=1")
	to := c.others(lead)[0]
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.groups[to].TransferLeadership(ctx, c.others(lead)[1]); err != nil {
		t.Fatal(err)
	}
	if err := c.groups[lead].TransferLeadership(ctx, to); err != nil {
		t.Fatal(err)
	}
	waitFor(t, fmt.Sprintf("member %d to lead", to), func() bool {
		for _, g := range c.groups {
			if g.Leader() != to {
				return false
			}
		}
		return true
	})
	c.propose(to, "b=2")
	c.converge(2)
}
