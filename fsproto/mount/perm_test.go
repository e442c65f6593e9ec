package mount

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The permission table runs as uid/gid 65534 (nobody) in a child process
// of the test binary, on a tree root made on the mount and on the local
// file system; the kernel makes every check (default_permissions), so the
// errnos must be the local file system's.

const (
	permChildEnv = "WEFT_MOUNT_PERM_CHILD"
	deadChildEnv = "WEFT_MOUNT_DEAD_CHILD"
	userChildEnv = "WEFT_MOUNT_USER_CHILD"
	mmapChildEnv = "WEFT_MOUNT_MMAP_CHILD"
	nobody       = 65534
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(permChildEnv); dir != "" {
		r := &rec{dir: dir}
		permOps(r)
		fmt.Print(strings.Join(r.lines, "\n"))
		os.Exit(0)
	}
	if path := os.Getenv(mmapChildEnv); path != "" {
		mmapChild(path)
		os.Exit(0)
	}
	if dir := os.Getenv(userChildEnv); dir != "" {
		os.Exit(userChild(dir))
	}
	if dir := os.Getenv(deadChildEnv); dir != "" {
		// Mount, say so, and wait to be killed (TestDeadMountHealed).
		if _, err := start(newMemBackend(), dir, Options{}); err != nil {
			fmt.Println("mount:", err)
			os.Exit(1)
		}
		fmt.Println("mounted")
		select {}
	}
	os.Exit(m.Run())
}

// permSetup makes, as root, what the unprivileged ops run into.
func permSetup(t *testing.T, dir string) {
	t.Helper()
	r := &rec{t: t, dir: dir}
	r.must("chmod", os.Chmod(dir, 0o755))
	r.must("mkdir priv", os.Mkdir(r.p("priv"), 0o700))
	r.write("priv/f", "secret")
	r.write("ro", "root's")
	r.must("mkdir rodir", os.Mkdir(r.p("rodir"), 0o755))
	r.write("rodir/f", "x")
	r.must("mkdir sticky", os.Mkdir(r.p("sticky"), 0o777))
	r.must("chmod sticky", os.Chmod(r.p("sticky"), 0o1777))
	r.write("sticky/rootfile", "x")
	r.must("chmod", os.Chmod(r.p("sticky/rootfile"), 0o666))
	r.must("mkdir pub", os.Mkdir(r.p("pub"), 0o777))
	r.must("chmod pub", os.Chmod(r.p("pub"), 0o777))
	r.write("wonly", "x")
	r.must("chmod wonly", os.Chmod(r.p("wonly"), 0o622))
	r.must("mkdir noexec", os.Mkdir(r.p("noexec"), 0o766))
	r.must("chmod noexec", os.Chmod(r.p("noexec"), 0o766))
	r.write("noexec/f", "x")
	r.must("setxattr", unix.Setxattr(r.p("ro"), "user.a", []byte("1"), 0))
}

// permOps runs in the child, as nobody.
func permOps(r *rec) {
	r.note("uid %d gid %d", os.Getuid(), os.Getgid())
	r.stat("priv/f")
	r.try("priv/f", unix.O_RDONLY, 0)
	_, err := os.ReadDir(r.p("priv"))
	r.do("readdir priv", err)
	r.try("ro", unix.O_RDONLY, 0)
	r.try("ro", unix.O_WRONLY, 0)
	r.try("ro", unix.O_RDWR|unix.O_TRUNC, 0)
	r.do("truncate ro", unix.Truncate(r.p("ro"), 0))
	r.do("chmod ro", unix.Chmod(r.p("ro"), 0o777))
	r.do("chown ro", unix.Chown(r.p("ro"), nobody, nobody))
	r.do("chgrp ro", unix.Chown(r.p("ro"), -1, nobody))
	r.do("utimens ro explicit", unix.UtimesNanoAt(unix.AT_FDCWD, r.p("ro"), []unix.Timespec{{Sec: 1}, {Sec: 2}}, 0))
	r.do("utimens ro now", unix.UtimesNanoAt(unix.AT_FDCWD, r.p("ro"), []unix.Timespec{{Nsec: unix.UTIME_NOW}, {Nsec: unix.UTIME_NOW}}, 0))
	r.do("setxattr ro", unix.Setxattr(r.p("ro"), "user.b", []byte("1"), 0))
	b := make([]byte, 16)
	n, err := unix.Getxattr(r.p("ro"), "user.a", b)
	if r.do("getxattr ro", err) {
		r.note("  %q", b[:n])
	}
	r.do("removexattr ro", unix.Removexattr(r.p("ro"), "user.a"))
	r.try("rodir/new", unix.O_CREAT|unix.O_WRONLY, 0o644)
	r.do("mkdir rodir/d", unix.Mkdir(r.p("rodir/d"), 0o755))
	r.do("unlink rodir/f", unix.Unlink(r.p("rodir/f")))
	r.do("symlink rodir/s", unix.Symlink("x", r.p("rodir/s")))
	r.do("rmdir rodir", unix.Rmdir(r.p("rodir")))
	r.do("unlink sticky/rootfile", unix.Unlink(r.p("sticky/rootfile")))
	r.do("rename sticky/rootfile", unix.Rename(r.p("sticky/rootfile"), r.p("sticky/moved")))
	r.try("sticky/rootfile", unix.O_WRONLY, 0)
	r.do("write sticky/mine", os.WriteFile(r.p("sticky/mine"), []byte("mine"), 0o644))
	r.do("unlink sticky/mine", unix.Unlink(r.p("sticky/mine")))
	r.try("pub/mine", unix.O_CREAT|unix.O_WRONLY, 0o644)
	r.lstat("pub/mine")
	r.do("chmod pub/mine", unix.Chmod(r.p("pub/mine"), 0o600))
	r.do("chmod pub/mine setgid", unix.Chmod(r.p("pub/mine"), 0o2755))
	r.lstat("pub/mine")
	r.do("chown pub/mine root", unix.Chown(r.p("pub/mine"), 0, -1))
	r.do("chgrp pub/mine root", unix.Chown(r.p("pub/mine"), -1, 0))
	r.do("utimens pub/mine explicit", unix.UtimesNanoAt(unix.AT_FDCWD, r.p("pub/mine"), []unix.Timespec{{Sec: 1}, {Sec: 2}}, 0))
	r.do("link ro pub/l", unix.Link(r.p("ro"), r.p("pub/l")))
	r.do("rename pub/mine rodir/mine", unix.Rename(r.p("pub/mine"), r.p("rodir/mine")))
	r.do("mkdir pub/d", unix.Mkdir(r.p("pub/d"), 0o700))
	r.lstat("pub/d")
	r.try("wonly", unix.O_RDONLY, 0)
	r.try("wonly", unix.O_WRONLY, 0)
	r.stat("noexec/f")
	_, err = os.ReadDir(r.p("noexec"))
	r.do("readdir noexec", err)
	r.do("access ro W_OK", unix.Access(r.p("ro"), unix.W_OK))
	r.do("access ro R_OK", unix.Access(r.p("ro"), unix.R_OK))
}

// comparePermissions runs permOps as nobody on mnt and on a local folder
// and compares the transcripts.
func comparePermissions(t *testing.T, mnt string) {
	t.Helper()
	bin := nobodyBinary(t)
	run := func(root string) []string {
		dir := filepath.Join(root, "perm")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		permSetup(t, dir)
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = append(os.Environ(), permChildEnv+"="+dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		cmd.Dir = "/"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child as uid %d: %v\n%s", nobody, err, out)
		}
		return strings.Split(string(out), "\n")
	}
	local := t.TempDir()
	openPath(t, local)
	want, got := run(local), run(mnt)
	if !slices.Equal(want, got) {
		var b strings.Builder
		for i := range max(len(want), len(got)) {
			w, h := "(none)", "(none)"
			if i < len(want) {
				w = want[i]
			}
			if i < len(got) {
				h = got[i]
			}
			mark := "  "
			if w != h {
				mark = "!="
			}
			fmt.Fprintf(&b, "%s local: %-50s mount: %s\n", mark, w, h)
		}
		t.Errorf("permission table differs:\n%s", b.String())
	}
	if len(want) < 40 || !slices.Contains(want, "stat priv/f: EACCES") || !slices.Contains(want, "chmod ro: EPERM") {
		t.Errorf("the table did not run as an unprivileged user:\n%s", strings.Join(want, "\n"))
	}
}

// nobodyBinary copies the test binary where nobody can run it (go test
// builds it in a 0700 folder).
func nobodyBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	openPath(t, dir)
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p := filepath.Join(dir, "mount.test")
	dst, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// openPath makes dir and its parents up to the temp root searchable by
// everyone.
func openPath(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != os.TempDir() && d != "/"; d = parentDir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// userChild mounts at dir as an unprivileged user (mount(2) is refused,
// so through fusermount3), uses the mount and unmounts it.
func userChild(dir string) int {
	m, err := start(newMemBackend(), dir, Options{})
	if err != nil {
		fmt.Println("mount:", err)
		return 1
	}
	// The root belongs to root (0755): nobody may list it, and the
	// kernel refuses a create there.
	ents, err := os.ReadDir(dir)
	werr := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644)
	if uerr := m.Unmount(); err == nil {
		err = uerr
	}
	if err != nil || len(ents) != 0 || !errors.Is(werr, os.ErrPermission) {
		fmt.Printf("use: %v, %v, create: %v\n", ents, err, werr)
		return 1
	}
	fmt.Println("ok")
	return 0
}

// TestMountAsUser mounts as uid nobody, which only fusermount3 (setuid)
// can do for it: the fallback from mount(2).
func TestMountAsUser(t *testing.T) {
	canMount(t)
	if _, err := exec.LookPath("fusermount3"); err != nil {
		t.Skip("skipped: no fusermount3")
	}
	if fi, err := os.Stat("/dev/fuse"); err != nil || fi.Mode().Perm()&0o006 != 0o006 {
		t.Skipf("skipped: /dev/fuse is not open to other users here (%v, %v)", fi.Mode(), err)
	}
	bin := nobodyBinary(t)
	dir := t.TempDir()
	openPath(t, dir)
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), userChildEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("mount as uid %d: %v\n%s", nobody, err, out)
	}
	if mounted, _ := IsMountPoint(dir); mounted {
		_ = detach(dir)
		t.Fatal("left mounted")
	}
}
