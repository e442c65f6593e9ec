package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/weftfs/weft/engine"
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
	g, err := openFSIDGuard(fsys, "meta", nil, src, quiet)
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
		g, err := openFSIDGuard(fs, "meta", nil, src, quiet)
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

// TestFSIDOnDevice: the guard records the FSID in the device's superblock
// as well as in the file; either record alone is enough (the other is
// written again at start), and two records that differ stop the node.
func TestFSIDOnDevice(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	fsys := vfs.NewMem()
	format := func() {
		t.Helper()
		if _, err := engine.Format(fsys, engine.FormatRequest{Path: "dev", Size: 16 << 20, Force: true,
			Options: engine.FormatOptions{SegmentSize: 1 << 20}}); err != nil {
			t.Fatal(err)
		}
	}
	open := func() *engine.Engine {
		t.Helper()
		e, err := engine.Open(engine.Options{Path: "dev", FS: fsys, Shards: 1, Mode: engine.Interrupt, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	format()
	e := open()
	ours := clustermap.FSID{0xc0, 15: 0xfe}
	src := &fakeMaps{m: mapWithFSID(4, ours)}
	ctx := context.Background()
	g, err := openFSIDGuard(fsys, "meta", e, src, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Map(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got := clustermap.FSID(e.Superblock().ClusterFSID); got != ours {
		t.Fatalf("device records %v, want %v", got, ours)
	}
	e.Close()

	// The metadata folder lost: the device's record is enough, and the
	// file comes back.
	if err := fsys.Remove("meta/" + fsidFileName); err != nil {
		t.Fatal(err)
	}
	e = open()
	g, err = openFSIDGuard(fsys, "meta", e, src, quiet)
	if err != nil || g.FSID() != ours {
		t.Fatalf("without the file: FSID %v, %v", g.FSID(), err)
	}
	if id, err := readFSIDFile(fsys, "meta/"+fsidFileName); err != nil || id != ours {
		t.Fatalf("file not restored: %v, %v", id, err)
	}
	src.m = mapWithFSID(5, clustermap.FSID{9})
	if _, err := g.Map(ctx, 0); !errors.Is(err, ErrForeignMap) {
		t.Fatalf("a foreign map without the file: %v", err)
	}
	e.Close()

	// A device formatted afresh under a kept folder: it gets the record.
	format()
	e = open()
	if _, err := openFSIDGuard(fsys, "meta", e, src, quiet); err != nil {
		t.Fatal(err)
	}
	if got := clustermap.FSID(e.Superblock().ClusterFSID); got != ours {
		t.Fatalf("fresh device records %v, want %v", got, ours)
	}
	e.Close()

	// Two records that differ: no start, both named.
	format()
	e = open()
	other := clustermap.FSID{0xab}
	if err := e.SetClusterFSID(other); err != nil {
		t.Fatal(err)
	}
	_, err = openFSIDGuard(fsys, "meta", e, src, quiet)
	if !errors.Is(err, ErrForeignMap) || !strings.Contains(err.Error(), ours.String()) || !strings.Contains(err.Error(), other.String()) {
		t.Fatalf("differing records: %v", err)
	}
	e.Close()
}

// TestMapCopy: the guard keeps a copy of the newest map it accepted that
// has an FSID, written whole (it survives a crash right after), never
// replaced by an older one.
func TestMapCopy(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	fsys := vfs.NewMem()
	src := &fakeMaps{m: mapWithFSID(3, clustermap.FSID{})}
	g, err := openFSIDGuard(fsys, "meta", nil, src, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	readCopy := func(fs vfs.FS) *clustermap.Map {
		t.Helper()
		f, err := fs.Open("meta/" + MapCopyFileName)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		size, _ := f.Size()
		b := make([]byte, size)
		if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		m, err := clustermap.DecodeMap(b)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if _, err := g.Map(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := g.saveMapCopy(); err != nil {
		t.Fatal(err)
	}
	if names, _ := fsys.ReadDir("meta"); len(names) != 0 {
		t.Fatalf("a map without FSID copied: %v", names)
	}
	ours := clustermap.FSID{5, 15: 5}
	for _, epoch := range []uint64{7, 5} {
		src.m = mapWithFSID(epoch, ours)
		if _, err := g.Map(ctx, 0); err != nil {
			t.Fatal(err)
		}
		if err := g.saveMapCopy(); err != nil {
			t.Fatal(err)
		}
	}
	for seed := int64(1); seed <= 5; seed++ {
		if m := readCopy(fsys.Crash(seed)); m.Epoch != 7 || m.FSID != ours {
			t.Fatalf("copy after a crash: epoch %d FSID %v, want 7 and %v", m.Epoch, m.FSID, ours)
		}
	}
	// Reopened, the guard reports the copy it finds, and the first map
	// it accepts replaces it even when older (the history it serves).
	g, err = openFSIDGuard(fsys, "meta", nil, src, quiet)
	if err != nil || g.CopyEpoch() != 7 {
		t.Fatalf("reopened: copy epoch %d, %v", g.CopyEpoch(), err)
	}
	if _, err := g.Map(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := g.saveMapCopy(); err != nil {
		t.Fatal(err)
	}
	if m := readCopy(fsys); m.Epoch != 5 || g.CopyEpoch() != 5 {
		t.Fatalf("after the first map of the run: copy at %d, reported %d; want 5", m.Epoch, g.CopyEpoch())
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
		if _, err := openFSIDGuard(fsys, "meta", nil, &fakeMaps{}, quiet); err == nil || !strings.Contains(err.Error(), fsidFileName) {
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
