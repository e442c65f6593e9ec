package node_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/cluster"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/manager"
	"github.com/weftfs/weft/fsproto/meta"
	"github.com/weftfs/weft/fsproto/namespace"
	"github.com/weftfs/weft/fsproto/raftgroup"
	"github.com/weftfs/weft/internal/testcluster"
	"github.com/weftfs/weft/internal/testutil"
	"github.com/weftfs/weft/net"
	"github.com/weftfs/weft/node"
)

// keyClient reaches a test cluster with one container key.
type keyClient struct {
	t      *testing.T
	id     string
	secret []byte
	pool   *net.Pool
	mc     *manager.Client
	c      *testcluster.Cluster // whose managers give the whole map
}

func newKeyClient(t *testing.T, c *testcluster.Cluster, id string) *keyClient {
	k := &keyClient{t: t, id: id, c: c, secret: clustermap.KeySecret(testcluster.ClusterSecret, id)}
	pool, err := net.NewPool(net.PoolConfig{Client: net.ClientConfig{ClusterID: testcluster.ClusterID, KeyID: id, Secret: k.secret}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	k.pool, k.mc = pool, manager.NewClient(c.Addrs, pool)
	return k
}

func (k *keyClient) dial(ctx context.Context, addr string) (*net.Conn, error) {
	return net.Dial(ctx, addr, net.ClientConfig{ClusterID: testcluster.ClusterID, KeyID: k.id, Secret: k.secret})
}

// chunk writes (data != nil) or reads a chunk of container ct at its PG's
// primary (located in m, the cluster key's full map), on a fresh
// connection with k's key. A PG's epoch moves on while the cluster
// settles (peering after the container was created), so a stale epoch
// is retried with the newest full map (fetched with the cluster key from
// c's managers) until ctx ends.
func (k *keyClient) chunk(ctx context.Context, m *clustermap.Map, ct clustermap.ContainerID, data []byte) ([]byte, error) {
	k.t.Helper()
	for {
		got, err := k.chunkAt(ctx, m, ct, data)
		if !errors.Is(err, fsproto.ErrStaleEpoch) || ctx.Err() != nil {
			return got, err
		}
		time.Sleep(10 * time.Millisecond)
		if m, err = k.c.Managers().Map(ctx, 0); err != nil {
			return nil, err
		}
	}
}

func (k *keyClient) chunkAt(ctx context.Context, m *clustermap.Map, ct clustermap.ContainerID, data []byte) ([]byte, error) {
	k.t.Helper()
	ch := fsproto.ChunkID{Container: uint64(ct), Inode: 77, Index: 0}
	pg, err := m.Locate(ct, ch.Inode, ch.Index)
	if err != nil {
		k.t.Fatal(err)
	}
	n, _ := m.Node(pg.Primary())
	conn, err := k.dial(ctx, n.Addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	cc := fsproto.NewChunkClient(conn, fsproto.ChunkClientConfig{Epoch: pg.Epoch, PG: func(fsproto.ChunkID) uint32 { return uint32(pg.ID) }})
	if data != nil {
		_, err := cc.Write(ctx, ch, 0, data)
		return nil, err
	}
	p := make([]byte, 4096)
	nr, err := cc.Read(ctx, ch, 0, p)
	return p[:nr], err
}

func remoteCode(err error) net.ErrorCode {
	var re *net.RemoteError
	if errors.As(err, &re) {
		return re.Code
	}
	return 0
}

// waitKnown waits until every node accepts a handshake with key k (each
// node learns new keys from the map it follows).
func waitKnown(t *testing.T, ctx context.Context, c *testcluster.Cluster, k *keyClient, known bool) {
	t.Helper()
	for _, addr := range c.Addrs {
		for {
			conn, err := k.dial(ctx, addr)
			if conn != nil {
				conn.Close()
			}
			if (err == nil) == known {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("key %s on %s: known %v never came: %v", k.id, addr, known, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestKeyIsolation: a write key of container A reads and writes A's
// chunks and metadata, gets access denied on B's (chunks and metadata),
// and its map shows no B; a read key of A is refused writes; container
// keys cannot send raft messages, apply map commands or peer batches; a
// revoked key's open connection is closed and new ones fail.
func TestKeyIsolation(t *testing.T) {
	testutil.CheckLeaks(t)
	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := c.CreateContainer(t, "a", clustermap.Policy{Replicas: 3, PGCount: 4})
	b := c.CreateContainer(t, "b", clustermap.Policy{Replicas: 3, PGCount: 4})
	const kw, kr = "k00000000000000a1", "k00000000000000a2"
	for _, k := range []clustermap.CreateKey{{ID: kw, Container: a.ID, Access: clustermap.AccessWrite}, {ID: kr, Container: a.ID, Access: clustermap.AccessRead}} {
		if _, err := c.Managers().Apply(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	full, err := c.Managers().Map(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	w, r := newKeyClient(t, c, kw), newKeyClient(t, c, kr)
	waitKnown(t, ctx, c, w, true)
	waitKnown(t, ctx, c, r, true)

	// The map: A only, no keys for a write key.
	m, err := w.mc.Map(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.ContainerByName("b"); ok || len(m.Containers) != 1 || m.Containers[0].ID != a.ID || len(m.Keys) != 0 {
		t.Fatalf("write key of a sees containers %v, keys %v", m.Containers, m.Keys)
	}

	// Chunks.
	data := bytes.Repeat([]byte("a"), 4096)
	if _, err := w.chunk(ctx, full, a.ID, data); err != nil {
		t.Fatalf("write key writing its container: %v", err)
	}
	if got, err := w.chunk(ctx, full, a.ID, nil); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("write key reading its container: %d bytes, %v", len(got), err)
	}
	if got, err := r.chunk(ctx, full, a.ID, nil); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read key reading its container: %d bytes, %v", len(got), err)
	}
	if _, err := r.chunk(ctx, full, a.ID, data); !errors.Is(err, fsproto.ErrReadOnly) {
		t.Fatalf("read key writing: %v, want ErrReadOnly", err)
	}
	for _, write := range []bool{true, false} {
		var d []byte
		if write {
			d = data
		}
		if _, err := w.chunk(ctx, full, b.ID, d); !errors.Is(err, fsproto.ErrAccessDenied) {
			t.Fatalf("write key on container b (write %v): %v, want ErrAccessDenied", write, err)
		}
	}

	// Metadata (the client locates the group in the cluster key's map, so
	// that b's servers, not the client, refuse).
	ma := meta.NewClient(a.ID, c.Managers(), w.pool)
	if _, err := ma.Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: "d", Mode: 0o755}); err != nil {
		t.Fatalf("write key mkdir in its container: %v", err)
	}
	if _, err := meta.NewClient(a.ID, c.Managers(), r.pool).Lookup(ctx, namespace.RootIno, "d"); err != nil {
		t.Fatalf("read key lookup in its container: %v", err)
	}
	if _, err := meta.NewClient(a.ID, c.Managers(), r.pool).Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: "e", Mode: 0o755}); !errors.Is(err, meta.ErrReadOnly) {
		t.Fatalf("read key mkdir: %v, want meta.ErrReadOnly", err)
	}
	mb := meta.NewClient(b.ID, c.Managers(), w.pool)
	if _, err := mb.Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: "d", Mode: 0o755}); remoteCode(err) != fsproto.CodeAccessDenied {
		t.Fatalf("write key of a: mkdir in b: %v, want code %d", err, fsproto.CodeAccessDenied)
	}
	if _, err := mb.StatFS(ctx); remoteCode(err) != fsproto.CodeAccessDenied {
		t.Fatalf("write key of a: statfs of b: %v, want code %d", err, fsproto.CodeAccessDenied)
	}

	// No raft (300), map commands (311) or peer batches (320).
	conn, err := w.dial(ctx, c.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Call(ctx, raftgroup.KindRaft, make([]byte, 20), nil); remoteCode(err) != raftgroup.CodeAccessDenied {
		t.Fatalf("raft batch with a container key: %v", err)
	}
	if _, err := conn.Call(ctx, cluster.KindPeer, make([]byte, 16), nil); remoteCode(err) != cluster.CodeNotForMe && remoteCode(err) != fsproto.CodeAccessDenied {
		t.Fatalf("peer batch with a container key: %v", err)
	}
	if _, err := conn.Call(ctx, node.KindStatus, nil, nil); remoteCode(err) != node.CodeStatusAccessDenied {
		t.Fatalf("node status with a container key: %v", err)
	}
	conn.Close()
	for _, cmd := range []clustermap.Command{
		clustermap.CreateContainer{Name: "c", Policy: clustermap.Policy{Replicas: 1}},
		clustermap.NodeRestarted{ID: full.Nodes[0].ID},
		clustermap.CreateKey{ID: "k00000000000000a3", Container: a.ID, Access: clustermap.AccessAdmin},
	} {
		if _, err := w.mc.Apply(ctx, cmd); !errors.Is(err, manager.ErrAccessDenied) {
			t.Fatalf("write key applying %v: %v, want ErrAccessDenied", cmd.Kind(), err)
		}
	}

	// Revocation: the open connection closes, new handshakes fail.
	open, err := w.dial(ctx, c.Addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if _, err := c.Managers().Apply(ctx, clustermap.RevokeKey{ID: kw}); err != nil {
		t.Fatal(err)
	}
	for open.Err() == nil {
		if ctx.Err() != nil {
			t.Fatal("the revoked key's connection stayed open")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !errors.Is(open.Err(), net.ErrConnClosed) {
		t.Fatalf("revoked key's connection: %v", open.Err())
	}
	waitKnown(t, ctx, c, w, false)
	_, err = w.dial(ctx, c.Addrs[2])
	if remoteCode(err) != net.CodeAuthFailed {
		t.Fatalf("new handshake with the revoked key: %v, want CodeAuthFailed", err)
	}
	// The read key of the same container is untouched.
	if got, err := r.chunk(ctx, full, a.ID, nil); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read key after the write key's revocation: %v", err)
	}
}
