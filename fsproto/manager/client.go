package manager

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/net"
)

// Bounds of the client's retries.
const (
	// clientDialWait bounds the wait for a connection to one member
	// before the next is tried, so a dead member costs little. The
	// pool's dial goes on in the background (bounded by its own
	// DialTimeout), so a slow but live member is ready on a later round.
	clientDialWait = 300 * time.Millisecond
	// clientCallTimeout bounds a heartbeat call, and is the slack a long
	// poll's call gets beyond its wait.
	clientCallTimeout = time.Second
	// clientApplyTimeout bounds an apply attempt: the member's own
	// ProposeTimeout (default 5 s) plus slack.
	clientApplyTimeout = DefaultProposeTimeout + 2*time.Second
	// clientBackoffMin and clientBackoffMax bound the pause after every
	// member failed once in a row (doubling, with jitter).
	clientBackoffMin = 20 * time.Millisecond
	clientBackoffMax = time.Second
	// clientMapWait is the wait a long poll asks for; members clamp it
	// to their MapWaitMax.
	clientMapWait = DefaultMapWaitMax
)

// ErrReadOnly is returned by Apply and Heartbeat when the client's key
// only grants reads.
var ErrReadOnly = errors.New("manager: key is read-only")

// Client reaches the managers: nodes, clients and the CLI use it to
// follow the map (Map), change it (Apply) and report liveness
// (Heartbeat). It tries the members in turn, starting with the one that
// answered last, pausing with backoff after each full round of failures,
// until its context ends: a call's only bound is its ctx, so give it a
// deadline or cancel it. Safe for concurrent use.
//
// NB: a long poll (Map with after > 0) holds one of the member's
// per-connection request slots (net's ServerConfig.MaxConcurrent, default
// 128) while it waits; a process should follow the map with one goroutine
// and share the result, not poll from many at once.
type Client struct {
	addrs []string
	pool  *net.Pool
	// id and seq make Apply's request ids: random per Client, so that
	// two clients never share one, and counting per call.
	id  uint64
	seq atomic.Uint64

	mu struct {
		sync.Mutex
		next int // index of the member to try first
		// lead is where Heartbeat starts: the member that last accepted
		// one, the leader, which only heartbeats need. Map and Apply
		// (which any member answers) move next, often to a follower;
		// heartbeats that started there, past dead members, ran out of
		// time before reaching the leader, and a live node was taken
		// Down (TestLoseTwoOfFive, two of five members killed).
		lead int
	}
}

// NewClient returns a client of the managers at addrs (net addresses of
// the processes that serve the manager RPCs). It uses pool and does not
// close it. addrs must not be empty.
func NewClient(addrs []string, pool *net.Pool) *Client {
	if len(addrs) == 0 {
		panic("manager: NewClient with no manager address")
	}
	c := &Client{addrs: append([]string(nil), addrs...), pool: pool}
	for c.id == 0 {
		c.id = rand.Uint64()
	}
	return c
}

// Map returns a map whose epoch is above after, waiting (long-polling the
// members) until one exists or ctx ends. With after = 0 it returns the
// current map after a read barrier on the member (raftgroup ReadIndex), so
// it reflects every Apply that completed before the call; with after > 0
// a member answers from the map it has applied, which may lag the leader
// but is always newer than after. A long poll that expires moves on to
// the next member, so a member cut off from the group cannot hold a
// caller forever.
func (c *Client) Map(ctx context.Context, after uint64) (*clustermap.Map, error) {
	var m *clustermap.Map
	err := c.run(ctx, "map", func(actx context.Context, conn *net.Conn) (bool, error) {
		req := getMapRequest{After: after, Linearizable: after == 0, Wait: clientMapWait}
		if dl, ok := ctx.Deadline(); ok {
			req.Wait = min(req.Wait, time.Until(dl))
		}
		resp, err := conn.Call(actx, KindGetMap, req.append(nil), nil)
		if err != nil {
			return false, err
		}
		defer resp.Release()
		r, got, err := decodeMapResponse(resp)
		if err != nil {
			return false, err
		}
		if !r.HasMap {
			// No newer map within the wait: ask again (the next member,
			// in case this one is cut off).
			return false, nil
		}
		if got.Epoch <= after && after != 0 {
			return false, corrupt("map at epoch %d, asked for one above %d", got.Epoch, after)
		}
		m = got
		return true, nil
	}, clientMapWait+clientCallTimeout) // the long poll's wait, and slack
	return m, err
}

// Apply proposes cmd through a member and returns the map as it was right
// after cmd applied. A command the map refuses fails with an error
// wrapping the clustermap sentinel (ErrNoChange, ErrNotFound, ErrExists,
// ErrInvalid, ErrStaleEpoch); then the map did not change.
//
// When an attempt's outcome is unknown (a member lost the proposal on a
// leader change, a connection died after the request was sent), Apply
// tries again with the same request id; the state machine applies an id
// once and answers a retry with the first attempt's outcome, so a command
// is never applied twice and the caller learns what really happened.
func (c *Client) Apply(ctx context.Context, cmd clustermap.Command) (*clustermap.Map, error) {
	data, err := clustermap.AppendCommand(nil, cmd)
	if err != nil {
		return nil, fmt.Errorf("manager: apply %v: %w", cmd.Kind(), err)
	}
	// Every attempt of this call carries the same request id, so the
	// command applies at most once however often it is retried.
	hdr := applyRequest{ID: RequestID{Client: c.id, Seq: c.seq.Add(1)}, Command: data}.append(nil)
	var m *clustermap.Map
	err = c.run(ctx, "apply "+cmd.Kind().String(), func(actx context.Context, conn *net.Conn) (bool, error) {
		resp, err := conn.Call(actx, KindApply, hdr, nil)
		if err != nil {
			return false, err
		}
		defer resp.Release()
		r, got, err := decodeMapResponse(resp)
		if err != nil {
			return false, err
		}
		if !r.HasMap {
			return false, corrupt("apply reply without a map")
		}
		m = got
		return true, nil
	}, clientApplyTimeout)
	return m, err
}

// Heartbeat tells the leader that node is alive. Only the leader accepts
// heartbeats, so Heartbeat tries the members until one does (and starts
// there next time). A node missing from the map gets an error wrapping
// clustermap.ErrNotFound: it should join (AddNode) again.
func (c *Client) Heartbeat(ctx context.Context, node clustermap.NodeID) error {
	hdr := heartbeatRequest{Node: uint64(node)}.append(nil)
	return c.runFrom(ctx, &c.mu.lead, "heartbeat", replyAttempt(KindHeartbeat, hdr), clientCallTimeout)
}

// replyAttempt is an attempt of a call of kind with header hdr whose
// answer is a reply without a map.
func replyAttempt(kind net.Kind, hdr []byte) func(context.Context, *net.Conn) (bool, error) {
	return func(actx context.Context, conn *net.Conn) (bool, error) {
		resp, err := conn.Call(actx, kind, hdr, nil)
		if err != nil {
			return false, err
		}
		defer resp.Release()
		if _, err := decodeReply(resp.Header); err != nil {
			return false, err
		}
		return true, nil
	}
}

// decodeMapResponse decodes a reply and, when it carries one, its map.
func decodeMapResponse(resp *net.Response) (reply, *clustermap.Map, error) {
	var payload []byte
	if resp.Payload != nil {
		payload = resp.Payload.Bytes()
	}
	return decodeMapReply(resp.Header, payload)
}

// decodeMapReply decodes a reply's header and payload. The map does not
// alias payload.
func decodeMapReply(header, payload []byte) (reply, *clustermap.Map, error) {
	r, err := decodeReply(header)
	if err != nil {
		return r, nil, err
	}
	if !r.HasMap {
		if len(payload) > 0 {
			return r, nil, corrupt("reply without the map flag has a %d-byte payload", len(payload))
		}
		return r, nil, nil
	}
	if len(payload) == 0 {
		return r, nil, corrupt("reply with the map flag has no payload")
	}
	m, err := clustermap.DecodeMap(payload)
	if err != nil {
		return r, nil, corrupt("reply map: %w", err)
	}
	if m.Epoch != r.Epoch {
		return r, nil, corrupt("reply epoch %d, its map's %d", r.Epoch, m.Epoch)
	}
	return r, m, nil
}

// classify classifies an attempt's error: final (return it to the caller)
// or worth trying again on the next member.
func classify(err error) (final error) {
	var re *net.RemoteError
	if errors.As(err, &re) {
		switch re.Code {
		case CodeUnavailable, CodeAmbiguous, net.CodeShuttingDown, net.CodeInternal:
			// Ambiguous outcomes are retried: see Apply.
			return nil
		case CodeReadOnly:
			return fmt.Errorf("%w: %s", ErrReadOnly, re.Message)
		case CodeAccessDenied:
			return fmt.Errorf("%w: %s", ErrAccessDenied, re.Message)
		case CodeNoChange, CodeNotFound, CodeExists, CodeInvalid, CodeStaleEpoch:
			return &commandError{code: re.Code, msg: re.Message}
		}
		// CodeBadRequest, CodeRejected, handshake refusals (wrong key,
		// cluster or version) and unknown codes: asking again cannot
		// help.
		return err
	}
	if errors.Is(err, net.ErrTooLarge) {
		return err
	}
	// Connection failures, attempt timeouts and corrupt replies: another
	// member (or a new connection) may do better.
	return nil
}

// run calls attempt on one member after another until it succeeds, fails
// for good, or ctx ends. attempt returns done true on success; done false
// with a nil error asks for another attempt without counting a failure
// (an expired long poll).
func (c *Client) run(ctx context.Context, op string, attempt func(context.Context, *net.Conn) (bool, error), callTimeout time.Duration) error {
	return c.runFrom(ctx, &c.mu.next, op, attempt, callTimeout)
}

// runFrom is run starting at the member *start (c.mu.next or c.mu.lead,
// read and moved under c.mu).
func (c *Client) runFrom(ctx context.Context, start *int, op string, attempt func(context.Context, *net.Conn) (bool, error), callTimeout time.Duration) error {
	c.mu.Lock()
	first := *start
	c.mu.Unlock()
	n := len(c.addrs)
	backoff := clientBackoffMin
	var lastErr error
	failures := 0
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			if lastErr != nil {
				return fmt.Errorf("manager: %s: %w (last error: %v)", op, err, lastErr)
			}
			return fmt.Errorf("manager: %s: %w", op, err)
		}
		idx := (first + i) % n
		addr := c.addrs[idx]
		done, err := c.try(ctx, addr, attempt, callTimeout)
		if done {
			c.mu.Lock()
			*start = idx
			c.mu.Unlock()
			return nil
		}
		if err == nil {
			continue
		}
		if final := classify(err); final != nil {
			if errors.Is(final, ErrReadOnly) || errors.Is(final, ErrAccessDenied) || errors.Is(final, clustermap.ErrNotFound) || isCommandError(final) {
				// The member answered: remember it as a good start.
				c.mu.Lock()
				*start = idx
				c.mu.Unlock()
			}
			return fmt.Errorf("manager %s: %s: %w", addr, op, final)
		}
		lastErr = fmt.Errorf("%s: %w", addr, err)
		// Concurrent and later calls start past a member that failed.
		c.mu.Lock()
		if *start == idx {
			*start = (idx + 1) % n
		}
		c.mu.Unlock()
		failures++
		if failures%n != 0 {
			continue
		}
		// Every member failed once in a row: pause before the next round.
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

func isCommandError(err error) bool {
	var ce *commandError
	return errors.As(err, &ce)
}

// try makes one attempt on addr: a connection within
// clientDialWait (a dead member costs no more), then the call
// within callTimeout.
func (c *Client) try(ctx context.Context, addr string, attempt func(context.Context, *net.Conn) (bool, error), callTimeout time.Duration) (bool, error) {
	gctx, cancel := context.WithTimeout(ctx, clientDialWait)
	conn, err := c.pool.Get(gctx, addr)
	cancel()
	if err != nil {
		return false, err
	}
	actx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return attempt(actx, conn)
}
