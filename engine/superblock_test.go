package engine

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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
	withFSID := *sb
	withFSID.ClusterFSID = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	withFSID.Encode(buf)
	f.Add(bytes.Clone(buf))
	v2 := *sb
	v2.Version = 2
	v2.Encode(buf)
	f.Add(bytes.Clone(buf))
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

func TestSetClusterFSID(t *testing.T) {
	for name, mk := range fileSystems(t) {
		t.Run(name, func(t *testing.T) {
			fsys, path := mk()
			if _, err := Format(fsys, FormatRequest{Path: path, Size: 64 << 20, Options: FormatOptions{SegmentSize: 1 << 20}}); err != nil {
				t.Fatal(err)
			}
			e := openMem(t, fsys, path, 1)
			before := e.Superblock()
			if before.ClusterFSID != ([16]byte{}) || before.Version != formatVersion {
				t.Fatalf("fresh device: %+v", before)
			}
			id := [16]byte{0xaa, 1, 2, 3}
			if err := e.SetClusterFSID([16]byte{}); err == nil || !strings.Contains(err.Error(), "zero") {
				t.Errorf("zero FSID: %v", err)
			}
			if err := e.SetClusterFSID(id); err != nil {
				t.Fatal(err)
			}
			after := e.Superblock()
			if after.ClusterFSID != id || after.Generation != before.Generation+1 {
				t.Errorf("after: %+v", after)
			}
			if err := e.SetClusterFSID(id); err != nil || e.Superblock().Generation != after.Generation {
				t.Errorf("the same FSID again: %v, generation %d", err, e.Superblock().Generation)
			}
			other := [16]byte{0xbb}
			if err := e.SetClusterFSID(other); !errors.Is(err, ErrClusterFSID) || !strings.Contains(err.Error(), UUID(id).String()) {
				t.Errorf("another FSID: %v", err)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			if err := e.SetClusterFSID(id); !errors.Is(err, ErrClosed) {
				t.Errorf("closed engine: %v", err)
			}
			e = openMem(t, fsys, path, 1)
			if got := e.Superblock(); got.ClusterFSID != id || got.Generation != after.Generation {
				t.Errorf("reopened: %+v", got)
			}
			e.Close()
			// Format clears it.
			if _, err := Format(fsys, FormatRequest{Path: path, Force: true, Options: FormatOptions{SegmentSize: 1 << 20}}); err != nil {
				t.Fatal(err)
			}
			e = openMem(t, fsys, path, 1)
			defer e.Close()
			if got := e.Superblock(); got.ClusterFSID != ([16]byte{}) {
				t.Errorf("formatted again: %+v", got)
			}
		})
	}
}

// TestClusterFSIDVersion2: a device formatted by a build that wrote
// version 2 opens, and recording a cluster FSID makes it version 3. A
// damaged second checksum is corruption, named as such.
func TestClusterFSIDVersion2(t *testing.T) {
	fsys, path := memDevice(t, 64<<20, 1<<20)
	d, err := OpenDevice(fsys, path)
	if err != nil {
		t.Fatal(err)
	}
	v2 := *d.SB
	d.Close()
	v2.Version = 2
	buf := make([]byte, superblockSize)
	v2.Encode(buf)
	if !bytes.Equal(buf[sbFSIDOffset:sbCRC2Offset+4], make([]byte, sbCRC2Offset+4-sbFSIDOffset)) {
		t.Fatal("a version 2 superblock has bytes in the version 3 extension")
	}
	writeAt(t, fsys, path, buf, 0)
	writeAt(t, fsys, path, buf, superblockSize)
	e := openMem(t, fsys, path, 1)
	if got := e.Superblock(); got.Version != 2 {
		t.Fatalf("version 2 device opened as %+v", got)
	}
	id := [16]byte{7}
	if err := e.SetClusterFSID(id); err != nil {
		t.Fatal(err)
	}
	e.Close()
	d, err = OpenDevice(fsys, path)
	if err != nil {
		t.Fatal(err)
	}
	if d.SB.Version != 3 || d.SB.ClusterFSID != id {
		t.Errorf("after recording: %+v", d.SB)
	}
	d.Close()

	// Damage the FSID of both copies: the first checksum still holds.
	writeAt(t, fsys, path, []byte{0xff}, sbFSIDOffset+3)
	writeAt(t, fsys, path, []byte{0xff}, superblockSize+sbFSIDOffset+3)
	if _, err := OpenDevice(fsys, path); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "second checksum") {
		t.Errorf("damaged FSID: %v", err)
	}
}

// TestOpenVersion2Device opens a device that the last build writing
// format version 2 made (testdata/device-v2.img.gz: 8 objects, 4 in its
// checkpoint and 4 in its log after it, then a crash): this build reads
// every object back, records a cluster FSID in it, and reads them again.
func TestOpenVersion2Device(t *testing.T) {
	gz, err := os.Open("testdata/device-v2.img.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer gz.Close()
	zr, err := gzip.NewReader(gz)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dev")
	img, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(img, zr); err != nil {
		t.Fatal(err)
	}
	img.Close()
	check := func(e *Engine) {
		t.Helper()
		for i := uint64(0); i < 8; i++ {
			want := pattern(i, 5000+int(i)*1000)
			if got := mustRead(t, e, ObjectID{Lo: i + 1}, i*1000, len(want)); !bytes.Equal(got, want) {
				t.Fatalf("object %d differs", i+1)
			}
		}
	}
	e := openMem(t, vfs.Default, path, 1)
	if v := e.Superblock().Version; v != 2 {
		t.Fatalf("the image's superblock is version %d, want 2", v)
	}
	check(e)
	id := [16]byte{2, 15: 2}
	if err := e.SetClusterFSID(id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Write(ObjectID{Lo: 100}, 3, 0, pattern(100, 4096)); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openMem(t, vfs.Default, path, 1)
	defer e.Close()
	if sb := e.Superblock(); sb.Version != 3 || sb.ClusterFSID != id {
		t.Fatalf("after recording: version %d, FSID %x", sb.Version, sb.ClusterFSID)
	}
	check(e)
	if got := mustRead(t, e, ObjectID{Lo: 100}, 0, 4096); !bytes.Equal(got, pattern(100, 4096)) {
		t.Fatal("object written after recording differs")
	}
}

// TestSetClusterFSIDCrash cuts the power at every write and flush of
// SetClusterFSID (the disk failing from there on), under several crash
// draws: the device always opens, with the FSID recorded or none, and
// recorded whenever SetClusterFSID returned success.
func TestSetClusterFSIDCrash(t *testing.T) {
	id := [16]byte{0x5e, 0xed}
	for point := 1; point <= 5; point++ {
		for seed := int64(1); seed <= 6; seed++ {
			fsys, path := memDevice(t, 16<<20, 1<<20)
			e := openMem(t, fsys, path, 1)
			var n atomic.Int64
			fsys.SetFault(func(op vfs.Op, _ string) error {
				if (op == vfs.OpWrite || op == vfs.OpSync) && n.Add(1) >= int64(point) {
					return vfs.ErrInjected
				}
				return nil
			})
			err := e.SetClusterFSID(id)
			after := fsys.Crash(seed)
			fsys.SetFault(nil)
			e.Close()
			d, oerr := OpenDevice(after, path)
			if oerr != nil {
				t.Fatalf("point %d seed %d: open after the crash: %v (SetClusterFSID: %v)", point, seed, oerr, err)
			}
			got := d.SB.ClusterFSID
			d.Close()
			if got != id && (err == nil || got != [16]byte{}) {
				t.Fatalf("point %d seed %d: FSID %x after the crash, SetClusterFSID returned %v", point, seed, got, err)
			}
			e = openMem(t, after, path, 1)
			if err := e.SetClusterFSID(id); err != nil {
				t.Fatalf("point %d seed %d: recording again: %v", point, seed, err)
			}
			e.Close()
		}
	}
}
