package mount

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func FuzzUnescapeMountPath(f *testing.F) {
	for _, s := range []string{"/mnt/a", `/mnt/a\040b`, `\134`, `\0`, `\12`, `\999`, `x\`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u := unescapeMountPath(s)
		if len(u) > len(s) {
			t.Fatalf("unescape(%q) = %q: longer", s, u)
		}
		if !strings.Contains(s, `\`) && u != s {
			t.Fatalf("unescape(%q) = %q: changed a path without escapes", s, u)
		}
	})
}

func TestUnescapeMountPath(t *testing.T) {
	for in, want := range map[string]string{
		`/mnt/a\040b`:  "/mnt/a b",
		`/x\134y`:      `/x\y`,
		`/t\011ab\012`: "/t\tab\n",
		`/no\9`:        `/no\9`,
		`/end\04`:      `/end\04`,
	} {
		if got := unescapeMountPath(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseCache(t *testing.T) {
	for in, want := range map[string]Cache{"": CacheStrict, "strict": CacheStrict, "none": CacheNone} {
		if got, err := ParseCache(in); err != nil || got != want {
			t.Errorf("ParseCache(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseCache("always"); err == nil {
		t.Error("ParseCache(always): no error")
	}
}

// TestStartRefuses checks the mount points Start refuses, each with an
// error naming the problem, before any FUSE is involved.
func TestStartRefuses(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ dir, want string }{
		{filepath.Join(dir, "missing"), "does not exist"},
		{file, "not a directory"},
		{"/proc", "already a mount point"},
	} {
		_, err := start(newMemBackend(), c.dir, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("start at %s: %v, want an error saying %q", c.dir, err, c.want)
		}
	}
}

// TestUnmountBusy checks that Unmount refuses while a file is open and
// leaves the mount working, then that UnmountLazy detaches it while the
// open file still reads, and that the serve loop ends once it is closed.
func TestUnmountBusy(t *testing.T) {
	canMount(t)
	dir := t.TempDir()
	m, err := start(newMemBackend(), dir, Options{})
	if err != nil {
		if lacksFUSE(err) {
			t.Skipf("skipped: cannot mount FUSE here: %v", err)
		}
		t.Fatal(err)
	}
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("still here"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := m.Unmount(); !errors.Is(err, ErrBusy) {
		t.Fatalf("Unmount with a file open: %v, want ErrBusy", err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the mount stopped serving after a refused unmount: %v", err)
	}
	if err := m.UnmountLazy(); err != nil {
		t.Fatal(err)
	}
	if mounted, _ := IsMountPoint(dir); mounted {
		t.Fatal("still a mount point after UnmountLazy")
	}
	b := make([]byte, 32)
	if n, err := f.ReadAt(b, 0); string(b[:n]) != "still here" {
		t.Fatalf("the open file after the detach read %q, %v", b[:n], err)
	}
	f.Close()
	if !m.Wait(time.Minute) {
		t.Fatal("serve loop did not end")
	}
}
