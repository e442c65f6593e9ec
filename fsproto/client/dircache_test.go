package client_test

import (
	"errors"
	"io/fs"
	"syscall"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/client"
)

// TestDirCache runs the directory cache's scenarios on one test cluster.
func TestDirCache(t *testing.T) {
	e := startEnv(t)
	t.Run("OwnChangesShowAtOnce", func(t *testing.T) { testDirCacheOwnChanges(t, e) })
	t.Run("OtherClients", func(t *testing.T) { testDirCacheOtherClients(t, e) })
}

func mustWrite(t *testing.T, f *client.FS, name, data string) {
	t.Helper()
	if err := f.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustExist(t *testing.T, f *client.FS, name string, want bool) {
	t.Helper()
	_, err := f.Stat(name)
	switch {
	case want && err != nil:
		t.Fatalf("stat %s: %v, want it to exist", name, err)
	case !want && !errors.Is(err, fs.ErrNotExist):
		t.Fatalf("stat %s: %v, want ErrNotExist", name, err)
	}
}

// testDirCacheOwnChanges: with a cache that would outlive the test, an FS
// never walks through a directory it renamed, removed or replaced itself.
func testDirCacheOwnChanges(t *testing.T, e *env) {
	_, f := e.container(t, client.WithDirCache(time.Hour))
	if err := f.MkdirAll("a/d", 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "a/d/x", "x") // caches a and a/d
	if err := f.Rename("a/d", "a/e"); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteFile("a/d/y", nil, 0o644); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("create in a directory this FS renamed away: %v, want ErrNotExist", err)
	}
	if err := f.Mkdir("a/d", 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "a/d/z", "z")
	mustExist(t, f, "a/e/z", false)
	mustExist(t, f, "a/e/x", true)
	// A directory replaced by a rename over it.
	if err := f.Remove("a/d/z"); err != nil {
		t.Fatal(err)
	}
	if err := f.Rename("a/e", "a/d"); err != nil {
		t.Fatal(err)
	}
	mustExist(t, f, "a/d/x", true)
	// Removed and made again.
	for _, n := range []string{"a/d/x", "a/d"} {
		if err := f.Remove(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Mkdir("a/d", 0o700); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "a/d/w", "w")
	if fi, err := f.Stat("a/d"); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("stat of the new a/d: %v %v", fi, err)
	}
}

// testDirCacheOtherClients: another client's rename is seen late (the
// documented price), a failed op makes the FS look again, and without the
// cache the rename is seen at once.
func testDirCacheOtherClients(t *testing.T, e *env) {
	name, a := e.container(t, client.WithDirCache(time.Hour))
	b := e.open(t, name, e.key)
	strict := e.open(t, name, e.key, client.WithDirCache(0))
	if err := a.Mkdir("d", 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, a, "d/1", "1")
	mustWrite(t, strict, "d/2", "2")
	if err := b.Rename("d", "old"); err != nil {
		t.Fatal(err)
	}
	if err := b.Mkdir("d", 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, a, "d/3", "3")      // through the cached d: now "old"
	mustWrite(t, strict, "d/4", "4") // looked up: the new d
	mustExist(t, b, "old/3", true)
	mustExist(t, b, "d/4", true)
	mustExist(t, b, "old/4", false)

	// The directory a cached goes away: a's next op fails, and the one
	// after it looks d up again.
	for _, n := range []string{"old/1", "old/2", "old/3", "old"} {
		if err := b.Remove(n); err != nil {
			t.Fatal(err)
		}
	}
	err := a.WriteFile("d/5", nil, 0o644)
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("create through a cached directory removed by another client: %v, want ErrNotExist", err)
	}
	mustWrite(t, a, "d/5", "5")
	mustExist(t, b, "d/5", true)
}
