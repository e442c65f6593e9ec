package namespace

import (
	"slices"
	"syscall"
)

// The reads below see the state after some prefix of the applied
// commands. On a Raft group, a linearizable read first waits for a read
// index (raftgroup.Group.ReadIndex) and then calls them.

// Lookup returns the attributes of the entry name in directory parent.
// "." names parent itself and ".." its parent (the root's is the root).
func (ns *Namespace) Lookup(parent Ino, name string) (Attr, error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	s := ns.mu.s
	d, ok := s.inodes[parent]
	switch {
	case !ok:
		return Attr{}, &Error{Op: "lookup", Ino: parent, Name: name, Errno: syscall.ENOENT}
	case d.Type != TypeDir:
		return Attr{}, &Error{Op: "lookup", Ino: parent, Name: name, Errno: syscall.ENOTDIR}
	case name == ".":
		return d.Attr, nil
	case name == "..":
		if d.Nlink == 0 {
			return Attr{}, &Error{Op: "lookup", Ino: parent, Name: name, Errno: syscall.ENOENT}
		}
		return s.inodes[d.parent].Attr, nil
	}
	if errno := checkName(name); errno != 0 {
		return Attr{}, &Error{Op: "lookup", Ino: parent, Name: name, Errno: errno}
	}
	e, ok := s.dirents.Get(dirent{parent: parent, name: name})
	if !ok {
		return Attr{}, &Error{Op: "lookup", Ino: parent, Name: name, Errno: syscall.ENOENT}
	}
	return s.inodes[e.ino].Attr, nil
}

// GetAttr returns an inode's attributes. An unlinked inode that is still
// open has them too (Nlink 0).
func (ns *Namespace) GetAttr(ino Ino) (Attr, error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	n, ok := ns.mu.s.inodes[ino]
	if !ok {
		return Attr{}, &Error{Op: "getattr", Ino: ino, Errno: syscall.ENOENT}
	}
	return n.Attr, nil
}

// ReadDir returns up to limit entries of directory dir whose names sort
// after cookie, in name order ("." and ".." are not listed; the mount adds
// them). Pass "" for the first page, and the returned next for the
// following ones; next is "" when the listing is complete.
//
// Because the cookie is a name, paging is stable under concurrent
// changes: an entry that exists for the whole listing is returned exactly
// once, and one added or removed meanwhile at most once. limit <= 0
// means no limit.
func (ns *Namespace) ReadDir(dir Ino, cookie string, limit int) (ents []DirEntry, next string, err error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	s := ns.mu.s
	d, ok := s.inodes[dir]
	switch {
	case !ok:
		return nil, "", &Error{Op: "readdir", Ino: dir, Errno: syscall.ENOENT}
	case d.Type != TypeDir:
		return nil, "", &Error{Op: "readdir", Ino: dir, Errno: syscall.ENOTDIR}
	}
	more := false
	s.dirents.AscendGreaterOrEqual(dirent{parent: dir, name: cookie}, func(e dirent) bool {
		if e.parent != dir {
			return false
		}
		if e.name == cookie {
			return true // the cookie itself was returned already
		}
		if limit > 0 && len(ents) == limit {
			more = true
			return false
		}
		ents = append(ents, DirEntry{Name: e.name, Ino: e.ino, Type: e.typ})
		return true
	})
	if more {
		next = ents[len(ents)-1].Name
	}
	return ents, next, nil
}

// Readlink returns a symlink's target.
func (ns *Namespace) Readlink(ino Ino) (string, error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	n, ok := ns.mu.s.inodes[ino]
	switch {
	case !ok:
		return "", &Error{Op: "readlink", Ino: ino, Errno: syscall.ENOENT}
	case n.Type != TypeSymlink:
		return "", &Error{Op: "readlink", Ino: ino, Errno: syscall.EINVAL}
	}
	return n.target, nil
}

// GetXattr returns a copy of an extended attribute's value (ENODATA if it
// is not set).
func (ns *Namespace) GetXattr(ino Ino, name string) ([]byte, error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	n, ok := ns.mu.s.inodes[ino]
	if !ok {
		return nil, &Error{Op: "getxattr", Ino: ino, Name: name, Errno: syscall.ENOENT}
	}
	if errno := checkXattrName(name); errno != 0 {
		return nil, &Error{Op: "getxattr", Ino: ino, Name: name, Errno: errno}
	}
	v, ok := n.xattrs[name]
	if !ok {
		return nil, &Error{Op: "getxattr", Ino: ino, Name: name, Errno: syscall.ENODATA}
	}
	return append([]byte{}, v...), nil
}

// ListXattr returns an inode's extended attribute names, sorted.
func (ns *Namespace) ListXattr(ino Ino) ([]string, error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	n, ok := ns.mu.s.inodes[ino]
	if !ok {
		return nil, &Error{Op: "listxattr", Ino: ino, Errno: syscall.ENOENT}
	}
	return sortedKeys(n.xattrs), nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// StatFS returns usage and quota.
func (ns *Namespace) StatFS() StatFS {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	s := ns.mu.s
	return StatFS{
		Inodes: uint64(len(s.inodes)), Bytes: s.bytes,
		QuotaBytes: s.quotaBytes, QuotaInodes: s.quotaInodes,
		Reclaiming: len(s.reclaim),
	}
}

// Reclaims returns a copy of the queued Reclaim entries, oldest first.
// The reclaimer deletes their chunks and then proposes Reclaimed for
// each.
func (ns *Namespace) Reclaims() []Reclaim {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return slices.Clone(ns.mu.s.reclaim)
}
