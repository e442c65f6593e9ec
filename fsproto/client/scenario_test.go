package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/meta"
	"github.com/weftfs/weft/fsproto/namespace"
	"github.com/weftfs/weft/internal/testcluster"
)

// waitFor polls cond (a condition on the cluster's state that a
// background deletion makes true) until it holds or 30 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("waited 30 s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testUnlinkedOpen: a removed file stays readable through a File open
// on it; its chunks go when the last open closes.
func testUnlinkedOpen(t *testing.T, e *env) {
	name, f := e.container(t, client.WithCredentials(0, 0))
	data := pattern(2*chunk64K+17, 3)
	must(t, "WriteFile", f.WriteFile("u", data, 0o644))
	fl, err := f.Open("u")
	must(t, "Open", err)
	file := fl.(*client.File)
	ino := file.Ino()
	// A second FS (another client) removes it.
	g := e.open(t, name, e.key, client.WithCredentials(0, 0))
	must(t, "Remove", g.Remove("u"))
	if _, err := g.Stat("u"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat after Remove: %v", err)
	}
	got := make([]byte, len(data))
	if n, err := file.ReadAt(got, 0); n != len(data) || err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadAt of the unlinked open file: %d, %v, equal %v", n, err, bytes.Equal(got, data))
	}
	fi, err := file.Stat()
	if err != nil || fi.Sys().(namespace.Attr).Nlink != 0 || fi.Size() != int64(len(data)) {
		t.Fatalf("Stat of the unlinked open file: %+v, %v", fi, err)
	}
	for k := uint64(0); k < 3; k++ {
		if !chunkExists(t, f, ino, k) {
			t.Fatalf("chunk %d gone while the file is open", k)
		}
	}
	must(t, "Close", file.Close())
	// The Close goes in the background, and the deletion after it.
	waitFor(t, "the unlinked file's chunks to go after its last Close", func() bool {
		for k := uint64(0); k < 3; k++ {
			if chunkExists(t, f, ino, k) {
				return false
			}
		}
		st, err := f.Usage()
		return err == nil && st.Reclaiming == 0
	})
}

// testRemoveReclaims: removing a closed file deletes its chunks (the
// FS's own queue), and a Reclaimer finishes entries a client left.
func testRemoveReclaims(t *testing.T, e *env) {
	_, f := e.container(t, client.WithCredentials(0, 0))
	ctx := testCtx(t)
	must(t, "WriteFile", f.WriteFile("r", pattern(3*chunk64K, 5), 0o644))
	fi, err := f.Stat("r")
	must(t, "Stat", err)
	ino := fi.Sys().(namespace.Attr).Ino
	must(t, "Remove", f.Remove("r"))
	waitFor(t, "the removed file's chunks to go", func() bool {
		for k := uint64(0); k < 3; k++ {
			if chunkExists(t, f, ino, k) {
				return false
			}
		}
		st, err := f.Usage()
		return err == nil && st.Reclaiming == 0
	})

	// A client that truncated through the bare metadata client left a
	// reclaim entry and its chunks; the file then grew back over part of
	// the range. The Reclaimer deletes only what lies past the current
	// size.
	must(t, "WriteFile", f.WriteFile("t", pattern(3*chunk64K, 6), 0o644))
	fi, err = f.Stat("t")
	must(t, "Stat", err)
	ino = fi.Sys().(namespace.Attr).Ino
	mc := meta.NewClient(f.Data().ID(), e.c.Managers(), e.c.Pool())
	res, err := mc.Apply(ctx, namespace.SetAttr{Ino: ino, Mask: namespace.SetSize, Size: chunk64K / 2})
	must(t, "SetAttr size", err)
	if len(res.Reclaim) != 1 || res.Reclaim[0].To != 3*chunk64K {
		t.Fatalf("truncation queued %+v", res.Reclaim)
	}
	h, err := f.OpenIno(ctx, ino, true)
	must(t, "OpenIno", err)
	fresh := pattern(100, 9)
	if _, err := h.WriteAt(ctx, fresh, chunk64K); err != nil {
		t.Fatal(err)
	}
	must(t, "Release", h.Release(ctx))
	// Within the grace (the file just changed) the entry waits.
	r := client.Reclaimer{Data: f.Data(), Meta: mc, ChunkSize: f.ChunkSize(), Grace: time.Hour}
	must(t, "Reclaimer.Run", r.Run(ctx, res.Reclaim))
	if !chunkExists(t, f, ino, 2) {
		t.Fatal("the reclaimer deleted within the grace")
	}
	if st, err := f.Usage(); err != nil || st.Reclaiming != 1 {
		t.Fatalf("Usage after a run within the grace: %+v, %v; want the entry queued", st, err)
	}
	r.Grace = -1
	must(t, "Reclaimer.Run", r.Run(ctx, res.Reclaim))
	if chunkExists(t, f, ino, 2) {
		t.Error("chunk 2, past the current size, survived the reclaimer")
	}
	b := make([]byte, 100)
	if n, err := f.Data().Read(ctx, uint64(ino), 1, 0, b); n != 100 || err != nil || !bytes.Equal(b, fresh) {
		t.Errorf("bytes written after the truncation: %d, %v; the reclaimer deleted below the current size", n, err)
	}
	if st, err := f.Usage(); err != nil || st.Reclaiming != 0 {
		t.Errorf("Usage after the reclaimer: %+v, %v", st, err)
	}
}

// testTwoClients: close-to-open between two FSs of one container.
func testTwoClients(t *testing.T, e *env) {
	name, a := e.container(t, client.WithCredentials(0, 0))
	b := e.open(t, name, e.key, client.WithCredentials(0, 0))
	fa, err := a.Create("shared")
	must(t, "Create", err)
	one := pattern(chunk64K+10, 1)
	if _, err := fa.Write(one); err != nil {
		t.Fatal(err)
	}
	must(t, "Sync", fa.Sync())
	if got := readAll(t, b, "shared"); !bytes.Equal([]byte(got), one) {
		t.Fatalf("the other client read %d bytes after Sync, want %d", len(got), len(one))
	}
	// More writes, then Close: a later open on the other client sees them.
	two := pattern(3000, 2)
	if _, err := fa.WriteAt(two, 2*chunk64K); err != nil {
		t.Fatal(err)
	}
	// Read-your-writes on the writing client, before any commit.
	if fi, err := a.Stat("shared"); err != nil || fi.Size() != 2*chunk64K+3000 {
		t.Fatalf("Stat on the writer: %v, %v", fi, err)
	}
	// Without Sync, the FS commits the growth within its flush interval
	// (200 ms here).
	waitFor(t, "the background commit of the growth", func() bool {
		fi, err := b.Stat("shared")
		return err == nil && fi.Size() == 2*chunk64K+3000
	})
	must(t, "Close", fa.Close())
	want := append(append(one, make([]byte, 2*chunk64K-len(one))...), two...)
	fb, err := b.Open("shared")
	must(t, "Open on the other client", err)
	got, err := io.ReadAll(fb)
	must(t, "ReadAll", err)
	must(t, "Close", fb.Close())
	if !bytes.Equal(got, want) {
		t.Fatalf("the other client read %d bytes after Close, want %d (equal: %v)", len(got), len(want), bytes.Equal(got, want))
	}

	// A handle open for long learns the other client's committed growth
	// at its FS's next GetAttr.
	ctx := testCtx(t)
	ino := mustIno(t, a, "shared")
	h, err := a.OpenIno(ctx, ino, false)
	must(t, "OpenIno", err)
	old := h.Size()
	fb2, err := b.OpenFile("shared", os.O_WRONLY|os.O_APPEND, 0)
	must(t, "open on b", err)
	if _, err := fb2.Write([]byte("tail")); err != nil {
		t.Fatal(err)
	}
	must(t, "Close", fb2.Close())
	buf := make([]byte, 4)
	if n, err := h.ReadAt(ctx, buf, old); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt past the size the handle knew: %d, %v", n, err)
	}
	if at, err := a.GetAttr(ctx, ino); err != nil || at.Size != uint64(old+4) {
		t.Fatalf("GetAttr: %+v, %v", at, err)
	}
	if n, err := h.ReadAt(ctx, buf, old); n != 4 || err != nil || string(buf) != "tail" {
		t.Fatalf("ReadAt after GetAttr: %d, %v, %q", n, err, buf[:n])
	}
	must(t, "Release", h.Release(ctx))

	// O_APPEND through two long-open Files lands after the other
	// client's synced appends.
	la, err := a.OpenFile("log", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	must(t, "open log on a", err)
	lb, err := b.OpenFile("log", os.O_WRONLY|os.O_APPEND, 0)
	must(t, "open log on b", err)
	for i, w := range []struct {
		fl *client.File
		s  string
	}{{la, "a1"}, {lb, "b1"}, {la, "a2"}, {lb, "b2"}} {
		if _, err := w.fl.Write([]byte(w.s)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		must(t, "Sync", w.fl.Sync())
	}
	must(t, "Close", la.Close())
	must(t, "Close", lb.Close())
	if got := readAll(t, b, "log"); got != "a1b1a2b2" {
		t.Errorf("appends from two clients: %q, want a1b1a2b2", got)
	}
}

// testQuota: a write past the byte quota fails with EDQUOT and nothing of
// it is visible, both when the FS knows the quota (growth reserved first)
// and when the quota appeared while its writes were pending (rolled back
// at Close).
func testQuota(t *testing.T, e *env) {
	name, f := e.container(t, client.WithCredentials(0, 0))
	ctx := testCtx(t)
	must(t, "WriteFile", f.WriteFile("q", pattern(1000, 1), 0o644))
	if _, err := f.Apply(ctx, namespace.SetQuota{Bytes: 2 * chunk64K}); err != nil {
		t.Fatal(err)
	}
	fl, err := f.OpenFile("q", os.O_RDWR, 0)
	must(t, "OpenFile", err)
	if _, err := fl.WriteAt(pattern(chunk64K, 2), 1000); err != nil {
		t.Fatalf("write under the quota: %v", err)
	}
	_, err = fl.WriteAt(pattern(chunk64K, 3), 2*chunk64K-10)
	wantErrno(t, "write past the quota", err, syscall.EDQUOT)
	must(t, "Close", fl.Close())
	want := append(pattern(1000, 1), pattern(chunk64K, 2)...)
	if got := readAll(t, f, "q"); !bytes.Equal([]byte(got), want) {
		t.Fatalf("after the refused write the file has %d bytes, want %d", len(got), len(want))
	}
	if chunkExists(t, f, mustIno(t, f, "q"), 2) {
		t.Error("the refused write reached chunk 2")
	}

	// An FS that has not learned of a new quota: its pending growth is
	// refused at Close and deleted.
	if _, err := f.Apply(ctx, namespace.SetQuota{}); err != nil {
		t.Fatal(err)
	}
	g := e.open(t, name, e.key, client.WithCredentials(0, 0), client.WithFlushInterval(time.Hour))
	must(t, "WriteFile", g.WriteFile("p", pattern(100, 4), 0o644))
	gl, err := g.OpenFile("p", os.O_RDWR, 0)
	must(t, "OpenFile", err)
	if _, err := f.Apply(ctx, namespace.SetQuota{Bytes: 200 << 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := gl.WriteAt(pattern(chunk64K, 5), 3*chunk64K); err != nil {
		t.Fatalf("pending write (the FS knows no quota): %v", err)
	}
	wantErrno(t, "Close past the quota", gl.Close(), syscall.EDQUOT)
	if got := readAll(t, f, "p"); !bytes.Equal([]byte(got), pattern(100, 4)) {
		t.Errorf("after the refused commit the file has %d bytes, want 100", len(got))
	}
	if chunkExists(t, f, mustIno(t, f, "p"), 3) {
		t.Error("the refused pending write stayed in chunk 3")
	}
}

func mustIno(t *testing.T, f *client.FS, name string) namespace.Ino {
	t.Helper()
	return attrOf(t, f, name).Ino
}

// testReadOnly: a read-only key reads and refuses every change with
// EROFS, at the metadata servers and at the chunk servers; WithReadOnly
// refuses locally.
func testReadOnly(t *testing.T, e *env) {
	name, f := e.container(t, client.WithCredentials(0, 0))
	must(t, "WriteFile", f.WriteFile("doc", []byte("read me"), 0o644))
	ino := mustIno(t, f, "doc")
	ro := e.open(t, name, client.Key{ID: roKeyID, Secret: roSecret}, client.WithCredentials(0, 0))
	if got := readAll(t, ro, "doc"); got != "read me" {
		t.Fatalf("read with a read-only key: %q", got)
	}
	wantErrno(t, "WriteFile with a read-only key", ro.WriteFile("new", nil, 0o644), syscall.EROFS)
	wantErrno(t, "Mkdir with a read-only key", ro.Mkdir("d", 0o755), syscall.EROFS)
	_, err := ro.OpenFile("doc", os.O_RDWR, 0)
	wantErrno(t, "open for writing with a read-only key", err, syscall.EROFS)
	ctx := testCtx(t)
	_, err = ro.Data().Write(ctx, uint64(ino), 0, 0, []byte("x"))
	if !errors.Is(err, fsproto.ErrReadOnly) || client.Errno(err) != syscall.EROFS {
		t.Errorf("chunk write with a read-only key: %v, want fsproto.ErrReadOnly (EROFS)", err)
	}
	// A read-only key's handles are not counted, so it owes no Close.
	// WriteFile's own Close is still pending on f (its closer sends it
	// within the close delay, not at once): wait for it first, or the
	// check below races with it.
	waitFor(t, "WriteFile's close to apply", func() bool {
		a, err := f.GetAttr(ctx, ino)
		return err == nil && a.Open == 0
	})
	h, err := ro.OpenIno(ctx, ino, false)
	must(t, "OpenIno with a read-only key", err)
	must(t, "Release with a read-only key", h.Release(ctx))
	opens := func(when string, want uint32) {
		t.Helper()
		if a, err := f.GetAttr(ctx, ino); err != nil || a.Open != want {
			t.Fatalf("%s: %+v, %v; want %d opens", when, a, err, want)
		}
	}
	opens("after a read-only key's open and release", 0)
	// A WithReadOnly FS (a write key) counts its opens; an op it refuses
	// itself carries no pending Close, and FS.Close sends it.
	local := e.open(t, name, e.key, client.WithCredentials(0, 0), client.WithReadOnly(), client.WithCloseDelay(time.Hour))
	h, err = local.OpenIno(ctx, ino, false)
	must(t, "OpenIno on a WithReadOnly FS", err)
	must(t, "Release on a WithReadOnly FS", h.Release(ctx))
	wantErrno(t, "Remove on a WithReadOnly FS", local.Remove("doc"), syscall.EROFS)
	opens("after a release and a refused op on a WithReadOnly FS", 1)
	must(t, "FS.Close", local.Close())
	opens("after the WithReadOnly FS closed", 0)
	if got := readAll(t, f, "doc"); got != "read me" {
		t.Fatalf("the file changed: %q", got)
	}
	// A wrong key fails at OpenContainer with EACCES.
	_, err = e.cl.OpenContainer(ctx, name, client.Key{ID: testcluster.ClusterKeyID, Secret: []byte("wrong-secret-wrong-secret-wrong!")})
	if client.Errno(err) != syscall.EACCES {
		t.Errorf("OpenContainer with a wrong secret: %v (errno %v), want EACCES", err, client.Errno(err))
	}
}

// testDeleteBatches: a long deletion checks between batches and stops
// when told (the Reclaimer's check that the file did not change; the
// truncating client's ctime touch), leaving later chunks alone.
func testDeleteBatches(t *testing.T, e *env) {
	_, f := e.container(t, client.WithCredentials(0, 0))
	ctx := testCtx(t)
	defer client.SetDeleteBatch(4)()
	must(t, "WriteFile", f.WriteFile("b", nil, 0o644))
	ino := mustIno(t, f, "b")
	for _, k := range []uint64{0, 3, 4, 11} {
		if _, err := f.Data().Write(ctx, uint64(ino), k, 0, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	calls := 0
	err := client.DeleteRange(ctx, f, ino, 0, 12*chunk64K, func(context.Context) error {
		calls++
		return client.ErrFileChanged
	})
	if !errors.Is(err, client.ErrFileChanged) || calls != 1 {
		t.Fatalf("DeleteRange: %v after %d checks; want the check's error after 1", err, calls)
	}
	for k, want := range map[uint64]bool{0: false, 3: false, 4: true, 11: true} {
		if got := chunkExists(t, f, ino, k); got != want {
			t.Errorf("chunk %d exists: %v, want %v", k, got, want)
		}
	}
	calls = 0
	must(t, "DeleteRange", client.DeleteRange(ctx, f, ino, 0, 12*chunk64K, func(context.Context) error {
		calls++
		return nil
	}))
	if calls != 2 || chunkExists(t, f, ino, 4) || chunkExists(t, f, ino, 11) {
		t.Errorf("a full deletion: %d checks (want 2), chunks 4 and 11 exist: %v %v", calls, chunkExists(t, f, ino, 4), chunkExists(t, f, ino, 11))
	}
	// A truncation touches ctime between batches.
	for _, k := range []uint64{1, 9} {
		if _, err := f.Data().Write(ctx, uint64(ino), k, 0, []byte("y")); err != nil {
			t.Fatal(err)
		}
	}
	must(t, "Truncate up", f.Truncate("b", 12*chunk64K))
	before := attrOf(t, f, "b")
	must(t, "Truncate down", f.Truncate("b", 0))
	after := attrOf(t, f, "b")
	if chunkExists(t, f, ino, 1) || chunkExists(t, f, ino, 9) || after.Size != 0 || after.Ctime <= before.Ctime {
		t.Errorf("after the truncation: chunk 1 %v, chunk 9 %v, attr %+v", chunkExists(t, f, ino, 1), chunkExists(t, f, ino, 9), after)
	}
}
