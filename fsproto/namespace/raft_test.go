package namespace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/raftgroup"
	"github.com/weftfs/weft/internal/testutil"
)

// The namespace is a raftgroup.StateMachine. The assertion lives in a
// test so the package itself stays free of Raft (clients import it for
// its types and codecs).
var _ raftgroup.StateMachine = (*Namespace)(nil)

// TestRaftGroup replicates a namespace over three members on an
// in-memory network: every proposal's result matches the model, a member
// stopped and restarted on its log catches up (through the log's
// snapshots, which the small SnapshotEvery forces), readers run while
// entries apply, and all members end with identical snapshots.
func TestRaftGroup(t *testing.T) {
	testutil.CheckLeaks(t)
	const seed = 11
	net := raftgroup.NewMemNetwork(seed)
	var peers []raftgroup.Peer
	for id := uint64(1); id <= 3; id++ {
		peers = append(peers, raftgroup.Peer{ID: id, Addr: fmt.Sprint("mem-", id)})
	}
	logs := map[uint64]*raftgroup.MemLog{}
	nss := map[uint64]*Namespace{}
	restores := map[uint64]*atomic.Int32{}
	groups := map[uint64]*raftgroup.Group{}
	start := func(id uint64) {
		if logs[id] == nil {
			logs[id] = raftgroup.NewMemLog()
		}
		nss[id] = New()
		restores[id] = new(atomic.Int32)
		g, err := raftgroup.Start(raftgroup.Config{
			ID: id, Peers: peers, Log: logs[id], SM: countingSM{nss[id], restores[id]}, Transport: net.Transport(),
			// Long election timeouts: a busy test machine must not
			// change leaders under the proposals.
			TickInterval: 10 * time.Millisecond, ElectionTicks: 50, HeartbeatTicks: 2,
			SnapshotEvery: 16,
			Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatalf("start %d: %v", id, err)
		}
		groups[id] = g
	}
	stop := func(id uint64) {
		groups[id].Stop()
		delete(groups, id)
	}
	for id := uint64(1); id <= 3; id++ {
		start(id)
	}
	defer func() {
		for id := range groups {
			stop(id)
		}
	}()

	// A reader on member 2 walks the tree while entries apply (the race
	// detector checks the locking).
	done := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	go func(ns *Namespace) {
		defer readers.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			ents, _, _ := ns.ReadDir(RootIno, "", 0)
			for _, e := range ents {
				ns.GetAttr(e.Ino)
				ns.ListXattr(e.Ino)
			}
			ns.StatFS()
			ns.Snapshot()
		}
	}(nss[2])
	defer func() { close(done); readers.Wait() }()

	r := rand.New(rand.NewPCG(seed, 0))
	m := newModel()
	g := &gen{r: r, m: m}
	// Wait for a leader, then pick a follower to stop and restart later;
	// proposals go to the other two (a follower forwards to the leader).
	var lead uint64
	for deadline := time.Now().Add(20 * time.Second); lead == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no leader")
		}
		lead = groups[1].Leader()
	}
	victim := lead%3 + 1
	var proposers []uint64
	for id := uint64(1); id <= 3; id++ {
		if id != victim {
			proposers = append(proposers, id)
		}
	}
	propose := func(step int) {
		t.Helper()
		cmd := g.command()
		b, err := MarshalCommand(cmd)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for {
			res, err := groups[proposers[step%2]].Propose(ctx, b)
			if errors.Is(err, raftgroup.ErrNoLeader) || errors.Is(err, raftgroup.ErrProposalDropped) || errors.Is(err, raftgroup.ErrBusy) {
				// Nothing was submitted: safe to retry.
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if errors.Is(err, raftgroup.ErrLost) {
				// A leader change (a very slow machine) left the outcome
				// unknown, and the model cannot follow an unknown outcome.
				// That is raftgroup's documented behaviour, not a namespace
				// failure.
				t.Skipf("seed %d step %d: proposal outcome unknown after a leader change: %v", seed, step, err)
			}
			if err != nil {
				t.Fatalf("seed %d step %d: propose %#v: %v", seed, step, cmd, err)
			}
			got := res.(Result)
			want, made := m.apply(cmd)
			if Errno(got.Err) != want {
				t.Fatalf("seed %d step %d: %#v: group result %v, model %v", seed, step, cmd, got.Err, want)
			}
			if made != nil {
				made.ino = got.Attr.Ino
				m.live[made.ino] = made
			}
			return
		}
	}
	step := 0
	for ; step < 60; step++ {
		propose(step)
	}
	stop(victim)
	for ; step < 120; step++ {
		propose(step)
	}
	start(victim)
	for ; step < 150; step++ {
		propose(step)
	}

	// Wait until every member applied what the leader did.
	deadline := time.Now().Add(20 * time.Second)
	for {
		want := nss[lead].Applied()
		if nss[1].Applied() == want && nss[2].Applied() == want && nss[3].Applied() == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("members did not converge: applied %d %d %d", nss[1].Applied(), nss[2].Applied(), nss[3].Applied())
		}
		time.Sleep(10 * time.Millisecond)
	}
	snap1, _ := nss[1].Snapshot()
	for id := uint64(2); id <= 3; id++ {
		if s, _ := nss[id].Snapshot(); !bytes.Equal(s, snap1) {
			t.Fatalf("member %d's state differs from member 1's", id)
		}
	}
	compare(t, r, nss[victim], m)
	if restores[victim].Load() == 0 {
		t.Fatal("the restarted member never restored a snapshot: the test missed the Restore path")
	}
}

// countingSM counts Restores.
type countingSM struct {
	*Namespace
	restores *atomic.Int32
}

func (c countingSM) Restore(data []byte) error {
	c.restores.Add(1)
	return c.Namespace.Restore(data)
}
