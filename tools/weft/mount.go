package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftfs/weft/bench"
	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/mount"
	"github.com/weftfs/weft/internal/localcluster"
)

// mountSpec is what to mount where.
type mountSpec struct {
	access    localcluster.Access
	container string
	dir       string
	opts      mount.Options
	// writeBehind bounds the bytes of writes a write(2) leaves in
	// flight (client.WithWriteBehind; 0: write-through).
	writeBehind int64
}

// defaultWriteBehind is the mount's write-behind bound: a write(2)
// returns before its bytes are durable (POSIX asks for that at fsync),
// with up to this much in flight. More does not help: 1 MiB sequential
// writes at iodepth 8 through a weft up mount ran at 110, 104, 100, 96
// and 60 MiB/s with 4, 8, 16, 32 and 64 MiB in flight (101 MiB/s
// write-through), while 4 KiB writes are bounded by the 64 writes.
const defaultWriteBehind = "8m"

// parseWriteBehind parses a --write-behind value, or says what is wrong
// with it.
func parseWriteBehind(s string) (int64, string) {
	n, err := bench.ParseSize(s)
	if err != nil {
		return 0, fmt.Sprintf("--write-behind=%s: want a size such as 8m, or 0 for none", s)
	}
	return n, ""
}

func newMountCmd(ctx context.Context, status *int) *cobra.Command {
	var (
		keyStr, clusterID, dir, cache string
		writeBehind                   string
		readOnly, allowOther, debug   bool
	)
	cmd := &cobra.Command{
		Use:   "mount [flags] MANAGERS/CONTAINER MOUNTPOINT | --dir .weft [CONTAINER] MOUNTPOINT",
		Short: "Mount a container with FUSE (foreground; Ctrl-C unmounts)",
		Long: `weft mount serves a data container at MOUNTPOINT (an existing directory)
through FUSE, in the foreground, until Ctrl-C or SIGTERM, which unmount it (or
until someone runs fusermount3 -u MOUNTPOINT).

MANAGERS is ADDR[,ADDR...]: the manager group's members (any node of a weft up
cluster). The key is --key ID:SECRETHEX or $WEFT_KEY; the cluster id is
--cluster-id or $WEFT_CLUSTER_ID. With --dir, the managers, cluster id and admin
key come from a weft up folder, and CONTAINER defaults to its container.

Caching (--cache): strict (default) caches names and attributes for 1 s and the
page cache between opens; every open revalidates, so an open after another
client's close or fsync sees its writes (close-to-open). none caches nothing
(direct I/O): every read and stat asks the cluster.

Writes (--write-behind): a write(2) returns once its bytes are on their way to
the cluster, with up to --write-behind bytes (and 64 writes) in flight; fsync(2)
and close(2) wait for them and report a failed one, as a local file system
reports writeback errors. Data is durable when fsync returns, as POSIX says.
--write-behind=0 makes each write(2) wait until its bytes are durable on every
replica.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, probs, err := mountArgs(cmd, args, keyStr, clusterID, dir)
			if c, cerr := mount.ParseCache(cache); cerr != nil {
				probs = append(probs, fmt.Sprintf("--cache=%s: want strict or none", cache))
			} else {
				spec.opts.Cache = c
			}
			if n, prob := parseWriteBehind(writeBehind); prob != "" {
				probs = append(probs, prob)
			} else {
				spec.writeBehind = n
			}
			switch {
			case len(probs) > 0:
				*status = 2
				for _, p := range probs {
					fmt.Fprintln(os.Stderr, "weft mount:", p)
				}
				return nil
			case err != nil:
				*status = 1
				fmt.Fprintln(os.Stderr, "weft mount:", err)
				return nil
			}
			spec.opts.ReadOnly, spec.opts.AllowOther, spec.opts.Debug = readOnly, allowOther, debug
			// A closed terminal (SIGHUP) unmounts too, rather than
			// killing the process and leaving a dead mount behind.
			ctx, stop := signal.NotifyContext(ctx, syscall.SIGHUP)
			defer stop()
			if err := serveMount(ctx, spec, os.Stdout); err != nil {
				*status = 1
				fmt.Fprintln(os.Stderr, "weft mount:", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyStr, "key", "", "access key ID:SECRETHEX (default $WEFT_KEY)")
	f.StringVar(&clusterID, "cluster-id", "", "the cluster's id (default $WEFT_CLUSTER_ID)")
	f.StringVar(&dir, "dir", "", "take managers, cluster id and key from this weft up folder")
	f.StringVar(&cache, "cache", "strict", "caching: strict (close-to-open) or none (direct I/O)")
	f.StringVar(&writeBehind, "write-behind", defaultWriteBehind, "bytes of writes in flight behind write(2) (0: each write waits until durable)")
	f.BoolVar(&readOnly, "read-only", false, "mount read-only")
	f.BoolVar(&allowOther, "allow-other", false, "let other users use the mount (root, or user_allow_other in /etc/fuse.conf)")
	f.BoolVar(&debug, "debug", false, "log every FUSE request")
	return cmd
}

// mountArgs resolves the command line into a mountSpec, or the problems
// with it (exit status 2), or an error reading a weft up folder.
func mountArgs(cmd *cobra.Command, args []string, keyStr, clusterID, dir string) (mountSpec, []string, error) {
	var spec mountSpec
	var probs []string
	if dir != "" {
		if _, err := os.Stat(dir); err != nil {
			return spec, []string{fmt.Sprintf("--dir %s: no weft up folder there (%v)", dir, err)}, nil
		}
		self, err := os.Executable()
		if err != nil {
			self = "weft"
		}
		lc, err := localcluster.Open(localcluster.Config{Dir: dir, Binary: self})
		if err != nil {
			return spec, nil, err
		}
		spec.access = lc.Access()
		spec.container = lc.State().Container
		spec.dir = args[len(args)-1]
		if len(args) == 2 {
			spec.container = args[0]
		}
		if cmd.Flags().Changed("key") {
			k, err := client.ParseKey(keyStr)
			if err != nil {
				return spec, []string{fmt.Sprintf("--key: %v", err)}, nil
			}
			spec.access.KeyID, spec.access.Secret = k.ID, k.Secret
		}
	} else {
		if len(args) != 2 {
			return spec, []string{"want MANAGERS/CONTAINER MOUNTPOINT (or --dir FOLDER [CONTAINER] MOUNTPOINT)"}, nil
		}
		managers, container, ok := strings.Cut(args[0], "/")
		if !ok || container == "" || len(splitList(managers)) == 0 {
			probs = append(probs, fmt.Sprintf("%q: want ADDR[,ADDR...]/CONTAINER", args[0]))
		}
		spec.access.Managers, spec.container, spec.dir = splitList(managers), container, args[1]
		if clusterID == "" {
			clusterID = os.Getenv("WEFT_CLUSTER_ID")
		}
		if clusterID == "" {
			probs = append(probs, "--cluster-id (or $WEFT_CLUSTER_ID): missing")
		}
		spec.access.ClusterID = clusterID
		src := "--key"
		if keyStr == "" {
			keyStr, src = os.Getenv("WEFT_KEY"), "$WEFT_KEY"
		}
		if keyStr == "" {
			probs = append(probs, "--key ID:SECRETHEX (or $WEFT_KEY): missing")
		} else if k, err := client.ParseKey(keyStr); err != nil {
			probs = append(probs, fmt.Sprintf("%s: %v", src, err))
		} else {
			spec.access.KeyID, spec.access.Secret = k.ID, k.Secret
		}
	}
	if cmd.Flags().Changed("cluster-id") && dir != "" {
		spec.access.ClusterID = clusterID
	}
	spec.opts.Name = "weft:" + spec.container
	return spec, probs, nil
}

// mounted is a running mount and what it holds open.
type mounted struct {
	m    *mount.Mount
	fsys *client.FS
	c    *client.Client
	spec mountSpec
}

// startMount dials the cluster, opens the container and mounts it.
// Nothing stays behind when it fails.
func startMount(ctx context.Context, spec mountSpec) (*mounted, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	key := client.Key{ID: spec.access.KeyID, Secret: spec.access.Secret}
	opts := []client.Option{client.WithWriteBehind(spec.writeBehind)}
	if spec.opts.ReadOnly {
		opts = append(opts, client.WithReadOnly())
	}
	c, err := client.DialCluster(dctx, spec.access.ClusterID, spec.access.Managers, key, opts...)
	if err != nil {
		return nil, fmt.Errorf("reach cluster %s at %s: %w", spec.access.ClusterID, strings.Join(spec.access.Managers, ","), err)
	}
	fsys, err := c.OpenContainer(dctx, spec.container, key, opts...)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("open container %q: %w", spec.container, err)
	}
	m, err := mount.Start(c, fsys, spec.dir, spec.opts)
	if err != nil {
		fsys.Close()
		c.Close()
		return nil, err
	}
	return &mounted{m: m, fsys: fsys, c: c, spec: spec}, nil
}

func (mt *mounted) describe() string {
	mode := "read-write"
	if mt.spec.opts.ReadOnly {
		mode = "read-only"
	}
	return fmt.Sprintf("container %q of cluster %s mounted at %s (%s, cache %v, key %s)",
		mt.spec.container, mt.spec.access.ClusterID, mt.m.Dir(), mode, mt.spec.opts.Cache, mt.spec.access.KeyID)
}

// stop unmounts (detaching lazily when files are still open, then giving
// their holders up to lazyWait to close them) and closes the container
// and the client.
func (mt *mounted) stop(out io.Writer, lazyWait time.Duration) error {
	err := mt.m.Unmount()
	if errors.Is(err, mount.ErrBusy) {
		fmt.Fprintf(out, "weft mount: %s is busy (files open there); detaching it now, open files keep working for up to %v\n", mt.m.Dir(), lazyWait)
		err = mt.m.UnmountLazy()
		if err == nil && !mt.m.Wait(lazyWait) {
			err = fmt.Errorf("files on %s still open after %v; their opens stay counted until the servers expire them", mt.m.Dir(), lazyWait)
		}
	}
	if cerr := mt.fsys.Close(); err == nil && cerr != nil {
		err = cerr
	}
	mt.c.Close()
	return err
}

// serveMount mounts spec and serves it until ctx ends (unmounting then)
// or the mount is unmounted from outside.
func serveMount(ctx context.Context, spec mountSpec, out io.Writer) error {
	mt, err := startMount(ctx, spec)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "weft mount: %s\n  try: ls %s; Ctrl-C (or fusermount3 -u %s) unmounts\n", mt.describe(), mt.m.Dir(), mt.m.Dir())
	select {
	case <-ctx.Done():
		fmt.Fprintf(out, "weft mount: unmounting %s\n", mt.m.Dir())
	case <-mt.m.Done():
		fmt.Fprintf(out, "weft mount: %s was unmounted\n", mt.m.Dir())
	}
	return mt.stop(out, 30*time.Second)
}
