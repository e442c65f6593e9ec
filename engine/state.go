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
