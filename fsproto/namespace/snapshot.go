package namespace

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/google/btree"
)

// Snapshot encoding constants. Stored on disk (Raft snapshots) and sent
// on the wire: never change them; a new layout gets a new version.
const (
	snapMagic      = "WNSS"
	snapVersion    = 1
	snapHeaderLen  = 8 // magic, version, flags
	snapTrailerLen = 4 // crc32c

	// Smallest encodings of the repeated records, to bound a count by the
	// bytes left before allocating for it.
	inodeLenMin   = 8 + 1 + 4*3 + 8 + 4*2 + 8 + 8*3 + 2 + 4
	direntLenMin  = 8 + 8 + 1 + 1
	reclaimLenMin = 8*4 + 1
	xattrLenMin   = 1 + 1 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot encodes the whole state (see the package doc), as of the last
// applied index. It implements raftgroup.StateMachine; the error is
// always nil. Equal states encode to equal bytes.
func (ns *Namespace) Snapshot() ([]byte, error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.mu.s.appendSnapshot(nil), nil
}

func (s *state) appendSnapshot(b []byte) []byte {
	start := len(b)
	// Most inodes have no target or xattrs and most names are short:
	// grow once instead of doubling through a large state.
	b = slices.Grow(b, 64+len(s.inodes)*inodeLenMin+s.dirents.Len()*(direntLenMin+16))
	w := writer{b: b}
	w.b = append(w.b, snapMagic...)
	w.u16(snapVersion)
	w.u16(0)
	w.u64(s.applied)
	w.u64(uint64(s.nextIno))
	w.u64(s.nextReclaim)
	w.u64(s.quotaBytes)
	w.u64(s.quotaInodes)
	inos := make([]Ino, 0, len(s.inodes))
	for ino := range s.inodes {
		inos = append(inos, ino)
	}
	slices.Sort(inos)
	w.u64(uint64(len(inos)))
	for _, ino := range inos {
		n := s.inodes[ino]
		w.u64(uint64(n.Ino))
		w.u8(uint8(n.Type))
		w.u32(n.Mode)
		w.u32(n.UID)
		w.u32(n.GID)
		w.u64(n.Size)
		w.u32(n.Nlink)
		w.u32(n.Open)
		w.u64(uint64(n.parent))
		w.i64(n.Atime)
		w.i64(n.Mtime)
		w.i64(n.Ctime)
		w.str("target", n.target)
		w.u32(uint32(len(n.xattrs)))
		for _, k := range sortedKeys(n.xattrs) {
			w.u8(uint8(len(k)))
			w.b = append(w.b, k...)
			w.u32(uint32(len(n.xattrs[k])))
			w.b = append(w.b, n.xattrs[k]...)
		}
	}
	w.u64(uint64(s.dirents.Len()))
	s.dirents.Ascend(func(e dirent) bool {
		w.u64(uint64(e.parent))
		w.u64(uint64(e.ino))
		w.u8(uint8(len(e.name)))
		w.b = append(w.b, e.name...)
		return true
	})
	w.u64(uint64(len(s.reclaim)))
	for _, r := range s.reclaim {
		w.u64(r.ID)
		w.u64(uint64(r.Ino))
		w.u64(r.From)
		w.u64(r.To)
		w.bool(r.Removed)
	}
	if w.err != nil {
		// Apply keeps every string within its field (Check's limits).
		panic(fmt.Sprintf("namespace: snapshot: %v", w.err))
	}
	return binary.LittleEndian.AppendUint32(w.b, crc32.Checksum(w.b[start:], castagnoli))
}

// Restore replaces the state with a snapshot's. It implements
// raftgroup.StateMachine. The snapshot is checked completely (format,
// checksum, and every invariant of Check) before anything changes; on
// error the namespace is unchanged and the error wraps ErrCorrupt.
func (ns *Namespace) Restore(data []byte) error {
	s, err := decodeSnapshot(data)
	if err != nil {
		return err
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	ns.mu.s = s
	return nil
}

// DecodeSnapshot returns a new Namespace holding a snapshot's state; see
// Restore.
func DecodeSnapshot(data []byte) (*Namespace, error) {
	s, err := decodeSnapshot(data)
	if err != nil {
		return nil, err
	}
	ns := &Namespace{}
	ns.mu.s = s
	return ns, nil
}

func decodeSnapshot(data []byte) (*state, error) {
	if len(data) < snapHeaderLen+snapTrailerLen {
		return nil, corrupt("snapshot of %d bytes, shorter than its header and checksum (%d)", len(data), snapHeaderLen+snapTrailerLen)
	}
	if string(data[:4]) != snapMagic {
		return nil, corrupt("snapshot magic %q, want %q", data[:4], snapMagic)
	}
	if v := binary.LittleEndian.Uint16(data[4:]); v != snapVersion {
		return nil, corrupt("snapshot version %d, want %d", v, snapVersion)
	}
	if f := binary.LittleEndian.Uint16(data[6:]); f != 0 {
		return nil, corrupt("snapshot flags %#x, want 0", f)
	}
	crcAt := len(data) - snapTrailerLen
	if got, want := binary.LittleEndian.Uint32(data[crcAt:]), crc32.Checksum(data[:crcAt], castagnoli); got != want {
		return nil, corrupt("snapshot checksum %#08x, computed %#08x", got, want)
	}
	r := reader{b: data[:crcAt], off: snapHeaderLen, what: "snapshot"}
	s := &state{dirents: btree.NewG(btreeDegree, direntLess)}
	s.applied = r.u64("applied")
	s.nextIno = Ino(r.u64("next ino"))
	s.nextReclaim = r.u64("next reclaim")
	s.quotaBytes = r.u64("quota bytes")
	s.quotaInodes = r.u64("quota inodes")
	n := r.count("inodes", inodeLenMin)
	s.inodes = make(map[Ino]*inode, n)
	var prev Ino
	for i := 0; i < n && r.err == nil; i++ {
		in := &inode{}
		in.Ino = Ino(r.u64("ino"))
		in.Type = Type(r.u8("type"))
		in.Mode = r.u32("mode")
		in.UID = r.u32("uid")
		in.GID = r.u32("gid")
		in.Size = r.u64("size")
		in.Nlink = r.u32("nlink")
		in.Open = r.u32("open")
		in.parent = Ino(r.u64("parent"))
		in.Atime = r.i64("atime")
		in.Mtime = r.i64("mtime")
		in.Ctime = r.i64("ctime")
		in.target = r.str("target")
		in.xattrs = r.xattrs()
		if r.err == nil && i > 0 && in.Ino <= prev {
			r.fail("inode %d follows %d (inodes must be sorted and distinct)", in.Ino, prev)
		}
		prev = in.Ino
		s.inodes[in.Ino] = in
		if in.Type == TypeFile {
			s.bytes += in.Size
		}
	}
	n = r.count("dirents", direntLenMin)
	var last dirent
	for i := 0; i < n && r.err == nil; i++ {
		e := dirent{parent: Ino(r.u64("dirent parent")), ino: Ino(r.u64("dirent ino"))}
		e.name = r.str8("dirent name")
		if r.err != nil {
			break
		}
		if i > 0 && !direntLess(last, e) {
			r.fail("dirent %d/%q follows %d/%q (entries must be sorted and distinct)", e.parent, e.name, last.parent, last.name)
			break
		}
		last = e
		if c := s.inodes[e.ino]; c != nil {
			e.typ = c.Type
		}
		s.dirents.ReplaceOrInsert(e)
	}
	n = r.count("reclaims", reclaimLenMin)
	if n > 0 {
		s.reclaim = make([]Reclaim, 0, n)
	}
	for i := 0; i < n && r.err == nil; i++ {
		s.reclaim = append(s.reclaim, Reclaim{
			ID: r.u64("reclaim id"), Ino: Ino(r.u64("reclaim ino")),
			From: r.u64("reclaim from"), To: r.u64("reclaim to"), Removed: r.bool("reclaim removed"),
		})
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("%w: snapshot: %v", ErrCorrupt, err)
	}
	return s, nil
}

func (r *reader) xattrs() map[string][]byte {
	n := r.u32("xattr count")
	if r.err != nil || n == 0 {
		return nil
	}
	if left := uint64(len(r.b) - r.off); uint64(n)*xattrLenMin > left {
		r.fail("%d xattrs need at least %d bytes, %d left", n, uint64(n)*xattrLenMin, left)
		return nil
	}
	m := make(map[string][]byte, n)
	prev := ""
	for i := 0; i < int(n) && r.err == nil; i++ {
		k := r.str8("xattr name")
		vn := r.u32("xattr value length")
		if r.err == nil && vn > XattrValueLenMax {
			r.fail("xattr value of %d bytes, at most %d", vn, XattrValueLenMax)
		}
		v := r.take(int(vn), "xattr value")
		if r.err != nil {
			return nil
		}
		if i > 0 && k <= prev {
			r.fail("xattr %q follows %q (names must be sorted and distinct)", k, prev)
			return nil
		}
		prev = k
		m[k] = append([]byte{}, v...)
	}
	return m
}
