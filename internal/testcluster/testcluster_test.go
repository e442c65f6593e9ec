package testcluster

import (
	"context"
	"testing"
	"time"

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
