package manager

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/net"
)

// DedupeMax is how many applied request ids the state machine remembers
// (oldest forgotten first). A retry arrives within seconds of its first
// attempt; the map changes a few times a second at most, so this covers
// hours. Part of the replicated state: changing it changes what members
// decide, so all members of a group must agree on it.
const DedupeMax = 4096

// outcomeMsgLenMax bounds the stored message of a refused command.
const outcomeMsgLenMax = 1024

// StateMachine is the cluster map as a raftgroup.StateMachine: each
// committed entry is a request id and a clustermap command (see the package
// doc), applied in log order; snapshots hold the map's encoding and the
// recent request ids. Its methods are safe for concurrent use: the Group
// calls Apply, Snapshot and Restore from its Ready loop while RPC handlers
// read Map and wait with Wait.
//
// Invariant: a request id is applied at most once. Its outcome (success,
// or the refusal's code and message) is kept for the last DedupeMax ids;
// an entry whose id is among them changes nothing and returns that
// outcome again (with the current map on success), so a client that
// retries after an ambiguous failure learns its command's real outcome.
type StateMachine struct {
	mu struct {
		sync.Mutex
		m *clustermap.Map
		// changed is closed (and replaced) whenever m changes, waking
		// the long polls that wait for a newer map.
		changed chan struct{}
		// seen holds the outcome of each remembered request id; order
		// lists them oldest first, for eviction.
		seen  map[RequestID]outcome
		order []RequestID
		// enc caches encFor's encoding, so that many long polls woken
		// by one change encode the map once.
		encFor *clustermap.Map
		enc    []byte
	}
}

// outcome is a remembered result: code 0 for success, else the wire code
// of the refusal and its message.
type outcome struct {
	code net.ErrorCode
	msg  string
}

// ApplyResult is what Apply returns for each command, and so what
// raftgroup.Group.Propose returns to the member that proposed it: the map
// after the command, or the error the map refused it with (wrapping a
// clustermap sentinel, or ErrCorrupt for an entry that did not decode).
// Exactly one of Map and Err is set. Duplicate is set when the request id
// had been applied before: nothing changed now, and Map is the current map.
type ApplyResult struct {
	Map       *clustermap.Map
	Err       error
	Duplicate bool
}

// NewStateMachine returns a state machine holding the empty map (epoch 0).
func NewStateMachine() *StateMachine {
	s := &StateMachine{}
	s.mu.m = clustermap.New()
	s.mu.changed = make(chan struct{})
	s.mu.seen = make(map[RequestID]outcome)
	return s
}

// Apply implements raftgroup.StateMachine. A command the map refuses (or
// that does not decode) is a result, not a failure of the group: every
// member refuses it the same way and the map stays as it was.
func (s *StateMachine) Apply(index uint64, data []byte) any {
	id, cmdBytes, err := decodeEntry(data)
	if err != nil {
		return ApplyResult{Err: fmt.Errorf("manager: entry %d: %w", index, err)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id != (RequestID{}) {
		if o, ok := s.mu.seen[id]; ok {
			if o.code == 0 {
				return ApplyResult{Map: s.mu.m, Duplicate: true}
			}
			return ApplyResult{Err: &commandError{code: o.code, msg: o.msg}, Duplicate: true}
		}
	}
	cmd, err := clustermap.DecodeCommand(cmdBytes)
	if err != nil {
		err = fmt.Errorf("manager: entry %d: %w", index, err)
		s.rememberLocked(id, err)
		return ApplyResult{Err: err}
	}
	m, err := s.mu.m.Apply(cmd)
	s.rememberLocked(id, err)
	if err != nil {
		return ApplyResult{Err: err}
	}
	// Invariant: a successful command bumps the epoch by exactly one.
	if m.Epoch != s.mu.m.Epoch+1 {
		panic(fmt.Sprintf("manager: entry %d moved the map from epoch %d to %d", index, s.mu.m.Epoch, m.Epoch))
	}
	s.setLocked(m)
	return ApplyResult{Map: m}
}

func (s *StateMachine) rememberLocked(id RequestID, err error) {
	if id == (RequestID{}) {
		return
	}
	var o outcome
	if err != nil {
		o.code = commandErrorCode(err)
		o.msg = err.Error()
		if len(o.msg) > outcomeMsgLenMax {
			o.msg = o.msg[:outcomeMsgLenMax]
		}
	}
	s.mu.seen[id] = o
	s.mu.order = append(s.mu.order, id)
	for len(s.mu.order) > DedupeMax {
		delete(s.mu.seen, s.mu.order[0])
		s.mu.order = s.mu.order[1:]
	}
}

func (s *StateMachine) setLocked(m *clustermap.Map) {
	s.mu.m = m
	close(s.mu.changed)
	s.mu.changed = make(chan struct{})
}

// Snapshot implements raftgroup.StateMachine: the map and the remembered
// request ids, in the snapshot layout of the package doc.
func (s *StateMachine) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	enc, err := s.mu.m.MarshalBinary()
	if err != nil {
		return nil, err
	}
	recs := make([]dedupeRecord, len(s.mu.order))
	for i, id := range s.mu.order {
		recs[i] = dedupeRecord{ID: id, Code: s.mu.seen[id].code, Msg: s.mu.seen[id].msg}
	}
	return appendSnapshot(nil, enc, recs), nil
}

// Restore implements raftgroup.StateMachine. It checks the snapshot
// (checksum, layout, and the map as its decoder does) and replaces the
// state; on error the state is unchanged.
func (s *StateMachine) Restore(data []byte) error {
	m, recs, err := decodeSnapshot(data)
	if err != nil {
		return fmt.Errorf("manager: restore: %w", err)
	}
	seen := make(map[RequestID]outcome, len(recs))
	order := make([]RequestID, len(recs))
	for i, r := range recs {
		seen[r.ID] = outcome{code: r.Code, msg: r.Msg}
		order[i] = r.ID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.seen, s.mu.order = seen, order
	s.setLocked(m)
	return nil
}

// Map returns the latest applied map. It is never modified afterwards.
func (s *StateMachine) Map() *clustermap.Map {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.m
}

// encoded returns m's encoding (MarshalBinary), cached for the latest map.
// The bytes are shared: never modify them.
func (s *StateMachine) encoded(m *clustermap.Map) ([]byte, error) {
	s.mu.Lock()
	if s.mu.encFor == m {
		enc := s.mu.enc
		s.mu.Unlock()
		return enc, nil
	}
	s.mu.Unlock()
	enc, err := m.MarshalBinary()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.mu.m == m {
		s.mu.encFor, s.mu.enc = m, enc
	}
	s.mu.Unlock()
	return enc, nil
}

// Wait returns the latest applied map once its epoch is above after, or,
// when ctx or stop ends first, the latest map with ok false.
func (s *StateMachine) Wait(ctx context.Context, stop <-chan struct{}, after uint64) (m *clustermap.Map, ok bool) {
	for {
		s.mu.Lock()
		m, changed := s.mu.m, s.mu.changed
		s.mu.Unlock()
		if m.Epoch > after {
			return m, true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return m, false
		case <-stop:
			return m, false
		}
	}
}

// commandError is a refusal known by its wire code and message: one a
// member reported to the client, or one the state machine remembered for a
// request id. It unwraps to the clustermap sentinel of its code.
type commandError struct {
	code net.ErrorCode
	msg  string
}

func (e *commandError) Error() string { return e.msg }

func (e *commandError) Unwrap() error {
	switch e.code {
	case CodeNoChange:
		return clustermap.ErrNoChange
	case CodeNotFound:
		return clustermap.ErrNotFound
	case CodeExists:
		return clustermap.ErrExists
	case CodeInvalid:
		return clustermap.ErrInvalid
	case CodeStaleEpoch:
		return clustermap.ErrStaleEpoch
	}
	return nil
}

// refusalCode reports whether code is one a remembered refusal may have.
func refusalCode(code net.ErrorCode) bool {
	return code >= CodeNoChange && code <= CodeRejected
}

// snapshotVersion is the version byte of a snapshot. Stored in the raft
// log and sent between members: never renumber.
const snapshotVersion = 1

// dedupeRecord is one remembered request id in a snapshot.
type dedupeRecord struct {
	ID   RequestID
	Code net.ErrorCode // 0: applied; else a refusal code (CodeNoChange..CodeRejected)
	Msg  string
}

const (
	snapshotHeaderLen = 8
	dedupeRecordLen   = 20 // without the message
	snapshotCRCLen    = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func appendSnapshot(b, mapEnc []byte, recs []dedupeRecord) []byte {
	start := len(b)
	b = append(b, snapshotVersion, 0, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(mapEnc)))
	b = append(b, mapEnc...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(recs)))
	for _, r := range recs {
		b = binary.LittleEndian.AppendUint64(b, r.ID.Client)
		b = binary.LittleEndian.AppendUint64(b, r.ID.Seq)
		b = binary.LittleEndian.AppendUint16(b, uint16(r.Code))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(r.Msg)))
		b = append(b, r.Msg...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// decodeSnapshot decodes a snapshot: the map (checked by its decoder) and
// the remembered request ids, oldest first. Errors wrap ErrCorrupt.
func decodeSnapshot(b []byte) (*clustermap.Map, []dedupeRecord, error) {
	if len(b) < snapshotHeaderLen+4+snapshotCRCLen {
		return nil, nil, corrupt("snapshot of %d bytes, shorter than its header, count and checksum", len(b))
	}
	body := b[:len(b)-snapshotCRCLen]
	if got, want := binary.LittleEndian.Uint32(b[len(body):]), crc32.Checksum(body, castagnoli); got != want {
		return nil, nil, corrupt("snapshot checksum %#08x, computed %#08x", got, want)
	}
	if body[0] != snapshotVersion {
		return nil, nil, corrupt("snapshot version %d, want %d", body[0], snapshotVersion)
	}
	if body[1] != 0 || body[2] != 0 || body[3] != 0 {
		return nil, nil, corrupt("snapshot reserved bytes %x, want 0", body[1:4])
	}
	mapLen := uint64(binary.LittleEndian.Uint32(body[4:]))
	rest := body[snapshotHeaderLen:]
	if mapLen > uint64(len(rest))-4 {
		return nil, nil, corrupt("snapshot map of %d bytes, only %d present", mapLen, len(rest)-4)
	}
	m, err := clustermap.DecodeMap(rest[:mapLen])
	if err != nil {
		return nil, nil, corrupt("snapshot map: %w", err)
	}
	rest = rest[mapLen:]
	count := binary.LittleEndian.Uint32(rest)
	rest = rest[4:]
	if count > DedupeMax {
		return nil, nil, corrupt("snapshot holds %d request ids, over the limit %d", count, DedupeMax)
	}
	if uint64(count)*dedupeRecordLen > uint64(len(rest)) {
		return nil, nil, corrupt("snapshot claims %d request ids in %d bytes", count, len(rest))
	}
	recs := make([]dedupeRecord, count)
	seen := make(map[RequestID]bool, count)
	for i := range recs {
		if len(rest) < dedupeRecordLen {
			return nil, nil, corrupt("snapshot request id %d of %d truncated", i, count)
		}
		r := &recs[i]
		r.ID.Client = binary.LittleEndian.Uint64(rest)
		r.ID.Seq = binary.LittleEndian.Uint64(rest[8:])
		r.Code = net.ErrorCode(binary.LittleEndian.Uint16(rest[16:]))
		n := int(binary.LittleEndian.Uint16(rest[18:]))
		rest = rest[dedupeRecordLen:]
		switch {
		case r.ID.Client == 0 || r.ID.Seq == 0:
			return nil, nil, corrupt("snapshot request id %d is %d/%d: zero", i, r.ID.Client, r.ID.Seq)
		case seen[r.ID]:
			return nil, nil, corrupt("snapshot request id %d/%d appears twice", r.ID.Client, r.ID.Seq)
		case r.Code != 0 && !refusalCode(r.Code):
			return nil, nil, corrupt("snapshot request id %d/%d has outcome code %d", r.ID.Client, r.ID.Seq, r.Code)
		case n > outcomeMsgLenMax:
			return nil, nil, corrupt("snapshot request id %d/%d message of %d bytes, over %d", r.ID.Client, r.ID.Seq, n, outcomeMsgLenMax)
		case r.Code == 0 && n != 0:
			return nil, nil, corrupt("snapshot request id %d/%d applied but has a message", r.ID.Client, r.ID.Seq)
		case n > len(rest):
			return nil, nil, corrupt("snapshot request id %d/%d message of %d bytes, only %d present", r.ID.Client, r.ID.Seq, n, len(rest))
		}
		seen[r.ID] = true
		r.Msg = string(rest[:n])
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return nil, nil, corrupt("snapshot has %d bytes after its last request id", len(rest))
	}
	return m, recs, nil
}
