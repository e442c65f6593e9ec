package node

import (
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto/meta"
	"github.com/weftfs/weft/fsproto/replication"
	"github.com/weftfs/weft/net"
)

// clusterFigures is what a node in cluster mode adds to its metrics.
type clusterFigures struct {
	repl                                     replication.Stats
	readsBeside                              uint64
	purgedPGs, purgedObjects, purgedBytes    uint64
	retiredPGs, retiredObjects, retiredBytes uint64
	meta                                     []meta.MemberStatus
}

// collector is the node's Prometheus collector: each scrape reads the
// engine's Stats and the net server's Metrics.
type collector struct {
	stats   func() engine.Stats
	net     func() net.MetricsSnapshot
	cluster func() clusterFigures // nil: not in cluster mode

	infoValues []string
	space      *prometheus.Desc
	busy       *prometheus.Desc
	queue      *prometheus.Desc
	ops        *prometheus.Desc
	latency    *prometheus.Desc
	relocated  *prometheus.Desc
	cleanRead  *prometheus.Desc
	cleanScans *prometheus.Desc
	objects    *prometheus.Desc
	forgotten  *prometheus.Desc
	frames     *prometheus.Desc
	writes     *prometheus.Desc
	reads      *prometheus.Desc
	direct     *prometheus.Desc
	loopConns  *prometheus.Desc
	bytes      *prometheus.Desc
	inFlight   *prometheus.Desc
	requests   *prometheus.Desc
	errors     *prometheus.Desc
	info       *prometheus.Desc
	copied     *prometheus.Desc
	device     *prometheus.Desc
	readBytes  *prometheus.Desc
	cacheHits  *prometheus.Desc
	cacheBytes *prometheus.Desc
	submits    *prometheus.Desc

	replEvents    *prometheus.Desc
	replSyncBytes *prometheus.Desc
	purged        *prometheus.Desc
	purgedBytes   *prometheus.Desc
	retired       *prometheus.Desc
	retiredBytes  *prometheus.Desc
	metaLease     *prometheus.Desc
	metaLeaseLeft *prometheus.Desc
	metaIndex     *prometheus.Desc
	metaLeader    *prometheus.Desc
}

// newCollector returns a collector; labels become weft_node_info's
// labels (names sanitised; Validate rejects names that collide).
func newCollector(stats func() engine.Stats, netm func() net.MetricsSnapshot, cluster func() clusterFigures, labels map[string]string) *collector {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	names := make([]string, len(keys))
	values := make([]string, len(keys))
	for i, k := range keys {
		names[i] = sanitizeLabel(k)
		values[i] = labels[k]
	}
	shard := []string{"shard"}
	return &collector{
		stats: stats, net: netm, cluster: cluster, infoValues: values,
		replEvents:    prometheus.NewDesc("weft_replication_events_total", "Replication core events: mutations issued as primary, acknowledged, failed stale, retries answered from request ids (stored: from ids read back from the store), reads joined to one under way, reads served on a read lease (by the core, and beside it on the connection's reader), sync messages sent and objects a replica confirmed, tombstones of deleted chunks forgotten, and syncs that listed every object because a tombstone floor lay above their base.", []string{"event"}, nil),
		replSyncBytes: prometheus.NewDesc("weft_replication_sync_bytes_sent_total", "Object bytes sent to replicas being synced.", nil, nil),
		purged:        prometheus.NewDesc("weft_purged_total", "What the purger deleted of deleted containers: PGs with data, and objects.", []string{"what"}, nil),
		purgedBytes:   prometheus.NewDesc("weft_purged_bytes_total", "Logical bytes of the objects the purger deleted.", nil, nil),
		retired:       prometheus.NewDesc("weft_retired_total", "What the purger deleted of this node's copies of PGs that live on without it (moved away): PGs whose copy is gone, and objects.", []string{"what"}, nil),
		retiredBytes:  prometheus.NewDesc("weft_retired_bytes_total", "Logical bytes of the objects of moved PGs the purger deleted.", nil, nil),
		metaLease:     prometheus.NewDesc("weft_meta_lease_reads_total", "Metadata reads this node's member served on its raft read lease, without a round.", []string{"container"}, nil),
		metaLeaseLeft: prometheus.NewDesc("weft_meta_lease_seconds", "What is left of the member's read lease (0: none).", []string{"container"}, nil),
		metaIndex:     prometheus.NewDesc("weft_meta_raft_index", "The member's raft commit and applied indexes.", []string{"container", "index"}, nil),
		metaLeader:    prometheus.NewDesc("weft_meta_leader", "1 when this node's member leads its container's metadata group.", []string{"container"}, nil),
		space:         prometheus.NewDesc("weft_engine_space_bytes", "Segment space by kind: used (segments not free), live (referenced by the index), free.", []string{"kind"}, nil),
		busy:          prometheus.NewDesc("weft_engine_reactor_busy_ratio", "Share of wall time the reactor spent in loop iterations that did work.", shard, nil),
		queue:         prometheus.NewDesc("weft_engine_reactor_queue_depth", "Requests waiting in the reactor's queue.", shard, nil),
		ops:           prometheus.NewDesc("weft_engine_ops_total", "Engine operations completed.", []string{"shard", "op"}, nil),
		latency:       prometheus.NewDesc("weft_engine_latency_seconds", "Engine operation latency quantiles (submit to completion) since the engine opened.", []string{"shard", "op", "quantile"}, nil),
		relocated:     prometheus.NewDesc("weft_engine_cleaner_relocated_bytes_total", "Live bytes the cleaner relocated.", shard, nil),
		cleanRead:     prometheus.NewDesc("weft_engine_cleaner_read_bytes_total", "Bytes the cleaner read from its victims, walking their batches front to back (dead blocks included).", shard, nil),
		objects:       prometheus.NewDesc("weft_engine_objects", "Entries of the engine's object table: live objects and the tombstones of deleted ones not yet forgotten.", shard, nil),
		forgotten:     prometheus.NewDesc("weft_engine_tombstones_forgotten_total", "Tombstones of deleted objects the engine dropped from its object table (see --forget-tombstones-after).", shard, nil),
		cleanScans:    prometheus.NewDesc("weft_engine_cleaner_index_scans_total", "Victims whose batch headers did not account for all their live bytes (a damaged header), so the cleaner scanned the whole index for the rest.", shard, nil),
		frames:        prometheus.NewDesc("weft_net_frames_total", "Frames read (in) and written (out), handshakes included.", []string{"dir"}, nil),
		writes:        prometheus.NewDesc("weft_net_writes_total", "Vectored writes that sent the frames out; frames out over writes is the batching achieved.", nil, nil),
		direct:        prometheus.NewDesc("weft_net_direct_writes_total", "Frames written whole, without a hand-off to the connection's writer, by the goroutine that queued them on an idle connection or by the reactor that serves the connection at the end of its pass; also in weft_net_writes_total.", nil, nil),
		loopConns:     prometheus.NewDesc("weft_net_loop_connections_total", "Connections served by the engine's reactors (--conns=reactors) rather than by goroutines.", nil, nil),
		reads:         prometheus.NewDesc("weft_net_reads_total", "Receive system calls (reads and peeks) that took the frames in; frames in over reads is the batching achieved.", nil, nil),
		bytes:         prometheus.NewDesc("weft_net_bytes_total", "Bytes of the frames read (in) and written (out).", []string{"dir"}, nil),
		inFlight:      prometheus.NewDesc("weft_net_requests_in_flight", "Requests read and not yet answered.", nil, nil),
		requests:      prometheus.NewDesc("weft_net_requests_total", "Requests read.", nil, nil),
		errors:        prometheus.NewDesc("weft_net_errors_total", "Net errors by class.", []string{"class"}, nil),
		info:          prometheus.NewDesc("weft_node_info", "The node's labels; always 1.", names, nil),
		cacheHits:     prometheus.NewDesc("weft_engine_read_cache_hits_total", "Records the reactor served from its read cache instead of the device.", []string{"shard"}, nil),
		cacheBytes:    prometheus.NewDesc("weft_engine_read_cache_bytes", "Record data the reactor's read cache holds.", []string{"shard"}, nil),
		readBytes:     prometheus.NewDesc("weft_engine_device_read_bytes_total", "Bytes the reactor's device reads fetched: whole records, so more than the requests asked for when records are larger than the reads.", []string{"shard"}, nil),
		device:        prometheus.NewDesc("weft_engine_device_ops_total", "Device operations the reactor started: reads, and batch writes (one per group commit).", []string{"shard", "op"}, nil),
		submits:       prometheus.NewDesc("weft_engine_device_submits_total", "Calls (io_uring_enter) that handed the device operations; device ops over submits is the batching achieved.", shard, nil),
		copied:        prometheus.NewDesc("weft_engine_copied_bytes_total", "Payload bytes the engine copied (dir=in: unaligned or partial-block writes staged; dir=out: partial-record or unaligned reads); zero on the aligned zero-copy path.", []string{"shard", "dir"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	if c.cluster != nil {
		for _, d := range []*prometheus.Desc{c.replEvents, c.replSyncBytes, c.purged, c.purgedBytes, c.retired, c.retiredBytes, c.metaLease, c.metaLeaseLeft, c.metaIndex, c.metaLeader} {
			ch <- d
		}
	}
	for _, d := range []*prometheus.Desc{c.space, c.busy, c.queue, c.ops, c.latency, c.relocated, c.cleanRead, c.cleanScans, c.objects, c.forgotten,
		c.frames, c.writes, c.direct, c.loopConns, c.reads, c.bytes, c.inFlight, c.requests, c.errors, c.info, c.copied, c.device, c.readBytes, c.cacheHits, c.cacheBytes, c.submits} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	st := c.stats()
	gauge(c.space, float64(st.Used), "used")
	gauge(c.space, float64(st.Live), "live")
	gauge(c.space, float64(st.Free), "free")
	for _, sh := range st.Shards {
		id := strconv.Itoa(sh.Shard)
		gauge(c.busy, sh.BusyShare, id)
		gauge(c.queue, float64(sh.QueueDepth), id)
		counter(c.ops, float64(sh.Reads), id, "read")
		counter(c.ops, float64(sh.Writes), id, "write")
		for _, l := range []struct {
			op  string
			lat engine.LatencyStats
		}{{"read", sh.ReadLatency}, {"write", sh.WriteLatency}} {
			gauge(c.latency, l.lat.P50.Seconds(), id, l.op, "0.5")
			gauge(c.latency, l.lat.P99.Seconds(), id, l.op, "0.99")
		}
		counter(c.relocated, float64(sh.Cleaner.BytesRelocated), id)
		counter(c.cleanRead, float64(sh.Cleaner.BytesRead), id)
		counter(c.cleanScans, float64(sh.Cleaner.IndexScans), id)
		gauge(c.objects, float64(sh.Objects), id)
		counter(c.forgotten, float64(sh.TombstonesForgotten), id)
		counter(c.device, float64(sh.DeviceReads), id, "read")
		counter(c.readBytes, float64(sh.DeviceReadBytes), id)
		counter(c.cacheHits, float64(sh.ReadCacheHits), id)
		gauge(c.cacheBytes, float64(sh.ReadCacheBytes), id)
		counter(c.device, float64(sh.Batches), id, "batch")
		counter(c.submits, float64(sh.DeviceSubmits), id)
		counter(c.copied, float64(sh.CopiedInBytes), id, "in")
		counter(c.copied, float64(sh.CopiedOutBytes), id, "out")
	}
	n := c.net()
	counter(c.frames, float64(n.FramesIn), "in")
	counter(c.frames, float64(n.FramesOut), "out")
	counter(c.writes, float64(n.Writes))
	counter(c.direct, float64(n.DirectWrites))
	counter(c.loopConns, float64(n.LoopConns))
	counter(c.reads, float64(n.Reads))
	counter(c.bytes, float64(n.BytesIn), "in")
	counter(c.bytes, float64(n.BytesOut), "out")
	gauge(c.inFlight, float64(n.RequestsInFlight))
	counter(c.requests, float64(n.Requests))
	e := n.Errors
	for _, ec := range []struct {
		class string
		n     uint64
	}{{"corrupt", e.Corrupt}, {"conn_closed", e.ConnClosed}, {"remote", e.Remote}, {"canceled", e.Canceled},
		{"handshake", e.Handshake}, {"dial", e.Dial}, {"handler_panic", e.HandlerPanic}} {
		counter(c.errors, float64(ec.n), ec.class)
	}
	gauge(c.info, 1, c.infoValues...)
	if c.cluster != nil {
		c.collectCluster(c.cluster(), gauge, counter)
	}
}

func (c *collector) collectCluster(f clusterFigures, gauge, counter func(*prometheus.Desc, float64, ...string)) {
	r := f.repl
	for _, ev := range []struct {
		name string
		n    uint64
	}{{"mutations_issued", r.MutationsIssued}, {"acknowledged", r.Acknowledged}, {"stale_failures", r.StaleFailures},
		{"retries_answered", r.RetriesAnswered}, {"stored_retries", r.StoredRetries}, {"reads_joined", r.ReadsJoined},
		{"lease_reads", r.LeaseReads}, {"reads_beside", f.readsBeside}, {"sync_objects_sent", r.SyncObjectsSent}, {"sync_same_sent", r.SyncSameSent},
		{"sync_same_kept", r.SyncSameKept}, {"tombstones_forgotten", r.TombstonesForgotten}, {"full_syncs", r.FullSyncs}} {
		counter(c.replEvents, float64(ev.n), ev.name)
	}
	counter(c.replSyncBytes, float64(r.SyncBytesSent))
	counter(c.purged, float64(f.purgedPGs), "pgs")
	counter(c.purged, float64(f.purgedObjects), "objects")
	counter(c.purgedBytes, float64(f.purgedBytes))
	counter(c.retired, float64(f.retiredPGs), "pgs")
	counter(c.retired, float64(f.retiredObjects), "objects")
	counter(c.retiredBytes, float64(f.retiredBytes))
	for _, m := range f.meta {
		ct := strconv.FormatUint(uint64(m.Container), 10)
		counter(c.metaLease, float64(m.LeaseReads), ct)
		gauge(c.metaLeaseLeft, m.Lease.Seconds(), ct)
		gauge(c.metaIndex, float64(m.Commit), ct, "commit")
		gauge(c.metaIndex, float64(m.Applied), ct, "applied")
		lead := 0.0
		if m.Leader == m.ID {
			lead = 1
		}
		gauge(c.metaLeader, lead, ct)
	}
}

// metricsReadTimeout bounds reading a scrape request.
const metricsReadTimeout = 10 * time.Second
