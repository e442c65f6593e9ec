package raftlog

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand"
	"slices"
	"strings"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

var quietLogger = slog.New(slog.DiscardHandler)

// image is everything raft can read from a Storage, in plain values, so
// two storages can be compared and a MemoryStorage rebuilt from it.
type image struct {
	hs          [3]uint64 // term, vote, commit
	cs          [4][]uint64
	autoLeave   bool
	first, last uint64
	offsetTerm  uint64
	ents        []plainEntry // first..last
	snapIndex   uint64
	snapTerm    uint64
	snapCS      [4][]uint64
	snapAuto    bool
	snapData    []byte
}

type plainEntry struct {
	term uint64
	typ  pb.EntryType
	data []byte
}

func csLists(cs *pb.ConfState) [4][]uint64 {
	return [4][]uint64{cs.GetVoters(), cs.GetLearners(), cs.GetVotersOutgoing(), cs.GetLearnersNext()}
}

// capture reads every value of s through the raft.Storage interface.
func capture(s raft.Storage) (image, error) {
	var im image
	hs, cs, err := s.InitialState()
	if err != nil {
		return im, err
	}
	im.hs = [3]uint64{hs.GetTerm(), hs.GetVote(), hs.GetCommit()}
	im.cs, im.autoLeave = csLists(cs), cs.GetAutoLeave()
	if im.first, err = s.FirstIndex(); err != nil {
		return im, err
	}
	if im.last, err = s.LastIndex(); err != nil {
		return im, err
	}
	if im.offsetTerm, err = s.Term(im.first - 1); err != nil {
		return im, fmt.Errorf("term of %d: %w", im.first-1, err)
	}
	if im.last >= im.first {
		ents, err := s.Entries(im.first, im.last+1, ^uint64(0))
		if err != nil {
			return im, err
		}
		for _, e := range ents {
			im.ents = append(im.ents, plainEntry{e.GetTerm(), e.GetType(), e.GetData()})
		}
	}
	snap, err := s.Snapshot()
	if err != nil {
		return im, err
	}
	md := snap.GetMetadata()
	im.snapIndex, im.snapTerm = md.GetIndex(), md.GetTerm()
	im.snapCS, im.snapAuto = csLists(md.GetConfState()), md.GetConfState().GetAutoLeave()
	im.snapData = snap.GetData()
	return im, nil
}

// diff describes how a differs from b, or returns "".
func (a image) diff(b image) string {
	var d []string
	if a.hs != b.hs {
		d = append(d, fmt.Sprintf("hard state %v vs %v", a.hs, b.hs))
	}
	if !slices.EqualFunc(a.cs[:], b.cs[:], func(x, y []uint64) bool { return slices.Equal(x, y) }) || a.autoLeave != b.autoLeave {
		d = append(d, fmt.Sprintf("conf state %v/%v vs %v/%v", a.cs, a.autoLeave, b.cs, b.autoLeave))
	}
	if a.first != b.first || a.last != b.last || a.offsetTerm != b.offsetTerm {
		d = append(d, fmt.Sprintf("log [%d (term %d), %d] vs [%d (term %d), %d]", a.first-1, a.offsetTerm, a.last, b.first-1, b.offsetTerm, b.last))
	}
	if len(a.ents) != len(b.ents) {
		d = append(d, fmt.Sprintf("%d entries vs %d", len(a.ents), len(b.ents)))
	} else {
		for i := range a.ents {
			x, y := a.ents[i], b.ents[i]
			if x.term != y.term || x.typ != y.typ || !bytes.Equal(x.data, y.data) {
				d = append(d, fmt.Sprintf("entry %d: term %d type %v %d bytes vs term %d type %v %d bytes", a.first+uint64(i), x.term, x.typ, len(x.data), y.term, y.typ, len(y.data)))
				break
			}
		}
	}
	if a.snapIndex != b.snapIndex || a.snapTerm != b.snapTerm || a.snapAuto != b.snapAuto ||
		!slices.EqualFunc(a.snapCS[:], b.snapCS[:], func(x, y []uint64) bool { return slices.Equal(x, y) }) {
		d = append(d, fmt.Sprintf("snapshot %d/%d %v vs %d/%d %v", a.snapIndex, a.snapTerm, a.snapCS, b.snapIndex, b.snapTerm, b.snapCS))
	}
	if !bytes.Equal(a.snapData, b.snapData) {
		d = append(d, fmt.Sprintf("snapshot data of %d bytes vs %d", len(a.snapData), len(b.snapData)))
	}
	return strings.Join(d, "; ")
}

// rebuild returns a MemoryStorage holding im.
func (im image) rebuild() *raft.MemoryStorage {
	ms := raft.NewMemoryStorage()
	offset := im.first - 1
	cs := func(l [4][]uint64, auto bool) *pb.ConfState {
		c := &pb.ConfState{Voters: l[0], Learners: l[1], VotersOutgoing: l[2], LearnersNext: l[3]}
		if auto {
			c.AutoLeave = new(true)
		}
		return c
	}
	if offset > 0 {
		// The compaction point first, then the entries, then the snapshot
		// on top when it is above the compaction point.
		md := &pb.SnapshotMetadata{Index: new(offset), Term: new(im.offsetTerm), ConfState: cs(im.snapCS, im.snapAuto)}
		if im.snapIndex == offset {
			must(ms.ApplySnapshot(&pb.Snapshot{Metadata: md, Data: im.snapData}))
		} else {
			must(ms.ApplySnapshot(&pb.Snapshot{Metadata: md}))
		}
	}
	var ents []*pb.Entry
	for i, e := range im.ents {
		ents = append(ents, newEntry(im.first+uint64(i), e.term, e.typ, e.data))
	}
	must(ms.Append(ents))
	if im.snapIndex > offset {
		if _, err := ms.CreateSnapshot(im.snapIndex, cs(im.snapCS, im.snapAuto), im.snapData); err != nil {
			panic(err)
		}
	}
	if im.hs != [3]uint64{} {
		must(ms.SetHardState(&pb.HardState{Term: new(im.hs[0]), Vote: new(im.hs[1]), Commit: new(im.hs[2])}))
	}
	return ms
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// driver generates raft-like operations and applies them to a Storage
// under test and to a MemoryStorage model.
type driver struct {
	rng  *rand.Rand
	keep int
	term uint64
	bigP int // 1 in bigP entries carries a large payload
}

// op is one operation, applicable to both storages.
type op struct {
	desc string
	// save
	hs   *pb.HardState
	ents []*pb.Entry
	snap *pb.Snapshot
	// createSnapshot
	create  bool
	index   uint64
	cs      *pb.ConfState
	data    []byte
	compact uint64
}

func (d *driver) payload(n int) []byte {
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	d.rng.Read(b)
	return b
}

func (d *driver) confState() *pb.ConfState {
	cs := &pb.ConfState{Voters: []uint64{1, uint64(2 + d.rng.Intn(3))}}
	if d.rng.Intn(3) == 0 {
		cs.Learners = []uint64{9}
	}
	if d.rng.Intn(5) == 0 {
		cs.VotersOutgoing = []uint64{1, 7}
		cs.AutoLeave = new(true)
	}
	return cs
}

// next draws an operation valid for the current state of ms.
func (d *driver) next(ms *raft.MemoryStorage) op {
	first, _ := ms.FirstIndex()
	last, _ := ms.LastIndex()
	hs, _, _ := ms.InitialState()
	snap, _ := ms.Snapshot()
	commit := hs.GetCommit()
	if d.term == 0 {
		d.term = max(1, hs.GetTerm())
	}
	newHS := func(c uint64) *pb.HardState {
		return &pb.HardState{Term: new(d.term), Vote: new(uint64(d.rng.Intn(3))), Commit: new(c)}
	}
	switch r := d.rng.Intn(20); {
	case r < 2 && commit > snap.GetMetadata().GetIndex():
		idx := snap.GetMetadata().GetIndex() + 1 + uint64(d.rng.Int63n(int64(commit-snap.GetMetadata().GetIndex())))
		o := op{desc: fmt.Sprintf("create snapshot at %d", idx), create: true, index: idx, data: d.payload(d.rng.Intn(3000))}
		if d.rng.Intn(2) == 0 {
			o.cs = d.confState()
		}
		if idx > uint64(d.keep) && idx-uint64(d.keep) > first-1 {
			o.compact = idx - uint64(d.keep)
		}
		return o
	case r < 3:
		// A leader's snapshot, possibly behind or past our log.
		si := max(snap.GetMetadata().GetIndex()+1, commit, 1) + uint64(d.rng.Intn(30))
		d.term += uint64(d.rng.Intn(2))
		st := d.term
		o := op{desc: fmt.Sprintf("save leader snapshot at %d", si)}
		o.snap = &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(si), Term: new(st), ConfState: d.confState()}, Data: d.payload(d.rng.Intn(5000))}
		if d.rng.Intn(10) == 0 {
			o.snap.Data = d.payload(600 << 10) // several chunks
		}
		n := d.rng.Intn(4)
		for i := 0; i < n; i++ {
			o.ents = append(o.ents, newEntry(si+1+uint64(i), d.term, pb.EntryNormal, d.payload(d.rng.Intn(100))))
		}
		o.hs = newHS(si)
		return o
	case r < 5:
		c := commit + uint64(d.rng.Int63n(int64(last-commit+1)))
		if d.rng.Intn(2) == 0 && hs.GetTerm() == d.term {
			// Only the commit index moves: a lazy save.
			return op{desc: "save commit index", hs: &pb.HardState{Term: new(d.term), Vote: new(hs.GetVote()), Commit: new(c)}}
		}
		return op{desc: "save hard state", hs: newHS(c)}
	default:
		// Appends, sometimes overwriting an uncommitted suffix, sometimes
		// repeating compacted entries.
		at := last + 1
		overwrite := ""
		if d.rng.Intn(4) == 0 && last > commit {
			at = commit + 1 + uint64(d.rng.Int63n(int64(last-commit)))
			d.term++
			overwrite = " overwriting"
		}
		if d.rng.Intn(10) == 0 && first > 1 {
			// A batch that starts below the compaction point and repeats
			// what the log holds before adding to it: only the new part
			// may count.
			start := max(1, first-2)
			o := op{desc: fmt.Sprintf("save entries from %d repeating the log to %d", start, last)}
			for i := start; i < first; i++ {
				o.ents = append(o.ents, newEntry(i, 0, pb.EntryNormal, []byte("compacted")))
			}
			if last >= first {
				old, err := ms.Entries(first, last+1, ^uint64(0))
				must(err)
				o.ents = append(o.ents, old...)
			}
			for i := 0; i < 1+d.rng.Intn(3); i++ {
				o.ents = append(o.ents, newEntry(last+1+uint64(i), d.term, pb.EntryNormal, d.payload(d.rng.Intn(50))))
			}
			return o
		}
		n := 1 + d.rng.Intn(20)
		o := op{desc: fmt.Sprintf("save %d entries from %d%s", n, at, overwrite)}
		for i := 0; i < n; i++ {
			size := d.rng.Intn(200)
			if d.bigP > 0 && d.rng.Intn(d.bigP) == 0 {
				size = 10000 + d.rng.Intn(20000)
			}
			typ := pb.EntryNormal
			if d.rng.Intn(30) == 0 {
				typ = pb.EntryConfChangeV2
			}
			o.ents = append(o.ents, newEntry(at+uint64(i), d.term, typ, d.payload(size)))
		}
		if d.rng.Intn(2) == 0 {
			o.hs = newHS(commit + uint64(d.rng.Int63n(int64(at-commit))))
		}
		return o
	}
}

// applyModel applies o to the MemoryStorage model.
func (o op) applyModel(ms *raft.MemoryStorage) error {
	if o.create {
		if _, err := ms.CreateSnapshot(o.index, o.cs, o.data); err != nil {
			return err
		}
		if o.compact > 0 {
			return ms.Compact(o.compact)
		}
		return nil
	}
	if o.snap != nil {
		if err := ms.ApplySnapshot(o.snap); err != nil {
			return err
		}
	}
	if err := ms.Append(o.ents); err != nil {
		return err
	}
	if !raft.IsEmptyHardState(o.hs) {
		return ms.SetHardState(o.hs)
	}
	return nil
}

// apply applies o to the Storage under test.
func (o op) apply(s *Storage) error {
	if o.create {
		_, err := s.CreateSnapshot(o.index, o.cs, o.data)
		return err
	}
	return s.Save(o.hs, o.ents, o.snap)
}
