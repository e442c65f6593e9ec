package meta

import (
	"testing"

	"github.com/weftfs/weft/fsproto/namespace"
	"github.com/weftfs/weft/internal/testutil"
)

// TestRetriedWithCloses: an op carrying closes (namespace.WithCloses)
// that is retried with its request id, on the same leader and on a new
// one after the first died, applies its closes once: a second count
// would end an open that another handle still holds. The leader stamps
// its time into the batch's command.
func TestRetriedWithCloses(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	cl := c.client()
	create := namespace.Create{Parent: namespace.RootIno, Name: "f", Mode: 0o644, Open: true}
	res, err := cl.Apply(ctx, create)
	if err != nil || !res.Opened {
		t.Fatalf("create+open: %+v, %v", res, err)
	}
	ino := res.Attr.Ino
	if res, err = cl.Apply(ctx, create); err != nil || res.Attr.Open != 2 {
		t.Fatalf("second open: %+v, %v; want 2 opens", res, err)
	}
	batch := namespace.WithCloses{Closes: []namespace.Ino{ino},
		Cmd: namespace.Mkdir{Parent: namespace.RootIno, Name: "d", Mode: 0o755}}
	id := RequestID{Client: cl.id, Seq: 1000}
	first, err := cl.apply(ctx, id, batch)
	if err != nil || first.Attr.Type != namespace.TypeDir || first.Attr.Mtime == 0 {
		t.Fatalf("batch: %+v, %v; want the mkdir's result, stamped", first, err)
	}
	opens := func(when string) {
		t.Helper()
		a, err := cl.GetAttr(ctx, ino)
		if err != nil || a.Open != 1 {
			t.Fatalf("%s: %+v, %v; want 1 open", when, a, err)
		}
	}
	opens("after the batch")
	again, err := cl.apply(ctx, id, batch)
	if err != nil || again.Attr != first.Attr {
		t.Fatalf("retried batch: %+v, %v; want the first result %+v", again, err, first)
	}
	opens("after a retry on the same leader")
	c.kill(c.leader(ctx))
	if again, err = cl.apply(ctx, id, batch); err != nil || again.Attr != first.Attr {
		t.Fatalf("batch retried on the new leader: %+v, %v; want %+v", again, err, first)
	}
	opens("after a retry on the new leader")
}
