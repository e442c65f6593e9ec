package net

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// PoolConfig configures a Pool.
type PoolConfig struct {
	// Client configures every connection (Metrics default: one per Pool).
	Client ClientConfig
	// ConnsPerPeer is the number of connections kept to each peer; Get
	// spreads callers over them round-robin. Default 2.
	ConnsPerPeer int
	// BackoffBase and BackoffMax bound the wait before redialing a peer
	// after failed dials: BackoffBase doubled per consecutive failure, at
	// most BackoffMax, with jitter (a random part of up to half). Defaults
	// 50ms and 5s.
	BackoffBase, BackoffMax time.Duration
	// DialTimeout bounds one dial and handshake. Default
	// Client.HandshakeTimeout.
	DialTimeout time.Duration
	// Seed seeds the backoff jitter; 0 picks a random seed.
	Seed uint64
}

// Pool keeps connections to peers: ConnsPerPeer per address, dialed on
// first use, handed out round-robin, and replaced when they break. It is
// safe for concurrent use.
type Pool struct {
	cfg     PoolConfig
	ctx     context.Context // cancelled by Close: ends dials in progress
	cancel  context.CancelFunc
	dialers sync.WaitGroup

	mu struct {
		sync.Mutex
		peers   map[string]*poolPeer
		retired []*Conn // draining connections taken out of their slots
		closed  bool
		rng     *rand.Rand
	}
}

type poolPeer struct {
	addr  string
	next  atomic.Uint32
	slots []*poolSlot
}

// poolSlot holds one of a peer's connections.
type poolSlot struct {
	mu       sync.Mutex
	conn     *Conn
	dialing  chan struct{} // non-nil while a dial runs; closed when it ends
	failures int           // consecutive failed dials
	retryAt  time.Time     // no dial before this (backoff)
	lastErr  error
}

// NewPool validates cfg and returns an empty pool.
func NewPool(cfg PoolConfig) (*Pool, error) {
	cc, err := cfg.Client.resolve()
	var probs []string
	if err != nil {
		probs = append(probs, err.Error())
	}
	if cfg.ConnsPerPeer == 0 {
		cfg.ConnsPerPeer = 2
	}
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase = 50 * time.Millisecond
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = 5 * time.Second
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = cc.HandshakeTimeout
	}
	switch {
	case cfg.ConnsPerPeer < 0 || cfg.ConnsPerPeer > 1024:
		probs = append(probs, fmt.Sprintf("ConnsPerPeer %d out of range [1, 1024]", cfg.ConnsPerPeer))
	case cfg.BackoffBase < 0 || cfg.BackoffMax < cfg.BackoffBase:
		probs = append(probs, fmt.Sprintf("backoff %v..%v: want 0 < BackoffBase <= BackoffMax", cfg.BackoffBase, cfg.BackoffMax))
	case cfg.DialTimeout < 0:
		probs = append(probs, fmt.Sprintf("DialTimeout %v is negative", cfg.DialTimeout))
	}
	if len(probs) > 0 {
		return nil, errors.New("net: pool config: " + joinProblems(probs))
	}
	if cc.Metrics == nil {
		cc.Metrics = new(Metrics)
	}
	cfg.Client = cc
	p := &Pool{cfg: cfg}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.mu.peers = make(map[string]*poolPeer)
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	p.mu.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return p, nil
}

func joinProblems(probs []string) string {
	s := probs[0]
	for _, p := range probs[1:] {
		s += "; " + p
	}
	return s
}

// Metrics returns the counts of all the pool's connections.
func (p *Pool) Metrics() MetricsSnapshot { return p.cfg.Client.Metrics.Snapshot() }

// Get returns a usable connection to addr, dialing one if none is. Broken
// connections it comes across are redialed in the background, after a
// backoff when dials have been failing. It waits for a dial as long as ctx
// allows; a refused handshake (wrong key, cluster or version) is returned
// at once, since redialing would not change it. The Conn stays the pool's:
// do not Close it.
func (p *Pool) Get(ctx context.Context, addr string) (*Conn, error) {
	return p.GetWithin(ctx, 0, addr)
}

// GetWithin is Get, waiting for a dial at most limit (limit <= 0: as long
// as ctx allows); the error then matches ErrTimeout and
// context.DeadlineExceeded. A connection already there is returned without
// a timer or a context being made.
func (p *Pool) GetWithin(ctx context.Context, limit time.Duration, addr string) (*Conn, error) {
	pp, err := p.peer(addr)
	if err != nil {
		return nil, err
	}
	n := uint32(len(pp.slots))
	var timer, limitTimer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		if limitTimer != nil {
			limitTimer.Stop()
		}
	}()
	for {
		start := pp.next.Add(1)
		var (
			wait    <-chan struct{}
			retryAt time.Time
			lastErr error
		)
		now := time.Now()
		for i := range n {
			s := pp.slots[(start+i)%n]
			s.mu.Lock()
			if s.conn != nil && s.conn.Err() == nil {
				c := s.conn
				s.mu.Unlock()
				return c, nil
			}
			if s.conn != nil {
				// Broken or draining: replace it. A broken Conn's reader has
				// stopped or is stopping, so Close returns at once; a
				// draining one closes itself once its calls have finished,
				// and Pool.Close closes it if they have not.
				old := s.conn
				s.conn = nil
				if errors.Is(old.Err(), ErrDraining) {
					p.retire(old)
				} else {
					old.Close()
				}
			}
			if s.dialing == nil && !now.Before(s.retryAt) {
				if !p.startDial(pp, s) {
					s.mu.Unlock()
					return nil, ErrPoolClosed
				}
			}
			if s.dialing != nil && wait == nil {
				wait = s.dialing
			}
			if s.dialing == nil && (retryAt.IsZero() || s.retryAt.Before(retryAt)) {
				retryAt = s.retryAt
			}
			if s.lastErr != nil {
				lastErr = s.lastErr
			}
			s.mu.Unlock()
		}
		var re *RemoteError
		if wait == nil && lastErr != nil && errors.As(lastErr, &re) {
			return nil, lastErr
		}
		var tc <-chan time.Time
		if wait == nil {
			d := time.Until(retryAt)
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			tc = timer.C
		}
		var limitC <-chan time.Time
		if limit > 0 {
			if limitTimer == nil {
				limitTimer = time.NewTimer(limit)
			}
			limitC = limitTimer.C
		}
		select {
		case <-wait:
		case <-tc:
		case <-p.ctx.Done():
			return nil, ErrPoolClosed
		case <-limitC:
			terr := &timeoutError{what: fmt.Sprintf("pool: no connection to %s within %v", addr, limit)}
			if lastErr != nil {
				return nil, fmt.Errorf("%w (last dial error: %w)", terr, lastErr)
			}
			return nil, terr
		case <-ctx.Done():
			if lastErr != nil {
				return nil, fmt.Errorf("net: pool: no connection to %s: %w (last dial error: %w)", addr, ctx.Err(), lastErr)
			}
			return nil, fmt.Errorf("net: pool: no connection to %s: %w", addr, ctx.Err())
		}
	}
}

func (p *Pool) peer(addr string) (*poolPeer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return nil, ErrPoolClosed
	}
	pp := p.mu.peers[addr]
	if pp == nil {
		pp = &poolPeer{addr: addr, slots: make([]*poolSlot, p.cfg.ConnsPerPeer)}
		for i := range pp.slots {
			pp.slots[i] = new(poolSlot)
		}
		p.mu.peers[addr] = pp
	}
	return pp, nil
}

// startDial starts a dial for s, whose lock the caller holds. It reports
// false if the pool is closed.
func (p *Pool) startDial(pp *poolPeer, s *poolSlot) bool {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return false
	}
	p.dialers.Add(1)
	p.mu.Unlock()
	done := make(chan struct{})
	s.dialing = done
	go func() {
		defer p.dialers.Done()
		ctx, cancel := context.WithTimeout(p.ctx, p.cfg.DialTimeout)
		c, err := dial(ctx, pp.addr, &p.cfg.Client)
		cancel()
		s.mu.Lock()
		s.dialing = nil
		if err != nil {
			s.failures++
			s.lastErr = err
			s.retryAt = time.Now().Add(p.backoff(s.failures))
		} else {
			s.failures, s.lastErr, s.retryAt = 0, nil, time.Time{}
			p.mu.Lock()
			closed := p.mu.closed
			p.mu.Unlock()
			if closed {
				c.Close()
			} else {
				s.conn = c
			}
		}
		s.mu.Unlock()
		close(done)
	}()
	return true
}

// backoff returns the wait after the n-th consecutive failure: base·2^(n-1)
// capped at max, of which a random part of up to half is taken off, so
// that clients that failed together do not redial together.
func (p *Pool) backoff(n int) time.Duration {
	d := p.cfg.BackoffBase << min(n-1, 30)
	if d > p.cfg.BackoffMax || d <= 0 {
		d = p.cfg.BackoffMax
	}
	p.mu.Lock()
	j := time.Duration(p.mu.rng.Int64N(int64(d)/2 + 1))
	p.mu.Unlock()
	return d - j
}

// retire remembers a draining connection until it closes itself.
func (p *Pool) retire(c *Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		go c.Close() // Close already ran; nobody else will
		return
	}
	// Forget the ones that are gone, so the list stays short.
	live := p.mu.retired[:0]
	for _, r := range p.mu.retired {
		select {
		case <-r.readerDone:
		default:
			live = append(live, r)
		}
	}
	clear(p.mu.retired[len(live):])
	p.mu.retired = append(live, c)
}

// Close closes every connection and stops dials in progress. Calls in
// flight fail with ErrConnClosed; Get fails with ErrPoolClosed.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return nil
	}
	p.mu.closed = true
	peers, retired := p.mu.peers, p.mu.retired
	p.mu.retired = nil
	p.mu.Unlock()
	for _, c := range retired {
		c.Close()
	}
	p.cancel()
	p.dialers.Wait()
	for _, pp := range peers {
		for _, s := range pp.slots {
			s.mu.Lock()
			c := s.conn
			s.conn = nil
			s.mu.Unlock()
			if c != nil {
				c.Close()
			}
		}
	}
	return nil
}
