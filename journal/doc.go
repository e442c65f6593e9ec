// Package journal is weft's append-only log of typed, checksummed,
// sequence-numbered records, with group commit. The engine logs its
// mutations here and the Raft groups of fsproto store their logs here.
//
// # Using it
//
// Open recovers the log in a directory (creating it when empty) and
// positions the writer after the last intact record. Append adds a record
// and returns once it is durable; many goroutines appending at once share
// one device write and one flush (group commit). AppendAsync queues a
// record and reports durability through a callback. AppendLazy queues a
// record nothing waits for: it rides along, without a flush of its own,
// with the next batch something waits for (or Sync, or Close). Replay reads records
// from a sequence number on. TruncateBefore drops whole segment files that
// a checkpoint has made obsolete. All methods are safe for concurrent use.
//
// # On disk
//
// The log is a directory of segment files named by the sequence number of
// their first record (%016x.wlog). A segment is a run of batches; each
// batch is what one group commit wrote: it starts at a 4 KiB boundary and
// its length is a multiple of 4 KiB, so it can be written with O_DIRECT.
// All integers are little-endian.
//
//	batch (4 KiB aligned)
//	+-------+-----+------+-------+--------+-------+----------+-------+-------+
//	| magic | ver | kind | flags | length | count | firstSeq | rsvd  | crc   |
//	| u32   | u8  | u8   | u16   | u32    | u32   | u64      | u32   | u32   |
//	+-------+-----+------+-------+--------+-------+----------+-------+-------+
//	  32 bytes; crc is CRC32C of bytes 0..28 of the header
//	then count records, each at an 8-byte aligned offset:
//	+------+-------+--------+-----+-----+-------+-------------+------------+
//	| type | flags | length | seq | crc | rsvd  | data        | pad to 8   |
//	| u16  | u16   | u32    | u64 | u32 | u32   | length B    |            |
//	+------+-------+--------+-----+-----+-------+-------------+------------+
//	  crc is CRC32C of the 24-byte record header (crc field zero) and data
//	then zeros up to length.
//
// A segment's file runs on past its last batch: each batch that grows the
// file also writes zeros up to 1 MiB beyond it (capped at the segment
// size), in the same flush, so that the flushes of the batches that follow
// overwrite bytes the file has and carry no file-system metadata. A batch
// header is never zeros, so the zeros read as the end of the batches; in a
// segment before the last, they end it when the next segment starts at the
// next sequence number.
//
// Invariants: sequence numbers start at 1 and increase by one per record
// across batches and segments with no gap; a batch's firstSeq is one more
// than the previous batch's last; a segment's name is its first batch's
// firstSeq. A batch is acknowledged only after it has been written and
// flushed (unless Options.NoSync), and batches are written in order, so
// every acknowledged record has only acknowledged or flushed records
// before it.
//
// # Recovery
//
// A crash can leave the last batch torn: some of its sectors written, some
// not. Reading stops cleanly at the first batch that is incomplete or fails
// its checksums when nothing valid follows it: that is a torn tail, and
// Open cuts it off. A bad batch followed by a valid batch with a later
// sequence number is mid-log corruption: the reader never guesses past it
// and returns a *CorruptError naming the file and offset.
//
// NB: a checksum failure in the last batch looks exactly like a torn
// write, so damage there (a bit flipped at rest in the newest batch) is cut
// off as a torn tail, acknowledged records with it. The device's own
// integrity checks, and replication above the journal, are what cover
// that case; nothing in the log itself can tell the two apart.
package journal
