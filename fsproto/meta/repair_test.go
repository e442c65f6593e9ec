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
	"github.com/weftfs/weft/internal/testutil"
)

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
