package namespace

import (
	"bytes"
	"errors"
	"fmt"
	"syscall"
	"testing"
)

// TestWithCloses: the closes apply first, in order, then the command; a
// close that fails changes nothing and fails nothing; the closes'
// Reclaim entries follow the command's in the Result.
func TestWithCloses(t *testing.T) {
	ns := New()
	a := mustApply(t, ns, Create{Parent: RootIno, Name: "a", Mode: 0o644, Open: true, Now: 1}).Attr.Ino
	b := mustApply(t, ns, Create{Parent: RootIno, Name: "b", Mode: 0o644, Open: true, Now: 1}).Attr.Ino
	mustApply(t, ns, Extend{Ino: a, Size: 100, Now: 2})
	mustApply(t, ns, Unlink{Parent: RootIno, Name: "a", Now: 3})

	// a's last close removes it (a reclaim entry), b's second close
	// fails (EBADF), 999 does not exist (ENOENT); the Create runs after
	// the closes and reports its own result.
	r := ns.ApplyCommand(WithCloses{Closes: []Ino{a, b, b, 999},
		Cmd: Create{Parent: RootIno, Name: "c", Mode: 0o600, Open: true, Now: 4}})
	if r.Err != nil || !r.Created || !r.Opened || r.Attr.Open != 1 {
		t.Fatalf("batch with a create: %+v; want the create's result", r)
	}
	if len(r.Reclaim) != 1 || r.Reclaim[0].Ino != a || !r.Reclaim[0].Removed {
		t.Fatalf("batch reclaims %+v; want a's removal", r.Reclaim)
	}
	if _, err := ns.GetAttr(a); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("a after its last close: %v", err)
	}
	if at, err := ns.GetAttr(b); err != nil || at.Open != 0 {
		t.Fatalf("b after one counted and one failed close: %+v, %v; want 0 opens", at, err)
	}

	// The command's errno is the batch's; the closes still applied.
	c := r.Attr.Ino
	r = ns.ApplyCommand(WithCloses{Closes: []Ino{c}, Cmd: Mkdir{Parent: RootIno, Name: "b", Now: 5}})
	if !errors.Is(r.Err, syscall.EEXIST) {
		t.Fatalf("batch with a refused mkdir: %v, want EEXIST", r.Err)
	}
	if at, _ := ns.GetAttr(c); at.Open != 0 {
		t.Fatalf("c's close in a batch whose command failed: %d opens, want 0", at.Open)
	}

	// Closes alone: an empty success.
	mustApply(t, ns, Open{Ino: c})
	if r := ns.ApplyCommand(WithCloses{Closes: []Ino{c}}); r.Err != nil || r.Attr != (Attr{}) || len(r.Reclaim) != 0 {
		t.Fatalf("closes alone: %+v; want an empty success", r)
	}

	// Closes before the command: an Open of an unlinked file whose last
	// open the batch closes finds it gone, as the two in sequence would.
	mustApply(t, ns, Open{Ino: c})
	mustApply(t, ns, Unlink{Parent: RootIno, Name: "c", Now: 6})
	if r := ns.ApplyCommand(WithCloses{Closes: []Ino{c}, Cmd: Open{Ino: c}}); !errors.Is(r.Err, syscall.ENOENT) {
		t.Fatalf("open after the last close in one batch: %v, want ENOENT", r.Err)
	}
	if err := ns.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestWithClosesReclaimBound: a batch that removes more files than a
// Result may list lists the command's entries and the first closes' up
// to ResultReclaimsMax; every entry stays queued in the namespace, and
// the Result encodes.
func TestWithClosesReclaimBound(t *testing.T) {
	ns := New()
	var inos []Ino
	for i := range ResultReclaimsMax + 3 {
		name := fmt.Sprint("f", i)
		ino := mustApply(t, ns, Create{Parent: RootIno, Name: name, Open: true, Now: 1}).Attr.Ino
		mustApply(t, ns, Extend{Ino: ino, Size: 10, Now: 2})
		mustApply(t, ns, Unlink{Parent: RootIno, Name: name, Now: 3})
		inos = append(inos, ino)
	}
	trunc := mustApply(t, ns, Create{Parent: RootIno, Name: "t", Now: 4}).Attr.Ino
	mustApply(t, ns, Extend{Ino: trunc, Size: 50, Now: 5})
	r := ns.ApplyCommand(WithCloses{Closes: inos, Cmd: SetAttr{Ino: trunc, Mask: SetSize, Size: 1, Now: 6}})
	if r.Err != nil || len(r.Reclaim) != ResultReclaimsMax {
		t.Fatalf("batch of %d removals and a truncation: %d reclaims listed, err %v; want %d", len(inos), len(r.Reclaim), r.Err, ResultReclaimsMax)
	}
	if r.Reclaim[0].Ino != trunc || r.Reclaim[0].Removed || r.Reclaim[1].Ino != inos[0] {
		t.Fatalf("listed %+v; want the truncation first, then the closes in order", r.Reclaim[:2])
	}
	if got := len(ns.Reclaims()); got != len(inos)+1 {
		t.Fatalf("%d entries queued, want %d", got, len(inos)+1)
	}
	if _, err := AppendResult(nil, r); err != nil {
		t.Fatalf("a bounded batch result does not encode: %v", err)
	}
}

// TestWithClosesRefusedWhole: a batch the decoder would refuse, given to
// ApplyCommand, fails with ErrCorrupt and changes nothing (its closes
// included).
func TestWithClosesRefusedWhole(t *testing.T) {
	ns := New()
	ino := mustApply(t, ns, Create{Parent: RootIno, Name: "f", Open: true, Now: 1}).Attr.Ino
	before, _ := ns.Snapshot()
	for _, c := range []WithCloses{
		{},
		{Closes: make([]Ino, ClosesMax+1)},
		{Closes: []Ino{ino}, Cmd: Close{Ino: ino}},
		{Closes: []Ino{ino}, Cmd: WithCloses{Closes: []Ino{ino}}},
	} {
		if r := ns.ApplyCommand(c); !errors.Is(r.Err, ErrCorrupt) {
			t.Errorf("%d closes, command %T: %v, want ErrCorrupt", len(c.Closes), c.Cmd, r.Err)
		}
	}
	if after, _ := ns.Snapshot(); !bytes.Equal(before, after) {
		t.Fatal("a refused batch changed the state")
	}
}
