package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ncw/directio"

	"github.com/weftfs/weft/internal/vfs"
)

// quietLogger drops engine logs below errors in tests.
var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

func memDevice(t testing.TB, size int64, seg uint32) (*vfs.Mem, string) {
	t.Helper()
	fsys := vfs.NewMem()
	if _, err := Format(fsys, FormatRequest{Path: "dev", Size: size, Options: FormatOptions{SegmentSize: seg}}); err != nil {
		t.Fatal(err)
	}
	return fsys, "dev"
}

func openMem(t testing.TB, fsys vfs.FS, path string, shards int) *Engine {
	t.Helper()
	e, err := Open(Options{Path: path, FS: fsys, Shards: shards, Mode: Interrupt, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func pattern(seed uint64, n int) []byte {
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	key[2], key[3] = byte(seed>>16), byte(seed>>24)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

func mustRead(t testing.TB, e *Engine, obj ObjectID, off uint64, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	got, err := e.Read(obj, off, p)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("read %v at %d: %v", obj, off, err)
	}
	return p[:got]
}

func TestEngineBasics(t *testing.T) {
	fsys, path := memDevice(t, 64<<20, 1<<20)
	e := openMem(t, fsys, path, 2)
	a, b := ObjectID{Lo: 1}, ObjectID{Hi: 9, Lo: 2}
	d1 := pattern(1, 10000) // not a 4 KiB multiple: staged
	if r, err := e.Write(a, 7, 100, d1); err != nil || r.Version != 1 || r.PGSeq != 1 {
		t.Fatalf("write: %+v %v", r, err)
	}
	if got := mustRead(t, e, a, 100, len(d1)); !bytes.Equal(got, d1) {
		t.Fatal("read back differs")
	}
	// The hole before offset 100 reads as zeros.
	if got := mustRead(t, e, a, 0, 100); !bytes.Equal(got, make([]byte, 100)) {
		t.Fatal("hole is not zero")
	}
	// Reading past the end: short read and io.EOF.
	p := make([]byte, 200)
	n, err := e.Read(a, 10000, p)
	if n != 100 || !errors.Is(err, io.EOF) {
		t.Fatalf("read past end: %d %v", n, err)
	}
	// Aligned write: zero copy path.
	d2 := directio.AlignedBlock(128 << 10)
	copy(d2, pattern(2, len(d2)))
	if _, err := e.Write(b, 7, 4096, d2); err != nil {
		t.Fatal(err)
	}
	// Overwrite the middle of a.
	d3 := pattern(3, 5000)
	if r, err := e.Write(a, 7, 3000, d3); err != nil || r.Version != 2 {
		t.Fatalf("overwrite: %+v %v", r, err)
	}
	want := append([]byte(nil), make([]byte, 100)...)
	want = append(want, d1...)
	copy(want[3000:], d3)
	if got := mustRead(t, e, a, 0, len(want)); !bytes.Equal(got, want) {
		t.Fatal("overwrite read back differs")
	}
	st, err := e.Stat(a)
	if err != nil || st.Size != 10100 || st.Version != 2 {
		t.Fatalf("stat: %+v %v", st, err)
	}
	if _, err := e.Truncate(a, 7, 4000); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, e, a, 0, 10000); !bytes.Equal(got, want[:4000]) {
		t.Fatal("truncate down")
	}
	if _, err := e.Truncate(a, 7, 8000); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, e, a, 0, 8000); !bytes.Equal(got[:4000], want[:4000]) || !bytes.Equal(got[4000:], make([]byte, 4000)) {
		t.Fatal("truncate up must read zeros")
	}
	ch, err := e.Changes(7, 0, 0)
	if err != nil || len(ch) != 2 || ch[0].ID != b || ch[1].ID != a || ch[1].PGSeq != 5 {
		t.Fatalf("changes: %+v %v", ch, err)
	}
	if ch, _ := e.Changes(7, 4, 0); len(ch) != 1 || ch[0].ID != a {
		t.Fatalf("changes since 4: %+v", ch)
	}
	if _, err := e.Delete(b, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Stat(b); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat deleted: %v", err)
	}
	if _, err := e.Read(ObjectID{Lo: 99}, 0, p); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read unknown: %v", err)
	}
	if err := e.Verify(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen: from the checkpoint Close wrote.
	e = openMem(t, fsys, path, 2)
	defer e.Close()
	if e.Recovery().BatchesReplayed != 0 {
		t.Errorf("clean reopen replayed %d batches", e.Recovery().BatchesReplayed)
	}
	if got := mustRead(t, e, a, 0, 4000); !bytes.Equal(got, want[:4000]) {
		t.Fatal("after reopen")
	}
	if _, err := e.Stat(b); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat deleted after reopen: %v", err)
	}
	if r, err := e.Write(a, 7, 0, []byte("x")); err != nil || r.PGSeq != 7 || r.Version != 5 {
		t.Fatalf("write after reopen: %+v %v", r, err)
	}
	if err := e.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestEngineRingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev")
	if _, err := Format(vfs.Default, FormatRequest{Path: path, Size: 64 << 20, Options: FormatOptions{SegmentSize: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []PollMode{Hybrid, Poll, Interrupt} {
		e, err := Open(Options{Path: path, Mode: mode, Logger: quietLogger})
		if err != nil {
			t.Fatal(err)
		}
		obj := ObjectID{Lo: uint64(mode)}
		d := directio.AlignedBlock(64 << 10)
		copy(d, pattern(uint64(mode), len(d)))
		if _, err := e.Write(obj, 1, 0, d); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, e, obj, 0, len(d)); !bytes.Equal(got, d) {
			t.Fatalf("%v: read back differs", mode)
		}
		if got := mustRead(t, e, obj, 4096, 100); !bytes.Equal(got, d[4096:4196]) {
			t.Fatalf("%v: partial read differs", mode)
		}
		t.Logf("%s", e.Describe())
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// A write of many small records goes to the ring as one writev whose
	// records' data share an iovec; after a reopen (the records' checksums
	// verified again) it reads back exact.
	e, err := Open(Options{Path: path, Mode: Interrupt, Logger: quietLogger, RecordBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	obj := ObjectID{Lo: 99}
	d := directio.AlignedBlock(256 << 10)
	copy(d, pattern(99, len(d)))
	if _, err := e.Write(obj, 1, 8192, d); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if e, err = Open(Options{Path: path, Logger: quietLogger}); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := mustRead(t, e, obj, 8192, len(d)); !bytes.Equal(got, d) {
		t.Fatal("256 KiB of 4 KiB records: read back after reopen differs")
	}
	if err := e.Verify(); err != nil {
		t.Fatalf("verify after a write of 4 KiB records: %v", err)
	}
}

func TestEngineBadInput(t *testing.T) {
	fsys, path := memDevice(t, 24<<20, 1<<20)
	e := openMem(t, fsys, path, 1)
	obj := ObjectID{Lo: 5}
	// Unaligned offsets and lengths are not an error: the engine is byte
	// granular, and stages unaligned data itself.
	d := pattern(9, 4097)
	if _, err := e.Write(obj, 0, 4093, d); err != nil {
		t.Fatalf("unaligned write: %v", err)
	}
	if got := mustRead(t, e, obj, 4093, len(d)); !bytes.Equal(got, d) {
		t.Fatal("unaligned write read back differs")
	}
	for _, c := range []struct {
		name string
		req  *Request
		want error
	}{
		{"empty write", &Request{Op: OpWrite, Object: obj, Buf: nil}, ErrInvalid},
		{"write too large", &Request{Op: OpWrite, Object: obj, Buf: make([]byte, MaxWriteBytes+1)}, ErrInvalid},
		{"write past the largest object", &Request{Op: OpWrite, Object: obj, Off: MaxObjectSize - 2, Buf: make([]byte, 4)}, ErrInvalid},
		{"truncate past the largest object", &Request{Op: OpTruncate, Object: obj, Off: MaxObjectSize + 1}, ErrInvalid},
		{"read unknown object", &Request{Op: OpRead, Object: ObjectID{Hi: 1}, Buf: make([]byte, 10)}, ErrNotFound},
		{"stat unknown object", &Request{Op: OpStat, Object: ObjectID{Hi: 1}}, ErrNotFound},
		{"internal op", &Request{Op: opCheckpoint, Object: obj}, ErrInvalid},
	} {
		r := e.do(c.req)
		if !errors.Is(r.Err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, r.Err, c.want)
		} else {
			t.Logf("%s: %v", c.name, r.Err)
		}
	}
	// Reading at or past the end.
	p := make([]byte, 10)
	if n, err := e.Read(obj, 1<<20, p); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("read past end: %d %v", n, err)
	}
	// Opening the device a second time.
	if _, err := Open(Options{Path: path, FS: fsys, Logger: quietLogger}); !errors.Is(err, ErrInUse) {
		t.Errorf("second open: %v, want ErrInUse", err)
	} else {
		t.Logf("second open: %v", err)
	}
	// A different shard count is refused with a message saying which.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Path: path, FS: fsys, Shards: 3, Logger: quietLogger}); err == nil {
		t.Error("opening with another shard count succeeded")
	} else {
		t.Logf("other shard count: %v", err)
	}
	e = openMem(t, fsys, path, 1)
	e.Close()
	if _, err := e.Write(obj, 0, 0, d); !errors.Is(err, ErrClosed) {
		t.Errorf("write after close: %v", err)
	}
	// Not a weft device; a corrupt superblock (both copies).
	f, _ := fsys.Create("plain", true)
	f.Truncate(8 << 20)
	f.Close()
	if _, err := Open(Options{Path: "plain", FS: fsys, Logger: quietLogger}); !errors.Is(err, ErrNotWeft) {
		t.Errorf("plain file: %v", err)
	}
	f, _ = fsys.OpenRW(path, true)
	junk := directio.AlignedBlock(4096)
	for _, off := range []int64{0, 4096} {
		f.ReadAt(junk, off)
		junk[200] ^= 0xff
		junk[40] ^= 0x01
		f.WriteAt(junk, off)
	}
	f.Close()
	if _, err := Open(Options{Path: path, FS: fsys, Logger: quietLogger}); err == nil || errors.Is(err, ErrNotWeft) {
		t.Errorf("corrupt superblock: %v", err)
	} else {
		t.Logf("corrupt superblock: %v", err)
	}
	if _, err := Open(Options{Path: "missing", FS: fsys, Logger: quietLogger}); err == nil {
		t.Error("missing device opened")
	}
}

// TestEngineNoSpace fills a device whose cleaner can free nothing (all
// data live) and requires ErrNoSpace, with everything acknowledged
// before still readable, also after a restart.
func TestEngineNoSpace(t *testing.T) {
	fsys, path := memDevice(t, 16<<20, 1<<20)
	e := openMem(t, fsys, path, 1)
	var acked []ObjectID
	var err error
	data := directio.AlignedBlock(64 << 10)
	for i := 0; i < 1000; i++ {
		obj := ObjectID{Lo: uint64(i)}
		copy(data, pattern(uint64(i), len(data)))
		if _, err = e.Write(obj, 0, 0, data); err != nil {
			break
		}
		acked = append(acked, obj)
	}
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("filling the device: %v after %d writes, want ErrNoSpace", err, len(acked))
	}
	t.Logf("after %d writes of 64 KiB: %v", len(acked), err)
	check := func() {
		for _, obj := range acked {
			if got := mustRead(t, e, obj, 0, len(data)); !bytes.Equal(got, pattern(obj.Lo, len(data))) {
				t.Fatalf("object %v differs", obj)
			}
		}
		if err := e.Verify(); err != nil {
			t.Fatal(err)
		}
	}
	check()
	// Deleting makes room again.
	for _, obj := range acked[:len(acked)/2] {
		if _, err := e.Delete(obj, 0); err != nil {
			t.Fatal(err)
		}
	}
	acked = acked[len(acked)/2:]
	if err := e.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Write(ObjectID{Hi: 1}, 0, 0, data); err != nil {
		t.Fatalf("write after deletes: %v", err)
	}
	e.Close()
	e = openMem(t, fsys, path, 1)
	defer e.Close()
	check()
}

// damageRecord closes e and flips a bit of byte at of the record that
// holds obj's byte off, on the device.
func damageRecord(t *testing.T, e *Engine, fsys vfs.FS, path string, obj ObjectID, off uint64, at int64) {
	t.Helper()
	var loc Location
	e.shards[0].idx.Lookup(obj, off, 1, func(x Extent) bool { loc = x.Loc; return false })
	e.Close()
	f, err := fsys.OpenRW(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blk := directio.AlignedBlock(4096)
	dev := int64(e.sb.SegmentsOffset) + int64(loc.Segment)*int64(e.sb.SegmentSize) + int64(loc.Offset) + at&^4095
	if _, err := f.ReadAt(blk, dev); err != nil {
		t.Fatal(err)
	}
	blk[at&4095] ^= 0x10
	if _, err := f.WriteAt(blk, dev); err != nil {
		t.Fatal(err)
	}
}

// TestEngineReadCorruption flips a bit in a record on the device: the read
// fails with ErrCorrupt naming where, instead of returning bad bytes.
func TestEngineReadCorruption(t *testing.T) {
	fsys, path := memDevice(t, 24<<20, 1<<20)
	e := openMem(t, fsys, path, 1)
	obj := ObjectID{Lo: 1}
	data := directio.AlignedBlock(8192)
	copy(data, pattern(1, len(data)))
	if _, err := e.Write(obj, 0, 0, data); err != nil {
		t.Fatal(err)
	}
	damageRecord(t, e, fsys, path, obj, 0, 4096+17)
	e = openMem(t, fsys, path, 1)
	defer e.Close()
	_, err := e.Read(obj, 0, make([]byte, 100))
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of a corrupt record: %v, want ErrCorrupt", err)
	}
	t.Logf("%v", err)
}

// fiveBatches writes objects 0-4, 5000 bytes each, on a fresh device with
// no checkpoint after its first: five batches of a header block and two
// data blocks at the start of the open segment.
func fiveBatches(t *testing.T) (*vfs.Mem, string, *Engine) {
	t.Helper()
	fsys, path := memDevice(t, 24<<20, 1<<20)
	e, err := Open(Options{Path: path, FS: fsys, Logger: quietLogger, CheckpointBytes: 1 << 40, noRecoveryCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := e.Write(ObjectID{Lo: uint64(i)}, 0, 0, pattern(uint64(i), 5000)); err != nil {
			t.Fatal(err)
		}
	}
	return fsys, path, e
}

// TestEngineMidLogCorruption damages a batch that has valid batches after
// it and no checkpoint covering it: Open must refuse, naming the offset,
// rather than drop acknowledged writes.
func TestEngineMidLogCorruption(t *testing.T) {
	fsys, path, e := fiveBatches(t)
	seg := e.shards[0].open
	e.crashStop()
	// The second batch of the segment: header block of batch 1 at 4096,
	// batch 2 after its header and two data blocks.
	f, _ := fsys.OpenRW(path, true)
	blk := directio.AlignedBlock(4096)
	off := int64(e.sb.SegmentsOffset) + int64(seg)*int64(e.sb.SegmentSize) + 4096 + 3*4096 + 4096
	f.ReadAt(blk, off)
	blk[100] ^= 1
	f.WriteAt(blk, off)
	f.Close()
	_, err := Open(Options{Path: path, FS: fsys, Logger: quietLogger})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with a corrupt batch mid-log: %v, want ErrCorrupt", err)
	}
	t.Logf("%v", err)
}

// TestEngineHugeBatchClaim puts a header at the log's tail that claims
// 2^32 + 4 KiB of blocks, its generation the segment's: recovery drops it
// as a torn tail and keeps what came before. (Computed in 32 bits the size
// wrapped to one block and passed the bounds check; the header checksum
// then caught it, reading past the window's length within its capacity.)
func TestEngineHugeBatchClaim(t *testing.T) {
	fsys, path, e := fiveBatches(t)
	seg, gen := e.shards[0].open, e.shards[0].openGen
	e.crashStop()
	// Five batches of a header block and two data blocks each; the tail
	// after them. Two header blocks (60 descriptors) and 2^20-1 data
	// blocks: (2 + 2^20 - 1) * 4096 = 2^32 + 4096.
	blk := directio.AlignedBlock(4096)
	le := binary.LittleEndian
	le.PutUint32(blk[0:], batchMagicEngine)
	blk[4], blk[5] = recordsVersion, batchKindData
	le.PutUint16(blk[8:], 2)
	le.PutUint32(blk[12:], 60)
	le.PutUint32(blk[16:], 1<<20-1)
	le.PutUint64(blk[24:], gen)
	f, _ := fsys.OpenRW(path, true)
	f.WriteAt(blk, int64(e.sb.SegmentsOffset)+int64(seg)*int64(e.sb.SegmentSize)+4096+15*4096)
	f.Close()
	e, err := Open(Options{Path: path, FS: fsys, Logger: quietLogger})
	if err != nil {
		t.Fatalf("open with a huge claim at the tail: %v", err)
	}
	defer e.Close()
	if torn := e.Recovery().TornTails; torn != 1 {
		t.Fatalf("%d torn tails dropped, want the one claim", torn)
	}
	for i := range 5 {
		if got := mustRead(t, e, ObjectID{Lo: uint64(i)}, 0, 5000); string(got) != string(pattern(uint64(i), 5000)) {
			t.Fatalf("object %d reads back wrong", i)
		}
	}
}

// TestEngineCloseWhileSubmitting closes the engine under concurrent
// submitters: every request completes, with success or ErrClosed.
func TestEngineCloseWhileSubmitting(t *testing.T) {
	fsys, path := memDevice(t, 24<<20, 1<<20)
	e := openMem(t, fsys, path, 2)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan *Request, 1)
			for i := 0; ; i++ {
				r := &Request{Op: OpWrite, Object: ObjectID{Hi: uint64(w), Lo: uint64(i % 8)}, Buf: []byte("x"), Done: done}
				e.Submit(r)
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Errorf("a request submitted around Close never completed")
					return
				}
				if errors.Is(r.Err, ErrClosed) {
					return
				}
				if r.Err != nil {
					t.Errorf("write: %v", r.Err)
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

// TestEngineNotify: a request with Notify and no Done channel comes back
// through Notify, once, from a reactor for a completed request and from
// Submit itself for one refused before it reached a reactor.
func TestEngineNotify(t *testing.T) {
	fsys, path := memDevice(t, 64<<20, 1<<20)
	e := openMem(t, fsys, path, 2)
	obj := ObjectID{Lo: 5}
	got := make(chan *Request, 4)
	notify := func(r *Request) { got <- r }
	data := pattern(4, 8192)
	w := &Request{Op: OpWrite, Object: obj, Buf: data, Notify: notify}
	e.Submit(w)
	if r := <-got; r != w || r.Err != nil || r.N != len(data) || r.Version != 1 {
		t.Fatalf("write came back as %p (want %p): err %v n %d version %d", r, w, r.Err, r.N, r.Version)
	}
	p := make([]byte, len(data))
	rd := &Request{Op: OpRead, Object: obj, Buf: p, Notify: notify}
	e.Submit(rd)
	if r := <-got; r != rd || r.Err != nil || r.N != len(data) || !bytes.Equal(p, data) {
		t.Fatalf("read came back as %p (want %p): err %v n %d, data equal %v", r, rd, r.Err, r.N, bytes.Equal(p, data))
	}
	bad := &Request{Op: Op(200), Object: obj, Notify: notify}
	e.Submit(bad) // refused in Submit: Notify has run when it returns
	select {
	case r := <-got:
		if r != bad || !errors.Is(r.Err, ErrInvalid) {
			t.Fatalf("unknown operation came back as %p (want %p) with %v, want ErrInvalid", r, bad, r.Err)
		}
	default:
		t.Fatal("an unknown operation was not handed back by Submit")
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	closed := &Request{Op: OpRead, Object: obj, Buf: p, Notify: notify}
	e.Submit(closed)
	if r := <-got; r != closed || !errors.Is(r.Err, ErrClosed) {
		t.Fatalf("read after Close came back as %p (want %p) with %v, want ErrClosed", r, closed, r.Err)
	}
	if len(got) != 0 {
		t.Fatalf("%d requests came back more than once", len(got))
	}
}
