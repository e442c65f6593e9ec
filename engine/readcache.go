package engine

import "container/list"

// readCache keeps the data of records a shard read from the device,
// verified, so that reading them again costs a copy instead of a device
// read: a record is the unit (a read that touches part of one caches all
// of it). It belongs to its shard's reactor: no lock.
//
// A record is named by where it lies: its segment, the segment's
// generation and its offset. Records are never written over in place, and
// a segment that is freed and taken again gets a new generation from the
// device's allocator, so an entry can never name other bytes than it holds:
// stale entries (of freed segments, or of extents the index dropped) are
// simply never asked for again and age out. A hit is verified against the
// index's checksum like a device read (a flipped bit in memory is caught,
// and the entry dropped).
//
// Eviction is least recently used, by bytes. A shard without a cache has
// a nil *readCache, and asks nothing of it (shard.cachesRead).
type readCache struct {
	capacity, bytes int
	lru             list.List // of *cacheEntry, most recent first
	m               map[cacheKey]*list.Element
}

type cacheKey struct {
	gen    uint64
	seg    uint32
	offset uint32
}

type cacheEntry struct {
	key  cacheKey
	data []byte
}

func newReadCache(capacity int) *readCache {
	if capacity <= 0 {
		return nil
	}
	return &readCache{capacity: capacity, m: make(map[cacheKey]*list.Element)}
}

// get returns the record's data, if cached.
func (c *readCache) get(k cacheKey) ([]byte, bool) {
	el, ok := c.m[k]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(el)
	return el.Value.(*cacheEntry).data, true
}

// put caches a copy of rec, the record's whole data, evicting the least
// recently used records to make room. Records larger than an eighth of
// the cache are not kept: one would push out many small ones.
func (c *readCache) put(k cacheKey, rec []byte) {
	if len(rec) > c.capacity/8 {
		return
	}
	if _, ok := c.m[k]; ok {
		return
	}
	var reuse []byte // an evicted record's buffer of the same size
	for c.bytes+len(rec) > c.capacity {
		if d := c.drop(c.lru.Back()); len(d) == len(rec) {
			reuse = d
		}
	}
	if reuse == nil {
		reuse = make([]byte, len(rec))
	}
	copy(reuse, rec)
	c.m[k] = c.lru.PushFront(&cacheEntry{key: k, data: reuse})
	c.bytes += len(reuse)
}

// forget drops the record named k, if cached.
func (c *readCache) forget(k cacheKey) {
	if el, ok := c.m[k]; ok {
		c.drop(el)
	}
}

// drop evicts el and returns its data, for reuse.
func (c *readCache) drop(el *list.Element) []byte {
	e := el.Value.(*cacheEntry)
	c.lru.Remove(el)
	delete(c.m, e.key)
	c.bytes -= len(e.data)
	return e.data
}
