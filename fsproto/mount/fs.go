package mount

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/weftfs/weft/fsproto/namespace"
)

const (
	// blockSize is st_blksize: the I/O size programs are told to prefer.
	// Large requests cost the same round trips as small ones.
	blockSize = 128 << 10
	// lookupParallel bounds the concurrent lookups readdirplus makes to
	// fill one reply.
	lookupParallel = 8
	// releaseTimeout bounds the Release (namespace Close) that follows the
	// last close of a file: the kernel waits for no answer, so no caller
	// would ever see the call hang, but the open count would stay.
	releaseTimeout = 2 * time.Minute
)

// readDirPage is how many names one ReadDirPage asks for (a variable so
// that tests can make listings span pages cheaply).
var readDirPage = 512

// rawFS serves FUSE requests from a backend. FUSE node ids are inode
// numbers (the root is 1 in both), and inode numbers are never reused, so
// the kernel's lookup counts need no state here: Forget does nothing, and
// a request for an inode that is gone fails with ENOENT from the backend.
type rawFS struct {
	fuse.RawFileSystem // ENOSYS for what is not served

	b        backend
	readOnly bool
	noCache  bool
	ttl      time.Duration

	server *fuse.Server // set by Init, before any other request

	// dirAttrs holds the attributes of directories as this mount's own
	// changes to their entries left them (namespace.Result.Parent), each
	// until its attribute timeout ends. The kernel drops a directory's
	// attributes whenever it changes an entry in it, and asks for them
	// again (GETATTR) at the next path walk through it: a create or
	// unlink in a directory would otherwise cost two round trips to the
	// metadata group instead of one. Not used without caching.
	dirAttrs struct {
		sync.Mutex
		m map[namespace.Ino]dirAttr
	}

	mu struct {
		sync.Mutex
		nextFh uint64
		files  map[uint64]*fileHandle
		dirs   map[uint64]*dirHandle
		inodes map[namespace.Ino]*inodeState
	}
}

// dirAttr is a directory's attributes, and when they stop being served.
type dirAttr struct {
	a     namespace.Attr
	until time.Time
}

// dirAttrsMax bounds rawFS.dirAttrs: beyond it, expired entries go.
const dirAttrsMax = 4096

// noteChange keeps res.Parent, the attributes cmd left its directory
// with, or forgets those of the directories cmd changed without saying
// how (a rename's two, an inode whose own attributes changed).
func (r *rawFS) noteChange(cmd namespace.Command, res namespace.Result) {
	if r.noCache {
		return
	}
	r.dirAttrs.Lock()
	defer r.dirAttrs.Unlock()
	switch c := cmd.(type) {
	case namespace.Rename:
		delete(r.dirAttrs.m, c.SrcParent)
		delete(r.dirAttrs.m, c.DstParent)
	case namespace.SetAttr:
		delete(r.dirAttrs.m, c.Ino)
	case namespace.SetXattr:
		delete(r.dirAttrs.m, c.Ino)
	case namespace.RemoveXattr:
		delete(r.dirAttrs.m, c.Ino)
	}
	if res.Attr.Ino != 0 {
		// Rmdir's removed directory, a renamed directory (its ".."), a
		// linked inode: theirs changed too.
		delete(r.dirAttrs.m, res.Attr.Ino)
	}
	if res.Err != nil || res.Parent.Ino == 0 {
		return
	}
	now := time.Now()
	if len(r.dirAttrs.m) >= dirAttrsMax {
		for ino, d := range r.dirAttrs.m {
			if !now.Before(d.until) {
				delete(r.dirAttrs.m, ino)
			}
		}
	}
	// Two changes to one directory may come back in either order: the
	// later change (by the metadata leader's clock) wins.
	if old, ok := r.dirAttrs.m[res.Parent.Ino]; ok && old.a.Ctime > res.Parent.Ctime {
		return
	}
	if len(r.dirAttrs.m) < dirAttrsMax {
		r.dirAttrs.m[res.Parent.Ino] = dirAttr{a: res.Parent, until: now.Add(r.ttl)}
	}
}

// cachedDirAttr returns ino's attributes kept by noteChange, and for how
// much longer they hold.
func (r *rawFS) cachedDirAttr(ino namespace.Ino) (namespace.Attr, time.Duration, bool) {
	if r.noCache {
		return namespace.Attr{}, 0, false
	}
	r.dirAttrs.Lock()
	d, ok := r.dirAttrs.m[ino]
	r.dirAttrs.Unlock()
	if !ok {
		return namespace.Attr{}, 0, false
	}
	left := time.Until(d.until)
	if left <= 0 {
		return namespace.Attr{}, 0, false
	}
	return d.a, left, true
}

// fileHandle is one FUSE open of a regular file.
type fileHandle struct {
	fh       uint64
	ino      namespace.Ino
	h        handle
	writable bool
	append   bool
	st       *inodeState // shared with the inode's other handles here
}

// inodeState is what the mount keeps for an inode with open files here:
// a lock that serializes appends, so each lands at the end the previous
// one made. (Sizes of unflushed writes are the backend's: client.FS
// reports its own pending growth in GetAttr and Lookup.)
type inodeState struct {
	ino namespace.Ino
	mu  sync.Mutex
	// checked is when an append last read the size from the namespace
	// (guarded by mu).
	checked time.Time
	fhs     map[*fileHandle]struct{} // guarded by rawFS.mu
}

// dirHandle is one FUSE opendir: the names listed so far, so that the
// kernel's offsets (index+1, with "." at 1 and ".." at 2) stay valid while
// the directory changes. Entries come from the backend a page at a time.
type dirHandle struct {
	ino namespace.Ino

	mu      sync.Mutex
	ents    []namespace.DirEntry
	cookie  string // where the next page starts
	done    bool   // the listing is complete
	dotdot  namespace.Ino
	started bool
}

func newRawFS(b backend, readOnly bool, cache Cache) *rawFS {
	r := &rawFS{RawFileSystem: fuse.NewDefaultRawFileSystem(), b: b, readOnly: readOnly}
	switch cache {
	case CacheNone:
		r.noCache = true
	default:
		r.ttl = time.Second
	}
	r.mu.files = make(map[uint64]*fileHandle)
	r.mu.dirs = make(map[uint64]*dirHandle)
	r.mu.inodes = make(map[namespace.Ino]*inodeState)
	r.dirAttrs.m = make(map[namespace.Ino]dirAttr)
	return r
}

func (r *rawFS) String() string { return "weft" }

func (r *rawFS) Init(s *fuse.Server) { r.server = s }

// reqCtx is the context of a request. The kernel's interrupts (the
// cancel channel) are ignored, as libfuse does by default: the kernel
// interrupts a request whenever its caller gets any signal, and a Go
// program's threads get SIGURG (goroutine preemption) all the time, so
// honouring them would fail reads and writes with EINTR that programs do
// not retry. A fatal signal still ends a caller waiting on a request (the
// kernel stops waiting for the reply); the request itself runs to its
// end, as on an NFS hard mount.
func reqCtx(<-chan struct{}) context.Context { return context.Background() }

// errno maps a backend error to a FUSE status: the errno it carries, EINTR
// for an interrupted request, EIO for anything else (a cluster that could
// not be reached, a corrupt reply).
func errno(err error) fuse.Status {
	if err == nil {
		return fuse.OK
	}
	var en syscall.Errno
	if errors.As(err, &en) && en != 0 {
		return fuse.Status(en)
	}
	if errors.Is(err, context.Canceled) {
		return fuse.EINTR
	}
	return fuse.EIO
}

// apply runs cmd and folds a refusal in Result.Err into the error.
func (r *rawFS) apply(ctx context.Context, cmd namespace.Command) (namespace.Result, fuse.Status) {
	res, err := r.b.Apply(ctx, cmd)
	if err == nil {
		r.noteChange(cmd, res)
		err = res.Err
	}
	return res, errno(err)
}

func typeBits(t namespace.Type) uint32 {
	switch t {
	case namespace.TypeDir:
		return syscall.S_IFDIR
	case namespace.TypeSymlink:
		return syscall.S_IFLNK
	}
	return syscall.S_IFREG
}

// fillAttr converts a into out.
func (r *rawFS) fillAttr(out *fuse.Attr, a namespace.Attr) {
	size := a.Size
	*out = fuse.Attr{
		Ino:       uint64(a.Ino),
		Size:      size,
		Blocks:    (size + 511) / 512,
		Atime:     uint64(a.Atime / 1e9),
		Atimensec: uint32(a.Atime % 1e9),
		Mtime:     uint64(a.Mtime / 1e9),
		Mtimensec: uint32(a.Mtime % 1e9),
		Ctime:     uint64(a.Ctime / 1e9),
		Ctimensec: uint32(a.Ctime % 1e9),
		Mode:      typeBits(a.Type) | a.Mode&namespace.ModeMask,
		Nlink:     a.Nlink,
		Owner:     fuse.Owner{Uid: a.UID, Gid: a.GID},
		Blksize:   blockSize,
	}
}

func (r *rawFS) fillEntry(out *fuse.EntryOut, a namespace.Attr) {
	out.NodeId = uint64(a.Ino)
	out.Generation = 0 // inode numbers are never reused
	out.SetEntryTimeout(r.ttl)
	out.SetAttrTimeout(r.ttl)
	r.fillAttr(&out.Attr, a)
}

func (r *rawFS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	a, err := r.b.Lookup(reqCtx(cancel), namespace.Ino(h.NodeId), name)
	if err != nil {
		return errno(err)
	}
	r.fillEntry(out, a)
	return fuse.OK
}

func (r *rawFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	if a, left, ok := r.cachedDirAttr(namespace.Ino(in.NodeId)); ok {
		out.SetTimeout(left)
		r.fillAttr(&out.Attr, a)
		return fuse.OK
	}
	a, err := r.b.GetAttr(reqCtx(cancel), namespace.Ino(in.NodeId))
	if err != nil {
		return errno(err)
	}
	out.SetTimeout(r.ttl)
	r.fillAttr(&out.Attr, a)
	return fuse.OK
}

func nsec(sec uint64, ns uint32) int64 { return int64(sec)*1e9 + int64(ns) }

func (r *rawFS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	ctx := reqCtx(cancel)
	ino := namespace.Ino(in.NodeId)
	var (
		a    namespace.Attr
		have bool
	)
	if in.Valid&fuse.FATTR_SIZE != 0 {
		if r.readOnly {
			return fuse.EROFS
		}
		var fh *fileHandle
		if n, ok := in.GetFh(); ok {
			fh = r.file(n)
		}
		var st fuse.Status
		if a, st = r.truncate(ctx, ino, fh, int64(in.Size)); !st.Ok() {
			return st
		}
		have = true
	}
	cmd := namespace.SetAttr{Ino: ino}
	if in.Valid&fuse.FATTR_MODE != 0 {
		cmd.Mask |= namespace.SetMode
		cmd.Mode = in.Mode & namespace.ModeMask
	}
	if in.Valid&fuse.FATTR_UID != 0 {
		cmd.Mask |= namespace.SetUID
		cmd.UID = in.Uid
	}
	if in.Valid&fuse.FATTR_GID != 0 {
		cmd.Mask |= namespace.SetGID
		cmd.GID = in.Gid
	}
	switch {
	case in.Valid&fuse.FATTR_ATIME_NOW != 0:
		cmd.Mask |= namespace.SetAtimeNow
	case in.Valid&fuse.FATTR_ATIME != 0:
		cmd.Mask |= namespace.SetAtime
		cmd.Atime = nsec(in.Atime, in.Atimensec)
	}
	switch {
	case in.Valid&fuse.FATTR_MTIME_NOW != 0:
		cmd.Mask |= namespace.SetMtimeNow
	case in.Valid&fuse.FATTR_MTIME != 0:
		cmd.Mask |= namespace.SetMtime
		cmd.Mtime = nsec(in.Mtime, in.Mtimensec)
	}
	if cmd.Mask != 0 {
		if r.readOnly {
			return fuse.EROFS
		}
		res, st := r.apply(ctx, cmd)
		if !st.Ok() {
			return st
		}
		a, have = res.Attr, true
	}
	if !have {
		var err error
		if a, err = r.b.GetAttr(ctx, ino); err != nil {
			return errno(err)
		}
	}
	out.SetTimeout(r.ttl)
	r.fillAttr(&out.Attr, a)
	return fuse.OK
}

// truncate sets ino's size through fh's handle if it is writable, else
// through a handle opened for the purpose.
func (r *rawFS) truncate(ctx context.Context, ino namespace.Ino, fh *fileHandle, size int64) (namespace.Attr, fuse.Status) {
	h := handle(nil)
	if fh != nil && fh.writable {
		h = fh.h
	} else {
		tmp, err := r.b.OpenIno(ctx, ino, true)
		if err != nil {
			return namespace.Attr{}, errno(err)
		}
		defer func() { _ = tmp.Release(context.WithoutCancel(ctx)) }()
		h = tmp
	}
	a, err := h.SetSize(ctx, size)
	if err != nil {
		return namespace.Attr{}, errno(err)
	}
	return a, fuse.OK
}

// register adds fh to its inode's state, made if need be.
func (r *rawFS) register(fh *fileHandle) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.mu.inodes[fh.ino]
	if st == nil {
		st = &inodeState{ino: fh.ino, fhs: make(map[*fileHandle]struct{})}
		r.mu.inodes[fh.ino] = st
	}
	st.fhs[fh] = struct{}{}
	fh.st = st
	r.mu.nextFh++
	fh.fh = r.mu.nextFh
	r.mu.files[fh.fh] = fh
}

// unregister removes fh, and its inode's state with its last handle.
func (r *rawFS) unregister(fh *fileHandle) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.mu.files, fh.fh)
	delete(fh.st.fhs, fh)
	if len(fh.st.fhs) == 0 && r.mu.inodes[fh.ino] == fh.st {
		delete(r.mu.inodes, fh.ino)
	}
}

func (r *rawFS) file(fh uint64) *fileHandle {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.files[fh]
}

func (r *rawFS) caller(h *fuse.InHeader) (uint32, uint32) { return h.Uid, h.Gid }

func (r *rawFS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	if r.readOnly {
		return fuse.EROFS
	}
	uid, gid := r.caller(&in.InHeader)
	res, st := r.apply(reqCtx(cancel), namespace.Mkdir{Parent: namespace.Ino(in.NodeId), Name: name,
		Mode: in.Mode & namespace.ModeMask, UID: uid, GID: gid})
	if !st.Ok() {
		return st
	}
	r.fillEntry(out, res.Attr)
	return fuse.OK
}

// Mknod makes regular files only: the namespace has no device, FIFO or
// socket inodes (EPERM, as file systems without them answer).
func (r *rawFS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	if in.Mode&syscall.S_IFMT != syscall.S_IFREG && in.Mode&syscall.S_IFMT != 0 {
		return fuse.EPERM
	}
	if r.readOnly {
		return fuse.EROFS
	}
	uid, gid := r.caller(&in.InHeader)
	res, st := r.apply(reqCtx(cancel), namespace.Create{Parent: namespace.Ino(in.NodeId), Name: name,
		Mode: in.Mode & namespace.ModeMask, UID: uid, GID: gid, Excl: true})
	if !st.Ok() {
		return st
	}
	r.fillEntry(out, res.Attr)
	return fuse.OK
}

func (r *rawFS) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	if r.readOnly {
		return fuse.EROFS
	}
	_, st := r.apply(reqCtx(cancel), namespace.Unlink{Parent: namespace.Ino(h.NodeId), Name: name})
	return st
}

func (r *rawFS) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	if r.readOnly {
		return fuse.EROFS
	}
	_, st := r.apply(reqCtx(cancel), namespace.Rmdir{Parent: namespace.Ino(h.NodeId), Name: name})
	return st
}

// Linux's renameat2 flags.
const (
	renameNoReplace = 1 << 0
	renameExchange  = 1 << 1
)

func (r *rawFS) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	if r.readOnly {
		return fuse.EROFS
	}
	var flags namespace.RenameFlags
	switch in.Flags {
	case 0:
	case renameNoReplace:
		flags = namespace.RenameNoReplace
	case renameExchange:
		flags = namespace.RenameExchange
	default: // RENAME_WHITEOUT, combinations
		return fuse.EINVAL
	}
	_, st := r.apply(reqCtx(cancel), namespace.Rename{SrcParent: namespace.Ino(in.NodeId), SrcName: oldName,
		DstParent: namespace.Ino(in.Newdir), DstName: newName, Flags: flags})
	return st
}

func (r *rawFS) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	if r.readOnly {
		return fuse.EROFS
	}
	res, st := r.apply(reqCtx(cancel), namespace.Link{Ino: namespace.Ino(in.Oldnodeid), Parent: namespace.Ino(in.NodeId), Name: name})
	if !st.Ok() {
		return st
	}
	r.fillEntry(out, res.Attr)
	return fuse.OK
}

func (r *rawFS) Symlink(cancel <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	if r.readOnly {
		return fuse.EROFS
	}
	uid, gid := r.caller(h)
	res, st := r.apply(reqCtx(cancel), namespace.Symlink{Parent: namespace.Ino(h.NodeId), Name: name, Target: target, UID: uid, GID: gid})
	if !st.Ok() {
		return st
	}
	r.fillEntry(out, res.Attr)
	return fuse.OK
}

func (r *rawFS) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	t, err := r.b.Readlink(reqCtx(cancel), namespace.Ino(h.NodeId))
	if err != nil {
		return nil, errno(err)
	}
	return []byte(t), fuse.OK
}

// Extended attributes: only the "user." namespace is served. Others
// (security., trusted., system.) read as absent and cannot be set, so no
// ACL or capability ever applies to a file here.
const xattrPrefix = "user."

func (r *rawFS) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, name string, dest []byte) (uint32, fuse.Status) {
	if !strings.HasPrefix(name, xattrPrefix) {
		return 0, fuse.ENOATTR
	}
	v, err := r.b.GetXattr(reqCtx(cancel), namespace.Ino(h.NodeId), name)
	if err != nil {
		return 0, errno(err)
	}
	if len(dest) < len(v) {
		return uint32(len(v)), fuse.ERANGE
	}
	return uint32(copy(dest, v)), fuse.OK
}

func (r *rawFS) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	names, err := r.b.ListXattr(reqCtx(cancel), namespace.Ino(h.NodeId))
	if err != nil {
		return 0, errno(err)
	}
	var b []byte
	for _, n := range names {
		if strings.HasPrefix(n, xattrPrefix) {
			b = append(append(b, n...), 0)
		}
	}
	if len(dest) < len(b) {
		return uint32(len(b)), fuse.ERANGE
	}
	return uint32(copy(dest, b)), fuse.OK
}

func (r *rawFS) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, name string, data []byte) fuse.Status {
	if !strings.HasPrefix(name, xattrPrefix) {
		return fuse.Status(syscall.EOPNOTSUPP)
	}
	if r.readOnly {
		return fuse.EROFS
	}
	_, st := r.apply(reqCtx(cancel), namespace.SetXattr{Ino: namespace.Ino(in.NodeId), Name: name,
		Value: append([]byte(nil), data...), Flags: namespace.XattrFlags(in.Flags)})
	return st
}

func (r *rawFS) RemoveXAttr(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	if !strings.HasPrefix(name, xattrPrefix) {
		return fuse.Status(syscall.EOPNOTSUPP)
	}
	if r.readOnly {
		return fuse.EROFS
	}
	_, st := r.apply(reqCtx(cancel), namespace.RemoveXattr{Ino: namespace.Ino(h.NodeId), Name: name})
	return st
}

// permits reports whether a caller may open a with the access mode of
// flags. The kernel checks permissions itself (default_permissions); this
// is only for the file that Create found already made by someone else
// between the kernel's lookup and the create.
func permits(a namespace.Attr, uid, gid uint32, flags uint32) bool {
	if uid == 0 {
		return true
	}
	var want uint32
	switch flags & syscall.O_ACCMODE {
	case syscall.O_RDONLY:
		want = 4
	case syscall.O_WRONLY:
		want = 2
	default:
		want = 6
	}
	perm := a.Mode & 7
	switch {
	case a.UID == uid:
		perm = a.Mode >> 6 & 7
	case a.GID == gid:
		perm = a.Mode >> 3 & 7
	}
	return perm&want == want
}

func (r *rawFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	if r.readOnly {
		return fuse.EROFS
	}
	ctx := reqCtx(cancel)
	uid, gid := r.caller(&in.InHeader)
	// One commit creates the file and counts its open.
	writable := in.Flags&syscall.O_ACCMODE != syscall.O_RDONLY
	cmd := namespace.Create{Parent: namespace.Ino(in.NodeId), Name: name,
		Mode: in.Mode & namespace.ModeMask, UID: uid, GID: gid, Excl: in.Flags&syscall.O_EXCL != 0}
	res, h, err := r.b.CreateOpen(ctx, cmd, writable)
	if err == nil {
		r.noteChange(cmd, res)
		err = res.Err
	}
	if st := errno(err); !st.Ok() {
		return st
	}
	a := res.Attr
	if h == nil {
		// Made meanwhile by another client, and not a regular file.
		return fuse.Status(syscall.EEXIST)
	}
	if !res.Created && !permits(a, uid, gid, in.Flags) {
		// Made meanwhile by another client: open(2) would check it.
		_ = h.Release(ctx)
		return fuse.EACCES
	}
	fh := r.newHandle(a.Ino, h, in.Flags, &out.OpenOut)
	var st fuse.Status
	if !res.Created && in.Flags&syscall.O_TRUNC != 0 {
		if a, st = r.truncate(ctx, a.Ino, fh, 0); !st.Ok() {
			r.release(fh)
			return st
		}
	}
	r.fillEntry(&out.EntryOut, a)
	return fuse.OK
}

func (r *rawFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	ctx := reqCtx(cancel)
	if in.Flags&syscall.O_ACCMODE != syscall.O_RDONLY && r.readOnly {
		return fuse.EROFS
	}
	_, st := r.open(ctx, namespace.Ino(in.NodeId), in.Flags, out)
	if !st.Ok() {
		return st
	}
	if !r.noCache && r.server != nil {
		// Close-to-open: drop the attributes the kernel holds, so the
		// next read or stat asks for the size another client may have
		// committed. (The page cache is dropped too: no
		// FOPEN_KEEP_CACHE.) No inode lock is held on open, so the
		// notification cannot deadlock.
		r.server.InodeNotify(in.NodeId, -1, 0)
	}
	return fuse.OK
}

// open opens ino for a FUSE file handle.
func (r *rawFS) open(ctx context.Context, ino namespace.Ino, flags uint32, out *fuse.OpenOut) (*fileHandle, fuse.Status) {
	writable := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	h, err := r.b.OpenIno(ctx, ino, writable)
	if err != nil {
		return nil, errno(err)
	}
	return r.newHandle(ino, h, flags, out), fuse.OK
}

// newHandle registers the FUSE file handle of h, an open of ino with
// the open flags flags, and fills out.
func (r *rawFS) newHandle(ino namespace.Ino, h handle, flags uint32, out *fuse.OpenOut) *fileHandle {
	writable := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	fh := &fileHandle{ino: ino, h: h, writable: writable, append: flags&syscall.O_APPEND != 0}
	r.register(fh)
	out.Fh = fh.fh
	if r.noCache || fh.append {
		// An appending write lands at the end the mount knows, not at
		// the kernel's idea of it, so it must bypass the page cache.
		out.OpenFlags |= fuse.FOPEN_DIRECT_IO
	}
	return fh
}

func (r *rawFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	fh := r.file(in.Fh)
	if fh == nil {
		return nil, fuse.EBADF
	}
	p := buf[:min(int(in.Size), len(buf))]
	n, err := fh.h.ReadAt(reqCtx(cancel), p, int64(in.Offset))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, errno(err)
	}
	return fuse.ReadResultData(p[:n]), fuse.OK
}

func (r *rawFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	fh := r.file(in.Fh)
	if fh == nil {
		return 0, fuse.EBADF
	}
	if !fh.writable {
		return 0, fuse.EBADF
	}
	ctx := reqCtx(cancel)
	off := int64(in.Offset)
	if fh.append {
		// Appends through this mount are serialized and land at the
		// end of the file: the namespace's size, read again when the
		// last read is older than the attribute timeout (so other
		// clients' committed appends are seen, as an NFS client sees
		// them), else the size this mount sees (the last read grown by
		// its own writes). Appends from two clients at once may still
		// overlap, as on NFS.
		fh.st.mu.Lock()
		defer fh.st.mu.Unlock()
		off = fh.h.Size()
		if now := time.Now(); r.noCache || now.Sub(fh.st.checked) >= r.ttl {
			a, err := r.b.GetAttr(ctx, fh.ino)
			if err != nil {
				return 0, errno(err)
			}
			off, fh.st.checked = int64(a.Size), now
		}
	}
	n, err := fh.h.WriteAt(ctx, data, off)
	if err != nil && n == 0 {
		return 0, errno(err)
	}
	return uint32(n), fuse.OK
}

// Flush runs on every close(2) of a descriptor of the handle: it commits
// the size and mtime of what was written, which is what makes a close
// visible to the next open elsewhere.
func (r *rawFS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	fh := r.file(in.Fh)
	if fh == nil {
		return fuse.EBADF
	}
	if !fh.writable {
		return fuse.OK
	}
	return errno(fh.h.Flush(reqCtx(cancel)))
}

// fsyncDataOnly is FUSE_FSYNC_FDATASYNC: the fsync is an fdatasync.
const fsyncDataOnly = 1

func (r *rawFS) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	fh := r.file(in.Fh)
	if fh == nil {
		return fuse.EBADF
	}
	if !fh.writable {
		return fuse.OK
	}
	ctx := reqCtx(cancel)
	if in.FsyncFlags&fsyncDataOnly != 0 {
		return errno(fh.h.DataSync(ctx))
	}
	return errno(fh.h.Sync(ctx))
}

func (r *rawFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	if fh := r.file(in.Fh); fh != nil {
		r.release(fh)
	}
}

// release ends fh: Release flushes what is pending and ends the open in
// the namespace (an unlinked file's data goes with its last open).
func (r *rawFS) release(fh *fileHandle) {
	r.unregister(fh)
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	_ = fh.h.Release(ctx) // nobody to tell: close(2) got Flush's answer
}

func (r *rawFS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	return fuse.Status(syscall.EOPNOTSUPP)
}

func (r *rawFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	a, err := r.b.GetAttr(reqCtx(cancel), namespace.Ino(in.NodeId))
	if err != nil {
		return errno(err)
	}
	if a.Type != namespace.TypeDir {
		return fuse.ENOTDIR
	}
	d := &dirHandle{ino: a.Ino}
	r.mu.Lock()
	r.mu.nextFh++
	out.Fh = r.mu.nextFh
	r.mu.dirs[out.Fh] = d
	r.mu.Unlock()
	return fuse.OK
}

func (r *rawFS) ReleaseDir(in *fuse.ReleaseIn) {
	r.mu.Lock()
	delete(r.mu.dirs, in.Fh)
	r.mu.Unlock()
}

func (r *rawFS) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	// Metadata commands are committed by the namespace's Raft group
	// before they return: nothing is pending here.
	return fuse.OK
}

// fill makes sure d holds entries up to index i (or the whole listing),
// reading pages as needed. Offset 0 starts the listing afresh, as
// rewinddir(3) promises.
func (r *rawFS) fill(ctx context.Context, d *dirHandle, i int) error {
	for !d.done && len(d.ents) <= i {
		ents, next, err := r.b.ReadDirPage(ctx, d.ino, d.cookie, readDirPage)
		if err != nil {
			return err
		}
		d.ents = append(d.ents, ents...)
		d.cookie = next
		d.done = next == ""
	}
	return nil
}

func (r *rawFS) dir(fh uint64) *dirHandle {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.dirs[fh]
}

func (r *rawFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return r.readDir(reqCtx(cancel), in, out, false)
}

func (r *rawFS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return r.readDir(reqCtx(cancel), in, out, true)
}

func (r *rawFS) readDir(ctx context.Context, in *fuse.ReadIn, out *fuse.DirEntryList, plus bool) fuse.Status {
	d := r.dir(in.Fh)
	if d == nil {
		return fuse.EBADF
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	off := in.Offset
	if off == 0 || !d.started {
		d.ents, d.cookie, d.done, d.started = nil, "", false, true
		a, err := r.b.Lookup(ctx, d.ino, "..")
		if err != nil {
			return errno(err)
		}
		d.dotdot = a.Ino
	}
	// "." and ".." at offsets 1 and 2; no attributes for them in
	// readdirplus (node id 0: the kernel makes no dentry).
	for off < 2 {
		e := fuse.DirEntry{Name: ".", Ino: uint64(d.ino), Mode: syscall.S_IFDIR, Off: off + 1}
		if off == 1 {
			e.Name, e.Ino = "..", uint64(d.dotdot)
		}
		if plus {
			if out.AddDirLookupEntry(e) == nil {
				return fuse.OK
			}
		} else if !out.AddDirEntry(e) {
			return fuse.OK
		}
		off++
	}
	for {
		i := int(off - 2)
		batch := 1
		if plus {
			batch = lookupParallel * 4
		}
		if err := r.fill(ctx, d, i+batch-1); err != nil {
			return errno(err)
		}
		if i >= len(d.ents) {
			return fuse.OK
		}
		ents := d.ents[i:min(i+batch, len(d.ents))]
		var attrs []namespace.Attr
		var errs []error
		if plus {
			attrs, errs = r.lookupAll(ctx, d.ino, ents)
		}
		for j, ent := range ents {
			e := fuse.DirEntry{Name: ent.Name, Ino: uint64(ent.Ino), Mode: typeBits(ent.Type), Off: off + 1}
			if !plus {
				if !out.AddDirEntry(e) {
					return fuse.OK
				}
				off++
				continue
			}
			if errs[j] != nil {
				// Removed since the page was read: the kernel gets the
				// name without attributes, which it looks up itself.
				if out.AddDirLookupEntry(e) == nil {
					return fuse.OK
				}
				off++
				continue
			}
			eo := out.AddDirLookupEntry(e)
			if eo == nil {
				return fuse.OK
			}
			r.fillEntry(eo, attrs[j])
			off++
		}
	}
}

// lookupAll looks up ents in dir, lookupParallel at a time.
func (r *rawFS) lookupAll(ctx context.Context, dir namespace.Ino, ents []namespace.DirEntry) ([]namespace.Attr, []error) {
	attrs := make([]namespace.Attr, len(ents))
	errs := make([]error, len(ents))
	var wg sync.WaitGroup
	sem := make(chan struct{}, lookupParallel)
	for i := range ents {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			attrs[i], errs[i] = r.b.Lookup(ctx, dir, ents[i].Name)
		}()
	}
	wg.Wait()
	return attrs, errs
}

func (r *rawFS) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	u, err := r.b.StatFS(reqCtx(cancel))
	if err != nil {
		return errno(err)
	}
	*out = statfs(u)
	return fuse.OK
}

// statfs reports a byte quota as the file system's size (usage within
// it), or, without one, usage plus the free bytes the cluster reports.
// Inodes likewise; without an inode quota, a large fixed total so tools
// that check for free inodes go on.
func statfs(u usage) fuse.StatfsOut {
	const bs = 4096
	total := u.QuotaBytes
	if total == 0 {
		total = u.Bytes + u.FreeBytes
	}
	total = max(total, u.Bytes)
	files := u.QuotaInodes
	if files == 0 {
		files = max(u.Inodes, 1<<32)
	}
	files = max(files, u.Inodes)
	return fuse.StatfsOut{
		Blocks:  (total + bs - 1) / bs,
		Bfree:   (total - u.Bytes) / bs,
		Bavail:  (total - u.Bytes) / bs,
		Files:   files,
		Ffree:   files - u.Inodes,
		Bsize:   bs,
		Frsize:  bs,
		NameLen: namespace.NameLenMax,
	}
}

// OnUnmount releases the handles the kernel did not release (a forced
// unmount), so their opens end in the namespace.
func (r *rawFS) OnUnmount() {
	r.mu.Lock()
	var fhs []*fileHandle
	for _, fh := range r.mu.files {
		fhs = append(fhs, fh)
	}
	r.mu.dirs = make(map[uint64]*dirHandle)
	r.mu.Unlock()
	for _, fh := range fhs {
		r.release(fh)
	}
}
