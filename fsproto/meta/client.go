package meta

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/namespace"
	"github.com/weftfs/weft/net"
)

// Bounds of the client's retries.
const (
	// clientDialWait bounds the wait for a connection to one member
	// before the next is tried, so a dead member costs little.
	clientDialWait = 300 * time.Millisecond
	// clientCallTimeout bounds one attempt: the member's own propose
	// timeout (default 5 s) plus slack.
	clientCallTimeout = DefaultProposeTimeout + 2*time.Second
	// clientBackoffMin and clientBackoffMax bound the pause after every
	// member failed once in a row (doubling, with jitter).
	clientBackoffMin = 10 * time.Millisecond
	clientBackoffMax = time.Second
)

// ErrReadOnly is returned by Apply when the client's key only grants
// reads.
var ErrReadOnly = errors.New("meta: key is read-only")

// MapSource gives the client the cluster map (a *manager.Client is one):
// Map(ctx, 0) returns the current map.
type MapSource interface {
	Map(ctx context.Context, after uint64) (*clustermap.Map, error)
}

// Client reaches one container's metadata group: it finds the leader
// among the container's Members (following the not-leader hints, else
// trying each member), sends ops with a request id that every retry of
// the op repeats, and reads through the leader. A call's only bound is
// its ctx. Safe for concurrent use; it does not close the pool.
type Client struct {
	c    clustermap.ContainerID
	maps MapSource
	pool *net.Pool
	// id and seq make the request ids: random per Client, counting per
	// op.
	id  uint64
	seq atomic.Uint64

	mu struct {
		sync.Mutex
		m       *clustermap.Map // nil until the first call fetches it
		members []clustermap.NodeID
		addrs   []string
		// pref is the node to try first (the last that served, or the
		// leader a follower named); 0: none, then members[next % n].
		pref clustermap.NodeID
		next int
	}
}

// NewClient returns a client of container c's metadata, which learns the
// members from maps and reaches them over pool.
func NewClient(c clustermap.ContainerID, maps MapSource, pool *net.Pool) *Client {
	cl := &Client{c: c, maps: maps, pool: pool}
	for cl.id == 0 {
		cl.id = rand.Uint64()
	}
	return cl
}

// Apply sends cmd to the group's leader, which stamps the time into it
// and proposes it, and returns the namespace's Result. When the
// namespace refused the command, the error is Result.Err (an
// *namespace.Error: errors.Is(err, syscall.EEXIST), errors.Is(err,
// fs.ErrNotExist) work). Other errors: ctx ended (the op may or may not
// have applied), ErrReadOnly, or a refusal asking again cannot cure.
//
// Every attempt of one Apply carries the same request id, so an op whose
// first attempt's outcome was unknown (a leader change, a lost reply) is
// applied once, and its retry answers the first application's Result.
func (c *Client) Apply(ctx context.Context, cmd namespace.Command) (namespace.Result, error) {
	return c.apply(ctx, RequestID{Client: c.id, Seq: c.seq.Add(1)}, cmd)
}

func (c *Client) apply(ctx context.Context, id RequestID, cmd namespace.Command) (namespace.Result, error) {
	enc, err := namespace.AppendCommand(nil, cmd)
	if err != nil {
		return namespace.Result{}, fmt.Errorf("meta: container %d: %w", c.c, err)
	}
	hdr := opRequest{Container: c.c, ID: id, Command: enc}.append(nil)
	var res namespace.Result
	err = c.run(ctx, "op", KindOp, hdr, func(body []byte) error {
		var err error
		res, err = namespace.DecodeResult(body)
		return err
	})
	if err != nil {
		return namespace.Result{}, err
	}
	return res, res.Err
}

// Lookup returns the attributes of parent/name.
func (c *Client) Lookup(ctx context.Context, parent namespace.Ino, name string) (namespace.Attr, error) {
	r, err := c.read(ctx, readRequest{Op: ReadLookup, Ino: parent, Name: name})
	return r.Attr, err
}

// GetAttr returns ino's attributes.
func (c *Client) GetAttr(ctx context.Context, ino namespace.Ino) (namespace.Attr, error) {
	r, err := c.read(ctx, readRequest{Op: ReadGetAttr, Ino: ino})
	return r.Attr, err
}

// ReadDir returns a page of at most limit (1..4096) entries of dir after
// cookie; see namespace.ReadDir. next is "" on the last page.
func (c *Client) ReadDir(ctx context.Context, dir namespace.Ino, cookie string, limit int) ([]namespace.DirEntry, string, error) {
	if limit <= 0 || limit > readDirLimitMax {
		return nil, "", fmt.Errorf("meta: read-dir limit %d, want 1..%d", limit, readDirLimitMax)
	}
	r, err := c.read(ctx, readRequest{Op: ReadDir, Ino: dir, Name: cookie, Limit: uint32(limit)})
	return r.Entries, r.Next, err
}

// Readlink returns a symlink's target.
func (c *Client) Readlink(ctx context.Context, ino namespace.Ino) (string, error) {
	r, err := c.read(ctx, readRequest{Op: ReadLink, Ino: ino})
	return r.Target, err
}

// GetXattr returns an extended attribute's value.
func (c *Client) GetXattr(ctx context.Context, ino namespace.Ino, name string) ([]byte, error) {
	r, err := c.read(ctx, readRequest{Op: ReadGetXattr, Ino: ino, Name: name})
	return r.Value, err
}

// ListXattr returns an inode's extended attribute names, sorted.
func (c *Client) ListXattr(ctx context.Context, ino namespace.Ino) ([]string, error) {
	r, err := c.read(ctx, readRequest{Op: ReadListXattr, Ino: ino})
	return r.Names, err
}

// StatFS returns the container's usage and quota.
func (c *Client) StatFS(ctx context.Context) (namespace.StatFS, error) {
	r, err := c.read(ctx, readRequest{Op: ReadStatFS})
	return r.StatFS, err
}

// read runs a linearizable read on the leader. A name over the namespace's
// limit fails here with ENAMETOOLONG, as the namespace would.
func (c *Client) read(ctx context.Context, req readRequest) (readReply, error) {
	if len(req.Name) > namespace.NameLenMax {
		return readReply{}, &namespace.Error{Op: "read", Ino: req.Ino, Name: req.Name, Errno: syscall.ENAMETOOLONG}
	}
	req.Container = c.c
	hdr := req.append(nil)
	var rep readReply
	err := c.run(ctx, "read", KindRead, hdr, func(body []byte) error {
		var err error
		rep, err = decodeReadReply(req.Op, body)
		return err
	})
	if err != nil {
		return readReply{}, err
	}
	if rep.Err != nil {
		return readReply{}, rep.Err
	}
	return rep, nil
}

// view returns the members and their addresses, fetching the map on
// first use or when refresh is set.
func (c *Client) view(ctx context.Context, refresh bool) (*clustermap.Map, []clustermap.NodeID, []string, error) {
	c.mu.Lock()
	if c.mu.m != nil && !refresh {
		defer c.mu.Unlock()
		return c.mu.m, c.mu.members, c.mu.addrs, nil
	}
	c.mu.Unlock()
	m, err := c.maps.Map(ctx, 0)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("meta: container %d: map: %w", c.c, err)
	}
	ids, err := Members(m, c.c)
	if err != nil {
		return nil, nil, nil, err
	}
	addrs := make([]string, len(ids))
	for i, id := range ids {
		n, _ := m.Node(id)
		addrs[i] = n.Addr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.m == nil || m.Epoch >= c.mu.m.Epoch {
		c.mu.m, c.mu.members, c.mu.addrs = m, ids, addrs
	}
	return c.mu.m, c.mu.members, c.mu.addrs, nil
}

// target picks the node for the next attempt: the preferred one (the
// last that served, or a hinted leader) if any, else the next member in
// turn.
func (c *Client) target(m *clustermap.Map, members []clustermap.NodeID, addrs []string) (clustermap.NodeID, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.pref != 0 {
		if n, ok := m.Node(c.mu.pref); ok {
			return c.mu.pref, n.Addr
		}
		c.mu.pref = 0
	}
	i := c.mu.next % len(members)
	return members[i], addrs[i]
}

// moveOn records that target failed: try hint next when there is one
// (the leader a follower named, which may lie outside the computed
// members when they changed since the group began), else the member after
// target.
func (c *Client) moveOn(members []clustermap.NodeID, target, hint clustermap.NodeID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hint != 0 && hint != target {
		c.mu.pref = hint
		return
	}
	c.mu.pref = 0
	if i := slices.Index(members, target); i >= 0 {
		c.mu.next = i + 1
	} else {
		c.mu.next++
	}
}

// run sends the request to one node after another until one answers it,
// it fails for good, or ctx ends. A not-leader reply sends the next
// attempt to the hinted leader; every other failure to the next member;
// after as many failures in a row as there are members the client pauses
// (backoff) and re-reads the map.
func (c *Client) run(ctx context.Context, op string, kind net.Kind, hdr []byte, decode func(body []byte) error) error {
	backoff := clientBackoffMin
	refresh := false
	var lastErr error
	failures := 0
	for {
		if err := ctx.Err(); err != nil {
			if lastErr != nil {
				return fmt.Errorf("meta: container %d: %s: %w (last error: %v)", c.c, op, err, lastErr)
			}
			return fmt.Errorf("meta: container %d: %s: %w", c.c, op, err)
		}
		m, members, addrs, err := c.view(ctx, refresh)
		refresh = false
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			return err
		}
		target, addr := c.target(m, members, addrs)
		hint, err := c.try(ctx, addr, kind, hdr, decode)
		if err == nil {
			c.mu.Lock()
			c.mu.pref = target
			c.mu.Unlock()
			return nil
		}
		if final := classify(err); final != nil {
			return fmt.Errorf("meta: container %d: node %d (%s): %s: %w", c.c, target, addr, op, final)
		}
		lastErr = fmt.Errorf("node %d (%s): %w", target, addr, err)
		c.moveOn(members, target, hint)
		failures++
		if failures%len(members) != 0 {
			continue
		}
		// As many failures in a row as members: pause, and look again at
		// the map in case the members moved.
		refresh = true
		d := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, clientBackoffMax)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}

// errNotLeader is an attempt's failure when the member does not lead.
var errNotLeader = errors.New("meta: not the leader")

// try makes one attempt on addr. On a not-leader reply it returns
// errNotLeader and the hint.
func (c *Client) try(ctx context.Context, addr string, kind net.Kind, hdr []byte, decode func([]byte) error) (clustermap.NodeID, error) {
	gctx, cancel := context.WithTimeout(ctx, clientDialWait)
	conn, err := c.pool.Get(gctx, addr)
	cancel()
	if err != nil {
		return 0, err
	}
	actx, cancel := context.WithTimeout(ctx, clientCallTimeout)
	defer cancel()
	resp, err := conn.Call(actx, kind, hdr, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Release()
	var body []byte
	if resp.Payload != nil {
		body = resp.Payload.Bytes()
	}
	h, err := decodeReplyHeader(resp.Header, len(body))
	if err != nil {
		return 0, err
	}
	if h.Status == statusNotLeader {
		return h.Leader, errNotLeader
	}
	return 0, decode(body)
}

// classify returns the error to give the caller, or nil when the attempt
// is worth repeating on another member.
func classify(err error) (final error) {
	var re *net.RemoteError
	if errors.As(err, &re) {
		switch re.Code {
		case CodeUnavailable, CodeAmbiguous, CodeNoMember, net.CodeShuttingDown, net.CodeInternal:
			// Ambiguous outcomes are retried with the same request id.
			return nil
		case CodeReadOnly:
			return fmt.Errorf("%w: %s", ErrReadOnly, re.Message)
		}
		// CodeBadRequest, CodeRejected, handshake refusals and unknown
		// codes: asking again cannot help.
		return err
	}
	if errors.Is(err, net.ErrTooLarge) {
		return err
	}
	// Not-leader replies, connection failures, attempt timeouts and
	// corrupt replies: another member (or a new connection) may do better.
	return nil
}

// Errno maps an error of a Client call to the errno a file system mount
// should return: the namespace's own errno when it refused the call,
// EROFS for ErrReadOnly, ENOENT for a container that is not in the map,
// EINTR when ctx was cancelled and ETIMEDOUT when its deadline passed (the
// op may or may not have applied), EIO for anything else; 0 for nil.
func Errno(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case namespace.Errno(err) != 0:
		return namespace.Errno(err)
	case errors.Is(err, ErrReadOnly):
		return syscall.EROFS
	case errors.Is(err, clustermap.ErrNotFound):
		return syscall.ENOENT
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case errors.Is(err, context.DeadlineExceeded):
		return syscall.ETIMEDOUT
	}
	return syscall.EIO
}
