package mount

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
)

// canMount skips t unless this process can make FUSE mounts: root and
// /dev/fuse (CI has both). A mount that fails for lack of FUSE later
// skips too (see mountT).
func canMount(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: FUSE mount tests need root (they mount with mount(2) and switch uids)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("skipped: no FUSE on this machine: %v", err)
	}
}

// mountT mounts b at a fresh folder and unmounts it when t ends. The
// mount lets other users in, for the tests that switch uid.
func mountT(t *testing.T, b backend, o Options) *Mount {
	t.Helper()
	canMount(t)
	dir := t.TempDir()
	// t.TempDir's parents are 0700; the uid-switching tests need to
	// reach the mount point.
	openPath(t, dir)
	o.AllowOther = true
	m, err := start(b, dir, o)
	if err != nil {
		if lacksFUSE(err) {
			t.Skipf("skipped: cannot mount FUSE here: %v", err)
		}
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
			_ = m.UnmountLazy()
		}
	})
	return m
}

func parentDir(d string) string {
	i := strings.LastIndexByte(d, '/')
	if i <= 0 {
		return "/"
	}
	return d[:i]
}

// lacksFUSE tells a mount failure that says FUSE is unavailable (no
// module, no permission to mount in this container) from a bug.
func lacksFUSE(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENOENT) ||
		strings.Contains(err.Error(), "fusermount") || strings.Contains(err.Error(), "/dev/fuse")
}
