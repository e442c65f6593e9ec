package net

import (
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/ncw/directio"
)

// bufferAlign is the alignment of every pooled buffer: the direct-I/O
// alignment the engine needs (DESIGN: assume 4096 when statx says nothing).
const bufferAlign = 4096

const (
	bufferClassMinShift = 12 // 4 KiB
	bufferClassMaxShift = 30 // 1 GiB = maxPayloadLimit
	bufferClasses       = bufferClassMaxShift - bufferClassMinShift + 1
)

// Buffer is a pooled, 4096-aligned block holding a received payload (or
// any bulk data a caller wants to hand to the engine for an O_DIRECT write
// without copying). Its capacity is a power of two of at least 4 KiB.
//
// A Buffer has exactly one owner at a time. The owner either passes it on
// (the new owner then releases it) or calls Release once, after which it
// must not touch the Buffer or the slices Bytes returned.
type Buffer struct {
	block    []byte // the whole aligned block; len == cap == class size
	n        int    // bytes in use
	pool     *BufferPool
	class    int8
	released atomic.Bool
}

// Bytes returns the data: the first Len bytes of the aligned block. The
// slice is valid until Release.
func (b *Buffer) Bytes() []byte { return b.block[:b.n] }

// Len returns the number of bytes in use.
func (b *Buffer) Len() int { return b.n }

// Cap returns the size of the underlying aligned block.
func (b *Buffer) Cap() int { return len(b.block) }

// SetLen sets the number of bytes in use, 0 <= n <= Cap.
func (b *Buffer) SetLen(n int) {
	if n < 0 || n > len(b.block) {
		panic(fmt.Sprintf("net: Buffer.SetLen(%d) out of range [0, %d]", n, len(b.block)))
	}
	b.n = n
}

// Pool returns the pool the buffer came from.
func (b *Buffer) Pool() *BufferPool { return b.pool }

// Release returns the buffer to its pool. Releasing twice is a bug and
// panics (when the second Release comes before the buffer is reused).
func (b *Buffer) Release() {
	if !b.released.CompareAndSwap(false, true) {
		panic("net: Buffer released twice")
	}
	b.pool.put(b)
}

// BufferPool hands out 4096-aligned buffers in power-of-two size classes
// from 4 KiB to 1 GiB. It is safe for concurrent use. A pool keeps its
// free buffers in sync.Pools, so idle memory is returned to the garbage
// collector over time.
//
// TODO(engine): once the engine registers fixed buffers with io_uring,
// back the classes it uses with arenas allocated at start-up instead of
// sync.Pool; the Buffer API stays.
type BufferPool struct {
	classes [bufferClasses]sync.Pool
	gets    atomic.Uint64
	allocs  atomic.Uint64
	puts    atomic.Uint64
}

// NewBufferPool returns an empty pool.
func NewBufferPool() *BufferPool { return &BufferPool{} }

// defaultBuffers is the pool used by configurations that name none; one
// per process, so buffers flow between connections.
var defaultBuffers = NewBufferPool()

// DefaultBufferPool returns the process-wide pool that clients and
// servers use when their configuration names none.
func DefaultBufferPool() *BufferPool { return defaultBuffers }

// BufferPoolStats counts a pool's traffic.
type BufferPoolStats struct {
	Gets   uint64 // buffers handed out
	Allocs uint64 // of which newly allocated (the rest were reused)
	Puts   uint64 // buffers released back
}

// Stats returns the pool's counters.
func (p *BufferPool) Stats() BufferPoolStats {
	return BufferPoolStats{Gets: p.gets.Load(), Allocs: p.allocs.Load(), Puts: p.puts.Load()}
}

// bufferClass returns the size class for n bytes: the smallest c with
// 1<<(c+bufferClassMinShift) >= n.
func bufferClass(n int) int {
	if n <= 1<<bufferClassMinShift {
		return 0
	}
	return bits.Len(uint(n-1)) - bufferClassMinShift
}

// Get returns a buffer of Len n (0 < n <= 1 GiB), 4096-aligned. The
// contents are not zeroed. The caller owns it and must Release it.
func (p *BufferPool) Get(n int) *Buffer {
	if n <= 0 || n > 1<<bufferClassMaxShift {
		panic(fmt.Sprintf("net: BufferPool.Get(%d) out of range (0, %d]", n, 1<<bufferClassMaxShift))
	}
	c := bufferClass(n)
	p.gets.Add(1)
	b, _ := p.classes[c].Get().(*Buffer)
	if b == nil {
		p.allocs.Add(1)
		b = &Buffer{block: directio.AlignedBlock(1 << (c + bufferClassMinShift)), pool: p, class: int8(c)}
	} else {
		b.released.Store(false)
	}
	b.n = n
	return b
}

func (p *BufferPool) put(b *Buffer) {
	p.puts.Add(1)
	b.n = 0
	p.classes[b.class].Put(b)
}

// isAligned reports whether b starts on a bufferAlign boundary. The
// engine's O_DIRECT writes need it; tests check it.
func isAligned(b []byte) bool {
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))%bufferAlign == 0
}
