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
