// Package manager runs the cluster map's Raft group as a service: one member
// per manager process (1, 3 or 5 of them), replicating the clustermap.Map
// through package raftgroup, its log in package raftlog, and answering the
// manager RPCs that storage nodes, clients and the CLI use to follow the map,
// change it, and report that they are alive.
//
// # Using it
//
// In a process (usually `weft node --manager-id N --manager-peers ...`), on
// the net.ServeMux that serves every kind:
//
//	router, _ := raftgroup.NewNetRouter(raftgroup.NetRouterConfig{Pool: pool, Mux: mux})
//	m, err := manager.Start(manager.Config{
//		ID: 1, Peers: []raftgroup.Peer{{1, "a:7000"}, {2, "b:7000"}, {3, "c:7000"}},
//		Dir: dataDir + "/manager", Router: router,
//	})
//	m.Register(mux)             // kinds 310-312, before the server starts
//	...
//	m.Stop()
//
// Anywhere (nodes, clients, CLI), over a *net.Pool whose key the managers
// accept:
//
//	cl := manager.NewClient([]string{"a:7000", "b:7000", "c:7000"}, pool)
//	m, err := cl.Map(ctx, 0)            // current map (after a read barrier)
//	m, err = cl.Map(ctx, m.Epoch)       // long poll: the next map
//	m, err = cl.Apply(ctx, clustermap.AddNode{...}) // the map after it applied
//	err = cl.Heartbeat(ctx, nodeID)     // every HeartbeatTimeout/5 or so
//	secret, err := cl.KeySecret(ctx, "k0123456789abcdef") // admin keys only
//
// The API follows the wave-2 design (Config, Start, Register, Map, Stop;
// NewClient, Client.Map, Client.Apply, Client.Heartbeat). Additions:
// Config.MapWaitMax, ProposeTimeout, TickInterval, ElectionTicks and
// SnapshotEvery; Manager.ID, Leader, Status and Err; the exported
// StateMachine with ApplyResult, RequestID and DedupeMax; GroupID, the
// group's id on the raft router. *Client satisfies the MapSource interfaces
// of fsproto/cluster and fsproto/client (Map(ctx, after)).
//
// # Access
//
// With Config.Access set (a clustermap.Authorizer: the node's keys file
// and the map's container keys), every request's key (net.Peer.KeyID) is
// resolved to a clustermap.Grant and checked by authorize; a refusal is
// CodeAccessDenied (265, the number of fsproto.CodeAccessDenied) with a
// message naming the key, and the Client returns an error wrapping
// ErrAccessDenied:
//
//	310 get-map      any known key; a container key gets the map reduced
//	                 to its container (clustermap.Map.ForContainer: the
//	                 other containers, their PGs and all keys removed; an
//	                 admin key of the container keeps its container's keys;
//	                 the nodes stay, clients need their addresses)
//	311 apply        clustermap.Grant.MayApply: the cluster key anything;
//	                 admin keys the operators' commands (containers,
//	                 policies, keys, node states), never AddNode, CaughtUp,
//	                 NodeRestarted; a container admin key SetPolicy,
//	                 CreateKey, RevokeKey of its container (and the map
//	                 of its reply is reduced as for get-map)
//	312 heartbeat    the cluster key only
//	313 key-secret   the cluster key, admin keys, and a container admin key
//	                 for its container's keys
//	314 members      the cluster key only (between manager members)
//
// Without Config.Access only the read-only flag is checked, as before
// keys had roles.
//
// # Key secrets
//
// A container key's secret is clustermap.KeySecret(Config.ClusterSecret,
// id); no one stores it. `weft key create` applies CreateKey and then asks
// a manager for the secret with KindKeySecret, sending the public half of
// an X25519 key pair made for that call. The manager passes a read
// barrier (the key may have been created through another member), checks
// the caller's grant and that the key is live, and seals the secret to
// that public key with a fresh key pair of its own (X25519, HKDF-SHA256,
// AES-256-GCM; layouts below), so no secret crosses the wire in the
// clear. NB: the connection itself is authenticated but not encrypted:
// this protects the secret from anyone who only watches the wire; an
// attacker able to rewrite frames in flight could substitute its own
// public key, which only transport encryption (TLS) would stop.
//
// # The replicated state
//
// StateMachine is a raftgroup.StateMachine over clustermap: every committed
// entry is a request id and one command in clustermap.AppendCommand's
// encoding, applied in log order with Map.Apply. A command the map refuses
// (ErrNoChange, ErrExists, ...) is a result, not a failure of the group:
// every member refuses it alike, the map stays, and the proposer gets the
// error. Invariant: each applied command bumps the map's epoch by exactly
// one.
//
// Request ids make Apply exactly-once: a Client names each Apply call
// (RequestID: a random client id and a counter) and sends every retry of
// it with the same id. The state machine remembers the outcome of the last
// DedupeMax ids (success, or the refusal's code and message) and answers an
// id it has seen with that outcome, changing nothing. So a retry after an
// ambiguous failure (a proposal lost in a leader change, a reply lost with
// its connection) neither applies the command twice nor re-applies it
// after other changes, and the caller learns what really happened. The
// remembered ids are replicated state: they are in the snapshot, which is
// therefore the map's encoding plus the ids (not the bare map encoding).
//
// # Reads
//
// Map(after) long-polls: a member answers at once when its applied map's
// epoch is above after, else waits for one, up to the smaller of the wait the
// request carries and its own bound (Config.MapWaitMax, default 10 s), and
// then answers "no newer map"; the Client then asks the next member. A member
// answers from the map it has applied, so with after > 0 the answer may lag
// the leader but is always newer than after, which is what a node or client
// refreshing a stale epoch needs. With after = 0 the request asks for a read
// barrier (raftgroup ReadIndex) first, so the map reflects every Apply that
// completed anywhere before the call. Manager.Map is this member's applied
// map, without a barrier.
//
// # Writes
//
// Apply sends the command to a member, which checks that it decodes and
// proposes it (a follower's proposal is forwarded to the leader by raft); the
// reply carries the map the command produced on that member. Apply and
// Heartbeat need a key that is not read-only (net.Peer.ReadOnly): a heartbeat
// keeps a node Up or brings it back, so it changes the map. Get-map is open
// to read-only keys.
//
// raftgroup's outcomes map to codes that say whether the command was applied:
//
//	ErrNoLeader, ErrProposalDropped,      CodeUnavailable: not applied; retry
//	ErrBusy, ErrRemoved, member stopped
//	ErrLost, ErrStopped while waiting,    CodeAmbiguous: may still apply
//	the member's ProposeTimeout
//	map refused the command               CodeNoChange, CodeNotFound, CodeExists,
//	                                      CodeInvalid, CodeStaleEpoch, CodeRejected
//	reply map over the payload limit      CodeRejected (the command applied)
//
// The Client retries CodeUnavailable and CodeAmbiguous (and broken
// connections) on the next member, with the same request id, pausing with
// backoff after each full round, until its context ends. Errors for
// refused commands wrap the clustermap sentinel
// (errors.Is(err, clustermap.ErrNoChange)).
//
// # Liveness
//
// Nodes heartbeat to the leader; a follower answers CodeUnavailable and the
// Client moves on (and starts at the member that accepted, next time). Every
// member runs a liveness loop (period HeartbeatTimeout/5, within 10 ms..1 s)
// that acts only while the member leads: it passes a read barrier, asks its
// clustermap.Liveness for commands (Down for nodes silent longer than
// HeartbeatTimeout, Up for Down nodes heard again) and proposes them, so
// they are replicated like any command and survive a leader change. The
// Liveness is not replicated: a member starts a fresh one for each term it
// leads, so after a leader change every Up node gets a full HeartbeatTimeout
// of grace. NB: a fresh clustermap.Liveness would count Down nodes as just
// heard and bring them all back Up; seedLiveness records them as long silent
// instead, so only a real heartbeat revives one. A heartbeat from a node not
// in the map is recorded but answered CodeNotFound, so the node re-joins.
//
// # Members and a lost log
//
// A member starts from its raft log when the log holds state (membership
// then comes from the log; Peers only gives addresses). A member whose
// log is empty, in a group of more than one, does not bootstrap at once:
// it asks every peer for its members (KindMembers, also while the peer is
// probing itself) each probeInterval and starts only as decideStart
// allows:
//
//   - a peer counts it a learner: it joins (raftgroup Config.Join) and
//     gets the log or a snapshot from the leader;
//   - a peer counts it a voter and the group is past its bootstrap
//     entries (raftgroup.PastBootstrap of the peer's commit index or, as
//     that may lag, its last log index): its log was lost (a
//     replaced disk), or it never started while the group went on. Raft
//     cannot take it back as that voter: it forgot its votes and what it
//     acknowledged (two leaders in one term, a committed entry on too few
//     logs). It waits; the question told the peers, and the leader's
//     repair (below) takes it out and adds it back as a learner;
//   - a peer runs the group without it: it waits to be added;
//   - a peer does not answer: it waits. Nothing outside the managers'
//     logs records that their group exists (a container's metadata group
//     has its formed mark in the cluster map; the map itself has no such
//     witness), so a member with an empty log cannot tell a new group
//     from one whose logs it and others lost while the rest are down.
//     The group is therefore bootstrapped only while every member
//     answers, each probing with an empty log or at the bootstrap
//     entries: a new cluster's managers all start together, and two
//     members that lost their logs with the third down never start an
//     empty map beside the third's;
//   - a peer would bootstrap with other members (its Peers differ) or
//     was bootstrapped with others: it waits, and says so; members given
//     different --manager-peers would write different first entries;
//   - otherwise (every peer answered, probing with the same Peers or at
//     the bootstrap entries) it bootstraps from Peers, writing the same
//     first entries as the others.
//
// Until it starts, the member answers the other RPCs CodeUnavailable
// with the reason, which Starting returns too.
//
// Every member's liveness loop also runs the membership repair while it
// leads (repairRound): one raftgroup.NextRepairStep per round toward
// Peers. A voter that asked with an empty log past the bootstrap entries
// within lostReportTTL is removed, when the voters left keep a majority
// of active ones, and added back as a learner; a learner is promoted once
// caught up; a peer the group lacks is added as a learner. A member that
// Peers does not name is kept, never removed: the repair grows and heals
// the group but never shrinks it, so that members given different peer
// lists for a while (a rolling change of --manager-peers) do not undo
// each other's steps as the leadership moves. Repair returns the step
// taken or awaited. The group shrinks on request (KindRemoveMember,
// Client.RemoveMember, `weft node remove-manager`): once every member
// runs with a --manager-peers list without the member, the leader removes
// it, when the voters left keep a majority of active ones (a leader asked
// to remove itself first hands the leadership over,
// raftgroup.Group.TransferLeadership); the removed member's node is then
// restarted without --manager-id.
//
// When a majority of the members lost their logs for good, no leader can
// be elected from the rest, and the group stays down rather than lose the
// map. The operator stops one member that holds a log (the one with the
// highest last index: `weft node recover-manager` without --yes prints
// it) and forces its log to make it the sole voter
// (raftgroup.ForceSoleVoter; unsafe by nature, as etcd's
// --force-new-cluster: entries only the lost logs held are gone). Started
// again it leads alone, and its repair adds the others back as learners.
// When every member lost its log, SeedFromMap starts the group again from
// a copy of the map that a storage node keeps (node.MapCopyFileName): it
// writes into one member's empty log a snapshot holding the copy, its
// epoch moved past any a node saw and its next container and PG ids past
// the copy's (so that no new container meets data of one made after the
// copy), with that member its
// only voter (raftgroup.SeedSoleVoter). The other members' logs must be
// emptied first; the seeded member's repair adds them back. Unsafe too:
// what the managers committed after the copy is gone.
// A group of one member has no peer to ask: its empty log bootstraps.
//
// # Wire formats
//
// Kinds (net user range; never renumber): 310 get-map, 311 apply-command, 312
// heartbeat, 313 key-secret, 314 members, 315 remove-member (remove.go);
// 316-319 reserved. Error codes 310-319 as listed
// above, and 265 access denied. All integers little-endian; every header
// body starts with version 1. Requests have no payload.
//
// get-map request header (16 bytes):
//
//	0     1       2          4           8
//	+-----+-------+----------+-----------+---------------+
//	| ver | flags | reserved | wait ms   | after (epoch) |
//	| u8  | u8    | u16 = 0  | u32       | u64           |
//	+-----+-------+----------+-----------+---------------+
//	flags: bit 0 linearizable (read barrier first); other bits 0
//
// apply-command request header (20 + n bytes; n >= 1, the whole header
// body is at most net.MaxHeaderBytes):
//
//	0     1              4           12          20
//	+-----+--------------+-----------+-----------+--------------------+
//	| ver | reserved     | client id | seq       | clustermap command |
//	| u8  | 3 × u8 = 0   | u64 != 0  | u64 != 0  | (n bytes)          |
//	+-----+--------------+-----------+-----------+--------------------+
//
// heartbeat request header (16 bytes):
//
//	0     1                   8
//	+-----+-------------------+-----------+
//	| ver | reserved 7 × u8=0 | node id   |
//	| u8  |                   | u64 != 0  |
//	+-----+-------------------+-----------+
//
// key-secret request header (41 + n bytes, 1 <= n <= 255):
//
//	0     1                  8                 40      41
//	+-----+------------------+-----------------+-------+--------+
//	| ver | reserved 7×u8=0  | caller's X25519 | id len| key id |
//	| u8  |                  | public key (32) | u8 = n| n bytes|
//	+-----+------------------+-----------------+-------+--------+
//
// key-secret reply header (100 bytes, no payload):
//
//	0     1                  8                 40           52             100
//	+-----+------------------+-----------------+------------+--------------+
//	| ver | reserved 7×u8=0  | manager's X25519| AES-GCM    | sealed secret|
//	| u8  |                  | public key (32) | nonce (12) | 32 + tag 16  |
//	+-----+------------------+-----------------+------------+--------------+
//	sealing key = HKDF-SHA256(secret = X25519(manager private, caller
//	public), salt = caller public || manager public, info = "weft key
//	secret v1" || 0x00 || key id), 32 bytes; AES-256-GCM, additional
//	data = the key id
//
// members request header (16 bytes) and reply header (32 + 8 × (v + l)
// bytes), no payloads:
//
//	0     1       2                  8
//	+-----+-------+------------------+-----------+
//	| ver | flags | reserved 6×u8=0  | asker id  |
//	| u8  | u8    |                  | u64 != 0  |
//	+-----+-------+------------------+-----------+
//	flags: bit 0 the asker's raft log is empty; other bits 0
//
//	0     1       2        3          4          8        16       24       32
//	+-----+-------+--------+----------+----------+--------+--------+--------+--------------+
//	| ver | state | voters | learners | reserved | commit | leader | last   | ids: voters, |
//	| u8  | u8    | u8 = v | u8 = l   | u32 = 0  | u64    | u64    | u64    | then learners|
//	+-----+-------+--------+----------+----------+--------+--------+--------+--------------+
//	last: the member's last log index
//	state 0 probing (empty log, not started): the voters are the peers
//	        it would bootstrap with; l = 0, commit = leader = last = 0
//	state 1 running: the configuration it knows
//	v >= 1; (v + l) × u64 ids, each nonzero, no repeats
//
// Every other successful reply (16-byte header, payload the map or nothing):
//
//	0     1       2          4           8
//	+-----+-------+----------+-----------+---------------+
//	| ver | flags | reserved | reserved  | epoch         |
//	| u8  | u8    | u16 = 0  | u32 = 0   | u64           |
//	+-----+-------+----------+-----------+---------------+
//	flags: bit 0 map: the payload is the map in clustermap's encoding
//	       (versioned, CRC32C-checksummed) and its epoch equals the
//	       header's; other bits 0
//	payload: the map when bit 0 is set, else empty
//
// Epoch is the epoch of the member's map when it answered. A get-map reply
// without the map bit means "no newer map within the wait"; an apply reply
// always carries the map; a heartbeat reply never does (its epoch lets a
// node notice that its cached map is behind). Errors are net error
// responses with the codes above and a message naming the member and the
// cause. Every decoder returns an error wrapping ErrCorrupt that names what
// was wrong; the client also checks the map's checksum (DecodeMap) and that
// its epoch matches the header.
//
// Stored in the raft log (on disk, and sent between members): a log entry
// is
//
//	0     1           9           17
//	+-----+-----------+-----------+--------------------+
//	| ver | client id | seq       | clustermap command |
//	| u8  | u64       | u64       | (to the end)       |
//	+-----+-----------+-----------+--------------------+
//	id 0/0: not deduplicated (the leader's liveness commands); else both
//	nonzero
//
// and a snapshot (inside raftgroup's snapshot envelope) is
//
//	0     1          4          8
//	+-----+----------+----------+----------------------------+
//	| ver | reserved | map len  | map (clustermap encoding)  |
//	| u8  | 3 × u8=0 | u32      | map len bytes              |
//	+-----+----------+----------+----------------------------+
//	+----------+-----------------------------------------+-----------+
//	| count    | count × remembered request id, oldest   | crc32c    |
//	| u32      | first (at most DedupeMax)               | u32       |
//	+----------+-----------------------------------------+-----------+
//	remembered request id:
//	+-----------+-----------+--------+---------+------------------+
//	| client id | seq       | code   | msg len | msg (UTF-8)      |
//	| u64 != 0  | u64 != 0  | u16    | u16     | <= 1024 bytes    |
//	+-----------+-----------+--------+---------+------------------+
//	code 0: applied (msg empty); else the refusal's error code (314-319)
//
// The CRC32C (Castagnoli) covers every byte before it. Decoders check
// lengths before allocating, refuse duplicate ids and trailing bytes, and
// run the map decoder (its own checksum and Check).
//
// # Concurrency
//
// Manager, StateMachine and Client are safe for concurrent use. The raft
// group's Ready loop is the only writer of the map; RPC handlers read it and
// wait on a channel that each change closes. Stop ends the liveness loop,
// the raft member and the log; handlers still running answer
// CodeUnavailable (or CodeAmbiguous for a proposal in flight).
package manager
