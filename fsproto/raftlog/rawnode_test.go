package raftlog

import (
	"fmt"
	"io"
	"log"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/weftfs/weft/internal/vfs"
)

// node is a single-member raft group on a Storage, driven the way the
// raft README says: persist, (send), apply, Advance.
type node struct {
	t       *testing.T
	s       *Storage
	rn      *raft.RawNode
	cs      *pb.ConfState
	applied uint64
	state   []string // the application: every proposal applied, in order
}

func startNode(t *testing.T, s *Storage, fresh bool) *node {
	t.Helper()
	n := &node{t: t, s: s, cs: &pb.ConfState{}}
	snap, err := s.Snapshot()
	must(err)
	if !raft.IsEmptySnap(snap) {
		// The application restores itself from the snapshot and tells raft
		// where it stands.
		n.applied = snap.GetMetadata().GetIndex()
		n.cs = snap.GetMetadata().GetConfState()
		if len(snap.GetData()) > 0 {
			n.state = strings.Split(string(snap.GetData()), ",")
		}
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: s, Applied: n.applied,
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 64,
		Logger: &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)},
	})
	if err != nil {
		t.Fatalf("NewRawNode: %v", err)
	}
	n.rn = rn
	if fresh {
		must(rn.Bootstrap([]raft.Peer{{ID: 1}}))
	}
	return n
}

// ready handles every pending Ready.
func (n *node) ready() {
	for n.rn.HasReady() {
		rd := n.rn.Ready()
		if err := n.s.Save(rd.HardState, rd.Entries, rd.Snapshot); err != nil {
			n.t.Fatalf("Save: %v", err)
		}
		// A single member sends its messages to nobody.
		for _, e := range rd.CommittedEntries {
			switch e.GetType() {
			case pb.EntryNormal:
				if len(e.GetData()) > 0 {
					n.state = append(n.state, string(e.GetData()))
				}
			case pb.EntryConfChange:
				var cc pb.ConfChange
				must(proto.Unmarshal(e.GetData(), &cc))
				n.cs = n.rn.ApplyConfChange(&cc)
			case pb.EntryConfChangeV2:
				var cc pb.ConfChangeV2
				must(proto.Unmarshal(e.GetData(), &cc))
				n.cs = n.rn.ApplyConfChange(&cc)
			}
			n.applied = e.GetIndex()
		}
		n.rn.Advance(rd)
	}
}

// lead ticks until the node is leader.
func (n *node) lead() {
	for i := 0; n.rn.Status().RaftState != raft.StateLeader; i++ {
		if i > 1000 {
			n.t.Fatalf("no leader after %d ticks", i)
		}
		n.rn.Tick()
		n.ready()
	}
}

func (n *node) propose(vals ...string) {
	for _, v := range vals {
		must(n.rn.Propose([]byte(v)))
		n.ready()
	}
}

func (n *node) snapshot() {
	if _, err := n.s.CreateSnapshot(n.applied, n.cs, []byte(strings.Join(n.state, ","))); err != nil {
		n.t.Fatalf("CreateSnapshot at %d: %v", n.applied, err)
	}
}

func vals(from, to int) []string {
	var v []string
	for i := from; i < to; i++ {
		v = append(v, fmt.Sprintf("p%d", i))
	}
	return v
}

// TestRawNode runs a real raft.RawNode on the Storage through proposals,
// a snapshot with compaction and two restarts from the same directory, and
// checks that every committed proposal comes back, once, in order.
func TestRawNode(t *testing.T) {
	fs := vfs.NewMem()
	open := func() *Storage {
		s, err := Open(Options{FS: fs, Dir: "/raft", Logger: quietLogger, KeepEntries: 3, SegmentBytes: 64 << 10})
		must(err)
		return s
	}
	s := open()
	n := startNode(t, s, true)
	n.lead()
	n.propose(vals(0, 10)...)
	n.snapshot()
	n.propose(vals(10, 20)...)
	commit := n.rn.Status().HardState.GetCommit()
	if want := vals(0, 20); !slices.Equal(n.state, want) {
		t.Fatalf("applied %v, want %v", n.state, want)
	}
	if first, _ := s.FirstIndex(); first <= 2 {
		t.Fatalf("FirstIndex %d: the snapshot compacted nothing", first)
	}
	must(s.Close())

	// Restart: the snapshot restores the first part, raft redelivers the
	// committed entries after it.
	s = open()
	if hs, _, _ := s.InitialState(); hs.GetCommit() != commit {
		t.Fatalf("recovered commit %d, want %d", hs.GetCommit(), commit)
	}
	n = startNode(t, s, false)
	if len(n.state) != 10 {
		t.Fatalf("state from the snapshot: %v", n.state)
	}
	n.ready()
	if want := vals(0, 20); !slices.Equal(n.state, want) || n.applied != commit {
		t.Fatalf("after restart applied %v up to %d, want %v up to %d", n.state, n.applied, want, commit)
	}
	n.lead()
	n.propose(vals(20, 25)...)
	must(s.Close())

	// And again, without a new snapshot in between.
	s = open()
	defer s.Close()
	n = startNode(t, s, false)
	n.ready()
	if want := vals(0, 25); !slices.Equal(n.state, want) {
		t.Fatalf("after the second restart applied %v, want %v", n.state, want)
	}
	if !slices.Equal(n.cs.GetVoters(), []uint64{1}) {
		t.Fatalf("conf state %v, want voters [1]", n.cs)
	}
}
