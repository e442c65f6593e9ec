package engine

import (
	"errors"
	"testing"
)

// TestForgetTombstones: tombstones in the range go, from the object table
// and the change list, and stay gone across a checkpoint and a restart;
// live objects, tombstones outside the range and the one holding the PG's
// highest seq stay; PGSeq is unchanged by the restart. The objects span
// several forget steps per shard.
func TestForgetTombstones(t *testing.T) {
	fsys, path := memDevice(t, 256<<20, 1<<20)
	e := openMem(t, fsys, path, 2)
	defer func(step int) { forgetStep = step }(forgetStep)
	forgetStep = 50
	const pg, n = 5, 300
	obj := func(i int) ObjectID { return ObjectID{Hi: 9, Lo: uint64(i)} }
	// Objects 0..n-1 written at seqs 1..n; then every odd one deleted
	// at seqs n+1..; then object 0 deleted last, at the PG's top seq.
	data := []byte("x")
	for i := range n {
		r := &Request{Op: OpWrite, Object: obj(i), PG: pg, PGSeq: uint64(i + 1), Buf: data}
		if e.do(r); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	seq := uint64(n)
	delSeq := map[int]uint64{}
	for i := 1; i < n; i += 2 {
		seq++
		r := &Request{Op: OpDelete, Object: obj(i), PG: pg, PGSeq: seq}
		if e.do(r); r.Err != nil {
			t.Fatal(r.Err)
		}
		delSeq[i] = seq
	}
	seq++
	if r := (&Request{Op: OpDelete, Object: obj(0), PG: pg, PGSeq: seq}); e.do(r).Err != nil {
		t.Fatal(r.Err)
	}
	top := seq
	// Forget the tombstones of the first three quarters of the deletes,
	// and everything up to the top for another PG (nothing of ours).
	upTo := uint64(n) + uint64(len(delSeq))*3/4
	if k, err := e.ForgetTombstones(pg+1, 0, top); err != nil || k != 0 {
		t.Fatalf("forget in an empty pg: %d, %v", k, err)
	}
	k, err := e.ForgetTombstones(pg, 0, upTo)
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		want := 0
		for i, s := range delSeq {
			st, err := e.Stat(obj(i))
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s: stat of deleted object %d: %v", when, i, err)
			}
			forgotten := st.Version == 0
			if forgotten != (s <= upTo) {
				t.Fatalf("%s: object %d deleted at seq %d (forget up to %d): state %+v", when, i, s, upTo, st)
			}
			if forgotten {
				want++
			}
		}
		if k != want {
			t.Fatalf("%s: forget reported %d, %d tombstones are gone", when, k, want)
		}
		for i := 2; i < n; i += 2 {
			if got := mustRead(t, e, obj(i), 0, 1); string(got) != "x" {
				t.Fatalf("%s: live object %d reads %q", when, i, got)
			}
		}
		if st, err := e.Stat(obj(0)); !errors.Is(err, ErrNotFound) || st.PGSeq != top || !st.Deleted {
			t.Fatalf("%s: the top tombstone: %+v, %v", when, st, err)
		}
		if got := e.PGSeq(pg); got != top {
			t.Fatalf("%s: PGSeq %d, want %d", when, got, top)
		}
		ch, err := e.Changes(pg, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := n - k; len(ch) != want {
			t.Fatalf("%s: %d changes listed, want %d", when, len(ch), want)
		}
	}
	check("after forget")
	// Forgetting the same range again finds nothing.
	if k2, err := e.ForgetTombstones(pg, 0, upTo); err != nil || k2 != 0 {
		t.Fatalf("second forget: %d, %v", k2, err)
	}
	if e.ForgetFloor(pg) != upTo {
		t.Fatalf("floor %d after forgetting up to %d", e.ForgetFloor(pg), upTo)
	}
	if k2, err := e.ForgetTombstones(pg, 0, upTo); err != nil || k2 != 0 {
		t.Fatalf("second forget: %d, %v", k2, err)
	}
	if err := e.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openMem(t, fsys, path, 2)
	defer e.Close()
	if e.ForgetFloor(pg) != 0 {
		t.Fatalf("a reopened engine has floor %d: the caller keeps floors", e.ForgetFloor(pg))
	}
	check("after restart")
	var forgot uint64
	for _, s := range e.Stats().Shards {
		forgot += s.TombstonesForgotten
	}
	if forgot != 0 {
		t.Fatalf("a fresh engine counts %d forgotten tombstones", forgot)
	}
	if k, err := e.ForgetTombstones(pg, upTo, top); err != nil || k != len(delSeq)-len(delSeq)*3/4 {
		t.Fatalf("forget of the rest: %d, %v (the top tombstone must stay)", k, err)
	}
	if st, err := e.Stat(obj(0)); !errors.Is(err, ErrNotFound) || st.PGSeq != top {
		t.Fatalf("the top tombstone went: %+v, %v", st, err)
	}
	// KeepIfAtLeast takes a forgotten object to be at the floor: an old
	// mutation the tombstone would have made skip still skips, a newer
	// one applies.
	keep := func(i int, seq uint64) bool {
		t.Helper()
		r := &Request{Op: OpWrite, Object: obj(i), PG: pg, PGSeq: seq, KeepIfAtLeast: seq, Buf: data}
		if e.do(r); r.Err != nil {
			t.Fatal(r.Err)
		}
		return r.Skipped
	}
	e.SetForgetFloor(pg, 1) // never lowers it
	if e.ForgetFloor(pg) != top {
		t.Fatalf("floor %d after forgetting up to %d", e.ForgetFloor(pg), top)
	}
	if !keep(1, upTo) {
		t.Fatalf("a write at the floor %d to a forgotten object applied", upTo)
	}
	if keep(1, top+1) {
		t.Fatal("a write above the floor to a forgotten object was skipped")
	}
}
