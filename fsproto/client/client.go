package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/net"
)

// MapSource hands out cluster maps: Map blocks until a map with Epoch >
// after exists (after 0: the current one) or ctx ends. The manager's
// client satisfies it. It must be safe for concurrent use.
type MapSource interface {
	Map(ctx context.Context, after uint64) (*clustermap.Map, error)
}

// Config configures a Client.
type Config struct {
	// Maps is where the client gets the cluster map. Required.
	Maps MapSource
	// ClusterID, KeyID and Secret authenticate the client to the nodes
	// (see net.ClientConfig). Required unless Pool is given.
	ClusterID, KeyID string
	Secret           []byte
	// Pool, if set, is used to reach the nodes instead of one the client
	// makes; the caller then closes it.
	Pool *net.Pool
	// RefreshWait bounds the wait for a newer map before a retry.
	// Default 500ms.
	RefreshWait time.Duration
	// AttemptTimeout bounds one attempt: a primary that does not answer in
	// that time (cut off from its replicas, or gone without closing the
	// connection) is given up for a map refresh and a retry, with the same
	// RequestID. Default 5s.
	AttemptTimeout time.Duration
	// BackoffMin and BackoffMax bound the wait between retries when no
	// newer map came. Defaults 5ms and 200ms.
	BackoffMin, BackoffMax time.Duration
	// Logger receives client events. Default slog.Default().
	Logger *slog.Logger
}

// Errors.
var (
	// ErrNoContainer: the map has no container of that name or id.
	ErrNoContainer = errors.New("client: no such container")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("client: closed")
	// errNoPrimary: the PG has no replica the map lets serve (retried).
	errNoPrimary = errors.New("client: pg has no primary")
)

// Client reaches one cluster's data containers.
type Client struct {
	cfg     Config
	pool    *net.Pool
	ownPool bool
	m       atomic.Pointer[clustermap.Map]
	closed  atomic.Bool
	log     *slog.Logger
	// opts are DialCluster's options, the defaults of OpenContainer.
	opts []Option
	mu   struct {
		sync.Mutex
		flight chan struct{} // closed when the running map poll ends
	}
}

// Dial validates cfg, fetches the current map and returns a client.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	var errs []error
	if cfg.Maps == nil {
		errs = append(errs, errors.New("client: Maps is nil"))
	}
	if cfg.Pool == nil && (cfg.ClusterID == "" || cfg.KeyID == "" || len(cfg.Secret) == 0) {
		errs = append(errs, fmt.Errorf("client: ClusterID %q, KeyID %q and a Secret (%d bytes) are required without a Pool", cfg.ClusterID, cfg.KeyID, len(cfg.Secret)))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"RefreshWait", cfg.RefreshWait}, {"AttemptTimeout", cfg.AttemptTimeout}, {"BackoffMin", cfg.BackoffMin}, {"BackoffMax", cfg.BackoffMax}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("client: %s %v is negative", d.name, d.v))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.RefreshWait == 0 {
		cfg.RefreshWait = 500 * time.Millisecond
	}
	if cfg.AttemptTimeout == 0 {
		cfg.AttemptTimeout = 5 * time.Second
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin = 5 * time.Millisecond
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = 200 * time.Millisecond
	}
	cfg.BackoffMax = max(cfg.BackoffMax, cfg.BackoffMin)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m, err := cfg.Maps.Map(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("client: fetching the cluster map: %w", err)
	}
	if m == nil {
		return nil, errors.New("client: the map source returned no map")
	}
	c := &Client{cfg: cfg, pool: cfg.Pool, log: cfg.Logger}
	if c.pool == nil {
		p, err := net.NewPool(net.PoolConfig{Client: net.ClientConfig{ClusterID: cfg.ClusterID, KeyID: cfg.KeyID,
			Secret: cfg.Secret, Logger: cfg.Logger}})
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		c.pool, c.ownPool = p, true
	}
	c.m.Store(m)
	return c, nil
}

// Map returns the client's current map.
func (c *Client) Map() *clustermap.Map { return c.m.Load() }

// Close closes the client's connections (not a Pool given in Config).
// Operations in flight fail.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if c.ownPool {
		return c.pool.Close()
	}
	return nil
}

// Container returns the container named name in the current map.
func (c *Client) Container(name string) (*Container, error) {
	ct, ok := c.m.Load().ContainerByName(name)
	if !ok && c.refresh(context.Background(), c.m.Load().Epoch) {
		ct, ok = c.m.Load().ContainerByName(name)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %q in map epoch %d", ErrNoContainer, name, c.m.Load().Epoch)
	}
	return &Container{c: c, id: ct.ID, name: ct.Name}, nil
}

// ContainerByID returns the container with the given id.
func (c *Client) ContainerByID(id clustermap.ContainerID) (*Container, error) {
	ct, ok := c.m.Load().Container(id)
	if !ok {
		return nil, fmt.Errorf("%w: id %d in map epoch %d", ErrNoContainer, id, c.m.Load().Epoch)
	}
	return &Container{c: c, id: ct.ID, name: ct.Name}, nil
}

// refresh waits (at most RefreshWait, and as long as ctx allows) for a
// map newer than after and reports whether the client has one now. One
// long poll runs at a time (the managers hold a request slot per poll);
// concurrent callers wait for its outcome.
func (c *Client) refresh(ctx context.Context, after uint64) bool {
	if c.m.Load().Epoch > after {
		return true
	}
	c.mu.Lock()
	f := c.mu.flight
	if f == nil {
		f = make(chan struct{})
		c.mu.flight = f
		c.mu.Unlock()
		c.poll(ctx, after)
		c.mu.Lock()
		c.mu.flight = nil
		c.mu.Unlock()
		close(f)
	} else {
		c.mu.Unlock()
		select {
		case <-f:
		case <-ctx.Done():
		}
	}
	return c.m.Load().Epoch > after
}

// poll asks the MapSource for a map newer than after and keeps it.
func (c *Client) poll(ctx context.Context, after uint64) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RefreshWait)
	defer cancel()
	m, err := c.cfg.Maps.Map(ctx, after)
	if err != nil || m == nil {
		return
	}
	for {
		cur := c.m.Load()
		if cur.Epoch >= m.Epoch || c.m.CompareAndSwap(cur, m) {
			return
		}
	}
}

// headerFunc encodes a request's header for a PG (its id and epoch).
type headerFunc func(b []byte, pg *clustermap.PG) []byte

// failedAttempt is an attempt of a request that failed: its error, and
// the epoch of the map it was sent by. The zero value: no attempt yet.
type failedAttempt struct {
	err   error
	epoch uint64
}

// callAfter sends one request to the chunk's primary, retrying as the
// package doc says; the caller owns the Response. With prev, a first
// attempt that failed (goTry's), it continues from there: a map refresh
// or a backoff comes next, not a second attempt on the same map.
func (c *Client) callAfter(ctx context.Context, prev failedAttempt, chunk fsproto.ChunkID, kind net.Kind, hdr headerFunc, payload []byte) (*net.Response, error) {
	var hb [64]byte
	backoff := c.cfg.BackoffMin
	for {
		if err := prev.err; err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
			}
			if !retryAttempt(err) {
				return nil, err
			}
			if c.refresh(ctx, prev.epoch) {
				backoff = c.cfg.BackoffMin
			} else {
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
					return nil, fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
				}
				backoff = min(2*backoff, c.cfg.BackoffMax)
			}
		}
		if c.closed.Load() {
			return nil, ErrClosed
		}
		m := c.m.Load()
		resp, err := c.try(ctx, m, chunk, kind, hdr, hb[:0], payload)
		if err == nil {
			return resp, nil
		}
		prev = failedAttempt{err: err, epoch: m.Epoch}
	}
}

// try sends the request once, to the primary m names. AttemptTimeout
// bounds the wait for a connection and, separately, for the response: on
// the connection's timer (net.Conn.CallWithin), not a context and a timer
// of the attempt's own.
func (c *Client) try(ctx context.Context, m *clustermap.Map, chunk fsproto.ChunkID, kind net.Kind, hdr headerFunc, hb, payload []byte) (*net.Response, error) {
	pg, node, conn, err := c.primary(ctx, m, chunk)
	if err != nil {
		return nil, err
	}
	resp, err := conn.CallWithin(ctx, c.cfg.AttemptTimeout, kind, hdr(hb, pg), payload)
	if err != nil {
		return nil, fmt.Errorf("client: node %d at %s: %w", node.ID, node.Addr, err)
	}
	return resp, nil
}

// primary returns the chunk's PG in m, its primary and a connection to it.
func (c *Client) primary(ctx context.Context, m *clustermap.Map, chunk fsproto.ChunkID) (*clustermap.PG, *clustermap.Node, *net.Conn, error) {
	pg, err := m.Locate(clustermap.ContainerID(chunk.Container), chunk.Inode, chunk.Index)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", fsproto.ErrUnknownContainer, err)
	}
	p := pg.Primary()
	if p == 0 {
		return nil, nil, nil, fmt.Errorf("%w: pg %d at epoch %d", errNoPrimary, pg.ID, pg.Epoch)
	}
	n, ok := m.Node(p)
	if !ok {
		return nil, nil, nil, fmt.Errorf("%w: primary %d of pg %d is not in map epoch %d", errNoPrimary, p, pg.ID, m.Epoch)
	}
	conn, err := c.pool.GetWithin(ctx, c.cfg.AttemptTimeout, n.Addr)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("client: node %d at %s: %w", p, n.Addr, err)
	}
	return pg, n, conn, nil
}

// goTry starts one attempt of a request as try does, without waiting:
// done runs with the answered call on the goroutine that completes it
// (usually the connection's reader; see net.Conn.GoFunc), the response's
// payload read into into when it fits. When the attempt fails, goOn runs
// on a goroutine of its own with it, to continue as the synchronous path
// does (callAfter); when it cannot start (no primary, no connection, the
// client closed), goOn runs with no attempt, and the synchronous path
// makes the first.
func (c *Client) goTry(ctx context.Context, chunk fsproto.ChunkID, kind net.Kind, hdr headerFunc, payload, into []byte, done func(*net.Call), goOn func(failedAttempt)) {
	if c.closed.Load() {
		go goOn(failedAttempt{})
		return
	}
	var hb [64]byte
	m := c.m.Load()
	pg, node, conn, err := c.primary(ctx, m, chunk)
	if err != nil {
		go goOn(failedAttempt{})
		return
	}
	conn.GoFuncWithin(ctx, c.cfg.AttemptTimeout, kind, hdr(hb[:0], pg), payload, into, func(call *net.Call) {
		if call.Error == nil {
			done(call)
			return
		}
		go goOn(failedAttempt{err: fmt.Errorf("client: node %d at %s: %w", node.ID, node.Addr, call.Error), epoch: m.Epoch})
	})
}

// retryAttempt reports whether call retries after an attempt failed with
// err (its context still live): on a retryable error, or the attempt's
// time limit.
func retryAttempt(err error) bool {
	return retryable(err) || errors.Is(err, context.DeadlineExceeded)
}

var codeErrors = map[net.ErrorCode]error{
	fsproto.CodeNotFound:         fsproto.ErrNotFound,
	fsproto.CodeNoSpace:          fsproto.ErrNoSpace,
	fsproto.CodeInvalid:          fsproto.ErrInvalid,
	fsproto.CodeCorrupt:          fsproto.ErrCorrupt,
	fsproto.CodeReadOnly:         fsproto.ErrReadOnly,
	fsproto.CodeUnknownContainer: fsproto.ErrUnknownContainer,
	fsproto.CodeStaleEpoch:       fsproto.ErrStaleEpoch,
	fsproto.CodeBadMessage:       fsproto.ErrBadMessage,
	fsproto.CodeUnavailable:      fsproto.ErrUnavailable,
	fsproto.CodeAccessDenied:     fsproto.ErrAccessDenied,
}

// retryable reports whether err invites a retry (see the package doc).
func retryable(err error) bool {
	var re *net.RemoteError
	if errors.As(err, &re) {
		switch re.Code {
		case fsproto.CodeStaleEpoch, fsproto.CodeUnavailable, net.CodeShuttingDown, fsproto.CodeUnknownContainer:
			// An unknown container may be a node's map lagging ours;
			// call gives up on it only through ctx.
			return true
		}
		return false
	}
	switch {
	case errors.Is(err, errNoPrimary), errors.Is(err, net.ErrConnClosed):
		return true
	case errors.Is(err, fsproto.ErrUnknownContainer), errors.Is(err, net.ErrPoolClosed), errors.Is(err, net.ErrTooLarge):
		return false
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	}
	// Dial failures (refused, reset, timeout): the node may be down.
	return true
}

// opError wraps err with the operation and the chunk, and with fsproto's
// sentinel for a chunk code.
func opError(op string, chunk fsproto.ChunkID, err error) error {
	var re *net.RemoteError
	if errors.As(err, &re) {
		if s, ok := codeErrors[re.Code]; ok {
			return fmt.Errorf("client: %s %v: %w: %w", op, chunk, s, err)
		}
	}
	return fmt.Errorf("client: %s %v: %w", op, chunk, err)
}

// Container is one data container of the cluster.
type Container struct {
	c    *Client
	id   clustermap.ContainerID
	name string
}

// ID returns the container's id.
func (ct *Container) ID() clustermap.ContainerID { return ct.id }

// Name returns the container's name.
func (ct *Container) Name() string { return ct.name }

// ChunkSize returns the container's chunk size C in bytes (its policy's,
// with the default for 0): file bytes [k*C, (k+1)*C) are chunk k.
func (ct *Container) ChunkSize() int64 {
	c, ok := ct.c.m.Load().Container(ct.id)
	if !ok {
		return int64(clustermap.ChunkSizeDefault)
	}
	return int64(c.Policy.WithDefaults().ChunkSize)
}

func (ct *Container) chunk(inode, index uint64) (fsproto.ChunkID, error) {
	ch := fsproto.ChunkID{Container: uint64(ct.id), Inode: inode, Index: index}
	return ch, ch.Check()
}

// Write writes data at off of chunk (inode, index) under a fresh
// RequestID, and returns once it is durable on every replica of the PG's
// epoch. data must not change until Write returns.
func (ct *Container) Write(ctx context.Context, inode, index uint64, off uint32, data []byte) (fsproto.WriteResult, error) {
	return ct.SendWrite(ctx, inode, index, off, data, fsproto.NewRequestID())
}

// SendWrite is Write with a given RequestID: sending the same id again
// (for the same chunk, offset and data) is a retry, applied at most once.
func (ct *Container) SendWrite(ctx context.Context, inode, index uint64, off uint32, data []byte, rid fsproto.RequestID) (fsproto.WriteResult, error) {
	ch, hdr, err := ct.writeHeader(inode, index, off, data, rid)
	if err != nil {
		return fsproto.WriteResult{}, err
	}
	return ct.mutate(ctx, "write", ch, fsproto.KindWrite, hdr, data)
}

// writeHeader checks a write's arguments and returns its header function.
func (ct *Container) writeHeader(inode, index uint64, off uint32, data []byte, rid fsproto.RequestID) (fsproto.ChunkID, headerFunc, error) {
	ch, err := ct.chunk(inode, index)
	if err != nil {
		return ch, nil, opError("write", ch, err)
	}
	if len(data) == 0 || len(data) > fsproto.MaxReadBytes {
		return ch, nil, opError("write", ch, fmt.Errorf("%w: %d bytes of data, want 1..%d", fsproto.ErrInvalid, len(data), fsproto.MaxReadBytes))
	}
	return ch, func(b []byte, pg *clustermap.PG) []byte {
		return fsproto.AppendWrite(b, fsproto.Write{Chunk: ch, Off: off, PG: uint32(pg.ID), Epoch: pg.Epoch, RequestID: rid})
	}, nil
}

// Truncate sets the chunk's size under a fresh RequestID.
func (ct *Container) Truncate(ctx context.Context, inode, index uint64, size uint32) (fsproto.WriteResult, error) {
	ch, err := ct.chunk(inode, index)
	if err != nil {
		return fsproto.WriteResult{}, opError("truncate", ch, err)
	}
	rid := fsproto.NewRequestID()
	hdr := func(b []byte, pg *clustermap.PG) []byte {
		return fsproto.AppendTruncate(b, fsproto.Truncate{Chunk: ch, Size: size, PG: uint32(pg.ID), Epoch: pg.Epoch, RequestID: rid})
	}
	return ct.mutate(ctx, "truncate", ch, fsproto.KindTruncate, hdr, nil)
}

// Delete removes the chunk under a fresh RequestID; deleting a missing
// chunk succeeds.
func (ct *Container) Delete(ctx context.Context, inode, index uint64) (fsproto.WriteResult, error) {
	ch, err := ct.chunk(inode, index)
	if err != nil {
		return fsproto.WriteResult{}, opError("delete", ch, err)
	}
	rid := fsproto.NewRequestID()
	hdr := func(b []byte, pg *clustermap.PG) []byte {
		return fsproto.AppendDelete(b, fsproto.Delete{Chunk: ch, PG: uint32(pg.ID), Epoch: pg.Epoch, RequestID: rid})
	}
	return ct.mutate(ctx, "delete", ch, fsproto.KindDelete, hdr, nil)
}

func (ct *Container) mutate(ctx context.Context, op string, ch fsproto.ChunkID, kind net.Kind, hdr headerFunc, data []byte) (fsproto.WriteResult, error) {
	return ct.mutateAfter(ctx, failedAttempt{}, op, ch, kind, hdr, data)
}

func (ct *Container) mutateAfter(ctx context.Context, prev failedAttempt, op string, ch fsproto.ChunkID, kind net.Kind, hdr headerFunc, data []byte) (fsproto.WriteResult, error) {
	resp, err := ct.c.callAfter(ctx, prev, ch, kind, hdr, data)
	if err != nil {
		return fsproto.WriteResult{}, opError(op, ch, err)
	}
	return writeResult(op, ch, resp)
}

// writeResult decodes a mutation's response and releases it.
func writeResult(op string, ch fsproto.ChunkID, resp *net.Response) (fsproto.WriteResult, error) {
	defer resp.Release()
	res, err := fsproto.DecodeWriteResult(resp.Header)
	if err != nil {
		return fsproto.WriteResult{}, opError(op, ch, err)
	}
	return res, nil
}

// Read reads into p from off of the chunk, as io.ReaderAt: n < len(p)
// only with an error, io.EOF at the chunk's end. The read is served by
// the PG's primary and is linearizable. len(p) is 1..fsproto.MaxReadBytes.
func (ct *Container) Read(ctx context.Context, inode, index uint64, off uint32, p []byte) (int, error) {
	ch, hdr, err := ct.readHeader(inode, index, off, p)
	if err != nil {
		return 0, err
	}
	return ct.readAfter(ctx, failedAttempt{}, ch, hdr, p)
}

func (ct *Container) readAfter(ctx context.Context, prev failedAttempt, ch fsproto.ChunkID, hdr headerFunc, p []byte) (int, error) {
	resp, err := ct.c.callAfter(ctx, prev, ch, fsproto.KindRead, hdr, nil)
	if err != nil {
		return 0, opError("read", ch, err)
	}
	return readResult(ch, p, resp)
}

// readHeader checks a read's arguments and returns its header function.
func (ct *Container) readHeader(inode, index uint64, off uint32, p []byte) (fsproto.ChunkID, headerFunc, error) {
	ch, err := ct.chunk(inode, index)
	if err != nil {
		return ch, nil, opError("read", ch, err)
	}
	if len(p) == 0 || len(p) > fsproto.MaxReadBytes {
		return ch, nil, opError("read", ch, fmt.Errorf("%w: read of %d bytes, want 1..%d", fsproto.ErrInvalid, len(p), fsproto.MaxReadBytes))
	}
	return ch, func(b []byte, pg *clustermap.PG) []byte {
		return fsproto.AppendRead(b, fsproto.Read{Chunk: ch, Off: off, Len: uint32(len(p)), Epoch: pg.Epoch})
	}, nil
}

// readResult checks a read's response and returns what Read returns;
// the payload is in p already when the response says so (Response.Into),
// else it is copied there. It releases resp.
func readResult(ch fsproto.ChunkID, p []byte, resp *net.Response) (int, error) {
	defer resp.Release()
	rr, err := fsproto.DecodeReadResult(resp.Header)
	if err != nil {
		return 0, opError("read", ch, err)
	}
	var data []byte
	switch {
	case resp.Payload != nil:
		data = resp.Payload.Bytes()
	case resp.Into > 0:
		data = p[:resp.Into]
	}
	if int(rr.N) != len(data) || len(data) > len(p) {
		return 0, opError("read", ch, fmt.Errorf("%w: read result says %d bytes, payload has %d, asked %d", fsproto.ErrBadMessage, rr.N, len(data), len(p)))
	}
	n := len(data)
	if resp.Into == 0 {
		copy(p, data)
	}
	if n < len(p) {
		if !rr.EOF {
			return n, opError("read", ch, fmt.Errorf("%w: short read of %d bytes without EOF", fsproto.ErrBadMessage, n))
		}
		return n, io.EOF
	}
	return n, nil
}

// GoWrite starts Write and returns at once; the Op is delivered on done
// (which must have buffer space; nil: a channel of capacity 1 is made).
// data must not change until then. The first attempt goes out from the
// caller's goroutine and completes on the connection's reader, with no
// goroutine of its own; when it fails in a way Write retries (a moved
// primary, a node down), the request continues as in Write, on a
// goroutine, under the same RequestID.
func (ct *Container) GoWrite(ctx context.Context, inode, index uint64, off uint32, data []byte, done chan *fsproto.Op) *fsproto.Op {
	op := ct.newOp(inode, index, done)
	ch, hdr, err := ct.writeHeader(inode, index, off, data, fsproto.NewRequestID())
	if err != nil {
		op.Err = err
		op.Done <- op
		return op
	}
	goOn := func(prev failedAttempt) {
		op.Result, op.Err = ct.mutateAfter(ctx, prev, "write", ch, fsproto.KindWrite, hdr, data)
		op.Done <- op
	}
	ct.c.goTry(ctx, ch, fsproto.KindWrite, hdr, data, nil, func(call *net.Call) {
		op.Result, op.Err = writeResult("write", ch, call.Response)
		op.Done <- op
	}, goOn)
	return op
}

// GoRead starts Read into p as GoWrite starts Write; the response's
// payload is read from the socket straight into p. p must not be used
// until the Op is delivered.
func (ct *Container) GoRead(ctx context.Context, inode, index uint64, off uint32, p []byte, done chan *fsproto.Op) *fsproto.Op {
	op := ct.newOp(inode, index, done)
	ch, hdr, err := ct.readHeader(inode, index, off, p)
	if err != nil {
		op.Err = err
		op.Done <- op
		return op
	}
	goOn := func(prev failedAttempt) {
		op.N, op.Err = ct.readAfter(ctx, prev, ch, hdr, p)
		op.Done <- op
	}
	ct.c.goTry(ctx, ch, fsproto.KindRead, hdr, nil, p, func(call *net.Call) {
		op.N, op.Err = readResult(ch, p, call.Response)
		op.Done <- op
	}, goOn)
	return op
}

func (ct *Container) newOp(inode, index uint64, done chan *fsproto.Op) *fsproto.Op {
	if done == nil {
		done = make(chan *fsproto.Op, 1)
	}
	return &fsproto.Op{Chunk: fsproto.ChunkID{Container: uint64(ct.id), Inode: inode, Index: index}, Done: done}
}
