package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftfs/weft/internal/testutil"
)

func TestProposeOnAnyMember(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 1, 3, nil)
	c.leader()
	const n = 30
	for i := range n {
		id := uint64(i%3 + 1)
		res := c.propose(id, fmt.Sprintf("k%d=v%d", i, i))
		if pos, ok := res.(int); !ok || pos != i+1 {
			t.Fatalf("proposal %d on member %d returned %v, want position %d", i, id, res, i+1)
		}
	}
	h := c.converge(n)
	for i, cmd := range h {
		if want := fmt.Sprintf("k%d=v%d", i, i); cmd != want {
			t.Fatalf("history[%d] = %q, want %q (proposals were sequential)", i, cmd, want)
		}
	}
	for id, sm := range c.sms {
		if v := sm.Get("k7"); v != "v7" {
			t.Fatalf("member %d: k7 = %q", id, v)
		}
	}
}

func TestConcurrentProposals(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 2, 3, nil)
	c.leader()
	const perMember = 20
	errc := make(chan error, 3*perMember)
	for id := uint64(1); id <= 3; id++ {
		go func() {
			for i := range perMember {
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				var err error
				for {
					_, err = c.groups[id].Propose(ctx, fmt.Appendf(nil, "m%d-%d=x", id, i))
					if err == nil || !Retryable(err) || ctx.Err() != nil {
						break
					}
				}
				cancel()
				errc <- err
			}
		}()
	}
	for range 3 * perMember {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	h := c.converge(3 * perMember)
	// Each member's own proposals were sequential, so they apply in order.
	for id := 1; id <= 3; id++ {
		next := 0
		for _, cmd := range h {
			if strings.HasPrefix(cmd, fmt.Sprintf("m%d-", id)) {
				if want := fmt.Sprintf("m%d-%d=x", id, next); cmd != want {
					t.Fatalf("member %d's proposals out of order: %q where %q was due: %v", id, cmd, want, h)
				}
				next++
			}
		}
	}
}

func TestLeaderStopElectsNewLeaderAndRestartCatchesUp(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 3, 3, nil)
	old := c.leader()
	for i := range 10 {
		c.propose(old, fmt.Sprintf("a%d=1", i))
	}
	c.stop(old)
	var rest []uint64
	for id := range c.groups {
		rest = append(rest, id)
	}
	lead := c.leader(rest...)
	if lead == old {
		t.Fatalf("stopped member %d still leads", old)
	}
	for i := range 10 {
		c.propose(rest[i%2], fmt.Sprintf("b%d=1", i))
	}
	c.converge(20, rest...)

	c.start(old, false)
	c.converge(20)
	c.propose(old, "c=1")
	c.converge(21)
}

func TestRestartCatchesUpViaSnapshot(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 4, 3, func(cfg *Config) { cfg.SnapshotEvery = 5 })
	lead := c.leader()
	var follower uint64
	for id := range c.groups {
		if id != lead {
			follower = id
			break
		}
	}
	c.propose(lead, "x=0")
	c.converge(1)
	c.stop(follower)
	followerLast, _ := c.logs[follower].LastIndex()
	for i := range 40 {
		c.propose(lead, fmt.Sprintf("x%d=%d", i, i))
	}
	waitFor(t, "the leader's log compacted past the stopped follower's", func() bool {
		first, _ := c.logs[lead].FirstIndex()
		return first > followerLast+1
	})
	c.start(follower, false)
	c.converge(41)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	st, err := c.groups[follower].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.SnapIndex <= followerLast {
		t.Fatalf("follower caught up without a snapshot: snapshot index %d, its last index before %d", st.SnapIndex, followerLast)
	}
	if len(st.Members) != 3 {
		t.Fatalf("follower knows members %v after the snapshot, want 3", st.Members)
	}
	// Restarting from a log that starts with a snapshot works too.
	c.stop(follower)
	c.start(follower, false)
	c.converge(41)
	c.propose(follower, "after=1")
	c.converge(42)
}

func TestPartitionedMinority(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 5, 3, nil)
	old := c.leader()
	c.propose(old, "before=1")
	var majority []uint64
	for id := range c.groups {
		if id != old {
			majority = append(majority, id)
		}
	}
	// Isolate the leader: the minority is the member that leads.
	c.net.Isolate(old, majority...)
	lead := c.leader(majority...)
	for i := range 10 {
		c.propose(majority[i%2], fmt.Sprintf("maj%d=1", i))
	}
	c.converge(11, majority...)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := c.groups[old].Propose(ctx, []byte("minority=1"))
	cancel()
	if err == nil {
		t.Fatal("a proposal on the isolated minority succeeded")
	}
	if !strings.Contains(err.Error(), "raftgroup: member") {
		t.Fatalf("minority proposal error %q does not say which member", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) && !Retryable(err) {
		t.Fatalf("minority proposal error %v: want a deadline or a retryable error", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	err = c.groups[old].ReadIndex(ctx)
	cancel()
	if err == nil {
		t.Fatal("a read barrier on the isolated minority succeeded")
	}

	c.net.Heal()
	h := c.converge(11)
	if slices.Contains(h, "minority=1") {
		t.Fatalf("the isolated member's proposal was applied: %v", h)
	}
	c.propose(old, "healed=1")
	c.converge(12)
	_ = lead
}

func TestReadIndexSeesCompletedWrites(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 6, 3, nil)
	lead := c.leader()
	for i := range 5 {
		c.propose(lead, fmt.Sprintf("r=%d", i))
		for id, g := range c.groups {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			err := g.ReadIndex(ctx)
			cancel()
			if err != nil {
				t.Fatalf("read index on %d: %v", id, err)
			}
			if v := c.sms[id].Get("r"); v != fmt.Sprint(i) {
				t.Fatalf("member %d reads r=%q after its read barrier, want %d", id, v, i)
			}
		}
	}
}

func TestGrowOneToThreeToFive(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 7, 1, nil)
	lead := c.leader()
	c.propose(lead, "solo=1")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for id := uint64(2); id <= 5; id++ {
		addr := fmt.Sprintf("mem-%d", id)
		if err := c.groups[lead].AddMember(ctx, id, addr); err != nil {
			t.Fatalf("add member %d: %v", id, err)
		}
		c.peers = append(c.peers, Peer{ID: id, Addr: addr})
		c.start(id, true)
		c.converge(int(id - 1))
		c.propose(id, fmt.Sprintf("with%d=1", id))
		c.converge(int(id))
		if id == 3 {
			c.leader()
		}
	}
	st, err := c.groups[lead].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.Voters, []uint64{1, 2, 3, 4, 5}) || len(st.Members) != 5 {
		t.Fatalf("voters %v, members %v: want 1..5", st.Voters, st.Members)
	}

	// And shrink back to four: the removed member stops taking proposals.
	if err := c.groups[lead].RemoveMember(ctx, 5); err != nil && lead != 5 {
		t.Fatalf("remove member 5: %v", err)
	}
	waitFor(t, "member 5 to learn of its removal", func() bool {
		return errors.Is(c.groups[5].ReadIndex(ctx), ErrRemoved)
	})
	if _, err := c.groups[5].Propose(ctx, []byte("removed=1")); !errors.Is(err, ErrRemoved) {
		t.Fatalf("proposal on a removed member: %v, want ErrRemoved", err)
	}
	c.propose(c.leader(1, 2, 3, 4), "four=1")
	c.converge(6, 1, 2, 3, 4)

	// Removing the leader itself: it steps down and the other three go on.
	lead = c.leader(1, 2, 3, 4)
	if err := c.groups[lead].RemoveMember(ctx, lead); err != nil && !errors.Is(err, ErrRemoved) {
		t.Fatalf("leader %d removing itself: %v", lead, err)
	}
	var rest []uint64
	for id := uint64(1); id <= 4; id++ {
		if id != lead {
			rest = append(rest, id)
		}
	}
	c.propose(c.leader(rest...), "three=1")
	c.converge(7, rest...)
	st, err = c.groups[rest[0]].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Voters) != 3 || slices.Contains(st.Voters, lead) {
		t.Fatalf("voters %v after removing %d", st.Voters, lead)
	}
}

func TestSaveFailureStopsTheGroup(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 8, 1, nil)
	c.leader()
	c.propose(1, "ok=1")
	boom := errors.New("disk on fire")
	c.logs[1].FailSaves(boom)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, err := c.groups[1].Propose(ctx, []byte("lost=1"))
	if !errors.Is(err, ErrStopped) || !errors.Is(err, boom) {
		t.Fatalf("proposal during a failing save: %v, want ErrStopped and the cause", err)
	}
	if !errors.Is(c.groups[1].Err(), boom) {
		t.Fatalf("Err() = %v, want the save failure", c.groups[1].Err())
	}
	if _, err := c.groups[1].Propose(ctx, []byte("after=1")); !errors.Is(err, ErrStopped) {
		t.Fatalf("proposal after the group stopped: %v", err)
	}
}

func TestStopFailsWaitingCalls(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 9, 3, nil)
	lead := c.leader()
	var others []uint64
	for id := range c.groups {
		if id != lead {
			others = append(others, id)
		}
	}
	// Without its followers the leader cannot commit: the proposal waits.
	c.net.Isolate(lead, others...)
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_, err := c.groups[lead].Propose(ctx, []byte("stuck=1"))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond) // lets the proposal reach the loop; the test holds either way
	c.stop(lead)
	if err := <-errc; !errors.Is(err, ErrStopped) && !errors.Is(err, ErrLost) && !errors.Is(err, ErrNoLeader) {
		t.Fatalf("proposal pending at Stop: %v, want ErrStopped (or a leader change seen first)", err)
	}
}

func TestConfigValidation(t *testing.T) {
	_, err := Start(Config{Peers: []Peer{{ID: 0}, {ID: 2}, {ID: 2}}, TickInterval: -1})
	if err == nil {
		t.Fatal("an empty config was accepted")
	}
	for _, want := range []string{"Config.ID is 0", "Config.Log is nil", "Config.SM is nil", "Config.Transport is nil", "TickInterval -1ns", "id 0 is zero or repeated", "id 2 is zero or repeated"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("config error %q does not mention %q", err, want)
		}
	}
	_, err = Start(Config{ID: 1, Log: NewMemLog(), SM: newTestSM(), Transport: NewMemNetwork(1).Transport()})
	if err == nil || !strings.Contains(err.Error(), "nothing to start") {
		t.Fatalf("a member with no log, no peers and no Join: %v", err)
	}
}

func TestLossyNetwork(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 10, 3, nil)
	c.leader()
	c.net.SetDrop(0.2)
	c.net.SetDelay(time.Millisecond)
	const n = 20
	for i := range n {
		c.propose(uint64(i%3+1), fmt.Sprintf("lossy%d=1", i))
	}
	c.net.SetDrop(0)
	c.converge(n)
}

func TestLostForwardedProposalFailsRetryable(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 13, 3, nil)
	lead := c.leader()
	c.propose(lead, "before=1")
	c.converge(1)
	var f uint64
	for id := range c.groups {
		if id != lead {
			f = id
			break
		}
	}
	// f hears the leader but the leader never hears f: f's forwarded
	// proposals and reads vanish while the leader stays (it has the third
	// member's votes).
	c.net.Cut(f, lead)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, err := c.groups[f].Propose(ctx, []byte("lost=1"))
	if !errors.Is(err, ErrLost) || !Retryable(err) {
		t.Fatalf("forwarded proposal the network dropped: %v, want ErrLost", err)
	}
	if err := c.groups[f].ReadIndex(ctx); !errors.Is(err, ErrLost) {
		t.Fatalf("forwarded read the network dropped: %v, want ErrLost", err)
	}
	c.net.Heal()
	c.propose(f, "after=1")
	if h := c.converge(2); slices.Contains(h, "lost=1") {
		t.Fatalf("the lost proposal was applied: %v", h)
	}
}

// TestLearnerCatchesUpThenVotes replaces a stopped member the way a
// metadata group's repair does: a learner is added (the quorum stays that
// of the three voters), catches up, is promoted, and only then is the
// stopped voter removed; proposals go on throughout.
func TestLearnerCatchesUpThenVotes(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 11, 3, nil)
	lead := c.leader()
	c.propose(lead, "a=1")
	gone := lead%3 + 1
	c.stop(gone)
	lead = c.leader(c.others(gone)...)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.groups[lead].AddLearner(ctx, 4, "mem-4"); err != nil {
		t.Fatalf("add learner 4: %v", err)
	}
	st, err := c.groups[lead].Status(ctx)
	if err != nil || !slices.Equal(st.Learners, []uint64{4}) || len(st.Voters) != 3 {
		t.Fatalf("after AddLearner: voters %v, learners %v, %v", st.Voters, st.Learners, err)
	}
	// Two voters of three still commit: the learner does not count.
	c.propose(lead, "b=1")
	c.peers = append(c.peers, Peer{ID: 4, Addr: "mem-4"})
	c.start(4, true)
	waitFor(t, "learner 4 to catch up", func() bool {
		st, err := c.groups[lead].Status(ctx)
		return err == nil && st.Match[4] >= st.Match[lead] && st.Active[4]
	})
	if err := c.groups[lead].AddMember(ctx, 4, "mem-4"); err != nil {
		t.Fatalf("promote 4: %v", err)
	}
	if err := c.groups[lead].RemoveMember(ctx, gone); err != nil {
		t.Fatalf("remove %d: %v", gone, err)
	}
	st, err = c.groups[lead].Status(ctx)
	if want := append(c.others(gone, 4), 4); err != nil || len(st.Learners) != 0 || !slices.Equal(st.Voters, sorted(want)) {
		t.Fatalf("voters %v, learners %v, %v; want voters %v", st.Voters, st.Learners, err, sorted(want))
	}
	// The new voter is part of the quorum: stop another original one.
	c.stop(c.others(gone, lead, 4)[0])
	c.propose(c.leader(lead, 4), "c=1")
	c.converge(3, lead, 4)
}

// others returns the ids of 1..3 (and 4 if running) but those given.
func (c *cluster) others(but ...uint64) []uint64 {
	var ids []uint64
	for id := uint64(1); id <= 3; id++ {
		if !slices.Contains(but, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

func sorted(ids []uint64) []uint64 { ids = slices.Clone(ids); slices.Sort(ids); return ids }

// A leader does not send the appends that would only tell a caught-up
// follower the new commit index; followers still apply everything,
// learning the commit index from the next append or heartbeat.
func TestCommitNoticesDropped(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 7, 3, nil)
	lead := c.leader()
	const n = 20
	for i := range n {
		c.propose(lead, fmt.Sprintf("k%d=v%d", i, i))
	}
	c.converge(n)
	st, err := c.groups[lead].Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Each sequential proposal commits with both followers caught up, so
	// each would have sent a notice to each follower: allow a few to have
	// gone out while a follower's acknowledgement was still in flight.
	if st.CommitNoticesDropped < n {
		t.Fatalf("leader dropped %d commit notices over %d sequential proposals, want at least %d", st.CommitNoticesDropped, n, n)
	}
}

// TestLearnerJoinsIdleGroupAfterSnapshot: a learner added to a group
// whose log was compacted behind a snapshot that predates the learner
// gets a snapshot that names it, taken afresh, and catches up with no
// further proposal (raft's receiving side ignores a snapshot whose
// configuration lacks it, and an idle group takes no snapshot of its own).
func TestLearnerJoinsIdleGroupAfterSnapshot(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 23, 3, func(cfg *Config) { cfg.SnapshotEvery = 8 })
	lead := c.leader()
	for i := range 20 {
		c.propose(lead, fmt.Sprintf("a%d=1", i))
	}
	c.converge(20)
	c.addLearner(lead, 4)
	c.converge(20, lead, 4)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	waitFor(t, "learner 4 to be caught up and active", func() bool {
		st, err := c.groups[lead].Status(ctx)
		return err == nil && st.Match[4] >= st.Match[lead] && st.Active[4]
	})
}
