package raftlog

import (
	"bytes"
	"errors"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/weftfs/weft/journal"
)

// Every decoder: no panic on any bytes, every rejection marked
// journal.ErrCorrupt, and whatever is accepted encodes back to the same
// bytes. (Allocation is bounded by the input: counts are checked against
// the bytes left before anything is allocated.)

func checkRejected(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, journal.ErrCorrupt) {
		t.Fatalf("rejection not marked corrupt: %v", err)
	}
}

func FuzzHardState(f *testing.F) {
	f.Add(encodeHardState(flagFirst|flagLast, hardState{term: 3, vote: 1, commit: 77}))
	f.Add(encodeHardState(0, hardState{}))
	f.Add([]byte{1, 0, 0, 0})
	f.Add([]byte{2, 3, 0, 0, 1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		flags, h, err := decodeHardState(b)
		if err != nil {
			checkRejected(t, err)
			return
		}
		if re := encodeHardState(flags, h); !bytes.Equal(re, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", re, b)
		}
	})
}

func FuzzEntries(f *testing.F) {
	f.Add(encodeEntries(flagFirst, entries{first: 5, prevTerm: 2, ents: []*pb.Entry{
		newEntry(5, 2, pb.EntryNormal, []byte("hello")),
		newEntry(6, 3, pb.EntryConfChangeV2, nil),
		newEntry(7, 3, pb.EntryConfChange, bytes.Repeat([]byte{9}, 300)),
	}}))
	f.Add(encodeEntries(flagLast, entries{first: 1, reset: true}))
	f.Add(encodeEntries(0, entries{first: 1 << 62, prevTerm: 1, ents: []*pb.Entry{newEntry(1<<62, 1, pb.EntryNormal, []byte{1})}}))
	f.Add([]byte{1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		flags, r, err := decodeEntries(b)
		if err != nil {
			checkRejected(t, err)
			return
		}
		for i, e := range r.ents {
			if e.GetIndex() != r.first+uint64(i) {
				t.Fatalf("entry %d has index %d, record starts at %d", i, e.GetIndex(), r.first)
			}
		}
		if re := encodeEntries(flags, r); !bytes.Equal(re, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", re, b)
		}
	})
}

func FuzzSnapshot(f *testing.F) {
	f.Add(encodeSnapshot(flagFirst, snapshotMeta{index: 10, term: 2, dataLen: 5000, cs: &pb.ConfState{
		Voters: []uint64{1, 2, 3}, Learners: []uint64{4}, VotersOutgoing: []uint64{1, 2}, LearnersNext: []uint64{3}, AutoLeave: new(true)}}))
	f.Add(encodeSnapshot(0, snapshotMeta{index: 1, term: 1}))
	f.Add(encodeSnapshot(0, snapshotMeta{index: 1, term: 1, dataLen: SnapshotBytesMax + 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		flags, m, err := decodeSnapshot(b)
		if err != nil {
			checkRejected(t, err)
			return
		}
		if re := encodeSnapshot(flags, m); !bytes.Equal(re, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", re, b)
		}
	})
}

func FuzzSnapshotData(f *testing.F) {
	f.Add(encodeSnapshotData(flagLast, snapshotData{off: 4096, data: []byte("chunk")}))
	f.Add(encodeSnapshotData(0, snapshotData{}))
	f.Add(encodeSnapshotData(0, snapshotData{off: SnapshotBytesMax, data: []byte{1}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		flags, d, err := decodeSnapshotData(b)
		if err != nil {
			checkRejected(t, err)
			return
		}
		if re := encodeSnapshotData(flags, d); !bytes.Equal(re, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", re, b)
		}
	})
}
