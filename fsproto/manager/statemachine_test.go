package manager

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/raftgroup"
	"github.com/weftfs/weft/net"
)

// mustCommand returns cmd as a log entry without a request id.
func mustCommand(t testing.TB, cmd clustermap.Command) []byte {
	t.Helper()
	return mustEntry(t, RequestID{}, cmd)
}

func mustEntry(t testing.TB, id RequestID, cmd clustermap.Command) []byte {
	t.Helper()
	b, err := clustermap.AppendCommand(nil, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return appendEntry(nil, id, b)
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
	res = sm.Apply(3, appendEntry(nil, RequestID{}, []byte{0xff, 1, 2})).(ApplyResult)
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
	if err := other.Restore(bad); !errors.Is(err, ErrCorrupt) {
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

// TestDedupe applies request ids once: a retried success or refusal
// changes nothing and returns the first outcome, also after a snapshot,
// and the oldest ids are forgotten past DedupeMax.
func TestDedupe(t *testing.T) {
	sm := NewStateMachine()
	add := mustEntry(t, RequestID{Client: 1, Seq: 1}, clustermap.AddNode{ID: 1, Addr: "a:1", Labels: map[string]string{"zone": "a"}})
	up := mustEntry(t, RequestID{Client: 1, Seq: 2}, clustermap.SetNodeState{ID: 1, State: clustermap.Up})
	if res := sm.Apply(1, add).(ApplyResult); res.Err != nil || res.Duplicate {
		t.Fatalf("first AddNode: %+v", res)
	}
	res := sm.Apply(2, up).(ApplyResult)
	if !errors.Is(res.Err, clustermap.ErrNoChange) || res.Duplicate {
		t.Fatalf("first no-op SetNodeState: %+v", res)
	}
	refusal := res.Err.Error()
	// The node is drained by someone else: a late retry of "add" must
	// not re-join it (AddNode sets Up), and must report success.
	drain := mustEntry(t, RequestID{Client: 2, Seq: 1}, clustermap.SetNodeState{ID: 1, State: clustermap.Draining})
	if res := sm.Apply(3, drain).(ApplyResult); res.Err != nil {
		t.Fatal(res.Err)
	}
	check := func(sm *StateMachine, what string) {
		t.Helper()
		res := sm.Apply(10, add).(ApplyResult)
		if res.Err != nil || !res.Duplicate || res.Map != sm.Map() {
			t.Fatalf("%s: retried AddNode: %+v", what, res)
		}
		if n, _ := sm.Map().Node(1); n.State != clustermap.Draining || sm.Map().Epoch != 2 {
			t.Fatalf("%s: retried AddNode changed the map: node %v, epoch %d", what, n.State, sm.Map().Epoch)
		}
		res = sm.Apply(11, up).(ApplyResult)
		if !errors.Is(res.Err, clustermap.ErrNoChange) || !res.Duplicate || res.Err.Error() != refusal {
			t.Fatalf("%s: retried refused SetNodeState: %+v", what, res)
		}
		if n, _ := sm.Map().Node(1); n.State != clustermap.Draining {
			t.Fatalf("%s: retried SetNodeState Up was applied", what)
		}
	}
	check(sm, "live")
	snap, err := sm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored := NewStateMachine()
	if err := restored.Restore(snap); err != nil {
		t.Fatal(err)
	}
	check(restored, "restored")
	if again, _ := restored.Snapshot(); !bytes.Equal(again, snap) {
		t.Fatal("snapshot does not survive Restore")
	}

	// Past DedupeMax ids the oldest is forgotten: its retry applies again.
	for i := range DedupeMax {
		id := RequestID{Client: 3, Seq: uint64(i + 1)}
		res := sm.Apply(uint64(100+i), mustEntry(t, id, clustermap.SetNodeState{ID: 1, State: clustermap.Draining})).(ApplyResult)
		if !errors.Is(res.Err, clustermap.ErrNoChange) || res.Duplicate {
			t.Fatalf("filler %d: %+v", i, res)
		}
	}
	if res := sm.Apply(9000, add).(ApplyResult); res.Duplicate || res.Err != nil {
		t.Fatalf("AddNode after its id was forgotten: %+v", res)
	}
	if n, _ := sm.Map().Node(1); n.State != clustermap.Up {
		t.Fatalf("forgotten AddNode did not apply again: node %v", n.State)
	}
	if snap, err := sm.Snapshot(); err != nil {
		t.Fatal(err)
	} else if _, recs, err := decodeSnapshot(snap); err != nil || len(recs) != DedupeMax {
		t.Fatalf("full snapshot: %d ids, %v", len(recs), err)
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
		final := classify(&net.RemoteError{Code: code, Message: "m"})
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
		if final := classify(&net.RemoteError{Code: code}); final != nil {
			t.Errorf("code %d is final (%v), want a retry", code, final)
		}
	}
	for _, code := range []net.ErrorCode{CodeBadRequest, CodeRejected, net.CodeAuthFailed, 999} {
		if final := classify(&net.RemoteError{Code: code}); final == nil {
			t.Errorf("code %d is retried, want final", code)
		}
	}
	if final := classify(&net.RemoteError{Code: CodeReadOnly}); !errors.Is(final, ErrReadOnly) {
		t.Errorf("CodeReadOnly comes back as %v", final)
	}
	if classify(fmt.Errorf("call: %w", net.ErrConnClosed)) != nil || classify(context.DeadlineExceeded) != nil {
		t.Error("a broken connection or an attempt's timeout is final, want a retry")
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	sm := NewStateMachine()
	f.Add(func() []byte { b, _ := sm.Snapshot(); return b }())
	sm.Apply(1, mustEntry(f, RequestID{Client: 1, Seq: 1}, clustermap.AddNode{ID: 1, Addr: "a:1", Labels: map[string]string{"zone": "a"}}))
	sm.Apply(2, mustEntry(f, RequestID{Client: 1, Seq: 2}, clustermap.SetNodeState{ID: 1, State: clustermap.Up}))
	sm.Apply(3, mustEntry(f, RequestID{Client: 2, Seq: 1}, clustermap.CreateContainer{Name: "db", Policy: clustermap.Policy{Replicas: 1, PGCount: 2}}))
	snap, err := sm.Snapshot()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(snap)
	f.Add(snap[:len(snap)-1])
	check := func(t *testing.T, b []byte) {
		m, recs, err := decodeSnapshot(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		enc, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if again := appendSnapshot(nil, enc, recs); !bytes.Equal(again, b) {
			t.Fatalf("snapshot does not re-encode to its bytes")
		}
		sm := NewStateMachine()
		if err := sm.Restore(b); err != nil {
			t.Fatalf("Restore of a snapshot that decodes: %v", err)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		check(t, b)
		// The checksum stops almost every mutation at the door; a copy
		// resealed with a valid one reaches the layout checks.
		if len(b) >= snapshotCRCLen {
			b = bytes.Clone(b)
			body := b[:len(b)-snapshotCRCLen]
			binary.LittleEndian.PutUint32(b[len(body):], crc32.Checksum(body, castagnoli))
			check(t, b)
		}
	})
}
