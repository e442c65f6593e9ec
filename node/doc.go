// Package node runs a weft storage node: one engine served over package
// net with the chunk protocol of package fsproto, plus an optional
// Prometheus endpoint.
//
// # Using it
//
//	cfg, err := node.LoadConfigFile("/etc/weft/node.json") // or build a Config
//	cfg.OnListening = func(addr, metricsAddr string) { ... } // optional
//	err = node.Run(ctx, cfg) // until ctx is cancelled; nil on a clean stop
//
// Run validates the configuration (Validate reports every problem at
// once, the keys file's included), opens the engine (formatting a missing
// file device first when FormatSize is set), serves the chunk protocol on
// Listen and, when MetricsListen is set, Prometheus metrics at /metrics.
// When ctx is cancelled it shuts the net server down gracefully (requests
// in progress finish; at most ShutdownTimeout), stops the metrics server
// and closes the engine, releasing the device.
//
// # Cluster mode
//
// With Managers set, Run serves a storage node of a cluster instead of the
// single-node chunk server. Its node id is NodeID(superblock UUID): the
// UUID's first 8 bytes, little-endian, top bit cleared, 0 replaced by 1,
// so it is stable across restarts and unique per device. One listener
// serves every kind through a net.ServeMux:
//
//	256-259  chunk protocol, through replication (cluster.DataServer)
//	300      raft (raftgroup.NetRouter): the manager group and the
//	         metadata groups of the node's containers
//	310-319  manager RPCs (manager.Manager)      only with ManagerID
//	320      replication peer batches (cluster.DataServer)
//	330-331  container metadata ops and reads (meta.Host)
//	321      KindStatus: this node's Status (see EncodeStatus); not for
//	         container keys
//
// Outbound calls (raft, manager RPCs, peer batches) share one net.Pool
// authenticated with the cluster key. Background loops, all ended on
// shutdown: join (manager Apply(AddNode{id, listen address, labels,
// device size}) until it succeeds; ErrNoChange counts), then a heartbeat
// every HeartbeatTimeout/4 (joining again when the managers no longer
// know the node); the data server follows the map by long-polling the
// managers, and so does the metadata host (meta.Host.Follow: it runs the
// members of the container metadata groups the map assigns to this node,
// their raft logs under MetaDir); each OnCaughtUp becomes one
// Apply(CaughtUp) attempt, which the data server repeats while the map
// still shows the node backfilling; every second, on each container whose
// metadata leader this node is, the reclaim loop deletes the chunks of
// removed and truncated files that the namespace queued and no client
// reclaimed (client.Reclaimer; at most 256 entries a round). Every map
// the node joins or acts on passes its FSID guard (fsidGuard): the node
// records the FSID of the first map that has one (in its device's
// superblock and in MetaDir/cluster-fsid, each synced; either restores the
// other at start, and two that differ stop the node) and refuses maps
// with another FSID or none (ErrForeignMap),
// logging why, so that it never joins or serves a map started afresh by
// managers that lost their logs, or another cluster's. The guard also
// keeps the newest map it accepted that has an FSID, which mapCopyLoop
// writes to MetaDir/cluster-map (MapCopyFileName) within a second and at
// stop: the copy from which `weft node recover-manager --from-map` starts
// the managers again when every one of them lost its log. On shutdown
// the loops, the manager member and the data server stop first (long polls and pending client
// operations end at once with errors callers retry elsewhere), then the
// server shuts down gracefully, then the pool and the engine close.
//
// # Config file
//
// A JSON object; every field is optional except device, cluster_id and
// keys_file, and an unknown field is an error naming it (the comments
// below explain the fields; the file itself, being JSON, has none):
//
//	{
//	  "device": "/dev/nvme0n1",        // or a file
//	  "format_size": 68719476736,      // create+format a missing file of this many bytes
//	  "listen": "0.0.0.0:7070",        // default 127.0.0.1:7070
//	  "metrics_listen": "127.0.0.1:9090", // default off
//	  "cores": [2, 3],
//	  "shards": 2,
//	  "mode": "hybrid",                // poll, hybrid or interrupt
//	  "conns": "reactors",             // or goroutines (the default in cluster mode)
//	  "labels": {"site": "a", "zone": "z1"},
//	  "cluster_id": "c1",
//	  "keys_file": "/etc/weft/keys",
//	  "containers": [1],               // default [1]; single-node mode only
//	  "managers": ["10.0.0.1:7070", "10.0.0.2:7070", "10.0.0.3:7070"], // cluster mode
//	  "manager_id": 1,                 // also a manager member
//	  "manager_peers": ["1=10.0.0.1:7070", "2=10.0.0.2:7070", "3=10.0.0.3:7070"],
//	  "manager_dir": "/var/lib/weft/manager", // default DEVICE.manager
//	  "meta_dir": "/var/lib/weft/meta", // default DEVICE.meta
//	  "cluster_key": "cluster",        // default "cluster"
//	  "heartbeat_timeout": "5s",       // default 5s
//	  "read_lease": "500ms"            // default min(500ms, heartbeat_timeout/8); "0s": off
//	}
//
// # Keys file
//
// One key a line: "keyid secret-hex" or "keyid secret-hex ro" for a key
// that only grants reads. Blank lines and lines starting with # are
// skipped. Errors name the file and line.
//
// # Keys and access (cluster mode)
//
// A cluster-mode node accepts (net.KeyStore) and authorizes
// (clustermap.Authorizer) keys from two sources, the keys file first:
//
//	the keys file's cluster_key      the cluster key: node to node; everything
//	its other read-write keys        cluster admin keys: every container's data
//	                                 and metadata, the whole map, the operators'
//	                                 map commands (containers, policies, keys,
//	                                 node states); never raft, peer batches,
//	                                 heartbeats or the nodes' own commands
//	its "ro" keys                    cluster read keys: reads of everything
//	the map's live container keys    their container only, read, write or admin;
//	                                 secret = clustermap.KeySecret(cluster key
//	                                 secret, id), derived here, stored nowhere
//
// The node follows the map (a long poll on the managers) and takes each
// newer map's container keys; a key that stops being live (RevokeKey, or
// its container deleted) is refused by new handshakes at once and the
// server closes the connections authenticated with it (net.Server.
// CloseKey). A key created a moment ago works on a node once that node
// has seen the map that holds it (a long-poll round trip). Every server
// of the node checks each request's key: raft (300), heartbeats (312)
// and peer batches (320) need the cluster key; chunk kinds (256-259) and
// metadata (330-331) a key that reaches the request's container (else
// code 265, access denied, naming the key and the container); read keys
// are refused mutations with the existing read-only codes; map reads
// (310) take any key and give a container key its container only; map
// commands (311) follow clustermap.Grant.MayApply; key secrets (313) are
// for the cluster and admin keys (see package manager).
//
// # Metrics
//
// weft_engine_space_bytes{kind=used|live|free},
// weft_engine_reactor_busy_ratio{shard}, weft_engine_reactor_queue_depth{shard},
// weft_engine_ops_total{shard,op=read|write},
// weft_engine_latency_seconds{shard,op,quantile=0.5|0.99},
// weft_engine_cleaner_relocated_bytes_total{shard},
// weft_net_frames_total{dir=in|out}, weft_net_bytes_total{dir},
// weft_net_requests_in_flight, weft_net_requests_total,
// weft_net_errors_total{class}, and weft_node_info{<labels>} = 1 whose
// label names are the node's labels, sanitised to [a-zA-Z0-9_].
package node
