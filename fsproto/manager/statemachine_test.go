package manager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/raftgroup"
	"github.com/weftfs/weft/net"
)

func mustCommand(t testing.TB, cmd clustermap.Command) []byte {
	t.Helper()
	b, err := clustermap.AppendCommand(nil, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStateMachine(t *testing.T) {
	sm := NewStateMachine()
	if sm.Map().Epoch != 0 {
		t.Fatalf("new state machine at epoch %d", sm.Map().Epoch)
	}
	res := sm.Apply(1, mustCommand(t, clustermap.AddNode{ID: 1, Addr: "a:1", Labels: map[string]string{"zone": "a"}})).(ApplyResult)
	if res.Err != nil || res.Map.Epoch != 1 || sm.Map() != res.Map {
		t.Fatalf("AddNode: %+v", res)
	}
	// Refusals are results; the map stays.
	res = sm.Apply(2, mustCommand(t, clustermap.SetNodeState{ID: 1, State: clustermap.Up})).(ApplyResult)
	if !errors.Is(res.Err, clustermap.ErrNoChange) || res.Map != nil || sm.Map().Epoch != 1 {
		t.Fatalf("no-change command: %+v, map at %d", res, sm.Map().Epoch)
	}
	res = sm.Apply(3, []byte{0xff, 1, 2}).(ApplyResult)
	if !errors.Is(res.Err, clustermap.ErrCorrupt) || sm.Map().Epoch != 1 {
		t.Fatalf("garbage entry: %+v, map at %d", res, sm.Map().Epoch)
	}

	snap, err := sm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	other := NewStateMachine()
	if err := other.Restore(snap); err != nil {
		t.Fatal(err)
	}
	again, _ := other.Snapshot()
	if !bytes.Equal(again, snap) {
		t.Fatal("snapshot does not survive Restore")
	}
	bad := bytes.Clone(snap)
	bad[len(bad)-1] ^= 1
	if err := other.Restore(bad); !errors.Is(err, clustermap.ErrCorrupt) {
		t.Fatalf("Restore of a corrupt snapshot: %v", err)
	}
	if other.Map().Epoch != 1 {
		t.Fatal("a failed Restore changed the map")
	}

	// Wait returns at once for an older epoch, wakes on a change, and
	// gives up when its context ends.
	if m, ok := sm.Wait(context.Background(), nil, 0); !ok || m.Epoch != 1 {
		t.Fatalf("Wait(0) = %v, %v", m, ok)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if m, ok := sm.Wait(ctx, nil, 1); ok || m.Epoch != 1 {
		t.Fatalf("Wait(1) with a cancelled context = epoch %d, %v", m.Epoch, ok)
	}
	woke := make(chan *clustermap.Map)
	go func() {
		m, _ := sm.Wait(context.Background(), nil, 1)
		woke <- m
	}()
	sm.Apply(4, mustCommand(t, clustermap.AddNode{ID: 2, Addr: "b:1", Labels: map[string]string{"zone": "b"}}))
	if m := <-woke; m.Epoch != 2 {
		t.Fatalf("Wait(1) woke with epoch %d", m.Epoch)
	}
	enc, err := sm.encoded(sm.Map())
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := sm.Map().MarshalBinary(); !bytes.Equal(enc, want) {
		t.Fatal("cached encoding differs from MarshalBinary")
	}
}

// TestSeedLiveness checks a new leader's grace with a fake clock: no node
// changes state at once (Down ones stay Down, Up ones get a full timeout),
// silent Up nodes go Down after the timeout, and a Down node that
// heartbeats comes back.
func TestSeedLiveness(t *testing.T) {
	sm := NewStateMachine()
	for i, cmd := range []clustermap.Command{
		clustermap.AddNode{ID: 1, Addr: "a:1", Labels: map[string]string{"zone": "a"}},
		clustermap.AddNode{ID: 2, Addr: "b:1", Labels: map[string]string{"zone": "b"}},
		clustermap.AddNode{ID: 3, Addr: "c:1", Labels: map[string]string{"zone": "c"}},
		clustermap.SetNodeState{ID: 3, State: clustermap.Down},
	} {
		if res := sm.Apply(uint64(i+1), mustCommand(t, cmd)).(ApplyResult); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	m := sm.Map()
	const timeout = 5 * time.Second
	now := time.Unix(1000, 0)

	// Unseeded, a fresh Liveness revives the Down node at once: the
	// reason seedLiveness exists.
	if cmds := clustermap.NewLiveness(timeout).Commands(m, now); len(cmds) != 1 || cmds[0] != (clustermap.SetNodeState{ID: 3, State: clustermap.Up}) {
		t.Logf("NB: clustermap.Liveness no longer revives unheard Down nodes (%v); seedLiveness may be dropped", cmds)
	}

	l := clustermap.NewLiveness(timeout)
	seedLiveness(l, m, now)
	if cmds := l.Commands(m, now); len(cmds) != 0 {
		t.Fatalf("fresh leader at once: %v, want nothing", cmds)
	}
	if cmds := l.Commands(m, now.Add(timeout)); len(cmds) != 0 {
		t.Fatalf("fresh leader after exactly the grace: %v, want nothing", cmds)
	}
	l.Heartbeat(1, now.Add(timeout))
	l.Heartbeat(3, now.Add(timeout))
	cmds := l.Commands(m, now.Add(timeout+time.Millisecond))
	want := []clustermap.Command{
		clustermap.SetNodeState{ID: 2, State: clustermap.Down},
		clustermap.SetNodeState{ID: 3, State: clustermap.Up},
	}
	if len(cmds) != len(want) || cmds[0] != want[0] || cmds[1] != want[1] {
		t.Fatalf("after the grace: %v, want %v", cmds, want)
	}

	// A heartbeat that arrived before the seeding is kept.
	l = clustermap.NewLiveness(timeout)
	l.Heartbeat(3, now)
	seedLiveness(l, m, now)
	if cmds := l.Commands(m, now); len(cmds) != 1 || cmds[0] != (clustermap.SetNodeState{ID: 3, State: clustermap.Up}) {
		t.Fatalf("Down node heard before seeding: %v, want it Up", cmds)
	}
}

func FuzzDecodeMapReply(f *testing.F) {
	sm := NewStateMachine()
	sm.Apply(1, mustCommand(f, clustermap.AddNode{ID: 1, Addr: "a:1", Labels: map[string]string{"zone": "a"}}))
	sm.Apply(2, mustCommand(f, clustermap.CreateContainer{Name: "db", Policy: clustermap.Policy{Replicas: 1, PGCount: 2}}))
	enc, err := sm.Map().MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(reply{HasMap: true, Epoch: 2}.append(nil), enc)
	f.Add(reply{HasMap: true, Epoch: 3}.append(nil), enc)
	f.Add(reply{Epoch: 2}.append(nil), []byte{})
	f.Add(reply{Epoch: 2}.append(nil), enc)
	f.Fuzz(func(t *testing.T, header, payload []byte) {
		r, m, err := decodeMapReply(header, payload)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if r.HasMap != (m != nil) {
			t.Fatalf("reply %+v with map %v", r, m)
		}
		if m == nil {
			return
		}
		again, err := m.MarshalBinary()
		if err != nil || !bytes.Equal(again, payload) || m.Epoch != r.Epoch {
			t.Fatalf("accepted map does not re-encode to its payload: %v", err)
		}
	})
}

// TestErrorCodes carries every outcome through its wire code and the
// client's classification: refusals come back as their clustermap
// sentinel, raft's transient failures as retries.
func TestErrorCodes(t *testing.T) {
	for _, sentinel := range []error{clustermap.ErrNoChange, clustermap.ErrNotFound, clustermap.ErrExists, clustermap.ErrInvalid, clustermap.ErrStaleEpoch} {
		code := commandErrorCode(fmt.Errorf("pg 3: %w", sentinel))
		final := outcome(&net.RemoteError{Code: code, Message: "m"})
		if !errors.Is(final, sentinel) || final.Error() != "m" {
			t.Errorf("%v: code %d comes back as %v", sentinel, code, final)
		}
	}
	if code := commandErrorCode(fmt.Errorf("entry 4: %w", clustermap.ErrCorrupt)); code != CodeRejected {
		t.Errorf("a corrupt entry maps to code %d, want CodeRejected", code)
	}
	for _, err := range []error{raftgroup.ErrNoLeader, raftgroup.ErrProposalDropped, raftgroup.ErrBusy, raftgroup.ErrRemoved} {
		if !proposalNotApplied(fmt.Errorf("x: %w", err)) {
			t.Errorf("%v: not known as unapplied", err)
		}
	}
	for _, err := range []error{raftgroup.ErrLost, raftgroup.ErrStopped, context.DeadlineExceeded} {
		if proposalNotApplied(err) {
			t.Errorf("%v: claimed unapplied, but it may still apply", err)
		}
	}
	for _, code := range []net.ErrorCode{CodeUnavailable, CodeAmbiguous, net.CodeShuttingDown} {
		if final := outcome(&net.RemoteError{Code: code}); final != nil {
			t.Errorf("code %d is final (%v), want a retry", code, final)
		}
	}
	for _, code := range []net.ErrorCode{CodeBadRequest, CodeRejected, net.CodeAuthFailed, 999} {
		if final := outcome(&net.RemoteError{Code: code}); final == nil {
			t.Errorf("code %d is retried, want final", code)
		}
	}
	if final := outcome(&net.RemoteError{Code: CodeReadOnly}); !errors.Is(final, ErrReadOnly) {
		t.Errorf("CodeReadOnly comes back as %v", final)
	}
	if outcome(fmt.Errorf("call: %w", net.ErrConnClosed)) != nil || outcome(context.DeadlineExceeded) != nil {
		t.Error("a broken connection or an attempt's timeout is final, want a retry")
	}
}
