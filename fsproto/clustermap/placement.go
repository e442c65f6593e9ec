package clustermap

import (
	"cmp"
	"slices"
	"sort"
	"strconv"
)

// mix64 is the splitmix64 finalizer: a fixed bijection of uint64 with full
// avalanche. Placement must come out the same on every manager, node and
// client, on every platform and Go version, so it uses only integer
// arithmetic with fixed constants (no hash/maphash, which is seeded per
// process, and no floating point, which may fuse differently per
// architecture).
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Domain separation constants, so that PGOf and Score never hash the same
// input sequence to related values.
const (
	seedChunk = 0x9e3779b97f4a7c15
	seedPG    = 0xc2b2ae3d27d4eb4f
	seedNode  = 0x165667b19e3779f9
)

// PGOf returns the PG of container c that holds chunk index of inode.
// Consecutive chunks of one file land on unrelated PGs, so a large file
// spreads over the cluster. The result depends only on c.ID, c.FirstPG and
// c.Policy.PGCount (fixed at creation), so it never changes for a chunk.
// c must be valid (a container of a map): PGCount a power of two.
func PGOf(c Container, inode, index uint64) PGID {
	h := mix64(uint64(c.ID) ^ seedChunk)
	h = mix64(h ^ inode)
	h = mix64(h ^ index)
	return c.FirstPG + PGID(h&uint64(c.Policy.PGCount-1))
}

// Score is the rendezvous (highest random weight) score of node n for PG
// pg: the PG's replicas are the eligible nodes with the highest scores, in
// distinct failure domains. Capacity does not weight the score: a weighted
// score needs a logarithm, and floating point is not bit-identical across
// platforms; PGs spread evenly by count instead.
func Score(pg PGID, n NodeID) uint64 {
	return mix64(mix64(uint64(pg)^seedPG) ^ mix64(uint64(n)^seedNode))
}

// DomainOf returns n's failure domain under policy p, and whether n can
// hold p's replicas by its labels: its labels hold every pair of
// p.Selector, and the p.FailureDomain label if p names one. It ignores
// n.State. With no FailureDomain each node is its own domain.
func DomainOf(n *Node, p *Policy) (domain string, ok bool) {
	for k, v := range p.Selector {
		if lv, has := n.Labels[k]; !has || lv != v {
			return "", false
		}
	}
	if p.FailureDomain == "" {
		// Each node its own domain; the '#' keeps the form apart
		// from label values, which never hold one.
		return "#" + strconv.FormatUint(uint64(n.ID), 10), true
	}
	d, has := n.Labels[p.FailureDomain]
	return d, has
}

// Eligible reports whether n may be chosen as a new replica under p: it
// is Up and DomainOf accepts it.
func Eligible(n *Node, p *Policy) bool {
	if n.State != Up {
		return false
	}
	_, ok := DomainOf(n, p)
	return ok
}

// Rank returns the nodes eligible for p (nodes sorted by ID, as in Map),
// best first for PG pg: by Score descending, ties (which need a 64-bit
// collision) broken by the lower ID.
func Rank(pg PGID, p *Policy, nodes []Node) []NodeID {
	type cand struct {
		id    NodeID
		score uint64
	}
	var cs []cand
	for i := range nodes {
		if Eligible(&nodes[i], p) {
			cs = append(cs, cand{nodes[i].ID, Score(pg, nodes[i].ID)})
		}
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	ids := make([]NodeID, len(cs))
	for i, c := range cs {
		ids[i] = c.id
	}
	return ids
}

// Reconcile returns pg with its replica list brought in line with policy
// p over nodes (sorted by ID), moving as little data as possible. ID,
// Container and Epoch are returned unchanged: the caller sets the epoch
// when the lists changed. The rules, in order:
//
//   - A replica whose node is unknown, Down or Out is dropped.
//   - A replica on an Up node that DomainOf accepts, in a domain no
//     earlier kept replica occupies, is kept as an active replica.
//     Caught-up replicas claim domains before backfilling ones, so a
//     domain clash never evicts the one that has the data.
//   - Any other replica (Draining, no longer matching the policy, or in a
//     clashing domain) is retiring. A backfilling retiring replica is
//     dropped at once (it has nothing to give); a caught-up one stays
//     while the PG has fewer than p.Replicas caught-up active replicas,
//     and only as many of them (the first ones) as make up the shortfall.
//   - More active replicas than p.Replicas (the policy shrank): the
//     backfilling ones go first, then the last caught-up ones.
//   - Fewer: the best-scoring eligible nodes (Rank) in free domains fill
//     up to p.Replicas, as backfilling replicas. If too few exist the PG
//     stays degraded; Reconcile never fails.
//   - Order: caught-up active replicas (in their old order), then
//     retiring ones, then backfilling ones (old ones first). So the
//     primary is the first surviving caught-up replica when one exists.
//
// A node that comes back Up is not swapped back into a PG whose
// replacement took its place (that would move data twice); it is just
// eligible again. A Draining node set Up again (a cancelled drain) is
// still a replica: it becomes active again, and a replacement that has
// not caught up yet may be dropped for it. Reconcile is idempotent:
// Reconcile(Reconcile(pg)) has the same lists as Reconcile(pg).
func Reconcile(pg PG, p *Policy, nodes []Node) PG {
	return reconcile(pg, p, nodes, false)
}

// reconcile is Reconcile; fresh places a PG that holds no data yet, so
// the nodes it adds need no backfill.
func reconcile(pg PG, p *Policy, nodes []Node, fresh bool) PG {
	lookup := func(id NodeID) *Node {
		i, ok := sort.Find(len(nodes), func(i int) int { return cmp.Compare(id, nodes[i].ID) })
		if !ok {
			return nil
		}
		return &nodes[i]
	}
	var caught, retiring, filling []NodeID
	var held NodeID // the first caught-up replica that is Down
	claimed := make(map[string]bool, len(pg.Replicas)+p.Replicas)
	for _, wantBackfill := range [2]bool{false, true} {
		for _, r := range pg.Replicas {
			bf := pg.IsBackfilling(r)
			if bf != wantBackfill {
				continue
			}
			n := lookup(r)
			if n != nil && n.State == Down && !bf && held == 0 {
				held = r
			}
			if n == nil || n.State == Down || n.State == Out {
				continue
			}
			d, ok := DomainOf(n, p)
			switch {
			case n.State == Up && ok && !claimed[d]:
				claimed[d] = true
				if bf {
					filling = append(filling, r)
				} else {
					caught = append(caught, r)
				}
			case !bf:
				retiring = append(retiring, r)
			}
		}
	}
	if len(caught) > p.Replicas {
		caught, filling = caught[:p.Replicas], nil
	} else if len(caught)+len(filling) > p.Replicas {
		filling = filling[:p.Replicas-len(caught)]
	}
	if short := p.Replicas - len(caught); len(retiring) > short {
		retiring = retiring[:max(short, 0)]
	}
	if len(caught) == 0 && len(retiring) == 0 && held != 0 {
		// The PG's last caught-up replica is Down: it stays, as the
		// primary, so that the PG waits for it rather than let a
		// backfilling replica, which lacks acknowledged writes, lead.
		// Only Out (the operator gave its data up) drops it.
		retiring = []NodeID{held}
	}
	var added []NodeID
	if len(caught)+len(filling) < p.Replicas {
		for _, id := range Rank(pg.ID, p, nodes) {
			if len(caught)+len(filling)+len(added) == p.Replicas {
				break
			}
			if pg.HasReplica(id) {
				// An Up, eligible old replica not kept above lost a
				// domain clash (its domain is claimed) or was a
				// backfilling replica trimmed away (then the PG is
				// full and the loop already stopped).
				continue
			}
			d, _ := DomainOf(lookup(id), p)
			if claimed[d] {
				continue
			}
			claimed[d] = true
			added = append(added, id)
		}
	}
	out := PG{ID: pg.ID, Container: pg.Container, Epoch: pg.Epoch}
	out.Replicas = make([]NodeID, 0, len(caught)+len(retiring)+len(filling)+len(added))
	out.Replicas = append(append(out.Replicas, caught...), retiring...)
	if fresh {
		// Nothing to copy: the new replicas are caught up already.
		out.Replicas = append(append(out.Replicas, added...), filling...)
		added = nil
	} else {
		out.Replicas = append(append(out.Replicas, filling...), added...)
	}
	if n := len(filling) + len(added); n > 0 {
		out.Backfilling = append(append(make([]NodeID, 0, n), filling...), added...)
	}
	if len(out.Replicas) == 0 {
		out.Replicas = nil
	}
	return out
}
