package client

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/weftfs/weft/fsproto/namespace"
)

// File is an open file or directory of the path API, *os.File-like.
// ReadAt and WriteAt may run concurrently; Read, Write and Seek share
// the file offset under a lock. Each call is bounded by the FS's op
// timeout. Methods of a closed File fail with fs.ErrClosed.
type File struct {
	fs   *FS
	name string
	ino  namespace.Ino
	h    *Handle   // nil for a directory
	dir  *dirState // nil for a file

	readable, writable, append bool
	closed                     atomic.Bool

	mu struct {
		sync.Mutex
		off int64
		// ra holds file bytes [raOff, raOff+len(ra)) read ahead for
		// small Reads, as of the inode's change count raGen.
		ra    []byte
		raOff int64
		raGen uint64
	}
}

// readAhead is how much a small Read fetches at once, so a reader that
// asks for a few bytes at a time does not pay a request each.
const readAhead = 128 << 10

// dirState is a directory File's listing position.
type dirState struct {
	mu     sync.Mutex
	cookie string // the next page starts after it
	done   bool   // the last page was read
	buf    []namespace.DirEntry
}

// readDirPage is how many entries one ReadDir request asks for.
const readDirPage = 1024

func (fl *File) err(op string, err error) error { return pathErr(op, fl.name, err) }

func (fl *File) check(op string) error {
	if fl.closed.Load() {
		return fl.err(op, fs.ErrClosed)
	}
	return nil
}

// Name returns the name the file was opened with.
func (fl *File) Name() string { return fl.name }

// Ino returns the file's inode number.
func (fl *File) Ino() namespace.Ino { return fl.ino }

// ReadAt reads len(p) bytes at off, as io.ReaderAt (io.EOF when it
// reaches the end). A directory fails with EISDIR.
func (fl *File) ReadAt(p []byte, off int64) (int, error) {
	if err := fl.check("read"); err != nil {
		return 0, err
	}
	if fl.dir != nil {
		return 0, fl.err("read", syscall.EISDIR)
	}
	if !fl.readable {
		return 0, fl.err("read", syscall.EBADF)
	}
	ctx, cancel := fl.fs.opCtx()
	defer cancel()
	n, err := fl.h.ReadAt(ctx, p, off)
	if err != nil && err != io.EOF {
		return n, fl.err("read", err)
	}
	return n, err
}

// WriteAt writes p at off (see Handle.WriteAt for durability). A file
// opened with O_APPEND refuses it, as *os.File does.
func (fl *File) WriteAt(p []byte, off int64) (int, error) {
	if err := fl.check("write"); err != nil {
		return 0, err
	}
	if fl.append {
		return 0, fl.err("write", fmt.Errorf("client: WriteAt on a file opened with O_APPEND: %w", syscall.EINVAL))
	}
	return fl.writeAt(p, off)
}

func (fl *File) writeAt(p []byte, off int64) (int, error) {
	if fl.dir != nil || !fl.writable {
		return 0, fl.err("write", syscall.EBADF)
	}
	ctx, cancel := fl.fs.opCtx()
	defer cancel()
	n, err := fl.h.WriteAt(ctx, p, off)
	if err != nil {
		return n, fl.err("write", err)
	}
	return n, nil
}

// Read reads from the file offset and advances it, as io.Reader.
func (fl *File) Read(p []byte) (int, error) {
	if err := fl.check("read"); err != nil {
		return 0, err
	}
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if len(p) >= readAhead/2 || fl.h == nil || !fl.readable {
		n, err := fl.ReadAt(p, fl.mu.off)
		fl.mu.off += int64(n)
		if err == io.EOF && n > 0 {
			err = nil
		}
		return n, err
	}
	off := fl.mu.off
	size, gen := fl.h.in.sizeGen()
	if gen != fl.mu.raGen || off < fl.mu.raOff || off >= fl.mu.raOff+int64(len(fl.mu.ra)) {
		if off >= size {
			if len(p) == 0 {
				return 0, nil
			}
			return 0, io.EOF
		}
		// gen is read before the fetch, so a change that lands during
		// it leaves the buffer stale by its count, never current.
		buf := fl.mu.ra[:0]
		if cap(buf) < readAhead {
			buf = make([]byte, 0, readAhead)
		}
		buf = buf[:min(int64(readAhead), size-off)]
		n, err := fl.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			fl.mu.ra = buf[:0]
			return 0, err
		}
		fl.mu.ra, fl.mu.raOff, fl.mu.raGen = buf[:n], off, gen
		if n == 0 {
			return 0, io.EOF
		}
	}
	n := copy(p, fl.mu.ra[off-fl.mu.raOff:])
	fl.mu.off += int64(n)
	return n, nil
}

// Write writes at the file offset and advances it. With O_APPEND it
// writes at the end: atomically against other appends through the same
// FS; after what other clients committed (Close, Sync) when this FS has
// no uncommitted writes to the file (it asks the namespace for the size
// first); not atomically against other clients' concurrent appends.
func (fl *File) Write(p []byte) (int, error) {
	if err := fl.check("write"); err != nil {
		return 0, err
	}
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.append && fl.h != nil {
		in := fl.h.in
		in.appendMu.Lock()
		defer in.appendMu.Unlock()
		ctx, cancel := fl.fs.opCtx()
		err := fl.h.refresh(ctx)
		cancel()
		if err != nil {
			return 0, fl.err("write", err)
		}
		fl.mu.off = fl.h.Size()
	}
	n, err := fl.writeAt(p, fl.mu.off)
	fl.mu.off += int64(n)
	return n, err
}

// Seek sets the offset for the next Read or Write, as io.Seeker. On a
// directory, Seek(0, io.SeekStart) restarts the listing; other seeks
// fail with EINVAL.
func (fl *File) Seek(offset int64, whence int) (int64, error) {
	if err := fl.check("seek"); err != nil {
		return 0, err
	}
	if fl.dir != nil {
		if offset != 0 || whence != io.SeekStart {
			return 0, fl.err("seek", syscall.EINVAL)
		}
		fl.dir.mu.Lock()
		fl.dir.cookie, fl.dir.done, fl.dir.buf = "", false, nil
		fl.dir.mu.Unlock()
		return 0, nil
	}
	fl.mu.Lock()
	defer fl.mu.Unlock()
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = fl.mu.off
	case io.SeekEnd:
		base = fl.h.Size()
	default:
		return 0, fl.err("seek", syscall.EINVAL)
	}
	if base+offset < 0 {
		return 0, fl.err("seek", syscall.EINVAL)
	}
	fl.mu.off = base + offset
	return fl.mu.off, nil
}

// Truncate sets the file's size (EINVAL unless it is open for writing,
// as ftruncate).
func (fl *File) Truncate(size int64) error {
	if err := fl.check("truncate"); err != nil {
		return err
	}
	if fl.dir != nil {
		return fl.err("truncate", syscall.EISDIR)
	}
	ctx, cancel := fl.fs.opCtx()
	defer cancel()
	_, err := fl.h.SetSize(ctx, size)
	return fl.err("truncate", err)
}

// Sync makes everything written before it durable and commits the size
// and mtime (data is durable when WriteAt returns, unless the FS writes
// behind: then Sync waits for it).
func (fl *File) Sync() error { return fl.sync("sync", (*Handle).Sync) }

// DataSync is Sync as fdatasync(2): the data and the file's growth, not
// a change of mtime alone (see Handle.DataSync).
func (fl *File) DataSync() error { return fl.sync("fdatasync", (*Handle).DataSync) }

// sync runs Sync or DataSync of the file's handle; a directory has
// nothing to sync.
func (fl *File) sync(op string, fn func(*Handle, context.Context) error) error {
	if err := fl.check(op); err != nil {
		return err
	}
	if fl.dir != nil {
		return nil
	}
	ctx, cancel := fl.fs.opCtx()
	defer cancel()
	return fl.err(op, fn(fl.h, ctx))
}

// Close commits what was written and ends the open: an unlinked file's
// chunks are deleted when its last open anywhere ends. A second Close
// fails with fs.ErrClosed.
func (fl *File) Close() error {
	if fl.closed.Swap(true) {
		return fl.err("close", fs.ErrClosed)
	}
	if fl.dir != nil {
		return nil
	}
	ctx, cancel := fl.fs.opCtx()
	defer cancel()
	return fl.err("close", fl.h.Release(ctx))
}

// Stat returns the file's FileInfo (with this FS's uncommitted size).
// It works on an unlinked open file too.
func (fl *File) Stat() (fs.FileInfo, error) {
	if err := fl.check("stat"); err != nil {
		return nil, err
	}
	ctx, cancel := fl.fs.opCtx()
	defer cancel()
	a, err := fl.fs.GetAttr(ctx, fl.ino)
	if err != nil {
		return nil, fl.err("stat", err)
	}
	return fileInfo{name: baseName(fl.name), a: a}, nil
}

// ReadDir reads the directory's entries in name order, as
// fs.ReadDirFile: n > 0 returns at most n (io.EOF when none are left),
// n <= 0 all that are left (nil error at the end). A file fails with
// ENOTDIR.
func (fl *File) ReadDir(n int) ([]fs.DirEntry, error) {
	if err := fl.check("readdir"); err != nil {
		return nil, err
	}
	d := fl.dir
	if d == nil {
		return nil, fl.err("readdir", syscall.ENOTDIR)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ctx, cancel := fl.fs.opCtx()
	defer cancel()
	var out []fs.DirEntry
	for n <= 0 || len(out) < n {
		if len(d.buf) == 0 {
			if d.done {
				break
			}
			if err := fl.fill(ctx); err != nil {
				return out, fl.err("readdir", err)
			}
			continue
		}
		out = append(out, dirEntry{f: fl.fs, dir: fl.ino, e: d.buf[0]})
		d.buf = d.buf[1:]
	}
	if n > 0 && len(out) == 0 {
		return nil, io.EOF
	}
	return out, nil
}

// fill reads the next page of entries (under d.mu). (Read permission
// on the directory was checked at open, as open(2) does.)
func (fl *File) fill(ctx context.Context) error {
	d := fl.dir
	ents, next, err := fl.fs.ReadDirPage(ctx, fl.ino, d.cookie, readDirPage)
	if err != nil {
		return err
	}
	d.buf = append(d.buf, ents...)
	d.cookie = next
	d.done = next == ""
	return nil
}
