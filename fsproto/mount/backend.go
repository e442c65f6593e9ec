package mount

import (
	"context"

	"github.com/weftfs/weft/fsproto/namespace"
)

// backend is what the FUSE layer needs from a container's file system:
// client.FS's inode API (see clientBackend). The interface keeps the FUSE
// code independent of how the namespace and the chunks are reached, so the
// same code is tested over a cluster and over an in-process namespace.
//
// Like client.FS, a backend reports its own unflushed growth of a file in
// GetAttr and Lookup (read-your-writes), and commits it at the latest at
// Flush, Sync or Release.
//
// Errors carry a syscall.Errno (errors.As) where POSIX rules refused the
// call; anything else maps to EIO (errno).
type backend interface {
	Lookup(ctx context.Context, parent namespace.Ino, name string) (namespace.Attr, error)
	GetAttr(ctx context.Context, ino namespace.Ino) (namespace.Attr, error)
	// Apply runs one metadata command; a POSIX refusal may come back as
	// the error or as Result.Err.
	Apply(ctx context.Context, cmd namespace.Command) (namespace.Result, error)
	ReadDirPage(ctx context.Context, dir namespace.Ino, cookie string, limit int) ([]namespace.DirEntry, string, error)
	Readlink(ctx context.Context, ino namespace.Ino) (string, error)
	GetXattr(ctx context.Context, ino namespace.Ino, name string) ([]byte, error)
	ListXattr(ctx context.Context, ino namespace.Ino) ([]string, error)
	StatFS(ctx context.Context) (usage, error)
	// OpenIno opens ino's data; the open counts in the namespace, so an
	// unlinked file stays readable until Release.
	OpenIno(ctx context.Context, ino namespace.Ino, writable bool) (handle, error)
	// CreateOpen runs c with Open set: a regular file it makes or
	// finds is opened in the same commit (handle not nil); for another
	// type the handle is nil and nothing is counted.
	CreateOpen(ctx context.Context, c namespace.Create, writable bool) (namespace.Result, handle, error)
}

// handle is an open file's data path: client.Handle.
type handle interface {
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
	WriteAt(ctx context.Context, p []byte, off int64) (int, error)
	SetSize(ctx context.Context, size int64) (namespace.Attr, error)
	Flush(ctx context.Context) error
	Sync(ctx context.Context) error
	// DataSync is Sync for fdatasync(2): a change of mtime alone need
	// not be committed.
	DataSync(ctx context.Context) error
	Release(ctx context.Context) error
	// Size is the file's size as this client sees it: the namespace's
	// at open (or at its last commit) grown by this client's writes.
	Size() int64
}

// usage is what statfs reports: the namespace's counts and quotas, and
// the bytes the cluster could still store for the container when it has
// no byte quota (0: unknown).
type usage struct {
	namespace.StatFS
	FreeBytes uint64
}
