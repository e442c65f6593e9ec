package engine

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ncw/directio"
)

// TestReadCoalescesAdjacentRecords: an object written 4 KiB at a time, one
// batch per write, is read back with far fewer device reads than records
// (the records' device ranges are separated only by batch headers), byte
// exact, for whole and partly covered ranges, and a damaged record inside
// a coalesced read still fails the read with ErrCorrupt naming it.
func TestReadCoalescesAdjacentRecords(t *testing.T) {
	fsys, path := memDevice(t, 24<<20, 1<<20)
	e := openMem(t, fsys, path, 1)
	obj := ObjectID{Lo: 7}
	const records = 64
	want := pattern(7, records*4096)
	for i := 0; i < records; i++ {
		b := directio.AlignedBlock(4096)
		copy(b, want[i*4096:])
		if _, err := e.Write(obj, 0, uint64(i)*4096, b); err != nil {
			t.Fatal(err)
		}
	}
	// Overwrite the middle of record 10: the read then needs part of the
	// old record, the new one, and the old record again (not ascending:
	// a span break).
	patch := directio.AlignedBlock(4096)
	copy(patch, pattern(8, 4096))
	if _, err := e.Write(obj, 0, 10*4096, patch); err != nil {
		t.Fatal(err)
	}
	copy(want[10*4096:], patch)

	reads := func() uint64 { return e.Stats().Shards[0].DeviceReads }
	for _, c := range []struct {
		off, n  uint64
		maxRead uint64 // device reads at most
	}{
		{0, records * 4096, 8},
		{4096 + 100, 40 * 4096, 8},
		{3 * 4096, 4096, 1},
		{9*4096 + 4000, 3 * 4096, 3},
	} {
		before := reads()
		got := mustRead(t, e, obj, c.off, int(c.n))
		if !bytes.Equal(got, want[c.off:c.off+c.n]) {
			t.Fatalf("read [%d,+%d): bytes differ", c.off, c.n)
		}
		if d := reads() - before; d > c.maxRead {
			t.Errorf("read [%d,+%d) of 4 KiB records took %d device reads, want at most %d", c.off, c.n, d, c.maxRead)
		}
	}

	// Damage record 20 on the device: a read spanning it fails.
	damageRecord(t, e, fsys, path, obj, 20*4096, 99)
	e = openMem(t, fsys, path, 1)
	defer e.Close()
	_, err := e.Read(obj, 0, make([]byte, records*4096))
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read over a damaged record: %v, want ErrCorrupt", err)
	}
	t.Logf("%v", err)
	// Reads that do not touch it are still served.
	if got := mustRead(t, e, obj, 0, 20*4096); !bytes.Equal(got, want[:20*4096]) {
		t.Fatal("read before the damaged record: bytes differ")
	}
}

// TestReadSpanDirect: records written contiguously (one 256 KiB write is
// four 64 KiB records in one batch) are read with one device read straight
// into the caller's aligned buffer: no copy.
func TestReadSpanDirect(t *testing.T) {
	fsys, path := memDevice(t, 24<<20, 1<<20)
	e := openMem(t, fsys, path, 1)
	defer e.Close()
	obj := ObjectID{Lo: 9}
	data := directio.AlignedBlock(256 << 10)
	copy(data, pattern(9, len(data)))
	if _, err := e.Write(obj, 0, 0, data); err != nil {
		t.Fatal(err)
	}
	st0 := e.Stats().Shards[0]
	buf := directio.AlignedBlock(len(data))
	if n, err := e.Read(obj, 0, buf); err != nil || n != len(data) {
		t.Fatalf("read: %d, %v", n, err)
	}
	if !bytes.Equal(buf, data) {
		t.Fatal("bytes differ")
	}
	st1 := e.Stats().Shards[0]
	if d := st1.DeviceReads - st0.DeviceReads; d != 1 {
		t.Errorf("%d device reads for 4 contiguous records, want 1", d)
	}
	if c := st1.CopiedOutBytes - st0.CopiedOutBytes; c != 0 {
		t.Errorf("%d bytes copied out, want 0 (read straight into the caller's buffer)", c)
	}
	// Unaligned destination: still one read, through scratch.
	un := make([]byte, len(data)+1)[1:]
	if n, err := e.Read(obj, 0, un); err != nil || n != len(data) || !bytes.Equal(un, data) {
		t.Fatalf("unaligned read: %d, %v", n, err)
	}
	if d := e.Stats().Shards[0].DeviceReads - st1.DeviceReads; d != 1 {
		t.Errorf("%d device reads for an unaligned read of 4 contiguous records, want 1", d)
	}
}
