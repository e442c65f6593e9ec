package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/replication"
	"github.com/weftfs/weft/internal/testutil"
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
	cl := c.dial(t)
	ct, err := cl.Container(testContainer)
	if err != nil {
		t.Fatal(err)
	}
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
