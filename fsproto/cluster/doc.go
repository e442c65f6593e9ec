// Package cluster is the node side of weft's data replication on real
// sockets: a DataServer runs one node's replication core
// (fsproto/replication) over its engine, serves the chunk protocol to
// clients through it, and carries the core's messages between nodes.
//
// # Using it
//
//	ds, err := cluster.NewDataServer(cluster.DataServerConfig{
//		Node: id, Engine: eng, Maps: managers, Pool: clusterPool,
//		OnCaughtUp: func(pg clustermap.PGID, epoch uint64) error { _, err := managers.Apply(ctx, clustermap.CaughtUp{...}); return err },
//	})
//	ds.Register(mux)       // chunk kinds 256-259 and KindPeer (320) on the node's listener
//	...
//	st := ds.Status()      // per PG: role, phase, sync progress, bytes moved
//	ds.Close()             // then close the pool and the engine
//
// NodeIDOf derives a node's id from its engine's superblock.
//
// # How it runs
//
// One goroutine (the loop) owns the replication.Node and is the only one
// to Step it. Everything reaches it through bounded queues: client
// operations from the chunk handlers, batches of peer messages from the
// KindPeer handler, store completions from the EngineStore, newer maps
// from a watcher goroutine that long-polls the MapSource, and a ticker's
// Tick. The loop carries out the effects: Submit goes to the EngineStore,
// Send to the peer's sender, Reply to the waiting handler, CaughtUp to
// OnCaughtUp (on its own goroutine). The loop never blocks on the
// network: a peer's sender goroutine batches that peer's messages into
// one KindPeer call at a time, and a full queue drops messages (the core
// retransmits on Tick).
//
// Views. Every map whose PG epoch changed for a PG this node is a replica
// of becomes a ViewChange (PG epoch, replicas with [0] the primary,
// backfilling ones); a PG this node left gets a view without it, so the
// core stops acting in it (a deposed primary fails its pending operations
// with ErrStaleEpoch).
//
// Client requests. Reads and writes are started on the connection's
// reader goroutine (net.Starter): checked, queued for the loop, and
// answered by the loop itself from the core's Reply, with no handler
// goroutine waiting in between; a request whose connection ends first is
// answered at once (the connection's teardown waits for its answers),
// and the loop's later answer is dropped. When the loop's queue is full a
// handler goroutine takes the request and waits for room. Truncates and
// deletes take a handler goroutine. Peer batches are taken on the reader
// too: they only go into the loop's queue, or are dropped.
//
// Reads beside the loop (readbeside.go). While the core holds a read
// lease on the PG with more than half of it left (it tells the loop
// through replication.Config.OnLease) and no client mutation of the
// object is queued or under way, a read is submitted to the store from
// the reader and answered from the engine's reactor: the loop never sees
// it. That saves two wake-ups of the loop per read (4 KiB randread on
// `weft up`, 3 alternating rounds: QD32 10.6k -> 11.8k IOPS, QD1 p50 311
// -> 251 µs). Why such a read stays linearizable is in package
// replication's doc, "Reads beside the core"; TestReadsBesideTheLoop
// fails if a read of an object with an unacknowledged write goes beside.
//
// A request is refused with fsproto.CodeStaleEpoch when
// the node has no map yet, when its PG epoch is not the PG's in the node's
// newest map, or when this node is not the PG's primary there; the client
// then refreshes its map and retries with the same RequestID. Otherwise
// it becomes a replication.ClientOp and the handler waits for its Reply:
// ErrStaleEpoch and ErrNotPrimary (the core's view moved on) and Close
// answer CodeStaleEpoch, ErrBusy and store failures CodeUnavailable,
// a read of a missing chunk CodeNotFound. A mutation is answered only once
// the core acknowledged it: durable on every replica of the PG's epoch.
//
// Invariant (liveness across epochs): once the loop applies a map in which
// a PG's epoch moved or this node is not its primary, every client
// operation of that PG routed at another epoch is answered CodeStaleEpoch
// at once: those the core holds (failStale; the core itself keeps a
// primary's pending mutations across a view that leaves it primary, and
// the request keeps its payload until the core lets go of it) and those
// still queued for the loop (checked against the loop's views before the
// core sees them, so an operation routed on an older map is never served
// in a newer epoch).
//
// Zero copy and buffer ownership. A write's payload is read by net into a
// pooled aligned buffer; the handler takes it and the loop hands the same
// bytes to the core, which passes them to the local store and to the
// forwards. A reference count per buffer (bufRef) keeps it until its last
// user is done: the Reply, each store op whose data lies in it, and each
// queued peer message carrying it. A received peer batch is handled the
// same way: the messages' data alias the batch's buffer, which lives
// until the store ops installing it completed. NB: a peer sender encodes
// its batch into a pooled buffer, which copies the data once per peer; the
// replication codec would need to encode a message's fixed part apart
// from its data, and net to send a payload in parts, to send the client's
// buffer itself.
//
// # Wire format: KindPeer (320)
//
// A one-way batch of replication messages from one node to another (the
// response is empty; an error response says the batch was refused). The
// header body names both ends so that a batch reaching a node through a
// stale address is refused. Little-endian. On-wire: never renumber.
//
//	header body (24 bytes)
//	+---------+---------+-------+------+-----+
//	| version | rsvd =0 | count | from | to  |
//	| u8 = 1  | [3]     | u32   | u64  | u64 |
//	+---------+---------+-------+------+-----+
//	count 1..PeerBatchMax, from and to non-zero
//
//	payload: count messages, each
//	+-----+-------------------------------------------+
//	| len | replication message (replication.AppendMsg) |
//	| u32 | len bytes                                  |
//	+-----+-------------------------------------------+
//	no trailing bytes
//
// DecodePeerHeader and DecodePeerBatch check all of it; their errors wrap
// ErrBadPeerBatch. The server answers a bad batch with
// fsproto.CodeBadMessage, a batch for another node or sent without the
// cluster key (DataServerConfig.PeerKeyID) with CodeNotForMe, and, with
// DataServerConfig.Access set, a batch on any key but the cluster key
// with fsproto.CodeAccessDenied. Chunk requests are checked in route: a
// key that does not reach the chunk's container (a container key of
// another container, a read key on a mutation past the read-only flag)
// gets fsproto.CodeAccessDenied (265) naming the key and the container.
//
// # Status
//
// Status reports, per PG this node holds or held: the PG epoch and this
// node's role, a phase, the primary's sync progress of each replica it
// syncs (objects and bytes done/total), the sync bytes it sent, the
// distinct object states it installed while backfilling (InstalledObjects,
// InstalledBytes, InstallRate: what a returning replica lacked, as opposed
// to the whole PG) and the bytes installed by the reconciliation that
// every new epoch runs over the last Window seqs (ReconciledBytes).
//
// # Deleted containers
//
// A goroutine of its own (the purger) looks at the engine's PGs with
// every newer map: a PG id below the map's NextPG that the map does not
// hold belonged to a deleted container (ids are never reused), so it
// deletes the PG's live objects and its sync mark
// (replication.EngineStore.Purge), logs what it deleted, and counts it
// (Purged). It runs beside the loop, not on it, since it waits for the
// engine. A node that was down when the container was deleted purges it
// when it is back.
//
// # Moved PGs
//
// A node that is no longer a replica of a PG that still exists (drained,
// its PGs re-placed when nodes joined or came back) deletes its copy once
// the PG has lived on whole without it for RetireAfter (5 minutes by
// default): as many replicas as its container's policy asks for, none
// backfilling, none down. The map drops a leaving replica only after its
// replacement caught up, so by then the copy adds nothing; the wait keeps
// a map that moves a PG away and back from costing a full backfill. A
// node the map holds down keeps its copies (it is likely to get them back
// when it is up, and backfills only what changed).
//
// The purger deletes (replication.EngineStore.Retire: the PG's sync mark
// lowered to 0 first, then each object a tombstone at its own seq) while
// the loop keeps the core out of the PG: a view that gives the PG back to
// this node waits until the purger is done, and the purger stops before
// its next object when it sees such a map (or one in which the PG lost a
// replica: then what is left of the copy stays). A sync could otherwise install
// an object between the listing and its delete, and the node would answer
// for data it had deleted. Whatever is left (a delete cut short by that,
// by a crash or by an error; a mutation of the old epoch that completed
// after the listing) is repaired by the sync the node gets if the PG
// comes back, which starts from seq 0 because of the mark, or deleted
// again at the node's next start. A whole retire then forgets the copy's
// tombstones (EngineStore.Retire; the mark at 0 makes the next sync list
// every object anyway), and a purge those of the deleted container's PGs.
// Tombstones of deletes in PGs this node serves are forgotten once
// ForgetAfter old (10 minutes by default; see "Forgotten tombstones" in
// package replication). Retired counts what was deleted; the log names
// each PG.
//
// # Catching up
//
// The core emits CaughtUp once per epoch. OnCaughtUp runs on its own
// goroutine and is retried every CaughtUpRetry while it fails and the
// newest map still shows this node backfilling the PG at that epoch, so a
// manager that was unreachable at that moment does not leave the replica
// backfilling for ever.
//
// # Not done / known weak
//
//   - The core does not expose its phase (peering, syncing, active):
//     Status infers it from the sync progress and cannot tell peering.
//   - A restarted node must get a new PG epoch before it acts in its PGs
//     (replication's integration requirement); the map does that when the
//     node went Down in between, not when it restarted within the
//     heartbeat timeout. The node process should report a restart to the
//     managers (for instance by re-joining) before registering this
//     server.
//   - Container keys are not checked: any authenticated key may use any
//     container (read-only keys are refused mutations).
//   - Peer batches copy the data once per peer (see above), and the data
//     of a received message is not 4096-aligned inside the batch, so the
//     engine stages it. One batch per peer is in flight at a time. Sending
//     the client's buffer itself needs a net call with a payload in
//     several parts (net.Conn.Go takes one slice).
//   - A write costs about 120 allocations end to end (BenchmarkWrite4K,
//     3 nodes in one process, test network and in-memory devices
//     included; it was about 165): what is left is mostly outside this
//     package: net's per-call Call, header buffer and AfterFunc (a call
//     that can be aborted without a context would remove them), the
//     core's effects and the boxing of each Event, one goroutine and
//     closure per store op in EngineStore, the test network's frames.
//     Pooled here: payload reference counts, peer batches, client
//     requests and their reply channels; a peer sender's calls share one
//     context and a reused timer.
//   - A reconciliation resends the last Window seqs' objects whole to
//     every caught-up replica at each new epoch (a CaughtUp is one), or
//     their digests where the replica listed the same seq (SyncSame).
package cluster
