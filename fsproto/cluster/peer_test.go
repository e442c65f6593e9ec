package cluster

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/replication"
)

func sampleBatch() (PeerHeader, []byte) {
	msgs := []replication.Msg{
		{Kind: replication.MsgPeerQuery, PG: 3, Epoch: 9},
		{Kind: replication.MsgForward, PG: 3, Epoch: 9, Seq: 12, Mut: replication.Mutation{Kind: replication.MutWrite,
			Object: engine.ObjectID{Hi: 1, Lo: 2}, Off: 4096}, Data: []byte("hello")},
		{Kind: replication.MsgListResp, PG: 3, Epoch: 9, After: 4, More: true,
			Entries: []replication.Entry{{Object: engine.ObjectID{Hi: 1, Lo: 5}, Seq: 6}}},
	}
	var b []byte
	for i := range msgs {
		b = appendPeerMsg(b, &msgs[i])
	}
	return PeerHeader{Count: uint32(len(msgs)), From: 1, To: 2}, b
}

func TestPeerBatchRoundTrip(t *testing.T) {
	h, payload := sampleBatch()
	hb := AppendPeerHeader(nil, h)
	got, err := DecodePeerHeader(hb)
	if err != nil || got != h {
		t.Fatalf("header: %+v, %v; want %+v", got, err, h)
	}
	msgs, err := DecodePeerBatch(nil, payload, h.Count)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 || msgs[1].Seq != 12 || string(msgs[1].Data) != "hello" || msgs[2].Entries[0].Seq != 6 {
		t.Fatalf("decoded %+v", msgs)
	}
	var re []byte
	for i := range msgs {
		re = appendPeerMsg(re, &msgs[i])
	}
	if !bytes.Equal(re, payload) {
		t.Fatal("re-encoding differs")
	}
}

func TestPeerBatchErrors(t *testing.T) {
	h, payload := sampleBatch()
	hb := AppendPeerHeader(nil, h)
	for name, b := range map[string][]byte{
		"short":    hb[:10],
		"version":  append([]byte{2}, hb[1:]...),
		"reserved": append([]byte{1, 0, 1}, hb[3:]...),
		"count0":   AppendPeerHeader(nil, PeerHeader{Count: 0, From: 1, To: 2}),
		"countBig": AppendPeerHeader(nil, PeerHeader{Count: PeerBatchMax + 1, From: 1, To: 2}),
		"from0":    AppendPeerHeader(nil, PeerHeader{Count: 1, From: 0, To: 2}),
	} {
		if _, err := DecodePeerHeader(b); !errors.Is(err, ErrBadPeerBatch) {
			t.Errorf("%s: %v, want ErrBadPeerBatch", name, err)
		}
	}
	for name, tc := range map[string]struct {
		b     []byte
		count uint32
	}{
		"fewer":    {payload, h.Count + 1},
		"trailing": {payload, h.Count - 1},
		"cut":      {payload[:len(payload)-1], h.Count},
		"badmsg":   {append([]byte{1, 0, 0, 0}, 9), 1},
		"len":      {[]byte{255, 255, 255, 255, 0}, 1},
	} {
		_, err := DecodePeerBatch(nil, tc.b, tc.count)
		if !errors.Is(err, ErrBadPeerBatch) {
			t.Errorf("%s: %v, want ErrBadPeerBatch", name, err)
		}
	}
}

func TestNodeIDOf(t *testing.T) {
	var u engine.UUID
	if NodeIDOf(u) != 1 {
		t.Fatalf("zero uuid: %d", NodeIDOf(u))
	}
	for i := range u {
		u[i] = 0xff
	}
	if id := NodeIDOf(u); id != clustermap.NodeID(1<<63-1) {
		t.Fatalf("all ones: %#x", id)
	}
}

// FuzzPeerBatch feeds arbitrary headers and payloads to the decoders:
// they must not panic, and what they accept re-encodes to the same bytes.
func FuzzPeerBatch(f *testing.F) {
	h, payload := sampleBatch()
	f.Add(AppendPeerHeader(nil, h), payload)
	f.Add(AppendPeerHeader(nil, PeerHeader{Count: 1, From: 1, To: 2}), []byte{0, 0, 0, 0})
	if seeds, err := filepath.Glob("testdata/peer-*.bin"); err == nil {
		for _, s := range seeds {
			if b, err := os.ReadFile(s); err == nil && len(b) >= PeerHeaderLen {
				f.Add(b[:PeerHeaderLen], b[PeerHeaderLen:])
			}
		}
	}
	f.Fuzz(func(t *testing.T, hb, payload []byte) {
		h, err := DecodePeerHeader(hb)
		if err != nil {
			return
		}
		if re := AppendPeerHeader(nil, h); !bytes.Equal(re, hb) {
			t.Fatalf("header re-encodes to % x, was % x", re, hb)
		}
		msgs, err := DecodePeerBatch(nil, payload, h.Count)
		if err != nil {
			return
		}
		var re []byte
		for i := range msgs {
			re = appendPeerMsg(re, &msgs[i])
		}
		if !bytes.Equal(re, payload) {
			t.Fatalf("batch re-encodes differently")
		}
	})
}
