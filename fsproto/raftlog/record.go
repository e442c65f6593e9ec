package raftlog

import (
	"encoding/binary"
	"fmt"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/weftfs/weft/journal"
)

// Journal record types. Stored on disk: never renumber.
const (
	typeHardState    uint16 = 1
	typeEntries      uint16 = 2
	typeSnapshot     uint16 = 3
	typeSnapshotData uint16 = 4
)

func typeName(t uint16) string {
	switch t {
	case typeHardState:
		return "hardstate"
	case typeEntries:
		return "entries"
	case typeSnapshot:
		return "snapshot"
	case typeSnapshotData:
		return "snapshotdata"
	}
	return fmt.Sprintf("type%d", t)
}

// Body prefix, common to every record type. Stored on disk.
const (
	bodyVersion1 = 1

	flagFirst  = 1 << 0 // first record of a Save group
	flagLast   = 1 << 1 // last record of a Save group
	flagsKnown = flagFirst | flagLast

	prefixSize = 4

	hardStateSize     = prefixSize + 24
	entriesHdrSize    = prefixSize + 24
	entryHdrSize      = 16
	snapshotHdrSize   = 48
	snapshotDataHdr   = prefixSize + 8
	entriesModeAppend = 0 // the entries replace the log suffix from first on
	entriesModeReset  = 1 // the log becomes exactly (first-1, prevTerm) + the entries
)

// SnapshotBytesMax is the largest snapshot data Save and CreateSnapshot
// accept (and replay believes). Snapshots are held in memory whole, and
// written to the journal in chunks, so the bound is a memory bound.
const SnapshotBytesMax = 64 << 20

var le = binary.LittleEndian

// corruptf returns an error marked with journal.ErrCorrupt, so that callers
// can tell bad bytes from I/O failures.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: raftlog: "+format, append([]any{journal.ErrCorrupt}, args...)...)
}

func putPrefix(b []byte, flags uint8) {
	b[0], b[1] = bodyVersion1, flags
	b[2], b[3] = 0, 0
}

// parsePrefix checks the common prefix and returns the group flags.
func parsePrefix(b []byte) (uint8, error) {
	if len(b) < prefixSize {
		return 0, corruptf("body of %d bytes is shorter than the %d-byte prefix", len(b), prefixSize)
	}
	if b[0] != bodyVersion1 {
		return 0, corruptf("body version %d, want %d", b[0], bodyVersion1)
	}
	if b[1]&^flagsKnown != 0 {
		return 0, corruptf("unknown flags %#x", b[1])
	}
	if b[2] != 0 || b[3] != 0 {
		return 0, corruptf("reserved prefix bytes %#x %#x are not zero", b[2], b[3])
	}
	return b[1], nil
}

// hardState is the body of a typeHardState record.
type hardState struct{ term, vote, commit uint64 }

func encodeHardState(flags uint8, h hardState) []byte {
	b := make([]byte, hardStateSize)
	putPrefix(b, flags)
	le.PutUint64(b[4:], h.term)
	le.PutUint64(b[12:], h.vote)
	le.PutUint64(b[20:], h.commit)
	return b
}

func decodeHardState(b []byte) (uint8, hardState, error) {
	flags, err := parsePrefix(b)
	if err != nil {
		return 0, hardState{}, err
	}
	if len(b) != hardStateSize {
		return 0, hardState{}, corruptf("hard state body is %d bytes, want %d", len(b), hardStateSize)
	}
	h := hardState{term: le.Uint64(b[4:]), vote: le.Uint64(b[12:]), commit: le.Uint64(b[20:])}
	return flags, h, nil
}

// entries is the body of a typeEntries record. Entry i has index first+i.
type entries struct {
	first, prevTerm uint64
	reset           bool
	ents            []*pb.Entry
}

func entriesSize(ents []*pb.Entry) int {
	n := entriesHdrSize
	for _, e := range ents {
		n += entryHdrSize + len(e.GetData())
	}
	return n
}

// encodeEntries encodes r. Invariant: r.ents are consecutive from r.first.
func encodeEntries(flags uint8, r entries) []byte {
	b := make([]byte, entriesSize(r.ents))
	putPrefix(b, flags)
	le.PutUint64(b[4:], r.first)
	le.PutUint64(b[12:], r.prevTerm)
	le.PutUint32(b[20:], uint32(len(r.ents)))
	if r.reset {
		b[24] = entriesModeReset
	}
	off := entriesHdrSize
	for i, e := range r.ents {
		if e.GetIndex() != r.first+uint64(i) {
			panic(fmt.Sprintf("raftlog: encoding entry %d with index %d in a record from %d", i, e.GetIndex(), r.first))
		}
		le.PutUint64(b[off:], e.GetTerm())
		le.PutUint32(b[off+8:], uint32(e.GetType()))
		le.PutUint32(b[off+12:], uint32(len(e.GetData())))
		off += entryHdrSize
		off += copy(b[off:], e.GetData())
	}
	return b
}

// decodeEntries decodes an entries body. The entries' Data are copies: b
// may be reused after it returns.
func decodeEntries(b []byte) (uint8, entries, error) {
	flags, err := parsePrefix(b)
	if err != nil {
		return 0, entries{}, err
	}
	if len(b) < entriesHdrSize {
		return 0, entries{}, corruptf("entries body of %d bytes is shorter than its %d-byte header", len(b), entriesHdrSize)
	}
	r := entries{first: le.Uint64(b[4:]), prevTerm: le.Uint64(b[12:])}
	count := le.Uint32(b[20:])
	switch b[24] {
	case entriesModeAppend:
	case entriesModeReset:
		r.reset = true
	default:
		return 0, entries{}, corruptf("entries mode %d unknown", b[24])
	}
	if b[25] != 0 || b[26] != 0 || b[27] != 0 {
		return 0, entries{}, corruptf("reserved entries header bytes are not zero")
	}
	if r.first == 0 {
		return 0, entries{}, corruptf("entries start at index 0")
	}
	if uint64(count) > uint64(len(b)-entriesHdrSize)/entryHdrSize {
		return 0, entries{}, corruptf("%d entries cannot fit in %d bytes", count, len(b))
	}
	if r.first+uint64(count) < r.first {
		return 0, entries{}, corruptf("%d entries from index %d overflow", count, r.first)
	}
	data := make([]byte, len(b)-entriesHdrSize-int(count)*entryHdrSize)
	r.ents = make([]*pb.Entry, count)
	off, doff := entriesHdrSize, 0
	for i := range r.ents {
		if len(b)-off < entryHdrSize {
			return 0, entries{}, corruptf("entry %d of %d: header runs past the body end", i, count)
		}
		term := le.Uint64(b[off:])
		typ := le.Uint32(b[off+8:])
		n := le.Uint32(b[off+12:])
		off += entryHdrSize
		if _, ok := pb.EntryType_name[int32(typ)]; !ok || typ > 1<<31-1 {
			return 0, entries{}, corruptf("entry %d of %d: unknown entry type %d", i, count, typ)
		}
		// NB: the data of all entries must leave room for the headers of
		// the later ones, which is what len(data) counts.
		if uint64(n) > uint64(len(data)-doff) {
			return 0, entries{}, corruptf("entry %d of %d: %d data bytes, only %d left for data", i, count, n, len(data)-doff)
		}
		var d []byte
		if n > 0 {
			d = data[doff : doff+int(n) : doff+int(n)]
			copy(d, b[off:off+int(n)])
			doff += int(n)
		}
		off += int(n)
		r.ents[i] = newEntry(r.first+uint64(i), term, pb.EntryType(typ), d)
	}
	if off != len(b) {
		return 0, entries{}, corruptf("%d bytes after the last of %d entries", len(b)-off, count)
	}
	return flags, r, nil
}

// newEntry builds an entry in the normal form this package keeps: Term,
// Index and Type always present, Data nil when empty.
func newEntry(index, term uint64, typ pb.EntryType, data []byte) *pb.Entry {
	if len(data) == 0 {
		data = nil
	}
	return &pb.Entry{Index: new(index), Term: new(term), Type: typ.Enum(), Data: data}
}

// snapshotMeta is the body of a typeSnapshot record; the data follows in
// typeSnapshotData records of the same group.
type snapshotMeta struct {
	index, term, dataLen uint64
	cs                   *pb.ConfState
}

func encodeSnapshot(flags uint8, m snapshotMeta) []byte {
	cs := m.cs
	lists := [][]uint64{cs.GetVoters(), cs.GetLearners(), cs.GetVotersOutgoing(), cs.GetLearnersNext()}
	n := snapshotHdrSize
	for _, l := range lists {
		n += 8 * len(l)
	}
	b := make([]byte, n)
	putPrefix(b, flags)
	le.PutUint64(b[4:], m.index)
	le.PutUint64(b[12:], m.term)
	le.PutUint64(b[20:], m.dataLen)
	if cs.GetAutoLeave() {
		b[28] = 1
	}
	off := snapshotHdrSize
	for i, l := range lists {
		le.PutUint32(b[32+4*i:], uint32(len(l)))
		for _, id := range l {
			le.PutUint64(b[off:], id)
			off += 8
		}
	}
	return b
}

func decodeSnapshot(b []byte) (uint8, snapshotMeta, error) {
	flags, err := parsePrefix(b)
	if err != nil {
		return 0, snapshotMeta{}, err
	}
	if len(b) < snapshotHdrSize {
		return 0, snapshotMeta{}, corruptf("snapshot body of %d bytes is shorter than its %d-byte header", len(b), snapshotHdrSize)
	}
	m := snapshotMeta{index: le.Uint64(b[4:]), term: le.Uint64(b[12:]), dataLen: le.Uint64(b[20:])}
	if m.index == 0 {
		return 0, snapshotMeta{}, corruptf("snapshot at index 0")
	}
	if m.dataLen > SnapshotBytesMax {
		return 0, snapshotMeta{}, corruptf("snapshot data of %d bytes exceeds the limit of %d", m.dataLen, SnapshotBytesMax)
	}
	if b[28] > 1 || b[29] != 0 || b[30] != 0 || b[31] != 0 {
		return 0, snapshotMeta{}, corruptf("bad auto-leave byte %d or reserved bytes not zero", b[28])
	}
	var lists [4][]uint64
	off := snapshotHdrSize
	for i := range lists {
		n := le.Uint32(b[32+4*i:])
		if uint64(n) > uint64(len(b)-off)/8 {
			return 0, snapshotMeta{}, corruptf("conf state list %d of %d ids runs past the body end", i, n)
		}
		if n > 0 {
			lists[i] = make([]uint64, n)
			for j := range lists[i] {
				lists[i][j] = le.Uint64(b[off:])
				off += 8
			}
		}
	}
	if off != len(b) {
		return 0, snapshotMeta{}, corruptf("%d bytes after the conf state", len(b)-off)
	}
	m.cs = &pb.ConfState{Voters: lists[0], Learners: lists[1], VotersOutgoing: lists[2], LearnersNext: lists[3]}
	if b[28] == 1 {
		m.cs.AutoLeave = new(true)
	}
	return flags, m, nil
}

// snapshotData is the body of a typeSnapshotData record: the bytes of the
// snapshot data at off.
type snapshotData struct {
	off  uint64
	data []byte
}

func encodeSnapshotData(flags uint8, d snapshotData) []byte {
	b := make([]byte, snapshotDataHdr+len(d.data))
	putPrefix(b, flags)
	le.PutUint64(b[4:], d.off)
	copy(b[snapshotDataHdr:], d.data)
	return b
}

// decodeSnapshotData decodes a chunk; data aliases b.
func decodeSnapshotData(b []byte) (uint8, snapshotData, error) {
	flags, err := parsePrefix(b)
	if err != nil {
		return 0, snapshotData{}, err
	}
	if len(b) < snapshotDataHdr {
		return 0, snapshotData{}, corruptf("snapshot data body of %d bytes is shorter than its %d-byte header", len(b), snapshotDataHdr)
	}
	d := snapshotData{off: le.Uint64(b[4:]), data: b[snapshotDataHdr:]}
	if d.off > SnapshotBytesMax || uint64(len(d.data)) > SnapshotBytesMax-d.off {
		return 0, snapshotData{}, corruptf("snapshot data chunk of %d bytes at %d passes the limit of %d", len(d.data), d.off, SnapshotBytesMax)
	}
	return flags, d, nil
}
