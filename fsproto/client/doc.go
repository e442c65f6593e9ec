// Package client is weft's native client: the file API of a data
// container (FS, File, Handle) on top of the cluster chunk client
// (Client, Container), which reads and writes the chunks of a container
// on a replicated cluster, talking straight to each PG's primary.
//
// # Using it
//
// Files:
//
//	key, err := client.ParseKey("app:5e1f...")                     // ID:SECRETHEX
//	c, err := client.DialCluster(ctx, "c1", []string{"10.0.0.1:7000"}, key)
//	fsys, err := c.OpenContainer(ctx, "db", key)                     // io/fs FS, StatFS, ReadDirFS, ReadFileFS, ReadLinkFS
//	f, err := fsys.OpenFile("logs/a", os.O_RDWR|os.O_CREATE, 0o644)  // *client.File
//	n, err := f.WriteAt(p, off)                                      // durable on every replica
//	err = f.Close()                                                  // commits size and mtime
//	data, err := fsys.ReadFile("logs/a")
//	fsys.Close(); c.Close()
//
// The inode API (what the FUSE mount uses: no path resolution, a ctx per
// call, errors that Errno maps to the errno to reply):
//
//	a, err := fsys.Lookup(ctx, namespace.RootIno, "logs")
//	res, h, err := fsys.CreateIno(ctx, namespace.Create{Parent: a.Ino, Name: "b", Mode: 0o644}, true) // one commit, counts an open
//	h, err = fsys.OpenIno(ctx, ino, false)             // counts an open
//	n, err := h.WriteAt(ctx, p, off); err = h.Flush(ctx); err = h.Release(ctx)
//	ents, next, err := fsys.ReadDirPage(ctx, a.Ino, "", 128)
//	target, err := fsys.ReadlinkIno(ctx, ino)          // Readlink(name) is the path API's
//	st, err := fsys.StatFS(ctx)                         // Usage() without a ctx
//
// Chunks:
//
//	c, err := client.Dial(ctx, client.Config{Maps: mgr, ClusterID: "c1", KeyID: "k", Secret: s})
//	ct, err := c.Container("db")
//	res, err := ct.Write(ctx, inode, index, off, data)  // durable on every replica of the PG's epoch
//	n, err := ct.Read(ctx, inode, index, off, p)        // io.EOF at the chunk's end
//	op := ct.GoWrite(ctx, inode, index, off, data, done) // async, for deep queues
//	c.Close()
//
// Client, Container, FS, File and Handle are safe for concurrent use.
//
// # Data layout
//
// A container's metadata (names, attributes, sizes) lives in its
// namespace, reached through package meta; file bytes live in chunks.
// Bytes [k*C, (k+1)*C) of file ino are chunk (ino, k), C the container
// policy's ChunkSize (fixed at creation; chunk index < 2^24, so a file
// ends before 2^24 chunks: EFBIG past that). A chunk that does not exist,
// or is shorter than the bytes the file's size covers, reads as zeros
// (holes). One request is cut into chunk requests of at most
// fsproto.MaxReadBytes that run in parallel (WithParallelism, default
// 16 in flight).
//
// Invariant: no chunk holds bytes at or past its file's committed size
// that a later growth could expose, except bytes of writes whose size
// was not committed yet (a client that crashed before its Flush leaves
// them; the namespace never claims them, and they reappear only if the
// file is later grown over them without being written there).
//
// # Consistency
//
//   - Data: WriteAt returns once its bytes are durable on every replica
//     of the current epoch of each chunk's PG. Reads go to the primaries
//     (linearizable per chunk).
//   - Write-behind (WithWriteBehind, what the FUSE mount uses): WriteAt
//     copies the bytes, starts their chunk writes and returns; up to the
//     option's bytes (and 64 writes) per FS are in flight, and a WriteAt
//     past that waits for room. Flush, Sync and Release wait for the
//     file's writes made before them, so durability and close-to-open
//     hold at those calls, as above. Within the FS nothing changes: a
//     read, or a write overlapping one in flight, waits for it; the size
//     grows at once; a truncation waits until every earlier write
//     landed. A write that fails after WriteAt returned (the chunk client
//     retried it for the op timeout) is reported by the file's next
//     Flush, Sync or Release, once, as Linux reports writeback errors;
//     a quota refusal still comes from WriteAt itself (the growth is
//     committed before the write starts). A crash of the client loses
//     the writes in flight, as a crash of a machine loses its page cache.
//   - Size and mtime: committing an Extend per write would cost a Raft
//     round trip per write, so the FS keeps the pending size per inode,
//     shared by every handle of the inode in that FS, and commits it (one
//     Extend, or one SetAttr of mtime when the file did not grow) at
//     Flush, Sync, Close/Release, when a handle's uncommitted bytes pass
//     64 MiB, and in the background once an inode has been dirty for the
//     flush interval (WithFlushInterval, default 1 s). mtime and ctime of
//     writes are thus the commit's time (the leader's clock), not each
//     write's.
//   - Paths: the directories a path goes through are remembered for
//     WithDirCache's time (default 1 s, as the FUSE mount's entry cache),
//     so an op on dir/name costs one round trip for name. This FS's own
//     renames, removals and attribute changes show at once; another
//     client's rename, removal or chmod of a directory may be missed for
//     up to that time (an op through the old directory lands there, or
//     fails with ENOENT, after which the FS looks its directories up
//     again). The inode API (and the FUSE mount, which uses it) caches
//     nothing here. WithDirCache(0) resolves every component every time.
//   - What that gives: read-your-writes within one FS (its handles and
//     its GetAttr/Lookup/Stat see the pending size); close-to-open
//     between FSs (clients): once Close, Sync or Flush returned on one,
//     an Open (OpenIno) that starts afterwards on another sees the bytes
//     and the size. A handle opened before that keeps the size it knew
//     plus its FS's own writes until its FS reads the file's attributes
//     again (GetAttr, Lookup, Stat, another open): then it learns the
//     committed size, unless the FS has uncommitted writes or a size
//     change of its own on the file (those win).
//   - A background commit that fails is reported by the next Flush, Sync
//     or Release of the file (as Linux reports writeback errors at fsync
//     or close).
//   - Quota: while the namespace has a byte quota (the FS learns it at
//     open and from a StatFS every half flush interval while files are
//     open), a write that grows a file commits the growth before it
//     writes the data, so a write past the quota fails with EDQUOT and
//     writes nothing. NB: that reservation makes a client crash between
//     the commit and the data leave the grown range reading as zeros. If
//     a quota appears while writes are pending, the commit fails with
//     EDQUOT, the uncommitted bytes are deleted from the chunks (nothing
//     of them stays visible) and Flush/Sync/Close return EDQUOT.
//
// # Truncation and reclamation
//
// Handle.SetSize (File.Truncate, FS.Truncate) commits the new size first
// (SetAttr), then deletes the dropped range from the chunks (whole chunks
// past the new end, the tail of the boundary chunk) and returns only
// then, so old bytes never reappear when the file grows again; then it
// proposes Reclaimed for the namespace's Reclaim entries of the command.
// The range deleted ends at the larger of the size the FS knew and the
// entries' ends. Deleting costs one chunk request per chunk of the range,
// holes included (the chunk protocol has no listing); between batches of
// 256 deletions the client touches the file's ctime (a SetAttr of
// nothing), so the leader's reclaimer, which leaves a truncation entry
// alone until its file has been quiet for Reclaimer.Grace (10 s) and
// stops when the file changes under it, does not delete the same range
// after the client is done and the file has been written again.
//
// A file whose last link and last open go (Unlink, Rename over it, the
// Close of an unlinked file) is queued by the namespace as a Reclaim
// entry, which the command's Result lists too. The entries of Unlink,
// Rmdir and Rename applied through an FS (path API or Apply), and those
// of the Closes that released handles owe (see "Opens and unlinked
// files"), go to the FS's background queue (at most 4096), which
// deletes them in order and proposes Reclaimed; FS.Close finishes the
// queue within its op timeout. What no client finishes (a crash, an
// FS.Close that ran out of time, commands of other tools) is the job of
// a Reclaimer on the container's metadata leader:
//
//	ct, _ := dataClient.ContainerByID(id)             // client.Dial with the node's pool
//	r := client.Reclaimer{Data: ct, Meta: meta.NewClient(id, maps, pool), ChunkSize: ct.ChunkSize()}
//	if leader, _ := host.Leader(id); leader == self {
//		err := r.Run(ctx, host.Namespace(id).Reclaims()) // now and then
//	}
//
// Run deletes every chunk up to a removed file's size, and for a
// truncation only the bytes at or past the file's current size, then
// proposes Reclaimed for each entry it finished. A truncation entry
// waits while its file changed less than Grace ago, and a long deletion
// stops (the entry stays queued) when the file's ctime or size moves
// between batches.
//
// # Opens and unlinked files
//
// OpenIno proposes namespace.Open (CreateIno a Create with Open, which
// counts the open in the same commit), so an unlinked file keeps its
// data while a handle of it is open anywhere; the handle's Release ends
// the open with a namespace.Close. A read-only key cannot propose (the
// metadata servers refuse every op for it): its handles are not
// counted, and a file unlinked by another client while such a handle
// reads it may lose its chunks under it.
//
// Release does not wait for its Close: it flushes (close-to-open needs
// only that), queues the Close on the FS and returns. The FS's next
// metadata op (not a SetXattr, whose value may fill the request alone)
// carries the queued Closes (at most 14 at a time) in its
// own Raft entry (namespace.WithCloses: the closes apply first, then
// the op), so a create-close loop costs one commit per file, not two;
// when no op comes within the close delay (WithCloseDelay, 2 ms), the
// FS commits them alone, and FS.Close commits what is left before it
// returns. So:
//
//   - Release returns before the open is uncounted: another client may
//     see Attr.Open include it for a moment, and an unlinked file's
//     data is deleted shortly after its last Release (in the
//     background), at the latest by FS.Close, not before Release
//     returns.
//   - Closes go back on the queue when their op certainly did not apply
//     (the key is read-only). An op whose outcome stays unknown (its ctx
//     ended while meta.Client retried it with its request id) may have
//     applied them: they are not sent again, since one close counted
//     twice would end another open, and their opens may stay counted,
//     which only pins the inodes (as a failed Close did before).
//   - An FS that refuses an op itself (WithReadOnly, or a key the
//     cluster found read-only) sends nothing, so it carries no closes.
//   - Servers from before WithCloses refuse the batches (a bad request):
//     client and metadata servers must be upgraded together.
//
// NB: a client that dies holding opens pins their inodes (see package
// namespace); expiring them is the server's job.
//
// # Path API and permissions
//
// FS's path methods resolve slash-separated names from the root,
// following symlinks in intermediate components (at most 40, then ELOOP)
// and in the last one where the call does (OpenFile, Stat, Chmod, ...
// but not Lstat, Readlink, Remove, Rename, Symlink, Link). Names are
// io/fs names (fs.ValidPath: no "." or ".." components, no trailing
// "/"); the os-like methods also accept a leading "/", but Open and
// ReadFile, the io/fs entry points, refuse it with fs.ErrInvalid as
// io/fs requires. Errors are *fs.PathError whose Err carries a
// syscall.Errno (errors.Is(err, fs.ErrNotExist) and errors.Is(err,
// syscall.ENOTEMPTY) both work); a File used after Close fails with
// fs.ErrClosed (Errno: EBADF).
//
// Semantics follow the Linux system calls, with these choices: Rename
// is rename(2) (an empty directory as the target is replaced; os.Rename
// refuses that with EEXIST); a File's O_APPEND writes are atomic against
// other appends through the same FS and land after other clients'
// committed appends, but are not atomic against other clients'; no umask
// applies to perm; O_CREATE through a symlink whose target does not
// exist fails with ENOENT (Linux creates the target). Small sequential
// Reads are served from a 128 KiB read-ahead buffer, which any change to
// the file through the same FS invalidates.
//
// The namespace checks no permissions; the FUSE mount leaves them to the
// kernel (default_permissions). The path API checks mode bits as Linux
// does against the FS's credentials (WithCredentials; default the
// process's uid, gid and groups): search (x) on every directory it walks,
// read/write for open, write+search on the directory for create, unlink,
// rmdir, rename (and the sticky bit's owner rule), owner for chmod and
// explicit times, root for chown to another user. uid 0 bypasses them,
// except that executing needs some x bit. One function, access, decides.
//
// # Keys and errors
//
// A key authenticates every connection an FS makes (its own net.Pool).
// A read-only key gives an FS whose changes fail with EROFS (metadata
// refusals map to EROFS, chunk writes refused with fsproto.CodeReadOnly
// too; EROFS rather than EACCES because the key, not the file's mode,
// refuses, as a read-only mount does). A key the cluster refuses at the
// handshake, or one that does not reach the container (the servers'
// access-denied code 265, fsproto.ErrAccessDenied), maps to EACCES, so
// errors.Is(err, fs.ErrPermission) holds. OpenContainer reads the root,
// so such a key fails there. Errno maps any error of this package to an
// errno.
//
// # How a chunk request finds its node
//
// The client caches the cluster map (from a MapSource: the manager's
// client, or anything with its Map method) and computes placement itself:
// clustermap.Locate gives the chunk's PG, the PG's Replicas[0] its
// primary, the map the primary's address. The request carries the PG and
// its epoch (the chunk protocol of package fsproto, unchanged). No lookup
// hop, no proxy.
//
// # Retries
//
// A chunk request is retried, until its context ends, when an attempt
// found no answer (or no connection) within Config.AttemptTimeout, or
// when the answer says
// the client's map is behind or the node cannot serve it now:
// CodeStaleEpoch (old epoch, or the node is not the primary),
// CodeUnavailable (the PG's queue is full or a store failed), net's
// CodeShuttingDown, a connection that failed or could not be made, or a
// PG without a primary. Before each retry the client asks the MapSource
// for a map newer than the one it used, waiting at most
// Config.RefreshWait, and backs off (exponentially, to Config.BackoffMax)
// when no newer map came. A mutation keeps its RequestID across retries,
// so the cluster applies it at most once (within the bound of the PG's
// remembered ids; see fsproto/replication). Other errors (not found,
// invalid, read-only key, no space, corrupt) are returned at once,
// wrapping fsproto's sentinels and the *net.RemoteError. Metadata calls
// retry as package meta says (one request id per op: exactly once).
//
// The attempt's time limit is kept by the connection's one timer
// (net.Conn.CallWithin), not by a context and a timer per attempt. GoRead
// and GoWrite send their first attempt from the caller's goroutine and
// complete on the connection's reader, a read's payload landing in the
// caller's buffer; only an attempt that must be retried continues on a
// goroutine of its own, from the point Read or Write would (a map
// refresh or a backoff, then the next attempt).
//
// Invariant: a mutation is reported successful only when the PG's primary
// answered it, which it does once the mutation is durable on every replica
// of the current epoch.
//
// # Not done
//
//   - The package imports fsproto, which links the engine (fsproto.ObjectID
//     returns an engine.ObjectID); splitting fsproto's messages from its
//     server would keep the engine out of client binaries.
//   - Deleting a range costs a chunk request per chunk, holes included
//     (truncating a 3 GiB sparse file to 0 with 64 KiB chunks sends
//     49,152 deletes); a chunk listing or a range delete in the chunk
//     protocol would make truncating and removing large sparse files
//     cheap.
//   - The path API caches directories only (WithDirCache), no file
//     entries or attributes: the last component of a path costs a
//     metadata round trip, and opening an existing file costs a Raft
//     commit (Open) so unlinked files survive their readers (its Close
//     rides on a later op).
//   - No xattr calls in the path API (the inode API has them); no umask.
//   - Opens held by a client that died pin their inodes until the
//     servers expire them (not done there either).
package client
