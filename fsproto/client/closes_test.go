package client_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/namespace"
	"github.com/weftfs/weft/node"
)

// metaCommit returns the commit index of container id's metadata group
// on its leader (asked through the nodes' status).
func metaCommit(t *testing.T, e *env, id clustermap.ContainerID) uint64 {
	t.Helper()
	ctx := testCtx(t)
	var commit uint64
	waitFor(t, fmt.Sprintf("a leader of container %d's metadata group", id), func() bool {
		for _, addr := range e.c.Addrs {
			conn, err := e.c.Pool().Get(ctx, addr)
			if err != nil {
				continue
			}
			s, err := node.FetchStatus(ctx, conn)
			if err != nil {
				continue
			}
			for _, m := range s.Meta {
				if m.Container == uint64(id) && m.Leader == s.Node {
					commit = m.Commit
					return true
				}
			}
		}
		return false
	})
	return commit
}

// testClosesRideAlong: in a create-close loop, each Release's Close
// rides on the next create, so the loop commits one Raft entry per file
// (two before: the Create with its open, and the Close). The close
// delay is an hour, so only the ops carry closes here.
func testClosesRideAlong(t *testing.T, e *env) {
	name, f := e.container(t, client.WithCloseDelay(time.Hour))
	g := e.open(t, name, e.key)
	ctx := testCtx(t)
	const files = 20
	before := metaCommit(t, e, f.Data().ID())
	var inos []namespace.Ino
	for i := range files {
		res, h, err := f.CreateIno(ctx, namespace.Create{Parent: namespace.RootIno, Name: fmt.Sprint("f", i), Mode: 0o644}, true)
		must(t, "CreateIno", err)
		must(t, "Release", h.Release(ctx))
		inos = append(inos, res.Attr.Ino)
	}
	// A leader change would add an empty entry; allow for two.
	if got := metaCommit(t, e, f.Data().ID()) - before; got > files+2 {
		t.Fatalf("%d creates and releases committed %d raft entries, want %d (one per create)", files, got, files)
	} else {
		t.Logf("%d creates and releases committed %d raft entries", files, got)
	}
	for i, ino := range inos {
		a, err := g.GetAttr(ctx, ino)
		must(t, "GetAttr", err)
		want := uint32(0)
		if i == files-1 {
			want = 1 // its Close waits for an op, or FS.Close
		}
		if a.Open != want {
			t.Fatalf("file %d: %d opens counted, want %d", i, a.Open, want)
		}
	}
	must(t, "FS.Close", f.Close())
	if a, err := g.GetAttr(ctx, inos[files-1]); err != nil || a.Open != 0 {
		t.Fatalf("the last file after FS.Close: %+v, %v; want its Close sent", a, err)
	}
}

// testClosesAtFSClose: with no op to carry it, the Close of an unlinked
// file's last open is sent by FS.Close, which deletes the file's chunks
// before it returns.
func testClosesAtFSClose(t *testing.T, e *env) {
	name, f := e.container(t, client.WithCloseDelay(time.Hour), client.WithCredentials(0, 0))
	g := e.open(t, name, e.key, client.WithCredentials(0, 0))
	ctx := testCtx(t)
	res, h, err := f.CreateIno(ctx, namespace.Create{Parent: namespace.RootIno, Name: "u", Mode: 0o644}, true)
	must(t, "CreateIno", err)
	ino := res.Attr.Ino
	if _, err := h.WriteAt(ctx, pattern(2*chunk64K, 1), 0); err != nil {
		t.Fatal(err)
	}
	must(t, "Remove", g.Remove("u"))
	must(t, "Release", h.Release(ctx))
	if !chunkExists(t, g, ino, 0) {
		t.Fatal("the chunks went before the Close was sent")
	}
	must(t, "FS.Close", f.Close())
	for k := uint64(0); k < 2; k++ {
		if chunkExists(t, g, ino, k) {
			t.Errorf("chunk %d of the unlinked file survived FS.Close", k)
		}
	}
	if st, err := g.Usage(); err != nil || st.Reclaiming != 0 || st.Inodes != 1 {
		t.Errorf("Usage after FS.Close: %+v, %v; want only the root, nothing to reclaim", st, err)
	}
	if err := h.Release(ctx); err == nil {
		t.Error("a second Release succeeded")
	}
}
