package clustertest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	stdnet "net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/manager"
	"github.com/weftfs/weft/internal/localcluster"
	"github.com/weftfs/weft/net"
	"github.com/weftfs/weft/node"
)

var (
	weftBin string // the weft binary TestMain built
	skipWhy string // why the tests cannot run here, or ""
)

func TestMain(m *testing.M) {
	if ln, err := stdnet.Listen("tcp", "127.0.0.2:0"); err != nil {
		skipWhy = fmt.Sprintf("cannot bind 127.0.0.2 (%v): the local cluster needs the loopback addresses 127.0.0.1-127.0.0.N", err)
	} else {
		ln.Close()
	}
	dir, err := os.MkdirTemp("", "weft-clustertest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if skipWhy == "" {
		weftBin = filepath.Join(dir, "weft")
		args := append([]string{"build"}, buildTags...)
		args = append(args, "-o", weftBin, "github.com/weftfs/weft/tools/weft")
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "clustertest: go %s: %v\n%s", strings.Join(args, " "), err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Test cluster parameters: small devices and a short heartbeat timeout,
// so that a failure is noticed within a second or two.
const (
	deviceSize       = 256 << 20
	heartbeatTimeout = time.Second
	serveTimeout     = 90 * time.Second
	opTimeout        = 30 * time.Second
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// tcluster is a running local cluster and a client of its container.
type tcluster struct {
	t    *testing.T
	lc   *localcluster.Cluster
	pool *net.Pool
	mc   *manager.Client
	cl   *client.Client
	ct   *client.Container
}

// freePort finds a port that 127.0.0.1..127.0.0.n can all bind, together
// with the port after it (metrics). NB: another process may take it before
// the nodes start; the test then fails on the node's listen error, which
// its log shows.
func freePort(t *testing.T, n int) int {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	for range 100 {
		port := 20000 + rng.IntN(30000)
		ok := true
		var lns []stdnet.Listener
		for i := 1; i <= n && ok; i++ {
			for _, p := range []int{port, port + 1} {
				ln, err := stdnet.Listen("tcp", fmt.Sprintf("127.0.0.%d:%d", i, p))
				if err != nil {
					ok = false
					break
				}
				lns = append(lns, ln)
			}
		}
		for _, ln := range lns {
			ln.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no free port for the local cluster")
	return 0
}

// startCluster starts a cluster of n nodes with replication r, waits
// until it serves, and dials a client of its "default" container, or,
// when pgs > 0, of a container "test" of pgs PGs it creates. The cluster
// stops when the test ends; a failed test gets the tail of every node's
// log.
func startCluster(t *testing.T, n, r, pgs int) *tcluster {
	return startClusterManagers(t, n, 0, r, pgs)
}

// startClusterManagers is startCluster with manager members on the first
// managers nodes only (0: on every node).
func startClusterManagers(t *testing.T, n, managers, r, pgs int) *tcluster {
	return startClusterArgs(t, n, managers, r, pgs)
}

// startClusterArgs is startClusterManagers with extra `weft node` flags
// for every node.
func startClusterArgs(t *testing.T, n, managers, r, pgs int, extra ...string) *tcluster {
	return startClusterNodeArgs(t, n, managers, r, pgs, nil, extra...)
}

// startClusterNodeArgs is startClusterArgs with, when nodeArgs is set,
// flags of node i's own (localcluster.Config.NodeArgs).
func startClusterNodeArgs(t *testing.T, n, managers, r, pgs int, nodeArgs func(i int) []string, extra ...string) *tcluster {
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	dir := t.TempDir()
	lc, err := localcluster.Open(localcluster.Config{
		Dir: dir, Binary: weftBin, Nodes: n, Managers: managers, Port: freePort(t, n), DeviceSize: deviceSize, Replicas: r,
		ExtraArgs: append([]string{"--heartbeat-timeout", heartbeatTimeout.String()}, extra...), NodeArgs: nodeArgs,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &tcluster{t: t, lc: lc}
	t.Cleanup(func() {
		if c.cl != nil {
			c.cl.Close()
		}
		if c.pool != nil {
			c.pool.Close()
		}
		if err := lc.Stop(20 * time.Second); err != nil {
			t.Errorf("stopping the cluster: %v", err)
		}
		if t.Failed() {
			for _, nd := range lc.State().Nodes {
				b, _ := os.ReadFile(lc.LogFile(nd.Index))
				lines := strings.Split(string(b), "\n")
				t.Logf("--- node %d log (last 40 lines of %d):\n%s", nd.Index, len(lines), strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
	})
	if err := lc.Start(); err != nil {
		t.Fatal(err)
	}
	c.waitServing()
	acc := lc.Access()
	c.pool, err = net.NewPool(net.PoolConfig{
		Client:     net.ClientConfig{ClusterID: acc.ClusterID, KeyID: acc.KeyID, Secret: acc.Secret, Logger: quiet},
		BackoffMax: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.mc = manager.NewClient(acc.Managers, c.pool)
	ctx, cancel := context.WithTimeout(context.Background(), serveTimeout)
	defer cancel()
	name := lc.State().Container
	if pgs > 0 {
		name = "test"
		if _, err := c.mc.Apply(ctx, clustermap.CreateContainer{Name: name, Policy: clustermap.Policy{Replicas: r, PGCount: uint32(pgs)}}); err != nil {
			t.Fatalf("creating container %q: %v", name, err)
		}
		c.waitMap("the test container active", allActive)
	}
	if c.cl, err = client.Dial(ctx, client.Config{Maps: c.mc, Pool: c.pool, Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	if c.ct, err = c.cl.Container(name); err != nil {
		t.Fatal(err)
	}
	return c
}

// staleClient returns a chunk client on its own connection to local node
// i that sends pg's chunks with pg's id and epoch as they are now, and
// never refreshes them.
func (c *tcluster) staleClient(i int, pg *clustermap.PG) *fsproto.ChunkClient {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	acc := c.lc.Access()
	conn, err := net.Dial(ctx, c.lc.State().Nodes[i-1].Addr, net.ClientConfig{ClusterID: acc.ClusterID, KeyID: acc.KeyID, Secret: acc.Secret, Logger: quiet})
	if err != nil {
		c.t.Fatal(err)
	}
	id := uint32(pg.ID)
	return fsproto.NewChunkClient(conn, fsproto.ChunkClientConfig{Epoch: pg.Epoch, PG: func(fsproto.ChunkID) uint32 { return id }})
}

// logReport logs what `weft status` would print now.
func (c *tcluster) logReport(title string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := localcluster.Inspect(ctx, c.pool, c.lc.Managers())
	if err != nil {
		c.t.Logf("%s: inspect: %v", title, err)
		return
	}
	var b bytes.Buffer
	r.Print(&b)
	c.t.Logf("%s; weft status:\n%s", title, b.String())
}

func (c *tcluster) waitServing() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), serveTimeout)
	defer cancel()
	var progress bytes.Buffer
	if err := c.lc.WaitServing(ctx, &progress); err != nil {
		c.t.Fatalf("cluster not serving: %v\n%s", err, progress.String())
	}
}

// waitMap long-polls the managers until cond holds for the map, and
// returns that map; what says what is awaited, for the failure message.
func (c *tcluster) waitMap(what string, cond func(*clustermap.Map) bool) *clustermap.Map {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), serveTimeout)
	defer cancel()
	var after uint64
	for {
		m, err := c.mc.Map(ctx, after)
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		if cond(m) {
			return m
		}
		after = m.Epoch
	}
}

// nodeID returns the map id of local node i (matched by address).
func (c *tcluster) nodeID(m *clustermap.Map, i int) clustermap.NodeID {
	addr := c.lc.State().Nodes[i-1].Addr
	for _, n := range m.Nodes {
		if n.Addr == addr {
			return n.ID
		}
	}
	c.t.Fatalf("node %d (%s) is not in map epoch %d", i, addr, m.Epoch)
	return 0
}

func nodeState(m *clustermap.Map, id clustermap.NodeID) clustermap.NodeState {
	n, _ := m.Node(id)
	return n.State
}

// allActive reports whether every PG of the map is Active.
func allActive(m *clustermap.Map) bool {
	for i := range m.PGs {
		if m.PGState(&m.PGs[i]) != clustermap.Active {
			return false
		}
	}
	return true
}

// status asks local node i for its status.
func (c *tcluster) status(i int) (*node.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := c.pool.Get(ctx, c.lc.State().Nodes[i-1].Addr)
	if err != nil {
		return nil, err
	}
	return node.FetchStatus(ctx, conn)
}

// metaLeader returns the local index of the node whose member leads
// container ct's metadata group, and that member's status, asking nodes
// 1..n; ok is false when none says it leads.
func (c *tcluster) metaLeader(n int, ct clustermap.ContainerID) (i int, mm node.MetaMember, ok bool) {
	for i := 1; i <= n; i++ {
		st, err := c.status(i)
		if err != nil {
			continue
		}
		for _, mm := range st.Meta {
			if mm.Container == uint64(ct) && mm.Leader == st.Node {
				return i, mm, true
			}
		}
	}
	return 0, node.MetaMember{}, false
}

// startLoad writes every hot chunk once and starts the workload's
// workers with a seed it logs; the load runs a second before it returns.
func (c *tcluster) startLoad() *load {
	c.t.Helper()
	l := c.newLoad(hotChunks)
	for i := range hotChunks {
		if err := l.write(workers, i, uint64(workers+1)<<40|uint64(i+1)); err != nil {
			c.t.Fatalf("first write of chunk %d: %v", i, err)
		}
	}
	seed := uint64(time.Now().UnixNano())
	c.t.Logf("load seed %d", seed)
	l.run(workers, seed)
	time.Sleep(time.Second)
	return l
}

// The workload: registers, one a chunk. A write puts blockSize bytes at
// offset 0 of its chunk, every 8-byte word the written value (unique per
// write), so a read tells the value and any mix of two writes.
const (
	hotInode  = 2
	blockSize = 4096
)

type regInput struct {
	write bool
	val   uint64
}

type regOutput struct {
	val uint64
}

// registerModel is one chunk as a register: a write sets it, a read
// returns the last value written. Writes that never returned (unknown
// outcome) have a return time of infinity, so they may take effect at any
// point after their call, or never observed.
var registerModel = porcupine.Model{
	Init: func() any { return uint64(0) },
	Step: func(state, input, output any) (bool, any) {
		st, in := state.(uint64), input.(regInput)
		if in.write {
			return true, in.val
		}
		return output.(regOutput).val == st, st
	},
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		if in.write {
			return fmt.Sprintf("write %#x", in.val)
		}
		return fmt.Sprintf("read -> %#x", output.(regOutput).val)
	},
}

func fillBlock(p []byte, v uint64) {
	for i := 0; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], v)
	}
}

// blockValue returns the value every word of p holds, or an error naming
// the first word that differs (a torn or mixed block).
func blockValue(p []byte) (uint64, error) {
	v := binary.LittleEndian.Uint64(p)
	for i := 8; i+8 <= len(p); i += 8 {
		if w := binary.LittleEndian.Uint64(p[i:]); w != v {
			return 0, fmt.Errorf("word at %d is %#x, word 0 is %#x: a mixed block", i, w, v)
		}
	}
	return v, nil
}

// load runs concurrent readers and writers over chunks (hotInode, 0..n-1)
// and records every operation for porcupine.
type load struct {
	c      *tcluster
	chunks int
	start  time.Time
	stop   chan struct{}
	wg     sync.WaitGroup

	writes   atomic.Int64 // writes called
	acked    atomic.Int64 // writes acknowledged
	reads    atomic.Int64 // reads that returned a value
	failures atomic.Int64

	mu   sync.Mutex
	hist map[int][]porcupine.Operation
	errs []string
}

func (c *tcluster) newLoad(chunks int) *load {
	return &load{c: c, chunks: chunks, start: time.Now(), stop: make(chan struct{}),
		hist: map[int][]porcupine.Operation{}}
}

func (l *load) now() int64 { return int64(time.Since(l.start)) }

// write writes value v to chunk i and records it.
func (l *load) write(client, i int, v uint64) error {
	buf := make([]byte, blockSize)
	fillBlock(buf, v)
	l.writes.Add(1)
	call := l.now()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	_, err := l.c.ct.Write(ctx, hotInode, uint64(i), 0, buf)
	cancel()
	ret := l.now()
	op := porcupine.Operation{ClientId: client, Input: regInput{write: true, val: v}, Call: call, Output: regOutput{}, Return: ret}
	if err != nil {
		// Unknown outcome: it may apply at any time after its call.
		op.Return = math.MaxInt64
		l.failures.Add(1)
	} else {
		l.acked.Add(1)
	}
	l.mu.Lock()
	l.hist[i] = append(l.hist[i], op)
	if err != nil {
		l.errs = append(l.errs, fmt.Sprintf("write %#x to chunk %d: %v", v, i, err))
	}
	l.mu.Unlock()
	return err
}

// read reads chunk i and records it; it returns the value read.
func (l *load) read(client, i int) (uint64, error) {
	buf := make([]byte, blockSize)
	call := l.now()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	n, err := l.c.ct.Read(ctx, hotInode, uint64(i), 0, buf)
	cancel()
	ret := l.now()
	var v uint64
	if errors.Is(err, fsproto.ErrNotFound) {
		// Never written: the register's initial value.
		n, err = blockSize, nil
		fillBlock(buf, 0)
	}
	if err == nil && n != blockSize {
		err = fmt.Errorf("read %d bytes, want %d", n, blockSize)
	}
	if err == nil {
		v, err = blockValue(buf)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failures.Add(1)
		l.errs = append(l.errs, fmt.Sprintf("read chunk %d: %v", i, err))
		return 0, err
	}
	l.reads.Add(1)
	l.hist[i] = append(l.hist[i], porcupine.Operation{ClientId: client, Input: regInput{}, Call: call, Output: regOutput{val: v}, Return: ret})
	return v, nil
}

// run starts workers goroutines, each picking a chunk and reading or
// writing it (half and half) until stop; seed makes the choices
// reproducible (the timing is not).
func (l *load) run(workers int, seed uint64) {
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			seq := uint64(0)
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				i := rng.IntN(l.chunks)
				if rng.IntN(2) == 0 {
					seq++
					_ = l.write(w, i, uint64(w+1)<<40|seq)
				} else {
					_, _ = l.read(w, i)
				}
			}
		}()
	}
}

func (l *load) halt() {
	close(l.stop)
	l.wg.Wait()
}

// check runs porcupine on every chunk's history and fails the test for
// one that is not linearizable, printing it.
func (l *load) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.chunks {
		h := l.hist[i]
		res := porcupine.CheckOperationsTimeout(registerModel, h, 30*time.Second)
		switch res {
		case porcupine.Ok:
		case porcupine.Unknown:
			t.Logf("chunk %d: porcupine timed out on %d operations; not checked", i, len(h))
		default:
			h = slices.Clone(h)
			slices.SortFunc(h, func(a, b porcupine.Operation) int { return int(a.Call - b.Call) })
			var b strings.Builder
			for _, op := range h {
				ret := fmt.Sprint(time.Duration(op.Return))
				if op.Return == math.MaxInt64 {
					ret = "never"
				}
				fmt.Fprintf(&b, "\n  [%v, %s] client %d %s", time.Duration(op.Call), ret, op.ClientId, registerModel.DescribeOperation(op.Input, op.Output))
			}
			t.Errorf("chunk %d: history of %d operations is not linearizable:%s", i, len(h), b.String())
		}
	}
}

func (l *load) summary() string {
	return fmt.Sprintf("%d writes (%d acknowledged), %d reads, %d failures", l.writes.Load(), l.acked.Load(), l.reads.Load(), l.failures.Load())
}

// failed returns the failures' messages (at most 10).
func (l *load) failed() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.errs[:min(len(l.errs), 10)])
}

// writeBase writes n chunks of size bytes in inode baseInode, each filled
// with its index's pattern, and returns the bytes written.
func (c *tcluster) writeBase(n, size int) int64 {
	c.t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			buf := make([]byte, size)
			fillBlock(buf, baseValue(i))
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			defer cancel()
			if _, err := c.ct.Write(ctx, baseInode, uint64(i), 0, buf); err != nil {
				errs <- fmt.Errorf("base chunk %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		c.t.Fatal(err)
	}
	return int64(n) * int64(size)
}

const baseInode = 1

func baseValue(i int) uint64 { return 0xba5e<<48 | uint64(i) }

// checkBase reads the n base chunks back and fails the test for any that
// does not hold its pattern.
func (c *tcluster) checkBase(n, size int) {
	c.t.Helper()
	buf := make([]byte, size)
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		got, err := c.ct.Read(ctx, baseInode, uint64(i), 0, buf)
		cancel()
		if err == nil && got != size {
			err = fmt.Errorf("read %d bytes, want %d", got, size)
		}
		var v uint64
		if err == nil {
			v, err = blockValue(buf)
		}
		if err == nil && v != baseValue(i) {
			err = fmt.Errorf("holds %#x, want %#x", v, baseValue(i))
		}
		if err != nil {
			c.t.Errorf("base chunk %d: %v", i, err)
		}
	}
}
