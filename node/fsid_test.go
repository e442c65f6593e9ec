package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/internal/vfs"
)

// fakeMaps returns its current map.
type fakeMaps struct{ m *clustermap.Map }

func (f *fakeMaps) Map(context.Context, uint64) (*clustermap.Map, error) { return f.m, nil }

func mapWithFSID(epoch uint64, id clustermap.FSID) *clustermap.Map {
	m := clustermap.New()
	m.Epoch, m.FSID = epoch, id
	return m
}

// TestFSIDGuard: a node takes maps without an FSID until one has it,
// records that FSID durably (it survives a crash right after the map was
// handed out), and from then on, also after a restart, refuses a map with
// another FSID or none.
func TestFSIDGuard(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	fsys := vfs.NewMem()
	src := &fakeMaps{m: mapWithFSID(3, clustermap.FSID{})}
	g, err := openFSIDGuard(fsys, "meta", src, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := g.Map(ctx, 0); err != nil {
		t.Fatalf("a map without FSID on a node that recorded none: %v", err)
	}
	if names, _ := fsys.ReadDir("meta"); len(names) != 0 {
		t.Fatalf("recorded %v for a map without FSID", names)
	}
	ours := clustermap.FSID{1, 2, 3, 15: 4}
	src.m = mapWithFSID(4, ours)
	if _, err := g.Map(ctx, 0); err != nil {
		t.Fatal(err)
	}
	crashed := fsys.Crash(1)
	for _, fs := range []vfs.FS{fsys, crashed} {
		g, err := openFSIDGuard(fs, "meta", src, quiet)
		if err != nil || g.FSID() != ours {
			t.Fatalf("reopened: FSID %v, %v; want %v", g.FSID(), err, ours)
		}
		if _, err := g.Map(ctx, 0); err != nil {
			t.Fatalf("our map after reopening: %v", err)
		}
		for _, m := range []*clustermap.Map{mapWithFSID(2, clustermap.FSID{9}), mapWithFSID(5, clustermap.FSID{})} {
			src.m = m
			_, err := g.Map(ctx, 0)
			if !errors.Is(err, ErrForeignMap) || !strings.Contains(err.Error(), ours.String()) || !strings.Contains(err.Error(), "cluster-fsid") {
				t.Fatalf("map with FSID %v: %v, want ErrForeignMap naming ours and the file", m.FSID, err)
			}
		}
		src.m = mapWithFSID(6, ours)
	}
}

func TestFSIDFileRefused(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, content := range map[string]string{
		"empty":        "",
		"other file":   "hello\n",
		"no newline":   "weft cluster map fsid 01020304-0506-0708-090a-0b0c0d0e0f10",
		"short":        "weft cluster map fsid 01020304-0506-0708-090a-0b0c0d0e0f\n",
		"not hex":      "weft cluster map fsid 0102030x-0506-0708-090a-0b0c0d0e0f10\n",
		"no groups":    "weft cluster map fsid 0102030405060708090a0b0c0d0e0f10\n",
		"zero":         "weft cluster map fsid 00000000-0000-0000-0000-000000000000\n",
		"trailing":     "weft cluster map fsid 01020304-0506-0708-090a-0b0c0d0e0f10\nx\n",
		"two newlines": "weft cluster map fsid 01020304-0506-0708-090a-0b0c0d0e0f10\n\n",
	} {
		fsys := vfs.NewMem()
		if err := fsys.MkdirAll("meta"); err != nil {
			t.Fatal(err)
		}
		f, err := fsys.Create("meta/"+fsidFileName, false)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte(content), 0)
		f.Close()
		if _, err := openFSIDGuard(fsys, "meta", &fakeMaps{}, quiet); err == nil || !strings.Contains(err.Error(), fsidFileName) {
			t.Errorf("%s: %v, want an error naming the file", name, err)
		}
	}
	id, err := parseFSIDFile([]byte("weft cluster map fsid 01020304-0506-0708-090a-0b0c0d0e0f10\n"))
	if err != nil || id != (clustermap.FSID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}) {
		t.Fatalf("a good file: %v, %v", id, err)
	}
}

func FuzzParseFSIDFile(f *testing.F) {
	f.Add([]byte("weft cluster map fsid 01020304-0506-0708-090a-0b0c0d0e0f10\n"))
	f.Add([]byte("weft cluster map fsid \n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := parseFSIDFile(b)
		if err != nil {
			return
		}
		if got := fsidFilePrefix + id.String() + "\n"; !strings.EqualFold(got, string(b)) {
			t.Fatalf("%q parses as %v, which writes %q", b, id, got)
		}
	})
}
