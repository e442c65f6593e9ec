package raftgroup

import (
	"fmt"
	"sync"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// MemLog is an in-memory LogStore over raft.MemoryStorage, for tests and
// for groups that need no durability. What Save stored survives a Stop
// and a Start with the same MemLog, as a disk log survives a restart. It
// is safe for concurrent use.
type MemLog struct {
	*raft.MemoryStorage

	mu      sync.Mutex
	saveErr error // injected failure, see FailSaves
}

// NewMemLog returns an empty log.
func NewMemLog() *MemLog {
	return &MemLog{MemoryStorage: raft.NewMemoryStorage()}
}

// FailSaves makes every later Save fail with err (nil: succeed again), as
// a failing disk would.
func (l *MemLog) FailSaves(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.saveErr = err
}

// Save implements LogStore.
func (l *MemLog) Save(hs *raftpb.HardState, ents []*raftpb.Entry, snap *raftpb.Snapshot) error {
	l.mu.Lock()
	err := l.saveErr
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if snap != nil && !raft.IsEmptySnap(snap) {
		if err := l.ApplySnapshot(snap); err != nil {
			return fmt.Errorf("raftgroup: memlog: apply snapshot at %d: %w", snap.GetMetadata().GetIndex(), err)
		}
	}
	if len(ents) > 0 {
		if err := l.Append(ents); err != nil {
			return fmt.Errorf("raftgroup: memlog: append %d entries from %d: %w", len(ents), ents[0].GetIndex(), err)
		}
	}
	if hs != nil && !raft.IsEmptyHardState(hs) {
		if err := l.SetHardState(hs); err != nil {
			return fmt.Errorf("raftgroup: memlog: set hard state: %w", err)
		}
	}
	return nil
}

// CreateSnapshot implements LogStore: it records the snapshot and drops
// every entry up to index.
func (l *MemLog) CreateSnapshot(index uint64, cs *raftpb.ConfState, data []byte) (*raftpb.Snapshot, error) {
	snap, err := l.MemoryStorage.CreateSnapshot(index, cs, data)
	if err != nil {
		return nil, fmt.Errorf("raftgroup: memlog: snapshot at %d: %w", index, err)
	}
	if err := l.Compact(index); err != nil {
		return nil, fmt.Errorf("raftgroup: memlog: compact to %d: %w", index, err)
	}
	return snap, nil
}

var _ LogStore = (*MemLog)(nil)
