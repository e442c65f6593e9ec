package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/weftfs/weft/net"
)

// KindStatus asks a cluster-mode node for its Status (see EncodeStatus for
// the response). The request has an empty header body and no payload; a
// read-only key may ask. On-wire: never renumber (fsproto's chunk kinds are
// 256-259, raft 300, the managers' 310-319, replication 320).
const KindStatus net.Kind = 321

// Error codes of KindStatus. On-wire: never renumber.
const (
	// CodeStatusBadRequest: the request carried a header body or payload.
	CodeStatusBadRequest net.ErrorCode = 321
	// CodeStatusUnavailable: the node is stopping or has no data server.
	CodeStatusUnavailable net.ErrorCode = 322
	// CodeStatusAccessDenied (265, fsproto's access denied): container
	// keys do not see node status (it names every container's PGs).
	CodeStatusAccessDenied net.ErrorCode = 265
)

// StatusVersion is the version of the status message this package writes
// and the only one it reads.
const StatusVersion = 1

// statusLenMax bounds a status document (a node with tens of thousands of
// PGs stays far below it), so that a corrupt length cannot make a decoder
// allocate without limit.
const statusLenMax = 8 << 20

// ErrBadStatus marks every decoding failure of a status message; errors
// wrapping it say what was wrong.
var ErrBadStatus = errors.New("node: malformed status message")

// Status is one cluster-mode node's view of itself, for `weft status` and
// the multi-process tests: its identity, its engine's space and the state
// of every PG its data server holds or held.
type Status struct {
	Node  uint64 `json:"node"`
	Addr  string `json:"addr"`
	Epoch uint64 `json:"epoch"` // of the newest map the data server has (0: none yet)
	// ManagerID is this process's manager member id (0: none), and
	// ManagerLeader the leader that member knows (0: none known).
	ManagerID     uint64 `json:"manager_id"`
	ManagerLeader uint64 `json:"manager_leader"`
	// ManagerState is why the manager member has not started (its raft
	// log is empty and its peers' answers do not let it start yet:
	// manager.Manager.Starting) or, on the leader, the membership repair
	// step it took or waits for (manager.Manager.Repair); "" otherwise.
	ManagerState string `json:"manager_state,omitempty"`
	// ManagerVoters and ManagerLearners are the managers' group's
	// configuration as this member knows it (none before it started).
	ManagerVoters   []uint64 `json:"manager_voters,omitempty"`
	ManagerLearners []uint64 `json:"manager_learners,omitempty"`
	// FSID is the FSID of the map this node joined, as it records it
	// ("" before it recorded one): a node refuses every map with another
	// (ErrForeignMap). MapCopyEpoch is the epoch of its copy of the
	// newest map it accepted (MapCopyFileName; 0: none written).
	FSID         string `json:"fsid,omitempty"`
	MapCopyEpoch uint64 `json:"map_copy_epoch,omitempty"`
	Space        Space  `json:"space"`
	PGs          []PG   `json:"pgs"`
	// Meta lists the container metadata group members this node runs.
	Meta []MetaMember `json:"meta,omitempty"`
}

// MetaMember is this node's member of one container's metadata group
// (meta.MemberStatus, flattened).
type MetaMember struct {
	Container uint64   `json:"container"`
	Leader    uint64   `json:"leader"` // node id of the leader it knows (0: none)
	Term      uint64   `json:"term"`
	Commit    uint64   `json:"commit"`
	Applied   uint64   `json:"applied"`
	Voters    []uint64 `json:"voters"`
	Learners  []uint64 `json:"learners,omitempty"` // members catching up before they vote
	// Repair is, on the leader, the membership repair step it found
	// last (raftgroup.RepairStep), "" when raft's members are the map's.
	Repair string `json:"repair,omitempty"`
}

// Space is the engine's space, in bytes.
type Space struct {
	Device uint64 `json:"device"`
	Used   uint64 `json:"used"`
	Live   uint64 `json:"live"`
	Free   uint64 `json:"free"`
}

// PG is the state of one PG on a node (cluster.PGStatus, flattened).
type PG struct {
	PG    uint32 `json:"pg"`
	Epoch uint64 `json:"epoch"`
	Role  string `json:"role"`  // none, primary, replica, backfilling
	Phase string `json:"phase"` // active, syncing, caught-up, backfilling, or ""
	// Syncs is, on a primary, the progress of each replica it syncs.
	Syncs []Sync `json:"syncs,omitempty"`
	// SyncBytesSent counts the object bytes sent as primary to sync
	// replicas; InstalledObjects/Bytes what this node installed from its
	// primary's sync (the data it was missing), at InstallRate bytes/s.
	SyncBytesSent    int64   `json:"sync_bytes_sent"`
	InstalledObjects int64   `json:"installed_objects"`
	InstalledBytes   int64   `json:"installed_bytes"`
	InstallRate      float64 `json:"install_rate"`
}

// Sync is a primary's sync of one replica.
type Sync struct {
	Replica      uint64 `json:"replica"`
	Epoch        uint64 `json:"epoch"`
	ObjectsDone  int    `json:"objects_done"`
	ObjectsTotal int    `json:"objects_total"`
	BytesDone    int64  `json:"bytes_done"`
	BytesTotal   int64  `json:"bytes_total"`
	Done         bool   `json:"done"`
}

// validRoles are the role names a status may carry.
var validRoles = map[string]bool{"none": true, "primary": true, "replica": true, "backfilling": true}

// EncodeStatus returns the response of KindStatus: an 8-byte header body
// and a JSON payload (the fields of Status). All integers little-endian;
// sent on the wire, never renumber:
//
//	0         1          4            8
//	+---------+----------+------------+
//	| version | zero     | json len   |   header body; version = 1
//	| u8      | 3 bytes  | u32        |   json len = payload length, <= 8 MiB
//	+---------+----------+------------+
//	payload: json len bytes, one JSON object (Status), nothing after it
func EncodeStatus(s *Status) (hdr, payload []byte, err error) {
	payload, err = json.Marshal(s)
	if err != nil {
		return nil, nil, fmt.Errorf("node: encoding status: %w", err)
	}
	if len(payload) > statusLenMax {
		return nil, nil, fmt.Errorf("node: status of %d bytes is over the %d-byte limit", len(payload), statusLenMax)
	}
	hdr = make([]byte, 8)
	hdr[0] = StatusVersion
	binary.LittleEndian.PutUint32(hdr[4:], uint32(len(payload)))
	return hdr, payload, nil
}

// DecodeStatus decodes a KindStatus response (see EncodeStatus). It checks
// the version, the reserved bytes, the length, that the JSON is one object
// with only known fields, and the values: known roles, nonzero PG ids,
// counts that are not negative.
func DecodeStatus(hdr, payload []byte) (*Status, error) {
	if len(hdr) != 8 {
		return nil, fmt.Errorf("%w: header body of %d bytes, want 8", ErrBadStatus, len(hdr))
	}
	if hdr[0] != StatusVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrBadStatus, hdr[0], StatusVersion)
	}
	if hdr[1]|hdr[2]|hdr[3] != 0 {
		return nil, fmt.Errorf("%w: reserved bytes % x are not zero", ErrBadStatus, hdr[1:4])
	}
	n := binary.LittleEndian.Uint32(hdr[4:])
	if n > statusLenMax || int(n) != len(payload) {
		return nil, fmt.Errorf("%w: json length %d, payload %d bytes (limit %d)", ErrBadStatus, n, len(payload), statusLenMax)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var s Status
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadStatus, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrBadStatus)
	}
	for i := range s.PGs {
		p := &s.PGs[i]
		if p.PG == 0 {
			return nil, fmt.Errorf("%w: pgs[%d]: pg 0", ErrBadStatus, i)
		}
		if !validRoles[p.Role] {
			return nil, fmt.Errorf("%w: pg %d: unknown role %q", ErrBadStatus, p.PG, p.Role)
		}
		if p.SyncBytesSent < 0 || p.InstalledObjects < 0 || p.InstalledBytes < 0 || p.InstallRate < 0 {
			return nil, fmt.Errorf("%w: pg %d: negative count", ErrBadStatus, p.PG)
		}
		for j, y := range p.Syncs {
			if y.ObjectsDone < 0 || y.BytesDone < 0 || y.ObjectsTotal < 0 || y.BytesTotal < 0 {
				return nil, fmt.Errorf("%w: pg %d: syncs[%d]: negative count (%d/%d objects, %d/%d bytes)", ErrBadStatus, p.PG, j, y.ObjectsDone, y.ObjectsTotal, y.BytesDone, y.BytesTotal)
			}
		}
	}
	return &s, nil
}

// FetchStatus asks the node at the other end of c for its Status.
func FetchStatus(ctx context.Context, c *net.Conn) (*Status, error) {
	resp, err := c.Call(ctx, KindStatus, nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Release()
	var payload []byte
	if resp.Payload != nil {
		payload = resp.Payload.Bytes()
	}
	return DecodeStatus(resp.Header, payload)
}
