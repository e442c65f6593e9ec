package clustermap

import (
	"slices"
	"testing"
	"time"
)

func TestLiveness(t *testing.T) {
	m := addNodes(t, New(), 4, "a", "b")
	m = mustApply(t, m, SetNodeState{ID: 3, State: Draining})
	m = mustApply(t, m, SetNodeState{ID: 4, State: Out})
	l := NewLiveness(10 * time.Second)
	t0 := time.Unix(1000, 0)
	// Unknown nodes get a grace period from the first look.
	if cmds := l.Commands(m, t0); len(cmds) != 0 {
		t.Fatalf("fresh liveness: %v", cmds)
	}
	l.Heartbeat(1, t0.Add(5*time.Second))
	l.Heartbeat(1, t0.Add(4*time.Second)) // late, out of order: ignored
	l.Heartbeat(99, t0)                   // not in the map: forgotten
	cmds := l.Commands(m, t0.Add(11*time.Second))
	want := []Command{SetNodeState{ID: 2, State: Down}, SetNodeState{ID: 3, State: Down}}
	if !slices.Equal(cmds, want) {
		t.Fatalf("after 11 s: %v, want %v", cmds, want)
	}
	for _, c := range cmds {
		m = mustApply(t, m, c)
	}
	if _, ok := l.last[99]; ok {
		t.Error("liveness keeps a node the map does not have")
	}
	// Exactly Timeout of silence is still alive.
	if cmds := l.Commands(m, t0.Add(15*time.Second)); len(cmds) != 0 {
		t.Fatalf("at the timeout: %v", cmds)
	}
	l.Heartbeat(2, t0.Add(20*time.Second))
	cmds = l.Commands(m, t0.Add(21*time.Second))
	want = []Command{SetNodeState{ID: 1, State: Down}, SetNodeState{ID: 2, State: Up}}
	if !slices.Equal(cmds, want) {
		t.Fatalf("after 21 s: %v, want %v", cmds, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("NewLiveness(0) did not panic")
		}
	}()
	NewLiveness(0)
}

// TestLivenessFreshLeaderLeavesDownNodesDown: a new leader starts with an
// empty Liveness; a node already Down must stay Down until it heartbeats,
// not be marked Up for a grace period and Down again.
func TestLivenessFreshLeaderLeavesDownNodesDown(t *testing.T) {
	m := addNodes(t, New(), 3, "a", "b")
	m = mustApply(t, m, SetNodeState{ID: 2, State: Down})
	l := NewLiveness(10 * time.Second)
	t0 := time.Unix(1000, 0)
	for _, at := range []time.Duration{0, 5 * time.Second, 11 * time.Second} {
		l.Heartbeat(1, t0.Add(at))
		l.Heartbeat(3, t0.Add(at))
		if cmds := l.Commands(m, t0.Add(at)); len(cmds) != 0 {
			t.Fatalf("at %v: %v, want none", at, cmds)
		}
	}
	l.Heartbeat(2, t0.Add(12*time.Second))
	if cmds, want := l.Commands(m, t0.Add(12*time.Second)), []Command{SetNodeState{ID: 2, State: Up}}; !slices.Equal(cmds, want) {
		t.Fatalf("after node 2's heartbeat: %v, want %v", cmds, want)
	}
}
