package clustermap

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"strings"
	"testing"
)

// sampleMap is a map with every kind of object: nodes in each state,
// two containers, backfilling and retiring replicas.
func sampleMap(t testing.TB) *Map {
	m := addNodes(t, New(), 7, "a", "b", "c")
	m = mustApply(t, m, CreateContainer{Name: "db", Policy: Policy{Replicas: 3, FailureDomain: "zone", PGCount: 8, Selector: map[string]string{"rack": "r1"}}})
	m = mustApply(t, m, CreateContainer{Name: "logs.v2", Policy: Policy{Replicas: 3, FailureDomain: "zone", PGCount: 8}})
	m = mustApply(t, m, SetNodeState{ID: 2, State: Down})
	m = mustApply(t, m, SetNodeState{ID: 3, State: Draining})
	m = mustApply(t, m, SetNodeState{ID: 5, State: Out})
	m = mustApply(t, m, CreateKey{ID: "k00000000000000a1", Container: 1, Access: AccessWrite})
	m = mustApply(t, m, CreateKey{ID: "k00000000000000b2", Container: 2, Access: AccessAdmin})
	m = mustApply(t, m, CreateKey{ID: "k00000000000000c3", Container: 1, Access: AccessRead})
	m = mustApply(t, m, RevokeKey{ID: "k00000000000000c3"})
	return m
}

func TestMapRoundTrip(t *testing.T) {
	noMeta := sampleMap(t).Clone()
	for i := range noMeta.Containers {
		noMeta.Containers[i].MetaMembers, noMeta.Containers[i].MetaBootstrap = nil, nil
	}
	noKeysNoMeta := noMeta.Clone()
	noKeysNoMeta.Keys = nil
	noKeys := sampleMap(t).Clone()
	noKeys.Keys = nil
	formed := mustApply(t, sampleMap(t), MarkMetaFormed{Container: 2})
	formedNoKeys := formed.Clone()
	formedNoKeys.Keys = nil
	withID := mustApply(t, sampleMap(t), SetFSID{FSID: FSID{1, 2, 3, 15: 16}})
	emptyWithID := mustApply(t, New(), SetFSID{FSID: FSID{9}})
	for _, m := range []*Map{New(), sampleMap(t), noMeta, noKeysNoMeta, noKeys, formed, formedNoKeys, withID, emptyWithID} {
		b := encode(t, m)
		d, err := DecodeMap(b)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(encode(t, d), b) {
			t.Fatal("re-encoding differs")
		}
		var u Map
		if err := u.UnmarshalBinary(b); err != nil || u.Epoch != m.Epoch || len(u.PGs) != len(m.PGs) {
			t.Fatalf("UnmarshalBinary: %v", err)
		}
		for i := range m.Containers {
			if a, b := &m.Containers[i], &d.Containers[i]; !slices.Equal(a.MetaMembers, b.MetaMembers) || !slices.Equal(a.MetaBootstrap, b.MetaBootstrap) || a.MetaFormed != b.MetaFormed {
				t.Fatalf("container %d: metadata record %v/%v formed %v decodes as %v/%v formed %v", a.ID, a.MetaMembers, a.MetaBootstrap, a.MetaFormed, b.MetaMembers, b.MetaBootstrap, b.MetaFormed)
			}
		}
		// The version is the smallest that holds the map, so each map
		// has one encoding and older maps keep their bytes.
		if d.FSID != m.FSID {
			t.Fatalf("FSID %v decodes as %v", m.FSID, d.FSID)
		}
		want := uint16(mapVersion)
		switch {
		case !m.FSID.IsZero():
			want = mapVersion5
		case m.formsMeta():
			want = mapVersion4
		case m.recordsMeta():
			want = mapVersion3
		case len(m.Keys) > 0:
			want = mapVersion2
		}
		if got := binary.LittleEndian.Uint16(b[4:]); got != want {
			t.Errorf("map with %d keys, records %v: version %d, want %d", len(m.Keys), m.recordsMeta(), got, want)
		}
	}
}

// TestOldMapGetsMetaRecord: a map from before the metadata record
// (version 1 or 2) decodes without one; the first command applied to it
// records for each container what ChooseMetaMembers computes on the map
// before the command, which is what its nodes ran the group with, also
// when the command takes one of those members Out (it is then replaced).
func TestOldMapGetsMetaRecord(t *testing.T) {
	m := sampleMap(t).Clone()
	for i := range m.Containers {
		m.Containers[i].MetaMembers, m.Containers[i].MetaBootstrap = nil, nil
	}
	old, err := DecodeMap(encode(t, m))
	if err != nil {
		t.Fatal(err)
	}
	want := map[ContainerID][]NodeID{}
	for _, ct := range old.Containers {
		if len(ct.MetaMembers) != 0 || len(ct.MetaBootstrap) != 0 {
			t.Fatalf("container %d of an old map has a record %v/%v", ct.ID, ct.MetaMembers, ct.MetaBootstrap)
		}
		ids, err := ChooseMetaMembers(old, ct.ID)
		// db's selector matches one node (rack r1); logs.v2 any three.
		if err != nil || len(ids) == 0 || ct.Name == "logs.v2" && len(ids) != MetaMembersMax {
			t.Fatalf("container %d: ChooseMetaMembers %v, %v", ct.ID, ids, err)
		}
		want[ct.ID] = ids
	}
	next := mustApply(t, old, CreateKey{ID: "k00000000000000d4", Container: 1, Access: AccessRead})
	for _, ct := range next.Containers {
		if !slices.Equal(ct.MetaMembers, want[ct.ID]) || !slices.Equal(ct.MetaBootstrap, want[ct.ID]) {
			t.Errorf("container %d: record %v/%v after the first command, want %v for both", ct.ID, ct.MetaMembers, ct.MetaBootstrap, want[ct.ID])
		}
	}
	// Taking a member Out as the first command: recorded, then replaced.
	victim := want[2][0]
	next = mustApply(t, old, SetNodeState{ID: victim, State: Out})
	ct, _ := next.Container(2)
	if !slices.Equal(ct.MetaBootstrap, want[2]) || slices.Contains(ct.MetaMembers, victim) || len(ct.MetaMembers) != MetaMembersMax {
		t.Errorf("container 2 after node %d out: record %v/%v, want bootstrap %v and 3 members without it", victim, ct.MetaMembers, ct.MetaBootstrap, want[2])
	}
}

// reseal fixes the body length and checksum of an edited encoding, so a
// test reaches the checks behind them.
func reseal(b []byte) []byte {
	b = slices.Clone(b)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(b)-mapHeaderLen-mapTrailerLen))
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
	return b
}

// formedEncoding returns the encoding of a map with one container, whose
// metadata group is marked formed, and the offset of its flags byte.
func formedEncoding(t *testing.T) ([]byte, int) {
	m := addNodes(t, New(), 1)
	m = mustApply(t, m, CreateContainer{Name: "x", Policy: Policy{Replicas: 1, PGCount: 2}})
	v3 := encode(t, m)
	b := encode(t, mustApply(t, m, MarkMetaFormed{Container: 1}))
	// The flags byte is where the two bodies first differ after the
	// epoch (the PG count, 2, follows it in the version 3 one).
	i := mapHeaderLen + 8
	for v3[i] == b[i] {
		i++
	}
	if b[i] != containerMetaFormed {
		t.Fatalf("flags byte at %d is %#x", i, b[i])
	}
	return b, i
}

func TestDecodeMapRejects(t *testing.T) {
	good := encode(t, sampleMap(t))
	empty := encode(t, New())
	const body = mapHeaderLen
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "shorter than"},
		{"magic", append([]byte("XCMP"), good[4:]...), "magic"},
		{"version", reseal(append(append(slices.Clone(good[:4]), 6, 0), good[6:]...)), "version 6"},
		{"version 5 with a zero FSID", func() []byte {
			m := sampleMap(t)
			m.FSID = FSID{1}
			b := encode(t, m)
			clear(b[len(b)-4-16 : len(b)-4])
			return reseal(b)
		}(), "zero FSID"},
		{"version 4 without a formed group", func() []byte {
			b, at := formedEncoding(t)
			b[at] = 0
			return reseal(b)
		}(), "without a formed"},
		{"unknown container flags", func() []byte {
			b, at := formedEncoding(t)
			b[at] |= 0x80
			return reseal(b)
		}(), "unknown bits"},
		{"version 3 without metadata records", reseal(append(append(append(slices.Clone(empty[:4]), 3, 0), empty[6:len(empty)-4]...), 0, 0, 0, 0, 0, 0, 0, 0)), "without metadata records"},
		{"version 2 without keys", reseal(append(append(append(slices.Clone(empty[:4]), 2, 0), empty[6:len(empty)-4]...), 0, 0, 0, 0, 0, 0, 0, 0)), "without keys"},
		{"flags", reseal(append(append(slices.Clone(good[:6]), 1, 0), good[8:]...)), "flags"},
		{"truncated", good[:len(good)-1], "body length"},
		{"trailing", append(slices.Clone(good), 0), "body length"},
		{"trailing resealed", reseal(append(append(slices.Clone(good[:len(good)-4]), 0), 0, 0, 0, 0)), "trailing"},
		{"checksum", func() []byte { b := slices.Clone(good); b[body+3] ^= 1; return b }(), "checksum"},
		{"huge node count", reseal(func() []byte {
			b := slices.Clone(empty)
			binary.LittleEndian.PutUint32(b[body+20:], 1<<31)
			return b
		}()), "need at least"},
		{"next container 0", reseal(func() []byte {
			b := slices.Clone(empty)
			binary.LittleEndian.PutUint64(b[body+8:], 0)
			return b
		}()), "non-zero"},
		{"bad node state", reseal(func() []byte {
			b := slices.Clone(good)
			b[body+24+16] = 9 // first node's state
			return b
		}()), "state 9"},
	}
	for _, c := range cases {
		_, err := DecodeMap(c.b)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want ErrCorrupt mentioning %q", c.name, err, c.want)
		}
	}
	var m Map
	m.Epoch = 77
	if err := m.UnmarshalBinary([]byte("junk")); err == nil || m.Epoch != 77 {
		t.Fatalf("failed UnmarshalBinary: %v, epoch %d", err, m.Epoch)
	}
}

// TestDecodeMapChecksInvariants makes maps that encode well but break an
// invariant, and expects the decoder to refuse them.
func TestDecodeMapChecksInvariants(t *testing.T) {
	breakers := map[string]func(m *Map){
		"duplicate replica": func(m *Map) { m.PGs[0].Replicas = append(m.PGs[0].Replicas, m.PGs[0].Replicas[0]) },
		"down replica":      func(m *Map) { m.PGs[0].Replicas = append(m.PGs[0].Replicas, 2) },
		"unknown replica":   func(m *Map) { m.PGs[0].Replicas = append(m.PGs[0].Replicas, 99) },
		"pg epoch ahead":    func(m *Map) { m.PGs[0].Epoch = m.Epoch + 1 },
		"unsorted nodes":    func(m *Map) { m.Nodes[0], m.Nodes[1] = m.Nodes[1], m.Nodes[0] },
		"missing pg":        func(m *Map) { m.PGs = m.PGs[1:] },
		"foreign pg":        func(m *Map) { m.PGs[0].Container = m.Containers[1].ID },
		"duplicate name":    func(m *Map) { m.Containers[1].Name = m.Containers[0].Name },
		"bad policy":        func(m *Map) { m.Containers[0].Policy.PGCount = 6 },
		"shared address":    func(m *Map) { m.Nodes[1].Addr = m.Nodes[0].Addr },
		"backfill not replica": func(m *Map) {
			m.PGs[0].Backfilling = append(m.PGs[0].Backfilling, 99)
		},
		"caught-up after backfilling": func(m *Map) {
			pg := &m.PGs[len(m.PGs)-1]
			pg.Backfilling = []NodeID{pg.Replicas[0]}
		},
		"same domain": func(m *Map) {
			pg := &m.PGs[len(m.PGs)-1]
			// Both in zone b; a caught-up clash may stay (retiring),
			// a backfilling one may not.
			pg.Replicas = []NodeID{1, 4}
			pg.Backfilling = []NodeID{4}
		},
		"container id past next": func(m *Map) { m.NextContainer = m.Containers[1].ID },
		"meta member out":        func(m *Map) { m.Containers[1].MetaMembers[0] = 5 },
		"meta member unknown":    func(m *Map) { m.Containers[1].MetaMembers[0] = 99 },
		"meta member twice": func(m *Map) {
			ct := &m.Containers[1]
			ct.MetaMembers[1] = ct.MetaMembers[0]
		},
		"meta bootstrap twice": func(m *Map) {
			ct := &m.Containers[1]
			ct.MetaBootstrap[1] = ct.MetaBootstrap[0]
		},
		"meta bootstrap unknown": func(m *Map) { m.Containers[1].MetaBootstrap[0] = 99 },
		"meta members without bootstrap": func(m *Map) {
			m.Containers[1].MetaBootstrap = nil
		},
		"too many meta members": func(m *Map) {
			ct := &m.Containers[1]
			ct.MetaMembers = []NodeID{1, 2, 3, 4}
		},
		"pgs past next": func(m *Map) { m.NextPG = m.NextPG - 1 },
	}
	for name, f := range breakers {
		m := sampleMap(t).Clone()
		f(m)
		if err := m.Check(); err == nil {
			t.Errorf("%s: Check passed", name)
			continue
		}
		if _, err := m.MarshalBinary(); err == nil {
			t.Errorf("%s: MarshalBinary encoded a broken map", name)
		}
		b := m.appendMap(nil)
		if _, err := DecodeMap(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: decode: %v", name, err)
		}
	}
}

func sampleCommands() []Command {
	return []Command{
		AddNode{ID: 1, Addr: "10.1.2.3:7000", Labels: map[string]string{"zone": "a", "rack": "r1"}, Capacity: 1 << 40},
		AddNode{ID: 2, Addr: "h:1"},
		SetNodeState{ID: 3, State: Draining},
		CreateContainer{Name: "db", Policy: Policy{Replicas: 3, FailureDomain: "zone", Selector: map[string]string{"media": "nvme"}}},
		CreateContainer{Name: "x", Policy: Policy{Replicas: 1, PGCount: 1, ChunkSize: 1 << 16}},
		DeleteContainer{ID: 7},
		SetPolicy{Container: 2, Policy: Policy{Replicas: 2}},
		CaughtUp{PG: 9, Node: 4, Epoch: 33},
		NodeRestarted{ID: 5},
		CreateKey{ID: "k0123456789abcdef", Container: 1, Access: AccessAdmin},
		RevokeKey{ID: "k00000000000000a1"},
		MarkMetaFormed{Container: 2},
		SetFSID{FSID: FSID{0xde, 0xad, 15: 0xef}},
	}
}

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range sampleCommands() {
		b, err := AppendCommand([]byte{0xee}, c)
		if err != nil || b[0] != 0xee {
			t.Fatalf("%#v: %v", c, err)
		}
		d, err := DecodeCommand(b[1:])
		if err != nil {
			t.Fatalf("%#v: %v", c, err)
		}
		b2, _ := AppendCommand(nil, d)
		if !slices.Equal(b[1:], b2) || d.Kind() != c.Kind() {
			t.Fatalf("%#v: round trip gave %#v", c, d)
		}
		if _, err := DecodeCommand(b[1 : len(b)-1]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%v truncated: %v", c.Kind(), err)
		}
		if _, err := DecodeCommand(append(b[1:], 0)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "trailing") {
			t.Errorf("%v with a trailing byte: %v", c.Kind(), err)
		}
	}
	for _, b := range [][]byte{nil, {2, 1}, {1, 0}, {1, 7}} {
		if _, err := DecodeCommand(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeCommand(%x): %v", b, err)
		}
	}
	// Unsorted label keys do not decode: their re-encoding would differ.
	b, _ := AppendCommand(nil, AddNode{ID: 1, Addr: "h:1", Labels: map[string]string{"a": "1", "b": "2"}})
	i := strings.Index(string(b), "a")
	swapped := slices.Clone(b) // key a, value 1, key b: swap the keys
	swapped[i], swapped[i+6] = 'b', 'a'
	if _, err := DecodeCommand(swapped); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "sorted") {
		t.Errorf("unsorted labels: %v", err)
	}
	if _, err := AppendCommand(nil, CreateContainer{Name: "x", Policy: Policy{Replicas: 300}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("replicas 300: %v", err)
	}
	if _, err := AppendCommand(nil, AddNode{ID: 1, Addr: strings.Repeat("x", 70000)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("long address: %v", err)
	}
	if _, err := AppendCommand(nil, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil command: %v", err)
	}
}

func FuzzDecodeMap(f *testing.F) {
	f.Add(encode(f, New()))
	f.Add(encode(f, sampleMap(f)))
	f.Add(encode(f, mustApply(f, sampleMap(f), MarkMetaFormed{Container: 2})))
	f.Add(encode(f, mustApply(f, sampleMap(f), SetFSID{FSID: FSID{1, 2, 3}})))
	f.Add([]byte("WCMP"))
	check := func(t *testing.T, b []byte) {
		m, err := DecodeMap(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error without ErrCorrupt: %v", err)
			}
			return
		}
		if b2 := encode(t, m); !slices.Equal(b, b2) {
			t.Fatalf("decoded map re-encodes differently")
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		check(t, b)
		// The checksum stops almost every mutation at the door; a
		// copy with a valid header and checksum reaches the body
		// decoder and Check.
		if len(b) >= mapHeaderLen+mapTrailerLen {
			for _, v := range []uint32{mapVersion, mapVersion2, mapVersion3} {
				b = slices.Clone(b)
				copy(b, mapMagic)
				binary.LittleEndian.PutUint32(b[4:], v)
				check(t, reseal(b))
			}
		}
	})
}

func FuzzDecodeCommand(f *testing.F) {
	for _, c := range sampleCommands() {
		b, err := AppendCommand(nil, c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error without ErrCorrupt: %v", err)
			}
			return
		}
		b2, err := AppendCommand(nil, c)
		if err != nil || !slices.Equal(b, b2) {
			t.Fatalf("decoded %#v re-encodes differently (%v)", c, err)
		}
		// Whatever decodes, Apply must take without panicking.
		m := sampleMap(t)
		if next, err := m.Apply(c); err == nil {
			if err := checkAll(m, next, c); err != nil {
				t.Fatal(err)
			}
		}
	})
}
