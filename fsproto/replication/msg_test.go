package replication

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto"
)

func sampleMsgs() []Msg {
	obj := engine.ObjectID{Hi: 42, Lo: 7<<24 | 3}
	return []Msg{
		{Kind: MsgPeerQuery, PG: 1, Epoch: 2},
		{Kind: MsgPeerInfo, PG: 1, Epoch: 2, Seq: 99},
		{Kind: MsgPeerInfo, PG: 1, Epoch: 2, Seq: 99, Marked: true, Mark: 40},
		{Kind: MsgPeerInfo, PG: 1, Epoch: 2, Seq: 99, Floor: 70},
		{Kind: MsgForgetUpTo, PG: 1, Epoch: 2, Seq: 1234},
		{Kind: MsgForward, PG: 3, Epoch: 4, Seq: 5, RequestID: [16]byte{1, 2, 3}, Mut: Mutation{Kind: MutWrite, Object: obj, Off: 4096}, Data: []byte("hello")},
		{Kind: MsgForward, PG: 3, Epoch: 4, Seq: 6, Mut: Mutation{Kind: MutTruncate, Object: obj, Size: 10}},
		{Kind: MsgForward, PG: 3, Epoch: 4, Seq: 7, Mut: Mutation{Kind: MutDelete, Object: obj}},
		{Kind: MsgForwardAck, PG: 3, Epoch: 4, Seq: 7},
		{Kind: MsgListReq, PG: 3, Epoch: 4, After: 10, Limit: MaxListEntries},
		{Kind: MsgListResp, PG: 3, Epoch: 4, After: 10, More: true, Entries: []Entry{{Object: obj, Seq: 11}, {Object: engine.ObjectID{Lo: 1}, Seq: 12}}},
		{Kind: MsgListResp, PG: 3, Epoch: 4, After: 10},
		{Kind: MsgSyncObject, PG: 3, Epoch: 4, Seq: 8, EpochStart: 20, Object: obj, Data: []byte("whole object")},
		{Kind: MsgSyncObject, PG: 3, Epoch: 4, Seq: 8, EpochStart: 20, Object: obj, Deleted: true},
		{Kind: MsgSyncObject, PG: 3, Epoch: 4, Seq: 8, EpochStart: 20, Object: obj, Data: []byte("x"), RIDs: []RIDEntry{{ID: fsproto.RequestID{5}, Seq: 8}}},
		{Kind: MsgSyncSame, PG: 3, Epoch: 4, Seq: 8, EpochStart: 20, Object: obj, Digest: [DigestLen]byte{1, 2, 31: 9}},
		{Kind: MsgSyncSame, PG: 3, Epoch: 4, Seq: 8, EpochStart: 20, Object: obj, RIDs: []RIDEntry{{ID: fsproto.RequestID{5}, Seq: 8}, {ID: fsproto.RequestID{6}, Seq: 7}}},
		{Kind: MsgSyncAck, PG: 3, Epoch: 4, Object: obj, Installed: true},
		{Kind: MsgSyncDone, PG: 3, Epoch: 4},
		{Kind: MsgSyncDone, PG: 3, Epoch: 4, RIDs: []RIDEntry{{ID: fsproto.RequestID{1}, Object: obj, Seq: 3}, {ID: fsproto.RequestID{2}, Seq: 9}}},
		{Kind: MsgSyncDoneAck, PG: 3, Epoch: 4},
		{Kind: MsgReadCheck, PG: 3, Epoch: 4, Seq: 1},
		{Kind: MsgReadCheckAck, PG: 3, Epoch: 4, Seq: 1},
		{Kind: MsgLeaseGrant, PG: 3, Epoch: 4, Seq: 1, Lease: 2e9},
		{Kind: MsgStale, PG: 3, Epoch: 9},
	}
}

func TestMsgRoundTrip(t *testing.T) {
	for _, m := range sampleMsgs() {
		b := AppendMsg(nil, &m)
		got, err := DecodeMsg(b)
		if err != nil {
			t.Fatalf("%v: %v", m.Kind, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%v: round trip\n got %+v\nwant %+v", m.Kind, got, m)
		}
		// Every shorter or longer buffer is refused.
		for n := 0; n < len(b); n++ {
			if _, err := DecodeMsg(b[:n]); !errors.Is(err, ErrBadMessage) {
				t.Fatalf("%v truncated to %d bytes: err %v", m.Kind, n, err)
			}
		}
		if _, err := DecodeMsg(append(b, 0)); !errors.Is(err, ErrBadMessage) {
			t.Fatalf("%v with a trailing byte: err %v", m.Kind, err)
		}
	}
}

func TestMsgRejects(t *testing.T) {
	fwd := AppendMsg(nil, &Msg{Kind: MsgForward, Seq: 1, Mut: Mutation{Kind: MutWrite}, Data: []byte("x")})
	ack := AppendMsg(nil, &Msg{Kind: MsgSyncAck})
	same := AppendMsg(nil, &Msg{Kind: MsgSyncSame, RIDs: []RIDEntry{{Seq: 1}}})
	cases := map[string]func() []byte{
		"version":        func() []byte { b := bytes.Clone(fwd); b[0] = 2; return b },
		"kind 0":         func() []byte { b := bytes.Clone(fwd); b[1] = 0; return b },
		"kind 16":        func() []byte { b := bytes.Clone(fwd); b[1] = 16; return b },
		"same rsvd":      func() []byte { b := bytes.Clone(same); b[headerLen+35] = 1; return b },
		"same rid count": func() []byte { b := bytes.Clone(same); b[headerLen+32] = 2; return b },
		"same rids above limit": func() []byte {
			b := bytes.Clone(same)
			le.PutUint16(b[headerLen+32:], MaxObjectRIDs+1)
			return append(b, make([]byte, MaxObjectRIDs*objRIDLen)...)
		},
		"header rsvd":    func() []byte { b := bytes.Clone(fwd); b[3] = 1; return b },
		"mut kind":       func() []byte { b := bytes.Clone(fwd); b[headerLen+24] = 4; return b },
		"forward rsvd":   func() []byte { b := bytes.Clone(fwd); b[headerLen+26] = 1; return b },
		"data length":    func() []byte { b := bytes.Clone(fwd); b[headerLen+28] = 2; return b },
		"write size":     func() []byte { b := bytes.Clone(fwd); b[headerLen+56] = 1; return b },
		"installed flag": func() []byte { b := bytes.Clone(ack); b[headerLen+16] = 2; return b },
		"ack rsvd":       func() []byte { b := bytes.Clone(ack); b[headerLen+20] = 1; return b },
		"empty write": func() []byte {
			return AppendMsg(nil, &Msg{Kind: MsgForward, Mut: Mutation{Kind: MutWrite}})
		},
		"delete with data": func() []byte {
			return AppendMsg(nil, &Msg{Kind: MsgForward, Mut: Mutation{Kind: MutDelete}, Data: []byte("x")})
		},
		"list limit 0": func() []byte { return AppendMsg(nil, &Msg{Kind: MsgListReq}) },
		"deleted with data": func() []byte {
			return AppendMsg(nil, &Msg{Kind: MsgSyncObject, Deleted: true, Data: []byte("x")})
		},
	}
	for name, mk := range cases {
		if m, err := DecodeMsg(mk()); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: decoded %+v, err %v", name, m, err)
		}
	}
}

func FuzzDecodeMsg(f *testing.F) {
	for _, m := range sampleMsgs() {
		f.Add(AppendMsg(nil, &m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMsg(b)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		if out := AppendMsg(nil, &m); !bytes.Equal(out, b) {
			t.Fatalf("accepted %x but re-encodes to %x", b, out)
		}
	})
}

func TestRIDTable(t *testing.T) {
	tb := newRIDTable(3)
	a, b := engine.ObjectID{Lo: 1}, engine.ObjectID{Lo: 2}
	ids := []fsproto.RequestID{{1}, {2}, {3}, {4}}
	tb.put(ids[0], a, 10)
	tb.put(ids[1], a, 12)
	tb.put(ids[2], b, 11)
	tb.forgetObject(a) // a sync replaced object a
	for _, i := range []int{0, 1} {
		if _, ok := tb.get(ids[i]); ok {
			t.Fatalf("id %d survived the replacement of its object", i)
		}
	}
	tb.put(ids[0], a, 10) // the primary's ids for a: slot of forgotten id 0 evicted
	tb.put(ids[3], b, 13) // evicts the slot of forgotten id 1
	for _, i := range []int{0, 2, 3} {
		if _, ok := tb.get(ids[i]); !ok {
			t.Fatalf("id %d lost", i)
		}
	}
	tb.put(fsproto.RequestID{5}, b, 14) // evicts id 2, the oldest live slot
	if _, ok := tb.get(ids[2]); ok {
		t.Fatal("id 2 survived eviction")
	}
	if len(tb.m) != 3 || len(tb.byObj[a]) != 1 || len(tb.byObj[b]) != 2 {
		t.Fatalf("table %+v", tb)
	}
}
