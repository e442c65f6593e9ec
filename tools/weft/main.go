// Command weft is the single binary of the weft file system: `weft node`
// (a storage node, in cluster mode also a manager member), `weft up` (a
// local cluster of nodes), `weft status` (a cluster's map and backfills),
// `weft bench` (the fio-style benchmark harness), `weft format` and
// `weft iobackend`.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weftfs/weft/bench"
	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/internal/vfs"
	"github.com/weftfs/weft/ioring"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal cancels ctx: a run stops issuing I/O, waits for
	// what is in flight and reports. Then the default action is back, so
	// a second signal ends a run stuck waiting for I/O that never ends.
	go func() {
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	status := 0
	root := &cobra.Command{
		Use:           "weft",
		Short:         "weft: a replicated file system for flash",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	benchCmd := &cobra.Command{
		Use:   "bench [fio options] [JOBFILE] [file:PATH | engine:PATH]",
		Short: "Run fio-style benchmark jobs (weft bench --help for the options)",
		// fio's option spelling (--rw=randread, bare --time_based, --name
		// starting a new job) is parsed by package bench, not by cobra.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			// WEFT_CPUPROFILE=FILE writes a CPU profile of the run, for
			// finding where a client-side benchmark spends its time (the
			// node serves its own under --metrics-listen); WEFT_TRACE=FILE
			// a runtime/trace: where the client's goroutines wait.
			stopProfile, err := recordTo("WEFT_CPUPROFILE", pprof.StartCPUProfile, pprof.StopCPUProfile)
			if err != nil {
				return err
			}
			defer stopProfile()
			stopTrace, err := recordTo("WEFT_TRACE", trace.Start, trace.Stop)
			if err != nil {
				return err
			}
			defer stopTrace()
			status = bench.Main(ctx, args, version, os.Stdout, os.Stderr)
			return nil
		},
	}
	ioCmd := &cobra.Command{
		Use:   "iobackend",
		Short: "Report the I/O backend and the io_uring features of this kernel",
		RunE: func(cmd *cobra.Command, args []string) error {
			f := ioring.Detect()
			r, err := ioring.New(ioring.Options{Entries: 8})
			if err != nil {
				return err
			}
			defer r.Close()
			fmt.Printf("backend: %s\n", r.Describe())
			if !f.Available {
				fmt.Printf("io_uring: unavailable: %v\n", f.Err)
				return nil
			}
			fmt.Printf("io_uring: SQPOLL=%v SINGLE_ISSUER=%v COOP_TASKRUN=%v DEFER_TASKRUN=%v EXT_ARG=%v NODROP=%v\n",
				f.SQPoll, f.SingleIssuer, f.CoopTaskrun, f.DeferTaskrun, f.ExtArg, f.NoDrop)
			return nil
		},
	}
	var (
		fmtSize, fmtSegment string
		fmtPLP, fmtForce    bool
	)
	formatCmd := &cobra.Command{
		Use:   "format [flags] PATH",
		Short: "Format a block device or file as a weft device (writes both superblock copies)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := engine.FormatRequest{Path: args[0], Force: fmtForce, Options: engine.FormatOptions{PLP: fmtPLP}}
			var probs []string
			if fmtSize != "" {
				n, err := bench.ParseSize(fmtSize)
				if err != nil || n <= 0 {
					probs = append(probs, fmt.Sprintf("--size=%s: want a size such as 10g", fmtSize))
				}
				req.Size = n
			}
			if fmtSegment != "" {
				n, err := bench.ParseSize(fmtSegment)
				if err != nil || n <= 0 || n > 1<<30 {
					probs = append(probs, fmt.Sprintf("--segment-size=%s: want a power of two from 1m to 1g", fmtSegment))
				}
				req.Options.SegmentSize = uint32(n)
			}
			if len(probs) > 0 {
				status = 2
				fmt.Fprintln(os.Stderr, strings.Join(probs, "\n"))
				return nil
			}
			sb, err := engine.Format(vfs.Default, req)
			if err != nil {
				status = 2
				fmt.Fprintln(os.Stderr, err)
				return nil
			}
			fmt.Printf("formatted %s: weft device %s, %d segments of %d MiB, checkpoint area %d MiB, plp=%v\n",
				args[0], sb.UUID, sb.SegmentCount, sb.SegmentSize>>20, sb.CheckpointSize>>20, sb.PLP)
			return nil
		},
	}
	formatCmd.Flags().StringVar(&fmtSize, "size", "", "create a missing file of this size (e.g. 10g)")
	formatCmd.Flags().StringVar(&fmtSegment, "segment-size", "", "segment size, a power of two from 1m to 1g (default 32m)")
	formatCmd.Flags().BoolVar(&fmtPLP, "plp", false, "the device is power-loss protected: writes may skip flushes")
	formatCmd.Flags().BoolVar(&fmtForce, "force", false, "overwrite an existing weft device")
	var (
		metaFiles, metaJobs int
		metaJSON            string
	)
	metaCmd := &cobra.Command{
		Use:   "metabench [--files N] [--jobs J] [--json FILE] DIR | weft://MANAGER[,MANAGER...]/CONTAINER",
		Short: "Create, stat and unlink N empty files in one directory, one at a time, and report ops/s and latency",
		Long: `weft metabench times the metadata operations of the peer comparison: it makes
a fresh directory in the target, creates --files empty files in it (open with
O_CREAT|O_EXCL, then close), stats each, unlinks each, and removes the
directory, one operation at a time (--jobs runs several at once). The target is a directory of any file
system (a weft or MooseFS mount, or a local one), or a container reached
through the native file client: weft://MANAGERS/CONTAINER, with the credentials
in WEFT_CLUSTER_ID, WEFT_KEY_ID and WEFT_KEY_SECRET. --json writes the figures
in the peer kit's meta-bench.py format.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			status = bench.MetaMain(ctx, args[0], metaFiles, metaJobs, metaJSON, os.Stdout, os.Stderr)
			return nil
		},
	}
	metaCmd.Flags().IntVar(&metaFiles, "files", 10000, "number of files")
	metaCmd.Flags().IntVar(&metaJobs, "jobs", 1, "operations at once (file i is job i mod jobs's)")
	metaCmd.Flags().StringVar(&metaJSON, "json", "", "also write the results as JSON to this file")
	root.AddCommand(benchCmd, ioCmd, formatCmd, metaCmd)
	nodeCmd := newNodeCmd(ctx, &status)
	nodeCmd.AddCommand(
		newNodeStateCmd(ctx, &status, "drain", clustermap.Draining, "Move a node's data to other nodes (it keeps serving until replacements caught up)"),
		newNodeStateCmd(ctx, &status, "undrain", clustermap.Up, "Cancel a drain: the node is an ordinary Up node again"),
		newNodeStateCmd(ctx, &status, "out", clustermap.Out, "Remove a node for good: its PGs and metadata group members are replaced"),
		newRecoverMetaCmd(&status), newRecoverManagerCmd(&status), newRemoveManagerCmd(ctx, &status))
	root.AddCommand(nodeCmd, newUpCmd(ctx, &status), newStatusCmd(ctx, &status))
	root.AddCommand(newMountCmd(ctx, &status))
	root.AddCommand(newContainerCmd(ctx, &status), newKeyCmd(ctx, &status))
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "weft:", err)
		return 2
	}
	return status
}

// recordTo starts a recording (a profile, a trace) into the file that the
// environment variable env names, if it is set. The returned function
// stops the recording and closes the file.
func recordTo(env string, start func(io.Writer) error, stop func()) (func(), error) {
	path := os.Getenv(env)
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", env, err)
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", env, err)
	}
	return func() {
		stop()
		f.Close()
	}, nil
}
