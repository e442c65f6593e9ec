package cluster_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/replication"
	"github.com/weftfs/weft/internal/testutil"
)

// TestReadsBesideTheLoop: with a read lease, chunk reads are served on
// the connection's reader, beside the loop; but never a read of an object
// whose mutation is under way: the primary has stored the new data while
// its replicas have not acknowledged it, and a read that saw it could
// return a write that a failover then loses. Such a read waits for the
// mutation, as one through the core does.
func TestReadsBesideTheLoop(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 3, 1, replication.Config{})
	ct := c.container(t)
	ctx := context.Background()
	pg := pgOf(t, c.current(), ct, 0)
	p := pg.Primary()
	v1, v2 := pattern(1, 0, 1, 4096), pattern(1, 0, 2, 4096)
	if _, err := ct.Write(ctx, 1, 0, 0, v1); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4096)
	waitFor(t, "a read served beside the loop", func() bool {
		if n, err := ct.Read(ctx, 1, 0, 0, got); err != nil || !bytes.Equal(got[:n], v1) {
			t.Fatalf("read: %d bytes, %v; want the first write", n, err)
		}
		return c.nodes[p].ds.ReadsBeside() > 0
	})

	// Cut the primary off from its replicas: a write reaches its store
	// but cannot be acknowledged.
	for id := range c.nodes {
		if id != p {
			c.fn.Partition(nodeName(p), nodeName(id))
		}
	}
	defer c.fn.HealAll()
	raw := c.pinnedClient(t, p, *pg)
	chunk := fsproto.ChunkID{Container: uint64(ct.ID()), Inode: 1, Index: 0}
	// A read just before the write, so that the lease is fresh (the
	// write must be refused by the object's mark, not by a lease that ran
	// out).
	if _, err := raw.Read(ctx, chunk, 0, got); err != nil {
		t.Fatal(err)
	}
	w := raw.GoWrite(ctx, chunk, 0, v2, nil)
	// Give the primary's store time to take the write.
	time.Sleep(50 * time.Millisecond)
	beside := c.nodes[p].ds.ReadsBeside()
	r := raw.GoRead(ctx, chunk, 0, got, nil)
	select {
	case <-r.Done:
		if r.Err == nil && bytes.Equal(got, v2) {
			t.Fatal("a read returned a write its replicas had not acknowledged")
		}
		t.Fatalf("read before the write was acknowledged: %v (want it to wait)", r.Err)
	case <-w.Done:
		t.Fatalf("write acknowledged by a primary cut off from its replicas: %v", w.Err)
	case <-time.After(300 * time.Millisecond):
	}
	if n := c.nodes[p].ds.ReadsBeside(); n != beside {
		t.Errorf("%d reads beside the loop during the write, want 0", n-beside)
	}
	c.fn.HealAll()
	for _, op := range []*fsproto.Op{w, r} {
		select {
		case <-op.Done:
		case <-time.After(20 * time.Second):
			t.Fatal("operation still unanswered after the partition healed")
		}
		if op.Err != nil {
			t.Fatal(op.Err)
		}
	}
	if !bytes.Equal(got, v2) {
		t.Errorf("read after the write was acknowledged does not return it")
	}
	// The object is free again: reads go beside the loop once more.
	waitFor(t, "reads beside the loop after the write", func() bool {
		if _, err := raw.Read(ctx, chunk, 0, got); err != nil {
			t.Fatal(err)
		}
		return c.nodes[p].ds.ReadsBeside() > beside
	})
}
