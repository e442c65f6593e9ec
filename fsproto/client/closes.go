package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/weftfs/weft/fsproto/meta"
	"github.com/weftfs/weft/fsproto/namespace"
)

// Pending closes. Handle.Release does not commit its namespace.Close:
// it queues the inode here, and the FS's next metadata op carries the
// queued closes in the same Raft entry (namespace.WithCloses), so a
// create-close loop costs one commit per file instead of two. When no op
// comes within the close delay, the closer sends them alone; FS.Close
// sends what is left.

// closesPerBatch bounds the closes one command carries, so that the
// Reclaim entries they may queue fit in its Result beside the command's
// own (at most two): every entry is then listed and deleted promptly by
// this FS rather than left to the leader's reclaimer.
const closesPerBatch = namespace.ResultReclaimsMax - 2

// queueClose queues the Close of a released handle's open and wakes the
// closer. It fails once FS.Close sent the last closes.
func (f *FS) queueClose(ino namespace.Ino) error {
	f.mu.Lock()
	if f.mu.closesShut {
		f.mu.Unlock()
		return fmt.Errorf("client: release of ino %d after the FS closed; the open stays counted: %w: %w", ino, ErrClosed, syscall.EBADF)
	}
	f.mu.closes = append(f.mu.closes, ino)
	f.mu.Unlock()
	select {
	case f.closeWake <- struct{}{}:
	default:
	}
	return nil
}

// takeCloses removes and returns the oldest pending closes, at most
// closesPerBatch.
func (f *FS) takeCloses() []namespace.Ino {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := min(len(f.mu.closes), closesPerBatch)
	if n == 0 {
		return nil
	}
	out := slices.Clone(f.mu.closes[:n])
	f.mu.closes = slices.Delete(f.mu.closes, 0, n)
	return out
}

// closesSent settles the closes an op carried, given the op's outcome,
// and returns the op's own Reclaim entries: res.Reclaim without those of
// the closes, which go to the background queue (the caller must not wait
// for their deletion, nor mark them done: a truncation deletes and marks
// its own entries). A close's entry is a removal (Removed) of one of the
// closed inodes; a removal by the command itself of such an inode (an
// Unlink after its last close) goes to the same queue, as the command's
// removals do anyway.
//
// When the op certainly did not apply (the key is read-only: the servers
// refused it before proposing) the closes go back on the queue. Any other
// failure may hide an applied op: meta.Client retries an ambiguous
// outcome with the same request id until its ctx ends, so an error here
// is either a refusal that came before anything applied or an ended ctx
// with the outcome unknown. Sending the closes again could then count
// one close twice and end someone else's open, so they are dropped and
// their opens may stay counted (as when a Close failed before).
func (f *FS) closesSent(closes []namespace.Ino, res namespace.Result, err error) []namespace.Reclaim {
	var ne *namespace.Error
	switch {
	case errors.Is(err, meta.ErrReadOnly):
		f.requeueCloses(closes)
		return res.Reclaim
	case err != nil && !errors.As(err, &ne):
		f.log.Warn("an op carrying closes failed; if it did not apply, their opens stay counted",
			"closes", len(closes), "err", err)
		return res.Reclaim
	}
	var own, closed []namespace.Reclaim
	for _, r := range res.Reclaim {
		if r.Removed && slices.Contains(closes, r.Ino) {
			closed = append(closed, r)
		} else {
			own = append(own, r)
		}
	}
	f.queueReclaim(closed)
	return own
}

// requeueCloses puts closes that did not apply back at the head of the
// queue.
func (f *FS) requeueCloses(closes []namespace.Ino) {
	f.mu.Lock()
	shut := f.mu.closesShut
	if !shut {
		f.mu.closes = append(slices.Clone(closes), f.mu.closes...)
	}
	f.mu.Unlock()
	if shut {
		f.log.Warn("closes not applied after the FS closed; their opens stay counted", "closes", len(closes))
		return
	}
	select {
	case f.closeWake <- struct{}{}:
	default:
	}
}

// closer sends the pending closes that no op took within the close
// delay of being woken, until Close. A send in flight is not cut short
// by Close (which waits for it): an interrupted one would leave its
// closes' outcome unknown, and they could not be sent again.
func (f *FS) closer() {
	defer close(f.closerDone)
	for {
		select {
		case <-f.life.Done():
			return
		case <-f.closeWake:
		}
		t := time.NewTimer(f.o.closeDelay)
		select {
		case <-f.life.Done():
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(f.life), f.o.opTimeout)
		f.sendCloses(ctx, false)
		cancel()
	}
}

// sendCloses commits the pending closes on their own (WithCloses without
// a command) until none is left or one batch fails, and hands their
// Reclaim entries to the background queue. final (FS.Close) also shuts
// the queue once it is empty, or drops what is left when a batch failed.
// A batch that failed is dropped, as closesSent says: it may have
// applied, and a batch refused for the key would be refused again.
func (f *FS) sendCloses(ctx context.Context, final bool) {
	for {
		closes := f.takeCloses()
		if len(closes) == 0 {
			f.mu.Lock()
			if final && len(f.mu.closes) == 0 {
				f.mu.closesShut = true
			}
			n := len(f.mu.closes)
			f.mu.Unlock()
			if !final || n == 0 {
				return
			}
			continue
		}
		res, err := f.meta.Apply(ctx, namespace.WithCloses{Closes: closes})
		if err != nil {
			f.log.Warn("sending closes failed; if they did not apply, their opens stay counted",
				"closes", len(closes), "err", err)
			if final {
				f.mu.Lock()
				dropped := len(f.mu.closes)
				f.mu.closes, f.mu.closesShut = nil, true
				f.mu.Unlock()
				if dropped > 0 {
					f.log.Warn("FS closing: closes not sent; their opens stay counted", "closes", dropped)
				}
			}
			return
		}
		f.queueReclaim(res.Reclaim)
	}
}
