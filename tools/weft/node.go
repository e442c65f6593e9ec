package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftfs/weft/bench"
	"github.com/weftfs/weft/node"
)

// newNodeCmd returns `weft node`, which serves one engine with the chunk
// protocol until ctx is cancelled (SIGINT, SIGTERM). It sets *status: 0
// on a clean stop, 1 on a runtime error, 2 on bad flags or config (one
// problem a line on stderr).
func newNodeCmd(ctx context.Context, status *int) *cobra.Command {
	cmd := newNodeRunCmd(ctx, status, false)
	cmd.AddCommand(newNodeRunCmd(ctx, status, true))
	return cmd
}

// newNodeRunCmd returns `weft node` or, with join, `weft node join
// MANAGERS`: the same node with the managers given as the argument, for
// an operator adding a node to a running cluster (it joins the map on
// start, as every cluster-mode node does, and is a member from then on).
func newNodeRunCmd(ctx context.Context, status *int, join bool) *cobra.Command {
	var (
		configFile, size, cores, recordSize, readCache string
		managers, managerPeers                         string
		readLease                                      string
		retireAfter, forgetAfter                       string
		labels                                         []string
		containers                                     []uint
		flagCfg                                        node.Config
	)
	cmd := &cobra.Command{
		Use:   "node [flags]",
		Short: "Serve a weft device over the network with the chunk protocol",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if join {
				if cmd.Flags().Changed("managers") {
					*status = 2
					fmt.Fprintln(os.Stderr, "weft node join: give the managers as the argument, not --managers")
					return nil
				}
				managers = args[0]
			}
			fail := func(probs []string) error {
				*status = 2
				fmt.Fprintln(os.Stderr, strings.Join(probs, "\n"))
				return nil
			}
			var cfg node.Config
			if configFile != "" {
				var err error
				if cfg, err = node.LoadConfigFile(configFile); err != nil {
					return fail([]string{err.Error()})
				}
			}
			var probs []string
			set := cmd.Flags().Changed
			if set("device") {
				cfg.Device = flagCfg.Device
			}
			if set("size") {
				n, err := bench.ParseSize(size)
				if err != nil || n <= 0 {
					probs = append(probs, fmt.Sprintf("--size=%s: want a size such as 64g", size))
				}
				cfg.FormatSize = n
			}
			if set("listen") {
				cfg.Listen = flagCfg.Listen
			}
			if set("metrics-listen") {
				cfg.MetricsListen = flagCfg.MetricsListen
			}
			if set("cores") {
				cfg.Cores = nil
				for _, f := range strings.Split(cores, ",") {
					n, err := strconv.Atoi(strings.TrimSpace(f))
					if err != nil || n < 0 {
						probs = append(probs, fmt.Sprintf("--cores=%s: %q is not a CPU number", cores, f))
						continue
					}
					cfg.Cores = append(cfg.Cores, n)
				}
			}
			if set("shards") {
				cfg.Shards = flagCfg.Shards
			}
			if set("mode") {
				cfg.Mode = flagCfg.Mode
			}
			if set("conns") {
				cfg.Conns = flagCfg.Conns
			}
			if set("read-cache") {
				n, err := bench.ParseSize(readCache)
				if err != nil {
					probs = append(probs, fmt.Sprintf("--read-cache=%s: want a size such as 256m, or 0 for none", readCache))
				} else {
					cfg.ReadCacheBytes = n
				}
			}
			if set("record-size") {
				n, err := bench.ParseSize(recordSize)
				if err != nil || n > math.MaxInt32 {
					probs = append(probs, fmt.Sprintf("--record-size=%s: want a size such as 16k", recordSize))
				} else {
					cfg.RecordBytes = int(n)
				}
			}
			if set("cluster-id") {
				cfg.ClusterID = flagCfg.ClusterID
			}
			if set("keys-file") {
				cfg.KeysFile = flagCfg.KeysFile
			}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					probs = append(probs, fmt.Sprintf("--label=%s: want key=value", l))
					continue
				}
				if cfg.Labels == nil {
					cfg.Labels = make(map[string]string)
				}
				cfg.Labels[k] = v
			}
			if set("container") {
				cfg.Containers = nil
				for _, c := range containers {
					cfg.Containers = append(cfg.Containers, uint64(c))
				}
			}
			if set("managers") || join {
				cfg.Managers = splitList(managers)
			}
			if set("manager-id") {
				cfg.ManagerID = flagCfg.ManagerID
			}
			if set("manager-peers") {
				cfg.ManagerPeers = splitList(managerPeers)
			}
			if set("manager-dir") {
				cfg.ManagerDir = flagCfg.ManagerDir
			}
			if set("cluster-key") {
				cfg.ClusterKey = flagCfg.ClusterKey
			}
			if set("heartbeat-timeout") {
				cfg.HeartbeatTimeout = flagCfg.HeartbeatTimeout
			}
			if set("read-lease") {
				if d, err := node.ParseReadLease(readLease); err != nil {
					probs = append(probs, fmt.Sprintf("--read-lease=%s: %v", readLease, err))
				} else {
					cfg.ReadLease = d
				}
			}
			if set("forget-tombstones-after") {
				if d, err := node.ParseForgetAfter(forgetAfter); err != nil {
					probs = append(probs, fmt.Sprintf("--forget-tombstones-after=%s: %v", forgetAfter, err))
				} else {
					cfg.ForgetAfter = d
				}
			}
			if set("retire-after") {
				if d, err := node.ParseRetireAfter(retireAfter); err != nil {
					probs = append(probs, fmt.Sprintf("--retire-after=%s: %v", retireAfter, err))
				} else {
					cfg.RetireAfter = d
				}
			}
			if err := cfg.Validate(); err != nil {
				probs = append(probs, err.Error())
			}
			if len(probs) > 0 {
				return fail(probs)
			}
			if err := node.Run(ctx, cfg); err != nil {
				*status = 1
				fmt.Fprintln(os.Stderr, "weft node:", err)
			}
			return nil
		},
	}
	if join {
		cmd.Use = "join MANAGERS [flags]"
		cmd.Short = "Start a storage node that joins the cluster whose managers are MANAGERS (ADDR[,ADDR...])"
		cmd.Long = `weft node join runs a storage node in cluster mode, like weft node
--managers MANAGERS: it formats a missing device file (--size), joins the
cluster map with its listen address, labels and capacity, and from then on
serves the placement groups the map gives it (new PGs rebalance onto it by
rendezvous placement, and it backfills them). Run it again, or weft node with
the same device, after a restart: the node keeps its id (from the device's
UUID). weft node drain ID moves its data away before it is retired.`
		cmd.Args = cobra.ExactArgs(1)
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "JSON config file (flags override its values)")
	f.StringVar(&flagCfg.Device, "device", "", "weft device: a block device or a file")
	f.StringVar(&size, "size", "", "create and format a missing file device of this size (e.g. 64g)")
	f.StringVar(&flagCfg.Listen, "listen", node.DefaultListen, "address of the chunk protocol")
	f.StringVar(&flagCfg.MetricsListen, "metrics-listen", "", "address of the Prometheus endpoint /metrics (default off)")
	f.StringVar(&cores, "cores", "", "CPUs to pin the reactors to, e.g. 2,3")
	f.IntVar(&flagCfg.Shards, "shards", 0, "number of reactors (default: one per core, or 1)")
	f.StringVar(&readCache, "read-cache", "", "memory for data small reads fetched, kept to serve them again, e.g. 256m (default none: it pays when data is read again, and costs a little on every miss)")
	f.StringVar(&recordSize, "record-size", "", "largest record a write is stored as, 4k to 1m (default 16k): a small read reads whole records, a smaller record costs index memory")
	f.StringVar(&flagCfg.Mode, "mode", "", "reactor polling mode: poll, hybrid or interrupt (default hybrid)")
	f.StringVar(&flagCfg.Conns, "conns", "", "who serves connections: reactors (the engine's reactors read, start and answer requests) or goroutines (default reactors in single-node mode, goroutines in cluster mode)")
	f.StringArrayVar(&labels, "label", nil, "node label key=value (repeatable; added to the config file's labels), e.g. --label site=a")
	f.StringVar(&flagCfg.ClusterID, "cluster-id", "", "the cluster's id")
	f.StringVar(&flagCfg.KeysFile, "keys-file", "", `access keys, one a line: "keyid secret-hex [ro]"`)
	f.UintSliceVar(&containers, "container", nil, "container this node holds (repeatable; default 1; single-node mode only)")
	f.StringVar(&managers, "managers", "", "cluster mode: the manager group's addresses, comma-separated")
	f.Uint64Var(&flagCfg.ManagerID, "manager-id", 0, "also run a manager group member with this id (cluster mode)")
	f.StringVar(&managerPeers, "manager-peers", "", "the manager group's members for its first start: id=addr,... (this one included)")
	f.StringVar(&flagCfg.ManagerDir, "manager-dir", "", "the manager member's Raft log folder (default DEVICE.manager)")
	f.StringVar(&flagCfg.ClusterKey, "cluster-key", "", `id of the key used between nodes and managers (default "cluster")`)
	f.DurationVar(&flagCfg.HeartbeatTimeout, "heartbeat-timeout", 0, "cluster mode: silence after which the managers mark a node down (default 5s; give every process the same)")
	f.StringVar(&forgetAfter, "forget-tombstones-after", "", "cluster mode: how old a deleted chunk's tombstone must be before the node may forget it; longer than any client retries a write (default 10m; off: keep them)")
	f.StringVar(&retireAfter, "retire-after", "", "cluster mode: how long a PG this node left must live on whole without it before the node deletes its copy (default 5m; off: keep such copies)")
	f.StringVar(&readLease, "read-lease", "", "cluster mode: how long a primary serves reads without asking its replicas again (default 500ms or heartbeat-timeout/8, whichever is less; 0: off, for metadata reads too)")
	return cmd
}

// splitList splits a comma-separated flag value, dropping empty parts.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
