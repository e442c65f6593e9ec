package engine

// ObjectState is what the engine knows of one object besides its extents.
// A deleted object keeps its entry (a tombstone) so that versions and
// per-PG sequence numbers stay monotonic and Changes can report the
// delete.
type ObjectState struct {
	ID      ObjectID
	Size    uint64 // logical size: writes extend it, truncate sets it
	Version uint64 // bumped by every write, truncate and delete
	PG      uint32 // placement group of the last mutation
	PGSeq   uint64 // that mutation's sequence number in PG
	Deleted bool
	// Requests are the request ids of the object's last KeptRequests
	// mutations that carried one, oldest first, packed at the front
	// (entries with a zero ID are unused); Applied lists them. They are
	// part of the state (checkpoints, snapshots and recovery keep them),
	// so a restarted node still recognises a retry of a mutation it holds.
	// A value, not a slice: btree clones share nothing mutable.
	Requests [KeptRequests]AppliedRequest
}

// KeptRequests is how many request ids an object keeps. A primary has
// at most one mutation of an object in flight and a client retries only
// its own unanswered mutation, so an id is needed only until the retry
// that follows a failure arrives; in that time other clients' mutations
// of the same object (each a full replication round trip) must not push
// it out. Four covers a retry behind three of them; the replication
// core's in-memory table covers more while no node restarts.
const KeptRequests = 4

// RequestID names one client mutation across retries (the replication
// layer's request id); the zero value means none.
type RequestID [16]byte

// AppliedRequest is a request id an object's history holds, with the PG
// sequence number of the mutation that carried it.
type AppliedRequest struct {
	ID  RequestID
	Seq uint64
}

// Applied returns the object's request ids, oldest first (a copy).
func (o *ObjectState) Applied() []AppliedRequest {
	n := o.requestCount()
	if n == 0 {
		return nil
	}
	return append([]AppliedRequest(nil), o.Requests[:n]...)
}

func (o *ObjectState) requestCount() int {
	for i, r := range o.Requests {
		if r.ID == (RequestID{}) {
			return i
		}
	}
	return KeptRequests
}

// addRequest records that the object's latest mutation carried id at
// seq, dropping the oldest id when all KeptRequests are in use. An id
// already held is not added again.
func (o *ObjectState) addRequest(id RequestID, seq uint64) {
	if id == (RequestID{}) {
		return
	}
	n := o.requestCount()
	for _, r := range o.Requests[:n] {
		if r.ID == id {
			return
		}
	}
	if n == KeptRequests {
		copy(o.Requests[:], o.Requests[1:])
		n--
	}
	o.Requests[n] = AppliedRequest{ID: id, Seq: seq}
}

// segmentRef names one segment a shard uses and the generation it was
// opened with.
type segmentRef struct {
	Index uint32
	Gen   uint64
}

// shardState is what a checkpoint records of one shard: its log position
// and everything replaying the log up to that position produced.
//
// Invariant: replaying the shard's records after (OpenSegment, OpenPos) —
// the rest of the open segment, then every segment of the shard with a
// generation above OpenGen, in generation order — onto this state gives
// the shard's state at the end of its log.
type shardState struct {
	Shard       uint32
	OpenSegment uint32 // segment the shard was appending to; NoSegment if none
	// OpenGen is the highest generation the shard has opened (its open
	// segment's, when it has one): every segment of the shard with a
	// higher generation was opened after the checkpoint.
	OpenGen      uint64
	OpenPos      uint32 // byte offset in it where replay resumes (4 KiB multiple)
	NextBatchSeq uint64
	// Segments lists every segment of the shard that holds records still
	// needed (closed and open), ascending by generation.
	Segments []segmentRef
	// Objects ascending by ID; Extents ascending by (object, offset).
	Objects []ObjectState
	Extents []Extent
}

// snapshotState is one snapshot in a checkpoint: per shard, the objects
// and extents it froze.
type snapshotState struct {
	ID      uint64
	Name    string
	Created int64 // unix nanoseconds
	Shards  []snapshotShard
}

type snapshotShard struct {
	Objects []ObjectState
	Extents []Extent
}

// checkpoint is the whole engine state a checkpoint slot holds.
type checkpoint struct {
	Seq       uint64 // checkpoint number, increasing; the newest valid slot wins
	Device    UUID   // must match the superblock's
	NextGen   uint64 // next segment generation to hand out
	NextSnap  uint64 // next snapshot ID
	Shards    []shardState
	Snapshots []snapshotState
}

// NoSegment is an invalid segment index.
const NoSegment = ^uint32(0)
