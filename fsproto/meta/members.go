package meta

import (
	"fmt"

	"github.com/weftfs/weft/fsproto/clustermap"
)

// MembersMax is the size of a container's metadata group when the map
// has enough nodes.
const MembersMax = clustermap.MetaMembersMax

// groupIDBase offsets container ids into raft group ids: the managers'
// group is 1 (manager.GroupID), container c's metadata group is
// groupIDBase + c. On-wire (raft batches carry it): never change.
const groupIDBase uint64 = 1 << 40

// GroupID returns the raft group id of container c's metadata group on a
// node's raftgroup.NetRouter.
func GroupID(c clustermap.ContainerID) uint64 { return groupIDBase + uint64(c) }

// Members returns the nodes that run container c's metadata group: the
// map's record of them (clustermap.Container.MetaMembers), which the
// managers set at CreateContainer and change only by commands (a member
// whose node is taken Out is replaced; see clustermap's "Metadata
// groups"). A container without a record (a map from before the record,
// or one no node could hold yet) gets what clustermap.ChooseMetaMembers
// computes: the MembersMax best nodes by clustermap.Score over the
// container's first PG among the nodes that are not Out and match its
// policy, distinct failure domains first, whatever their Up/Down state.
// That is the rule the managers record such a container with at their
// next command, and the one they pick replacements by.
func Members(m *clustermap.Map, c clustermap.ContainerID) ([]clustermap.NodeID, error) {
	ct, ok := m.Container(c)
	if !ok {
		return nil, fmt.Errorf("meta: container %d: %w", c, clustermap.ErrNotFound)
	}
	ids := ct.MetaMembers
	if len(ids) == 0 {
		ids, _ = clustermap.ChooseMetaMembers(m, c)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("meta: container %d: no node that is not out matches its policy: %w", c, clustermap.ErrNotFound)
	}
	return ids, nil
}

// Bootstrap returns the membership container c's group starts with (see
// clustermap.Container.MetaBootstrap), or, for a container without a
// record, Members' answer, which is what a group of a map from before the
// record started with.
func Bootstrap(m *clustermap.Map, c clustermap.ContainerID) ([]clustermap.NodeID, error) {
	ct, ok := m.Container(c)
	if !ok {
		return nil, fmt.Errorf("meta: container %d: %w", c, clustermap.ErrNotFound)
	}
	if len(ct.MetaBootstrap) > 0 {
		return ct.MetaBootstrap, nil
	}
	return Members(m, c)
}
