package clustertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftfs/weft/node"
)

// TestManagerLostLogs: the manager (cluster map) members' raft logs are
// lost, as with replaced disks, on real `weft node` processes.
//
// First one member's: its node is killed, its manager directory deleted
// and the node started again. The member does not bootstrap afresh as the
// voter it was; the managers' leader takes it out and adds it back, and it
// joins: three voters again.
//
// Then two at once, the third node down: the two members wait (they
// neither bootstrap an empty map nor, with the third back, make a
// majority: they are lost voters). `weft node recover-manager` on the
// stopped third node makes its member the sole voter; started again, it
// leads, adds the other two back, and the cluster map it held (the
// container, its keys, the nodes) serves again: every file reads back.
//
// Last, all three lost: the managers start an empty map with a new FSID,
// which the nodes, having recorded the old one, refuse to join or serve;
// `weft node recover-manager --from-map` seeds the group again from the
// nodes' copies of the map, and every file reads back.
func TestManagerLostLogs(t *testing.T) {
	c := startCluster(t, 3, 3, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	d := c.openDefault(t, ctx)
	files := map[string][]byte{}
	for i := range 8 {
		n := fmt.Sprintf("f%02d", i)
		files[n] = bytes.Repeat([]byte(n), 200*(i+1))
		if err := d.fsys.WriteFile(n, files[n], 0o644); err != nil {
			t.Fatalf("write %s: %v", n, err)
		}
	}
	managerDir := func(i int) string { return filepath.Join(filepath.Dir(c.lc.LogFile(i)), "manager") }
	for i := 1; i <= 3; i++ {
		if _, err := os.Stat(managerDir(i)); err != nil {
			t.Fatalf("node %d's manager log: %v", i, err)
		}
	}
	// managersVote waits until every node's manager member runs with
	// voters 1, 2, 3 and no learner, under one leader.
	managersVote := func(what string) {
		t.Helper()
		start := time.Now()
		for {
			ok, leader := true, uint64(0)
			var seen []string
			for i := 1; i <= 3; i++ {
				st, err := c.status(i)
				if err != nil {
					ok = false
					seen = append(seen, fmt.Sprintf("node %d: %v", i, err))
					continue
				}
				v := slices.Sorted(slices.Values(st.ManagerVoters))
				seen = append(seen, fmt.Sprintf("node %d: leader %d voters %v learners %v state %q", i, st.ManagerLeader, v, st.ManagerLearners, st.ManagerState))
				if st.ManagerLeader == 0 || (leader != 0 && st.ManagerLeader != leader) || !slices.Equal(v, []uint64{1, 2, 3}) || len(st.ManagerLearners) > 0 {
					ok = false
				}
				leader = st.ManagerLeader
			}
			if ok {
				t.Logf("%s: three manager voters after %v", what, time.Since(start).Round(time.Millisecond))
				return
			}
			if time.Since(start) > 90*time.Second {
				c.logReport(what)
				t.Fatalf("%s: managers never had three voters: %s", what, strings.Join(seen, "; "))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	managersVote("at the start")

	// One lost log.
	if err := c.lc.KillNode(3); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(managerDir(3)); err != nil {
		t.Fatal(err)
	}
	if err := c.lc.StartNode(3); err != nil {
		t.Fatal(err)
	}
	managersVote("one log lost")
	b, _ := os.ReadFile(c.lc.LogFile(3))
	if !bytes.Contains(b, []byte("its log was lost")) {
		t.Errorf("node 3's log does not say that its manager log was lost")
	}

	// Two lost, the third down.
	for i := 1; i <= 3; i++ {
		if err := c.lc.KillNode(i); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{1, 2} {
		if err := os.RemoveAll(managerDir(i)); err != nil {
			t.Fatal(err)
		}
		if err := c.lc.StartNode(i); err != nil {
			t.Fatal(err)
		}
	}
	waitState := func(i int, want string) {
		t.Helper()
		for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
			st, err := c.status(i)
			if err == nil && strings.Contains(st.ManagerState, want) {
				return
			}
			if time.Since(start) > time.Minute {
				t.Fatalf("node %d's manager state %q (%v), want %q", i, st.ManagerState, err, want)
			}
		}
	}
	for _, i := range []int{1, 2} {
		waitState(i, "do not answer")
	}
	if err := c.lc.StartNode(3); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 2} {
		waitState(i, "log was lost")
	}
	time.Sleep(2 * time.Second)
	if st, err := c.status(3); err != nil || st.ManagerLeader != 0 {
		t.Fatalf("node 3 (the only manager log) knows leader %v (%v): the group elected one with two of three logs lost", st, err)
	}

	// weft status cannot read the map, and says what the members wait for.
	clusterDir := filepath.Dir(filepath.Dir(c.lc.LogFile(1)))
	out, err := exec.Command(weftBin, "status", "--dir", clusterDir, "--timeout", "2s").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "reading the cluster map") || !strings.Contains(string(out), "member 1 at") ||
		!strings.Contains(string(out), "log was lost") || !strings.Contains(string(out), "member 3 at") {
		t.Errorf("weft status with two manager logs lost: %v\n%s", err, out)
	}
	t.Logf("weft status:\n%s", out)

	if err := c.lc.StopNode(3, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(weftBin, "node", "recover-manager", "--manager-id", "3", "--manager-dir", managerDir(3)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "nothing written") {
		t.Fatalf("recover-manager dry run: %v\n%s", err, out)
	}
	t.Logf("dry run:\n%s", out)
	out, err = exec.Command(weftBin, "node", "recover-manager", "--manager-id", "3", "--manager-dir", managerDir(3), "--yes").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "appended conf changes removing [1 2]") {
		t.Fatalf("recover-manager: %v\n%s", err, out)
	}
	if err := c.lc.StartNode(3); err != nil {
		t.Fatal(err)
	}
	managersVote("after recover-manager")
	c.waitServing()
	fs2 := d.reopen(t, ctx)
	checkFilesThenWrite(t, fs2, files)
	old, err := c.mc.Map(ctx, 0)
	if err != nil || old.FSID.IsZero() {
		t.Fatalf("the map after the recovery: %v, FSID zero", err)
	}

	// Every manager log lost: the managers start an empty map afresh
	// (nothing tells them otherwise), with a new FSID. The nodes, which
	// recorded the old one, refuse to join or serve it; node 3 lost its
	// whole metadata folder too, FSID file and all, and keeps to the
	// FSID its device's superblock records.
	for i := 1; i <= 3; i++ {
		if err := c.lc.KillNode(i); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(managerDir(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(filepath.Join(filepath.Dir(c.lc.LogFile(3)), "device.meta")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if err := c.lc.StartNode(i); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 3; i++ {
		for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
			b, _ := os.ReadFile(c.lc.LogFile(i))
			if bytes.Contains(b, []byte("refusing the cluster map")) && bytes.Contains(b, []byte(old.FSID.String())) {
				break
			}
			if time.Since(start) > time.Minute {
				t.Fatalf("node %d never refused the new map", i)
			}
		}
	}
	if b, _ := os.ReadFile(c.lc.LogFile(3)); !bytes.Contains(b, []byte("restored it from the device's superblock")) {
		t.Errorf("node 3 did not say it restored its FSID file from the device")
	}
	fresh, err := c.mc.Map(ctx, 0)
	if err != nil || fresh.FSID == old.FSID || len(fresh.Nodes) != 0 || len(fresh.Containers) != 0 {
		t.Fatalf("the managers' new map: %v; want a new FSID (old %v), no node, no container", err, old.FSID)
	}
	t.Logf("new map: epoch %d, FSID %v; the nodes keep to %v", fresh.Epoch, fresh.FSID, old.FSID)
	// weft status says who refuses the managers' map, and the way out.
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		out, _ = exec.Command(weftBin, "status", "--dir", clusterDir, "--timeout", "2s").CombinedOutput()
		if strings.Count(string(out), "joined FSID "+old.FSID.String()) == 3 && strings.Count(string(out), "its copy of that map at epoch") == 2 &&
			strings.Contains(string(out), "recover-manager --from-map") {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("weft status does not show the three nodes refusing the new map:\n%s", out)
		}
	}
	t.Logf("weft status:\n%s", out)

	// The way back: the managers' group seeded from the nodes' copies of
	// the map (node 3 lost its folder, copy and all, and accepted no map
	// since), every manager folder moved away first (they hold the map
	// started afresh).
	for i := 1; i <= 3; i++ {
		if err := c.lc.KillNode(i); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(managerDir(i)); err != nil {
			t.Fatal(err)
		}
	}
	copyOf := func(i int) string {
		return filepath.Join(filepath.Dir(c.lc.LogFile(i)), "device.meta", node.MapCopyFileName)
	}
	out, err = exec.Command(weftBin, "node", "recover-manager", "--manager-id", "1", "--manager-dir", managerDir(1),
		"--from-map", copyOf(1), "--from-map", copyOf(2), "--manager-addr", c.lc.State().Nodes[0].Addr, "--yes").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "seeded manager member 1") || !strings.Contains(string(out), old.FSID.String()) {
		t.Fatalf("recover-manager --from-map: %v\n%s", err, out)
	}
	t.Logf("recover-manager --from-map:\n%s", out)
	for i := 1; i <= 3; i++ {
		if err := c.lc.StartNode(i); err != nil {
			t.Fatal(err)
		}
	}
	managersVote("after seeding from the map copies")
	c.waitServing()
	back, err := c.mc.Map(ctx, 0)
	if err != nil || back.FSID != old.FSID || back.Epoch <= old.Epoch {
		t.Fatalf("the seeded map: %v, FSID %v epoch %d; want FSID %v, epoch past %d", err, back.FSID, back.Epoch, old.FSID, old.Epoch)
	}
	fs3 := d.reopen(t, ctx)
	checkFilesThenWrite(t, fs3, files)
}
