package namespace

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// sampleCommands holds one command of every kind, with every field set.
var sampleCommands = []Command{
	Create{Parent: 1, Name: "f", Mode: 0o644, UID: 3, GID: 4, Excl: true, Now: -5},
	Create{Parent: 1, Name: "g", Mode: 0o600, Open: true, Now: 6},
	Mkdir{Parent: 2, Name: "dir", Mode: 0o755, UID: 5, GID: 6, Now: 7},
	Symlink{Parent: 3, Name: "l", Target: "../x", UID: 1, GID: 2, Now: 8},
	Link{Ino: 9, Parent: 1, Name: "h", Now: 10},
	Unlink{Parent: 1, Name: "u", Now: 11},
	Rmdir{Parent: 1, Name: "r", Now: 12},
	Rename{SrcParent: 1, SrcName: "a", DstParent: 2, DstName: "b", Flags: RenameExchange, Now: 13},
	SetAttr{Ino: 4, Mask: SetMode | SetSize | SetMtime, Mode: 0o600, UID: 1, GID: 2, Size: 1 << 40, Atime: 14, Mtime: 15, Now: 16},
	SetXattr{Ino: 5, Name: "user.k", Value: []byte("v\x00v"), Flags: XattrCreate, Now: 17},
	RemoveXattr{Ino: 6, Name: "user.k", Now: 18},
	Open{Ino: 7},
	Close{Ino: 8},
	SetQuota{Bytes: 1 << 30, Inodes: 1000},
	Extend{Ino: 9, Size: 4096, Now: 19},
	Reclaimed{ID: 20},
	WithCloses{Closes: []Ino{21, 22, 21}, Cmd: Create{Parent: 1, Name: "w", Mode: 0o644, Open: true, Now: 23}},
	WithCloses{Closes: []Ino{24}},
	WithCloses{Closes: []Ino{25}, Cmd: SetXattr{Ino: 5, Name: "user.k", Value: []byte("v"), Now: 26}},
}

func TestCommandRoundTrip(t *testing.T) {
	seen := map[kind]bool{}
	for _, c := range sampleCommands {
		b, err := MarshalCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		d, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("%#v: %v", c, err)
		}
		if !reflect.DeepEqual(c, d) {
			t.Fatalf("decoded %#v, want %#v", d, c)
		}
		seen[c.kind()] = true
	}
	for k := kind(1); k < kindEnd; k++ {
		if !seen[k] {
			t.Errorf("kind %d has no sample", k)
		}
	}
}

func TestEncodeCommandRefuses(t *testing.T) {
	for _, c := range []Command{
		Create{Name: strings.Repeat("x", 1<<16)},
		WithCloses{},
		WithCloses{Closes: make([]Ino, ClosesMax+1)},
		WithCloses{Closes: []Ino{2}, Cmd: Close{Ino: 3}},
		WithCloses{Closes: []Ino{2}, Cmd: WithCloses{Closes: []Ino{3}}},
		WithCloses{Closes: []Ino{2}, Cmd: Create{Name: strings.Repeat("x", 1<<16)}},
		Symlink{Name: "l", Target: strings.Repeat("x", 1<<16)},
		SetXattr{Name: "n", Value: make([]byte, XattrValueLenMax+1)},
	} {
		if _, err := MarshalCommand(c); err == nil {
			t.Errorf("%T encoded", c)
		}
	}
	if _, err := MarshalCommand(nil); err == nil {
		t.Error("nil command encoded")
	}
}

func TestDecodeCommandRejects(t *testing.T) {
	good, _ := MarshalCommand(sampleCommands[0])
	xattr, _ := MarshalCommand(SetXattr{Ino: 1, Name: "n", Value: []byte("v")})
	bigXattr := slices.Clone(xattr)
	binary.LittleEndian.PutUint32(bigXattr[len(xattr)-5:], XattrValueLenMax+1)
	badFlags := slices.Clone(good)
	badFlags[2+8+12] = 4
	// A WithCloses of one close (ino 9) and an Open of ino 7.
	wc := []byte{1, byte(kindWithCloses), 1, 0, 9, 0, 0, 0, 0, 0, 0, 0, byte(kindOpen), 7, 0, 0, 0, 0, 0, 0, 0}
	if c, err := DecodeCommand(wc); err != nil || !reflect.DeepEqual(c, WithCloses{Closes: []Ino{9}, Cmd: Open{Ino: 7}}) {
		t.Fatalf("hand-made WithCloses: %#v, %v", c, err)
	}
	withInner := func(k kind) []byte { return append(slices.Clone(wc[:12]), byte(k), 7, 0, 0, 0, 0, 0, 0, 0) }
	noCloses := append([]byte{1, byte(kindWithCloses), 0, 0}, wc[12:]...)
	tooMany := binary.LittleEndian.AppendUint16([]byte{1, byte(kindWithCloses)}, ClosesMax+1)
	tooMany = append(tooMany, make([]byte, 8*(ClosesMax+1)+1)...)
	shortCloses := []byte{1, byte(kindWithCloses), 3, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0}
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "version: 1 bytes needed"},
		{"version", append([]byte{2}, good[1:]...), "version 2"},
		{"kind 0", []byte{1, 0}, "kind 0"},
		{"kind unknown", []byte{1, byte(kindEnd)}, "kind 17"},
		{"truncated", good[:len(good)-1], "bytes needed"},
		{"trailing", append(slices.Clone(good), 0), "1 trailing bytes"},
		{"create flags", badFlags, "create flags 0x4 unknown"},
		{"xattr value too long", bigXattr, "at most 65536"},
		{"xattr value short", xattr[:len(xattr)-1], "xattr value"},
		{"too long", make([]byte, CommandLenMax+1), "over the limit"},
		{"with-closes: none", noCloses, "0 closes, want 1..1024"},
		{"with-closes: too many", tooMany, "1025 closes, want 1..1024"},
		{"with-closes: closes short", shortCloses, "3 closes need 24 bytes, 9 left"},
		{"with-closes: nested", withInner(kindWithCloses), "inside another"},
		{"with-closes: a close as command", withInner(kindClose), "a close as its command"},
		{"with-closes: command kind unknown", withInner(kindEnd), "command kind 17 unknown"},
		{"with-closes: no command kind", wc[:12], "with-closes command kind: 1 bytes needed"},
		{"with-closes: command short", wc[:len(wc)-1], "ino: 8 bytes needed"},
		{"with-closes: trailing", append(slices.Clone(wc), 0), "1 trailing bytes"},
	}
	for _, c := range cases {
		_, err := DecodeCommand(c.b)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrCorrupt with %q", c.name, err, c.want)
		}
	}
	// A committed command that does not decode changes nothing anywhere.
	ns := New()
	before, _ := ns.Snapshot()
	if res := ns.Apply(0, []byte{1, 99}).(Result); !errors.Is(res.Err, ErrCorrupt) {
		t.Fatalf("Apply of garbage: %v", res.Err)
	}
	if after, _ := ns.Snapshot(); !bytes.Equal(before, after) {
		t.Fatal("Apply of garbage changed the state")
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, c := range sampleCommands {
		b, _ := MarshalCommand(c)
		f.Add(b)
	}
	f.Add([]byte{1, byte(kindSetXattr), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		b2, err := MarshalCommand(c)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("accepted %x re-encodes as %x (%v)", b, b2, err)
		}
		// Whatever decodes, Apply judges without panicking and keeps the
		// invariants.
		ns := sampleNamespace(t)
		ns.Apply(0, b)
		if err := ns.Check(); err != nil {
			t.Fatalf("after %#v: %v", c, err)
		}
	})
}

// sampleNamespace has every kind of inode, hard links, xattrs, an
// unlinked open file and directory, and queued reclaims.
func sampleNamespace(t testing.TB) *Namespace {
	ns := New()
	for _, c := range []Command{
		Mkdir{Parent: 1, Name: "d", Mode: 0o755, Now: 1},             // 2
		Create{Parent: 2, Name: "f", Mode: 0o644, UID: 7, Now: 2},    // 3
		Symlink{Parent: 1, Name: "l", Target: "d/f", Now: 3},         // 4
		Link{Ino: 3, Parent: 1, Name: "g", Now: 4},                   // f and g
		SetXattr{Ino: 3, Name: "user.b", Value: []byte("2"), Now: 5}, //
		SetXattr{Ino: 3, Name: "user.a", Value: []byte{}, Now: 5},    //
		Extend{Ino: 3, Size: 1000, Now: 6},                           //
		SetAttr{Ino: 3, Mask: SetSize, Size: 10, Now: 7},             // reclaim 1
		Create{Parent: 1, Name: "open", Mode: 0o600, Now: 8},         // 5
		Extend{Ino: 5, Size: 50, Now: 8},                             //
		Open{Ino: 5},                                                 //
		Unlink{Parent: 1, Name: "open", Now: 9},                      // open-unlinked
		Create{Parent: 1, Name: "gone", Mode: 0o600, Now: 10},        // 6
		Extend{Ino: 6, Size: 20, Now: 10},                            // (an empty file queues no reclaim)
		Unlink{Parent: 1, Name: "gone", Now: 11},                     // reclaim 2
		Mkdir{Parent: 2, Name: "e", Mode: 0o700, Now: 12},            // 7
		Open{Ino: 7},                                                              //
		Rmdir{Parent: 2, Name: "e", Now: 13},                                      // removed, open
		Mkdir{Parent: 2, Name: "sub", Mode: 0o700, Now: 14},                       // 8
		SetQuota{Bytes: 1 << 20, Inodes: 100},                                     //
		Rename{SrcParent: 2, SrcName: "sub", DstParent: 1, DstName: "s", Now: 15}, //
	} {
		if res := ns.ApplyCommand(c); res.Err != nil {
			t.Fatalf("%#v: %v", c, res.Err)
		}
	}
	return ns
}

func TestSnapshotRoundTrip(t *testing.T) {
	for _, ns := range []*Namespace{New(), sampleNamespace(t)} {
		b, _ := ns.Snapshot()
		d, err := DecodeSnapshot(b)
		if err != nil {
			t.Fatal(err)
		}
		if b2, _ := d.Snapshot(); !bytes.Equal(b, b2) {
			t.Fatal("re-encoding differs")
		}
		if !slices.Equal(nsTree(t, d), nsTree(t, ns)) || !slices.Equal(d.Reclaims(), ns.Reclaims()) || d.StatFS() != ns.StatFS() {
			t.Fatal("decoded state differs")
		}
		fresh := New()
		if err := fresh.Restore(b); err != nil {
			t.Fatal(err)
		}
		if b3, _ := fresh.Snapshot(); !bytes.Equal(b, b3) {
			t.Fatal("restored state differs")
		}
	}
}

// reseal fixes the checksum of an edited snapshot, so a test reaches the
// checks behind it.
func reseal(b []byte) []byte {
	b = slices.Clone(b)
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
	return b
}

func TestDecodeSnapshotRejects(t *testing.T) {
	good, _ := sampleNamespace(t).Snapshot()
	empty, _ := New().Snapshot()
	const body = snapHeaderLen
	const inodes = body + 5*8 // the inode count
	const root = inodes + 8   // the root inode
	edit := func(b []byte, f func(b []byte)) []byte {
		b = slices.Clone(b)
		f(b)
		return reseal(b)
	}
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "shorter than"},
		{"magic", append([]byte("XNSS"), good[4:]...), "magic"},
		{"version", edit(good, func(b []byte) { b[4] = 2 }), "version 2"},
		{"flags", edit(good, func(b []byte) { b[6] = 1 }), "flags"},
		{"checksum", func() []byte { b := slices.Clone(good); b[body+2] ^= 1; return b }(), "checksum"},
		{"truncated", reseal(good[:len(good)-5]), "need at least"},
		{"trailing", reseal(append(slices.Clone(good[:len(good)-4]), 0, 0, 0, 0, 0)), "trailing"},
		{"huge inode count", edit(empty, func(b []byte) { binary.LittleEndian.PutUint64(b[inodes:], 1<<62) }), "need at least"},
		{"no root", edit(empty, func(b []byte) { binary.LittleEndian.PutUint64(b[root:], 2) }), "no root"},
		{"root nlink", edit(empty, func(b []byte) { binary.LittleEndian.PutUint32(b[root+8+1+12+8:], 3) }), "nlink 3"},
		{"root type", edit(empty, func(b []byte) { b[root+8] = byte(TypeFile) }), "root is file"},
		{"bad type", edit(good, func(b []byte) { b[root+75+8] = 9 }), "inode 2: type 9 unknown"},
		{"mode bits", edit(empty, func(b []byte) { binary.LittleEndian.PutUint32(b[root+9:], 0o17777) }), "mode"},
		{"next ino", edit(good, func(b []byte) { binary.LittleEndian.PutUint64(b[body+8:], 3) }), "not in 1..2"},
		{"next reclaim", edit(good, func(b []byte) { binary.LittleEndian.PutUint64(b[body+16:], 2) }), "reclaim id 2 not in"},
		{"reclaim removed but live", edit(good, func(b []byte) {
			b[len(b)-4-1-33] = 1 // first reclaim's removed flag (ino 3 is live)
		}), "is live"},
		{"reclaim bool", edit(good, func(b []byte) { b[len(b)-4-1] = 2 }), "not a boolean"},
		{"unsorted dirents", func() []byte {
			// Swap the names of root's entries "g" and "l": order breaks.
			i := bytes.Index(good, []byte{1, 'g'})
			j := bytes.Index(good, []byte{1, 'l'})
			return edit(good, func(b []byte) { b[i+1], b[j+1] = 'l', 'g' })
		}(), "must be sorted"},
		{"entry renamed to dot", func() []byte {
			i := bytes.Index(good, []byte{1, 'g'})
			return edit(good, func(b []byte) { b[i+1] = '.' })
		}(), "must be sorted"},
		{"unsorted xattrs", func() []byte {
			i := bytes.Index(good, []byte("user.a"))
			return edit(good, func(b []byte) { b[i+5] = 'c' })
		}(), "xattr \"user.b\" follows \"user.c\""},
	}
	for _, c := range cases {
		_, err := DecodeSnapshot(c.b)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrCorrupt with %q", c.name, err, c.want)
		}
	}
	// Restore keeps the old state on error.
	ns := sampleNamespace(t)
	before, _ := ns.Snapshot()
	if err := ns.Restore(good[:10]); err == nil {
		t.Fatal("Restore of garbage succeeded")
	}
	if after, _ := ns.Snapshot(); !bytes.Equal(before, after) {
		t.Fatal("failed Restore changed the state")
	}
}

// TestCheckCatches breaks each invariant by hand and expects Check to say
// so: a Check that cannot fail would prove nothing in the other tests.
func TestCheckCatches(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(s *state)
		want   string
	}{
		{"file nlink", func(s *state) { s.inodes[3].Nlink = 1 }, "nlink 1, but 2 entries"},
		{"dir nlink", func(s *state) { s.inodes[2].Nlink++ }, "subdirectories"},
		{"bytes", func(s *state) { s.bytes++ }, "file bytes"},
		{"cycle", func(s *state) {
			// Make d's entry live under s, and s under d: a loop cut off
			// from the root.
			d, _ := s.dirents.Delete(dirent{parent: 1, name: "d"})
			sub, _ := s.dirents.Delete(dirent{parent: 1, name: "s"})
			d.parent, sub.parent = 8, 2
			s.dirents.ReplaceOrInsert(d)
			s.dirents.ReplaceOrInsert(sub)
			s.inodes[2].parent, s.inodes[8].parent = 8, 2
			s.inodes[1].Nlink -= 2
			s.inodes[2].Nlink++
			s.inodes[8].Nlink++
		}, "cycle"},
		{"unlinked not open", func(s *state) { s.inodes[5].Open = 0 }, "should have been removed"},
		{"entry to removed dir", func(s *state) {
			s.dirents.ReplaceOrInsert(dirent{parent: 1, name: "z", ino: 7, typ: TypeDir})
		}, "not a linked inode"},
		{"entry type", func(s *state) {
			e, _ := s.dirents.Get(dirent{parent: 1, name: "l"})
			e.typ = TypeFile
			s.dirents.ReplaceOrInsert(e)
		}, "entry type file"},
		{"symlink size", func(s *state) { s.inodes[4].Size = 1 }, "symlink size"},
		{"reclaim order", func(s *state) { s.reclaim[0], s.reclaim[1] = s.reclaim[1], s.reclaim[0] }, "must increase"},
		{"empty xattr map", func(s *state) { s.inodes[4].xattrs = map[string][]byte{} }, "empty xattr map"},
	}
	for _, c := range cases {
		ns := sampleNamespace(t)
		if err := ns.Check(); err != nil {
			t.Fatal(err)
		}
		c.break_(ns.mu.s)
		if err := ns.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Check says %v, want %q", c.name, err, c.want)
		}
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	empty, _ := New().Snapshot()
	sample, _ := sampleNamespace(f).Snapshot()
	f.Add(empty)
	f.Add(sample)
	f.Fuzz(func(t *testing.T, b []byte) {
		ns, err := DecodeSnapshot(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		b2, _ := ns.Snapshot()
		if !bytes.Equal(b, b2) {
			t.Fatal("accepted snapshot re-encodes differently")
		}
	})
}

// FuzzApply reads the input as a stream of small commands over a few
// names and inode numbers and checks each against the model, as TestModel
// does with random ones. A checksum would stop the fuzzer from reaching
// the body; commands carry none.
func FuzzApply(f *testing.F) {
	f.Add([]byte{1, 1, 0, 0, 0, 1, 1, 0, 6, 1, 2, 1, 7, 1, 0, 3})
	f.Add([]byte{1, 1, 0, 0, 0, 2, 1, 0, 6, 2, 1, 1, 4, 2, 1, 0, 10, 3, 0, 0, 11, 3, 0, 0, 4, 1, 1, 1})
	// Create+Open style: create, open twice, unlink, then batches that
	// close it with and without an Open.
	f.Add([]byte{0, 1, 0, 0, 10, 2, 0, 0, 10, 2, 0, 0, 4, 1, 0, 0, 15, 2, 5, 2, 15, 2, 0, 2})
	f.Fuzz(fuzzApplyBody)
}

func fuzzApplyBody(t *testing.T, in []byte) {
	{
		m := newModel()
		ns := New()
		r := rand.New(rand.NewPCG(1, 2))
		names := []string{"a", "b", "c", "", "..", strings.Repeat("n", 256)}
		for i := 0; i+4 <= len(in) && i < 4*200; i += 4 {
			k, x, y, z := in[i]%16, Ino(in[i+1]%8), in[i+2], in[i+3]
			name := names[int(y)%len(names)]
			name2 := names[int(z)%len(names)]
			now := int64(i)
			var cmd Command
			switch k {
			case 0:
				cmd = Create{Parent: x, Name: name, Mode: uint32(z) << 4, Excl: z&1 == 1, Now: now}
			case 1:
				cmd = Mkdir{Parent: x, Name: name, Mode: 0o700, Now: now}
			case 2:
				cmd = Symlink{Parent: x, Name: name, Target: name2, Now: now}
			case 3:
				cmd = Link{Ino: Ino(z % 8), Parent: x, Name: name, Now: now}
			case 4:
				cmd = Unlink{Parent: x, Name: name, Now: now}
			case 5:
				cmd = Rmdir{Parent: x, Name: name, Now: now}
			case 6:
				cmd = Rename{SrcParent: x, SrcName: name, DstParent: Ino(z % 8), DstName: names[int(y>>4)%len(names)], Flags: RenameFlags(z >> 6), Now: now}
			case 7:
				cmd = SetAttr{Ino: x, Mask: AttrMask(y), Mode: uint32(z) * 17, UID: uint32(z), Size: uint64(z) * 100, Atime: 5, Mtime: 6, Now: now}
			case 8:
				cmd = SetXattr{Ino: x, Name: name, Value: []byte{z}, Flags: XattrFlags(z % 4), Now: now}
			case 9:
				cmd = RemoveXattr{Ino: x, Name: name, Now: now}
			case 10:
				cmd = Open{Ino: x}
			case 11:
				cmd = Close{Ino: x}
			case 12:
				cmd = SetQuota{Bytes: uint64(y) * 100, Inodes: uint64(z % 10)}
			case 13:
				cmd = Extend{Ino: x, Size: uint64(y) * uint64(z), Now: now}
			case 14:
				cmd = Reclaimed{ID: uint64(y % 8)}
			default:
				// Two closes, and an Open or nothing.
				c := WithCloses{Closes: []Ino{x, Ino(z % 8)}}
				if y&1 == 1 {
					c.Cmd = Open{Ino: Ino(y >> 1 % 8)}
				}
				cmd = c
			}
			checkStep(t, "fuzz", ns, m, uint64(i+1), cmd)
			compare(t, r, ns, m)
		}
	}
}

func sampleResults(t testing.TB) []Result {
	ns := sampleNamespace(t)
	return []Result{
		{},
		ns.ApplyCommand(Create{Parent: 1, Name: "new", Mode: 0o640, Now: 99}),
		ns.ApplyCommand(Create{Parent: 1, Name: "new", Now: 100}),
		ns.ApplyCommand(Create{Parent: 1, Name: "opened", Open: true, Now: 101}),
		ns.ApplyCommand(Rename{SrcParent: 1, SrcName: "new", DstParent: 1, DstName: "g", Now: 101}),
		ns.ApplyCommand(SetAttr{Ino: 3, Mask: SetSize, Size: 1, Now: 102}),
		ns.ApplyCommand(Unlink{Parent: 1, Name: "nothing", Now: 103}),
		ns.ApplyCommand(Mkdir{Parent: 2, Name: "m", Mode: 0o755, Now: 104}),
		ns.ApplyCommand(Unlink{Parent: 1, Name: "g", Now: 105}),
		ns.Apply(0, []byte{9}).(Result),
		{Err: ErrApplied},
	}
}

func TestResultRoundTrip(t *testing.T) {
	for _, r := range sampleResults(t) {
		b, err := AppendResult(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		d, err := DecodeResult(b)
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if d.Attr != r.Attr || d.Parent != r.Parent || d.Created != r.Created || d.Opened != r.Opened || !slices.Equal(d.Reclaim, r.Reclaim) || (d.Err == nil) != (r.Err == nil) {
			t.Fatalf("decoded %+v, want %+v", d, r)
		}
		if r.Err != nil {
			if Errno(d.Err) != Errno(r.Err) || errors.Is(d.Err, ErrCorrupt) != errors.Is(r.Err, ErrCorrupt) ||
				errors.Is(d.Err, ErrApplied) != errors.Is(r.Err, ErrApplied) {
				t.Fatalf("decoded error %v, want %v", d.Err, r.Err)
			}
			var e *Error
			if errors.As(r.Err, &e) && d.Err.Error() != r.Err.Error() {
				t.Fatalf("decoded error %q, want %q", d.Err, r.Err)
			}
		}
	}
	zeroParent := append([]byte{1, 0, 8}, make([]byte, 8+1+4*3+8+4*2+8*3+1)...)
	bad := [][]byte{nil, {2}, {1, 9}, {1, 0, 4}, {1, 0, 2, 0}, {1, 1, 0, 0, 0, 0}, {1, 0, 0, 17}, {1, 0, 0, 0, 0}, {1, 0, 8, 0}, {1, 0, 16, 0}, zeroParent}
	for _, b := range bad {
		if _, err := DecodeResult(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeResult(%x): %v", b, err)
		}
	}
}

// TestResultParent: the commands that change a directory's entries return
// its attributes as they are after the change; the others return none.
func TestResultParent(t *testing.T) {
	ns := New()
	for i, c := range []Command{
		Mkdir{Parent: 1, Name: "d", Mode: 0o755, Now: 1},
		Create{Parent: 2, Name: "f", Mode: 0o644, Now: 2},
		Symlink{Parent: 2, Name: "l", Target: "f", Now: 3},
		Link{Ino: 3, Parent: 2, Name: "g", Now: 4},
		Unlink{Parent: 2, Name: "g", Now: 5},
		Mkdir{Parent: 2, Name: "e", Mode: 0o755, Now: 6},
		Rmdir{Parent: 2, Name: "e", Now: 7},
	} {
		res := ns.ApplyCommand(c)
		if res.Err != nil {
			t.Fatalf("%d %#v: %v", i, c, res.Err)
		}
		parent := Ino(1)
		if i > 0 {
			parent = 2
		}
		want, err := ns.GetAttr(parent)
		if err != nil {
			t.Fatal(err)
		}
		if res.Parent != want || res.Parent.Mtime != int64(i+1) {
			t.Errorf("%#v: parent %+v, want %+v", c, res.Parent, want)
		}
	}
	for _, c := range []Command{
		Create{Parent: 2, Name: "f", Now: 8}, // exists: nothing changed
		Rename{SrcParent: 2, SrcName: "f", DstParent: 1, DstName: "f2", Now: 9},
		SetAttr{Ino: 2, Mask: SetMode, Mode: 0o700, Now: 10},
		Unlink{Parent: 2, Name: "nothing", Now: 11},
	} {
		if res := ns.ApplyCommand(c); res.Parent != (Attr{}) {
			t.Errorf("%#v: parent %+v, want none", c, res.Parent)
		}
	}
}

func FuzzDecodeResult(f *testing.F) {
	for _, r := range sampleResults(f) {
		b, _ := AppendResult(nil, r)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResult(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		b2, err := AppendResult(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		// Sentinel errors carry their message, which decoding decorates;
		// everything else must re-encode exactly.
		if r.Err == nil || Errno(r.Err) != 0 {
			if !bytes.Equal(b, b2) {
				t.Fatalf("accepted %x re-encodes as %x", b, b2)
			}
		}
		r2, err := DecodeResult(b2)
		if err != nil || r2.Attr != r.Attr || r2.Created != r.Created || r2.Opened != r.Opened || !slices.Equal(r2.Reclaim, r.Reclaim) || Errno(r2.Err) != Errno(r.Err) {
			t.Fatalf("second round trip: %+v, %v; want %+v", r2, err, r)
		}
	})
}

// TestWithNow: every command that carries a Now gets the time WithNow
// gives, and nothing else of it changes.
func TestWithNow(t *testing.T) {
	for _, c := range sampleCommands {
		got := WithNow(c, 12345)
		if wc, ok := c.(WithCloses); ok {
			// The batch's command gets the time; the closes stay.
			want := wc
			if wc.Cmd != nil {
				want.Cmd = WithNow(wc.Cmd, 12345)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("WithNow(%+v) = %+v, want %+v", c, got, want)
			}
			continue
		}
		v := reflect.ValueOf(got)
		f := v.FieldByName("Now")
		if !f.IsValid() {
			if !reflect.DeepEqual(got, c) {
				t.Errorf("%T has no Now, but WithNow changed it: %+v", c, got)
			}
			continue
		}
		if f.Int() != 12345 {
			t.Errorf("%T: WithNow left Now %d", c, f.Int())
		}
		back := reflect.New(v.Type()).Elem()
		back.Set(v)
		back.FieldByName("Now").Set(reflect.ValueOf(c).FieldByName("Now"))
		if !reflect.DeepEqual(back.Interface(), c) {
			t.Errorf("%T: WithNow changed more than Now: %+v", c, got)
		}
	}
}
