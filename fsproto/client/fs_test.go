package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/namespace"
	"github.com/weftfs/weft/internal/testcluster"
	"github.com/weftfs/weft/internal/testutil"
)

// chunk64K is the chunk size of the test containers: small, so tests
// cross many chunk boundaries.
const chunk64K = 64 << 10

// env is one test cluster shared by the subtests of a top-level test.
type env struct {
	c   *testcluster.Cluster
	cl  *client.Client
	key client.Key
	n   int // containers made so far
}

// roKeyID and roSecret are a read-only key the test cluster accepts.
const roKeyID = "reader"

var roSecret = []byte("testcluster-reader-0123456789abc")

func startEnv(t *testing.T) *env {
	t.Helper()
	testutil.CheckLeaks(t)
	c := testcluster.Start(t, testcluster.Options{Nodes: 3,
		ExtraKeys: []string{fmt.Sprintf("%s %x ro", roKeyID, roSecret)}})
	key := client.Key{ID: testcluster.ClusterKeyID, Secret: testcluster.ClusterSecret}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.DialCluster(ctx, testcluster.ClusterID, c.Addrs, key,
		client.WithFlushInterval(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return &env{c: c, cl: cl, key: key}
}

// container makes a fresh container (64 KiB chunks, 3 replicas) and
// opens it with the cluster key.
func (e *env) container(t *testing.T, opts ...client.Option) (string, *client.FS) {
	t.Helper()
	e.n++
	name := fmt.Sprintf("ct%d", e.n)
	e.c.CreateContainer(t, name, clustermap.Policy{Replicas: 3, ChunkSize: chunk64K, PGCount: 8})
	return name, e.open(t, name, e.key, opts...)
}

func (e *env) open(t *testing.T, name string, key client.Key, opts ...client.Option) *client.FS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := e.cl.OpenContainer(ctx, name, key, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("FS.Close: %v", err)
		}
	})
	return f
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// chunkExists asks the chunk store whether chunk (ino, k) exists.
func chunkExists(t *testing.T, f *client.FS, ino namespace.Ino, k uint64) bool {
	t.Helper()
	var b [1]byte
	_, err := f.Data().Read(testCtx(t), uint64(ino), k, 0, b[:])
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return true
	case errors.Is(err, fsproto.ErrNotFound):
		return false
	}
	t.Fatalf("reading chunk (%d, %d): %v", ino, k, err)
	return false
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// TestFileClient runs the file client's scenarios on one test cluster.
func TestFileClient(t *testing.T) {
	e := startEnv(t)
	t.Run("InodeAPI", func(t *testing.T) { testInodeAPI(t, e) })
	t.Run("PathAPI", func(t *testing.T) { testPathAPI(t, e) })
	t.Run("Permissions", func(t *testing.T) { testPermissions(t, e) })
	t.Run("FSTest", func(t *testing.T) { testFSTest(t, e) })
	t.Run("UnlinkedOpen", func(t *testing.T) { testUnlinkedOpen(t, e) })
	t.Run("ClosesRideAlong", func(t *testing.T) { testClosesRideAlong(t, e) })
	t.Run("ClosesAtFSClose", func(t *testing.T) { testClosesAtFSClose(t, e) })
	t.Run("RemoveReclaims", func(t *testing.T) { testRemoveReclaims(t, e) })
	t.Run("TwoClients", func(t *testing.T) { testTwoClients(t, e) })
	t.Run("Quota", func(t *testing.T) { testQuota(t, e) })
	t.Run("ReadOnly", func(t *testing.T) { testReadOnly(t, e) })
	t.Run("ConcurrentIO", func(t *testing.T) { testConcurrentIO(t, e) })
	t.Run("DeleteBatches", func(t *testing.T) { testDeleteBatches(t, e) })
	t.Run("Exerciser", func(t *testing.T) { testExerciser(t, e) })
}

// testInodeAPI: create, open, write across chunk boundaries, read back
// (holes as zeros), flush commits the size, truncate down deletes the
// chunks past the end, release.
func testInodeAPI(t *testing.T, e *env) {
	_, f := e.container(t)
	ctx := testCtx(t)
	res, err := f.Apply(ctx, namespace.Create{Parent: namespace.RootIno, Name: "a", Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	ino := res.Attr.Ino
	h, err := f.OpenIno(ctx, ino, true)
	if err != nil {
		t.Fatal(err)
	}
	data := pattern(3*chunk64K+100, 1)
	off := int64(chunk64K/2 + 3) // crosses 4 chunk boundaries; chunk 0's first half is a hole
	if n, err := h.WriteAt(ctx, data, off); err != nil || n != len(data) {
		t.Fatalf("WriteAt: %d, %v", n, err)
	}
	end := off + int64(len(data))
	// Read-your-writes before the flush: the attributes carry the
	// pending size.
	if a, err := f.GetAttr(ctx, ino); err != nil || a.Size != uint64(end) {
		t.Fatalf("GetAttr before flush: size %d, %v; want %d", a.Size, err, end)
	}
	got := make([]byte, end+10)
	n, err := h.ReadAt(ctx, got, 0)
	if n != int(end) || err != io.EOF {
		t.Fatalf("ReadAt: %d, %v; want %d, EOF", n, err, end)
	}
	if !bytes.Equal(got[:n], append(make([]byte, off), data...)) {
		t.Fatal("ReadAt: bytes differ from what was written")
	}
	if err := h.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A write that does not grow the file changes mtime at the next
	// Flush (one SetAttr).
	before, err := f.GetAttr(ctx, ino)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(ctx, []byte("in place"), off); err != nil {
		t.Fatal(err)
	}
	copy(data, "in place")
	if err := h.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if a, err := f.GetAttr(ctx, ino); err != nil || a.Mtime <= before.Mtime || a.Ctime <= before.Ctime || a.Size != before.Size {
		t.Fatalf("after an in-place write and Flush: %+v, %v; before %+v", a, err, before)
	}
	// Another FS sees the committed size.
	f2 := e.open(t, f.Name(), e.key)
	if a, err := f2.GetAttr(ctx, ino); err != nil || a.Size != uint64(end) {
		t.Fatalf("GetAttr on a second FS: size %d, %v; want %d", a.Size, err, end)
	}
	// Truncate into chunk 1: chunk 2 and 3 go, chunk 1 is cut.
	cut := int64(chunk64K + 10)
	a, err := h.SetSize(ctx, cut)
	if err != nil || a.Size != uint64(cut) {
		t.Fatalf("SetSize: %+v, %v", a, err)
	}
	for k := uint64(2); k <= 3; k++ {
		if chunkExists(t, f, ino, k) {
			t.Errorf("chunk %d survived the truncation to %d", k, cut)
		}
	}
	if !chunkExists(t, f, ino, 1) {
		t.Error("chunk 1 is gone after a truncation into it")
	}
	// Growing again shows zeros past the cut, not the old bytes.
	if _, err := h.SetSize(ctx, end); err != nil {
		t.Fatal(err)
	}
	n, err = h.ReadAt(ctx, got[:end], 0)
	if err != nil || n != int(end) {
		t.Fatalf("ReadAt after regrow: %d, %v", n, err)
	}
	want := append(make([]byte, off), data...)
	clear(want[cut:])
	if !bytes.Equal(got[:end], want) {
		t.Fatal("old bytes reappeared after truncate down and up")
	}
	if st, err := f.StatFS(ctx); err != nil || st.Reclaiming != 0 {
		t.Errorf("StatFS: %+v, %v; want no reclaim entries left", st, err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.ReadAt(ctx, got, 0); !errors.Is(err, syscall.EBADF) {
		t.Errorf("ReadAt after Release: %v, want EBADF", err)
	}
	if err := h.Release(ctx); !errors.Is(err, syscall.EBADF) {
		t.Errorf("second Release: %v, want EBADF", err)
	}
	// Read-only handles refuse writes.
	r, err := f.OpenIno(ctx, ino, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.WriteAt(ctx, []byte("x"), 0); !errors.Is(err, syscall.EBADF) {
		t.Errorf("WriteAt on a read-only handle: %v, want EBADF", err)
	}
	if err := r.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// Directories do not open as files.
	if _, err := f.OpenIno(ctx, namespace.RootIno, false); !errors.Is(err, syscall.EISDIR) || client.Errno(err) != syscall.EISDIR {
		t.Errorf("OpenIno(root): %v, want EISDIR", err)
	}
}
