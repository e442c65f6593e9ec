package client

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

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
	// Grace postpones a truncation entry while its file changed (its
	// ctime, the leader's clock) less than Grace ago: the client that
	// truncated deletes the range itself and marks the entry done, and
	// a client writing past the committed size meanwhile holds bytes a
	// reclaimer must not delete. 0 means DefaultGrace; negative, none.
	// Entries of removed files never wait (their inode is gone).
	Grace time.Duration
}

// DefaultGrace is Reclaimer.Grace's default: far longer than a live
// client takes to delete what it truncated and to commit its writes'
// growth (its flush interval, 1 s by default).
const DefaultGrace = 10 * time.Second

// Run reclaims entries in order and stops at the first failure (what it
// finished is marked done; the rest stays queued for the next Run).
// Entries within their grace are skipped and stay queued.
//
// For a removed file (Removed), every chunk up to the range's end goes.
// For a truncation, only bytes at or past the file's CURRENT size go,
// never below it: the file may have grown back over the range since the
// entry was queued. A long deletion re-reads the file's attributes every
// deleteBatch chunks and leaves the entry queued when the file changed.
// NB: bytes a client writes while Run deletes and has not committed yet
// (at most its flush interval, plus one batch) can still be lost; the
// grace and the re-reads make that need a truncating client that crashed
// before it deleted and a writer that starts right then.
func (r *Reclaimer) Run(ctx context.Context, entries []namespace.Reclaim) error {
	if r.ChunkSize <= 0 {
		return fmt.Errorf("client: reclaimer chunk size %d: %w", r.ChunkSize, syscall.EINVAL)
	}
	par := r.Parallel
	if par <= 0 {
		par = 16
	}
	grace := r.Grace
	if grace == 0 {
		grace = DefaultGrace
	}
	for _, e := range entries {
		from, to := int64(e.From), int64(e.To)
		var between func(context.Context) error
		if e.Removed {
			from = 0
		} else {
			a, err := r.Meta.GetAttr(ctx, e.Ino)
			switch {
			case err == nil:
				if grace > 0 && time.Since(time.Unix(0, a.Ctime)) < grace {
					continue
				}
				from = max(from, int64(a.Size))
				// A long deletion checks, between batches, that the file
				// has not changed since (a truncation, a commit of
				// growth, a chmod: anything moves ctime); if it has, the
				// entry waits for a later Run, which starts over from
				// the size then.
				between = func(ctx context.Context) error {
					b, err := r.Meta.GetAttr(ctx, e.Ino)
					if err != nil {
						return err
					}
					if b.Ctime != a.Ctime || b.Size != a.Size {
						return errFileChanged
					}
					return nil
				}
			case errors.Is(err, syscall.ENOENT):
				// Gone since: its own Removed entry covers the rest, and
				// this range goes now.
			default:
				return fmt.Errorf("client: reclaim %d (ino %d): %w", e.ID, e.Ino, errnoWrap(err))
			}
		}
		err := deleteRange(ctx, r.Data, r.ChunkSize, par, e.Ino, from, to, between)
		if errors.Is(err, errFileChanged) {
			continue
		}
		if err != nil {
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

// errFileChanged stops a truncation entry's deletion when the file
// changed during it.
var errFileChanged = errors.New("client: the file changed during its reclamation")
