package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftfs/weft/bench"
	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto/mount"
	"github.com/weftfs/weft/internal/localcluster"
	"github.com/weftfs/weft/node"
)

func newUpCmd(ctx context.Context, status *int) *cobra.Command {
	var (
		cfg                                                              localcluster.Config
		size                                                             string
		startupDeadline                                                  time.Duration
		mountDir, cache, recordSize, readCache, mode, conns, forgetAfter string
		writeBehind                                                      string
	)
	cmd := &cobra.Command{
		Use:   "up [flags]",
		Short: "Run a local cluster: N weft nodes on 127.0.0.x, devices as sparse files, one container",
		Long: `weft up runs a local cluster for development and tests: --nodes processes of
weft node, each a storage node and a member of the manager group, listening on
127.0.0.1, 127.0.0.2, ... at --port, with a sparse file device of --size under
--dir. The first run creates the folder, the keys and the "default" container
(replication --replicas); later runs start the same cluster again with its data.
With --mount DIR, the container is mounted at DIR (made if missing) once the
cluster serves, as weft mount would. Ctrl-C (SIGINT) or SIGTERM unmounts it, then
stops every node cleanly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := bench.ParseSize(size)
			if err != nil || n < 64<<20 {
				*status = 2
				fmt.Fprintf(os.Stderr, "--size=%s: want a size of at least 64m, such as 8g\n", size)
				return nil
			}
			cfg.DeviceSize = n
			// Nodes get SIGTERM if this process dies without stopping
			// them (SIGKILL), instead of holding the ports.
			cfg.StopWithParent = true
			if cfg.Binary, err = os.Executable(); err != nil {
				*status = 1
				fmt.Fprintln(os.Stderr, "weft up:", err)
				return nil
			}
			if recordSize != "" {
				n, err := bench.ParseSize(recordSize)
				if err != nil || !engine.ValidRecordBytes(n) {
					*status = 2
					fmt.Fprintf(os.Stderr, "--record-size=%s: want a multiple of 4k from 4k to 1m\n", recordSize)
					return nil
				}
				cfg.ExtraArgs = append(cfg.ExtraArgs, "--record-size", fmt.Sprint(n))
			}
			if readCache != "" {
				n, err := bench.ParseSize(readCache)
				if err != nil {
					*status = 2
					fmt.Fprintf(os.Stderr, "--read-cache=%s: want a size such as 256m, or 0 for none\n", readCache)
					return nil
				}
				cfg.ExtraArgs = append(cfg.ExtraArgs, "--read-cache", fmt.Sprint(n))
			}
			if mode != "" {
				if _, err := engine.ParsePollMode(mode); err != nil {
					*status = 2
					fmt.Fprintf(os.Stderr, "--mode=%s: want poll, hybrid or interrupt\n", mode)
					return nil
				}
				cfg.ExtraArgs = append(cfg.ExtraArgs, "--mode", mode)
			}
			if conns != "" {
				if conns != node.ConnsReactors && conns != node.ConnsGoroutines {
					*status = 2
					fmt.Fprintf(os.Stderr, "--conns=%s: want %s or %s\n", conns, node.ConnsReactors, node.ConnsGoroutines)
					return nil
				}
				cfg.ExtraArgs = append(cfg.ExtraArgs, "--conns", conns)
			}
			if forgetAfter != "" {
				if _, err := node.ParseForgetAfter(forgetAfter); err != nil {
					*status = 2
					fmt.Fprintf(os.Stderr, "--forget-tombstones-after=%s: %v\n", forgetAfter, err)
					return nil
				}
				cfg.ExtraArgs = append(cfg.ExtraArgs, "--forget-tombstones-after", forgetAfter)
			}
			mc, err := mount.ParseCache(cache)
			if err != nil {
				*status = 2
				fmt.Fprintf(os.Stderr, "--cache=%s: want strict or none\n", cache)
				return nil
			}
			wb, prob := parseWriteBehind(writeBehind)
			if prob != "" {
				*status = 2
				fmt.Fprintln(os.Stderr, prob)
				return nil
			}
			if err := runUp(ctx, cfg, startupDeadline, mountDir, mountSpec{opts: mount.Options{Cache: mc}, writeBehind: wb}); err != nil {
				*status = 1
				fmt.Fprintln(os.Stderr, "weft up:", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Dir, "dir", ".weft", "folder of the cluster's devices, keys and logs")
	f.IntVar(&cfg.Nodes, "nodes", 3, "number of nodes (first run only)")
	f.IntVar(&cfg.Port, "port", 7070, "port of every node on its 127.0.0.N address (metrics on port+1; first run only)")
	f.StringVar(&size, "size", "8g", "size of each node's sparse device file (first run only)")
	f.IntVar(&cfg.Replicas, "replicas", 3, "replication factor of the default container (first run only)")
	f.DurationVar(&startupDeadline, "startup-timeout", 90*time.Second, "how long to wait for the cluster to serve")
	f.StringVar(&mountDir, "mount", "", "mount the container at this folder (made if missing) while the cluster runs")
	f.StringVar(&cache, "cache", "strict", "caching of the --mount: strict (close-to-open) or none (direct I/O)")
	f.StringVar(&writeBehind, "write-behind", defaultWriteBehind, "bytes of writes in flight behind write(2) on the --mount (0: each write waits until durable)")
	f.StringVar(&readCache, "read-cache", "", "every node's --read-cache: memory for data small reads fetched, served again from there (default none)")
	f.StringVar(&mode, "mode", "", "every node's reactor polling mode: poll, hybrid or interrupt (default hybrid)")
	f.StringVar(&forgetAfter, "forget-tombstones-after", "", "every node's --forget-tombstones-after: how old a deleted chunk's tombstone must be before it is forgotten (default 10m; off: keep them)")
	f.StringVar(&conns, "conns", "", "every node's --conns: who serves connections, reactors or goroutines (default goroutines in a cluster; reactors is experimental there)")
	f.StringVar(&recordSize, "record-size", "", "every node's --record-size: the largest record a write is stored as (default 16k; 4k reads fastest, costs the most index memory)")
	return cmd
}

// runUp starts the cluster, waits until it serves, mounts its container
// at mountDir (if not ""), prints how to use it, and stops it when ctx
// ends or a node exits: the mount first, then the nodes.
// The mount takes its caching and write-behind from how (its access,
// container and folder come from the cluster).
func runUp(ctx context.Context, cfg localcluster.Config, startupDeadline time.Duration, mountDir string, how mountSpec) error {
	c, err := localcluster.Open(cfg)
	if err != nil {
		return err
	}
	st := c.State()
	fmt.Printf("weft up: cluster %s in %s, %d nodes\n", st.ClusterID, cfg.Dir, len(st.Nodes))
	if err := c.Start(); err != nil {
		_ = c.Stop(20 * time.Second)
		return err
	}
	for _, n := range st.Nodes {
		fmt.Printf("  node %d: %s (metrics http://%s/metrics, log %s)\n", n.Index, n.Addr, n.Metrics, c.LogFile(n.Index))
	}
	ready, cancel := context.WithTimeout(ctx, startupDeadline)
	err = c.WaitServing(ready, os.Stdout)
	cancel()
	if err != nil {
		stopErr := c.Stop(20 * time.Second)
		if ctx.Err() != nil {
			return stopErr
		}
		return fmt.Errorf("%w (node logs: %s/nodeN/log)", err, cfg.Dir)
	}
	var mt *mounted
	if mountDir != "" {
		if mt, err = upMount(ctx, c, mountDir, how); err != nil {
			fmt.Fprintf(os.Stderr, "weft up: %v\nweft up: the cluster keeps running without the mount\n", err)
		}
	}
	printUpHelp(c, cfg.Dir, mt)
	unmount := func() {
		if mt == nil {
			return
		}
		fmt.Printf("weft up: unmounting %s\n", mt.m.Dir())
		if err := mt.stop(os.Stdout, 10*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, "weft up:", err)
		}
	}
	var gone <-chan struct{}
	if mt != nil {
		gone = mt.m.Done()
	}
	wctx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	go func() {
		select {
		case <-gone: // unmounted from outside: the cluster keeps running
			fmt.Printf("weft up: %s was unmounted; the cluster keeps running\n", mt.m.Dir())
		case <-wctx.Done():
		}
	}()
	if i := c.Wait(ctx); i != 0 {
		_, exitErr, _ := c.Exited(i)
		fmt.Fprintf(os.Stderr, "weft up: node %d exited (%v); stopping the others (log: %s)\n", i, exitErr(), c.LogFile(i))
		unmount()
		_ = c.Stop(20 * time.Second)
		return fmt.Errorf("node %d exited", i)
	}
	unmount()
	fmt.Println("weft up: stopping the nodes")
	return c.Stop(20 * time.Second)
}

// upMount mounts the cluster's container at dir with the admin key.
func upMount(ctx context.Context, c *localcluster.Cluster, dir string, how mountSpec) (*mounted, error) {
	// Only a missing folder is made: a dead mount left by a killed weft
	// up fails even to stat (ENOTCONN), and mount.Start heals it.
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("mount point: %w", err)
		}
	}
	st := c.State()
	spec := mountSpec{access: c.Access(), container: st.Container, dir: dir,
		opts: mount.Options{Cache: how.opts.Cache, Name: "weft:" + st.Container}, writeBehind: how.writeBehind}
	return startMount(ctx, spec)
}

func printUpHelp(c *localcluster.Cluster, dir string, mt *mounted) {
	st := c.State()
	secret := hex.EncodeToString(c.AdminSecret())
	managers := strings.Join(c.Managers(), ",")
	fmt.Printf(`
weft up: cluster %s is serving; container %q with replication %d.
  key:     %s %s   (every key: %s)
  status:  weft status --dir %s
  bench:   WEFT_CLUSTER_ID=%s WEFT_KEY_ID=%s WEFT_KEY_SECRET=%s \
             weft bench --rw=randwrite --bs=4k --size=64m --runtime=10s weft://%s/%s
`, st.ClusterID, st.Container, st.Replicas, localcluster.AdminKey, secret, c.KeysFile(),
		dir, st.ClusterID, localcluster.AdminKey, secret, managers, st.Container)
	if mt != nil {
		rel := mt.spec.dir
		fmt.Printf(`  mounted: %s
  try:     ls %s; cp README.md %s/; cat %s/README.md
           weft bench --rw=randrw --bs=4k --size=64m --runtime=10s file:%s/bench.dat
  mount elsewhere too: weft mount --dir %s /some/empty/dir
`, mt.describe(), rel, rel, rel, rel, dir)
	} else {
		fmt.Printf("  mount:   weft mount --dir %s /some/empty/dir\n", dir)
	}
	stop := "Ctrl-C"
	if mt != nil {
		stop = "Ctrl-C unmounts, then stops the nodes"
	}
	fmt.Printf("  stop:    %s (the data stays in %s; weft up again brings it back)\n", stop, dir)
}
