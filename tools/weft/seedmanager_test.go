package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftfs/weft/fsproto/clustermap"
)

// TestSeedManagerCopies: of several map copies, the newest is chosen; a
// dry run writes nothing; copies of two different maps are refused.
func TestSeedManagerCopies(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, epoch uint64, id clustermap.FSID) string {
		m := clustermap.New()
		m.Epoch, m.FSID = epoch, id
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ours := clustermap.FSID{1, 15: 1}
	a, b := write("a", 9, ours), write("b", 12, ours)
	logDir := filepath.Join(dir, "manager")
	var out, errOut strings.Builder
	if st := seedManager(&out, &errOut, 1, "", logDir, "127.0.0.1:1", []string{a, b}, false); st != 0 {
		t.Fatalf("dry run: status %d: %s", st, errOut.String())
	}
	if !strings.Contains(out.String(), "would seed") || !strings.Contains(out.String(), b+"'s, at epoch 65548") {
		t.Errorf("dry run output:\n%s", out.String())
	}
	if _, err := os.Stat(logDir); !os.IsNotExist(err) {
		t.Errorf("the dry run made %s", logDir)
	}
	other := write("c", 20, clustermap.FSID{2})
	errOut.Reset()
	if st := seedManager(&out, &errOut, 1, "", logDir, "127.0.0.1:1", []string{a, other}, true); st != 1 || !strings.Contains(errOut.String(), "two different maps") {
		t.Errorf("copies of two maps: status %d, %s", st, errOut.String())
	}
	if _, err := os.Stat(logDir); !os.IsNotExist(err) {
		t.Errorf("a refused seed made %s", logDir)
	}
}
