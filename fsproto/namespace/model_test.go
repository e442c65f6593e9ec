package namespace

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
)

var (
	modelSeed  = flag.Uint64("namespace.seed", 0, "run the model test with this seed only")
	modelSteps = flag.Int("namespace.steps", 0, "steps per model run (default 1500, 300 with -short)")
)

// The model is a plain pointer tree, path-free and written without
// looking at the namespace's data structures: directories hold a map of
// children, hard links are shared pointers, link counts are counted by
// walking. It states each rule once, in the order Linux checks them.
type mnode struct {
	typ                 Type
	ino                 Ino // the namespace's number, learned when created
	kids                map[string]*mnode
	parent              *mnode
	removed             bool // an rmdir'd directory
	mode, uid, gid      uint32
	size                uint64
	target              string
	xattrs              map[string]string
	open                uint32
	atime, mtime, ctime int64
}

type model struct {
	root                    *mnode
	live                    map[Ino]*mnode // linked or open
	quotaBytes, quotaInodes uint64
	reclaim                 []Reclaim
	nextReclaim             uint64
}

func newModel() *model {
	root := &mnode{typ: TypeDir, ino: RootIno, kids: map[string]*mnode{}, mode: 0o755}
	root.parent = root
	return &model{root: root, live: map[Ino]*mnode{RootIno: root}, nextReclaim: 1}
}

// refs counts the entries naming n.
func (m *model) refs(n *mnode) uint32 {
	var c uint32
	var walk func(d *mnode)
	walk = func(d *mnode) {
		for _, k := range d.kids {
			if k == n {
				c++
			}
			if k.typ == TypeDir {
				walk(k)
			}
		}
	}
	walk(m.root)
	return c
}

func (m *model) nlink(n *mnode) uint32 {
	if n.typ != TypeDir {
		return m.refs(n)
	}
	if n.removed {
		return 0
	}
	c := uint32(2)
	for _, k := range n.kids {
		if k.typ == TypeDir {
			c++
		}
	}
	return c
}

func (m *model) bytes() uint64 {
	var b uint64
	for _, n := range m.live {
		if n.typ == TypeFile {
			b += n.size
		}
	}
	return b
}

func badName(name string) syscall.Errno {
	if name == "" {
		return syscall.ENOENT
	}
	if len(name) > 255 {
		return syscall.ENAMETOOLONG
	}
	if name == "." || name == ".." || strings.Contains(name, "/") || strings.Contains(name, "\x00") {
		return syscall.EINVAL
	}
	return 0
}

// dir returns the live directory ino and checks name.
func (m *model) dir(ino Ino, name string) (*mnode, syscall.Errno) {
	d := m.live[ino]
	if d == nil {
		return nil, syscall.ENOENT
	}
	if d.typ != TypeDir {
		return nil, syscall.ENOTDIR
	}
	if d.removed {
		return nil, syscall.ENOENT
	}
	return d, badName(name)
}

func (m *model) fresh(d *mnode, typ Type, mode, uid, gid uint32, now int64) (*mnode, syscall.Errno) {
	if m.quotaInodes > 0 && uint64(len(m.live)) >= m.quotaInodes {
		return nil, syscall.EDQUOT
	}
	if d.mode&0o2000 != 0 { // setgid directory: BSD group semantics
		gid = d.gid
		if typ == TypeDir {
			mode |= 0o2000
		}
	}
	n := &mnode{typ: typ, mode: mode & 0o7777, uid: uid, gid: gid, atime: now, mtime: now, ctime: now}
	if typ == TypeDir {
		n.kids = map[string]*mnode{}
	}
	return n, 0
}

func stamp(d *mnode, now int64) { d.mtime, d.ctime = now, now }

// gone frees n if nothing names it and nothing holds it open.
func (m *model) gone(n *mnode) {
	if n.open > 0 || m.refs(n) > 0 || (n.typ == TypeDir && !n.removed) {
		return
	}
	delete(m.live, n.ino)
	if n.typ == TypeFile && n.size > 0 { // an empty file has no chunks to reclaim
		m.reclaim = append(m.reclaim, Reclaim{ID: m.nextReclaim, Ino: n.ino, To: n.size, Removed: true})
		m.nextReclaim++
	}
}

func (m *model) under(top, d *mnode) bool {
	for steps := 0; ; steps++ {
		if d == top {
			return true
		}
		if d == m.root {
			return false
		}
		if d == nil || steps > len(m.live) {
			panic("model: parent chain does not reach the root")
		}
		d = d.parent
	}
}

func (m *model) isEmpty(d *mnode) bool { return len(d.kids) == 0 }

// apply returns the errno and the node whose attributes the namespace
// reports, plus, when the command made a node, that node (to learn its
// ino).
func (m *model) apply(cmd Command) (errno syscall.Errno, made *mnode) {
	switch c := cmd.(type) {
	case Create:
		d, e := m.dir(c.Parent, c.Name)
		if e != 0 {
			return e, nil
		}
		if k := d.kids[c.Name]; k != nil {
			if c.Excl {
				return syscall.EEXIST, nil
			}
			if k.typ == TypeDir {
				return syscall.EISDIR, nil
			}
			return 0, nil
		}
		n, e := m.fresh(d, TypeFile, c.Mode, c.UID, c.GID, c.Now)
		if e != 0 {
			return e, nil
		}
		d.kids[c.Name] = n
		stamp(d, c.Now)
		return 0, n
	case Mkdir:
		d, e := m.dir(c.Parent, c.Name)
		if e != 0 {
			return e, nil
		}
		if d.kids[c.Name] != nil {
			return syscall.EEXIST, nil
		}
		n, e := m.fresh(d, TypeDir, c.Mode, c.UID, c.GID, c.Now)
		if e != 0 {
			return e, nil
		}
		n.parent = d
		d.kids[c.Name] = n
		stamp(d, c.Now)
		return 0, n
	case Symlink:
		d, e := m.dir(c.Parent, c.Name)
		if e != 0 {
			return e, nil
		}
		switch {
		case c.Target == "":
			return syscall.ENOENT, nil
		case len(c.Target) > 4095:
			return syscall.ENAMETOOLONG, nil
		case strings.Contains(c.Target, "\x00"):
			return syscall.EINVAL, nil
		case d.kids[c.Name] != nil:
			return syscall.EEXIST, nil
		}
		n, e := m.fresh(d, TypeSymlink, 0o777, c.UID, c.GID, c.Now)
		if e != 0 {
			return e, nil
		}
		n.target, n.size = c.Target, uint64(len(c.Target))
		d.kids[c.Name] = n
		stamp(d, c.Now)
		return 0, n
	case Link:
		n := m.live[c.Ino]
		if n == nil {
			return syscall.ENOENT, nil
		}
		d, e := m.dir(c.Parent, c.Name)
		switch {
		case e != 0:
			return e, nil
		case d.kids[c.Name] != nil:
			return syscall.EEXIST, nil
		case n.typ == TypeDir:
			return syscall.EPERM, nil
		case m.refs(n) == 0:
			return syscall.ENOENT, nil
		}
		d.kids[c.Name] = n
		n.ctime = c.Now
		stamp(d, c.Now)
		return 0, nil
	case Unlink:
		d, e := m.dir(c.Parent, c.Name)
		if e != 0 {
			return e, nil
		}
		n := d.kids[c.Name]
		if n == nil {
			return syscall.ENOENT, nil
		}
		if n.typ == TypeDir {
			return syscall.EISDIR, nil
		}
		delete(d.kids, c.Name)
		n.ctime = c.Now
		stamp(d, c.Now)
		m.gone(n)
		return 0, nil
	case Rmdir:
		d, e := m.dir(c.Parent, c.Name)
		if e != 0 {
			return e, nil
		}
		n := d.kids[c.Name]
		switch {
		case n == nil:
			return syscall.ENOENT, nil
		case n.typ != TypeDir:
			return syscall.ENOTDIR, nil
		case !m.isEmpty(n):
			return syscall.ENOTEMPTY, nil
		}
		delete(d.kids, c.Name)
		n.removed, n.parent, n.ctime = true, nil, c.Now
		stamp(d, c.Now)
		m.gone(n)
		return 0, nil
	case Rename:
		return m.rename(c), nil
	case SetAttr:
		return m.setAttr(c), nil
	case Extend:
		n := m.live[c.Ino]
		switch {
		case n == nil:
			return syscall.ENOENT, nil
		case n.typ == TypeDir:
			return syscall.EISDIR, nil
		case n.typ == TypeSymlink:
			return syscall.EINVAL, nil
		case c.Size > FileSizeMax:
			return syscall.EFBIG, nil
		case c.Size > n.size && m.quotaBytes > 0 && m.bytes()-n.size+c.Size > m.quotaBytes:
			return syscall.EDQUOT, nil
		}
		n.size = max(n.size, c.Size)
		n.mtime, n.ctime = c.Now, c.Now
		return 0, nil
	case SetXattr:
		n := m.live[c.Ino]
		if n == nil {
			return syscall.ENOENT, nil
		}
		if c.Flags > 3 {
			return syscall.EINVAL, nil
		}
		if c.Name == "" || len(c.Name) > 255 {
			return syscall.ERANGE, nil
		}
		if n.typ == TypeSymlink && strings.HasPrefix(c.Name, "user.") {
			return syscall.EPERM, nil
		}
		_, ok := n.xattrs[c.Name]
		if c.Flags&XattrCreate != 0 && ok {
			return syscall.EEXIST, nil
		}
		if c.Flags&XattrReplace != 0 && !ok {
			return syscall.ENODATA, nil
		}
		if v, ok := n.xattrs[c.Name]; ok && v == string(c.Value) {
			return 0, nil // the same value: no change, ctime kept
		}
		if n.xattrs == nil {
			n.xattrs = map[string]string{}
		}
		n.xattrs[c.Name] = string(c.Value)
		n.ctime = c.Now
		return 0, nil
	case RemoveXattr:
		n := m.live[c.Ino]
		if n == nil {
			return syscall.ENOENT, nil
		}
		if c.Name == "" || len(c.Name) > 255 {
			return syscall.ERANGE, nil
		}
		if n.typ == TypeSymlink && strings.HasPrefix(c.Name, "user.") {
			return syscall.EPERM, nil
		}
		if _, ok := n.xattrs[c.Name]; !ok {
			return syscall.ENODATA, nil
		}
		delete(n.xattrs, c.Name)
		n.ctime = c.Now
		return 0, nil
	case Open:
		n := m.live[c.Ino]
		if n == nil {
			return syscall.ENOENT, nil
		}
		n.open++
		return 0, nil
	case Close:
		n := m.live[c.Ino]
		if n == nil {
			return syscall.ENOENT, nil
		}
		if n.open == 0 {
			return syscall.EBADF, nil
		}
		n.open--
		m.gone(n)
		return 0, nil
	case SetQuota:
		m.quotaBytes, m.quotaInodes = c.Bytes, c.Inodes
		return 0, nil
	case WithCloses:
		// Failed closes are skipped; the command's errno is the batch's.
		for _, ino := range c.Closes {
			m.apply(Close{Ino: ino})
		}
		if c.Cmd == nil {
			return 0, nil
		}
		return m.apply(c.Cmd)
	case Reclaimed:
		for i, r := range m.reclaim {
			if r.ID == c.ID {
				m.reclaim = slices.Delete(m.reclaim, i, i+1)
				return 0, nil
			}
		}
		return syscall.ENOENT, nil
	}
	panic(fmt.Sprintf("model: %T", cmd))
}

func (m *model) rename(c Rename) syscall.Errno {
	if c.Flags > 2 {
		return syscall.EINVAL
	}
	sp, e := m.dir(c.SrcParent, c.SrcName)
	if e != 0 {
		return e
	}
	dp, e := m.dir(c.DstParent, c.DstName)
	if e != 0 {
		return e
	}
	src, dst := sp.kids[c.SrcName], dp.kids[c.DstName]
	switch {
	case src == nil:
		return syscall.ENOENT
	case c.Flags == RenameExchange && dst == nil:
		return syscall.ENOENT
	case c.Flags == RenameNoReplace && dst != nil:
		return syscall.EEXIST
	case src.typ == TypeDir && m.under(src, dp):
		return syscall.EINVAL
	case dst != nil && dst.typ == TypeDir && m.under(dst, sp):
		if c.Flags == RenameExchange {
			return syscall.EINVAL
		}
		return syscall.ENOTEMPTY
	case src == dst:
		return 0
	}
	if c.Flags == RenameExchange {
		sp.kids[c.SrcName], dp.kids[c.DstName] = dst, src
		if src.typ == TypeDir {
			src.parent = dp
		}
		if dst.typ == TypeDir {
			dst.parent = sp
		}
		src.ctime, dst.ctime = c.Now, c.Now
		stamp(sp, c.Now)
		stamp(dp, c.Now)
		return 0
	}
	if dst != nil {
		switch {
		case src.typ == TypeDir && dst.typ != TypeDir:
			return syscall.ENOTDIR
		case src.typ != TypeDir && dst.typ == TypeDir:
			return syscall.EISDIR
		case dst.typ == TypeDir && !m.isEmpty(dst):
			return syscall.ENOTEMPTY
		}
	}
	delete(sp.kids, c.SrcName)
	dp.kids[c.DstName] = src
	if src.typ == TypeDir {
		src.parent = dp
	}
	src.ctime = c.Now
	stamp(sp, c.Now)
	stamp(dp, c.Now)
	if dst != nil {
		if dst.typ == TypeDir {
			dst.removed, dst.parent = true, nil
		}
		dst.ctime = c.Now
		m.gone(dst)
	}
	return 0
}

func (m *model) setAttr(c SetAttr) syscall.Errno {
	n := m.live[c.Ino]
	if n == nil {
		return syscall.ENOENT
	}
	if c.Mask >= 256 || (c.Mask&SetAtime != 0 && c.Mask&SetAtimeNow != 0) ||
		(c.Mask&SetMtime != 0 && c.Mask&SetMtimeNow != 0) || (c.Mask&SetMode != 0 && c.Mode > 0o7777) {
		return syscall.EINVAL
	}
	if c.Mask&SetSize != 0 {
		switch {
		case n.typ == TypeDir:
			return syscall.EISDIR
		case n.typ == TypeSymlink:
			return syscall.EINVAL
		case c.Size > FileSizeMax:
			return syscall.EFBIG
		case c.Size > n.size && m.quotaBytes > 0 && m.bytes()-n.size+c.Size > m.quotaBytes:
			return syscall.EDQUOT
		}
	}
	if c.Mask&SetMode != 0 {
		n.mode = c.Mode
	}
	if c.Mask&SetUID != 0 {
		n.uid = c.UID
	}
	if c.Mask&SetGID != 0 {
		n.gid = c.GID
	}
	if c.Mask&(SetUID|SetGID) != 0 && n.typ != TypeDir {
		n.mode &^= 0o4000
		if n.mode&0o10 != 0 {
			n.mode &^= 0o2000
		}
	}
	if c.Mask&SetSize != 0 {
		if c.Size < n.size {
			m.reclaim = append(m.reclaim, Reclaim{ID: m.nextReclaim, Ino: n.ino, From: c.Size, To: n.size})
			m.nextReclaim++
		}
		n.size = c.Size
		n.mtime = c.Now
	}
	if c.Mask&SetAtime != 0 {
		n.atime = c.Atime
	}
	if c.Mask&SetAtimeNow != 0 {
		n.atime = c.Now
	}
	if c.Mask&SetMtime != 0 {
		n.mtime = c.Mtime
	}
	if c.Mask&SetMtimeNow != 0 {
		n.mtime = c.Now
	}
	n.ctime = c.Now
	return 0
}

// gen makes random commands that hit both success and every error path.
type gen struct {
	r   *rand.Rand
	m   *model
	now int64
}

var genNames = []string{"a", "b", "c", "d", "e"}

func (g *gen) name() string {
	if g.r.IntN(25) == 0 {
		return []string{"", ".", "..", "x/y", "n\x00", strings.Repeat("L", 256)}[g.r.IntN(6)]
	}
	return genNames[g.r.IntN(len(genNames))]
}

// pick returns a random live node's ino, preferring directories when
// dir is set, and sometimes one that does not exist.
func (g *gen) pick(dir bool) Ino {
	if g.r.IntN(30) == 0 {
		return Ino(1000000 + g.r.IntN(3))
	}
	var all, inos []Ino
	for ino := range g.m.live {
		all = append(all, ino)
	}
	slices.Sort(all) // map order is random; only the seed may decide
	for _, ino := range all {
		if !dir || g.m.live[ino].typ == TypeDir || g.r.IntN(8) == 0 {
			inos = append(inos, ino)
		}
	}
	return inos[g.r.IntN(len(inos))]
}

// entry returns an existing entry's parent and name half of the time (so
// renames, unlinks and exchanges succeed often enough), else a random
// parent and name.
func (g *gen) entry() (Ino, string) {
	if g.r.IntN(2) == 0 {
		type ent struct {
			parent Ino
			name   string
		}
		var ents []ent
		var walk func(d *mnode)
		walk = func(d *mnode) {
			for _, name := range sortedKeys(d.kids) {
				ents = append(ents, ent{d.ino, name})
				if k := d.kids[name]; k.typ == TypeDir {
					walk(k)
				}
			}
		}
		walk(g.m.root)
		if len(ents) > 0 {
			e := ents[g.r.IntN(len(ents))]
			return e.parent, e.name
		}
	}
	return g.pick(true), g.name()
}

func (g *gen) command() Command {
	if g.r.IntN(10) != 0 {
		return g.plain()
	}
	// A batch of closes (mostly of open inodes) with another command,
	// or alone when that would be a Close.
	var c WithCloses
	for range 1 + g.r.IntN(3) {
		c.Closes = append(c.Closes, g.close().Ino)
	}
	if cmd := g.plain(); cmd.kind() != kindClose {
		c.Cmd = cmd
	}
	return c
}

// close returns a Close, of an open inode most of the time.
func (g *gen) close() Close {
	var open []Ino
	for ino, n := range g.m.live {
		if n.open > 0 {
			open = append(open, ino)
		}
	}
	slices.Sort(open)
	if len(open) > 0 && g.r.IntN(5) > 0 {
		return Close{Ino: open[g.r.IntN(len(open))]}
	}
	return Close{Ino: g.pick(false)}
}

// plain returns a command other than WithCloses.
func (g *gen) plain() Command {
	g.now += int64(g.r.IntN(3)) * 1000
	now := g.now
	r := g.r
	switch r.IntN(20) {
	case 0, 1:
		return Create{Parent: g.pick(true), Name: g.name(), Mode: uint32(r.IntN(0o10000)), UID: uint32(r.IntN(3)), GID: uint32(r.IntN(3)), Excl: r.IntN(2) == 0, Now: now}
	case 2, 3:
		return Mkdir{Parent: g.pick(true), Name: g.name(), Mode: 0o755, UID: 1, GID: 2, Now: now}
	case 4:
		t := []string{"t", "/abs/path", "", "a\x00", strings.Repeat("T", 4096)}[min(r.IntN(12), 4)]
		return Symlink{Parent: g.pick(true), Name: g.name(), Target: t, Now: now}
	case 5:
		return Link{Ino: g.pick(false), Parent: g.pick(true), Name: g.name(), Now: now}
	case 6, 7:
		p, n := g.entry()
		return Unlink{Parent: p, Name: n, Now: now}
	case 8:
		p, n := g.entry()
		return Rmdir{Parent: p, Name: n, Now: now}
	case 9, 10, 11:
		f := RenameFlags(0)
		if r.IntN(3) == 0 {
			f = RenameFlags(r.IntN(5))
		}
		sp, sn := g.entry()
		dp, dn := g.entry()
		return Rename{SrcParent: sp, SrcName: sn, DstParent: dp, DstName: dn, Flags: f, Now: now}
	case 12, 13:
		mask := AttrMask(r.IntN(256))
		if r.IntN(40) == 0 {
			mask |= 256
		}
		mode := uint32(r.IntN(0o10000))
		if r.IntN(40) == 0 {
			mode |= 0o10000
		}
		return SetAttr{Ino: g.pick(false), Mask: mask, Mode: mode, UID: uint32(r.IntN(3)), GID: uint32(r.IntN(3)),
			Size: []uint64{0, 1, 100, 5000, 1 << 20, FileSizeMax + 1}[r.IntN(6)], Atime: int64(r.IntN(1e6)), Mtime: int64(r.IntN(1e6)), Now: now}
	case 14:
		return Extend{Ino: g.pick(false), Size: uint64(r.IntN(10000)), Now: now}
	case 15:
		var v []byte
		if r.IntN(3) > 0 {
			v = []byte(fmt.Sprint(r.IntN(100)))
		}
		return SetXattr{Ino: g.pick(false), Name: []string{"user.a", "user.b", "", "trusted.c"}[r.IntN(4)], Value: v, Flags: XattrFlags(r.IntN(5)), Now: now}
	case 16:
		return RemoveXattr{Ino: g.pick(false), Name: []string{"user.a", "user.b", ""}[r.IntN(3)], Now: now}
	case 17:
		return Open{Ino: g.pick(false)}
	case 18:
		return g.close()
	default:
		if r.IntN(3) == 0 {
			return SetQuota{Bytes: []uint64{0, 10000, 30000}[r.IntN(3)], Inodes: []uint64{0, 20, 40}[r.IntN(3)]}
		}
		if len(g.m.reclaim) > 0 && r.IntN(4) > 0 {
			return Reclaimed{ID: g.m.reclaim[r.IntN(len(g.m.reclaim))].ID}
		}
		return Reclaimed{ID: uint64(r.IntN(50))}
	}
}

// compare checks the namespace against the model: tree, attributes,
// open-unlinked inodes, usage and the reclaim queue.
func compare(t *testing.T, r *rand.Rand, ns *Namespace, m *model) {
	t.Helper()
	if err := ns.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	var walk func(d *mnode, path string)
	walk = func(d *mnode, path string) {
		var got []DirEntry
		cookie, limit := "", 1+r.IntN(4)
		for {
			ents, next, err := ns.ReadDir(d.ino, cookie, limit)
			if err != nil {
				t.Fatalf("ReadDir %s: %v", path, err)
			}
			got = append(got, ents...)
			if next == "" {
				break
			}
			cookie = next
		}
		names := make([]string, 0, len(d.kids))
		for name := range d.kids {
			names = append(names, name)
		}
		slices.Sort(names)
		if len(got) != len(names) {
			t.Fatalf("dir %s: namespace lists %v, model has %v", path, got, names)
		}
		for i, e := range got {
			k := d.kids[names[i]]
			if e.Name != names[i] || e.Ino != k.ino || e.Type != k.typ {
				t.Fatalf("dir %s: entry %d is %+v, model has %q ino %d %v", path, i, e, names[i], k.ino, k.typ)
			}
			if k.typ == TypeDir {
				if dotdot, err := ns.Lookup(k.ino, ".."); err != nil || dotdot.Ino != d.ino || k.parent != d {
					t.Fatalf("dir %s%s: \"..\" is %d (%v), want %d", path, names[i], dotdot.Ino, err, d.ino)
				}
				walk(k, path+names[i]+"/")
			}
		}
	}
	walk(m.root, "/")
	for ino, n := range m.live {
		a, err := ns.GetAttr(ino)
		if err != nil {
			t.Fatalf("GetAttr %d: %v", ino, err)
		}
		want := Attr{Ino: ino, Type: n.typ, Mode: n.mode, UID: n.uid, GID: n.gid, Size: n.size,
			Nlink: m.nlink(n), Open: n.open, Atime: n.atime, Mtime: n.mtime, Ctime: n.ctime}
		if a != want {
			t.Fatalf("inode %d:\n namespace %+v\n model     %+v", ino, a, want)
		}
		names, err := ns.ListXattr(ino)
		if err != nil || !slices.Equal(names, sortedKeys(n.xattrs)) {
			t.Fatalf("inode %d xattrs %v (%v), model %v", ino, names, err, sortedKeys(n.xattrs))
		}
		for _, k := range names {
			if v, _ := ns.GetXattr(ino, k); string(v) != n.xattrs[k] {
				t.Fatalf("inode %d xattr %q = %q, model %q", ino, k, v, n.xattrs[k])
			}
		}
		if n.typ == TypeSymlink {
			if target, err := ns.Readlink(ino); err != nil || target != n.target {
				t.Fatalf("readlink %d = %q, %v; model %q", ino, target, err, n.target)
			}
		}
	}
	st := ns.StatFS()
	if st.Inodes != uint64(len(m.live)) || st.Bytes != m.bytes() || st.QuotaBytes != m.quotaBytes || st.QuotaInodes != m.quotaInodes {
		t.Fatalf("statfs %+v, model inodes %d bytes %d quota %d/%d", st, len(m.live), m.bytes(), m.quotaBytes, m.quotaInodes)
	}
	if got := ns.Reclaims(); !slices.Equal(got, m.reclaim) {
		t.Fatalf("reclaim queue %+v, model %+v", got, m.reclaim)
	}
}

func TestModel(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5, 6, 7, 8}
	steps := 1500
	if testing.Short() {
		seeds, steps = seeds[:4], 400
	}
	if *modelSeed != 0 {
		seeds = []uint64{*modelSeed}
	}
	if *modelSteps > 0 {
		steps = *modelSteps
	}
	all := map[syscall.Errno]int{}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			for e, n := range runModel(t, seed, steps) {
				all[e] += n
			}
		})
	}
	if *modelSeed != 0 || t.Failed() {
		return
	}
	for _, want := range []syscall.Errno{0, syscall.ENOENT, syscall.EEXIST, syscall.ENOTDIR, syscall.EISDIR,
		syscall.ENOTEMPTY, syscall.EINVAL, syscall.EDQUOT, syscall.EPERM, syscall.ENAMETOOLONG, syscall.EBADF,
		syscall.ENODATA, syscall.ERANGE, syscall.EFBIG} {
		if all[want] == 0 {
			t.Errorf("no command gave %v: the generator misses a path", want)
		}
	}
}

func runModel(t *testing.T, seed uint64, steps int) map[syscall.Errno]int {
	t.Logf("seed %d (replay with -namespace.seed=%d)", seed, seed)
	r := rand.New(rand.NewPCG(seed, seed))
	m := newModel()
	g := &gen{r: r, m: m}
	ns := New()
	var index uint64
	errnos := map[syscall.Errno]int{}
	for step := 0; step < steps; step++ {
		cmd := g.command()
		index++
		errnos[checkStep(t, fmt.Sprintf("seed %d step %d", seed, step), ns, m, index, cmd)]++
		compare(t, r, ns, m)
		if r.IntN(50) == 0 {
			snap, _ := ns.Snapshot()
			ns2, err := DecodeSnapshot(snap)
			if err != nil {
				t.Fatalf("seed %d step %d: decode snapshot: %v", seed, step, err)
			}
			if snap2, _ := ns2.Snapshot(); !bytes.Equal(snap, snap2) {
				t.Fatalf("seed %d step %d: snapshot re-encodes differently", seed, step)
			}
			// An entry the snapshot covers is skipped, changing nothing.
			if res := ns2.Apply(index, []byte{commandVersion, byte(kindOpen), 1, 0, 0, 0, 0, 0, 0, 0}).(Result); !errors.Is(res.Err, ErrApplied) {
				t.Fatalf("seed %d step %d: reapplied index %d: %v", seed, step, index, res.Err)
			}
			if snap3, _ := ns2.Snapshot(); !bytes.Equal(snap, snap3) {
				t.Fatalf("seed %d step %d: a skipped entry changed the state", seed, step)
			}
			ns = ns2
			compare(t, r, ns, m)
		}
	}
	t.Logf("errnos seen: %v", errnos)
	return errnos
}

// checkStep applies cmd, encoded, at index to ns and to the model and
// checks the errnos agree and the codec round trips. It returns the
// errno.
func checkStep(t *testing.T, where string, ns *Namespace, m *model, index uint64, cmd Command) syscall.Errno {
	t.Helper()
	b, err := MarshalCommand(cmd)
	if err != nil {
		t.Fatalf("%s: encode %#v: %v", where, cmd, err)
	}
	if d, err := DecodeCommand(b); err != nil {
		t.Fatalf("%s: decode: %v", where, err)
	} else if b2, _ := MarshalCommand(d); !bytes.Equal(b, b2) {
		t.Fatalf("%s: %#v re-encodes differently", where, cmd)
	}
	res := ns.Apply(index, b).(Result)
	wantErrno, made := m.apply(cmd)
	if got := Errno(res.Err); got != wantErrno {
		t.Fatalf("%s: %#v: namespace %v (%v), model errno %v", where, cmd, got, res.Err, wantErrno)
	}
	if made != nil {
		if _, dup := m.live[res.Attr.Ino]; dup || res.Attr.Ino <= RootIno {
			t.Fatalf("%s: new ino %d reused or invalid", where, res.Attr.Ino)
		}
		made.ino = res.Attr.Ino
		m.live[made.ino] = made
	}
	return wantErrno
}
