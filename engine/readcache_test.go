package engine

import (
	"bytes"
	"testing"

	"github.com/ncw/directio"
)

// TestReadCache: a record read once is read again from memory, whole or in
// part; a cached record that no longer matches its checksum is dropped and
// read from the device; a rewritten range reads the new data; a record
// larger than an eighth of the cache is not kept.
func TestReadCache(t *testing.T) {
	fsys, path := memDevice(t, 32<<20, 1<<20)
	e, err := Open(Options{Path: path, FS: fsys, Shards: 1, Mode: Interrupt, Logger: quietLogger, ReadCacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	obj := ObjectID{Lo: 3}
	data := pattern(3, 64<<10)
	b := directio.AlignedBlock(len(data))
	copy(b, data)
	if _, err := e.Write(obj, 0, 0, b); err != nil {
		t.Fatal(err)
	}
	st := func() ShardStats { return e.Stats().Shards[0] }
	read := func(off, n uint64) (devReads, hits uint64) {
		t.Helper()
		s0 := st()
		if got := mustRead(t, e, obj, off, int(n)); !bytes.Equal(got, data[off:off+n]) {
			t.Fatalf("read [%d,+%d): bytes differ", off, n)
		}
		s1 := st()
		return s1.DeviceReads - s0.DeviceReads, s1.ReadCacheHits - s0.ReadCacheHits
	}
	if d, h := read(20<<10, 4096); d != 1 || h != 0 {
		t.Fatalf("first read: %d device reads, %d hits; want 1, 0", d, h)
	}
	if d, h := read(17<<10, 8192); d != 0 || h != 1 {
		t.Fatalf("second read in the same record: %d device reads, %d hits; want 0, 1", d, h)
	}
	if got := st().ReadCacheBytes; got != 16<<10 {
		t.Errorf("cache holds %d bytes, want one 16 KiB record", got)
	}
	// The whole object: one record from memory, the other three read
	// from the device and cached.
	if d, h := read(0, 64<<10); d == 0 || h != 1 {
		t.Fatalf("whole read: %d device reads, %d hits; want some, 1", d, h)
	}
	if d, h := read(0, 64<<10); d != 0 || h != 4 {
		t.Fatalf("whole read again: %d device reads, %d hits; want 0, 4", d, h)
	}

	// Memory gone bad: the entry is dropped and the device read instead.
	// (The reactor is idle between requests; the request queue orders
	// this write before its next look at the cache.)
	for _, el := range e.shards[0].cache.m {
		el.Value.(*cacheEntry).data[5] ^= 0xff
	}
	if d, h := read(0, 64<<10); d == 0 || h != 0 {
		t.Fatalf("after the cached records were damaged: %d device reads, %d hits; want the device, no hits", d, h)
	}
	if d, h := read(0, 64<<10); d != 0 || h != 4 {
		t.Fatalf("read after the damaged entries were replaced: %d device reads, %d hits; want 0, 4", d, h)
	}

	// A rewrite: the new bytes, whatever the cache held.
	patch := pattern(4, 16<<10)
	copy(b, patch)
	if _, err := e.Write(obj, 0, 16<<10, b[:16<<10]); err != nil {
		t.Fatal(err)
	}
	copy(data[16<<10:], patch)
	if d, _ := read(0, 64<<10); d == 0 {
		t.Fatal("the rewritten record came from the cache")
	}
	read(0, 64<<10)

	// Records over an eighth of the cache are not kept; the least
	// recently used go first.
	big := newReadCache(64 << 10)
	big.put(cacheKey{seg: 1}, make([]byte, 16<<10))
	if big.bytes != 0 {
		t.Errorf("a 16 KiB record went into a 64 KiB cache")
	}
	c := newReadCache(64 << 10)
	for i := range 9 {
		c.put(cacheKey{seg: 1, offset: uint32(i)}, make([]byte, 8<<10))
	}
	if _, ok := c.get(cacheKey{seg: 1, offset: 0}); ok || c.bytes != 64<<10 {
		t.Errorf("after 9 puts of 8 KiB into 64 KiB: oldest kept %v, %d bytes held", ok, c.bytes)
	}
}
