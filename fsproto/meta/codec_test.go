package meta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"testing"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/namespace"
)

func mustCommand(t testing.TB, cmd namespace.Command) []byte {
	t.Helper()
	b, err := namespace.AppendCommand(nil, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seedCommands(t testing.TB) [][]byte {
	return [][]byte{
		mustCommand(t, namespace.Mkdir{Parent: namespace.RootIno, Name: "d", Mode: 0o755, Now: 5}),
		mustCommand(t, namespace.Create{Parent: namespace.RootIno, Name: "f", Mode: 0o644, Excl: true, Now: 6}),
		mustCommand(t, namespace.Rename{SrcParent: 1, SrcName: "f", DstParent: 1, DstName: "g", Now: 7}),
		mustCommand(t, namespace.Unlink{Parent: 1, Name: "g", Now: 8}),
		mustCommand(t, namespace.SetXattr{Ino: 1, Name: "user.a", Value: []byte("xyz"), Now: 9}),
		mustCommand(t, namespace.WithCloses{Closes: []namespace.Ino{2, 3}, Cmd: namespace.Mkdir{Parent: namespace.RootIno, Name: "e", Mode: 0o700, Now: 10}}),
	}
}

func FuzzDecodeOpRequest(f *testing.F) {
	for i, cmd := range seedCommands(f) {
		f.Add(opRequest{Container: 3, ID: RequestID{Client: 7, Seq: uint64(i + 1)}, Command: cmd}.append(nil))
	}
	f.Add([]byte{1, 0, 0, 0})
	f.Add(opRequest{Container: 0, ID: RequestID{Client: 1, Seq: 1}, Command: []byte{1}}.append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeOpRequest(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if again := r.append(nil); !bytes.Equal(again, b) {
			t.Fatalf("%x re-encodes to %x", b, again)
		}
		// What the handler does next must not panic either.
		if cmd, err := namespace.DecodeCommand(r.Command); err == nil {
			if _, err := namespace.AppendCommand(nil, namespace.WithNow(cmd, 1)); err != nil {
				t.Fatalf("stamped command %+v does not encode: %v", cmd, err)
			}
		}
	})
}

func FuzzDecodeReadRequest(f *testing.F) {
	for _, r := range []readRequest{
		{Op: ReadLookup, Container: 1, Ino: 1, Name: "etc"},
		{Op: ReadGetAttr, Container: 2, Ino: 9},
		{Op: ReadDir, Container: 1, Ino: 1, Name: "cookie", Limit: 128},
		{Op: ReadStatFS, Container: 1},
		{Op: ReadMembers, Container: 4},
		{Op: ReadDir, Container: 1, Ino: 1, Limit: 0},
		{Op: 9, Container: 1},
	} {
		f.Add(r.append(nil))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeReadRequest(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if again := r.append(nil); !bytes.Equal(again, b) {
			t.Fatalf("%x decodes to %+v, which re-encodes to %x", b, r, again)
		}
	})
}

func FuzzDecodeReplyHeader(f *testing.F) {
	f.Add(replyHeader{Leader: 3}.append(nil), 10)
	f.Add(replyHeader{Status: statusNotLeader, Leader: 2}.append(nil), 0)
	f.Add(replyHeader{Status: statusNotLeader}.append(nil), 4)
	f.Add([]byte{1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0)
	f.Fuzz(func(t *testing.T, b []byte, bodyLen int) {
		h, err := decodeReplyHeader(b, bodyLen)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if again := h.append(nil); !bytes.Equal(again, b) {
			t.Fatalf("%x re-encodes to %x", b, again)
		}
	})
}

func seedReadReplies() map[ReadOp][]readReply {
	attr := namespace.Attr{Ino: 5, Type: namespace.TypeFile, Mode: 0o644, Size: 10, Nlink: 1, Atime: 1, Mtime: 2, Ctime: 3}
	return map[ReadOp][]readReply{
		ReadLookup:  {{Attr: attr}, {Err: &namespace.Error{Op: "lookup", Ino: 1, Name: "x", Errno: syscall.ENOENT}}},
		ReadGetAttr: {{Attr: attr}},
		ReadDir: {{Entries: []namespace.DirEntry{{Name: "a", Ino: 2, Type: namespace.TypeDir}, {Name: "b", Ino: 3, Type: namespace.TypeSymlink}}, Next: "b"},
			{}},
		ReadLink:      {{Target: "../x"}},
		ReadGetXattr:  {{Value: []byte("value")}, {Err: &namespace.Error{Op: "getxattr", Ino: 4, Name: "user.x", Errno: syscall.ENODATA}}},
		ReadListXattr: {{Names: []string{"user.a", "user.b"}}},
		ReadStatFS:    {{StatFS: namespace.StatFS{Inodes: 4, Bytes: 100, QuotaBytes: 1 << 30, Reclaiming: 2}}},
		ReadMembers:   {{Commit: 12, Last: 14, Voters: []Voter{{1, 9, false}, {2, 0, false}, {3, 7, true}}}, {Voters: []Voter{}}},
	}
}

func FuzzDecodeReadReply(f *testing.F) {
	for op, reps := range seedReadReplies() {
		for i := range reps {
			f.Add(uint8(op), appendReadReply(nil, op, &reps[i]))
		}
	}
	f.Add(uint8(ReadDir), []byte{0, 0, 0, 0})
	f.Add(uint8(0), []byte{})
	f.Fuzz(func(t *testing.T, op uint8, b []byte) {
		r, err := decodeReadReply(ReadOp(op), b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if again := appendReadReply(nil, ReadOp(op), &r); !bytes.Equal(again, b) {
			t.Fatalf("op %d: %x decodes to %+v, which re-encodes to %x", op, b, r, again)
		}
	})
}

// TestReadReplyRoundTrip checks every read reply survives the codec
// unchanged, errors as *namespace.Error with their errno.
func TestReadReplyRoundTrip(t *testing.T) {
	for op, reps := range seedReadReplies() {
		for i := range reps {
			b := appendReadReply(nil, op, &reps[i])
			got, err := decodeReadReply(op, b)
			if err != nil {
				t.Fatalf("op %d reply %d: %v", op, i, err)
			}
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", reps[i]) {
				t.Fatalf("op %d reply %d: %+v, want %+v", op, i, got, reps[i])
			}
			if reps[i].Err != nil && !errors.Is(got.Err, reps[i].Err.Errno) {
				t.Fatalf("op %d reply %d: error %v lost errno %v", op, i, got.Err, reps[i].Err.Errno)
			}
		}
	}
}

// FuzzApplyEntry feeds log entries to a state machine: no panic, and an
// entry applied twice with one id answers the same result the second time
// and changes nothing.
func FuzzApplyEntry(f *testing.F) {
	for i, cmd := range seedCommands(f) {
		f.Add(appendEntry(nil, RequestID{Client: 1, Seq: uint64(i + 1)}, cmd))
	}
	f.Add([]byte{1})
	f.Add(appendEntry(nil, RequestID{}, seedCommands(f)[0]))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, cmd, decErr := decodeEntry(b)
		if decErr == nil {
			if again := appendEntry(nil, id, cmd); !bytes.Equal(again, b) {
				t.Fatalf("%x re-encodes to %x", b, again)
			}
		} else if !errors.Is(decErr, ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", decErr)
		}
		sm := NewStateMachine()
		first := sm.Apply(1, b).(ApplyResult)
		before, err := sm.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		second := sm.Apply(2, b).(ApplyResult)
		after, _ := sm.Snapshot()
		if decErr == nil && sm.seen[id] != nil {
			if !second.Duplicate || !bytes.Equal(first.Encoded, second.Encoded) || !bytes.Equal(before, after) {
				t.Fatalf("entry %x applied twice: %+v then %+v", b, first, second)
			}
		}
		if err := sm.NS().Check(); err != nil {
			t.Fatal(err)
		}
	})
}

// applied builds a state machine with some history: ops, a refusal, a
// duplicate.
func applied(t testing.TB) *StateMachine {
	sm := NewStateMachine()
	idx := uint64(0)
	for i, cmd := range seedCommands(t) {
		idx++
		sm.Apply(idx, appendEntry(nil, RequestID{Client: 9, Seq: uint64(i + 1)}, cmd))
	}
	idx++
	sm.Apply(idx, appendEntry(nil, RequestID{Client: 9, Seq: 1}, seedCommands(t)[0]))
	return sm
}

func FuzzDecodeSnapshot(f *testing.F) {
	snap, err := applied(f).Snapshot()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(snap)
	empty, _ := NewStateMachine().Snapshot()
	f.Add(empty)
	f.Add(snap[:len(snap)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		nsb, recs, err := decodeSnapshot(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if again := appendSnapshot(nil, nsb, recs); !bytes.Equal(again, b) {
			t.Fatalf("snapshot re-encodes differently")
		}
		sm := NewStateMachine()
		if err := sm.Restore(b); err != nil {
			return
		}
		if again, _ := sm.Snapshot(); !bytes.Equal(again, b) {
			t.Fatalf("restored snapshot re-encodes differently")
		}
	})
}

// TestStateMachineSnapshot restores a snapshot into a fresh state machine:
// same namespace, and the remembered ids still answer retries.
func TestStateMachineSnapshot(t *testing.T) {
	sm := applied(t)
	snap, err := sm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	r := NewStateMachine()
	if err := r.Restore(snap); err != nil {
		t.Fatal(err)
	}
	again, _ := r.Snapshot()
	if !bytes.Equal(again, snap) {
		t.Fatal("restored state machine snapshots differently")
	}
	// A retried Create (seq 2) answers its first result; an index the
	// snapshot covers changes nothing.
	res := r.Apply(100, appendEntry(nil, RequestID{Client: 9, Seq: 2}, seedCommands(t)[1])).(ApplyResult)
	if !res.Duplicate || res.Result.Err != nil || !res.Result.Created {
		t.Fatalf("retried create after restore: %+v", res)
	}
	res = r.Apply(3, appendEntry(nil, RequestID{Client: 10, Seq: 1}, seedCommands(t)[0])).(ApplyResult)
	if !errors.Is(res.Result.Err, namespace.ErrApplied) {
		t.Fatalf("entry below the applied index: %+v", res)
	}
	if after, _ := r.Snapshot(); !bytes.Equal(after, snap) {
		t.Fatal("duplicates changed the state")
	}
	bad := bytes.Clone(snap)
	bad[len(bad)/2] ^= 1
	if err := r.Restore(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("restore of a flipped bit: %v", err)
	}
}

// TestStateMachineForgetsOldest applies more than DedupeMax ids: the
// oldest is forgotten (its retry applies again), the newest remembered.
func TestStateMachineForgetsOldest(t *testing.T) {
	sm := NewStateMachine()
	cmd := mustCommand(t, namespace.SetAttr{Ino: 1, Mask: namespace.SetMode, Mode: 0o700})
	for i := uint64(1); i <= DedupeMax+1; i++ {
		sm.Apply(i, appendEntry(nil, RequestID{Client: 1, Seq: i}, cmd))
	}
	if len(sm.seen) != DedupeMax || len(sm.order) != DedupeMax {
		t.Fatalf("remembers %d ids (%d in order), want %d", len(sm.seen), len(sm.order), DedupeMax)
	}
	if r := sm.Apply(DedupeMax+2, appendEntry(nil, RequestID{Client: 1, Seq: 1}, cmd)).(ApplyResult); r.Duplicate {
		t.Fatal("the oldest id is still remembered")
	}
	if r := sm.Apply(DedupeMax+3, appendEntry(nil, RequestID{Client: 1, Seq: DedupeMax + 1}, cmd)).(ApplyResult); !r.Duplicate {
		t.Fatal("the newest id is forgotten")
	}
}

func TestMembers(t *testing.T) {
	m := clustermap.New()
	var err error
	for i := 1; i <= 6; i++ {
		zone := fmt.Sprintf("z%d", (i+1)/2) // two nodes per zone
		if m, err = m.Apply(clustermap.AddNode{ID: clustermap.NodeID(i), Addr: fmt.Sprintf("n%d:1", i), Capacity: 1,
			Labels: map[string]string{"zone": zone}}); err != nil {
			t.Fatal(err)
		}
	}
	if m, err = m.Apply(clustermap.CreateContainer{Name: "c", Policy: clustermap.Policy{Replicas: 3, FailureDomain: "zone"}}); err != nil {
		t.Fatal(err)
	}
	ct, _ := m.ContainerByName("c")
	ids, err := Members(m, ct.ID)
	if err != nil || len(ids) != 3 {
		t.Fatalf("members %v, %v", ids, err)
	}
	zones := map[string]bool{}
	for _, id := range ids {
		n, _ := m.Node(id)
		zones[n.Labels["zone"]] = true
	}
	if len(zones) != 3 {
		t.Fatalf("members %v span zones %v, want 3", ids, zones)
	}
	// Down changes nothing; Out replaces the node.
	down, err := m.Apply(clustermap.SetNodeState{ID: ids[0], State: clustermap.Down})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := Members(down, ct.ID); !slices.Equal(got, ids) {
		t.Fatalf("members with %d down: %v, want %v", ids[0], got, ids)
	}
	out, err := down.Apply(clustermap.SetNodeState{ID: ids[0], State: clustermap.Out})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := Members(out, ct.ID)
	if len(got) != 3 || slices.Contains(got, ids[0]) {
		t.Fatalf("members with %d out: %v", ids[0], got)
	}
	if _, err := Members(m, ct.ID+1); !errors.Is(err, clustermap.ErrNotFound) {
		t.Fatalf("members of an unknown container: %v", err)
	}
	if GroupID(ct.ID) == 1 || GroupID(1) == GroupID(2) {
		t.Fatal("group ids collide")
	}
}

func TestErrno(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{&namespace.Error{Op: "create", Ino: 1, Name: "x", Errno: syscall.EEXIST}, syscall.EEXIST},
		{fmt.Errorf("meta: op: %w", &namespace.Error{Op: "rmdir", Errno: syscall.ENOTEMPTY}), syscall.ENOTEMPTY},
		{fmt.Errorf("meta: node 1: %w: key", ErrReadOnly), syscall.EROFS},
		{fmt.Errorf("meta: container 3: %w", clustermap.ErrNotFound), syscall.ENOENT},
		{fmt.Errorf("meta: op: %w", context.DeadlineExceeded), syscall.ETIMEDOUT},
		{fmt.Errorf("meta: op: %w", context.Canceled), syscall.EINTR},
		{corrupt("bad"), syscall.EIO},
	} {
		if got := Errno(tc.err); got != tc.want {
			t.Errorf("Errno(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestReadOpString(t *testing.T) {
	if got := ReadDir.String(); got != "readdir" {
		t.Fatalf("ReadDir is %q", got)
	}
	if got := ReadOp(99).String(); got != "ReadOp(99)" {
		t.Fatalf("ReadOp(99) is %q", got)
	}
}
