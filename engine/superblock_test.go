package engine

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftfs/weft/internal/vfs"
)

func fileSystems(t *testing.T) map[string]func() (vfs.FS, string) {
	return map[string]func() (vfs.FS, string){
		"os":  func() (vfs.FS, string) { return vfs.Default, filepath.Join(t.TempDir(), "dev") },
		"mem": func() (vfs.FS, string) { m := vfs.NewMem(); m.MkdirAll("/d"); return m, "/d/dev" },
	}
}

func TestFormatOpen(t *testing.T) {
	for name, mk := range fileSystems(t) {
		t.Run(name, func(t *testing.T) {
			fsys, path := mk()
			sb, err := Format(fsys, FormatRequest{Path: path, Size: 256 << 20, Options: FormatOptions{SegmentSize: 8 << 20, PLP: true}})
			if err != nil {
				t.Fatal(err)
			}
			if sb.SegmentCount < 20 || sb.SegmentsOffset%uint64(sb.SegmentSize) != 0 || !sb.PLP {
				t.Fatalf("layout: %+v", sb)
			}
			d, err := OpenDevice(fsys, path)
			if err != nil {
				t.Fatal(err)
			}
			if *d.SB != *sb {
				t.Errorf("read back %+v\nwrote %+v", d.SB, sb)
			}
			if _, err := OpenDevice(fsys, path); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), path) {
				t.Errorf("second open: %v", err)
			}
			if _, err := Format(fsys, FormatRequest{Path: path, Force: true}); !errors.Is(err, ErrInUse) {
				t.Errorf("format of an open device: %v", err)
			}
			d.Close()
			if _, err := Format(fsys, FormatRequest{Path: path}); !errors.Is(err, ErrFormatted) || !strings.Contains(err.Error(), sb.UUID.String()) {
				t.Errorf("format over a weft device: %v", err)
			}
			sb2, err := Format(fsys, FormatRequest{Path: path, Force: true})
			if err != nil || sb2.UUID == sb.UUID {
				t.Errorf("forced format: %v (uuid %s, was %s)", err, sb2.UUID, sb.UUID)
			}
		})
	}
}

func writeAt(t *testing.T, fsys vfs.FS, path string, b []byte, off int64) {
	t.Helper()
	f, err := fsys.OpenRW(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	f.Sync()
}

func readAt(t *testing.T, fsys vfs.FS, path string, n int, off int64) []byte {
	t.Helper()
	f, err := fsys.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	f.ReadAt(b, off)
	return b
}

func TestOpenBadDevices(t *testing.T) {
	fsys := vfs.NewMem()
	fsys.MkdirAll("/d")
	mkFile := func(name string, content []byte, size int64) string {
		f, _ := fsys.Create("/d/"+name, false)
		f.Truncate(size)
		f.WriteAt(content, 0)
		f.Sync()
		f.Close()
		return "/d/" + name
	}

	notWeft := mkFile("ext4", bytes.Repeat([]byte("not a weft device "), 1000), 64<<20)
	if _, err := OpenDevice(fsys, notWeft); !errors.Is(err, ErrNotWeft) || !strings.Contains(err.Error(), notWeft) {
		t.Errorf("non-weft device: %v", err)
	}
	tiny := mkFile("tiny", nil, 100)
	if _, err := OpenDevice(fsys, tiny); !errors.Is(err, ErrNotWeft) {
		t.Errorf("100-byte device: %v", err)
	}
	if _, err := OpenDevice(fsys, "/d/missing"); err == nil || !strings.Contains(err.Error(), "/d/missing") {
		t.Errorf("missing device: %v", err)
	}

	good, err := Format(fsys, FormatRequest{Path: "/d/dev", Size: 64 << 20, Options: FormatOptions{SegmentSize: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	// Newer format: the next version with a valid checksum.
	newer := *good
	newer.Version = formatVersion + 1
	buf := make([]byte, superblockSize)
	newer.Encode(buf)
	writeAt(t, fsys, "/d/dev", buf, 0)
	writeAt(t, fsys, "/d/dev", buf, superblockSize)
	if _, err := OpenDevice(fsys, "/d/dev"); !errors.Is(err, ErrNewerFormat) || !strings.Contains(err.Error(), fmt.Sprintf("version %d", formatVersion+1)) {
		t.Errorf("newer format: %v", err)
	}
	// Older format: version 1 (64-byte descriptors, no request ids).
	older := *good
	older.Version = 1
	older.Encode(buf)
	writeAt(t, fsys, "/d/dev", buf, 0)
	writeAt(t, fsys, "/d/dev", buf, superblockSize)
	if _, err := OpenDevice(fsys, "/d/dev"); !errors.Is(err, ErrOldFormat) || !strings.Contains(err.Error(), "version 1") {
		t.Errorf("older format: %v", err)
	}

	// One damaged copy: opened from the other, and repaired.
	good.Encode(buf)
	writeAt(t, fsys, "/d/dev", buf, 0)
	writeAt(t, fsys, "/d/dev", buf, superblockSize)
	writeAt(t, fsys, "/d/dev", []byte{0xde, 0xad}, 40)
	d, err := OpenDevice(fsys, "/d/dev")
	if err != nil {
		t.Fatalf("one damaged copy: %v", err)
	}
	d.Close()
	if got := readAt(t, fsys, "/d/dev", superblockSize, 0); !bytes.Equal(got, buf) {
		t.Error("damaged copy was not repaired")
	}

	// Both damaged: a corruption error naming each copy's problem.
	writeAt(t, fsys, "/d/dev", []byte{0xde, 0xad}, 40)
	writeAt(t, fsys, "/d/dev", []byte{0xbe, 0xef}, superblockSize+60)
	_, err = OpenDevice(fsys, "/d/dev")
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "copy 0") || !strings.Contains(err.Error(), "copy 1") || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("both copies damaged: %v", err)
	}

	// A device shorter than its superblock says.
	good.Encode(buf)
	writeAt(t, fsys, "/d/dev", buf, 0)
	writeAt(t, fsys, "/d/dev", buf, superblockSize)
	f, _ := fsys.OpenRW("/d/dev", false)
	f.Truncate(32 << 20)
	f.Sync()
	f.Close()
	if _, err := OpenDevice(fsys, "/d/dev"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated device: %v", err)
	}
}

func TestLayoutLimits(t *testing.T) {
	if _, err := Layout(3<<20, FormatOptions{SegmentSize: 1 << 20}); err == nil || !strings.Contains(err.Error(), "need at least") {
		t.Errorf("too small a device: %v", err)
	}
	if _, err := Layout(1<<30, FormatOptions{SegmentSize: 3 << 20}); err == nil || !strings.Contains(err.Error(), "power of two") {
		t.Errorf("segment size not a power of two: %v", err)
	}
	if _, err := Format(vfs.NewMem(), FormatRequest{Path: "/nope"}); err == nil || !strings.Contains(err.Error(), "give a size") {
		t.Errorf("missing device without a size: %v", err)
	}
}

// FuzzDecodeSuperblock: no panic, and an accepted superblock survives
// encode and decode unchanged.
func FuzzDecodeSuperblock(f *testing.F) {
	sb, err := Layout(1<<30, FormatOptions{})
	if err != nil {
		f.Fatal(err)
	}
	buf := make([]byte, superblockSize)
	sb.Encode(buf)
	f.Add(buf)
	f.Add(make([]byte, superblockSize))
	f.Add(buf[:100])
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeSuperblock(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotWeft) && !errors.Is(err, ErrNewerFormat) && !errors.Is(err, ErrOldFormat) {
				t.Fatalf("error without a classification: %v", err)
			}
			return
		}
		again := make([]byte, superblockSize)
		got.Encode(again)
		back, err := DecodeSuperblock(again)
		if err != nil || *back != *got {
			t.Fatalf("re-encoded superblock: %v\n%+v\n%+v", err, back, got)
		}
	})
}
