package raftgroup

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/weftfs/weft/internal/testutil"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func withLeaseReads(c *Config) { c.LeaseReads = true }

func readOn(t *testing.T, g *Group) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := g.ReadIndex(ctx); err != nil {
		t.Fatalf("read index on %d: %v", g.ID(), err)
	}
}

func status(t *testing.T, g *Group) Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	st, err := g.Status(ctx)
	if err != nil {
		t.Fatalf("status of %d: %v", g.ID(), err)
	}
	return st
}

// TestLeaseReadsSkipTheRound: once a leader's read index came back, the
// reads after it pass on the lease, and they still see every write that
// completed before them.
func TestLeaseReadsSkipTheRound(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 11, 3, withLeaseReads)
	lead := c.leader()
	g := c.groups[lead]
	readOn(t, g) // a round: it starts the lease
	for i := range 20 {
		c.propose(lead, fmt.Sprintf("k=%d", i))
		readOn(t, g)
		if v := c.sms[lead].Get("k"); v != fmt.Sprint(i) {
			t.Fatalf("leader reads k=%q after its read barrier, want %d", v, i)
		}
	}
	if st := status(t, g); st.LeaseReads == 0 {
		t.Fatalf("21 reads on the leader, none on the lease (status %+v)", st)
	}
	for id, f := range c.groups {
		if id == lead {
			continue
		}
		readOn(t, f)
		if st := status(t, f); st.LeaseReads != 0 || st.Lease != 0 {
			t.Fatalf("follower %d read on a lease: %d reads, lease %v", id, st.LeaseReads, st.Lease)
		}
	}
}

// TestLeaseEndsBeforeANewLeaderCommits isolates a leader that holds a
// lease while a reader keeps reading on it: once the majority's new leader
// has acknowledged a write, no read that starts on the old leader may
// pass (it could not see the write). A lease longer than the followers'
// promise fails this test.
func TestLeaseEndsBeforeANewLeaderCommits(t *testing.T) {
	testutil.CheckLeaks(t)
	for seed := uint64(20); seed < 23; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			c := newCluster(t, seed, 3, withLeaseReads)
			old := c.leader()
			g := c.groups[old]
			c.propose(old, "before=1")
			readOn(t, g)
			readOn(t, g)
			if st := status(t, g); st.Lease == 0 {
				t.Fatalf("leader %d holds no lease after two reads", old)
			}

			type read struct {
				start time.Time
				err   error
			}
			var (
				mu    sync.Mutex
				reads []read
				stop  = make(chan struct{})
				done  = make(chan struct{})
			)
			go func() {
				defer close(done)
				for {
					select {
					case <-stop:
						return
					default:
					}
					start := time.Now()
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
					err := g.ReadIndex(ctx)
					cancel()
					mu.Lock()
					reads = append(reads, read{start, err})
					mu.Unlock()
					time.Sleep(time.Millisecond)
				}
			}()

			majority := c.others(old)
			c.net.Isolate(old, majority...)
			isolated := time.Now()
			lead := c.leader(majority...)
			c.propose(lead, "after=1")
			acked := time.Now()
			// Reads that start now would miss after=1: none may pass.
			time.Sleep(50 * time.Millisecond)
			close(stop)
			<-done

			var onLease, stale int
			for _, r := range reads {
				if r.err != nil {
					continue
				}
				if r.start.After(isolated) {
					onLease++
				}
				if r.start.After(acked) {
					stale++
				}
			}
			if stale > 0 {
				t.Fatalf("seed %d: %d reads on the isolated old leader %d passed after the new leader %d acknowledged a write (it was acknowledged %v after the isolation)",
					seed, stale, old, lead, acked.Sub(isolated))
			}
			t.Logf("seed %d: %d reads in all, %d passed on the lease after the isolation; new leader's write acknowledged %v after it",
				seed, len(reads), onLease, acked.Sub(isolated))
			c.net.Heal()
		})
	}
}

// TestRestartedMemberHoldsVotes: a member that restarts may have answered
// a leader's heartbeat just before it stopped, and that leader may count
// on it for its lease, so for an election timeout after Start it ignores
// vote requests: a MsgVote of a higher term leaves its term alone. The
// member is cut off from the others, so only the test's message reaches
// it; the election timeout is long, so the hold outlasts the checks.
func TestRestartedMemberHoldsVotes(t *testing.T) {
	testutil.CheckLeaks(t)
	c := newCluster(t, 31, 3, func(cfg *Config) {
		cfg.LeaseReads = true
		cfg.ElectionTicks = 100 // a 1 s hold at 10 ms ticks
	})
	lead := c.leader()
	c.propose(lead, "k=1")
	var victim uint64
	for id := range c.groups {
		if id != lead {
			victim = id
			break
		}
	}
	c.converge(1, victim)
	c.net.Isolate(victim, c.others(victim)...)
	c.stop(victim)
	g := c.start(victim, false)
	term := status(t, g).Term
	vote := &raftpb.Message{Type: raftpb.MsgVote.Enum(), From: proto.Uint64(lead), To: proto.Uint64(victim),
		Term: proto.Uint64(term + 5), LogTerm: proto.Uint64(term + 5), Index: proto.Uint64(1 << 40)}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := g.Step(ctx, vote); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		time.Sleep(5 * time.Millisecond)
		if got := status(t, g).Term; got != term {
			t.Fatalf("restarted member %d took the vote request's term %d (was %d) within its hold", victim, got, term)
		}
	}
}
