package client

import (
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/namespace"
)

func TestDirCacheUnit(t *testing.T) {
	dir := func(ino namespace.Ino) namespace.Attr { return namespace.Attr{Ino: ino, Type: namespace.TypeDir} }
	c := newDirCache(time.Hour)
	g := c.generation()
	c.put(g, 1, "d", dir(5))
	c.put(g, 1, "f", namespace.Attr{Ino: 6, Type: namespace.TypeFile})
	if a, ok := c.get(1, "d"); !ok || a.Ino != 5 {
		t.Fatalf("get d: %v %v", a, ok)
	}
	if _, ok := c.get(1, "f"); ok {
		t.Fatal("a file was cached")
	}

	// A lookup that started before a forget does not put back what the
	// forget dropped.
	stale := c.generation()
	c.forgetFor(namespace.Rename{SrcParent: 1, SrcName: "d", DstParent: 5, DstName: "e"})
	if _, ok := c.get(1, "d"); ok {
		t.Fatal("renamed source still cached")
	}
	c.put(stale, 1, "d", dir(5))
	if _, ok := c.get(1, "d"); ok {
		t.Fatal("a lookup older than the rename was cached")
	}

	for _, cmd := range []namespace.Command{
		namespace.Unlink{Parent: 1, Name: "d"},
		namespace.Rmdir{Parent: 1, Name: "d"},
		namespace.WithCloses{Cmd: namespace.Rmdir{Parent: 1, Name: "d"}},
		namespace.Rename{SrcParent: 9, SrcName: "x", DstParent: 1, DstName: "d"},
		namespace.SetAttr{Ino: 77, Mask: namespace.SetMode},
	} {
		c.put(c.generation(), 1, "d", dir(5))
		c.forgetFor(cmd)
		if _, ok := c.get(1, "d"); ok {
			t.Errorf("%T %+v left 1/d cached", cmd, cmd)
		}
	}
	c.put(c.generation(), 1, "d", dir(5))
	c.forgetFor(namespace.SetAttr{Ino: 5, Mask: namespace.SetMtime})
	if _, ok := c.get(1, "d"); !ok {
		t.Error("a SetAttr of times only dropped the cache")
	}

	short := newDirCache(time.Nanosecond)
	short.put(short.generation(), 1, "d", dir(5))
	time.Sleep(time.Millisecond)
	if _, ok := short.get(1, "d"); ok {
		t.Error("an expired entry was returned")
	}
	off := newDirCache(0)
	off.put(off.generation(), 1, "d", dir(5))
	if _, ok := off.get(1, "d"); ok {
		t.Error("a disabled cache returned an entry")
	}
}
