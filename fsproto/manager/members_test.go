package manager

import (
	"bytes"
	"context"
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/raftgroup"
	"github.com/weftfs/weft/internal/testutil"
)

func TestMembersCodec(t *testing.T) {
	for _, r := range []membersRequest{{Asker: 1}, {Asker: 7, EmptyLog: true}} {
		got, err := decodeMembersRequest(r.append(nil))
		if err != nil || got != r {
			t.Errorf("request %+v: decoded %+v, %v", r, got, err)
		}
	}
	for _, r := range []membersReply{
		{Voters: []uint64{1, 2, 3}},
		{Running: true, Voters: []uint64{1, 2, 3}, Commit: 9, Leader: 2, Last: 11},
		{Running: true, Voters: []uint64{3}, Learners: []uint64{1, 2}, Commit: 40},
	} {
		got, err := decodeMembersReply(r.append(nil))
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("reply %+v: decoded %+v, %v", r, got, err)
		}
	}
	valid := membersReply{Running: true, Voters: []uint64{1, 2}, Learners: []uint64{3}, Commit: 5, Leader: 1}.append(nil)
	bad := map[string]func([]byte) []byte{
		"short":              func(b []byte) []byte { return b[:20] },
		"version":            func(b []byte) []byte { b[0] = 2; return b },
		"state":              func(b []byte) []byte { b[1] = 2; return b },
		"reserved":           func(b []byte) []byte { b[5] = 1; return b },
		"count past the end": func(b []byte) []byte { b[2] = 3; return b },
		"trailing bytes":     func(b []byte) []byte { return append(b, 0) },
		"member 0":           func(b []byte) []byte { clear(b[32:40]); return b },
		"twice":              func(b []byte) []byte { copy(b[40:48], b[32:40]); return b },
		"no voter":           func(b []byte) []byte { b[2], b[3] = 0, 3; return b },
		"probing, learners":  func(b []byte) []byte { b[1] = membersStateProbing; return b },
		"probing, last index": func(b []byte) []byte {
			b[1], b[3] = membersStateProbing, 0
			clear(b[8:24])
			b[24] = 7 // the last index
			return slices.Delete(b, len(b)-8, len(b))
		},
	}
	for name, mod := range bad {
		_, err := decodeMembersReply(mod(slices.Clone(valid)))
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	req := membersRequest{Asker: 3, EmptyLog: true}.append(nil)
	for name, mod := range map[string]func([]byte) []byte{
		"long":     func(b []byte) []byte { return append(b, 0) },
		"version":  func(b []byte) []byte { b[0] = 0; return b },
		"flags":    func(b []byte) []byte { b[1] = 2; return b },
		"reserved": func(b []byte) []byte { b[7] = 1; return b },
		"asker 0":  func(b []byte) []byte { clear(b[8:]); return b },
	} {
		if _, err := decodeMembersRequest(mod(slices.Clone(req))); !errors.Is(err, ErrCorrupt) {
			t.Errorf("request %s: %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzDecodeMembersRequest(f *testing.F) {
	f.Add(membersRequest{Asker: 2, EmptyLog: true}.append(nil))
	f.Add(membersRequest{Asker: 1}.append(nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeMembersRequest(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if got := r.append(nil); !slices.Equal(got, b) {
			t.Fatalf("decoded %+v re-encodes to %x, not %x", r, got, b)
		}
	})
}

func FuzzDecodeMembersReply(f *testing.F) {
	f.Add(membersReply{Voters: []uint64{1, 2, 3}}.append(nil))
	f.Add(membersReply{Running: true, Voters: []uint64{1, 2, 3}, Commit: 9, Leader: 2}.append(nil))
	f.Add(membersReply{Running: true, Voters: []uint64{3}, Learners: []uint64{1, 2}, Commit: 40}.append(nil))
	f.Add([]byte{1, 1, 255, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeMembersReply(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if got := r.append(nil); !slices.Equal(got, b) {
			t.Fatalf("decoded %+v re-encodes to %x, not %x", r, got, b)
		}
	})
}

func TestDecideStart(t *testing.T) {
	p := func(id uint64) raftgroup.Peer { return raftgroup.Peer{ID: id, Addr: "x"} }
	probing := func(id uint64) peerAnswer {
		return peerAnswer{Peer: p(id), Answered: true, Reply: membersReply{Voters: []uint64{1, 2, 3}}}
	}
	silent := func(id uint64) peerAnswer { return peerAnswer{Peer: p(id)} }
	running := func(id uint64, commit uint64, voters []uint64, learners ...uint64) peerAnswer {
		return peerAnswer{Peer: p(id), Answered: true, Reply: membersReply{Running: true, Voters: voters, Learners: learners, Commit: commit}}
	}
	led := func(a peerAnswer, leader uint64) peerAnswer { a.Reply.Leader = leader; return a }
	lastAt := func(a peerAnswer, last uint64) peerAnswer { a.Reply.Last = last; return a }
	all := []uint64{1, 2, 3}
	cases := []struct {
		name    string
		answers []peerAnswer
		mode    startMode
		why     string
	}{
		{"a new group: every member probing", []peerAnswer{probing(2), probing(3)}, startBootstrap, ""},
		{"the others at the bootstrap entries", []peerAnswer{running(2, 3, all), running(3, 0, all)}, startBootstrap, ""},
		{"one bootstrapped, one probing", []peerAnswer{running(2, 3, all), probing(3)}, startBootstrap, ""},
		{"a peer silent", []peerAnswer{probing(2), silent(3)}, startWait, "do not answer"},
		{"two lost logs, the third down", []peerAnswer{probing(2), silent(3)}, startWait, "recover-manager"},
		{"a voter past the bootstrap entries: lost log", []peerAnswer{running(2, 50, all), running(3, 50, all)}, startWait, "log was lost"},
		{"lost, even with a peer silent", []peerAnswer{running(2, 50, all), silent(3)}, startWait, "log was lost"},
		{"lost, no leader known", []peerAnswer{running(2, 50, all), silent(3)}, startWait, "no member that answered knows a leader"},
		{"lost, the commit index lagging the log", []peerAnswer{lastAt(running(2, 3, all), 4), running(3, 3, all)}, startWait, "log was lost"},
		{"lost, the leader named", []peerAnswer{led(running(2, 50, all), 2), running(3, 50, all)}, startWait, "the leader (member 2) takes it out"},
		{"the group runs without this member", []peerAnswer{running(2, 60, []uint64{2, 3}), running(3, 60, []uint64{2, 3})}, startWait, "runs without"},
		{"added back as a learner", []peerAnswer{running(2, 61, []uint64{2, 3}, 1), running(3, 60, []uint64{2, 3})}, startJoin, "learner"},
		{"a learner on one member wins over a lagging one's lost", []peerAnswer{running(2, 61, []uint64{2, 3}, 1), running(3, 50, all)}, startJoin, ""},
		{"a peer probing with other peers", []peerAnswer{probing(2), {Peer: p(3), Answered: true, Reply: membersReply{Voters: []uint64{1, 2, 3, 4}}}}, startWait, "same --manager-peers"},
		{"a peer bootstrapped with other voters", []peerAnswer{running(2, 3, []uint64{1, 2, 3, 4}), probing(3)}, startWait, "same --manager-peers"},
		{"peers listed in another order", []peerAnswer{{Peer: p(2), Answered: true, Reply: membersReply{Voters: []uint64{3, 1, 2}}}, probing(3)}, startBootstrap, ""},
	}
	for _, c := range cases {
		mode, why := decideStart(1, all, c.answers)
		if mode != c.mode || !strings.Contains(why, c.why) {
			t.Errorf("%s: mode %d (%s), want %d (%q)", c.name, mode, why, c.mode, c.why)
		}
	}
}

// voters returns member i's configuration once it has started, or nil.
func (c *testCluster) voters(ctx context.Context, i int) ([]uint64, []uint64) {
	st, err := c.nodes[i].mgr.Status(ctx)
	if err != nil {
		return nil, nil
	}
	return st.Voters, st.Learners
}

// waitVoters waits until every running member counts exactly want as
// voters and no learner.
func (c *testCluster) waitVoters(ctx context.Context, want ...uint64) {
	c.t.Helper()
	for {
		ok := true
		for i, n := range c.nodes {
			if n.mgr == nil {
				continue
			}
			v, l := c.voters(ctx, i)
			slices.Sort(v)
			if !slices.Equal(v, want) || len(l) > 0 {
				ok = false
			}
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			for i := range c.nodes {
				if c.nodes[i].mgr != nil {
					v, l := c.voters(context.Background(), i)
					c.t.Logf("member %d: voters %v learners %v starting %q repair %q", i+1, v, l, c.nodes[i].mgr.Starting(), c.nodes[i].mgr.Repair())
				}
			}
			c.t.Fatalf("voters not %v on every running member: %v", want, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestLostLogRejoins: a member whose raft log is lost (its directory
// deleted while it was down) does not bootstrap again as the voter it
// was; it asks, the leader takes it out and adds it back as a learner,
// and it joins, catches up and votes again, with the whole map.
func TestLostLogRejoins(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 3, nil)
	ctx := testContext(t)
	cl := c.client()
	want := addNodes(t, ctx, cl, 5)
	c.waitVoters(ctx, 1, 2, 3)
	c.kill(2)
	if err := os.RemoveAll(c.nodes[2].dir); err != nil {
		t.Fatal(err)
	}
	c.start(2)
	c.waitVoters(ctx, 1, 2, 3)
	mgr := c.nodes[2].mgr
	mgr.repair.Lock()
	joined := mgr.repair.joined
	mgr.repair.Unlock()
	if !joined {
		t.Fatal("member 3, its log lost, started other than by joining as a learner (it bootstrapped again as the voter it was)")
	}
	got := c.waitEpoch(ctx, 2, want.Epoch)
	if len(got.Nodes) != 5 {
		t.Fatalf("member 3 after rejoining: %d nodes at epoch %d, want 5", len(got.Nodes), got.Epoch)
	}
	// It votes again: with member 1 down, 2 and 3 commit.
	c.kill(0)
	if _, err := cl.Apply(ctx, clustermap.SetNodeState{ID: 5, State: clustermap.Draining}); err != nil {
		t.Fatalf("apply with members 2 and 3: %v", err)
	}
}

// TestLostMajorityWaits: two members lose their logs while the third is
// down. They do not bootstrap an empty map (with the majority rule of a
// container's metadata group they would: they are two of three); with
// the third back the group still has no majority, since the two are lost
// voters. Forcing the third's log to be the sole voter (what weft node
// recover-manager does) brings the group back with its map, and its
// repair adds the two back.
func TestLostMajorityWaits(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 3, nil)
	ctx := testContext(t)
	cl := c.client()
	want := addNodes(t, ctx, cl, 4)
	if want.FSID.IsZero() {
		t.Fatal("the map has no FSID")
	}
	c.waitVoters(ctx, 1, 2, 3)
	c.waitEpoch(ctx, 2, want.Epoch)
	for i := range c.nodes {
		c.kill(i)
	}
	for i := range 2 {
		if err := os.RemoveAll(c.nodes[i].dir); err != nil {
			t.Fatal(err)
		}
	}
	c.start(0)
	c.start(1)
	// Long enough for many probes (100 ms apart at the tests' tick): a
	// bootstrap would have happened by now.
	time.Sleep(time.Second)
	for i := range 2 {
		mgr := c.nodes[i].mgr
		if s := mgr.Starting(); !strings.Contains(s, "do not answer") {
			t.Fatalf("member %d with its log lost and member 3 down: starting %q, want a wait for member 3", i+1, s)
		}
		if m := mgr.Map(); m.Epoch != 0 {
			t.Fatalf("member %d: map at epoch %d, want none", i+1, m.Epoch)
		}
	}
	c.start(2)
	for i := range 2 {
		for !strings.Contains(c.nodes[i].mgr.Starting(), "log was lost") {
			select {
			case <-ctx.Done():
				t.Fatalf("member %d: starting %q, want lost", i+1, c.nodes[i].mgr.Starting())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	if l := c.nodes[2].mgr.Leader(); l != 0 {
		t.Fatalf("member 3 alone knows leader %d", l)
	}
	// The operator's recovery: member 3 stopped, its log forced.
	c.kill(2)
	res, err := ForceSoleMember(nil, c.nodes[2].dir, 3, false, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("forced: %+v", res)
	c.start(2)
	c.waitVoters(ctx, 1, 2, 3)
	for i := range c.nodes {
		got := c.waitEpoch(ctx, i, want.Epoch)
		if len(got.Nodes) != 4 || got.FSID != want.FSID {
			t.Fatalf("member %d: %d nodes at epoch %d, FSID %v; want 4 and FSID %v", i+1, len(got.Nodes), got.Epoch, got.FSID, want.FSID)
		}
	}
	if _, err := cl.Apply(ctx, clustermap.SetNodeState{ID: 4, State: clustermap.Draining}); err != nil {
		t.Fatal(err)
	}
}

// TestGrowByPeers: a fourth member is added by giving every member the
// longer peer list, one restart at a time. The fourth starts with an
// empty log, finds the group running without it and waits; a leader
// whose list names it adds it as a learner and promotes it; a leader
// with the old list (during the rolling change) neither adds nor removes
// it.
func TestGrowByPeers(t *testing.T) {
	testutil.CheckLeaks(t)
	grown := map[uint64]bool{4: true} // members started with the four-member list
	c := newTestCluster(t, 4, func(cfg *Config) {
		if !grown[cfg.ID] {
			cfg.Peers = cfg.Peers[:3]
		}
	})
	ctx := testContext(t)
	cl := NewClient(c.addrs()[:3], c.pool)
	want := addNodes(t, ctx, cl, 3)
	for {
		if s := c.nodes[3].mgr.Starting(); strings.Contains(s, "runs without") {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("member 4: starting %q, want a wait to be added", c.nodes[3].mgr.Starting())
		case <-time.After(20 * time.Millisecond):
		}
	}
	for i := range 3 {
		c.kill(i)
		grown[uint64(i+1)] = true
		c.start(i)
		// The restarted member finds a leader again: it is still a
		// voter, whichever list the leader has.
		for c.nodes[i].mgr.Leader() == 0 {
			select {
			case <-ctx.Done():
				t.Fatalf("member %d restarted knows no leader", i+1)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	c.waitVoters(ctx, 1, 2, 3, 4)
	if got := c.waitEpoch(ctx, 3, want.Epoch); len(got.Nodes) != 3 {
		t.Fatalf("member 4: %d nodes at epoch %d, want 3", len(got.Nodes), got.Epoch)
	}
}

func TestRemoveMemberCodec(t *testing.T) {
	b := removeMemberRequest{Member: 7}.append(nil)
	if r, err := decodeRemoveMemberRequest(b); err != nil || r.Member != 7 {
		t.Fatalf("round trip: %+v, %v", r, err)
	}
	for name, bad := range map[string][]byte{
		"short":    b[:15],
		"version":  append([]byte{2}, b[1:]...),
		"reserved": append(append([]byte{1}, 0, 0, 1), b[4:]...),
		"member 0": removeMemberRequest{}.append(nil),
	} {
		if _, err := decodeRemoveMemberRequest(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDecodeRemoveMemberRequest(f *testing.F) {
	f.Add(removeMemberRequest{Member: 3}.append(nil))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRemoveMemberRequest(b)
		if err != nil {
			return
		}
		if again := r.append(nil); !bytes.Equal(again, b) {
			t.Fatalf("%x decodes as %+v, which encodes as %x", b, r, again)
		}
	})
}

func TestRefuseRemoval(t *testing.T) {
	all := map[uint64]bool{1: true, 2: true, 3: true, 4: true}
	for _, c := range []struct {
		name             string
		id               uint64
		peers, voters, l []uint64
		active           map[uint64]bool
		want             string
	}{
		{"a voter gone from the peers", 4, []uint64{1, 2, 3}, []uint64{1, 2, 3, 4}, nil, all, ""},
		{"a learner", 4, []uint64{1, 2, 3}, []uint64{1, 2, 3}, []uint64{4}, nil, ""},
		{"not a member", 9, []uint64{1, 2, 3}, []uint64{1, 2, 3}, nil, all, "not in the group"},
		{"the leader", 1, []uint64{2, 3}, []uint64{1, 2, 3}, nil, all, "hands the leadership over"},
		{"still a peer", 3, []uint64{1, 2, 3}, []uint64{1, 2, 3}, nil, all, "--manager-peers without it"},
		{"no majority left", 4, []uint64{1, 2, 3}, []uint64{1, 2, 3, 4}, nil, map[uint64]bool{1: true}, "not a majority"},
		{"two of three left", 3, []uint64{1, 2}, []uint64{1, 2, 3}, nil, map[uint64]bool{2: true}, ""},
	} {
		got, later := refuseRemoval(1, c.id, c.peers, c.voters, c.l, c.active)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) || later != strings.Contains(c.want, "majority") && c.id != 1 {
			t.Errorf("%s: %q (later %v), want %q", c.name, got, later, c.want)
		}
	}
}

// TestShrinkByRequest: a member is taken out of a group of four on
// request, once every other member runs with a peer list without it; the
// leader refuses before (its repair would add it back). Asked to remove
// itself, a leader hands the leadership over and the next leader decides.
func TestShrinkByRequest(t *testing.T) {
	testutil.CheckLeaks(t)
	shrunk := map[uint64]bool{}
	c := newTestCluster(t, 4, func(cfg *Config) {
		if shrunk[cfg.ID] {
			cfg.Peers = cfg.Peers[:3]
		}
	})
	ctx := testContext(t)
	cl := c.client()
	want := addNodes(t, ctx, cl, 2)
	c.waitVoters(ctx, 1, 2, 3, 4)
	if err := cl.RemoveMember(ctx, 4); err == nil || !strings.Contains(err.Error(), "--manager-peers without it") {
		t.Fatalf("removing a member the leader's peers name: %v", err)
	}
	if err := cl.RemoveMember(ctx, 9); err == nil || !strings.Contains(err.Error(), "not in the group") {
		t.Fatalf("removing no member: %v", err)
	}
	for i := range 3 {
		shrunk[uint64(i+1)] = true
		c.kill(i)
		c.start(i)
		c.waitVoters(ctx, 1, 2, 3, 4)
	}
	// Member 4 may lead by now: it hands the leadership over first.
	if err := cl.RemoveMember(ctx, 4); err != nil {
		t.Fatal(err)
	}
	c.kill(3) // the operator stops it
	c.waitVoters(ctx, 1, 2, 3)
	lead := uint64(c.leader(ctx) + 1)
	if err := cl.RemoveMember(ctx, lead); err == nil || !strings.Contains(err.Error(), "--manager-peers without it") {
		t.Fatalf("removing the leader %d: %v", lead, err)
	}
	if now := uint64(c.leader(ctx) + 1); now == lead {
		t.Fatalf("member %d still leads after it was asked to remove itself", lead)
	}
	m, err := cl.Apply(ctx, clustermap.SetNodeState{ID: 1, State: clustermap.Draining})
	if err != nil || m.Epoch <= want.Epoch {
		t.Fatalf("apply after the removal: %v, %v", m, err)
	}
}
