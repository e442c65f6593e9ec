package engine

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/ncw/directio"
)

// TestRecordBytes: a write is stored as records of at most
// Options.RecordBytes, so a 4 KiB read of a large write fetches one
// record from the device, not the whole write; records written with
// another size (an earlier run's) stay readable, and bad sizes are
// refused with the reason.
func TestRecordBytes(t *testing.T) {
	fsys, path := memDevice(t, 32<<20, 1<<20)
	open := func(recordBytes int) *Engine {
		t.Helper()
		e, err := Open(Options{Path: path, FS: fsys, Shards: 1, Mode: Interrupt, Logger: quietLogger, RecordBytes: recordBytes})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	write := func(e *Engine, obj ObjectID, off uint64, p []byte) {
		t.Helper()
		b := directio.AlignedBlock(len(p))
		copy(b, p)
		if _, err := e.Write(obj, 0, off, b); err != nil {
			t.Fatal(err)
		}
	}
	// readCost reads [off, off+n) of obj, checks the bytes, and returns
	// the device reads and bytes it took.
	readCost := func(e *Engine, obj ObjectID, want []byte, off, n uint64) (reads, bytesRead uint64) {
		t.Helper()
		st0 := e.Stats().Shards[0]
		if got := mustRead(t, e, obj, off, int(n)); !bytes.Equal(got, want[off:off+n]) {
			t.Fatalf("read %v [%d,+%d): bytes differ", obj, off, n)
		}
		st1 := e.Stats().Shards[0]
		return st1.DeviceReads - st0.DeviceReads, st1.DeviceReadBytes - st0.DeviceReadBytes
	}

	old := ObjectID{Lo: 1}
	oldData := pattern(1, 256<<10)
	e := open(64 << 10)
	records := e.Stats().Shards[0].Records
	write(e, old, 0, oldData)
	if got := e.Stats().Shards[0].Records - records; got != 4 {
		t.Errorf("256 KiB written with 64 KiB records: %d records, want 4", got)
	}
	if reads, n := readCost(e, old, oldData, 20<<10, 4096); reads != 1 || n != 64<<10 {
		t.Errorf("4 KiB read inside a 64 KiB record: %d device reads of %d bytes, want 1 of 65536", reads, n)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	e = open(16 << 10)
	defer e.Close()
	obj := ObjectID{Lo: 2}
	data := pattern(2, 256<<10)
	records = e.Stats().Shards[0].Records
	write(e, obj, 0, data)
	if got := e.Stats().Shards[0].Records - records; got != 16 {
		t.Errorf("256 KiB written with 16 KiB records: %d records, want 16", got)
	}
	if reads, n := readCost(e, obj, data, 20<<10, 4096); reads != 1 || n != 16<<10 {
		t.Errorf("4 KiB read inside a 16 KiB record: %d device reads of %d bytes, want 1 of 16384", reads, n)
	}
	// A read across two records fetches both; the whole write is one
	// device read (its records lie back to back).
	if reads, n := readCost(e, obj, data, 14<<10, 4096); reads != 1 || n != 32<<10 {
		t.Errorf("4 KiB read across two 16 KiB records: %d device reads of %d bytes, want 1 of 32768", reads, n)
	}
	if reads, n := readCost(e, obj, data, 0, 256<<10); reads != 1 || n != 256<<10 {
		t.Errorf("whole 256 KiB read: %d device reads of %d bytes, want 1 of 262144", reads, n)
	}
	// The object written with 64 KiB records reads as before, and a write
	// into it now makes 16 KiB records.
	if reads, n := readCost(e, old, oldData, 20<<10, 4096); reads != 1 || n != 64<<10 {
		t.Errorf("4 KiB read of an earlier 64 KiB record: %d device reads of %d bytes", reads, n)
	}
	patch := pattern(3, 64<<10)
	write(e, old, 128<<10, patch)
	copy(oldData[128<<10:], patch)
	if reads, n := readCost(e, old, oldData, 130<<10, 4096); reads != 1 || n != 16<<10 {
		t.Errorf("4 KiB read of a rewritten range: %d device reads of %d bytes, want 1 of 16384", reads, n)
	}
	if got := mustRead(t, e, old, 0, len(oldData)); !bytes.Equal(got, oldData) {
		t.Fatal("object of mixed record sizes reads back wrong")
	}

	for _, bad := range []int{1000, 4097, 6 << 10, MaxRecordBytes + 4096, -4096} {
		_, err := Open(Options{Path: path, FS: fsys, Logger: quietLogger, RecordBytes: bad})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "record size") {
			t.Errorf("RecordBytes %d: %v, want ErrInvalid naming the record size", bad, err)
		}
	}
}
