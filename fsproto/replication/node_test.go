package replication

import (
	"testing"
	"time"
)

// TestBackfillingPrimaryWaits: a view whose primary is backfilling (the
// map lost every caught-up replica) makes the node neither peer nor serve.
func TestBackfillingPrimaryWaits(t *testing.T) {
	n, err := NewNode(Config{ID: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range n.Step(ViewChange{View: View{PG: 3, Epoch: 5, Replicas: []uint64{1, 2}, Backfilling: []uint64{1, 2}}}) {
		t.Fatalf("a backfilling primary acted: %#v", e)
	}
	effs := n.Step(ClientOp{Token: 9, PG: 3, Kind: OpWrite, Data: []byte("x")})
	if len(effs) != 1 || effs[0].(Reply).Err != ErrNotPrimary {
		t.Fatalf("client op answered %#v, want ErrNotPrimary", effs)
	}
	// Once the map says it caught up (a new epoch), it leads.
	effs = n.Step(ViewChange{View: View{PG: 3, Epoch: 6, Replicas: []uint64{1, 2}, Backfilling: []uint64{2}}})
	peered := false
	for _, e := range effs {
		if s, ok := e.(Send); ok && s.Msg.Kind == MsgPeerQuery && s.To == 2 {
			peered = true
		}
	}
	if !peered {
		t.Fatalf("caught-up primary did not peer: %#v", effs)
	}
}

func submits(effs []Effect, kind StoreKind) []StoreOp {
	var ops []StoreOp
	for _, e := range effs {
		if s, ok := e.(Submit); ok && s.Op.Kind == kind {
			ops = append(ops, s.Op)
		}
	}
	return ops
}

// TestReplicaInstallsOnce: a resent SyncObject whose install is still
// under way starts no second install (the first one's ack answers it);
// once it completed, a resend installs again (the ack may have been lost).
func TestReplicaInstallsOnce(t *testing.T) {
	n, err := NewNode(Config{ID: 2})
	if err != nil {
		t.Fatal(err)
	}
	n.Step(ViewChange{View: View{PG: 3, Epoch: 5, Replicas: []uint64{1, 2}}})
	sync := Receive{From: 1, Msg: Msg{Kind: MsgSyncObject, PG: 3, Epoch: 5, Object: objN(1), Seq: 21, EpochStart: 27, Data: []byte("state")}}
	first := submits(n.Step(sync), StoreInstall)
	if len(first) != 1 || first[0].KeepIfAtLeast != 27 {
		t.Fatalf("first SyncObject submitted %+v, want one install keeping seqs >= 27", first)
	}
	if again := submits(n.Step(sync), StoreInstall); len(again) != 0 {
		t.Fatalf("a resend during the install submitted %+v", again)
	}
	acked := false
	for _, e := range n.Step(StoreDone{Result: StoreResult{ID: first[0].ID, Seq: 11}}) {
		if s, ok := e.(Send); ok && s.Msg.Kind == MsgSyncAck && s.Msg.Installed && s.Msg.Object == objN(1) {
			acked = true
		}
	}
	if !acked {
		t.Fatal("the install's completion sent no SyncAck")
	}
	if again := submits(n.Step(sync), StoreInstall); len(again) != 1 {
		t.Fatalf("a resend after the install submitted %+v, want one install", again)
	}
}

// TestPrimaryPeersAfterOwnMutations: a replica handed the primary role
// while a mutation it took as a replica is still in its store reads its
// own highest seq (which starts its sync) only once that completed.
func TestPrimaryPeersAfterOwnMutations(t *testing.T) {
	n, err := NewNode(Config{ID: 2, RetransmitTicks: 1})
	if err != nil {
		t.Fatal(err)
	}
	n.Step(ViewChange{View: View{PG: 3, Epoch: 5, Replicas: []uint64{1, 2}}})
	install := submits(n.Step(Receive{From: 1, Msg: Msg{Kind: MsgSyncObject, PG: 3, Epoch: 5, Object: objN(1), Seq: 21, EpochStart: 27, Data: []byte("state")}}), StoreInstall)
	if len(install) != 1 {
		t.Fatalf("no install: %+v", install)
	}
	if ops := submits(n.Step(ViewChange{View: View{PG: 3, Epoch: 6, Replicas: []uint64{2, 1}}}), StoreMaxSeq); len(ops) != 0 {
		t.Fatalf("the new primary read its max seq with an install in flight: %+v", ops)
	}
	if ops := submits(n.Step(Tick{}), StoreMaxSeq); len(ops) != 0 {
		t.Fatalf("a tick read the max seq with an install in flight: %+v", ops)
	}
	n.Step(StoreDone{Result: StoreResult{ID: install[0].ID, Seq: 11}})
	var read []StoreOp
	for range 3 {
		read = append(read, submits(n.Step(Tick{}), StoreMaxSeq)...)
	}
	if len(read) == 0 {
		t.Fatal("the primary never read its max seq once the install completed")
	}
}

// TestReadCheckGrantsOnlyWhenAsked: a replica with read leases answers a
// ReadCheck that asks (ReadCheckLease in the round) with a LeaseGrant, and
// one that does not (a primary without leases, or of a build before them,
// which knows no LeaseGrant) with a plain ReadCheckAck; both echo the
// round as received.
func TestReadCheckGrantsOnlyWhenAsked(t *testing.T) {
	var now time.Duration
	n, err := NewNode(Config{ID: 2, ReadLease: time.Second, Now: func() time.Duration { return now }})
	if err != nil {
		t.Fatal(err)
	}
	n.Step(ViewChange{View: View{PG: 3, Epoch: 5, Replicas: []uint64{1, 2}}})
	answer := func(round uint64) Msg {
		t.Helper()
		var got []Msg
		for _, e := range n.Step(Receive{From: 1, Msg: Msg{Kind: MsgReadCheck, PG: 3, Epoch: 5, Seq: round}}) {
			if s, ok := e.(Send); ok && s.To == 1 {
				got = append(got, s.Msg)
			}
		}
		if len(got) != 1 {
			t.Fatalf("ReadCheck of round %#x answered with %d messages, want 1: %+v", round, len(got), got)
		}
		return got[0]
	}
	if a := answer(7); a.Kind != MsgReadCheckAck || a.Seq != 7 || a.Lease != 0 {
		t.Fatalf("a ReadCheck without ReadCheckLease answered %v (round %#x, lease %d), want a plain ReadCheckAck of round 7", a.Kind, a.Seq, a.Lease)
	}
	if a := answer(8 | ReadCheckLease); a.Kind != MsgLeaseGrant || a.Seq != 8|ReadCheckLease || a.Lease != uint64(time.Second) {
		t.Fatalf("a ReadCheck with ReadCheckLease answered %v (round %#x, lease %d), want a LeaseGrant of 1s echoing the round", a.Kind, a.Seq, a.Lease)
	}
}

// TestForgetAnnounceCapped: a primary tells its replicas to forget
// tombstones (ForgetUpTo) only up to the seq below which every mutation is
// durable on every replica: a replica that forgot past a forward still on
// its way would take that forward for a stale duplicate and skip it.
func TestForgetAnnounceCapped(t *testing.T) {
	n, err := NewNode(Config{ID: 1, Window: 4, ForgetTicks: 2, RetransmitTicks: 1000})
	if err != nil {
		t.Fatal(err)
	}
	const pg, epoch = 3, 5
	var sent []Msg
	var applies []StoreOp
	// step feeds ev and answers the store at once (empty results, every
	// apply durable), collecting what is sent to node 2.
	var step func(ev Event)
	step = func(ev Event) {
		for _, e := range n.Step(ev) {
			switch e := e.(type) {
			case Send:
				sent = append(sent, e.Msg)
			case Submit:
				if e.Op.Kind == StoreApply {
					applies = append(applies, e.Op)
				}
				step(StoreDone{Result: StoreResult{ID: e.Op.ID}})
			}
		}
	}
	recv := func(m Msg) { m.PG, m.Epoch = pg, epoch; step(Receive{From: 2, Msg: m}) }
	step(ViewChange{View: View{PG: pg, Epoch: epoch, Replicas: []uint64{1, 2}}})
	recv(Msg{Kind: MsgPeerInfo})
	recv(Msg{Kind: MsgListResp})
	recv(Msg{Kind: MsgSyncDoneAck})
	for i := range 4 {
		step(ClientOp{Token: uint64(i + 1), PG: pg, Kind: OpWrite, Object: objN(i), Data: []byte("x"), RequestID: [16]byte{byte(i + 1)}})
	}
	if len(applies) != 4 {
		t.Fatalf("%d mutations issued, want 4", len(applies))
	}
	// Seqs 2-4 acknowledged by the replica, seq 1 not.
	for _, op := range applies[1:] {
		recv(Msg{Kind: MsgForwardAck, Seq: op.Seq})
	}
	announced := func() (top uint64) {
		for _, m := range sent {
			if m.Kind == MsgForgetUpTo {
				top = max(top, m.Seq)
			}
		}
		return top
	}
	for range 10 {
		step(Tick{})
	}
	if a := announced(); a >= applies[0].Seq {
		t.Fatalf("announced forgetting up to %d with seq %d pending", a, applies[0].Seq)
	}
	recv(Msg{Kind: MsgForwardAck, Seq: applies[0].Seq})
	for range 10 {
		step(Tick{})
	}
	if a := announced(); a < applies[0].Seq {
		t.Fatalf("announced %d once every seq was durable everywhere, want at least %d", a, applies[0].Seq)
	}
}
