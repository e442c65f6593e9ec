package manager

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
)

func TestCodecRoundTrip(t *testing.T) {
	for _, r := range []getMapRequest{
		{}, {After: 7}, {Linearizable: true, Wait: 10 * time.Second}, {After: 1<<64 - 1, Wait: 1500 * time.Millisecond},
	} {
		b := r.append(nil)
		if len(b) != getMapRequestLen {
			t.Fatalf("%+v encodes to %d bytes", r, len(b))
		}
		got, err := decodeGetMapRequest(b)
		if err != nil || got != r {
			t.Fatalf("get-map %+v: decoded %+v, %v", r, got, err)
		}
	}
	// Waits beyond the field's range are clamped, not wrapped.
	if got, _ := decodeGetMapRequest(getMapRequest{Wait: 100 * 24 * time.Hour}.append(nil)); got.Wait != waitMsMax*time.Millisecond {
		t.Fatalf("huge wait decoded as %v", got.Wait)
	}
	if got, _ := decodeGetMapRequest(getMapRequest{Wait: -time.Second}.append(nil)); got.Wait != 0 {
		t.Fatalf("negative wait decoded as %v", got.Wait)
	}
	for _, r := range []heartbeatRequest{{Node: 1}, {Node: 1<<63 - 1}} {
		got, err := decodeHeartbeatRequest(r.append(nil))
		if err != nil || got != r {
			t.Fatalf("heartbeat %+v: decoded %+v, %v", r, got, err)
		}
	}
	for _, r := range []reply{{}, {HasMap: true, Epoch: 42}} {
		got, err := decodeReply(r.append(nil))
		if err != nil || got != r {
			t.Fatalf("reply %+v: decoded %+v, %v", r, got, err)
		}
	}
	cmd, err := clustermap.AppendCommand(nil, clustermap.SetNodeState{ID: 3, State: clustermap.Down})
	if err != nil {
		t.Fatal(err)
	}
	ar := applyRequest{ID: RequestID{Client: 7, Seq: 1<<64 - 1}, Command: cmd}
	got, err := decodeApplyRequest(ar.append(nil))
	if err != nil || got.ID != ar.ID || !bytes.Equal(got.Command, cmd) {
		t.Fatalf("apply request %+v: %+v, %v", ar, got, err)
	}
	for _, id := range []RequestID{{}, {Client: 3, Seq: 9}} {
		gotID, gotCmd, err := decodeEntry(appendEntry(nil, id, cmd))
		if err != nil || gotID != id || !bytes.Equal(gotCmd, cmd) {
			t.Fatalf("entry %+v: %+v %x, %v", id, gotID, gotCmd, err)
		}
	}
}

func TestCodecRejects(t *testing.T) {
	good := getMapRequest{After: 3}.append(nil)
	hb := heartbeatRequest{Node: 5}.append(nil)
	rep := reply{Epoch: 5}.append(nil)
	ap := applyRequest{ID: RequestID{Client: 1, Seq: 2}, Command: []byte{1, 2}}.append(nil)
	mod := func(b []byte, i int, v byte) []byte {
		c := bytes.Clone(b)
		c[i] = v
		return c
	}
	for _, tc := range []struct {
		name   string
		decode func([]byte) error
		b      []byte
	}{
		{"get-map short", getMapErr, good[:15]},
		{"get-map long", getMapErr, append(bytes.Clone(good), 0)},
		{"get-map version", getMapErr, mod(good, 0, 2)},
		{"get-map flags", getMapErr, mod(good, 1, 2)},
		{"get-map reserved", getMapErr, mod(good, 3, 1)},
		{"apply empty", applyErr, nil},
		{"apply no command", applyErr, ap[:20]},
		{"apply version", applyErr, mod(ap, 0, 0)},
		{"apply reserved", applyErr, mod(ap, 2, 1)},
		{"apply client 0", applyErr, applyRequest{ID: RequestID{Seq: 1}, Command: []byte{1}}.append(nil)},
		{"apply seq 0", applyErr, applyRequest{ID: RequestID{Client: 1}, Command: []byte{1}}.append(nil)},
		{"entry short", entryErr, appendEntry(nil, RequestID{}, nil)},
		{"entry version", entryErr, mod(appendEntry(nil, RequestID{}, []byte{1}), 0, 2)},
		{"entry half id", entryErr, appendEntry(nil, RequestID{Client: 1}, []byte{1})},
		{"heartbeat short", heartbeatErr, hb[:8]},
		{"heartbeat version", heartbeatErr, mod(hb, 0, 9)},
		{"heartbeat reserved", heartbeatErr, mod(hb, 7, 1)},
		{"heartbeat node 0", heartbeatErr, heartbeatRequest{}.append(nil)},
		{"reply short", replyErr, rep[:1]},
		{"reply version", replyErr, mod(rep, 0, 0)},
		{"reply flags", replyErr, mod(rep, 1, 0x80)},
		{"reply reserved", replyErr, mod(rep, 5, 1)},
	} {
		if err := tc.decode(tc.b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s (%x): %v, want ErrCorrupt", tc.name, tc.b, err)
		}
	}
}

func getMapErr(b []byte) error    { _, err := decodeGetMapRequest(b); return err }
func applyErr(b []byte) error     { _, err := decodeApplyRequest(b); return err }
func entryErr(b []byte) error     { _, _, err := decodeEntry(b); return err }
func heartbeatErr(b []byte) error { _, err := decodeHeartbeatRequest(b); return err }
func replyErr(b []byte) error     { _, err := decodeReply(b); return err }

func FuzzDecodeGetMapRequest(f *testing.F) {
	f.Add(getMapRequest{}.append(nil))
	f.Add(getMapRequest{After: 9, Linearizable: true, Wait: time.Second}.append(nil))
	f.Add([]byte{1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeGetMapRequest(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if again := r.append(nil); !bytes.Equal(again, b) {
			t.Fatalf("%x decodes to %+v, which encodes to %x", b, r, again)
		}
	})
}

func fuzzCommands(f *testing.F) [][]byte {
	var cmds [][]byte
	for _, cmd := range []clustermap.Command{
		clustermap.AddNode{ID: 1, Addr: "a:1", Labels: map[string]string{"zone": "a"}, Capacity: 1},
		clustermap.SetNodeState{ID: 1, State: clustermap.Down},
		clustermap.CreateContainer{Name: "db", Policy: clustermap.Policy{Replicas: 3, FailureDomain: "zone"}},
		clustermap.CaughtUp{PG: 1, Node: 2, Epoch: 3},
	} {
		b, err := clustermap.AppendCommand(nil, cmd)
		if err != nil {
			f.Fatal(err)
		}
		cmds = append(cmds, b)
	}
	return cmds
}

func FuzzDecodeApplyRequest(f *testing.F) {
	for i, cmd := range fuzzCommands(f) {
		f.Add(applyRequest{ID: RequestID{Client: uint64(i + 1), Seq: 1}, Command: cmd}.append(nil))
	}
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeApplyRequest(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if again := r.append(nil); !bytes.Equal(again, b) {
			t.Fatalf("%x re-encodes to %x", b, again)
		}
		// What the handler does next: it must not panic either, and a
		// command it accepts must survive the trip through the log.
		cmd, err := clustermap.DecodeCommand(r.Command)
		if err != nil {
			return
		}
		enc, err := clustermap.AppendCommand(nil, cmd)
		if err != nil || !bytes.Equal(enc, r.Command) {
			t.Fatalf("command %x decodes to %+v, which encodes to %x, %v", r.Command, cmd, enc, err)
		}
	})
}

// FuzzApplyEntry feeds log entries to a state machine: no panic, and an
// entry either changes the map by one epoch or leaves it as it was.
func FuzzApplyEntry(f *testing.F) {
	for i, cmd := range fuzzCommands(f) {
		f.Add(appendEntry(nil, RequestID{Client: 1, Seq: uint64(i + 1)}, cmd))
		f.Add(appendEntry(nil, RequestID{}, cmd))
	}
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, cmd, err := decodeEntry(b)
		if err == nil {
			if again := appendEntry(nil, id, cmd); !bytes.Equal(again, b) {
				t.Fatalf("%x re-encodes to %x", b, again)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
		sm := NewStateMachine()
		for i, e := range [][]byte{b, b} {
			before := sm.Map().Epoch
			res := sm.Apply(uint64(i+1), e).(ApplyResult)
			if (res.Map == nil) == (res.Err == nil) {
				t.Fatalf("apply %d: result %+v", i+1, res)
			}
			after := sm.Map().Epoch
			if res.Err == nil && !res.Duplicate && after != before+1 || (res.Err != nil || res.Duplicate) && after != before {
				t.Fatalf("apply %d: epoch %d -> %d with %+v", i+1, before, after, res)
			}
		}
	})
}

func FuzzDecodeHeartbeatRequest(f *testing.F) {
	f.Add(heartbeatRequest{Node: 1}.append(nil))
	f.Add(heartbeatRequest{}.append(nil))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeHeartbeatRequest(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if again := r.append(nil); !bytes.Equal(again, b) {
			t.Fatalf("%x decodes to %+v, which encodes to %x", b, r, again)
		}
	})
}

func FuzzDecodeReply(f *testing.F) {
	f.Add(reply{}.append(nil))
	f.Add(reply{HasMap: true, Epoch: 3}.append(nil))
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeReply(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if again := r.append(nil); !bytes.Equal(again, b) {
			t.Fatalf("%x decodes to %+v, which encodes to %x", b, r, again)
		}
	})
}
