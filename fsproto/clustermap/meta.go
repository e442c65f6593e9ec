package clustermap

import (
	"cmp"
	"fmt"
	"slices"
)

// MetaMembersMax is the size of a container's metadata group when the map
// has enough eligible nodes. Maps with larger groups do not decode: only
// ever raise it.
const MetaMembersMax = 3

// ChooseMetaMembers returns the nodes that a metadata group of container c
// would get from scratch on m, best first: the MetaMembersMax best by
// Score over c's first PG among the nodes that are not Out and match c's
// policy (DomainOf), distinct failure domains first, then the best
// remaining nodes (three members in two domains still survive one node's
// loss). A node's Up, Down or Draining state does not matter: only Out
// (the operator's verdict) excludes it. CreateContainer records this
// choice; it is empty when no node can hold c's metadata.
func ChooseMetaMembers(m *Map, c ContainerID) ([]NodeID, error) {
	ct, ok := m.Container(c)
	if !ok {
		return nil, fmt.Errorf("%w: container %d", ErrNotFound, c)
	}
	return pickMeta(m, ct, nil, false), nil
}

// metaCand is a node that may hold a metadata member of a container.
type metaCand struct {
	id     NodeID
	domain string
	score  uint64
	up     bool
}

// pickMeta returns have extended to MetaMembersMax nodes (or as many as
// there are) by the best candidates not in have: the nodes that are not
// Out and match ct's policy, by Score over ct's first PG (ties by id),
// first in failure domains no node of have occupies, then in any. With
// preferUp, Up nodes go before the others within each of these two
// rounds: a replacement that does not run cannot catch up, and the
// group's repair waits for it. have is not modified.
func pickMeta(m *Map, ct *Container, have []NodeID, preferUp bool) []NodeID {
	out := slices.Clone(have)
	if len(out) >= MetaMembersMax {
		return out
	}
	used := make(map[string]bool, MetaMembersMax)
	for _, id := range have {
		if n, ok := m.Node(id); ok {
			if d, ok := DomainOf(n, &ct.Policy); ok {
				used[d] = true
			}
		}
	}
	cs := metaCandidates(m, ct, have)
	upRounds := []bool{false}
	if preferUp {
		upRounds = []bool{true, false}
	}
	for _, freeDomain := range []bool{true, false} {
		for _, upOnly := range upRounds {
			for _, c := range cs {
				if len(out) >= MetaMembersMax {
					return out
				}
				if (upOnly && !c.up) || (freeDomain && used[c.domain]) || slices.Contains(out, c.id) {
					continue
				}
				used[c.domain] = true
				out = append(out, c.id)
			}
		}
	}
	return out
}

// metaCandidates returns the nodes that may hold a metadata member of ct
// and are not in skip: not Out and matching ct's policy, best first by
// Score over ct's first PG (ties by id).
func metaCandidates(m *Map, ct *Container, skip []NodeID) []metaCand {
	var cs []metaCand
	for i := range m.Nodes {
		n := &m.Nodes[i]
		if n.State == Out || slices.Contains(skip, n.ID) {
			continue
		}
		if d, ok := DomainOf(n, &ct.Policy); ok {
			cs = append(cs, metaCand{n.ID, d, Score(ct.FirstPG, n.ID), n.State == Up})
		}
	}
	slices.SortFunc(cs, func(a, b metaCand) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	return cs
}

// recordMeta gives every container without metadata members the ones
// ChooseMetaMembers picks on m as it is, and makes them its bootstrap set
// if it has none. Apply runs it before each command, so a container of a
// map from before the record existed (version 1 or 2) gets the members
// its nodes computed from that same map, which are the ones its group
// runs with.
func (m *Map) recordMeta() {
	for i := range m.Containers {
		ct := &m.Containers[i]
		if len(ct.MetaMembers) > 0 {
			continue
		}
		ct.MetaMembers = pickMeta(m, ct, nil, false)
		if len(ct.MetaBootstrap) == 0 {
			ct.MetaBootstrap = slices.Clone(ct.MetaMembers)
		}
		if len(ct.MetaMembers) == 0 {
			// Every member went Out and no node can take their place:
			// the group is gone with them, and the next one starts
			// afresh (its own bootstrap set, not formed).
			ct.MetaMembers, ct.MetaBootstrap, ct.MetaFormed = nil, nil, false
		}
	}
}

// repairMeta runs after a command that changed nodes or a policy: in
// every container it drops the metadata members whose nodes are Out or no
// longer match the container's policy (a changed selector, or a node's
// labels), moves members that share a failure domain with another member
// to Up nodes in domains no member occupies while there are such nodes
// (spreadMeta), and fills the list up to MetaMembersMax with the best
// candidates (pickMeta, Up nodes first). A member that does not match
// stays while no matching node can take its place: the group keeps its
// size, as moving it would leave fewer members. Members on Down or
// Draining nodes stay, as the group carries on with a majority and they
// catch up when back.
func (m *Map) repairMeta() {
	for i := range m.Containers {
		ct := &m.Containers[i]
		var kept, stray []NodeID // matching members; members off the policy
		for _, id := range ct.MetaMembers {
			n, ok := m.Node(id)
			switch {
			case !ok || n.State == Out:
			case !matchesPolicy(n, &ct.Policy):
				stray = append(stray, id)
			default:
				kept = append(kept, id)
			}
		}
		moved := m.spreadMeta(ct, kept)
		if !moved && len(kept) == len(ct.MetaMembers) && len(kept) >= MetaMembersMax {
			continue
		}
		next := pickMeta(m, ct, kept, true)
		for _, id := range stray {
			if len(next) < MetaMembersMax {
				next = append(next, id)
			}
		}
		if len(next) == 0 {
			next = nil
		}
		ct.MetaMembers = next
		if len(ct.MetaBootstrap) == 0 {
			ct.MetaBootstrap = slices.Clone(next)
		}
	}
}

// spreadMeta replaces, in place, members of ct's metadata group that
// share a failure domain with another member by Up nodes in failure
// domains no member occupies, best by Score over ct's first PG, one per
// domain, for as long as there are both; it reports whether it replaced
// any. members must all match ct's policy. In a crowded domain the member
// that stays is an Up one if there is one, else the first listed; of the
// crowded, those not Up move first. A group whose members crowd one
// domain (the nodes of other zones joined after it was made, or the
// policy's failure domain changed) would otherwise lose its majority
// with that domain, while the container's data PGs, placed over domains,
// survive it. Without a free domain nothing moves: the members stay
// where they are, and the move waits for a node to join or come back
// Up.
func (m *Map) spreadMeta(ct *Container, members []NodeID) bool {
	type member struct {
		at     int // index in members
		domain string
		up     bool
	}
	byDomain := map[string][]member{}
	var domains []string // in order of first appearance, for a deterministic walk
	for i, id := range members {
		n, _ := m.Node(id)
		d, _ := DomainOf(n, &ct.Policy)
		if _, seen := byDomain[d]; !seen {
			domains = append(domains, d)
		}
		byDomain[d] = append(byDomain[d], member{i, d, n.State == Up})
	}
	if len(domains) == len(members) {
		return false
	}
	var crowded []member
	for _, d := range domains {
		ms := byDomain[d]
		// The first Up member stays (the first listed when none is Up).
		stay := 0
		for j, x := range ms {
			if x.up {
				stay = j
				break
			}
		}
		for j, x := range ms {
			if j != stay {
				crowded = append(crowded, x)
			}
		}
	}
	slices.SortStableFunc(crowded, func(a, b member) int {
		switch {
		case a.up == b.up:
			return 0
		case !a.up:
			return -1
		}
		return 1
	})
	used := make(map[string]bool, len(domains))
	for _, d := range domains {
		used[d] = true
	}
	moved := false
	for _, c := range metaCandidates(m, ct, members) {
		if len(crowded) == 0 {
			break
		}
		if !c.up || used[c.domain] {
			continue
		}
		used[c.domain] = true
		members[crowded[0].at] = c.id
		crowded = crowded[1:]
		moved = true
	}
	return moved
}

// matchesPolicy reports whether node n may hold data of a container with
// policy p (its selectors and failure-domain label; see DomainOf).
func matchesPolicy(n *Node, p *Policy) bool {
	_, ok := DomainOf(n, p)
	return ok
}

// checkMeta checks a container's metadata record (see Check).
func (m *Map) checkMeta(ct *Container) error {
	if len(ct.MetaMembers) > MetaMembersMax || len(ct.MetaBootstrap) > MetaMembersMax {
		return fmt.Errorf("container %d: %d metadata members and %d bootstrap members, at most %d each", ct.ID, len(ct.MetaMembers), len(ct.MetaBootstrap), MetaMembersMax)
	}
	if len(ct.MetaBootstrap) == 0 && len(ct.MetaMembers) > 0 {
		return fmt.Errorf("container %d: metadata members %v without a bootstrap set", ct.ID, ct.MetaMembers)
	}
	if ct.MetaFormed && len(ct.MetaBootstrap) == 0 {
		return fmt.Errorf("container %d: metadata group marked formed without a bootstrap set", ct.ID)
	}
	for i, id := range ct.MetaMembers {
		n, ok := m.Node(id)
		switch {
		case !ok:
			return fmt.Errorf("container %d: metadata member %d is no node", ct.ID, id)
		case n.State == Out:
			return fmt.Errorf("container %d: metadata member %d is out", ct.ID, id)
		case slices.Contains(ct.MetaMembers[:i], id):
			return fmt.Errorf("container %d: metadata member %d listed twice", ct.ID, id)
		}
	}
	for i, id := range ct.MetaBootstrap {
		if _, ok := m.Node(id); !ok {
			return fmt.Errorf("container %d: metadata bootstrap member %d is no node", ct.ID, id)
		}
		if slices.Contains(ct.MetaBootstrap[:i], id) {
			return fmt.Errorf("container %d: metadata bootstrap member %d listed twice", ct.ID, id)
		}
	}
	return nil
}
