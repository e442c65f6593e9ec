package client

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/weftfs/weft/fsproto/meta"
	"github.com/weftfs/weft/fsproto/namespace"
)

// Reclaimer deletes the chunks of file data the namespace no longer
// refers to (its Reclaim entries) and then proposes Reclaimed for each.
// The node runs one per container on the metadata leader (see the
// package doc); Release and SetSize use one for the entries their own
// commands queued.
type Reclaimer struct {
	// Data reaches the container's chunks (a key that may delete).
	Data *Container
	// Meta reaches the container's namespace (to read a file's current
	// size and to propose Reclaimed).
	Meta *meta.Client
	// ChunkSize is the container's chunk size (Data.ChunkSize()).
	ChunkSize int64
	// Parallel bounds the chunk requests in flight (default 16).
	Parallel int
}

// Run reclaims entries in order and stops at the first failure (what it
// finished is marked done; the rest stays queued for the next Run).
//
// For a removed file (Removed), every chunk up to the range's end goes.
// For a truncation, only bytes at or past the file's CURRENT size go,
// never below it: the file may have grown back over the range since the
// entry was queued. NB: a write that grows the file between Run's
// GetAttr and its deletes can still lose bytes past the size Run read;
// the truncating client deletes the range itself before it reports
// success, so the reclaimer only repeats work that a crashed client left,
// and runs on entries as old as the leader's queue.
func (r *Reclaimer) Run(ctx context.Context, entries []namespace.Reclaim) error {
	if r.ChunkSize <= 0 {
		return fmt.Errorf("client: reclaimer chunk size %d: %w", r.ChunkSize, syscall.EINVAL)
	}
	par := r.Parallel
	if par <= 0 {
		par = 16
	}
	for _, e := range entries {
		from, to := int64(e.From), int64(e.To)
		if e.Removed {
			from = 0
		} else {
			a, err := r.Meta.GetAttr(ctx, e.Ino)
			switch {
			case err == nil:
				from = max(from, int64(a.Size))
			case errors.Is(err, syscall.ENOENT):
				// Gone since: its own Removed entry covers the rest, and
				// this range goes now.
			default:
				return fmt.Errorf("client: reclaim %d (ino %d): %w", e.ID, e.Ino, errnoWrap(err))
			}
		}
		if err := deleteRange(ctx, r.Data, r.ChunkSize, par, e.Ino, from, to); err != nil {
			return fmt.Errorf("client: reclaim %d (ino %d, bytes %d..%d): %w", e.ID, e.Ino, from, to, errnoWrap(err))
		}
		// ENOENT: another reclaimer (the client that queued the entry,
		// or the leader's loop) finished it first; both deleted the same
		// chunks, so it is done either way.
		if _, err := r.Meta.Apply(ctx, namespace.Reclaimed{ID: e.ID}); err != nil && !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("client: reclaim %d: marking it done: %w", e.ID, errnoWrap(err))
		}
	}
	return nil
}
