package mount

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/namespace"
	"github.com/weftfs/weft/internal/testcluster"
	"github.com/weftfs/weft/internal/testutil"
)

// roKey is a read-only key of the test cluster.
var roKey = client.Key{ID: "reader", Secret: []byte("testcluster-reader-0123456789abc")}

// clusterEnv is one in-process test cluster (3 nodes) and a client of it.
type clusterEnv struct {
	c   *testcluster.Cluster
	cl  *client.Client
	key client.Key
	n   int
}

func startClusterEnv(t *testing.T) *clusterEnv {
	t.Helper()
	canMount(t)
	testutil.CheckLeaks(t)
	// This process is both the nodes and a FUSE client of their mount:
	// their reactors need threads of their own (see PinReactors).
	c := testcluster.Start(t, testcluster.Options{Nodes: 3, PinReactors: true,
		ExtraKeys: []string{fmt.Sprintf("%s %x ro", roKey.ID, roKey.Secret)}})
	key := client.Key{ID: testcluster.ClusterKeyID, Secret: testcluster.ClusterSecret}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Write-behind, as weft mount runs.
	cl, err := client.DialCluster(ctx, testcluster.ClusterID, c.Addrs, key, client.WithWriteBehind(8<<20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return &clusterEnv{c: c, cl: cl, key: key}
}

// container makes a container with 3 replicas and chunks of chunkSize.
func (e *clusterEnv) container(t *testing.T, chunkSize uint32) string {
	t.Helper()
	e.n++
	name := fmt.Sprintf("vol%d", e.n)
	e.c.CreateContainer(t, name, clustermap.Policy{Replicas: 3, ChunkSize: chunkSize, PGCount: 8})
	return name
}

// open opens container name: a client.FS of its own, as a second client
// would have.
func (e *clusterEnv) open(t *testing.T, name string) *client.FS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fsys, err := e.cl.OpenContainer(ctx, name, e.key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fsys.Close(); err != nil {
			t.Errorf("FS.Close: %v", err)
		}
	})
	return fsys
}

// mount opens container name and mounts it.
func (e *clusterEnv) mount(t *testing.T, name string, o Options) *Mount {
	t.Helper()
	return mountT(t, &clientBackend{fs: e.open(t, name), c: e.cl}, o)
}

// TestCluster runs the mount's tests on one cluster (starting one costs
// seconds): the POSIX table, the permission table, random tree operations,
// two mounts of one container, the random exerciser, read-only mounts and
// keys, quotas and statfs. They share one container (making one costs a
// second or more), each in a folder of its own, but for the quota test.
func TestCluster(t *testing.T) {
	e := startClusterEnv(t)
	defer func(n int) { readDirPage = n }(readDirPage)
	readDirPage = 64
	// Chunks of 1 MiB for -short's 32 MiB exerciser files, 16 MiB for
	// the long run's 4 GiB ones: a truncation deletes every chunk of the
	// range it drops.
	chunk := uint32(16 << 20)
	if testing.Short() {
		chunk = 1 << 20
	}
	shared := e.container(t, chunk)
	m := e.mount(t, shared, Options{})
	folder := func(t *testing.T, name string) string {
		t.Helper()
		dir := filepath.Join(m.Dir(), strings.ReplaceAll(name, " ", "_"))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	t.Run("posix", func(t *testing.T) {
		comparePosix(t, folder(t, t.Name()[len("TestCluster/"):]))
	})
	t.Run("permissions", func(t *testing.T) {
		comparePermissions(t, folder(t, "permissions"))
	})
	t.Run("two mounts", func(t *testing.T) {
		a := folder(t, "two")
		b := e.mount(t, shared, Options{})
		twoMounts(t, a, filepath.Join(b.Dir(), "two"), time.Second)
	})
	t.Run("two mounts no cache", func(t *testing.T) {
		folder(t, "two-nocache")
		a, b := e.mount(t, shared, Options{Cache: CacheNone}), e.mount(t, shared, Options{Cache: CacheNone})
		twoMounts(t, filepath.Join(a.Dir(), "two-nocache"), filepath.Join(b.Dir(), "two-nocache"), 0)
	})
	t.Run("tree ops", func(t *testing.T) {
		ops := 1500
		if testing.Short() {
			ops = 200
		}
		treeOps(t, folder(t, "treeops"), treeSeed(), ops)
	})
	t.Run("exerciser", func(t *testing.T) {
		exercise(t, folder(t, "exercise"), exerciserConfig(t))
	})
	t.Run("read-only", func(t *testing.T) {
		dir := folder(t, "ro")
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("kept"), 0o644); err != nil {
			t.Fatal(err)
		}
		ro := e.mount(t, shared, Options{ReadOnly: true})
		readOnly(t, filepath.Join(ro.Dir(), "ro"))
	})
	t.Run("read-only key", func(t *testing.T) {
		dir := folder(t, "rokey")
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("kept"), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		fsys, err := e.cl.OpenContainer(ctx, shared, roKey)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fsys.Close() }) // after the unmount (cleanups run last first)
		// Mounted read-write: the refusals come from the cluster.
		ro := mountT(t, &clientBackend{fs: fsys, c: e.cl}, Options{})
		readOnly(t, filepath.Join(ro.Dir(), "rokey"))
	})
	t.Run("quota", func(t *testing.T) {
		name := e.container(t, 64<<10)
		fsys := e.open(t, name)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := fsys.Apply(ctx, namespace.SetQuota{Bytes: 1 << 20, Inodes: 4}); err != nil {
			t.Fatal(err)
		}
		m := mountT(t, &clientBackend{fs: fsys, c: e.cl}, Options{})
		quota(t, m.Dir())
	})
	t.Run("statfs", func(t *testing.T) {
		var before, after unix.Statfs_t
		if err := unix.Statfs(m.Dir(), &before); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(folder(t, "statfs"), "f"), make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := unix.Statfs(m.Dir(), &after); err != nil {
			t.Fatal(err)
		}
		used := func(st *unix.Statfs_t) uint64 { return (st.Blocks - st.Bfree) * uint64(st.Bsize) }
		if d := used(&after) - used(&before); d != 1<<20 || after.Files-after.Ffree != before.Files-before.Ffree+2 ||
			after.Blocks == 0 || after.Namelen != 255 {
			t.Errorf("statfs after writing 1 MiB in a new folder: %d more bytes used, %d more inodes, %d blocks, namelen %d; want 1 MiB and 2 inodes",
				d, (after.Files-after.Ffree)-(before.Files-before.Ffree), after.Blocks, after.Namelen)
		}
	})
}

// twoMounts checks what two clients of one container see of each other:
// close-to-open, and fsync then open. ttl is the mounts' attribute
// timeout.
func twoMounts(t *testing.T, a, b string, ttl time.Duration) {
	pa, pb := filepath.Join(a, "shared"), filepath.Join(b, "shared")
	for i := range 8 {
		data := bytes.Repeat([]byte{byte('a' + i)}, 1000*(i+1))
		// Writer alternates between the mounts; the other reads after
		// the close.
		w, r := pa, pb
		if i%2 == 1 {
			w, r = pb, pa
		}
		if err := os.WriteFile(w, data, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("round %d: the other mount read %d bytes (%.10q...), want %d of %q", i, len(got), got, len(data), data[0])
		}
	}
	// Write and fsync on A without closing; an open on B afterwards
	// reads it. Then B appends and fsyncs; A's next open reads both.
	fa, err := os.OpenFile(filepath.Join(a, "log"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	for i := range 5 {
		line := fmt.Appendf(nil, "line %d from A\n", i)
		if _, err := fa.Write(line); err != nil {
			t.Fatal(err)
		}
		// fdatasync commits the growth too (not an mtime alone).
		sync, how := fa.Sync, "fsync"
		if i%2 == 1 {
			sync, how = func() error { return unix.Fdatasync(int(fa.Fd())) }, "fdatasync"
		}
		if err := sync(); err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		got, err := os.ReadFile(filepath.Join(b, "log"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(got, line) || bytes.Count(got, []byte("\n")) != i+1 {
			t.Fatalf("after %s %d on A, B read %q", how, i, got)
		}
	}
	fb, err := os.OpenFile(filepath.Join(b, "log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fb.Write([]byte("from B\n")); err != nil {
		t.Fatal(err)
	}
	if err := fb.Sync(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(a, "log"))
	if err != nil {
		t.Fatal(err)
	}
	if err := fb.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(got, []byte("line 4 from A\nfrom B\n")) {
		t.Fatalf("A read %q after B appended", got)
	}
	// Names: made on A, seen on B at once (no negative entry cached).
	if err := os.Mkdir(filepath.Join(a, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b, "dir")); err != nil {
		t.Fatalf("B does not see the directory A made: %v", err)
	}
	interleaved(t, a, b)
	appendBoth(t, a, b, ttl)
}

// appendBoth has A append through a descriptor it keeps open while B
// appends and closes: once A's idea of the size is older than ttl, A's
// next append lands after B's, not over it.
func appendBoth(t *testing.T, a, b string, ttl time.Duration) {
	fa, err := os.OpenFile(filepath.Join(a, "applog"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	for i := range 2 {
		if _, err := fmt.Fprintf(fa, "A%d;", i); err != nil {
			t.Fatal(err)
		}
		if err := fa.Sync(); err != nil {
			t.Fatal(err)
		}
		fb, err := os.OpenFile(filepath.Join(b, "applog"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Fprintf(fb, "B%d;", i); err != nil {
			t.Fatal(err)
		}
		if err := fb.Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(ttl) // A's cached size expires (no sleep without caching)
	}
	if err := fa.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(b, "applog"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "A0;B0;A1;B1;"; string(got) != want {
		t.Fatalf("appends from two mounts: %q, want %q", got, want)
	}
}

// interleaved has A and B write alternate 4 KiB blocks of one file
// through descriptors both keep open, each fsyncing its block; after each
// step a fresh open on the other mount reads the whole file, which must
// hold every block written so far (and nothing else).
func interleaved(t *testing.T, a, b string) {
	const block, blocks = 4096, 12
	want := make([]byte, block*blocks)
	if err := os.WriteFile(filepath.Join(a, "blocks"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	var fds [2]*os.File
	for i, dir := range []string{a, b} {
		f, err := os.OpenFile(filepath.Join(dir, "blocks"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fds[i] = f
	}
	for k := range blocks {
		w := k % 2 // A writes even blocks, B odd ones
		data := bytes.Repeat([]byte{byte('0' + k)}, block)
		if _, err := fds[w].WriteAt(data, int64(k*block)); err != nil {
			t.Fatal(err)
		}
		if err := fds[w].Sync(); err != nil {
			t.Fatal(err)
		}
		copy(want[k*block:], data)
		other := []string{a, b}[1-w]
		got, err := os.ReadFile(filepath.Join(other, "blocks"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("block %d written on mount %d: the other mount read %d bytes, first difference at %d", k, w, len(got), firstDiff(got, want))
		}
	}
	// The descriptors open all along read everything too once reopened
	// by anyone here (the open revalidates the mount's cached pages).
	for i, f := range fds {
		got := make([]byte, len(want))
		if _, err := f.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("mount %d's long-open descriptor read a difference at %d", i, firstDiff(got, want))
		}
	}
}

// readOnly checks that a read-only mount reads and refuses every change
// with EROFS, and that what was stored stays.
func readOnly(t *testing.T, dir string) {
	p := filepath.Join(dir, "f")
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "kept" {
		t.Fatalf("read-only mount read %q, %v", got, err)
	}
	for what, err := range map[string]error{
		"write":  os.WriteFile(p, []byte("x"), 0o644),
		"create": os.WriteFile(filepath.Join(dir, "g"), nil, 0o644),
		"mkdir":  os.Mkdir(filepath.Join(dir, "d"), 0o755),
		"remove": os.Remove(p),
		"chmod":  os.Chmod(p, 0o600),
		"rename": os.Rename(p, filepath.Join(dir, "h")),
	} {
		if errName(err) != "EROFS" {
			t.Errorf("%s on a read-only mount: %v, want EROFS", what, err)
		}
	}
	got, err = os.ReadFile(p)
	if err != nil || string(got) != "kept" {
		t.Fatalf("after the refused changes: %q, %v", got, err)
	}
}

// quota checks a container with quotas of 1 MiB and 4 inodes (the root
// is one): statfs reports them, a write past the bytes fails with EDQUOT
// and leaves the file as it was, a create past the inodes with EDQUOT.
func quota(t *testing.T, dir string) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*uint64(st.Bsize) != 1<<20 || st.Files != 4 {
		t.Errorf("statfs: %d blocks of %d, %d files; want 1 MiB and 4 inodes", st.Blocks, st.Bsize, st.Files)
	}
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, make([]byte, 512<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, werr := f.Write(make([]byte, 1<<20))
	cerr := f.Close()
	if errName(werr) != "EDQUOT" && errName(cerr) != "EDQUOT" {
		t.Errorf("write past the byte quota: write %v, close %v; want EDQUOT", werr, cerr)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() != 512<<10 {
		t.Errorf("after the refused write: %v, %v; want the file's 512 KiB", fi, err)
	}
	for i := range 2 {
		if err := os.Mkdir(filepath.Join(dir, fmt.Sprint("d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "over"), 0o755); errName(err) != "EDQUOT" {
		t.Errorf("mkdir past the inode quota: %v, want EDQUOT", err)
	}
}
