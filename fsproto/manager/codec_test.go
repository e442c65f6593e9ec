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
	got, err := decodeApplyRequest(appendApplyRequest(nil, cmd))
	if err != nil || !bytes.Equal(got, cmd) {
		t.Fatalf("apply request: %x, %v; want %x", got, err, cmd)
	}
}

func TestCodecRejects(t *testing.T) {
	good := getMapRequest{After: 3}.append(nil)
	hb := heartbeatRequest{Node: 5}.append(nil)
	rep := reply{Epoch: 5}.append(nil)
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
		{"apply no command", applyErr, []byte{1, 0, 0, 0}},
		{"apply version", applyErr, []byte{0, 0, 0, 0, 1}},
		{"apply reserved", applyErr, []byte{1, 0, 1, 0, 1}},
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

func FuzzDecodeApplyRequest(f *testing.F) {
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
		f.Add(appendApplyRequest(nil, b))
	}
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		data, err := decodeApplyRequest(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if again := appendApplyRequest(nil, data); !bytes.Equal(again, b) {
			t.Fatalf("%x re-encodes to %x", b, again)
		}
		// What the handler does next: it must not panic either, and a
		// command it accepts must survive the trip through the log.
		cmd, err := clustermap.DecodeCommand(data)
		if err != nil {
			return
		}
		enc, err := clustermap.AppendCommand(nil, cmd)
		if err != nil || !bytes.Equal(enc, data) {
			t.Fatalf("command %x decodes to %+v, which encodes to %x, %v", data, cmd, enc, err)
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
