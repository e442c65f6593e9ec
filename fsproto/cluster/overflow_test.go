package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/replication"
)

// TestStoreDoneKeepsOrder: completions handed over while the loop's queue
// is full wait in the overflow and reach the loop in the order they came,
// also those that came after the queue had room again; and the handing
// never waits (it runs on the engine's reactor).
func TestStoreDoneKeepsOrder(t *testing.T) {
	s := &DataServer{done: make(chan replication.StoreResult, 2)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	defer s.cancel()
	const n = 200
	handed := make(chan struct{})
	go func() {
		for i := uint64(1); i <= n; i++ {
			s.storeDoneFunc(replication.StoreResult{ID: i})
		}
		close(handed)
	}()
	select {
	case <-handed:
	case <-time.After(10 * time.Second):
		t.Fatal("storeDoneFunc waited for the loop")
	}
	for want := uint64(1); want <= n; want++ {
		select {
		case r := <-s.done:
			if r.ID != want {
				t.Fatalf("completion %d reached the loop where %d was due", r.ID, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("completion %d never reached the loop", want)
		}
		if want%50 == 0 {
			// The overflow may empty meanwhile; a completion now goes
			// straight to the queue, behind everything before it.
			s.storeDoneFunc(replication.StoreResult{ID: n + want/50})
		}
	}
	for want := uint64(n + 1); want <= n+n/50; want++ {
		if r := <-s.done; r.ID != want {
			t.Fatalf("late completion %d reached the loop where %d was due", r.ID, want)
		}
	}
}
