// Package clustermap is the cluster map of weft and the placement of data
// over it: the pure, deterministic state machine that the managers' Raft
// group replicates. It does no I/O, starts no goroutines and reads no
// clock; a runner feeds it commands in log order and persists its
// encodings.
//
// # Using it
//
//	m := clustermap.New()                                   // epoch 0, empty
//	m, err = m.Apply(clustermap.AddNode{ID: 1, Addr: "10.0.0.1:7000",
//		Labels: map[string]string{"zone": "a"}, Capacity: 1 << 40})
//	m, err = m.Apply(clustermap.CreateContainer{Name: "db",
//		Policy: clustermap.Policy{Replicas: 3, FailureDomain: "zone"}})
//	ct, _ := m.ContainerByName("db")
//	pg, _ := m.Locate(ct.ID, inode, chunkIndex)             // pg.Primary(), pg.Epoch
//	m, err = m.Apply(clustermap.SetNodeState{ID: 1, State: clustermap.Down})
//
//	b, _ := clustermap.AppendCommand(nil, cmd)              // Raft log entry
//	cmd, err := clustermap.DecodeCommand(b)
//	snap, _ := m.MarshalBinary()                            // Raft snapshot, stale-epoch reply
//	m, err = clustermap.DecodeMap(snap)
//
// The manager leader turns heartbeats into commands with a Liveness
// (which takes the time as an argument; the package reads no clock):
//
//	live := clustermap.NewLiveness(10 * time.Second)
//	live.Heartbeat(nodeID, now)                             // on each heartbeat
//	for _, c := range live.Commands(m, now) { propose(c) } // on each tick
//
// Map.String renders a map as text for logs and status output.
//
// Apply never modifies its receiver; it returns a new map. A *Map that
// Apply or a decoder returned is never modified afterwards, so it may be
// shared between goroutines without locks as long as nobody writes to it
// (its slices and label maps included). Errors wrap the sentinels
// ErrNotFound, ErrExists, ErrInvalid, ErrNoChange, ErrStaleEpoch and (from
// decoders) ErrCorrupt; test them with errors.Is.
//
// # Epochs
//
// Every command that succeeds bumps Map.Epoch by exactly one; a command
// that would change nothing fails with ErrNoChange and bumps nothing, so
// retried commands are harmless. A PG's Epoch is the map epoch at which
// its Replicas or Backfilling last changed, or one of its replicas
// restarted (NodeRestarted): it only grows, and a request
// carrying PG epoch e is current iff e equals it. A node refuses a request
// with a stale epoch and answers with the current map, and the caller
// refreshes.
//
// # Placement
//
// A chunk (container, inode, index) goes to PG PGOf(container, inode,
// index), one of the container's PGCount PGs. A PG's replicas are chosen
// by rendezvous hashing: every eligible node (Up, labels matching the
// policy's Selector, holding the FailureDomain label) gets Score(pg,
// node), and the highest scoring nodes in distinct failure domains win.
// Scores come from a fixed splitmix64 mixer over integers only, so every
// manager, node and client on any platform computes the same placement.
// Capacity is recorded but does not weight the score (a weighted
// rendezvous score needs a logarithm, and floating point is not
// reproducible bit for bit across architectures).
//
// When the nodes or the policy change, Reconcile moves as little data as
// it can: every replica still eligible stays (in order), replicas on Down
// or Out nodes go at once, Draining replicas (and ones that no longer
// match the policy) stay until enough replacements caught up, and free
// slots are filled by the best-scoring eligible nodes in free domains,
// which join as Backfilling until they send CaughtUp. The primary
// (Replicas[0]) is always a caught-up replica when one exists. A node that
// comes back Up is not swapped back in where a replacement took its place
// (no flapping); it is only eligible again. With too few eligible domains a
// PG keeps what it has and is Degraded; placement never fails. Replicas of
// a brand-new container start caught up (there is nothing to copy).
//
// NB: a PG whose caught-up replicas were all lost keeps its backfilling
// replicas; a node with nothing to backfill from confirms with CaughtUp
// once it decides (the runner's policy, not this package's).
//
// # Metadata groups
//
// Each container's namespace is a Raft group of its own (package meta)
// whose members the map records: Container.MetaMembers, chosen at
// CreateContainer by ChooseMetaMembers (the MetaMembersMax best nodes by
// Score over the container's first PG among those not Out and matching
// its policy, distinct failure domains first; Up/Down does not matter),
// and Container.MetaBootstrap, the first members the container got,
// which never change afterwards. The record changes only by commands,
// and nodes added later move an existing group only to spread it over
// failure domains:
//
//   - SetNodeState Out replaces the node in every container's members
//     with the best candidate by the same rules that is not a member
//     yet, Up nodes first (a replacement must run to catch up), free
//     failure domains first; with no candidate the list shrinks;
//   - AddNode, SetNodeState and SetPolicy fill lists shorter than
//     MetaMembersMax (a container created on too few nodes, or left short
//     by an Out) by the same rule, and replace members whose nodes no
//     longer match the policy (a changed selector or failure-domain
//     label, or a node's labels) with matching candidates; a member off
//     the policy stays while no matching node can take its place, so the
//     list never shrinks for it; and they move members that share a
//     failure domain with another member to Up nodes in domains no
//     member occupies, while there are such nodes (zones that joined
//     after the group was made, or a policy whose failure domain
//     changed), so that losing one domain leaves the group its majority
//     as it leaves the data PGs a replica;
//   - a container without members (no node could hold them, or a map
//     decoded from version 1 or 2, which had no record) gets
//     ChooseMetaMembers' choice on the map as it is before the next
//     command that Apply takes, whatever the command: that is the set
//     every node computed from that map, so it is the set an existing
//     group runs with. A container that gets its first members this way
//     also gets them as its bootstrap set.
//
// The record is what the group should be; the group's leader moves raft's
// membership to it one step at a time (package meta). Members on Down or
// Draining nodes stay (the group runs on a majority, and they catch up
// when they return). Container.MetaFormed (MarkMetaFormed, sent by the
// group's leader once it committed past its bootstrap entries) tells
// members with an empty log never to bootstrap the group again; it is
// dropped only with the bootstrap set, when every member went Out.
//
// # The map's identity
//
// Map.FSID is a random 128-bit identity, set once by SetFSID (the
// managers' leader sends it while the map has none) and never changed by
// any command: it names the map's history. Nodes record it and refuse a
// map with another one (package node), such as the empty map of a
// managers' group whose every raft log was lost and that started afresh:
// the containers, keys and PG placements their data belongs to are gone
// from it, and serving or deleting that data under a new history's
// containers (whose ids restart at 1) would lose it or mix it.
//
// # Keys and access
//
// Three kinds of keys reach a cluster. A node's keys file holds the
// cluster key (node to node; Role RoleCluster), cluster admin keys (every
// other key of the file that is not read-only; RoleAdmin) and cluster read
// keys (the file's "ro" keys; RoleReader). The map holds container keys
// (RoleContainer): records {ID, Container, Access read|write|admin,
// Created epoch, Revoked epoch}, made by CreateKey and revoked by RevokeKey
// (or by their container's deletion). A revoked key stays in the map as a
// tombstone so its ID is never handed out again (NB: so the map grows by
// one small record per key ever made; a pruning rule would need IDs that
// carry a counter).
//
// No secret is stored anywhere: a container key's secret is
// KeySecret(cluster key secret, id) = HMAC-SHA256(cluster secret, "weft
// container key v1" || 0x00 || id), which every node computes. A Grant
// says what a key may do (ReadsContainer, WritesContainer, Internal,
// AdministersKeys, MayApply) and an Authorizer resolves a key id to its
// Grant; the servers of fsproto/cluster, fsproto/manager, fsproto/meta
// and the raft transport check each request's key with them. ForContainer
// reduces a map to what a container key may see (its container, its PGs,
// and for an admin key its keys; the nodes stay, as clients need their
// addresses).
//
// # Invariants
//
// Map.Check states them; Apply keeps them and the decoder enforces them.
// In short: sorted unique IDs that are never reused (Next counters), every
// container owns exactly its PG range, replicas are distinct Up or
// Draining nodes, the active replicas (Up, matching the policy, first in
// their failure domain) are at most Policy.Replicas, only a caught-up
// replica may share a domain with an earlier one (it is retiring),
// Backfilling is an ordered subset of Replicas, no caught-up replica
// follows a backfilling one, metadata members are distinct nodes that are
// not Out, and keys are sorted, well formed, with live keys only on
// existing containers.
//
// # Map encoding (Raft snapshot, stale-epoch reply)
//
// All integers are little-endian. Stored on disk and sent on the wire:
// never renumber or reorder; a new layout gets a new version.
//
//	+--------+---------+-------+----------+------+--------+
//	| magic  | version | flags | body len | body | crc32c |
//	| "WCMP" | u16     | u16=0 | u32      |      | u32    |   crc32c (Castagnoli)
//	+--------+---------+-------+----------+------+--------+   over all bytes before it
//
//	version 1: a map without keys; version 2: a map with at least one
//	key (the decoder refuses a version 2 map without keys, so every map
//	has one encoding, and maps without keys keep their version 1 bytes);
//	version 3: a map in which at least one container records a metadata
//	bootstrap set (refused otherwise, for the same reason); version 4: a
//	map in which at least one container's metadata group is marked
//	formed (refused otherwise); version 5: a map with an FSID (a zero
//	FSID refused)
//
//	body (version 1), and the start of a version 2 body:
//	+-------+----------------+---------+-------+-------+--------+------------+-------+-----+
//	| epoch | next container | next pg | nodes | node* | conts  | container* | pgs   | pg* |
//	| u64   | u64            | u32     | u32   |       | u32    |            | u32   |     |
//	+-------+----------------+---------+-------+-------+--------+------------+-------+-----+
//
//	node:      | id u64 | capacity u64 | state u8 | addr str | labels |
//	container: | id u64 | first pg u32 | name str | policy |
//	policy:    | replicas u8 | pg count u32 | chunk size u32 | failure domain str | selector labels |
//	pg:        | id u32 | container u64 | epoch u64 | n u8 | replica u64 * n | k u8 | backfilling u64 * k |
//	                                                   n, k <= 10 (2 × ReplicasMax: retiring replicas included)
//	labels:    | n u8 | (key str, value str) * n |      keys sorted and distinct, n <= 32
//	str:       | len u16 | bytes |
//
//	version 2 body: the version 1 body, then
//	+------+------+
//	| keys | key* |       keys >= 1, sorted by id
//	| u32  |      |
//	+------+------+
//	key:       | id str | container u64 | access u8 | created u64 | revoked u64 |
//	           access 1 read, 2 write, 3 admin; revoked 0: live
//
//	version 3 body: the version 2 body, but keys may be 0 and each
//	container record ends with its metadata record:
//	container: | id u64 | first pg u32 | name str | policy | n u8 | member u64 * n | k u8 | bootstrap u64 * k |
//	           n, k <= MetaMembersMax (the decoder reads up to 10 and Check bounds them)
//
//	version 4 body: the version 3 body, each container record followed by
//	its flags:
//	container: | ... as in version 3 ... | flags u8 |
//	           bit 0: the metadata group is formed (Container.MetaFormed);
//	           other bits must be 0
//
//	version 5 body: the version 4 body, then
//	+------------+
//	| fsid       |       Map.FSID, not all zero
//	| 16 bytes   |
//	+------------+
//
// Node states: 1 up, 2 down, 3 draining, 4 out. Records appear sorted by
// ID. A map is at most MapLenMax bytes; the decoder checks the magic,
// version, flags, body length (no trailing bytes), checksum, bounds every
// count by the bytes left before allocating, and runs Check.
//
// # Command encoding (Raft log entries)
//
//	+-------------+------+------+
//	| version u8=1| kind | body |          exactly one command, no trailing bytes
//	+-------------+------+------+
//
//	kind 1 AddNode:         | id u64 | capacity u64 | addr str | labels |
//	kind 2 SetNodeState:    | id u64 | state u8 |
//	kind 3 CreateContainer: | name str | policy |
//	kind 4 DeleteContainer: | id u64 |
//	kind 5 SetPolicy:       | container u64 | policy |
//	kind 6 CaughtUp:        | pg u32 | node u64 | pg epoch u64 |
//	kind 7 NodeRestarted:   | id u64 |
//	kind 8 CreateKey:       | id str | container u64 | access u8 |
//	kind 9 RevokeKey:       | id str |
//	kind 10 MarkMetaFormed: | container u64 |
//	kind 11 SetFSID:        | fsid 16 bytes |
//
// Commands carry no checksum: the Raft log (package journal) checksums
// its records. DecodeCommand checks the structure; Apply checks values.
package clustermap
