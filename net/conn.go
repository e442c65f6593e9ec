package net

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	stdnet "net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is a client connection to one server: an authenticated socket on
// which many calls are in flight at once. Responses may come back in any
// order; each is matched to its call by request id. All methods are safe
// for concurrent use.
//
// A Conn has two goroutines: a reader, which decodes response frames and
// completes calls, and a writer, which sends request frames in batches
// (see writer.go). When the socket fails or the server sends bad bytes,
// every call in flight fails with an error wrapping ErrConnClosed and the
// Conn is unusable; a Pool replaces it.
type Conn struct {
	addr          string
	nc            stdnet.Conn
	fr            *frameReader
	w             *frameWriter
	inflight      *byteSemaphore
	metrics       *Metrics
	buffers       *BufferPool
	log           *slog.Logger
	payloadCRC    bool
	maxPayloadOut int // the largest request payload the server accepts
	hs            handshakeResult

	mu struct {
		sync.Mutex
		nextID   uint64
		pending  map[uint64]*Call // calls sent or being sent, awaiting their response
		err      error            // why the connection closed; nil while open
		draining bool             // the server announced a shutdown: no new calls
		// sweepAt: when sweep is armed to fire (a duration since born),
		// at or before the earliest deadline of the pending calls; 0 when
		// it is not armed (no pending call has a deadline).
		sweepAt time.Duration
	}
	// born is the Conn's start on the monotonic clock: call deadlines are
	// durations since it. sweep (made by the first call with a time
	// limit) ends the calls whose deadline passed.
	born       time.Time
	sweep      *time.Timer
	readerDone chan struct{}
	scratch    []byte // reader only: bodies of responses nobody waits for
}

// Dial connects to a server at addr ("host:port"), runs the handshake and
// returns the connection. ctx bounds the dial and the handshake (and so
// does cfg.HandshakeTimeout); it has no effect on the Conn afterwards.
//
// A refused handshake returns an error wrapping a *RemoteError whose code
// says why (CodeAuthFailed, CodeClusterMismatch, CodeVersionUnsupported).
func Dial(ctx context.Context, addr string, cfg ClientConfig) (*Conn, error) {
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if cfg.Metrics == nil {
		cfg.Metrics = new(Metrics)
	}
	return dial(ctx, addr, &cfg)
}

// aLongTimeAgo is a deadline in the past, to wake up blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// dial is Dial with a resolved configuration.
func dial(ctx context.Context, addr string, cfg *ClientConfig) (*Conn, error) {
	hctx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
	defer cancel()
	nc, err := cfg.Dial(hctx, "tcp", addr)
	if err != nil {
		cfg.Metrics.countError(errDial)
		return nil, fmt.Errorf("net: dial %s: %w", addr, err)
	}
	if dl, ok := hctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	// Cancellation of ctx interrupts the handshake's blocking reads.
	stop := context.AfterFunc(hctx, func() { nc.SetDeadline(aLongTimeAgo) })
	fr := newFrameReader(nc, cfg.MaxPayloadBytes, true, cfg.Metrics)
	hs, err := clientHandshake(nc, fr, cfg)
	if !stop() && err == nil {
		err = hctx.Err() // the deadline was moved: the socket is unusable
	}
	if err != nil {
		nc.Close()
		cfg.Metrics.countError(errHandshake)
		switch cerr := hctx.Err(); {
		case cerr != nil && !errors.As(err, new(*RemoteError)):
			err = fmt.Errorf("%w (%v)", cerr, err)
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The socket's deadline (hctx's) fired just before hctx's timer.
			err = fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
		}
		var re *RemoteError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("net: dial %s: handshake refused: %w", addr, err)
		}
		return nil, fmt.Errorf("net: dial %s: handshake: %w", addr, err)
	}
	nc.SetDeadline(time.Time{})
	c := &Conn{
		addr:          addr,
		nc:            nc,
		fr:            fr,
		inflight:      newByteSemaphore(int64(cfg.MaxInFlightBytes)),
		metrics:       cfg.Metrics,
		buffers:       cfg.Buffers,
		log:           cfg.Logger,
		payloadCRC:    !cfg.NoPayloadChecksum,
		maxPayloadOut: int(min(hs.maxPayloadOut, uint32(cfg.MaxPayloadBytes))),
		hs:            hs,
		born:          time.Now(),
		readerDone:    make(chan struct{}),
	}
	c.mu.pending = make(map[uint64]*Call)
	c.w = newFrameWriter(nc, writeTimeout(cfg.WriteTimeout), cfg.Metrics, func(err error) {
		c.closeWith(fmt.Errorf("write failed: %w", err))
	})
	go c.w.run()
	go c.readLoop()
	return c, nil
}

// Addr returns the address the Conn was dialed with.
func (c *Conn) Addr() string { return c.addr }

// ReadOnly reports whether the server marked the client's key read-only.
func (c *Conn) ReadOnly() bool { return c.hs.readOnly }

// Version returns the negotiated protocol version.
func (c *Conn) Version() uint16 { return c.hs.version }

// MaxPayloadBytes returns the largest request payload this connection
// sends: the smaller of the client's and the server's limits.
func (c *Conn) MaxPayloadBytes() int { return c.maxPayloadOut }

// Err returns nil while the Conn accepts calls, and otherwise why it does
// not (an error wrapping ErrConnClosed).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.err != nil {
		return c.mu.err
	}
	if c.mu.draining {
		return &closedError{addr: c.addr, reason: ErrDraining}
	}
	return nil
}

// InFlightBytes returns the request bytes of the calls in flight, and the
// most there ever were at once (which MaxInFlightBytes bounds).
func (c *Conn) InFlightBytes() (now, peak int64) { return c.inflight.stats() }

// Close closes the connection. Calls in flight fail with an error wrapping
// ErrConnClosed. Close waits for the Conn's goroutines to exit; it is safe
// to call more than once.
func (c *Conn) Close() error {
	c.closeWith(errLocalClose)
	<-c.readerDone
	return nil
}

var (
	errLocalClose  = errors.New("closed by the client")
	errPeerClosed  = errors.New("peer closed the connection")
	errServerClose = errors.New("server shut down")
)

// closedError is why a connection closed. It matches ErrConnClosed.
type closedError struct {
	addr   string
	reason error
}

func (e *closedError) Error() string {
	return "net: connection to " + e.addr + " closed: " + e.reason.Error()
}

func (e *closedError) Is(target error) bool { return target == ErrConnClosed }
func (e *closedError) Unwrap() error        { return e.reason }

// closeWith records reason (unless one is recorded already) and closes the
// socket, which ends the reader, which tears the connection down.
func (c *Conn) closeWith(reason error) {
	c.mu.Lock()
	if c.mu.err == nil {
		c.mu.err = &closedError{addr: c.addr, reason: reason}
	}
	c.mu.Unlock()
	c.nc.Close()
}

// readLoop is the reader goroutine.
func (c *Conn) readLoop() {
	defer close(c.readerDone)
	c.teardown(c.readFrames())
}

func (c *Conn) readFrames() error {
	for {
		off := c.fr.offset
		h, err := c.fr.readHeader()
		if err != nil {
			return err
		}
		if h.flags&flagResponse == 0 {
			return &FrameError{Offset: off, Reason: fmt.Sprintf("request frame (%v, id %d) from the server", h.kind, h.id)}
		}
		if h.id == 0 {
			if h.kind != kindGoAway || h.bodyLen != 0 || h.payloadLen != 0 || h.flags&flagError != 0 {
				return &FrameError{Offset: off, Reason: fmt.Sprintf("unexpected %v frame with request id 0", h.kind)}
			}
			if err := c.fr.readRest(&h, nil, nil); err != nil {
				return err
			}
			c.metrics.frameIn(&h)
			c.mu.Lock()
			c.mu.draining = true
			idle := len(c.mu.pending) == 0
			c.mu.Unlock()
			if idle {
				return errServerClose
			}
			continue
		}
		c.mu.Lock()
		call := c.mu.pending[h.id]
		if call != nil {
			delete(c.mu.pending, h.id)
		}
		c.mu.Unlock()
		// From here the reader owns call: a cancellation no longer finds it.
		if err := c.readResponse(call, &h); err != nil {
			return err
		}
		c.mu.Lock()
		drained := c.mu.draining && len(c.mu.pending) == 0
		c.mu.Unlock()
		if drained {
			return errServerClose
		}
	}
}

// readResponse reads the rest of a response frame and completes call with
// it. call is nil when nobody waits for the response any more (its call
// was cancelled): the frame is read and dropped.
func (c *Conn) readResponse(call *Call, h *frameHeader) error {
	var (
		resp    *Response
		body    []byte
		buf     *Buffer
		payload []byte
	)
	if call != nil && h.flags&flagError == 0 {
		resp = responsePool.Get().(*Response)
		resp.Kind = h.kind
		resp.store = grow(resp.store, int(h.bodyLen))
		body = resp.store
	} else {
		if c.scratch == nil {
			c.scratch = make([]byte, MaxHeaderBytes)
		}
		body = c.scratch[:h.bodyLen]
	}
	switch {
	case h.payloadLen == 0:
	case resp != nil && int(h.payloadLen) <= len(call.into):
		// Zero copy for the caller too: the payload lands where it wants
		// it. Safe: the call left the pending map, so nothing else
		// completes it (and hands into back to its owner) meanwhile.
		payload = call.into[:h.payloadLen]
		resp.Into = int(h.payloadLen)
	default:
		buf = c.buffers.Get(int(h.payloadLen))
		payload = buf.Bytes()
	}
	if err := c.fr.readRest(h, body, payload); err != nil {
		if buf != nil {
			buf.Release()
		}
		if resp != nil {
			resp.Release()
		}
		if call != nil {
			call.Error = &closedError{addr: c.addr, reason: err}
			c.metrics.countError(errConnClosed)
			call.done(refResponse)
		}
		return err
	}
	c.metrics.frameIn(h)
	switch {
	case call == nil:
		if buf != nil {
			buf.Release()
		}
	case h.flags&flagError != 0:
		call.Error = parseErrorBody(body)
		c.metrics.countError(errRemote)
		call.done(refResponse)
	default:
		resp.Header = body
		resp.Payload = buf
		call.Response = resp
		call.done(refResponse)
	}
	return nil
}

// teardown runs when the reader stops: it fails every call in flight.
func (c *Conn) teardown(reason error) {
	if errors.Is(reason, io.EOF) {
		reason = errPeerClosed
	}
	c.mu.Lock()
	if c.mu.err == nil {
		c.mu.err = &closedError{addr: c.addr, reason: reason}
	}
	err := c.mu.err
	pending := c.mu.pending
	c.mu.pending = nil
	if c.sweep != nil {
		c.sweep.Stop()
	}
	c.mu.Unlock()

	switch {
	case errors.Is(reason, ErrCorrupt):
		c.metrics.countError(errCorrupt)
		c.log.Warn("net: closing connection: bad frame from server", "peer", c.addr, "reason", reason)
	case errors.Is(err, errLocalClose), errors.Is(err, errServerClose):
		c.log.Debug("net: connection closed", "peer", c.addr, "reason", err)
	default:
		c.log.Info("net: connection closed", "peer", c.addr, "reason", err)
	}
	c.nc.Close()
	c.w.stop(err)
	<-c.w.done // no frame's buffers are in use after this
	for _, call := range pending {
		call.Error = err
		c.metrics.countError(errConnClosed)
		call.done(refResponse)
	}
}

// Response is a successful response. It is owned by the caller, who must
// call Release when done with it.
type Response struct {
	Kind   Kind   // the response's kind, chosen by the server's handler
	Header []byte // the header body; valid until Release
	// Payload is the response payload, read straight from the socket into
	// a pooled 4096-aligned buffer, or nil when there is none. Release
	// releases it; to keep it longer, take it (set the field to nil) and
	// release it yourself later.
	Payload *Buffer
	// Into is the length of the payload when it was read into the
	// buffer the call gave GoFunc (into[:Into]); Payload is nil then.
	Into int

	store []byte
}

var responsePool = sync.Pool{New: func() any { return new(Response) }}

// Release releases the payload (if still attached) and recycles r. Neither
// r nor its Header may be used afterwards.
func (r *Response) Release() {
	if r.Payload != nil {
		r.Payload.Release()
		r.Payload = nil
	}
	r.Header = nil
	r.Kind = 0
	r.Into = 0
	responsePool.Put(r)
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// Call is an asynchronous call (see Conn.Go), as in net/rpc.
type Call struct {
	Kind    Kind   // request kind
	Header  []byte // request header body; copied when the call starts
	Payload []byte // request payload; not copied: must not change until Done
	// Response is set when the call succeeded; the receiver owns it and
	// must Release it.
	Response *Response
	// Error is set when the call failed: a *RemoteError when the server
	// answered with an error, ctx.Err() when the context ended first, an
	// error wrapping ErrConnClosed when the connection failed, ErrTooLarge
	// when the request exceeded a limit.
	Error error
	// Done receives the call when it completes.
	Done chan *Call

	conn     *Conn
	id       uint64
	refs     atomic.Int32 // see done
	reserved int64        // in-flight bytes held
	stop     func() bool  // stops the context watcher
	out      outFrame
	hdrBuf   []byte
	parts    [1][]byte
	fn       func(*Call) // GoFunc's: run instead of the send on Done
	into     []byte      // GoFunc's: where a response payload that fits goes
	// deadline is when the call fails with a timeoutError, as a duration
	// since its Conn's born; 0: none. Set under the Conn's mu.
	deadline time.Duration
}

// A call completes when three references are dropped (see done): the
// starter's (Go, once the call is fully set up), the writer's (once the
// request frame's buffers are no longer in use) and the response path's
// (the reader with the response, a cancellation, or the teardown of a
// failed connection, whichever removes the call from the pending map).
// So the caller gets its call back only when nothing in the connection
// still reads its payload.
const (
	refStarter  = 1
	refWriter   = 1
	refResponse = 1
)

// done drops n references; the last one completes the call.
func (call *Call) done(n int32) {
	switch r := call.refs.Add(-n); {
	case r == 0:
		call.finish()
	case r < 0:
		panic(fmt.Sprintf("net: call %d references dropped below zero: %d", call.id, r))
	}
}

// frameWritten implements frameOwner.
func (call *Call) frameWritten(*outFrame, error) { call.done(refWriter) }

func (call *Call) finish() {
	c := call.conn
	if call.stop != nil {
		call.stop()
		call.stop = nil
	}
	if call.reserved > 0 {
		c.inflight.release(call.reserved)
		call.reserved = 0
	}
	c.metrics.callsInFlight.Add(-1)
	call.out = outFrame{}
	call.parts[0] = nil
	if fn := call.fn; fn != nil {
		fn(call)
		// fn's contract: it kept neither call nor into.
		*call = Call{Done: call.Done, hdrBuf: call.hdrBuf}
		callPool.Put(call)
		return
	}
	select {
	case call.Done <- call:
	default:
		// As net/rpc: a full Done channel is the caller's bug; do not block
		// the reader over it.
		c.log.Error("net: discarding call result: Done channel full", "peer", c.addr, "kind", call.Kind)
		if call.Response != nil {
			call.Response.Release()
			call.Response = nil
		}
	}
}

// Go starts a call and returns at once, unless the connection's in-flight
// bound (ClientConfig.MaxInFlightBytes) is reached: then Go waits for room,
// for as long as ctx allows. The call is delivered on done when it
// completes; done must have buffer space (if nil, Go makes a channel of
// capacity 1). ctx ending before the response arrives fails the call with
// ctx.Err(); a response arriving later is dropped.
//
// The payload is not copied: it is written to the socket from the slice,
// so it must not change until the call is delivered on done. Kinds below
// FirstUserKind are reserved for the transport (but KindPing).
func (c *Conn) Go(ctx context.Context, kind Kind, header, payload []byte, done chan *Call) *Call {
	if done == nil {
		done = make(chan *Call, 1)
	} else if cap(done) == 0 {
		panic("net: Go: done channel is unbuffered")
	}
	call := &Call{Kind: kind, Header: header, Payload: payload, Done: done}
	c.start(ctx, 0, call)
	return call
}

var callPool = sync.Pool{New: func() any { return &Call{Done: make(chan *Call, 1)} }}

// GoFunc starts a call as Go does, with two differences, which save a
// goroutine hand-off and a copy per call on deep queues:
//
//   - When the call completes, fn runs with it, on the goroutine that
//     completed it: usually the connection's reader (or its writer, when
//     the response overtook the writer's report that the request was
//     sent), the caller of GoFunc when the call fails at once, or the
//     goroutine ending ctx. fn must not block (it holds up the
//     connection), and must not keep call once it returns: the Conn
//     reuses it. It owns call.Response, as Go's receiver does.
//   - A response payload of at most len(into) bytes is read from the
//     socket straight into into (Response.Into is its length and
//     Response.Payload is nil); a longer one comes in a pooled Buffer as
//     usual. into must not be used until fn runs.
func (c *Conn) GoFunc(ctx context.Context, kind Kind, header, payload, into []byte, fn func(*Call)) {
	c.GoFuncWithin(ctx, 0, kind, header, payload, into, fn)
}

// GoFuncWithin is GoFunc with a time limit, as CallWithin.
func (c *Conn) GoFuncWithin(ctx context.Context, limit time.Duration, kind Kind, header, payload, into []byte, fn func(*Call)) {
	if fn == nil {
		panic("net: GoFunc: nil fn")
	}
	call := callPool.Get().(*Call)
	call.Kind, call.Header, call.Payload = kind, header, payload
	call.fn, call.into = fn, into
	c.start(ctx, limit, call)
}

// Call sends a request and waits for its response (see Go for the rules).
// On success the caller owns the Response and must Release it. A server
// that answered with an error gives a *RemoteError.
func (c *Conn) Call(ctx context.Context, kind Kind, header, payload []byte) (*Response, error) {
	return c.CallWithin(ctx, 0, kind, header, payload)
}

// CallWithin is Call with a time limit: a call that has no response
// within limit of its start fails with an error matching ErrTimeout and
// context.DeadlineExceeded (limit <= 0: none). It bounds one call as
// context.WithTimeout would, without a context and a timer per call: the
// Conn keeps one timer for all its calls' limits.
func (c *Conn) CallWithin(ctx context.Context, limit time.Duration, kind Kind, header, payload []byte) (*Response, error) {
	call := callPool.Get().(*Call)
	call.Kind, call.Header, call.Payload = kind, header, payload
	c.start(ctx, limit, call)
	<-call.Done
	resp, err := call.Response, call.Error
	call.Header, call.Payload, call.Response, call.Error, call.conn = nil, nil, nil, nil, nil
	callPool.Put(call)
	return resp, err
}

// Ping sends a ping, which the server's transport answers itself.
func (c *Conn) Ping(ctx context.Context) error {
	resp, err := c.Call(ctx, KindPing, nil, nil)
	if err == nil {
		resp.Release()
	}
	return err
}

// start sends call; the call is completed (delivered on Done) exactly once,
// by finish. limit > 0 bounds the wait for its response (CallWithin).
func (c *Conn) start(ctx context.Context, limit time.Duration, call *Call) {
	call.conn = c
	call.refs.Store(refStarter)
	c.metrics.calls.Add(1)
	c.metrics.callsInFlight.Add(1)
	fail := func(err error) {
		call.Error = err
		call.done(refStarter)
	}
	switch {
	case len(call.Header) > MaxHeaderBytes:
		fail(fmt.Errorf("%w: header of %d bytes over the limit %d", ErrTooLarge, len(call.Header), MaxHeaderBytes))
		return
	case len(call.Payload) > c.maxPayloadOut:
		fail(fmt.Errorf("%w: payload of %d bytes over the connection's limit %d", ErrTooLarge, len(call.Payload), c.maxPayloadOut))
		return
	case call.Kind < FirstUserKind && call.Kind != KindPing:
		fail(fmt.Errorf("net: kind %d is reserved for the transport", call.Kind))
		return
	}
	if err := ctx.Err(); err != nil {
		c.metrics.countError(errCanceled)
		fail(err)
		return
	}
	n := int64(frameHeaderSize + len(call.Header) + len(call.Payload))
	if err := c.inflight.acquire(ctx, n); err != nil {
		c.metrics.countError(errCanceled)
		fail(err)
		return
	}
	call.reserved = n

	c.mu.Lock()
	if err := c.mu.err; err != nil || c.mu.draining {
		if err == nil {
			err = &closedError{addr: c.addr, reason: ErrDraining}
		}
		c.mu.Unlock()
		c.metrics.countError(errConnClosed)
		fail(err)
		return
	}
	c.mu.nextID++
	call.id = c.mu.nextID
	c.mu.pending[call.id] = call
	call.deadline = 0
	if limit > 0 {
		call.deadline = time.Since(c.born) + limit
		if c.mu.sweepAt == 0 || call.deadline < c.mu.sweepAt {
			c.mu.sweepAt = call.deadline
			if c.sweep == nil {
				c.sweep = time.AfterFunc(limit, c.sweepExpired)
			} else {
				c.sweep.Reset(limit)
			}
		}
	}
	// The only call waiting on the connection has nothing to be batched
	// with: its frame is written at once (frameWriter.enqueueOrWrite).
	alone := len(c.mu.pending) == 1
	c.mu.Unlock()
	call.refs.Add(refWriter + refResponse)

	// Encode the frame: fixed header and body in hdrBuf, payload as is.
	h := frameHeader{kind: call.Kind, id: call.id, payloadLen: uint32(len(call.Payload))}
	call.out.payload = nil
	if len(call.Payload) > 0 {
		call.parts[0] = call.Payload
		call.out.payload = call.parts[:]
		if c.payloadCRC {
			h.flags |= flagPayloadCRC
			h.payloadCRC = payloadCRC(call.out.payload)
		}
	}
	call.hdrBuf = append(grow(call.hdrBuf, frameHeaderSize), call.Header...)
	putFrameHeader(call.hdrBuf, &h, call.hdrBuf[frameHeaderSize:])
	call.out.hdr = call.hdrBuf
	call.out.owner = call
	if err := c.w.enqueueOrWrite(&call.out, alone); err != nil {
		// The writer stopped, so the connection is being torn down; the
		// teardown fails the call, which it finds in the pending map.
		call.done(refWriter)
	}
	if ctx.Done() != nil {
		id := call.id
		call.stop = context.AfterFunc(ctx, func() { c.abort(id, ctx.Err()) })
	}
	call.done(refStarter)
}

// sweepExpired, run by the sweep timer, fails the calls whose deadline
// has passed and arms the timer for the earliest deadline left. Its cost,
// a look at every pending call, comes at most once per the shortest limit
// of the calls in flight, not per call.
func (c *Conn) sweepExpired() {
	type expiredCall struct {
		id   uint64
		kind Kind
	}
	now := time.Since(c.born)
	var expired []expiredCall
	c.mu.Lock()
	next := time.Duration(0)
	for id, call := range c.mu.pending {
		switch {
		case call.deadline == 0:
		case call.deadline <= now:
			expired = append(expired, expiredCall{id, call.Kind})
		case next == 0 || call.deadline < next:
			next = call.deadline
		}
	}
	c.mu.sweepAt = next
	if next > 0 {
		c.sweep.Reset(next - now)
	}
	c.mu.Unlock()
	// A call may complete meanwhile, and its Call be reused: abort goes
	// by id, which is never reused, and finds nothing then.
	for _, e := range expired {
		c.abort(e.id, &timeoutError{what: fmt.Sprintf("call of kind %d to %s", e.kind, c.addr)})
	}
}

// abort ends the call with id, if it is still waiting for its response.
func (c *Conn) abort(id uint64, err error) {
	c.mu.Lock()
	call := c.mu.pending[id]
	if call == nil {
		c.mu.Unlock()
		return
	}
	delete(c.mu.pending, id)
	drained := c.mu.draining && len(c.mu.pending) == 0
	c.mu.Unlock()
	call.Error = err
	c.metrics.countError(errCanceled)
	if c.w.cancel(&call.out) {
		call.done(refWriter) // never sent: the writer will not report it
	}
	call.done(refResponse)
	if drained {
		c.closeWith(errServerClose)
	}
}
