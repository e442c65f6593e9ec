// Package raftgroup runs one member of an etcd Raft group
// (go.etcd.io/raft/v3) over a durable log and a transport. The cluster map
// and each container's metadata are replicated by such groups; this
// package is the generic runner both use.
//
// # Using it
//
//	g, err := raftgroup.Start(raftgroup.Config{
//		ID: 1, Peers: []raftgroup.Peer{{1, "a:7000"}, {2, "b:7000"}, {3, "c:7000"}},
//		Log: log,        // a LogStore: package raftlog on the journal, or NewMemLog()
//		SM: sm,          // a deterministic StateMachine
//		Transport: router.Transport(groupID), // or a MemNetwork's, in tests
//	})
//	res, err := g.Propose(ctx, cmd)   // committed and applied here; res is SM.Apply's result
//	err = g.ReadIndex(ctx)            // linearizable read barrier, then read the SM
//	err = g.AddMember(ctx, 4, "d:7000") // on the leader; start member 4 with Join
//	g.Stop()
//
// A member with an empty log starts a new group of Config.Peers, or with
// Config.Join waits to be added to an existing one. A member whose log
// holds state restarts from it: the state machine is restored from the
// log's snapshot and the committed entries after it are applied again, so
// a StateMachine keeps its state in memory (or is idempotent per index).
//
// # The Ready loop
//
// One goroutine owns the RawNode. It ticks, steps received messages,
// submits proposals, conf changes and read requests, and then handles
// each Ready in the order raft requires:
//
//  1. Log.Save(HardState, Entries, Snapshot): durable before anything else;
//  2. Transport.Send(Messages);
//  3. install the snapshot (SM.Restore), apply CommittedEntries (SM.Apply,
//     RawNode.ApplyConfChange), answer the waiters whose entries applied;
//  4. record ReadStates, release read barriers whose index is applied;
//  5. every Config.SnapshotEvery applied entries, Log.CreateSnapshot (which
//     compacts the log) with SM.Snapshot's data;
//  6. Advance.
//
// NB: SM.Snapshot and Log.CreateSnapshot run on the Ready loop, so a
// state machine whose snapshot takes longer than an election timeout to
// build delays heartbeats; such a state machine should snapshot a
// copy-on-write view cheaply and raise SnapshotEvery.
//
// A snapshot raft sends to a member that its configuration does not name
// (a learner added after the log's last snapshot, joining with an empty
// log) is replaced before step 2 by one taken afresh at the applied index,
// which names it: raft's receiving side ignores the older one, and the
// member would otherwise wait for the group's next automatic snapshot.
//
// ForceSoleVoter rewrites a stopped member's log so that it starts as its
// group's only voter: the unsafe way out of a group that lost a majority
// of its logs (see its doc).
//
// A Save or Restore failure stops the group (Err says why): raft cannot
// continue past a log it failed to write. CheckQuorum and PreVote are on,
// so an isolated leader steps down and an isolated follower does not
// disrupt the group when it comes back.
//
// # Proposals and their outcome
//
// Propose wraps the command in an envelope carrying a proposal id (random
// base per start, then counting), so the member that proposed it can match
// the applied entry; the state machine sees only the command. A proposal on
// a follower is forwarded to the leader by raft (ProposeOnFollower). The
// Group watches for its proposal in the entries it appends:
//
//   - seen at index i, and the entry committed at i is it: success, with
//     the state machine's result;
//   - seen at i, and another entry is committed at i: ErrProposalDropped
//     (it can never apply; safe to retry);
//   - not yet seen when the leader or the term changes, or after two
//     election timeouts (a forwarded proposal the network dropped): ErrLost.
//     Most likely lost, but an old leader may still commit it, so retry only
//     a deduplicated or idempotent command (the cluster map's commands carry
//     request ids for this);
//   - no leader known when submitted, or raft refused it: ErrNoLeader or
//     ErrProposalDropped, nothing submitted;
//   - ctx ends first: ctx's error, wrapped; the outcome is unknown.
//
// Retryable(err) tells the retryable ones apart. Read barriers follow the
// same rules; they are always safe to retry.
//
// # Read leases
//
// ReadIndex normally costs a heartbeat round: the leader asks a quorum
// whether it still leads. With Config.LeaseReads a leader also serves
// reads on a lease, without the round:
//
//   - Every read index the quorum answers starts (or extends) the lease
//     to sent + D, where sent is when the loop asked for that index and
//     D = (ElectionTicks-2) × TickInterval × 7/8. Each member that
//     answered accepted the leader's heartbeat after sent, in the
//     leader's term; with CheckQuorum on, raft makes a member that heard
//     from its leader refuse votes until ElectionTicks of its ticks have
//     passed, and no candidate campaigns sooner. A tick already waiting
//     in its ticker plus one firing at once make that at least
//     ElectionTicks-2 tick intervals of its clock; 7/8 of it covers
//     clocks whose rates differ by less than 1/8. Any new leader needs a
//     vote from a member of the answering quorum (one configuration
//     change at a time keeps consecutive quorums intersecting): a
//     follower among them refuses until the lease ends, and the leader
//     itself votes only once it stepped down, which clears its lease in
//     the same loop turn, before the vote request is stepped.
//   - A read passes on the lease when the lease has not ended by the
//     member's monotonic clock and the member has applied its commit
//     index (read before the applied index): every write completed before
//     the read began is then applied here. Anything else falls back to a
//     round, which also renews the lease.
//   - The loop renews the lease at a tick when reads wanted it within
//     its duration and less than half of it is left, so steady reads
//     never wait for a round. It drops the lease when the leader or term
//     changes (before acting on anything else of that Ready) and when the
//     member is removed.
//   - A member that restarts may have answered just before it stopped:
//     for ElectionTicks tick intervals after Start it drops vote and
//     pre-vote requests, as if it had heard from a leader then.
//
// A leader does not send the appends raft makes only to tell a follower
// that has acknowledged every entry the new commit index: the follower
// learns it from the next append or heartbeat, and nothing waits for it
// (Status.CommitNoticesDropped counts them). While a conf change is in
// the log and not applied they all go out, since a removed member learns
// of its removal from them.
//
// Leadership transfer (MsgTimeoutNow) would bypass the followers'
// promise; the Group never transfers leadership. Status.LeaseReads counts
// the reads served on the lease and Status.Lease is what is left of it.
// TestLeaseEndsBeforeANewLeaderCommits isolates a leader while a reader
// keeps reading on it and fails if a read passes after a new leader
// acknowledged a write (it does with a lease three times too long);
// TestRestartedMemberHoldsVotes fails without the hold.
//
// # Membership
//
// AddLearner, AddMember and RemoveMember propose ConfChange (v1) entries
// (AddMember on a learner promotes it to voter) whose Context
// carries the proposal id and the member's address; bootstrap conf changes
// carry the address with proposal id 0. Applying one updates the
// transport's address book. Since raft's ConfState has no addresses, the
// Group's snapshots wrap the state machine's bytes with the member list.
//
// NextRepairStep is the policy both kinds of group built on this package
// (a container's metadata group, the managers' group) follow to move the
// configuration toward the members they want, one conf change at a time
// and never below a majority of active voters: a voter that lost its log
// out and back in as a learner, a learner promoted once caught up, a
// missing member added as a learner, an unwanted voter removed last.
// PastBootstrap tells a voter asking with an empty log that is about to
// write the bootstrap entries from one that lost its log.
//
// # Transports
//
// A Transport sends a member's messages and delivers received ones to the
// Group (Receiver: Step, ReportUnreachable, ReportSnapshot). MemNetwork is
// an in-memory one for tests (seeded drops, delay, partitions).
// NetRouter/NetTransport carry messages over package net: one kind,
// KindRaft (300), for every group on a node, dispatched by group id;
// a Ready's messages to a peer are written straight onto the peer's
// connection from the Ready loop, as one call whose answer nobody waits
// for, when nothing for that peer is queued or being sent and the
// connection its sender goroutine last used is up (no goroutine hand-off
// on the sending side; the order holds, because the sender's calls were
// answered, so stepped, before it counted them sent). Otherwise they are
// queued per peer (at most 1024, more are dropped with
// ReportUnreachable), and the sender batches them and sends each batch
// with one call on a net.Pool connection, dialling as needed and waiting
// for the answer; snapshots always go this way. The receiving node takes a batch on the connection's
// reader goroutine (net.Starter) and puts its messages straight into the
// member's inbox (Receiver.TryStep); only when the inbox is full does a
// goroutine wait for room (Step) before the call is answered. A failed
// call reports the peer unreachable and each snapshot in it failed
// (ReportSnapshot(SnapshotFailure)); raft retries. A batch is
// bounded by the connection's payload limit (net's MaxPayloadBytes, default
// 16 MiB); a message larger than that (a snapshot: a namespace of some
// 150,000 files makes one of 16 MiB) is sent as a transfer: its bytes cut
// into parts of at most the limit, each a KindRaft call with a part
// header, one after another on one connection; the receiving router
// assembles them (at most 4 transfers at once, each at most 1 GiB, one
// that stalls for two call timeouts dropped) and steps the message when
// the last part arrives. Bad batches are
// refused with CodeBadBatch and an error naming what was wrong; batches
// for a group with no member here get CodeUnknownGroup; batches on a
// read-only key get CodeReadOnly; with NetRouterConfig.Access set, batches
// on any key but the cluster key get CodeAccessDenied (265): admin and
// container keys never speak raft.
//
// # Formats
//
// All integers are little-endian. Stored in the log or sent on the wire:
// never renumber.
//
// Normal entry data (version 1):
//
//	0     1             9
//	+-----+-------------+------------------------+
//	| ver | proposal id | command (SM bytes)     |
//	| u8  | u64         |                        |
//	+-----+-------------+------------------------+
//
// Conf change Context (version 1):
//
//	0     1             9          11
//	+-----+-------------+----------+--------------------------+
//	| ver | proposal id | addr len | addr (<= 1024 bytes)     |
//	| u8  | u64         | u16      |                          |
//	+-----+-------------+----------+--------------------------+
//
// Snapshot data (version 1):
//
//	0     1         5
//	+-----+---------+----------------------------------------------+-----------+
//	| ver | count   | count × (id u64 | addr len u16 | addr)       | SM bytes  |
//	| u8  | u32     | ids nonzero, strictly increasing; <= 1024    |           |
//	+-----+---------+----------------------------------------------+-----------+
//
// KindRaft request: header body (24 bytes) and payload; the response is
// empty, or an error:
//
//	0     1       4         8          16         24
//	+-----+-------+---------+----------+----------+
//	| ver | zero  | count   | group id | to       |   count 1..4096
//	| u8  | 3 B   | u32     | u64      | u64      |
//	+-----+-------+---------+----------+----------+
//	payload: count × ( len u32 | raftpb.Message, protobuf ), nothing after
//
// or, for a part of a transfer, a 48-byte part header body:
//
//	0     1       8          16         24         32         40         48
//	+-----+-------+----------+----------+----------+----------+----------+
//	| ver | zero  | group id | to       | transfer | offset   | total    |
//	| u8=2| 7 B   | u64      | u64      | u64 != 0 | u64      | u64      |
//	+-----+-------+----------+----------+----------+----------+----------+
//	payload: bytes [offset, offset+len) of a one-message batch payload of
//	total bytes (1 to 1 GiB); at least one byte, within total
//
// Every message in a batch must be addressed to the header's to, come from
// a nonzero member, and not be one of raft's local message types.
// Decoding failures match ErrCorrupt.
//
// # Concurrency
//
// Group's methods are safe for concurrent use. The StateMachine is called
// only from the Ready loop. A Transport's methods are called from the
// Ready loop, but its Receiver's from anywhere.
package raftgroup
