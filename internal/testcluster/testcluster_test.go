package testcluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/meta"
	"github.com/weftfs/weft/fsproto/namespace"
	"github.com/weftfs/weft/internal/testutil"
)

// TestStartCreateStop: a cluster starts, a container's metadata group
// serves a mkdir, a node stops and returns, and everything stops clean.
func TestStartCreateStop(t *testing.T) {
	testutil.CheckLeaks(t)
	c := Start(t, Options{Nodes: 3})
	ct := c.CreateContainer(t, "vol", clustermap.Policy{Replicas: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mcl := meta.NewClient(ct.ID, c.Managers(), c.Pool())
	if _, err := mcl.Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: "d", Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	c.StopNode(t, 2)
	c.RestartNode(t, 2, nil)
	if _, err := mcl.Lookup(ctx, namespace.RootIno, "d"); err != nil {
		t.Fatal(err)
	}
	c.Stop(t)
}

// TestNodeReclaimsRemovedFiles: a file removed by a bare metadata command
// (as a client that died after its unlink leaves it: nobody deleted the
// chunks) has its chunks deleted by the metadata leader's reclaim loop,
// and its Reclaim entry goes.
func TestNodeReclaimsRemovedFiles(t *testing.T) {
	testutil.CheckLeaks(t)
	c := Start(t, Options{Nodes: 3})
	const chunk = 64 << 10
	ct := c.CreateContainer(t, "vol", clustermap.Policy{Replicas: 3, ChunkSize: chunk})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	key := client.Key{ID: ClusterKeyID, Secret: ClusterSecret}
	cl, err := client.DialCluster(ctx, ClusterID, c.Addrs, key)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fsys, err := cl.OpenContainer(ctx, "vol", key)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	data := bytes.Repeat([]byte("reclaim me "), 5*chunk/11+1)
	if err := fsys.WriteFile("victim", data, 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := fsys.Stat("victim")
	if err != nil {
		t.Fatal(err)
	}
	ino := fi.Sys().(namespace.Attr).Ino
	chunks := (len(data) + chunk - 1) / chunk
	present := func() int {
		n := 0
		p := make([]byte, 1)
		for k := 0; k < chunks; k++ {
			if _, err := fsys.Data().Read(ctx, uint64(ino), uint64(k), 0, p); err == nil {
				n++
			} else if !errors.Is(err, fsproto.ErrNotFound) && !errors.Is(err, io.EOF) {
				t.Fatalf("reading chunk %d: %v", k, err)
			}
		}
		return n
	}
	if n := present(); n != chunks {
		t.Fatalf("%d of the file's %d chunks written", n, chunks)
	}
	mcl := meta.NewClient(ct.ID, c.Managers(), c.Pool())
	if _, err := mcl.Apply(ctx, namespace.Unlink{Parent: namespace.RootIno, Name: "victim"}); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := mcl.StatFS(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := present(); n == 0 && st.Reclaiming == 0 {
			break
		} else if ctx.Err() != nil {
			t.Fatalf("after a minute: %d chunks of the removed file left, %d reclaim entries queued", n, st.Reclaiming)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
