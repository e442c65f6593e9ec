package journal

import (
	"testing"

	"github.com/weftfs/weft/internal/vfs"
)

// TestAppendLazy: a lazy record costs no write of its own, is lost by a
// power cut that comes before anything waited for it, and is durable,
// in order, once a later Append, a Sync or Close made its batch durable.
func TestAppendLazy(t *testing.T) {
	reopen := func(t *testing.T, fs *vfs.Mem) (*Journal, []Record) {
		t.Helper()
		j, err := Open(Options{FS: fs, Dir: "/wal"})
		if err != nil {
			t.Fatal(err)
		}
		return j, collect(t, j, 0)
	}
	lazy := func(t *testing.T, j *Journal, typ uint16) {
		t.Helper()
		if _, err := j.AppendLazy(typ, payload(uint64(typ), 100)); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("lost by a crash", func(t *testing.T) {
		fs := vfs.NewMem()
		j, _ := reopen(t, fs)
		if _, err := j.Append(1, nil); err != nil {
			t.Fatal(err)
		}
		batches := j.Stats().Batches
		lazy(t, j, 2)
		lazy(t, j, 3)
		if st := j.Stats(); st.Batches != batches || st.DurableSeq != 1 {
			t.Fatalf("lazy records were written: %d batches (was %d), durable to %d", st.Batches, batches, st.DurableSeq)
		}
		crashed := fs.Crash(1)
		j.Close()
		j, recs := reopen(t, crashed)
		defer j.Close()
		if len(recs) != 1 || recs[0].Seq != 1 {
			t.Fatalf("after the crash: %d records (%v); want only the waited-for one", len(recs), recs)
		}
	})
	for _, how := range []string{"append", "sync", "close"} {
		t.Run("durable after "+how, func(t *testing.T) {
			fs := vfs.NewMem()
			j, _ := reopen(t, fs)
			lazy(t, j, 1)
			lazy(t, j, 2)
			want := 2
			switch how {
			case "append":
				if _, err := j.Append(3, nil); err != nil {
					t.Fatal(err)
				}
				want = 3
			case "sync":
				if err := j.Sync(); err != nil {
					t.Fatal(err)
				}
			case "close":
				if err := j.Close(); err != nil {
					t.Fatal(err)
				}
			}
			crashed := fs.Crash(2)
			if how != "close" {
				j.Close()
			}
			j, recs := reopen(t, crashed)
			defer j.Close()
			if len(recs) != want {
				t.Fatalf("%d records after the crash, want %d: %v", len(recs), want, recs)
			}
			for i, r := range recs {
				if r.Seq != uint64(i+1) || r.Type != uint16(i+1) {
					t.Fatalf("record %d: seq %d type %d", i, r.Seq, r.Type)
				}
			}
		})
	}
	t.Run("a full buffer is written", func(t *testing.T) {
		fs := vfs.NewMem()
		j, err := Open(Options{FS: fs, Dir: "/wal", BatchBytesMax: 8 << 10})
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		for i := range 200 { // far more than one buffer: must not block
			if _, err := j.AppendLazy(1, payload(uint64(i), 100)); err != nil {
				t.Fatal(err)
			}
		}
		if j.Stats().Batches == 0 {
			t.Fatal("no batch written although the lazy records overflowed the buffer")
		}
	})
}
