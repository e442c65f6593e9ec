package clustermap

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// mustApply applies cmd and fails the test on error; it also runs the
// checks every map must pass.
func mustApply(t testing.TB, m *Map, cmd Command) *Map {
	t.Helper()
	next, err := m.Apply(cmd)
	if err != nil {
		t.Fatalf("apply %#v: %v", cmd, err)
	}
	if err := checkAll(m, next, cmd); err != nil {
		t.Fatalf("after %#v: %v", cmd, err)
	}
	return next
}

// applyErr applies cmd, expects an error wrapping want, and checks that
// the map is untouched.
func applyErr(t testing.TB, m *Map, cmd Command, want error) {
	t.Helper()
	before := encode(t, m)
	next, err := m.Apply(cmd)
	if !errors.Is(err, want) {
		t.Fatalf("apply %#v: err %v, want %v", cmd, err, want)
	}
	if next != nil {
		t.Fatalf("apply %#v failed but returned a map", cmd)
	}
	if !slices.Equal(before, encode(t, m)) {
		t.Fatalf("failed apply %#v modified its receiver", cmd)
	}
}

func encode(t testing.TB, m *Map) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

// addNodes returns m with nodes 1..n added, node i in zone zones[i%len]
// and rack "r<i>", all with address "10.0.0.<i>:7000".
func addNodes(t testing.TB, m *Map, n int, zones ...string) *Map {
	t.Helper()
	for i := 1; i <= n; i++ {
		labels := map[string]string{"rack": fmt.Sprintf("r%d", i)}
		if len(zones) > 0 {
			labels["zone"] = zones[i%len(zones)]
		}
		m = mustApply(t, m, AddNode{ID: NodeID(i), Addr: fmt.Sprintf("10.0.0.%d:7000", i), Labels: labels, Capacity: 1 << 40})
	}
	return m
}

// checkAll checks the invariants that hold after every successful command
// that turned prev into next (prev may be nil for a map made from
// scratch): Check, encoding round trip, epochs, PG epochs changing iff
// the lists changed, every PG a fixpoint of Reconcile, full replica
// counts where enough eligible domains exist, the primary rule, and no
// eligible replica dropped without cause.
func checkAll(prev, next *Map, cmd Command) error {
	if err := next.Check(); err != nil {
		return fmt.Errorf("check: %v", err)
	}
	b, err := next.MarshalBinary()
	if err != nil {
		return err
	}
	d, err := DecodeMap(b)
	if err != nil {
		return fmt.Errorf("decode own encoding: %v", err)
	}
	if b2, _ := d.MarshalBinary(); !slices.Equal(b, b2) {
		return errors.New("map does not survive encode, decode, encode")
	}
	if prev != nil && next.Epoch != prev.Epoch+1 {
		return fmt.Errorf("epoch %d after %d", next.Epoch, prev.Epoch)
	}
	if err := checkMetaRecords(prev, next, cmd); err != nil {
		return err
	}
	for i := range next.PGs {
		pg := &next.PGs[i]
		ct, _ := next.Container(pg.Container)
		p := &ct.Policy
		r := Reconcile(*pg, p, next.Nodes)
		if !slices.Equal(r.Replicas, pg.Replicas) || !slices.Equal(r.Backfilling, pg.Backfilling) {
			return fmt.Errorf("pg %d %v/%v is not a fixpoint of Reconcile: %v/%v", pg.ID, pg.Replicas, pg.Backfilling, r.Replicas, r.Backfilling)
		}
		// Active replicas: Up, eligible, distinct domains.
		domains := map[string]bool{}
		active, caughtActive := 0, 0
		for _, id := range pg.Replicas {
			n, _ := next.Node(id)
			if d, ok := DomainOf(n, p); ok && n.State == Up && !domains[d] {
				domains[d] = true
				active++
				if !pg.IsBackfilling(id) {
					caughtActive++
				}
			}
		}
		eligibleDomains := map[string]bool{}
		for j := range next.Nodes {
			if n := &next.Nodes[j]; Eligible(n, p) {
				d, _ := DomainOf(n, p)
				eligibleDomains[d] = true
			}
		}
		if want := min(p.Replicas, len(eligibleDomains)); active != want {
			return fmt.Errorf("pg %d: %d active replicas %v, want %d (policy %d, %d eligible domains)", pg.ID, active, pg.Replicas, want, p.Replicas, len(eligibleDomains))
		}
		if len(pg.Replicas) > 0 && pg.IsBackfilling(pg.Primary()) && len(pg.Backfilling) < len(pg.Replicas) {
			return fmt.Errorf("pg %d: backfilling primary %d though %v has caught-up replicas", pg.ID, pg.Primary(), pg.Replicas)
		}
		if len(pg.Replicas)-len(pg.Backfilling) > 0 && caughtActive < p.Replicas {
			// Retiring replicas only make up a shortfall.
			if retiring := len(pg.Replicas) - active; retiring > p.Replicas-caughtActive {
				return fmt.Errorf("pg %d: %d retiring replicas for a shortfall of %d", pg.ID, retiring, p.Replicas-caughtActive)
			}
		}
		if prev == nil {
			continue
		}
		old, ok := prev.PG(pg.ID)
		if !ok {
			if pg.Epoch != next.Epoch {
				return fmt.Errorf("new pg %d has epoch %d, map %d", pg.ID, pg.Epoch, next.Epoch)
			}
			if want := domainBests(pg.ID, p, next.Nodes); !slices.Equal(pg.Replicas, want) || len(pg.Backfilling) != 0 {
				return fmt.Errorf("new pg %d placed on %v (backfilling %v), want %v", pg.ID, pg.Replicas, pg.Backfilling, want)
			}
			continue
		}
		if err := checkAdded(old, pg, p, next); err != nil {
			return err
		}
		same := slices.Equal(old.Replicas, pg.Replicas) && slices.Equal(old.Backfilling, pg.Backfilling)
		restarted := false
		if r, ok := deref(cmd).(NodeRestarted); ok && pg.HasReplica(r.ID) {
			restarted = true // its epoch moves with the lists unchanged
		}
		if same && !restarted && pg.Epoch != old.Epoch {
			return fmt.Errorf("pg %d unchanged but its epoch moved %d -> %d", pg.ID, old.Epoch, pg.Epoch)
		}
		if !same && pg.Epoch != next.Epoch {
			return fmt.Errorf("pg %d changed %v/%v -> %v/%v but its epoch is %d, map %d", pg.ID, old.Replicas, old.Backfilling, pg.Replicas, pg.Backfilling, pg.Epoch, next.Epoch)
		}
		// Minimal movement: a replica that was active (Up, eligible,
		// first in its domain) and still is Up and eligible in the same
		// domain is never dropped. Policy changes and re-joins that
		// relabel nodes may create domain clashes, so they are exempt.
		switch c := deref(cmd).(type) {
		case SetPolicy:
			continue
		case AddNode:
			if _, known := prev.Node(c.ID); known {
				continue
			}
		case SetNodeState:
			// A cancelled drain: the draining node has the data and
			// takes its slot back from an unfinished replacement.
			if on, _ := prev.Node(c.ID); on.State == Draining && c.State == Up && old.HasReplica(c.ID) {
				continue
			}
			// A held last copy coming back: it has the data and takes
			// its domain back from a replacement still backfilling.
			if on, _ := prev.Node(c.ID); on.State == Down && c.State == Up && old.Primary() == c.ID {
				continue
			}
		}
		oldDomains := map[string]bool{}
		for _, id := range old.Replicas {
			on, _ := prev.Node(id)
			od, ok := DomainOf(on, p)
			if !ok || on.State != Up || oldDomains[od] {
				continue
			}
			oldDomains[od] = true
			n, _ := next.Node(id)
			if pg.HasReplica(id) || !Eligible(n, p) {
				continue
			}
			return fmt.Errorf("pg %d dropped active replica %d (%v -> %v) on %#v", pg.ID, id, old.Replicas, pg.Replicas, cmd)
		}
	}
	return nil
}

// domainBests is the slow, obvious statement of fresh placement: take the
// best-scoring eligible node of every failure domain, then the
// p.Replicas domains whose best nodes score highest, best first.
func domainBests(pg PGID, p *Policy, nodes []Node) []NodeID {
	best := map[string]NodeID{}
	for i := range nodes {
		n := &nodes[i]
		if !Eligible(n, p) {
			continue
		}
		d, _ := DomainOf(n, p)
		if b, ok := best[d]; !ok || Score(pg, n.ID) > Score(pg, b) || Score(pg, n.ID) == Score(pg, b) && n.ID < b {
			best[d] = n.ID
		}
	}
	var ids []NodeID
	for _, id := range best {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b NodeID) int {
		sa, sb := Score(pg, a), Score(pg, b)
		switch {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return cmp.Compare(a, b)
	})
	if len(ids) > p.Replicas {
		ids = ids[:p.Replicas]
	}
	return ids
}

// checkAdded states replacement choice independently of Reconcile's
// greedy loop: a node X newly added to pg beats (by Score, then lower ID)
// every eligible node Y that was in neither list and lies in X's domain
// or in a domain that no active replica of pg holds.
func checkAdded(old, pg *PG, p *Policy, m *Map) error {
	held := map[string]bool{}
	for _, wantBackfill := range [2]bool{false, true} {
		for _, r := range pg.Replicas {
			n, _ := m.Node(r)
			if pg.IsBackfilling(r) != wantBackfill || n.State != Up {
				continue
			}
			if d, ok := DomainOf(n, p); ok {
				held[d] = true
			}
		}
	}
	better := func(a, b NodeID) bool {
		sa, sb := Score(pg.ID, a), Score(pg.ID, b)
		return sa > sb || sa == sb && a < b
	}
	for _, x := range pg.Replicas {
		if old.HasReplica(x) {
			continue
		}
		xn, _ := m.Node(x)
		xd, _ := DomainOf(xn, p)
		for i := range m.Nodes {
			y := &m.Nodes[i]
			if !Eligible(y, p) || old.HasReplica(y.ID) || pg.HasReplica(y.ID) {
				continue
			}
			if yd, _ := DomainOf(y, p); (yd == xd || !held[yd]) && better(y.ID, x) {
				return fmt.Errorf("pg %d added node %d, but node %d (domain %q) scores higher", pg.ID, x, y.ID, yd)
			}
		}
	}
	return nil
}

// sharesDomain reports whether node id is in the failure domain (under
// ct's policy on m) of one of ct's metadata members other than itself.
func sharesDomain(m *Map, ct *Container, id NodeID) bool {
	n, _ := m.Node(id)
	d, ok := DomainOf(n, &ct.Policy)
	if !ok {
		return false
	}
	for _, x := range ct.MetaMembers {
		if xn, _ := m.Node(x); x != id && xn != nil {
			if xd, ok := DomainOf(xn, &ct.Policy); ok && xd == d {
				return true
			}
		}
	}
	return false
}

// checkMetaSpread checks that after a node or policy command no two of
// ct's matching metadata members share a failure domain while an Up node
// that matches the policy is in a domain no member occupies.
func checkMetaSpread(m *Map, ct *Container) error {
	used := map[string]NodeID{}
	crowded := NodeID(0)
	for _, id := range ct.MetaMembers {
		n, _ := m.Node(id)
		d, ok := DomainOf(n, &ct.Policy)
		if !ok {
			continue
		}
		if _, dup := used[d]; dup {
			crowded = id
		}
		used[d] = id
	}
	if crowded == 0 {
		return nil
	}
	for i := range m.Nodes {
		n := &m.Nodes[i]
		if d, ok := DomainOf(n, &ct.Policy); ok && n.State == Up && used[d] == 0 && !slices.Contains(ct.MetaMembers, n.ID) {
			return fmt.Errorf("container %d: metadata member %d shares its failure domain with another member %v while node %d is up in domain %q, which none holds", ct.ID, crowded, ct.MetaMembers, n.ID, d)
		}
	}
	return nil
}

// checkMetaRecords checks how a command may change the containers'
// metadata records: a recorded bootstrap set never changes; members change
// only by node and policy commands (and by the fill of a container that
// had none); a member is dropped only when its node went Out, left the
// policy, or shared a failure domain with another member (spreadMeta),
// and after a node or policy command no members crowd a domain while a
// free one has an Up node; a list is
// short of MetaMembersMax only when no other candidate (not Out, matching
// the policy) exists; and a new container gets ChooseMetaMembers' choice.
func checkMetaRecords(prev, next *Map, cmd Command) error {
	for i := range next.Containers {
		ct := &next.Containers[i]
		var old *Container
		if prev != nil {
			old, _ = prev.Container(ct.ID)
		}
		nodesOrPolicy := false
		switch deref(cmd).(type) {
		case AddNode, SetNodeState, SetPolicy:
			nodesOrPolicy = true
		}
		if old == nil || len(old.MetaMembers) == 0 {
			var want []NodeID
			switch {
			case prev == nil:
				continue
			case old == nil: // created by cmd
				want = pickMeta(next, ct, nil, false)
			case nodesOrPolicy: // filled by the old map's rule, then repaired
				continue
			default: // filled from the map before cmd
				want = pickMeta(prev, ct, nil, false)
			}
			if len(want) == 0 {
				want = nil
			}
			if !slices.Equal(ct.MetaMembers, want) {
				return fmt.Errorf("container %d got metadata members %v, want %v", ct.ID, ct.MetaMembers, want)
			}
			continue
		}
		if len(old.MetaBootstrap) > 0 && !slices.Equal(old.MetaBootstrap, ct.MetaBootstrap) {
			return fmt.Errorf("container %d: bootstrap set %v changed to %v", ct.ID, old.MetaBootstrap, ct.MetaBootstrap)
		}
		if !nodesOrPolicy && !slices.Equal(old.MetaMembers, ct.MetaMembers) {
			return fmt.Errorf("container %d: %#v changed metadata members %v to %v", ct.ID, cmd, old.MetaMembers, ct.MetaMembers)
		}
		live := 0 // old members not Out
		for _, id := range old.MetaMembers {
			n, _ := next.Node(id)
			if n.State != Out {
				live++
			}
			if n.State != Out && matchesPolicy(n, &ct.Policy) && !slices.Contains(ct.MetaMembers, id) && !sharesDomain(next, ct, id) {
				return fmt.Errorf("container %d: %#v dropped metadata member %d, which is %v, matches the policy and had a failure domain of its own", ct.ID, cmd, id, n.State)
			}
		}
		if nodesOrPolicy {
			if err := checkMetaSpread(next, ct); err != nil {
				return fmt.Errorf("%#v: %w", cmd, err)
			}
		}
		// A member off the policy goes only for a node that takes its
		// place: the list never shrinks but for Out nodes.
		if len(ct.MetaMembers) < min(live, MetaMembersMax) {
			return fmt.Errorf("container %d: %#v shrank the metadata members %v to %v with none of them out", ct.ID, cmd, old.MetaMembers, ct.MetaMembers)
		}
		if len(ct.MetaMembers) < MetaMembersMax {
			for j := range next.Nodes {
				n := &next.Nodes[j]
				if _, ok := DomainOf(n, &ct.Policy); ok && n.State != Out && !slices.Contains(ct.MetaMembers, n.ID) {
					return fmt.Errorf("container %d: %d metadata members %v, and node %d could be one", ct.ID, len(ct.MetaMembers), ct.MetaMembers, n.ID)
				}
			}
		}
	}
	return nil
}
