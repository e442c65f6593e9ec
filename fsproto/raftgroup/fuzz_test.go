package raftgroup

import (
	"bytes"
	"errors"
	"maps"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func seedBatch(t testing.TB, msgs ...*raftpb.Message) (hdr, payload []byte) {
	for _, m := range msgs {
		var err error
		if payload, err = appendMessage(payload, m); err != nil {
			t.Fatal(err)
		}
	}
	return encodeBatchHeader(batchHeader{count: uint32(len(msgs)), groupID: 7, to: msgs[0].GetTo()}), payload
}

func testMessages() []*raftpb.Message {
	return []*raftpb.Message{
		{Type: raftpb.MsgHeartbeat.Enum(), To: proto.Uint64(2), From: proto.Uint64(1), Term: proto.Uint64(3), Commit: proto.Uint64(9)},
		{Type: raftpb.MsgApp.Enum(), To: proto.Uint64(2), From: proto.Uint64(1), Term: proto.Uint64(3), Index: proto.Uint64(8),
			Entries: []*raftpb.Entry{{Term: proto.Uint64(3), Index: proto.Uint64(9), Data: encodeEntry(42, []byte("k=v"))}}},
		{Type: raftpb.MsgSnap.Enum(), To: proto.Uint64(2), From: proto.Uint64(1), Snapshot: &raftpb.Snapshot{
			Data:     encodeSnapshot(map[uint64]string{1: "a:1", 2: "b:2"}, []byte("state")),
			Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(5), Term: proto.Uint64(2), ConfState: &raftpb.ConfState{Voters: []uint64{1, 2}}}}},
	}
}

// FuzzBatch feeds arbitrary header bodies and payloads to the batch
// decoder: it must not panic, and what it accepts must encode back to the
// same bytes.
func FuzzBatch(f *testing.F) {
	msgs := testMessages()
	for i := range msgs {
		hdr, payload := seedBatch(f, msgs[i:]...)
		f.Add(hdr, payload)
	}
	hdr, payload := seedBatch(f, msgs[0])
	f.Add(hdr, payload[:len(payload)-1])
	f.Add(hdr, append(payload, 0))
	f.Add(hdr[:10], payload)
	f.Add(encodeBatchHeader(batchHeader{count: maxBatchMessages + 1, groupID: 1, to: 2}), payload)
	f.Fuzz(func(t *testing.T, hdr, payload []byte) {
		h, msgs, err := decodeBatch(hdr, payload)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		if int(h.count) != len(msgs) {
			t.Fatalf("header says %d messages, decoded %d", h.count, len(msgs))
		}
		if got := encodeBatchHeader(h); !bytes.Equal(got, hdr) {
			t.Fatalf("header %x re-encodes as %x", hdr, got)
		}
		// Protobuf encodings are not canonical, so compare decoded values.
		var again []byte
		for _, m := range msgs {
			if again, err = appendMessage(again, m); err != nil {
				t.Fatal(err)
			}
		}
		_, msgs2, err := decodeBatch(hdr, again)
		if err != nil {
			t.Fatalf("re-encoded batch refused: %v", err)
		}
		for i := range msgs {
			if !proto.Equal(msgs[i], msgs2[i]) {
				t.Fatalf("message %d changed in a round trip: %v != %v", i, msgs[i], msgs2[i])
			}
		}
	})
}

// FuzzEnvelopes feeds arbitrary bytes to the entry, conf change context
// and snapshot decoders.
// FuzzPart: a part header decodes only when it names a part within its
// transfer, re-encodes to the same bytes, and errors match ErrCorrupt.
func FuzzPart(f *testing.F) {
	f.Add(encodePartHeader(partHeader{groupID: 1, to: 2, transfer: 3, offset: 0, total: 100}), 10)
	f.Add(encodePartHeader(partHeader{groupID: 1, to: 2, transfer: 3, offset: 90, total: 100}), 10)
	f.Add(encodePartHeader(partHeader{groupID: 1, to: 2, transfer: 3, offset: 95, total: 100}), 10)
	f.Add(encodePartHeader(partHeader{groupID: 1, to: 2, transfer: 3, offset: 0, total: transferBytesMax + 1}), 1)
	f.Add(encodePartHeader(partHeader{groupID: 1, to: 0, transfer: 3, offset: 0, total: 1}), 1)
	f.Add(encodeBatchHeader(batchHeader{count: 1, groupID: 1, to: 2}), 1)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > transferBytesMax {
			return
		}
		h, err := decodePart(b, n)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		if h.to == 0 || h.transfer == 0 || n == 0 || h.offset+uint64(n) > h.total || h.total > transferBytesMax {
			t.Fatalf("accepted %+v with %d bytes", h, n)
		}
		if got := encodePartHeader(h); !bytes.Equal(got, b) {
			t.Fatalf("part header %x re-encodes as %x", b, got)
		}
	})
}

func FuzzEnvelopes(f *testing.F) {
	f.Add(encodeEntry(1, []byte("k=v")))
	f.Add(encodeEntry(0, nil))
	f.Add(encodeContext(9, "127.0.0.1:7000"))
	f.Add(encodeContext(0, ""))
	f.Add(encodeSnapshot(map[uint64]string{1: "a", 3: "c"}, []byte("sm")))
	f.Add(encodeSnapshot(nil, nil))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if id, cmd, err := decodeEntry(b); err == nil {
			if got := encodeEntry(id, cmd); !bytes.Equal(got, b) {
				t.Fatalf("entry %x re-encodes as %x", b, got)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("entry error %v does not match ErrCorrupt", err)
		}
		if id, addr, err := decodeContext(b); err == nil {
			if got := encodeContext(id, addr); !bytes.Equal(got, b) {
				t.Fatalf("context %x re-encodes as %x", b, got)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("context error %v does not match ErrCorrupt", err)
		}
		if members, sm, err := decodeSnapshot(b); err == nil {
			if got := encodeSnapshot(members, sm); !bytes.Equal(got, b) {
				t.Fatalf("snapshot %x re-encodes as %x", b, got)
			}
			m2, _, err := decodeSnapshot(encodeSnapshot(members, sm))
			if err != nil || !maps.Equal(m2, members) {
				t.Fatalf("snapshot members %v round trip to %v, %v", members, m2, err)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("snapshot error %v does not match ErrCorrupt", err)
		}
	})
}

func TestDecodeBatchErrors(t *testing.T) {
	msgs := testMessages()
	hdr, payload := seedBatch(t, msgs[0])
	for _, tc := range []struct {
		name         string
		hdr, payload []byte
		want         string
	}{
		{"short header", hdr[:20], payload, "batch header of 20 bytes, want 24"},
		{"version", append([]byte{9}, hdr[1:]...), payload, "batch version 9, want 1"},
		{"zero count", encodeBatchHeader(batchHeader{count: 0, groupID: 7, to: 2}), payload, "batch of 0 messages"},
		{"to zero", encodeBatchHeader(batchHeader{count: 1, groupID: 7}), payload, "addressed to member 0"},
		{"truncated", hdr, payload[:len(payload)-2], "batch message 0 of 1 at offset 4: length"},
		{"trailing", hdr, append(payload, 1, 2), "2 bytes after its 1 messages"},
		{"wrong to", encodeBatchHeader(batchHeader{count: 1, groupID: 7, to: 3}), payload, "message to 2 in a batch to 3"},
	} {
		_, _, err := decodeBatch(tc.hdr, tc.payload)
		if err == nil || !errors.Is(err, ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("%s: %v, want ErrCorrupt saying %q", tc.name, err, tc.want)
		}
	}
	local := &raftpb.Message{Type: raftpb.MsgHup.Enum(), To: proto.Uint64(2), From: proto.Uint64(1)}
	hdr, payload = seedBatch(t, local)
	if _, _, err := decodeBatch(hdr, payload); err == nil || !bytes.Contains([]byte(err.Error()), []byte("local to a node")) {
		t.Errorf("a local message from the network: %v", err)
	}
	gap := &raftpb.Message{Type: raftpb.MsgApp.Enum(), To: proto.Uint64(2), From: proto.Uint64(1), Term: proto.Uint64(3), Index: proto.Uint64(8),
		Entries: []*raftpb.Entry{{Term: proto.Uint64(3), Index: proto.Uint64(10)}}}
	hdr, payload = seedBatch(t, gap)
	if _, _, err := decodeBatch(hdr, payload); err == nil || !bytes.Contains([]byte(err.Error()), []byte("has index 10, want 9")) {
		t.Errorf("a MsgApp with a gap: %v", err)
	}
	emptySnap := &raftpb.Message{Type: raftpb.MsgSnap.Enum(), To: proto.Uint64(2), From: proto.Uint64(1)}
	hdr, payload = seedBatch(t, emptySnap)
	if _, _, err := decodeBatch(hdr, payload); err == nil || !bytes.Contains([]byte(err.Error()), []byte("MsgSnap without")) {
		t.Errorf("a MsgSnap without a snapshot: %v", err)
	}
	noFrom := &raftpb.Message{Type: raftpb.MsgApp.Enum(), To: proto.Uint64(2)}
	hdr, payload = seedBatch(t, noFrom)
	if _, _, err := decodeBatch(hdr, payload); err == nil || !bytes.Contains([]byte(err.Error()), []byte("from member 0")) {
		t.Errorf("a message from member 0: %v", err)
	}
}
