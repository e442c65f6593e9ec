package client

import (
	"sync"
	"time"

	"github.com/weftfs/weft/fsproto/namespace"
)

// dirCache remembers, for WithDirCache's time, the directories the path
// API walked through: the name a directory had in its parent and its
// attributes. A path's directories are then resolved from it, and only
// the last component costs a metadata round trip: creating, removing or
// stating a file in a directory is one round trip, not one per component.
//
// What it gives up, as the FUSE mount's entry cache does: a directory
// that another client renamed, removed or chmodded may be walked through
// as it was for up to the cache's time. This FS's own changes are never
// seen stale: every namespace command it applies forgets what it may have
// changed (see forgetFor), and a path op that fails with ENOENT or
// ENOTDIR forgets everything, so a stale entry costs at most one failed
// op. Only directories are cached, only positively, and never the last
// component of a path the caller asks about (Stat returns fresh
// attributes).
//
// Invariant: an entry was looked up after the last forget that could
// concern it: put drops an entry whose lookup started before the latest
// forget (gen), so a walk racing with this FS's own rename cannot put
// back what the rename made stale.
type dirCache struct {
	ttl time.Duration
	mu  struct {
		sync.Mutex
		gen uint64
		m   map[dirKey]cachedDir
	}
}

type dirKey struct {
	parent namespace.Ino
	name   string
}

type cachedDir struct {
	attr  namespace.Attr
	until time.Time
}

// dirCacheMax bounds the entries; a full cache starts over (path walks
// mostly revisit a few directories, so no finer eviction pays).
const dirCacheMax = 4096

func newDirCache(ttl time.Duration) *dirCache {
	c := &dirCache{ttl: ttl}
	c.mu.m = make(map[dirKey]cachedDir)
	return c
}

func (c *dirCache) enabled() bool { return c != nil && c.ttl > 0 }

// get returns parent/name's cached attributes, if fresh.
func (c *dirCache) get(parent namespace.Ino, name string) (namespace.Attr, bool) {
	if !c.enabled() {
		return namespace.Attr{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.mu.m[dirKey{parent, name}]
	if !ok {
		return namespace.Attr{}, false
	}
	if time.Now().After(e.until) {
		delete(c.mu.m, dirKey{parent, name})
		return namespace.Attr{}, false
	}
	return e.attr, true
}

// generation returns the value put needs: take it before the lookup.
func (c *dirCache) generation() uint64 {
	if !c.enabled() {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.gen
}

// put caches a directory looked up at generation gen.
func (c *dirCache) put(gen uint64, parent namespace.Ino, name string, a namespace.Attr) {
	if !c.enabled() || a.Type != namespace.TypeDir {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.mu.gen {
		return
	}
	if len(c.mu.m) >= dirCacheMax {
		clear(c.mu.m)
	}
	c.mu.m[dirKey{parent, name}] = cachedDir{attr: a, until: time.Now().Add(c.ttl)}
}

// forget drops parent/name.
func (c *dirCache) forget(parent namespace.Ino, name string) {
	if !c.enabled() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.gen++
	delete(c.mu.m, dirKey{parent, name})
}

// forgetAll drops every entry.
func (c *dirCache) forgetAll() {
	if !c.enabled() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.gen++
	clear(c.mu.m)
}

// forgetFor drops what cmd may change: the entries it removes or
// renames, and everything when it changes attributes (a directory's
// mode, owner or group: permission checks use them).
func (c *dirCache) forgetFor(cmd namespace.Command) {
	switch cmd := cmd.(type) {
	case namespace.WithCloses:
		c.forgetFor(cmd.Cmd)
	case namespace.Unlink:
		c.forget(cmd.Parent, cmd.Name)
	case namespace.Rmdir:
		c.forget(cmd.Parent, cmd.Name)
	case namespace.Rename:
		c.forget(cmd.SrcParent, cmd.SrcName)
		c.forget(cmd.DstParent, cmd.DstName)
	case namespace.SetAttr:
		if cmd.Mask&(namespace.SetMode|namespace.SetUID|namespace.SetGID) != 0 {
			c.forgetAll()
		}
	}
}
