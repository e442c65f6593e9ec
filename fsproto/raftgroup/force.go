package raftgroup

import (
	"fmt"
	"maps"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// ForceResult is what ForceSoleVoter did to a member's log.
type ForceResult struct {
	// Voters and Learners are the configuration the log held (its
	// snapshot's, then every conf change after it).
	Voters, Learners []uint64
	// Removed are the members the appended conf changes take out;
	// Promoted is whether one promotes the member itself (it was a
	// learner).
	Removed  []uint64
	Promoted bool
	// Commit and LogLast are the log's commit index and last index
	// before, and Last its last index after, the appended entries, which
	// are committed with it. Of several survivors, the one whose LogLast
	// is highest holds the most of the group's history.
	Commit, LogLast, Last uint64
}

// ForceSoleVoter rewrites the stopped member id's log so that, when it
// starts again, it is the only voter of its group: it appends, at the
// log's term, conf changes that make id a voter (if it was a learner) and
// remove every other voter and learner, and commits the whole log with
// them. The member then elects itself and serves what its log holds; the
// others join again as new members (added as learners by whoever manages
// the membership).
//
// It is the way out of a group that lost a majority of its members' logs
// for good, and it is unsafe by nature, as etcd's --force-new-cluster is:
// entries this member holds but the group never committed become
// committed, and entries committed by the other members only are lost.
// Run it only on a member that no longer runs, and only when no other
// member that holds the group's log will run again: such a member, still
// counting the old configuration, would start a second history of the
// group. It refuses a log that holds nothing (no group), a member the
// log does not name, and conf changes it cannot read. With dryRun it
// writes nothing and reports what it would do.
func ForceSoleVoter(log LogStore, id uint64, dryRun bool) (ForceResult, error) {
	var res ForceResult
	hs, cs, err := log.InitialState()
	if err != nil {
		return res, fmt.Errorf("raftgroup: force sole voter: read initial state: %w", err)
	}
	first, err := log.FirstIndex()
	if err != nil {
		return res, fmt.Errorf("raftgroup: force sole voter: first index: %w", err)
	}
	last, err := log.LastIndex()
	if err != nil {
		return res, fmt.Errorf("raftgroup: force sole voter: last index: %w", err)
	}
	if raft.IsEmptyHardState(hs) && last == 0 {
		return res, fmt.Errorf("raftgroup: force sole voter: the log is empty: it holds no group")
	}
	if len(cs.GetVotersOutgoing()) > 0 {
		return res, fmt.Errorf("raftgroup: force sole voter: the snapshot's configuration is joint (outgoing voters %v), which this group never uses", cs.GetVotersOutgoing())
	}
	// The configuration as the log leaves it, and the members' addresses
	// (from the snapshot, then from each conf change's context).
	voters := map[uint64]bool{}
	learners := map[uint64]bool{}
	for _, v := range cs.GetVoters() {
		voters[v] = true
	}
	for _, l := range cs.GetLearners() {
		learners[l] = true
	}
	addrs := map[uint64]string{}
	snap, err := log.Snapshot()
	if err != nil {
		return res, fmt.Errorf("raftgroup: force sole voter: read snapshot: %w", err)
	}
	if !raft.IsEmptySnap(snap) {
		members, _, err := decodeSnapshot(snap.GetData())
		if err != nil {
			return res, fmt.Errorf("raftgroup: force sole voter: snapshot at %d: %w", snap.GetMetadata().GetIndex(), err)
		}
		maps.Copy(addrs, members)
	}
	if last >= first {
		ents, err := log.Entries(first, last+1, ^uint64(0))
		if err != nil {
			return res, fmt.Errorf("raftgroup: force sole voter: read entries [%d, %d]: %w", first, last, err)
		}
		for _, e := range ents {
			switch e.GetType() {
			case raftpb.EntryConfChangeV2:
				return res, fmt.Errorf("raftgroup: force sole voter: entry %d is a version 2 conf change, which this group never writes", e.GetIndex())
			case raftpb.EntryConfChange:
			default:
				continue
			}
			cc, _, addr, err := decodeConfChange(e.GetData())
			if err != nil {
				return res, fmt.Errorf("raftgroup: force sole voter: conf change at %d: %w", e.GetIndex(), err)
			}
			n := cc.GetNodeId()
			switch cc.GetType() {
			case raftpb.ConfChangeAddNode:
				voters[n], learners[n], addrs[n] = true, false, addr
			case raftpb.ConfChangeAddLearnerNode:
				voters[n], learners[n], addrs[n] = false, true, addr
			case raftpb.ConfChangeRemoveNode:
				voters[n], learners[n] = false, false
				delete(addrs, n)
			}
		}
	}
	members := func(set map[uint64]bool) []uint64 {
		var ids []uint64
		for n, in := range set {
			if in {
				ids = append(ids, n)
			}
		}
		slices.Sort(ids)
		return ids
	}
	res.Voters, res.Learners, res.Commit, res.LogLast = members(voters), members(learners), hs.GetCommit(), last
	if !voters[id] && !learners[id] {
		return res, fmt.Errorf("raftgroup: force sole voter: member %d is not in the log's configuration (voters %v, learners %v)", id, res.Voters, res.Learners)
	}
	term := hs.GetTerm()
	if lt, err := log.Term(last); err == nil && lt > term {
		term = lt // a log whose hard state trails its last entry's term (never written by raft, but harmless to allow)
	}
	var ents []*raftpb.Entry
	add := func(t raftpb.ConfChangeType, n uint64, addr string) error {
		cc := &raftpb.ConfChange{Type: t.Enum(), NodeId: proto.Uint64(n), Context: encodeContext(0, addr)}
		data, err := proto.Marshal(cc)
		if err != nil {
			return fmt.Errorf("raftgroup: force sole voter: encode conf change: %w", err)
		}
		idx := last + uint64(len(ents)) + 1
		ents = append(ents, &raftpb.Entry{Term: proto.Uint64(term), Index: proto.Uint64(idx), Type: raftpb.EntryConfChange.Enum(), Data: data})
		return nil
	}
	if !voters[id] {
		if err := add(raftpb.ConfChangeAddNode, id, addrs[id]); err != nil {
			return res, err
		}
		res.Promoted = true
	}
	for _, n := range slices.Concat(res.Voters, res.Learners) {
		if n == id {
			continue
		}
		if err := add(raftpb.ConfChangeRemoveNode, n, ""); err != nil {
			return res, err
		}
		res.Removed = append(res.Removed, n)
	}
	res.Last = last + uint64(len(ents))
	if dryRun {
		return res, nil
	}
	nhs := &raftpb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(hs.GetVote()), Commit: proto.Uint64(res.Last)}
	if err := log.Save(nhs, ents, nil); err != nil {
		return res, fmt.Errorf("raftgroup: force sole voter: save: %w", err)
	}
	return res, nil
}

// SeedSoleVoter writes into an empty log a group of one voter, id at
// addr, whose state machine starts from sm (what the state machine's
// Snapshot would return): a snapshot at index 1, term 1, and the hard
// state committing it. Started on the log, the member restores sm, elects
// itself and serves it; whoever manages the membership adds the others as
// new members, which join from a snapshot.
//
// It is how a group whose every member lost its log is started again
// from a copy of its state kept elsewhere, and it is unsafe in the way
// ForceSoleVoter is: what the copy lacks of the lost logs is gone. No
// member holding an older log of the group may run again. It refuses a
// log that is not empty.
func SeedSoleVoter(log LogStore, id uint64, addr string, sm []byte) error {
	if id == 0 {
		return fmt.Errorf("raftgroup: seed sole voter: member id 0")
	}
	hs, _, err := log.InitialState()
	if err != nil {
		return fmt.Errorf("raftgroup: seed sole voter: read initial state: %w", err)
	}
	last, err := log.LastIndex()
	if err != nil {
		return fmt.Errorf("raftgroup: seed sole voter: last index: %w", err)
	}
	if !raft.IsEmptyHardState(hs) || last != 0 {
		return fmt.Errorf("raftgroup: seed sole voter: the log is not empty (term %d, commit %d, last index %d): it holds a group already",
			hs.GetTerm(), hs.GetCommit(), last)
	}
	snap := &raftpb.Snapshot{
		Metadata: &raftpb.SnapshotMetadata{
			ConfState: &raftpb.ConfState{Voters: []uint64{id}},
			Index:     proto.Uint64(1),
			Term:      proto.Uint64(1),
		},
		Data: encodeSnapshot(map[uint64]string{id: addr}, sm),
	}
	nhs := &raftpb.HardState{Term: proto.Uint64(1), Vote: proto.Uint64(0), Commit: proto.Uint64(1)}
	if err := log.Save(nhs, nil, snap); err != nil {
		return fmt.Errorf("raftgroup: seed sole voter: save: %w", err)
	}
	return nil
}
