package clustermap

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

var (
	propSeed = flag.Uint64("clustermap.seed", 0, "seed of TestRandomCommands (0: derive from the run number)")
	propRuns = flag.Int("clustermap.runs", 0, "runs of TestRandomCommands (0: 60, or 1500 without -short)")
)

// TestRandomCommands applies random command sequences to random clusters
// and checks every invariant (checkAll) after every step, plus what the
// individual commands promise: a failed command leaves the map alone, a
// node going Down or Out changes only the PGs it was in, CaughtUp changes
// only its PG, commands survive their codec, and applying the decoded
// command gives the same bytes (determinism).
func TestRandomCommands(t *testing.T) {
	runs := *propRuns
	if runs == 0 {
		runs = 60
		if !testing.Short() {
			runs = 1500
		}
	}
	var st stats
	for run := 0; run < runs; run++ {
		seed := *propSeed
		if seed == 0 {
			seed = uint64(run) + 1
		}
		if err := randomRun(seed, 80, &st); err != nil {
			t.Fatalf("seed %d (rerun with -clustermap.seed=%d -clustermap.runs=1): %v", seed, seed, err)
		}
		if *propSeed != 0 {
			return
		}
	}
	// The generator must exercise every command, successful and not, or
	// the invariants above were checked on too little.
	t.Logf("applied %v, refused %v", st.ok, st.refused)
	for k := KindAddNode; k <= KindSetFSID; k++ {
		if st.ok[k] < runs/10 || st.refused[k] == 0 {
			t.Errorf("%v: %d applied, %d refused over %d runs: generator too weak", k, st.ok[k], st.refused[k], runs)
		}
	}
}

type stats struct {
	ok, refused [KindSetFSID + 1]int
}

type gen struct {
	r *rand.Rand
}

func (g gen) labels() map[string]string {
	l := map[string]string{
		"zone": []string{"a", "b", "c", "d"}[g.r.IntN(4)],
		"rack": fmt.Sprintf("r%d", g.r.IntN(6)),
	}
	if g.r.IntN(3) > 0 {
		l["media"] = []string{"nvme", "ssd"}[g.r.IntN(2)]
	}
	if g.r.IntN(8) == 0 {
		delete(l, "zone")
	}
	return l
}

func (g gen) policy() Policy {
	p := Policy{
		Replicas:      1 + g.r.IntN(ReplicasMax),
		FailureDomain: []string{"", "zone", "rack"}[g.r.IntN(3)],
		PGCount:       []uint32{0, 1, 2, 4, 8, 16}[g.r.IntN(6)],
	}
	if p.PGCount == 0 && g.r.IntN(2) == 0 {
		p.PGCount = 8 // keep the default (64) rare: it slows the checks
	}
	if g.r.IntN(3) == 0 {
		p.Selector = map[string]string{"media": "nvme"}
	}
	if g.r.IntN(30) == 0 {
		p.Replicas = 6 // invalid
	}
	return p
}

func (g gen) command(m *Map) Command {
	const nodeIDs = 12
	switch k := g.r.IntN(27); {
	case k == 26:
		// Zero (invalid), or one of two: the second is refused once the
		// first is set.
		return SetFSID{FSID: FSID{byte(g.r.IntN(3))}}
	case k == 25:
		return MarkMetaFormed{Container: ContainerID(1 + g.r.IntN(int(m.NextContainer)))}
	case k == 21 || k == 22:
		// Few IDs, so that IDs collide with live and revoked keys.
		id := fmt.Sprintf("k%016x", g.r.IntN(8))
		if g.r.IntN(20) == 0 {
			id = "kBAD"
		}
		return CreateKey{ID: id, Container: ContainerID(1 + g.r.IntN(int(m.NextContainer))), Access: Access(g.r.IntN(5))}
	case k >= 23:
		id := fmt.Sprintf("k%016x", g.r.IntN(8))
		if len(m.Keys) > 0 && g.r.IntN(2) == 0 {
			id = m.Keys[g.r.IntN(len(m.Keys))].ID
		}
		return RevokeKey{ID: id}
	case k == 20:
		return NodeRestarted{ID: NodeID(1 + g.r.IntN(nodeIDs))}
	case k < 4:
		id := NodeID(1 + g.r.IntN(nodeIDs))
		addr := fmt.Sprintf("n%d:7000", id)
		if g.r.IntN(20) == 0 {
			addr = fmt.Sprintf("n%d:7000", 1+g.r.IntN(nodeIDs))
		}
		if n, ok := m.Node(id); ok && g.r.IntN(3) == 0 {
			return AddNode{ID: id, Addr: n.Addr, Labels: n.Labels, Capacity: n.Capacity}
		}
		return AddNode{ID: id, Addr: addr, Labels: g.labels(), Capacity: uint64(1+g.r.IntN(4)) << 40}
	case k < 10:
		id := NodeID(1 + g.r.IntN(nodeIDs))
		st := NodeState(1 + g.r.IntN(4))
		if g.r.IntN(2) == 0 {
			st = Up
		}
		return SetNodeState{ID: id, State: st}
	case k < 12:
		return CreateContainer{Name: fmt.Sprintf("c%d", g.r.IntN(6)), Policy: g.policy()}
	case k < 13:
		return DeleteContainer{ID: ContainerID(1 + g.r.IntN(int(m.NextContainer)))}
	case k < 15:
		p := g.policy()
		if g.r.IntN(4) > 0 {
			p.PGCount = 0
		}
		return SetPolicy{Container: ContainerID(1 + g.r.IntN(int(m.NextContainer))), Policy: p}
	default:
		var cands []CaughtUp
		for i := range m.PGs {
			pg := &m.PGs[i]
			for _, n := range pg.Backfilling {
				cands = append(cands, CaughtUp{PG: pg.ID, Node: n, Epoch: pg.Epoch})
			}
		}
		if len(cands) == 0 || g.r.IntN(10) == 0 {
			return CaughtUp{PG: PGID(1 + g.r.IntN(int(m.NextPG))), Node: NodeID(1 + g.r.IntN(nodeIDs)), Epoch: g.r.Uint64N(m.Epoch + 1)}
		}
		c := cands[g.r.IntN(len(cands))]
		if g.r.IntN(10) == 0 && c.Epoch > 0 {
			c.Epoch--
		}
		return c
	}
}

func randomRun(seed uint64, steps int, st *stats) error {
	g := gen{r: rand.New(rand.NewPCG(seed, 0x5eed))}
	m := New()
	// Start from a random cluster so that most commands do something.
	for i := 0; i < 3+g.r.IntN(8); i++ {
		id := NodeID(1 + i)
		next, err := m.Apply(AddNode{ID: id, Addr: fmt.Sprintf("n%d:7000", id), Labels: g.labels(), Capacity: 1 << 40})
		if err != nil {
			return fmt.Errorf("initial node %d: %v", id, err)
		}
		m = next
	}
	for step := 0; step < steps; step++ {
		cmd := g.command(m)
		epoch := m.Epoch
		if err := step1(m, cmd, &m); err != nil {
			return fmt.Errorf("step %d %#v: %v", step, cmd, err)
		}
		if m.Epoch == epoch {
			st.refused[cmd.Kind()]++
		} else {
			st.ok[cmd.Kind()]++
		}
	}
	return nil
}

// step1 applies cmd to m, checks it, and stores the resulting map in out
// (m itself when the command failed).
func step1(m *Map, cmd Command, out **Map) error {
	before, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	enc, err := AppendCommand(nil, cmd)
	if err != nil {
		return fmt.Errorf("encode command: %v", err)
	}
	dec, err := DecodeCommand(enc)
	if err != nil {
		return fmt.Errorf("decode command: %v", err)
	}
	if enc2, _ := AppendCommand(nil, dec); !slices.Equal(enc, enc2) {
		return errors.New("command does not survive encode, decode, encode")
	}
	next, err := m.Apply(cmd)
	next2, err2 := m.Apply(dec)
	if after, _ := m.MarshalBinary(); !slices.Equal(before, after) {
		return errors.New("apply modified its receiver")
	}
	if (err == nil) != (err2 == nil) {
		return fmt.Errorf("command and its decoded copy disagree: %v vs %v", err, err2)
	}
	if err != nil {
		known := false
		for _, s := range []error{ErrNotFound, ErrExists, ErrInvalid, ErrNoChange, ErrStaleEpoch} {
			known = known || errors.Is(err, s)
		}
		if !known {
			return fmt.Errorf("error wraps no sentinel: %v", err)
		}
		if next != nil {
			return errors.New("failed apply returned a map")
		}
		return nil
	}
	b1, _ := next.MarshalBinary()
	b2, _ := next2.MarshalBinary()
	if !slices.Equal(b1, b2) {
		return errors.New("same map and command gave different maps")
	}
	if err := checkAll(m, next, cmd); err != nil {
		return err
	}
	changedPG := func(id PGID) bool {
		o, ok1 := m.PG(id)
		n, ok2 := next.PG(id)
		return ok1 != ok2 || ok1 && (o.Epoch != n.Epoch || !slices.Equal(o.Replicas, n.Replicas) || !slices.Equal(o.Backfilling, n.Backfilling))
	}
	switch c := cmd.(type) {
	case SetNodeState:
		if c.State == Down || c.State == Out {
			for i := range m.PGs {
				if id := m.PGs[i].ID; !m.PGs[i].HasReplica(c.ID) && changedPG(id) {
					return fmt.Errorf("node %d going %v changed pg %d, which it was not in", c.ID, c.State, id)
				}
			}
			for _, id := range next.PGsOfNode(c.ID) {
				// A Down node stays only as the primary of a PG whose
				// other replicas all lack data (the last copy).
				pg, _ := next.PG(id)
				if c.State == Out || pg.Primary() != c.ID || len(pg.Backfilling) != len(pg.Replicas)-1 {
					return fmt.Errorf("node %d is %v but still in pg %d (%v, backfilling %v)", c.ID, c.State, id, pg.Replicas, pg.Backfilling)
				}
			}
		}
		if c.State == Up {
			// A returning node displaces nobody: PGs that were full
			// of active replicas are untouched (but for a cancelled
			// drain, in the PGs the node is still in).
			for i := range m.PGs {
				pg := &m.PGs[i]
				if pg.HasReplica(c.ID) {
					continue
				}
				ct, _ := m.Container(pg.Container)
				if active, _ := m.activeReplicas(pg, &ct.Policy); active == ct.Policy.Replicas && changedPG(pg.ID) {
					return fmt.Errorf("node %d coming up changed full pg %d", c.ID, pg.ID)
				}
			}
		}
	case CaughtUp:
		for i := range m.PGs {
			if id := m.PGs[i].ID; id != c.PG && changedPG(id) {
				return fmt.Errorf("caught up on pg %d changed pg %d", c.PG, id)
			}
		}
		if pg, _ := next.PG(c.PG); pg.IsBackfilling(c.Node) {
			return fmt.Errorf("node %d still backfilling pg %d", c.Node, c.PG)
		}
	case DeleteContainer:
		if len(next.PGsOfContainer(c.ID)) != 0 {
			return fmt.Errorf("deleted container %d left pgs", c.ID)
		}
		if ks := next.KeysOfContainer(c.ID, false); len(ks) != 0 {
			return fmt.Errorf("deleted container %d left live keys %v", c.ID, ks)
		}
	case CreateKey, RevokeKey, MarkMetaFormed, SetFSID:
		// Key commands, the formed mark and the FSID move no data.
		for i := range m.PGs {
			if changedPG(m.PGs[i].ID) {
				return fmt.Errorf("%v changed pg %d", cmd.Kind(), m.PGs[i].ID)
			}
		}
	}
	// The FSID is set once, by SetFSID, and never changes.
	if next.FSID != m.FSID && (!m.FSID.IsZero() || cmd.Kind() != KindSetFSID) {
		return fmt.Errorf("%v changed the FSID %v to %v", cmd.Kind(), m.FSID, next.FSID)
	}
	// A formed mark is cleared only with the bootstrap set (every member
	// went Out), and only MarkMetaFormed sets one.
	for i := range m.Containers {
		old := &m.Containers[i]
		ct, ok := next.Container(old.ID)
		if !ok {
			continue
		}
		if old.MetaFormed && !ct.MetaFormed && slices.Equal(old.MetaBootstrap, ct.MetaBootstrap) {
			return fmt.Errorf("container %d: %v cleared the formed mark", old.ID, cmd.Kind())
		}
		if !old.MetaFormed && ct.MetaFormed && cmd.Kind() != KindMarkMetaFormed {
			return fmt.Errorf("container %d: %v set the formed mark", old.ID, cmd.Kind())
		}
	}
	// A key, once in the map, stays (revoked keys keep their ID taken),
	// and a revoked key never comes back.
	for _, k := range m.Keys {
		n, ok := next.Key(k.ID)
		if !ok || n.Created != k.Created || n.Container != k.Container || n.Access != k.Access || (!k.Live() && n.Revoked != k.Revoked) {
			return fmt.Errorf("key %+v became %+v (present %v)", k, n, ok)
		}
	}
	*out = next
	return nil
}
