// Package engine is weft's per-node storage engine: it owns the node's
// devices and stores objects on them log-structured.
//
// This is the first part of it: the device format. A device (a block
// device, or a file standing in for one) is laid out as
//
//	offset 0            4 KiB          8 KiB          checkpointOffset   segmentsOffset
//	+--------------+--------------+--------------+---------------------+---------+---------+-----
//	| superblock A | superblock B | (reserved)   | checkpoint area     | seg 0   | seg 1   | ...
//	+--------------+--------------+--------------+---------------------+---------+---------+-----
//
// The superblock is written twice so that a torn or rotted copy never
// makes a device unreadable: the valid copy with the highest generation
// wins, and Open rewrites a bad copy from the good one. Layout of one copy
// (little-endian, 4096 bytes, zero-filled after the checksum):
//
//	+---------+---------+-------+------+------------+-----------+-------------+--------------+
//	| magic   | version | flags | uuid | generation | blockSize | segmentSize | segmentCount |
//	| [8]byte | u32     | u32   | [16] | u64        | u32       | u32         | u32          |
//	+---------+---------+-------+------+------------+-----------+-------------+--------------+
//	| rsvd u32 | segmentsOffset u64 | checkpointOffset u64 | checkpointSize u64 |
//	| deviceSize u64 | createdUnixNano i64 | crc32c u32 (of all bytes before it) |
//	+----------------------------------------------------------------------------+
//
// The segments, the log records inside them, the index, checkpoints,
// reactors and the cleaner arrive in later changes (see the README).
package engine
