package mount

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// TestDeadMountHealed kills a process serving a mount (SIGKILL: no
// unmount), which leaves a dead mount (ENOTCONN), and checks that
// mounting there again detaches it and serves.
func TestDeadMountHealed(t *testing.T) {
	canMount(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), deadChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if line != "mounted\n" {
		if strings.HasPrefix(line, "mount:") && lacksFUSE(errors.New(line)) {
			t.Skipf("skipped: cannot mount FUSE here: %s", line)
		}
		t.Fatalf("child: %q", line)
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("stat of the killed mount: %v, want ENOTCONN", err)
	}
	m, err := start(newMemBackend(), dir, Options{})
	if err != nil {
		t.Fatalf("mount over the dead mount: %v", err)
	}
	defer func() {
		if err := m.Unmount(); err != nil {
			t.Error(err)
		}
	}()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("ok"), 0o644); err != nil {
		t.Fatalf("the new mount does not serve: %v", err)
	}
}
