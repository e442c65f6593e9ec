package namespace

import (
	"errors"
	"fmt"
	"strings"
)

// Check walks the whole state and returns an error describing the first
// broken invariant (see the package doc), or nil. Apply keeps them, so an
// error is a bug; Restore runs the same walk on every snapshot it
// decodes. It costs O(inodes + entries).
func (ns *Namespace) Check() error {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.mu.s.check()
}

func (s *state) check() error {
	root, ok := s.inodes[RootIno]
	switch {
	case !ok:
		return errors.New("no root inode")
	case root.Type != TypeDir || root.parent != RootIno || root.Nlink < 2:
		return fmt.Errorf("root is %v with parent %d and nlink %d, want a dir with parent %d and nlink >= 2", root.Type, root.parent, root.Nlink, RootIno)
	case s.nextIno <= RootIno:
		return fmt.Errorf("next ino %d, want > %d", s.nextIno, RootIno)
	case s.nextReclaim == 0:
		return errors.New("next reclaim id 0, want >= 1")
	}
	var bytes uint64
	for ino, n := range s.inodes {
		if err := s.checkInode(ino, n); err != nil {
			return fmt.Errorf("inode %d: %w", ino, err)
		}
		if n.Type == TypeFile {
			bytes += n.Size
		}
	}
	if bytes != s.bytes {
		return fmt.Errorf("file bytes %d, but the files' sizes sum to %d", s.bytes, bytes)
	}
	refs := make(map[Ino]uint32, len(s.inodes))
	subdirs := make(map[Ino]uint32)
	var err error
	s.dirents.Ascend(func(e dirent) bool {
		err = s.checkDirent(e)
		if err != nil {
			err = fmt.Errorf("entry %d/%q: %w", e.parent, e.name, err)
			return false
		}
		refs[e.ino]++
		if e.typ == TypeDir {
			subdirs[e.parent]++
		}
		return true
	})
	if err != nil {
		return err
	}
	for ino, n := range s.inodes {
		switch {
		case n.Type != TypeDir:
			if n.Nlink != refs[ino] {
				return fmt.Errorf("inode %d: nlink %d, but %d entries name it", ino, n.Nlink, refs[ino])
			}
		case n.Nlink == 0:
			if refs[ino] != 0 || s.hasEntries(ino) {
				return fmt.Errorf("removed dir %d: %d entries name it, has entries %v", ino, refs[ino], s.hasEntries(ino))
			}
		default:
			want := uint32(1)
			if ino == RootIno {
				want = 0
			}
			if refs[ino] != want {
				return fmt.Errorf("dir %d: %d entries name it, want %d", ino, refs[ino], want)
			}
			if n.Nlink != 2+subdirs[ino] {
				return fmt.Errorf("dir %d: nlink %d, but it has %d subdirectories (want 2 + that)", ino, n.Nlink, subdirs[ino])
			}
			// The parent chain must reach the root: no cycles, every
			// live directory (hence every linked inode) reachable.
			d := ino
			for steps := 0; d != RootIno; steps++ {
				if steps > len(s.inodes) {
					return fmt.Errorf("dir %d: parent chain does not reach the root (cycle)", ino)
				}
				p := s.inodes[d]
				if p == nil || p.Type != TypeDir || p.Nlink == 0 {
					return fmt.Errorf("dir %d: ancestor %d is not a live directory", ino, d)
				}
				d = p.parent
			}
		}
	}
	var prevID uint64
	for i, r := range s.reclaim {
		switch {
		case r.ID == 0 || r.ID >= s.nextReclaim:
			return fmt.Errorf("reclaim id %d not in 1..%d", r.ID, s.nextReclaim-1)
		case i > 0 && r.ID <= prevID:
			return fmt.Errorf("reclaim id %d follows %d (must increase)", r.ID, prevID)
		case r.From > r.To:
			return fmt.Errorf("reclaim %d: range [%d, %d) is reversed", r.ID, r.From, r.To)
		case r.Ino <= RootIno || r.Ino >= s.nextIno:
			return fmt.Errorf("reclaim %d: ino %d was never a file", r.ID, r.Ino)
		case r.Removed && s.inodes[r.Ino] != nil:
			return fmt.Errorf("reclaim %d: removed ino %d is live", r.ID, r.Ino)
		}
		prevID = r.ID
	}
	return nil
}

func (s *state) checkInode(ino Ino, n *inode) error {
	switch {
	case n.Ino != ino:
		return fmt.Errorf("stored under %d", n.Ino)
	case ino == 0 || ino >= s.nextIno:
		return fmt.Errorf("not in 1..%d", s.nextIno-1)
	case n.Type != TypeFile && n.Type != TypeDir && n.Type != TypeSymlink:
		return fmt.Errorf("type %d unknown", n.Type)
	case n.Mode&^ModeMask != 0:
		return fmt.Errorf("mode %#o has bits outside %#o", n.Mode, ModeMask)
	case n.Nlink > LinkMax:
		return fmt.Errorf("nlink %d over %d", n.Nlink, LinkMax)
	case n.Open > OpenMax:
		return fmt.Errorf("open count %d over %d", n.Open, OpenMax)
	case n.Nlink == 0 && n.Open == 0:
		return errors.New("unlinked and not open (should have been removed)")
	case n.Type == TypeSymlink && (n.target == "" || len(n.target) > TargetLenMax || strings.IndexByte(n.target, 0) >= 0):
		return fmt.Errorf("symlink target of %d bytes invalid", len(n.target))
	case n.Type == TypeSymlink && n.Size != uint64(len(n.target)):
		return fmt.Errorf("symlink size %d, target %d bytes", n.Size, len(n.target))
	case n.Type != TypeSymlink && n.target != "":
		return errors.New("target on a non-symlink")
	case n.Type == TypeDir && n.Size != 0:
		return fmt.Errorf("dir size %d, want 0", n.Size)
	case n.Type == TypeFile && n.Size > FileSizeMax:
		return fmt.Errorf("size %d over %d", n.Size, FileSizeMax)
	case n.Type != TypeDir && n.parent != 0:
		return fmt.Errorf("parent %d on a non-directory", n.parent)
	case n.Type == TypeDir && n.Nlink == 0 && n.parent != 0:
		return fmt.Errorf("removed dir has parent %d", n.parent)
	case n.Type == TypeDir && n.Nlink != 0 && s.inodes[n.parent] == nil:
		return fmt.Errorf("parent %d does not exist", n.parent)
	}
	if n.xattrs != nil && len(n.xattrs) == 0 {
		return errors.New("empty xattr map (want nil)")
	}
	total := 0
	for k, v := range n.xattrs {
		if errno := checkXattrName(k); errno != 0 {
			return fmt.Errorf("xattr name %q: %v", k, errno)
		}
		if len(v) > XattrValueLenMax {
			return fmt.Errorf("xattr %q of %d bytes over %d", k, len(v), XattrValueLenMax)
		}
		total += len(k) + len(v)
	}
	if total > XattrBytesMax {
		return fmt.Errorf("xattrs of %d bytes over %d", total, XattrBytesMax)
	}
	return nil
}

func (s *state) checkDirent(e dirent) error {
	if errno := checkName(e.name); errno != 0 {
		return fmt.Errorf("name invalid: %v", errno)
	}
	p, c := s.inodes[e.parent], s.inodes[e.ino]
	switch {
	case p == nil || p.Type != TypeDir || p.Nlink == 0:
		return errors.New("parent is not a live directory")
	case c == nil || c.Nlink == 0:
		return fmt.Errorf("names ino %d, which is not a linked inode", e.ino)
	case c.Type != e.typ:
		return fmt.Errorf("entry type %v, inode type %v", e.typ, c.Type)
	case c.Type == TypeDir && c.parent != e.parent:
		return fmt.Errorf("dir %d has parent %d", e.ino, c.parent)
	}
	return nil
}
