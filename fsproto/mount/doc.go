// Package mount serves a data container through FUSE: any program reads
// and writes it as a local folder. `weft mount` and `weft up --mount` are
// built on it.
//
// # Using it
//
//	c, _ := client.DialCluster(ctx, clusterID, managers, key)
//	fsys, _ := c.OpenContainer(ctx, "default", key)
//	m, err := mount.Start(c, fsys, "/mnt/weft", mount.Options{Name: "weft:default"})
//	...
//	err = m.Unmount()       // mount.ErrBusy while files are open there
//	_ = m.UnmountLazy()     // or detach now, serve the open files until closed
//	<-m.Done()              // also closed by umount/fusermount3 -u from outside
//	fsys.Close(); c.Close()
//
// Start mounts with mount(2) when the process may (root), otherwise
// through fusermount3; it refuses a mount point that does not exist, is
// not a directory or is already a mount point, and returns only once the
// kernel serves the mount (a failure unmounts what it made). A weft mount
// left dead by a killed process (ENOTCONN) is detached and replaced, so
// mounting again heals it.
//
// # How requests map
//
// The package speaks the kernel's FUSE protocol with go-fuse's raw API
// (fuse.RawFileSystem) rather than its node tree (package fs): a weft
// inode number is never reused, so it serves as the FUSE node id itself
// (the root is 1 in both), and every request goes straight to the
// container's inode API (client.FS: Lookup, GetAttr, Apply,
// ReadDirPage, OpenIno, ...). The mount keeps no tree that a rename by
// another client could make stale, and Forget needs no bookkeeping.
//
//	LOOKUP, GETATTR             FS.Lookup, FS.GetAttr
//	MKDIR, MKNOD (files only),  FS.Apply(Mkdir, Create{Excl}, Symlink, Link,
//	SYMLINK, LINK, UNLINK,      Unlink, Rmdir, Rename{NoReplace|Exchange},
//	RMDIR, RENAME(2)            ...) with the caller's uid and gid
//	SETATTR                     Handle.SetSize for the size, Apply(SetAttr) for
//	                            mode, owner and times
//	CREATE                      FS.CreateIno: one commit makes the file and
//	                            counts its open in the namespace
//	OPEN                        FS.OpenIno (counts an open in the namespace:
//	                            unlinked-but-open files stay)
//	READ, WRITE                 Handle.ReadAt, Handle.WriteAt
//	FLUSH (each close(2))       Handle.Flush: size and mtime committed
//	FSYNC                       Handle.Sync
//	RELEASE                     Handle.Release: the namespace's Close, queued
//	                            to ride with the next op (client package doc)
//	OPENDIR, READDIR(PLUS)      FS.ReadDirPage, paged by name; readdirplus
//	                            looks the page's entries up in parallel
//	GET/SET/LIST/REMOVEXATTR    "user." attributes only; others read as absent
//	                            and cannot be set (EOPNOTSUPP)
//	STATFS                      the namespace's usage and quotas (see statfs)
//
// Errors are the errno the backend's error carries (client.Errno), EIO
// otherwise. Requests ignore the kernel's interrupts, as libfuse does by
// default: the kernel interrupts a request whenever its caller gets any
// signal, and Go programs' threads get one (SIGURG) at every goroutine
// preemption, so honouring them failed reads and writes with EINTR. A
// request waits for the cluster as long as it takes (as on an NFS hard
// mount); a fatal signal still ends the program waiting on it.
//
// Permissions are the kernel's: the mount asks for default_permissions,
// so the kernel checks every access against the modes, owners and groups
// the mount reports (EACCES, EPERM, the sticky bit, setgid clearing), as
// for a local file system. The namespace itself checks no credentials.
// The one check made here is for a Create that finds the file made
// meanwhile by another client, which the kernel had not checked.
//
// # Caching and consistency (Options.Cache)
//
//   - strict (the default): names and attributes are cached for 1 s, file
//     pages in the page cache; every open drops the file's cached
//     attributes and pages (no FOPEN_KEEP_CACHE, and an inode
//     invalidation), so an open that starts after another client's close,
//     flush or fsync returned reads what that client wrote: close-to-open
//     consistency. Within the mount, reads see every write (one client.FS
//     shares each file's size among its handles). A name made elsewhere
//     shows at once (no negative entries are cached); one removed or
//     renamed elsewhere may be seen for up to 1 s. The kernel drops a
//     directory's attributes after each change this mount makes to its
//     entries, and asks for them again at the next path walk through it;
//     the mount answers from the attributes the change returned
//     (namespace.Result.Parent) until 1 s after the change, so a create
//     or unlink is one metadata round trip, not two.
//   - none: no caching at all: direct I/O (no page cache, so no shared
//     writable mmap), zero entry and attribute timeouts. A read sees
//     every write another client flushed before the read started; names
//     are always current.
//
// Writes reach the cluster as the kernel sends them (no kernel writeback
// cache). With client.WithWriteBehind on the FS (weft mount's default,
// --write-behind=8m) a write(2) returns once its bytes are copied and on
// their way, and close(2) (FLUSH) and fsync(2) wait for them and report
// a failed one, as a local file system reports writeback errors; without
// it a write(2) returns once its bytes are durable on every replica.
// NB: a process that serves a mount's cluster (engines) and is also a
// client of that mount must run its engines' reactors on threads of
// their own (pinned): see testcluster.Options.PinReactors. Either
// way data is durable when fsync(2) or close(2) returns. A file's size
// and mtime are committed at close(2) (FLUSH), fsync(2), and in the
// background by client.FS (every second).
// O_APPEND files are opened with direct I/O and each append lands at the
// end of the file as this mount knows it, appends through one mount being
// serialized: the namespace's size is read again when the last reading is
// older than the attribute timeout (every append with caching off), so an
// append follows other clients' committed appends; appends from two
// mounts at the same moment may overlap, as on NFS.
//
// Attributes: st_blocks counts a file's logical size (holes of sparse
// files included: the namespace does not know which chunks exist), and
// atime changes only when set explicitly (as on a noatime mount): reads
// commit nothing.
//
// # Unmounting
//
// Unmount fails with ErrBusy while files are open on the mount and leaves
// it mounted; UnmountLazy detaches the mount point (MNT_DETACH, or
// fusermount3 -uz) and keeps serving the open files until they are
// closed. When the serve loop ends, handles the kernel did not release
// are released (their opens end in the namespace).
//
// # Not done
//
//   - No kernel writeback cache: each write(2) is still a FUSE round
//     trip to this process, write-behind or not. The writeback cache
//     would batch small writes, but the kernel then owns the file size
//     and mtime, which breaks the close-to-open size commits above; it
//     needs explicit invalidation between clients first.
//   - Attribute and entry caching is time based (1 s); a server-pushed
//     invalidation would allow longer timeouts with the same guarantees.
//   - fallocate (EOPNOTSUPP), O_TMPFILE, device and FIFO nodes (EPERM),
//     POSIX ACLs and file locks across clients (locks are local to each
//     mount's kernel) are not served.
//   - A Release whose namespace Close cannot reach the cluster leaves the
//     open counted (the inode is pinned until the servers expire it).
package mount
