package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

// Mem is an in-memory FS that remembers what a power cut could leave, for
// crash tests. It is safe for concurrent use; every method of it and of its
// Files runs under one mutex.
//
// Names are cleaned with path.Clean, so "/d/./f" and "/d/f" are the same
// file; "/" and "." always exist. Errors have the form "vfs: <op> <name>:
// <cause>" and wrap fs.ErrNotExist, fs.ErrExist, fs.ErrClosed, ErrLocked,
// an injected error or a syscall.Errno (EINVAL for misaligned direct I/O,
// EBADF for a write to a read-only File, EISDIR, ENOTDIR, ENOTEMPTY), as
// the real file system's do.
//
// Crash model. For each file Mem keeps the content as of its last
// successful Sync and the ordered writes and truncates since; for each
// directory, its entries as of its last SyncDir and the ordered creations,
// removals and renames since. Crash draws one possible post-power-cut state
// from these; CrashClean keeps exactly the durable state. A file's entry and
// its content are independent, as on a real file system: a file synced but
// whose creation was not may vanish, and a file whose creation was synced
// but whose data was not may come back empty.
//
// NB: directories themselves are not crash-modelled: MkdirAll and the
// removal of an empty directory are durable at once. A rename between two
// directories is a removal in one and a creation in the other, each made
// durable by its own SyncDir, so a crash may leave the file under both
// names (one file, two links) or under neither.
//
// Direct I/O. A File opened with direct=true rejects a ReadAt or WriteAt
// whose offset, length or buffer address is not a multiple of Alignment,
// with an error wrapping syscall.EINVAL that says which, as O_DIRECT on a
// device with Alignment-sized logical blocks does.
//
// NB: Mem keeps a copy of every write until the file's next successful
// Sync, and every namespace change until its directory's next SyncDir, so a
// test that writes much without syncing holds it all in memory.
//
// Faults. SetFault installs a function that may fail any operation (see
// Op). A failed WriteAt may have written a random subset of its sectors,
// as unsynced writes; a failed Sync leaves every unsynced write unsynced.
type Mem struct {
	mu struct {
		sync.Mutex
		// dirs holds every directory by cleaned path. Invariant: "/" and
		// "." are present, and so is the parent of every directory.
		dirs  map[string]*memDir
		locks map[string]bool // cleaned names of held locks
		fault func(Op, string) error
		rand  *rand.Rand // for torn writes of failed WriteAt calls
		stats MemStats
	}
}

// MemStats counts the operations a Mem has completed successfully since
// NewMem (or the Crash that made it); operations that failed are not
// counted, except that Injected counts those failed by the fault function.
type MemStats struct {
	Reads        int64 // File.ReadAt calls
	BytesRead    int64
	Writes       int64 // File.WriteAt calls
	BytesWritten int64
	Syncs        int64 // File.Sync calls
	Truncates    int64 // File.Truncate calls
	SyncDirs     int64 // FS.SyncDir calls
	Injected     int64 // operations failed by the fault function
}

// memDir is one directory.
type memDir struct {
	live    map[string]*memNode // the current entries, by base name
	durable map[string]*memNode // the entries as of the last SyncDir
	// pending is every change to live since the last SyncDir, in order.
	// Invariant: applying pending to durable gives live.
	pending []memDirOp
}

// memDirOp is one namespace operation: entries that a crash keeps or loses
// together (a rename within one directory is a single op).
type memDirOp []memEntry

// memEntry sets name to node, or removes name if node is nil.
type memEntry struct {
	name string
	node *memNode
}

// memNode is a file's content (an inode: a removed file lives on while a
// File refers to it).
type memNode struct {
	data    []byte // the current content
	durable []byte // the content as of the last successful Sync; never aliases data
	// pending is every write and truncate since the last successful Sync,
	// in order. Invariant: applying pending to durable gives data.
	pending []memChange
}

// memChange is one unsynced write (data at off) or truncate (to size).
type memChange struct {
	off      int64
	data     []byte // owned copy
	truncate bool
	size     int64
}

// NewMem returns an empty Mem holding the directories "/" and ".", with no
// fault function and fault seed 1.
func NewMem() *Mem {
	m := &Mem{}
	m.mu.dirs = map[string]*memDir{"/": newMemDir(), ".": newMemDir()}
	m.mu.locks = map[string]bool{}
	m.mu.rand = rand.New(rand.NewSource(1))
	return m
}

func newMemDir() *memDir {
	return &memDir{live: map[string]*memNode{}, durable: map[string]*memNode{}}
}

// SetFault installs f, which Mem calls (with its mutex held: f must not
// call m) before each operation listed under Op, with the operation and the
// name it was given (the old name for Rename, the File's Name for File
// methods), after the checks that need no file system state (closed File,
// read-only File, negative offset, direct I/O alignment). If f returns an
// error, the operation fails with "vfs: <op> <name>: <err>" wrapping it and,
// except for WriteAt, changes nothing: a failed WriteAt applies a random
// subset of its sectors (drawn from the seed of SetSeed) as unsynced
// writes, and returns 0. A nil f removes the fault function. See FailNth,
// FailAfter and FailRandom.
//
// NB: a Sync failed by injection leaves the unsynced writes unsynced, and
// a later successful Sync makes them durable. Linux after a real fsync
// failure may instead drop them and report the next fsync as successful;
// code should treat a failed Sync as fatal for the file either way.
func (m *Mem) SetFault(f func(op Op, name string) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.fault = f
}

// SetSeed reseeds the generator that chooses which sectors of a WriteAt
// failed by injection are written (the default seed is 1).
func (m *Mem) SetSeed(seed int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.rand = rand.New(rand.NewSource(seed))
}

// Stats returns the operation counts so far.
func (m *Mem) Stats() MemStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.stats
}

// Crash returns a new Mem holding one state that a power cut at this
// instant could leave, drawn deterministically from seed: the same seed on
// the same history gives the same state. m is unchanged and stays usable.
// The new Mem has no open Files, no locks, no fault function, fault seed 1
// and zero Stats, and everything in it is durable.
//
// Every directory keeps its entries as of its last SyncDir, and then each
// creation, removal or rename in it since then is applied or not, at
// random, in order. Every file that remains has its content as of its last
// successful Sync, and then each write since then, in order, is dropped,
// applied whole, or torn (each SectorSize-aligned piece, counting from
// offset 0 of the file, applied or not), and each truncate is applied or
// not. The choices are drawn directory by directory, then file by file, in
// sorted order of path.
func (m *Mem) Crash(seed int64) *Mem {
	rng := rand.New(rand.NewSource(seed))
	m.mu.Lock()
	defer m.mu.Unlock()
	namespace := func(d *memDir) map[string]*memNode {
		ns := maps.Clone(d.durable)
		for _, op := range d.pending {
			if rng.Intn(2) == 0 {
				continue
			}
			op.apply(ns)
		}
		return ns
	}
	content := func(n *memNode) []byte {
		b := bytes.Clone(n.durable)
		for _, ch := range n.pending {
			if ch.truncate {
				if rng.Intn(2) == 1 {
					b = resize(b, ch.size)
				}
				continue
			}
			switch rng.Intn(3) {
			case 0: // lost
			case 1:
				b = writeBytes(b, ch.data, ch.off)
			case 2:
				forEachSector(ch.off, len(ch.data), func(i, j int) {
					if rng.Intn(2) == 1 {
						b = writeBytes(b, ch.data[i:j], ch.off+int64(i))
					}
				})
			}
		}
		return b
	}
	return m.crashLocked(namespace, content)
}

// CrashClean returns a new Mem holding exactly the durable state of m: the
// entries of each directory as of its last SyncDir, the content of each
// file as of its last successful Sync, and nothing unsynced. Otherwise it
// is like Crash.
func (m *Mem) CrashClean() *Mem {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.crashLocked(
		func(d *memDir) map[string]*memNode { return maps.Clone(d.durable) },
		func(n *memNode) []byte { return bytes.Clone(n.durable) },
	)
}

// crashLocked builds the Mem that the namespace and content choices give,
// calling namespace for every directory and then content for every file
// that survives, both in sorted order of path, so that random choices are
// drawn in a deterministic order. A file linked under two names gets its
// content once.
func (m *Mem) crashLocked(namespace func(*memDir) map[string]*memNode, content func(*memNode) []byte) *Mem {
	c := NewMem()
	paths := slices.Sorted(maps.Keys(m.mu.dirs))
	spaces := make([]map[string]*memNode, len(paths))
	for i, p := range paths {
		spaces[i] = namespace(m.mu.dirs[p])
	}
	nodes := map[*memNode]*memNode{}
	for i, p := range paths {
		d := newMemDir()
		for _, name := range slices.Sorted(maps.Keys(spaces[i])) {
			old := spaces[i][name]
			n := nodes[old]
			if n == nil {
				data := content(old)
				n = &memNode{data: data, durable: bytes.Clone(data)}
				nodes[old] = n
			}
			d.live[name] = n
			d.durable[name] = n
		}
		c.mu.dirs[p] = d
	}
	return c
}

// memErr is the error of operation op on name.
func memErr(op Op, name string, err error) error {
	return fmt.Errorf("vfs: %s %s: %w", op, name, err)
}

// faultLocked asks the fault function about op on name.
func (m *Mem) faultLocked(op Op, name string) error {
	if m.mu.fault == nil {
		return nil
	}
	if err := m.mu.fault(op, name); err != nil {
		m.mu.stats.Injected++
		return memErr(op, name, err)
	}
	return nil
}

// lookupLocked returns the directory that would hold the cleaned name c
// (nil if it does not exist), c's base name, and the file c names (nil if
// none).
func (m *Mem) lookupLocked(c string) (*memDir, string, *memNode) {
	d := m.mu.dirs[path.Dir(c)]
	base := path.Base(c)
	if d == nil {
		return nil, base, nil
	}
	return d, base, d.live[base]
}

// Create implements FS.
func (m *Mem) Create(name string, direct bool) (File, error) {
	c := path.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.faultLocked(OpCreate, name); err != nil {
		return nil, err
	}
	if m.mu.dirs[c] != nil {
		return nil, memErr(OpCreate, name, fs.ErrExist)
	}
	d, base, n := m.lookupLocked(c)
	switch {
	case d == nil:
		return nil, memErr(OpCreate, name, fs.ErrNotExist)
	case n != nil:
		return nil, memErr(OpCreate, name, fs.ErrExist)
	}
	n = &memNode{}
	d.change(memDirOp{{base, n}})
	return &memFile{m: m, node: n, name: name, direct: direct}, nil
}

// OpenRW implements FS.
func (m *Mem) OpenRW(name string, direct bool) (File, error) {
	return m.open(name, direct, false)
}

// Open implements FS.
func (m *Mem) Open(name string) (File, error) {
	return m.open(name, false, true)
}

func (m *Mem) open(name string, direct, readOnly bool) (File, error) {
	c := path.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.faultLocked(OpOpen, name); err != nil {
		return nil, err
	}
	if m.mu.dirs[c] != nil {
		return nil, memErr(OpOpen, name, syscall.EISDIR)
	}
	_, _, n := m.lookupLocked(c)
	if n == nil {
		return nil, memErr(OpOpen, name, fs.ErrNotExist)
	}
	return &memFile{m: m, node: n, name: name, direct: direct, readOnly: readOnly}, nil
}

// Remove implements FS. Removing a directory is durable at once (see Mem).
func (m *Mem) Remove(name string) error {
	c := path.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.faultLocked(OpRemove, name); err != nil {
		return err
	}
	if d := m.mu.dirs[c]; d != nil {
		if c == "/" || c == "." {
			return memErr(OpRemove, name, syscall.EBUSY)
		}
		if len(d.live) > 0 || len(m.subdirsLocked(c)) > 0 {
			return memErr(OpRemove, name, syscall.ENOTEMPTY)
		}
		delete(m.mu.dirs, c)
		return nil
	}
	d, base, n := m.lookupLocked(c)
	if n == nil {
		return memErr(OpRemove, name, fs.ErrNotExist)
	}
	d.change(memDirOp{{base, nil}})
	return nil
}

// Rename implements FS. Mem does not rename directories (the error wraps
// errors.ErrUnsupported).
func (m *Mem) Rename(oldname, newname string) error {
	co, cn := path.Clean(oldname), path.Clean(newname)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.faultLocked(OpRename, oldname); err != nil {
		return err
	}
	fail := func(err error) error {
		return fmt.Errorf("vfs: %s %s %s: %w", OpRename, oldname, newname, err)
	}
	if m.mu.dirs[co] != nil {
		return fail(fmt.Errorf("renaming a directory: %w", errors.ErrUnsupported))
	}
	od, obase, n := m.lookupLocked(co)
	if n == nil {
		return fail(fs.ErrNotExist)
	}
	if m.mu.dirs[cn] != nil {
		return fail(syscall.EEXIST)
	}
	nd, nbase, _ := m.lookupLocked(cn)
	switch {
	case nd == nil:
		return fail(fs.ErrNotExist)
	case co == cn:
		return nil
	case od == nd:
		od.change(memDirOp{{obase, nil}, {nbase, n}})
	default:
		od.change(memDirOp{{obase, nil}})
		nd.change(memDirOp{{nbase, n}})
	}
	return nil
}

// subdirsLocked returns the base names of the directories in the cleaned
// directory path c.
func (m *Mem) subdirsLocked(c string) []string {
	var names []string
	for p := range m.mu.dirs {
		if p != c && path.Dir(p) == c {
			names = append(names, path.Base(p))
		}
	}
	return names
}

// dirLocked returns the directory at the cleaned path c, or an error for
// op naming name.
func (m *Mem) dirLocked(op Op, name, c string) (*memDir, error) {
	if d := m.mu.dirs[c]; d != nil {
		return d, nil
	}
	if _, _, n := m.lookupLocked(c); n != nil {
		return nil, memErr(op, name, syscall.ENOTDIR)
	}
	return nil, memErr(op, name, fs.ErrNotExist)
}

// ReadDir implements FS.
func (m *Mem) ReadDir(dir string) ([]string, error) {
	c := path.Clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.faultLocked(OpReadDir, dir); err != nil {
		return nil, err
	}
	d, err := m.dirLocked(OpReadDir, dir, c)
	if err != nil {
		return nil, err
	}
	names := append(m.subdirsLocked(c), slices.Collect(maps.Keys(d.live))...)
	slices.Sort(names)
	return names, nil
}

// MkdirAll implements FS. The new directories are durable at once (see
// Mem).
func (m *Mem) MkdirAll(dir string) error {
	c := path.Clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.faultLocked(OpMkdir, dir); err != nil {
		return err
	}
	var missing []string
	// Invariant: "/" and "." exist, so the walk up ends.
	for p := c; m.mu.dirs[p] == nil; p = path.Dir(p) {
		if _, _, n := m.lookupLocked(p); n != nil {
			return memErr(OpMkdir, dir, fmt.Errorf("%s is a file: %w", p, syscall.ENOTDIR))
		}
		missing = append(missing, p)
	}
	for _, p := range missing {
		m.mu.dirs[p] = newMemDir()
	}
	return nil
}

// SyncDir implements FS.
func (m *Mem) SyncDir(dir string) error {
	c := path.Clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.faultLocked(OpSyncDir, dir); err != nil {
		return err
	}
	d, err := m.dirLocked(OpSyncDir, dir, c)
	if err != nil {
		return err
	}
	// Applying every pending op to durable gives live (memDir invariant).
	d.durable = maps.Clone(d.live)
	d.pending = nil
	m.mu.stats.SyncDirs++
	return nil
}

// Lock implements FS. Locks are per cleaned name within one Mem.
func (m *Mem) Lock(name string) (io.Closer, error) {
	c := path.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.faultLocked(OpLock, name); err != nil {
		return nil, err
	}
	if m.mu.dirs[c] != nil {
		return nil, memErr(OpLock, name, syscall.EISDIR)
	}
	d, base, n := m.lookupLocked(c)
	if d == nil {
		return nil, memErr(OpLock, name, fs.ErrNotExist)
	}
	if m.mu.locks[c] {
		return nil, memErr(OpLock, name, ErrLocked)
	}
	if n == nil {
		d.change(memDirOp{{base, &memNode{}}})
	}
	m.mu.locks[c] = true
	return &memLock{m: m, name: c}, nil
}

// Stat implements FS. A directory has size 0.
func (m *Mem) Stat(name string) (int64, error) {
	c := path.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.faultLocked(OpStat, name); err != nil {
		return 0, err
	}
	if m.mu.dirs[c] != nil {
		return 0, nil
	}
	_, _, n := m.lookupLocked(c)
	if n == nil {
		return 0, memErr(OpStat, name, fs.ErrNotExist)
	}
	return int64(len(n.data)), nil
}

// change applies op to the live entries and records it as pending.
func (d *memDir) change(op memDirOp) {
	op.apply(d.live)
	d.pending = append(d.pending, op)
}

func (op memDirOp) apply(ns map[string]*memNode) {
	for _, e := range op {
		if e.node == nil {
			delete(ns, e.name)
		} else {
			ns[e.name] = e.node
		}
	}
}

// memLock is a lock held in a Mem.
type memLock struct {
	m      *Mem
	name   string // cleaned
	closed bool   // guarded by m.mu
}

// Close releases the lock. A second Close returns an error wrapping
// fs.ErrClosed.
func (l *memLock) Close() error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	if l.closed {
		return fmt.Errorf("vfs: unlock %s: %w", l.name, fs.ErrClosed)
	}
	l.closed = true
	delete(l.m.mu.locks, l.name)
	return nil
}

// memFile is a File of a Mem.
type memFile struct {
	m        *Mem
	node     *memNode
	name     string
	direct   bool
	readOnly bool
	closed   bool // guarded by m.mu
}

// checkLocked makes the checks of an operation that need no file system
// state.
func (f *memFile) checkLocked(op Op, write bool, p []byte, off int64) error {
	if f.closed {
		return memErr(op, f.name, fs.ErrClosed)
	}
	if write && f.readOnly {
		errno := syscall.EBADF // as pwrite(2)
		if op == OpTruncate {
			errno = syscall.EINVAL // as ftruncate(2)
		}
		return memErr(op, f.name, fmt.Errorf("file is open read-only: %w", errno))
	}
	if off < 0 {
		return memErr(op, f.name, fmt.Errorf("negative offset %d: %w", off, syscall.EINVAL))
	}
	if f.direct && (op == OpRead || op == OpWrite) {
		if what := misaligned(p, off); what != "" {
			return memErr(op, f.name, fmt.Errorf("direct I/O needs %s aligned to %d: %w", what, Alignment, syscall.EINVAL))
		}
	}
	return nil
}

// misaligned names the parts of a direct I/O of p at off that are not
// multiples of Alignment, or returns "" if none is.
func misaligned(p []byte, off int64) string {
	var bad []string
	if off%Alignment != 0 {
		bad = append(bad, fmt.Sprintf("offset %d", off))
	}
	if len(p)%Alignment != 0 {
		bad = append(bad, fmt.Sprintf("length %d", len(p)))
	}
	if len(p) > 0 {
		if a := uintptr(unsafe.Pointer(&p[0])); a%Alignment != 0 {
			bad = append(bad, fmt.Sprintf("buffer address %#x", a))
		}
	}
	return strings.Join(bad, ", ")
}

// ReadAt implements File.
func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.checkLocked(OpRead, false, p, off); err != nil {
		return 0, err
	}
	if err := f.m.faultLocked(OpRead, f.name); err != nil {
		return 0, err
	}
	n := 0
	if off < int64(len(f.node.data)) {
		n = copy(p, f.node.data[off:])
	}
	f.m.mu.stats.Reads++
	f.m.mu.stats.BytesRead += int64(n)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt implements File.
func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.checkLocked(OpWrite, true, p, off); err != nil {
		return 0, err
	}
	if err := f.m.faultLocked(OpWrite, f.name); err != nil {
		// The device may have written any of the sectors.
		forEachSector(off, len(p), func(i, j int) {
			if f.m.mu.rand.Intn(2) == 1 {
				f.node.write(p[i:j], off+int64(i))
			}
		})
		return 0, err
	}
	f.node.write(p, off)
	f.m.mu.stats.Writes++
	f.m.mu.stats.BytesWritten += int64(len(p))
	return len(p), nil
}

// Sync implements File.
func (f *memFile) Sync() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.checkLocked(OpSync, false, nil, 0); err != nil {
		return err
	}
	if err := f.m.faultLocked(OpSync, f.name); err != nil {
		return err
	}
	n := f.node
	for _, ch := range n.pending {
		n.durable = ch.apply(n.durable)
	}
	n.pending = nil
	if len(n.durable) != len(n.data) {
		panic(fmt.Sprintf("vfs: mem %s: synced content has %d bytes, current %d", f.name, len(n.durable), len(n.data)))
	}
	f.m.mu.stats.Syncs++
	return nil
}

// Truncate implements File.
func (f *memFile) Truncate(size int64) error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.checkLocked(OpTruncate, true, nil, 0); err != nil {
		return err
	}
	if size < 0 {
		return memErr(OpTruncate, f.name, fmt.Errorf("negative size %d: %w", size, syscall.EINVAL))
	}
	if err := f.m.faultLocked(OpTruncate, f.name); err != nil {
		return err
	}
	ch := memChange{truncate: true, size: size}
	f.node.data = ch.apply(f.node.data)
	f.node.pending = append(f.node.pending, ch)
	f.m.mu.stats.Truncates++
	return nil
}

// Size implements File.
func (f *memFile) Size() (int64, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return 0, fmt.Errorf("vfs: size %s: %w", f.name, fs.ErrClosed)
	}
	return int64(len(f.node.data)), nil
}

// Close implements File.
func (f *memFile) Close() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return fmt.Errorf("vfs: close %s: %w", f.name, fs.ErrClosed)
	}
	f.closed = true
	return nil
}

// Name implements File.
func (f *memFile) Name() string { return f.name }

// write writes p at off, unsynced.
func (n *memNode) write(p []byte, off int64) {
	if len(p) == 0 {
		return
	}
	ch := memChange{off: off, data: bytes.Clone(p)}
	n.data = ch.apply(n.data)
	n.pending = append(n.pending, ch)
}

// apply returns b with ch applied; it may reuse b.
func (ch memChange) apply(b []byte) []byte {
	if ch.truncate {
		return resize(b, ch.size)
	}
	return writeBytes(b, ch.data, ch.off)
}

// writeBytes returns b with p written at off, extended (with zeros in any
// gap) if needed; it may reuse b.
func writeBytes(b, p []byte, off int64) []byte {
	if end := off + int64(len(p)); end > int64(len(b)) {
		b = resize(b, end)
	}
	copy(b[off:], p)
	return b
}

// resize returns b cut or extended with zeros to size; it may reuse b.
func resize(b []byte, size int64) []byte {
	n := int64(len(b))
	switch {
	case size <= n:
		return b[:size]
	case size <= int64(cap(b)):
		// The bytes past len may hold data from before a truncate.
		b = b[:size]
		clear(b[n:])
		return b
	}
	nb := make([]byte, size, max(size, 2*n))
	copy(nb, b)
	return nb
}

// forEachSector calls fn(i, j) for each piece p[i:j] of an I/O of n bytes
// at off that lies in one sector, sectors being SectorSize-aligned file
// offsets, in order.
func forEachSector(off int64, n int, fn func(i, j int)) {
	for i := 0; i < n; {
		abs := off + int64(i)
		j := i + int((abs/SectorSize+1)*SectorSize-abs)
		if j > n {
			j = n
		}
		fn(i, j)
		i = j
	}
}
