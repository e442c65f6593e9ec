package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Exit statuses of Main.
const (
	ExitOK    = 0
	ExitError = 1 // a job failed while running
	ExitUsage = 2 // bad options, job file or target: nothing was written
)

// Main is `weft bench`: it parses fio-style args, runs the jobs (or the
// comparison with fio) and prints the report to stdout; problems go to
// stderr. It returns the process exit status.
func Main(ctx context.Context, args []string, version string, stdout, stderr io.Writer) int {
	spec, err := ParseArgs(args)
	if errors.Is(err, ErrHelp) {
		fmt.Fprint(stdout, Usage)
		return ExitOK
	}
	if err != nil {
		return reportErr(stderr, err)
	}
	var progress io.Writer
	switch spec.ETA {
	case "always":
		progress = stderr
	case "", "auto":
		if f, ok := stderr.(*os.File); ok && isTerminal(f) {
			progress = stderr
		}
	}
	if spec.CompareFio {
		return compareMain(ctx, spec, version, stdout, stderr, progress)
	}
	res, err := Run(ctx, spec.Jobs, RunOptions{Progress: progress, Version: version, Log: stderr})
	if res != nil {
		var werr error
		if spec.OutputFormat == "json" {
			werr = res.WriteJSON(stdout)
		} else {
			werr = res.WriteSummary(stdout)
		}
		if werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return reportErr(stderr, err)
	}
	return ExitOK
}

func reportErr(stderr io.Writer, err error) int {
	var ue *UsageError
	if errors.As(err, &ue) {
		for _, p := range ue.Problems {
			fmt.Fprintln(stderr, p)
		}
		return ExitUsage
	}
	fmt.Fprintln(stderr, err)
	return ExitError
}

func compareMain(ctx context.Context, spec *Spec, version string, stdout, stderr, progress io.Writer) int {
	// Lay every target out first, so that fio and weft see the same,
	// fully written file from the first round on.
	if err := Prepare(ctx, spec.Jobs, progress); err != nil {
		return reportErr(stderr, err)
	}
	for _, job := range spec.Jobs {
		cmp := &Compare{
			Job:     job,
			Rounds:  spec.Rounds,
			Out:     stderr,
			FioPath: spec.FioPath,
			RunWeft: func(ctx context.Context, j Job) (*FioOutput, error) {
				res, err := Run(ctx, []Job{j}, RunOptions{Version: version})
				if err != nil {
					return nil, err
				}
				return res.FioJSON(), nil
			},
		}
		cm, err := cmp.Run(ctx)
		if err != nil {
			return reportErr(stderr, err)
		}
		if err := cm.WriteTable(stdout); err != nil {
			return reportErr(stderr, err)
		}
	}
	return ExitOK
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
