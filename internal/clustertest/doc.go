// Package clustertest holds the multi-process tests of a weft cluster:
// real `weft node` processes on 127.0.0.1, 127.0.0.2, ... run by package
// localcluster, each a storage node and a manager member, driven by the
// cluster client (package fsproto/client) over loopback TCP. It has no
// code of its own; the tests are its content:
//
//   - TestKillNodeUnderLoad: kill -9 one node of three (replication 3)
//     under concurrent reads and writes; no acknowledged write is lost and
//     every chunk's history is linearizable (porcupine, a register model);
//     the node comes back and backfills only what it missed (the bytes it
//     installed, from its status, are bounded by what was written while it
//     was away, far below the data it already held); then the whole
//     cluster restarts and every acknowledged byte reads back.
//   - TestManagerLeaderKilled: kill -9 the node whose manager member leads
//     the managers' Raft group, under load; a new leader is elected, it
//     marks the node Down, and the clients carry on.
//   - TestPrimaryCutOff: freeze a PG's primary (SIGSTOP: cut off, sockets
//     open) under load; a new primary takes over in a new epoch, and when
//     the old one resumes nothing it still had queued breaks
//     linearizability.
//   - TestLoseTwoOfFive: five nodes, replication 3, two killed at once;
//     every chunk is still served and new writes succeed.
//   - TestQuickRestart: a node killed and restarted before the managers
//     notice gets its PGs' epochs bumped (NodeRestarted) before it serves.
//   - TestMetaMemberOut: four nodes (managers on three); a metadata
//     member's node is killed and taken Out; the group's leader moves raft
//     membership to the replacement the map names (learner, voter, old
//     voter removed); then a second original member is killed and the
//     container still reads every file written before and takes writes.
//   - TestManagerLostLogs: a manager member's raft log deleted (a
//     replaced disk) rejoins through the leader's repair rather than as
//     the voter it was; then two members' logs lost with the third down:
//     no empty cluster map is started, the group waits, and `weft node
//     recover-manager` on the third brings it back with its map (every
//     file reads back); then all three lost: the managers start an empty
//     map with a new FSID, and the nodes refuse it.
//   - TestMetaMembersSpreadProcesses: a container's metadata group made
//     while one zone held most nodes spreads over a zone that appears
//     later (a node relabelled): the map moves a member there and raft
//     follows; losing the old zone's remaining member loses nothing.
//
// (Other tests, on metadata members' lost logs and recovery, are
// described where they are defined.)
//
// TestMain builds the weft binary once into a temporary folder (with the
// invariants tag when the tests have it). The tests skip, saying why,
// when 127.0.0.2 cannot be bound (loopback addresses other than 127.0.0.1
// are missing on some systems, such as macOS without aliases).
package clustertest
