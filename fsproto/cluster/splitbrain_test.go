package cluster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/replication"
	"github.com/weftfs/weft/internal/testutil"
)

// TestNoSplitBrain cuts a PG's primary off from the others and from the
// maps, moves the PG to a new epoch without it, and checks that the old
// primary acknowledges nothing and serves no stale read, while the new
// primary serves clients.
func TestNoSplitBrain(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 3, 1, replication.Config{Window: 16})
	ct := c.container(t)
	ctx := context.Background()
	old := c.current()
	pg := pgOf(t, old, ct, 0)
	p := pg.Primary()
	if _, err := ct.Write(ctx, 1, 0, 0, pattern(1, 0, 1, 4096)); err != nil {
		t.Fatal(err)
	}

	// A client stuck on the old map talks to the old primary directly.
	stale := c.pinnedClient(t, p, *pg)
	ch := fsproto.ChunkID{Container: uint64(ct.ID()), Inode: 1, Index: 0}

	// Partition p from the other nodes and keep new maps from it.
	for id := range c.nodes {
		if id != p {
			c.fn.Partition(nodeName(p), nodeName(id))
		}
	}
	c.mu.Lock()
	c.cut[p] = true
	c.mu.Unlock()
	c.apply(clustermap.SetNodeState{ID: p, State: clustermap.Down})

	// Fully cut off, the old primary cannot get a write acknowledged.
	// (This part can only pass wrongly, never fail wrongly, on a slow
	// machine.)
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := stale.Write(wctx, ch, 0, pattern(1, 0, 2, 4096))
	cancel()
	if err == nil {
		t.Fatal("the cut-off primary acknowledged a write")
	}
	// The new primary serves.
	want := pattern(1, 0, 3, 4096)
	if _, err := ct.Write(ctx, 1, 0, 0, want); err != nil {
		t.Fatal(err)
	}

	// Healed, the old primary hears of the new epoch from the replicas
	// and refuses, still without a map that says so.
	c.fn.HealAll()
	if _, err := stale.Write(ctx, ch, 0, pattern(1, 0, 4, 4096)); !errors.Is(err, fsproto.ErrStaleEpoch) {
		t.Fatalf("write through the old primary: %v, want ErrStaleEpoch", err)
	}
	buf := make([]byte, 4096)
	if n, err := stale.Read(ctx, ch, 0, buf); !errors.Is(err, fsproto.ErrStaleEpoch) {
		t.Fatalf("read through the old primary: %d bytes, %v; want ErrStaleEpoch", n, err)
	}

	// Only the new primary's write is anywhere but on the old primary.
	got := make([]byte, 4096)
	if n, err := ct.Read(ctx, 1, 0, 0, got); n != len(want) || string(got) != string(want) {
		t.Fatalf("read: %d bytes, %v, not the last acknowledged write", n, err)
	}
	for id := range c.nodes {
		if id == p {
			continue
		}
		if err := c.engineHas(id, ch, want); err != nil {
			t.Error(err)
		}
	}
}
