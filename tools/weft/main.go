// Command weft is the single binary of the weft file system. Today it has
// `weft bench`, the fio-style benchmark harness; the node, cluster and
// mount commands arrive with their packages.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weftfs/weft/bench"
	"github.com/weftfs/weft/ioring"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
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
		Use:   "bench [fio options] [JOBFILE] [file:PATH]",
		Short: "Run fio-style benchmark jobs (weft bench --help for the options)",
		// fio's option spelling (--rw=randread, bare --time_based, --name
		// starting a new job) is parsed by package bench, not by cobra.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
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
	root.AddCommand(benchCmd, ioCmd)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "weft:", err)
		return 2
	}
	return status
}
