package client

import (
	"context"

	"github.com/weftfs/weft/fsproto/namespace"
)

// DeleteRange exposes deleteRange to the cluster tests (package
// client_test, which may import the nodes).
func DeleteRange(ctx context.Context, f *FS, ino namespace.Ino, from, to int64, between func(context.Context) error) error {
	return deleteRange(ctx, f.data, f.chunk, f.o.parallel, ino, from, to, between)
}

// SetDeleteBatch sets deleteBatch for a test and returns the restore.
func SetDeleteBatch(n int64) (restore func()) {
	old := deleteBatchTest.Swap(n)
	return func() { deleteBatchTest.Store(old) }
}

// ErrFileChanged is errFileChanged.
var ErrFileChanged = errFileChanged

// WrapWrites puts wrap around every chunk write of f's file writes
// (WriteAt, write-behind included): wrap gets the write's inode, offset
// and length and the write itself, which it may delay, skip or fail.
func WrapWrites(f *FS, wrap func(ino namespace.Ino, off int64, n int, write func() error) error) {
	inner := f.writeData
	f.writeData = func(ctx context.Context, ct *Container, chunk int64, par int, ino namespace.Ino, p []byte, off int64) error {
		return wrap(ino, off, len(p), func() error { return inner(ctx, ct, chunk, par, ino, p, off) })
	}
}
