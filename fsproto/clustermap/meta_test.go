package clustermap

import (
	"fmt"
	"slices"
	"testing"
)

// metaMap returns a map of n nodes (node i in zone zones[i%len], or its
// own domain without zones) and a container "db" whose policy uses the
// zones when there are some.
func metaMap(t *testing.T, n int, zones ...string) (*Map, *Container) {
	m := addNodes(t, New(), n, zones...)
	p := Policy{Replicas: 3, PGCount: 4}
	if len(zones) > 0 {
		p.FailureDomain = "zone"
	}
	m = mustApply(t, m, CreateContainer{Name: "db", Policy: p})
	ct, _ := m.ContainerByName("db")
	if len(ct.MetaMembers) != min(n, MetaMembersMax) || !slices.Equal(ct.MetaMembers, ct.MetaBootstrap) {
		t.Fatalf("new container's record %v/%v", ct.MetaMembers, ct.MetaBootstrap)
	}
	return m, ct
}

// nonMembers returns the nodes of m that are no metadata member of ct and
// not Out, best first by Score over ct's first PG.
func nonMembers(m *Map, ct *Container) []NodeID {
	var ids []NodeID
	for _, n := range m.Nodes {
		if n.State != Out && !slices.Contains(ct.MetaMembers, n.ID) {
			ids = append(ids, n.ID)
		}
	}
	slices.SortFunc(ids, func(a, b NodeID) int {
		sa, sb := Score(ct.FirstPG, a), Score(ct.FirstPG, b)
		if sa != sb {
			if sa > sb {
				return -1
			}
			return 1
		}
		return int(a) - int(b)
	})
	return ids
}

// TestMetaMemberReplacedWhenOut: taking a member's node Out replaces it,
// in one map change, by the best other node; the other members and the
// bootstrap set stay; the same command on the same map gives the same
// map.
func TestMetaMemberReplacedWhenOut(t *testing.T) {
	m, ct := metaMap(t, 5)
	for _, victim := range ct.MetaMembers {
		want := slices.Clone(ct.MetaMembers)
		best := nonMembers(m, ct)[0]
		want = append(slices.DeleteFunc(want, func(id NodeID) bool { return id == victim }), best)
		next := mustApply(t, m, SetNodeState{ID: victim, State: Out})
		got, _ := next.Container(ct.ID)
		if !slices.Equal(got.MetaMembers, want) || !slices.Equal(got.MetaBootstrap, ct.MetaBootstrap) {
			t.Errorf("node %d out: record %v/%v, want %v/%v", victim, got.MetaMembers, got.MetaBootstrap, want, ct.MetaBootstrap)
		}
		if next.Epoch != m.Epoch+1 {
			t.Errorf("node %d out: epoch %d after %d", victim, next.Epoch, m.Epoch)
		}
		again := mustApply(t, m, SetNodeState{ID: victim, State: Out})
		if !slices.Equal(encode(t, again), encode(t, next)) {
			t.Errorf("node %d out: two applications differ", victim)
		}
	}
	// Down is not Out: the member stays.
	next := mustApply(t, m, SetNodeState{ID: ct.MetaMembers[0], State: Down})
	if got, _ := next.Container(ct.ID); !slices.Equal(got.MetaMembers, ct.MetaMembers) {
		t.Errorf("member down: members %v, want %v", got.MetaMembers, ct.MetaMembers)
	}
}

// TestMetaReplacementPrefersUp: a replacement on a node that does not
// run could not catch up; an Up node wins over a better-scoring Down one.
func TestMetaReplacementPrefersUp(t *testing.T) {
	m, ct := metaMap(t, 5)
	spare := nonMembers(m, ct)
	m = mustApply(t, m, SetNodeState{ID: spare[0], State: Down})
	next := mustApply(t, m, SetNodeState{ID: ct.MetaMembers[1], State: Out})
	got, _ := next.Container(ct.ID)
	if want := []NodeID{ct.MetaMembers[0], ct.MetaMembers[2], spare[1]}; !slices.Equal(got.MetaMembers, want) {
		t.Errorf("members %v, want %v (node %d is down)", got.MetaMembers, want, spare[0])
	}
	// With only Down candidates, a Down one is taken all the same.
	m = mustApply(t, m, SetNodeState{ID: spare[1], State: Down})
	next = mustApply(t, m, SetNodeState{ID: ct.MetaMembers[1], State: Out})
	got, _ = next.Container(ct.ID)
	if want := []NodeID{ct.MetaMembers[0], ct.MetaMembers[2], spare[0]}; !slices.Equal(got.MetaMembers, want) {
		t.Errorf("members %v, want %v", got.MetaMembers, want)
	}
}

// TestMetaReplacementDomains: a replacement goes to a failure domain no
// member occupies when there is one, whatever the scores in the others.
func TestMetaReplacementDomains(t *testing.T) {
	// Nodes 1..6 over zones b, c, a, b, c, a (addNodes: i % 3).
	m, ct := metaMap(t, 6, "a", "b", "c")
	zone := func(m *Map, id NodeID) string { n, _ := m.Node(id); return n.Labels["zone"] }
	victim := ct.MetaMembers[0]
	next := mustApply(t, m, SetNodeState{ID: victim, State: Out})
	got, _ := next.Container(ct.ID)
	repl := got.MetaMembers[2]
	if zone(next, repl) != zone(m, victim) {
		t.Errorf("replacement %d in zone %s, want zone %s (the only one without a member)", repl, zone(next, repl), zone(m, victim))
	}
	zones := map[string]bool{}
	for _, id := range got.MetaMembers {
		zones[zone(next, id)] = true
	}
	if len(zones) != 3 {
		t.Errorf("members %v span zones %v, want 3", got.MetaMembers, zones)
	}
}

// TestMetaShortListFilled: with no candidate the list shrinks; a node
// added later fills it (and so does a node brought back from Out), but a
// full list never takes a new node.
func TestMetaShortListFilled(t *testing.T) {
	m, ct := metaMap(t, 3)
	victim := ct.MetaMembers[1]
	m = mustApply(t, m, SetNodeState{ID: victim, State: Out})
	got, _ := m.Container(ct.ID)
	if want := []NodeID{ct.MetaMembers[0], ct.MetaMembers[2]}; !slices.Equal(got.MetaMembers, want) {
		t.Fatalf("members %v after the only spare went out, want %v", got.MetaMembers, want)
	}
	m = mustApply(t, m, AddNode{ID: 9, Addr: "10.0.0.9:7000", Capacity: 1 << 40})
	got, _ = m.Container(ct.ID)
	if want := []NodeID{ct.MetaMembers[0], ct.MetaMembers[2], 9}; !slices.Equal(got.MetaMembers, want) {
		t.Fatalf("members %v after node 9 joined, want %v", got.MetaMembers, want)
	}
	for i := NodeID(10); i < 20; i++ {
		m = mustApply(t, m, AddNode{ID: i, Addr: fmt.Sprintf("10.0.0.%d:7000", i), Capacity: 1 << 40})
	}
	if got2, _ := m.Container(ct.ID); !slices.Equal(got2.MetaMembers, got.MetaMembers) {
		t.Fatalf("members moved from %v to %v as nodes joined", got.MetaMembers, got2.MetaMembers)
	}
	if !slices.Equal(got.MetaBootstrap, ct.MetaBootstrap) {
		t.Fatalf("bootstrap %v, want %v", got.MetaBootstrap, ct.MetaBootstrap)
	}
}

// TestMetaNoNodeYet: a container whose policy matches no node has no
// record; the first node that matches becomes its member and bootstrap
// set.
func TestMetaNoNodeYet(t *testing.T) {
	m := addNodes(t, New(), 3)
	m = mustApply(t, m, CreateContainer{Name: "fast", Policy: Policy{Replicas: 1, PGCount: 1, Selector: map[string]string{"media": "nvme"}}})
	ct, _ := m.ContainerByName("fast")
	if len(ct.MetaMembers) != 0 || len(ct.MetaBootstrap) != 0 {
		t.Fatalf("record %v/%v with no matching node", ct.MetaMembers, ct.MetaBootstrap)
	}
	m = mustApply(t, m, AddNode{ID: 4, Addr: "10.0.0.4:7000", Labels: map[string]string{"media": "nvme"}})
	ct, _ = m.ContainerByName("fast")
	if !slices.Equal(ct.MetaMembers, []NodeID{4}) || !slices.Equal(ct.MetaBootstrap, []NodeID{4}) {
		t.Fatalf("record %v/%v, want [4]/[4]", ct.MetaMembers, ct.MetaBootstrap)
	}
}

// TestMetaMembersFollowPolicy: a policy whose selector some members no
// longer match moves them to matching nodes, one for one; a member off the
// policy stays while no matching node can take its place (the group keeps
// its size), and goes when one joins.
func TestMetaMembersFollowPolicy(t *testing.T) {
	m, ct := metaMap(t, 5)
	// Two nodes labelled site=onprem: the best non-member and one member.
	spare, member := nonMembers(m, ct)[0], ct.MetaMembers[1]
	onprem := map[NodeID]bool{spare: true, member: true}
	for _, id := range []NodeID{spare, member} {
		n, _ := m.Node(id)
		labels := map[string]string{"rack": n.Labels["rack"], "site": "onprem"}
		m = mustApply(t, m, AddNode{ID: id, Addr: n.Addr, Labels: labels, Capacity: n.Capacity})
	}
	if got, _ := m.Container(ct.ID); !slices.Equal(got.MetaMembers, ct.MetaMembers) {
		t.Fatalf("relabelling moved the members %v to %v", ct.MetaMembers, got.MetaMembers)
	}
	p := ct.Policy
	p.Selector = map[string]string{"site": "onprem"}
	m = mustApply(t, m, SetPolicy{Container: ct.ID, Policy: p})
	got, _ := m.Container(ct.ID)
	if len(got.MetaMembers) != MetaMembersMax || !slices.Equal(got.MetaBootstrap, ct.MetaBootstrap) {
		t.Fatalf("members %v, bootstrap %v after the new policy", got.MetaMembers, got.MetaBootstrap)
	}
	matching := 0
	for _, id := range got.MetaMembers {
		if onprem[id] {
			matching++
		}
	}
	if matching != 2 || !slices.Contains(got.MetaMembers, member) || !slices.Contains(got.MetaMembers, spare) {
		t.Fatalf("members %v: want both onprem nodes %d and %d, and one old member for the third", got.MetaMembers, member, spare)
	}
	// A third onprem node takes the last place.
	m = mustApply(t, m, AddNode{ID: 9, Addr: "10.0.0.9:7000", Labels: map[string]string{"site": "onprem"}, Capacity: 1 << 40})
	got, _ = m.Container(ct.ID)
	want := []NodeID{member, spare, 9}
	if !slices.Equal(slices.Sorted(slices.Values(got.MetaMembers)), slices.Sorted(slices.Values(want))) {
		t.Fatalf("members %v after node 9 joined, want %v", got.MetaMembers, want)
	}
}

// TestMetaMembersSpread: a group whose members crowd one zone (here: the
// policy's failure domain became the zone label after the group was made)
// moves them to Up nodes of the zones it does not reach, a Down member of
// a crowded zone before an Up one; a Down node of a free zone gets none
// until it is Up; a spread group stays put as nodes join.
func TestMetaMembersSpread(t *testing.T) {
	m := addNodes(t, New(), 4, "a") // nodes 1..4, all in zone a
	for id, z := range map[NodeID]string{10: "b", 11: "c"} {
		m = mustApply(t, m, AddNode{ID: id, Addr: fmt.Sprintf("10.0.0.%d:7000", id), Labels: map[string]string{"zone": z}, Capacity: 1 << 40})
	}
	p := Policy{Replicas: 3, PGCount: 4, Selector: map[string]string{"zone": "a"}}
	m = mustApply(t, m, CreateContainer{Name: "db", Policy: p})
	ct, _ := m.ContainerByName("db")
	first := slices.Clone(ct.MetaMembers)
	if len(first) != 3 {
		t.Fatalf("members %v", first)
	}
	m = mustApply(t, m, SetNodeState{ID: 11, State: Down})
	m = mustApply(t, m, SetNodeState{ID: first[1], State: Down})
	// Zones b and c admitted, spread over zones: zone a holds all three
	// members; zone b has an Up node, zone c only a Down one.
	p.Selector, p.FailureDomain = nil, "zone"
	m = mustApply(t, m, SetPolicy{Container: ct.ID, Policy: p})
	got, _ := m.Container(ct.ID)
	if want := []NodeID{first[0], 10, first[2]}; !slices.Equal(got.MetaMembers, want) {
		t.Fatalf("members %v after the zones policy (node %d down, node 11 of zone c down), want %v", got.MetaMembers, first[1], want)
	}
	if !slices.Equal(got.MetaBootstrap, first) {
		t.Fatalf("bootstrap %v, want %v", got.MetaBootstrap, first)
	}
	m = mustApply(t, m, SetNodeState{ID: 11, State: Up})
	got, _ = m.Container(ct.ID)
	if want := []NodeID{first[0], 10, 11}; !slices.Equal(got.MetaMembers, want) {
		t.Fatalf("members %v after node 11 of zone c came up, want %v", got.MetaMembers, want)
	}
	for i := NodeID(20); i < 26; i++ {
		m = mustApply(t, m, AddNode{ID: i, Addr: fmt.Sprintf("10.0.0.%d:7000", i), Labels: map[string]string{"zone": string(rune('a' + i%4))}, Capacity: 1 << 40})
	}
	if got2, _ := m.Container(ct.ID); !slices.Equal(got2.MetaMembers, got.MetaMembers) {
		t.Fatalf("spread members moved from %v to %v as nodes joined", got.MetaMembers, got2.MetaMembers)
	}
}
