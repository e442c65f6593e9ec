// Package namespace is one data container's file-system metadata: inodes,
// directory entries, sizes, modes, owners, timestamps, link counts, hard
// links, symlinks, extended attributes and quotas, kept as a
// deterministic state machine that the container's Raft group replicates
// (package raftgroup). It does no I/O, starts no goroutines and reads no
// clock: the leader stamps the time into each command.
//
// # Using it
//
//	ns := namespace.New()                              // only the root, ino 1
//	b, _ := namespace.MarshalCommand(namespace.Mkdir{Parent: namespace.RootIno,
//		Name: "etc", Mode: 0o755, Now: now})
//	res, _ := group.Propose(ctx, b)                     // raftgroup calls ns.Apply
//	r := res.(namespace.Result)                         // r.Err: *namespace.Error, errno inside
//	if errors.Is(r.Err, syscall.EEXIST) { ... }
//
//	attr, err := ns.Lookup(namespace.RootIno, "etc")    // after group.ReadIndex
//	ents, next, err := ns.ReadDir(attr.Ino, "", 128)    // page on with next until ""
//
// Namespace implements raftgroup.StateMachine (Apply, Snapshot, Restore);
// the package does not import raftgroup (a test asserts the interface), so
// clients can use its types and codecs without linking Raft.
// ApplyCommand applies a command without encoding it (tests, tools).
// Reads (Lookup, GetAttr, ReadDir, Readlink, GetXattr, ListXattr, StatFS,
// Reclaims) may run concurrently with Apply; a read-write lock orders
// them. On a Raft group, a linearizable read first waits for a read
// index. Check walks every invariant (tests run it after each step).
//
// Commands are not idempotent (a retried Create with Excl fails with
// EEXIST, a retried Unlink with ENOENT). A proposer that retries after
// raftgroup.ErrLost must deduplicate by request id in a wrapper around
// the Namespace, as package manager does for the cluster map; Results
// encode (AppendResult) so such a wrapper can remember them.
//
// NB: Snapshot encodes the whole state under the read lock on the Raft
// Ready loop (about 10 MB and 0.1 to 0.2 s per 100,000 inodes, see
// BenchmarkSnapshot), so a large namespace needs a large SnapshotEvery;
// a copy-on-write view (btree.Clone of the entries plus a persistent
// inode map) would remove the pause.
//
// # Semantics
//
// Commands mirror the Linux system calls on a local file system (ext4),
// errno for errno and in which times they change (the tests replay table
// cases and random scripts on a real directory and compare): Create
// (open with O_CREAT, O_EXCL optional), Mkdir, Symlink, Link, Unlink,
// Rmdir, Rename (renameat2 with RENAME_NOREPLACE or RENAME_EXCHANGE),
// SetAttr (chmod, chown, utimensat, truncate), SetXattr, RemoveXattr.
// Where this package differs or adds:
//
//   - Names "." and ".." and names holding '/' or NUL fail with EINVAL in
//     every command; an empty name with ENOENT; over NameLenMax bytes with
//     ENAMETOOLONG. Lookup resolves "." and "..".
//   - No permission checks: commands carry no credentials. The server
//     checks access before it proposes a command. EPERM is returned where
//     POSIX requires it regardless of credentials (a hard link to a
//     directory).
//   - WithCloses batches Closes with another command (one Raft commit
//     for both); a close that fails in it is skipped silently. Its
//     Result lists at most ResultReclaimsMax Reclaim entries; the rest
//     stay queued (Reclaims) for the leader's reclaimer.
//   - Open and Close count opens. An inode whose link count reaches 0
//     stays (GetAttr works, Nlink 0) until its open count is 0 too; then
//     it is removed. NB: a client that dies holding opens pins its inodes;
//     expiring a dead client's opens is the server's job (by proposing its
//     Closes).
//   - Extend records the end of a write (the file grows, mtime and ctime
//     change); SetAttr's size truncates up or down.
//   - Quotas: SetQuota limits the bytes of regular files (logical sizes)
//     and the number of inodes (root and open-unlinked ones included);
//     growth past a limit fails with EDQUOT. Shrinking never does.
//   - As on Linux, an inode made in a setgid directory takes the
//     directory's group, and a directory made there the setgid bit;
//     chown of a non-directory clears setuid, and setgid if it is
//     group-executable. (Without credentials, the setgid strip that
//     Linux applies to non-members is the server's to do.)
//   - Setting an xattr to the value it has changes nothing, ctime
//     included, as on ext4. "user." attributes exist only on files and
//     directories (EPERM on a symlink), as on Linux; other name prefixes
//     are not policed here (the mount decides which it serves).
//   - The caller's times are used as given, even if they go backwards.
//
// # Reclamation
//
// File data lives in chunks outside the namespace. When a regular file is
// removed (its last link and last open gone), or truncated down, the
// namespace queues a Reclaim entry (ino, byte range, whether the inode is
// gone) with a fresh ID; the command's Result lists them too. A reclaimer
// reads Reclaims, deletes the chunks, and proposes Reclaimed{ID}. Entries
// survive snapshots, so a crash of the reclaimer loses nothing. NB: after
// a truncation down, the dropped range must be deleted (or zeroed) before
// the file grows over it again, or old bytes would reappear; the client
// that truncates deletes the range before it reports success.
//
// # Invariants
//
// Check states them; Apply keeps them and Restore enforces them:
//
//   - The root (ino 1) is a live directory and its own parent. Inode
//     numbers are below NextIno and never reused; Reclaim IDs likewise.
//   - Every entry's parent is a live directory and its inode is linked
//     (Nlink > 0); entry names are valid; an entry's type is its inode's.
//   - A file's or symlink's Nlink equals the number of entries naming it.
//     A live directory is named by exactly one entry (the root by none),
//     in its parent; its Nlink is 2 plus its number of subdirectories
//     (Linux's count). A removed directory has Nlink 0, no entries and no
//     parent.
//   - Parent chains reach the root: no directory cycles, and every inode
//     is reachable from the root or is unlinked but open (Nlink 0, Open > 0).
//   - Symlinks have a valid target and Size = its length; directories Size
//     0; used bytes equal the sum of the files' sizes.
//   - Modes hold ModeMask bits only; xattrs stay within their limits.
//
// # Command encoding (Raft log entries)
//
// All integers are little-endian; Now, Atime, Mtime are i64 nanoseconds.
// Stored in the Raft log: never renumber kinds or reorder fields; a new
// layout gets a new version.
//
//	+---------------+------+------+
//	| version u8 =1 | kind | body |          exactly one command, no trailing bytes
//	+---------------+------+------+
//
//	kind  1 Create:      | parent u64 | mode u32 | uid u32 | gid u32 | excl u8 (0|1) | now | name str |
//	kind  2 Mkdir:       | parent u64 | mode u32 | uid u32 | gid u32 | now | name str |
//	kind  3 Symlink:     | parent u64 | uid u32 | gid u32 | now | name str | target str |
//	kind  4 Link:        | ino u64 | parent u64 | now | name str |
//	kind  5 Unlink:      | parent u64 | now | name str |
//	kind  6 Rmdir:       | parent u64 | now | name str |
//	kind  7 Rename:      | src parent u64 | dst parent u64 | flags u32 | now | src name str | dst name str |
//	kind  8 SetAttr:     | ino u64 | mask u32 | mode u32 | uid u32 | gid u32 | size u64 | atime | mtime | now |
//	kind  9 SetXattr:    | ino u64 | flags u32 | now | name str | value len u32 (<= 64 KiB) | value |
//	kind 10 RemoveXattr: | ino u64 | now | name str |
//	kind 11 Open:        | ino u64 |
//	kind 12 Close:       | ino u64 |
//	kind 13 SetQuota:    | bytes u64 | inodes u64 |
//	kind 14 Extend:      | ino u64 | size u64 | now |
//	kind 15 Reclaimed:   | id u64 |
//	kind 16 WithCloses:  | n u16 (1..1024) | ino u64 * n | cmd kind u8 | cmd body |
//	str:                 | len u16 | bytes |
//
// WithCloses carries n Closes and one other command: cmd kind 0 means
// none (no body follows), else the command's kind and its body as above,
// without a version byte; kind 12 (Close) and 16 (WithCloses) are refused
// there. Its closes apply first, in order, then the command, in the one
// Raft entry.
//
// Commands carry no checksum: the Raft log (package journal) checksums
// its records. DecodeCommand checks the structure; Apply checks values,
// so a name too long for POSIX still decodes and fails on every replica
// alike with ENAMETOOLONG. A committed command that does not decode
// yields a Result with ErrCorrupt and changes nothing.
//
// # Result encoding (replies to clients)
//
// AppendResult and DecodeResult carry a Result from the metadata server
// to a client (or into a deduplication table):
//
//	+---------------+----------+-------------+----------+-------------------+------------------+
//	| version u8 =1 | err kind | error body  | flags u8 | attr (if flag 2)  | k u8 | reclaim*k |
//	+---------------+----------+-------------+----------+-------------------+------------------+
//
//	err kind 0 none:     (no body)
//	err kind 1 *Error:   | errno u32 (nonzero) | ino u64 | op str | name str |
//	err kind 2 corrupt:  | message str |        decodes wrapping ErrCorrupt
//	err kind 3 applied:  | message str |        decodes wrapping ErrApplied
//	flags:     1 created, 2 attr present (never with zero attributes)
//	attr:      | ino u64 | type u8 | mode u32 | uid u32 | gid u32 | size u64 | nlink u32 | open u32 |
//	           | atime i64 | mtime i64 | ctime i64 |
//	reclaim:   as in the snapshot; k <= 16
//
// # Snapshot encoding (Raft snapshots)
//
//	+--------+---------+-------+------+--------+
//	| magic  | version | flags | body | crc32c |   crc32c (Castagnoli) over all
//	| "WNSS" | u16 = 1 | u16=0 |      | u32    |   bytes before it
//	+--------+---------+-------+------+--------+
//
//	body:
//	+---------+----------+--------------+-------------+--------------+
//	| applied | next ino | next reclaim | quota bytes | quota inodes |
//	| u64     | u64      | u64          | u64         | u64          |
//	+---------+----------+--------------+-------------+--------------+
//	| n u64 | inode * n | m u64 | dirent * m | k u64 | reclaim * k |
//	+-------+-----------+-------+------------+-------+-------------+
//
//	inode:   | ino u64 | type u8 | mode u32 | uid u32 | gid u32 | size u64 | nlink u32 | open u32 |
//	         | parent u64 | atime i64 | mtime i64 | ctime i64 | target str | x u32 | xattr * x |
//	xattr:   | name len u8 | name | value len u32 | value |
//	dirent:  | parent u64 | ino u64 | name len u8 | name |
//	reclaim: | id u64 | ino u64 | from u64 | to u64 | removed u8 (0|1) |
//
// Types: 1 file, 2 dir, 3 symlink. Inodes appear sorted by ino, entries by
// (parent, name) in byte order, xattrs by name, reclaims by ID, so equal
// states encode to equal bytes and a decoded snapshot re-encodes
// identically. The decoder checks the magic, version, flags and checksum,
// bounds every count by the bytes left before allocating, refuses
// trailing bytes and unsorted records, and then runs Check. Errors wrap
// ErrCorrupt.
package namespace
