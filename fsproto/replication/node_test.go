package replication

import "testing"

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
