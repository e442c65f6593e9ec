package replication

import (
	"errors"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto"
)

// StoreKind is what a StoreOp asks of the local store.
type StoreKind uint8

// Store operations.
const (
	// StoreApply applies Mut (with Data for a write) at PG sequence Seq,
	// unless the object's current seq is >= KeepIfAtLeast (KeepIfAtLeast
	// 0: always apply); a skipped op reports Skipped.
	StoreApply StoreKind = iota + 1
	// StoreInstall replaces the whole object by Data (or a tombstone when
	// Deleted) at seq Seq, under the same KeepIfAtLeast rule. Seq 0 (a
	// tombstone: the primary never wrote the object) makes the object
	// absent without a new seq: a tombstone keeps the seq of the state it
	// replaces, and an object never written stays so. NB: never a seq of
	// the store's choosing (such as the PG's next one): at or above
	// KeepIfAtLeast (the epoch's first seq), it would make the replica
	// skip, and acknowledge, the epoch's forwards of the object up to it.
	StoreInstall
	// StoreRead reads Len bytes at Off of Object.
	StoreRead
	// StoreGet returns the whole object (Data, at most MaxDataBytes) with
	// its seq, or a tombstone (NotFound) when it is deleted or absent. An
	// absent object's seq is the PG's tombstone floor: its tombstone, if
	// it had one that was forgotten, was at most that (0 when the store
	// forgot none). A sync then stamps the object deleted at that seq on a
	// replica that holds it, at least as high as the delete it stands for,
	// so later change lists from a base below the delete name it.
	StoreGet
	// StoreMaxSeq returns the highest seq of PG in Seq, the PG's sync
	// mark in Mark (Marked false when there is none), and in Floor the
	// seq at or below which the store may have forgotten tombstones (see
	// "Forgotten tombstones" in the package doc; 0: it forgot none).
	StoreMaxSeq
	// StoreChanges lists the objects of PG whose last mutation has seq >
	// Since, in seq order, at most Limit of them.
	StoreChanges
	// StoreSetMark durably records that the PG's objects may be
	// incomplete above seq Seq (a sync is under way): the mark becomes
	// min(mark, Seq). It must be durable before the op completes.
	StoreSetMark
	// StoreClearMark durably removes the PG's mark (a sync finished).
	StoreClearMark
	// StoreRequests returns the request ids the store holds for Object
	// (RIDs, oldest first: those of its last engine.KeptRequests
	// mutations that carried one, or the ids its last install set), and
	// its seq, also for a deleted object.
	StoreRequests
	// StoreForget durably raises the PG's tombstone floor (StoreMaxSeq's
	// Floor) to at least Seq, then forgets the PG's tombstones at seqs in
	// (Since, Seq]: the objects become as if never written (their seqs
	// and request ids go), live objects stay as they are, and the
	// tombstone at the PG's highest seq may stay. Forgotten reports how
	// many went. The floor must be durable before any tombstone goes.
	StoreForget
)

// StoreOp is one request to the local store. The core fills ID; a Store
// hands it back in the result.
type StoreOp struct {
	ID            uint64
	Kind          StoreKind
	PG            uint32
	Object        engine.ObjectID
	Mut           Mutation
	Seq           uint64
	KeepIfAtLeast uint64
	Deleted       bool
	// RequestID (Apply) names the mutation; the store keeps it with the
	// mutation, durably and atomically with it (zero: none).
	RequestID fsproto.RequestID
	// RIDs (Install) are the ids of the installed state's history, oldest
	// first: the object's ids become the newest engine.KeptRequests of
	// them, atomically with the install.
	RIDs  []RIDEntry
	Data  []byte // Apply (write data), Install (object data); not to be changed until done
	Off   uint64 // Read
	Len   int    // Read
	Since uint64 // Changes, Forget
	Limit int    // Changes
}

// StoreResult completes a StoreOp.
type StoreResult struct {
	ID       uint64
	Err      error
	Skipped  bool    // Apply, Install: the object already had seq >= KeepIfAtLeast
	Seq      uint64  // MaxSeq: the PG's highest seq; Get: the object's seq; Install: the object's seq before
	NotFound bool    // Read: no such object; Get: deleted or absent
	Data     []byte  // Read, Get
	EOF      bool    // Read reached the object's end
	Changes  []Entry // Changes
	Mark     uint64  // MaxSeq
	Marked   bool    // MaxSeq
	Floor    uint64  // MaxSeq
	// RIDs (Get, Requests) are the object's request ids as the store
	// holds them (Object unset), oldest first.
	RIDs []RIDEntry
	// Sizes, parallel to Changes, are the objects' sizes (0 for a
	// tombstone); they only feed the progress totals.
	Sizes []uint64
	// Forgotten (Forget) is how many tombstones the store forgot.
	Forgotten int
}

// Store is a node's local object store as the replication core uses it.
//
// Request ids are part of an object's durable state: an Apply adds its
// RequestID, an Install replaces them by (the newest of) its RIDs, and a
// restart keeps them. The core reads them (StoreRequests, StoreGet) to
// answer a retry of a mutation its state holds instead of applying it
// again, also after a restart.
//
// Submit starts op and returns at once; done is called exactly once, from
// any goroutine, when op completed. A StoreRead's and a StoreApply's
// done may run on a thread that must not block (EngineStore calls them on
// the engine's reactor), so it must return promptly and never wait. Durability contract: a mutation
// (Apply, Install) completes only once it is durable; a skipped one only
// once the state that made it skip is durable. The mutations of one
// object must take effect one at a time, each whole (its KeepIfAtLeast
// check and its change together), in the order they were submitted: the
// core may have several of one object in flight (a resent install of an
// old state and the epoch's first forward of the object, forwards left
// from an older epoch, duplicates of one seq) and relies on that order.
type Store interface {
	Submit(op StoreOp, done func(StoreResult))
}

// ErrStore wraps a local store failure reported to a client.
var ErrStore = errors.New("replication: local store failed")
