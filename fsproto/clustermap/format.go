package clustermap

import (
	"fmt"
	"slices"
	"strings"
)

// String renders m as text, one object per line, for logs, `weft status`
// and the scenario tests. It is deterministic (sorted IDs and label
// keys). Backfilling replicas carry a '+', replicas on Draining nodes a
// '~'; a container's metadata members follow "meta", and its bootstrap
// set follows "bootstrap" when it differs from them, then "formed" when
// the group is marked formed:
//
//	epoch 9
//	node 1 up 10.0.0.1:7000 cap 1099511627776 rack=r1 zone=a
//	container 1 db pgs 1..4 replicas 3 domain zone chunk 4194304 meta [1 5 3]
//	pg 1 epoch 7 backfilling [1 5 3+]
func (m *Map) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "epoch %d\n", m.Epoch)
	for i := range m.Nodes {
		n := &m.Nodes[i]
		fmt.Fprintf(&b, "node %d %v %s cap %d%s\n", n.ID, n.State, n.Addr, n.Capacity, formatLabels(n.Labels))
	}
	for i := range m.Containers {
		c := &m.Containers[i]
		first, end := c.PGs()
		fmt.Fprintf(&b, "container %d %s pgs %d..%d replicas %d", c.ID, c.Name, first, end-1, c.Policy.Replicas)
		if c.Policy.FailureDomain != "" {
			fmt.Fprintf(&b, " domain %s", c.Policy.FailureDomain)
		}
		fmt.Fprintf(&b, " chunk %d", c.Policy.ChunkSize)
		if len(c.Policy.Selector) > 0 {
			fmt.Fprintf(&b, " select%s", formatLabels(c.Policy.Selector))
		}
		if len(c.MetaMembers) > 0 || len(c.MetaBootstrap) > 0 {
			fmt.Fprintf(&b, " meta %v", c.MetaMembers)
			if !slices.Equal(c.MetaMembers, c.MetaBootstrap) {
				fmt.Fprintf(&b, " bootstrap %v", c.MetaBootstrap)
			}
			if c.MetaFormed {
				b.WriteString(" formed")
			}
		}
		b.WriteByte('\n')
	}
	for i := range m.PGs {
		pg := &m.PGs[i]
		fmt.Fprintf(&b, "pg %d epoch %d %v [", pg.ID, pg.Epoch, m.PGState(pg))
		for j, r := range pg.Replicas {
			if j > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprint(&b, uint64(r))
			if pg.IsBackfilling(r) {
				b.WriteByte('+')
			}
			if n, ok := m.Node(r); ok && n.State == Draining {
				b.WriteByte('~')
			}
		}
		b.WriteString("]\n")
	}
	for i := range m.Keys {
		k := &m.Keys[i]
		fmt.Fprintf(&b, "key %s container %d %v created %d", k.ID, k.Container, k.Access, k.Created)
		if !k.Live() {
			fmt.Fprintf(&b, " revoked %d", k.Revoked)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func formatLabels(l map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(l) {
		fmt.Fprintf(&b, " %s=%s", k, l[k])
	}
	return b.String()
}
