package fsproto

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/weftfs/weft/net"
)

// ChunkClientConfig configures a ChunkClient.
type ChunkClientConfig struct {
	// Epoch is sent with every request; the server refuses another than
	// its own.
	Epoch uint64
	// PG returns the placement group of a chunk's mutations. Default: 0.
	// TODO(cluster): derive it from the cluster map.
	PG func(ChunkID) uint32
	// Redial, when set, is called once when a call fails because its
	// connection closed (net.ErrConnClosed); the call is then retried once
	// on the new connection, mutations with the same RequestID so the
	// server applies them at most once (within its dedupe bound). The
	// client closes neither the old nor the new connection.
	Redial func(ctx context.Context) (*net.Conn, error)
}

// ChunkClient sends chunk requests over a net.Conn. It is safe for
// concurrent use. It does not own the connection: the caller closes it.
type ChunkClient struct {
	cfg ChunkClientConfig
	mu  struct {
		sync.Mutex
		conn *net.Conn
	}
}

// NewChunkClient returns a client using conn.
func NewChunkClient(conn *net.Conn, cfg ChunkClientConfig) *ChunkClient {
	c := &ChunkClient{cfg: cfg}
	c.mu.conn = conn
	return c
}

// Conn returns the connection in use (it changes after a Redial).
func (c *ChunkClient) Conn() *net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.conn
}

func (c *ChunkClient) pg(ch ChunkID) uint32 {
	if c.cfg.PG == nil {
		return 0
	}
	return c.cfg.PG(ch)
}

// NewRequestID returns a random request id.
func NewRequestID() RequestID {
	var id RequestID
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails
	return id
}

// call sends one request, retrying once on a new connection when the old
// one closed under it and a Redial is configured.
func (c *ChunkClient) call(ctx context.Context, kind net.Kind, hdr, payload []byte) (*net.Response, error) {
	conn := c.Conn()
	resp, err := conn.Call(ctx, kind, hdr, payload)
	if err == nil || c.cfg.Redial == nil || !errors.Is(err, net.ErrConnClosed) {
		return resp, err
	}
	nc, rerr := c.redial(ctx, conn)
	if rerr != nil {
		return nil, fmt.Errorf("%w (redial: %w)", err, rerr)
	}
	return nc.Call(ctx, kind, hdr, payload)
}

// redial replaces old unless another caller already did.
func (c *ChunkClient) redial(ctx context.Context, old *net.Conn) (*net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.conn != old {
		return c.mu.conn, nil
	}
	nc, err := c.cfg.Redial(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.conn = nc
	return nc, nil
}

// remoteError maps a call's error to one wrapping an fsproto sentinel
// (and the *net.RemoteError) when the server answered with a chunk code.
func remoteError(op string, ch ChunkID, err error) error {
	var re *net.RemoteError
	if errors.As(err, &re) {
		if s, ok := codeErrors[re.Code]; ok {
			return fmt.Errorf("fsproto: %s %v: %w: %w", op, ch, s, re)
		}
	}
	return fmt.Errorf("fsproto: %s %v: %w", op, ch, err)
}

// Write writes data at off of chunk under a fresh RequestID.
func (c *ChunkClient) Write(ctx context.Context, chunk ChunkID, off uint32, data []byte) (WriteResult, error) {
	return c.SendWrite(ctx, Write{Chunk: chunk, Off: off, PG: c.pg(chunk), Epoch: c.cfg.Epoch, RequestID: NewRequestID()}, data)
}

// SendWrite sends m as given, with data as its payload: resending the same
// m is a retry, which the server applies at most once. data must not
// change until SendWrite returns.
func (c *ChunkClient) SendWrite(ctx context.Context, m Write, data []byte) (WriteResult, error) {
	if err := m.Chunk.Check(); err != nil {
		return WriteResult{}, fmt.Errorf("fsproto: write: %w", err)
	}
	var hb [writeLen]byte
	resp, err := c.call(ctx, KindWrite, AppendWrite(hb[:0], m), data)
	return finishMutation("write", m.Chunk, resp, err)
}

// Truncate sets chunk's size under a fresh RequestID.
func (c *ChunkClient) Truncate(ctx context.Context, chunk ChunkID, size uint32) (WriteResult, error) {
	if err := chunk.Check(); err != nil {
		return WriteResult{}, fmt.Errorf("fsproto: truncate: %w", err)
	}
	m := Truncate{Chunk: chunk, Size: size, PG: c.pg(chunk), Epoch: c.cfg.Epoch, RequestID: NewRequestID()}
	var hb [truncateLen]byte
	resp, err := c.call(ctx, KindTruncate, AppendTruncate(hb[:0], m), nil)
	return finishMutation("truncate", chunk, resp, err)
}

// Delete removes chunk under a fresh RequestID. Deleting a missing chunk
// succeeds.
func (c *ChunkClient) Delete(ctx context.Context, chunk ChunkID) (WriteResult, error) {
	if err := chunk.Check(); err != nil {
		return WriteResult{}, fmt.Errorf("fsproto: delete: %w", err)
	}
	m := Delete{Chunk: chunk, PG: c.pg(chunk), Epoch: c.cfg.Epoch, RequestID: NewRequestID()}
	var hb [deleteLen]byte
	resp, err := c.call(ctx, KindDelete, AppendDelete(hb[:0], m), nil)
	return finishMutation("delete", chunk, resp, err)
}

func finishMutation(op string, ch ChunkID, resp *net.Response, err error) (WriteResult, error) {
	if err != nil {
		return WriteResult{}, remoteError(op, ch, err)
	}
	defer resp.Release()
	r, err := DecodeWriteResult(resp.Header)
	if err != nil {
		return WriteResult{}, fmt.Errorf("fsproto: %s %v: response: %w", op, ch, err)
	}
	return r, nil
}

// Read reads into p from off of chunk, as io.ReaderAt: n < len(p) only
// with an error, io.EOF at the chunk's end. len(p) is at most
// MaxReadBytes.
func (c *ChunkClient) Read(ctx context.Context, chunk ChunkID, off uint32, p []byte) (int, error) {
	hdr, err := c.readHeader(chunk, off, p)
	if err != nil {
		return 0, err
	}
	resp, err := c.call(ctx, KindRead, hdr, nil)
	return finishRead(chunk, p, resp, err)
}

func (c *ChunkClient) readHeader(chunk ChunkID, off uint32, p []byte) ([]byte, error) {
	if err := chunk.Check(); err != nil {
		return nil, fmt.Errorf("fsproto: read: %w", err)
	}
	if len(p) == 0 || len(p) > MaxReadBytes {
		return nil, fmt.Errorf("fsproto: read %v: %w: buffer of %d bytes, want 1..%d", chunk, ErrInvalid, len(p), MaxReadBytes)
	}
	return AppendRead(nil, Read{Chunk: chunk, Off: off, Len: uint32(len(p)), Epoch: c.cfg.Epoch}), nil
}

func finishRead(ch ChunkID, p []byte, resp *net.Response, err error) (int, error) {
	if err != nil {
		return 0, remoteError("read", ch, err)
	}
	defer resp.Release()
	r, err := DecodeReadResult(resp.Header)
	if err != nil {
		return 0, fmt.Errorf("fsproto: read %v: response: %w", ch, err)
	}
	var data []byte
	switch {
	case resp.Payload != nil:
		data = resp.Payload.Bytes()
	case resp.Into > 0:
		// Read into p already (net.Conn.GoFunc): nothing to copy.
		data = p[:resp.Into]
	}
	// Check both sides: the header's count, the payload and the request
	// must agree, and a short read must say EOF.
	switch {
	case int(r.N) != len(data):
		return 0, fmt.Errorf("fsproto: read %v: response: %w: header says %d bytes, payload has %d", ch, ErrBadMessage, r.N, len(data))
	case len(data) > len(p):
		return 0, fmt.Errorf("fsproto: read %v: response: %w: %d bytes for a read of %d", ch, ErrBadMessage, len(data), len(p))
	case len(data) < len(p) && !r.EOF:
		return 0, fmt.Errorf("fsproto: read %v: response: %w: short read of %d/%d bytes without EOF", ch, ErrBadMessage, len(data), len(p))
	}
	n := len(data)
	if resp.Into == 0 {
		copy(p, data)
	}
	if r.EOF && n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Op is an asynchronous chunk request (GoWrite, GoRead).
type Op struct {
	Chunk  ChunkID
	Result WriteResult // a write's result
	N      int         // bytes read
	// Err is the request's error, as the synchronous methods return it
	// (io.EOF for a read that reached the end).
	Err error
	// Done receives the Op when it completes.
	Done chan *Op
}

// GoWrite starts a write and returns at once (unless the connection's
// in-flight bound is reached; see net.Conn.Go). The Op is delivered on
// done, which must have buffer space (nil: a channel of capacity 1 is
// made). data must not change until then. GoWrite does not redial.
func (c *ChunkClient) GoWrite(ctx context.Context, chunk ChunkID, off uint32, data []byte, done chan *Op) *Op {
	op := newOp(chunk, done)
	if err := chunk.Check(); err != nil {
		op.finish(fmt.Errorf("fsproto: write: %w", err))
		return op
	}
	m := Write{Chunk: chunk, Off: off, PG: c.pg(chunk), Epoch: c.cfg.Epoch, RequestID: NewRequestID()}
	// The Op is completed on the connection's reader (GoFunc): no
	// goroutine per Op. NB: op.Done has room by the caller's contract, so
	// the send does not block the reader.
	c.Conn().GoFunc(ctx, KindWrite, AppendWrite(nil, m), data, nil, func(call *net.Call) {
		op.Result, op.Err = finishMutation("write", chunk, call.Response, call.Error)
		op.Done <- op
	})
	return op
}

// GoRead starts a read into p (see Read and GoWrite). p must not be used
// until the Op is delivered.
func (c *ChunkClient) GoRead(ctx context.Context, chunk ChunkID, off uint32, p []byte, done chan *Op) *Op {
	op := newOp(chunk, done)
	hdr, err := c.readHeader(chunk, off, p)
	if err != nil {
		op.finish(err)
		return op
	}
	// The payload is read from the socket straight into p.
	c.Conn().GoFunc(ctx, KindRead, hdr, nil, p, func(call *net.Call) {
		op.N, op.Err = finishRead(chunk, p, call.Response, call.Error)
		op.Done <- op
	})
	return op
}

func newOp(chunk ChunkID, done chan *Op) *Op {
	if done == nil {
		done = make(chan *Op, 1)
	} else if cap(done) == 0 {
		panic("fsproto: done channel is unbuffered")
	}
	return &Op{Chunk: chunk, Done: done}
}

func (op *Op) finish(err error) {
	op.Err = err
	op.Done <- op
}
