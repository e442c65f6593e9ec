package clustertest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/clustermap"
)

// TestMetaMembersSpreadProcesses: four `weft node` processes, node 1 in
// zone b and the others in zone a, when a container spread over zones is
// made: its metadata group has two or three members in zone a. A node
// that is not a member moves to a new zone c (relabelled, as a node
// restarted with other labels re-joins): the map moves a zone-a member to
// it, and the group's leader moves raft's membership there, so that the
// group has one member per zone. Then that zone's remaining member is
// killed, and every file reads back.
func TestMetaMembersSpreadProcesses(t *testing.T) {
	zones := map[int]string{1: "b", 2: "a", 3: "a", 4: "a"}
	c := startClusterNodeArgs(t, 4, 3, 2, 0, func(i int) []string { return []string{"--label", "zone=" + zones[i]} })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m, err := c.mc.Apply(ctx, clustermap.CreateContainer{Name: "spread", Policy: clustermap.Policy{Replicas: 2, FailureDomain: "zone", PGCount: 4}})
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := m.ContainerByName("spread")
	zoneOf := map[clustermap.NodeID]string{}
	moved := 0 // the local index of a node of zone a that is no member
	for i := 1; i <= 4; i++ {
		id := c.nodeID(m, i)
		zoneOf[id] = zones[i]
		if zones[i] == "a" && !slices.Contains(ct.MetaMembers, id) {
			moved = i
		}
	}
	if moved == 0 {
		t.Fatalf("metadata members %v: want one node of zone a left out", ct.MetaMembers)
	}
	c.waitMap("the container's PGs active", allActive)
	acc := c.lc.Access()
	key := client.Key{ID: acc.KeyID, Secret: acc.Secret}
	fsys := openFS(t, ctx, acc, key, "spread")
	files := map[string][]byte{}
	for i := range 8 {
		n := fmt.Sprintf("f%02d", i)
		files[n] = []byte(n + " in a container spread over zones")
		if err := fsys.WriteFile(n, files[n], 0o644); err != nil {
			t.Fatalf("write %s: %v", n, err)
		}
	}

	// Node `moved` re-joins in zone c, with the cluster key.
	movedID := c.nodeID(m, moved)
	n, _ := m.Node(movedID)
	labels := maps.Clone(n.Labels)
	labels["zone"] = "c"
	zoneOf[movedID] = "c"
	start := time.Now()
	if _, err := c.asNode(t).Apply(ctx, clustermap.AddNode{ID: n.ID, Addr: n.Addr, Labels: labels, Capacity: n.Capacity}); err != nil {
		t.Fatalf("relabel node %d: %v", moved, err)
	}
	var voters []clustermap.NodeID
	for {
		m, err := c.mc.Map(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		rec, _ := m.Container(ct.ID)
		_, mm, ok := c.metaLeader(4, ct.ID)
		voters = voters[:0]
		spread := map[string]bool{}
		for _, v := range mm.Voters {
			voters = append(voters, clustermap.NodeID(v))
			spread[zoneOf[clustermap.NodeID(v)]] = true
		}
		if ok && len(voters) == 3 && len(mm.Learners) == 0 && len(spread) == 3 && slices.Contains(rec.MetaMembers, movedID) {
			t.Logf("metadata members %v over zones a, b, c after %v", voters, time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Since(start) > 90*time.Second {
			c.logReport("the group never spread")
			t.Fatalf("record %v, raft voters %v learners %v: want one member per zone, node %d among them", rec.MetaMembers, voters, mm.Learners, movedID)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Zone a's remaining member dies.
	for i := 1; i <= 4; i++ {
		if id := c.nodeID(m, i); zoneOf[id] == "a" && slices.Contains(voters, id) {
			if err := c.lc.KillNode(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkFilesThenWrite(t, openFS(t, ctx, acc, key, "spread"), files)
}
