package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto/cluster"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/manager"
	"github.com/weftfs/weft/fsproto/meta"
	"github.com/weftfs/weft/fsproto/raftgroup"
	"github.com/weftfs/weft/internal/vfs"
	"github.com/weftfs/weft/net"
)

// DefaultHeartbeatTimeout is how long a node may stay silent before the
// managers mark it Down, when Config.HeartbeatTimeout is 0. Nodes
// heartbeat every quarter of it.
const DefaultHeartbeatTimeout = manager.DefaultHeartbeatTimeout

// Bounds of the cluster-mode loops.
const (
	// joinAttemptTimeout bounds one join (AddNode) attempt; the loop then
	// pauses joinRetryMax at most and tries again, until it succeeds.
	joinAttemptTimeout = 10 * time.Second
	joinRetryMin       = 100 * time.Millisecond
	joinRetryMax       = 2 * time.Second
	// caughtUpAttemptTimeout bounds one CaughtUp apply attempt; the data
	// server calls again after its CaughtUpRetry.
	caughtUpAttemptTimeout = 10 * time.Second
)

// NodeID is the cluster map id of the node whose device has superblock
// UUID u: the UUID's first 8 bytes, little-endian, with the top bit
// cleared, and 1 in place of 0. It is stable across restarts and unique
// per device (as the UUID is random).
func NodeID(u engine.UUID) clustermap.NodeID {
	id := binary.LittleEndian.Uint64(u[:8]) &^ (1 << 63)
	if id == 0 {
		id = 1
	}
	return clustermap.NodeID(id)
}

// clusterNode is what a node runs in cluster mode besides its engine and
// server: the outbound pool (cluster key), the manager member when
// ManagerID is set, the data server, the manager client, and the
// background loops (join, heartbeat) and the CaughtUp reports.
type clusterNode struct {
	cfg  *Config
	log  *slog.Logger
	eng  *engine.Engine
	id   clustermap.NodeID
	hb   time.Duration // heartbeat timeout
	pool *net.Pool
	mux  *net.ServeMux
	keys *keyring         // the server's KeyStore and every server's Authorizer
	srv  *net.Server      // set by Run before start; the key loop closes revoked keys on it
	mgr  *manager.Manager // nil when this process is no manager member
	mc   *manager.Client
	// maps is mc's Map through the FSID guard: every map the node acts on
	// comes from it.
	maps *fsidGuard
	ds   *cluster.DataServer
	meta *meta.Host // the container metadata members this node runs

	// ctx ends the loops and the CaughtUp reports; cancelled first on
	// shutdown.
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once

	addrMu sync.Mutex
	addr   string // the listen address, once bound

	// restarted is closed once the map recorded this process's start
	// (NodeRestarted) at map epoch restartEpoch: the data server sees no
	// map before that one (see restartGate).
	restarted    chan struct{}
	restartEpoch uint64
}

// restartGate is the data server's MapSource: it hands out no map until
// the managers recorded this process's start, and none older than that
// record. The replication core requires it: a restarted node has
// forgotten its pending work and request ids, so it must take part in its
// PGs only in epochs that began after it started, and NodeRestarted moves
// every one of them to such an epoch.
type restartGate struct{ c *clusterNode }

func (g restartGate) Map(ctx context.Context, after uint64) (*clustermap.Map, error) {
	select {
	case <-g.c.restarted:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	return g.c.maps.Map(ctx, max(after, g.c.restartEpoch-1))
}

// newClusterNode builds the mux of a cluster-mode node: the manager
// member's raft and RPC kinds, the data server's chunk and peer kinds, and
// KindStatus. Nothing talks to other processes until start.
func newClusterNode(cfg *Config, keys *keyring, eng *engine.Engine, log *slog.Logger) (_ *clusterNode, err error) {
	secret := keys.clusterSecret
	pool, err := net.NewPool(net.PoolConfig{Client: net.ClientConfig{
		ClusterID: cfg.ClusterID, KeyID: cfg.clusterKey(), Secret: secret, Logger: log,
	}})
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	c := &clusterNode{
		cfg: cfg, log: log, eng: eng, id: NodeID(eng.Superblock().UUID), hb: cfg.heartbeatTimeout(),
		pool: pool, mux: net.NewServeMux(), keys: keys, mc: manager.NewClient(cfg.Managers, pool),
		restarted: make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			c.cancel()
			if c.mgr != nil {
				c.mgr.Stop()
			}
			pool.Close()
		}
	}()
	// One router carries every raft group of the node: the managers'
	// (group 1) when this node is a manager member, and the metadata
	// groups of the containers whose members it is.
	router, err := raftgroup.NewNetRouter(raftgroup.NetRouterConfig{Pool: pool, Mux: c.mux, Access: keys, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if cfg.ManagerID != 0 {
		mp, _ := cfg.managerPeers() // checked by check
		peers := make([]raftgroup.Peer, len(mp))
		for i, p := range mp {
			peers[i] = raftgroup.Peer{ID: p.id, Addr: p.addr}
		}
		dir := cfg.ManagerDir
		if dir == "" {
			dir = DefaultManagerDir(cfg.Device)
		}
		c.mgr, err = manager.Start(manager.Config{
			ID: cfg.ManagerID, Peers: peers, Dir: dir, Router: router, Pool: pool,
			HeartbeatTimeout: c.hb, Access: keys, ClusterSecret: secret, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
		c.mgr.Register(c.mux)
	}
	c.ds, err = cluster.NewDataServer(cluster.DataServerConfig{
		Node: c.id, Engine: eng, Maps: restartGate{c}, Pool: pool, OnCaughtUp: c.reportCaughtUp,
		PeerKeyID: cfg.clusterKey(), Access: keys, Logger: log, ReadLease: cfg.readLease(), RetireAfter: cfg.RetireAfter, ForgetAfter: cfg.ForgetAfter,
	})
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	c.ds.Register(c.mux)
	metaDir := cfg.MetaDir
	if metaDir == "" {
		metaDir = DefaultMetaDir(cfg.Device)
	}
	if c.maps, err = openFSIDGuard(vfs.Default, metaDir, eng, c.mc, log); err != nil {
		c.ds.Close()
		return nil, err
	}
	c.meta, err = meta.NewHost(meta.HostConfig{Node: c.id, Dir: metaDir, Router: router, Pool: pool, Access: keys,
		NoLeaseReads: cfg.ReadLease == ReadLeaseOff, MarkFormed: c.markMetaFormed, Logger: log})
	if err != nil {
		c.ds.Close()
		return nil, fmt.Errorf("node: %w", err)
	}
	c.meta.Register(c.mux)
	c.mux.HandleFunc(KindStatus, c.serveStatus)
	return c, nil
}

// markMetaFormed records in the map that container ct's metadata group,
// which this node leads, has committed past its bootstrap entries
// (meta.HostConfig.MarkFormed); a map that has the mark already counts.
func (c *clusterNode) markMetaFormed(ctx context.Context, ct clustermap.ContainerID) error {
	_, err := c.mc.Apply(ctx, clustermap.MarkMetaFormed{Container: ct})
	if errors.Is(err, clustermap.ErrNoChange) {
		return nil
	}
	return err
}

// start begins the loops once the server listens at addr: join the map
// with addr, then heartbeat every quarter of the heartbeat timeout,
// joining again whenever the managers say the node is not in the map.
func (c *clusterNode) start(addr string) {
	c.addrMu.Lock()
	c.addr = addr
	c.addrMu.Unlock()
	c.wg.Add(5)
	go c.liveLoop(addr)
	go c.keyLoop()
	go c.reclaimLoop()
	go c.mapCopyLoop()
	go func() {
		defer c.wg.Done()
		c.meta.Follow(c.ctx, c.maps)
	}()
}

// mapCopyLoop writes the node's copy of the newest map it accepted
// (MapCopyFileName) every second when there is a newer one, and once more
// when the node stops.
func (c *clusterNode) mapCopyLoop() {
	defer c.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		stopping := false
		select {
		case <-c.ctx.Done():
			stopping = true
		case <-t.C:
		}
		if err := c.maps.saveMapCopy(); err != nil {
			c.log.Warn("node: the copy of the cluster map is behind", "err", err)
		}
		if stopping {
			return
		}
	}
}

// figures reads what the node's metrics show of the cluster: the data
// server's counters and every metadata member's status (a member that
// does not answer within a second is left out).
func (c *clusterNode) figures() clusterFigures {
	f := clusterFigures{repl: c.ds.ReplicationStats(), readsBeside: c.ds.ReadsBeside()}
	f.purgedPGs, f.purgedObjects, f.purgedBytes = c.ds.Purged()
	f.retiredPGs, f.retiredObjects, f.retiredBytes = c.ds.Retired()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	f.meta = c.meta.Status(ctx)
	return f
}

// stop ends the loops, the manager member and the data server (pending
// client operations are answered with a retryable error). The server
// still runs, answering what arrives with errors the callers retry
// elsewhere; close the pool after it stopped. Safe to call more than once.
func (c *clusterNode) stop() {
	c.stopOnce.Do(func() {
		c.cancel()
		c.wg.Wait()
		c.meta.Close()
		if c.mgr != nil {
			c.mgr.Stop()
		}
		if err := c.ds.Close(); err != nil {
			c.log.Warn("node: closing the data server", "err", err)
		}
	})
}

func (c *clusterNode) closePool() {
	if err := c.pool.Close(); err != nil {
		c.log.Warn("node: closing the connection pool", "err", err)
	}
}

func (c *clusterNode) liveLoop(addr string) {
	defer c.wg.Done()
	period := c.hb / 4
	joined := false
	for c.ctx.Err() == nil {
		if !joined {
			if joined = c.join(addr); !joined {
				return // ctx ended
			}
			select {
			case <-c.restarted:
			default:
				if !c.recordRestart() {
					return // ctx ended
				}
			}
		}
		hctx, cancel := context.WithTimeout(c.ctx, c.hb/2)
		err := c.mc.Heartbeat(hctx, c.id)
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, clustermap.ErrNotFound):
			// The map lost us (or never had us: a join that raced a
			// leader change); join again.
			c.log.Warn("node: the managers do not know this node; joining again", "node", uint64(c.id), "err", err)
			joined = false
			continue
		case c.ctx.Err() == nil:
			c.log.Info("node: heartbeat failed", "err", err)
		}
		if !sleepCtx(c.ctx, period) {
			return
		}
	}
}

// keyLoop follows the map (long polls) and hands each new map's container
// keys to the keyring; the connections of keys that stopped being live
// (revoked, or their container deleted) are closed at once. Until the
// first map arrives the node knows only its keys file.
func (c *clusterNode) keyLoop() {
	defer c.wg.Done()
	var after uint64
	for c.ctx.Err() == nil {
		m, err := c.maps.Map(c.ctx, after)
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			if !errors.Is(err, ErrForeignMap) { // logged by the guard
				c.log.Warn("node: following the map's keys failed; retrying", "err", err)
			}
			if !sleepCtx(c.ctx, joinRetryMax) {
				return
			}
			continue
		}
		after = m.Epoch
		for _, id := range c.keys.update(m) {
			n := c.srv.CloseKey(id)
			c.log.Info("node: key no longer valid; its connections closed", "key", id, "connections", n, "epoch", m.Epoch)
		}
	}
}

// join applies AddNode until the map has this node (ErrNoChange: it was
// there already, as it is), or ctx ends (false).
func (c *clusterNode) join(addr string) bool {
	cmd := clustermap.AddNode{ID: c.id, Addr: addr, Labels: c.cfg.Labels, Capacity: c.eng.Superblock().DeviceSize}
	pause := joinRetryMin
	for {
		actx, cancel := context.WithTimeout(c.ctx, joinAttemptTimeout)
		// Only a map of the history this node joined (or its first):
		// the guard refuses the others, and logs why.
		m, err := c.maps.Map(actx, 0)
		if err == nil {
			m, err = c.mc.Apply(actx, cmd)
		}
		cancel()
		switch {
		case err == nil:
			c.log.Info("node: joined the cluster map", "node", uint64(c.id), "addr", addr, "epoch", m.Epoch)
			return true
		case errors.Is(err, clustermap.ErrNoChange):
			c.log.Info("node: already in the cluster map, up", "node", uint64(c.id), "addr", addr)
			return true
		case c.ctx.Err() != nil:
			return false
		case errors.Is(err, ErrForeignMap):
		case errors.Is(err, clustermap.ErrExists):
			// Another node id holds this address: a re-formatted device
			// whose old id was never taken Out. Only an operator can tell.
			c.log.Error("node: cannot join: another node in the map has this address; mark it out", "node", uint64(c.id), "addr", addr, "err", err)
		default:
			c.log.Warn("node: join failed; retrying", "node", uint64(c.id), "addr", addr, "err", err)
		}
		if !sleepCtx(c.ctx, pause) {
			return false
		}
		pause = min(2*pause, joinRetryMax)
	}
}

// recordRestart applies NodeRestarted once per process, retrying until it
// succeeds, then opens the data server's restartGate (false: ctx ended).
func (c *clusterNode) recordRestart() bool {
	pause := joinRetryMin
	for {
		actx, cancel := context.WithTimeout(c.ctx, joinAttemptTimeout)
		m, err := c.mc.Apply(actx, clustermap.NodeRestarted{ID: c.id})
		cancel()
		if err == nil {
			c.log.Info("node: start recorded in the cluster map; serving its PGs from this epoch", "node", uint64(c.id), "epoch", m.Epoch)
			c.restartEpoch = m.Epoch
			close(c.restarted) // publishes restartEpoch
			return true
		}
		if c.ctx.Err() != nil {
			return false
		}
		c.log.Warn("node: recording the start failed; retrying", "node", uint64(c.id), "err", err)
		if !sleepCtx(c.ctx, pause) {
			return false
		}
		pause = min(2*pause, joinRetryMax)
	}
}

// reportCaughtUp runs on the data server's callback goroutine: one
// attempt (bounded by caughtUpAttemptTimeout, and by the node's life) to
// apply CaughtUp. Done (nil) when the map took it or no longer wants it
// (stale epoch, PG gone); otherwise the error, and the data server calls
// again while the map still shows this node backfilling the PG.
func (c *clusterNode) reportCaughtUp(pg clustermap.PGID, epoch uint64) error {
	cmd := clustermap.CaughtUp{PG: pg, Node: c.id, Epoch: epoch}
	actx, cancel := context.WithTimeout(c.ctx, caughtUpAttemptTimeout)
	m, err := c.mc.Apply(actx, cmd)
	cancel()
	switch {
	case err == nil:
		c.log.Info("node: caught up", "pg", uint32(pg), "pg_epoch", epoch, "epoch", m.Epoch)
		return nil
	case errors.Is(err, clustermap.ErrNoChange):
		return nil
	case errors.Is(err, clustermap.ErrStaleEpoch), errors.Is(err, clustermap.ErrNotFound):
		c.log.Info("node: caught-up report no longer applies", "pg", uint32(pg), "pg_epoch", epoch, "err", err)
		return nil
	case c.ctx.Err() != nil:
		return err
	}
	c.log.Warn("node: caught-up report failed; the data server retries", "pg", uint32(pg), "pg_epoch", epoch, "err", err)
	return err
}

// status gathers this node's Status, or nil once the data server closed.
func (c *clusterNode) status() *Status {
	pgs := c.ds.Status()
	if pgs == nil && c.ctx.Err() != nil {
		return nil
	}
	c.addrMu.Lock()
	addr := c.addr
	c.addrMu.Unlock()
	st := c.eng.Stats()
	s := &Status{
		Node: uint64(c.id), Addr: addr,
		Space: Space{Device: c.eng.Superblock().DeviceSize, Used: st.Used, Live: st.Live, Free: st.Free},
		PGs:   make([]PG, 0, len(pgs)),
	}
	if m := c.ds.Map(); m != nil {
		s.Epoch = m.Epoch
	}
	if id := c.maps.FSID(); !id.IsZero() {
		s.FSID = id.String()
	}
	s.MapCopyEpoch = c.maps.CopyEpoch()
	if c.mgr != nil {
		s.ManagerID, s.ManagerLeader = c.mgr.ID(), c.mgr.Leader()
		if s.ManagerState = c.mgr.Starting(); s.ManagerState == "" {
			s.ManagerState = c.mgr.Repair()
		}
		ctx, cancel := context.WithTimeout(c.ctx, time.Second)
		if ms, err := c.mgr.Status(ctx); err == nil {
			s.ManagerVoters, s.ManagerLearners = ms.Voters, ms.Learners
		}
		cancel()
	}
	for _, p := range pgs {
		q := PG{
			PG: uint32(p.PG), Epoch: p.Epoch, Role: p.Role.String(), Phase: p.Phase,
			SyncBytesSent: p.SyncBytesSent, InstalledObjects: p.InstalledObjects, InstalledBytes: p.InstalledBytes,
			InstallRate: p.InstallRate,
		}
		for _, y := range p.Syncs {
			q.Syncs = append(q.Syncs, Sync{Replica: y.Replica, Epoch: y.Epoch, ObjectsDone: y.ObjectsDone,
				ObjectsTotal: y.ObjectsTotal, BytesDone: y.BytesDone, BytesTotal: y.BytesTotal, Done: y.Done})
		}
		s.PGs = append(s.PGs, q)
	}
	ctx, cancel := context.WithTimeout(c.ctx, time.Second)
	defer cancel()
	for _, m := range c.meta.Status(ctx) {
		s.Meta = append(s.Meta, MetaMember{Container: uint64(m.Container), Leader: m.Leader, Term: m.Term,
			Commit: m.Commit, Applied: m.Applied, Voters: m.Voters, Learners: m.Learners, Repair: m.Repair})
	}
	return s
}

func (c *clusterNode) serveStatus(_ context.Context, req *net.Request, w *net.ResponseWriter) {
	if g, ok := c.keys.Grant(req.Peer.KeyID); !ok || g.Role == clustermap.RoleContainer {
		w.Error(CodeStatusAccessDenied, fmt.Sprintf("node: access denied: key %q may not read node status (it shows every container); use a cluster admin or read key", req.Peer.KeyID))
		return
	}
	if len(req.Header) != 0 || req.Payload != nil {
		w.Error(CodeStatusBadRequest, fmt.Sprintf("node: a status request has no header body or payload; got %d and %v", len(req.Header), req.Payload != nil))
		return
	}
	s := c.status()
	if s == nil {
		w.Error(CodeStatusUnavailable, "node: stopping")
		return
	}
	hdr, payload, err := EncodeStatus(s)
	if err != nil {
		w.Error(CodeStatusUnavailable, err.Error())
		return
	}
	if err := w.Reply(hdr, [][]byte{payload}, nil); err != nil {
		w.Error(CodeStatusUnavailable, fmt.Sprintf("node: status of %d bytes: %v", len(payload), err))
	}
}

// sleepCtx waits d, or until ctx ends (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
