package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

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
