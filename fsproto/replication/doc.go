// Package replication is weft's primary-copy replication of placement
// groups (PGs) as a deterministic state machine.
//
// # Driving it
//
// A Node is one node's core for every PG it holds. It has no goroutines,
// clock or I/O: a thin loop feeds it events and carries out the effects
// each Step returns, in order.
//
//	n, _ := replication.NewNode(replication.Config{ID: 7})
//	for ev := range events {                 // ClientOp, Receive, StoreDone, ViewChange, Tick
//		for _, e := range n.Step(ev) {
//			switch e := e.(type) {
//			case replication.Send:     // encode with AppendMsg, send to e.To (loss is fine)
//			case replication.Submit:   // store.Submit(e.Op, func(r) { events <- StoreDone{r} })
//			case replication.Reply:    // answer the client op e.Token
//			case replication.CaughtUp: // propose the map's CaughtUp(pg, epoch)
//			case replication.Progress: // show in weft status
//			}
//		}
//	}
//
// The same core runs in the seeded simulation of sim_test.go (simulated
// network, stores and clock) and over real engines (EngineStore): the
// engine tests drive it through the codec the way a daemon loop would;
// carrying the messages over package net is the integration's part. The cluster map reaches it as View events
// (PG, epoch, replicas with [0] the primary, the Backfilling set); Tick
// drives retransmission and the sync throttle. A Node is not safe for
// concurrent use; Store completions may arrive on any goroutine and must
// be funnelled into Step.
//
// # Protocol and invariants
//
// Peering. A node handed a view in which it is primary first asks every
// replica for its highest seq in the PG (PeerQuery/PeerInfo; a replica
// counts mutations still in flight in its store too) and reads its own.
// Invariant: the epoch's first seq (epochStart) is above every seq any
// replica of the view holds or will hold from an older epoch, so seqs are
// unique across epochs and a seq from an older epoch is always below
// epochStart. The primary reads its own store only once every mutation
// it submitted in an earlier role or epoch has completed: a forward it
// took as a replica and still had in flight would otherwise be missing
// from the state its sync hands the replicas, and present in the state
// it serves (and answers that mutation's retry from).
//
// Reconciliation (sync). Then every other replica is reconciled: both
// sides list their objects changed since base = min(replica's max, own
// max) - W (the replica pages its list with ListReq/ListResp), and for
// every object of the union the primary sends its current state (whole
// data, or a tombstone; seq 0 for an object it never wrote, which the
// replica's store must not stamp with a seq of its own, see StoreInstall)
// with its seq (SyncObject), or only its digest when
// the replica listed it at the same seq (SyncSame, see "Sync moves only
// what differs"). The replica installs it
// unless it holds that object at a seq >= max(epochStart, seq+1): state
// from an older epoch may be divergent (a mutation never acknowledged), so
// the primary's state wins over it, while a live mutation of this epoch
// that overtook the state sent is kept and the object is sent again. A
// replica runs one install of a sent state at a time (a resend of it
// while it runs waits for its ack); the store runs an object's installs
// and forwards in the order they arrived (see Store). A replica is
// reconciled when every object is acknowledged (SyncDone); it
// then emits CaughtUp, which the map applies if the replica was in the
// view's Backfilling set. The
// primary serves clients (phase active) only once every non-backfilling
// replica is reconciled: any of them may be the next primary, so each must
// already hold everything a client was told is durable. Backfilling
// replicas sync while the PG is active, throttled to SyncBytesPerTick per
// tick, with Progress (objects and bytes done/total) reported.
//
// Sync moves only what differs. When the replica listed an object at the
// very seq the primary holds it at, the primary sends SyncSame instead of
// the data: the seq, the SHA-256 of the data and the object's request ids.
// The replica reads its object (StoreGet) and counts it installed only if
// it is live at that seq with data of that digest and its stored request
// ids are the newest engine.KeptRequests of the primary's (what an install
// would store), and if no mutation of the object (Apply or Install, of any
// epoch or role) was in flight when the read started nor was submitted
// before it finished. Then it replaces its table's ids of the object by
// the primary's, as an install does, and answers SyncAck installed;
// otherwise it answers not installed and the primary sends that object
// whole for the rest of the sync. Tombstones always
// travel as SyncObject (no data to save). Invariant (why skipping is as
// good as installing): an install writes exactly (seq, live, data); a
// matching replica already holds exactly that, up to a SHA-256 collision.
// Seqs alone could not prove it: they repeat across branches (a cut-off
// primary issues seqs the next epoch issues again), and even an epoch
// tagged seq names a mutation, not a state, since a backfilling replica
// applies forwards to objects the sync has not reached yet. What the
// replica holds is durable: every mutation that made it had completed
// (completion means durable) before the read, so a crash after the ack
// cannot take the state back, which an ack built on a read of an unflushed
// mutation could (the next base may lie above that object's seq). A
// mutation submitted during the check would make the state read stale, so
// the check fails then. Nothing is assumed about the replica's seq being
// issued by the primary's branch: equal data at an equal seq is the state
// the primary would install, whatever its history; the ids of that history
// are dropped like an install drops them.
//
// Sync marks. Before it answers the first ListReq of a sync, a replica
// durably records a mark (the sync's base; the store keeps the lowest),
// and it clears the mark when the sync is done. A sync installs objects at
// seqs above what the replica held, so while the mark stands its highest
// seq vouches for nothing above the mark: the next sync's base is at most
// the mark, also after a crash. For the same reason a replica applies no
// forward of an epoch before its mark covers that epoch's sync. A primary
// clears a mark of its own once every replica is reconciled with it. A
// node deleting its copy of a PG it left (EngineStore.Retire) lowers the
// mark to 0 first, so that copy vouches for nothing if the PG comes back.
//
// Forgotten tombstones. A store keeps a deleted object's state (a
// tombstone) so that a change list names the delete and KeepIfAtLeast
// sees its seq; kept for ever, a PG that creates and deletes chunks all
// day would hold an entry per chunk it ever deleted. With
// Config.ForgetTicks an active primary or a caught-up replica asks its
// store (StoreForget) to forget the PG's tombstones at seqs up to upTo,
// the least of:
//   - the PG's newest seq of ForgetTicks ago, so that a client retrying a
//     mutation (whose request id goes with the tombstone) has given up
//     first: ForgetTicks must exceed the clients' retry time;
//   - the PG's newest seq less 2*Window, so that a sync of a replica that
//     is not behind starts above it (below); or, while the newest is at
//     most Window, the newest itself: a sync's base is 0 then anyway;
//   - for a caught-up replica, the highest seq it knows every forward up
//     to which to have reached it: its newest less Window (the window's
//     promise), or what the primary announced (ForgetUpTo: what the
//     primary forgets, capped at the seq below which every mutation it
//     issued is durable on every replica), since a forward that is still
//     on its way must not meet a floor at or above its seq;
//   - for a replica still syncing, the least max seq it reported in this
//     epoch's PeerInfo: the epoch's installs may yet come.
//
// It asks only once no mutation submitted in an earlier epoch is still in
// its store (such an install is decided against what it finds). The
// store first durably raises the PG's floor to upTo (StoreMaxSeq reports
// it), then forgets; it may keep the tombstone holding the PG's highest
// seq. Invariant: every tombstone a store forgot had a seq <= its floor.
// The store takes an absent object to be at its floor wherever a seq
// decides (KeepIfAtLeast of applies and installs, and StoreGet's Seq),
// which is what makes forgetting safe while messages of the epoch are
// still about: a duplicated or late forward or install that the tombstone
// would have made the store skip (its KeepIfAtLeast at most the
// tombstone's seq, so at most the floor) is skipped still, and a forward
// that is not a duplicate has a seq above the floor (the bounds above).
// Messages of older epochs are refused as stale anyway.
//
// A change list from base misses the deletes whose tombstones were
// forgotten above base. So peering learns every replica's floor (PeerInfo)
// and a sync whose base lies below the primary's or the replica's floor
// starts from 0 instead (FullSyncs counts them): both sides list every
// object they hold, and an object the replica holds that the primary
// does not is sent as deleted at the primary's floor (StoreGet's Seq),
// at least the seq of the delete it stands for, so the replica's change
// lists name it to later syncs as the forgotten tombstone did; an object
// both sides listed at one seq at or below the base the sync would have
// had is left alone, as a sync from that base leaves it (it lists
// neither); the rest is sent whole or checked in place (SyncSame) as in
// any sync. The cost over a sync from that base is a listing of the PG on
// both sides and the objects one side lacks, for a replica that was away
// for more than the seqs and the time above. The
// simulation forgets tombstones after 2, 8 or 30 ticks in three seeds of
// four. Without the floor rule it lost acknowledged deletes in 26 of 2000
// seeds (a returning replica kept objects the PG had deleted); with an
// absent object not counted at the floor in 3 of 2000 (a stale install
// brought an object back). With an absent object sent at seq 0 (a
// tombstone at the replaced state's seq, below the delete) it failed once
// (seed 208, before ForgetUpTo: the next primary's change list missed the
// delete); the primary's cap on ForgetUpTo is checked by
// TestForgetAnnounceCapped, which the simulation did not catch without.
//
// Mutations. The primary assigns the next seq, submits the mutation to its
// store and forwards the same buffer to every replica of the view
// (backfilling ones included) at once. It answers the client only when
// its own store and every replica reported the mutation durable.
// Invariants:
//   - Window: seq s is issued only once every seq <= s-W is durable on
//     every replica, so a replica holding seq M durably holds every seq <=
//     M-W of the epochs it took part in; that is what makes base exact.
//   - Per-object order: a primary has at most one operation per object in
//     flight (a per-object queue). Chosen over carrying each mutation's
//     predecessor seq because replicas then never hold mutations back, and
//     no chain can break on a seq lost with an old epoch; the cost is one
//     round trip per mutation of one object, and chunks are mostly written
//     by one client at a time. A replica applies a forward unless it holds
//     the object at a seq >= the forward's (KeepIfAtLeast), which makes
//     retransmitted and duplicated forwards harmless.
//   - Epochs: requests carry the primary's epoch. A replica answers an
//     older one with MsgStale (carrying its own epoch) and adopts a newer
//     one. A primary that learns of a newer epoch, or is handed a view in
//     which it is not primary, fails every pending and queued operation
//     with ErrStaleEpoch and never acknowledges them. Because the next
//     primary is a caught-up replica of the current view, a primary cut
//     off from it can never get a write acknowledged once the next
//     primary has taken up the newer epoch, and the next primary serves
//     nothing before it has (it peers first): a write acknowledged at
//     the old epoch in between, while the map already names the new
//     one, is ordered before everything the new epoch serves.
//     ErrStaleEpoch for a pending mutation (one issued, with a
//     seq) means "not acknowledged", not "not applied": its forwards may
//     have reached replicas still at the old epoch, one of which becomes
//     the next primary and hands it to the others. A client learns the
//     outcome by retrying with the same request id, which the next
//     primary answers from its table if the mutation is there. (Queued
//     operations, never issued, are not applied anywhere.)
//   - View change with the same primary: pending mutations are kept, their
//     acknowledgements dropped, and they are forwarded again to the new
//     view once active (replicas deduplicate by seq).
//   - Request ids: a retried id is answered with the seq of its first
//     application, not applied again. The ids are durable beside the
//     mutations they name: the store keeps, per object, the ids of its
//     last engine.KeptRequests mutations (an Apply adds its id atomically
//     with the mutation; an Install replaces them by the newest of the
//     primary's for that state, which SyncObject and SyncSame carry), so
//     a store's ids of an object are those of the state it holds, across
//     restarts. In memory each PG keeps a table of the last RequestIDs ids
//     (FIFO), filled as the primary acknowledges, as a replica makes
//     forwards durable or installs objects (whatever its role by then: the
//     table mirrors the store), and from SyncDone, which hands the
//     primary's table to each replica. Before a primary issues a mutation
//     whose id its table lacks, it reads the object's stored ids into the
//     table (StoreRequests), once per object (again only after the FIFO
//     dropped one of them, or after a restart), and only once no mutation
//     of the object is still in its store from an earlier role or epoch;
//     the object is busy meanwhile. Why answering from them is sound: ids
//     are answered only while the PG is active, when every non-backfilling
//     replica is reconciled with the primary's state, and that state holds
//     every mutation whose id its objects keep. Only the primary's own
//     store is read: a replica's ids may name a divergent branch
//     (gathering the replicas' tables at peering was tried and withdrawn:
//     it acknowledged a lost write, seed 5232), and a sync that installs an
//     object replaces the replica's ids by the primary's. A primary that
//     fails a mutation it already applied (ErrStaleEpoch) remembers its id
//     too, for it may lead again with that state. The cost is one store
//     read per object a primary first mutates, and SyncSame refusing
//     objects whose ids differ (they are sent whole).
//   - Reads are served by the primary only, once active, and only after a
//     ReadCheck round started after the read arrived was confirmed by every
//     replica of the view in the primary's epoch: the next primary is one
//     of them and confirms no more once it moved on, so a deposed primary
//     cannot serve a stale read. Or, with read leases, on a lease that a
//     recent round earned (see "Read leases"). A read queues behind the
//     object's pending mutation, so it never sees an unacknowledged write.
//
// Integration requirements: the map must pick a new primary only among the
// caught-up (non-backfilling) replicas of the current view, and must bump
// the epoch of every PG of a node that restarted before that node acts in
// it (a restarted node has forgotten its pending work; its request ids it
// reads back from its store). It should also put a restarted node back as
// backfilling and hand the primary role to a caught-up replica that is
// up; a restarted primary that keeps its role (because no other can take
// it) still answers a retry of a mutation it applied before restarting,
// from its stored ids (the simulation met this case, seeds 491 and 2425: a
// retried truncate and a retried delete applied twice while the ids were
// only in memory). And it must not
// drop the last caught-up replica of a PG: package clustermap's Down does
// (the map's NB leaves it to the runner), after which a backfilling replica
// leads without the acknowledged data and vouches for the others' CaughtUp
// (the simulation lost acknowledged writes this way, seeds 7 and 16, before
// its runner held such a Down back). The simulation's manager is the real
// clustermap.Map, fed SetNodeState from a clustermap.Liveness over simulated
// heartbeats and clock, NodeRestarted on every restart and CaughtUp from the
// cores' effects; every View is the map's PG (Replicas, Backfilling, Epoch).
//
// # Read leases
//
// With Config.ReadLease L > 0 a primary serves reads without a round for a
// while after one. Its ReadChecks carry ReadCheckLease in the round, and a
// replica with L > 0 answers such a ReadCheck with LeaseGrant (round, L)
// instead of ReadCheckAck, and by that promises not to lead the
// PG, in any epoch, for L from when it answered, on its own clock. A
// primary whose round every replica of its view answered, the least grant
// among them (its own L included; a plain ReadCheckAck grants 0) being l,
// serves reads without a round until roundStart + l - l/8 on its clock,
// where roundStart is when it started the round; it starts a new round to
// renew once a lease that reads use has less than L/2 left. Invariant: no
// write of a newer epoch is acknowledged before a lease of an older epoch
// ends, because
//   - a newer epoch's primary is a caught-up replica of the view the lease
//     was earned in (the map's rule), or was made caught up by a sync in a
//     newer epoch;
//   - a node that may still hold a grant (grantsOut) does not become active
//     as primary, so it acknowledges nothing, and does not send SyncDone to
//     a backfilling replica, so none becomes caught up through it (a
//     replica caught up that way granted nothing and could lead at once;
//     without this the simulation fails, seed 171 among others);
//   - a node forgets its grants when it stops, so a Node assumes it granted
//     just as it started (Now() at NewNode) and leads no PG for L.
//
// A deposed primary that still holds a lease reads only its own store, which
// no newer epoch changes before it makes the primary step down (a newer
// primary's first message to it does), so the lease never serves a state
// older than the newest acknowledged one. A primary drops its lease on
// every view change and step down, and a read behind a pending mutation of
// its object still waits for it.
//
// Clocks: Now is each node's monotonic clock; nodes need not agree on its
// value, only on its rate. The margin l/8 keeps the invariant while the
// rates of any two nodes' clocks differ by less than 1/7 (real monotonic
// clocks differ by far less than 0.1%). A clock that stops while its
// process is suspended (a VM paused, a stopped process) breaks the
// assumption like any rate error: such a primary can serve on a lease that
// has ended in real time. Message delays only shorten the lease.
//
// The cost: a new primary leads up to one L later after a failover of a
// primary that served reads (its grants), and a restarted node leads no PG
// for L. L is per node: a replica granting less than a primary's L
// shortens that primary's lease, and one with L = 0 gives it none. A node
// that restarts with a smaller L than it ran with should wait out the old
// one first. Rolling upgrades: a replica grants only a primary that asks
// (ReadCheckLease), so a primary of older code, which knows no LeaseGrant,
// gets plain acks from upgraded replicas; a replica of older code echoes
// the round, flag included, in a plain ack, which grants nothing. Either
// way the round completes and only the lease is missing.
//
// # Reads beside the core
//
// A runner may serve reads of a PG without stepping the core, from the
// goroutine that received them, while Config.OnLease says the node holds
// a lease for the read's epoch (package cluster does: it saves a read two
// hand-offs to and from the goroutine that owns the Node). What makes such
// a read as safe as one the core serves:
//   - OnLease runs inside Step, before Step returns the effects of the
//     change: a runner that takes the same lock to read and submit, and to
//     record OnLease, orders every read it submitted under the old lease
//     before any store operation of the step that dropped it (an install
//     after a step down, say);
//   - the runner refuses the object while a client mutation of it is
//     queued or under way (from before it steps the core with the
//     mutation until the core's Reply to it), and submits under that same
//     lock, so a read is queued on the store either before the mutation's
//     store operation (and reads the state before it) or after the
//     mutation was acknowledged: it never sees an unacknowledged write,
//     as a read that the core queues behind the mutation does not. This
//     needs a store that runs one object's operations in the order they
//     were submitted (EngineStore does: the engine's reactor takes its
//     requests in order);
//   - an active primary's store changes only through client mutations:
//     installs and syncs happen before it is active or after it stepped
//     down, when it has no lease;
//   - the runner stops reading beside the core once less than ReadLease/2
//     of the lease is left, so that its reads go through the core, which
//     renews the lease (renewDue); otherwise the lease would run out.
//
// # Wire format
//
// Every message is a 16-byte header and a body fixed by its kind (kinds
// are the versions; on-wire, never renumber). Little-endian.
//
//	header
//	+---------+------+---------+------+-------+
//	| version | kind | rsvd =0 | pg   | epoch |
//	| u8 = 1  | u8   | u16     | u32  | u64   |
//	+---------+------+---------+------+-------+
//
//	PeerQuery, SyncDoneAck, Stale: no body
//
//	SyncDone (8 bytes + count x 40)
//	+-------+---------+----------------------------+
//	| count | rsvd =0 | (request id, object, seq)* |     count <= MaxRIDEntries
//	| u32   | u32     | [16] [16] u64              |
//	+-------+---------+----------------------------+
//	ForwardAck (seq), ForgetUpTo (seq), ReadCheck, ReadCheckAck (round): u64; in a
//	ReadCheck's round, bit 63 (ReadCheckLease) asks for a LeaseGrant, and
//	answers echo the round as received
//
//	LeaseGrant (16 bytes)
//	+-------+-------+
//	| round | lease |      lease: nanoseconds granted
//	| u64   | u64   |
//	+-------+-------+
//
//	PeerInfo (32 bytes)
//	+---------+------+--------+---------+-------+
//	| max seq | mark | marked | rsvd =0 | floor |      mark is 0 unless marked
//	| u64     | u64  | u8     | [7]     | u64   |
//	+---------+------+--------+---------+-------+
//
//	Forward (64 bytes + data)
//	+-----+------------+---------+---------+---------+--------+-----+------+------+
//	| seq | request id | mutKind | rsvd =0 | dataLen | object | off | size | data |
//	| u64 | [16]       | u8      | [3]     | u32     | [16]   | u64 | u64  |      |
//	+-----+------------+---------+---------+---------+--------+-----+------+------+
//	write: dataLen 1..MaxDataBytes, size 0; truncate: off 0, no data;
//	delete: off 0, size 0, no data
//
//	ListReq (16 bytes)                     ListResp (16 bytes + count x 24)
//	+-------+-------+---------+            +-------+------+---------+-------+----------------+
//	| after | limit | rsvd =0 |            | after | more | rsvd =0 | count | (object, seq)* |
//	| u64   | u32   | u32     |            | u64   | u8   | [3]     | u32   | [16] u64       |
//	+-------+-------+---------+            +-------+------+---------+-------+----------------+
//	limit 1..MaxListEntries                count <= MaxListEntries
//
//	SyncObject (40 bytes + ridCount x 24 + data)
//	+-----+------------+--------+---------+---------+----------+---------+-------------------+------+
//	| seq | epochStart | object | deleted | rsvd =0 | ridCount | dataLen | (request id, seq)* | data |
//	| u64 | u64        | [16]   | u8      | u8      | u16      | u32     | [16] u64           |      |
//	+-----+------------+--------+---------+---------+----------+---------+-------------------+------+
//	deleted: no data; ridCount <= MaxObjectRIDs: the ids of the object's
//	mutations the state includes
//
//	SyncSame (72 bytes + ridCount x 24)
//	+-----+------------+--------+----------+---------+---------+-------------------+
//	| seq | epochStart | object | ridCount | rsvd =0 | digest  | (request id, seq)* |
//	| u64 | u64        | [16]   | u16      | [6]     | [32]    | [16] u64           |
//	+-----+------------+--------+----------+---------+---------+-------------------+
//	digest: SHA-256 of the object's data; ridCount <= MaxObjectRIDs
//
//	SyncAck (24 bytes)
//	+--------+-----------+---------+
//	| object | installed | rsvd =0 |
//	| [16]   | u8        | [7]     |
//	+--------+-----------+---------+
//
// Objects are engine.ObjectIDs (Hi then Lo); flags are 0 or 1. DecodeMsg
// checks all of it and fails with an error wrapping ErrBadMessage.
//
// # On-disk: sync marks
//
// EngineStore keeps a PG's sync mark in the engine object {Hi: 2^64-1,
// Lo: pg} of engine placement group MarkPG (2^32-1), so it shows in no
// PG's Changes: 8 bytes, the mark as a little-endian u64; no object, no
// mark. Container 2^64-1 and PG 2^32-1 are reserved for it.
//
// # Not done / known weak
//
//   - Sync moves whole objects, so an object above MaxDataBytes cannot be
//     synced (chunks are at most that big).
//   - A replica whose store fails a mutation never acknowledges it and the
//     PG stalls until the map replaces it; a primary whose store fails one
//     answers ErrStore although replicas may have applied it (the next
//     peering reconciles them).
//   - Without a read lease, reads cost a ReadCheck round trip to every
//     replica (batched: one round serves every read that arrived before
//     it). With one, a round still runs after a lease lapses (the first
//     read after a quiet spell waits for it) and to renew it, and a lease
//     rests on clock rates (see "Read leases").
//   - Per-object serialisation costs one replication round trip per
//     mutation of one object; concurrent writers of one chunk queue.
//   - Request ids are bounded per object: a retry that arrives after more
//     than engine.KeptRequests later mutations of the same object (other
//     clients'), once the PG's in-memory table no longer holds it (after
//     a restart, or past RequestIDs ids of the PG), is applied again.
//   - Seqs are unique among the replicas of a view, not across branches:
//     a primary cut off issues seqs that the next epoch issues again. A
//     sync therefore compares nothing but seqs against epochStart, and
//     drops a replica's ids of every object it installs.
//   - SyncSame saves the network and the replica's writes, not reads:
//     the replica reads and hashes every object in the window, and the
//     primary reads and hashes its own. A tombstone is always resent (as
//     SyncObject; it has no data to save). An object the
//     replica listed at a different seq is sent whole even if its data
//     is equal.
//   - A sync resends an object while the replica holds a newer live seq
//     of it; if the primary's own apply of that mutation failed, it resends
//     until the next epoch.
package replication
