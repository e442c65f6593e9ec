package clustermap

import (
	"fmt"
	"time"
)

// Liveness turns node heartbeats into SetNodeState commands. The manager
// leader keeps one (it is not replicated: a new leader starts a fresh one
// and gives every node a full Timeout of grace) and proposes what
// Commands returns. It reads no clock: callers pass the time, so tests
// drive it with a fake one. Not safe for concurrent use.
type Liveness struct {
	// Timeout is how long a node may stay silent before it is marked
	// Down. It must be several heartbeat intervals, or a slow network
	// makes nodes flap.
	Timeout time.Duration
	last    map[NodeID]time.Time
}

// NewLiveness returns a Liveness that marks nodes Down after timeout of
// silence; timeout must be positive.
func NewLiveness(timeout time.Duration) *Liveness {
	if timeout <= 0 {
		panic(fmt.Sprintf("clustermap: liveness timeout %v must be positive", timeout))
	}
	return &Liveness{Timeout: timeout, last: make(map[NodeID]time.Time)}
}

// Heartbeat records that node id was heard from at now.
func (l *Liveness) Heartbeat(id NodeID, now time.Time) {
	if t, ok := l.last[id]; !ok || now.After(t) {
		l.last[id] = now
	}
}

// Commands returns the state changes that m needs at time now, sorted by
// node ID: SetNodeState Down for each Up or Draining node silent for more
// than Timeout, and SetNodeState Up for each Down node heard within
// Timeout. Out nodes are left alone (only a re-join brings them back).
// NB: a Draining node that went Down comes back Up, not Draining: the map
// keeps one state per node, so the operator drains it again. A
// node Liveness has never heard of counts as heard at now, so a fresh
// leader does not mark the whole cluster Down. Nodes no longer in m are
// forgotten.
func (l *Liveness) Commands(m *Map, now time.Time) []Command {
	var cmds []Command
	seen := make(map[NodeID]bool, len(m.Nodes))
	for i := range m.Nodes {
		n := &m.Nodes[i]
		seen[n.ID] = true
		t, ok := l.last[n.ID]
		if !ok {
			if n.State != Up && n.State != Draining {
				// Never heard from and not serving: only a heartbeat
				// brings it back. (A new leader's Liveness starts empty;
				// granting a Down node the grace would mark it Up, then
				// Down again a timeout later, bumping epochs for nothing.)
				continue
			}
			l.last[n.ID] = now
			t = now
		}
		alive := now.Sub(t) <= l.Timeout
		switch {
		case !alive && (n.State == Up || n.State == Draining):
			cmds = append(cmds, SetNodeState{ID: n.ID, State: Down})
		case alive && n.State == Down:
			cmds = append(cmds, SetNodeState{ID: n.ID, State: Up})
		}
	}
	for id := range l.last {
		if !seen[id] {
			delete(l.last, id)
		}
	}
	return cmds
}
