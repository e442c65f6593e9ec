package localcluster

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/node"
)

func mustApply(t *testing.T, m *clustermap.Map, cmds ...clustermap.Command) *clustermap.Map {
	t.Helper()
	for _, c := range cmds {
		var err error
		if m, err = m.Apply(c); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
	}
	return m
}

// TestReport builds a map with a down node and a backfilling one, and
// checks the counts, the backfill progress taken from the nodes' status,
// and the printout.
func TestReport(t *testing.T) {
	m := mustApply(t, clustermap.New(),
		clustermap.AddNode{ID: 1, Addr: "127.0.0.1:1", Labels: map[string]string{"host": "a"}, Capacity: 1 << 30},
		clustermap.AddNode{ID: 2, Addr: "127.0.0.2:1", Capacity: 1 << 30},
		clustermap.CreateContainer{Name: "default", Policy: clustermap.Policy{Replicas: 2, PGCount: 4}},
		clustermap.SetNodeState{ID: 2, State: clustermap.Down},
		clustermap.AddNode{ID: 3, Addr: "127.0.0.3:1", Capacity: 1 << 30},
	)
	r := &Report{Map: m}
	for i := range m.Nodes {
		nr := NodeReport{Node: m.Nodes[i]}
		switch m.Nodes[i].ID {
		case 1:
			s := &node.Status{Node: 1, Epoch: m.Epoch, Space: node.Space{Device: 1 << 30, Used: 4 << 20}, ManagerID: 1, ManagerLeader: 3}
			for _, pg := range m.PGs {
				s.PGs = append(s.PGs, node.PG{PG: uint32(pg.ID), Role: "primary",
					Syncs: []node.Sync{{Replica: 3, BytesDone: 1 << 20, BytesTotal: 4 << 20}}})
			}
			nr.Status = s
		case 2:
			nr.Err = errors.New("connection refused")
		case 3:
			s := &node.Status{Node: 3, Epoch: m.Epoch, ManagerID: 3, ManagerLeader: 3, ManagerState: "waiting: learner 2 to catch up"}
			for _, pg := range m.PGs {
				s.PGs = append(s.PGs, node.PG{PG: uint32(pg.ID), Role: "backfilling", InstalledBytes: 1 << 20, InstallRate: 2 << 20})
			}
			nr.Status = s
		}
		r.Nodes = append(r.Nodes, nr)
	}
	counts := r.PGCounts(0)
	if counts[clustermap.Backfilling] != 4 {
		t.Fatalf("PG counts %v; want 4 backfilling (node 3 replaced the down node 2)", counts)
	}
	bfs := r.Backfills()
	if len(bfs) != 4 {
		t.Fatalf("%d backfills, want 4: %+v", len(bfs), bfs)
	}
	for _, b := range bfs {
		if b.Node != 3 || b.Primary != 1 || b.BytesDone != 1<<20 || b.BytesTotal != 4<<20 || b.Installed != 1<<20 || b.InstallRate != 2<<20 {
			t.Errorf("backfill %+v", b)
		}
	}
	var out bytes.Buffer
	r.Print(&out)
	for _, want := range []string{
		"cluster map epoch 5: 3 nodes, 1 containers, 4 PGs",
		"managers: members 1 at 127.0.0.1:1, 3 at 127.0.0.3:1; leader as the members see it: 3",
		"  manager 3: waiting: learner 2 to catch up\n",
		"127.0.0.2:1", "down", "host=a", "4.0 MiB/1.0 GiB", "4/0/0", "0/0/4",
		`1 "default": replicas 2, 4 PGs: 0 active, 0 degraded, 4 backfilling`,
		"BACKFILLS (4 replicas): 4.0 MiB of 16.0 MiB sent by the primaries, 4.0 MiB installed, 8.0 MiB/s",
		"node 3 from primary 1: 25% (1.0 MiB of 4.0 MiB), installed 1.0 MiB at 2.0 MiB/s",
		"UNREACHABLE", "connection refused",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printout lacks %q:\n%s", want, out.String())
		}
	}
}

// TestMetaSummaryHint: a metadata group without a leader whose members
// run on at most a minority of the map's record gets a hint pointing at
// the nodes' logs and weft node recover-meta; one with a leader does not.
func TestMetaSummaryHint(t *testing.T) {
	m := mustApply(t, clustermap.New(),
		clustermap.AddNode{ID: 1, Addr: "127.0.0.1:1", Capacity: 1 << 30},
		clustermap.AddNode{ID: 2, Addr: "127.0.0.2:1", Capacity: 1 << 30},
		clustermap.AddNode{ID: 3, Addr: "127.0.0.3:1", Capacity: 1 << 30},
		clustermap.CreateContainer{Name: "default", Policy: clustermap.Policy{Replicas: 3, PGCount: 4}},
	)
	ct, _ := m.ContainerByName("default")
	report := func(leader uint64, running ...uint64) *Report {
		r := &Report{Map: m}
		for i := range m.Nodes {
			nr := NodeReport{Node: m.Nodes[i], Status: &node.Status{Node: uint64(m.Nodes[i].ID)}}
			if slices.Contains(running, uint64(m.Nodes[i].ID)) {
				nr.Status.Meta = []node.MetaMember{{Container: uint64(ct.ID), Leader: leader, Commit: 9}}
			}
			r.Nodes = append(r.Nodes, nr)
		}
		return r
	}
	if s := report(0, 3).metaSummary(ct.ID); !strings.Contains(s, "leader none known") || !strings.Contains(s, "1 of its 3 recorded members run one") || !strings.Contains(s, "recover-meta") {
		t.Errorf("one member, no leader: %q", s)
	}
	if s := report(0).metaSummary(ct.ID); !strings.Contains(s, "no member reports (0 of its 3") {
		t.Errorf("no member: %q", s)
	}
	for _, r := range []*Report{report(0, 1, 2), report(3, 3)} {
		if s := r.metaSummary(ct.ID); strings.Contains(s, "recover-meta") {
			t.Errorf("a majority running, or a leader: %q", s)
		}
	}
}

// TestPrintManagers: without a map, weft status prints what each manager
// address's node says of its member, the reason it waits included.
func TestPrintManagers(t *testing.T) {
	var out bytes.Buffer
	PrintManagers(&out, []ManagerReport{
		{Addr: "127.0.0.1:1", Status: &node.Status{Node: 11, ManagerID: 1, ManagerState: "waiting: this member's raft log is empty"}},
		{Addr: "127.0.0.2:1", Err: errors.New("connection refused")},
		{Addr: "127.0.0.3:1", Status: &node.Status{Node: 13, ManagerID: 3, ManagerVoters: []uint64{1, 2}, ManagerLearners: []uint64{3}}},
		{Addr: "127.0.0.4:1", Status: &node.Status{Node: 14}},
	})
	for _, want := range []string{
		"member 1 at 127.0.0.1:1: leader none known, not started\n    waiting: this member's raft log is empty\n",
		"127.0.0.2:1: no answer: connection refused",
		"member 3 at 127.0.0.3:1: leader none known, voters [1 2], learners [3]\n",
		"127.0.0.4:1: node 14 runs no manager member",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printout lacks %q:\n%s", want, out.String())
		}
	}
}

// TestPrintRefusing: nodes that recorded another FSID are listed with
// their FSID and map copy, and the way out is named.
func TestPrintRefusing(t *testing.T) {
	m := clustermap.New()
	m.Epoch, m.FSID = 1, clustermap.FSID{9}
	r := &Report{Map: m, Refusing: []ManagerReport{
		{Addr: "127.0.0.1:1", Status: &node.Status{Node: 11, FSID: "01000000-0000-0000-0000-000000000000", MapCopyEpoch: 270}},
		{Addr: "127.0.0.2:1", Status: &node.Status{Node: 12, FSID: "01000000-0000-0000-0000-000000000000"}},
	}}
	var out bytes.Buffer
	r.Print(&out)
	for _, want := range []string{
		"REFUSING THIS MAP",
		"node 11 (127.0.0.1:1): joined FSID 01000000-0000-0000-0000-000000000000; its copy of that map at epoch 270\n",
		"node 12 (127.0.0.2:1): joined FSID 01000000-0000-0000-0000-000000000000; no copy of it\n",
		"weft node recover-manager --from-map",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printout lacks %q:\n%s", want, out.String())
		}
	}
	if !refuses(m, r.Refusing[0].Status) || refuses(m, &node.Status{FSID: m.FSID.String()}) || refuses(m, &node.Status{}) {
		t.Error("refuses: wrong")
	}
}

// TestLastErrorLine: the latest ERROR line since the node's last start,
// or none.
func TestLastErrorLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	for _, c := range []struct{ log, want string }{
		{"--- localcluster: starting node 1\nx INFO a\nx ERROR old\n--- localcluster: starting node 1\nx INFO b\n", ""},
		{"--- localcluster: starting node 1\nx ERROR first\nx ERROR second\nx INFO later\n", "x ERROR second"},
		{"", ""},
	} {
		if err := os.WriteFile(p, []byte(c.log), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := lastErrorLine(p); got != c.want {
			t.Errorf("%q: %q, want %q", c.log, got, c.want)
		}
	}
}
