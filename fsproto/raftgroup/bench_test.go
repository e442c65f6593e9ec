package raftgroup

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/raftlog"
	"github.com/weftfs/weft/internal/vfs"
)

// durableGroup starts a group of three members whose logs are journals
// on a real file system with flushes, talking over a MemNetwork, and
// returns its leader once it has applied a first proposal. The logs go
// to WEFT_BENCH_DIR, default /var/tmp (not tmpfs: the flushes are the
// point).
func durableGroup(b *testing.B) (*Group, context.Context) {
	base := os.Getenv("WEFT_BENCH_DIR")
	if base == "" {
		base = "/var/tmp"
	}
	dir, err := os.MkdirTemp(base, "raftgroup-bench-")
	if err != nil {
		b.Skipf("no directory for the logs: %v", err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	mn := NewMemNetwork(1)
	peers := []Peer{{1, "m1"}, {2, "m2"}, {3, "m3"}}
	groups := make([]*Group, 3)
	for i := range 3 {
		log, err := raftlog.Open(raftlog.Options{FS: vfs.Default, Dir: fmt.Sprintf("%s/m%d", dir, i+1), Logger: testLogger()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { log.Close() })
		g, err := Start(Config{ID: uint64(i + 1), Peers: peers, Log: log, SM: newTestSM(), Transport: mn.Transport(),
			TickInterval: 10 * time.Millisecond, Logger: testLogger()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(g.Stop)
		groups[i] = g
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	b.Cleanup(cancel)
	var lead *Group
	waitFor(b, "a leader", func() bool {
		l := groups[0].Leader()
		if l == 0 {
			return false
		}
		lead = groups[l-1]
		return lead.Leader() == l
	})
	if _, err := lead.Propose(ctx, []byte("warm=up")); err != nil {
		b.Fatal(err)
	}
	return lead, ctx
}

// BenchmarkProposeDurable measures proposals, one at a time (serial) and
// many at once (parallel), in a durableGroup: the commit path of a
// metadata operation without the network.
func BenchmarkProposeDurable(b *testing.B) {
	lead, ctx := durableGroup(b)
	b.Run("serial", func(b *testing.B) {
		for i := range b.N {
			if _, err := lead.Propose(ctx, fmt.Appendf(nil, "s%d=v", i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Proposals from 8 goroutines per CPU: the leader's loop gathers the
	// ones that arrive together into one Save and one flush.
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(8)
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := lead.Propose(ctx, fmt.Appendf(nil, "p%d=v", n.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkReadIndex measures read barriers one at a time on the leader
// of a durableGroup, idle otherwise: a heartbeat round to the followers
// through the Ready loops, the cost of every metadata read.
func BenchmarkReadIndex(b *testing.B) {
	lead, ctx := durableGroup(b)
	b.ResetTimer()
	for range b.N {
		if err := lead.ReadIndex(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
