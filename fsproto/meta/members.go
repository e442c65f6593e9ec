package meta

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/weftfs/weft/fsproto/clustermap"
)

// MembersMax is the size of a container's metadata group when the map
// has enough nodes.
const MembersMax = 3

// groupIDBase offsets container ids into raft group ids: the managers'
// group is 1 (manager.GroupID), container c's metadata group is
// groupIDBase + c. On-wire (raft batches carry it): never change.
const groupIDBase uint64 = 1 << 40

// GroupID returns the raft group id of container c's metadata group on a
// node's raftgroup.NetRouter.
func GroupID(c clustermap.ContainerID) uint64 { return groupIDBase + uint64(c) }

// Members returns the nodes that run container c's metadata group, in
// rank order: the MembersMax best by clustermap.Score over the
// container's first PG among the nodes that are not Out and match the
// container's policy (selector and failure-domain label), distinct
// failure domains first. Unlike placement's Rank, a node's Up/Down/Draining
// state does not matter, so a Down member stays a member and the group
// carries on with the majority; only Out (the operator's verdict) drops a
// node from the computation.
//
// NB: the set is a function of the map's nodes, so adding nodes, or
// taking one Out, can change it; raft membership does not follow (see the
// package doc, "Membership").
func Members(m *clustermap.Map, c clustermap.ContainerID) ([]clustermap.NodeID, error) {
	ct, ok := m.Container(c)
	if !ok {
		return nil, fmt.Errorf("meta: container %d: %w", c, clustermap.ErrNotFound)
	}
	pg := ct.FirstPG
	type cand struct {
		id     clustermap.NodeID
		domain string
		score  uint64
	}
	var cs []cand
	for i := range m.Nodes {
		n := &m.Nodes[i]
		if n.State == clustermap.Out {
			continue
		}
		d, ok := clustermap.DomainOf(n, &ct.Policy)
		if !ok {
			continue
		}
		cs = append(cs, cand{n.ID, d, clustermap.Score(pg, n.ID)})
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	var out []clustermap.NodeID
	used := map[string]bool{}
	for _, c := range cs {
		if len(out) < MembersMax && !used[c.domain] {
			used[c.domain] = true
			out = append(out, c.id)
		}
	}
	// Fewer domains than members: fill with the best remaining nodes, as
	// three members in two domains still survive one node's loss.
	for _, c := range cs {
		if len(out) < MembersMax && !slices.Contains(out, c.id) {
			out = append(out, c.id)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("meta: container %d: no node that is not out matches its policy: %w", c, clustermap.ErrNotFound)
	}
	return out, nil
}
