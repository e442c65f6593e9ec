package manager

import (
	"os"
	"strings"
	"testing"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/internal/testutil"
	"github.com/weftfs/weft/internal/vfs"
)

// TestSeedFromMap: every member's log lost; the group is seeded on one
// member from a copy of the map (what a storage node keeps). The member
// leads with the copy, its epoch and next ids moved past the copy's,
// the FSID kept; its repair adds the other two back, and the group takes
// commands again.
func TestSeedFromMap(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 3, nil)
	ctx := testContext(t)
	cl := c.client()
	want := addNodes(t, ctx, cl, 4)
	kept := c.waitEpoch(ctx, 0, want.Epoch)
	for i := range c.nodes {
		c.kill(i)
		if err := os.RemoveAll(c.nodes[i].dir); err != nil {
			t.Fatal(err)
		}
	}

	noFSID := *kept
	noFSID.FSID = clustermap.FSID{}
	if _, err := SeedFromMap(nil, c.nodes[0].dir, 1, c.nodes[0].addr, &noFSID, false, testLogger()); err == nil || !strings.Contains(err.Error(), "no FSID") {
		t.Fatalf("a copy without FSID: %v", err)
	}
	dry, err := SeedFromMap(nil, c.nodes[0].dir, 1, c.nodes[0].addr, kept, true, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.nodes[0].dir); !os.IsNotExist(err) {
		t.Fatalf("the dry run made %s: %v", c.nodes[0].dir, err)
	}
	seeded, err := SeedFromMap(nil, c.nodes[0].dir, 1, c.nodes[0].addr, kept, false, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if seeded.Epoch != kept.Epoch+SeedEpochMargin || seeded.NextContainer != kept.NextContainer+SeedContainerMargin ||
		seeded.NextPG != kept.NextPG+SeedPGMargin || seeded.FSID != kept.FSID || len(seeded.Nodes) != 4 ||
		dry.Epoch != seeded.Epoch {
		t.Fatalf("seeded %+v from %+v (dry run %+v)", seeded, kept, dry)
	}
	if _, err := SeedFromMap(vfs.Default, c.nodes[0].dir, 1, c.nodes[0].addr, kept, true, testLogger()); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("seeding a seeded log: %v", err)
	}

	for i := range c.nodes {
		c.start(i)
	}
	c.waitVoters(ctx, 1, 2, 3)
	for i := range c.nodes {
		got := c.waitEpoch(ctx, i, seeded.Epoch)
		if len(got.Nodes) != 4 || got.FSID != kept.FSID || got.NextPG < seeded.NextPG {
			t.Fatalf("member %d: %d nodes at epoch %d, FSID %v, next PG %d", i+1, len(got.Nodes), got.Epoch, got.FSID, got.NextPG)
		}
	}
	if _, err := cl.Apply(ctx, clustermap.SetNodeState{ID: 4, State: clustermap.Draining}); err != nil {
		t.Fatal(err)
	}
}
