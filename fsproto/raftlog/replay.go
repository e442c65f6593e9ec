package raftlog

import (
	"fmt"
	"log/slog"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/weftfs/weft/journal"
)

// replay rebuilds the state from the journal. It first finds the newest
// complete checkpoint group (one that starts with a snapshot record), since
// a checkpoint carries everything older records said, and then applies the
// groups from there on. A group without its last record was torn by a
// crash (its Save never returned nil) and is skipped whole.
func replay(j *journal.Journal, log *slog.Logger) (state, error) {
	var from uint64
	var open uint64
	openCkpt := false
	err := j.Replay(0, func(r journal.Record) error {
		flags, err := parsePrefix(r.Data)
		if err != nil {
			return recordErr(r, err)
		}
		if flags&flagFirst != 0 {
			open, openCkpt = r.Seq, r.Type == typeSnapshot
		}
		if flags&flagLast != 0 && open != 0 {
			if openCkpt {
				from = open
			}
			open = 0
		}
		return nil
	})
	if err != nil {
		return state{}, err
	}
	if from == 0 && j.FirstSeq() > 1 && j.FirstSeq() < j.NextSeq() {
		return state{}, corruptf("the journal starts at record %d, after a truncation, but holds no complete checkpoint", j.FirstSeq())
	}

	rp := &replayer{st: emptyState(), log: log}
	if err := j.Replay(from, rp.record); err != nil {
		return state{}, err
	}
	rp.finish()
	return rp.st, nil
}

// replayer applies records, group by group, to a state.
type replayer struct {
	st  state
	g   *pendingGroup // the group being read, nil between groups
	log *slog.Logger
}

// record takes the next record of the log.
func (rp *replayer) record(r journal.Record) error {
	var flags uint8
	var err error
	var op any
	switch r.Type {
	case typeHardState:
		var h hardState
		flags, h, err = decodeHardState(r.Data)
		op = h
	case typeEntries:
		var e entries
		flags, e, err = decodeEntries(r.Data)
		op = e
	case typeSnapshot:
		var m snapshotMeta
		flags, m, err = decodeSnapshot(r.Data)
		op = m
	case typeSnapshotData:
		var d snapshotData
		flags, d, err = decodeSnapshotData(r.Data)
		op = d
	default:
		err = corruptf("unknown record type %d", r.Type)
	}
	if err != nil {
		return recordErr(r, err)
	}
	if flags&flagFirst != 0 {
		if rp.g != nil {
			rp.log.Info("raftlog: skipping a save torn by a crash", "from", rp.g.start, "to", r.Seq-1)
		}
		rp.g = &pendingGroup{start: r.Seq}
	} else if rp.g == nil {
		return recordErr(r, corruptf("record continues no save group"))
	}
	if err := rp.g.add(op); err != nil {
		return recordErr(r, err)
	}
	if flags&flagLast != 0 {
		if err := rp.g.apply(&rp.st); err != nil {
			return recordErr(r, corruptf("save group from record %d: %w", rp.g.start, err))
		}
		rp.g = nil
	}
	return nil
}

// finish drops a group left open at the end of the log.
func (rp *replayer) finish() {
	if rp.g != nil {
		rp.log.Info("raftlog: skipping a save torn by a crash at the end of the log", "from", rp.g.start)
		rp.g = nil
	}
}

func recordErr(r journal.Record, err error) error {
	return &RecordError{Seq: r.Seq, Type: typeName(r.Type), Err: err}
}

// RecordError is a journal record that failed to decode or to apply: its
// sequence number, its type, and why. It wraps journal.ErrCorrupt when the
// bytes are bad. (Corruption the journal itself finds comes back as a
// *journal.CorruptError naming the file and offset.)
type RecordError struct {
	Seq  uint64
	Type string
	Err  error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("raftlog: journal record %d (%s): %v", e.Seq, e.Type, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// pendingGroup is a Save group being read back; it is applied only when
// its last record has been seen.
type pendingGroup struct {
	start      uint64
	snap       *snapshotMeta
	snapData   []byte
	snapFilled uint64
	ops        []any // entries and hardState, in order
}

func (g *pendingGroup) add(op any) error {
	switch op := op.(type) {
	case snapshotMeta:
		if g.snap != nil || len(g.ops) > 0 {
			return corruptf("snapshot record not at the start of its group")
		}
		g.snap = &op
		g.snapData = make([]byte, op.dataLen)
	case snapshotData:
		if g.snap == nil || len(g.ops) > 0 {
			return corruptf("snapshot data without a snapshot record before it")
		}
		if op.off != g.snapFilled || uint64(len(op.data)) > g.snap.dataLen-g.snapFilled {
			return corruptf("snapshot data of %d bytes at %d, want the next bytes from %d of %d", len(op.data), op.off, g.snapFilled, g.snap.dataLen)
		}
		copy(g.snapData[op.off:], op.data)
		g.snapFilled += uint64(len(op.data))
	case entries:
		if op.reset != (g.snap != nil && len(g.ops) == 0) {
			return corruptf("entries record with reset=%v where a reset is %v", op.reset, !op.reset)
		}
		g.ops = append(g.ops, op)
	case hardState:
		if g.snap != nil && len(g.ops) == 0 {
			return corruptf("hard state where the log reset after the snapshot must be")
		}
		g.ops = append(g.ops, op)
	}
	return nil
}

// apply applies the group to st, checking every invariant Save and
// CreateSnapshot keep. st is modified only when it succeeds.
func (g *pendingGroup) apply(st *state) error {
	n := *st
	if g.snap != nil {
		if g.snapFilled != g.snap.dataLen {
			return corruptf("snapshot data ends at %d of %d bytes", g.snapFilled, g.snap.dataLen)
		}
		if len(g.ops) == 0 {
			return corruptf("snapshot without the log reset that must follow it")
		}
		var data []byte
		if len(g.snapData) > 0 {
			data = g.snapData
		}
		n.snap = &pb.Snapshot{Data: data, Metadata: &pb.SnapshotMetadata{Index: new(g.snap.index), Term: new(g.snap.term), ConfState: g.snap.cs}}
	}
	for _, op := range g.ops {
		switch op := op.(type) {
		case hardState:
			n.hs = &pb.HardState{Term: new(op.term), Vote: new(op.vote), Commit: new(op.commit)}
		case entries:
			if op.reset {
				if op.first-1 > g.snap.index {
					return corruptf("log reset to %d, past the snapshot at %d", op.first-1, g.snap.index)
				}
				n.ents = append([]*pb.Entry{newEntry(op.first-1, op.prevTerm, pb.EntryNormal, nil)}, op.ents...)
				continue
			}
			if len(op.ents) == 0 {
				return corruptf("empty entries record")
			}
			if op.first <= n.offset() || op.first > n.lastIndex()+1 {
				return corruptf("entries from %d do not attach to the log [%d, %d]", op.first, n.offset(), n.lastIndex())
			}
			if t := n.term(op.first - 1); t != op.prevTerm {
				return corruptf("entries from %d follow term %d, the log has %d at %d", op.first, op.prevTerm, t, op.first-1)
			}
			n.ents = n.appendEnts(op.ents)
		}
	}
	if c := n.hs.GetCommit(); c > n.lastIndex() {
		return corruptf("commit index %d beyond the last index %d", c, n.lastIndex())
	}
	if g.snap != nil {
		// The log the checkpoint reset must reach the snapshot and agree
		// with its term there.
		si := g.snap.index
		if si < n.offset() || si > n.lastIndex() {
			return corruptf("the log [%d, %d] does not reach the snapshot at %d", n.offset(), n.lastIndex(), si)
		}
		if t := n.term(si); t != g.snap.term {
			return corruptf("entry %d has term %d, the snapshot there has %d", si, t, g.snap.term)
		}
	}
	*st = n
	return nil
}
