package mount

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// treeOps runs a seeded random sequence of namespace operations (mkdir,
// create, write, unlink, rmdir, rename with its flags, link, symlink,
// chmod, truncate, stat, readdir) on paths drawn from a small set, so
// that they collide often: on the local file system and on the mount,
// one operation at a time on each, and every outcome must match. Then
// the two trees must be equal (names, types, modes, link counts, sizes,
// contents, link targets).
func treeOps(t *testing.T, mnt string, seed uint64, ops int) {
	t.Logf("tree ops: seed %d (rerun with -exercise.seed=%d), %d ops", seed, seed, ops)
	local := t.TempDir()
	roots := [2]string{local, filepath.Join(mnt, "tree")}
	if err := os.Mkdir(roots[1], 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	comps := []string{"a", "b", "c"}
	path := func() string {
		n := []int{1, 1, 1, 2, 2, 3}[rng.IntN(6)] // shallow mostly: ops meet
		parts := make([]string, n)
		for i := range parts {
			parts[i] = comps[rng.IntN(len(comps))]
		}
		return strings.Join(parts, "/")
	}
	succeeded := 0
	for op := range ops {
		p, q := path(), path()
		k := rng.IntN(100)
		mode := uint32(0o600 + rng.IntN(0o200))
		truncTo := rng.Int64N(70000)
		data := make([]byte, rng.IntN(5000))
		for i := range data {
			data[i] = byte(rng.UintN(256))
		}
		flags := []uint{0, 0, unix.RENAME_NOREPLACE, unix.RENAME_EXCHANGE}[rng.IntN(4)]
		var out [2]string
		for i, root := range roots {
			at := func(s string) string { return filepath.Join(root, s) }
			var err error
			var what string
			switch {
			case k < 15:
				what, err = "mkdir "+p, unix.Mkdir(at(p), mode)
			case k < 30:
				what = "create " + p
				var fd int
				if fd, err = unix.Open(at(p), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, mode); err == nil {
					_, err = unix.Write(fd, data)
					unix.Close(fd)
				}
			case k < 37:
				what = "append " + p
				var fd int
				if fd, err = unix.Open(at(p), unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0); err == nil {
					_, err = unix.Write(fd, data)
					unix.Close(fd)
				}
			case k < 47:
				what, err = "unlink "+p, unix.Unlink(at(p))
			case k < 55:
				what, err = "rmdir "+p, unix.Rmdir(at(p))
			case k < 70:
				what, err = fmt.Sprintf("rename %s %s %d", p, q, flags), unix.Renameat2(unix.AT_FDCWD, at(p), unix.AT_FDCWD, at(q), flags)
			case k < 76:
				what, err = "link "+p+" "+q, unix.Link(at(p), at(q))
			case k < 81:
				what, err = "symlink "+p+" "+q, unix.Symlink(p, at(q))
			case k < 86:
				what, err = fmt.Sprintf("chmod %s %o", p, mode), unix.Fchmodat(unix.AT_FDCWD, at(p), mode, 0)
			case k < 91:
				what, err = fmt.Sprintf("truncate %s %d", p, truncTo), unix.Truncate(at(p), truncTo)
			case k < 96:
				var st unix.Stat_t
				what, err = "lstat "+p, unix.Lstat(at(p), &st)
				if err == nil {
					what += fmt.Sprintf(" mode %o nlink %d size %s", st.Mode, st.Nlink, size(&st))
				}
			default:
				var ents []os.DirEntry
				what = "readdir " + p
				if ents, err = os.ReadDir(at(p)); err == nil {
					for _, e := range ents {
						what += " " + e.Name()
					}
				}
			}
			out[i] = what + ": " + errName(err)
		}
		if out[0] != out[1] {
			t.Fatalf("seed %d op %d:\n  local: %s\n  mount: %s", seed, op, out[0], out[1])
		}
		if strings.HasSuffix(out[0], ": ok") {
			succeeded++
		}
	}
	t.Logf("tree ops: %d of %d succeeded", succeeded, ops)
	want, got := walkTree(t, roots[0]), walkTree(t, roots[1])
	if want != got {
		t.Fatalf("seed %d: trees differ after %d ops:\nlocal:\n%s\nmount:\n%s", seed, ops, want, got)
	}
}

// walkTree describes the tree under root, one line per entry.
func walkTree(t *testing.T, root string) string {
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s mode %o nlink %d size %s", rel, st.Mode, st.Nlink, size(&st))
		switch {
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " sha %x", sha256.Sum256(data))
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " -> %s", l)
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return b.String()
}

func treeSeed() uint64 {
	if *exSeed != 0 {
		return *exSeed
	}
	return uint64(time.Now().UnixNano())
}

func TestTreeOpsMem(t *testing.T) {
	m := mountT(t, newMemBackend(), Options{})
	ops := 3000
	if testing.Short() {
		ops = 1000
	}
	treeOps(t, m.Dir(), treeSeed(), ops)
}
