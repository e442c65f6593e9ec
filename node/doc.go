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
//	  "labels": {"site": "a", "zone": "z1"},
//	  "cluster_id": "c1",
//	  "keys_file": "/etc/weft/keys",
//	  "containers": [1]                // default [1]
//	}
//
// # Keys file
//
// One key a line: "keyid secret-hex" or "keyid secret-hex ro" for a key
// that only grants reads. Blank lines and lines starting with # are
// skipped. Errors name the file and line.
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
