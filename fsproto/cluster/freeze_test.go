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

// TestFrozenPrimaryAnswersOnNewMap is the liveness half of a frozen
// primary (SIGSTOP in internal/clustertest): it holds client operations
// it cannot complete (its replicas are out of reach), the PG moves to a
// new epoch, and when the frozen node resumes with only the newer map to
// tell it so (still cut off from its peers, whose Stale answers would
// otherwise do it), every pending and queued operation of the PG is
// answered with CodeStaleEpoch, and later requests at the old epoch are
// refused the same way. In the first case the new epoch has another
// primary; in the second the frozen node stays primary (a replica went
// down): the core keeps its pending mutations for the new epoch, but
// their clients must not wait for that.
func TestFrozenPrimaryAnswersOnNewMap(t *testing.T) {
	t.Run("deposed", func(t *testing.T) { testFrozenPrimary(t, false) })
	t.Run("same-primary", func(t *testing.T) { testFrozenPrimary(t, true) })
}

func testFrozenPrimary(t *testing.T, samePrimary bool) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 3, 1, replication.Config{Window: 4})
	ct := c.container(t)
	ctx := context.Background()
	old := c.current()
	pg := pgOf(t, old, ct, 0)
	p := pg.Primary()
	for i := range uint64(4) {
		if _, err := ct.Write(ctx, 1, i, 0, pattern(1, i, 1, 4096)); err != nil {
			t.Fatal(err)
		}
	}

	stale := c.pinnedClient(t, p, *pg)
	chunk := func(i uint64) fsproto.ChunkID { return fsproto.ChunkID{Container: uint64(ct.ID()), Inode: 1, Index: i} }

	// Freeze p: nothing passes between it and its peers, and no map
	// reaches it.
	for id := range c.nodes {
		if id != p {
			c.fn.Partition(nodeName(p), nodeName(id))
		}
	}
	defer c.fn.HealAll()
	c.mu.Lock()
	c.cut[p] = true
	c.mu.Unlock()

	// What it holds: mutations in flight (one per object), one queued
	// behind another of the same object, more than the window allows,
	// and a read.
	before := c.nodes[p].srv.Metrics().Requests
	var ops []*fsproto.Op
	for i := range uint64(6) {
		ops = append(ops, stale.GoWrite(ctx, chunk(i), 0, pattern(1, i, 2, 4096), nil))
	}
	ops = append(ops, stale.GoWrite(ctx, chunk(0), 0, pattern(1, 0, 3, 4096), nil))
	ops = append(ops, stale.GoRead(ctx, chunk(1), 0, make([]byte, 4096), nil))
	waitFor(t, "the operations to reach the frozen primary", func() bool {
		for _, op := range ops {
			select {
			case <-op.Done:
				t.Fatalf("an operation completed on the frozen primary: %v", op.Err)
			default:
			}
		}
		return c.nodes[p].srv.Metrics().Requests >= before+uint64(len(ops))
	})

	// The managers move the PG to a new epoch: without p, or without one
	// of its replicas.
	down := p
	if samePrimary {
		down = pg.Replicas[1]
	}
	m, _ := c.apply(clustermap.SetNodeState{ID: down, State: clustermap.Down})
	npg, _ := m.PG(pg.ID)
	if npg.Epoch == pg.Epoch || (npg.Primary() == p) != samePrimary {
		t.Fatalf("pg %d after node %d went down: epoch %d primary %d", pg.ID, down, npg.Epoch, npg.Primary())
	}

	// Resume p with the newer map only.
	c.nodes[p].feed.publish(m)
	for i, op := range ops {
		select {
		case <-op.Done:
		case <-time.After(20 * time.Second):
			t.Fatalf("operation %d still unanswered after the new map reached the old primary", i)
		}
		if !errors.Is(op.Err, fsproto.ErrStaleEpoch) {
			t.Errorf("operation %d: %v, want ErrStaleEpoch", i, op.Err)
		}
	}
	if _, err := stale.Write(ctx, chunk(0), 0, pattern(1, 0, 4, 4096)); !errors.Is(err, fsproto.ErrStaleEpoch) {
		t.Errorf("write at the old epoch after the new map: %v, want ErrStaleEpoch", err)
	}
}
