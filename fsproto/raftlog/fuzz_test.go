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

// fuzzRecords encodes records for FuzzReplay: type u8, length u16, body.
func fuzzRecords(recs ...[]byte) []byte {
	var b []byte
	for _, r := range recs {
		b = append(b, r...)
	}
	return b
}

func fuzzRec(typ uint16, body []byte) []byte {
	return append([]byte{byte(typ), byte(len(body)), byte(len(body) >> 8)}, body...)
}

// FuzzReplay feeds any sequence of records (each decodable or not) to the
// group replay: no panic, every rejection a RecordError marked corrupt, and
// the state it builds always passes check.
func FuzzReplay(f *testing.F) {
	ents := func(first, prev uint64, reset bool, flags uint8, terms ...uint64) []byte {
		var es []*pb.Entry
		for i, t := range terms {
			es = append(es, newEntry(first+uint64(i), t, pb.EntryNormal, []byte{byte(i)}))
		}
		return fuzzRec(typeEntries, encodeEntries(flags, entries{first: first, prevTerm: prev, reset: reset, ents: es}))
	}
	hs := func(flags uint8, commit uint64) []byte {
		return fuzzRec(typeHardState, encodeHardState(flags, hardState{term: 2, commit: commit}))
	}
	snap := func(flags uint8, index, term, n uint64) []byte {
		return fuzzRec(typeSnapshot, encodeSnapshot(flags, snapshotMeta{index: index, term: term, dataLen: n, cs: &pb.ConfState{Voters: []uint64{1}}}))
	}
	data := func(flags uint8, off uint64, d string) []byte {
		return fuzzRec(typeSnapshotData, encodeSnapshotData(flags, snapshotData{off: off, data: []byte(d)}))
	}
	f.Add(fuzzRecords(ents(1, 0, false, flagFirst, 1, 1, 2), hs(flagLast, 2)))
	f.Add(fuzzRecords(ents(1, 0, false, flagFirst|flagLast, 1, 1), snap(flagFirst, 2, 1, 4), data(0, 0, "ab"), data(0, 2, "cd"),
		ents(1, 1, true, 0, 1), ents(2, 1, false, 0, 2, 2), hs(flagLast, 2)))
	f.Add(fuzzRecords(snap(flagFirst, 9, 3, 0), ents(10, 3, true, 0), hs(flagLast, 9), ents(10, 3, false, flagFirst, 3), ents(11, 3, false, flagFirst|flagLast, 4)))
	f.Add(fuzzRecords(hs(flagFirst|flagLast, 0), ents(1, 0, false, flagLast, 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		rp := &replayer{st: emptyState(), log: quietLogger}
		for seq := uint64(1); len(b) >= 3; seq++ {
			n := int(b[1]) | int(b[2])<<8
			typ := uint16(b[0])
			b = b[3:]
			n = min(n, len(b))
			err := rp.record(journal.Record{Seq: seq, Type: typ, Data: b[:n]})
			b = b[n:]
			if err != nil {
				var re *RecordError
				if !errors.As(err, &re) || re.Seq != seq || !errors.Is(err, journal.ErrCorrupt) {
					t.Fatalf("record %d: error %v is not a corrupt RecordError for it", seq, err)
				}
				return
			}
			if err := rp.st.check(); err != nil {
				t.Fatalf("after record %d the state is broken: %v", seq, err)
			}
		}
		rp.finish()
	})
}
