package engine

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/weftfs/weft/internal/vfs"
)

// rid returns a request id built from n (never zero).
func rid(n int) RequestID {
	var r RequestID
	r[0], r[1], r[15] = byte(n), byte(n>>8), 0xa5
	return r
}

// mutateID runs one mutation carrying a request id (or a replacement of
// the object's ids) and returns the request after it completed.
func mutateID(t *testing.T, e *Engine, r *Request) *Request {
	t.Helper()
	return e.do(r)
}

func wantRequests(t *testing.T, what string, st ObjectState, want ...AppliedRequest) {
	t.Helper()
	got := st.Applied()
	if fmt.Sprint(got) != fmt.Sprint(want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("%s: request ids %v, want %v", what, got, want)
	}
}

// TestEngineRequestIDs: a mutation's request id joins its object's
// state, the last KeptRequests of them are kept, deletes keep them on the
// tombstone, ReplaceRequests sets them in one batch with its mutation,
// and all of it survives a checkpointed restart and a log replay.
func TestEngineRequestIDs(t *testing.T) {
	fsys, path := memDevice(t, 64<<20, 1<<20)
	e := openMem(t, fsys, path, 2)
	a, b, c := ObjectID{Lo: 1}, ObjectID{Lo: 2}, ObjectID{Lo: 3}
	const pg = 5
	var want []AppliedRequest
	for i := 1; i <= KeptRequests+2; i++ {
		r := &Request{Op: OpWrite, Object: a, PG: pg, Off: uint64(i) * 100, Buf: pattern(uint64(i), 70<<10), RequestID: rid(i)}
		if i == 3 {
			r = &Request{Op: OpTruncate, Object: a, PG: pg, Off: 50, RequestID: rid(i)}
		}
		if mutateID(t, e, r); r.Err != nil {
			t.Fatal(r.Err)
		}
		want = append(want, AppliedRequest{ID: rid(i), Seq: r.ResultSeq})
	}
	// A mutation without an id leaves the ids alone.
	if _, err := e.Write(a, pg, 0, []byte("no id")); err != nil {
		t.Fatal(err)
	}
	want = want[len(want)-KeptRequests:]
	st, err := e.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	wantRequests(t, "a after writes", st, want...)

	// A delete keeps the ids, and its own, on the tombstone.
	if _, err := e.Write(b, pg, 0, []byte("b")); err != nil {
		t.Fatal(err)
	}
	del := mutateID(t, e, &Request{Op: OpDelete, Object: b, PG: pg, RequestID: rid(100)})
	if del.Err != nil {
		t.Fatal(del.Err)
	}
	st, err = e.Stat(b)
	if !errors.Is(err, ErrNotFound) || !st.Deleted || st.PGSeq != del.ResultSeq {
		t.Fatalf("stat of deleted b: %+v %v", st, err)
	}
	wantRequests(t, "b's tombstone", st, AppliedRequest{ID: rid(100), Seq: del.ResultSeq})

	// An install: replace c's ids by the primary's, with the data.
	old := mutateID(t, e, &Request{Op: OpWrite, Object: c, PG: pg, Buf: []byte("divergent"), RequestID: rid(200)})
	if old.Err != nil {
		t.Fatal(old.Err)
	}
	primary := []AppliedRequest{{ID: rid(201), Seq: 40}, {ID: rid(202), Seq: 41}}
	inst := mutateID(t, e, &Request{Op: OpWrite, Object: c, PG: pg, PGSeq: 41, Buf: []byte("primary's"), ReplaceRequests: true, Requests: primary})
	if inst.Err != nil {
		t.Fatal(inst.Err)
	}
	st, _ = e.Stat(c)
	wantRequests(t, "c after install", st, primary...)
	ch, err := e.Changes(pg, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, o := range ch {
		switch o.ID {
		case a:
			wantRequests(t, "Changes: a", o, want...)
			found++
		case c:
			wantRequests(t, "Changes: c", o, primary...)
			found++
		}
	}
	if found != 2 {
		t.Fatalf("Changes lists %d of a and c: %+v", found, ch)
	}
	// A replacement by nothing empties them.
	emptied := ObjectID{Lo: 4}
	if _, err := e.Write(emptied, pg, 0, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if r := mutateID(t, e, &Request{Op: OpDelete, Object: emptied, PG: pg, RequestID: rid(300)}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := mutateID(t, e, &Request{Op: OpDelete, Object: emptied, PG: pg, ReplaceRequests: true}); r.Err != nil {
		t.Fatal(r.Err)
	}
	st, _ = e.Stat(emptied)
	wantRequests(t, "emptied", st)

	// Bad requests are refused and change nothing.
	for name, r := range map[string]*Request{
		"ids without replace": {Op: OpTruncate, Object: a, PG: pg, Requests: primary},
		"too many ids":        {Op: OpTruncate, Object: a, PG: pg, ReplaceRequests: true, Requests: make([]AppliedRequest, KeptRequests+1)},
		"zero id":             {Op: OpTruncate, Object: a, PG: pg, ReplaceRequests: true, Requests: []AppliedRequest{{Seq: 3}}},
	} {
		if mutateID(t, e, r); !errors.Is(r.Err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, r.Err)
		}
	}

	check := func(when string, e *Engine) {
		t.Helper()
		st, err := e.Stat(a)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		wantRequests(t, when+": a", st, want...)
		st, _ = e.Stat(b)
		wantRequests(t, when+": b", st, AppliedRequest{ID: rid(100), Seq: del.ResultSeq})
		st, _ = e.Stat(c)
		wantRequests(t, when+": c", st, primary...)
		st, _ = e.Stat(emptied)
		wantRequests(t, when+": emptied", st)
		if err := e.Verify(); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
	}
	check("live", e)
	// Replay: the log since the last checkpoint (none yet) after a crash
	// that keeps what was flushed, which is everything acknowledged.
	crashed := fsys.Crash(1)
	e.Close()
	e = openMem(t, crashed, path, 2)
	if e.Recovery().BatchesReplayed == 0 {
		t.Fatal("the crash left no log to replay")
	}
	check("after replay", e)
	// Checkpoint: Close writes one, and the reopen replays nothing.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openMem(t, crashed, path, 2)
	defer e.Close()
	if n := e.Recovery().BatchesReplayed; n != 0 {
		t.Fatalf("clean reopen replayed %d batches", n)
	}
	check("after checkpoint", e)

	// A snapshot keeps the ids of its time.
	sn, err := e.Snapshot("ids")
	if err != nil {
		t.Fatal(err)
	}
	if r := mutateID(t, e, &Request{Op: OpTruncate, Object: a, PG: pg, RequestID: rid(400)}); r.Err != nil {
		t.Fatal(r.Err)
	}
	st, _ = sn.Stat(a)
	wantRequests(t, "snapshot of a", st, want...)
	st, err = sn.Stat(b)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("snapshot stat of deleted b: %v", err)
	}
	wantRequests(t, "snapshot of b's tombstone", st, AppliedRequest{ID: rid(100), Seq: del.ResultSeq})
}

// TestEngineRequestIDsSurviveCleaning: objects whose extents the cleaner
// relocates keep their request ids, live, after a log replay and after a
// checkpointed restart.
func TestEngineRequestIDsSurviveCleaning(t *testing.T) {
	fsys, path := memDevice(t, 24<<20, 1<<20)
	open := func(fs *vfs.Mem) *Engine {
		e, err := Open(Options{Path: path, FS: fs, Shards: 1, Mode: Interrupt, Logger: quietLogger,
			Cleaner: CleanerOptions{FreeTarget: 0.6, MaxLiveRatio: 0.95}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := open(fsys)
	const pg = 1
	garbage := ObjectID{Hi: 1}
	var objs []ObjectID
	want := map[ObjectID]AppliedRequest{}
	// Each segment gets a few id'd objects among garbage that is
	// overwritten later, so segments end up mostly dead but not empty:
	// the cleaner's work.
	for i := range 16 {
		obj := ObjectID{Lo: uint64(i + 1)}
		r := mutateID(t, e, &Request{Op: OpWrite, Object: obj, PG: pg, Buf: pattern(uint64(i), 32<<10), RequestID: rid(i + 1)})
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		objs = append(objs, obj)
		want[obj] = AppliedRequest{ID: rid(i + 1), Seq: r.ResultSeq}
		if _, err := e.Write(garbage, pg, 0, pattern(99, 256<<10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	before := extentSegments(e, objs)
	e = open(fsys)
	for i := 0; ; i++ {
		if i == 2000 {
			t.Fatalf("the cleaner relocated no id'd object's extent in %d garbage writes: %+v", i, e.Stats().Shards[0].Cleaner)
		}
		if _, err := e.Write(garbage, pg, 0, pattern(uint64(i), 256<<10)); err != nil {
			t.Fatal(err)
		}
		if i%16 != 15 {
			continue
		}
		// The garbage's segments die whole and free space stays above
		// the level where writes start the cleaner: it cleans when the
		// foreground pauses.
		time.Sleep(3 * cleanerIdle)
		if e.Stats().Shards[0].Cleaner.SegmentsCleaned < 4 {
			continue
		}
		// Stop here to look at the index (no reactor runs then); the
		// crash keeps only what was flushed, the replay's input.
		crashed := fsys.Crash(int64(i))
		e.Close()
		moved := 0
		for obj, segs := range extentSegments(e, objs) {
			if segs != before[obj] {
				moved++
			}
		}
		if moved == 0 {
			fsys = crashed
			e = open(fsys)
			continue
		}
		t.Logf("%d of %d objects relocated after %d garbage writes", moved, len(objs), i+1)
		// Twice: the first open replays the log, its Close checkpoints, and
		// the second open loads that checkpoint.
		for _, fs := range []*vfs.Mem{crashed, crashed} {
			e = open(fs)
			for _, obj := range objs {
				st, err := e.Stat(obj)
				if err != nil {
					t.Fatal(err)
				}
				wantRequests(t, fmt.Sprint(obj), st, want[obj])
				if got := mustRead(t, e, obj, 0, 32<<10); string(got) != string(pattern(uint64(obj.Lo-1), 32<<10)) {
					t.Fatalf("%v reads back wrong", obj)
				}
			}
			if err := e.Verify(); err != nil {
				t.Fatal(err)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
}

// extentSegments lists, per object, the segments its extents live in
// (as a string to compare). e must be closed: its shards are read
// directly.
func extentSegments(e *Engine, objs []ObjectID) map[ObjectID]string {
	out := map[ObjectID]string{}
	for _, obj := range objs {
		var segs []uint32
		e.shardOf(obj).idx.Lookup(obj, 0, 1<<40, func(x Extent) bool {
			segs = append(segs, x.Loc.Segment)
			return true
		})
		out[obj] = fmt.Sprint(segs)
	}
	return out
}

// TestEngineKeepIfAtLeast: a mutation with KeepIfAtLeast is skipped,
// changing nothing, when the object's seq (a tombstone's too) is already
// at least that; applied otherwise; and one submitted right behind a
// mutation of the same object still in flight waits for that one to be
// durable before it decides (here: it is skipped by it).
func TestEngineKeepIfAtLeast(t *testing.T) {
	fsys, path := memDevice(t, 64<<20, 1<<20)
	e := openMem(t, fsys, path, 1)
	a, b := ObjectID{Lo: 1}, ObjectID{Lo: 2}
	const pg = 7
	do := func(r *Request) *Request {
		t.Helper()
		if e.do(r); r.Err != nil {
			t.Fatal(r.Err)
		}
		return r
	}
	do(&Request{Op: OpWrite, Object: a, PG: pg, PGSeq: 5, Buf: []byte("five")})
	if r := do(&Request{Op: OpWrite, Object: a, PG: pg, PGSeq: 5, KeepIfAtLeast: 5, Buf: []byte("FIVE")}); !r.Skipped || r.ResultSeq != 5 {
		t.Fatalf("resent seq 5: skipped %v seq %d, want skipped at 5", r.Skipped, r.ResultSeq)
	}
	if r := do(&Request{Op: OpTruncate, Object: a, PG: pg, PGSeq: 4, KeepIfAtLeast: 4, Off: 1}); !r.Skipped {
		t.Fatal("an older seq's truncate was applied")
	}
	got := make([]byte, 8)
	if n, _ := e.Read(a, 0, got); string(got[:n]) != "five" {
		t.Fatalf("a after skipped mutations: %q", got[:n])
	}
	if r := do(&Request{Op: OpWrite, Object: a, PG: pg, PGSeq: 6, KeepIfAtLeast: 6, Buf: []byte("six!")}); r.Skipped || r.ResultSeq != 6 {
		t.Fatalf("seq 6: skipped %v seq %d, want applied at 6", r.Skipped, r.ResultSeq)
	}
	do(&Request{Op: OpDelete, Object: b, PG: pg, PGSeq: 9})
	if r := do(&Request{Op: OpWrite, Object: b, PG: pg, PGSeq: 9, KeepIfAtLeast: 9, Buf: []byte("b")}); !r.Skipped || r.ResultSeq != 9 {
		t.Fatalf("write at a tombstone's seq: skipped %v seq %d", r.Skipped, r.ResultSeq)
	}
	if _, err := e.Stat(b); !errors.Is(err, ErrNotFound) {
		t.Fatalf("b after a skipped write: %v, want still deleted", err)
	}

	// Two in flight: the second decides on the first's durable state.
	done := make(chan *Request, 2)
	first := &Request{Op: OpWrite, Object: a, PG: pg, PGSeq: 10, Buf: []byte("ten!"), Done: done}
	second := &Request{Op: OpWrite, Object: a, PG: pg, PGSeq: 10, KeepIfAtLeast: 10, Buf: []byte("TEN!"), Done: done}
	e.Submit(first)
	e.Submit(second)
	for range 2 {
		if r := <-done; r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if first.Skipped || !second.Skipped || second.ResultSeq != 10 {
		t.Fatalf("in flight: first skipped %v, second skipped %v at %d", first.Skipped, second.Skipped, second.ResultSeq)
	}
	if n, _ := e.Read(a, 0, got); string(got[:n]) != "ten!" {
		t.Fatalf("a after the pair: %q", got[:n])
	}
}
