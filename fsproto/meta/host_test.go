package meta

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	stdnet "net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/namespace"
	"github.com/weftfs/weft/fsproto/raftlog"
	"github.com/weftfs/weft/internal/testutil"
	"github.com/weftfs/weft/internal/vfs"
	"github.com/weftfs/weft/net"
)

// allNames lists a directory whole, page by page, through read.
func allNames(read func(cookie string) ([]namespace.DirEntry, string, error)) ([]string, error) {
	var all []string
	cookie := ""
	for {
		ents, next, err := read(cookie)
		if err != nil {
			return all, err
		}
		all = append(all, names(ents)...)
		if next == "" {
			return all, nil
		}
		cookie = next
	}
}

func names(ents []namespace.DirEntry) []string {
	var ns []string
	for _, e := range ents {
		ns = append(ns, e.Name)
	}
	return ns
}

// TestClientOps runs the namespace's operations through the client on a
// three-node group: creates, mkdir, rename, paged readdir, symlinks,
// xattrs, errors as errnos.
func TestClientOps(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	for _, h := range c.hosts {
		if got := h.host.Containers(); !slices.Equal(got, []clustermap.ContainerID{c.ct}) {
			t.Fatalf("node %d runs members of %v, want [%d]", h.id, got, c.ct)
		}
	}
	cl := c.client()

	res, err := cl.Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: "a", Mode: 0o755})
	if err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	dir := res.Attr
	if !dir.IsDir() || dir.Ctime == 0 {
		t.Fatalf("mkdir made %+v, want a directory with the leader's time", dir)
	}
	for _, n := range []string{"f1", "f2", "f3", "f4", "f5"} {
		res, err := cl.Apply(ctx, namespace.Create{Parent: dir.Ino, Name: n, Mode: 0o644, Excl: true})
		if err != nil || !res.Created {
			t.Fatalf("create %s: %+v, %v", n, res, err)
		}
	}
	_, err = cl.Apply(ctx, namespace.Create{Parent: dir.Ino, Name: "f1", Mode: 0o644, Excl: true})
	if !errors.Is(err, syscall.EEXIST) || !errors.Is(err, fs.ErrExist) {
		t.Fatalf("exclusive create of an existing name: %v, want EEXIST", err)
	}
	if _, err := cl.Apply(ctx, namespace.Rename{SrcParent: dir.Ino, SrcName: "f1", DstParent: namespace.RootIno, DstName: "moved"}); err != nil {
		t.Fatalf("rename: %v", err)
	}
	var all []string
	cookie := ""
	for pages := 0; ; pages++ {
		ents, next, err := cl.ReadDir(ctx, dir.Ino, cookie, 2)
		if err != nil {
			t.Fatalf("readdir: %v", err)
		}
		all = append(all, names(ents)...)
		if next == "" {
			break
		}
		if pages > 10 {
			t.Fatalf("readdir does not end: %v", all)
		}
		cookie = next
	}
	if want := []string{"f2", "f3", "f4", "f5"}; !slices.Equal(all, want) {
		t.Fatalf("readdir pages: %v, want %v", all, want)
	}
	ents, next, err := cl.ReadDir(ctx, namespace.RootIno, "", 100)
	if err != nil || next != "" || !slices.Equal(names(ents), []string{"a", "moved"}) {
		t.Fatalf("readdir /: %v, %q, %v", names(ents), next, err)
	}
	moved, err := cl.Lookup(ctx, namespace.RootIno, "moved")
	if err != nil || moved.Type != namespace.TypeFile {
		t.Fatalf("lookup moved: %+v, %v", moved, err)
	}
	if _, err := cl.Lookup(ctx, dir.Ino, "f1"); !errors.Is(err, syscall.ENOENT) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("lookup of the renamed source: %v, want ENOENT", err)
	}
	if a, err := cl.GetAttr(ctx, dir.Ino); err != nil || a.Nlink != 2 {
		t.Fatalf("getattr of the directory: %+v, %v", a, err)
	}

	res, err = cl.Apply(ctx, namespace.Symlink{Parent: namespace.RootIno, Name: "ln", Target: "a/f2"})
	if err != nil {
		t.Fatalf("symlink: %v", err)
	}
	if target, err := cl.Readlink(ctx, res.Attr.Ino); err != nil || target != "a/f2" {
		t.Fatalf("readlink: %q, %v", target, err)
	}
	if _, err := cl.Apply(ctx, namespace.SetXattr{Ino: moved.Ino, Name: "user.k", Value: []byte("v")}); err != nil {
		t.Fatalf("setxattr: %v", err)
	}
	if v, err := cl.GetXattr(ctx, moved.Ino, "user.k"); err != nil || string(v) != "v" {
		t.Fatalf("getxattr: %q, %v", v, err)
	}
	if _, err := cl.GetXattr(ctx, moved.Ino, "user.none"); !errors.Is(err, syscall.ENODATA) {
		t.Fatalf("getxattr of a missing name: %v, want ENODATA", err)
	}
	if ns, err := cl.ListXattr(ctx, moved.Ino); err != nil || !slices.Equal(ns, []string{"user.k"}) {
		t.Fatalf("listxattr: %v, %v", ns, err)
	}
	st, err := cl.StatFS(ctx)
	if err != nil || st.Inodes != 8 { // root, a, 5 files, ln
		t.Fatalf("statfs: %+v, %v; want 8 inodes", st, err)
	}
	if err := c.hosts[c.leader(ctx)].host.Namespace(c.ct).Check(); err != nil {
		t.Fatal(err)
	}
}

// TestLeaderStopped stops the leader's node: the client carries on with
// the new leader, and sees what was done before.
func TestLeaderStopped(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	cl := c.client()
	if _, err := cl.Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: "before", Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	old := c.leader(ctx)
	c.kill(old)
	if _, err := cl.Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: "after", Mode: 0o755}); err != nil {
		t.Fatalf("mkdir after the leader stopped: %v", err)
	}
	if lead := c.leader(ctx); lead == old {
		t.Fatalf("leader is still the stopped node %d", old+1)
	}
	ents, _, err := cl.ReadDir(ctx, namespace.RootIno, "", 10)
	if err != nil || !slices.Equal(names(ents), []string{"after", "before"}) {
		t.Fatalf("readdir: %v, %v", names(ents), err)
	}
	// A fresh client finds the new leader too.
	if _, err := c.client().Lookup(ctx, namespace.RootIno, "after"); err != nil {
		t.Fatal(err)
	}
}

// TestRetriedCreate sends an exclusive Create twice with one request id,
// as a client does after an ambiguous failure: the retry answers the
// first result (created, same inode), not EEXIST; another id gets
// EEXIST. It also retries through a different member after a leader
// change.
func TestRetriedCreate(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	cl := c.client()
	cmd := namespace.Create{Parent: namespace.RootIno, Name: "f", Mode: 0o644, Excl: true}
	id := RequestID{Client: cl.id, Seq: 1000}
	first, err := cl.apply(ctx, id, cmd)
	if err != nil || !first.Created {
		t.Fatalf("first create: %+v, %v", first, err)
	}
	again, err := cl.apply(ctx, id, cmd)
	if err != nil || !again.Created || again.Attr != first.Attr {
		t.Fatalf("retried create: %+v, %v; want the first result %+v", again, err, first)
	}
	if _, err := cl.Apply(ctx, cmd); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("create with a new id: %v, want EEXIST", err)
	}
	c.kill(c.leader(ctx))
	again, err = cl.apply(ctx, id, cmd)
	if err != nil || again.Attr != first.Attr {
		t.Fatalf("create retried on the new leader: %+v, %v; want %+v", again, err, first)
	}
	if st, err := cl.StatFS(ctx); err != nil || st.Inodes != 2 {
		t.Fatalf("statfs: %+v, %v; want 2 inodes", st, err)
	}
}

// TestFollowerNotLeader asks a follower directly: it answers not-leader
// with the leader as the hint; a node that runs no member answers
// CodeNoMember.
func TestFollowerNotLeader(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	lead := c.leader(ctx)
	f := (lead + 1) % 3
	conn, err := c.pool.Get(ctx, c.hosts[f].addr)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := conn.Call(ctx, KindRead, readRequest{Op: ReadStatFS, Container: c.ct}.append(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := decodeReplyHeader(resp.Header, 0)
	resp.Release()
	if err != nil || h.Status != statusNotLeader || h.Leader != c.hosts[lead].id {
		t.Fatalf("follower's reply %+v, %v; want not-leader, hint %d", h, err, c.hosts[lead].id)
	}
	_, err = conn.Call(ctx, KindRead, readRequest{Op: ReadStatFS, Container: c.ct + 1}.append(nil), nil)
	var re *net.RemoteError
	if !errors.As(err, &re) || re.Code != CodeNoMember {
		t.Fatalf("read of an unknown container: %v, want CodeNoMember", err)
	}
	_, err = conn.Call(ctx, KindOp, []byte{1, 2, 3}, nil)
	if !errors.As(err, &re) || re.Code != CodeBadRequest {
		t.Fatalf("garbage op: %v, want CodeBadRequest", err)
	}
}

// TestMemberRestart stops a follower, makes changes without it, restarts
// it from its raft log and then stops the leader: the restarted member
// and the remaining one serve everything, so the restarted member caught
// up. With its log lost, the restarted host refuses to bootstrap a
// second history (raft would crash it), the other two carry on, and the
// leader's repair takes the node out and adds it back, after which it
// too serves everything with one of the others gone.
func TestMemberRestart(t *testing.T) {
	for _, tt := range []struct {
		name         string
		wipe, leader bool
		limit, dirs  int
	}{
		{"follower", false, false, 0, 12}, {"follower wiped", true, false, 0, 12}, {"leader wiped", true, true, 0, 12},
		// The snapshot the returning member needs is several times the
		// 16 KiB the hosts' calls carry: it goes in parts.
		{"follower wiped, snapshot in parts", true, false, 16 << 10, 400},
	} {
		t.Run(tt.name, func(t *testing.T) { testMemberRestart(t, tt.wipe, tt.leader, tt.limit, tt.dirs) })
	}
}

// testMemberRestart stops a follower (or with leader the leader, so that
// the next leader never heard from it), wiping its log with wipe.
func testMemberRestart(t *testing.T, wipe, leader bool, limit, dirs int) {
	testutil.CheckLeaks(t)
	c := newTestClusterLimit(t, 3, limit)
	ctx := testContext(t)
	cl := c.client()
	if _, err := cl.Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: "d0", Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	lead := c.leader(ctx)
	f := (lead + 1) % 3
	if leader {
		f = lead
	}
	c.kill(f)
	if wipe {
		if err := os.RemoveAll(c.hosts[f].dir); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"d0"}
	for i := 1; i <= dirs; i++ { // past SnapshotEvery: the leader compacts meanwhile
		n := fmt.Sprintf("d%d-with-a-name-long-enough-to-make-the-snapshot-grow", i)
		if _, err := cl.Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: n, Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
		want = append(want, n)
	}
	slices.Sort(want)
	if wipe {
		c.restartServer(f)
		err := c.hosts[f].host.SetMap(c.m)
		if err == nil || !strings.Contains(err.Error(), "log was lost") {
			t.Fatalf("SetMap with a lost log: %v, want a refusal", err)
		}
		if _, err := cl.Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: "more", Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
		want = append(want, "more")
		slices.Sort(want)
		// The refusal told the leader: its repair takes the node out of
		// the group and adds it back as a learner, the node then joins
		// (a snapshot and the log), and is promoted once caught up.
		all := []uint64{uint64(c.hosts[0].id), uint64(c.hosts[1].id), uint64(c.hosts[2].id)}
		slices.Sort(all)
		for deadline := time.Now().Add(waitTimeout); ; {
			if time.Now().After(deadline) {
				t.Fatalf("the group never took node %d back", c.hosts[f].id)
			}
			c.hosts[f].host.SetMap(c.m) // refused until the leader added it back
			for _, h := range c.hosts {
				h.host.Repair(ctx)
			}
			st := c.hosts[c.leader(ctx)].host.Status(ctx)
			if len(st) == 1 && len(st[0].Learners) == 0 && slices.Equal(st[0].Voters, all) && c.hosts[f].host.Namespace(c.ct) != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !wipe {
		c.start(f)
	}
	// Another member stops (the leader, unless that is the restarted one):
	// the restarted member is needed for a majority.
	if lead := c.leader(ctx); lead != f {
		c.kill(lead)
	} else {
		c.kill((f + 1) % 3)
	}
	got, err := allNames(func(cookie string) ([]namespace.DirEntry, string, error) {
		return cl.ReadDir(ctx, namespace.RootIno, cookie, 100)
	})
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("readdir after the restart and a leader loss: %d names (%v), want %d", len(got), err, len(want))
	}
	// The restarted member applies everything too (it may lag the
	// leader's answer by a moment).
	for {
		ns := c.hosts[f].host.Namespace(c.ct)
		got, err := allNames(func(cookie string) ([]namespace.DirEntry, string, error) {
			return ns.ReadDir(namespace.RootIno, cookie, 100)
		})
		if err == nil && slices.Equal(got, want) {
			if err := ns.Check(); err != nil {
				t.Fatal(err)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("restarted member lists %d names (%v), want %d", len(got), err, len(want))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestLostLogAloneRefused: a bootstrap member whose raft log was lost,
// starting while the other members are down, or up but with their members
// not started yet (a whole cluster restarting), must not bootstrap the
// group again (it would come back as a voter that forgot its votes, and
// could help elect two leaders in one term). Once the others run it is
// refused as a lost voter, which the leader's repair handles
// (testMemberRestart).
func TestLostLogAloneRefused(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	if _, err := c.client().Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: "d0", Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	for i := range c.hosts {
		c.kill(i)
	}
	if err := os.RemoveAll(c.hosts[0].dir); err != nil {
		t.Fatal(err)
	}
	c.restartServer(0)
	// refused asks node 1 to start its member until the refusal says
	// want: a peer slow to answer (a dial timing out on a loaded machine,
	// a member just started that does not know its configuration yet)
	// reads as one that is down, which refuses too, for another reason.
	refused := func(state, want string) {
		t.Helper()
		for deadline := time.Now().Add(waitTimeout); ; {
			err := c.hosts[0].host.SetMap(c.m)
			if err == nil {
				t.Fatalf("SetMap with a lost log, %s: bootstrapped the group again", state)
			}
			if strings.Contains(err.Error(), want) {
				t.Logf("%s: %v", state, err)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("SetMap with a lost log, %s: %v, want a refusal saying %q", state, err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := c.hosts[0].host.Containers(); len(got) != 0 {
			t.Fatalf("%s: node 1 runs members of %v", state, got)
		}
	}
	refused("the other members down", "answered that they run no member")
	c.restartServer(1)
	c.restartServer(2)
	refused("the other members' nodes up, their members not started", "holds the group's raft log")
	c.setMap(1)
	c.setMap(2)
	refused("the other members back", "log was lost")
	ents, _, err := c.client().ReadDir(ctx, namespace.RootIno, "", 10)
	if err != nil || !slices.Equal(names(ents), []string{"d0"}) {
		t.Fatalf("readdir: %v, %v; want [d0]", names(ents), err)
	}
}

// TestLostMajorityRefusedWhenFormed: two of the three bootstrap members
// lose their raft logs together while the third is down. Each then sees
// a majority of the bootstrap set run no member, which is what a new
// group looks like, and without the map's formed mark they bootstrap an
// empty namespace in the group's place (shown, as the hazard the mark
// exists for). With the mark, which the leader's Repair asks for once
// the group committed past its bootstrap entries, they refuse, also once
// the third member is back.
func TestLostMajorityRefusedWhenFormed(t *testing.T) {
	for _, marked := range []bool{false, true} {
		t.Run(fmt.Sprintf("marked=%v", marked), func(t *testing.T) { testLostMajority(t, marked) })
	}
}

func testLostMajority(t *testing.T, marked bool) {
	testutil.CheckLeaks(t)
	var mu sync.Mutex
	var calls []clustermap.ContainerID
	c := newTestCluster(t, 3, func(cfg *HostConfig) {
		cfg.MarkFormed = func(_ context.Context, ct clustermap.ContainerID) error {
			mu.Lock()
			calls = append(calls, ct)
			mu.Unlock()
			return nil
		}
	})
	ctx := testContext(t)
	if _, err := c.client().Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: "d0", Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	// Repair on a follower asks nothing; on the leader it asks once the
	// group committed past its bootstrap entries, which the mkdir did.
	lead := c.leader(ctx)
	c.hosts[(lead+1)%3].host.Repair(ctx)
	mu.Lock()
	n := len(calls)
	mu.Unlock()
	if n != 0 {
		t.Fatalf("a follower's Repair asked to mark the group formed")
	}
	c.hosts[lead].host.Repair(ctx)
	mu.Lock()
	got := slices.Clone(calls)
	mu.Unlock()
	if !slices.Equal(got, []clustermap.ContainerID{c.ct}) {
		t.Fatalf("leader's Repair asked to mark %v, want [%d]", got, c.ct)
	}
	if marked {
		m, err := c.m.Apply(clustermap.MarkMetaFormed{Container: c.ct})
		if err != nil {
			t.Fatal(err)
		}
		c.m = m
		for i := range c.hosts {
			c.setMap(i)
		}
		// The map shows the mark: no more asking.
		c.hosts[lead].host.Repair(ctx)
		mu.Lock()
		n = len(calls)
		mu.Unlock()
		if n != 1 {
			t.Fatalf("Repair asked %d times with the mark in the map", n)
		}
	}

	for i := range c.hosts {
		c.kill(i)
	}
	for _, i := range []int{0, 1} {
		if err := os.RemoveAll(c.hosts[i].dir); err != nil {
			t.Fatal(err)
		}
		c.restartServer(i)
	}
	// Node 1 asks node 2 (no member: an empty log) and node 3 (down): a
	// majority of the bootstrap set runs no member.
	err := c.hosts[0].host.SetMap(c.m)
	if !marked {
		if err != nil {
			t.Fatalf("without the mark: %v, want the group bootstrapped (the hazard)", err)
		}
		t.Logf("without the mark, node 1 bootstrapped the group over a lost majority")
		return
	}
	for deadline := time.Now().Add(waitTimeout); ; {
		if err == nil {
			t.Fatal("with the mark: node 1 bootstrapped the group again over a lost majority")
		}
		if strings.Contains(err.Error(), "marks the group formed") {
			t.Logf("node 1: %v", err)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with the mark: %v, want a refusal naming the formed mark", err)
		}
		time.Sleep(20 * time.Millisecond)
		err = c.hosts[0].host.SetMap(c.m)
	}
	if err := c.hosts[1].host.SetMap(c.m); err == nil {
		t.Fatal("node 2 bootstrapped the group again over a lost majority")
	}
	// Node 3 comes back with the group's log: the others are lost
	// voters to it, never a new group; node 3 alone has no majority.
	// The refusal says that no leader will come to add them back.
	c.start(2)
	for _, i := range []int{0, 1} {
		for deadline := time.Now().Add(waitTimeout); ; time.Sleep(20 * time.Millisecond) {
			err := c.hosts[i].host.SetMap(c.m)
			if err == nil {
				t.Fatalf("node %d started a member beside node 3's log", i+1)
			}
			if got := c.hosts[i].host.Containers(); len(got) != 0 {
				t.Fatalf("node %d runs members of %v", i+1, got)
			}
			if strings.Contains(err.Error(), "no member that answered knows a leader") && strings.Contains(err.Error(), "recover-meta") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: %v, want a lost log with no leader to repair it", i+1, err)
			}
		}
	}

	// The way out: node 3, stopped, forced to be the group's sole voter.
	c.kill(2)
	res, err := ForceSoleMember(nil, c.hosts[2].dir, c.ct, c.hosts[2].id, false, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("forced node 3's log: %+v", res)
	if _, err := ForceSoleMember(nil, c.hosts[0].dir, c.ct, c.hosts[0].id, false, testLogger()); err == nil {
		t.Fatal("forcing node 1's empty log succeeded")
	}
	c.start(2)
	// It leads alone; its repair adds nodes 1 and 2 back as new members.
	for deadline := time.Now().Add(waitTimeout); ; {
		for _, i := range []int{0, 1} {
			if len(c.hosts[i].host.Containers()) == 0 {
				c.hosts[i].host.SetMap(c.m) // refused until added as a learner
			}
		}
		c.hosts[2].host.Repair(ctx)
		st := c.hosts[2].host.Status(ctx)
		if len(st) == 1 && st[0].Leader == uint64(c.hosts[2].id) && len(st[0].Voters) == 3 && len(st[0].Learners) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group after the forced recovery: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ents, _, err := c.client().ReadDir(ctx, namespace.RootIno, "", 10)
	if err != nil || !slices.Equal(names(ents), []string{"d0"}) {
		t.Fatalf("readdir after the forced recovery: %v, %v; want [d0]", names(ents), err)
	}
	if _, err := c.client().Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: "d1", Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentCreatesAcrossLeaderLoss runs exclusive creates of
// distinct names from several goroutines while the leader stops: every
// create must succeed exactly once (a retry after an ambiguous failure
// must not answer EEXIST), and the directory must end up holding exactly
// those names.
func TestConcurrentCreatesAcrossLeaderLoss(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	const workers, perWorker = 4, 12
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	killAt := make(chan struct{})
	var once sync.Once
	for w := range workers {
		cl := c.client()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				if w == 0 && i == perWorker/3 {
					once.Do(func() { close(killAt) })
				}
				n := fmt.Sprintf("w%d-%02d", w, i)
				res, err := cl.Apply(ctx, namespace.Create{Parent: namespace.RootIno, Name: n, Mode: 0o644, Excl: true})
				if err != nil || !res.Created {
					errs <- fmt.Errorf("create %s: %+v, %v", n, res, err)
				}
			}
		}()
	}
	<-killAt
	c.kill(c.leader(ctx))
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var want []string
	for w := range workers {
		for i := range perWorker {
			want = append(want, fmt.Sprintf("w%d-%02d", w, i))
		}
	}
	ents, next, err := c.client().ReadDir(ctx, namespace.RootIno, "", 4096)
	if err != nil || next != "" || !slices.Equal(names(ents), want) {
		t.Fatalf("readdir: %v, %q, %v; want %v", names(ents), next, err, want)
	}
}

// TestFollow drives a one-node host with moving maps: a new container's
// group starts (a group of one, as the map has one node) and serves, a
// deleted container's member stops.
func TestFollow(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 1)
	ctx := testContext(t)
	h := c.hosts[0].host
	maps := newMovingMaps(c.m)
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Follow(fctx, maps)
	}()
	defer func() {
		cancel()
		<-done
	}()
	waitContainers := func(want ...clustermap.ContainerID) {
		t.Helper()
		for !slices.Equal(h.Containers(), want) {
			select {
			case <-ctx.Done():
				t.Fatalf("host runs members of %v, want %v", h.Containers(), want)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	m, err := c.m.Apply(clustermap.CreateContainer{Name: "second", Policy: clustermap.Policy{Replicas: 1}})
	if err != nil {
		t.Fatal(err)
	}
	second, _ := m.ContainerByName("second")
	maps.set(m)
	waitContainers(c.ct, second.ID)
	cl := NewClient(second.ID, maps, c.pool)
	if _, err := cl.Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: "x", Mode: 0o700}); err != nil {
		t.Fatal(err)
	}
	if m, err = m.Apply(clustermap.DeleteContainer{ID: c.ct}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(c.hosts[0].dir, logDirPrefix+strconv.FormatUint(uint64(c.ct), 10))
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the raft log of container %d: %v", c.ct, err)
	}
	maps.set(m)
	waitContainers(second.ID)
	// SetMap stops the member, then removes the deleted container's log.
	for {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the raft log %s of the deleted container is still there", dir)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if st := h.Status(ctx); len(st) != 1 || st[0].Container != second.ID || st[0].Leader != uint64(c.hosts[0].id) {
		t.Fatalf("status %+v", st)
	}
	if _, err := NewClient(c.ct, maps, c.pool).StatFS(ctx); !errors.Is(err, clustermap.ErrNotFound) {
		t.Fatalf("statfs of a deleted container: %v, want ErrNotFound", err)
	}
}

// TestReadOnlyKey: a read-only key reads but cannot change the namespace.
func TestReadOnlyKey(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	if _, err := c.client().Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: "d", Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	pool := testKeyPool(t, testReaderKey)
	defer pool.Close()
	ro := NewClient(c.ct, staticMaps{c.m}, pool)
	if _, err := ro.Lookup(ctx, namespace.RootIno, "d"); err != nil {
		t.Fatalf("lookup with a read-only key: %v", err)
	}
	if _, err := ro.Apply(ctx, namespace.Rmdir{Parent: namespace.RootIno, Name: "d"}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("rmdir with a read-only key: %v, want ErrReadOnly", err)
	}
	if _, err := ro.Lookup(ctx, namespace.RootIno, "d"); err != nil {
		t.Fatalf("the refused rmdir removed the directory: %v", err)
	}
}

// TestNewcomerRefused: a node joins and a member's node is taken Out, so
// the map's record names the newcomer in its place. With an empty log,
// it finds the group running without it and refuses to start (it waits
// for the leader to add it; no Repair runs here), rather than bootstrap a
// second configuration; the old members keep serving.
func TestNewcomerRefused(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 3)
	ctx := testContext(t)
	lead := c.leader(ctx)
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const id = clustermap.NodeID(4)
	m, err := c.m.Apply(clustermap.AddNode{ID: id, Addr: ln.Addr().String(), Capacity: 1 << 40,
		Labels: map[string]string{"zone": "z4"}})
	if err != nil {
		t.Fatal(err)
	}
	if ids, _ := Members(m, c.ct); slices.Contains(ids, id) {
		t.Fatalf("a node that joined moved the recorded members: %v", ids)
	}
	if m, err = m.Apply(clustermap.SetNodeState{ID: c.hosts[(lead+1)%3].id, State: clustermap.Out}); err != nil {
		t.Fatal(err)
	}
	if ids, _ := Members(m, c.ct); !slices.Contains(ids, id) {
		t.Fatalf("members %v after node %d went out, want node %d among them", ids, c.hosts[(lead+1)%3].id, id)
	}
	c.hosts = append(c.hosts, &testHost{id: id, addr: ln.Addr().String(), dir: filepath.Join(t.TempDir(), "new")})
	c.serveOn(3, ln)
	err = c.hosts[3].host.SetMap(m)
	if err == nil || !strings.Contains(err.Error(), "waits for the leader to add it") {
		t.Fatalf("newcomer's SetMap: %v, want a refusal", err)
	}
	if got := c.hosts[3].host.Containers(); len(got) != 0 {
		t.Fatalf("newcomer runs members of %v", got)
	}
	for i := range 3 {
		if err := c.hosts[i].host.SetMap(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.client().Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: "still", Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	// The old member that Members no longer names resumes its member
	// from its log after a restart, and serves with one other member.
	// Made the leader, it is reached through the other's hint: the
	// client's computed members do not name it.
	ids, _ := Members(m, c.ct)
	out := slices.IndexFunc(c.hosts[:3], func(h *testHost) bool { return !slices.Contains(ids, h.id) })
	c.m = m
	c.kill(out)
	c.start(out)
	if got := c.hosts[out].host.Containers(); !slices.Equal(got, []clustermap.ContainerID{c.ct}) {
		t.Fatalf("restarted old member runs members of %v, want [%d]", got, c.ct)
	}
	for tries := 0; ; tries++ {
		lead := c.leader(ctx)
		if lead == out {
			break
		}
		if tries == 30 {
			t.Fatalf("node %d never became the leader", out+1)
		}
		c.kill(lead) // the other two elect one of them
		c.start(lead)
	}
	c.kill((out + 1) % 3)
	ents, _, err := c.client().ReadDir(ctx, namespace.RootIno, "", 10)
	if err != nil || !slices.Equal(names(ents), []string{"still"}) {
		t.Fatalf("readdir: %v, %v", names(ents), err)
	}
}

// TestSnapshotCatchUpKeepsDedupe: a follower that was down while a
// request id applied, and catches up from the leader's snapshot (the log
// keeps no entries before it), still answers a retry of that id with the
// first result once it leads, rather than EEXIST.
func TestSnapshotCatchUpKeepsDedupe(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 3, func(cfg *HostConfig) { cfg.KeepEntries = -1 })
	ctx := testContext(t)
	cl := c.client()
	cmd := namespace.Create{Parent: namespace.RootIno, Name: "f", Mode: 0o644, Excl: true}
	id := RequestID{Client: cl.id, Seq: 1 << 40}
	f := (c.leader(ctx) + 1) % 3
	c.kill(f)
	first, err := cl.apply(ctx, id, cmd)
	if err != nil || !first.Created {
		t.Fatalf("create: %+v, %v", first, err)
	}
	for i := range 12 { // past SnapshotEvery: the leader compacts
		if _, err := cl.Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: fmt.Sprintf("d%d", i), Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	c.start(f)
	for tries := 0; ; tries++ {
		lead := c.leader(ctx)
		if lead == f {
			break
		}
		if tries == 30 {
			t.Fatalf("node %d never became the leader", f+1)
		}
		c.kill(lead)
		c.start(lead)
	}
	if st := c.hosts[f].host.Status(ctx); len(st) != 1 || st[0].SnapIndex == 0 {
		t.Fatalf("restarted member's status %+v: no snapshot", st)
	}
	again, err := cl.apply(ctx, id, cmd)
	if err != nil || again.Attr != first.Attr {
		t.Fatalf("retry on the member restored from a snapshot: %+v, %v; want %+v", again, err, first)
	}
}

// TestRemovedLogDirectory: a removed member's raft log is deleted behind a
// durable mark, and a directory a crash left half deleted (the mark there,
// some files gone) is deleted by the next start instead of opened; an
// unmarked log is left alone.
func TestRemovedLogDirectory(t *testing.T) {
	fsys := vfs.NewMem()
	h := &Host{cfg: HostConfig{FS: fsys, Dir: "meta"}, log: testLogger()}
	openLog := func(c clustermap.ContainerID) []string {
		t.Helper()
		store, err := raftlog.Open(raftlog.Options{FS: fsys, Dir: h.logDir(c), Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Close(); err != nil {
			t.Fatal(err)
		}
		names, err := fsys.ReadDir(h.logDir(c))
		if err != nil || len(names) == 0 {
			t.Fatalf("a raft log left %v in its directory (%v)", names, err)
		}
		return names
	}
	gone := func(c clustermap.ContainerID) bool {
		_, ok := h.logsOnDisk()[c]
		return !ok
	}

	openLog(1)
	if err := h.removeLog(h.logDir(1)); err != nil || !gone(1) {
		t.Fatalf("removeLog: %v, directory gone %v", err, gone(1))
	}

	// Cut short: the mark written and synced, one file deleted.
	files := openLog(2)
	dir := h.logDir(2)
	f, err := fsys.Create(filepath.Join(dir, removedMark), false)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := fsys.Remove(filepath.Join(dir, files[0])); err != nil {
		t.Fatal(err)
	}
	if mb, err := h.start(2, nil, nil, false, true); mb != nil || err != nil || !gone(2) {
		t.Fatalf("start over a half-deleted log: member %v, %v, directory gone %v", mb, err, gone(2))
	}

	// No mark: the log stays.
	openLog(3)
	if marked, err := h.finishRemoval(h.logDir(3)); marked || err != nil || gone(3) {
		t.Fatalf("finishRemoval of a log in use: %v, %v, directory gone %v", marked, err, gone(3))
	}
}
