package raftgroup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// ErrCorrupt marks every decoding failure of bytes this package reads from
// the network or from the log: a raft message batch, an entry envelope, a
// conf change context, a snapshot envelope. Errors wrapping it name what was
// wrong; callers use errors.Is.
var ErrCorrupt = errors.New("raftgroup: corrupt data")

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// Format versions. Stored in the log and sent on the wire: never renumber.
const (
	entryVersion    = 1
	contextVersion  = 1
	snapshotVersion = 1
	batchVersion    = 1
)

// entryHeaderLen is the size of the envelope that precedes the state
// machine's bytes in a normal entry:
//
//	0     1             9
//	+-----+-------------+------------------------+
//	| ver | proposal id | command (SM bytes)...  |
//	| u8  | u64 LE      |                        |
//	+-----+-------------+------------------------+
const entryHeaderLen = 9

func encodeEntry(id uint64, data []byte) []byte {
	b := make([]byte, entryHeaderLen+len(data))
	b[0] = entryVersion
	binary.LittleEndian.PutUint64(b[1:], id)
	copy(b[entryHeaderLen:], data)
	return b
}

// decodeEntry splits a normal entry's data into the proposal id and the
// command. The command aliases b.
func decodeEntry(b []byte) (id uint64, cmd []byte, err error) {
	if len(b) < entryHeaderLen {
		return 0, nil, corruptf("entry of %d bytes is shorter than its %d-byte header", len(b), entryHeaderLen)
	}
	if b[0] != entryVersion {
		return 0, nil, corruptf("entry version %d, want %d", b[0], entryVersion)
	}
	return binary.LittleEndian.Uint64(b[1:]), b[entryHeaderLen:], nil
}

// maxAddrLen bounds a member's address.
const maxAddrLen = 1024

// encodeContext builds a conf change's Context:
//
//	0     1             9          11
//	+-----+-------------+----------+--------------+
//	| ver | proposal id | addr len | addr (UTF-8) |
//	| u8  | u64 LE      | u16 LE   |              |
//	+-----+-------------+----------+--------------+
//
// The proposal id is 0 for the conf changes of a bootstrap.
func encodeContext(id uint64, addr string) []byte {
	b := make([]byte, 11+len(addr))
	b[0] = contextVersion
	binary.LittleEndian.PutUint64(b[1:], id)
	binary.LittleEndian.PutUint16(b[9:], uint16(len(addr)))
	copy(b[11:], addr)
	return b
}

func decodeContext(b []byte) (id uint64, addr string, err error) {
	if len(b) < 11 {
		return 0, "", corruptf("conf change context of %d bytes is shorter than its 11-byte header", len(b))
	}
	if b[0] != contextVersion {
		return 0, "", corruptf("conf change context version %d, want %d", b[0], contextVersion)
	}
	n := int(binary.LittleEndian.Uint16(b[9:]))
	if n > maxAddrLen {
		return 0, "", corruptf("conf change address length %d over the limit %d", n, maxAddrLen)
	}
	if len(b) != 11+n {
		return 0, "", corruptf("conf change context of %d bytes, its address length %d says %d", len(b), n, 11+n)
	}
	return binary.LittleEndian.Uint64(b[1:]), string(b[11:]), nil
}

// maxMembers bounds the member list of a snapshot envelope. Raft groups in
// weft have 1 to 5 voters; the bound leaves room for learners and mistakes.
const maxMembers = 1024

// encodeSnapshot wraps the state machine's snapshot with the member
// addresses, which raft's ConfState does not carry:
//
//	0     1         5
//	+-----+---------+------------------------------------------+-----------+
//	| ver | members | members × (id u64 | addr len u16 | addr) | SM bytes  |
//	| u8  | u32 LE  | sorted by id, ids distinct and nonzero   |           |
//	+-----+---------+------------------------------------------+-----------+
func encodeSnapshot(members map[uint64]string, sm []byte) []byte {
	ids := make([]uint64, 0, len(members))
	n := 5 + len(sm)
	for id, addr := range members {
		ids = append(ids, id)
		n += 10 + len(addr)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b := make([]byte, 5, n)
	b[0] = snapshotVersion
	binary.LittleEndian.PutUint32(b[1:], uint32(len(ids)))
	for _, id := range ids {
		b = binary.LittleEndian.AppendUint64(b, id)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(members[id])))
		b = append(b, members[id]...)
	}
	return append(b, sm...)
}

// decodeSnapshot is the inverse of encodeSnapshot; sm aliases b.
func decodeSnapshot(b []byte) (members map[uint64]string, sm []byte, err error) {
	if len(b) < 5 {
		return nil, nil, corruptf("snapshot data of %d bytes is shorter than its 5-byte header", len(b))
	}
	if b[0] != snapshotVersion {
		return nil, nil, corruptf("snapshot data version %d, want %d", b[0], snapshotVersion)
	}
	count := binary.LittleEndian.Uint32(b[1:])
	if count > maxMembers {
		return nil, nil, corruptf("snapshot lists %d members, over the limit %d", count, maxMembers)
	}
	members = make(map[uint64]string, count)
	off := 5
	var prev uint64
	for i := range int(count) {
		if len(b)-off < 10 {
			return nil, nil, corruptf("snapshot member %d at offset %d: truncated", i, off)
		}
		id := binary.LittleEndian.Uint64(b[off:])
		n := int(binary.LittleEndian.Uint16(b[off+8:]))
		off += 10
		if id == 0 || id <= prev {
			return nil, nil, corruptf("snapshot member %d has id %d after %d: ids must be nonzero and increasing", i, id, prev)
		}
		if n > maxAddrLen || len(b)-off < n {
			return nil, nil, corruptf("snapshot member %d: address length %d at offset %d, %d bytes left (limit %d)", i, n, off, len(b)-off, maxAddrLen)
		}
		members[id] = string(b[off : off+n])
		off += n
		prev = id
	}
	return members, b[off:], nil
}

// batchHeaderLen is the size of a batch's header body:
//
//	0     1       4         8          16         24
//	+-----+-------+---------+----------+----------+
//	| ver | zero  | count   | group id | to       |
//	| u8  | 3 B   | u32 LE  | u64 LE   | u64 LE   |
//	+-----+-------+---------+----------+----------+
//
// The payload holds count messages, each a length and a protobuf-encoded
// raftpb.Message, with nothing after the last:
//
//	+-----------+------------------+-----------+------------------+ ...
//	| len u32LE | raftpb.Message   | len u32LE | raftpb.Message   |
//	+-----------+------------------+-----------+------------------+ ...
//
// Every message's To is the header's to. The frame's own checksums (see
// package net) cover header and payload.
const batchHeaderLen = 24

// maxBatchMessages bounds the messages of one batch.
const maxBatchMessages = 4096

type batchHeader struct {
	count   uint32
	groupID uint64
	to      uint64
}

func encodeBatchHeader(h batchHeader) []byte {
	b := make([]byte, batchHeaderLen)
	b[0] = batchVersion
	binary.LittleEndian.PutUint32(b[4:], h.count)
	binary.LittleEndian.PutUint64(b[8:], h.groupID)
	binary.LittleEndian.PutUint64(b[16:], h.to)
	return b
}

func decodeBatchHeader(b []byte) (batchHeader, error) {
	var h batchHeader
	if len(b) != batchHeaderLen {
		return h, corruptf("batch header of %d bytes, want %d", len(b), batchHeaderLen)
	}
	if b[0] != batchVersion {
		return h, corruptf("batch version %d, want %d", b[0], batchVersion)
	}
	if b[1]|b[2]|b[3] != 0 {
		return h, corruptf("batch header reserved bytes %x are not zero", b[1:4])
	}
	h.count = binary.LittleEndian.Uint32(b[4:])
	h.groupID = binary.LittleEndian.Uint64(b[8:])
	h.to = binary.LittleEndian.Uint64(b[16:])
	if h.count == 0 || h.count > maxBatchMessages {
		return h, corruptf("batch of %d messages, want 1 to %d", h.count, maxBatchMessages)
	}
	if h.to == 0 {
		return h, corruptf("batch addressed to member 0")
	}
	return h, nil
}

// A message too large for one call (a snapshot of a large state machine)
// travels as a transfer: the payload of a one-message batch cut into
// parts, each a KindRaft request whose header body is a part header:
//
//	0     1       8          16         24         32         40         48
//	+-----+-------+----------+----------+----------+----------+----------+
//	| ver | zero  | group id | to       | transfer | offset   | total    |
//	| u8=2| 7 B   | u64 LE   | u64 LE   | u64 LE   | u64 LE   | u64 LE   |
//	+-----+-------+----------+----------+----------+----------+----------+
//
// The payload is bytes [offset, offset+len) of the total-byte batch
// payload; transfer is the sender's random, nonzero id of the transfer.
// Parts of one transfer go in order, on one connection, each after the
// last was answered; the receiver steps the message when the last byte
// arrived (see NetRouter).
const (
	partVersion   = 2
	partHeaderLen = 48
	// transferBytesMax bounds the message one transfer carries (1 GiB:
	// a namespace of some ten million files), so that a claimed total
	// cannot make a receiver hold more.
	transferBytesMax = 1 << 30
)

type partHeader struct {
	groupID, to, transfer, offset, total uint64
}

func encodePartHeader(h partHeader) []byte {
	b := make([]byte, partHeaderLen)
	b[0] = partVersion
	binary.LittleEndian.PutUint64(b[8:], h.groupID)
	binary.LittleEndian.PutUint64(b[16:], h.to)
	binary.LittleEndian.PutUint64(b[24:], h.transfer)
	binary.LittleEndian.PutUint64(b[32:], h.offset)
	binary.LittleEndian.PutUint64(b[40:], h.total)
	return b
}

// decodePart decodes a part's header and checks it against its payload's
// length n: the part lies within the transfer and carries at least a byte.
func decodePart(b []byte, n int) (partHeader, error) {
	var h partHeader
	if len(b) != partHeaderLen {
		return h, corruptf("part header of %d bytes, want %d", len(b), partHeaderLen)
	}
	if b[0] != partVersion {
		return h, corruptf("part header version %d, want %d", b[0], partVersion)
	}
	if b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
		return h, corruptf("part header reserved bytes %x are not zero", b[1:8])
	}
	h.groupID = binary.LittleEndian.Uint64(b[8:])
	h.to = binary.LittleEndian.Uint64(b[16:])
	h.transfer = binary.LittleEndian.Uint64(b[24:])
	h.offset = binary.LittleEndian.Uint64(b[32:])
	h.total = binary.LittleEndian.Uint64(b[40:])
	switch {
	case h.to == 0:
		return h, corruptf("part addressed to member 0")
	case h.transfer == 0:
		return h, corruptf("part of transfer 0")
	case h.total == 0 || h.total > transferBytesMax:
		return h, corruptf("transfer of %d bytes, want 1 to %d", h.total, transferBytesMax)
	case n == 0:
		return h, corruptf("part at offset %d carries no bytes", h.offset)
	case h.offset >= h.total || uint64(n) > h.total-h.offset:
		return h, corruptf("part of %d bytes at offset %d lies outside the transfer's %d bytes", n, h.offset, h.total)
	}
	return h, nil
}

// decodeConfChange decodes a conf change entry's data and the context it
// carries: the change, its proposal id and the member's address.
func decodeConfChange(data []byte) (*raftpb.ConfChange, uint64, string, error) {
	cc := new(raftpb.ConfChange)
	if err := proto.Unmarshal(data, cc); err != nil {
		return nil, 0, "", corruptf("conf change: %v", err)
	}
	id, addr, err := decodeContext(cc.GetContext())
	if err != nil {
		return nil, 0, "", err
	}
	return cc, id, addr, nil
}

// appendMessage appends one length-prefixed message to a batch payload.
func appendMessage(b []byte, m *raftpb.Message) ([]byte, error) {
	data, err := proto.Marshal(m)
	if err != nil {
		return b, fmt.Errorf("raftgroup: marshal %s to %d: %w", m.GetType(), m.GetTo(), err)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...), nil
}

// decodeBatch decodes a batch (header body and payload). The messages do
// not alias payload.
func decodeBatch(header, payload []byte) (batchHeader, []*raftpb.Message, error) {
	h, err := decodeBatchHeader(header)
	if err != nil {
		return h, nil, err
	}
	msgs, err := decodeMessages(h, payload)
	return h, msgs, err
}

// decodeMessages decodes the h.count messages of a batch payload, each
// addressed to h.to. They do not alias payload.
func decodeMessages(h batchHeader, payload []byte) ([]*raftpb.Message, error) {
	msgs := make([]*raftpb.Message, 0, min(int(h.count), len(payload)/4+1))
	off := 0
	for i := range int(h.count) {
		if len(payload)-off < 4 {
			return nil, corruptf("batch message %d of %d at offset %d: truncated length", i, h.count, off)
		}
		n := int(binary.LittleEndian.Uint32(payload[off:]))
		off += 4
		if len(payload)-off < n {
			return nil, corruptf("batch message %d of %d at offset %d: length %d, %d bytes left", i, h.count, off, n, len(payload)-off)
		}
		m := new(raftpb.Message)
		if err := proto.Unmarshal(payload[off:off+n], m); err != nil {
			return nil, corruptf("batch message %d of %d at offset %d: %v", i, h.count, off, err)
		}
		off += n
		if err := checkMessage(m, h.to); err != nil {
			return nil, fmt.Errorf("batch message %d of %d: %w", i, h.count, err)
		}
		msgs = append(msgs, m)
	}
	if off != len(payload) {
		return nil, corruptf("batch has %d bytes after its %d messages", len(payload)-off, h.count)
	}
	return msgs, nil
}

// checkMessage refuses a message from the network that raft must not see:
// one addressed elsewhere, from nobody, or of a kind only a node sends itself.
func checkMessage(m *raftpb.Message, to uint64) error {
	if m.GetTo() != to {
		return corruptf("message to %d in a batch to %d", m.GetTo(), to)
	}
	if m.GetFrom() == 0 {
		return corruptf("%s message from member 0", m.GetType())
	}
	if _, ok := raftpb.MessageType_name[int32(m.GetType())]; !ok {
		return corruptf("unknown message type %d", int32(m.GetType()))
	}
	if raft.IsLocalMsg(m.GetType()) {
		return corruptf("%s is local to a node and never sent", m.GetType())
	}
	if len(m.GetResponses()) > 0 {
		return corruptf("%s carries %d local responses", m.GetType(), len(m.GetResponses()))
	}
	// Raft trusts its peers' messages to be well formed and panics on some
	// that are not, so refuse the shapes no correct peer sends.
	for i, e := range m.GetEntries() {
		if _, ok := raftpb.EntryType_name[int32(e.GetType())]; !ok {
			return corruptf("%s entry %d has unknown type %d", m.GetType(), i, int32(e.GetType()))
		}
		if m.GetType() == raftpb.MsgApp {
			if want := m.GetIndex() + 1 + uint64(i); e.GetIndex() != want {
				return corruptf("MsgApp after %d: entry %d has index %d, want %d", m.GetIndex(), i, e.GetIndex(), want)
			}
			if e.GetTerm() > m.GetTerm() || (i > 0 && e.GetTerm() < m.GetEntries()[i-1].GetTerm()) {
				return corruptf("MsgApp of term %d: entry %d at %d has term %d out of order", m.GetTerm(), i, e.GetIndex(), e.GetTerm())
			}
		}
	}
	if m.GetType() == raftpb.MsgSnap {
		md := m.GetSnapshot().GetMetadata()
		if md.GetIndex() == 0 || md.GetConfState() == nil {
			return corruptf("MsgSnap without a snapshot index and configuration")
		}
	}
	return nil
}
