package clustermap

import (
	"fmt"
	"slices"
	"testing"
)

// TestPlacementBalance places 64 PGs × 3 replicas over 6 nodes in 3 zones
// (two per zone, failure domain "zone"), for 50 clusters with different
// node IDs, and checks that load spreads as a fair random choice would.
//
// With one replica per zone, a node's replica count is Binomial(64, 1/2):
// mean 32, standard deviation 4. Its primary count is Binomial(64, 1/6)
// (the best score among six): mean 10.7, sd 3.0. The bounds below are 4.5
// standard deviations, which a fair hash misses with probability about
// 7e-6 per node (2e-3 over all 300 nodes), so a failure means skew, not
// bad luck: replicas in [14, 50], primaries at most 24 (and every node
// primary of at least one PG, which a fair choice misses with
// probability (5/6)^64 = 9e-6). Per-node bounds that loose would miss a
// mild bias, so the test also compares the mean squared deviation over
// all 300 nodes with the binomial variance. Their ratio is about a
// chi-square divided by its degrees of freedom: 150 for replicas (the two
// nodes of a zone deviate by the same amount), about 250 for primaries,
// so its sd is at most 0.115 and [0.6, 1.4] is over 3.4 sd. (Over 1000
// clusters the ratios come out 0.95 and 0.99.)
func TestPlacementBalance(t *testing.T) {
	const (
		clusters = 50
		pgs      = 64
		nodes    = 6
	)
	var sqRep, sqPrim float64
	for k := 0; k < clusters; k++ {
		m := New()
		for i := 1; i <= nodes; i++ {
			id := NodeID(k*1000 + i)
			m = mustApply(t, m, AddNode{ID: id, Addr: fmt.Sprintf("10.0.%d.%d:7000", k, i), Labels: map[string]string{"zone": fmt.Sprint("z", i%3)}})
		}
		m = mustApply(t, m, CreateContainer{Name: "db", Policy: Policy{Replicas: 3, FailureDomain: "zone", PGCount: pgs}})
		prim := map[NodeID]int{}
		rep := map[NodeID]int{}
		for _, pg := range m.PGs {
			prim[pg.Primary()]++
			for _, r := range pg.Replicas {
				rep[r]++
			}
		}
		for _, n := range m.Nodes {
			r, p := rep[n.ID], prim[n.ID]
			if r < 14 || r > 50 || p < 1 || p > 24 {
				t.Errorf("cluster %d node %d: %d replicas (want 14..50), %d primaries (want 1..24)", k, n.ID, r, p)
			}
			sqRep += float64((r - 32) * (r - 32))
			dp := float64(p) - pgs/6.0
			sqPrim += dp * dp
		}
	}
	n := float64(clusters * nodes)
	repRatio := sqRep / n / (pgs * 0.5 * 0.5)
	primRatio := sqPrim / n / (pgs * (1.0 / 6) * (5.0 / 6))
	t.Logf("variance ratio: replicas %.2f, primaries %.2f", repRatio, primRatio)
	if repRatio < 0.6 || repRatio > 1.4 || primRatio < 0.6 || primRatio > 1.4 {
		t.Errorf("variance ratio replicas %.2f, primaries %.2f: want 0.6..1.4", repRatio, primRatio)
	}
}

// TestPGOfSpreads checks that chunks spread over a container's PGs
// (chi-square bound as above) and stay in its range.
func TestPGOfSpreads(t *testing.T) {
	c := Container{ID: 42, FirstPG: 100, Policy: Policy{PGCount: 64}}
	count := make([]int, 64)
	const chunks = 64 * 200
	for inode := uint64(1); inode <= 100; inode++ {
		for index := uint64(0); index < chunks/100; index++ {
			pg := PGOf(c, inode, index)
			if pg < 100 || pg >= 164 {
				t.Fatalf("PGOf(%d, %d) = %d, outside 100..163", inode, index, pg)
			}
			count[pg-100]++
		}
	}
	var sq float64
	for _, n := range count {
		sq += float64((n - 200) * (n - 200))
	}
	// Multinomial: E[Σ(n-200)²] = chunks·(1-1/64); 64 cells give a ratio
	// sd of about 0.18, so [0.4, 1.6] is more than 3 sd.
	ratio := sq / (chunks * 63.0 / 64)
	if ratio < 0.4 || ratio > 1.6 {
		t.Errorf("chunk spread variance ratio %.2f, want 0.4..1.6 (counts %v)", ratio, count)
	}
	if one := (Container{ID: 1, FirstPG: 7, Policy: Policy{PGCount: 1}}); PGOf(one, 5, 5) != 7 {
		t.Error("a one-PG container maps a chunk elsewhere")
	}
}

// TestScoreIsFixed pins a few scores: placement is part of the protocol
// (every client computes it), so a change to the mixer must be deliberate.
func TestScoreIsFixed(t *testing.T) {
	got := []uint64{Score(1, 1), Score(1, 2), Score(7, 1), uint64(PGOf(Container{ID: 3, FirstPG: 1, Policy: Policy{PGCount: 1 << 16}}, 5, 9))}
	want := []uint64{0x610c1512529ba836, 0xafd863efed1be952, 0x73bc87000d81c422, 0x4067}
	if !slices.Equal(got, want) {
		t.Errorf("scores %#x, want %#x", got, want)
	}
}
