package namespace

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func mustApply(t testing.TB, ns *Namespace, c Command) Result {
	t.Helper()
	res := ns.ApplyCommand(c)
	if res.Err != nil {
		t.Fatalf("%#v: %v", c, res.Err)
	}
	return res
}

func wantErrno(t testing.TB, ns *Namespace, c Command, want syscall.Errno) {
	t.Helper()
	if got := Errno(ns.ApplyCommand(c).Err); got != want {
		t.Fatalf("%#v: errno %v, want %v", c, got, want)
	}
}

// TestLinkMax fills a file's links and a directory's subdirectories to
// LinkMax. With -short it starts the counts just below the limit instead
// (130,000 commands take seconds under the race detector), and skips
// Check, which would see counts without their entries.
func TestLinkMax(t *testing.T) {
	if invariantsOn {
		t.Skip("with -tags invariants every command runs Check: the short form's poked counts fail it and the long form is quadratic")
	}
	ns := New()
	f := mustApply(t, ns, Create{Parent: RootIno, Name: "f"}).Attr.Ino
	d := mustApply(t, ns, Mkdir{Parent: RootIno, Name: "d"}).Attr.Ino
	mustApply(t, ns, Mkdir{Parent: d, Name: "s2"})
	if testing.Short() {
		ns.mu.s.inodes[f].Nlink = LinkMax - 1
		ns.mu.s.inodes[d].Nlink = LinkMax - 1
	} else {
		for i := 2; i < LinkMax; i++ {
			mustApply(t, ns, Link{Ino: f, Parent: RootIno, Name: fmt.Sprint("l", i)})
		}
		for i := 3; i < LinkMax-1; i++ {
			mustApply(t, ns, Mkdir{Parent: d, Name: fmt.Sprint("s", i)})
		}
	}
	mustApply(t, ns, Link{Ino: f, Parent: RootIno, Name: "last"})
	wantErrno(t, ns, Link{Ino: f, Parent: RootIno, Name: "one-more"}, syscall.EMLINK)
	mustApply(t, ns, Mkdir{Parent: d, Name: "last"})
	wantErrno(t, ns, Mkdir{Parent: d, Name: "one-more"}, syscall.EMLINK)
	// Moving a directory in is a new link too; moving one over an
	// existing subdirectory is not.
	mustApply(t, ns, Mkdir{Parent: RootIno, Name: "x"})
	wantErrno(t, ns, Rename{SrcParent: RootIno, SrcName: "x", DstParent: d, DstName: "x"}, syscall.EMLINK)
	mustApply(t, ns, Rename{SrcParent: RootIno, SrcName: "x", DstParent: d, DstName: "s2"})
	// Exchanging a directory for a file moves the directory's link.
	mustApply(t, ns, Mkdir{Parent: RootIno, Name: "y"})
	mustApply(t, ns, Create{Parent: d, Name: "file"})
	wantErrno(t, ns, Rename{SrcParent: RootIno, SrcName: "y", DstParent: d, DstName: "file", Flags: RenameExchange}, syscall.EMLINK)
	if testing.Short() {
		return
	}
	if err := ns.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestXattrLimits(t *testing.T) {
	ns := New()
	f := mustApply(t, ns, Create{Parent: RootIno, Name: "f"}).Attr.Ino
	wantErrno(t, ns, SetXattr{Ino: f, Name: ""}, syscall.ERANGE)
	wantErrno(t, ns, SetXattr{Ino: f, Name: strings.Repeat("n", XattrNameLenMax+1)}, syscall.ERANGE)
	wantErrno(t, ns, SetXattr{Ino: f, Name: "a\x00"}, syscall.EINVAL)
	wantErrno(t, ns, SetXattr{Ino: f, Name: "a", Value: make([]byte, XattrValueLenMax+1)}, syscall.E2BIG)
	big := make([]byte, XattrValueLenMax)
	for i := 0; i < 3; i++ {
		mustApply(t, ns, SetXattr{Ino: f, Name: fmt.Sprint("big", i), Value: big})
	}
	// 3 × 64 KiB and names: the fourth does not fit in 256 KiB, but
	// replacing one of the three by a value of the same size does.
	wantErrno(t, ns, SetXattr{Ino: f, Name: "big3", Value: big}, syscall.ENOSPC)
	mustApply(t, ns, SetXattr{Ino: f, Name: "big0", Value: big, Flags: XattrReplace})
	mustApply(t, ns, SetXattr{Ino: f, Name: "big3", Value: big[:XattrBytesMax-3*(4+XattrValueLenMax)-4]})
	wantErrno(t, ns, SetXattr{Ino: f, Name: "c", Value: nil}, syscall.ENOSPC)
	if err := ns.Check(); err != nil {
		t.Fatal(err)
	}
	// The largest state round trips through a snapshot.
	snap, _ := ns.Snapshot()
	if _, err := DecodeSnapshot(snap); err != nil {
		t.Fatal(err)
	}
}

// TestReadDirStable pages through a directory one entry at a time while
// entries come and go between pages: every entry present for the whole
// listing appears exactly once, nothing appears twice, and nothing that
// never existed appears.
func TestReadDirStable(t *testing.T) {
	const seed = 5
	r := rand.New(rand.NewPCG(seed, seed))
	for round := 0; round < 50; round++ {
		ns := New()
		d := mustApply(t, ns, Mkdir{Parent: RootIno, Name: "d"}).Attr.Ino
		names := map[string]bool{}
		for i := 0; i < 40; i++ {
			n := fmt.Sprintf("n%02d", r.IntN(80))
			if ns.ApplyCommand(Create{Parent: d, Name: n}).Err == nil {
				names[n] = true
			}
		}
		stable := map[string]bool{}
		for n := range names {
			stable[n] = true
		}
		ever := maps.Clone(names)
		seen := map[string]int{}
		cookie := ""
		for {
			ents, next, err := ns.ReadDir(d, cookie, 1+r.IntN(3))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				seen[e.Name]++
			}
			if next == "" {
				break
			}
			cookie = next
			// Churn: add, remove and rename entries between pages.
			for i := 0; i < 3; i++ {
				n := fmt.Sprintf("n%02d", r.IntN(80))
				switch r.IntN(3) {
				case 0:
					if ns.ApplyCommand(Create{Parent: d, Name: n, Excl: true}).Err == nil {
						ever[n] = true
					}
				case 1:
					if ns.ApplyCommand(Unlink{Parent: d, Name: n}).Err == nil {
						delete(stable, n)
					}
				case 2:
					to := fmt.Sprintf("n%02d", r.IntN(80))
					if ns.ApplyCommand(Rename{SrcParent: d, SrcName: n, DstParent: d, DstName: to}).Err == nil && n != to {
						delete(stable, n)
						delete(stable, to)
						ever[to] = true
					}
				}
			}
		}
		for n, c := range seen {
			if c > 1 || !ever[n] {
				t.Fatalf("seed %d round %d: %q listed %d times (existed: %v)", seed, round, n, c, ever[n])
			}
		}
		for n := range stable {
			if seen[n] != 1 {
				t.Fatalf("seed %d round %d: stable entry %q listed %d times", seed, round, n, seen[n])
			}
		}
	}
}

func TestReadDirErrors(t *testing.T) {
	ns := sampleNamespace(t)
	if _, _, err := ns.ReadDir(3, "", 0); Errno(err) != syscall.ENOTDIR {
		t.Fatalf("ReadDir of a file: %v", err)
	}
	if _, _, err := ns.ReadDir(999, "", 0); Errno(err) != syscall.ENOENT {
		t.Fatalf("ReadDir of nothing: %v", err)
	}
	// A removed directory that is still open lists empty.
	if ents, next, err := ns.ReadDir(7, "", 0); err != nil || len(ents) != 0 || next != "" {
		t.Fatalf("ReadDir of a removed dir: %v %q %v", ents, next, err)
	}
	all, next, _ := ns.ReadDir(RootIno, "", 0)
	if next != "" || !slices.IsSortedFunc(all, func(a, b DirEntry) int { return strings.Compare(a.Name, b.Name) }) {
		t.Fatalf("unlimited listing %v, next %q", all, next)
	}
	// A cookie that is not (or no longer) an entry still pages on.
	ents, _, _ := ns.ReadDir(RootIno, "e", 1)
	if len(ents) != 1 || ents[0].Name != "g" {
		t.Fatalf("from cookie \"e\": %v", ents)
	}
	if _, err := ns.Readlink(3); Errno(err) != syscall.EINVAL {
		t.Fatalf("Readlink of a file: %v", err)
	}
	if a, err := ns.Lookup(2, ".."); err != nil || a.Ino != RootIno {
		t.Fatalf("Lookup ..: %v %v", a, err)
	}
	if _, err := ns.Lookup(7, ".."); Errno(err) != syscall.ENOENT {
		t.Fatalf("Lookup .. of a removed dir: %v", err)
	}
	if _, err := ns.Lookup(3, "x"); Errno(err) != syscall.ENOTDIR {
		t.Fatalf("Lookup in a file: %v", err)
	}
}
