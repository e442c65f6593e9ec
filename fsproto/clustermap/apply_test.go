package clustermap

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestNodeStateStrings(t *testing.T) {
	for st := Up; st <= Out; st++ {
		got, err := ParseNodeState(st.String())
		if err != nil || got != st {
			t.Errorf("ParseNodeState(%q) = %v, %v", st.String(), got, err)
		}
	}
	if _, err := ParseNodeState("sideways"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseNodeState(sideways): %v", err)
	}
	if s := NodeState(9).String(); s != "NodeState(9)" {
		t.Errorf("NodeState(9) = %q", s)
	}
}

func TestPolicyValidateReportsEverything(t *testing.T) {
	err := Policy{Replicas: 6, PGCount: 3, ChunkSize: 1000, FailureDomain: "bad key", Selector: map[string]string{"": "x"}}.Validate()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err %v", err)
	}
	for _, want := range []string{"replicas 6", "pg count 3", "chunk size 1000", "failure domain", "selector"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if err := (Policy{Replicas: 3}).WithDefaults().Validate(); err != nil {
		t.Errorf("default policy: %v", err)
	}
}

func zonePolicy(r int) Policy {
	return Policy{Replicas: r, FailureDomain: "zone", PGCount: 16}
}

func TestCreateContainerPlacesPGs(t *testing.T) {
	m := addNodes(t, New(), 6, "a", "b", "c")
	m = mustApply(t, m, CreateContainer{Name: "db", Policy: zonePolicy(3)})
	ct, ok := m.ContainerByName("db")
	if !ok || ct.ID != 1 || ct.FirstPG != 1 || ct.Policy.ChunkSize != ChunkSizeDefault {
		t.Fatalf("container %+v", ct)
	}
	pgs := m.PGsOfContainer(ct.ID)
	if len(pgs) != 16 {
		t.Fatalf("%d pgs", len(pgs))
	}
	for _, pg := range pgs {
		if pg.Epoch != m.Epoch || len(pg.Replicas) != 3 || len(pg.Backfilling) != 0 || m.PGState(&pg) != Active || pg.State(ct.Policy) != Active {
			t.Fatalf("pg %+v at epoch %d", pg, m.Epoch)
		}
		// Placement is the rendezvous order, best first.
		rank := Rank(pg.ID, &ct.Policy, m.Nodes)
		if pg.Primary() != rank[0] {
			t.Errorf("pg %d primary %d, best score %d", pg.ID, pg.Primary(), rank[0])
		}
	}
	// A second container takes the next IDs.
	m = mustApply(t, m, CreateContainer{Name: "logs", Policy: Policy{Replicas: 1, PGCount: 4}})
	logs, _ := m.ContainerByName("logs")
	if logs.ID != 2 || logs.FirstPG != 17 {
		t.Fatalf("second container %+v", logs)
	}
	// Deleting frees neither the ID nor the PGs' IDs.
	m = mustApply(t, m, DeleteContainer{ID: logs.ID})
	m = mustApply(t, m, CreateContainer{Name: "logs", Policy: Policy{Replicas: 1, PGCount: 4}})
	logs, _ = m.ContainerByName("logs")
	if logs.ID != 3 || logs.FirstPG != 21 {
		t.Fatalf("re-created container %+v", logs)
	}
	pg, err := m.Locate(logs.ID, 7, 3)
	if err != nil || pg.ID < 21 || pg.ID >= 25 || pg.Container != logs.ID {
		t.Fatalf("Locate: %+v %v", pg, err)
	}
	if _, err := m.Locate(99, 0, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Locate unknown: %v", err)
	}
}

func TestNodeDownIsReplaced(t *testing.T) {
	m := addNodes(t, New(), 6, "a", "b", "c")
	m = mustApply(t, m, CreateContainer{Name: "db", Policy: zonePolicy(3)})
	victim := m.PGs[0].Primary()
	had := m.PGsOfNode(victim)
	before := m.Clone()
	m = mustApply(t, m, SetNodeState{ID: victim, State: Down})
	for _, id := range had {
		pg, _ := m.PG(id)
		old, _ := before.PG(id)
		if pg.HasReplica(victim) || len(pg.Replicas) != 3 || len(pg.Backfilling) != 1 || pg.Epoch != m.Epoch {
			t.Fatalf("pg %d after down: %+v", id, pg)
		}
		if m.PGState(pg) != Backfilling {
			t.Errorf("pg %d state %v", id, m.PGState(pg))
		}
		// The survivors keep their order; the new one comes last,
		// and the primary is a survivor.
		var survivors []NodeID
		for _, r := range old.Replicas {
			if r != victim {
				survivors = append(survivors, r)
			}
		}
		if !slices.Equal(pg.Replicas[:2], survivors) || pg.Backfilling[0] != pg.Replicas[2] {
			t.Errorf("pg %d: %v -> %v", id, old.Replicas, pg.Replicas)
		}
		// The replacement is in the victim's zone: the only free one.
		vn, _ := m.Node(victim)
		nn, _ := m.Node(pg.Replicas[2])
		if vn.Labels["zone"] != nn.Labels["zone"] {
			t.Errorf("pg %d: replacement %d in zone %s, lost zone %s", id, nn.ID, nn.Labels["zone"], vn.Labels["zone"])
		}
	}
	// CaughtUp with a stale epoch is refused, with the current accepted.
	pg := m.PGs[0]
	newcomer := pg.Backfilling[0]
	applyErr(t, m, CaughtUp{PG: pg.ID, Node: newcomer, Epoch: pg.Epoch - 1}, ErrStaleEpoch)
	applyErr(t, m, CaughtUp{PG: pg.ID, Node: 99, Epoch: pg.Epoch}, ErrNotFound)
	applyErr(t, m, CaughtUp{PG: pg.ID, Node: pg.Replicas[0], Epoch: pg.Epoch}, ErrNoChange)
	applyErr(t, m, CaughtUp{PG: 9999, Node: newcomer, Epoch: pg.Epoch}, ErrNotFound)
	m = mustApply(t, m, CaughtUp{PG: pg.ID, Node: newcomer, Epoch: pg.Epoch})
	if got, _ := m.PG(pg.ID); got.Epoch != m.Epoch || len(got.Backfilling) != 0 || m.PGState(got) != Active {
		t.Fatalf("after catch-up: %+v", got)
	}
	// The victim returns: it displaces no replacement.
	pgsBefore := slices.Clone(m.PGs)
	m = mustApply(t, m, SetNodeState{ID: victim, State: Up})
	for i := range m.PGs {
		if !slices.Equal(m.PGs[i].Replicas, pgsBefore[i].Replicas) || m.PGs[i].Epoch != pgsBefore[i].Epoch {
			t.Fatalf("returning node moved pg %d: %v -> %v", m.PGs[i].ID, pgsBefore[i].Replicas, m.PGs[i].Replicas)
		}
	}
}

func TestDrainKeepsReplicaUntilReplacementCaughtUp(t *testing.T) {
	m := addNodes(t, New(), 6, "a", "b", "c")
	m = mustApply(t, m, CreateContainer{Name: "db", Policy: zonePolicy(3)})
	drained := m.PGs[0].Primary()
	had := m.PGsOfNode(drained)
	m = mustApply(t, m, SetNodeState{ID: drained, State: Draining})
	for _, id := range had {
		pg, _ := m.PG(id)
		if !pg.HasReplica(drained) || pg.IsBackfilling(drained) || len(pg.Replicas) != 4 || len(pg.Backfilling) != 1 {
			t.Fatalf("pg %d while draining %d: %+v", id, drained, pg)
		}
		if pg.Primary() == drained || pg.IsBackfilling(pg.Primary()) {
			t.Errorf("pg %d: primary %d while draining %d", id, pg.Primary(), drained)
		}
		if m.PGState(pg) != Backfilling || pg.State(Policy{Replicas: 3}) != Backfilling {
			t.Errorf("pg %d: state %v", id, m.PGState(pg))
		}
	}
	for _, id := range had {
		pg, _ := m.PG(id)
		m = mustApply(t, m, CaughtUp{PG: id, Node: pg.Backfilling[0], Epoch: pg.Epoch})
		pg, _ = m.PG(id)
		if pg.HasReplica(drained) || len(pg.Replicas) != 3 || len(pg.Backfilling) != 0 {
			t.Fatalf("pg %d after the replacement caught up: %+v", id, pg)
		}
	}
	if got := m.PGsOfNode(drained); len(got) != 0 {
		t.Fatalf("drained node still in %v", got)
	}
	m = mustApply(t, m, SetNodeState{ID: drained, State: Out})
	applyErr(t, m, SetNodeState{ID: drained, State: Out}, ErrNoChange)
}

func TestDrainWithoutReplacementKeepsReplica(t *testing.T) {
	// Three nodes in three zones, three replicas: no node can replace
	// the draining one, so it stays (and serves) indefinitely.
	m := addNodes(t, New(), 3, "a", "b", "c")
	m = mustApply(t, m, CreateContainer{Name: "db", Policy: zonePolicy(3)})
	m = mustApply(t, m, SetNodeState{ID: 2, State: Draining})
	for _, pg := range m.PGs {
		if len(pg.Replicas) != 3 || !pg.HasReplica(2) || len(pg.Backfilling) != 0 {
			t.Fatalf("pg %+v", pg)
		}
		if m.PGState(&pg) != Degraded {
			t.Fatalf("pg %d state %v, want degraded", pg.ID, m.PGState(&pg))
		}
	}
}

func TestDegradedUntilNodesJoin(t *testing.T) {
	m := mustApply(t, New(), CreateContainer{Name: "db", Policy: zonePolicy(3)})
	for _, pg := range m.PGs {
		if len(pg.Replicas) != 0 || m.PGState(&pg) != Degraded || pg.State(zonePolicy(3)) != Degraded || pg.Primary() != 0 {
			t.Fatalf("pg %+v", pg)
		}
	}
	m = addNodes(t, m, 2, "a", "b")
	for _, pg := range m.PGs {
		if len(pg.Replicas) != 2 || len(pg.Backfilling) != 2 || m.PGState(&pg) != Degraded {
			t.Fatalf("pg %+v", pg)
		}
	}
	// A node without the zone label is not eligible under a zone policy.
	m = mustApply(t, m, AddNode{ID: 3, Addr: "10.0.0.3:7000", Labels: map[string]string{"rack": "r3"}})
	for _, pg := range m.PGs {
		if pg.HasReplica(3) {
			t.Fatalf("pg %+v took a node without a zone", pg)
		}
	}
	// Re-joining with a zone label makes it eligible.
	m = mustApply(t, m, AddNode{ID: 3, Addr: "10.0.0.3:7000", Labels: map[string]string{"rack": "r3", "zone": "c"}})
	for _, pg := range m.PGs {
		if len(pg.Replicas) != 3 || !pg.HasReplica(3) {
			t.Fatalf("pg %+v", pg)
		}
	}
}

func TestSetPolicy(t *testing.T) {
	m := addNodes(t, New(), 6, "a", "b", "c")
	m = mustApply(t, m, CreateContainer{Name: "db", Policy: zonePolicy(3)})
	ct, _ := m.ContainerByName("db")
	before := slices.Clone(m.PGs)
	m = mustApply(t, m, SetPolicy{Container: ct.ID, Policy: Policy{Replicas: 2, FailureDomain: "zone"}})
	for i, pg := range m.PGs {
		if !slices.Equal(pg.Replicas, before[i].Replicas[:2]) {
			t.Fatalf("shrink: pg %d %v -> %v", pg.ID, before[i].Replicas, pg.Replicas)
		}
	}
	m = mustApply(t, m, SetPolicy{Container: ct.ID, Policy: Policy{Replicas: 5}})
	for _, pg := range m.PGs {
		if len(pg.Replicas) != 5 || len(pg.Backfilling) != 3 {
			t.Fatalf("grow: pg %+v", pg)
		}
	}
	applyErr(t, m, SetPolicy{Container: ct.ID, Policy: Policy{Replicas: 5}}, ErrNoChange)
	applyErr(t, m, SetPolicy{Container: ct.ID, Policy: Policy{Replicas: 5, PGCount: 32}}, ErrInvalid)
	applyErr(t, m, SetPolicy{Container: ct.ID, Policy: Policy{Replicas: 5, ChunkSize: 1 << 20}}, ErrInvalid)
	applyErr(t, m, SetPolicy{Container: ct.ID, Policy: Policy{Replicas: 0}}, ErrInvalid)
	applyErr(t, m, SetPolicy{Container: 42, Policy: Policy{Replicas: 1}}, ErrNotFound)
	// A selector that no node matches keeps the caught-up replicas
	// (they have the data) and drops the backfilling ones.
	m = mustApply(t, m, SetPolicy{Container: ct.ID, Policy: Policy{Replicas: 5, Selector: map[string]string{"media": "tape"}}})
	for _, pg := range m.PGs {
		if len(pg.Replicas) != 2 || len(pg.Backfilling) != 0 || m.PGState(&pg) != Degraded {
			t.Fatalf("unmatched selector: pg %+v", pg)
		}
	}
}

func TestCommandErrors(t *testing.T) {
	m := addNodes(t, New(), 3, "a")
	applyErr(t, m, AddNode{ID: 0, Addr: "x:1"}, ErrInvalid)
	applyErr(t, m, AddNode{ID: 9, Addr: ""}, ErrInvalid)
	applyErr(t, m, AddNode{ID: 9, Addr: "a b"}, ErrInvalid)
	applyErr(t, m, AddNode{ID: 9, Addr: "x:1", Labels: map[string]string{"zone": "a b"}}, ErrInvalid)
	applyErr(t, m, AddNode{ID: 9, Addr: "10.0.0.1:7000"}, ErrExists)
	n1, _ := m.Node(1)
	applyErr(t, m, AddNode{ID: 1, Addr: n1.Addr, Labels: n1.Labels, Capacity: n1.Capacity}, ErrNoChange)
	applyErr(t, m, SetNodeState{ID: 1, State: Up}, ErrNoChange)
	applyErr(t, m, SetNodeState{ID: 1, State: 0}, ErrInvalid)
	applyErr(t, m, SetNodeState{ID: 1, State: 5}, ErrInvalid)
	applyErr(t, m, SetNodeState{ID: 77, State: Down}, ErrNotFound)
	applyErr(t, m, CreateContainer{Name: "", Policy: Policy{Replicas: 1}}, ErrInvalid)
	applyErr(t, m, CreateContainer{Name: "a/b", Policy: Policy{Replicas: 1}}, ErrInvalid)
	applyErr(t, m, CreateContainer{Name: strings.Repeat("x", NameLenMax+1), Policy: Policy{Replicas: 1}}, ErrInvalid)
	applyErr(t, m, CreateContainer{Name: "ok", Policy: Policy{Replicas: 1, PGCount: 3}}, ErrInvalid)
	m = mustApply(t, m, CreateContainer{Name: "ok", Policy: Policy{Replicas: 1}})
	applyErr(t, m, CreateContainer{Name: "ok", Policy: Policy{Replicas: 1}}, ErrExists)
	applyErr(t, m, DeleteContainer{ID: 5}, ErrNotFound)
	applyErr(t, m, MarkMetaFormed{Container: 5}, ErrNotFound)
	formed := mustApply(t, m, MarkMetaFormed{Container: 1})
	if ct, _ := formed.Container(1); !ct.MetaFormed || !slices.Equal(ct.MetaMembers, ct.MetaBootstrap) {
		t.Fatalf("container after MarkMetaFormed: %+v", ct)
	}
	applyErr(t, formed, MarkMetaFormed{Container: 1}, ErrNoChange)
	applyErr(t, m, SetFSID{}, ErrInvalid)
	withID := mustApply(t, m, SetFSID{FSID: FSID{7, 1}})
	if withID.FSID != (FSID{7, 1}) || withID.Epoch != m.Epoch+1 {
		t.Fatalf("after SetFSID: FSID %v at epoch %d", withID.FSID, withID.Epoch)
	}
	applyErr(t, withID, SetFSID{FSID: FSID{7, 1}}, ErrNoChange)
	applyErr(t, withID, SetFSID{FSID: FSID{8}}, ErrExists)
	if c := mustApply(t, withID, CreateContainer{Name: "kept", Policy: Policy{Replicas: 1}}); c.FSID != withID.FSID || c.ForContainer(2, false).FSID != withID.FSID {
		t.Fatal("a later command or a reduced map lost the FSID")
	}
	noNode := mustApply(t, m, CreateContainer{Name: "none", Policy: Policy{Replicas: 1, Selector: map[string]string{"media": "tape"}}})
	applyErr(t, noNode, MarkMetaFormed{Container: 2}, ErrInvalid)
	applyErr(t, m, nil, ErrInvalid)
	// An Out node's address may be taken; it cannot then come back
	// with it.
	m = mustApply(t, m, SetNodeState{ID: 1, State: Out})
	m = mustApply(t, m, AddNode{ID: 9, Addr: "10.0.0.1:7000"})
	applyErr(t, m, SetNodeState{ID: 1, State: Up}, ErrExists)
	applyErr(t, m, AddNode{ID: 1, Addr: "10.0.0.1:7000"}, ErrExists)
	m = mustApply(t, m, AddNode{ID: 1, Addr: "10.0.0.100:7000"})
	if n, _ := m.Node(1); n.State != Up {
		t.Fatalf("re-joined node is %v", n.State)
	}
	// Pointer commands work like values.
	m = mustApply(t, m, &SetNodeState{ID: 1, State: Down})
	if n, _ := m.Node(1); n.State != Down {
		t.Fatalf("node 1 is %v", n.State)
	}
}

func TestApplyDoesNotAliasCommand(t *testing.T) {
	labels := map[string]string{"zone": "a"}
	m := mustApply(t, New(), AddNode{ID: 1, Addr: "h:1", Labels: labels})
	labels["zone"] = "b"
	if n, _ := m.Node(1); n.Labels["zone"] != "a" {
		t.Fatal("map aliases the command's labels")
	}
	c := m.Clone()
	c.Nodes[0].Labels["zone"] = "c"
	if n, _ := m.Node(1); n.Labels["zone"] != "a" {
		t.Fatal("Clone aliases labels")
	}
}

// TestNodeRestarted: a restart moves the epoch of exactly the PGs the
// node is in, and makes it a backfilling replica (never primary) wherever
// another caught-up replica serves.
func TestNodeRestarted(t *testing.T) {
	m := addNodes(t, New(), 4, "a", "b")
	m = mustApply(t, m, CreateContainer{Name: "c", Policy: Policy{Replicas: 2, PGCount: 16}})
	before := m
	m = mustApply(t, m, NodeRestarted{ID: 2})
	if m.Epoch != before.Epoch+1 {
		t.Fatalf("map epoch %d, want %d", m.Epoch, before.Epoch+1)
	}
	bumped := 0
	for i, pg := range m.PGs {
		old := before.PGs[i]
		if !pg.HasReplica(2) {
			if pg.Epoch != old.Epoch || !slices.Equal(pg.Replicas, old.Replicas) {
				t.Errorf("pg %d does not hold node 2 but changed: %v@%d -> %v@%d", pg.ID, old.Replicas, old.Epoch, pg.Replicas, pg.Epoch)
			}
			continue
		}
		bumped++
		if pg.Epoch != m.Epoch {
			t.Errorf("pg %d holds node 2 but kept epoch %d", pg.ID, pg.Epoch)
		}
		if !pg.IsBackfilling(2) || pg.Primary() == 2 {
			t.Errorf("pg %d: restarted node 2 is not a backfilling non-primary replica: %v backfilling %v", pg.ID, pg.Replicas, pg.Backfilling)
		}
		if len(pg.Replicas) != len(old.Replicas) {
			t.Errorf("pg %d: replicas %v -> %v", pg.ID, old.Replicas, pg.Replicas)
		}
	}
	if bumped == 0 {
		t.Fatal("node 2 is in no PG; the test proves nothing")
	}
	// The only caught-up replica of a PG stays what it is.
	one := mustApply(t, addNodes(t, New(), 2, "a", "b"), CreateContainer{Name: "solo", Policy: Policy{Replicas: 1, PGCount: 4}})
	for _, pg := range one.PGs {
		after := mustApply(t, one, NodeRestarted{ID: pg.Primary()})
		got, _ := after.PG(pg.ID)
		if got.Primary() != pg.Primary() || len(got.Backfilling) != 0 || got.Epoch != after.Epoch {
			t.Errorf("solo pg %d after its only replica restarted: %v backfilling %v epoch %d", pg.ID, got.Replicas, got.Backfilling, got.Epoch)
		}
	}
	applyErr(t, m, NodeRestarted{ID: 99}, ErrNotFound)
	m = mustApply(t, m, SetNodeState{ID: 3, State: Out})
	applyErr(t, m, NodeRestarted{ID: 3}, ErrInvalid)
}

// TestLastCopyHeld: when a PG's only caught-up replica goes Down, it stays
// the PG's primary (the PG waits for it) instead of leaving backfilling
// replicas, which lack acknowledged writes, to lead; when it returns it
// leads again; Out gives its data up.
func TestLastCopyHeld(t *testing.T) {
	m := addNodes(t, New(), 2, "a", "b")
	m = mustApply(t, m, CreateContainer{Name: "c", Policy: Policy{Replicas: 2, PGCount: 1}})
	pg := m.PGs[0]
	primary, other := pg.Replicas[0], pg.Replicas[1]
	// other goes Down and comes back: it backfills; primary is the only
	// caught-up replica.
	m = mustApply(t, m, SetNodeState{ID: other, State: Down})
	m = mustApply(t, m, SetNodeState{ID: other, State: Up})
	pg = m.PGs[0]
	if pg.Primary() != primary || !pg.IsBackfilling(other) {
		t.Fatalf("setup: %v backfilling %v", pg.Replicas, pg.Backfilling)
	}
	m = mustApply(t, m, SetNodeState{ID: primary, State: Down})
	if pg = m.PGs[0]; pg.Primary() != primary || !pg.IsBackfilling(other) {
		t.Fatalf("last copy down: %v backfilling %v; want %d kept as primary", pg.Replicas, pg.Backfilling, primary)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	m = mustApply(t, m, SetNodeState{ID: primary, State: Up})
	if pg = m.PGs[0]; pg.Primary() != primary {
		t.Fatalf("last copy back: %v backfilling %v", pg.Replicas, pg.Backfilling)
	}
	m = mustApply(t, m, SetNodeState{ID: primary, State: Down})
	m = mustApply(t, m, SetNodeState{ID: primary, State: Out})
	if pg = m.PGs[0]; pg.HasReplica(primary) {
		t.Fatalf("out: %v still holds %d", pg.Replicas, primary)
	}
}
