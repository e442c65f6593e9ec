package raftgroup

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// testSM is a replicated key-value map that also keeps the history of
// every command it applied, so tests can compare the order members
// applied them in. Apply returns the command's position in the history.
// Commands are "key=value" strings, each proposed once (but for retries).
type testSM struct {
	mu      sync.Mutex
	history []string
	kv      map[string]string
}

func newTestSM() *testSM { return &testSM{kv: make(map[string]string)} }

func (s *testSM) Apply(index uint64, data []byte) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := string(data)
	// Commands are unique, so a repeat is a client's retry of a proposal
	// whose outcome it could not know (ErrLost): deduplicate it,
	// as the cluster map does by request id.
	if i := slices.Index(s.history, cmd); i >= 0 {
		return i + 1
	}
	s.history = append(s.history, cmd)
	if k, v, ok := strings.Cut(cmd, "="); ok {
		s.kv[k] = v
	}
	return len(s.history)
}

func (s *testSM) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return json.Marshal(s.history)
}

func (s *testSM) Restore(data []byte) error {
	var h []string
	if err := json.Unmarshal(data, &h); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.history = h
	s.kv = make(map[string]string)
	for _, cmd := range h {
		if k, v, ok := strings.Cut(cmd, "="); ok {
			s.kv[k] = v
		}
	}
	return nil
}

func (s *testSM) History() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.history)
}

func (s *testSM) Get(k string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kv[k]
}

// waitTimeout bounds every wait of the tests; only a hang reaches it.
const waitTimeout = 20 * time.Second

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("RAFTGROUP_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// cluster runs members of one group on a MemNetwork.
type cluster struct {
	t      testing.TB
	net    *MemNetwork
	peers  []Peer
	logs   map[uint64]*MemLog
	sms    map[uint64]*testSM
	groups map[uint64]*Group
	mod    func(*Config)
}

func newCluster(t testing.TB, seed uint64, n int, mod func(*Config)) *cluster {
	c := &cluster{
		t: t, net: NewMemNetwork(seed), mod: mod,
		logs: make(map[uint64]*MemLog), sms: make(map[uint64]*testSM), groups: make(map[uint64]*Group),
	}
	for id := uint64(1); id <= uint64(n); id++ {
		c.peers = append(c.peers, Peer{ID: id, Addr: fmt.Sprintf("mem-%d", id)})
	}
	t.Cleanup(c.stopAll)
	for _, p := range c.peers {
		c.start(p.ID, false)
	}
	return c
}

func (c *cluster) config(id uint64, join bool) Config {
	if c.logs[id] == nil {
		c.logs[id] = NewMemLog()
	}
	// A restarted member rebuilds its state machine from its log.
	c.sms[id] = newTestSM()
	cfg := Config{
		ID: id, Peers: c.peers, Join: join, Log: c.logs[id], SM: c.sms[id],
		Transport:    c.net.Transport(),
		TickInterval: 10 * time.Millisecond, ElectionTicks: 10, HeartbeatTicks: 1,
		Logger: testLogger().With("member", id),
	}
	if c.mod != nil {
		c.mod(&cfg)
	}
	return cfg
}

func (c *cluster) start(id uint64, join bool) *Group {
	c.t.Helper()
	g, err := Start(c.config(id, join))
	if err != nil {
		c.t.Fatalf("start member %d: %v", id, err)
	}
	c.groups[id] = g
	return g
}

// addLearner adds member id as a learner through member via and starts
// it with an empty log (Join).
func (c *cluster) addLearner(via, id uint64) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	addr := fmt.Sprintf("mem-%d", id)
	if err := c.groups[via].AddLearner(ctx, id, addr); err != nil {
		c.t.Fatalf("add learner %d through %d: %v", id, via, err)
	}
	c.peers = append(c.peers, Peer{ID: id, Addr: addr})
	c.start(id, true)
}

func (c *cluster) stop(id uint64) {
	c.groups[id].Stop()
	delete(c.groups, id)
}

func (c *cluster) stopAll() {
	for id := range c.groups {
		c.stop(id)
	}
}

// leader waits until the given members (default: all running) agree on a
// leader that is one of them, and returns it.
func (c *cluster) leader(ids ...uint64) uint64 {
	c.t.Helper()
	if len(ids) == 0 {
		for id := range c.groups {
			ids = append(ids, id)
		}
	}
	var lead uint64
	waitFor(c.t, fmt.Sprintf("a leader among %v (seed %d)", ids, c.net.Seed()), func() bool {
		lead = c.groups[ids[0]].Leader()
		if !slices.Contains(ids, lead) {
			return false
		}
		for _, id := range ids {
			if c.groups[id].Leader() != lead {
				return false
			}
		}
		return true
	})
	return lead
}

// propose proposes cmd on member id, retrying the errors that invite a
// retry (testSM deduplicates retries that ErrLost makes unsafe).
func (c *cluster) propose(id uint64, cmd string) any {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for {
		res, err := c.groups[id].Propose(ctx, []byte(cmd))
		if err == nil {
			return res
		}
		if !Retryable(err) || ctx.Err() != nil {
			c.t.Fatalf("propose %q on %d (seed %d): %v", cmd, id, c.net.Seed(), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// converge waits until every given member applied want commands, then
// checks they applied the same commands in the same order.
func (c *cluster) converge(want int, ids ...uint64) []string {
	c.t.Helper()
	if len(ids) == 0 {
		for id := range c.groups {
			ids = append(ids, id)
		}
	}
	waitFor(c.t, fmt.Sprintf("%d commands applied on %v (seed %d)", want, ids, c.net.Seed()), func() bool {
		for _, id := range ids {
			if h := c.sms[id].History(); len(h) < want || len(h) != len(c.sms[ids[0]].History()) {
				return false
			}
		}
		return true
	})
	ref := c.sms[ids[0]].History()
	for _, id := range ids[1:] {
		if h := c.sms[id].History(); !slices.Equal(h, ref) {
			c.t.Fatalf("member %d applied %v, member %d applied %v (seed %d)", id, h, ids[0], ref, c.net.Seed())
		}
	}
	return ref
}
