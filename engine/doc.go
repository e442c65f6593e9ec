// Package engine is weft's per-node storage engine: it owns the node's
// devices and stores objects on them log-structured.
//
// # What exists, what is planned
//
// Built: the device format (superblock, layout, exclusive open, repair),
// the segment and batch record codecs, and the extent Index. Planned, in
// this order, each with its crash test: the shard log (write path and
// recovery scan), the object API, index checkpoints, snapshots, the
// cleaner, reactors. The design below is what those pieces must keep.
//
// # Device layout
//
//	offset 0            4 KiB          8 KiB          checkpointOffset   segmentsOffset
//	+--------------+--------------+--------------+---------------------+---------+---------+-----
//	| superblock A | superblock B | (reserved)   | checkpoint area     | seg 0   | seg 1   | ...
//	+--------------+--------------+--------------+---------------------+---------+---------+-----
//
// The superblock is written twice, with a flush between the copies, so a
// torn or rotted copy never makes a device unreadable: the valid copy with
// the highest generation wins and OpenDevice rewrites a bad copy from the
// good one. Layout of one copy (little-endian, 4096 bytes, zero after the
// checksum):
//
//	+---------+---------+-------+------+------------+-----------+-------------+--------------+
//	| magic   | version | flags | uuid | generation | blockSize | segmentSize | segmentCount |
//	| [8]byte | u32     | u32   | [16] | u64        | u32       | u32         | u32          |
//	+---------+---------+-------+------+------------+-----------+-------------+--------------+
//	| rsvd u32 | segmentsOffset u64 | checkpointOffset u64 | checkpointSize u64 |
//	| deviceSize u64 | createdUnixNano i64 | crc32c u32 (of all bytes before it) |
//	+----------------------------------------------------------------------------+
//
// Segments and batches are drawn in segment.go.
//
// # Shards and the write path (planned)
//
// One shard per reactor; an object belongs to the shard its ObjectID hashes
// to, and only that shard's goroutine touches the object's index entries
// and the shard's open segment (no lock on the data path). A write becomes
// a descriptor plus 4 KiB-aligned data in the shard's current batch; the
// shard seals a batch when it is full or when its submission queue runs
// dry, writes header and data blocks with one vectored write at the end of
// its open segment, then flushes (skipped on a PLP device), and only then
// acknowledges every write in the batch and applies it to the Index.
// Invariant: an index entry never points at bytes that are not durable.
//
// A shard takes a free segment from the device's allocator when its open
// one is full; the allocator stamps it with the next device-wide
// generation in its segment header. Invariant: generations increase in
// the order segments are opened, so replaying segments in generation order
// replays each object's records in the order they were acknowledged.
//
// # Recovery (planned)
//
// Load the newest valid checkpoint (index plus per-segment live bytes and
// the generation it covers), then scan only segments with a higher
// generation: read each batch, check its header and data checksums, apply
// it. A bad batch with nothing valid after it in the shard's log is a torn
// tail (never acknowledged) and ends that shard's log; a bad batch with a
// valid later one is corruption and stops recovery with an error naming
// device and offset.
//
// # Space, snapshots and the cleaner (planned)
//
// Every segment has live bytes (referenced by the index or a snapshot) and
// dead bytes (displaced extents, which Index.Insert, Truncate and Delete
// return). A snapshot is Index.Clone plus a pin count on every segment the
// clone references; the cleaner picks segments by dead ratio and age,
// rewrites their live extents through the normal write path (so the
// relocation is itself logged), and frees a segment only when its live
// bytes are zero and no snapshot pins it. used = live + dead + open
// segments' headroom, exactly; free = segmentCount - used segments.
package engine
