package net

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	stdnet "net"
	"sync"
	"time"
)

// FaultNet is a fault-injecting network for tests: it sits between the
// endpoints a test names and drops, delays, duplicates, reorders or
// partitions their traffic according to rules per (from, to) pair.
//
// Faults apply at frame granularity: each direction of a connection is cut
// into frames by their fixed headers (no checksum is checked), and each
// frame meets its fate whole, so the stream stays decodable unless the test
// asks otherwise (bytes that do not start with the frame magic pass through
// untouched). Handshake frames are frames like any other; install rules
// after dialing to spare the handshake.
//
// Every random choice comes from the seed: the n-th frame in one direction
// of the k-th connection between two endpoints draws the same numbers in
// every run with the same seed. (Which request is the n-th frame still
// depends on the goroutine schedule of the test.) Tests print Seed() when
// they fail so the run can be replayed.
//
// Endpoints are names: a server's listener is registered with Listener,
// and a client dials through Dialer(from); the rule for a connection's
// client→server direction is the rule for (from, the listener's name), and
// the reverse direction uses (listener's name, from). All methods are safe
// for concurrent use.
type FaultNet struct {
	seed uint64

	mu struct {
		sync.Mutex
		rules      map[faultLink]FaultRule
		partitions map[faultLink]chan struct{} // both orders of a pair; closed by Heal
		names      map[string]string           // listener address → endpoint name
		connSeq    map[faultLink]uint64
	}
}

type faultLink struct{ from, to string }

// DropMode is what a dropped frame does to its connection.
type DropMode uint8

const (
	// DropBlackhole discards the frame and keeps the connection: the
	// request (or response) is simply never seen.
	DropBlackhole DropMode = iota
	// DropClose closes the connection at the dropped frame, as a crashed
	// peer or a reset would.
	DropClose
)

func (m DropMode) String() string {
	switch m {
	case DropBlackhole:
		return "blackhole"
	case DropClose:
		return "close"
	}
	return fmt.Sprintf("DropMode(%d)", uint8(m))
}

// FaultRule is what happens to the frames from one endpoint to another.
// Each probability is per frame. The zero value passes frames unharmed.
type FaultRule struct {
	DropProb float64
	DropMode DropMode
	// Delay holds every frame for Delay plus a uniform random part of up
	// to DelayJitter. Frames keep their order (the stream is TCP).
	Delay, DelayJitter time.Duration
	// DupProb sends a frame twice.
	DupProb float64
	// ReorderProb holds a frame back and sends it after the next one (or
	// alone once ReorderWindow has passed without a next one; default
	// 20ms).
	ReorderProb   float64
	ReorderWindow time.Duration
}

// NewFaultNet returns a network with no rules, whose random choices come
// from seed.
func NewFaultNet(seed uint64) *FaultNet {
	n := &FaultNet{seed: seed}
	n.mu.rules = make(map[faultLink]FaultRule)
	n.mu.partitions = make(map[faultLink]chan struct{})
	n.mu.names = make(map[string]string)
	n.mu.connSeq = make(map[faultLink]uint64)
	return n
}

// Seed returns the seed, for the failure message.
func (n *FaultNet) Seed() uint64 { return n.seed }

// SetRule sets the rule for frames from one endpoint to another,
// replacing any earlier one. It applies to frames sent from now on.
func (n *FaultNet) SetRule(from, to string, r FaultRule) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.rules[faultLink{from, to}] = r
}

// ClearRules removes every rule (partitions stay).
func (n *FaultNet) ClearRules() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.mu.rules)
}

// Partition cuts a and b apart: frames between them, either way, are held
// (as by a network that loses every packet while TCP retransmits) until
// Heal. New dials between them wait too.
func (n *FaultNet) Partition(a, b string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.mu.partitions[faultLink{a, b}]; ok {
		return
	}
	ch := make(chan struct{})
	n.mu.partitions[faultLink{a, b}] = ch
	n.mu.partitions[faultLink{b, a}] = ch
}

// Heal ends the partition between a and b; held frames flow again.
func (n *FaultNet) Heal(a, b string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ch, ok := n.mu.partitions[faultLink{a, b}]; ok {
		close(ch)
		delete(n.mu.partitions, faultLink{a, b})
		delete(n.mu.partitions, faultLink{b, a})
	}
}

// HealAll ends every partition.
func (n *FaultNet) HealAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for l, ch := range n.mu.partitions {
		if l.from < l.to {
			close(ch)
		}
	}
	clear(n.mu.partitions)
}

// partition returns a channel closed when from and to are healed, or nil
// when they are not partitioned.
func (n *FaultNet) partition(l faultLink) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.partitions[l]
}

func (n *FaultNet) rule(l faultLink) FaultRule {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.rules[l]
}

// Listener registers ln's address as the endpoint name and returns ln.
func (n *FaultNet) Listener(name string, ln stdnet.Listener) stdnet.Listener {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.names[ln.Addr().String()] = name
	return ln
}

// Dialer returns a dial function (for ClientConfig.Dial) for the endpoint
// named from. Connections it makes carry from's traffic through the rules.
func (n *FaultNet) Dialer(from string) func(ctx context.Context, network, addr string) (stdnet.Conn, error) {
	return func(ctx context.Context, network, addr string) (stdnet.Conn, error) {
		n.mu.Lock()
		to, ok := n.mu.names[addr]
		if !ok {
			to = addr
		}
		l := faultLink{from, to}
		seq := n.mu.connSeq[l]
		n.mu.connSeq[l] = seq + 1
		n.mu.Unlock()
		if ch := n.partition(l); ch != nil {
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, fmt.Errorf("fault: dial %s from %s: partitioned: %w", to, from, ctx.Err())
			}
		}
		var d stdnet.Dialer
		real, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return newFaultConn(n, real, l, seq), nil
	}
}

// faultConn is the client's side of a connection through a FaultNet. Both
// directions are processed here: what the client writes goes through
// out to the real socket; what the real socket yields goes through in to
// a pipe the client reads from (a stdnet.Pipe, so deadlines work).
type faultConn struct {
	stdnet.Conn              // the real socket (addresses, close)
	local       stdnet.Conn  // the client reads here
	feeder      stdnet.Conn  // in's deliveries are written here
	out, in     *faultStream // client→server, server→client
	closed      chan struct{}
	closeOnce   sync.Once
	wg          sync.WaitGroup
}

func newFaultConn(n *FaultNet, real stdnet.Conn, l faultLink, seq uint64) *faultConn {
	local, feeder := stdnet.Pipe()
	c := &faultConn{Conn: real, local: local, feeder: feeder, closed: make(chan struct{})}
	c.out = newFaultStream(n, c, l, seq, func(b []byte) error { _, err := real.Write(b); return err })
	c.in = newFaultStream(n, c, faultLink{l.to, l.from}, seq, func(b []byte) error { _, err := feeder.Write(b); return err })
	c.wg.Add(3)
	go c.out.deliverLoop()
	go c.in.deliverLoop()
	go c.readLoop(real)
	return c
}

// readLoop feeds the server's bytes into the inbound stream.
func (c *faultConn) readLoop(real stdnet.Conn) {
	defer c.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := real.Read(buf)
		if n > 0 {
			if ferr := c.in.feed(buf[:n]); ferr != nil {
				return
			}
		}
		if err != nil {
			c.in.finish() // deliver what is queued, then EOF
			return
		}
	}
}

func (c *faultConn) Read(b []byte) (int, error) { return c.local.Read(b) }

func (c *faultConn) Write(b []byte) (int, error) {
	select {
	case <-c.closed:
		return 0, stdnet.ErrClosed
	default:
	}
	if err := c.out.feed(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// shutdown closes everything without waiting (safe from the conn's own
// goroutines).
func (c *faultConn) shutdown() {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.Conn.Close()
		c.local.Close()
		c.feeder.Close()
		c.out.wake()
		c.in.wake()
	})
}

func (c *faultConn) Close() error {
	c.shutdown()
	c.wg.Wait()
	return nil
}

func (c *faultConn) SetDeadline(t time.Time) error     { return c.local.SetDeadline(t) }
func (c *faultConn) SetReadDeadline(t time.Time) error { return c.local.SetReadDeadline(t) }

// SetWriteDeadline is accepted and ignored: writes are queued, never block.
func (c *faultConn) SetWriteDeadline(time.Time) error { return nil }

var errFaultClosed = errors.New("fault: connection closed by a drop rule")

// faultStream is one direction of a faultConn.
type faultStream struct {
	net     *FaultNet
	conn    *faultConn
	link    faultLink
	deliver func([]byte) error

	mu struct {
		sync.Mutex
		rng     *rand.Rand
		asm     []byte // bytes of an incomplete frame
		raw     bool   // the stream is not made of frames: pass through
		queue   []faultItem
		held    *faultItem // reordered frame waiting for the next one
		heldGen uint64
		eof     bool
	}
	kick chan struct{} // cap 1
}

type faultItem struct {
	data      []byte
	notBefore time.Time
}

func newFaultStream(n *FaultNet, c *faultConn, l faultLink, seq uint64, deliver func([]byte) error) *faultStream {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%d", l.from, l.to, seq)
	s := &faultStream{net: n, conn: c, link: l, deliver: deliver, kick: make(chan struct{}, 1)}
	s.mu.rng = rand.New(rand.NewPCG(n.seed, h.Sum64()))
	return s
}

func (s *faultStream) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// feed takes bytes written in this direction, cuts them into frames and
// queues each according to its fate.
func (s *faultStream) feed(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.raw {
		s.pushLocked(faultItem{data: append([]byte(nil), b...)})
		return nil
	}
	s.mu.asm = append(s.mu.asm, b...)
	for len(s.mu.asm) >= frameHeaderSize {
		a := s.mu.asm
		if binary.LittleEndian.Uint32(a) != frameMagic {
			s.mu.raw = true
			s.pushLocked(faultItem{data: a})
			s.mu.asm = nil
			return nil
		}
		size := frameHeaderSize + int(binary.LittleEndian.Uint32(a[16:])) + int(binary.LittleEndian.Uint32(a[20:]))
		if len(a) < size {
			break
		}
		frame := append([]byte(nil), a[:size]...)
		s.mu.asm = append(a[:0], a[size:]...)
		if err := s.frameLocked(frame); err != nil {
			return err
		}
	}
	return nil
}

// frameLocked decides one frame's fate. It draws the same five numbers for
// every frame, whatever the rule, so that a run replays with its seed.
func (s *faultStream) frameLocked(frame []byte) error {
	r := s.net.rule(s.link)
	rng := s.mu.rng
	drop, dup, reorder, jitter := rng.Float64(), rng.Float64(), rng.Float64(), rng.Float64()
	_ = rng.Uint64() // reserved, keeps the draw count fixed if a fault is added
	if drop < r.DropProb {
		if r.DropMode == DropClose {
			s.conn.shutdown()
			return errFaultClosed
		}
		return nil
	}
	it := faultItem{data: frame}
	if d := r.Delay + time.Duration(jitter*float64(r.DelayJitter)); d > 0 {
		it.notBefore = time.Now().Add(d)
	}
	if reorder < r.ReorderProb && s.mu.held == nil {
		s.mu.held = &it
		s.mu.heldGen++
		gen := s.mu.heldGen
		w := r.ReorderWindow
		if w <= 0 {
			w = 20 * time.Millisecond
		}
		time.AfterFunc(w, func() { s.flushHeld(gen) })
		if dup < r.DupProb {
			s.pushLocked(faultItem{data: frame, notBefore: it.notBefore})
		}
		return nil
	}
	s.pushLocked(it)
	if dup < r.DupProb {
		s.pushLocked(it)
	}
	if h := s.mu.held; h != nil {
		s.mu.held = nil
		s.pushLocked(*h)
	}
	return nil
}

func (s *faultStream) flushHeld(gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.mu.held; h != nil && s.mu.heldGen == gen {
		s.mu.held = nil
		s.pushLocked(*h)
	}
}

func (s *faultStream) pushLocked(it faultItem) {
	s.mu.queue = append(s.mu.queue, it)
	s.wake()
}

// finish marks the end of the stream: once the queue (and any held frame)
// is delivered, the reader sees EOF.
func (s *faultStream) finish() {
	s.mu.Lock()
	if h := s.mu.held; h != nil {
		s.mu.held = nil
		s.mu.queue = append(s.mu.queue, *h)
	}
	s.mu.eof = true
	s.mu.Unlock()
	s.wake()
}

// deliverLoop hands queued frames on in order, each no earlier than its
// time and never while the endpoints are partitioned.
func (s *faultStream) deliverLoop() {
	defer s.conn.wg.Done()
	closed := s.conn.closed
	for {
		s.mu.Lock()
		var it faultItem
		have := len(s.mu.queue) > 0
		if have {
			it = s.mu.queue[0]
		}
		eof := s.mu.eof
		s.mu.Unlock()
		if !have {
			if eof {
				s.conn.feeder.Close()
				return
			}
			select {
			case <-s.kick:
				continue
			case <-closed:
				return
			}
		}
		if d := time.Until(it.notBefore); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-closed:
				t.Stop()
				return
			}
		}
		for ch := s.net.partition(s.link); ch != nil; ch = s.net.partition(s.link) {
			select {
			case <-ch:
			case <-closed:
				return
			}
		}
		if err := s.deliver(it.data); err != nil {
			s.conn.shutdown()
			return
		}
		s.mu.Lock()
		s.mu.queue[0] = faultItem{}
		s.mu.queue = s.mu.queue[1:]
		s.mu.Unlock()
	}
}
