package replication

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto"
)

// MsgKind says which message a Msg is. On-wire: never renumber.
type MsgKind uint8

// Message kinds. Requests go from a PG's primary to a replica, answers back.
const (
	MsgPeerQuery    MsgKind = 1  // primary → replica: report your highest seq
	MsgPeerInfo     MsgKind = 2  // replica → primary: Seq = highest seq in the PG; Mark if Marked; Floor
	MsgForward      MsgKind = 3  // primary → replica: apply Mut at Seq
	MsgForwardAck   MsgKind = 4  // replica → primary: Seq is durable
	MsgListReq      MsgKind = 5  // primary → replica: list changes after After (Limit entries)
	MsgListResp     MsgKind = 6  // replica → primary: Entries after After, More if truncated
	MsgSyncObject   MsgKind = 7  // primary → replica: install Object's state (Seq, Deleted, Data)
	MsgSyncAck      MsgKind = 8  // replica → primary: Object installed (Installed) or ask again
	MsgSyncDone     MsgKind = 9  // primary → replica: sync finished; RIDs = the primary's request ids
	MsgSyncDoneAck  MsgKind = 10 // replica → primary
	MsgReadCheck    MsgKind = 11 // primary → replica: still in Epoch? (Seq = round)
	MsgReadCheckAck MsgKind = 12 // replica → primary: yes (Seq = round)
	MsgStale        MsgKind = 13 // either way: your epoch is old; Epoch = mine
	// MsgSyncSame: primary → replica: keep Object if you hold it at Seq
	// with data whose SHA-256 is Digest (answered with SyncAck).
	MsgSyncSame MsgKind = 14
	// MsgLeaseGrant: replica → primary: the answer to a ReadCheck (Seq =
	// round) of a replica that runs read leases: yes, and I lead the PG in
	// no newer epoch for Lease nanoseconds (see "Read leases" in the
	// package doc).
	MsgLeaseGrant MsgKind = 15
	// MsgForgetUpTo: primary → replica: every seq <= Seq of this epoch is
	// durable on every replica of the view, so a caught-up replica may
	// forget tombstones up to it (see "Forgotten tombstones").
	MsgForgetUpTo MsgKind = 16
	msgKindEnd    MsgKind = 17
)

// ReadCheckLease, set in a ReadCheck's Seq (the round), asks for a
// LeaseGrant: the primary runs read leases. Without it a replica answers
// with a plain ReadCheckAck, as every build did before leases, so a
// primary of an older build, which knows no LeaseGrant, still completes
// its rounds. Answers echo Seq as received. Rounds stay far below it.
const ReadCheckLease uint64 = 1 << 63

var msgKindNames = [...]string{"invalid", "PeerQuery", "PeerInfo", "Forward", "ForwardAck", "ListReq",
	"ListResp", "SyncObject", "SyncAck", "SyncDone", "SyncDoneAck", "ReadCheck", "ReadCheckAck", "Stale", "SyncSame",
	"LeaseGrant", "ForgetUpTo"}

func (k MsgKind) String() string {
	if int(k) < len(msgKindNames) {
		return msgKindNames[k]
	}
	return fmt.Sprintf("MsgKind(%d)", k)
}

// MutKind is the kind of a mutation. On-wire: never renumber.
type MutKind uint8

// Mutation kinds.
const (
	MutWrite    MutKind = 1
	MutTruncate MutKind = 2
	MutDelete   MutKind = 3
)

func (k MutKind) String() string {
	switch k {
	case MutWrite:
		return "write"
	case MutTruncate:
		return "truncate"
	case MutDelete:
		return "delete"
	}
	return fmt.Sprintf("MutKind(%d)", k)
}

// Mutation is one change to one object. Off is a write's offset; Size is a
// truncate's new size; the data of a write travels beside it.
type Mutation struct {
	Kind   MutKind
	Object engine.ObjectID
	Off    uint64
	Size   uint64
}

// RIDEntry is a remembered request id: the mutation with ID was applied
// to Object at Seq.
type RIDEntry struct {
	ID     fsproto.RequestID
	Object engine.ObjectID
	Seq    uint64
}

// Entry is one line of a change list: an object and the seq of its last
// mutation in the PG.
type Entry struct {
	Object engine.ObjectID
	Seq    uint64
}

// Msg is one replication message. Which fields mean something depends on
// Kind (see the kind constants and the package doc's wire layouts). Data
// is not copied by the decoder: it aliases the decoded buffer.
type Msg struct {
	Kind  MsgKind
	PG    uint32
	Epoch uint64

	Seq        uint64 // PeerInfo: highest seq; Forward(Ack), SyncObject: the seq; ReadCheck(Ack), LeaseGrant: round
	RequestID  fsproto.RequestID
	Mut        Mutation        // Forward
	Object     engine.ObjectID // SyncObject, SyncSame, SyncAck
	Digest     [DigestLen]byte // SyncSame: SHA-256 of the object's data
	Deleted    bool            // SyncObject
	Installed  bool            // SyncAck
	EpochStart uint64          // SyncObject, SyncSame: the first seq of the primary's epoch
	Marked     bool            // PeerInfo: the replica is incomplete above Mark (a sync did not finish)
	Mark       uint64          // PeerInfo
	Floor      uint64          // PeerInfo: tombstones at seqs <= Floor may be forgotten (see "Forgotten tombstones")
	After      uint64          // ListReq, ListResp: list changes with seq > After
	Limit      uint32          // ListReq
	More       bool            // ListResp
	Entries    []Entry         // ListResp
	RIDs       []RIDEntry      // SyncDone; SyncObject, SyncSame (Object unset: it is the message's)
	Data       []byte          // Forward (write data), SyncObject (whole object)
	Lease      uint64          // LeaseGrant: nanoseconds granted
}

// Codec limits.
const (
	msgVersion = 1
	headerLen  = 16
	// MaxDataBytes bounds the data of one message: a write's data, or a
	// whole object during sync (objects are chunks, at most this big).
	MaxDataBytes = engine.MaxWriteBytes
	// MaxListEntries bounds the entries of one ListResp.
	MaxListEntries = 4096
	entryLen       = 24
	// MaxRIDEntries bounds the request ids of one SyncDone, and so
	// Config.RequestIDs.
	MaxRIDEntries = 1 << 16
	ridEntryLen   = 40
	// MaxObjectRIDs bounds the request ids one SyncObject carries.
	MaxObjectRIDs = 64
	objRIDLen     = 24
	// DigestLen is the length of a SyncSame digest (SHA-256).
	DigestLen = 32
)

// ErrBadMessage marks every decoding failure of a replication message.
var ErrBadMessage = errors.New("replication: malformed message")

func badMsg(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadMessage, fmt.Sprintf(format, args...))
}

var le = binary.LittleEndian

func putObj(b []byte, o engine.ObjectID) []byte {
	b = le.AppendUint64(b, o.Hi)
	return le.AppendUint64(b, o.Lo)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// AppendMsg appends m's encoding to b. Encoding a message that breaks the
// codec's limits is a caller bug and panics.
func AppendMsg(b []byte, m *Msg) []byte {
	if m.Kind == 0 || m.Kind >= msgKindEnd {
		panic(fmt.Sprintf("replication: encoding message kind %d", m.Kind))
	}
	if len(m.Data) > MaxDataBytes || len(m.Entries) > MaxListEntries || len(m.RIDs) > MaxRIDEntries ||
		((m.Kind == MsgSyncObject || m.Kind == MsgSyncSame) && len(m.RIDs) > MaxObjectRIDs) ||
		(m.Kind == MsgSyncSame && len(m.Data) > 0) {
		panic(fmt.Sprintf("replication: encoding %v with %d data bytes, %d entries", m.Kind, len(m.Data), len(m.Entries)))
	}
	b = append(b, msgVersion, byte(m.Kind), 0, 0)
	b = le.AppendUint32(b, m.PG)
	b = le.AppendUint64(b, m.Epoch)
	switch m.Kind {
	case MsgPeerQuery, MsgSyncDoneAck, MsgStale:
	case MsgSyncDone:
		b = le.AppendUint32(b, uint32(len(m.RIDs)))
		b = le.AppendUint32(b, 0)
		for _, e := range m.RIDs {
			b = append(b, e.ID[:]...)
			b = putObj(b, e.Object)
			b = le.AppendUint64(b, e.Seq)
		}
	case MsgForwardAck, MsgReadCheck, MsgReadCheckAck, MsgForgetUpTo:
		b = le.AppendUint64(b, m.Seq)
	case MsgLeaseGrant:
		b = le.AppendUint64(b, m.Seq)
		b = le.AppendUint64(b, m.Lease)
	case MsgPeerInfo:
		b = le.AppendUint64(b, m.Seq)
		b = le.AppendUint64(b, m.Mark)
		b = append(b, boolByte(m.Marked), 0, 0, 0, 0, 0, 0, 0)
		b = le.AppendUint64(b, m.Floor)
	case MsgForward:
		b = le.AppendUint64(b, m.Seq)
		b = append(b, m.RequestID[:]...)
		b = append(b, byte(m.Mut.Kind), 0, 0, 0)
		b = le.AppendUint32(b, uint32(len(m.Data)))
		b = putObj(b, m.Mut.Object)
		b = le.AppendUint64(b, m.Mut.Off)
		b = le.AppendUint64(b, m.Mut.Size)
		b = append(b, m.Data...)
	case MsgListReq:
		b = le.AppendUint64(b, m.After)
		b = le.AppendUint32(b, m.Limit)
		b = le.AppendUint32(b, 0)
	case MsgListResp:
		b = le.AppendUint64(b, m.After)
		b = append(b, boolByte(m.More), 0, 0, 0)
		b = le.AppendUint32(b, uint32(len(m.Entries)))
		for _, e := range m.Entries {
			b = putObj(b, e.Object)
			b = le.AppendUint64(b, e.Seq)
		}
	case MsgSyncObject:
		b = le.AppendUint64(b, m.Seq)
		b = le.AppendUint64(b, m.EpochStart)
		b = putObj(b, m.Object)
		b = append(b, boolByte(m.Deleted), 0)
		b = le.AppendUint16(b, uint16(len(m.RIDs)))
		b = le.AppendUint32(b, uint32(len(m.Data)))
		for _, e := range m.RIDs {
			b = append(b, e.ID[:]...)
			b = le.AppendUint64(b, e.Seq)
		}
		b = append(b, m.Data...)
	case MsgSyncSame:
		b = le.AppendUint64(b, m.Seq)
		b = le.AppendUint64(b, m.EpochStart)
		b = putObj(b, m.Object)
		b = le.AppendUint16(b, uint16(len(m.RIDs)))
		b = append(b, 0, 0, 0, 0, 0, 0)
		b = append(b, m.Digest[:]...)
		for _, e := range m.RIDs {
			b = append(b, e.ID[:]...)
			b = le.AppendUint64(b, e.Seq)
		}
	case MsgSyncAck:
		b = putObj(b, m.Object)
		b = append(b, boolByte(m.Installed), 0, 0, 0, 0, 0, 0, 0)
	}
	return b
}

// bodyLen is the fixed body length of each kind (before variable data).
var bodyLen = [msgKindEnd]int{
	MsgPeerQuery: 0, MsgSyncDone: 8, MsgSyncDoneAck: 0, MsgStale: 0,
	MsgPeerInfo: 32, MsgForwardAck: 8, MsgReadCheck: 8, MsgReadCheckAck: 8,
	MsgForward: 8 + 16 + 4 + 4 + 16 + 8 + 8, MsgListReq: 16, MsgListResp: 16,
	MsgSyncObject: 8 + 8 + 16 + 4 + 4, MsgSyncAck: 24,
	MsgSyncSame: 8 + 8 + 16 + 2 + 6 + DigestLen, MsgLeaseGrant: 16, MsgForgetUpTo: 8,
}

func getObj(b []byte) engine.ObjectID {
	return engine.ObjectID{Hi: le.Uint64(b), Lo: le.Uint64(b[8:])}
}

func getBool(b byte, what string) (bool, error) {
	if b > 1 {
		return false, badMsg("%s flag is %d, want 0 or 1", what, b)
	}
	return b == 1, nil
}

func zero(b []byte, what string) error {
	for i, c := range b {
		if c != 0 {
			return badMsg("reserved byte %d of %s is %#x", i, what, c)
		}
	}
	return nil
}

// DecodeMsg decodes one message. It checks the version, the kind, the
// exact length, reserved bytes, flags and limits, and returns an error
// wrapping ErrBadMessage naming what was wrong. m.Data aliases b.
func DecodeMsg(b []byte) (Msg, error) {
	var m Msg
	if len(b) < headerLen {
		return m, badMsg("%d bytes, shorter than the %d-byte header", len(b), headerLen)
	}
	if b[0] != msgVersion {
		return m, badMsg("version %d, want %d", b[0], msgVersion)
	}
	m.Kind = MsgKind(b[1])
	if m.Kind == 0 || m.Kind >= msgKindEnd {
		return m, badMsg("unknown kind %d", b[1])
	}
	if err := zero(b[2:4], "header"); err != nil {
		return m, err
	}
	m.PG = le.Uint32(b[4:])
	m.Epoch = le.Uint64(b[8:])
	body := b[headerLen:]
	n := bodyLen[m.Kind]
	if len(body) < n {
		return m, badMsg("%v body is %d bytes, want at least %d", m.Kind, len(body), n)
	}
	rest := body[n:]
	var err error
	switch m.Kind {
	case MsgPeerQuery, MsgSyncDoneAck, MsgStale:
	case MsgSyncDone:
		cnt := le.Uint32(body)
		if err := zero(body[4:8], "sync done"); err != nil {
			return m, err
		}
		if cnt > MaxRIDEntries {
			return m, badMsg("sync done with %d request ids above %d", cnt, MaxRIDEntries)
		}
		if uint64(len(rest)) != uint64(cnt)*ridEntryLen {
			return m, badMsg("sync done with %d request ids carries %d bytes, want %d", cnt, len(rest), uint64(cnt)*ridEntryLen)
		}
		if cnt > 0 {
			m.RIDs = make([]RIDEntry, cnt)
			for i := range m.RIDs {
				e := rest[i*ridEntryLen:]
				copy(m.RIDs[i].ID[:], e[:16])
				m.RIDs[i].Object = getObj(e[16:])
				m.RIDs[i].Seq = le.Uint64(e[32:])
			}
		}
		rest = nil
	case MsgForwardAck, MsgReadCheck, MsgReadCheckAck, MsgForgetUpTo:
		m.Seq = le.Uint64(body)
	case MsgLeaseGrant:
		m.Seq = le.Uint64(body)
		m.Lease = le.Uint64(body[8:])
	case MsgPeerInfo:
		m.Seq = le.Uint64(body)
		m.Mark = le.Uint64(body[8:])
		if m.Marked, err = getBool(body[16], "peer info marked"); err != nil {
			return m, err
		}
		if err := zero(body[17:24], "peer info"); err != nil {
			return m, err
		}
		if !m.Marked && m.Mark != 0 {
			return m, badMsg("peer info mark %d without the marked flag", m.Mark)
		}
		m.Floor = le.Uint64(body[24:])
	case MsgForward:
		m.Seq = le.Uint64(body)
		copy(m.RequestID[:], body[8:24])
		m.Mut.Kind = MutKind(body[24])
		if m.Mut.Kind < MutWrite || m.Mut.Kind > MutDelete {
			return m, badMsg("forward mutation kind %d", body[24])
		}
		if err := zero(body[25:28], "forward"); err != nil {
			return m, err
		}
		dlen := le.Uint32(body[28:])
		m.Mut.Object = getObj(body[32:])
		m.Mut.Off = le.Uint64(body[48:])
		m.Mut.Size = le.Uint64(body[56:])
		if dlen > MaxDataBytes {
			return m, badMsg("forward data length %d above %d", dlen, MaxDataBytes)
		}
		if uint32(len(rest)) != dlen {
			return m, badMsg("forward carries %d data bytes, header says %d", len(rest), dlen)
		}
		if m.Mut.Kind == MutWrite && dlen == 0 {
			return m, badMsg("forward write without data")
		}
		if m.Mut.Kind != MutWrite && (dlen != 0 || m.Mut.Off != 0) {
			return m, badMsg("forward %v with offset %d and %d data bytes", m.Mut.Kind, m.Mut.Off, dlen)
		}
		if m.Mut.Kind != MutTruncate && m.Mut.Size != 0 {
			return m, badMsg("forward %v with size %d", m.Mut.Kind, m.Mut.Size)
		}
		if m.Mut.Kind == MutWrite && m.Mut.Off+uint64(dlen) < m.Mut.Off {
			return m, badMsg("forward write offset %d + %d overflows", m.Mut.Off, dlen)
		}
		if dlen > 0 {
			m.Data = rest
		}
		rest = nil
	case MsgListReq:
		m.After = le.Uint64(body)
		m.Limit = le.Uint32(body[8:])
		if m.Limit == 0 || m.Limit > MaxListEntries {
			return m, badMsg("list limit %d, want 1..%d", m.Limit, MaxListEntries)
		}
		if err := zero(body[12:16], "list request"); err != nil {
			return m, err
		}
	case MsgListResp:
		m.After = le.Uint64(body)
		if m.More, err = getBool(body[8], "list more"); err != nil {
			return m, err
		}
		if err := zero(body[9:12], "list response"); err != nil {
			return m, err
		}
		cnt := le.Uint32(body[12:])
		if cnt > MaxListEntries {
			return m, badMsg("list of %d entries above %d", cnt, MaxListEntries)
		}
		if uint64(len(rest)) != uint64(cnt)*entryLen {
			return m, badMsg("list of %d entries carries %d bytes, want %d", cnt, len(rest), uint64(cnt)*entryLen)
		}
		if cnt > 0 {
			m.Entries = make([]Entry, cnt)
			for i := range m.Entries {
				e := rest[i*entryLen:]
				m.Entries[i] = Entry{Object: getObj(e), Seq: le.Uint64(e[16:])}
			}
		}
		rest = nil
	case MsgSyncObject:
		m.Seq = le.Uint64(body)
		m.EpochStart = le.Uint64(body[8:])
		m.Object = getObj(body[16:])
		if m.Deleted, err = getBool(body[32], "sync deleted"); err != nil {
			return m, err
		}
		if err := zero(body[33:34], "sync object"); err != nil {
			return m, err
		}
		nrid := int(le.Uint16(body[34:]))
		dlen := le.Uint32(body[36:])
		if dlen > MaxDataBytes {
			return m, badMsg("sync object data length %d above %d", dlen, MaxDataBytes)
		}
		if nrid > MaxObjectRIDs {
			return m, badMsg("sync object with %d request ids above %d", nrid, MaxObjectRIDs)
		}
		if uint64(len(rest)) != uint64(dlen)+uint64(nrid)*objRIDLen {
			return m, badMsg("sync object carries %d bytes, header says %d data bytes and %d request ids", len(rest), dlen, nrid)
		}
		if nrid > 0 {
			m.RIDs = make([]RIDEntry, nrid)
			for i := range m.RIDs {
				e := rest[i*objRIDLen:]
				copy(m.RIDs[i].ID[:], e[:16])
				m.RIDs[i].Seq = le.Uint64(e[16:])
			}
			rest = rest[nrid*objRIDLen:]
		}
		if m.Deleted && dlen != 0 {
			return m, badMsg("deleted sync object with %d data bytes", dlen)
		}
		if dlen > 0 {
			m.Data = rest
		}
		rest = nil
	case MsgSyncSame:
		m.Seq = le.Uint64(body)
		m.EpochStart = le.Uint64(body[8:])
		m.Object = getObj(body[16:])
		nrid := int(le.Uint16(body[32:]))
		if err := zero(body[34:40], "sync same"); err != nil {
			return m, err
		}
		copy(m.Digest[:], body[40:40+DigestLen])
		if nrid > MaxObjectRIDs {
			return m, badMsg("sync same with %d request ids above %d", nrid, MaxObjectRIDs)
		}
		if len(rest) != nrid*objRIDLen {
			return m, badMsg("sync same carries %d bytes, header says %d request ids", len(rest), nrid)
		}
		if nrid > 0 {
			m.RIDs = make([]RIDEntry, nrid)
			for i := range m.RIDs {
				e := rest[i*objRIDLen:]
				copy(m.RIDs[i].ID[:], e[:16])
				m.RIDs[i].Seq = le.Uint64(e[16:])
			}
		}
		rest = nil
	case MsgSyncAck:
		m.Object = getObj(body)
		if m.Installed, err = getBool(body[16], "sync installed"); err != nil {
			return m, err
		}
		if err := zero(body[17:24], "sync ack"); err != nil {
			return m, err
		}
	}
	if len(rest) != 0 {
		return m, badMsg("%d trailing bytes after %v", len(rest), m.Kind)
	}
	return m, nil
}
