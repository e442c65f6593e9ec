package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/manager"
	"github.com/weftfs/weft/net"
	"github.com/weftfs/weft/node"
)

// Access names a cluster (any cluster, not only a local one) and the key
// to reach it with.
type Access struct {
	Managers  []string // addresses of the manager group's members
	ClusterID string
	KeyID     string
	Secret    []byte
}

// Access returns how to reach this cluster with AdminKey.
func (c *Cluster) Access() Access {
	return Access{Managers: c.Managers(), ClusterID: c.state.ClusterID, KeyID: AdminKey, Secret: c.admin}
}

// Pool returns a connection pool for a; the caller closes it.
func (a Access) Pool() (*net.Pool, error) {
	return net.NewPool(net.PoolConfig{
		Client: net.ClientConfig{ClusterID: a.ClusterID, KeyID: a.KeyID, Secret: a.Secret},
		// A tool polls nodes that may be down: redial soon after they
		// come back.
		BackoffMax: 500 * time.Millisecond,
	})
}

// backfillLinesMax bounds the backfills Print lists one by one.
const backfillLinesMax = 16

// statusCallTimeout bounds asking one node for its status.
const statusCallTimeout = 2 * time.Second

// Report is a cluster's state as `weft status` shows it: the managers'
// map and each node's own status.
type Report struct {
	Map   *clustermap.Map
	Nodes []NodeReport // in the map's order
	// Refusing are the nodes (of the map, or at a manager address the
	// map does not list) that recorded another map's FSID and so refuse
	// this one: its managers started it afresh, or serve another cluster.
	Refusing []ManagerReport
}

// NodeReport is one node of a Report.
type NodeReport struct {
	Node   clustermap.Node
	Status *node.Status // nil when Err is set
	Err    error        // why the node's status could not be read
}

// Inspect reads the current map from the managers (a linearizable read)
// and asks every node in it that is not Out for its status, in parallel.
// A node that does not answer gets Err set; only a failure to read the
// map fails Inspect.
func Inspect(ctx context.Context, pool *net.Pool, managers []string) (*Report, error) {
	m, err := manager.NewClient(managers, pool).Map(ctx, 0)
	if err != nil {
		return nil, err
	}
	r := &Report{Map: m, Nodes: make([]NodeReport, len(m.Nodes))}
	var wg sync.WaitGroup
	for i := range m.Nodes {
		r.Nodes[i].Node = m.Nodes[i]
		if m.Nodes[i].State == clustermap.Out {
			continue
		}
		wg.Add(1)
		go func(nr *NodeReport) {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, statusCallTimeout)
			defer cancel()
			conn, err := pool.Get(sctx, nr.Node.Addr)
			if err == nil {
				nr.Status, err = node.FetchStatus(sctx, conn)
			}
			nr.Err = err
		}(&r.Nodes[i])
	}
	wg.Wait()
	inMap := map[string]bool{}
	for _, n := range r.Nodes {
		inMap[n.Node.Addr] = true
		if refuses(m, n.Status) {
			r.Refusing = append(r.Refusing, ManagerReport{Addr: n.Node.Addr, Status: n.Status})
		}
	}
	var others []string
	for _, a := range managers {
		if !inMap[a] {
			others = append(others, a)
		}
	}
	for _, mr := range InspectManagers(ctx, pool, others) {
		if refuses(m, mr.Status) {
			r.Refusing = append(r.Refusing, mr)
		}
	}
	return r, nil
}

// refuses reports whether the node of st recorded another FSID than m's.
func refuses(m *clustermap.Map, st *node.Status) bool {
	return st != nil && st.FSID != "" && st.FSID != m.FSID.String()
}

// ManagerReport is what the node at one manager address says of its
// manager member, for when the map cannot be read (no manager leader).
type ManagerReport struct {
	Addr   string
	Status *node.Status // nil when Err is set
	Err    error
}

// InspectManagers asks the node at each manager address for its status,
// in parallel: what `weft status` shows when the managers cannot serve
// the map, so that a member that waits (its raft log lost, peers silent)
// says why.
func InspectManagers(ctx context.Context, pool *net.Pool, managers []string) []ManagerReport {
	rs := make([]ManagerReport, len(managers))
	var wg sync.WaitGroup
	for i, addr := range managers {
		rs[i].Addr = addr
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, statusCallTimeout)
			defer cancel()
			conn, err := pool.Get(sctx, addr)
			if err == nil {
				rs[i].Status, err = node.FetchStatus(sctx, conn)
			}
			rs[i].Err = err
		})
	}
	wg.Wait()
	return rs
}

// PrintManagers writes rs for people: each manager member's leader,
// configuration and, when it waits or repairs, why.
func PrintManagers(w io.Writer, rs []ManagerReport) {
	fmt.Fprintln(w, "MANAGERS (as their nodes report them)")
	for _, r := range rs {
		switch {
		case r.Err != nil:
			fmt.Fprintf(w, "  %s: no answer: %v\n", r.Addr, r.Err)
		case r.Status.ManagerID == 0:
			fmt.Fprintf(w, "  %s: node %d runs no manager member\n", r.Addr, r.Status.Node)
		default:
			s := r.Status
			leader := "none known"
			if s.ManagerLeader != 0 {
				leader = fmt.Sprint(s.ManagerLeader)
			}
			conf := "not started"
			if len(s.ManagerVoters) > 0 {
				conf = fmt.Sprintf("voters %v", s.ManagerVoters)
				if len(s.ManagerLearners) > 0 {
					conf += fmt.Sprintf(", learners %v", s.ManagerLearners)
				}
			}
			fmt.Fprintf(w, "  member %d at %s: leader %s, %s\n", s.ManagerID, r.Addr, leader, conf)
			if s.ManagerState != "" {
				fmt.Fprintf(w, "    %s\n", s.ManagerState)
			}
		}
	}
}

// PGCounts returns how many PGs of container ct (0: all) are in each state.
func (r *Report) PGCounts(ct clustermap.ContainerID) map[clustermap.PGState]int {
	n := map[clustermap.PGState]int{}
	for i := range r.Map.PGs {
		pg := &r.Map.PGs[i]
		if ct == 0 || pg.Container == ct {
			n[r.Map.PGState(pg)]++
		}
	}
	return n
}

// Backfill is the progress of one backfilling replica.
type Backfill struct {
	PG          clustermap.PGID
	Node        clustermap.NodeID // the backfilling replica
	Primary     clustermap.NodeID
	BytesDone   int64 // as the primary reports its sync; -1: unknown
	BytesTotal  int64
	Installed   int64   // bytes the replica installed (what it was missing)
	InstallRate float64 // bytes/s
}

// Backfills lists the map's backfilling replicas with the progress the
// nodes report, sorted by PG and node.
func (r *Report) Backfills() []Backfill {
	status := map[clustermap.NodeID]*node.Status{}
	for _, n := range r.Nodes {
		if n.Status != nil {
			status[n.Node.ID] = n.Status
		}
	}
	var out []Backfill
	for i := range r.Map.PGs {
		pg := &r.Map.PGs[i]
		for _, b := range pg.Backfilling {
			bf := Backfill{PG: pg.ID, Node: b, Primary: pg.Primary(), BytesDone: -1}
			if s := status[bf.Primary]; s != nil {
				for _, p := range s.PGs {
					if p.PG != uint32(pg.ID) {
						continue
					}
					for _, y := range p.Syncs {
						if y.Replica == uint64(b) {
							bf.BytesDone, bf.BytesTotal = y.BytesDone, y.BytesTotal
						}
					}
				}
			}
			if s := status[b]; s != nil {
				for _, p := range s.PGs {
					if p.PG == uint32(pg.ID) {
						bf.Installed, bf.InstallRate = p.InstalledBytes, p.InstallRate
					}
				}
			}
			out = append(out, bf)
		}
	}
	return out
}

// Print writes r for people: the map epoch, the nodes, the containers
// with their PGs by state, and each backfill's progress.
func (r *Report) Print(w io.Writer) {
	m := r.Map
	fmt.Fprintf(w, "cluster map epoch %d: %d nodes, %d containers, %d PGs\n", m.Epoch, len(m.Nodes), len(m.Containers), len(m.PGs))
	if !m.FSID.IsZero() {
		fmt.Fprintf(w, "map FSID %v\n", m.FSID)
	}
	if members, leaders := r.managers(); len(members) > 0 {
		fmt.Fprintf(w, "managers: members %s; leader as the members see it: %s\n", strings.Join(members, ", "), strings.Join(leaders, ", "))
		for _, n := range r.Nodes {
			if n.Status != nil && n.Status.ManagerID != 0 && n.Status.ManagerState != "" {
				fmt.Fprintf(w, "  manager %d: %s\n", n.Status.ManagerID, n.Status.ManagerState)
			}
		}
	}
	fmt.Fprintf(w, "\nNODES\n  %-20s %-22s %-9s %-24s %-8s %-22s %s\n", "ID", "ADDR", "STATE", "LABELS", "MAP", "SPACE (used/device)", "PGS (primary/replica/backfilling)")
	for _, n := range r.Nodes {
		space, epoch, pgs := "-", "-", "-"
		if n.Status != nil {
			s := n.Status
			space = fmt.Sprintf("%s/%s", fmtBytes(float64(s.Space.Used)), fmtBytes(float64(s.Space.Device)))
			epoch = fmt.Sprint(s.Epoch)
			roles := map[string]int{}
			for _, p := range s.PGs {
				roles[p.Role]++
			}
			pgs = fmt.Sprintf("%d/%d/%d", roles["primary"], roles["replica"], roles["backfilling"])
		} else if n.Err != nil {
			space = "unreachable"
		}
		fmt.Fprintf(w, "  %-20d %-22s %-9s %-24s %-8s %-22s %s\n", n.Node.ID, n.Node.Addr, n.Node.State, fmtLabels(n.Node.Labels), epoch, space, pgs)
	}
	fmt.Fprintf(w, "\nCONTAINERS\n")
	if len(m.Containers) == 0 {
		fmt.Fprintf(w, "  (none)\n")
	}
	for _, ct := range m.Containers {
		counts := r.PGCounts(ct.ID)
		fmt.Fprintf(w, "  %d %q: replicas %d, %d PGs: %d active, %d degraded, %d backfilling; %s\n", ct.ID, ct.Name, ct.Policy.Replicas,
			ct.Policy.PGCount, counts[clustermap.Active], counts[clustermap.Degraded], counts[clustermap.Backfilling], r.metaSummary(ct.ID))
	}
	if bfs := r.Backfills(); len(bfs) > 0 {
		var done, total, installed int64
		var rate float64
		for _, b := range bfs {
			done += max(b.BytesDone, 0)
			total += b.BytesTotal
			installed += b.Installed
			rate += b.InstallRate
		}
		fmt.Fprintf(w, "\nBACKFILLS (%d replicas): %s of %s sent by the primaries, %s installed, %s/s\n", len(bfs),
			fmtBytes(float64(done)), fmtBytes(float64(total)), fmtBytes(float64(installed)), fmtBytes(rate))
		for i, b := range bfs {
			if i == backfillLinesMax {
				fmt.Fprintf(w, "  ... and %d more\n", len(bfs)-i)
				break
			}
			progress := "not started"
			switch {
			case b.BytesDone >= 0 && b.BytesTotal > 0:
				progress = fmt.Sprintf("%.0f%% (%s of %s)", 100*float64(b.BytesDone)/float64(b.BytesTotal), fmtBytes(float64(b.BytesDone)), fmtBytes(float64(b.BytesTotal)))
			case b.BytesDone >= 0:
				progress = "nothing to send"
			}
			fmt.Fprintf(w, "  pg %d: node %d from primary %d: %s, installed %s at %s/s\n", b.PG, b.Node, b.Primary, progress,
				fmtBytes(float64(b.Installed)), fmtBytes(b.InstallRate))
		}
	}
	var bad []string
	for _, n := range r.Nodes {
		if n.Err != nil {
			bad = append(bad, fmt.Sprintf("  node %d (%s): %v", n.Node.ID, n.Node.Addr, n.Err))
		}
	}
	if len(bad) > 0 {
		fmt.Fprintf(w, "\nUNREACHABLE\n%s\n", strings.Join(bad, "\n"))
	}
	if len(r.Refusing) > 0 {
		fmt.Fprintf(w, "\nREFUSING THIS MAP (they joined a map with another FSID, and neither join nor serve this one)\n")
		for _, n := range r.Refusing {
			copyNote := "no copy of it"
			if n.Status.MapCopyEpoch > 0 {
				copyNote = fmt.Sprintf("its copy of that map at epoch %d", n.Status.MapCopyEpoch)
			}
			fmt.Fprintf(w, "  node %d (%s): joined FSID %s; %s\n", n.Status.Node, n.Addr, n.Status.FSID, copyNote)
		}
		fmt.Fprintf(w, "  If every manager lost its raft log and started this map afresh, start the managers again from the nodes' copies:\n"+
			"  weft node recover-manager --from-map (see weft node recover-manager --help). If the managers are another cluster's,\n"+
			"  point the nodes at their own.\n")
	}
}

// managers lists the manager members among the nodes that answered
// ("1 at ADDR") and the distinct leaders they report ("none" for 0).
// metaSummary says who runs container c's metadata group, as its
// members report it: "metadata: leader L, members A B C, commit N", and,
// from the leader, its learners and the membership repair it works on
// (toward the map's record: ", learners D, repair: add learner D: ...").
func (r *Report) metaSummary(c clustermap.ContainerID) string {
	var members []string
	leaders := map[uint64]bool{}
	var commit uint64
	var repair string
	for _, n := range r.Nodes {
		if n.Status == nil {
			continue
		}
		for _, m := range n.Status.Meta {
			if m.Container != uint64(c) {
				continue
			}
			members = append(members, fmt.Sprint(n.Status.Node))
			if m.Leader != 0 {
				leaders[m.Leader] = true
			}
			commit = max(commit, m.Commit)
			if m.Leader == n.Status.Node {
				if len(m.Learners) > 0 {
					repair += fmt.Sprintf(", learners %v", m.Learners)
				}
				if m.Repair != "" {
					repair += ", repair: " + m.Repair
				}
			}
		}
	}
	// hint explains a group without a leader whose members do not run
	// on a majority of the map's record: members whose raft logs were
	// lost refuse to start until a leader adds them back (and a formed
	// group never starts afresh).
	hint := func() string {
		ct, ok := r.Map.Container(c)
		if !ok || len(ct.MetaMembers) == 0 || len(leaders) > 0 || len(members) > len(ct.MetaMembers)/2 {
			return ""
		}
		return fmt.Sprintf(" (%d of its %d recorded members run one: the others are down, or refuse to start, as a member whose raft log was lost does until a leader adds it back, which the nodes' logs say; a group that lost a majority of its logs for good needs weft node recover-meta)", len(members), len(ct.MetaMembers))
	}
	if len(members) == 0 {
		return "metadata: no member reports" + hint()
	}
	leader := "none known"
	if len(leaders) > 0 {
		var ls []string
		for l := range leaders {
			ls = append(ls, fmt.Sprint(l))
		}
		slices.Sort(ls)
		leader = strings.Join(ls, " or ")
	}
	return fmt.Sprintf("metadata: leader %s, members %s, commit %d%s%s", leader, strings.Join(members, " "), commit, repair, hint())
}

func (r *Report) managers() (members, leaders []string) {
	seen := map[uint64]bool{}
	for _, n := range r.Nodes {
		if n.Status == nil || n.Status.ManagerID == 0 {
			continue
		}
		members = append(members, fmt.Sprintf("%d at %s", n.Status.ManagerID, n.Node.Addr))
		if l := n.Status.ManagerLeader; !seen[l] {
			seen[l] = true
			if l == 0 {
				leaders = append(leaders, "none")
			} else {
				leaders = append(leaders, fmt.Sprint(l))
			}
		}
	}
	return members, leaders
}

func fmtLabels(l map[string]string) string {
	if len(l) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

func fmtBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", n, units[i])
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}

// servingPoll is how often WaitServing asks the nodes whether their data
// servers have the newest map.
const servingPoll = 100 * time.Millisecond

// WaitServing waits until the cluster serves: the map shows every node of
// the state Up, the state's container exists (WaitServing creates it with
// the state's replication; one that exists already is fine), all its PGs
// are Active, and every node's data server has that map. It prints a line
// on progress whenever what it waits for changes. It fails when ctx ends,
// saying what it was waiting for.
func (c *Cluster) WaitServing(ctx context.Context, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	pool, err := c.Access().Pool()
	if err != nil {
		return err
	}
	defer pool.Close()
	// A node process that exits (a device it cannot open, a port in
	// use) ends the wait at once with its last log line, instead of
	// leaving the caller to wait for the deadline.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go c.watchExits(ctx, cancel)
	mc := manager.NewClient(c.Managers(), pool)
	say := sayOnChange(progress)
	waiting := "a map from the managers"
	fail := func(err error) error {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, err) && ctx.Err() != nil {
			err = cause
		}
		return fmt.Errorf("waiting for %s: %w", waiting, err)
	}

	m, err := mc.Map(ctx, 0)
	if err != nil {
		return fail(err)
	}
	// Every node Up.
	for {
		var missing []string
		for _, n := range c.state.Nodes {
			if i := slices.IndexFunc(m.Nodes, func(x clustermap.Node) bool { return x.Addr == n.Addr }); i < 0 || m.Nodes[i].State != clustermap.Up {
				missing = append(missing, fmt.Sprintf("node %d", n.Index))
			}
		}
		if len(missing) == 0 {
			say(fmt.Sprintf("map epoch %d: all %d nodes up", m.Epoch, len(c.state.Nodes)))
			break
		}
		waiting = "nodes to join: " + strings.Join(missing, ", ")
		msg := fmt.Sprintf("map epoch %d: %d of %d nodes up; waiting for %s", m.Epoch, len(c.state.Nodes)-len(missing), len(c.state.Nodes), strings.Join(missing, ", "))
		// A node that will not join says why in its log (a map it
		// refuses, an address taken): show its latest error.
		for _, n := range c.state.Nodes {
			if slices.Contains(missing, fmt.Sprintf("node %d", n.Index)) {
				if l := lastErrorLine(c.LogFile(n.Index)); l != "" {
					msg += fmt.Sprintf("\n    node %d's log: %s", n.Index, l)
				}
			}
		}
		say(msg)
		pctx, cancel := context.WithTimeout(ctx, joinCheckEvery)
		next, err := mc.Map(pctx, m.Epoch)
		cancel()
		switch {
		case ctx.Err() != nil:
			return fail(ctx.Err())
		case err == nil:
			m = next
		case !errors.Is(err, context.DeadlineExceeded):
			return fail(err)
		}
	}
	// The container.
	waiting = fmt.Sprintf("container %q to be created", c.state.Container)
	ct, ok := m.ContainerByName(c.state.Container)
	if !ok {
		got, err := mc.Apply(ctx, clustermap.CreateContainer{Name: c.state.Container, Policy: clustermap.Policy{Replicas: c.state.Replicas}})
		switch {
		case err == nil:
			m = got
			say(fmt.Sprintf("map epoch %d: created container %q (replication %d)", m.Epoch, c.state.Container, c.state.Replicas))
		case errors.Is(err, clustermap.ErrExists) || errors.Is(err, clustermap.ErrNoChange):
			if m, err = mc.Map(ctx, 0); err != nil {
				return fail(err)
			}
		default:
			return fail(err)
		}
		if ct, ok = m.ContainerByName(c.state.Container); !ok {
			return fail(fmt.Errorf("container %q is not in map epoch %d after its creation", c.state.Container, m.Epoch))
		}
	}
	// Its PGs Active, and every data server on that map.
	for {
		counts := (&Report{Map: m}).PGCounts(ct.ID)
		total := int(ct.Policy.PGCount)
		if counts[clustermap.Active] == total {
			break
		}
		waiting = fmt.Sprintf("the PGs of %q to be active", ct.Name)
		say(fmt.Sprintf("map epoch %d: container %q: %d of %d PGs active (%d degraded, %d backfilling)", m.Epoch, ct.Name,
			counts[clustermap.Active], total, counts[clustermap.Degraded], counts[clustermap.Backfilling]))
		if m, err = mc.Map(ctx, m.Epoch); err != nil {
			return fail(err)
		}
	}
	say(fmt.Sprintf("map epoch %d: container %q: all %d PGs active", m.Epoch, ct.Name, ct.Policy.PGCount))
	waiting = fmt.Sprintf("every node's data server to have map epoch %d", m.Epoch)
	for {
		behind := c.behind(ctx, pool, m.Epoch)
		if len(behind) == 0 {
			break
		}
		say(fmt.Sprintf("map epoch %d: waiting for %s to catch up with it", m.Epoch, strings.Join(behind, ", ")))
		t := time.NewTimer(servingPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fail(ctx.Err())
		case <-t.C:
		}
	}
	say(fmt.Sprintf("serving: map epoch %d on every node", m.Epoch))
	return nil
}

// watchExits cancels ctx when a started node process has exited, with an
// error naming the node and its log's last line.
func (c *Cluster) watchExits(ctx context.Context, cancel context.CancelCauseFunc) {
	t := time.NewTicker(servingPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, n := range c.state.Nodes {
			c.mu.Lock()
			p := c.procs[n.Index]
			c.mu.Unlock()
			if p == nil {
				continue
			}
			select {
			case <-p.done:
				cancel(fmt.Errorf("node %d exited (%v): %s (log %s)", n.Index, p.err, lastLogLine(c.LogFile(n.Index)), c.LogFile(n.Index)))
				return
			default:
			}
		}
	}
}

// lastLogLine returns the last line of a node's log that is not one of
// localcluster's own markers.
// joinCheckEvery is how often WaitServing looks at the logs of nodes that
// have not joined while no map change comes.
const joinCheckEvery = 5 * time.Second

// lastErrorLine returns the last line logged at level ERROR since the
// node's last start in the log at path, or "".
func lastErrorLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "--- localcluster:") {
			return ""
		}
		if strings.Contains(l, " ERROR ") || strings.Contains(l, "level=ERROR") {
			return l
		}
	}
	return ""
}

func lastLogLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" && !strings.HasPrefix(l, "--- localcluster:") {
			return l
		}
	}
	return "(empty log)"
}

// behind names the nodes whose data server has no map of epoch >= epoch,
// or that did not answer.
func (c *Cluster) behind(ctx context.Context, pool *net.Pool, epoch uint64) []string {
	var out []string
	for _, n := range c.state.Nodes {
		sctx, cancel := context.WithTimeout(ctx, statusCallTimeout)
		conn, err := pool.Get(sctx, n.Addr)
		var s *node.Status
		if err == nil {
			s, err = node.FetchStatus(sctx, conn)
		}
		cancel()
		if err != nil || s.Epoch < epoch {
			out = append(out, fmt.Sprintf("node %d", n.Index))
		}
	}
	return out
}

// sayOnChange returns a printer that drops a line equal to the last one.
func sayOnChange(w io.Writer) func(string) {
	last := ""
	return func(s string) {
		if s != last {
			fmt.Fprintf(w, "  %s\n", s)
			last = s
		}
	}
}
