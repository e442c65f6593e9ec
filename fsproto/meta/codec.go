package meta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/namespace"
	"github.com/weftfs/weft/net"
)

// RPC kinds of the metadata service. User range 330-339 (manager 310-319,
// replication 320). On-wire: never renumber. 332-339 are reserved.
const (
	// KindOp proposes one namespace command, with a request id.
	KindOp net.Kind = 330
	// KindRead asks the leader for a linearizable read.
	KindRead net.Kind = 331
)

// Error codes of the metadata service (net error responses). On-wire:
// never renumber. A code inviting a retry (CodeUnavailable, CodeNoMember)
// is sent only when the request was certainly not applied.
const (
	// CodeBadRequest: the header did not decode (or its command did not).
	// Nothing was done; sending the same bytes again cannot help.
	CodeBadRequest net.ErrorCode = 330
	// CodeReadOnly: an op needs a key that grants writes. Nothing done.
	CodeReadOnly net.ErrorCode = 331
	// CodeUnavailable: the member could not serve the request and did not
	// apply it (no leader, raft refused the proposal, stopped, a read
	// barrier failed). Safe to retry.
	CodeUnavailable net.ErrorCode = 332
	// CodeAmbiguous: the proposal was submitted but its outcome is
	// unknown; it may still apply. Retry with the same request id.
	CodeAmbiguous net.ErrorCode = 333
	// CodeNoMember: this node runs no member of the container's group
	// (not one of its members, not started yet, or the container is
	// unknown to its map). Nothing done; try another member.
	CodeNoMember net.ErrorCode = 334
	// CodeRejected: the reply does not fit the connection's limits. For
	// an op, the command applied.
	CodeRejected net.ErrorCode = 335
	// CodeNotStarted: the answer to ReadMembers of a node that runs no
	// member of the group but may hold its raft log (restarting). A
	// member with an empty log that asks does not bootstrap (see probe).
	CodeNotStarted net.ErrorCode = 336
)

// ErrCorrupt marks every decoding failure of this package's formats:
// request and reply headers, raft log entries, snapshots. Errors wrapping
// it name what was wrong.
var ErrCorrupt = errors.New("meta: corrupt message")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// msgVersion starts every header body and log entry. On-wire and on disk:
// never renumber.
const msgVersion = 1

// RequestID names an op for deduplication: Client is random per
// meta.Client, Seq counts its ops. Every retry of one op carries the same
// id; the state machine applies an id once. Both fields are nonzero.
type RequestID struct {
	Client, Seq uint64
}

// opRequest is KindOp's header body:
//
//	0     1            4           12          20          28
//	+-----+------------+-----------+-----------+-----------+-------------------+
//	| ver | reserved   | container | client id | seq       | namespace command |
//	| u8  | 3 × u8 = 0 | u64 != 0  | u64 != 0  | u64 != 0  | (to the end)      |
//	+-----+------------+-----------+-----------+-----------+-------------------+
type opRequest struct {
	Container clustermap.ContainerID
	ID        RequestID
	Command   []byte // aliases the decoded bytes
}

const opRequestPrefixLen = 28

func (r opRequest) append(b []byte) []byte {
	b = append(b, msgVersion, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.Container))
	b = binary.LittleEndian.AppendUint64(b, r.ID.Client)
	b = binary.LittleEndian.AppendUint64(b, r.ID.Seq)
	return append(b, r.Command...)
}

func decodeOpRequest(b []byte) (opRequest, error) {
	var r opRequest
	if len(b) < opRequestPrefixLen+1 {
		return r, corrupt("op request of %d bytes, want a %d-byte prefix and a command", len(b), opRequestPrefixLen)
	}
	if b[0] != msgVersion {
		return r, corrupt("op request version %d, want %d", b[0], msgVersion)
	}
	if b[1] != 0 || b[2] != 0 || b[3] != 0 {
		return r, corrupt("op request reserved bytes %x, want 0", b[1:4])
	}
	r.Container = clustermap.ContainerID(binary.LittleEndian.Uint64(b[4:]))
	r.ID.Client = binary.LittleEndian.Uint64(b[12:])
	r.ID.Seq = binary.LittleEndian.Uint64(b[20:])
	if r.Container == 0 {
		return r, corrupt("op request for container 0")
	}
	if r.ID.Client == 0 || r.ID.Seq == 0 {
		return r, corrupt("op request id %d/%d: client and seq must be nonzero", r.ID.Client, r.ID.Seq)
	}
	r.Command = b[opRequestPrefixLen:]
	return r, nil
}

// ReadOp says which read a KindRead request asks for. On-wire: never
// renumber.
type ReadOp uint8

// Read ops and the request fields each uses.
const (
	ReadLookup    ReadOp = 1 // ino = parent, name
	ReadGetAttr   ReadOp = 2 // ino
	ReadDir       ReadOp = 3 // ino, name = cookie, limit
	ReadLink      ReadOp = 4 // ino
	ReadGetXattr  ReadOp = 5 // ino, name
	ReadListXattr ReadOp = 6 // ino
	ReadStatFS    ReadOp = 7 // nothing
	// ReadMembers asks any member (leader or not, no read barrier) for
	// the voters and learners of its group's configuration; a Host with
	// an empty log asks before it bootstraps or joins, naming itself in
	// ino (0: nobody), so that a leader that counts it as a voter learns
	// that it lost its log (see probe). Nothing else in the request.
	ReadMembers ReadOp = 8
)

var readOpNames = [...]string{ReadLookup: "lookup", ReadGetAttr: "getattr", ReadDir: "readdir", ReadLink: "readlink",
	ReadGetXattr: "getxattr", ReadListXattr: "listxattr", ReadStatFS: "statfs", ReadMembers: "members"}

func (o ReadOp) String() string {
	if o >= ReadLookup && o <= ReadMembers {
		return readOpNames[o]
	}
	return fmt.Sprintf("ReadOp(%d)", uint8(o))
}

// votersMax bounds the voters in a ReadMembers reply.
const votersMax = 64

// readDirLimitMax bounds a ReadDir page, so a reply stays far below the
// connection's payload limit: 4096 entries of at most 266 bytes is about
// 1 MiB.
const readDirLimitMax = 4096

// readRequest is KindRead's header body:
//
//	0     1    2          4        8           16    24         26
//	+-----+----+----------+--------+-----------+-----+----------+------+
//	| ver | op | reserved | limit  | container | ino | name len | name |
//	| u8  | u8 | u16 = 0  | u32    | u64 != 0  | u64 | u16      |      |
//	+-----+----+----------+--------+-----------+-----+----------+------+
//	limit: ReadDir's page size, 1..4096; 0 for other ops
//	name:  <= 255 bytes (Lookup's name, ReadDir's cookie, GetXattr's name)
type readRequest struct {
	Op        ReadOp
	Limit     uint32
	Container clustermap.ContainerID
	Ino       namespace.Ino
	Name      string
}

const readRequestPrefixLen = 26

func (r readRequest) append(b []byte) []byte {
	b = append(b, msgVersion, byte(r.Op), 0, 0)
	b = binary.LittleEndian.AppendUint32(b, r.Limit)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.Container))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.Ino))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(r.Name)))
	return append(b, r.Name...)
}

func decodeReadRequest(b []byte) (readRequest, error) {
	var r readRequest
	if len(b) < readRequestPrefixLen {
		return r, corrupt("read request of %d bytes, want at least %d", len(b), readRequestPrefixLen)
	}
	if b[0] != msgVersion {
		return r, corrupt("read request version %d, want %d", b[0], msgVersion)
	}
	r.Op = ReadOp(b[1])
	if r.Op < ReadLookup || r.Op > ReadMembers {
		return r, corrupt("read request op %d unknown", b[1])
	}
	if b[2] != 0 || b[3] != 0 {
		return r, corrupt("read request reserved bytes %x, want 0", b[2:4])
	}
	r.Limit = binary.LittleEndian.Uint32(b[4:])
	r.Container = clustermap.ContainerID(binary.LittleEndian.Uint64(b[8:]))
	r.Ino = namespace.Ino(binary.LittleEndian.Uint64(b[16:]))
	n := int(binary.LittleEndian.Uint16(b[24:]))
	switch {
	case r.Container == 0:
		return r, corrupt("read request for container 0")
	case r.Op == ReadDir && (r.Limit == 0 || r.Limit > readDirLimitMax):
		return r, corrupt("read-dir limit %d, want 1..%d", r.Limit, readDirLimitMax)
	case r.Op != ReadDir && r.Limit != 0:
		return r, corrupt("read op %d with limit %d, want 0", r.Op, r.Limit)
	case n > namespace.NameLenMax:
		return r, corrupt("read request name of %d bytes, over %d", n, namespace.NameLenMax)
	case len(b)-readRequestPrefixLen != n:
		return r, corrupt("read request name of %d bytes, %d present", n, len(b)-readRequestPrefixLen)
	}
	r.Name = string(b[readRequestPrefixLen:])
	return r, nil
}

// Reply status. On-wire: never renumber.
const (
	statusOK        = 0
	statusNotLeader = 1
)

// replyHeader is the header body of every successful reply; the body
// goes in the payload (an xattr value alone may fill a header body):
//
//	0     1        2          4          8             16
//	+-----+--------+----------+----------+-------------+
//	| ver | status | reserved | reserved | leader hint |   payload: body
//	| u8  | u8     | u16 = 0  | u32 = 0  | u64         |
//	+-----+--------+----------+----------+-------------+
//	status 0 ok: the body is the op's namespace Result
//	         (namespace.AppendResult) or the read's reply body (below)
//	status 1 not leader: no body; leader hint is the node id of the
//	         leader the member knows (0: none)
//
// A read's reply body is an error record, then, when errno is 0, the
// op's data:
//
//	error:      | errno u32 | ino u64 | op str | name str |   errno 0: ino 0, strs empty
//	Lookup, GetAttr: attr (as in namespace's Result encoding, 61 bytes)
//	ReadDir:    | next str | n u32 | (ino u64 | type u8 | name str) * n |
//	Readlink:   | target str |                               (str len u16)
//	GetXattr:   | value len u32 (<= 64 KiB) | value |
//	ListXattr:  | n u32 | name str * n |
//	StatFS:     | inodes u64 | bytes u64 | quota bytes u64 | quota inodes u64 | reclaiming u64 |
//	Members:    | n u32 (<= 64) | (voter node id u64 | match u64) * n |
//	            match: the leader's replicated index for the voter; 0 when
//	            the answering member does not lead (then hint != its id)
type replyHeader struct {
	Status uint8
	Leader clustermap.NodeID
}

const replyHeaderLen = 16

func (h replyHeader) append(b []byte) []byte {
	b = append(b, msgVersion, h.Status, 0, 0, 0, 0, 0, 0)
	return binary.LittleEndian.AppendUint64(b, uint64(h.Leader))
}

// decodeReplyHeader decodes a reply's header body and checks it against
// the payload's length.
func decodeReplyHeader(b []byte, bodyLen int) (replyHeader, error) {
	var h replyHeader
	if len(b) != replyHeaderLen {
		return h, corrupt("reply header of %d bytes, want %d", len(b), replyHeaderLen)
	}
	if b[0] != msgVersion {
		return h, corrupt("reply version %d, want %d", b[0], msgVersion)
	}
	h.Status = b[1]
	if h.Status != statusOK && h.Status != statusNotLeader {
		return h, corrupt("reply status %d unknown", h.Status)
	}
	for i := 2; i < 8; i++ {
		if b[i] != 0 {
			return h, corrupt("reply reserved byte %d is %#x, want 0", i, b[i])
		}
	}
	h.Leader = clustermap.NodeID(binary.LittleEndian.Uint64(b[8:]))
	if h.Status == statusNotLeader && bodyLen != 0 {
		return h, corrupt("not-leader reply with a %d-byte body", bodyLen)
	}
	return h, nil
}

// readReply is the decoded body of a read reply. Err is a
// *namespace.Error when the namespace refused the read; then the data
// fields are zero.
type readReply struct {
	Err     *namespace.Error
	Attr    namespace.Attr
	Entries []namespace.DirEntry
	Next    string
	Target  string
	Value   []byte
	Names   []string
	StatFS  namespace.StatFS
	// Commit, Last and Voters are ReadMembers': the answering member's
	// commit index and last log index, and its configuration's members.
	Commit uint64
	Last   uint64
	Voters []Voter
}

// Voter is one member of a group's configuration in a ReadMembers reply:
// a voter, or a learner (which replicates but does not vote). Match is
// the highest log index the answering member knows replicated on it when
// that member leads, else 0.
type Voter struct {
	Node    clustermap.NodeID
	Match   uint64
	Learner bool
}

// Bounds the read-reply decoder enforces before allocating.
const (
	xattrValueLenMax = namespace.XattrValueLenMax
	listLenMax       = 1 << 16
)

func appendReadReply(b []byte, op ReadOp, r *readReply) []byte {
	w := writer{b: b}
	if r.Err != nil {
		w.u32(uint32(r.Err.Errno))
		w.u64(uint64(r.Err.Ino))
		w.str(r.Err.Op)
		w.str(r.Err.Name)
		return w.b
	}
	w.u32(0)
	w.u64(0)
	w.str("")
	w.str("")
	switch op {
	case ReadLookup, ReadGetAttr:
		w.attr(&r.Attr)
	case ReadDir:
		w.str(r.Next)
		w.u32(uint32(len(r.Entries)))
		for _, e := range r.Entries {
			w.u64(uint64(e.Ino))
			w.u8(uint8(e.Type))
			w.str(e.Name)
		}
	case ReadLink:
		w.str(r.Target)
	case ReadGetXattr:
		w.u32(uint32(len(r.Value)))
		w.b = append(w.b, r.Value...)
	case ReadListXattr:
		w.u32(uint32(len(r.Names)))
		for _, n := range r.Names {
			w.str(n)
		}
	case ReadStatFS:
		s := &r.StatFS
		w.u64(s.Inodes)
		w.u64(s.Bytes)
		w.u64(s.QuotaBytes)
		w.u64(s.QuotaInodes)
		w.u64(uint64(s.Reclaiming))
	case ReadMembers:
		w.u64(r.Commit)
		w.u64(r.Last)
		w.u32(uint32(len(r.Voters)))
		for _, v := range r.Voters {
			w.u64(uint64(v.Node))
			w.u64(v.Match)
			learner := uint8(0)
			if v.Learner {
				learner = 1
			}
			w.u8(learner)
		}
	default:
		panic(fmt.Sprintf("meta: encode read reply for op %d", op))
	}
	return w.b
}

func decodeReadReply(op ReadOp, b []byte) (readReply, error) {
	rd := reader{b: b}
	var r readReply
	errno := syscall.Errno(rd.u32("errno"))
	ino := namespace.Ino(rd.u64("error ino"))
	eop := rd.str("error op")
	ename := rd.str("error name")
	if rd.err != nil {
		return r, rd.err
	}
	if errno != 0 {
		r.Err = &namespace.Error{Op: eop, Ino: ino, Name: ename, Errno: errno}
		if len(rd.b) != 0 {
			return readReply{}, corrupt("read reply: %d bytes after the error", len(rd.b))
		}
		return r, nil
	}
	if ino != 0 || eop != "" || ename != "" {
		return r, corrupt("read reply without an errno has error fields (ino %d, op %q, name %q)", ino, eop, ename)
	}
	switch op {
	case ReadLookup, ReadGetAttr:
		r.Attr = rd.attr()
	case ReadDir:
		r.Next = rd.str("next")
		n := rd.u32("entry count")
		// Each entry takes at least 11 bytes: bound n before allocating.
		if rd.err == nil && uint64(n)*11 > uint64(len(rd.b)) {
			rd.fail("%d entries in %d bytes", n, len(rd.b))
		}
		if rd.err == nil {
			r.Entries = make([]namespace.DirEntry, 0, n)
		}
		for i := uint32(0); rd.err == nil && i < n; i++ {
			var e namespace.DirEntry
			e.Ino = namespace.Ino(rd.u64("entry ino"))
			e.Type = namespace.Type(rd.u8("entry type"))
			e.Name = rd.str("entry name")
			if rd.err == nil && (e.Type < namespace.TypeFile || e.Type > namespace.TypeSymlink) {
				rd.fail("entry %q has type %d", e.Name, e.Type)
			}
			r.Entries = append(r.Entries, e)
		}
	case ReadLink:
		r.Target = rd.str("target")
	case ReadGetXattr:
		n := rd.u32("value len")
		if rd.err == nil && (n > xattrValueLenMax || int(n) > len(rd.b)) {
			rd.fail("xattr value of %d bytes, %d present, at most %d", n, len(rd.b), xattrValueLenMax)
		}
		if rd.err == nil {
			r.Value = append([]byte{}, rd.b[:n]...)
			rd.b = rd.b[n:]
		}
	case ReadListXattr:
		n := rd.u32("name count")
		if rd.err == nil && (n > listLenMax || uint64(n)*2 > uint64(len(rd.b))) {
			rd.fail("%d xattr names in %d bytes", n, len(rd.b))
		}
		if rd.err == nil {
			r.Names = make([]string, 0, n)
		}
		for i := uint32(0); rd.err == nil && i < n; i++ {
			r.Names = append(r.Names, rd.str("xattr name"))
		}
	case ReadStatFS:
		s := &r.StatFS
		s.Inodes = rd.u64("inodes")
		s.Bytes = rd.u64("bytes")
		s.QuotaBytes = rd.u64("quota bytes")
		s.QuotaInodes = rd.u64("quota inodes")
		rc := rd.u64("reclaiming")
		if rd.err == nil && rc > 1<<62 {
			rd.fail("reclaiming %d", rc)
		}
		s.Reclaiming = int(rc)
	case ReadMembers:
		r.Commit = rd.u64("commit")
		r.Last = rd.u64("last index")
		n := rd.u32("member count")
		if rd.err == nil && (n > votersMax || uint64(n)*17 > uint64(len(rd.b))) {
			rd.fail("%d members in %d bytes, at most %d", n, len(rd.b), votersMax)
		}
		if rd.err == nil {
			r.Voters = make([]Voter, 0, n)
		}
		for i := uint32(0); rd.err == nil && i < n; i++ {
			v := Voter{Node: clustermap.NodeID(rd.u64("member")), Match: rd.u64("member match")}
			switch l := rd.u8("learner flag"); {
			case rd.err != nil:
			case l > 1:
				rd.fail("member %d: learner flag %d, want 0 or 1", v.Node, l)
			default:
				v.Learner = l == 1
			}
			r.Voters = append(r.Voters, v)
		}
	default:
		return r, corrupt("read reply for unknown op %d", op)
	}
	if rd.err != nil {
		return readReply{}, rd.err
	}
	if len(rd.b) != 0 {
		return readReply{}, corrupt("read reply (op %d): %d trailing bytes", op, len(rd.b))
	}
	return r, nil
}

// A raft log entry of a metadata group (the bytes raftgroup hands to
// StateMachine.Apply) is the request id and the command. Stored in the
// raft log: never renumber.
//
//	0     1           9           17
//	+-----+-----------+-----------+-------------------+
//	| ver | client id | seq       | namespace command |
//	| u8  | u64 != 0  | u64 != 0  | (to the end)      |
//	+-----+-----------+-----------+-------------------+
const entryPrefixLen = 17

func appendEntry(b []byte, id RequestID, cmd []byte) []byte {
	b = append(b, msgVersion)
	b = binary.LittleEndian.AppendUint64(b, id.Client)
	b = binary.LittleEndian.AppendUint64(b, id.Seq)
	return append(b, cmd...)
}

// decodeEntry splits a log entry; the command aliases b.
func decodeEntry(b []byte) (RequestID, []byte, error) {
	var id RequestID
	if len(b) < entryPrefixLen+1 {
		return id, nil, corrupt("log entry of %d bytes, want a %d-byte prefix and a command", len(b), entryPrefixLen)
	}
	if b[0] != msgVersion {
		return id, nil, corrupt("log entry version %d, want %d", b[0], msgVersion)
	}
	id.Client = binary.LittleEndian.Uint64(b[1:])
	id.Seq = binary.LittleEndian.Uint64(b[9:])
	if id.Client == 0 || id.Seq == 0 {
		return id, nil, corrupt("log entry id %d/%d: both must be nonzero", id.Client, id.Seq)
	}
	return id, b[entryPrefixLen:], nil
}

type writer struct{ b []byte }

func (w *writer) u8(v uint8)   { w.b = append(w.b, v) }
func (w *writer) u16(v uint16) { w.b = binary.LittleEndian.AppendUint16(w.b, v) }
func (w *writer) u32(v uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *writer) u64(v uint64) { w.b = binary.LittleEndian.AppendUint64(w.b, v) }

// str writes a u16-length string. Callers pass strings bounded far below
// 64 KiB (names, targets, error ops), which the namespace enforces.
func (w *writer) str(s string) {
	if len(s) > 0xffff {
		panic(fmt.Sprintf("meta: string of %d bytes does not fit its u16 length", len(s)))
	}
	w.u16(uint16(len(s)))
	w.b = append(w.b, s...)
}

func (w *writer) attr(a *namespace.Attr) { w.b = namespace.AppendAttr(w.b, a) }

// reader decodes little-endian fields; the first failure sticks in err
// (wrapping ErrCorrupt) and later reads return zeros.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = corrupt("read reply: "+format, args...)
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail("%s truncated: %d bytes left, want %d", what, len(r.b), n)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8(what string) uint8 {
	if v := r.take(1, what); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if v := r.take(4, what); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64(what string) uint64 {
	if v := r.take(8, what); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

func (r *reader) str(what string) string {
	v := r.take(2, what+" length")
	if v == nil {
		return ""
	}
	return string(r.take(int(binary.LittleEndian.Uint16(v)), what))
}

func (r *reader) attr() namespace.Attr {
	var a namespace.Attr
	a.Ino = namespace.Ino(r.u64("attr ino"))
	a.Type = namespace.Type(r.u8("attr type"))
	a.Mode = r.u32("attr mode")
	a.UID = r.u32("attr uid")
	a.GID = r.u32("attr gid")
	a.Size = r.u64("attr size")
	a.Nlink = r.u32("attr nlink")
	a.Open = r.u32("attr open")
	a.Atime = int64(r.u64("attr atime"))
	a.Mtime = int64(r.u64("attr mtime"))
	a.Ctime = int64(r.u64("attr ctime"))
	if r.err == nil && (a.Ino == 0 || a.Type < namespace.TypeFile || a.Type > namespace.TypeSymlink) {
		r.fail("attr with ino %d, type %d", a.Ino, a.Type)
	}
	return a
}
