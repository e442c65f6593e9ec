package node

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/weftfs/weft/engine"
)

func sampleStatus() *Status {
	return &Status{
		Node: 42, Addr: "127.0.0.1:7070", Epoch: 9, ManagerID: 2, ManagerLeader: 3,
		Space: Space{Device: 1 << 30, Used: 8 << 20, Live: 4 << 20, Free: 1000 << 20},
		PGs: []PG{
			{PG: 1, Epoch: 3, Role: "primary", Phase: "syncing", SyncBytesSent: 4096,
				Syncs: []Sync{{Replica: 7, Epoch: 3, ObjectsDone: 1, ObjectsTotal: 4, BytesDone: 4096, BytesTotal: 16384}}},
			{PG: 2, Epoch: 5, Role: "backfilling", Phase: "backfilling", InstalledObjects: 2, InstalledBytes: 8192, InstallRate: 1.5e6},
			{PG: 3, Epoch: 1, Role: "none"},
		},
		Meta: []MetaMember{{Container: 1, Leader: 42, Term: 3, Commit: 17, Applied: 17, Voters: []uint64{7, 42, 99}}},
	}
}

func TestStatusRoundTrip(t *testing.T) {
	for _, s := range []*Status{sampleStatus(), {PGs: []PG{}}} {
		hdr, payload, err := EncodeStatus(s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeStatus(hdr, payload)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
		}
	}
}

func TestDecodeStatusRefuses(t *testing.T) {
	hdr, payload, err := EncodeStatus(sampleStatus())
	if err != nil {
		t.Fatal(err)
	}
	withHdr := func(f func(h []byte)) []byte {
		h := append([]byte(nil), hdr...)
		f(h)
		return h
	}
	lenHdr := func(p []byte) []byte {
		return withHdr(func(h []byte) { binary.LittleEndian.PutUint32(h[4:], uint32(len(p))) })
	}
	cases := map[string][2][]byte{
		"short header":    {hdr[:7], payload},
		"version":         {withHdr(func(h []byte) { h[0] = 2 }), payload},
		"reserved":        {withHdr(func(h []byte) { h[2] = 1 }), payload},
		"length mismatch": {withHdr(func(h []byte) { h[4]++ }), payload},
		"trailing":        {lenHdr(append(append([]byte(nil), payload...), " {}"...)), append(append([]byte(nil), payload...), " {}"...)},
		"unknown field":   {lenHdr([]byte(`{"node":1,"bogus":2}`)), []byte(`{"node":1,"bogus":2}`)},
		"bad role":        {lenHdr([]byte(`{"pgs":[{"pg":1,"role":"king"}]}`)), []byte(`{"pgs":[{"pg":1,"role":"king"}]}`)},
		"pg zero":         {lenHdr([]byte(`{"pgs":[{"pg":0,"role":"none"}]}`)), []byte(`{"pgs":[{"pg":0,"role":"none"}]}`)},
		"negative":        {lenHdr([]byte(`{"pgs":[{"pg":1,"role":"none","installed_bytes":-1}]}`)), []byte(`{"pgs":[{"pg":1,"role":"none","installed_bytes":-1}]}`)},
		"not json":        {lenHdr([]byte(`{`)), []byte(`{`)},
	}
	for name, c := range cases {
		if _, err := DecodeStatus(c[0], c[1]); !errors.Is(err, ErrBadStatus) {
			t.Errorf("%s: err %v, want ErrBadStatus", name, err)
		}
	}
}

func FuzzDecodeStatus(f *testing.F) {
	hdr, payload, err := EncodeStatus(sampleStatus())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(hdr, payload)
	h2, p2, _ := EncodeStatus(&Status{})
	f.Add(h2, p2)
	f.Add(hdr, []byte(`{"pgs":[{"pg":1,"role":"primary","syncs":[{"replica":1}]}]}`))
	f.Fuzz(func(t *testing.T, hdr, payload []byte) {
		s, err := DecodeStatus(hdr, payload)
		if err != nil {
			if !errors.Is(err, ErrBadStatus) {
				t.Fatalf("error %v does not wrap ErrBadStatus", err)
			}
			return
		}
		h, p, err := EncodeStatus(s)
		if err != nil {
			t.Fatalf("accepted status does not encode: %v", err)
		}
		again, err := DecodeStatus(h, p)
		if err != nil {
			t.Fatalf("re-encoded status does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, s) {
			t.Fatalf("round trip changed the status:\n%+v\n%+v", s, again)
		}
	})
}

func TestNodeID(t *testing.T) {
	var u engine.UUID
	if got := NodeID(u); got != 1 {
		t.Fatalf("NodeID(zero uuid) = %d, want 1 (0 is avoided)", got)
	}
	for i := range u {
		u[i] = 0xff
	}
	if got := NodeID(u); got != 1<<63-1 {
		t.Fatalf("NodeID(all ones) = %#x, want the top bit cleared", uint64(got))
	}
	u = engine.UUID{1, 2, 3, 4, 5, 6, 7, 8, 9}
	if got := NodeID(u); got != 0x0807060504030201 {
		t.Fatalf("NodeID = %#x, want the first 8 bytes little-endian", uint64(got))
	}
}
