package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/namespace"
)

// chunkIndexMax bounds a chunk index (fsproto.ChunkID: index < 2^24); a
// file byte whose chunk would be past it fails with EFBIG.
const chunkIndexMax = 1 << 24

// span is the part of a file request that one chunk request serves:
// buffer bytes [lo, hi) are bytes [off, off+hi-lo) of chunk k.
type span struct {
	k      uint64
	off    uint32
	lo, hi int
}

// split cuts the n bytes at file offset off into chunk requests of at
// most fsproto.MaxReadBytes, none crossing a chunk boundary.
func split(off int64, n int, chunk int64) []span {
	var out []span
	for lo := 0; lo < n; {
		pos := off + int64(lo)
		k, in := pos/chunk, pos%chunk
		m := min(int64(n-lo), chunk-in, fsproto.MaxReadBytes)
		out = append(out, span{k: uint64(k), off: uint32(in), lo: lo, hi: lo + int(m)})
		lo += int(m)
	}
	return out
}

// each runs fn(ctx, i) for i in [0, n) with at most par calls at a time,
// and returns the first error (the others are cancelled through ctx).
// One call runs on the caller's goroutine.
func each(ctx context.Context, par, n int, fn func(ctx context.Context, i int) error) error {
	if n == 1 {
		return fn(ctx, 0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	work := func() {
		defer wg.Done()
		for {
			mu.Lock()
			i := next
			next++
			stop := first != nil
			mu.Unlock()
			if i >= n || stop {
				return
			}
			if err := fn(ctx, i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
					cancel()
				}
				mu.Unlock()
				return
			}
		}
	}
	w := min(par, n)
	wg.Add(w)
	for range w {
		go work()
	}
	wg.Wait()
	return first
}

// readChunks fills p with file bytes [off, off+len(p)) of ino. A chunk
// that does not exist, or ends before a requested byte, reads as zeros:
// the caller bounds the request by the file's size.
func readChunks(ctx context.Context, ct *Container, chunk int64, par int, ino namespace.Ino, p []byte, off int64) error {
	sp := split(off, len(p), chunk)
	return each(ctx, par, len(sp), func(ctx context.Context, i int) error {
		s := sp[i]
		b := p[s.lo:s.hi]
		n, err := ct.Read(ctx, uint64(ino), s.k, s.off, b)
		switch {
		case errors.Is(err, fsproto.ErrNotFound):
			clear(b)
		case errors.Is(err, io.EOF):
			clear(b[n:])
		case err != nil:
			return err
		}
		return nil
	})
}

// writeChunks writes p at file offset off of ino; every chunk write is
// durable on every replica of its PG's epoch when it returns nil.
func writeChunks(ctx context.Context, ct *Container, chunk int64, par int, ino namespace.Ino, p []byte, off int64) error {
	sp := split(off, len(p), chunk)
	return each(ctx, par, len(sp), func(ctx context.Context, i int) error {
		s := sp[i]
		_, err := ct.Write(ctx, uint64(ino), s.k, s.off, p[s.lo:s.hi])
		return err
	})
}

// deleteBatch is how many chunk deletions deleteRange sends between two
// calls of its between check.
const deleteBatch = 256

// deleteBatchTest, when positive, replaces deleteBatch (tests; atomic
// because the nodes of a test cluster reclaim in the same process).
var deleteBatchTest atomic.Int64

// deleteRange removes file bytes [from, to) of ino from its chunks: the
// chunk holding from is truncated to from (unless from starts it), every
// later chunk up to the one holding to-1 is deleted. Missing chunks cost
// a request each (the chunk protocol has no listing), so the cost is the
// range's length in chunks, holes included. between, if not nil, runs
// before every batch of deleteBatch deletions after the first; its error
// stops the deletion and is returned.
func deleteRange(ctx context.Context, ct *Container, chunk int64, par int, ino namespace.Ino, from, to int64, between func(context.Context) error) error {
	if from >= to {
		return nil
	}
	first := from / chunk
	if in := from % chunk; in != 0 && first < chunkIndexMax {
		if _, err := ct.Truncate(ctx, uint64(ino), uint64(first), uint32(in)); err != nil {
			return err
		}
		first++
	}
	last := min((to+chunk-1)/chunk, chunkIndexMax) // exclusive
	batch := int64(deleteBatch)
	if n := deleteBatchTest.Load(); n > 0 {
		batch = n
	}
	for lo := first; lo < last; lo += batch {
		if lo > first && between != nil {
			if err := between(ctx); err != nil {
				return err
			}
		}
		hi := min(lo+batch, last)
		err := each(ctx, par, int(hi-lo), func(ctx context.Context, i int) error {
			_, err := ct.Delete(ctx, uint64(ino), uint64(lo)+uint64(i))
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// checkExtent returns EFBIG when bytes up to end (exclusive) do not fit a
// file: past namespace.FileSizeMax or past the last chunk index.
func checkExtent(end, chunk int64) error {
	if end > namespace.FileSizeMax || (end > 0 && (end-1)/chunk >= chunkIndexMax) {
		return fmt.Errorf("client: file end %d past the limit (%d bytes, or %d chunks of %d): %w",
			end, int64(namespace.FileSizeMax), chunkIndexMax, chunk, syscall.EFBIG)
	}
	return nil
}
