package clustermap

import (
	"fmt"
	"slices"
)

// Check walks m and returns an error describing the first broken
// invariant, or nil. Maps built by New and Apply always pass; the decoder
// runs it so that a map from the wire or a snapshot is as sound as one
// built here. It checks:
//
//   - Nodes, Containers and PGs are sorted by ID without duplicates, IDs
//     are non-zero and below the Next counters;
//   - every node, name, label and policy is within its limits, addresses
//     are unique among nodes not Out, container names are unique;
//   - each container's PG range lies in [1, NextPG), ranges do not
//     overlap, and PGs holds exactly the PGs of the ranges;
//   - a PG's epoch is at most the map's; its replicas are distinct nodes
//     that are Up or Draining, at most 2×ReplicasMax of them, but for a
//     Down primary that is the PG's only caught-up replica (the PG waits
//     for it);
//     Backfilling is a subsequence of Replicas and no caught-up replica
//     follows a backfilling one (so the primary has the data whenever a
//     replica has it);
//   - a container's MetaMembers are distinct nodes that are not Out,
//     its MetaBootstrap distinct nodes, at most MetaMembersMax each, and
//     MetaBootstrap is empty only when MetaMembers is too;
//   - a PG's active replicas (Up, matching its policy, first in their
//     failure domain) are at most Replicas; a later replica in the same
//     domain is allowed only if both are caught up (Reconcile keeps it as
//     a retiring replica while the PG lacks caught-up ones).
func (m *Map) Check() error {
	if m.NextContainer == 0 || m.NextPG == 0 {
		return fmt.Errorf("next container %d and next pg %d must be non-zero", m.NextContainer, m.NextPG)
	}
	addrs := make(map[string]NodeID, len(m.Nodes))
	for i := range m.Nodes {
		n := &m.Nodes[i]
		if i > 0 && n.ID <= m.Nodes[i-1].ID {
			return fmt.Errorf("node %d follows node %d", n.ID, m.Nodes[i-1].ID)
		}
		if err := checkNode(n); err != nil {
			return err
		}
		if n.State == Out {
			continue
		}
		if o, dup := addrs[n.Addr]; dup {
			return fmt.Errorf("nodes %d and %d share address %s", o, n.ID, n.Addr)
		}
		addrs[n.Addr] = n.ID
	}
	names := make(map[string]bool, len(m.Containers))
	var pgTotal uint64
	for i := range m.Containers {
		c := &m.Containers[i]
		if c.ID == 0 || c.ID >= m.NextContainer {
			return fmt.Errorf("container id %d not in 1..%d", c.ID, m.NextContainer-1)
		}
		if i > 0 && c.ID <= m.Containers[i-1].ID {
			return fmt.Errorf("container %d follows container %d", c.ID, m.Containers[i-1].ID)
		}
		if err := checkName(c.Name); err != nil {
			return fmt.Errorf("container %d: %v", c.ID, err)
		}
		if names[c.Name] {
			return fmt.Errorf("container name %q used twice", c.Name)
		}
		names[c.Name] = true
		if err := c.Policy.Validate(); err != nil {
			return fmt.Errorf("container %d: %v", c.ID, err)
		}
		if c.FirstPG == 0 || uint64(c.FirstPG)+uint64(c.Policy.PGCount) > uint64(m.NextPG) {
			return fmt.Errorf("container %d: pgs %d..+%d not in 1..%d", c.ID, c.FirstPG, c.Policy.PGCount, m.NextPG-1)
		}
		if i > 0 {
			_, end := m.Containers[i-1].PGs()
			if c.FirstPG < end {
				return fmt.Errorf("container %d: first pg %d inside container %d's pgs", c.ID, c.FirstPG, m.Containers[i-1].ID)
			}
		}
		if err := m.checkMeta(c); err != nil {
			return err
		}
		pgTotal += uint64(c.Policy.PGCount)
	}
	if uint64(len(m.PGs)) != pgTotal {
		return fmt.Errorf("%d pgs, the containers own %d", len(m.PGs), pgTotal)
	}
	for i := range m.PGs {
		pg := &m.PGs[i]
		if i > 0 && pg.ID <= m.PGs[i-1].ID {
			return fmt.Errorf("pg %d follows pg %d", pg.ID, m.PGs[i-1].ID)
		}
		c, ok := m.Container(pg.Container)
		if !ok {
			return fmt.Errorf("pg %d: no container %d", pg.ID, pg.Container)
		}
		if first, end := c.PGs(); pg.ID < first || pg.ID >= end {
			return fmt.Errorf("pg %d outside container %d's pgs %d..%d", pg.ID, c.ID, first, end-1)
		}
		if err := m.checkPG(pg, &c.Policy); err != nil {
			return fmt.Errorf("pg %d: %v", pg.ID, err)
		}
	}
	for i := range m.Keys {
		if err := m.checkKey(i); err != nil {
			return err
		}
	}
	return nil
}

func (m *Map) checkKey(i int) error {
	k := &m.Keys[i]
	if err := CheckKeyID(k.ID); err != nil {
		return err
	}
	if i > 0 && k.ID <= m.Keys[i-1].ID {
		return fmt.Errorf("key %s follows key %s", k.ID, m.Keys[i-1].ID)
	}
	if !k.Access.Valid() {
		return fmt.Errorf("key %s: access %d", k.ID, uint8(k.Access))
	}
	if k.Created == 0 || k.Created > m.Epoch {
		return fmt.Errorf("key %s: created at epoch %d, not in 1..%d", k.ID, k.Created, m.Epoch)
	}
	if k.Container == 0 || k.Container >= m.NextContainer {
		return fmt.Errorf("key %s: container %d not in 1..%d", k.ID, k.Container, m.NextContainer-1)
	}
	if k.Live() {
		if _, ok := m.Container(k.Container); !ok {
			return fmt.Errorf("live key %s of missing container %d", k.ID, k.Container)
		}
	} else if k.Revoked <= k.Created || k.Revoked > m.Epoch {
		return fmt.Errorf("key %s: revoked at epoch %d, not in %d..%d", k.ID, k.Revoked, k.Created+1, m.Epoch)
	}
	return nil
}

func (m *Map) checkPG(pg *PG, p *Policy) error {
	if pg.Epoch > m.Epoch {
		return fmt.Errorf("epoch %d after map epoch %d", pg.Epoch, m.Epoch)
	}
	if len(pg.Replicas) > 2*ReplicasMax {
		return fmt.Errorf("%d replicas, at most %d", len(pg.Replicas), 2*ReplicasMax)
	}
	domains := make(map[string]NodeID, len(pg.Replicas))
	active := 0
	bf := 0
	for i, r := range pg.Replicas {
		if slices.Contains(pg.Replicas[:i], r) {
			return fmt.Errorf("node %d is a replica twice", r)
		}
		n, ok := m.Node(r)
		if !ok {
			return fmt.Errorf("replica %d is no node", r)
		}
		if n.State != Up && n.State != Draining {
			lastCopy := n.State == Down && i == 0 && !pg.IsBackfilling(r) && len(pg.Backfilling) == len(pg.Replicas)-1
			if !lastCopy {
				return fmt.Errorf("replica %d is %v", r, n.State)
			}
		}
		isBF := pg.IsBackfilling(r)
		if isBF {
			if bf >= len(pg.Backfilling) || pg.Backfilling[bf] != r {
				return fmt.Errorf("backfilling %v is not in the order of replicas %v", pg.Backfilling, pg.Replicas)
			}
			bf++
		} else if bf > 0 {
			return fmt.Errorf("caught-up replica %d follows a backfilling one in %v", r, pg.Replicas)
		}
		if d, ok := DomainOf(n, p); ok && n.State == Up {
			if o, clash := domains[d]; clash {
				// Reconcile makes the later one retiring; it only
				// stays if it is caught up and the earlier is too.
				if isBF || pg.IsBackfilling(o) {
					return fmt.Errorf("replicas %d and %d share failure domain %q", o, r, d)
				}
				continue
			}
			domains[d] = r
			active++
		}
	}
	if bf != len(pg.Backfilling) {
		return fmt.Errorf("backfilling %v holds nodes that are no replicas %v", pg.Backfilling, pg.Replicas)
	}
	if active > p.Replicas {
		return fmt.Errorf("%d active replicas, policy wants %d", active, p.Replicas)
	}
	return nil
}
