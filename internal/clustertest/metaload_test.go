package clustertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/clustermap"
)

// Shape of the untar-like workload: each worker makes its own tree of
// directories, each holding files of a few hundred bytes to a few KiB.
const (
	metaWorkers     = 4
	metaDirsPerTree = 1000 // an upper bound: the test stops the workers
	metaFilesPerDir = 15
)

// untar is the acknowledged state of the metadata workload: every
// directory whose Mkdir returned nil and every file whose Close (which
// commits its size and data) returned nil, with its content.
type untar struct {
	mu    sync.Mutex
	dirs  []string
	files map[string][]byte
	ops   atomic.Int64 // acknowledged operations
	fails atomic.Int64 // operations that returned an error (not acknowledged)
	first atomic.Value // the first error, for the log
}

func fileContent(name string) []byte {
	rng := rand.New(rand.NewPCG(uint64(len(name)), uint64(name[len(name)-1])))
	n := 100 + rng.IntN(6000)
	return bytes.Repeat([]byte(name+"\n"), n/len(name)+1)[:n]
}

// run makes worker w's tree until stop is closed or the tree is complete.
func (u *untar) run(fsys *client.FS, w int, stop <-chan struct{}) {
	fail := func(err error) {
		u.fails.Add(1)
		u.first.CompareAndSwap(nil, err)
	}
	for d := 0; d < metaDirsPerTree; d++ {
		dir := fmt.Sprintf("w%d/d%03d", w, d)
		select {
		case <-stop:
			return
		default:
		}
		if err := fsys.MkdirAll(dir, 0o755); err != nil {
			fail(err)
			continue
		}
		u.mu.Lock()
		u.dirs = append(u.dirs, dir)
		u.mu.Unlock()
		u.ops.Add(1)
		for i := 0; i < metaFilesPerDir; i++ {
			name := fmt.Sprintf("%s/f%02d", dir, i)
			data := fileContent(name)
			f, err := fsys.Create(name)
			if err != nil {
				fail(err)
				continue
			}
			_, werr := f.Write(data)
			if cerr := f.Close(); werr != nil || cerr != nil {
				fail(errors.Join(werr, cerr))
				continue
			}
			u.mu.Lock()
			u.files[name] = data
			u.mu.Unlock()
			u.ops.Add(1)
		}
	}
}

// TestKillNodeDuringMetadataWorkload: an untar-like workload (thousands
// of directories and files through the native file client) runs while a
// node is killed with SIGKILL and later returns; every directory and
// every file whose creation was acknowledged is there afterwards, with
// its content, seen by a fresh client.
func TestKillNodeDuringMetadataWorkload(t *testing.T) {
	c := startCluster(t, 3, 3, 0)
	acc := c.lc.Access()
	key := client.Key{ID: acc.KeyID, Secret: acc.Secret}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	name := c.lc.State().Container
	fsys := openFS(t, ctx, acc, key, name)

	u := &untar{files: map[string][]byte{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < metaWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.run(fsys, w, stop)
		}()
	}
	waitOps := func(n int64, what string) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); u.ops.Load() < n; {
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("%s: only %d operations acknowledged (%d failed, first: %v)", what, u.ops.Load(), u.fails.Load(), u.first.Load())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitOps(600, "before the kill")

	// The victim is the container's metadata leader: its loss forces an
	// election in the metadata group while creates are in flight.
	m0 := c.waitMap("the map", func(*clustermap.Map) bool { return true })
	ct, _ := m0.ContainerByName(c.lc.State().Container)
	victim, id := 0, clustermap.NodeID(0)
	for i := 1; i <= 3 && victim == 0; i++ {
		st, err := c.status(i)
		if err != nil {
			continue
		}
		for _, mm := range st.Meta {
			if mm.Container == uint64(ct.ID) && mm.Leader != 0 {
				for j := 1; j <= 3; j++ {
					if uint64(c.nodeID(m0, j)) == mm.Leader {
						victim, id = j, c.nodeID(m0, j)
					}
				}
			}
		}
	}
	if victim == 0 {
		t.Fatal("no node reports a metadata leader of the container")
	}
	before := u.ops.Load()
	if err := c.lc.KillNode(victim); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed node %d (id %d, the metadata leader) after %d acknowledged operations", victim, id, before)
	c.waitMap("the killed node marked down", func(m *clustermap.Map) bool { return nodeState(m, id) == clustermap.Down })
	waitOps(before+600, "with the node down")
	if err := c.lc.StartNode(victim); err != nil {
		t.Fatal(err)
	}
	c.waitMap("the node back", func(m *clustermap.Map) bool { return nodeState(m, id) == clustermap.Up })
	waitOps(u.ops.Load()+400, "after the node's return")
	close(stop)
	wg.Wait()
	t.Logf("%d directories and %d files acknowledged, %d operations failed (first: %v)", len(u.dirs), len(u.files), u.fails.Load(), u.first.Load())

	// A fresh client sees every acknowledged directory and file.
	fs2 := openFS(t, ctx, acc, key, name)
	for _, d := range u.dirs {
		if fi, err := fs2.Stat(d); err != nil || !fi.IsDir() {
			t.Errorf("acknowledged directory %s: %v", d, err)
		}
	}
	lost := 0
	for name, want := range u.files {
		got, err := fs2.ReadFile(name)
		if err != nil || !bytes.Equal(got, want) {
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged file %s: %d bytes, %v; want %d bytes", name, len(got), err, len(want))
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged files lost or damaged", lost, len(u.files))
	}
	// Every directory of the container lists (a failed create may have
	// left an entry, so listings are not compared with the acknowledged
	// set).
	if err := fs.WalkDir(fs2, ".", func(_ string, _ fs.DirEntry, err error) error { return err }); err != nil {
		t.Errorf("walking the container: %v", err)
	}
}
