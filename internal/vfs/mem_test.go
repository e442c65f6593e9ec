package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand"
	"path"
	"slices"
	"strings"
	"testing"
)

// crashSeeds is how many seeds the crash tests draw.
const crashSeeds = 200

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeAt(t *testing.T, f File, p []byte, off int64) {
	t.Helper()
	if n, err := f.WriteAt(p, off); err != nil || n != len(p) {
		t.Fatalf("WriteAt(%d bytes, %d) = %d, %v", len(p), off, n, err)
	}
}

// content returns the content of name in m, and whether it exists.
func content(t *testing.T, m *Mem, name string) ([]byte, bool) {
	t.Helper()
	if _, err := m.Stat(name); errors.Is(err, fs.ErrNotExist) {
		return nil, false
	} else if err != nil {
		t.Fatal(err)
	}
	return readAll(t, m, name), true
}

// dump returns every file under dir in fsys, by path, with its content,
// and every directory, with "<dir>" as content.
func dump(t *testing.T, fsys FS, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(dir string)
	walk = func(dir string) {
		names, err := fsys.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			p := path.Join(dir, n)
			if _, err := fsys.ReadDir(p); err == nil {
				out[p] = "<dir>"
				walk(p)
				continue
			}
			out[p] = string(readAll(t, fsys, p))
		}
	}
	walk(dir)
	return out
}

// checkSectors fails unless every sector of got is the same sector of old or
// of new (both read as extended with zeros), and got's size is between
// theirs.
func checkSectors(t *testing.T, seed int64, got, old, new []byte) {
	t.Helper()
	lo, hi := min(len(old), len(new)), max(len(old), len(new))
	if len(got) < lo || len(got) > hi {
		t.Fatalf("seed %d: size %d, want between %d and %d", seed, len(got), lo, hi)
	}
	pad := func(b []byte) []byte { return append(bytes.Clone(b), make([]byte, hi-len(b))...) }
	old, new = pad(old), pad(new)
	for s := 0; s < len(got); s += SectorSize {
		e := min(s+SectorSize, len(got))
		if !bytes.Equal(got[s:e], old[s:e]) && !bytes.Equal(got[s:e], new[s:e]) {
			t.Fatalf("seed %d: sector at %d is neither the old nor the new bytes", seed, s)
		}
	}
}

// TestMemCrashSyncedSurvives: data and names made durable survive every
// crash, whatever happens after them.
func TestMemCrashSyncedSurvives(t *testing.T) {
	m := NewMem()
	must(t, m.MkdirAll("/db"))
	synced := pattern(3*SectorSize+100, 1)
	f := mustCreate(t, m, "/db/f", synced)
	must(t, f.Sync())
	must(t, m.SyncDir("/db"))
	// After the sync: writes past the synced bytes, a new file, a removal
	// and a truncate that all may or may not survive.
	writeAt(t, f, pattern(5000, 2), int64(len(synced)))
	must(t, f.Truncate(int64(len(synced)+10)))
	writeAt(t, f, pattern(700, 3), int64(len(synced)+2000))
	g := mustCreate(t, m, "/db/g", []byte("unsynced"))
	must(t, m.Remove("/db/g"))
	closeOK(t, g)
	for seed := range int64(crashSeeds) {
		c := m.Crash(seed)
		got, ok := content(t, c, "/db/f")
		if !ok {
			t.Fatalf("seed %d: synced file vanished", seed)
		}
		if len(got) < len(synced) || !bytes.Equal(got[:len(synced)], synced) {
			t.Fatalf("seed %d: synced bytes changed", seed)
		}
	}
}

// TestMemCrashUnsyncedWrites: each unsynced write comes back whole, torn
// at sector boundaries, or not at all, and all three happen.
func TestMemCrashUnsyncedWrites(t *testing.T) {
	m := NewMem()
	old := pattern(2048, 1)
	f := mustCreate(t, m, "/f", old)
	must(t, f.Sync())
	must(t, m.SyncDir("/"))
	// One write inside the file, starting and ending mid-sector, and one
	// that extends it.
	writeAt(t, f, pattern(900, 2), 100)
	writeAt(t, f, pattern(2500, 3), 1500)
	newData := readAll(t, m, "/f")
	outcomes := map[string]int{}
	for seed := range int64(crashSeeds) {
		got, ok := content(t, m.Crash(seed), "/f")
		if !ok {
			t.Fatalf("seed %d: file vanished", seed)
		}
		checkSectors(t, seed, got, old, newData)
		switch {
		case bytes.Equal(got, old):
			outcomes["absent"]++
		case bytes.Equal(got, newData):
			outcomes["whole"]++
		default:
			outcomes["torn"]++
		}
	}
	for _, o := range []string{"absent", "whole", "torn"} {
		if outcomes[o] == 0 {
			t.Errorf("no crash in %d seeds left the writes %s: %v", crashSeeds, o, outcomes)
		}
	}
}

// TestMemCrashTornPieces: a torn write keeps a random subset of its
// sector pieces, not a prefix: some crash keeps a later piece without an
// earlier one.
func TestMemCrashTornPieces(t *testing.T) {
	m := NewMem()
	f := mustCreate(t, m, "/f", make([]byte, 4*SectorSize))
	must(t, f.Sync())
	must(t, m.SyncDir("/"))
	writeAt(t, f, bytes.Repeat([]byte{1}, 4*SectorSize), 0)
	for seed := range int64(crashSeeds) {
		got, _ := content(t, m.Crash(seed), "/f")
		if got[0] == 0 && got[3*SectorSize] == 1 {
			return
		}
	}
	t.Errorf("no crash in %d seeds kept the last sector of a write without the first", crashSeeds)
}

// TestMemCrashNamespace: a creation, removal or rename not followed by
// SyncDir survives some crashes and not others; after SyncDir, it always
// survives.
func TestMemCrashNamespace(t *testing.T) {
	m := NewMem()
	must(t, m.MkdirAll("/d"))
	closeOK(t, mustCreate(t, m, "/d/old", []byte("old")))
	closeOK(t, mustCreate(t, m, "/d/moved", []byte("m")))
	must(t, m.SyncDir("/d"))
	f := mustCreate(t, m, "/d/new", []byte("synced data"))
	must(t, f.Sync()) // the data is durable, the name is not
	closeOK(t, f)
	must(t, m.Remove("/d/old"))
	must(t, m.Rename("/d/moved", "/d/moved2"))
	closeOK(t, mustCreate(t, m, "/d/new2", nil))

	count := map[string]int{}
	for seed := range int64(crashSeeds) {
		c := m.Crash(seed)
		names, err := c.ReadDir("/d")
		must(t, err)
		for _, n := range names {
			count[n]++
		}
		// A rename within one directory is atomic.
		if slices.Contains(names, "moved") == slices.Contains(names, "moved2") {
			t.Fatalf("seed %d: rename not atomic: %q", seed, names)
		}
		if got, ok := content(t, c, "/d/new"); ok && string(got) != "synced data" {
			t.Fatalf("seed %d: /d/new holds %q", seed, got)
		}
	}
	for _, n := range []string{"new", "old", "moved", "moved2", "new2"} {
		if count[n] == 0 || count[n] == crashSeeds {
			t.Errorf("%s present after %d of %d crashes; want some but not all", n, count[n], crashSeeds)
		}
	}

	must(t, m.SyncDir("/d"))
	want := []string{"moved2", "new", "new2"}
	for seed := range int64(crashSeeds) {
		names, err := m.Crash(seed).ReadDir("/d")
		must(t, err)
		if !slices.Equal(names, want) {
			t.Fatalf("seed %d: after SyncDir, names %q, want %q", seed, names, want)
		}
	}
}

// TestMemCrashAtomicReplace: the write-temp, sync, rename, SyncDir pattern
// gives the old or the new file, never a mix, and only the new one after
// SyncDir.
func TestMemCrashAtomicReplace(t *testing.T) {
	m := NewMem()
	closeOK(t, mustCreate(t, m, "/CURRENT", []byte("v1")))
	must(t, m.SyncDir("/"))
	// CURRENT's data was never synced, only its name: it may be empty.
	tmp := mustCreate(t, m, "/CURRENT.tmp", []byte("v2"))
	must(t, tmp.Sync())
	closeOK(t, tmp)
	must(t, m.Rename("/CURRENT.tmp", "/CURRENT"))
	seen := map[string]bool{}
	for seed := range int64(crashSeeds) {
		got, ok := content(t, m.Crash(seed), "/CURRENT")
		if !ok {
			t.Fatalf("seed %d: CURRENT vanished", seed)
		}
		seen[string(got)] = true
	}
	if !seen["v2"] || len(seen) < 2 {
		t.Errorf("before SyncDir, CURRENT held %q; want v2 and an older state", slices.Sorted(maps.Keys(seen)))
	}
	must(t, m.SyncDir("/"))
	for seed := range int64(crashSeeds) {
		if got, _ := content(t, m.Crash(seed), "/CURRENT"); string(got) != "v2" {
			t.Fatalf("seed %d: after SyncDir, CURRENT holds %q", seed, got)
		}
	}
}

// TestMemCrashCrossDirRename: a rename between directories is durable
// once both directories are synced.
func TestMemCrashCrossDirRename(t *testing.T) {
	m := NewMem()
	must(t, m.MkdirAll("/a"))
	must(t, m.MkdirAll("/b"))
	f := mustCreate(t, m, "/a/f", []byte("x"))
	must(t, f.Sync())
	must(t, m.SyncDir("/a"))
	must(t, m.Rename("/a/f", "/b/f"))
	must(t, m.SyncDir("/b"))
	must(t, m.SyncDir("/a"))
	for seed := range int64(crashSeeds) {
		c := m.Crash(seed)
		if _, ok := content(t, c, "/a/f"); ok {
			t.Fatalf("seed %d: old name survived", seed)
		}
		if got, ok := content(t, c, "/b/f"); !ok || string(got) != "x" {
			t.Fatalf("seed %d: new name holds %q, %v", seed, got, ok)
		}
	}
}

func TestMemCrashTruncate(t *testing.T) {
	m := NewMem()
	f := mustCreate(t, m, "/f", pattern(3000, 1))
	must(t, f.Sync())
	must(t, m.SyncDir("/"))
	must(t, f.Truncate(1000))
	sizes := map[int]int{}
	for seed := range int64(crashSeeds) {
		got, _ := content(t, m.Crash(seed), "/f")
		if !bytes.Equal(got, pattern(3000, 1)[:len(got)]) {
			t.Fatalf("seed %d: content changed", seed)
		}
		sizes[len(got)]++
	}
	if len(sizes) != 2 || sizes[1000] == 0 || sizes[3000] == 0 {
		t.Errorf("sizes after crash: %v; want 1000 and 3000", sizes)
	}
}

// TestMemCrashDeterministic: the same seed gives the same state; different
// seeds give different states.
func TestMemCrashDeterministic(t *testing.T) {
	m := NewMem()
	must(t, m.MkdirAll("/x/y"))
	for i, name := range []string{"/x/a", "/x/b", "/x/y/c", "/top"} {
		f := mustCreate(t, m, name, pattern(4000+i*700, byte(i)))
		if i%2 == 0 {
			must(t, f.Sync())
		}
		writeAt(t, f, pattern(3000, byte(10+i)), int64(1000*i+13))
		must(t, f.Truncate(int64(5000+i*111)))
		writeAt(t, f, pattern(2000, byte(20+i)), int64(300*i))
	}
	must(t, m.SyncDir("/x"))
	must(t, m.Rename("/x/a", "/x/y/a"))
	must(t, m.Remove("/top"))
	distinct := map[string]bool{}
	for seed := range int64(50) {
		a, b := dump(t, m.Crash(seed), "/"), dump(t, m.Crash(seed), "/")
		if !maps.Equal(a, b) {
			t.Fatalf("seed %d: two crashes differ", seed)
		}
		distinct[fmt.Sprint(a)] = true
	}
	if len(distinct) < 10 {
		t.Errorf("50 seeds gave only %d distinct states", len(distinct))
	}
}

// TestMemCrashClean: CrashClean keeps exactly what was synced.
func TestMemCrashClean(t *testing.T) {
	m := NewMem()
	must(t, m.MkdirAll("/d/sub"))
	f := mustCreate(t, m, "/d/f", []byte("synced"))
	must(t, f.Sync())
	must(t, m.SyncDir("/d"))
	writeAt(t, f, []byte("SYNCED and more"), 0)
	must(t, f.Truncate(3))
	g := mustCreate(t, m, "/d/g", []byte("g"))
	must(t, g.Sync()) // data durable, name not
	closeOK(t, mustCreate(t, m, "/d/sub/h", nil))
	must(t, m.SyncDir("/d/sub")) // name durable, no data
	want := map[string]string{"/d": "<dir>", "/d/f": "synced", "/d/sub": "<dir>", "/d/sub/h": ""}
	c := m.CrashClean()
	if got := dump(t, c, "/"); !maps.Equal(got, want) {
		t.Errorf("CrashClean = %q, want %q", got, want)
	}
	// Everything in the crashed copy is durable: a second CrashClean
	// changes nothing.
	if got := dump(t, c.CrashClean(), "/"); !maps.Equal(got, want) {
		t.Errorf("CrashClean of CrashClean = %q, want %q", got, want)
	}
}

// TestMemCrashIndependent: the crashed copy and the original do not share
// state, and the copy holds no locks or open Files.
func TestMemCrashIndependent(t *testing.T) {
	m := NewMem()
	l, err := m.Lock("/LOCK")
	must(t, err)
	must(t, m.SyncDir("/"))
	f := mustCreate(t, m, "/f", []byte("orig"))
	must(t, f.Sync())
	must(t, m.SyncDir("/"))
	c := m.CrashClean()
	cl, err := c.Lock("/LOCK")
	if err != nil {
		t.Fatalf("Lock in the crashed copy: %v", err)
	}
	closeOK(t, cl)
	if _, err := m.Lock("/LOCK"); !errors.Is(err, ErrLocked) {
		t.Errorf("the original lost its lock: %v", err)
	}
	cf, err := c.OpenRW("/f", false)
	must(t, err)
	writeAt(t, cf, []byte("COPY"), 0)
	writeAt(t, f, []byte("ORIG-more"), 0)
	if got := readAll(t, m, "/f"); string(got) != "ORIG-more" {
		t.Errorf("original holds %q", got)
	}
	if got := readAll(t, c, "/f"); string(got) != "COPY" {
		t.Errorf("copy holds %q", got)
	}
	closeOK(t, cf)
	closeOK(t, f)
	closeOK(t, l)
	if err := l.Close(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("second Close of a lock: %v, want ErrClosed", err)
	}
}

// TestMemFaultOps: each Op reaches the fault function with the name the
// caller gave, and the error says which operation failed, on what, and
// wraps the injected error.
func TestMemFaultOps(t *testing.T) {
	setup := func(t *testing.T) (*Mem, File) {
		m := NewMem()
		must(t, m.MkdirAll("/d"))
		f := mustCreate(t, m, "/d/f", []byte("data"))
		return m, f
	}
	for _, c := range []struct {
		op   Op
		name string
		do   func(m *Mem, f File) error
	}{
		{OpCreate, "/d/new", func(m *Mem, _ File) error { _, err := m.Create("/d/new", false); return err }},
		{OpOpen, "/d/f", func(m *Mem, _ File) error { _, err := m.Open("/d/f"); return err }},
		{OpOpen, "/d/f", func(m *Mem, _ File) error { _, err := m.OpenRW("/d/f", false); return err }},
		{OpRead, "/d/f", func(_ *Mem, f File) error { _, err := f.ReadAt(make([]byte, 1), 0); return err }},
		{OpWrite, "/d/f", func(_ *Mem, f File) error { _, err := f.WriteAt([]byte("x"), 0); return err }},
		{OpSync, "/d/f", func(_ *Mem, f File) error { return f.Sync() }},
		{OpTruncate, "/d/f", func(_ *Mem, f File) error { return f.Truncate(1) }},
		{OpRemove, "/d/f", func(m *Mem, _ File) error { return m.Remove("/d/f") }},
		{OpRename, "/d/f", func(m *Mem, _ File) error { return m.Rename("/d/f", "/d/g") }},
		{OpSyncDir, "/d", func(m *Mem, _ File) error { return m.SyncDir("/d") }},
		{OpMkdir, "/d/e", func(m *Mem, _ File) error { return m.MkdirAll("/d/e") }},
		{OpLock, "/d/LOCK", func(m *Mem, _ File) error { _, err := m.Lock("/d/LOCK"); return err }},
		{OpReadDir, "/d", func(m *Mem, _ File) error { _, err := m.ReadDir("/d"); return err }},
		{OpStat, "/d/f", func(m *Mem, _ File) error { _, err := m.Stat("/d/f"); return err }},
	} {
		t.Run(c.op.String(), func(t *testing.T) {
			m, f := setup(t)
			var calls []string
			m.SetFault(func(op Op, name string) error {
				calls = append(calls, fmt.Sprintf("%s %s", op, name))
				if op == c.op {
					return ErrInjected
				}
				return nil
			})
			err := c.do(m, f)
			wantErrIs(t, c.op.String(), err, ErrInjected)
			want := fmt.Sprintf("vfs: %s %s: %s", c.op, c.name, ErrInjected)
			if err != nil && err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
			if !slices.Equal(calls, []string{c.op.String() + " " + c.name}) {
				t.Errorf("fault function saw %q", calls)
			}
			if got := m.Stats().Injected; got != 1 {
				t.Errorf("Stats().Injected = %d, want 1", got)
			}
			m.SetFault(nil)
			// Nothing changed (a write may tear; it is checked elsewhere).
			if c.op != OpWrite {
				want := map[string]string{"/d": "<dir>", "/d/f": "data"}
				if got := dump(t, m, "/"); !maps.Equal(got, want) {
					t.Errorf("after failed %s: %q, want %q", c.op, got, want)
				}
			}
			if err := c.do(m, f); err != nil {
				t.Errorf("after SetFault(nil): %v", err)
			}
		})
	}
}

func TestFaultHelpers(t *testing.T) {
	run := func(fault func(Op, string) error, ops ...Op) string {
		var s strings.Builder
		for _, op := range ops {
			if err := fault(op, "x"); err == nil {
				s.WriteByte('.')
			} else if err == ErrInjected {
				s.WriteByte('F')
			} else {
				s.WriteByte('?')
			}
		}
		return s.String()
	}
	w, s := OpWrite, OpSync
	for _, c := range []struct {
		name  string
		fault func(Op, string) error
		ops   []Op
		want  string
	}{
		{"FailNth(write, 3)", FailNth(OpWrite, 3), []Op{w, s, w, s, w, s, w, w}, "....F..."},
		{"FailNth(sync, 1)", FailNth(OpSync, 1), []Op{w, s, s, w, s}, ".F..."},
		{"FailAfter(write, 2)", FailAfter(OpWrite, 2), []Op{w, w, s, w, s, w}, "...F.F"},
		{"FailAfter(sync, 0)", FailAfter(OpSync, 0), []Op{w, s, s}, ".FF"},
		{"FailRandom(p=0)", FailRandom(1, OpWrite, 0), []Op{w, w, w, w}, "...."},
		{"FailRandom(p=1)", FailRandom(1, OpWrite, 1), []Op{w, s, w, s}, "F.F."},
	} {
		if got := run(c.fault, c.ops...); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	ops := slices.Repeat([]Op{OpWrite, OpSync}, 500)
	a, b := run(FailRandom(7, OpWrite, 0.5), ops...), run(FailRandom(7, OpWrite, 0.5), ops...)
	if a != b {
		t.Error("FailRandom with the same seed fails different operations")
	}
	if n := strings.Count(a, "F"); n < 200 || n > 300 {
		t.Errorf("FailRandom(p=0.5) failed %d of 500 writes", n)
	}
	for i := 1; i < len(a); i += 2 {
		if a[i] != '.' {
			t.Fatal("FailRandom failed an operation of another kind")
		}
	}
}

// TestMemFaultTornWrite: a write failed by injection may leave any subset
// of its sectors, as unsynced writes that CrashClean drops.
func TestMemFaultTornWrite(t *testing.T) {
	old := bytes.Repeat([]byte{'a'}, 8*SectorSize)
	newData := bytes.Repeat([]byte{'b'}, 8*SectorSize)
	kinds := map[string]int{}
	for seed := range int64(50) {
		m := NewMem()
		m.SetSeed(seed)
		f := mustCreate(t, m, "/f", old)
		must(t, f.Sync())
		must(t, m.SyncDir("/"))
		m.SetFault(FailNth(OpWrite, 1))
		n, err := f.WriteAt(newData, 0)
		if n != 0 || !errors.Is(err, ErrInjected) {
			t.Fatalf("seed %d: failed WriteAt = %d, %v", seed, n, err)
		}
		got := readAll(t, m, "/f")
		checkSectors(t, seed, got, old, newData)
		switch {
		case bytes.Equal(got, old):
			kinds["none"]++
		case bytes.Equal(got, newData):
			kinds["all"]++
		default:
			kinds["some"]++
		}
		if got := readAll(t, m.CrashClean(), "/f"); !bytes.Equal(got, old) {
			t.Fatalf("seed %d: CrashClean kept part of a failed write", seed)
		}
		if st := m.Stats(); st.Writes != 1 || st.BytesWritten != int64(len(old)) {
			t.Fatalf("seed %d: failed write counted: %+v", seed, st)
		}
	}
	if kinds["some"] == 0 {
		t.Errorf("no failed write in 50 seeds was torn: %v", kinds)
	}
}

// TestMemFailedSync: a Sync failed by injection leaves the writes before
// it unsynced; a later successful Sync makes them durable.
func TestMemFailedSync(t *testing.T) {
	m := NewMem()
	f := mustCreate(t, m, "/f", []byte("old!"))
	must(t, f.Sync())
	must(t, m.SyncDir("/"))
	writeAt(t, f, []byte("new!"), 0)
	m.SetFault(FailNth(OpSync, 1))
	if err := f.Sync(); !errors.Is(err, ErrInjected) {
		t.Fatalf("Sync = %v, want injected failure", err)
	}
	if got := readAll(t, m.CrashClean(), "/f"); string(got) != "old!" {
		t.Errorf("after failed Sync, CrashClean holds %q, want old!", got)
	}
	seen := map[string]bool{}
	for seed := range int64(crashSeeds) {
		got, _ := content(t, m.Crash(seed), "/f")
		seen[string(got)] = true
	}
	if !seen["old!"] || !seen["new!"] {
		t.Errorf("after failed Sync, crashes gave %q; want both old! and new!", slices.Sorted(maps.Keys(seen)))
	}
	if st := m.Stats(); st.Syncs != 1 {
		t.Errorf("Stats().Syncs = %d, want 1 (the failed Sync is not counted)", st.Syncs)
	}
	must(t, f.Sync()) // FailNth fires once
	if got := readAll(t, m.CrashClean(), "/f"); string(got) != "new!" {
		t.Errorf("after a successful Sync, CrashClean holds %q", got)
	}
}

func TestMemStats(t *testing.T) {
	m := NewMem()
	f := mustCreate(t, m, "/journal", nil)
	const appends, batch = 20, 5
	for i := range appends {
		writeAt(t, f, pattern(100, byte(i)), int64(i*100))
		if (i+1)%batch == 0 {
			must(t, f.Sync())
		}
	}
	must(t, m.SyncDir("/"))
	_, err := f.ReadAt(make([]byte, 50), 0)
	must(t, err)
	must(t, f.Truncate(10))
	want := MemStats{
		Reads: 1, BytesRead: 50, Writes: appends, BytesWritten: appends * 100,
		Syncs: appends / batch, Truncates: 1, SyncDirs: 1,
	}
	if got := m.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	if got := m.Crash(1).Stats(); got != (MemStats{}) {
		t.Errorf("Stats of a crashed copy = %+v, want zero", got)
	}
}

// TestMemPaths: names are cleaned, so different spellings of a path are
// one file; relative names live under ".".
func TestMemPaths(t *testing.T) {
	m := NewMem()
	must(t, m.MkdirAll("/a/b/"))
	closeOK(t, mustCreate(t, m, "/a/./b//f", []byte("x")))
	if got := readAll(t, m, "/a/b/f"); string(got) != "x" {
		t.Errorf("got %q", got)
	}
	if _, err := m.Create("/a/b/../b/f", false); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create of another spelling: %v, want ErrExist", err)
	}
	closeOK(t, mustCreate(t, m, "rel", nil))
	if names, err := m.ReadDir("."); err != nil || !slices.Equal(names, []string{"rel"}) {
		t.Errorf("ReadDir(.) = %q, %v", names, err)
	}
	if names, err := m.ReadDir("/"); err != nil || !slices.Equal(names, []string{"a"}) {
		t.Errorf("ReadDir(/) = %q, %v", names, err)
	}
	if err := m.Rename("/a", "/z"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Rename of a directory: %v, want ErrUnsupported", err)
	}
}

// TestMemMatchesOS runs the same random operations on Default and on Mem
// and requires the same results: Mem is tested against the real thing.
func TestMemMatchesOS(t *testing.T) {
	for seed := range int64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { matchOS(t, seed) })
	}
}

func matchOS(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	osDir := t.TempDir()
	m := NewMem()
	const memDir = "/t"
	must(t, m.MkdirAll(memDir))
	for _, fsys := range []FS{Default, FS(m)} {
		dir := osDir
		if fsys == FS(m) {
			dir = memDir
		}
		must(t, fsys.MkdirAll(path.Join(dir, "sub")))
	}
	names := []string{"a", "b", "c", "sub/d", "sub/e"}
	type pair struct{ os, mem File }
	var files []pair
	defer func() {
		for _, p := range files {
			closeOK(t, p.os)
			closeOK(t, p.mem)
		}
	}()
	same := func(step int, what string, errOS, errMem error) bool {
		t.Helper()
		if (errOS == nil) != (errMem == nil) ||
			errors.Is(errOS, fs.ErrNotExist) != errors.Is(errMem, fs.ErrNotExist) ||
			errors.Is(errOS, fs.ErrExist) != errors.Is(errMem, fs.ErrExist) ||
			errors.Is(errOS, io.EOF) != errors.Is(errMem, io.EOF) {
			t.Fatalf("seed %d step %d %s: os error %v, mem error %v", seed, step, what, errOS, errMem)
		}
		return errOS == nil
	}
	for step := range 300 {
		name := names[rng.Intn(len(names))]
		osName, memName := path.Join(osDir, name), path.Join(memDir, name)
		switch k := rng.Intn(10); {
		case k == 0:
			fo, eo := Default.Create(osName, false)
			fm, em := m.Create(memName, false)
			if same(step, "create "+name, eo, em) {
				files = append(files, pair{fo, fm})
			}
		case k == 1:
			fo, eo := Default.OpenRW(osName, false)
			fm, em := m.OpenRW(memName, false)
			if same(step, "openrw "+name, eo, em) {
				files = append(files, pair{fo, fm})
			}
		case k == 2:
			same(step, "remove "+name, Default.Remove(osName), m.Remove(memName))
		case k == 3:
			to := names[rng.Intn(len(names))]
			same(step, "rename "+name+" "+to,
				Default.Rename(osName, path.Join(osDir, to)), m.Rename(memName, path.Join(memDir, to)))
		case k == 4:
			for _, d := range []string{"", "sub"} {
				no, eo := Default.ReadDir(path.Join(osDir, d))
				nm, em := m.ReadDir(path.Join(memDir, d))
				if same(step, "readdir", eo, em) && !slices.Equal(no, nm) {
					t.Fatalf("seed %d step %d: readdir %q: os %q, mem %q", seed, step, d, no, nm)
				}
			}
			so, eo := Default.Stat(osName)
			sm, em := m.Stat(memName)
			if same(step, "stat "+name, eo, em) && so != sm {
				t.Fatalf("seed %d step %d: stat %s: os %d, mem %d", seed, step, name, so, sm)
			}
		case len(files) == 0:
		case k <= 6:
			p := files[rng.Intn(len(files))]
			b := pattern(1+rng.Intn(3000), byte(step))
			off := int64(rng.Intn(10000))
			no, eo := p.os.WriteAt(b, off)
			nm, em := p.mem.WriteAt(b, off)
			if same(step, "write", eo, em) && no != nm {
				t.Fatalf("seed %d step %d: write: os %d, mem %d", seed, step, no, nm)
			}
		case k == 7:
			p := files[rng.Intn(len(files))]
			bo := make([]byte, rng.Intn(5000))
			bm := make([]byte, len(bo))
			off := int64(rng.Intn(12000))
			no, eo := p.os.ReadAt(bo, off)
			nm, em := p.mem.ReadAt(bm, off)
			if same(step, "read", eo, em) && (no != nm || !bytes.Equal(bo[:no], bm[:nm])) {
				t.Fatalf("seed %d step %d: read at %d: os %d bytes, mem %d, or content differs", seed, step, off, no, nm)
			}
		case k == 8:
			p := files[rng.Intn(len(files))]
			size := int64(rng.Intn(12000))
			same(step, "truncate", p.os.Truncate(size), p.mem.Truncate(size))
			so, eo := p.os.Size()
			sm, em := p.mem.Size()
			if same(step, "size", eo, em) && so != sm {
				t.Fatalf("seed %d step %d: size: os %d, mem %d", seed, step, so, sm)
			}
		default:
			p := files[rng.Intn(len(files))]
			same(step, "sync", p.os.Sync(), p.mem.Sync())
		}
	}
	do, dm := dump(t, Default, osDir), dump(t, m, memDir)
	strip := func(d map[string]string, prefix string) map[string]string {
		out := map[string]string{}
		for k, v := range d {
			out[strings.TrimPrefix(k, prefix)] = v
		}
		return out
	}
	if !maps.Equal(strip(do, osDir), strip(dm, memDir)) {
		t.Fatalf("seed %d: final trees differ", seed)
	}
}
