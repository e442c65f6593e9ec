package manager

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/internal/testutil"
	"github.com/weftfs/weft/internal/vfs"
	"github.com/weftfs/weft/net"
)

// TestApplyVisibleOnEveryMember applies commands through each member in
// turn and reads them back through every member.
func TestApplyVisibleOnEveryMember(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 3, nil)
	ctx := testContext(t)
	var last *clustermap.Map
	for i := range c.nodes {
		one := NewClient([]string{c.nodes[i].addr}, c.pool)
		m, err := one.Apply(ctx, clustermap.AddNode{
			ID: clustermap.NodeID(i + 1), Addr: c.nodes[i].addr,
			Labels: map[string]string{"zone": string(rune('a' + i))}, Capacity: 1 << 30,
		})
		if err != nil {
			t.Fatalf("apply through member %d: %v", i+1, err)
		}
		if last != nil && m.Epoch != last.Epoch+1 {
			t.Fatalf("apply through member %d: epoch %d after %d", i+1, m.Epoch, last.Epoch)
		}
		if _, ok := m.Node(clustermap.NodeID(i + 1)); !ok {
			t.Fatalf("apply through member %d: node %d missing from the returned map:\n%v", i+1, i+1, m)
		}
		last = m
	}
	last, err := c.client().Apply(ctx, clustermap.CreateContainer{Name: "db", Policy: clustermap.Policy{Replicas: 3, FailureDomain: "zone", PGCount: 8}})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := last.MarshalBinary()
	for i := range c.nodes {
		one := NewClient([]string{c.nodes[i].addr}, c.pool)
		// after = 0 passes a read barrier: the member has the latest map.
		m, err := one.Map(ctx, 0)
		if err != nil {
			t.Fatalf("map from member %d: %v", i+1, err)
		}
		if got, _ := m.MarshalBinary(); !slices.Equal(got, want) {
			t.Fatalf("member %d: map\n%v\nwant\n%v", i+1, m, last)
		}
		m, err = one.Map(ctx, last.Epoch-1)
		if err != nil || m.Epoch != last.Epoch {
			t.Fatalf("member %d: Map(after %d) = epoch %v, %v", i+1, last.Epoch-1, m, err)
		}
		if got := c.waitEpoch(ctx, i, last.Epoch); got.Epoch != last.Epoch {
			t.Fatalf("member %d: Manager.Map at epoch %d, want %d", i+1, got.Epoch, last.Epoch)
		}
	}

	// A refused command reaches the caller as the map's error and changes
	// nothing.
	_, err = c.client().Apply(ctx, clustermap.CreateContainer{Name: "db", Policy: clustermap.Policy{Replicas: 1}})
	if !errors.Is(err, clustermap.ErrExists) {
		t.Fatalf("second CreateContainer db: %v, want ErrExists", err)
	}
	_, err = c.client().Apply(ctx, clustermap.SetNodeState{ID: 1, State: clustermap.Up})
	if !errors.Is(err, clustermap.ErrNoChange) {
		t.Fatalf("SetNodeState Up on an Up node: %v, want ErrNoChange", err)
	}
	_, err = c.client().Apply(ctx, clustermap.DeleteContainer{ID: 99})
	if !errors.Is(err, clustermap.ErrNotFound) {
		t.Fatalf("DeleteContainer 99: %v, want ErrNotFound", err)
	}
	if m, _ := c.client().Map(ctx, 0); m.Epoch != last.Epoch {
		t.Fatalf("refused commands moved the map to epoch %d from %d", m.Epoch, last.Epoch)
	}

	// A read-only key may read the map but not change it or heartbeat.
	ro := NewClient(c.addrs(), c.roPool)
	if m, err := ro.Map(ctx, 0); err != nil || m.Epoch != last.Epoch {
		t.Fatalf("read-only Map: %v, %v", m, err)
	}
	if _, err := ro.Apply(ctx, clustermap.SetNodeState{ID: 1, State: clustermap.Draining}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only Apply: %v, want ErrReadOnly", err)
	}
	if err := ro.Heartbeat(ctx, 1); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only Heartbeat: %v, want ErrReadOnly", err)
	}
}

// TestMapLongPoll shows Map(after) waiting for the next change, and
// not answering with a map that is not newer.
func TestMapLongPoll(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 3, nil)
	ctx := testContext(t)
	cl := c.client()
	m := addNodes(t, ctx, cl, 1)

	// Nothing changes: the members' polls expire (MapWaitMax is 500 ms
	// here) and the client keeps asking until its own deadline.
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	got, err := cl.Map(short, m.Epoch)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || got != nil {
		t.Fatalf("Map(after %d) with no change: %v, %v; want the deadline", m.Epoch, got, err)
	}

	type result struct {
		m   *clustermap.Map
		err error
	}
	// One waiter per member, so every member's long poll is woken.
	var waits []chan result
	for i := range c.nodes {
		ch := make(chan result, 1)
		waits = append(waits, ch)
		go func() {
			m, err := NewClient([]string{c.nodes[i].addr}, c.pool).Map(ctx, m.Epoch)
			ch <- result{m, err}
		}()
	}
	next, err := cl.Apply(ctx, clustermap.AddNode{ID: 2, Addr: "127.0.0.1:7002", Labels: map[string]string{"zone": "z2"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, ch := range waits {
		r := <-ch
		if r.err != nil || r.m.Epoch != next.Epoch {
			t.Fatalf("member %d: long poll after %d: %v, %v; want epoch %d", i+1, m.Epoch, r.m, r.err, next.Epoch)
		}
		if _, ok := r.m.Node(2); !ok {
			t.Fatalf("member %d: long poll map lacks node 2:\n%v", i+1, r.m)
		}
	}
}

// TestNodeDownReplaced stops one node's heartbeats: the leader marks it
// Down and its PGs get replacements. Then the leader is killed: the new
// one leaves the Down node Down (it gives grace, it does not revive),
// marks another silent node Down, and brings both back Up when they
// heartbeat again.
func TestNodeDownReplaced(t *testing.T) {
	testutil.CheckLeaks(t)
	// Heartbeats every 100 ms against a 2 s timeout: a loaded machine
	// must not make a live node look dead (the test counts epochs).
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.HeartbeatTimeout = 2 * time.Second })
	ctx := testContext(t)
	cl := c.client()
	addNodes(t, ctx, cl, 4)
	before, err := cl.Apply(ctx, clustermap.CreateContainer{Name: "db", Policy: clustermap.Policy{Replicas: 3, FailureDomain: "zone", PGCount: 16}})
	if err != nil {
		t.Fatal(err)
	}
	hit := before.PGsOfNode(4)
	if len(hit) == 0 {
		t.Fatalf("node 4 holds no PG; the test needs one:\n%v", before)
	}

	// Nodes 1-4 heartbeat every 100 ms until told to stop (false) or
	// resume (true) on their control channel.
	hbCtx, stopHB := context.WithCancel(ctx)
	ctl := make(map[clustermap.NodeID]chan bool)
	var loops []chan struct{}
	for id := clustermap.NodeID(1); id <= 4; id++ {
		ended := make(chan struct{})
		loops = append(loops, ended)
		ctl[id] = make(chan bool)
		go func(ctl chan bool) {
			defer close(ended)
			beat := true
			hb := NewClient(c.addrs(), c.pool)
			for {
				if beat {
					if err := hb.Heartbeat(hbCtx, id); err != nil && hbCtx.Err() == nil {
						t.Errorf("heartbeat node %d: %v", id, err)
					}
				}
				select {
				case <-hbCtx.Done():
					return
				case beat = <-ctl:
				case <-time.After(100 * time.Millisecond):
				}
			}
		}(ctl[id])
	}
	defer func() {
		stopHB()
		for _, e := range loops {
			<-e
		}
	}()
	state := func(id clustermap.NodeID, s clustermap.NodeState) func(*clustermap.Map) bool {
		return func(m *clustermap.Map) bool {
			n, _ := m.Node(id)
			return n.State == s
		}
	}

	ctl[4] <- false
	m := waitFor(t, ctx, cl, before.Epoch, state(4, clustermap.Down))
	for _, id := range hit {
		pg, ok := m.PG(id)
		if !ok {
			t.Fatalf("pg %d vanished", id)
		}
		was, _ := before.PG(id)
		if pg.HasReplica(4) || len(pg.Replicas) != 3 || pg.Epoch <= was.Epoch {
			t.Fatalf("pg %d after node 4 went down: %+v, before %+v", id, *pg, *was)
		}
	}
	for _, pg := range m.PGs {
		if pg.HasReplica(4) {
			t.Fatalf("pg %d still has Down node 4: %+v", pg.ID, pg)
		}
	}

	old := c.leader(ctx)
	c.kill(old)
	newLead := c.leader(ctx)
	t.Logf("killed leader %d at epoch %d; member %d leads", old+1, m.Epoch, newLead+1)
	ctl[3] <- false
	m3 := waitFor(t, ctx, cl, m.Epoch, state(3, clustermap.Down))
	// Exactly one change since node 4 went Down: node 3's. A new leader
	// that revived node 4 (or marked a heartbeating node Down) would have
	// made more.
	if n4, _ := m3.Node(4); m3.Epoch != m.Epoch+1 || n4.State != clustermap.Down {
		t.Fatalf("after the leader change: epoch %d (node 4 down at %d), node 4 %v; want one change\n%v", m3.Epoch, m.Epoch, n4.State, m3)
	}

	ctl[3] <- true
	ctl[4] <- true
	waitFor(t, ctx, cl, m3.Epoch, func(m *clustermap.Map) bool {
		return state(3, clustermap.Up)(m) && state(4, clustermap.Up)(m)
	})
}

// waitFor follows the map through Client.Map until ok accepts it.
func waitFor(t *testing.T, ctx context.Context, cl *Client, after uint64, ok func(*clustermap.Map) bool) *clustermap.Map {
	t.Helper()
	for {
		m, err := cl.Map(ctx, after)
		if err != nil {
			t.Fatalf("following the map after epoch %d: %v", after, err)
		}
		if ok(m) {
			return m
		}
		after = m.Epoch
	}
}

// TestLeaderKilled kills the leader: a new one is elected, Apply and Map
// keep working through the Client, and the killed member, restarted from
// its directory, catches up.
func TestLeaderKilled(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 3, nil)
	ctx := testContext(t)
	cl := c.client()
	m := addNodes(t, ctx, cl, 3)
	for i := range 10 {
		var err error
		m, err = cl.Apply(ctx, clustermap.CreateContainer{Name: "c" + string(rune('a'+i)), Policy: clustermap.Policy{Replicas: 3, FailureDomain: "zone", PGCount: 4}})
		if err != nil {
			t.Fatal(err)
		}
	}
	old := c.leader(ctx)
	killed := time.Now()
	c.kill(old)
	newLead := c.leader(ctx)
	elected := time.Since(killed)
	m2, err := cl.Apply(ctx, clustermap.SetNodeState{ID: 2, State: clustermap.Draining})
	if err != nil {
		t.Fatalf("apply after the leader was killed: %v", err)
	}
	// The issue's "(f) a manager leader killed: a new leader within a
	// few seconds, clients carry on": logged, not asserted.
	t.Logf("killed leader %d at epoch %d: member %d leads after %v; the client's first Apply completed %v after the kill",
		old+1, m.Epoch, newLead+1, elected, time.Since(killed))
	if newLead == old || m2.Epoch != m.Epoch+1 {
		t.Fatalf("new leader %d (old %d), epoch %d after %d", newLead+1, old+1, m2.Epoch, m.Epoch)
	}
	got, err := cl.Map(ctx, 0)
	if err != nil || got.Epoch != m2.Epoch {
		t.Fatalf("Map after failover: %v, %v; want epoch %d", got, err, m2.Epoch)
	}

	// More history while the member is down, past a snapshot (SnapshotEvery 8).
	for i := range 10 {
		st := clustermap.Up
		if i%2 == 1 {
			st = clustermap.Draining
		}
		if m2, err = cl.Apply(ctx, clustermap.SetNodeState{ID: 2, State: st}); err != nil {
			t.Fatal(err)
		}
	}
	c.start(old)
	caught := c.waitEpoch(ctx, old, m2.Epoch)
	a, _ := caught.MarshalBinary()
	b, _ := m2.MarshalBinary()
	if caught.Epoch != m2.Epoch || !slices.Equal(a, b) {
		t.Fatalf("restarted member %d: map\n%v\nwant\n%v", old+1, caught, m2)
	}
	one := NewClient([]string{c.nodes[old].addr}, c.pool)
	if got, err := one.Map(ctx, 0); err != nil || got.Epoch != m2.Epoch {
		t.Fatalf("Map through the restarted member: %v, %v", got, err)
	}
}

// TestSingleMember runs a group of one, restarts it and finds the map.
func TestSingleMember(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 1, nil)
	ctx := testContext(t)
	cl := c.client()
	m := addNodes(t, ctx, cl, 2)
	if err := cl.Heartbeat(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := cl.Heartbeat(ctx, 9); !errors.Is(err, clustermap.ErrNotFound) {
		t.Fatalf("heartbeat of unknown node 9: %v, want ErrNotFound", err)
	}
	c.kill(0)
	c.start(0)
	got, err := cl.Map(ctx, 0)
	if err != nil || got.Epoch != m.Epoch {
		t.Fatalf("Map after restart: %v, %v; want epoch %d", got, err, m.Epoch)
	}
	if _, err := cl.Apply(ctx, clustermap.SetNodeState{ID: 1, State: clustermap.Out}); err != nil {
		t.Fatal(err)
	}
}

// TestBadRequests sends malformed headers straight to a member.
func TestBadRequests(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 1, nil)
	ctx := testContext(t)
	conn, err := c.pool.Get(ctx, c.nodes[0].addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kind net.Kind
		hdr  []byte
	}{
		{KindGetMap, nil},
		{KindGetMap, []byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{KindApply, []byte{1, 0, 0, 0}},
		{KindApply, applyRequest{ID: RequestID{Client: 1, Seq: 1}, Command: []byte{99, 1, 2}}.append(nil)},
		{KindHeartbeat, heartbeatRequest{Node: 1}.append(nil)[:15]},
	} {
		resp, err := conn.Call(ctx, tc.kind, tc.hdr, nil)
		var re *net.RemoteError
		if !errors.As(err, &re) || re.Code != CodeBadRequest {
			if resp != nil {
				resp.Release()
			}
			t.Fatalf("kind %d header %x: %v, want CodeBadRequest", tc.kind, tc.hdr, err)
		}
	}
}

// TestStartValidates lists every problem of a bad config at once.
func TestStartValidates(t *testing.T) {
	_, err := Start(Config{HeartbeatTimeout: -1})
	if err == nil {
		t.Fatal("Start with an empty config succeeded")
	}
	for _, want := range []string{"ID is 0", "Peers", "Dir is empty", "Router is nil", "HeartbeatTimeout -1ns"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestPartitionedMember cuts one member off from the others: clients that
// try it first still apply and follow the map through the others (its
// long polls expire, its proposals fail), and it catches up once healed.
func TestPartitionedMember(t *testing.T) {
	testutil.CheckLeaks(t)
	fn := net.NewFaultNet(1)
	c := newFaultCluster(t, 3, fn, nil)
	t.Cleanup(fn.HealAll) // before the members stop, should the test fail
	ctx := testContext(t)
	m := addNodes(t, ctx, c.client(), 2)
	// Isolate a follower, so the group keeps its leader.
	cut := (c.leader(ctx) + 1) % 3
	for i := range c.nodes {
		if i != cut {
			fn.Partition(c.nodes[cut].name(), c.nodes[i].name())
		}
	}
	t.Logf("member %d cut off from the group (fault seed %d)", cut+1, fn.Seed())
	order := func() []string {
		a := []string{c.nodes[cut].addr}
		for i := range c.nodes {
			if i != cut {
				a = append(a, c.nodes[i].addr)
			}
		}
		return a
	}
	start := time.Now()
	m2, err := NewClient(order(), c.pool).Apply(ctx, clustermap.SetNodeState{ID: 1, State: clustermap.Draining})
	if err != nil || m2.Epoch != m.Epoch+1 {
		t.Fatalf("apply with the cut-off member first: %v, %v", m2, err)
	}
	t.Logf("apply took %v", time.Since(start))
	start = time.Now()
	got, err := NewClient(order(), c.pool).Map(ctx, m.Epoch)
	t.Logf("map took %v", time.Since(start))
	if err != nil || got.Epoch != m2.Epoch {
		t.Fatalf("long poll with the cut-off member first: %v, %v; want epoch %d", got, err, m2.Epoch)
	}
	if e := c.nodes[cut].mgr.Map().Epoch; e >= m2.Epoch {
		t.Fatalf("cut-off member at epoch %d, want below %d (was it cut off?)", e, m2.Epoch)
	}
	fn.HealAll()
	c.waitEpoch(ctx, cut, m2.Epoch)
}

// TestApplyRetryDeduplicated sends one apply request twice, as a client
// retrying after a lost reply would: it applies once, and the retry gets
// the first outcome.
func TestApplyRetryDeduplicated(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 3, nil)
	ctx := testContext(t)
	addNodes(t, ctx, c.client(), 1)
	call := func(i int, hdr []byte) (uint64, error) {
		t.Helper()
		conn, err := c.pool.Get(ctx, c.nodes[i].addr)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := conn.Call(ctx, KindApply, hdr, nil)
		if err != nil {
			return 0, err
		}
		defer resp.Release()
		r, m, err := decodeMapResponse(resp)
		if err != nil || !r.HasMap {
			t.Fatalf("apply reply %+v: %v", r, err)
		}
		return m.Epoch, nil
	}
	enc := func(seq uint64, cmd clustermap.Command) []byte {
		b, err := clustermap.AppendCommand(nil, cmd)
		if err != nil {
			t.Fatal(err)
		}
		return applyRequest{ID: RequestID{Client: 42, Seq: seq}, Command: b}.append(nil)
	}
	drain := enc(1, clustermap.SetNodeState{ID: 1, State: clustermap.Draining})
	first, err := call(0, drain)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.client().Apply(ctx, clustermap.SetNodeState{ID: 1, State: clustermap.Up}); err != nil {
		t.Fatal(err)
	}
	// The retry, through another member, after the node was set Up again:
	// it must not drain the node a second time.
	again, err := call(1, drain)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	m, err := c.client().Map(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := m.Node(1); n.State != clustermap.Up || again != m.Epoch || m.Epoch != first+1 {
		t.Fatalf("after the retry: node 1 %v, epochs first %d retry %d now %d", n.State, first, again, m.Epoch)
	}
	// A refusal is remembered too.
	del := enc(2, clustermap.DeleteContainer{ID: 5})
	for i := range 2 {
		_, err := call(i, del)
		var re *net.RemoteError
		if !errors.As(err, &re) || re.Code != CodeNotFound {
			t.Fatalf("DeleteContainer 5, attempt %d: %v, want CodeNotFound", i+1, err)
		}
	}
}

// TestFailedLogMember fails one follower's disk (vfs.Mem): its raft member
// stops itself, the member answers CodeUnavailable naming why, and clients
// that try it first carry on through the others.
func TestFailedLogMember(t *testing.T) {
	testutil.CheckLeaks(t)
	mem := vfs.NewMem()
	c := newTestCluster(t, 3, func(cfg *Config) {
		if cfg.ID == 3 {
			cfg.FS = mem
		}
	})
	ctx := testContext(t)
	cl := c.client()
	m := addNodes(t, ctx, cl, 1)
	mem.SetFault(vfs.FailAfter(vfs.OpSync, 0))
	for i := 0; c.nodes[2].mgr.Err() == nil; i++ {
		st := clustermap.Up
		if i%2 == 0 {
			st = clustermap.Draining
		}
		var err error
		if m, err = cl.Apply(ctx, clustermap.SetNodeState{ID: 1, State: st}); err != nil {
			t.Fatalf("apply %d while member 3's disk fails: %v", i, err)
		}
	}
	t.Logf("member 3 stopped itself: %v", c.nodes[2].mgr.Err())

	first := NewClient([]string{c.nodes[2].addr, c.nodes[0].addr, c.nodes[1].addr}, c.pool)
	got, err := first.Map(ctx, 0)
	if err != nil || got.Epoch != m.Epoch {
		t.Fatalf("Map with the failed member first: %v, %v; want epoch %d", got, err, m.Epoch)
	}
	if _, err := NewClient([]string{c.nodes[2].addr, c.nodes[0].addr}, c.pool).Apply(ctx, clustermap.SetNodeState{ID: 1, State: clustermap.Out}); err != nil {
		t.Fatalf("Apply with the failed member first: %v", err)
	}
	conn, err := c.pool.Get(ctx, c.nodes[2].addr)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := conn.Call(ctx, KindGetMap, getMapRequest{}.append(nil), nil)
	var re *net.RemoteError
	if !errors.As(err, &re) || re.Code != CodeUnavailable || !strings.Contains(re.Message, "raft member failed") {
		if resp != nil {
			resp.Release()
		}
		t.Fatalf("get-map on the failed member: %v, want CodeUnavailable naming the failure", err)
	}
}
