package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/cluster"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/replication"
	"github.com/weftfs/weft/internal/testutil"
	"github.com/weftfs/weft/net"
)

// pattern returns n bytes that name (inode, index, gen).
func pattern(inode, index uint64, gen, n int) []byte {
	b := make([]byte, n)
	s := fmt.Sprintf("[%d/%d/%d]", inode, index, gen)
	for i := range b {
		b[i] = s[i%len(s)]
	}
	return b
}

// engineHas reports whether node id's engine holds want as the chunk.
func (c *tcluster) engineHas(id clustermap.NodeID, ch fsproto.ChunkID, want []byte) error {
	e := c.nodes[id].eng
	st, err := e.Stat(fsproto.ObjectID(ch))
	if err != nil {
		return fmt.Errorf("node %d: stat %v: %w", id, ch, err)
	}
	if st.Deleted || st.Size != uint64(len(want)) {
		return fmt.Errorf("node %d: %v has size %d deleted %v, want %d bytes", id, ch, st.Size, st.Deleted, len(want))
	}
	got := make([]byte, len(want))
	if _, err := e.Read(fsproto.ObjectID(ch), 0, got); err != nil {
		return fmt.Errorf("node %d: read %v: %w", id, ch, err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("node %d: %v holds other bytes than written", id, ch)
	}
	return nil
}

func TestWriteReadOnAllReplicas(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 3, 4, replication.Config{Window: 16})
	ct := c.container(t)
	ctx := context.Background()
	const chunks = 24
	for i := uint64(0); i < chunks; i++ {
		data := pattern(7, i, 0, 4096+int(i)*100)
		if _, err := ct.Write(ctx, 7, i, 0, data); err != nil {
			t.Fatalf("write chunk %d: %v", i, err)
		}
	}
	for i := uint64(0); i < chunks; i++ {
		want := pattern(7, i, 0, 4096+int(i)*100)
		got := make([]byte, len(want)+10)
		n, err := ct.Read(ctx, 7, i, 0, got)
		if n != len(want) || err == nil {
			t.Fatalf("read chunk %d: %d bytes, err %v; want %d bytes and EOF", i, n, err, len(want))
		}
		if !bytes.Equal(got[:n], want) {
			t.Fatalf("read chunk %d: other bytes than written", i)
		}
		ch := fsproto.ChunkID{Container: uint64(ct.ID()), Inode: 7, Index: i}
		for id := range c.nodes {
			if err := c.engineHas(id, ch, want); err != nil {
				t.Error(err)
			}
		}
	}
	// Truncate and delete go through replication too.
	if _, err := ct.Truncate(ctx, 7, 0, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := ct.Delete(ctx, 7, 1); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 100)
	if n, err := ct.Read(ctx, 7, 0, 0, p); n != 10 {
		t.Fatalf("read after truncate: %d bytes, %v", n, err)
	}
	if _, err := ct.Read(ctx, 7, 1, 0, p); !errorsIs(err, fsproto.ErrNotFound) {
		t.Fatalf("read after delete: %v, want ErrNotFound", err)
	}
	for id := range c.nodes {
		ch := fsproto.ChunkID{Container: uint64(ct.ID()), Inode: 7, Index: 0}
		if err := c.engineHas(id, ch, pattern(7, 0, 0, 10)); err != nil {
			t.Error(err)
		}
		st, err := c.nodes[id].eng.Stat(fsproto.ObjectID(fsproto.ChunkID{Container: uint64(ct.ID()), Inode: 7, Index: 1}))
		if err == nil && !st.Deleted {
			t.Errorf("node %d still holds the deleted chunk", id)
		}
	}
}

// TestStatus: every PG has one primary, active, and two caught-up
// replicas, and the map's epochs.
func TestStatus(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 3, 4, replication.Config{Window: 16})
	ct, err := c.dial(t).Container(testContainer)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < 8; i++ {
		if _, err := ct.Write(context.Background(), 1, i, 0, pattern(1, i, 0, 100)); err != nil {
			t.Fatal(err)
		}
	}
	m := c.current()
	for _, pg := range m.PGs {
		var primaries, replicas int
		for id, tn := range c.nodes {
			for _, st := range tn.ds.Status() {
				if st.PG != pg.ID {
					continue
				}
				if st.Epoch != pg.Epoch {
					t.Errorf("node %d pg %d: epoch %d, map says %d", id, pg.ID, st.Epoch, pg.Epoch)
				}
				switch {
				case st.Role == cluster.RolePrimary && id == pg.Primary():
					primaries++
				case st.Role == cluster.RoleReplica && st.Phase == "caught-up":
					replicas++
				default:
					t.Errorf("node %d pg %d: role %v phase %q (primary %d)", id, pg.ID, st.Role, st.Phase, pg.Primary())
				}
			}
		}
		if primaries != 1 || replicas != 2 {
			t.Errorf("pg %d: %d primaries, %d replicas", pg.ID, primaries, replicas)
		}
	}
}

// TestCloseFailsPendingRetryably: a write the primary cannot complete
// (its replicas are cut off) is answered with CodeStaleEpoch when the
// DataServer closes, and requests after Close are refused the same way.
func TestCloseFailsPendingRetryably(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 3, 1, replication.Config{Window: 16})
	m := c.current()
	pg := m.PGs[0]
	p := pg.Primary()
	for id := range c.nodes {
		if id != p {
			c.fn.Partition(nodeName(p), nodeName(id))
		}
	}
	defer c.fn.HealAll()
	ctx := context.Background()
	cc := c.pinnedClient(t, p, pg)
	ch := fsproto.ChunkID{Container: uint64(m.Containers[0].ID), Inode: 1, Index: 0}
	op := cc.GoWrite(ctx, ch, 0, []byte("pending"), nil)
	waitFor(t, "the write to reach the primary", func() bool {
		select {
		case <-op.Done:
			t.Fatalf("write completed while the replicas are cut off: %v", op.Err)
		default:
		}
		return c.nodes[p].srv.Metrics().Requests > 0
	})
	c.nodes[p].ds.Close()
	<-op.Done
	if !errors.Is(op.Err, fsproto.ErrStaleEpoch) {
		t.Fatalf("pending write at Close: %v, want ErrStaleEpoch", op.Err)
	}
	if _, err := cc.Write(ctx, ch, 0, []byte("late")); !errors.Is(err, fsproto.ErrStaleEpoch) {
		t.Fatalf("write after Close: %v, want ErrStaleEpoch", err)
	}
}

// TestPeerBatchRefused: KindPeer batches from a client key, for another
// node, or malformed are refused with their codes and change nothing.
func TestPeerBatchRefused(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 3, 1, replication.Config{})
	ctx := context.Background()
	call := func(key string, secret []byte, hdr, payload []byte) error {
		conn, err := net.Dial(ctx, c.nodes[1].addr, net.ClientConfig{ClusterID: testCluster, KeyID: key, Secret: secret, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		resp, err := conn.Call(ctx, cluster.KindPeer, hdr, payload)
		if err == nil {
			resp.Release()
		}
		return err
	}
	msg := replication.AppendMsg([]byte{0, 0, 0, 0}, &replication.Msg{Kind: replication.MsgPeerQuery, PG: 1, Epoch: 1})
	msg[0] = byte(len(msg) - 4)
	good := cluster.AppendPeerHeader(nil, cluster.PeerHeader{Count: 1, From: 2, To: 1})
	code := func(err error) net.ErrorCode {
		var re *net.RemoteError
		if errors.As(err, &re) {
			return re.Code
		}
		t.Fatalf("not a remote error: %v", err)
		return 0
	}
	if err := call(clusterKey, clusterSecret, good, msg); err != nil {
		t.Fatalf("a well-formed batch: %v", err)
	}
	if err := call(clientKey, clientSecret, good, msg); code(err) != cluster.CodeNotForMe {
		t.Errorf("batch with a client key: %v", err)
	}
	other := cluster.AppendPeerHeader(nil, cluster.PeerHeader{Count: 1, From: 2, To: 3})
	if err := call(clusterKey, clusterSecret, other, msg); code(err) != cluster.CodeNotForMe {
		t.Errorf("batch for node 3 sent to node 1: %v", err)
	}
	if err := call(clusterKey, clusterSecret, good, msg[:len(msg)-1]); code(err) != fsproto.CodeBadMessage {
		t.Errorf("truncated batch: %v", err)
	}
	if err := call(clusterKey, clusterSecret, good[:5], msg); code(err) != fsproto.CodeBadMessage {
		t.Errorf("short header: %v", err)
	}
}

// TestDeletedContainerIsPurged: deleting a container deletes its chunks on
// every node, and on a node that was down at the time once it is back.
func TestDeletedContainerIsPurged(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 3, 4, replication.Config{Window: 16})
	ct := c.container(t)
	ctx := context.Background()
	const chunks = 12
	for i := uint64(0); i < chunks; i++ {
		if _, err := ct.Write(ctx, 9, i, 0, pattern(9, i, 0, 4096)); err != nil {
			t.Fatalf("write chunk %d: %v", i, err)
		}
	}
	var pgs []uint32
	for _, pg := range c.current().PGsOfContainer(ct.ID()) {
		pgs = append(pgs, uint32(pg.ID))
	}
	// live counts node id's live objects of the container's PGs.
	live := func(id clustermap.NodeID) int {
		n := 0
		for _, pg := range pgs {
			objs, err := c.nodes[id].eng.Changes(pg, 0, 0)
			if err != nil {
				t.Fatalf("node %d: changes of pg %d: %v", id, pg, err)
			}
			for _, o := range objs {
				if !o.Deleted {
					n++
				}
			}
		}
		return n
	}
	for id := range c.nodes {
		if n := live(id); n != chunks {
			t.Fatalf("node %d holds %d live chunks of the container before the delete, want %d", id, n, chunks)
		}
	}

	c.kill(3)
	c.apply(clustermap.DeleteContainer{ID: ct.ID()})
	for _, id := range []clustermap.NodeID{1, 2} {
		// The counts move after each PG's deletes: wait for both.
		waitFor(t, fmt.Sprintf("node %d to purge the deleted container", id), func() bool {
			_, objs, _ := c.nodes[id].ds.Purged()
			return live(id) == 0 && objs >= chunks
		})
		if _, objs, bytes := c.nodes[id].ds.Purged(); objs != chunks || bytes != chunks*4096 {
			t.Errorf("node %d reports %d objects, %d bytes purged; want %d and %d", id, objs, bytes, chunks, chunks*4096)
		}
	}
	if n := live(3); n != chunks {
		t.Fatalf("node 3, down, holds %d live chunks; want %d", n, chunks)
	}
	c.restart(3)
	waitFor(t, "node 3 to purge the deleted container after its restart", func() bool { return live(3) == 0 })
}

// TestMovedPGIsRetired: a drained node deletes its copies of the PGs that
// moved away once they live on whole without it; given PGs again, it
// backfills them in full; a node the map holds down keeps its copies,
// and deletes them once it is up and its PGs live on without it; every
// chunk reads as written throughout.
func TestMovedPGIsRetired(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newClusterTuned(t, 4, 4, replication.Config{Window: 8}, 0, func(cfg *cluster.DataServerConfig) {
		cfg.RetireAfter = 20 * time.Millisecond
	})
	ct := c.container(t)
	ctx := context.Background()
	const chunks = 96 // 24 a PG: more than the window, so a sync from a replica's highest seq would leave some out
	for i := uint64(0); i < chunks; i++ {
		if _, err := ct.Write(ctx, 9, i, 0, pattern(9, i, 0, 4096)); err != nil {
			t.Fatalf("write chunk %d: %v", i, err)
		}
	}
	readAll := func(when string) {
		t.Helper()
		for i := uint64(0); i < chunks; i++ {
			p := make([]byte, 4096)
			if n, err := ct.Read(ctx, 9, i, 0, p); err != nil || n != 4096 || !bytes.Equal(p, pattern(9, i, 0, 4096)) {
				t.Fatalf("%s: chunk %d reads %d bytes (%v), not as written", when, i, n, err)
			}
		}
	}
	// live counts node id's live objects in the PGs it holds no replica
	// of (held false) or holds (held true) in the newest map.
	live := func(id clustermap.NodeID, held bool) int {
		n := 0
		m := c.current()
		for _, pg := range m.PGsOfContainer(ct.ID()) {
			if pg.HasReplica(id) != held {
				continue
			}
			objs, err := c.nodes[id].eng.Changes(uint32(pg.ID), 0, 0)
			if err != nil {
				t.Fatalf("node %d: changes of pg %d: %v", id, pg.ID, err)
			}
			for _, o := range objs {
				if !o.Deleted {
					n++
				}
			}
		}
		return n
	}
	settled := func() bool {
		for _, pg := range c.current().PGsOfContainer(ct.ID()) {
			if len(pg.Backfilling) > 0 || len(pg.Replicas) != 3 {
				return false
			}
		}
		return true
	}

	const drained = clustermap.NodeID(1)
	held := live(drained, true)
	if held == 0 {
		t.Fatalf("node %d holds none of the %d chunks", drained, chunks)
	}
	c.apply(clustermap.SetNodeState{ID: drained, State: clustermap.Draining})
	waitFor(t, "the drain to finish", func() bool { return settled() && len(c.current().PGsOfNode(drained)) == 0 })
	waitFor(t, "the drained node to delete its copies", func() bool { return live(drained, false) == 0 })
	// A retire counts what it deleted when it returns, after its last
	// delete (it forgets the copy's tombstones in between).
	waitFor(t, "the drained node to count what it retired", func() bool {
		_, objs, _ := c.nodes[drained].ds.Retired()
		return objs >= uint64(held)
	})
	if pgs, objs, bytes := c.nodes[drained].ds.Retired(); pgs == 0 || objs != uint64(held) || bytes != uint64(held)*4096 {
		t.Errorf("node %d reports %d pgs, %d objects, %d bytes retired; it held %d chunks", drained, pgs, objs, bytes, held)
	}
	readAll("after the drain")

	// Back up, it gets PGs again when node 2 goes down (it is the only
	// spare): it backfills them in full. Node 2, down but running, keeps
	// its copies; up again, with its PGs whole without it, it deletes them.
	c.apply(clustermap.SetNodeState{ID: drained, State: clustermap.Up})
	const down = clustermap.NodeID(2)
	held2 := live(down, true)
	c.apply(clustermap.SetNodeState{ID: down, State: clustermap.Down})
	waitFor(t, "node 1 to take node 2's place", func() bool { return settled() && len(c.current().PGsOfNode(drained)) > 0 })
	readAll("with node 2 down")
	time.Sleep(100 * time.Millisecond) // five times RetireAfter
	if n := live(down, false); n != held2 {
		t.Fatalf("node 2, down, holds %d live chunks of the PGs it left; want all %d kept", n, held2)
	}
	c.apply(clustermap.SetNodeState{ID: down, State: clustermap.Up})
	for id := range c.nodes {
		waitFor(t, fmt.Sprintf("node %d to hold only the chunks of its PGs", id), func() bool { return live(id, false) == 0 })
	}
	readAll("after node 2 is up again")
	total := 0
	for id := range c.nodes {
		total += live(id, true)
	}
	if total != 3*chunks {
		t.Fatalf("the nodes hold %d live chunks in their PGs, want %d (3 replicas of %d)", total, 3*chunks, chunks)
	}
	waitFor(t, fmt.Sprintf("node %d to count what it retired", down), func() bool {
		_, objs, _ := c.nodes[down].ds.Retired()
		return objs >= uint64(held2)
	})
	if _, objs, _ := c.nodes[down].ds.Retired(); objs != uint64(held2) {
		t.Errorf("node %d retired %d objects, want %d", down, objs, held2)
	}
	// The returned node's copies are whole: every object of its PGs reads
	// as on another replica.
	compared := 0
	for _, pg := range c.current().PGsOfContainer(ct.ID()) {
		if !pg.HasReplica(drained) {
			continue
		}
		other := pg.Replicas[0]
		if other == drained {
			other = pg.Replicas[1]
		}
		objs, err := c.nodes[other].eng.Changes(uint32(pg.ID), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if o.Deleted {
				continue
			}
			want := readObject(t, c.nodes[other].eng, o.ID, o.Size)
			if got := readObject(t, c.nodes[drained].eng, o.ID, o.Size); !bytes.Equal(got, want) {
				t.Fatalf("pg %d object %v on node %d differs from node %d's", pg.ID, o.ID, drained, other)
			}
			compared++
		}
	}
	if compared == 0 {
		t.Fatalf("node %d holds no chunk to compare after its return", drained)
	}
}
