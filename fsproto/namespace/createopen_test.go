package namespace

import (
	"errors"
	"syscall"
	"testing"
)

// TestCreateOpen: Create with Open counts an open of the file it makes
// or finds, in the one command, as Open would; the file then outlives
// its unlink until the matching Close.
func TestCreateOpen(t *testing.T) {
	ns := New()
	r := mustApply(t, ns, Create{Parent: RootIno, Name: "f", Mode: 0o644, Open: true, Now: 1})
	if !r.Created || !r.Opened || r.Attr.Open != 1 {
		t.Fatalf("create+open of a new file: %+v; want created, opened, 1 open", r)
	}
	ino := r.Attr.Ino
	r = mustApply(t, ns, Create{Parent: RootIno, Name: "f", Open: true, Now: 2})
	if r.Created || !r.Opened || r.Attr.Open != 2 || r.Attr.Ino != ino {
		t.Fatalf("create+open of an existing file: %+v; want not created, opened, 2 opens", r)
	}
	r = ns.ApplyCommand(Create{Parent: RootIno, Name: "f", Excl: true, Open: true, Now: 3})
	if !errors.Is(r.Err, syscall.EEXIST) || r.Opened {
		t.Fatalf("exclusive create+open of an existing file: %+v; want EEXIST, nothing opened", r)
	}
	if a, _ := ns.GetAttr(ino); a.Open != 2 {
		t.Fatalf("a refused create counted an open: %d opens, want 2", a.Open)
	}
	mustApply(t, ns, Extend{Ino: ino, Size: 10, Now: 4})
	mustApply(t, ns, Unlink{Parent: RootIno, Name: "f", Now: 4})
	if r := mustApply(t, ns, Close{Ino: ino}); len(r.Reclaim) != 0 {
		t.Fatalf("the first of two closes reclaimed the unlinked file: %+v", r.Reclaim)
	}
	if _, err := ns.GetAttr(ino); err != nil {
		t.Fatalf("an unlinked file open once more is gone: %v", err)
	}
	if r := mustApply(t, ns, Close{Ino: ino}); len(r.Reclaim) != 1 || !r.Reclaim[0].Removed {
		t.Fatalf("the last close of the unlinked file: reclaim %+v, want it removed", r.Reclaim)
	}
	if _, err := ns.GetAttr(ino); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("the unlinked file outlived its last close: %v", err)
	}
	// A symlink is returned for the caller to follow, and not counted.
	mustApply(t, ns, Symlink{Parent: RootIno, Name: "l", Target: "x", Now: 5})
	if r := mustApply(t, ns, Create{Parent: RootIno, Name: "l", Open: true, Now: 6}); r.Opened || r.Attr.Open != 0 || r.Attr.Type != TypeSymlink {
		t.Fatalf("create+open of a symlink: %+v; want the link, not opened", r)
	}
}
