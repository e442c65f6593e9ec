package net

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	stdnet "net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Handler serves requests. ServeRPC runs on its own goroutine, one per
// request; up to ServerConfig.MaxConcurrent of one connection's requests
// are in progress at once. It must answer through w (Reply or Error)
// before it returns; if it does not, or if it panics, the server answers
// with CodeInternal.
//
// ctx is the connection's context: it is cancelled when the connection
// fails or the server is closed (not by Shutdown, which lets handlers
// finish). req and its Header are valid until ServeRPC returns.
type Handler interface {
	ServeRPC(ctx context.Context, req *Request, w *ResponseWriter)
}

// Starter is an optional interface of a Handler, for requests that need
// no goroutine of their own: a request that only hands work to something
// that completes it later (a storage engine) is started on the
// connection's reader goroutine and answered from the completion, which
// saves a goroutine hand-off per request.
//
// StartRPC is called on the connection's reader goroutine, before
// ServeRPC would be, for every request of a user kind. It must not block
// (the connection reads nothing meanwhile) and must not panic after it
// has handed the request on. It returns false, without having used w, to
// leave the request to ServeRPC on a handler goroutine as usual. It
// returns true when it took the request: then it, or whatever it handed
// the request to, answers it exactly once with w.Reply or w.Error, from
// any goroutine, now or later, and uses neither req nor w after that
// answer. req.Payload, unless taken, is released by the server after the
// answer. The connection's teardown waits for the answers of requests
// taken, so they must come even when ctx ends.
type Starter interface {
	StartRPC(ctx context.Context, req *Request, w *ResponseWriter) bool
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request, w *ResponseWriter)

// ServeRPC calls f.
func (f HandlerFunc) ServeRPC(ctx context.Context, req *Request, w *ResponseWriter) { f(ctx, req, w) }

// ServeMux dispatches requests by kind. Register every handler before the
// server starts; a kind with no handler is answered with CodeUnknownKind.
type ServeMux struct {
	m map[Kind]Handler
}

// NewServeMux returns an empty ServeMux.
func NewServeMux() *ServeMux { return &ServeMux{m: make(map[Kind]Handler)} }

// Handle registers h for kind. It panics if kind is reserved for the
// transport or already registered.
func (m *ServeMux) Handle(kind Kind, h Handler) {
	if kind < FirstUserKind {
		panic(fmt.Sprintf("net: ServeMux.Handle: kind %d is reserved for the transport", kind))
	}
	if _, dup := m.m[kind]; dup {
		panic(fmt.Sprintf("net: ServeMux.Handle: kind %d registered twice", kind))
	}
	m.m[kind] = h
}

// HandleFunc registers f for kind.
func (m *ServeMux) HandleFunc(kind Kind, f func(context.Context, *Request, *ResponseWriter)) {
	m.Handle(kind, HandlerFunc(f))
}

// StartRPC implements Starter: it starts the request with its kind's
// handler when that handler is a Starter.
func (m *ServeMux) StartRPC(ctx context.Context, req *Request, w *ResponseWriter) bool {
	if st, ok := m.m[req.Kind].(Starter); ok {
		return st.StartRPC(ctx, req, w)
	}
	return false
}

// ServeRPC implements Handler.
func (m *ServeMux) ServeRPC(ctx context.Context, req *Request, w *ResponseWriter) {
	h := m.m[req.Kind]
	if h == nil {
		w.Error(CodeUnknownKind, fmt.Sprintf("unknown message kind %d", req.Kind))
		return
	}
	h.ServeRPC(ctx, req, w)
}

// Request is a request as a handler sees it.
type Request struct {
	Kind   Kind
	ID     uint64 // request id, unique per connection
	Header []byte // header body; valid until ServeRPC returns
	// Payload is the request payload, read straight from the socket into
	// a pooled 4096-aligned buffer (ready for an O_DIRECT write), or nil.
	// The server releases it when ServeRPC returns, unless the handler
	// took it with TakePayload; then the handler releases it.
	Payload *Buffer
	// Peer is the authenticated client.
	Peer Peer
}

// TakePayload transfers the payload to the caller, who must Release it.
func (r *Request) TakePayload() *Buffer {
	p := r.Payload
	r.Payload = nil
	return p
}

// ResponseWriter answers one request. Only the request's handler uses it.
type ResponseWriter struct {
	sc      *serverCall
	kind    Kind
	replied bool
}

// SetKind sets the response's kind; by default it is the request's.
func (w *ResponseWriter) SetKind(k Kind) { w.kind = k }

// Reply sends the response: header (copied) and payload, whose parts are
// written with one vectored write, not copied, so they must not change
// until release is called. release (may be nil) is called exactly once:
// after the frame has been written or dropped (the connection failed),
// which can be before Reply returns (a frame written at once on an idle
// connection), or before Reply returns if Reply fails; so Reply must not
// be called with a lock held that release takes. Reply fails with ErrTooLarge when
// the header or payload is over the limits (the handler may then send an
// Error instead), or when a response was already sent.
func (w *ResponseWriter) Reply(header []byte, payload [][]byte, release func()) error {
	sc := w.sc
	n := 0
	for _, p := range payload {
		n += len(p)
	}
	var err error
	switch {
	case w.replied:
		err = errors.New("net: Reply: response already sent")
	case len(header) > MaxHeaderBytes:
		err = fmt.Errorf("%w: response header of %d bytes over the limit %d", ErrTooLarge, len(header), MaxHeaderBytes)
	case n > sc.conn.maxPayloadOut:
		err = fmt.Errorf("%w: response payload of %d bytes over the client's limit %d", ErrTooLarge, n, sc.conn.maxPayloadOut)
	}
	if err != nil {
		if release != nil {
			release()
		}
		return err
	}
	w.replied = true
	sc.release = release
	h := frameHeader{flags: flagResponse, kind: w.kind, id: sc.req.ID, payloadLen: uint32(n)}
	sc.parts = sc.parts[:0]
	for _, p := range payload {
		if len(p) > 0 {
			sc.parts = append(sc.parts, p)
		}
	}
	if n > 0 && sc.conn.payloadCRC {
		h.flags |= flagPayloadCRC
		h.payloadCRC = payloadCRC(sc.parts)
	}
	sc.hdrBuf = append(grow(sc.hdrBuf, frameHeaderSize), header...)
	putFrameHeader(sc.hdrBuf, &h, sc.hdrBuf[frameHeaderSize:])
	sc.send()
	if sc.started {
		sc.handlerReturned() // the answer ends a request a Starter took
	}
	return nil
}

// Error sends an error response with code and message (cut to 4 KiB); the
// client's call fails with a *RemoteError carrying both.
func (w *ResponseWriter) Error(code ErrorCode, msg string) error {
	if w.replied {
		return errors.New("net: Error: response already sent")
	}
	w.replied = true
	sc := w.sc
	sc.conn.metrics.countError(errRemote)
	h := frameHeader{flags: flagResponse | flagError, kind: w.kind, id: sc.req.ID}
	sc.parts = sc.parts[:0]
	sc.hdrBuf = appendErrorBody(grow(sc.hdrBuf, frameHeaderSize), code, msg)
	putFrameHeader(sc.hdrBuf, &h, sc.hdrBuf[frameHeaderSize:])
	sc.send()
	if sc.started {
		sc.handlerReturned()
	}
	return nil
}

// serverCall is one request in progress, from the moment its frame is read
// until its handler has returned and its response frame is written. It is
// recycled through serverCallPool.
type serverCall struct {
	conn     *serverConn
	req      Request
	rw       ResponseWriter
	store    []byte // the request body's storage
	hdrBuf   []byte // the response's fixed header and body
	parts    [][]byte
	out      outFrame
	release  func()
	reserved int64 // payload bytes held in conn.inflight
	// started: a Starter took the request; its answer, not a handler's
	// return, drops the handler's reference.
	started bool
	// refs: one for the handler (dropped when it has returned), one for the
	// writer while a response frame is queued or being written.
	refs atomic.Int32
}

var serverCallPool = sync.Pool{New: func() any { return new(serverCall) }}

func (sc *serverCall) send() {
	sc.refs.Add(1)
	sc.out = outFrame{hdr: sc.hdrBuf, payload: sc.parts, owner: sc}
	alone := sc.conn.unanswered.Add(-1) == 0
	if err := sc.conn.w.enqueueOrWrite(&sc.out, alone); err != nil {
		sc.frameWritten(&sc.out, err) // the connection is closing; the response is dropped
	}
}

// frameWritten implements frameOwner.
func (sc *serverCall) frameWritten(_ *outFrame, _ error) {
	if sc.release != nil {
		sc.release()
		sc.release = nil
	}
	sc.done()
}

// handlerReturned runs when the handler is done (or when the reader
// answered the request itself).
func (sc *serverCall) handlerReturned() {
	if !sc.rw.replied {
		sc.rw.Error(CodeInternal, fmt.Sprintf("handler for kind %d returned without replying", sc.req.Kind))
	}
	if p := sc.req.Payload; p != nil {
		sc.req.Payload = nil
		p.Release()
	}
	sc.done()
}

func (sc *serverCall) done() {
	switch r := sc.refs.Add(-1); {
	case r == 0:
		c := sc.conn
		c.inflight.release(sc.reserved)
		<-c.slots
		c.metrics.requestsInFlight.Add(-1)
		if l := c.loop.Load(); l != nil && l.blockedOnRoom() {
			l.poke()
		}
		clear(sc.parts)
		*sc = serverCall{store: sc.store, hdrBuf: sc.hdrBuf, parts: sc.parts[:0]}
		serverCallPool.Put(sc)
		c.calls.Done()
	case r < 0:
		panic(fmt.Sprintf("net: server call references dropped below zero: %d", r))
	}
}

// Server accepts connections and serves requests on them.
type Server struct {
	cfg     ServerConfig
	handler Handler
	starter Starter // handler, if it is one
	log     *slog.Logger
	metrics *Metrics

	mu struct {
		sync.Mutex
		listeners map[stdnet.Listener]struct{}
		conns     map[*serverConn]struct{}
		shutdown  bool
	}
	conns sync.WaitGroup // serverConn.serve goroutines
}

// NewServer validates cfg and returns a server that answers requests with
// h (often a *ServeMux).
func NewServer(cfg ServerConfig, h Handler) (*Server, error) {
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("net: server config: nil handler")
	}
	s := &Server{cfg: cfg, handler: h, log: cfg.Logger, metrics: cfg.Metrics}
	s.starter, _ = h.(Starter)
	s.mu.listeners = make(map[stdnet.Listener]struct{})
	s.mu.conns = make(map[*serverConn]struct{})
	return s, nil
}

// Metrics returns the server's counts.
func (s *Server) Metrics() MetricsSnapshot { return s.metrics.Snapshot() }

// Serve accepts connections on ln until Shutdown or Close (then it returns
// ErrServerClosed) or until Accept fails for good. Each connection is
// served on its own goroutines. Serve closes ln when it returns.
func (s *Server) Serve(ln stdnet.Listener) error {
	s.mu.Lock()
	if s.mu.shutdown {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.mu.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.mu.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			shutdown := s.mu.shutdown
			s.mu.Unlock()
			if shutdown {
				return ErrServerClosed
			}
			var ne stdnet.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// As net/http: back off on transient failures (EMFILE).
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("net: accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("net: accept: %w", err)
		}
		delay = 0
		if s.loopServes() {
			// The loop will read the socket itself: take it out of the
			// runtime's poller (see rawSocket).
			if rs, err := detachSocket(nc); err == nil {
				nc = rs
			}
		}
		c := s.newConn(nc)
		if c == nil {
			nc.Close()
			continue
		}
		go c.serve()
	}
}

// Shutdown stops the server gracefully: it closes the listeners, tells
// every client to send no more requests (a go-away frame), answers
// requests that still arrive with CodeShuttingDown without running them,
// and waits for the requests in progress to finish and for the clients to
// close their connections. If ctx ends first, it closes everything as
// Close does and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	conns := s.beginShutdown()
	for _, c := range conns {
		c.goAway()
	}
	done := make(chan struct{})
	go func() {
		s.conns.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
}

// Close stops the server at once: it closes the listeners and every
// connection (cancelling their handlers' contexts) and waits for the
// connections' goroutines and handlers to finish.
func (s *Server) Close() error {
	for _, c := range s.beginShutdown() {
		c.close()
	}
	s.conns.Wait()
	return nil
}

// CloseKey closes, at once (as Close does), every connection
// authenticated with keyID, cancelling their handlers, and returns how
// many it closed (each connection counts once). Remove the key from the server's KeyStore first: then
// no new handshake succeeds with it, and a handshake already past its
// lookup is closed when it completes.
func (s *Server) CloseKey(keyID string) int {
	s.mu.Lock()
	var victims []*serverConn
	for c := range s.mu.conns {
		if c.authed && !c.keyClosed && c.peer.KeyID == keyID {
			c.keyClosed = true
			victims = append(victims, c)
		}
	}
	s.mu.Unlock()
	for _, c := range victims {
		c.log.Info("net: closing connection: its key was revoked", "remote", c.peer.RemoteAddr, "key", keyID)
		c.close()
	}
	return len(victims)
}

func (s *Server) beginShutdown() []*serverConn {
	s.mu.Lock()
	s.mu.shutdown = true
	for ln := range s.mu.listeners {
		ln.Close()
	}
	conns := make([]*serverConn, 0, len(s.mu.conns))
	for c := range s.mu.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	return conns
}

// serverConn is the server's side of one connection.
type serverConn struct {
	srv           *Server
	nc            stdnet.Conn
	fr            *frameReader
	w             *frameWriter
	metrics       *Metrics
	log           *slog.Logger
	buffers       *BufferPool
	payloadCRC    bool
	peer          Peer
	maxPayloadOut int  // the largest response payload the client accepts
	authed        bool // peer is set (the handshake succeeded); guarded by srv.mu
	keyClosed     bool // CloseKey closed it (it may linger until served); guarded by srv.mu

	ctx    context.Context // handlers' context; cancelled when the connection ends
	cancel context.CancelFunc
	slots  chan struct{} // one token per request in progress (MaxConcurrent)
	// work hands a request to an idle handler goroutine. Handler
	// goroutines outlive their request and wait here for the next one
	// until the connection ends: a fresh goroutine per request would
	// start on a small stack and grow (copy) it on every request, which
	// costs more than the handler on a small read. At most MaxConcurrent
	// exist per connection, since each holds a slot while it works.
	work chan *serverCall
	// inflight bounds the request payload bytes in progress.
	inflight *byteSemaphore
	// unanswered counts the requests read whose answer has not been
	// queued yet. An answer that brings it to zero has nothing to be
	// batched with, and is written at once (frameWriter.enqueueOrWrite).
	unanswered atomic.Int64
	calls      sync.WaitGroup // serverCalls not yet finished
	draining   atomic.Bool    // Shutdown began: refuse new requests

	mu struct {
		sync.Mutex
		started bool // the handshake succeeded and the writer runs
		goAway  bool // the go-away frame was queued
	}
	goAwayFrame outFrame
	goAwayHdr   [frameHeaderSize]byte

	// loop is set while a Loop runs the connection (ServerConfig.Loop).
	loop atomic.Pointer[loopConn]
}

func (s *Server) newConn(nc stdnet.Conn) *serverConn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &serverConn{
		srv:        s,
		nc:         nc,
		fr:         newFrameReader(nc, s.cfg.MaxPayloadBytes, false, s.metrics),
		metrics:    s.metrics,
		log:        s.log,
		buffers:    s.cfg.Buffers,
		payloadCRC: !s.cfg.NoPayloadChecksum,
		ctx:        ctx,
		cancel:     cancel,
		slots:      make(chan struct{}, s.cfg.MaxConcurrent),
		work:       make(chan *serverCall),
		inflight:   newByteSemaphore(int64(s.cfg.MaxInFlightBytes)),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.shutdown {
		cancel()
		return nil
	}
	s.mu.conns[c] = struct{}{}
	s.conns.Add(1)
	return c
}

func (c *serverConn) serve() {
	defer func() {
		c.srv.mu.Lock()
		delete(c.srv.mu.conns, c)
		c.srv.mu.Unlock()
		c.srv.conns.Done()
	}()
	remote := c.nc.RemoteAddr().String()
	cfg := &c.srv.cfg
	c.nc.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
	peer, maxOut, err := serverHandshake(c.nc, c.fr, cfg)
	if err != nil {
		c.metrics.countError(errHandshake)
		var r *refusal
		switch {
		case errors.As(err, &r):
			c.log.Warn("net: handshake refused", "remote", remote, "reason", r.msg)
		case errors.Is(err, ErrCorrupt):
			c.metrics.countError(errCorrupt)
			c.log.Warn("net: closing connection: bad frame during the handshake", "remote", remote, "reason", err)
		default:
			c.log.Info("net: handshake failed", "remote", remote, "reason", err)
		}
		c.nc.Close()
		c.cancel()
		return
	}
	c.nc.SetDeadline(time.Time{})
	c.peer = peer
	c.maxPayloadOut = int(maxOut)
	// Publish the identity for CloseKey, then look the key up again: a
	// key revoked (removed from the store, then CloseKey) while this
	// handshake ran is caught either by CloseKey's scan or by this
	// lookup, whichever comes second.
	c.srv.mu.Lock()
	c.authed = true
	c.srv.mu.Unlock()
	if _, _, ok := cfg.Keys.Lookup(peer.KeyID); !ok {
		c.log.Info("net: closing connection: its key was removed during the handshake", "remote", remote, "key", peer.KeyID)
		c.close()
	}
	c.w = newFrameWriter(c.nc, writeTimeout(cfg.WriteTimeout), c.metrics, func(err error) { c.nc.Close() })
	go c.w.run()
	c.mu.Lock()
	c.mu.started = true
	c.mu.Unlock()
	if c.draining.Load() {
		c.sendGoAway()
	}
	if l := c.attachLoop(); l != nil {
		c.teardown(l.wait())
		return
	}
	c.teardown(c.readRequests())
}

// loopServes reports that the server's connections go to its Loop: it
// has one, and a Starter to start requests on it.
func (s *Server) loopServes() bool { return s.cfg.Loop != nil && s.starter != nil }

// attachLoop hands the connection to the server's Loop, if it has one
// that takes it, and returns the guest the loop runs.
func (c *serverConn) attachLoop() *loopConn {
	if !c.srv.loopServes() {
		return nil
	}
	l := newLoopConn(c)
	if l == nil {
		return nil
	}
	c.loop.Store(l)
	wake, err := c.srv.cfg.Loop.Host(l)
	if err != nil {
		c.loop.Store(nil)
		l.abandon()
		c.log.Warn("net: the loop refused the connection; serving it on goroutines", "remote", c.peer.RemoteAddr, "reason", err)
		return nil
	}
	c.metrics.loopConns.Add(1)
	l.setWake(wake)
	return l
}

// readRequests is the connection's reader loop.
func (c *serverConn) readRequests() error {
	for {
		// Back-pressure: take a slot before reading, so that with
		// MaxConcurrent requests in progress the socket is left unread and
		// TCP flow control stops the client.
		select {
		case c.slots <- struct{}{}:
		case <-c.ctx.Done():
			return context.Cause(c.ctx)
		}
		err := c.readRequest()
		if err != nil {
			return err
		}
	}
}

// readRequest reads one request, holding a slot, and starts its handler.
// On error the slot is given back.
func (c *serverConn) readRequest() error {
	off := c.fr.offset
	h, err := c.fr.readHeader()
	if err == nil {
		err = checkRequestHeader(&h, off)
	}
	if err == nil {
		err = c.inflight.acquire(c.ctx, int64(h.payloadLen))
	}
	if err != nil {
		<-c.slots
		return err
	}
	sc := c.newCall(&h)
	var payload []byte
	if sc.req.Payload != nil {
		payload = sc.req.Payload.Bytes()
	}
	if err := c.fr.readRest(&h, sc.store, payload); err != nil {
		c.dropCall(sc)
		return err
	}
	c.dispatch(sc, &h)
	return nil
}

// checkRequestHeader refuses a fixed header that no client sends; off is
// the frame's stream offset.
func checkRequestHeader(h *frameHeader, off int64) error {
	if h.flags&flagResponse != 0 {
		return &FrameError{Offset: off, Reason: fmt.Sprintf("response frame (%v, id %d) from a client", h.kind, h.id)}
	}
	if h.id == 0 {
		return &FrameError{Offset: off, Reason: fmt.Sprintf("%v request with the reserved request id 0", h.kind)}
	}
	return nil
}

// newCall returns a call for the request whose fixed header is h, with
// room for its body and a pooled payload buffer. The caller holds a slot
// and h.payloadLen bytes of inflight, which the call now owns.
func (c *serverConn) newCall(h *frameHeader) *serverCall {
	sc := serverCallPool.Get().(*serverCall)
	sc.conn = c
	sc.reserved = int64(h.payloadLen)
	sc.store = grow(sc.store, int(h.bodyLen))
	if h.payloadLen > 0 {
		sc.req.Payload = c.buffers.Get(int(h.payloadLen))
	}
	return sc
}

// dropCall gives back a call whose frame could not be read, with its
// slot and inflight bytes.
func (c *serverConn) dropCall(sc *serverCall) {
	if sc.req.Payload != nil {
		sc.req.Payload.Release()
	}
	c.inflight.release(sc.reserved)
	*sc = serverCall{store: sc.store, hdrBuf: sc.hdrBuf, parts: sc.parts}
	serverCallPool.Put(sc)
	<-c.slots
}

// dispatch starts a request read whole: answers it at once, starts it
// with the Starter, or hands it to a handler goroutine.
func (c *serverConn) dispatch(sc *serverCall, h *frameHeader) {
	c.metrics.frameIn(h)
	c.metrics.requests.Add(1)
	c.metrics.requestsInFlight.Add(1)
	c.unanswered.Add(1)
	sc.req.Kind, sc.req.ID, sc.req.Header, sc.req.Peer = h.kind, h.id, sc.store, c.peer
	sc.rw = ResponseWriter{sc: sc, kind: h.kind}
	sc.refs.Store(1)
	c.calls.Add(1)
	switch {
	case c.draining.Load():
		sc.rw.Error(CodeShuttingDown, "server is shutting down")
		sc.handlerReturned()
	case h.kind == KindPing:
		sc.rw.Reply(nil, nil, nil)
		sc.handlerReturned()
	case h.kind < FirstUserKind:
		sc.rw.Error(CodeUnknownKind, fmt.Sprintf("unknown message kind %d (reserved for the transport)", h.kind))
		sc.handlerReturned()
	case c.srv.starter != nil && c.start(sc):
	default:
		select {
		case c.work <- sc:
		default:
			go c.handler(sc)
		}
	}
}

// start offers sc to the server's Starter and reports whether it took it.
func (c *serverConn) start(sc *serverCall) (taken bool) {
	sc.started = true
	defer func() {
		if r := recover(); r != nil {
			// Invariant (Starter's contract): it panicked before handing
			// the request on, so nothing else answers it.
			c.panicked(sc, "StartRPC", r)
			taken = true
		}
	}()
	if c.srv.starter.StartRPC(c.ctx, &sc.req, &sc.rw) {
		return true
	}
	if sc.rw.replied {
		panic(fmt.Sprintf("net: StartRPC answered a request of kind %d and did not take it", sc.req.Kind))
	}
	sc.started = false
	return false
}

// panicked counts and logs a panic r of sc's handler (or Starter, per
// who), and answers sc with CodeInternal unless it was answered already.
func (c *serverConn) panicked(sc *serverCall, who string, r any) {
	c.metrics.countError(errHandlerPanic)
	c.log.Error("net: "+who+" panicked", "remote", c.peer.RemoteAddr, "kind", sc.req.Kind, "panic", r, "stack", string(debug.Stack()))
	if !sc.rw.replied {
		sc.rw.Error(CodeInternal, fmt.Sprintf("handler for kind %d panicked", sc.req.Kind))
	}
}

// handler runs sc's handler, then those of the requests it is handed,
// until the connection's context ends.
func (c *serverConn) handler(sc *serverCall) {
	for {
		c.handle(sc)
		select {
		case sc = <-c.work:
		case <-c.ctx.Done():
			return
		}
	}
}

// handle runs a request's handler.
func (c *serverConn) handle(sc *serverCall) {
	defer func() {
		if r := recover(); r != nil {
			c.panicked(sc, "handler", r)
		}
		sc.handlerReturned()
	}()
	c.srv.handler.ServeRPC(c.ctx, &sc.req, &sc.rw)
}

// teardown runs when the reader stops.
func (c *serverConn) teardown(reason error) {
	attrs := []any{"remote", c.peer.RemoteAddr, "key", c.peer.KeyID, "reason", reason}
	switch {
	case errors.Is(reason, io.EOF):
		c.log.Debug("net: connection closed by the client", attrs...)
	case errors.Is(reason, ErrCorrupt):
		c.metrics.countError(errCorrupt)
		c.log.Warn("net: closing connection: bad frame from client", attrs...)
	case c.ctx.Err() != nil:
		c.log.Debug("net: connection closed by the server", attrs...)
	default:
		c.log.Info("net: connection failed", attrs...)
	}
	c.cancel()
	c.nc.Close()
	c.w.stop(&closedError{addr: c.peer.RemoteAddr, reason: reason})
	c.calls.Wait() // handlers returned; their frames written or dropped
	<-c.w.done
}

// goAway starts a graceful shutdown of the connection.
func (c *serverConn) goAway() {
	c.draining.Store(true)
	c.mu.Lock()
	started := c.mu.started
	c.mu.Unlock()
	if started {
		c.sendGoAway()
	} else {
		// Still in the handshake: nothing in progress to finish.
		c.nc.Close()
	}
}

func (c *serverConn) sendGoAway() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.goAway {
		return
	}
	c.mu.goAway = true
	putFrameHeader(c.goAwayHdr[:], &frameHeader{flags: flagResponse, kind: kindGoAway}, nil)
	c.goAwayFrame = outFrame{hdr: c.goAwayHdr[:], owner: nopOwner{}}
	c.w.enqueue(&c.goAwayFrame)
}

type nopOwner struct{}

func (nopOwner) frameWritten(*outFrame, error) {}

// close closes the connection at once.
func (c *serverConn) close() {
	// The socket first: a handler woken by the cancellation must find
	// it closed, or its reply could still reach a client that is being
	// told the connection died.
	c.nc.Close()
	c.cancel()
	if l := c.loop.Load(); l != nil {
		l.poke() // a sleeping loop sees the end at its next pass
	}
}
