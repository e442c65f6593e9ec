// Package raftlog is the durable log storage of one etcd Raft group
// (go.etcd.io/raft/v3): a raft.Storage whose hard state, entries and
// snapshots live in a weft journal in one directory.
//
// # Using it
//
//	s, err := raftlog.Open(raftlog.Options{FS: fs, Dir: dir})
//	rn, err := raft.NewRawNode(&raft.Config{ID: id, Storage: s, ...})
//	for each Ready rd:
//		err := s.Save(rd.HardState, rd.Entries, rd.Snapshot) // durable on return
//		send rd.Messages; apply rd.CommittedEntries; rn.Advance(rd)
//	now and then, at an applied index i:
//		s.CreateSnapshot(i, &confState, appState) // and compacts
//	s.Close()
//
// Save makes its hard state, entries and snapshot durable before it
// returns, atomically: after a crash either all of one Save is in the log or
// none of it. The one exception is a Save that only moves the commit
// index (no entries, no snapshot, the term and vote unchanged): it is
// written in order behind everything before it but not waited for, as
// etcd's raft.MustSync allows, since the commit index is learned again
// from the leader. After a crash the commit index is therefore at least
// the one the last waited-for Save recorded, and at most the newest one;
// the committed entries themselves were made durable by the Saves that
// appended them. A failure of such a write fails every later Save. Its arguments have the types of raft.Ready's fields (this
// raft is built on protobuf-go, whose messages are passed by pointer); a
// nil or empty hard state or snapshot is skipped. The read methods of
// raft.Storage behave as raft.MemoryStorage's do, returning
// raft.ErrCompacted, raft.ErrUnavailable and raft.ErrSnapOutOfDate in the
// same cases (where MemoryStorage panics on an out-of-range argument,
// Storage returns an error). Open locks the directory (a LOCK file): a
// second Storage on it fails with an error wrapping vfs.ErrLocked until the
// first is closed. All methods are safe for concurrent use; one
// mutex serialises them, and Save holds it while the journal flushes, since
// this is not the data path.
//
// # Memory
//
// Storage keeps the live log in memory, as MemoryStorage does: every entry
// from the compaction point to the last index, plus the latest snapshot's
// data (at most SnapshotBytesMax, 64 MiB). Entries are dropped only by
// CreateSnapshot, which keeps Options.KeepEntries entries before the
// snapshot index; a leader's snapshot saved by Save drops the whole log
// before it. So memory is bounded by the entries the application lets
// accumulate between snapshots, plus KeepEntries, plus one snapshot: the
// application bounds it by snapshotting every N applied entries.
//
// # On disk
//
// The directory is a journal (package journal): segments of checksummed,
// sequence-numbered records. The journal supplies each record's type, length
// and CRC32C; this package defines the bodies. Every value is stored on
// disk: never renumber. Integers are little-endian. Record types:
//
//	1 hard state   2 entries   3 snapshot   4 snapshot data
//
// Every body starts with the same 4-byte prefix:
//
//	+---------+-------+----------+
//	| version | flags | reserved |    version = 1
//	| u8      | u8    | u16 = 0  |    flags: 1 = first of group, 2 = last of group
//	+---------+-------+----------+
//
// Hard state (type 1), 28 bytes:
//
//	+--------+------+------+--------+
//	| prefix | term | vote | commit |
//	| 4      | u64  | u64  | u64    |
//	+--------+------+------+--------+
//
// Entries (type 2): count entries with indexes first, first+1, ...
//
//	+--------+-------+----------+-------+------+----------+
//	| prefix | first | prevTerm | count | mode | reserved |  28-byte header
//	| 4      | u64   | u64      | u32   | u8   | 3 x u8=0 |
//	+--------+-------+----------+-------+------+----------+
//	then count times:
//	+------+------+---------+------------+
//	| term | type | dataLen | data       |   type is raftpb.EntryType
//	| u64  | u32  | u32     | dataLen B  |
//	+------+------+---------+------------+
//
// prevTerm is the term of entry first-1. Mode 0 (append): the entries
// replace the log from index first on; first-1 must be in the log with
// term prevTerm. Mode 1 (reset): the log becomes exactly the compaction
// point (first-1, prevTerm) followed by the entries.
//
// Snapshot (type 3): the metadata; the data follows in type 4 records.
//
//	+--------+-------+------+---------+-----------+----------+
//	| prefix | index | term | dataLen | autoLeave | reserved |
//	| 4      | u64   | u64  | u64     | u8 (0/1)  | 3 x u8=0 |
//	+--------+-------+------+---------+-----------+----------+
//	+---------+-----------+------------+--------------+
//	| nVoters | nLearners | nVotersOut | nLearnersNxt |   then the ids of the
//	| u32     | u32       | u32        | u32          |   four lists, u64 each
//	+---------+-----------+------------+--------------+
//
// Snapshot data (type 4): a chunk of at most 256 KiB (less for small
// segments) at offset off of the snapshot's data.
//
//	+--------+-----+--------------+
//	| prefix | off | data         |
//	| 4      | u64 | rest of body |
//	+--------+-----+--------------+
//
// # Groups and checkpoints
//
// Each Save or CreateSnapshot writes one group: consecutive records, the
// first flagged first and the last flagged last. Replay applies a group
// only once it has read the last record, so a group torn by a crash is
// skipped whole (the journal recovers a prefix of what was appended, so a
// torn group is followed only by the start of a later group, or nothing).
//
//	ordinary Save:  [entries (append)]... [hard state]
//	checkpoint:     snapshot, [snapshot data]..., entries (reset),
//	                [entries (append)]..., hard state
//
// A checkpoint is written by CreateSnapshot (with every entry it keeps) and
// by a Save that carries a leader's snapshot; it holds the whole state, so
// once it is durable the journal segments before it are deleted
// (journal.TruncateBefore), one at a time, oldest first, so that a crash
// in the middle leaves a contiguous log. Open replays from the newest
// complete checkpoint, or from the journal's first record when there is
// none, and then checks the invariants of what it rebuilt: consecutive
// indexes, the snapshot inside the log with the log's term at its index,
// the commit index at most the last index.
//
// Rewriting the kept entries into every checkpoint costs I/O proportional
// to KeepEntries plus the entries not yet compacted; it is what lets replay
// start at one record with nothing before it. A checkpoint's snapshot data
// is encoded record by record as the journal takes it, so writing one needs
// little beyond the snapshot's own copy in memory.
//
// # Errors
//
// Bad bytes in a record (which passed the journal's CRC, so a bug or a
// foreign writer) come back from Open as a *RecordError naming the record's
// sequence number and wrapping journal.ErrCorrupt; corruption the journal
// finds is a *journal.CorruptError naming the file and offset. Open never
// guesses past either.
package raftlog
