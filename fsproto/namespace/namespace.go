package namespace

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/google/btree"
)

// inode is the stored form of an inode.
type inode struct {
	Attr
	// parent is a directory's parent (the root's is itself); 0 for other
	// types (a file may have many parents) and for a removed directory.
	parent Ino
	target string // symlink target
	xattrs map[string][]byte
}

func (n *inode) xattrBytes() int {
	s := 0
	for k, v := range n.xattrs {
		s += len(k) + len(v)
	}
	return s
}

// dirent is a directory entry, ordered by (parent, name) in one B-tree so
// a directory's entries are a contiguous, name-ordered range.
type dirent struct {
	parent Ino
	name   string
	ino    Ino
	typ    Type
}

func direntLess(a, b dirent) bool {
	if a.parent != b.parent {
		return a.parent < b.parent
	}
	return a.name < b.name
}

const btreeDegree = 32

// state is the replicated state. It knows nothing of locks; Namespace
// guards it.
type state struct {
	applied     uint64 // last applied Raft index
	nextIno     Ino
	nextReclaim uint64
	quotaBytes  uint64
	quotaInodes uint64
	inodes      map[Ino]*inode
	dirents     *btree.BTreeG[dirent]
	reclaim     []Reclaim // ordered by ID
	// bytes sums the sizes of regular files in inodes (derived, not
	// encoded; Check recomputes it).
	bytes uint64
}

func newState() *state {
	s := &state{
		nextIno:     RootIno + 1,
		nextReclaim: 1,
		inodes:      make(map[Ino]*inode),
		dirents:     btree.NewG(btreeDegree, direntLess),
	}
	s.inodes[RootIno] = &inode{
		Attr:   Attr{Ino: RootIno, Type: TypeDir, Mode: 0o755, Nlink: 2},
		parent: RootIno,
	}
	return s
}

// Namespace is one container's metadata. Apply, Snapshot and Restore (the
// raftgroup.StateMachine) are called by one goroutine, the Raft group's
// Ready loop; the read methods may be called concurrently with them and
// with each other (a read-write lock orders them). A Namespace is
// created with New and must not be copied.
type Namespace struct {
	mu struct {
		sync.RWMutex
		s *state
	}
}

// New returns a namespace holding only the root directory (mode 0755,
// owned by uid 0, gid 0, times 0), with no quota.
func New() *Namespace {
	ns := &Namespace{}
	ns.mu.s = newState()
	return ns
}

// Apply decodes the command committed at Raft index and applies it; see
// ApplyCommand. It implements raftgroup.StateMachine: it returns a
// Result. An index at or below the last applied one is skipped with
// ErrApplied (index 0 is never skipped: it means "not from a log").
func (ns *Namespace) Apply(index uint64, data []byte) any {
	cmd, err := DecodeCommand(data)
	ns.mu.Lock()
	defer ns.mu.Unlock()
	s := ns.mu.s
	if index != 0 && index <= s.applied {
		return Result{Err: fmt.Errorf("%w: index %d, applied %d", ErrApplied, index, s.applied)}
	}
	if index != 0 {
		s.applied = index
	}
	if err != nil {
		// A command that does not decode was still committed: every
		// replica refuses it the same way.
		return Result{Err: err}
	}
	return s.apply(cmd)
}

// ApplyCommand applies cmd, which counts as committed at no Raft index.
// A command POSIX rules refuse changes nothing and returns the errno in
// Result.Err. cmd must be one of this package's command types (a nil or
// foreign Command is a programming error and panics).
func (ns *Namespace) ApplyCommand(cmd Command) Result {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns.mu.s.apply(cmd)
}

// Applied returns the last Raft index Apply applied (or that the restored
// snapshot covered).
func (ns *Namespace) Applied() uint64 {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.mu.s.applied
}

func fail(op string, ino Ino, name string, errno syscall.Errno) Result {
	return Result{Err: &Error{Op: op, Ino: ino, Name: name, Errno: errno}}
}

func (s *state) apply(cmd Command) Result {
	res := s.applyCommand(cmd)
	if invariantsOn {
		if err := s.check(); err != nil {
			panic(fmt.Sprintf("namespace: after %#v (result %v): %v", cmd, res.Err, err))
		}
	}
	return res
}

func (s *state) applyCommand(cmd Command) Result {
	switch c := cmd.(type) {
	case Create:
		return s.create(c)
	case Mkdir:
		return s.mkdir(c)
	case Symlink:
		return s.symlink(c)
	case Link:
		return s.link(c)
	case Unlink:
		return s.unlink(c)
	case Rmdir:
		return s.rmdir(c)
	case Rename:
		return s.rename(c)
	case SetAttr:
		return s.setAttr(c)
	case SetXattr:
		return s.setXattr(c)
	case RemoveXattr:
		return s.removeXattr(c)
	case Open:
		return s.open(c)
	case Close:
		return s.close(c)
	case SetQuota:
		s.quotaBytes, s.quotaInodes = c.Bytes, c.Inodes
		return Result{}
	case Extend:
		return s.extend(c)
	case Reclaimed:
		return s.reclaimed(c)
	case WithCloses:
		return s.withCloses(c)
	}
	panic(fmt.Sprintf("namespace: apply of unknown command %T", cmd))
}

// checkName applies Linux's and this package's rules to an entry name
// given to a command that adds or removes it.
func checkName(name string) syscall.Errno {
	switch {
	case name == "":
		return syscall.ENOENT
	case len(name) > NameLenMax:
		return syscall.ENAMETOOLONG
	case name == "." || name == "..":
		return syscall.EINVAL
	case strings.ContainsAny(name, "/\x00"):
		return syscall.EINVAL
	}
	return 0
}

// dirFor returns the live directory ino, for a command that changes its
// entries.
func (s *state) dirFor(ino Ino) (*inode, syscall.Errno) {
	d, ok := s.inodes[ino]
	switch {
	case !ok:
		return nil, syscall.ENOENT
	case d.Type != TypeDir:
		return nil, syscall.ENOTDIR
	case d.Nlink == 0:
		// Removed but still open: Linux refuses new entries with ENOENT.
		return nil, syscall.ENOENT
	}
	return d, 0
}

// entryFor checks parent and name and returns the directory and the entry,
// if one exists.
func (s *state) entryFor(parent Ino, name string) (*inode, dirent, bool, syscall.Errno) {
	d, errno := s.dirFor(parent)
	if errno != 0 {
		return nil, dirent{}, false, errno
	}
	if errno := checkName(name); errno != 0 {
		return nil, dirent{}, false, errno
	}
	e, ok := s.dirents.Get(dirent{parent: parent, name: name})
	return d, e, ok, 0
}

func (s *state) touchDir(d *inode, now int64) {
	d.Mtime, d.Ctime = now, now
}

// newInode allocates the next inode number in directory d, checking the
// inode quota. As on Linux (inode_init_owner), a new inode in a setgid
// directory takes the directory's group, and a new directory the setgid
// bit too.
func (s *state) newInode(d *inode, typ Type, mode, uid, gid uint32, now int64) (*inode, syscall.Errno) {
	if s.quotaInodes != 0 && uint64(len(s.inodes))+1 > s.quotaInodes {
		return nil, syscall.EDQUOT
	}
	if d.Mode&syscall.S_ISGID != 0 {
		gid = d.GID
		if typ == TypeDir {
			mode |= syscall.S_ISGID
		}
	}
	n := &inode{Attr: Attr{
		Ino: s.nextIno, Type: typ, Mode: mode & ModeMask, UID: uid, GID: gid,
		Atime: now, Mtime: now, Ctime: now,
	}}
	s.nextIno++
	s.inodes[n.Ino] = n
	return n, 0
}

func (s *state) insert(parent Ino, name string, n *inode) {
	s.dirents.ReplaceOrInsert(dirent{parent: parent, name: name, ino: n.Ino, typ: n.Type})
}

func (s *state) create(c Create) Result {
	const op = "create"
	d, e, ok, errno := s.entryFor(c.Parent, c.Name)
	if errno != 0 {
		return fail(op, c.Parent, c.Name, errno)
	}
	if ok {
		if c.Excl {
			return fail(op, c.Parent, c.Name, syscall.EEXIST)
		}
		n := s.inodes[e.ino]
		if n.Type == TypeDir {
			return fail(op, c.Parent, c.Name, syscall.EISDIR)
		}
		if !c.Open || n.Type != TypeFile {
			return Result{Attr: n.Attr}
		}
		if errno := countOpen(n); errno != 0 {
			return fail(op, c.Parent, c.Name, errno)
		}
		return Result{Attr: n.Attr, Opened: true}
	}
	n, errno := s.newInode(d, TypeFile, c.Mode, c.UID, c.GID, c.Now)
	if errno != 0 {
		return fail(op, c.Parent, c.Name, errno)
	}
	n.Nlink = 1
	if c.Open {
		countOpen(n) // a new inode has no opens yet
	}
	s.insert(c.Parent, c.Name, n)
	s.touchDir(d, c.Now)
	return Result{Attr: n.Attr, Parent: d.Attr, Created: true, Opened: c.Open}
}

func (s *state) mkdir(c Mkdir) Result {
	const op = "mkdir"
	d, _, ok, errno := s.entryFor(c.Parent, c.Name)
	if errno != 0 {
		return fail(op, c.Parent, c.Name, errno)
	}
	if ok {
		return fail(op, c.Parent, c.Name, syscall.EEXIST)
	}
	if d.Nlink >= LinkMax {
		return fail(op, c.Parent, c.Name, syscall.EMLINK)
	}
	n, errno := s.newInode(d, TypeDir, c.Mode, c.UID, c.GID, c.Now)
	if errno != 0 {
		return fail(op, c.Parent, c.Name, errno)
	}
	n.Nlink = 2
	n.parent = c.Parent
	d.Nlink++
	s.insert(c.Parent, c.Name, n)
	s.touchDir(d, c.Now)
	return Result{Attr: n.Attr, Parent: d.Attr}
}

func (s *state) symlink(c Symlink) Result {
	const op = "symlink"
	d, _, ok, errno := s.entryFor(c.Parent, c.Name)
	if errno != 0 {
		return fail(op, c.Parent, c.Name, errno)
	}
	switch {
	case c.Target == "":
		return fail(op, c.Parent, c.Name, syscall.ENOENT)
	case len(c.Target) > TargetLenMax:
		return fail(op, c.Parent, c.Name, syscall.ENAMETOOLONG)
	case strings.IndexByte(c.Target, 0) >= 0:
		return fail(op, c.Parent, c.Name, syscall.EINVAL)
	case ok:
		return fail(op, c.Parent, c.Name, syscall.EEXIST)
	}
	n, errno := s.newInode(d, TypeSymlink, 0o777, c.UID, c.GID, c.Now)
	if errno != 0 {
		return fail(op, c.Parent, c.Name, errno)
	}
	n.Nlink = 1
	n.target = c.Target
	n.Size = uint64(len(c.Target))
	s.insert(c.Parent, c.Name, n)
	s.touchDir(d, c.Now)
	return Result{Attr: n.Attr, Parent: d.Attr}
}

func (s *state) link(c Link) Result {
	const op = "link"
	n, ok := s.inodes[c.Ino]
	if !ok {
		return fail(op, c.Ino, "", syscall.ENOENT)
	}
	d, _, exists, errno := s.entryFor(c.Parent, c.Name)
	switch {
	case errno != 0:
		return fail(op, c.Parent, c.Name, errno)
	case exists:
		return fail(op, c.Parent, c.Name, syscall.EEXIST)
	case n.Type == TypeDir:
		return fail(op, c.Ino, "", syscall.EPERM)
	case n.Nlink == 0:
		// linkat of an unlinked open file (not O_TMPFILE) fails so on Linux.
		return fail(op, c.Ino, "", syscall.ENOENT)
	case n.Nlink >= LinkMax:
		return fail(op, c.Ino, "", syscall.EMLINK)
	}
	n.Nlink++
	n.Ctime = c.Now
	s.insert(c.Parent, c.Name, n)
	s.touchDir(d, c.Now)
	return Result{Attr: n.Attr, Parent: d.Attr}
}

func (s *state) unlink(c Unlink) Result {
	const op = "unlink"
	d, e, ok, errno := s.entryFor(c.Parent, c.Name)
	if errno != 0 {
		return fail(op, c.Parent, c.Name, errno)
	}
	if !ok {
		return fail(op, c.Parent, c.Name, syscall.ENOENT)
	}
	n := s.inodes[e.ino]
	if n.Type == TypeDir {
		return fail(op, c.Parent, c.Name, syscall.EISDIR)
	}
	s.dirents.Delete(e)
	s.touchDir(d, c.Now)
	n.Nlink--
	n.Ctime = c.Now
	return Result{Attr: n.Attr, Parent: d.Attr, Reclaim: s.maybeRemove(n)}
}

func (s *state) hasEntries(dir Ino) bool {
	found := false
	s.dirents.AscendGreaterOrEqual(dirent{parent: dir}, func(e dirent) bool {
		found = e.parent == dir
		return false
	})
	return found
}

func (s *state) rmdir(c Rmdir) Result {
	const op = "rmdir"
	d, e, ok, errno := s.entryFor(c.Parent, c.Name)
	switch {
	case errno != 0:
		return fail(op, c.Parent, c.Name, errno)
	case !ok:
		return fail(op, c.Parent, c.Name, syscall.ENOENT)
	case e.typ != TypeDir:
		return fail(op, c.Parent, c.Name, syscall.ENOTDIR)
	case s.hasEntries(e.ino):
		return fail(op, c.Parent, c.Name, syscall.ENOTEMPTY)
	}
	n := s.inodes[e.ino]
	s.dirents.Delete(e)
	s.touchDir(d, c.Now)
	d.Nlink--
	s.dropDir(n, c.Now)
	return Result{Attr: n.Attr, Parent: d.Attr, Reclaim: s.maybeRemove(n)}
}

// dropDir marks an empty directory whose entry is gone as removed.
func (s *state) dropDir(n *inode, now int64) {
	n.Nlink = 0
	n.parent = 0
	n.Ctime = now
}

// maybeRemove removes n if nothing refers to it any more, and queues a
// removed file's data for reclamation.
func (s *state) maybeRemove(n *inode) []Reclaim {
	if n.Nlink != 0 || n.Open != 0 {
		return nil
	}
	delete(s.inodes, n.Ino)
	if n.Type != TypeFile {
		return nil
	}
	s.bytes -= n.Size
	if n.Size == 0 {
		// A removed file's reclaim deletes its chunks up to its size:
		// none here, and an entry would only cost its Reclaimed commit.
		return nil
	}
	return []Reclaim{s.queue(n.Ino, 0, n.Size, true)}
}

func (s *state) queue(ino Ino, from, to uint64, removed bool) Reclaim {
	r := Reclaim{ID: s.nextReclaim, Ino: ino, From: from, To: to, Removed: removed}
	s.nextReclaim++
	s.reclaim = append(s.reclaim, r)
	return r
}

// isAncestor reports whether directory a is d or one of d's ancestors.
func (s *state) isAncestor(a, d Ino) bool {
	for steps := 0; ; steps++ {
		if d == a {
			return true
		}
		if d == RootIno {
			return false
		}
		n := s.inodes[d]
		if n == nil || n.Type != TypeDir || steps > len(s.inodes) {
			panic(fmt.Sprintf("namespace: broken parent chain at %d (from %d, %d steps)", d, a, steps))
		}
		d = n.parent
	}
}

func (s *state) rename(c Rename) Result {
	const op = "rename"
	if c.Flags&^(RenameNoReplace|RenameExchange) != 0 || c.Flags == RenameNoReplace|RenameExchange {
		return fail(op, c.SrcParent, c.SrcName, syscall.EINVAL)
	}
	sp, se, sok, errno := s.entryFor(c.SrcParent, c.SrcName)
	if errno != 0 {
		return fail(op, c.SrcParent, c.SrcName, errno)
	}
	dp, de, dok, errno := s.entryFor(c.DstParent, c.DstName)
	if errno != 0 {
		return fail(op, c.DstParent, c.DstName, errno)
	}
	exchange := c.Flags&RenameExchange != 0
	switch {
	case !sok:
		return fail(op, c.SrcParent, c.SrcName, syscall.ENOENT)
	case exchange && !dok:
		return fail(op, c.DstParent, c.DstName, syscall.ENOENT)
	case c.Flags&RenameNoReplace != 0 && dok:
		return fail(op, c.DstParent, c.DstName, syscall.EEXIST)
	// The checks below follow Linux's order (do_renameat2, vfs_rename).
	case se.typ == TypeDir && s.isAncestor(se.ino, dp.Ino):
		// Moving a directory into its own subtree.
		return fail(op, c.SrcParent, c.SrcName, syscall.EINVAL)
	case dok && de.typ == TypeDir && s.isAncestor(de.ino, sp.Ino):
		// The destination contains the source.
		if exchange {
			return fail(op, c.DstParent, c.DstName, syscall.EINVAL)
		}
		return fail(op, c.DstParent, c.DstName, syscall.ENOTEMPTY)
	}
	src := s.inodes[se.ino]
	if dok && de.ino == se.ino {
		// Two names of one inode (or one name twice): POSIX says do
		// nothing.
		return Result{Attr: src.Attr}
	}
	if exchange {
		return s.exchange(c, sp, dp, se, de)
	}
	if dok {
		switch {
		case se.typ == TypeDir && de.typ != TypeDir:
			return fail(op, c.DstParent, c.DstName, syscall.ENOTDIR)
		case se.typ != TypeDir && de.typ == TypeDir:
			return fail(op, c.DstParent, c.DstName, syscall.EISDIR)
		case de.typ == TypeDir && s.hasEntries(de.ino):
			return fail(op, c.DstParent, c.DstName, syscall.ENOTEMPTY)
		}
	}
	moveDir := se.typ == TypeDir && sp != dp
	if moveDir && !(dok && de.typ == TypeDir) && dp.Nlink >= LinkMax {
		return fail(op, c.DstParent, c.DstName, syscall.EMLINK)
	}
	var res Result
	if dok {
		dst := s.inodes[de.ino]
		s.dirents.Delete(de)
		if dst.Type == TypeDir {
			dp.Nlink--
			s.dropDir(dst, c.Now)
		} else {
			dst.Nlink--
			dst.Ctime = c.Now
		}
		res.Reclaim = s.maybeRemove(dst)
	}
	s.dirents.Delete(se)
	s.insert(dp.Ino, c.DstName, src)
	if moveDir {
		sp.Nlink--
		dp.Nlink++
		src.parent = dp.Ino
	}
	src.Ctime = c.Now
	s.touchDir(sp, c.Now)
	s.touchDir(dp, c.Now)
	res.Attr = src.Attr
	return res
}

func (s *state) exchange(c Rename, sp, dp *inode, se, de dirent) Result {
	src, dst := s.inodes[se.ino], s.inodes[de.ino]
	if sp != dp && (se.typ == TypeDir) != (de.typ == TypeDir) {
		// One directory changes parent: the one it joins gains a link.
		gain := dp
		if de.typ == TypeDir {
			gain = sp
		}
		if gain.Nlink >= LinkMax {
			return fail("rename", c.DstParent, c.DstName, syscall.EMLINK)
		}
	}
	s.insert(sp.Ino, c.SrcName, dst)
	s.insert(dp.Ino, c.DstName, src)
	if sp != dp {
		if src.Type == TypeDir {
			sp.Nlink--
			dp.Nlink++
			src.parent = dp.Ino
		}
		if dst.Type == TypeDir {
			dp.Nlink--
			sp.Nlink++
			dst.parent = sp.Ino
		}
	}
	src.Ctime, dst.Ctime = c.Now, c.Now
	s.touchDir(sp, c.Now)
	s.touchDir(dp, c.Now)
	return Result{Attr: src.Attr}
}

func (s *state) setAttr(c SetAttr) Result {
	const op = "setattr"
	n, ok := s.inodes[c.Ino]
	switch {
	case !ok:
		return fail(op, c.Ino, "", syscall.ENOENT)
	case c.Mask&^setAttrMaskAll != 0,
		c.Mask&(SetAtime|SetAtimeNow) == SetAtime|SetAtimeNow,
		c.Mask&(SetMtime|SetMtimeNow) == SetMtime|SetMtimeNow,
		c.Mask&SetMode != 0 && c.Mode&^ModeMask != 0:
		return fail(op, c.Ino, "", syscall.EINVAL)
	}
	if c.Mask&SetSize != 0 {
		switch {
		case n.Type == TypeDir:
			return fail(op, c.Ino, "", syscall.EISDIR)
		case n.Type != TypeFile:
			return fail(op, c.Ino, "", syscall.EINVAL)
		case c.Size > FileSizeMax:
			return fail(op, c.Ino, "", syscall.EFBIG)
		case c.Size > n.Size && s.quotaBytes != 0 && s.bytes+(c.Size-n.Size) > s.quotaBytes:
			return fail(op, c.Ino, "", syscall.EDQUOT)
		}
	}
	var res Result
	if c.Mask&SetMode != 0 {
		n.Mode = c.Mode
	}
	if c.Mask&(SetUID|SetGID) != 0 {
		if c.Mask&SetUID != 0 {
			n.UID = c.UID
		}
		if c.Mask&SetGID != 0 {
			n.GID = c.GID
		}
		if n.Type != TypeDir {
			n.Mode &^= syscall.S_ISUID
			if n.Mode&syscall.S_IXGRP != 0 {
				n.Mode &^= syscall.S_ISGID
			}
		}
	}
	if c.Mask&SetSize != 0 {
		if c.Size < n.Size {
			res.Reclaim = []Reclaim{s.queue(n.Ino, c.Size, n.Size, false)}
		}
		s.bytes = s.bytes - n.Size + c.Size
		n.Size = c.Size
		n.Mtime = c.Now
	}
	switch {
	case c.Mask&SetAtime != 0:
		n.Atime = c.Atime
	case c.Mask&SetAtimeNow != 0:
		n.Atime = c.Now
	}
	switch {
	case c.Mask&SetMtime != 0:
		n.Mtime = c.Mtime
	case c.Mask&SetMtimeNow != 0:
		n.Mtime = c.Now
	}
	n.Ctime = c.Now
	res.Attr = n.Attr
	return res
}

func (s *state) extend(c Extend) Result {
	const op = "extend"
	n, ok := s.inodes[c.Ino]
	switch {
	case !ok:
		return fail(op, c.Ino, "", syscall.ENOENT)
	case n.Type == TypeDir:
		return fail(op, c.Ino, "", syscall.EISDIR)
	case n.Type != TypeFile:
		return fail(op, c.Ino, "", syscall.EINVAL)
	case c.Size > FileSizeMax:
		return fail(op, c.Ino, "", syscall.EFBIG)
	case c.Size > n.Size && s.quotaBytes != 0 && s.bytes+(c.Size-n.Size) > s.quotaBytes:
		return fail(op, c.Ino, "", syscall.EDQUOT)
	}
	if c.Size > n.Size {
		s.bytes += c.Size - n.Size
		n.Size = c.Size
	}
	n.Mtime, n.Ctime = c.Now, c.Now
	return Result{Attr: n.Attr}
}

// checkXattrName applies Linux's rule: names are 1..255 bytes, else
// ERANGE. A NUL would end a C string early, so it is refused too.
func checkXattrName(name string) syscall.Errno {
	if name == "" || len(name) > XattrNameLenMax {
		return syscall.ERANGE
	}
	if strings.IndexByte(name, 0) >= 0 {
		return syscall.EINVAL
	}
	return 0
}

// userXattrRefused applies Linux's rule (xattr_permission) that "user."
// attributes exist only on regular files and directories.
func userXattrRefused(n *inode, name string) bool {
	return strings.HasPrefix(name, "user.") && n.Type != TypeFile && n.Type != TypeDir
}

func (s *state) setXattr(c SetXattr) Result {
	const op = "setxattr"
	n, ok := s.inodes[c.Ino]
	if !ok {
		return fail(op, c.Ino, c.Name, syscall.ENOENT)
	}
	if c.Flags&^(XattrCreate|XattrReplace) != 0 {
		return fail(op, c.Ino, c.Name, syscall.EINVAL)
	}
	if errno := checkXattrName(c.Name); errno != 0 {
		return fail(op, c.Ino, c.Name, errno)
	}
	if len(c.Value) > XattrValueLenMax {
		return fail(op, c.Ino, c.Name, syscall.E2BIG)
	}
	if userXattrRefused(n, c.Name) {
		return fail(op, c.Ino, c.Name, syscall.EPERM)
	}
	old, exists := n.xattrs[c.Name]
	switch {
	case c.Flags&XattrCreate != 0 && exists:
		return fail(op, c.Ino, c.Name, syscall.EEXIST)
	case c.Flags&XattrReplace != 0 && !exists:
		return fail(op, c.Ino, c.Name, syscall.ENODATA)
	}
	if exists && bytes.Equal(old, c.Value) {
		// Setting the same value changes nothing, not even ctime, as on
		// ext4 (ext4_xattr_value_same).
		return Result{Attr: n.Attr}
	}
	used := n.xattrBytes()
	if exists {
		used -= len(c.Name) + len(old)
	}
	if used+len(c.Name)+len(c.Value) > XattrBytesMax {
		return fail(op, c.Ino, c.Name, syscall.ENOSPC)
	}
	if n.xattrs == nil {
		n.xattrs = make(map[string][]byte)
	}
	// NB: the command's bytes are only valid during Apply; keep a copy.
	n.xattrs[c.Name] = append([]byte{}, c.Value...)
	n.Ctime = c.Now
	return Result{Attr: n.Attr}
}

func (s *state) removeXattr(c RemoveXattr) Result {
	const op = "removexattr"
	n, ok := s.inodes[c.Ino]
	if !ok {
		return fail(op, c.Ino, c.Name, syscall.ENOENT)
	}
	if errno := checkXattrName(c.Name); errno != 0 {
		return fail(op, c.Ino, c.Name, errno)
	}
	if userXattrRefused(n, c.Name) {
		return fail(op, c.Ino, c.Name, syscall.EPERM)
	}
	if _, ok := n.xattrs[c.Name]; !ok {
		return fail(op, c.Ino, c.Name, syscall.ENODATA)
	}
	delete(n.xattrs, c.Name)
	if len(n.xattrs) == 0 {
		n.xattrs = nil
	}
	n.Ctime = c.Now
	return Result{Attr: n.Attr}
}

func (s *state) open(c Open) Result {
	n, ok := s.inodes[c.Ino]
	if !ok {
		return fail("open", c.Ino, "", syscall.ENOENT)
	}
	if errno := countOpen(n); errno != 0 {
		return fail("open", c.Ino, "", errno)
	}
	return Result{Attr: n.Attr}
}

// countOpen counts one more open of n (Open, Create with Open), or
// returns ENFILE at OpenMax.
func countOpen(n *inode) syscall.Errno {
	if n.Open >= OpenMax {
		return syscall.ENFILE
	}
	n.Open++
	return 0
}

func (s *state) close(c Close) Result {
	n, ok := s.inodes[c.Ino]
	switch {
	case !ok:
		return fail("close", c.Ino, "", syscall.ENOENT)
	case n.Open == 0:
		return fail("close", c.Ino, "", syscall.EBADF)
	}
	n.Open--
	return Result{Attr: n.Attr, Reclaim: s.maybeRemove(n)}
}

// withCloses applies a batch of closes and then its command. A close
// that fails changed nothing (close checks before it counts), so it is
// skipped: the client that queued it cannot act on the failure anyway.
func (s *state) withCloses(c WithCloses) Result {
	if err := c.check(); err != nil {
		return Result{Err: err}
	}
	var queued []Reclaim
	for _, ino := range c.Closes {
		if r := s.close(Close{Ino: ino}); r.Err == nil {
			queued = append(queued, r.Reclaim...)
		}
	}
	var res Result
	if c.Cmd != nil {
		res = s.applyCommand(c.Cmd)
	}
	room := ResultReclaimsMax - len(res.Reclaim)
	res.Reclaim = append(res.Reclaim, queued[:min(len(queued), room)]...)
	return res
}

func (s *state) reclaimed(c Reclaimed) Result {
	i, ok := slices.BinarySearchFunc(s.reclaim, c.ID, func(r Reclaim, id uint64) int {
		return cmp.Compare(r.ID, id)
	})
	if !ok {
		return fail(fmt.Sprintf("reclaimed %d", c.ID), 0, "", syscall.ENOENT)
	}
	s.reclaim = slices.Delete(s.reclaim, i, i+1)
	return Result{}
}
