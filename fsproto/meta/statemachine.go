package meta

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sync/atomic"

	"github.com/weftfs/weft/fsproto/namespace"
)

// DedupeMax is how many applied request ids a container's state machine
// remembers, oldest forgotten first. A retry comes within seconds of its
// first attempt; at thousands of ops a second per container this still
// covers the retries of a client's leader change. Part of the replicated
// state: every member must use the same value.
const DedupeMax = 16384

// resultLenMax bounds a remembered (encoded) Result: an attr, an error
// with two names and at most 16 reclaims fit well below it.
const resultLenMax = 4096

// StateMachine is a container's namespace with exactly-once ops: a
// raftgroup.StateMachine whose log entries are a request id and a
// namespace command (see the package doc). Apply, Snapshot and Restore
// run on the group's Ready loop; NS may be read concurrently (the
// namespace orders its reads against Apply).
//
// Invariant: a request id is applied at most once. The encoded Result of
// the last DedupeMax ids is kept; an entry whose id is among them changes
// nothing and returns that Result again, so a client retrying after an
// ambiguous failure gets the first attempt's answer (a retried exclusive
// Create answers success, not EEXIST).
type StateMachine struct {
	// ns is replaced by Restore while readers may hold the old one; a
	// reader that does only sees an older (consistent) state.
	ns atomic.Pointer[namespace.Namespace]
	// seen and order are touched only by the Ready loop (Apply, Snapshot,
	// Restore), so they need no lock.
	seen  map[RequestID][]byte
	order []RequestID
}

// ApplyResult is what Apply returns for an entry (and so what Propose
// returns to the member that proposed it): the Result and its encoding.
// Duplicate is set when the id had been applied before; nothing changed
// now and Result is the first application's.
type ApplyResult struct {
	Result    namespace.Result
	Encoded   []byte
	Duplicate bool
}

// NewStateMachine returns a state machine over a new namespace (only the
// root).
func NewStateMachine() *StateMachine {
	s := &StateMachine{seen: make(map[RequestID][]byte)}
	s.ns.Store(namespace.New())
	return s
}

// NS returns the namespace for reads. Restore replaces it, so callers
// re-fetch it for every read rather than keep it.
func (s *StateMachine) NS() *namespace.Namespace { return s.ns.Load() }

// Apply implements raftgroup.StateMachine.
func (s *StateMachine) Apply(index uint64, data []byte) any {
	ns := s.ns.Load()
	if index != 0 && index <= ns.Applied() {
		// Covered by the restored snapshot, dedupe table included:
		// touch nothing, or members would diverge.
		r := namespace.Result{Err: fmt.Errorf("%w: entry %d, applied %d", namespace.ErrApplied, index, ns.Applied())}
		return s.result(r, false)
	}
	id, cmd, err := decodeEntry(data)
	if err != nil {
		// Never proposed by a Host (it checks entries first); every
		// member refuses it alike, and the namespace skips the index.
		r := namespace.Result{Err: fmt.Errorf("meta: entry %d: %w", index, err)}
		return s.result(r, false)
	}
	if enc, ok := s.seen[id]; ok {
		r, err := namespace.DecodeResult(enc)
		if err != nil {
			panic(fmt.Sprintf("meta: remembered result of %d/%d does not decode: %v", id.Client, id.Seq, err))
		}
		return ApplyResult{Result: r, Encoded: enc, Duplicate: true}
	}
	ar := s.result(ns.Apply(index, cmd).(namespace.Result), false)
	s.seen[id] = ar.Encoded
	s.order = append(s.order, id)
	for len(s.order) > DedupeMax {
		delete(s.seen, s.order[0])
		s.order = s.order[1:]
	}
	return ar
}

func (s *StateMachine) result(r namespace.Result, dup bool) ApplyResult {
	enc, err := namespace.AppendResult(nil, r)
	if err != nil || len(enc) > resultLenMax {
		// Invariant: a Result lists at most namespace.ResultReclaimsMax
		// reclaims (a WithCloses batch leaves the rest queued).
		panic(fmt.Sprintf("meta: result %+v does not encode in %d bytes: %v (%d bytes)", r, resultLenMax, err, len(enc)))
	}
	return ApplyResult{Result: r, Encoded: enc, Duplicate: dup}
}

// Snapshot implements raftgroup.StateMachine: the namespace's snapshot and
// the remembered ids, in the layout of the package doc.
func (s *StateMachine) Snapshot() ([]byte, error) {
	nsb, err := s.ns.Load().Snapshot()
	if err != nil {
		return nil, err
	}
	recs := make([]dedupeRecord, len(s.order))
	for i, id := range s.order {
		recs[i] = dedupeRecord{ID: id, Result: s.seen[id]}
	}
	return appendSnapshot(nil, nsb, recs), nil
}

// Restore implements raftgroup.StateMachine. The snapshot is checked
// whole (checksum, layout, the namespace's own checks, every remembered
// result decodes) before anything changes.
func (s *StateMachine) Restore(data []byte) error {
	nsb, recs, err := decodeSnapshot(data)
	if err != nil {
		return fmt.Errorf("meta: restore: %w", err)
	}
	ns, err := namespace.DecodeSnapshot(nsb)
	if err != nil {
		return fmt.Errorf("meta: restore: %w", err)
	}
	seen := make(map[RequestID][]byte, len(recs))
	order := make([]RequestID, len(recs))
	for i, r := range recs {
		seen[r.ID] = r.Result
		order[i] = r.ID
	}
	s.seen, s.order = seen, order
	s.ns.Store(ns)
	return nil
}

// dedupeRecord is one remembered request id in a snapshot.
type dedupeRecord struct {
	ID     RequestID
	Result []byte // namespace.AppendResult's encoding
}

// snapshotVersion is the version byte of a snapshot. Stored in the raft
// log and sent between members: never renumber.
const snapshotVersion = 1

const (
	snapshotHeaderLen = 12
	dedupeRecordLen   = 18 // without the result
	snapshotCRCLen    = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func appendSnapshot(b, nsb []byte, recs []dedupeRecord) []byte {
	start := len(b)
	b = append(b, snapshotVersion, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(nsb)))
	b = append(b, nsb...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(recs)))
	for _, r := range recs {
		b = binary.LittleEndian.AppendUint64(b, r.ID.Client)
		b = binary.LittleEndian.AppendUint64(b, r.ID.Seq)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(r.Result)))
		b = append(b, r.Result...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// decodeSnapshot splits a snapshot into the namespace's snapshot (not yet
// decoded; it aliases b) and the remembered ids, oldest first. Each
// remembered result is decoded as a check. Errors wrap ErrCorrupt.
func decodeSnapshot(b []byte) ([]byte, []dedupeRecord, error) {
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
	nsLen := binary.LittleEndian.Uint64(body[4:])
	rest := body[snapshotHeaderLen:]
	if nsLen > uint64(len(rest))-4 {
		return nil, nil, corrupt("snapshot namespace of %d bytes, only %d present", nsLen, len(rest)-4)
	}
	nsb := rest[:nsLen]
	rest = rest[nsLen:]
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
		n := int(binary.LittleEndian.Uint16(rest[16:]))
		rest = rest[dedupeRecordLen:]
		switch {
		case r.ID.Client == 0 || r.ID.Seq == 0:
			return nil, nil, corrupt("snapshot request id %d is %d/%d: zero", i, r.ID.Client, r.ID.Seq)
		case seen[r.ID]:
			return nil, nil, corrupt("snapshot request id %d/%d appears twice", r.ID.Client, r.ID.Seq)
		case n > resultLenMax:
			return nil, nil, corrupt("snapshot request id %d/%d result of %d bytes, over %d", r.ID.Client, r.ID.Seq, n, resultLenMax)
		case n > len(rest):
			return nil, nil, corrupt("snapshot request id %d/%d result of %d bytes, only %d present", r.ID.Client, r.ID.Seq, n, len(rest))
		}
		if _, err := namespace.DecodeResult(rest[:n]); err != nil {
			return nil, nil, corrupt("snapshot request id %d/%d result: %v", r.ID.Client, r.ID.Seq, err)
		}
		seen[r.ID] = true
		r.Result = append([]byte(nil), rest[:n]...)
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return nil, nil, corrupt("snapshot has %d bytes after its last request id", len(rest))
	}
	return nsb, recs, nil
}
