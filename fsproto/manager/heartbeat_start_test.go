package manager

import (
	"testing"

	"github.com/weftfs/weft/internal/testutil"
)

// TestHeartbeatStartsAtLeader: heartbeats start at the member that last
// accepted one (the leader), while map reads start at the member that
// last answered them, a follower here. When both shared one start,
// every map read moved heartbeats back to a follower, and with dead
// members in the way a heartbeat could run out of time before reaching
// the leader (a live node was taken Down).
func TestHeartbeatStartsAtLeader(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newTestCluster(t, 3, nil)
	ctx := testContext(t)
	addNodes(t, ctx, c.client(), 1)
	lead := c.leader(ctx)
	follower := (lead + 1) % 3
	// The follower first: map reads stay there, heartbeats move on.
	addrs := []string{c.nodes[follower].addr, c.nodes[lead].addr}
	cl := NewClient(addrs, c.pool)
	for range 3 {
		if _, err := cl.Map(ctx, 0); err != nil {
			t.Fatal(err)
		}
		if err := cl.Heartbeat(ctx, 1); err != nil {
			t.Fatal(err)
		}
		cl.mu.Lock()
		next, hb := cl.mu.next, cl.mu.lead
		cl.mu.Unlock()
		if next != 0 || hb != 1 {
			t.Fatalf("map reads start at member %d (want 0, the follower), heartbeats at %d (want 1, the leader)", next, hb)
		}
	}
}
