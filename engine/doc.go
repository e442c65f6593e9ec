// Package engine is weft's per-node storage engine: it owns the node's
// devices and stores objects on them log-structured.
//
// # Structure
//
// An Engine owns one device (a file or block device formatted by Format)
// and runs one shard per reactor. A shard owns the objects whose ObjectID
// hashes to it, their extent Index, object table and per-PG change log,
// and the segments it has written; only its reactor goroutine touches
// them, so the data path takes no lock. Requests reach a reactor through
// a lock-free MPSC queue (queue.go) and come back on the request's Done
// channel. A reactor is a goroutine, locked to its OS thread and pinned
// with sched_setaffinity when Options.Cores gives it a CPU (unpinned
// reactors stay unlocked: see shard.run for why), that runs to
// completion: drain the queue, add mutations to the current batch, seal
// the batch when nothing is in flight, submit, reap completions. When idle it spins
// (Poll), spins for SpinTime then sleeps (Hybrid, the default), or sleeps
// at once (Interrupt). A reactor with device I/O in flight and no guests
// sleeps in its io_uring's own wait (io_uring_enter with a timeout),
// where a POLL_ADD in the ring watches an eventfd that producers finding
// it asleep so write; otherwise (nothing in flight, guests, or the thread
// backend) it sleeps in poll(2) on another eventfd for producers, one the
// ring posts to, and the guests' sockets. A producer writes the eventfd
// of the sleep the reactor declared, so a wake-up reaches one wait.
//
// A reactor also runs guests (Guest, Engine.Host): network connections
// whose requests it reads, submits and answers itself, at the start and
// the end of each pass, and whose sockets it sleeps on with its eventfds.
// A reactor with guests sleeps as in Interrupt mode instead of spinning.
//
// I/O goes through an ioring.Ring per reactor (io_uring, or ioring's
// thread backend where io_uring is unavailable), or through synchronous
// vfs calls for the in-memory crash-test file system.
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
// last checksum):
//
//	+---------+---------+-------+------+------------+-----------+-------------+--------------+
//	| magic   | version | flags | uuid | generation | blockSize | segmentSize | segmentCount |
//	| [8]byte | u32     | u32   | [16] | u64        | u32       | u32         | u32          |
//	+---------+---------+-------+------+------------+-----------+-------------+--------------+
//	| rsvd u32 | segmentsOffset u64 | checkpointOffset u64 | checkpointSize u64 |
//	| deviceSize u64 | createdUnixNano i64 | rsvd u32 | crc32c u32 (of bytes 0-99) |
//	+----------------------------------------------------------------------------+
//	| version 3 on: clusterFSID [16] (bytes 104-119) | crc32c u32 (of bytes 0-119) |
//	+----------------------------------------------------------------------------+
//
// The cluster FSID (Engine.SetClusterFSID) is the identity of the cluster
// map the device's node joined; it is recorded once, by rewriting both
// copies with the next generation, and only a format clears it. Version 2
// devices (no FSID) are read, and become version 3 when one is recorded;
// a build that reads only version 2 still checks the first checksum and
// reports the newer version rather than damage.
//
// Segments and batches are drawn in segment.go.
//
// # The write path
//
// A write becomes one descriptor per record (at most 64 KiB each, so a
// small read of a large write reads and verifies at most that much) plus
// 4 KiB-aligned data in the shard's current batch; data already aligned
// is written from the caller's buffer, anything else is copied into an
// aligned staging area. Group commit: one batch is in flight at a time
// (a gather write of header blocks and data at the end of the open
// segment, with an fdatasync linked behind it unless the device is PLP),
// and everything that arrives meanwhile rides in the next. A batch is
// acknowledged, and applied to the Index, only when its write and flush
// have completed. Invariants: an index entry never points at bytes that
// are not durable; versions and per-PG sequence numbers are assigned in
// log order; a segment's last batch is durable before the shard writes
// to its next segment, so a torn batch can only be the last one of a
// shard's log.
//
// # The read path
//
// A write is stored as records of at most Options.RecordBytes (default
// 16 KiB), each with its own CRC32C. A read looks its range up in the
// Index and reads every record it touches whole, verifying the record's
// CRC32C before a byte of it is returned: a 4 KiB read of data written in
// large writes reads one record, RecordBytes from the device. Smaller
// records cut that read amplification and cost an index entry (about 45
// bytes of memory, 18 of checkpoint) each; the default is the middle of
// that trade (measured numbers in the README).
//
// With Options.ReadCacheBytes, each shard keeps the records small reads
// (up to 64 KiB) fetched, verified, in memory, least recently used out
// first, and serves them again from there, checking each against the
// index's checksum as a device read would be (readcache.go). A record is
// named by its segment, the segment's generation and its offset: records
// are never written over, and a reused segment has a new generation, so
// an entry cannot go stale; entries no extent names any more age out.
// Large reads neither use nor fill the cache: cached records in the
// middle of a scan would only split its few device reads. A record that the read covers exactly is read straight into
// the caller's buffer. Records of one segment that lie in ascending order
// with small gaps between them (batch headers, mostly: data written in
// order) are read with one device read into a scratch buffer, verified
// one by one and copied out (shard.go, readSpan), so a 1 MiB read of
// data written 4 KiB at a time is a few device reads, not 256.
//
// A shard takes a free segment from the device's allocator when its open
// one is full; the allocator stamps it with the next device-wide
// generation, written in the segment header that goes out with the
// segment's first batch. Replaying a shard's segments in generation order
// replays its records in the order they were acknowledged. The allocator
// holds back Shards+1 segments that only the cleaner may take.
//
// # Request ids
//
// A mutation may carry a 16-byte client request id (Request.RequestID),
// stored in its record's descriptor (format version 2, see segment.go).
// Each object's state keeps the ids of its last KeptRequests mutations
// that carried one, with their PG seqs (ObjectState.Requests): applying a
// record adds its id, at run time and on replay alike, so the ids are in
// every checkpoint and snapshot and survive recovery; the cleaner moves
// extents, not states, so a relocation leaves them alone. A deleted
// object's tombstone keeps them (Stat returns it with ErrNotFound) until
// the caller has the engine forget it (ForgetTombstones, see forget.go:
// the replication layer's decision, for only it knows when no replica's
// sync still needs it); the PG's highest-seq tombstone always stays, so
// PGSeq survives a restart. A request with ReplaceRequests sets an object's ids outright, in its own
// batch (KindRequestID records before the mutation's): a replica
// installing the primary's state takes the primary's ids with it. The
// replication layer reads them to answer a retried mutation it already
// holds instead of applying it again, also after a restart.
//
// # Checkpoints
//
// A checkpoint (checkpoint.go) holds, per shard, the index, the object
// table, the segments in use and the log position the state corresponds
// to, plus every snapshot. The checkpointer captures each shard on its
// own goroutine as copy-on-write clones (O(1) on the shard), encodes them
// off the data path and writes them to the older of two slots. Shards ask
// for a checkpoint every CheckpointBytes of log, and when space waits on
// one; Close writes one, so a clean restart replays nothing.
//
// # Recovery
//
// Load the newest valid checkpoint, read every segment header, and
// replay per shard: the open segment of the checkpoint from its position,
// then every segment of the shard with a higher generation than the
// checkpoint's OpenGen, in generation order. For each batch: check the
// header and every record's data checksum, and the batch sequence. A bad
// batch ends the shard's log if it is in the shard's last segment and no
// valid batch of that generation follows it (a torn write, never
// acknowledged; recovery zeroes its first block so it reads as a clean
// end later); anywhere else it is corruption, and Open fails with an
// error naming the device offset. Space counters are then recounted from
// the index and snapshots, and every segment nobody owns is free. Each
// shard starts a fresh segment after recovery.
//
// # Space, snapshots and the cleaner
//
// Each segment's live bytes are the bytes of live-index extents stored
// in it; a snapshot (an Index and object-table clone) pins every segment
// it references. Stats.Used is the segments owned by shards, Live the
// live bytes, Free the free segments; Verify recounts them from scratch.
// A segment is freed when it is closed, holds no live bytes, no snapshot
// pins it, no read is in flight from it, and the last durable checkpoint
// already had it closed and unpinned, so no recovery can load a state
// that needs it.
//
// The cleaner of each shard starts when free segments fall below a start
// level well under Cleaner.FreeTarget while the foreground reads or
// writes (cleaning late relocates less), and below the target itself
// when the foreground is idle. It picks the closed, unpinned segment with
// the best (1-u)·age/(1+u), walks its batches front to back in large
// reads, asks the index which parts of each record are still live (a
// lookup per record: the cost follows the victim, not the index), and
// writes those (checksums verified) as relocation records through the
// normal batches. A victim is freed only with no live bytes left, so a
// walk stopped by a header that does not decode falls back to scanning
// the whole index for the rest. A relocation record
// replaces only the parts of its extent that still point at the old
// location, at run time and on replay alike, so it never undoes a
// foreground write that raced with it.
// It moves about Cleaner.BytesPerBatch per step, one step at a time,
// and while free space is not
// short it paces the steps by the foreground's writes (cleaner.go): each
// byte of log they take earns what cleaning the victim costs per byte
// freed, so relocation is spread over the batches instead of riding whole
// steps in each.
package engine
