package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/replication"
	"github.com/weftfs/weft/net"
)

// MapSource hands out cluster maps. Map blocks until a map with Epoch >
// after exists (after 0: the current map) and returns it, or fails when
// ctx ends. The manager's client satisfies it; tests publish maps they
// build with clustermap. Implementations must be safe for concurrent use.
type MapSource interface {
	Map(ctx context.Context, after uint64) (*clustermap.Map, error)
}

// DataServerConfig configures a DataServer.
type DataServerConfig struct {
	// Node is this node's id in the map. Required.
	Node clustermap.NodeID
	// Engine stores this node's replicas. Required; the caller keeps
	// owning it and closes it after the DataServer.
	Engine *engine.Engine
	// Maps is where the server learns the cluster map. Required.
	Maps MapSource
	// Pool reaches peers at their map addresses (KindPeer batches). It
	// should authenticate with the cluster key. Required; the caller
	// closes it after the DataServer.
	Pool *net.Pool
	// OnCaughtUp is called, on its own goroutine, when this node finished
	// backfilling pg as of the PG epoch; the node turns it into the map's
	// CaughtUp command (treating clustermap.ErrNoChange and ErrStaleEpoch
	// as done). When it returns an error it is called again, every
	// CaughtUpRetry, while the newest map still shows this node
	// backfilling pg at that epoch and the server is open. May be nil.
	OnCaughtUp func(pg clustermap.PGID, epoch uint64) error
	// CaughtUpRetry is the wait between OnCaughtUp attempts. Default 1s.
	CaughtUpRetry time.Duration
	// Replication tunes the core; its ID is set from Node, its ReadLease
	// and Now from ReadLease.
	Replication replication.Config
	// ReadLease is the core's read lease (see "Read leases" in package
	// replication): how long this node promises a primary whose
	// ReadCheck it answers not to lead the PG, and how long, as primary,
	// it serves reads without a round after one. 0 gives
	// ReadLeaseDefault; a negative value turns leases off. The clock is
	// the process's monotonic clock. A longer lease saves no more rounds
	// worth having and delays a new primary's first writes after a
	// handoff, and a restarted node's leading, by up to one lease.
	ReadLease time.Duration
	// TickInterval is the period of the core's Tick (retransmission and
	// sync throttle). Default 20ms.
	TickInterval time.Duration
	// RetireAfter is how long a PG this node left must have lived on
	// whole without it (every replica the policy asks for, none
	// backfilling, none down) before this node deletes its copy (see
	// "Moved PGs" in the package doc). 0 gives RetireAfterDefault; a
	// negative value keeps such copies.
	RetireAfter time.Duration
	// ForgetAfter is how old a deleted chunk's tombstone must be before
	// the node may forget it (replication.Config.ForgetTicks; see
	// "Forgotten tombstones" in package replication): it must exceed the
	// time a client goes on retrying one mutation. 0 gives
	// ForgetAfterDefault; a negative value keeps tombstones for ever.
	ForgetAfter time.Duration
	// PeerKeyID, when set, is the only key id KindPeer batches are
	// accepted from (the cluster key); "" accepts any authenticated key.
	PeerKeyID string
	// Access, when set, resolves each request's key to its grant: chunk
	// reads need clustermap.Grant.ReadsContainer, mutations
	// WritesContainer of the chunk's container (else
	// fsproto.CodeAccessDenied, naming key and container), and peer
	// batches the cluster key (Internal). nil checks only the read-only
	// flag and PeerKeyID.
	Access clustermap.Authorizer
	// QueueMax bounds the client operations and the peer batches waiting
	// for the loop, and the messages waiting per peer. Default 4096.
	QueueMax int
	// Logger receives server events. Default slog.Default().
	Logger *slog.Logger
}

// Defaults.
const (
	// ReadLeaseDefault: under a steady read load a lease this long costs
	// one ReadCheck round per PG about every 190ms (a renewal starts
	// with less than half of it left), and it is far shorter than a
	// node's heartbeat timeout (5s by default), so the grants to a
	// primary that failed have run out before the managers mark it Down.
	ReadLeaseDefault    = 500 * time.Millisecond
	TickIntervalDefault = 20 * time.Millisecond
	QueueMaxDefault     = 4096
	// RetireAfterDefault: long enough that a map that moves a PG away
	// and back (an operator's drain undone, a node's state flapping)
	// does not cost the returning node a full backfill.
	RetireAfterDefault = 5 * time.Minute
	// ForgetAfterDefault: far beyond any client's retries (a client call
	// gives up within a minute), short enough that a workload that
	// deletes all day holds an hour's tombstones at most.
	ForgetAfterDefault = 10 * time.Minute
	// peerCallTimeout bounds one KindPeer call: a peer that does not take
	// a batch in that time loses it (the core retransmits).
	peerCallTimeout = 2 * time.Second
)

// Role is what this node is in a PG.
type Role uint8

// Roles.
const (
	RoleNone        Role = iota // not a replica (left the PG)
	RolePrimary                 // Replicas[0]
	RoleReplica                 // a caught-up replica
	RoleBackfilling             // a replica still copying the PG's data
)

func (r Role) String() string {
	switch r {
	case RoleNone:
		return "none"
	case RolePrimary:
		return "primary"
	case RoleReplica:
		return "replica"
	case RoleBackfilling:
		return "backfilling"
	}
	return fmt.Sprintf("Role(%d)", r)
}

// PGStatus is the state of one PG on this node, for `weft status`.
type PGStatus struct {
	PG    clustermap.PGID
	Epoch uint64 // the PG epoch of the last view handed to the core
	Role  Role
	// Phase is "active" for a primary whose caught-up replicas are all
	// reconciled, "syncing" while one is not (or while peering: the core
	// does not tell the two apart yet), "caught-up" for a replica that
	// finished its backfill, "backfilling" before that, "" otherwise.
	Phase string
	// Syncs is the primary's sync progress of each replica it syncs.
	Syncs []replication.Progress
	// SyncBytesSent counts the object bytes this node sent as primary to
	// sync replicas of the PG (resends included).
	SyncBytesSent int64
	// InstalledObjects and InstalledBytes count the distinct object
	// states (object, seq) this node installed from its primary's sync
	// while backfilling (since it last became a backfilling replica):
	// the data it was missing.
	InstalledObjects int64
	InstalledBytes   int64
	// ReconciledBytes counts the object bytes installed by syncs as a
	// caught-up replica (the reconciliation every new epoch runs over the
	// last Window seqs), resent objects included.
	ReconciledBytes int64
	// InstallRate is InstalledBytes per second since the first install of
	// the current backfill (0 when none).
	InstallRate float64
}

// DataServer is the node side of replication: it serves the chunk
// protocol (kinds 256-259) through the replication core and carries the
// core's messages between nodes (KindPeer). See the package doc.
type DataServer struct {
	cfg   DataServerConfig
	me    uint64
	log   *slog.Logger
	node  *replication.Node
	store *replication.EngineStore
	// gates let chunk reads on a lease bypass the loop (readbeside.go);
	// nil without read leases. readsBeside counts such reads.
	gates       *readGates
	readsBeside atomic.Uint64

	latest atomic.Pointer[clustermap.Map]
	mapc   chan struct{} // a newer map is in latest
	purgec chan struct{} // the same, for the purger
	// purged counts what the purger deleted of deleted containers' PGs,
	// retired what it deleted of PGs that live on without this node:
	// PGs, objects, bytes.
	purged, retired struct{ pgs, objects, bytes atomic.Uint64 }
	// retirec carries the purger's requests to the loop to keep the
	// core out of a PG while its copy is deleted, and to let it in again.
	retirec chan retireReq
	// replStats is the core's counters as of the loop's last tick.
	replStats atomic.Pointer[replication.Stats]

	ops    chan *clientReq
	recv   chan *peerBatch
	done   chan replication.StoreResult
	status chan chan []PGStatus

	ctx     context.Context
	cancel  context.CancelFunc
	loopWG  sync.WaitGroup // the loop, the map watcher and the purger
	sendWG  sync.WaitGroup // peer senders
	cbWG    sync.WaitGroup // OnCaughtUp calls
	closed  chan struct{}  // closed when the loop exited
	closing atomic.Bool
	// starting counts the readers inside startOp: Close waits for them
	// before its last sweep of the queue.
	starting atomic.Int32

	peersMu sync.Mutex
	peers   map[uint64]*peerSender

	// Loop state: touched only by the loop goroutine.
	token    uint64
	pending  map[uint64]*clientReq
	dataRefs map[*byte]*bufRef
	opRefs   map[uint64]*bufRef
	installs map[uint64]installOp
	views    map[clustermap.PGID]uint64
	pgs      map[clustermap.PGID]*pgState
	// retiring holds the PGs whose copy the purger is deleting: their
	// views are not handed to the core until it is done.
	retiring map[clustermap.PGID]bool
	applied  *clustermap.Map // the newest map handed to the core

	storeDone func(replication.StoreResult) // s.storeDoneFunc
	// overflow: completions waiting for room in done (storeDoneFunc).
	overflowMu sync.Mutex
	overflow   []replication.StoreResult
}

type pgState struct {
	epoch       uint64
	role        Role
	caughtUp    uint64 // epoch of the last CaughtUp emitted
	syncSent    int64
	installed   map[installKey]struct{}
	instObjs    int64
	instBytes   int64
	instStarted time.Time
	reconBytes  int64
}

type installKey struct {
	obj engine.ObjectID
	seq uint64
}

type installOp struct {
	pg  clustermap.PGID
	key installKey
	n   int
}

// clientReq is one client operation waiting for its Reply.
type clientReq struct {
	op    replication.ClientOp
	epoch uint64  // the PG epoch the request was routed at
	ref   *bufRef // a write's payload, nil otherwise
	done  chan replication.Reply
	// answered: the client was already told CodeStaleEpoch because the
	// PG's epoch moved (see failStale); the core's own Reply, when it
	// comes, only releases the request.
	answered bool
	holders  atomic.Int32 // see reqPool
	// answer, when set, answers the client from the loop (a request
	// started on the connection's reader, see startOp); else the handler
	// waits on done.
	answer func(replication.Reply)
}

// finish gives the request its answer (loop only).
func (r *clientReq) finish(rep replication.Reply) {
	if r.answer != nil {
		r.answer(rep)
		return
	}
	r.done <- rep
}

// peerBatch is one received KindPeer batch.
type peerBatch struct {
	from uint64
	msgs []replication.Msg
	ref  *bufRef
}

// bufRef counts the users of a received payload buffer: the request
// (until its Reply, or until its batch was stepped), each store op whose
// data lies in it, each queued peer message carrying it. The last user
// releases it.
type bufRef struct {
	buf *net.Buffer
	n   atomic.Int32
}

// refPool recycles bufRefs: one per write and per peer batch.
var refPool = sync.Pool{New: func() any { return new(bufRef) }}

func newRef(b *net.Buffer) *bufRef {
	r := refPool.Get().(*bufRef)
	r.buf = b
	r.n.Store(1)
	return r
}

func (r *bufRef) inc() { r.n.Add(1) }

// dec drops one user. Invariant: nobody holds r after the last dec (the
// maps naming it drop it first), so r is recycled.
func (r *bufRef) dec() {
	switch n := r.n.Add(-1); {
	case n == 0:
		r.buf.Release()
		r.buf = nil
		refPool.Put(r)
	case n < 0:
		panic(fmt.Sprintf("cluster: buffer reference count %d", n))
	}
}

// batchPool recycles peerBatches and their message slices.
var batchPool = sync.Pool{New: func() any { return new(peerBatch) }}

// freeBatch recycles b once the loop stepped it (or dropped it): the core
// copies the messages it keeps, and b.ref keeps the data.
func freeBatch(b *peerBatch) {
	clear(b.msgs)
	b.msgs, b.ref = b.msgs[:0], nil
	batchPool.Put(b)
}

// reqPool recycles clientReqs with their reply channels. A request has
// two holders, the handler and the loop (from the moment it takes the
// request until it drops it from pending), or only the loop when no
// handler waits (startOp); the last to let go recycles it.
var reqPool = sync.Pool{New: func() any { return &clientReq{done: make(chan replication.Reply, 1)} }}

func newReq(op replication.ClientOp, epoch uint64, ref *bufRef) *clientReq {
	r := reqPool.Get().(*clientReq)
	select {
	case <-r.done: // a reply the handler left unread (its connection went)
	default:
	}
	r.op, r.epoch, r.ref, r.answered = op, epoch, ref, false
	r.holders.Store(2)
	return r
}

// release drops one holder of r.
func (r *clientReq) release() {
	switch n := r.holders.Add(-1); {
	case n == 0:
		r.op, r.ref, r.answer = replication.ClientOp{}, nil, nil
		reqPool.Put(r)
	case n < 0:
		panic(fmt.Sprintf("cluster: client request holders %d", n))
	}
}

var errClosing = errors.New("cluster: data server closing")

// NewDataServer validates cfg and starts the server's loop and map
// watcher. Register its handlers on the node's mux, and Close it before
// the engine and the pool.
func NewDataServer(cfg DataServerConfig) (*DataServer, error) {
	var errs []error
	if cfg.Node == 0 {
		errs = append(errs, errors.New("cluster: Node is 0; give this node's id in the map"))
	}
	if cfg.Engine == nil {
		errs = append(errs, errors.New("cluster: Engine is nil"))
	}
	if cfg.Maps == nil {
		errs = append(errs, errors.New("cluster: Maps is nil"))
	}
	if cfg.Pool == nil {
		errs = append(errs, errors.New("cluster: Pool is nil"))
	}
	if cfg.TickInterval < 0 {
		errs = append(errs, fmt.Errorf("cluster: TickInterval %v is negative", cfg.TickInterval))
	}
	if cfg.QueueMax < 0 {
		errs = append(errs, fmt.Errorf("cluster: QueueMax %d is negative", cfg.QueueMax))
	}
	if cfg.TickInterval == 0 {
		cfg.TickInterval = TickIntervalDefault
	}
	rc := cfg.Replication
	rc.ID = uint64(cfg.Node)
	rc.ReadLease, rc.Now = cfg.ReadLease, nil
	switch {
	case rc.ReadLease == 0:
		rc.ReadLease = ReadLeaseDefault
	case rc.ReadLease < 0:
		rc.ReadLease = 0
	}
	if cfg.ForgetAfter == 0 {
		cfg.ForgetAfter = ForgetAfterDefault
	}
	if cfg.ForgetAfter > 0 && cfg.TickInterval > 0 {
		rc.ForgetTicks = int((cfg.ForgetAfter + cfg.TickInterval - 1) / cfg.TickInterval)
	}
	var gates *readGates
	if rc.ReadLease > 0 {
		rc.Now = monotonicNow
		gates = &readGates{margin: rc.ReadLease / 2}
		rc.OnLease = gates.onLease
	}
	node, err := replication.NewNode(rc)
	if err != nil && cfg.Node != 0 {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	store, err := replication.NewEngineStore(cfg.Engine)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if cfg.QueueMax == 0 {
		cfg.QueueMax = QueueMaxDefault
	}
	if cfg.CaughtUpRetry <= 0 {
		cfg.CaughtUpRetry = time.Second
	}
	if cfg.RetireAfter == 0 {
		cfg.RetireAfter = RetireAfterDefault
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &DataServer{
		cfg: cfg, me: uint64(cfg.Node), log: cfg.Logger.With("node", uint64(cfg.Node)), node: node, gates: gates,
		store:    store,
		mapc:     make(chan struct{}, 1),
		purgec:   make(chan struct{}, 1),
		retirec:  make(chan retireReq),
		ops:      make(chan *clientReq, cfg.QueueMax),
		recv:     make(chan *peerBatch, cfg.QueueMax),
		done:     make(chan replication.StoreResult, 1024),
		status:   make(chan chan []PGStatus),
		closed:   make(chan struct{}),
		peers:    map[uint64]*peerSender{},
		pending:  map[uint64]*clientReq{},
		dataRefs: map[*byte]*bufRef{},
		opRefs:   map[uint64]*bufRef{},
		installs: map[uint64]installOp{},
		views:    map[clustermap.PGID]uint64{},
		pgs:      map[clustermap.PGID]*pgState{},
		retiring: map[clustermap.PGID]bool{},
	}
	s.storeDone = s.storeDoneFunc
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.loopWG.Add(3)
	go s.watch()
	go s.loop()
	go s.purger()
	return s, nil
}

// Register registers the chunk kinds (256-259) and KindPeer on mux.
func (s *DataServer) Register(mux *net.ServeMux) {
	mux.Handle(fsproto.KindWrite, startHandler{s.serveWrite, s.startWrite})
	mux.Handle(fsproto.KindRead, startHandler{s.serveRead, s.startRead})
	mux.HandleFunc(fsproto.KindTruncate, s.serveTruncate)
	mux.HandleFunc(fsproto.KindDelete, s.serveDelete)
	// A peer batch only goes into a queue (or is dropped): it never
	// waits, so the reader takes it itself.
	mux.Handle(KindPeer, startHandler{s.servePeer, func(ctx context.Context, req *net.Request, w *net.ResponseWriter) bool {
		s.servePeer(ctx, req, w)
		return true
	}})
}

// Close stops the server: client operations still pending are answered
// with CodeStaleEpoch (retry with the same request id, after a map
// refresh), the loop, watcher and peer senders end, and the store's
// operations in flight complete. Requests arriving afterwards get
// CodeStaleEpoch too. Close is safe to call more than once.
//
// Close the DataServer before shutting down the net server: a handler
// waits for its operation's Reply, which a primary cut off from its
// replicas may never give, and a graceful net shutdown waits for the
// handlers.
func (s *DataServer) Close() error {
	if s.closing.Swap(true) {
		<-s.closed
		return nil
	}
	s.cancel()
	s.loopWG.Wait()
	// A request a reader started as the loop ended may be in the queue:
	// once no start is under way (each checks closing first), answer
	// what is left, since its connection waits for the answer.
	for s.starting.Load() > 0 {
		time.Sleep(time.Millisecond)
	}
	s.shutdown()
	// The loop is gone: store completions are dropped, so wait for the
	// engine to stop using the buffers before releasing them.
	s.store.Close()
	for len(s.done) > 0 {
		<-s.done
	}
	for id, r := range s.opRefs {
		delete(s.opRefs, id)
		r.dec()
	}
	s.peersMu.Lock()
	for _, p := range s.peers {
		close(p.q)
	}
	s.peersMu.Unlock()
	s.sendWG.Wait()
	s.cbWG.Wait()
	close(s.closed)
	return nil
}

// Status returns the state of every PG this node holds or held, sorted
// by PG. It returns nil once the server is closed.
func (s *DataServer) Status() []PGStatus {
	c := make(chan []PGStatus, 1)
	select {
	case s.status <- c:
		return <-c
	case <-s.ctx.Done():
		return nil
	}
}

// Map returns the newest map the server knows, or nil before the first.
func (s *DataServer) Map() *clustermap.Map { return s.latest.Load() }

// watch follows the map source and hands newer maps to the loop.
func (s *DataServer) watch() {
	defer s.loopWG.Done()
	var after uint64
	backoff := 10 * time.Millisecond
	for {
		m, err := s.cfg.Maps.Map(s.ctx, after)
		if s.ctx.Err() != nil {
			return
		}
		if err != nil {
			s.log.Debug("map watch failed", "err", err)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		if m == nil || (after != 0 && m.Epoch <= after) {
			continue
		}
		after = m.Epoch
		s.latest.Store(m)
		for _, c := range []chan struct{}{s.mapc, s.purgec} {
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}
}

// purger deletes the data of placement groups that no longer exist: a PG
// id below the map's NextPG that the map does not have belonged to a
// deleted container (ids are never reused), so nothing reads it again.
// It also deletes this node's copy of a PG that lives on without it, once
// that has held for RetireAfter (see retirable and retire). It looks at
// the engine's PGs with every newer map, and when a retire comes due, so
// a node that was down while a container was deleted purges it when it
// comes back. A write of a deleted container's PG still running when its
// objects are listed may leave its object behind until the next start of
// the node.
func (s *DataServer) purger() {
	defer s.loopWG.Done()
	done := map[uint32]bool{} // deleted containers' PGs purged
	// since holds the PGs that live on without this node, with when the
	// purger first saw them so; retired those whose copy it deleted
	// (until this node is their replica again).
	since := map[uint32]time.Time{}
	retired := map[uint32]bool{}
	due := time.NewTimer(time.Hour)
	due.Stop()
	defer due.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.purgec:
		case <-due.C:
		}
		m := s.latest.Load()
		if m == nil {
			continue
		}
		var next time.Time
		for _, pg := range s.cfg.Engine.PGs() {
			if done[pg] || pg == replication.MarkPG || pg >= uint32(m.NextPG) {
				continue
			}
			p, ok := m.PG(clustermap.PGID(pg))
			if !ok {
				if s.purgeDeleted(m, pg) {
					done[pg] = true
				}
				continue
			}
			if p.HasReplica(s.cfg.Node) {
				delete(since, pg)
				delete(retired, pg)
				continue
			}
			if retired[pg] || s.cfg.RetireAfter < 0 {
				continue
			}
			if !s.retirable(m, p) {
				delete(since, pg) // the wait starts again
				continue
			}
			now := time.Now()
			first, seen := since[pg]
			if !seen {
				first, since[pg] = now, now
			}
			if at := first.Add(s.cfg.RetireAfter); now.Before(at) {
				if next.IsZero() || at.Before(next) {
					next = at
				}
				continue
			}
			if s.retire(m, p) {
				retired[pg] = true
				delete(since, pg)
			} else if s.ctx.Err() == nil {
				since[pg] = now // tried again after another RetireAfter
			}
		}
		if !next.IsZero() {
			due.Reset(time.Until(next))
		}
	}
}

// purgeDeleted deletes the data of pg, a deleted container's PG, and
// reports whether that is done.
func (s *DataServer) purgeDeleted(m *clustermap.Map, pg uint32) bool {
	st, err := s.store.Purge(s.ctx, pg)
	if s.ctx.Err() != nil {
		return false
	}
	s.purged.objects.Add(uint64(st.Objects))
	s.purged.bytes.Add(st.Bytes)
	if err != nil {
		// Retried with the next map, or at the next start.
		s.log.Warn("purging a deleted container's pg failed", "pg", pg, "objects", st.Objects, "err", err)
		return false
	}
	if st.Objects > 0 {
		s.purged.pgs.Add(1)
		s.log.Info("purged a deleted container's pg", "pg", pg, "map", m.Epoch, "objects", st.Objects, "bytes", st.Bytes)
	}
	return true
}

// retirable reports whether PG p, of which this node is not a replica,
// lives on whole without it: as many replicas as its container's policy
// asks for, none backfilling and none down, so this node's copy adds
// nothing to its safety. A node the map holds down keeps its copies: it
// is likely to be given them back when it is up, and a copy it kept
// spares it the full backfill.
func (s *DataServer) retirable(m *clustermap.Map, p *clustermap.PG) bool {
	if me, ok := m.Node(s.cfg.Node); !ok || me.State == clustermap.Down {
		return false
	}
	c, ok := m.Container(p.Container)
	if !ok || len(p.Backfilling) > 0 || len(p.Replicas) < c.Policy.Replicas {
		return false
	}
	for _, id := range p.Replicas {
		if n, ok := m.Node(id); !ok || (n.State != clustermap.Up && n.State != clustermap.Draining) {
			return false
		}
	}
	return true
}

// retireReq asks the loop to keep the core out of pg while the purger
// deletes its copy (begin; answered on ok: false when the loop has
// handed the core a view of pg that includes this node), or to let it in
// again (end).
type retireReq struct {
	pg    clustermap.PGID
	begin bool
	ok    chan bool
}

// retireStep runs a retireReq on the loop.
func (s *DataServer) retireStep(r retireReq) {
	if r.begin {
		_, held := s.views[r.pg]
		if !held {
			s.retiring[r.pg] = true
		}
		r.ok <- !held
		return
	}
	delete(s.retiring, r.pg)
	// The views held back while the copy was deleted.
	s.applied = nil
	s.applyMap(s.latest.Load())
}

// retire deletes this node's copy of p (replication.EngineStore.Retire)
// with the loop holding the core out of p, and reports whether it is
// gone. It stops early when a newer map makes this node p's replica
// again (its view then waits only for the object being deleted) or
// shows p short of a whole set of replicas.
func (s *DataServer) retire(m *clustermap.Map, p *clustermap.PG) bool {
	ok := make(chan bool, 1)
	select {
	case s.retirec <- retireReq{pg: p.ID, begin: true, ok: ok}:
	case <-s.ctx.Done():
		return false
	}
	if !<-ok {
		return false
	}
	defer func() {
		select {
		case s.retirec <- retireReq{pg: p.ID}:
		case <-s.ctx.Done():
		}
	}()
	// Stop when this node is the PG's replica again, or the PG no longer
	// lives on whole without it (a replica went down meanwhile): what is
	// left of the copy stays, to be repaired or deleted later.
	back := func() bool {
		m := s.latest.Load()
		np, ok := m.PG(p.ID)
		return ok && (np.HasReplica(s.cfg.Node) || !s.retirable(m, np))
	}
	st, err := s.store.Retire(s.ctx, uint32(p.ID), back)
	s.retired.objects.Add(uint64(st.Objects))
	s.retired.bytes.Add(st.Bytes)
	switch {
	case err == nil:
		if st.Objects > 0 { // else retired before (the node restarted since) or never held data
			s.retired.pgs.Add(1)
			s.log.Info("deleted the copy of a pg that lives on without this node", "pg", p.ID, "map", m.Epoch,
				"replicas", p.Replicas, "objects", st.Objects, "bytes", st.Bytes)
		}
		return true
	case s.ctx.Err() != nil:
	case errors.Is(err, replication.ErrRetireStopped):
		s.log.Info("stopped deleting the copy of a pg: this node is its replica again, or the pg lost a replica", "pg", p.ID, "objects", st.Objects)
	default:
		s.log.Warn("deleting the copy of a pg that lives on without this node failed", "pg", p.ID, "objects", st.Objects, "err", err)
	}
	return false
}

// ReplicationStats returns the replication core's counters as of the
// loop's last tick (zero before the first).
func (s *DataServer) ReplicationStats() replication.Stats {
	if st := s.replStats.Load(); st != nil {
		return *st
	}
	return replication.Stats{}
}

// ReadsBeside reports how many chunk reads were served on a read lease
// beside the loop (see readbeside.go); the core's LeaseReads counts the
// lease reads it served itself.
func (s *DataServer) ReadsBeside() uint64 { return s.readsBeside.Load() }

// Purged reports what this server deleted of deleted containers' PGs
// since it started: PGs, objects and their logical bytes.
func (s *DataServer) Purged() (pgs, objects, bytes uint64) {
	return s.purged.pgs.Load(), s.purged.objects.Load(), s.purged.bytes.Load()
}

// Retired reports what this server deleted of its copies of PGs that live
// on without it since it started: PGs whose copy is gone, objects and
// their logical bytes.
func (s *DataServer) Retired() (pgs, objects, bytes uint64) {
	return s.retired.pgs.Load(), s.retired.objects.Load(), s.retired.bytes.Load()
}

// loop owns the replication core.
func (s *DataServer) loop() {
	defer s.loopWG.Done()
	tick := time.NewTicker(s.cfg.TickInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			s.shutdown()
			return
		case r := <-s.ops:
			s.clientOp(r)
		case b := <-s.recv:
			s.stepBatch(b)
		case res := <-s.done:
			s.handle(s.step(replication.StoreDone{Result: res}))
			if r := s.opRefs[res.ID]; r != nil {
				delete(s.opRefs, res.ID)
				r.dec()
			}
			if in, ok := s.installs[res.ID]; ok {
				delete(s.installs, res.ID)
				if res.Err == nil && !res.Skipped {
					s.countInstall(in)
				}
			}
		case <-s.mapc:
			s.applyMap(s.latest.Load())
		case <-tick.C:
			s.handle(s.step(replication.Tick{}))
			st := s.node.Stats()
			s.replStats.Store(&st)
		case c := <-s.status:
			c <- s.buildStatus()
		case r := <-s.retirec:
			s.retireStep(r)
		}
	}
}

// traceStep, when set (by tests), sees every event the loop steps the
// core with and the effects it returned, on the loop goroutine.
var traceStep atomic.Pointer[func(node uint64, ev replication.Event, effects []replication.Effect)]

func (s *DataServer) step(ev replication.Event) []replication.Effect {
	effs := s.node.Step(ev)
	if fn := traceStep.Load(); fn != nil {
		(*fn)(s.me, ev, effs)
	}
	return effs
}

// clientOp hands a routed client request to the core, unless the map
// moved since it was routed: the handler checked the newest map, but a
// newer one may have reached the loop (or be waiting for it) in between,
// and the core must not take an operation of an epoch it left (it would
// hold it until its next view, or serve it at the new epoch).
func (s *DataServer) clientOp(r *clientReq) {
	if m := s.latest.Load(); m != s.applied {
		s.applyMap(m)
	}
	if e, ok := s.views[clustermap.PGID(r.op.PG)]; !ok || e != r.epoch || s.pg(clustermap.PGID(r.op.PG)).role != RolePrimary {
		if r.ref != nil {
			r.ref.dec()
		}
		r.finish(replication.Reply{Err: replication.ErrStaleEpoch})
		r.release()
		return
	}
	s.token++
	r.op.Token = s.token
	s.pending[r.op.Token] = r
	if r.op.Kind != replication.OpRead && s.gates != nil {
		s.gates.writing(r.op.PG, r.op.Object, 1) // until reply
	}
	if r.ref != nil {
		s.dataRefs[dataPtr(r.op.Data)] = r.ref
	}
	s.handle(s.step(r.op))
}

// failStale answers CodeStaleEpoch, at once, to every pending client
// operation of pg routed at an epoch other than epoch, the PG's epoch in
// the map just applied. The core fails most of them itself (a deposed
// primary steps down), but keeps a primary's pending mutations across a
// view change that leaves it primary, to finish them once the new epoch's
// peering and reconciliation are done; a client must not wait for that.
// NB: the request stays pending, holding its payload, until the core's
// Reply: the core may still forward or store the data. The client's retry
// carries the same request id, which the core matches to the mutation.
func (s *DataServer) failStale(pg clustermap.PGID, epoch uint64) {
	for _, r := range s.pending {
		if clustermap.PGID(r.op.PG) != pg || r.epoch == epoch || r.answered {
			continue
		}
		r.answered = true
		r.finish(replication.Reply{Token: r.op.Token, Err: replication.ErrStaleEpoch})
	}
}

// shutdown fails every pending client operation and drops what is queued.
func (s *DataServer) shutdown() {
	for tok := range s.pending {
		s.reply(replication.Reply{Token: tok, Err: errClosing})
	}
	for {
		select {
		case r := <-s.ops:
			if r.ref != nil {
				r.ref.dec()
			}
			r.finish(replication.Reply{Err: errClosing})
			r.release()
		case b := <-s.recv:
			b.ref.dec()
			freeBatch(b)
		default:
			return
		}
	}
}

func (s *DataServer) stepBatch(b *peerBatch) {
	for i := range b.msgs {
		if d := b.msgs[i].Data; len(d) > 0 {
			s.dataRefs[dataPtr(d)] = b.ref
		}
	}
	for i := range b.msgs {
		s.handle(s.step(replication.Receive{From: b.from, Msg: b.msgs[i]}))
	}
	for i := range b.msgs {
		if d := b.msgs[i].Data; len(d) > 0 {
			delete(s.dataRefs, dataPtr(d))
		}
	}
	b.ref.dec()
	freeBatch(b)
}

// handle carries out the core's effects. It never blocks: peer messages
// that find their queue full are dropped (the core retransmits).
func (s *DataServer) handle(effects []replication.Effect) {
	for _, e := range effects {
		switch e := e.(type) {
		case replication.Send:
			s.send(e)
		case replication.Submit:
			s.submit(e.Op)
		case replication.Reply:
			s.reply(e)
		case replication.CaughtUp:
			s.caughtUp(e)
		case replication.Progress:
			// Status asks the core for progress when it is wanted.
		default:
			panic(fmt.Sprintf("cluster: unknown effect %T", e))
		}
	}
}

func (s *DataServer) submit(op replication.StoreOp) {
	if len(op.Data) > 0 {
		if r := s.dataRefs[dataPtr(op.Data)]; r != nil {
			r.inc()
			s.opRefs[op.ID] = r
		}
	}
	if op.Kind == replication.StoreInstall {
		s.installs[op.ID] = installOp{pg: clustermap.PGID(op.PG), key: installKey{op.Object, op.Seq}, n: len(op.Data)}
	}
	s.store.Submit(op, s.storeDone)
}

// storeDoneFunc hands a store completion to the loop. It runs on the
// engine's reactor for reads and applies (see replication.Store), so it
// never waits: when the loop's queue is full the completion joins an
// overflow that a goroutine hands to the loop oldest first, and every
// completion after it queues behind it. So one object's mutations, which
// the store runs one after another, reach the loop in the order they
// completed. It is a method value made once (NewDataServer), not a
// closure per op.
func (s *DataServer) storeDoneFunc(r replication.StoreResult) {
	s.overflowMu.Lock()
	if len(s.overflow) == 0 {
		select {
		case s.done <- r:
			s.overflowMu.Unlock()
			return
		default:
		}
	}
	s.overflow = append(s.overflow, r)
	start := len(s.overflow) == 1
	s.overflowMu.Unlock()
	if start {
		go s.feedOverflow()
	}
}

// feedOverflow hands the overflow to the loop. The completion being
// handed stays at the overflow's head until the loop has it, so that no
// later one overtakes it; the goroutine ends when the overflow is empty
// (storeDoneFunc starts another when it fills again) or the server closes
// (Close drops what is left, as it drops the queue).
func (s *DataServer) feedOverflow() {
	for {
		s.overflowMu.Lock()
		r := s.overflow[0]
		s.overflowMu.Unlock()
		select {
		case s.done <- r:
		case <-s.ctx.Done():
			s.overflowMu.Lock()
			s.overflow = nil
			s.overflowMu.Unlock()
			return
		}
		s.overflowMu.Lock()
		s.overflow[0] = replication.StoreResult{}
		s.overflow = s.overflow[1:]
		empty := len(s.overflow) == 0
		s.overflowMu.Unlock()
		if empty {
			return
		}
	}
}

func (s *DataServer) reply(e replication.Reply) {
	r := s.pending[e.Token]
	if r == nil {
		return
	}
	delete(s.pending, e.Token)
	if r.op.Kind != replication.OpRead && s.gates != nil {
		s.gates.writing(r.op.PG, r.op.Object, -1)
	}
	if r.ref != nil {
		delete(s.dataRefs, dataPtr(r.op.Data))
		r.ref.dec()
	}
	if !r.answered {
		r.answered = true
		r.finish(e)
	}
	r.release()
}

func (s *DataServer) caughtUp(e replication.CaughtUp) {
	st := s.pg(clustermap.PGID(e.PG))
	st.caughtUp = e.Epoch
	if s.cfg.OnCaughtUp == nil {
		return
	}
	s.cbWG.Add(1)
	go s.reportCaughtUp(clustermap.PGID(e.PG), e.Epoch)
}

// reportCaughtUp calls OnCaughtUp until it succeeds or is moot.
func (s *DataServer) reportCaughtUp(pg clustermap.PGID, epoch uint64) {
	defer s.cbWG.Done()
	for {
		err := s.cfg.OnCaughtUp(pg, epoch)
		if err == nil {
			return
		}
		s.log.Warn("reporting caught up failed", "pg", pg, "epoch", epoch, "err", err)
		select {
		case <-time.After(s.cfg.CaughtUpRetry):
		case <-s.ctx.Done():
			return
		}
		if m := s.latest.Load(); m != nil {
			if p, ok := m.PG(pg); !ok || p.Epoch != epoch || !p.IsBackfilling(s.cfg.Node) {
				return
			}
		}
	}
}

func (s *DataServer) pg(id clustermap.PGID) *pgState {
	st := s.pgs[id]
	if st == nil {
		st = &pgState{installed: map[installKey]struct{}{}}
		s.pgs[id] = st
	}
	return st
}

func (s *DataServer) countInstall(in installOp) {
	st := s.pg(in.pg)
	if st.role != RoleBackfilling {
		st.reconBytes += int64(in.n)
		return
	}
	if _, ok := st.installed[in.key]; ok {
		return
	}
	if len(st.installed) == 0 {
		st.instStarted = time.Now()
	}
	st.installed[in.key] = struct{}{}
	st.instObjs++
	st.instBytes += int64(in.n)
}

// applyMap hands the core a view of every PG whose epoch changed: those
// this node is a replica of, and those it just left (a view without it).
func (s *DataServer) applyMap(m *clustermap.Map) {
	if m == nil || m == s.applied {
		return
	}
	s.applied = m
	mine := m.PGsOfNode(s.cfg.Node)
	in := make(map[clustermap.PGID]bool, len(mine))
	// changed counts the PGs whose view this map changes here: logged, so
	// that a node's log shows when it took up each epoch (the order of
	// such events across nodes is what a replication failure turns on).
	changed := 0
	defer func() {
		if changed > 0 {
			s.log.Info("map applied", "epoch", m.Epoch, "pgs_changed", changed)
		}
	}()
	for _, id := range mine {
		in[id] = true
		if s.retiring[id] {
			continue // handed over when the purger is done with it
		}
		pg, _ := m.PG(id)
		if e, ok := s.views[id]; ok && e == pg.Epoch {
			continue
		}
		changed++
		s.views[id] = pg.Epoch
		st := s.pg(id)
		st.epoch = pg.Epoch
		switch {
		case pg.Primary() == s.cfg.Node:
			st.role = RolePrimary
		case pg.IsBackfilling(s.cfg.Node):
			if st.role != RoleBackfilling {
				st.installed = map[installKey]struct{}{}
				st.instObjs, st.instBytes = 0, 0
			}
			st.role = RoleBackfilling
		default:
			st.role = RoleReplica
		}
		s.log.Debug("view", "pg", id, "epoch", pg.Epoch, "replicas", pg.Replicas, "backfilling", pg.Backfilling)
		s.handle(s.step(replication.ViewChange{View: viewOf(pg)}))
		s.failStale(id, pg.Epoch)
	}
	for id := range s.views {
		if in[id] {
			continue
		}
		changed++
		delete(s.views, id)
		v := replication.View{PG: uint32(id), Epoch: m.Epoch}
		if pg, ok := m.PG(id); ok {
			v = viewOf(pg)
		}
		st := s.pg(id)
		st.epoch, st.role = v.Epoch, RoleNone
		s.log.Debug("left pg", "pg", id, "epoch", v.Epoch)
		s.handle(s.step(replication.ViewChange{View: v}))
		s.failStale(id, v.Epoch)
	}
}

// dataPtr identifies a buffer by its first byte: payload buffers are
// tracked by the slice the core is handed, which starts there.
func dataPtr(b []byte) *byte { return unsafe.SliceData(b) }

func viewOf(pg *clustermap.PG) replication.View {
	v := replication.View{PG: uint32(pg.ID), Epoch: pg.Epoch, Replicas: make([]uint64, len(pg.Replicas))}
	for i, id := range pg.Replicas {
		v.Replicas[i] = uint64(id)
	}
	for _, id := range pg.Backfilling {
		v.Backfilling = append(v.Backfilling, uint64(id))
	}
	return v
}

func (s *DataServer) buildStatus() []PGStatus {
	prog := s.node.Progress()
	var out []PGStatus
	for _, id := range sortedPGs(s.pgs) {
		st := s.pgs[id]
		ps := PGStatus{PG: id, Epoch: st.epoch, Role: st.role, SyncBytesSent: st.syncSent,
			InstalledObjects: st.instObjs, InstalledBytes: st.instBytes, ReconciledBytes: st.reconBytes}
		for _, p := range prog {
			if clustermap.PGID(p.PG) == id {
				ps.Syncs = append(ps.Syncs, p)
			}
		}
		switch st.role {
		case RolePrimary:
			ps.Phase = "active"
			for _, p := range ps.Syncs {
				if !p.Done && !s.backfilling(id, p.Replica) {
					ps.Phase = "syncing"
				}
			}
		case RoleBackfilling:
			ps.Phase = "backfilling"
			if st.caughtUp == st.epoch {
				ps.Phase = "caught-up"
			}
		case RoleReplica:
			ps.Phase = "caught-up"
		}
		if el := time.Since(st.instStarted); st.instBytes > 0 && el > 0 {
			ps.InstallRate = float64(st.instBytes) / el.Seconds()
		}
		out = append(out, ps)
	}
	return out
}

func (s *DataServer) backfilling(id clustermap.PGID, node uint64) bool {
	m := s.latest.Load()
	if m == nil {
		return false
	}
	pg, ok := m.PG(id)
	return ok && pg.IsBackfilling(clustermap.NodeID(node))
}

func sortedPGs(m map[clustermap.PGID]*pgState) []clustermap.PGID {
	return slices.Sorted(maps.Keys(m))
}

// NodeIDOf returns the node id of the process owning the device with
// superblock uuid u: its first 8 bytes, little-endian, with the top bit
// cleared; 0 (invalid) becomes 1. It is stable across restarts and, as
// the uuid is random, unique per device in practice.
func NodeIDOf(u engine.UUID) clustermap.NodeID {
	id := le.Uint64(u[:8]) &^ (1 << 63)
	if id == 0 {
		id = 1
	}
	return clustermap.NodeID(id)
}

// processStart carries the monotonic clock reading that monotonicNow
// counts from.
var processStart = time.Now()

// monotonicNow is the replication core's clock: the time since the
// process started, from the monotonic clock (time.Since ignores wall clock
// steps).
func monotonicNow() time.Duration { return time.Since(processStart) }
