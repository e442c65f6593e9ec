package manager

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/weftfs/weft/net"
)

// RPC kinds of the manager service. User range 310-319 (fsproto's chunk
// protocol has 256-259, raft 300, replication 320). On-wire: never
// renumber. 313 is KindKeySecret (keys.go), 314 KindMembers (members.go);
// 315-319 are reserved for later manager RPCs.
const (
	// KindGetMap asks for the cluster map, long-polling for one newer than
	// a given epoch.
	KindGetMap net.Kind = 310
	// KindApply proposes a clustermap command.
	KindApply net.Kind = 311
	// KindHeartbeat tells the leader that a storage node is alive.
	KindHeartbeat net.Kind = 312
)

// Error codes the manager answers with. On-wire: never renumber. Each says
// whether the request was applied: a code inviting a retry (CodeUnavailable)
// is only sent when it certainly was not.
const (
	// CodeBadRequest: the request's header did not decode (or its command
	// did not). Nothing was done; retrying the same bytes cannot help.
	CodeBadRequest net.ErrorCode = 310
	// CodeReadOnly: the request needs a key that grants writes (apply and
	// heartbeat do). Nothing was done.
	CodeReadOnly net.ErrorCode = 311
	// CodeUnavailable: this member could not serve the request and did
	// not apply it: it knows no leader, raft refused the proposal, too many
	// requests wait, it is stopped, or (heartbeat) it is not the leader.
	// Safe to retry, here later or on another member.
	CodeUnavailable net.ErrorCode = 312
	// CodeAmbiguous: the proposal was submitted but its outcome is
	// unknown (lost on the way to the leader, a leader change, the
	// member's proposal deadline passed, the member stopped). It may
	// still be applied.
	CodeAmbiguous net.ErrorCode = 313
	// CodeNoChange .. CodeStaleEpoch: the command reached the log and the
	// map refused it with the clustermap sentinel of the same name. The
	// map did not change.
	CodeNoChange   net.ErrorCode = 314
	CodeNotFound   net.ErrorCode = 315
	CodeExists     net.ErrorCode = 316
	CodeInvalid    net.ErrorCode = 317
	CodeStaleEpoch net.ErrorCode = 318
	// CodeRejected: a failure that asking again cannot fix. For apply,
	// either the command reached the log and failed for another reason
	// (it did not decode on apply; the map did not change), or the
	// command applied but the resulting map does not fit the
	// connection's payload limit (net's MaxPayloadBytes; the message says
	// which). For get-map, only the latter.
	CodeRejected net.ErrorCode = 319
)

// ErrCorrupt marks every decoding failure of this package's formats: an
// RPC header or reply (wrong length or version, nonzero reserved bytes, a
// zero id), a raft log entry, a snapshot (checksum, layout, or the map
// inside it). Errors wrapping it name what was wrong; test with errors.Is.
var ErrCorrupt = errors.New("manager: corrupt message")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// msgVersion is the version byte that starts every manager header body.
// On-wire: never renumber.
const msgVersion = 1

// Header body sizes. On-wire.
const (
	getMapRequestLen = 16
	replyLen         = 16
)

// getMapFlagLinearizable asks the member to pass a read barrier
// (raftgroup ReadIndex) before it answers, so the map reflects every
// command applied anywhere before the request. On-wire.
const getMapFlagLinearizable = 1 << 0

// waitMsMax bounds the wait a get-map request may carry (u32 milliseconds
// is ~49 days; the server clamps to its own bound anyway).
const waitMsMax = 1<<32 - 1

// getMapRequest is the header body of KindGetMap:
//
//	0     1       2          4           8
//	+-----+-------+----------+-----------+---------------+
//	| ver | flags | reserved | wait ms   | after (epoch) |
//	| u8  | u8    | u16 = 0  | u32       | u64           |
//	+-----+-------+----------+-----------+---------------+
//	flags: bit 0 linearizable (read barrier first); other bits 0
//
// The member answers at once when its map's epoch is above after (after 0:
// always); otherwise it waits up to min(wait, its own bound) for one and
// then answers "no newer map". No payload.
type getMapRequest struct {
	Linearizable bool
	Wait         time.Duration // rounded down to milliseconds on the wire
	After        uint64
}

func (r getMapRequest) append(b []byte) []byte {
	var flags byte
	if r.Linearizable {
		flags |= getMapFlagLinearizable
	}
	ms := r.Wait.Milliseconds()
	if ms < 0 {
		ms = 0
	}
	if ms > waitMsMax {
		ms = waitMsMax
	}
	b = append(b, msgVersion, flags, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(ms))
	return binary.LittleEndian.AppendUint64(b, r.After)
}

func decodeGetMapRequest(b []byte) (getMapRequest, error) {
	var r getMapRequest
	if len(b) != getMapRequestLen {
		return r, corrupt("get-map request of %d bytes, want %d", len(b), getMapRequestLen)
	}
	if b[0] != msgVersion {
		return r, corrupt("get-map request version %d, want %d", b[0], msgVersion)
	}
	if b[1]&^getMapFlagLinearizable != 0 {
		return r, corrupt("get-map request flags %#x: unknown bits", b[1])
	}
	if b[2] != 0 || b[3] != 0 {
		return r, corrupt("get-map request reserved bytes %#x %#x, want 0", b[2], b[3])
	}
	r.Linearizable = b[1]&getMapFlagLinearizable != 0
	r.Wait = time.Duration(binary.LittleEndian.Uint32(b[4:])) * time.Millisecond
	r.After = binary.LittleEndian.Uint64(b[8:])
	return r, nil
}

// applyRequest is the header body of KindApply: the request id that
// makes retries safe, and the command as clustermap.AppendCommand encodes
// it:
//
//	0     1              4           12          20
//	+-----+--------------+-----------+-----------+--------------------+
//	| ver | reserved     | client id | seq       | clustermap command |
//	| u8  | 3 × u8 = 0   | u64 != 0  | u64 != 0  | (to the end)       |
//	+-----+--------------+-----------+-----------+--------------------+
//
// (client id, seq) names the request: a Client picks a random client id
// and numbers its Apply calls; every retry of one call carries the same
// pair, and the state machine applies a pair once (see StateMachine). No
// payload. decodeApplyRequest checks the prefix and the id and that a
// command follows; clustermap.DecodeCommand checks the command.
type applyRequest struct {
	ID      RequestID
	Command []byte // aliases the decoded bytes
}

// RequestID names an apply request for deduplication: Client is chosen at
// random by each manager Client, Seq counts its Apply calls. The zero
// RequestID marks a command that is never retried (the leader's liveness
// proposals) and is not deduplicated.
type RequestID struct {
	Client, Seq uint64
}

const applyRequestPrefixLen = 20

func (r applyRequest) append(b []byte) []byte {
	b = append(b, msgVersion, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, r.ID.Client)
	b = binary.LittleEndian.AppendUint64(b, r.ID.Seq)
	return append(b, r.Command...)
}

func decodeApplyRequest(b []byte) (applyRequest, error) {
	var r applyRequest
	if len(b) < applyRequestPrefixLen+1 {
		return r, corrupt("apply request of %d bytes, want a %d-byte prefix and a command", len(b), applyRequestPrefixLen)
	}
	if b[0] != msgVersion {
		return r, corrupt("apply request version %d, want %d", b[0], msgVersion)
	}
	if b[1] != 0 || b[2] != 0 || b[3] != 0 {
		return r, corrupt("apply request reserved bytes %x, want 0", b[1:4])
	}
	r.ID.Client = binary.LittleEndian.Uint64(b[4:])
	r.ID.Seq = binary.LittleEndian.Uint64(b[12:])
	if r.ID.Client == 0 || r.ID.Seq == 0 {
		return r, corrupt("apply request id %d/%d: client and seq must be nonzero", r.ID.Client, r.ID.Seq)
	}
	r.Command = b[applyRequestPrefixLen:]
	return r, nil
}

// entryVersion is the version byte of a log entry. Stored in the raft log:
// never renumber.
const entryVersion = 1

const entryPrefixLen = 17

// A raft log entry of the cluster map (the bytes raftgroup hands to
// StateMachine.Apply) is the request id and the command:
//
//	0     1           9           17
//	+-----+-----------+-----------+--------------------+
//	| ver | client id | seq       | clustermap command |
//	| u8  | u64       | u64       | (to the end)       |
//	+-----+-----------+-----------+--------------------+
//
// A zero id (both fields 0) is not deduplicated; otherwise both are
// nonzero.
func appendEntry(b []byte, id RequestID, cmd []byte) []byte {
	b = append(b, entryVersion)
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
	if b[0] != entryVersion {
		return id, nil, corrupt("log entry version %d, want %d", b[0], entryVersion)
	}
	id.Client = binary.LittleEndian.Uint64(b[1:])
	id.Seq = binary.LittleEndian.Uint64(b[9:])
	if (id.Client == 0) != (id.Seq == 0) {
		return id, nil, corrupt("log entry id %d/%d: both zero or both nonzero", id.Client, id.Seq)
	}
	return id, b[entryPrefixLen:], nil
}

// heartbeatRequest is the header body of KindHeartbeat:
//
//	0     1                   8
//	+-----+-------------------+-----------+
//	| ver | reserved 7 × u8=0 | node id   |
//	| u8  |                   | u64 != 0  |
//	+-----+-------------------+-----------+
//
// No payload.
type heartbeatRequest struct {
	Node uint64
}

func (r heartbeatRequest) append(b []byte) []byte { return appendIDRequest(b, r.Node) }

func decodeHeartbeatRequest(b []byte) (heartbeatRequest, error) {
	id, err := decodeIDRequest(b, "heartbeat request", "node")
	return heartbeatRequest{Node: id}, err
}

// idRequestLen is the size of a header body that names one id: a
// heartbeat's node, a removal's member. On-wire.
const idRequestLen = 16

// appendIDRequest appends a header body that names one id (the layout of
// heartbeatRequest and removeMemberRequest): the version, seven reserved
// zero bytes, and the id.
func appendIDRequest(b []byte, id uint64) []byte {
	b = append(b, msgVersion, 0, 0, 0, 0, 0, 0, 0)
	return binary.LittleEndian.AppendUint64(b, id)
}

// decodeIDRequest decodes what appendIDRequest wrote; what names the
// request and noun its id in the errors. The id is never 0.
func decodeIDRequest(b []byte, what, noun string) (uint64, error) {
	if len(b) != idRequestLen {
		return 0, corrupt("%s of %d bytes, want %d", what, len(b), idRequestLen)
	}
	if b[0] != msgVersion {
		return 0, corrupt("%s version %d, want %d", what, b[0], msgVersion)
	}
	for i := 1; i < 8; i++ {
		if b[i] != 0 {
			return 0, corrupt("%s reserved byte %d is %#x, want 0", what, i, b[i])
		}
	}
	id := binary.LittleEndian.Uint64(b[8:])
	if id == 0 {
		return 0, corrupt("%s for %s 0", what, noun)
	}
	return id, nil
}

// replyFlagMap says the reply's payload holds a map. On-wire.
const replyFlagMap = 1 << 0

// reply is the header body of every successful manager response:
//
//	0     1       2          4           8
//	+-----+-------+----------+-----------+---------------+
//	| ver | flags | reserved | reserved  | epoch         |
//	| u8  | u8    | u16 = 0  | u32 = 0   | u64           |
//	+-----+-------+----------+-----------+---------------+
//	flags: bit 0 map: the payload is the map, clustermap's encoding
//	       (MarshalBinary: versioned and CRC32C-checksummed), whose
//	       epoch equals the epoch field; other bits 0
//
// Epoch is the epoch of the member's map when it answered. A get-map
// reply without the map bit means "no newer map than after within the
// wait"; an apply reply always carries the map the command produced; a
// heartbeat reply never carries a map (epoch lets the node notice that its
// cached map is behind).
type reply struct {
	HasMap bool
	Epoch  uint64
}

func (r reply) append(b []byte) []byte {
	var flags byte
	if r.HasMap {
		flags |= replyFlagMap
	}
	b = append(b, msgVersion, flags, 0, 0, 0, 0, 0, 0)
	return binary.LittleEndian.AppendUint64(b, r.Epoch)
}

func decodeReply(b []byte) (reply, error) {
	var r reply
	if len(b) != replyLen {
		return r, corrupt("reply of %d bytes, want %d", len(b), replyLen)
	}
	if b[0] != msgVersion {
		return r, corrupt("reply version %d, want %d", b[0], msgVersion)
	}
	if b[1]&^replyFlagMap != 0 {
		return r, corrupt("reply flags %#x: unknown bits", b[1])
	}
	for i := 2; i < 8; i++ {
		if b[i] != 0 {
			return r, corrupt("reply reserved byte %d is %#x, want 0", i, b[i])
		}
	}
	r.HasMap = b[1]&replyFlagMap != 0
	r.Epoch = binary.LittleEndian.Uint64(b[8:])
	return r, nil
}
