// Package localcluster runs a weft cluster of local processes: N `weft
// node` processes on 127.0.0.1, 127.0.0.2, ..., each a storage node with a
// sparse file device and (all of them, or the first Config.Managers) a
// member of the manager group. `weft up` is built
// on it, and so are the multi-process tests, which kill, stop and restart
// single nodes.
//
// A cluster lives in one folder:
//
//	up.json        the state: cluster id, nodes and their addresses
//	keys           the keys file every process reads (0600)
//	nodeN/device   node N's sparse device file
//	nodeN/manager  node N's manager member's Raft log
//	nodeN/log      node N's log (appended to)
//
// Open creates the folder on first use and reads it afterwards, so a
// cluster started again comes back with its data. Start, StartNode,
// KillNode (SIGKILL), StopNode (SIGTERM), PauseNode/ResumeNode
// (SIGSTOP/SIGCONT), Stop and Wait drive the processes; WaitServing waits
// until the cluster serves (every node up, the container created, its PGs
// active, every node on that map), printing progress.
//
// Inspect and Report work on any cluster, given its managers and a key
// (Access): they read the map and every node's status (node.KindStatus),
// for `weft status` and the tests.
package localcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Keys of a local cluster: the processes use ClusterKey between
// themselves; AdminKey is the one handed to users and tests.
const (
	ClusterKey = "cluster"
	AdminKey   = "admin"
	stateFile  = "up.json"
	keysFile   = "keys"
)

// Config configures Open. Nodes, Port, Replicas and DeviceSize apply to a
// new cluster only; an existing folder keeps its own.
type Config struct {
	Dir    string // the cluster's folder; required
	Binary string // the weft binary; required
	Nodes  int    // default 3
	// Port is every node's port on its own 127.0.0.N address (metrics on
	// Port+1); default 7070.
	Port       int
	DeviceSize int64 // bytes of each sparse device file; default 8 GiB
	Replicas   int   // of the default container; default min(3, Nodes)
	// Managers is how many nodes (the first ones) run a manager member;
	// default all of them. Recorded in the cluster's state on creation.
	Managers int
	// ExtraArgs are added to every `weft node` command line.
	ExtraArgs []string
	// NodeArgs, when set, returns more arguments for node i's command
	// line (1-based), after ExtraArgs: per-node labels, say.
	NodeArgs func(i int) []string
	// StopWithParent asks the kernel to send each node SIGTERM when the
	// process that started it dies (PR_SET_PDEATHSIG), so a `weft up`
	// killed with SIGKILL does not leave its nodes holding the ports.
	// NB: the signal follows the OS thread that forked the node, so set
	// it only in a process none of whose threads exit (weft up: no
	// goroutine there ends while locked to its thread); not in tests.
	StopWithParent bool
}

// State is what a cluster's folder records.
type State struct {
	Version    int    `json:"version"`
	ClusterID  string `json:"cluster_id"`
	Nodes      []Node `json:"nodes"`
	Replicas   int    `json:"replicas"`
	Container  string `json:"container"`
	DeviceSize int64  `json:"device_size"`
	// Managers is how many nodes, the first ones, run a manager member
	// (0: all).
	Managers int `json:"managers,omitempty"`
}

// Node is one node of the cluster.
type Node struct {
	Index   int    `json:"index"` // 1-based; also its manager member id
	Addr    string `json:"addr"`
	Metrics string `json:"metrics"`
	Dir     string `json:"dir"` // relative to the cluster's folder
}

// Cluster is a local cluster and its running processes. Its methods are
// safe for concurrent use.
type Cluster struct {
	cfg   Config
	state State
	admin []byte // AdminKey's secret

	mu    sync.Mutex
	procs map[int]*proc // running (or exited, not yet reaped) nodes by index
}

type proc struct {
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{} // closed when Wait returned
	err  error         // Wait's result, set before done is closed
}

// Open loads the cluster in cfg.Dir, creating it (state and keys) on
// first use. It starts nothing.
func Open(cfg Config) (*Cluster, error) {
	if cfg.Dir == "" || cfg.Binary == "" {
		return nil, errors.New("localcluster: Dir and Binary are required")
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.Port == 0 {
		cfg.Port = 7070
	}
	if cfg.DeviceSize == 0 {
		cfg.DeviceSize = 8 << 30
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = min(3, cfg.Nodes)
	}
	if cfg.Nodes < 1 || cfg.Nodes > 9 || cfg.Replicas < 1 || cfg.Replicas > 5 || cfg.Port < 1 || cfg.Port > 65534 || cfg.Managers < 0 || cfg.Managers > cfg.Nodes {
		return nil, fmt.Errorf("localcluster: want 1 <= nodes (%d) <= 9, 1 <= replicas (%d) <= 5, 1 <= port (%d) <= 65534, 0 <= managers (%d) <= nodes", cfg.Nodes, cfg.Replicas, cfg.Port, cfg.Managers)
	}
	c := &Cluster{cfg: cfg, procs: map[int]*proc{}}
	b, err := os.ReadFile(filepath.Join(cfg.Dir, stateFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := c.create(); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, &c.state); err != nil {
			return nil, fmt.Errorf("localcluster: %s: %w", filepath.Join(cfg.Dir, stateFile), err)
		}
		if c.state.Version != 1 || len(c.state.Nodes) == 0 || c.state.ClusterID == "" {
			return nil, fmt.Errorf("localcluster: %s: not a cluster state of version 1 with nodes", filepath.Join(cfg.Dir, stateFile))
		}
	}
	keys, err := os.ReadFile(filepath.Join(cfg.Dir, keysFile))
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(keys), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == AdminKey {
			c.admin, err = hex.DecodeString(f[1])
			if err != nil {
				return nil, fmt.Errorf("localcluster: %s: key %s: %v", filepath.Join(cfg.Dir, keysFile), AdminKey, err)
			}
		}
	}
	if c.admin == nil {
		return nil, fmt.Errorf("localcluster: %s has no key %q", filepath.Join(cfg.Dir, keysFile), AdminKey)
	}
	return c, nil
}

func (c *Cluster) create() error {
	if err := os.MkdirAll(c.cfg.Dir, 0o700); err != nil {
		return err
	}
	s := State{Version: 1, ClusterID: "weft-local", Replicas: c.cfg.Replicas, Container: "default", DeviceSize: c.cfg.DeviceSize}
	if c.cfg.Managers < c.cfg.Nodes {
		s.Managers = c.cfg.Managers
	}
	for i := 1; i <= c.cfg.Nodes; i++ {
		s.Nodes = append(s.Nodes, Node{Index: i, Addr: fmt.Sprintf("127.0.0.%d:%d", i, c.cfg.Port),
			Metrics: fmt.Sprintf("127.0.0.%d:%d", i, c.cfg.Port+1), Dir: fmt.Sprintf("node%d", i)})
	}
	var keys strings.Builder
	keys.WriteString("# weft local cluster keys: keyid secret-hex [ro]\n")
	for _, id := range []string{ClusterKey, AdminKey} {
		var secret [32]byte
		_, _ = rand.Read(secret[:])
		fmt.Fprintf(&keys, "%s %s\n", id, hex.EncodeToString(secret[:]))
	}
	if err := os.WriteFile(filepath.Join(c.cfg.Dir, keysFile), []byte(keys.String()), 0o600); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(filepath.Join(c.cfg.Dir, stateFile), append(b, '\n'), 0o600); err != nil {
		return err
	}
	c.state = s
	return nil
}

// State returns the cluster's recorded state.
func (c *Cluster) State() State { return c.state }

// Managers returns the addresses of the manager group's members.
func (c *Cluster) Managers() []string {
	addrs := make([]string, c.managers())
	for i := range addrs {
		addrs[i] = c.state.Nodes[i].Addr
	}
	return addrs
}

// managers is how many nodes, the first ones, run a manager member.
func (c *Cluster) managers() int {
	if m := c.state.Managers; m > 0 && m < len(c.state.Nodes) {
		return m
	}
	return len(c.state.Nodes)
}

// AdminSecret returns AdminKey's secret.
func (c *Cluster) AdminSecret() []byte { return c.admin }

// KeysFile returns the path of the keys file.
func (c *Cluster) KeysFile() string { return filepath.Join(c.cfg.Dir, keysFile) }

// LogFile returns node i's log file.
func (c *Cluster) LogFile(i int) string { return filepath.Join(c.cfg.Dir, c.node(i).Dir, "log") }

func (c *Cluster) node(i int) Node {
	if i < 1 || i > len(c.state.Nodes) {
		panic(fmt.Sprintf("localcluster: no node %d in a cluster of %d", i, len(c.state.Nodes)))
	}
	return c.state.Nodes[i-1]
}

// args returns node i's command line.
func (c *Cluster) args(n Node) []string {
	dir := filepath.Join(c.cfg.Dir, n.Dir)
	peers := make([]string, c.managers())
	for i := range peers {
		m := c.state.Nodes[i]
		peers[i] = fmt.Sprintf("%d=%s", m.Index, m.Addr)
	}
	args := []string{"node",
		"--device", filepath.Join(dir, "device"), "--size", fmt.Sprint(c.state.DeviceSize),
		"--listen", n.Addr, "--metrics-listen", n.Metrics,
		"--cluster-id", c.state.ClusterID, "--keys-file", c.KeysFile(), "--cluster-key", ClusterKey,
		"--managers", strings.Join(c.Managers(), ","),
		"--label", fmt.Sprintf("host=node%d", n.Index),
	}
	if n.Index <= c.managers() {
		args = append(args, "--manager-id", fmt.Sprint(n.Index), "--manager-peers", strings.Join(peers, ","),
			"--manager-dir", filepath.Join(dir, "manager"))
	}
	args = append(args, c.cfg.ExtraArgs...)
	if c.cfg.NodeArgs != nil {
		args = append(args, c.cfg.NodeArgs(n.Index)...)
	}
	return args
}

// StartNode starts node i (1-based). Starting a running node is an error.
func (c *Cluster) StartNode(i int) error {
	n := c.node(i)
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.procs[i]; p != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("localcluster: node %d is running", i)
		}
	}
	dir := filepath.Join(c.cfg.Dir, n.Dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "--- localcluster: starting node %d at %s\n", i, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(c.cfg.Binary, c.args(n)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C on the terminal reaches the parent,
	// which stops the nodes in order, rather than every node at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if c.cfg.StopWithParent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("localcluster: starting node %d: %w", i, err)
	}
	p := &proc{cmd: cmd, log: logf, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	c.procs[i] = p
	return nil
}

// Start starts every node that is not running.
func (c *Cluster) Start() error {
	for _, n := range c.state.Nodes {
		if c.Running(n.Index) {
			continue
		}
		if err := c.StartNode(n.Index); err != nil {
			return err
		}
	}
	return nil
}

// Running reports whether node i's process is alive.
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	p := c.procs[i]
	c.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Exited returns a channel closed when node i's process has exited, and
// its exit error; ok is false when node i was never started.
func (c *Cluster) Exited(i int) (done <-chan struct{}, err func() error, ok bool) {
	c.mu.Lock()
	p := c.procs[i]
	c.mu.Unlock()
	if p == nil {
		return nil, nil, false
	}
	return p.done, func() error { <-p.done; return p.err }, true
}

// KillNode kills node i with SIGKILL (a crash: nothing is flushed or
// closed) and waits for it to be gone.
func (c *Cluster) KillNode(i int) error { return c.signal(i, syscall.SIGKILL, 0) }

// PauseNode freezes node i with SIGSTOP: its sockets stay open but it
// answers nothing, sends nothing and heartbeats no more, as if cut off
// from the network. ResumeNode (SIGCONT) lets it run on from where it was.
func (c *Cluster) PauseNode(i int) error { return c.sendSignal(i, syscall.SIGSTOP) }

// ResumeNode resumes node i after PauseNode.
func (c *Cluster) ResumeNode(i int) error { return c.sendSignal(i, syscall.SIGCONT) }

func (c *Cluster) sendSignal(i int, sig syscall.Signal) error {
	c.mu.Lock()
	p := c.procs[i]
	c.mu.Unlock()
	if p == nil {
		return fmt.Errorf("localcluster: node %d was not started", i)
	}
	select {
	case <-p.done:
		return fmt.Errorf("localcluster: node %d has exited", i)
	default:
	}
	return p.cmd.Process.Signal(sig)
}

// StopNode stops node i with SIGTERM (a clean shutdown) and waits up to
// timeout, then kills it. It returns the process's exit error.
func (c *Cluster) StopNode(i int, timeout time.Duration) error {
	return c.signal(i, syscall.SIGTERM, timeout)
}

func (c *Cluster) signal(i int, sig syscall.Signal, timeout time.Duration) error {
	c.mu.Lock()
	p := c.procs[i]
	c.mu.Unlock()
	if p == nil {
		return fmt.Errorf("localcluster: node %d was not started", i)
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	if sig == syscall.SIGKILL {
		<-p.done
		return nil
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("localcluster: node %d did not stop within %v after %v; killed", i, timeout, sig)
	}
}

// Stop stops every running node cleanly (SIGTERM to all, then waits up to
// timeout for each) and returns the first error. Nodes that had exited
// already (killed, or crashed: Exited tells) are not its concern.
func (c *Cluster) Stop(timeout time.Duration) error {
	c.mu.Lock()
	procs := make(map[int]*proc, len(c.procs))
	for i, p := range c.procs {
		select {
		case <-p.done:
		default:
			procs[i] = p
		}
	}
	c.mu.Unlock()
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	var first error
	deadline := time.Now().Add(timeout)
	for i, p := range procs {
		select {
		case <-p.done:
			if p.err != nil && first == nil {
				first = fmt.Errorf("localcluster: node %d: %w", i, p.err)
			}
		case <-time.After(time.Until(deadline)):
			_ = p.cmd.Process.Kill()
			<-p.done
			if first == nil {
				first = fmt.Errorf("localcluster: node %d did not stop within %v; killed", i, timeout)
			}
		}
	}
	return first
}

// Wait blocks until ctx ends or a node exits, and returns the index of
// that node (0 when ctx ended).
func (c *Cluster) Wait(ctx context.Context) int {
	c.mu.Lock()
	procs := make(map[int]*proc, len(c.procs))
	for i, p := range c.procs {
		procs[i] = p
	}
	c.mu.Unlock()
	exited := make(chan int, len(procs))
	stop := make(chan struct{})
	defer close(stop)
	for i, p := range procs {
		go func() {
			select {
			case <-p.done:
				exited <- i
			case <-stop:
			}
		}()
	}
	select {
	case i := <-exited:
		return i
	case <-ctx.Done():
		return 0
	}
}
