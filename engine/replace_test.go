package engine

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// wantObject checks obj holds exactly data (live) with the given ids.
func wantObject(t *testing.T, what string, e *Engine, obj ObjectID, data []byte, ids ...AppliedRequest) {
	t.Helper()
	st, err := e.Stat(obj)
	if err != nil {
		t.Fatalf("%s: stat: %v", what, err)
	}
	if st.Size != uint64(len(data)) || st.Deleted {
		t.Fatalf("%s: size %d deleted %v, want %d live", what, st.Size, st.Deleted, len(data))
	}
	if got := mustRead(t, e, obj, 0, len(data)+4096); !bytes.Equal(got, data) {
		t.Fatalf("%s: read %d bytes that differ from the %d expected", what, len(got), len(data))
	}
	wantRequests(t, what, st, ids...)
}

// TestEngineReplace: a write or truncate with Replace leaves the object
// exactly what it makes of an empty one, whatever the object held (data
// beyond it, a tombstone, other ids), also after a log replay; a delete
// cannot replace.
func TestEngineReplace(t *testing.T) {
	fsys, path := memDevice(t, 64<<20, 1<<20)
	e := openMem(t, fsys, path, 2)
	a, b := ObjectID{Lo: 1}, ObjectID{Lo: 2}
	const pg = 3
	if r := e.do(&Request{Op: OpWrite, Object: a, PG: pg, Buf: pattern(1, 200<<10), RequestID: rid(1)}); r.Err != nil {
		t.Fatal(r.Err)
	}
	small := pattern(2, 10<<10)
	ids := []AppliedRequest{{ID: rid(7), Seq: 40}, {ID: rid(8), Seq: 41}}
	r := e.do(&Request{Op: OpWrite, Object: a, PG: pg, PGSeq: 41, Off: 0, Buf: small, Replace: true, ReplaceRequests: true, Requests: ids})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	wantObject(t, "a after a replacing write", e, a, small, ids...)
	if st, _ := e.Stat(a); st.PGSeq != 41 {
		t.Fatalf("seq %d after the replace, want 41", st.PGSeq)
	}

	// A truncate that replaces: zeros, whatever was there.
	if r := e.do(&Request{Op: OpWrite, Object: b, PG: pg, Buf: pattern(3, 8192)}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := e.do(&Request{Op: OpTruncate, Object: b, PG: pg, Off: 5000, Replace: true, ReplaceRequests: true}); r.Err != nil {
		t.Fatal(r.Err)
	}
	wantObject(t, "b after a replacing truncate", e, b, make([]byte, 5000))

	// A tombstone comes back to life as the replacement.
	if _, err := e.Delete(b, pg); err != nil {
		t.Fatal(err)
	}
	if r := e.do(&Request{Op: OpWrite, Object: b, PG: pg, Off: 4096, Buf: []byte("x"), Replace: true}); r.Err != nil {
		t.Fatal(r.Err)
	}
	wantObject(t, "b replaced after its delete", e, b, append(make([]byte, 4096), 'x'))

	if r := e.do(&Request{Op: OpDelete, Object: a, PG: pg, Replace: true}); !errors.Is(r.Err, ErrInvalid) {
		t.Errorf("a delete with Replace: %v, want ErrInvalid", r.Err)
	}

	// The same after replaying the log.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openMem(t, fsys.CrashClean(), path, 2)
	defer e.Close()
	wantObject(t, "a after replay", e, a, small, ids...)
	wantObject(t, "b after replay", e, b, append(make([]byte, 4096), 'x'))
}

// TestEngineReplaceCrash cuts the power while a replacing write is in
// flight: after recovery the object is either what it was or the whole
// replacement (never deleted, never a mix), and the replacement if it had
// been acknowledged before the cut.
func TestEngineReplaceCrash(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 40 // the race detector makes each cut's copy of the device slow
	}
	obj := ObjectID{Hi: 9, Lo: 9}
	const pg = 1
	outcomes := map[string]int{}
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		fsys, path := memDevice(t, 8<<20, 1<<20)
		e := openMem(t, fsys, path, 1)
		old := pattern(uint64(seed), 1+rng.IntN(150<<10))
		if r := e.do(&Request{Op: OpWrite, Object: obj, PG: pg, Buf: old, RequestID: rid(1)}); r.Err != nil {
			t.Fatal(r.Err)
		}
		repl := pattern(uint64(seed)+1000, 1+rng.IntN(100<<10))
		ids := []AppliedRequest{{ID: rid(2), Seq: 50}}
		done := make(chan *Request, 1)
		e.Submit(&Request{Op: OpWrite, Object: obj, PG: pg, PGSeq: 50, Off: uint64(rng.IntN(3)) * 4096, Buf: repl,
			Replace: true, ReplaceRequests: true, Requests: ids, Done: done})
		if d := rng.IntN(4); d > 0 {
			time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
		}
		var acked bool
		var r *Request
		select {
		case r = <-done:
			acked = r.Err == nil
		default:
		}
		crashed := fsys.Crash(int64(seed))
		if r == nil {
			<-done
		}
		e.Close()

		e2, err := Open(Options{Path: path, FS: crashed, Shards: 1, Mode: Interrupt, Logger: quietLogger})
		if err != nil {
			t.Fatalf("seed %d: open after the cut: %v", seed, err)
		}
		st, err := e2.Stat(obj)
		if err != nil {
			t.Fatalf("seed %d: the object is gone after the cut (acked %v): %v", seed, acked, err)
		}
		got := make([]byte, st.Size+1)
		n, err := e2.Read(obj, 0, got)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("seed %d: read: %v", seed, err)
		}
		got = got[:n]
		switch {
		case st.PGSeq == 50:
			want := append(make([]byte, len(got)-len(repl)), repl...)
			if len(got) < len(repl) || !bytes.Equal(got, want) {
				t.Fatalf("seed %d: at the replacement's seq the object holds %d bytes that are not the replacement", seed, len(got))
			}
			wantRequests(t, "after the cut", st, ids...)
			outcomes["replaced"]++
		case acked:
			t.Fatalf("seed %d: the replacement was acknowledged but the object is at seq %d", seed, st.PGSeq)
		case !bytes.Equal(got, old):
			t.Fatalf("seed %d: the object is neither what it was nor the replacement (%d bytes, seq %d)", seed, len(got), st.PGSeq)
		default:
			outcomes["kept"]++
		}
		e2.Close()
	}
	t.Logf("%d cuts: %v", seeds, outcomes)
	if outcomes["replaced"] == 0 || outcomes["kept"] == 0 {
		t.Errorf("every cut had the same outcome %v: the cut points do not vary", outcomes)
	}
}
