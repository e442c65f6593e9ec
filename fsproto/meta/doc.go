// Package meta serves each data container's namespace (package namespace)
// from a Raft group of its own on the storage nodes, and is the client
// that reaches it.
//
// # Using it
//
// On every storage node, next to the data server, over the node's
// raftgroup.NetRouter and on its net.ServeMux:
//
//	h, err := meta.NewHost(meta.HostConfig{Node: id, Dir: dataDir + ".meta", Router: router, Pool: pool})
//	h.Register(mux)          // kinds 330-331, before the server starts
//	go h.Follow(ctx, mc)     // SetMap with every map (mc: a *manager.Client)
//	st := h.Status(ctx)      // each member's raft view, for status output
//	...
//	cancel(); h.Close()      // after Follow returned
//
// Anywhere (mounts, tools), for one container:
//
//	cl := meta.NewClient(containerID, managerClient, pool)
//	res, err := cl.Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: "etc", Mode: 0o755})
//	if errors.Is(err, syscall.EEXIST) { ... }           // namespace refusals are *namespace.Error
//	attr, err := cl.Lookup(ctx, namespace.RootIno, "etc")
//	ents, next, err := cl.ReadDir(ctx, attr.Ino, "", 128)
//
// This package does not import engine. A Client whose container is no
// longer in the map fails with an error wrapping clustermap.ErrNotFound
// (it re-reads the map after each round of failures).
//
// # Membership
//
// Container c's group has raft group id GroupID(c) = 2^40 + c (the
// managers' group is 1); a member's raft id is its node id and its
// address the node's map address (the server that serves kind 300). Its
// members are Members(map, c): the map's record of them
// (clustermap.Container.MetaMembers), chosen at CreateContainer as the
// three best nodes by clustermap.Score over c's first PG among the nodes
// that are not Out and match c's policy, distinct failure domains first
// (clustermap.ChooseMetaMembers, which also answers for a container of a
// map from before the record). The record changes only by map commands:
// nodes added later do not move it, and taking a member's node Out
// replaces the member by the best other node (clustermap, "Metadata
// groups"). Up/Down does not matter, so a Down member stays a member: the
// group keeps working while a majority runs (two of three), and the Down
// member catches up from the leader's log (or a snapshot) when it comes
// back.
//
// Raft's membership follows the record through the leader: every
// RepairInterval, Follow runs Repair, which on each group this node leads
// compares raft's voters and learners with Members and takes one step
// (raftgroup.NextRepairStep): a new member is first added as a learner
// (it does not count toward the quorum, so a replacement that never
// comes up costs nothing), promoted to voter once its Match is within 64 entries of the
// leader's last index, and only once every member of the record votes is
// a voter the record no longer names removed (inactive ones first, the
// leader last, and never leaving fewer active voters than a majority).
// Each step is logged, and the leader's pending step is in Status
// (MemberStatus.Repair, shown by `weft status`). The step depends only on
// the record and raft's configuration, so a new leader, or a restarted
// one, carries on.
//
// SetMap starts a member for each container whose Members include this
// node (its raft log in Dir/container-<id>). A member with an empty log
// first asks the group's other nodes (read op 8: any member answers with
// its voters and learners and, on the leader, each one's replicated
// index) and then:
//
//   - bootstraps the group from the record's bootstrap set
//     (clustermap.Container.MetaBootstrap: the first members, never
//     changed, so every bootstrapping member writes the same first
//     entries) when it belongs to that set and no node runs the group
//     without it;
//   - joins the running group (raftgroup Config.Join: it gets the log or
//     a snapshot from the leader) when the group counts it as a learner:
//     the leader's repair added it;
//   - refuses when a node runs the group without it (the leader has not
//     added it yet), when the group counts it as a voter and is past its
//     bootstrap entries or it is not of the bootstrap set (its log was
//     lost, or it never started while the group went on: raft would panic
//     the node when the leader's commit index passed its empty log, and a
//     voter must keep what it acknowledged), or when nobody answers and
//     it is not of the bootstrap set. SetMap returns the refusal; Follow
//     retries and logs it.
//
// A lost log is repaired: the question names the asking node, and the
// leader, seeing a voter ask with an empty log in a group past its
// bootstrap entries (or a voter not of the bootstrap set), notes it (the
// note lapses when the node stops asking). Its repair then removes that
// voter, when the voters left keep a majority of active ones, and adds it
// back as a learner (the map's record still names it); the node's next
// try joins, gets a snapshot and the log, and is promoted once caught up.
// A member that replays its own removal and re-addition ends up a member
// (raftgroup). The rule needs nothing the leader may not know (a leader
// elected while the node was down never heard from it), and it also
// catches a bootstrap member that starts only after the others committed
// past the bootstrap entries: it joins that way too, a little later.
//
// A node that holds a non-empty log for a container runs its member
// whether Members still names it or not (raft membership is in the log),
// after a restart too; members of deleted containers stop and their logs
// are deleted (an id below the map's NextContainer that the map does not
// hold: ids are never reused), also on a node that was down at the time,
// with its first map. A client follows a not-leader hint even to a node
// outside the computed members.
//
// A bootstrap member with an empty log bootstraps only when a majority of
// the bootstrap set (itself included) answers its probe that it runs no
// member, and no node answers that it holds the group's log without
// running its member yet (a node restarting: CodeNotStarted): otherwise a
// member that lost its log, asking while the members that hold the
// group's log are unreachable or not started, would come back as a voter
// that forgot its votes. A node answers CodeNotStarted for any log
// directory that none of its starts found empty (so also before its
// first map), erring towards a probe that waits. The majority rule
// cannot tell a majority of the bootstrap set that lost their logs
// together (two replaced disks, the third member down) from a new group;
// the cluster map can: once a group has committed past its bootstrap
// entries its leader's Repair marks it formed in the map
// (HostConfig.MarkFormed, clustermap.MarkMetaFormed), and from then on
// no member with an empty log bootstraps it, whatever the answers (probe).
// Such a group stays down until a member holding its log runs and a
// leader can add the others back, rather than start an empty namespace
// in its place; when no majority of such members will run again, the
// operator forces one survivor's log to be the sole voter
// (ForceSoleMember, `weft node recover-meta`), unsafely, and its Repair
// then adds the others back as new members. A member
// removed from the group on a node that still runs (not Out) is stopped
// and its log deleted once it applied its own removal and the map does
// not name its node (Repair, dropRemoved; the directory is marked first,
// so that a delete a crash cut short is finished by the next start rather
// than opened as a partial log). Members that a changed policy no longer
// matches move like those of a node taken out: the map names their
// replacements (clustermap, "Metadata groups") and the leader moves raft's
// membership there.
//
// # Ops and exactly-once
//
// An op is one namespace command with a request id (Client: a random id
// per Client and a counter per op). Only the leader serves ops: a
// follower answers "not leader" with the leader it knows, and the client
// goes there (else to the next member). The leader decodes the command,
// stamps its Now with its clock (so replicas agree on times and client
// clocks do not matter), and proposes the log entry (request id,
// command). StateMachine wraps the Namespace: it remembers the encoded
// Result of the last DedupeMax request ids and answers an id it has seen
// with that Result, changing nothing. So a retried exclusive Create
// answers the first attempt's success, not EEXIST, and a retried Unlink
// not ENOENT. The remembered results are replicated state, in the
// snapshot (at most DedupeMax × about 100 bytes: some 2 MB per container
// in memory and in each snapshot).
//
// raftgroup's outcomes map to codes that say whether the op applied:
//
//	ErrNoLeader, ErrProposalDropped,     CodeUnavailable: not applied; retry
//	ErrBusy, ErrRemoved
//	ErrLost, ErrStopped, the member's    CodeAmbiguous: may apply; retry with
//	ProposeTimeout                       the same request id
//	no member of the container here      CodeNoMember: try another member
//	namespace refusal (errno)            a successful reply whose Result has Err
//
// # Reads
//
// Reads (Lookup, GetAttr, ReadDir pages, Readlink, GetXattr, ListXattr,
// StatFS) are served by the leader after raftgroup ReadIndex, so a read
// sees every op that completed before it; followers answer "not leader".
// The groups run with raftgroup's read leases (HostConfig.NoLeaseReads
// turns them off): a leader that holds a lease passes the barrier
// without a round to its followers, and serves a read other than
// members and a ReadDir page over 256 entries on the connection's
// reader goroutine (net.Starter), without a handler goroutine.
// ReadDir pages by name cookie (namespace.ReadDir), at most 4096 entries a
// page.
//
// # Wire formats
//
// Kinds (net user range; never renumber): 330 op, 331 read; 332-339
// reserved. Error codes 330-335 (see the constants). All integers
// little-endian; every header body starts with version 1.
//
// op request header (28 + n bytes, n >= 1), no payload:
//
//	0     1            4           12          20          28
//	+-----+------------+-----------+-----------+-----------+-------------------+
//	| ver | reserved   | container | client id | seq       | namespace command |
//	| u8  | 3 × u8 = 0 | u64 != 0  | u64 != 0  | u64 != 0  | (to the end)      |
//	+-----+------------+-----------+-----------+-----------+-------------------+
//
// read request header (26 + name bytes), no payload:
//
//	0     1    2          4        8           16    24         26
//	+-----+----+----------+--------+-----------+-----+----------+------+
//	| ver | op | reserved | limit  | container | ino | name len | name |
//	| u8  | u8 | u16 = 0  | u32    | u64 != 0  | u64 | u16      |      |
//	+-----+----+----------+--------+-----------+-----+----------+------+
//	op: 1 lookup (ino = parent, name), 2 getattr, 3 readdir (name =
//	cookie, limit 1..4096), 4 readlink, 5 getxattr (name), 6 listxattr,
//	7 statfs, 8 members (any member answers, no barrier); limit 0
//	except for readdir; name <= 255 bytes
//
// Every successful reply: a 16-byte header, the body in the payload:
//
//	0     1        2          4          8             16
//	+-----+--------+----------+----------+-------------+
//	| ver | status | reserved | reserved | leader hint |
//	| u8  | u8     | u16 = 0  | u32 = 0  | u64         |
//	+-----+--------+----------+----------+-------------+
//	status 0 ok: body = the op's Result (namespace.AppendResult), or
//	         the read's body
//	status 1 not leader: no body; hint = the leader's node id (0: none)
//
// A read's body (str = len u16 | bytes):
//
//	| errno u32 | ino u64 | op str | name str |   the namespace's refusal;
//	                                              errno 0: ino 0, strs empty,
//	                                              and the op's data follows:
//	lookup, getattr: attr, 61 bytes, as in namespace's Result encoding
//	readdir:   | next str | n u32 | (ino u64 | type u8 | name str) * n |
//	readlink:  | target str |
//	getxattr:  | value len u32 (<= 64 KiB) | value |
//	listxattr: | n u32 | name str * n |
//	statfs:    | inodes u64 | bytes u64 | quota bytes u64 | quota inodes u64 | reclaiming u64 |
//	members:   | commit u64 | last index u64 | n u32 (<= 64) | (member node id u64 | match u64 | learner u8) * n |
//	           the answering member's commit index; the voters, then
//	           the learners (learner 1); match as the leader knows it
//	           match: the leader's replicated index on the voter, 0 when
//	           the answering member does not lead (hint != its id)
//
// Stored in the raft log (on disk and between members), an entry is:
//
//	0     1           9           17
//	+-----+-----------+-----------+-------------------+
//	| ver | client id | seq       | namespace command |
//	| u8  | u64 != 0  | u64 != 0  | (to the end)      |
//	+-----+-----------+-----------+-------------------+
//
// and a snapshot (inside raftgroup's snapshot envelope):
//
//	0     1            4          12
//	+-----+------------+----------+-----------------------------+
//	| ver | reserved   | ns len   | namespace snapshot          |
//	| u8  | 3 × u8 = 0 | u64      | (namespace's own encoding)  |
//	+-----+------------+----------+-----------------------------+
//	+----------+-----------------------------------------+-----------+
//	| count    | count × remembered request id, oldest   | crc32c    |
//	| u32      | first (at most DedupeMax)               | u32       |
//	+----------+-----------------------------------------+-----------+
//	remembered request id:
//	+-----------+-----------+-------------+-----------------------------+
//	| client id | seq       | result len  | Result (AppendResult)       |
//	| u64 != 0  | u64 != 0  | u16 (<=4096)|                             |
//	+-----------+-----------+-------------+-----------------------------+
//
// The CRC32C (Castagnoli) covers every byte before it. Decoders check
// lengths before allocating, refuse unknown versions, nonzero reserved
// bytes, duplicate ids and trailing bytes, and return errors wrapping
// ErrCorrupt that name what was wrong.
//
// # Concurrency
//
// Host, StateMachine (as the raft group drives it) and Client are safe
// for concurrent use. Each member's Ready loop is the only writer of its
// namespace; handlers read it after a read barrier.
package meta
