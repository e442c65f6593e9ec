package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/weftfs/weft/fsproto/namespace"
)

// inode is the state one FS keeps for a file it has open: the size its
// handles see and what of it is not committed yet. Every handle of the
// inode in this FS shares it, so the FS reads its own writes.
type inode struct {
	ino namespace.Ino
	// refs counts this FS's handles on the inode (under FS.mu); at 0 the
	// inode leaves FS.mu.inodes.
	refs int
	// io orders data against size changes: ReadAt and WriteAt hold it
	// shared, SetSize (and a quota roll-back) exclusively, so no write
	// lands in a range being dropped.
	// Lock order: io, then commit, then mu.
	io sync.RWMutex
	// commit serializes the commits of the size (Flush's Extend,
	// SetSize's SetAttr), so an older size never lands after a newer one.
	commit sync.Mutex
	// appendMu makes O_APPEND writes through this FS atomic: each finds
	// the end and writes there before the next.
	appendMu sync.Mutex
	mu       struct {
		sync.Mutex
		// size is the size this FS sees: the committed one grown by
		// writes not committed yet.
		size int64
		// committed is the size last committed to, or read from, the
		// namespace.
		committed int64
		// dirty: written since the last commit (mtime, maybe size, to
		// commit); since: when it became dirty.
		dirty bool
		since time.Time
		// pending counts the bytes written since the last commit.
		pending int64
		// werr is a background commit's or a write-behind write's
		// failure, reported by the next Flush, Sync or Release (as
		// Linux reports writeback errors).
		werr error
		// flights are the write-behind writes in flight (see
		// writebehind.go).
		flights []*flight
		// gen counts the changes of the file's bytes or size this FS
		// made or learned of, each counted after it landed: a read
		// buffer filled at gen g is current while gen is still g.
		gen uint64
		// changing counts this FS's size changes of the file in
		// progress (commits, reservations, truncations): while one
		// runs, a size the namespace reports may predate it.
		changing int
	}
}

// acquire returns the FS's state for the file a describes (read when
// the FS's size-change count was seen), counting one more handle. A file
// no handle had open takes its size from a (the close-to-open refresh);
// one already open learns it as learnLocked says.
func (f *FS) acquire(a namespace.Attr, seen uint64) (*inode, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.closed {
		return nil, fmt.Errorf("client: open of ino %d: %w: %w", a.Ino, ErrClosed, syscall.EBADF)
	}
	in := f.mu.inodes[a.Ino]
	if in == nil {
		in = &inode{ino: a.Ino}
		in.mu.size, in.mu.committed = int64(a.Size), int64(a.Size)
		f.mu.inodes[a.Ino] = in
	}
	in.refs++
	in.mu.Lock()
	f.learnLocked(in, a, seen)
	in.mu.Unlock()
	return in, nil
}

// sizeChange marks the start of a size change of in by this FS; call
// the returned func when it is over (applied or failed).
func (f *FS) sizeChange(in *inode) (done func()) {
	f.sizeChanges.Add(1)
	in.mu.Lock()
	in.mu.changing++
	in.mu.Unlock()
	return func() {
		in.mu.Lock()
		in.mu.changing--
		in.mu.Unlock()
		f.sizeChanges.Add(1)
	}
}

// learnLocked takes the size the namespace reported in a (for a read
// that began when f.sizeChanges was seen) as in's, when nothing of this
// FS can make it stale: no uncommitted writes, no size change of the
// file in progress, and none that started or ended during the read
// (each counts in f.sizeChanges at both ends). So a handle open for long
// sees other clients' committed growth or truncation after a GetAttr,
// Lookup or open, and never forgets its own. in.mu is held.
func (f *FS) learnLocked(in *inode, a namespace.Attr, seen uint64) {
	if in.mu.dirty || in.mu.changing != 0 || f.sizeChanges.Load() != seen || in.mu.size == int64(a.Size) {
		return
	}
	in.mu.size, in.mu.committed = int64(a.Size), int64(a.Size)
	in.mu.gen++
}

func (f *FS) release(in *inode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in.refs--
	if in.refs < 0 {
		panic(fmt.Sprintf("client: ino %d released more often than acquired (%d)", in.ino, in.refs))
	}
	if in.refs == 0 && f.mu.inodes[in.ino] == in {
		delete(f.mu.inodes, in.ino)
	}
}

// overlay gives a file's attributes this FS's size when the FS has
// writes to it that are not committed yet (read-your-writes), and
// otherwise lets an open inode learn the reported size (see
// learnLocked; seen: f.sizeChanges before the read).
func (f *FS) overlay(a namespace.Attr, seen uint64) namespace.Attr {
	if a.Type != namespace.TypeFile {
		return a
	}
	f.mu.Lock()
	in := f.mu.inodes[a.Ino]
	f.mu.Unlock()
	if in == nil {
		return a
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	f.learnLocked(in, a, seen)
	if in.mu.dirty {
		a.Size = uint64(in.mu.size)
	}
	return a
}

func (f *FS) quotaOn() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mu.quota
}

// Handle is an open file of the inode API: what the FUSE mount holds per
// open. Safe for concurrent use; ReadAt and WriteAt run in parallel.
type Handle struct {
	fs       *FS
	in       *inode
	writable bool
	// counted: the namespace counts this open (Open proposed), so an
	// unlinked file survives until the Close that Release queues
	// applies. A read-only key cannot propose; its handles are not
	// counted.
	counted  bool
	released atomic.Bool
}

// OpenIno opens the regular file ino, counting an open in the namespace
// (namespace.Open) so that its data survives an unlink until Release.
// writable allows WriteAt and SetSize. A directory fails with EISDIR, a
// symlink with ELOOP (as open with O_NOFOLLOW). On a read-only key the
// open is not counted (the cluster refuses the Open) and a writable one
// fails with EROFS.
func (f *FS) OpenIno(ctx context.Context, ino namespace.Ino, writable bool) (*Handle, error) {
	if f.closed() {
		return nil, fmt.Errorf("client: open of ino %d: %w: %w", ino, ErrClosed, syscall.EBADF)
	}
	if writable && f.readOnly() {
		return nil, fmt.Errorf("client: open of ino %d for writing: read-only: %w", ino, syscall.EROFS)
	}
	f.mu.Lock()
	roKey := f.mu.roKey
	f.mu.Unlock()
	var (
		a       namespace.Attr
		err     error
		counted = !roKey
	)
	seen := f.sizeChanges.Load()
	if counted {
		var res namespace.Result
		res, err = f.apply(ctx, namespace.Open{Ino: ino})
		a = res.Attr
		if errors.Is(err, syscall.EROFS) && !writable {
			counted = false
		}
	}
	if !counted {
		a, err = f.meta.GetAttr(ctx, ino)
		err = errnoWrap(err)
	}
	if err != nil {
		return nil, err
	}
	if a.Type != namespace.TypeFile {
		if counted {
			f.closeIno(ctx, ino)
		}
		if a.Type == namespace.TypeDir {
			return nil, fmt.Errorf("client: open of ino %d: a directory: %w", ino, syscall.EISDIR)
		}
		return nil, fmt.Errorf("client: open of ino %d: a %v: %w", ino, a.Type, syscall.ELOOP)
	}
	return f.handleFor(ctx, a, seen, writable, counted)
}

// handleFor makes the handle of the regular file a, whose attributes were
// read when the FS's size changes stood at seen; counted says the
// namespace counts the open (the handle owes it a Close, which a failure
// here proposes).
func (f *FS) handleFor(ctx context.Context, a namespace.Attr, seen uint64, writable, counted bool) (*Handle, error) {
	in, err := f.acquire(a, seen)
	if err != nil {
		if counted {
			f.closeIno(ctx, a.Ino)
		}
		return nil, err
	}
	return &Handle{fs: f, in: in, writable: writable, counted: counted}, nil
}

// CreateIno runs c, a namespace.Create, with Open set: when it makes a
// regular file or finds one (without Excl), the same Raft commit counts
// an open of it, and CreateIno returns a handle on it as OpenIno would,
// one commit instead of two. When the name holds a symlink (returned for
// the caller to follow) the handle is nil and nothing is counted; POSIX
// refusals (EEXIST with Excl, EISDIR, ...) come back as errors.
func (f *FS) CreateIno(ctx context.Context, c namespace.Create, writable bool) (namespace.Result, *Handle, error) {
	if f.closed() {
		return namespace.Result{}, nil, fmt.Errorf("client: create of %q in ino %d: %w: %w", c.Name, c.Parent, ErrClosed, syscall.EBADF)
	}
	seen := f.sizeChanges.Load()
	c.Open = true
	res, err := f.apply(ctx, c)
	if err != nil || !res.Opened {
		return res, nil, err
	}
	h, err := f.handleFor(ctx, res.Attr, seen, writable, true)
	return res, h, err
}

// closeIno proposes the Close of an open counted by mistake (not a
// file). A failure leaves the open counted: it only pins an inode.
func (f *FS) closeIno(ctx context.Context, ino namespace.Ino) {
	if _, err := f.meta.Apply(ctx, namespace.Close{Ino: ino}); err != nil {
		f.log.Warn("closing an open of a non-file failed", "ino", ino, "err", err)
	}
}

// Ino returns the handle's inode.
func (h *Handle) Ino() namespace.Ino { return h.in.ino }

// sizeGen returns the size this FS sees and the inode's change count.
func (in *inode) sizeGen() (int64, uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.mu.size, in.mu.gen
}

// refresh takes the file's committed size from the namespace when this
// FS has nothing uncommitted on it, so an O_APPEND write lands after what
// other clients committed since the open.
func (h *Handle) refresh(ctx context.Context) error {
	seen := h.fs.sizeChanges.Load()
	a, err := h.fs.meta.GetAttr(ctx, h.in.ino)
	if err != nil {
		return errnoWrap(err)
	}
	h.in.mu.Lock()
	defer h.in.mu.Unlock()
	h.fs.learnLocked(h.in, a, seen)
	return nil
}

// Size returns the size this FS sees for the file (with its own writes
// not committed yet).
func (h *Handle) Size() int64 {
	h.in.mu.Lock()
	defer h.in.mu.Unlock()
	return h.in.mu.size
}

func (h *Handle) check(op string) error {
	if h.released.Load() {
		return fmt.Errorf("client: %s of ino %d: handle released: %w", op, h.in.ino, syscall.EBADF)
	}
	return nil
}

// ReadAt reads file bytes from off into p, as io.ReaderAt: up to the
// size this FS knows (io.EOF when p reaches past it), holes as zeros.
// On error, n is 0.
func (h *Handle) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if err := h.check("read"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("client: read of ino %d at %d: %w", h.in.ino, off, syscall.EINVAL)
	}
	h.in.io.RLock()
	defer h.in.io.RUnlock()
	size := h.Size()
	if off >= size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), size-off))
	if n > 0 {
		f := h.fs
		if f.wb != nil {
			// Read-your-writes: the bytes of overlapping writes still
			// in flight are not in the chunks yet.
			if err := h.in.claim(ctx, off, off+int64(n), nil, f.chunk); err != nil {
				return 0, fmt.Errorf("client: read of ino %d at %d: %w", h.in.ino, off, err)
			}
			// They may have grown the file further meanwhile, but
			// not moved its end below off+n: only truncation does,
			// and it waits for the io lock held here.
		}
		if err := readChunks(ctx, f.data, f.chunk, f.o.parallel, h.in.ino, p[:n], off); err != nil {
			return 0, fmt.Errorf("client: read of ino %d at %d: %w", h.in.ino, off, errnoWrap(err))
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt writes p at off. The bytes are durable on every replica when
// it returns, unless the FS writes behind (WithWriteBehind): then they
// are on their way, and the next Flush, Sync or Release waits for them
// and reports their failure. The file's growth and mtime are committed
// by Flush, Sync or Release, or by the FS within its flush interval (see
// the package doc).
// Under a byte quota, growth is committed before the data is written, so
// a write past the quota fails with EDQUOT and writes nothing. On error,
// n is 0 (some chunks may hold the new bytes: a failed write's range is
// unspecified, as on Linux).
func (h *Handle) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	if err := h.check("write"); err != nil {
		return 0, err
	}
	if !h.writable {
		return 0, fmt.Errorf("client: write of ino %d: not open for writing: %w", h.in.ino, syscall.EBADF)
	}
	if off < 0 {
		return 0, fmt.Errorf("client: write of ino %d at %d: %w", h.in.ino, off, syscall.EINVAL)
	}
	if len(p) == 0 {
		return 0, nil
	}
	end := off + int64(len(p))
	if err := checkExtent(end, h.fs.chunk); err != nil {
		return 0, err
	}
	var err error
	if h.fs.wb != nil {
		err = h.writeBehind(ctx, p, off)
	} else {
		err = h.write(ctx, p, off)
	}
	if err != nil {
		return 0, fmt.Errorf("client: write of ino %d at %d: %w", h.in.ino, off, errnoWrap(err))
	}
	h.in.mu.Lock()
	over := h.in.mu.pending > h.fs.o.pendingMax
	h.in.mu.Unlock()
	if over {
		if err := h.fs.flush(ctx, h.in, false); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (h *Handle) write(ctx context.Context, p []byte, off int64) error {
	in, f := h.in, h.fs
	end := off + int64(len(p))
	in.io.RLock()
	defer in.io.RUnlock()
	if f.quotaOn() {
		if err := f.reserve(ctx, in, end); err != nil {
			return err
		}
	}
	if err := f.writeData(ctx, f.data, f.chunk, f.o.parallel, in.ino, p, off); err != nil {
		return err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.mu.size = max(in.mu.size, end)
	in.mu.gen++
	if !in.mu.dirty {
		in.mu.dirty, in.mu.since = true, time.Now()
	}
	in.mu.pending += int64(len(p))
	return nil
}

// reserve commits growth to end before the data is written (quota mode),
// so the namespace refuses a write past the quota before any byte of it
// lands.
func (f *FS) reserve(ctx context.Context, in *inode, end int64) error {
	in.commit.Lock()
	defer in.commit.Unlock()
	defer f.sizeChange(in)()
	in.mu.Lock()
	committed := in.mu.committed
	in.mu.Unlock()
	if end <= committed {
		return nil
	}
	if _, err := f.apply(ctx, namespace.Extend{Ino: in.ino, Size: uint64(end)}); err != nil {
		return err
	}
	in.mu.Lock()
	in.mu.committed = max(in.mu.committed, end)
	in.mu.size = max(in.mu.size, end)
	in.mu.Unlock()
	return nil
}

// SetSize truncates the file up or down to size and returns its
// attributes. Truncating down commits the size first, then deletes the
// dropped bytes from the chunks (whole chunks past the new end, the rest
// of the boundary chunk), and returns only then, so the bytes cannot
// reappear when the file grows again; then it marks the namespace's
// reclaim entries done. The handle must be writable (EINVAL otherwise,
// as ftruncate).
func (h *Handle) SetSize(ctx context.Context, size int64) (namespace.Attr, error) {
	if err := h.check("truncate"); err != nil {
		return namespace.Attr{}, err
	}
	if !h.writable {
		return namespace.Attr{}, fmt.Errorf("client: truncate of ino %d: not open for writing: %w", h.in.ino, syscall.EINVAL)
	}
	if size < 0 {
		return namespace.Attr{}, fmt.Errorf("client: truncate of ino %d to %d: %w", h.in.ino, size, syscall.EINVAL)
	}
	if err := checkExtent(size, h.fs.chunk); err != nil {
		return namespace.Attr{}, err
	}
	a, err := h.fs.setSize(ctx, h.in, size)
	if err != nil {
		return namespace.Attr{}, fmt.Errorf("client: truncate of ino %d to %d: %w", h.in.ino, size, err)
	}
	return a, nil
}

func (f *FS) setSize(ctx context.Context, in *inode, size int64) (namespace.Attr, error) {
	in.io.Lock()
	defer in.io.Unlock()
	in.commit.Lock()
	defer in.commit.Unlock()
	defer f.sizeChange(in)()
	in.mu.Lock()
	top := max(in.mu.size, in.mu.committed)
	in.mu.Unlock()
	res, err := f.apply(ctx, namespace.SetAttr{Ino: in.ino, Mask: namespace.SetSize, Size: uint64(size)})
	if err != nil {
		return namespace.Attr{}, err
	}
	for _, r := range res.Reclaim {
		top = max(top, int64(r.To))
	}
	// A long deletion touches the file's ctime between batches (a SetAttr
	// of nothing), so the leader's reclaimer, which waits until a file
	// has been quiet for its grace, leaves this entry to us while we
	// work on it.
	touch := func(ctx context.Context) error {
		_, err := f.apply(ctx, namespace.SetAttr{Ino: in.ino})
		return err
	}
	if err := deleteRange(ctx, f.data, f.chunk, f.o.parallel, in.ino, size, top, touch); err != nil {
		// The namespace has the new size and keeps its reclaim entries,
		// which the reclaimer will finish; the caller learns the
		// truncation is not complete.
		return namespace.Attr{}, errnoWrap(err)
	}
	f.reclaimed(ctx, res.Reclaim)
	in.mu.Lock()
	in.mu.size, in.mu.committed = size, size
	in.mu.dirty, in.mu.pending = false, 0
	in.mu.gen++
	in.mu.Unlock()
	a := res.Attr
	a.Size = uint64(size)
	return a, nil
}

// reclaimed proposes Reclaimed for entries whose chunks are deleted. A
// failure leaves an entry queued; the reclaimer deletes its range again,
// which is harmless.
func (f *FS) reclaimed(ctx context.Context, rs []namespace.Reclaim) {
	for _, r := range rs {
		// ENOENT: the leader's reclaimer marked it done first.
		if _, err := f.meta.Apply(ctx, namespace.Reclaimed{ID: r.ID}); err != nil && !errors.Is(err, syscall.ENOENT) {
			f.log.Warn("marking a reclaim entry done failed; the reclaimer will redo it", "id", r.ID, "ino", r.Ino, "err", err)
		}
	}
}

// Flush waits for the writes made so far through any handle of this FS
// on the file to land (write-behind) and commits their growth and mtime:
// a client that opens the file after Flush returns sees them
// (close-to-open). It returns the failure of a background commit or of a
// write-behind write if one happened since the last Flush.
func (h *Handle) Flush(ctx context.Context) error {
	if err := h.check("flush"); err != nil {
		return err
	}
	return h.fs.flush(ctx, h.in, false)
}

// Sync makes everything written before it durable and committed: the
// data is durable when WriteAt's write lands, which Flush waits for, so
// Sync is Flush.
func (h *Handle) Sync(ctx context.Context) error { return h.Flush(ctx) }

// DataSync is Sync for fdatasync(2): it makes the data written before it
// durable and commits the file's growth, but not a change of mtime
// alone, which fdatasync need not make durable (that stays for the next
// Flush, Release or background commit). An fdatasync after overwrites
// inside the file thus costs no metadata commit.
func (h *Handle) DataSync(ctx context.Context) error {
	if err := h.check("fdatasync"); err != nil {
		return err
	}
	return h.fs.flush(ctx, h.in, true)
}

// Release flushes and ends the open. The flush's error is returned; the
// namespace.Close is not waited for: it is queued on the FS, and the
// FS's next metadata op carries it in the same Raft commit, or the FS
// sends it alone within the close delay (WithCloseDelay), or at FS.Close.
// When that was the last open of an unlinked file, its chunks are
// deleted in the background after the Close applied. The handle is
// unusable after (EBADF); a second Release fails with EBADF, and so does
// a Release after FS.Close (the open then stays counted).
func (h *Handle) Release(ctx context.Context) error {
	if h.released.Swap(true) {
		return fmt.Errorf("client: release of ino %d: released already: %w", h.in.ino, syscall.EBADF)
	}
	f := h.fs
	err := f.flush(ctx, h.in, false)
	f.release(h.in)
	if h.counted {
		if qerr := f.queueClose(h.in.ino); qerr != nil {
			return errors.Join(err, qerr)
		}
	}
	return err
}

// flush waits for the write-behind writes in flight to in, commits in's
// pending growth (Extend) or mtime (SetAttr), and returns the failure of
// the commit, of a background commit or of a write recorded since the
// last flush. The writes and the commit run at once: flush returns only
// when both are done, so what it promises holds when it returns, and it
// costs the longer of the two rather than their sum. (A crash before it
// returns may leave the size committed over bytes that never landed,
// which read as zeros: POSIX promises nothing of a file before fsync
// returned.) growthOnly leaves a change of mtime alone uncommitted
// (DataSync).
func (f *FS) flush(ctx context.Context, in *inode, growthOnly bool) error {
	in.mu.Lock()
	inFlight := len(in.mu.flights) > 0
	in.mu.Unlock()
	var drained chan error
	if inFlight {
		drained = make(chan error, 1)
		go func() { drained <- in.drain(ctx) }()
	}
	err := f.commit(ctx, in, growthOnly)
	if drained != nil {
		err = errors.Join(err, <-drained)
	}
	in.mu.Lock()
	werr := in.mu.werr
	in.mu.werr = nil
	in.mu.Unlock()
	return errors.Join(err, werr)
}

// commit sends in's pending change to the namespace. When the namespace
// refuses growth with EDQUOT (a quota this FS did not know of), the
// bytes past the committed size are deleted, so nothing of the refused
// writes stays visible, and EDQUOT is returned.
func (f *FS) commit(ctx context.Context, in *inode, growthOnly bool) error {
	in.commit.Lock()
	in.mu.Lock()
	if !in.mu.dirty || (growthOnly && in.mu.size <= in.mu.committed) {
		in.mu.Unlock()
		in.commit.Unlock()
		return nil
	}
	size, committed := in.mu.size, in.mu.committed
	// The change starts as dirty clears, so no learnLocked in between
	// takes the namespace's older size.
	in.mu.dirty, in.mu.pending = false, 0
	in.mu.changing++
	f.sizeChanges.Add(1)
	in.mu.Unlock()
	// end closes the change; redirty marks the writes uncommitted again
	// (in the same critical section, for the same reason).
	end := func(committedNow, redirty bool) {
		in.mu.Lock()
		if committedNow {
			in.mu.committed = max(in.mu.committed, size)
		}
		if redirty && !in.mu.dirty {
			in.mu.dirty, in.mu.since = true, time.Now()
		}
		in.mu.changing--
		in.mu.Unlock()
		f.sizeChanges.Add(1)
	}
	var cmd namespace.Command = namespace.SetAttr{Ino: in.ino, Mask: namespace.SetMtimeNow}
	if size > committed {
		cmd = namespace.Extend{Ino: in.ino, Size: uint64(size)}
	}
	_, err := f.apply(ctx, cmd)
	if err == nil {
		end(true, false)
		in.commit.Unlock()
		return nil
	}
	if errors.Is(err, syscall.EDQUOT) && size > committed {
		end(false, false)
		in.commit.Unlock()
		if rerr := f.rollback(ctx, in); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return fmt.Errorf("client: commit of ino %d's size %d: %w", in.ino, size, err)
	}
	end(false, true)
	in.commit.Unlock()
	return fmt.Errorf("client: commit of ino %d's size %d: %w", in.ino, size, err)
}

// rollback drops the uncommitted growth of in after the namespace
// refused it: the bytes past the committed size leave the chunks, and
// the FS's size returns to the committed one.
func (f *FS) rollback(ctx context.Context, in *inode) error {
	in.io.Lock()
	defer in.io.Unlock()
	in.commit.Lock()
	defer in.commit.Unlock()
	defer f.sizeChange(in)()
	in.mu.Lock()
	size, committed := in.mu.size, in.mu.committed
	in.mu.Unlock()
	if err := deleteRange(ctx, f.data, f.chunk, f.o.parallel, in.ino, committed, size, nil); err != nil {
		return err
	}
	in.mu.Lock()
	in.mu.size, in.mu.dirty, in.mu.pending = in.mu.committed, false, 0
	in.mu.gen++
	in.mu.Unlock()
	return nil
}

// flusher commits, every half flush interval, the inodes that have been
// dirty for a flush interval, refreshes whether a quota is set, and
// deletes the chunks of the files this FS removed, until Close.
func (f *FS) flusher() {
	defer close(f.done)
	t := time.NewTicker(f.o.flushEvery / 2)
	defer t.Stop()
	for {
		tick := false
		select {
		case <-f.life.Done():
			return
		case <-t.C:
			tick = true
		case <-f.wake:
		}
		ctx, cancel := context.WithTimeout(f.life, f.o.opTimeout)
		if tick {
			f.mu.Lock()
			open := len(f.mu.inodes) > 0
			f.mu.Unlock()
			if open {
				if _, err := f.StatFS(ctx); err != nil {
					f.log.Debug("quota refresh failed", "err", err)
				}
			}
			f.background(ctx)
		}
		f.reclaimQueued(ctx)
		cancel()
	}
}

// reclaimQueued deletes the chunks of the queued reclaim entries, one
// at a time, until the queue is empty or a deletion fails (the entry
// stays for the leader's reclaimer) or Close ends ctx (the entry goes
// back to the head of the queue, which Close finishes).
func (f *FS) reclaimQueued(ctx context.Context) {
	r := Reclaimer{Data: f.data, Meta: f.meta, ChunkSize: f.chunk, Parallel: f.o.parallel}
	for ctx.Err() == nil {
		f.mu.Lock()
		if len(f.mu.reclaim) == 0 {
			f.mu.Unlock()
			return
		}
		e := f.mu.reclaim[0]
		f.mu.reclaim = f.mu.reclaim[1:]
		f.mu.Unlock()
		if err := r.Run(ctx, []namespace.Reclaim{e}); err != nil {
			if ctx.Err() != nil {
				f.mu.Lock()
				f.mu.reclaim = append([]namespace.Reclaim{e}, f.mu.reclaim...)
				f.mu.Unlock()
				return
			}
			f.log.Warn("deleting a removed file's chunks failed; the leader's reclaimer will", "ino", e.Ino, "err", err)
		}
	}
}

// background commits the inodes dirty for a flush interval and keeps a
// failure for their next Flush.
func (f *FS) background(ctx context.Context) {
	for _, in := range f.dirty(f.o.flushEvery) {
		if err := f.commit(ctx, in, false); err != nil {
			if f.life.Err() != nil {
				// Close cut it short: the inode is dirty again, and
				// Close commits it itself; nothing failed.
				return
			}
			f.log.Warn("background commit failed", "ino", in.ino, "err", err)
			in.mu.Lock()
			if in.mu.werr == nil {
				in.mu.werr = err
			}
			in.mu.Unlock()
		}
	}
}

// dirty returns the open inodes dirty for at least age.
func (f *FS) dirty(age time.Duration) []*inode {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*inode
	now := time.Now()
	for _, in := range f.mu.inodes {
		in.mu.Lock()
		if in.mu.dirty && now.Sub(in.mu.since) >= age {
			out = append(out, in)
		}
		in.mu.Unlock()
	}
	return out
}

// flushAll commits every inode dirty for at least age.
func (f *FS) flushAll(ctx context.Context, age time.Duration) error {
	var first error
	for _, in := range f.dirty(age) {
		if err := f.flush(ctx, in, false); err != nil && first == nil {
			first = err
		}
	}
	return first
}
