package raftgroup

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/raftlog"
	"github.com/weftfs/weft/internal/testutil"
	"github.com/weftfs/weft/internal/vfs"
)

// TestRaftlogCrashRestart runs the group on the journal-backed log: the
// leader's machine loses power (only what Save made durable survives, and
// a random part of the rest), comes back from its log while the others
// moved on past a snapshot, and catches up.
func TestRaftlogCrashRestart(t *testing.T) {
	testutil.CheckLeaks(t)
	const seed = 12
	mn := NewMemNetwork(seed)
	peers := []Peer{{1, "m1"}, {2, "m2"}, {3, "m3"}}
	fss := make([]*vfs.Mem, 3)
	logs := make([]*raftlog.Storage, 3)
	sms := make([]*testSM, 3)
	groups := make([]*Group, 3)
	open := func(i int) {
		var err error
		logs[i], err = raftlog.Open(raftlog.Options{FS: fss[i], Dir: "/raft", Logger: testLogger(), KeepEntries: -1})
		if err != nil {
			t.Fatalf("member %d: open log (seed %d): %v", i+1, seed, err)
		}
	}
	start := func(i int) {
		sms[i] = newTestSM()
		g, err := Start(Config{
			ID: uint64(i + 1), Peers: peers, Log: logs[i], SM: sms[i], Transport: mn.Transport(),
			TickInterval: 10 * time.Millisecond, SnapshotEvery: 5, Logger: testLogger().With("member", i+1),
		})
		if err != nil {
			t.Fatalf("member %d: start (seed %d): %v", i+1, seed, err)
		}
		groups[i] = g
	}
	for i := range 3 {
		fss[i] = vfs.NewMem()
		open(i)
		start(i)
	}
	defer func() {
		for i := range 3 {
			groups[i].Stop()
			logs[i].Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	propose := func(i int, cmd string) {
		t.Helper()
		for {
			_, err := groups[i].Propose(ctx, []byte(cmd))
			if err == nil {
				return
			}
			if !Retryable(err) || ctx.Err() != nil {
				t.Fatalf("propose %q on %d (seed %d): %v", cmd, i+1, seed, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	converge := func(want int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d commands everywhere (seed %d)", want, seed), func() bool {
			for _, sm := range sms {
				if len(sm.History()) != want {
					return false
				}
			}
			return true
		})
		for i := 1; i < 3; i++ {
			if a, b := sms[i].History(), sms[0].History(); fmt.Sprint(a) != fmt.Sprint(b) {
				t.Fatalf("member %d applied %v, member 1 %v (seed %d)", i+1, a, b, seed)
			}
		}
	}
	waitFor(t, "a leader", func() bool { return groups[0].Leader() != 0 })
	for i := range 10 {
		propose(i%3, fmt.Sprintf("a%d=1", i))
	}
	converge(10)

	lead := int(groups[0].Leader()) - 1
	groups[lead].Stop()
	crashed := fss[lead].Crash(seed)
	logs[lead].Close()
	other := (lead + 1) % 3
	for i := range 20 {
		propose(other, fmt.Sprintf("b%d=1", i))
	}
	fss[lead] = crashed
	open(lead)
	start(lead)
	converge(30)
	propose(lead, "after=1")
	converge(31)
}
