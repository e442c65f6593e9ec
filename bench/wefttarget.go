package bench

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/manager"
	"github.com/weftfs/weft/ioring"
	"github.com/weftfs/weft/net"
)

// This file is the weft:// target: a running weft node (package node),
// weft://ADDR/CONTAINER with a numeric container, driven through the chunk
// client (package fsproto); or a cluster, weft://ADDR[,ADDR...]/NAME with
// the managers' addresses and a container name, driven through the
// cluster client (package fsproto/client), which sends each chunk to its
// PG's primary. Both run in the same clone loop (runQueue) as the other
// targets, with the same job vocabulary and report.
//
// A job's byte range maps onto chunks of WeftOptions.ChunkSize bytes of
// one inode; an I/O never spans two chunks, as the chunk size is a
// multiple of bs:
//
//	offset o  ->  offset o % chunkSize of chunk
//	              ChunkID{Container: CONTAINER, Inode: weft_inode, Index: o / chunkSize}
//
// Each clone dials its own connection (one net.Conn per clone, not shared;
// on a cluster, its own client and pool), and keeps iodepth GoWrite/GoRead
// calls in flight on it. slat is prep to
// send, clat send to completion, as for the other targets.
//
// Reads need data: unless weft_layout=0, Run lays out [0, size) of the
// reading jobs with sequential writes of bs before any clone starts, on
// every run. NB: there is no marker of an earlier layout (unlike engine:),
// so the layout is written again each time; give weft_layout=0 to skip it
// when the range is known to hold data.
//
// The clients retry a failed I/O until its context ends, so a target that
// goes away would hang the run: when I/O is in flight and none completed
// for weftStallTimeout (60 s), the run (or the layout) fails with
// errWeftStalled, which says so.

const (
	weftChunkSizeDef = 1 << 20
	weftChunkSizeMax = 1 << 30
	weftLayoutDepth  = 32
	weftDialTimeout  = 10 * time.Second
	// weftStallTimeout: when I/O is in flight and none completes for this
	// long, the run fails with errWeftStalled instead of waiting forever
	// (the clients retry until their context ends: a cluster that went
	// away would hang the run). Generous: a failover takes seconds.
	weftStallTimeout = 60 * time.Second
)

// Environment variables that give the credentials weft_cluster_id,
// weft_key_id and weft_key_secret default to.
const (
	envWeftClusterID = "WEFT_CLUSTER_ID"
	envWeftKeyID     = "WEFT_KEY_ID"
	envWeftSecret    = "WEFT_KEY_SECRET"
)

// WeftOptions are the options of a weft:// target, weft's own.
type WeftOptions struct {
	// Inode is weft_inode=: the inode of the chunks; default 1.
	Inode uint64
	// ChunkSize is weft_chunk_size=: job offset o is offset o%ChunkSize
	// of chunk o/ChunkSize; a multiple of bs; default 1 MiB.
	ChunkSize int64
	// ClusterID, KeyID and Secret (hex) are weft_cluster_id=,
	// weft_key_id= and weft_key_secret=, or WEFT_CLUSTER_ID, WEFT_KEY_ID
	// and WEFT_KEY_SECRET when not given.
	ClusterID string
	KeyID     string
	Secret    string
	// NoLayout is weft_layout=0: reading jobs read what is there.
	NoLayout bool
}

// weftURL is a parsed weft:// target: one node and a numeric container
// (single-node mode), or the managers of a cluster and a container name.
type weftURL struct {
	addrs     []string // the node (one), or the managers
	container uint64   // single-node mode: the container id
	name      string   // cluster mode: the container's name ("" in single-node mode)
}

// cluster reports whether u names a container of a cluster.
func (u weftURL) cluster() bool { return u.name != "" }

// parseWeftURL splits weft://ADDR/CONTAINER (a single node, a numeric
// container) or weft://ADDR[,ADDR...]/NAME (a cluster's managers and a
// container name) (a Job.Target or its part after the scheme), or says why
// it cannot.
func parseWeftURL(target string) (u weftURL, why string) {
	const accepted = "accepted: weft://HOST:PORT/CONTAINER (a node) or weft://HOST:PORT[,HOST:PORT...]/NAME (a cluster)"
	rest := strings.TrimPrefix(target, schemeWeft)
	addrs, c, ok := strings.Cut(rest, "/")
	switch {
	case addrs == "":
		return u, "no address; " + accepted
	case !ok || c == "":
		return u, "no container; " + accepted + ", e.g. weft://127.0.0.1:7070/1"
	case strings.ContainsAny(addrs, " \t@?#"):
		return u, "malformed address; " + accepted
	}
	for _, addr := range strings.Split(addrs, ",") {
		if i := strings.LastIndexByte(addr, ':'); i <= 0 || i == len(addr)-1 {
			return u, fmt.Sprintf("address %q has no port; %s", addr, accepted)
		} else if p, err := strconv.ParseUint(addr[i+1:], 10, 16); err != nil || p == 0 {
			return u, fmt.Sprintf("address %q: bad port; accepted: 1 to 65535", addr)
		}
		u.addrs = append(u.addrs, addr)
	}
	if c[0] >= '0' && c[0] <= '9' {
		n, err := strconv.ParseUint(c, 10, 64)
		if err != nil {
			return u, fmt.Sprintf("container %q starts with a digit but is not a whole number; %s", c, accepted)
		}
		if len(u.addrs) > 1 {
			return u, fmt.Sprintf("a numeric container (%d) names a single node's container: give one address, or a cluster container's name", n)
		}
		u.container = n
		return u, ""
	}
	for _, r := range c {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return u, fmt.Sprintf("container name %q: want letters, digits, '.', '_' and '-'", c)
		}
	}
	u.name = c
	return u, ""
}

// weftCredentials fills in the credentials not given as options from the
// environment, and returns the names of those still missing, or why the
// secret is not accepted.
func weftCredentials(o *WeftOptions) (missing []string, why string) {
	fill := func(v *string, env, opt string) {
		if *v == "" {
			*v = os.Getenv(env)
		}
		if *v == "" {
			missing = append(missing, opt+"= (or "+env+")")
		}
	}
	fill(&o.ClusterID, envWeftClusterID, "weft_cluster_id")
	fill(&o.KeyID, envWeftKeyID, "weft_key_id")
	fill(&o.Secret, envWeftSecret, "weft_key_secret")
	if o.Secret != "" {
		if _, err := hex.DecodeString(o.Secret); err != nil {
			why = "weft_key_secret (or " + envWeftSecret + ") is not hex"
		}
	}
	return missing, why
}

// checkWeftJob checks the rules a weft:// target adds; good and report
// are buildJob's; general reports a problem no option was given for.
func checkWeftJob(j *Job, chunkGiven bool, good func(...int) bool, report func(int, string), general func(string)) {
	if _, why := parseWeftURL(j.Target); why != "" {
		general("target " + j.Target + ": " + why)
	}
	if j.IOEngine == EnginePsync && good(optIOEngine) {
		report(optIOEngine, "not accepted with a weft:// target, which the chunk client drives asynchronously; leave ioengine out")
	}
	if j.Fsync > 0 && good(optFsync) {
		report(optFsync, "not accepted with a weft:// target: every chunk write is durable when it completes, so there is nothing to fsync")
	}
	if j.Weft.ChunkSize%j.BlockSize != 0 && good(optBS, optWeftChunkSize) {
		if chunkGiven {
			report(optWeftChunkSize, fmt.Sprintf("must be a multiple of bs=%s, so that no I/O spans two chunks", formatSize(j.BlockSize)))
		} else {
			report(optBS, fmt.Sprintf("must divide weft_chunk_size (default %s), so that no I/O spans two chunks", formatSize(j.Weft.ChunkSize)))
		}
	}
	missing, why := weftCredentials(&j.Weft)
	if len(missing) > 0 {
		general("target " + j.Target + ": missing credentials: " + strings.Join(missing, ", "))
	}
	if why != "" {
		general("target " + j.Target + ": " + why)
	}
}

// weftTarget is the state of one weft:// target, shared by the jobs
// naming it.
type weftTarget struct {
	target    string
	url       weftURL
	readNeed  int64 // bytes from offset 0 that reading jobs need written
	layoutBS  int64 // the largest bs of the reading jobs
	layoutJob *Job  // a reading job, whose options layout uses
	laidOut   int64 // bytes layout wrote
}

func inspectWeftTarget(name string) (*target, error) {
	u, why := parseWeftURL(name)
	if why != "" {
		return nil, fmt.Errorf("target %s: %s", name, why)
	}
	return &target{scheme: schemeWeft, path: name, wft: &weftTarget{target: name, url: u}}, nil
}

func (wt *weftTarget) addJob(t *target, j *Job) string {
	if j.Size == 0 {
		return fmt.Sprintf("target %s needs size= (the bytes the job addresses), e.g. --size=1g", wt.target)
	}
	if j.Size < j.BlockSize {
		return fmt.Sprintf("size=%d is smaller than bs=%d", j.Size, j.BlockSize)
	}
	t.need = max(t.need, j.Size)
	if j.ReadPercent() > 0 && !j.Weft.NoLayout {
		if j.Size > wt.readNeed {
			wt.readNeed, wt.layoutJob = j.Size, j
		}
		wt.layoutBS = max(wt.layoutBS, j.BlockSize)
	}
	return ""
}

// weftIO is how a clone reaches a weft:// target: a node's chunk client
// on the clone's own connection, or the cluster client with its own pool.
type weftIO interface {
	// container is the id of the container the I/O goes to.
	container() uint64
	goWrite(ctx context.Context, ch fsproto.ChunkID, off uint32, p []byte, done chan *fsproto.Op) *fsproto.Op
	goRead(ctx context.Context, ch fsproto.ChunkID, off uint32, p []byte, done chan *fsproto.Op) *fsproto.Op
	close()
}

type nodeIO struct {
	cl *fsproto.ChunkClient
	id uint64
}

func (n nodeIO) container() uint64 { return n.id }
func (n nodeIO) goWrite(ctx context.Context, ch fsproto.ChunkID, off uint32, p []byte, done chan *fsproto.Op) *fsproto.Op {
	return n.cl.GoWrite(ctx, ch, off, p, done)
}
func (n nodeIO) goRead(ctx context.Context, ch fsproto.ChunkID, off uint32, p []byte, done chan *fsproto.Op) *fsproto.Op {
	return n.cl.GoRead(ctx, ch, off, p, done)
}
func (n nodeIO) close() { n.cl.Conn().Close() }

type clusterIO struct {
	pool *net.Pool
	c    *client.Client
	ct   *client.Container
}

func (c clusterIO) container() uint64 { return uint64(c.ct.ID()) }
func (c clusterIO) goWrite(ctx context.Context, ch fsproto.ChunkID, off uint32, p []byte, done chan *fsproto.Op) *fsproto.Op {
	return c.ct.GoWrite(ctx, ch.Inode, ch.Index, off, p, done)
}
func (c clusterIO) goRead(ctx context.Context, ch fsproto.ChunkID, off uint32, p []byte, done chan *fsproto.Op) *fsproto.Op {
	return c.ct.GoRead(ctx, ch.Inode, ch.Index, off, p, done)
}
func (c clusterIO) close() {
	c.c.Close()
	c.pool.Close()
}

// dialWeft connects to the node, or to the cluster's managers and nodes,
// with job j's credentials.
func dialWeft(ctx context.Context, u weftURL, o WeftOptions) (weftIO, error) {
	secret, err := hex.DecodeString(o.Secret)
	if err != nil {
		return nil, fmt.Errorf("weft_key_secret: %v", err)
	}
	dctx, cancel := context.WithTimeout(ctx, weftDialTimeout)
	defer cancel()
	ccfg := net.ClientConfig{ClusterID: o.ClusterID, KeyID: o.KeyID, Secret: secret}
	if !u.cluster() {
		conn, err := net.Dial(dctx, u.addrs[0], ccfg)
		if err != nil {
			return nil, fmt.Errorf("connecting to %s: %w", u.addrs[0], err)
		}
		return nodeIO{cl: fsproto.NewChunkClient(conn, fsproto.ChunkClientConfig{}), id: u.container}, nil
	}
	pool, err := net.NewPool(net.PoolConfig{Client: ccfg})
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(dctx, client.Config{Maps: manager.NewClient(u.addrs, pool), Pool: pool})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to the managers %s: %w", strings.Join(u.addrs, ","), err)
	}
	ct, err := c.Container(u.name)
	if err != nil {
		c.Close()
		pool.Close()
		return nil, fmt.Errorf("cluster at %s: %w", strings.Join(u.addrs, ","), err)
	}
	return clusterIO{pool: pool, c: c, ct: ct}, nil
}

// errWeftStalled ends a weft:// run whose target stopped answering.
var errWeftStalled = fmt.Errorf("no I/O completed for %v: the weft target stopped answering (is the cluster running?)", weftStallTimeout)

// stallGuard cancels a context when I/O is pending and none completed
// for its timeout. Completions call progress; the hot path costs one
// atomic store.
type stallGuard struct {
	last    atomic.Int64 // unix nanoseconds of the last completion (or start)
	pending atomic.Int64 // I/Os in flight
}

// guardStalls returns a context that ends with cause errWeftStalled when
// g sees no progress for timeout while I/O is pending; stop ends the
// watch (call it before returning).
func guardStalls(ctx context.Context, timeout time.Duration) (gctx context.Context, g *stallGuard, stop func()) {
	gctx, cancel := context.WithCancelCause(ctx)
	g = &stallGuard{}
	g.last.Store(time.Now().UnixNano())
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(min(timeout/4, time.Second))
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-gctx.Done():
				return
			case now := <-tick.C:
				if g.pending.Load() > 0 && now.Sub(time.Unix(0, g.last.Load())) > timeout {
					cancel(errWeftStalled)
					return
				}
			}
		}
	}()
	return gctx, g, func() {
		close(quit)
		<-done
		cancel(nil)
	}
}

func (g *stallGuard) submitted(n int) { g.pending.Add(int64(n)) }

func (g *stallGuard) completed() {
	g.last.Store(time.Now().UnixNano())
	g.pending.Add(-1)
}

// stallCause returns errWeftStalled if the guard ended ctx, else err.
func stallCause(ctx context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(ctx), errWeftStalled) {
		return errWeftStalled
	}
	return err
}

func weftAddr(container, inode uint64, off, chunkSize int64) (fsproto.ChunkID, uint32) {
	return fsproto.ChunkID{Container: container, Inode: inode, Index: uint64(off / chunkSize)}, uint32(off % chunkSize)
}

// layout writes [0, readNeed) sequentially, weftLayoutDepth writes of the
// reading jobs' bs at a time, so that reads find data.
func (wt *weftTarget) layout(ctx context.Context, progress io.Writer) error {
	if wt.readNeed == 0 {
		return nil
	}
	o := wt.layoutJob.Weft
	cl, err := dialWeft(ctx, wt.url, o)
	if err != nil {
		return err
	}
	defer cl.close()
	ctx, guard, stop := guardStalls(ctx, weftStallTimeout)
	defer stop()
	if progress != nil {
		fmt.Fprintf(progress, "laying out %s: %s in writes of %s (weft_layout=0 skips this)\n", wt.target, fmtBytes(wt.readNeed), formatSize(wt.layoutBS))
	}
	buf := ioring.AlignedBuffer(int(wt.layoutBS))
	newRand(0x5eed).fill(buf)
	done := make(chan *fsproto.Op, weftLayoutDepth)
	var firstErr error
	inflight := 0
	for off := int64(0); ; {
		for firstErr == nil && off < wt.readNeed && inflight < weftLayoutDepth {
			if err := ctx.Err(); err != nil {
				firstErr = err
				break
			}
			n := min(int64(len(buf)), wt.readNeed-off)
			ch, coff := weftAddr(cl.container(), o.Inode, off, o.ChunkSize)
			cl.goWrite(ctx, ch, coff, buf[:n], done)
			guard.submitted(1)
			inflight++
			off += n
		}
		if inflight == 0 {
			return stallCause(ctx, firstErr)
		}
		op := <-done
		guard.completed()
		inflight--
		if op.Err != nil && firstErr == nil {
			firstErr = fmt.Errorf("laying out: write to chunk %v: %w", op.Chunk, op.Err)
		} else if op.Err == nil {
			wt.laidOut += int64(len(buf)) // NB: the last may be shorter; only for the summary
		}
	}
}

func (wt *weftTarget) describe() string {
	s := fmt.Sprintf("%s: weft node at %s, container %d", wt.target, wt.url.addrs[0], wt.url.container)
	if wt.url.cluster() {
		s = fmt.Sprintf("%s: weft cluster, managers %s, container %q", wt.target, strings.Join(wt.url.addrs, ","), wt.url.name)
	}
	if wt.laidOut > 0 {
		s += fmt.Sprintf("; %s laid out for reading", fmtBytes(min(wt.laidOut, wt.readNeed)))
	}
	return s
}

// weftQueue is the ioQueue of a weft:// target: one fsproto.Op per unit
// in flight on the clone's own connection.
type weftQueue struct {
	ctx       context.Context
	guard     *stallGuard
	cl        weftIO
	container uint64
	o         WeftOptions
	units     []unit
	chunk     []fsproto.ChunkID
	coff      []uint32
	ops       map[*fsproto.Op]int
	done      chan *fsproto.Op
}

func (c *clone) runWeft(ctx context.Context, ph *phase, base time.Time) error {
	wt := c.wft
	if wt.url.cluster() {
		c.backend = fmt.Sprintf("weft cluster %s container %q (cluster client, weft_chunk_size=%s)", strings.Join(wt.url.addrs, ","), wt.url.name, formatSize(c.job.Weft.ChunkSize))
	} else {
		c.backend = fmt.Sprintf("weft node %s (chunk client, weft_chunk_size=%s)", wt.url.addrs[0], formatSize(c.job.Weft.ChunkSize))
	}
	cl, err := dialWeft(ctx, wt.url, c.job.Weft)
	if err != nil {
		return err
	}
	defer cl.close()
	ctx, guard, stop := guardStalls(ctx, weftStallTimeout)
	defer stop()
	units := c.newUnits(c.job.IODepth)
	q := &weftQueue{
		ctx: ctx, guard: guard, cl: cl, container: cl.container(), o: c.job.Weft, units: units,
		chunk: make([]fsproto.ChunkID, len(units)), coff: make([]uint32, len(units)),
		ops:  make(map[*fsproto.Op]int, len(units)),
		done: make(chan *fsproto.Op, len(units)),
	}
	// NB: run locks the clone's goroutine to its thread (the ring targets
	// need that). A locked goroutine that blocks puts its thread to sleep
	// and hands its P to another thread, and waking it hands the P back:
	// two futex wakes and two context switches each time reap waits for a
	// completion from the connection's reader, about a sixth of the
	// client's CPU at iodepth 32. The queue runs on an unlocked goroutine
	// instead; the clone's thread only waits for it, so the job's usr/sys
	// CPU figures (the clone thread's rusage) cover the wait alone, as
	// they never covered the connection's reader and writer goroutines.
	errc := make(chan error, 1)
	go func() { errc <- c.runQueue(ctx, q, units, ph, base) }()
	return stallCause(ctx, <-errc)
}

func (q *weftQueue) prep(idx int) {
	u := &q.units[idx]
	if u.dir != dirRead && u.dir != dirWrite {
		// Invariant: the parser refuses fsync= with a weft:// target.
		panic(fmt.Sprintf("bench: %s I/O on a weft:// target", dirName(u.dir)))
	}
	q.chunk[idx], q.coff[idx] = weftAddr(q.container, q.o.Inode, u.off+int64(u.done), q.o.ChunkSize)
}

func (q *weftQueue) submit(pending []int) error {
	for _, idx := range pending {
		u := &q.units[idx]
		var op *fsproto.Op
		if u.dir == dirRead {
			op = q.cl.goRead(q.ctx, q.chunk[idx], q.coff[idx], u.buf[u.done:], q.done)
		} else {
			op = q.cl.goWrite(q.ctx, q.chunk[idx], q.coff[idx], u.buf[u.done:], q.done)
		}
		q.ops[op] = idx
	}
	q.guard.submitted(len(pending))
	return nil
}

func (q *weftQueue) reap(out []completion, min int) (int, error) {
	n := 0
	for n < len(out) {
		var op *fsproto.Op
		if n < min {
			op = <-q.done
		} else {
			select {
			case op = <-q.done:
			default:
				return n, nil
			}
		}
		idx, ok := q.ops[op]
		if !ok {
			panic(fmt.Sprintf("bench: the chunk client returned op %p, not one of this clone's", op))
		}
		delete(q.ops, op)
		q.guard.completed()
		u := &q.units[idx]
		out[n] = completion{idx: idx}
		if u.dir == dirRead {
			out[n].n = op.N
		} else {
			out[n].n = len(u.buf) - u.done
		}
		if op.Err != nil {
			out[n].err = fmt.Errorf("weft %s of %d bytes at job offset %d (chunk %v, offset %d): %w",
				dirName(u.dir), len(u.buf)-u.done, u.off+int64(u.done), q.chunk[idx], q.coff[idx], op.Err)
		}
		n++
	}
	return n, nil
}
