package mount

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/weftfs/weft/fsproto/namespace"
)

// TestPosixMem runs the POSIX table on a mount of an in-process namespace:
// the FUSE layer alone, without a cluster.
func TestPosixMem(t *testing.T) {
	m := mountT(t, newMemBackend(), Options{})
	comparePosix(t, m.Dir())
}

func TestPermissionsMem(t *testing.T) {
	m := mountT(t, newMemBackend(), Options{})
	comparePermissions(t, m.Dir())
}

// TestConcurrentMem runs workers that create, write, read back, append
// to, rename, list and remove files at once, in folders of their own and
// in a shared one, so the race detector sees the mount's handle and inode
// tables under concurrent requests.
func TestConcurrentMem(t *testing.T) {
	m := mountT(t, newMemBackend(), Options{})
	shared := filepath.Join(m.Dir(), "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 6, 24
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			errs <- func() error {
				dir := filepath.Join(m.Dir(), fmt.Sprint("w", w))
				if err := os.Mkdir(dir, 0o755); err != nil {
					return err
				}
				for i := range rounds {
					p := filepath.Join(dir, fmt.Sprint("f", i))
					data := bytes.Repeat([]byte{byte(w), byte(i)}, 1000+i*50)
					if err := os.WriteFile(p, data, 0o644); err != nil {
						return err
					}
					f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
					if err != nil {
						return err
					}
					if _, err := f.Write([]byte("tail")); err != nil {
						return err
					}
					if err := f.Close(); err != nil {
						return err
					}
					got, err := os.ReadFile(p)
					if err != nil {
						return err
					}
					if !bytes.Equal(got, append(data, "tail"...)) {
						return fmt.Errorf("worker %d round %d: read %d bytes back, want %d", w, i, len(got), len(data)+4)
					}
					q := filepath.Join(shared, fmt.Sprintf("w%d-%d", w, i))
					if err := os.Rename(p, q); err != nil {
						return err
					}
					if _, err := os.ReadDir(shared); err != nil {
						return err
					}
					if i%2 == 0 {
						if err := os.Remove(q); err != nil {
							return err
						}
					}
				}
				return nil
			}()
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	ents, err := os.ReadDir(shared)
	if err != nil || len(ents) != workers*rounds/2 {
		t.Fatalf("shared folder: %d entries, %v; want %d", len(ents), err, workers*rounds/2)
	}
}

// TestRenameAcrossMountsEXDEV: a rename or link between the mount and
// another file system fails with EXDEV, from the kernel (the POSIX table
// cannot show it: a container is one file system).
func TestRenameAcrossMountsEXDEV(t *testing.T) {
	m := mountT(t, newMemBackend(), Options{})
	in, out := filepath.Join(m.Dir(), "f"), filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(in, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	for what, err := range map[string]error{
		"rename out": os.Rename(in, out+"2"),
		"rename in":  os.Rename(out, in+"2"),
		"link out":   os.Link(in, out+"3"),
	} {
		if errName(err) != "EXDEV" {
			t.Errorf("%s: %v, want EXDEV", what, err)
		}
	}
}

// getAttrCounter counts the backend's GetAttr calls for one inode.
type getAttrCounter struct {
	*memBackend
	ino   atomic.Uint64
	calls atomic.Int64
}

func (c *getAttrCounter) GetAttr(ctx context.Context, ino namespace.Ino) (namespace.Attr, error) {
	if uint64(ino) == c.ino.Load() {
		c.calls.Add(1)
	}
	return c.memBackend.GetAttr(ctx, ino)
}

// TestOwnChangesKeepDirAttrs: after the mount's own creates and unlinks in
// a directory, the kernel's requests for the directory's attributes are
// answered from what the changes returned (no backend call), and those
// are the namespace's: stat shows each change's mtime. A rename, whose
// result does not carry its directories' attributes, sends the next
// request to the backend.
func TestOwnChangesKeepDirAttrs(t *testing.T) {
	b := &getAttrCounter{memBackend: newMemBackend()}
	m := mountT(t, b, Options{})
	dir := filepath.Join(m.Dir(), "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	ino := fi.Sys().(*syscall.Stat_t).Ino
	b.ino.Store(ino)
	checkMtime := func(what string) {
		t.Helper()
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		a, err := b.ns.GetAttr(namespace.Ino(ino))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.ModTime().UnixNano(); got != a.Mtime {
			t.Fatalf("after %s: stat says mtime %d, the namespace %d", what, got, a.Mtime)
		}
	}
	for i := range 20 {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprint("f", i)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		checkMtime(fmt.Sprint("create ", i))
	}
	for i := range 10 {
		if err := os.Remove(filepath.Join(dir, fmt.Sprint("f", i))); err != nil {
			t.Fatal(err)
		}
		checkMtime(fmt.Sprint("unlink ", i))
	}
	if n := b.calls.Load(); n != 0 {
		t.Errorf("%d GETATTRs of the directory reached the backend during its own creates and unlinks, want 0", n)
	}
	if err := os.Rename(filepath.Join(dir, "f10"), filepath.Join(dir, "g")); err != nil {
		t.Fatal(err)
	}
	checkMtime("rename")
	if n := b.calls.Load(); n == 0 {
		t.Error("after a rename, the directory's attributes did not come from the backend")
	}
}
