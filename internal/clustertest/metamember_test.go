package clustertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/manager"
	"github.com/weftfs/weft/fsproto/meta"
	"github.com/weftfs/weft/internal/localcluster"
	"github.com/weftfs/weft/net"
	"github.com/weftfs/weft/node"
)

// TestMetaMemberOut: four nodes (managers on the first three), a
// container whose metadata group has a member on node 4, files written.
// Node 4 is killed and taken Out; the map names another node in its
// place, and the group's leader moves raft's membership there (learner,
// voter, then the dead voter removed) until three live nodes vote. Then
// another original member is killed: the group keeps a majority, so the
// container stays readable and writable, and every file written before
// reads back byte for byte.
func TestMetaMemberOut(t *testing.T) {
	c := startClusterManagers(t, 4, 3, 3, 4)
	acc := c.lc.Access()
	key := client.Key{ID: acc.KeyID, Secret: acc.Secret}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// A container with a metadata member on node 4, which runs no
	// manager, so that losing it and one more node leaves the managers
	// two of three. Its members are fixed at creation (the map's record);
	// each new container's first PG ranks the nodes anew.
	m := c.waitMap("the map", func(*clustermap.Map) bool { return true })
	id4 := c.nodeID(m, 4)
	var ct *clustermap.Container
	for i := 0; ct == nil; i++ {
		if i == 20 {
			t.Fatal("20 containers, none with a metadata member on node 4")
		}
		name := fmt.Sprintf("meta%d", i)
		got, err := c.mc.Apply(ctx, clustermap.CreateContainer{Name: name, Policy: clustermap.Policy{Replicas: 3, PGCount: 4}})
		if err != nil {
			t.Fatal(err)
		}
		if x, _ := got.ContainerByName(name); slices.Contains(x.MetaMembers, id4) {
			ct = x
		}
	}
	orig := slices.Clone(ct.MetaMembers)
	t.Logf("container %s (%d): metadata members %v; node 4 is %d", ct.Name, ct.ID, orig, id4)
	c.waitMap("the containers active", allActive)

	cl, err := client.DialCluster(ctx, acc.ClusterID, acc.Managers, key, client.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fsys, err := cl.OpenContainer(ctx, ct.Name, key)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	files := map[string][]byte{}
	rng := rand.New(rand.NewPCG(1, 2))
	write := func(name string) {
		t.Helper()
		data := make([]byte, 1+rng.IntN(200<<10))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if err := fsys.MkdirAll("d", 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := fsys.Create(name)
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		_, werr := f.Write(data)
		if cerr := f.Close(); werr != nil || cerr != nil {
			t.Fatalf("write %s: %v, close: %v", name, werr, cerr)
		}
		files[name] = data
	}
	for i := range 20 {
		write(fmt.Sprintf("d/before%02d", i))
	}

	// Node 4 dies and the operator takes it Out (`weft node out 4` does
	// this same Apply).
	if err := c.lc.KillNode(4); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	m, err = c.mc.Apply(ctx, clustermap.SetNodeState{ID: id4, State: clustermap.Out})
	if err != nil {
		t.Fatal(err)
	}
	now, _ := m.Container(ct.ID)
	want := slices.Clone(now.MetaMembers)
	if slices.Contains(want, id4) || len(want) != 3 {
		t.Fatalf("members %v after node %d went out, want three others", want, id4)
	}
	slices.Sort(want)
	t.Logf("node 4 out at map epoch %d; metadata members now %v", m.Epoch, now.MetaMembers)

	// The group's leader reports exactly the record as voters, no
	// learner left.
	voters := func() (leader uint64, ok bool) {
		_, mm, ok := c.metaLeader(3, ct.ID)
		if !ok {
			return 0, false
		}
		got := make([]clustermap.NodeID, len(mm.Voters))
		for j, v := range mm.Voters {
			got[j] = clustermap.NodeID(v)
		}
		return mm.Leader, slices.Equal(got, want) && len(mm.Learners) == 0
	}
	for {
		if _, ok := voters(); ok {
			break
		}
		if time.Since(start) > time.Minute {
			c.logReport("the group never reached its recorded members")
			t.Fatalf("metadata group's voters are not %v after %v", want, time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("metadata group repaired to %v in %v", want, time.Since(start).Round(time.Millisecond))
	c.waitMap("the PGs active again", allActive)

	// Another original member dies.
	victim := 0
	for i := 1; i <= 3 && victim == 0; i++ {
		if slices.Contains(orig, c.nodeID(m, i)) {
			victim = i
		}
	}
	if err := c.lc.KillNode(victim); err != nil {
		t.Fatal(err)
	}
	vid := c.nodeID(m, victim)
	c.waitMap("the second victim marked down", func(m *clustermap.Map) bool { return nodeState(m, vid) == clustermap.Down })
	t.Logf("killed node %d (id %d), an original member", victim, vid)

	// Still writable, and everything written before reads back.
	for i := range 5 {
		write(fmt.Sprintf("d/after%02d", i))
	}
	fs2 := openFS(t, ctx, acc, key, ct.Name)
	for name, data := range files {
		got, err := fs2.ReadFile(name)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %d bytes, %v; want the %d bytes written", name, len(got), err, len(data))
		}
	}
	ents, err := fs2.ReadDir("d")
	if err != nil || len(ents) != len(files) {
		t.Errorf("d lists %d entries, %v; want %d", len(ents), err, len(files))
	}
}

// openFS dials the cluster as a new client and opens container name; the
// test's end closes both.
func openFS(t *testing.T, ctx context.Context, acc localcluster.Access, key client.Key, name string) *client.FS {
	t.Helper()
	cl, err := client.DialCluster(ctx, acc.ClusterID, acc.Managers, key, client.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	fsys, err := cl.OpenContainer(ctx, name, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() })
	return fsys
}

// defaultFS is the default container of a test cluster opened through
// the native client with the access weft up made.
type defaultFS struct {
	acc  localcluster.Access
	key  client.Key
	name string
	m    *clustermap.Map // the map when it was opened
	ct   *clustermap.Container
	fsys *client.FS
}

func (c *tcluster) openDefault(t *testing.T, ctx context.Context) *defaultFS {
	t.Helper()
	d := &defaultFS{acc: c.lc.Access(), name: c.lc.State().Container}
	d.key = client.Key{ID: d.acc.KeyID, Secret: d.acc.Secret}
	d.m = c.waitMap("the map", func(*clustermap.Map) bool { return true })
	d.ct, _ = d.m.ContainerByName(d.name)
	d.fsys = openFS(t, ctx, d.acc, d.key, d.name)
	return d
}

// waitFormed waits until the map marks container c's metadata group
// formed (its leader does once the group committed past its bootstrap
// entries).
func (c *tcluster) waitFormed(id clustermap.ContainerID) {
	c.t.Helper()
	c.waitMap("the metadata group marked formed", func(m *clustermap.Map) bool {
		ct, ok := m.Container(id)
		return ok && ct.MetaFormed
	})
}

// asNode returns a manager client with the cluster key, which the nodes
// use: it may apply what only nodes apply (AddNode, to relabel one). Its
// pool closes when the test ends.
func (c *tcluster) asNode(t *testing.T) *manager.Client {
	t.Helper()
	keys, err := node.LoadKeysFile(c.lc.KeysFile())
	if err != nil {
		t.Fatal(err)
	}
	secret, _, _ := keys.Lookup(localcluster.ClusterKey)
	acc := c.lc.Access()
	pool, err := net.NewPool(net.PoolConfig{Client: net.ClientConfig{ClusterID: acc.ClusterID, KeyID: localcluster.ClusterKey, Secret: secret, Logger: quiet}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	return manager.NewClient(acc.Managers, pool)
}

// checkFilesThenWrite checks that every file of files reads back byte for
// byte through fsys, and that fsys takes a new file.
func checkFilesThenWrite(t *testing.T, fsys *client.FS, files map[string][]byte) {
	t.Helper()
	for n, data := range files {
		got, err := fsys.ReadFile(n)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %d bytes, %v; want the %d bytes written", n, len(got), err, len(data))
		}
	}
	if err := fsys.WriteFile("after", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// reopen opens the container again, with a new client.
func (d *defaultFS) reopen(t *testing.T, ctx context.Context) *client.FS {
	t.Helper()
	return openFS(t, ctx, d.acc, d.key, d.name)
}

// TestMetaMemberLostLog: three nodes, files written; the leader of the
// default container's metadata group loses its raft logs (killed, its
// meta directory deleted, started again: a replaced disk). Its member asks with an empty log, the group's leader
// takes it out and adds it back, and it joins from a snapshot. Then
// another node is killed: the group's majority now needs the repaired
// member, and the container stays readable and writable, every file
// reading back byte for byte.
func TestMetaMemberLostLog(t *testing.T) {
	c := startCluster(t, 3, 3, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := c.openDefault(t, ctx)
	m, ct, fsys := d.m, d.ct, d.fsys
	files := map[string][]byte{}
	rng := rand.New(rand.NewPCG(3, 4))
	write := func(fsys *client.FS, name string) {
		t.Helper()
		data := make([]byte, 1+rng.IntN(64<<10))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if err := fsys.WriteFile(name, data, 0o644); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
		files[name] = data
	}
	for i := range 10 {
		write(fsys, fmt.Sprintf("before%02d", i))
	}

	// The lost node is the group's leader: the next leader, elected while
	// it is down, never heard from it, and still takes it for a voter
	// that lost its log.
	lost, _, ok := c.metaLeader(3, ct.ID)
	for ; !ok; lost, _, ok = c.metaLeader(3, ct.ID) {
		if ctx.Err() != nil {
			t.Fatal("the metadata group has no leader")
		}
		time.Sleep(50 * time.Millisecond)
	}
	lostID := c.nodeID(m, lost)
	if err := c.lc.KillNode(lost); err != nil {
		t.Fatal(err)
	}
	metaDir := filepath.Join(filepath.Dir(c.lc.LogFile(lost)), "device.meta")
	if _, err := os.Stat(metaDir); err != nil {
		t.Fatalf("node %d's metadata logs: %v", lost, err)
	}
	if err := os.RemoveAll(metaDir); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		write(fsys, fmt.Sprintf("while%02d", i))
	}
	if err := c.lc.StartNode(lost); err != nil {
		t.Fatal(err)
	}
	// Repaired when the node runs a member again (with its log gone it
	// can only join, once the leader took it out and added it back) and
	// the group's leader counts it among three voters and no learner (the
	// node's own status could show it a voter too early, from the
	// snapshot it joined with).
	start := time.Now()
	repaired := func() bool {
		st, err := c.status(lost)
		if err != nil || !slices.ContainsFunc(st.Meta, func(mm node.MetaMember) bool { return mm.Container == uint64(ct.ID) }) {
			return false
		}
		_, mm, ok := c.metaLeader(3, ct.ID)
		return ok && len(mm.Voters) == 3 && slices.Contains(mm.Voters, uint64(lostID)) && len(mm.Learners) == 0
	}
	for !repaired() {
		if time.Since(start) > time.Minute {
			c.logReport("the member never came back")
			t.Fatalf("node %d's metadata member is not a voter again after %v", lost, time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("node %d's metadata member repaired in %v", lost, time.Since(start).Round(time.Millisecond))
	// The way back was the repair's: the leader noted the lost log.
	noted := false
	for i := 1; i <= 3; i++ {
		b, _ := os.ReadFile(c.lc.LogFile(i))
		noted = noted || bytes.Contains(b, []byte(fmt.Sprintf("lost its raft log; the repair takes it out and adds it back meta_node=%d container=%d node=%d", c.nodeID(m, i), ct.ID, lostID)))
	}
	if !noted {
		t.Errorf("no node's log says that node %d lost its raft log", lostID)
	}

	// Another member dies: the repaired one is needed for a majority.
	victim := lost%3 + 1
	vid := c.nodeID(m, victim)
	if err := c.lc.KillNode(victim); err != nil {
		t.Fatal(err)
	}
	c.waitMap("the victim marked down", func(m *clustermap.Map) bool { return nodeState(m, vid) == clustermap.Down })
	fs2 := d.reopen(t, ctx)
	for i := range 3 {
		write(fs2, fmt.Sprintf("after%02d", i))
	}
	for name, data := range files {
		got, err := fs2.ReadFile(name)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %d bytes, %v; want the %d bytes written", name, len(got), err, len(data))
		}
	}
}

// TestMetaMembersFollowPolicy: four nodes, a container whose metadata
// group leaves one node out. Three nodes, that one among them, are
// labelled site=onprem and the container's policy selects them: the map
// moves the member on the fourth node to the spare one, and the group's
// leader moves raft's membership the same way (learner, voter, then the
// member still running on the fourth node removed). Every file written
// before reads back, and the container stays writable.
func TestMetaMembersFollowPolicy(t *testing.T) {
	c := startClusterManagers(t, 4, 3, 3, 0)
	acc := c.lc.Access()
	key := client.Key{ID: acc.KeyID, Secret: acc.Secret}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	policy := clustermap.Policy{Replicas: 3, PGCount: 4}
	m, err := c.mc.Apply(ctx, clustermap.CreateContainer{Name: "moved", Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := m.ContainerByName("moved")
	orig := slices.Clone(ct.MetaMembers)
	var spare, leaving clustermap.NodeID
	for i := 1; i <= 4; i++ {
		if id := c.nodeID(m, i); !slices.Contains(orig, id) {
			spare = id
		}
	}
	leaving = orig[len(orig)-1]
	t.Logf("metadata members %v; node %d holds none, node %d will leave", orig, spare, leaving)
	c.waitMap("the container active", allActive)

	fsys := openFS(t, ctx, acc, key, "moved")
	files := map[string][]byte{}
	write := func(name string) {
		t.Helper()
		data := bytes.Repeat([]byte(name), 1000)
		if err := fsys.WriteFile(name, data, 0o644); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
		files[name] = data
	}
	for i := range 10 {
		write(fmt.Sprintf("before%02d", i))
	}
	// The group's leader marks it formed in the map (no member with an
	// empty log bootstraps it from then on).
	c.waitFormed(ct.ID)

	leavingIdx := 0
	for i := 1; i <= 4; i++ {
		if c.nodeID(m, i) == leaving {
			leavingIdx = i
		}
	}
	logDir := filepath.Join(filepath.Dir(c.lc.LogFile(leavingIdx)), "device.meta", fmt.Sprintf("container-%d", ct.ID))
	if _, err := os.Stat(logDir); err != nil {
		t.Fatalf("node %d's raft log of the container: %v", leavingIdx, err)
	}

	// Relabel every node but the leaving one (what a node restarted with
	// --labels does, with the cluster key), then select them.
	asNode := c.asNode(t)
	for _, n := range m.Nodes {
		if n.ID == leaving {
			continue
		}
		labels := maps.Clone(n.Labels)
		labels["site"] = "onprem"
		if _, err := asNode.Apply(ctx, clustermap.AddNode{ID: n.ID, Addr: n.Addr, Labels: labels, Capacity: n.Capacity}); err != nil {
			t.Fatalf("relabel node %d: %v", n.ID, err)
		}
	}
	policy.Selector = map[string]string{"site": "onprem"}
	start := time.Now()
	m, err = c.mc.Apply(ctx, clustermap.SetPolicy{Container: ct.ID, Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	now, _ := m.Container(ct.ID)
	want := slices.Clone(now.MetaMembers)
	if slices.Contains(want, leaving) || !slices.Contains(want, spare) || len(want) != 3 {
		t.Fatalf("members %v after the policy, want node %d in and node %d out", want, spare, leaving)
	}
	slices.Sort(want)
	for {
		_, mm, ok := c.metaLeader(4, ct.ID)
		got := make([]clustermap.NodeID, len(mm.Voters))
		for j, v := range mm.Voters {
			got[j] = clustermap.NodeID(v)
		}
		slices.Sort(got)
		if ok && slices.Equal(got, want) && len(mm.Learners) == 0 {
			break
		}
		if time.Since(start) > time.Minute {
			c.logReport("the group never reached its recorded members")
			t.Fatalf("metadata group's voters are %v (learners %v), not %v, after %v", got, mm.Learners, want, time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("metadata group moved to %v in %v", want, time.Since(start).Round(time.Millisecond))

	// The node that left drops its removed member's raft log, and after a
	// restart runs no member of the container.
	for {
		if _, err := os.Stat(logDir); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("node %d still holds %s", leavingIdx, logDir)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := c.lc.StopNode(leavingIdx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.lc.StartNode(leavingIdx); err != nil {
		t.Fatal(err)
	}
	c.waitMap("the node back", func(m *clustermap.Map) bool { return nodeState(m, leaving) == clustermap.Up })
	if _, err := os.Stat(logDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after a restart node %d holds %s again (%v)", leavingIdx, logDir, err)
	}

	for i := range 5 {
		write(fmt.Sprintf("after%02d", i))
	}
	fs2 := openFS(t, ctx, acc, key, "moved")
	for name, data := range files {
		got, err := fs2.ReadFile(name)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %d bytes, %v; want the %d bytes written", name, len(got), err, len(data))
		}
	}
}

// TestMetaRecoverFromOneLog: three nodes, files written, the metadata
// group marked formed. Every node is killed and two of them lose their
// metadata raft logs (replaced disks). Started without the third, they
// refuse to start the group afresh (the map's formed mark); with the
// third back the group still has no majority. The third node, stopped,
// has its log forced to be the group's sole voter (weft node
// recover-meta); started again it leads, adds the other two back as new
// members, and every file reads back.
func TestMetaRecoverFromOneLog(t *testing.T) {
	c := startCluster(t, 3, 3, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := c.openDefault(t, ctx)
	m, ct, fsys := d.m, d.ct, d.fsys
	files := map[string][]byte{}
	for i := range 10 {
		n := fmt.Sprintf("f%02d", i)
		files[n] = bytes.Repeat([]byte(n), 100*(i+1))
		if err := fsys.WriteFile(n, files[n], 0o644); err != nil {
			t.Fatalf("write %s: %v", n, err)
		}
	}
	c.waitFormed(ct.ID)
	// The survivor must hold every committed entry: wait until all
	// three members have applied the leader's commit index.
	const survivor = 3
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		_, lm, ok := c.metaLeader(3, ct.ID)
		st, err := c.status(survivor)
		if ok && err == nil && slices.ContainsFunc(st.Meta, func(mm node.MetaMember) bool {
			return mm.Container == uint64(ct.ID) && mm.Applied >= lm.Commit
		}) {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatal("node 3's member never caught up with the leader")
		}
	}
	for i := 1; i <= 3; i++ {
		if err := c.lc.KillNode(i); err != nil {
			t.Fatal(err)
		}
	}
	metaDir := func(i int) string { return filepath.Join(filepath.Dir(c.lc.LogFile(i)), "device.meta") }
	for _, i := range []int{1, 2} {
		if err := os.RemoveAll(metaDir(i)); err != nil {
			t.Fatal(err)
		}
		if err := c.lc.StartNode(i); err != nil {
			t.Fatal(err)
		}
	}
	refusal := fmt.Sprintf("meta: container %d: this node %d's raft log of the group is empty", ct.ID, c.nodeID(m, 1))
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		b, _ := os.ReadFile(c.lc.LogFile(1))
		if bytes.Contains(b, []byte(refusal)) && bytes.Contains(b, []byte("marks the group formed")) {
			break
		}
		if time.Since(start) > time.Minute {
			c.logReport("no refusal")
			t.Fatalf("node 1's log never refused to start the formed group afresh")
		}
	}
	if _, _, ok := c.metaLeader(2, ct.ID); ok {
		t.Fatal("nodes 1 and 2 run the group without node 3")
	}
	if err := c.lc.StartNode(survivor); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if _, _, ok := c.metaLeader(3, ct.ID); ok {
		t.Fatal("the group has a leader with two of its three logs lost")
	}

	if err := c.lc.StopNode(survivor, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	res, err := meta.ForceSoleMember(nil, metaDir(survivor), ct.ID, c.nodeID(m, survivor), false, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("node %d's log forced: %+v", survivor, res)
	if err := c.lc.StartNode(survivor); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		i, mm, ok := c.metaLeader(3, ct.ID)
		if ok && i == survivor && len(mm.Voters) == 3 && len(mm.Learners) == 0 {
			t.Logf("the group has three voters again after %v", time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Since(start) > 2*time.Minute {
			c.logReport("the group never recovered")
			t.Fatalf("metadata group after the recovery: leader on node %d (%v), %+v", i, ok, mm)
		}
	}
	fs2 := d.reopen(t, ctx)
	checkFilesThenWrite(t, fs2, files)
}
