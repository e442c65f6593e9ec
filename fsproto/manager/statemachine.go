package manager

import (
	"context"
	"fmt"
	"sync"

	"github.com/weftfs/weft/fsproto/clustermap"
)

// StateMachine is the cluster map as a raftgroup.StateMachine: each
// committed entry is a clustermap command (AppendCommand's encoding),
// applied in log order; snapshots are the map's encoding. Its methods are
// safe for concurrent use: the Group calls Apply, Snapshot and Restore from
// its Ready loop while RPC handlers read Map and wait with Wait.
type StateMachine struct {
	mu struct {
		sync.Mutex
		m *clustermap.Map
		// changed is closed (and replaced) whenever m changes, waking
		// the long polls that wait for a newer map.
		changed chan struct{}
		// enc caches encFor's encoding, so that many long polls woken
		// by one change encode the map once.
		encFor *clustermap.Map
		enc    []byte
	}
}

// ApplyResult is what Apply returns for each command, and so what
// raftgroup.Group.Propose returns to the member that proposed it: the map
// the command produced, or the error the map refused it with (wrapping a
// clustermap sentinel, or clustermap.ErrCorrupt for an entry that did not
// decode). Exactly one of Map and Err is set.
type ApplyResult struct {
	Map *clustermap.Map
	Err error
}

// NewStateMachine returns a state machine holding the empty map (epoch 0).
func NewStateMachine() *StateMachine {
	s := &StateMachine{}
	s.mu.m = clustermap.New()
	s.mu.changed = make(chan struct{})
	return s
}

// Apply implements raftgroup.StateMachine. A command the map refuses (or
// that does not decode) is a result, not a failure of the group: every
// member refuses it the same way and the map stays as it was.
func (s *StateMachine) Apply(index uint64, data []byte) any {
	cmd, err := clustermap.DecodeCommand(data)
	if err != nil {
		return ApplyResult{Err: fmt.Errorf("manager: entry %d: %w", index, err)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.mu.m.Apply(cmd)
	if err != nil {
		return ApplyResult{Err: err}
	}
	// Invariant: a successful command bumps the epoch by exactly one.
	if m.Epoch != s.mu.m.Epoch+1 {
		panic(fmt.Sprintf("manager: entry %d moved the map from epoch %d to %d", index, s.mu.m.Epoch, m.Epoch))
	}
	s.setLocked(m)
	return ApplyResult{Map: m}
}

// Snapshot implements raftgroup.StateMachine: the map's encoding.
func (s *StateMachine) Snapshot() ([]byte, error) {
	return s.Map().MarshalBinary()
}

// Restore implements raftgroup.StateMachine. It checks the snapshot as the
// map decoder does (checksum and Check) and replaces the map.
func (s *StateMachine) Restore(data []byte) error {
	m, err := clustermap.DecodeMap(data)
	if err != nil {
		return fmt.Errorf("manager: restore: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setLocked(m)
	return nil
}

func (s *StateMachine) setLocked(m *clustermap.Map) {
	s.mu.m = m
	close(s.mu.changed)
	s.mu.changed = make(chan struct{})
}

// Map returns the latest applied map. It is never modified afterwards.
func (s *StateMachine) Map() *clustermap.Map {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.m
}

// encoded returns m's encoding (MarshalBinary), cached for the latest map.
// The bytes are shared: never modify them.
func (s *StateMachine) encoded(m *clustermap.Map) ([]byte, error) {
	s.mu.Lock()
	if s.mu.encFor == m {
		enc := s.mu.enc
		s.mu.Unlock()
		return enc, nil
	}
	s.mu.Unlock()
	enc, err := m.MarshalBinary()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.mu.m == m {
		s.mu.encFor, s.mu.enc = m, enc
	}
	s.mu.Unlock()
	return enc, nil
}

// Wait returns the latest applied map once its epoch is above after, or,
// when ctx or stop ends first, the latest map with ok false.
func (s *StateMachine) Wait(ctx context.Context, stop <-chan struct{}, after uint64) (m *clustermap.Map, ok bool) {
	for {
		s.mu.Lock()
		m, changed := s.mu.m, s.mu.changed
		s.mu.Unlock()
		if m.Epoch > after {
			return m, true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return m, false
		case <-stop:
			return m, false
		}
	}
}
