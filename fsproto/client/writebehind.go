package client

import (
	"context"
	"fmt"
	"math/bits"
	"sync"
	"syscall"
	"time"
)

// Write-behind (WithWriteBehind): WriteAt copies the bytes, starts their
// chunk writes and returns; Flush, Sync and Release wait for them. What
// it keeps, and why each holds:
//
//   - A write in flight is a flight on its inode: bytes [off, end). A
//     write or read that overlaps a flight waits for it, so overlapping
//     writes land in the order WriteAt was called and a read sees every
//     write that returned before it (read-your-writes), without a copy of
//     the data to serve reads from.
//   - A flight holds its inode's io lock shared until it lands, so a
//     truncation (SetSize) or a quota roll-back, which take it
//     exclusively, start only after every earlier write landed and no
//     write lands inside the range they drop.
//   - The size a write grows the file to counts at once (Size, GetAttr,
//     reads), as if the write had landed.
//   - A flight that fails keeps its error on the inode; the next Flush,
//     Sync or Release returns it (as Linux reports writeback errors at
//     fsync or close). It is not retried further: the chunk client has
//     already retried it for the FS's op timeout.
//   - The FS bounds what is in flight (bytes and writes, wbMaxFlights),
//     and each file what is in flight to one chunk (wbMaxPerChunk):
//     WriteAt waits for room, so a fast writer is paced by the cluster.
//   - Close waits for every flight before it commits and closes.

// wbMaxFlights bounds the writes one FS has in flight behind WriteAt:
// past a few dozen, a cluster's writes only queue, and a Sync waits for
// all of them.
const wbMaxFlights = 64

// wbMaxPerChunk bounds the writes one file has in flight to one chunk
// (see claim).
const wbMaxPerChunk = 4

// flight is a write-behind write of bytes [off, end) of its inode; done
// closes when it landed or failed.
type flight struct {
	off, end int64
	done     chan struct{}
}

// budget bounds the bytes and writes in flight behind WriteAt.
type budget struct {
	maxBytes int64
	mu       struct {
		sync.Mutex
		bytes   int64
		flights int
		// freed is closed (and replaced) whenever room is given back.
		freed chan struct{}
	}
}

func newBudget(maxBytes int64) *budget {
	b := &budget{maxBytes: maxBytes}
	b.mu.freed = make(chan struct{})
	return b
}

// take waits until n more bytes fit (a write larger than the whole
// budget fits when nothing else is in flight) and takes them.
func (b *budget) take(ctx context.Context, n int64) error {
	for {
		b.mu.Lock()
		if b.mu.flights == 0 || (b.mu.flights < wbMaxFlights && b.mu.bytes+n <= b.maxBytes) {
			b.mu.bytes += n
			b.mu.flights++
			b.mu.Unlock()
			return nil
		}
		freed := b.mu.freed
		b.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// give returns n bytes taken by one write.
func (b *budget) give(n int64) {
	b.mu.Lock()
	b.mu.bytes -= n
	b.mu.flights--
	close(b.mu.freed)
	b.mu.freed = make(chan struct{})
	b.mu.Unlock()
}

// idle waits until nothing is in flight.
func (b *budget) idle() {
	for {
		b.mu.Lock()
		if b.mu.flights == 0 {
			b.mu.Unlock()
			return
		}
		freed := b.mu.freed
		b.mu.Unlock()
		<-freed
	}
}

// claim waits until no flight of in overlaps [off, end), then registers
// fl, if not nil, in the same critical section as the last check. A
// write (fl not nil) also waits while a chunk it touches (chunk: the
// chunk size) has wbMaxPerChunk flights: the PG's primary runs one
// operation per chunk at a time, so more only queue there, where a
// deep queue outlasts the client's attempt timeout and turns into
// retries.
func (in *inode) claim(ctx context.Context, off, end int64, fl *flight, chunk int64) error {
	for {
		in.mu.Lock()
		var wait chan struct{}
		same := 0
		for _, g := range in.mu.flights {
			if g.off < end && off < g.end {
				wait = g.done
				break
			}
			if fl != nil && g.off/chunk <= (end-1)/chunk && off/chunk <= (g.end-1)/chunk {
				if same++; same >= wbMaxPerChunk {
					wait = g.done
					break
				}
			}
		}
		if wait == nil {
			if fl != nil {
				in.mu.flights = append(in.mu.flights, fl)
			}
			in.mu.Unlock()
			return nil
		}
		in.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return fmt.Errorf("waiting for a write in flight to ino %d: %w", in.ino, ctx.Err())
		}
	}
}

// drain waits for the flights of in that started before it was called
// (later ones do not hold it up, so a steady writer cannot starve a
// Flush).
func (in *inode) drain(ctx context.Context) error {
	in.mu.Lock()
	waits := make([]chan struct{}, len(in.mu.flights))
	for i, g := range in.mu.flights {
		waits[i] = g.done
	}
	in.mu.Unlock()
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			return fmt.Errorf("client: waiting for the writes in flight to ino %d: %w", in.ino, ctx.Err())
		}
	}
	return nil
}

// landed removes fl from in's flights and records err, the first one
// since the last Flush, for Flush, Sync or Release to report.
func (in *inode) landed(fl *flight, err error) {
	in.mu.Lock()
	for i, g := range in.mu.flights {
		if g == fl {
			last := len(in.mu.flights) - 1
			in.mu.flights[i] = in.mu.flights[last]
			in.mu.flights[last] = nil
			in.mu.flights = in.mu.flights[:last]
			break
		}
	}
	in.mu.gen++
	if err != nil && in.mu.werr == nil {
		in.mu.werr = err
	}
	in.mu.Unlock()
	close(fl.done)
}

// writeBehind is WriteAt's write-behind path: it copies p, starts the
// chunk writes and returns once the write is registered (see the notes
// at the top of this file). The error is the caller's to report now
// (quota, closed FS, ctx); the write's own failure comes at Flush.
func (h *Handle) writeBehind(ctx context.Context, p []byte, off int64) error {
	in, f := h.in, h.fs
	n := int64(len(p))
	end := off + n
	if err := f.wb.take(ctx, n); err != nil {
		return err
	}
	in.io.RLock()
	ok := false
	defer func() {
		if !ok {
			in.io.RUnlock()
			f.wb.give(n)
		}
	}()
	if f.closed() {
		return fmt.Errorf("%w: %w", ErrClosed, syscall.EBADF)
	}
	if f.quotaOn() {
		if err := f.reserve(ctx, in, end); err != nil {
			return err
		}
	}
	fl := &flight{off: off, end: end, done: make(chan struct{})}
	if err := in.claim(ctx, off, end, fl, f.chunk); err != nil {
		return err
	}
	buf := getBuf(len(p))
	copy(buf, p)
	in.mu.Lock()
	in.mu.size = max(in.mu.size, end)
	in.mu.gen++
	if !in.mu.dirty {
		in.mu.dirty, in.mu.since = true, time.Now()
	}
	in.mu.pending += n
	in.mu.Unlock()
	ok = true
	go func() {
		// Not the caller's ctx: the write outlives the call. Close
		// waits for it, so the FS's life would not end it either.
		wctx, cancel := context.WithTimeout(context.Background(), f.o.opTimeout)
		err := f.writeData(wctx, f.data, f.chunk, f.o.parallel, in.ino, buf, off)
		cancel()
		if err != nil {
			err = fmt.Errorf("client: write of ino %d at %d (behind): %w", in.ino, off, errnoWrap(err))
			f.log.Warn("a write-behind write failed; the file's next flush, sync or close reports it", "ino", in.ino, "off", off, "len", n, "err", err)
		}
		putBuf(buf)
		in.landed(fl, err)
		in.io.RUnlock()
		f.wb.give(n)
	}()
	return nil
}

// bufPools keep write-behind copies by power-of-two capacity, from 4 KiB
// (index 0) to 16 MiB; larger ones are not pooled.
var bufPools [13]sync.Pool

func bufClass(n int) int {
	if n <= 4096 {
		return 0
	}
	return bits.Len(uint(n-1)) - 12
}

func getBuf(n int) []byte {
	c := bufClass(n)
	if c >= len(bufPools) {
		return make([]byte, n)
	}
	if b, ok := bufPools[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, 4096<<c)
}

func putBuf(b []byte) {
	c := bufClass(cap(b))
	if c >= len(bufPools) || cap(b) != 4096<<c {
		return
	}
	b = b[:cap(b)]
	bufPools[c].Put(&b)
}
