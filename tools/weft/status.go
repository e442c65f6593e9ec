package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/manager"
	"github.com/weftfs/weft/internal/localcluster"
)

// newStatusCmd returns `weft status`, which prints a cluster's map (nodes,
// containers, PGs by state) and each node's backfill progress. It reaches
// the cluster of a `weft up` folder, or any cluster given its managers and
// a key.
// accessFlags are the flags that say how to reach a cluster: a weft up
// folder, or managers and a key.
type accessFlags struct {
	dir, managers, clusterID, keyID, secretHex string
}

func (a *accessFlags) add(f *pflag.FlagSet) {
	f.StringVar(&a.dir, "dir", ".weft", "folder of a weft up cluster")
	f.StringVar(&a.managers, "managers", "", "the manager group's addresses, comma-separated (instead of --dir)")
	f.StringVar(&a.clusterID, "cluster-id", "", "the cluster's id (with --managers)")
	f.StringVar(&a.keyID, "key-id", "", "access key id (with --managers)")
	f.StringVar(&a.secretHex, "key-secret", "", "access key secret in hex (with --managers)")
}

// resolve returns the cluster's Access, or the problems (bad flags: exit
// status 2) or the error (exit status 1) that prevent it.
func (a *accessFlags) resolve(cmd *cobra.Command) (localcluster.Access, []string, error) {
	if cmd.Flags().Changed("managers") {
		secret, err := hex.DecodeString(a.secretHex)
		var probs []string
		if err != nil || len(secret) == 0 {
			probs = append(probs, "--key-secret: want the key's secret in hex")
		}
		if a.clusterID == "" {
			probs = append(probs, "--cluster-id: missing")
		}
		if a.keyID == "" {
			probs = append(probs, "--key-id: missing")
		}
		if len(splitList(a.managers)) == 0 {
			probs = append(probs, "--managers: want host:port,host:port,...")
		}
		return localcluster.Access{Managers: splitList(a.managers), ClusterID: a.clusterID, KeyID: a.keyID, Secret: secret}, probs, nil
	}
	self, err := os.Executable()
	if err != nil {
		self = "weft"
	}
	if _, err := os.Stat(a.dir); err != nil {
		return localcluster.Access{}, []string{fmt.Sprintf("no cluster folder %s (run weft up, or give --managers and a key)", a.dir)}, nil
	}
	c, err := localcluster.Open(localcluster.Config{Dir: a.dir, Binary: self})
	if err != nil {
		return localcluster.Access{}, nil, err
	}
	return c.Access(), nil, nil
}

// newStatusCmd returns `weft status`, which prints a cluster's map (nodes,
// containers, PGs by state) and each node's backfill progress. It reaches
// the cluster of a `weft up` folder, or any cluster given its managers and
// a key.
func newStatusCmd(ctx context.Context, status *int) *cobra.Command {
	var (
		af      accessFlags
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status [--dir .weft | --managers A,B,C --cluster-id ID --key-id K --key-secret HEX]",
		Short: "Show a cluster's nodes, containers, PG states and backfills",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			acc, probs, err := af.resolve(cmd)
			switch {
			case len(probs) > 0:
				*status = 2
				for _, p := range probs {
					fmt.Fprintln(os.Stderr, "weft status:", p)
				}
				return nil
			case err != nil:
				*status = 1
				fmt.Fprintln(os.Stderr, "weft status:", err)
				return nil
			}
			pool, err := acc.Pool()
			if err != nil {
				*status = 1
				fmt.Fprintln(os.Stderr, "weft status:", err)
				return nil
			}
			defer pool.Close()
			ictx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			r, err := localcluster.Inspect(ictx, pool, acc.Managers)
			if err != nil {
				*status = 1
				fmt.Fprintln(os.Stderr, "weft status: reading the cluster map:", err)
				// Without a map the nodes are unknown, but the managers'
				// own nodes can say why their group does not serve.
				mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				localcluster.PrintManagers(os.Stdout, localcluster.InspectManagers(mctx, pool, acc.Managers))
				return nil
			}
			r.Print(os.Stdout)
			return nil
		},
	}
	f := cmd.Flags()
	af.add(f)
	f.DurationVar(&timeout, "timeout", 15*time.Second, "give up reading the map after this long")
	return cmd
}

// newNodeStateCmd returns `weft node drain` or `weft node undrain`: set a
// node's state in the cluster map through the managers.
func newNodeStateCmd(ctx context.Context, status *int, use string, state clustermap.NodeState, short string) *cobra.Command {
	var (
		af      accessFlags
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   use + " NODE-ID [--dir .weft | --managers A,B,C --cluster-id ID --key-id K --key-secret HEX]",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			runIDCommand(ctx, status, cmd, &af, "node "+use, timeout, args[0], "node id %q: want the decimal id weft status prints",
				func(ctx context.Context, mc *manager.Client, id uint64) error {
					m, err := mc.Apply(ctx, clustermap.SetNodeState{ID: clustermap.NodeID(id), State: state})
					switch {
					case errors.Is(err, clustermap.ErrNoChange):
						fmt.Printf("node %d is %v already\n", id, state)
					case err != nil:
						return err
					default:
						fmt.Printf("node %d is %v at map epoch %d; weft status shows its PGs moving\n", id, state, m.Epoch)
					}
					return nil
				})
			return nil
		},
	}
	f := cmd.Flags()
	af.add(f)
	f.DurationVar(&timeout, "timeout", 15*time.Second, "give up after this long")
	return cmd
}

// runIDCommand runs a `weft NAME ID` command that asks the managers one
// thing: it parses arg as a nonzero decimal id (else badID, formatted with
// arg, is a problem), resolves af, and runs body with a manager client
// and the timeout. Problems set *status to 2, a failure of the access or
// of body to 1; each is printed as "weft NAME: ...".
func runIDCommand(ctx context.Context, status *int, cmd *cobra.Command, af *accessFlags, name string, timeout time.Duration,
	arg, badID string, body func(context.Context, *manager.Client, uint64) error) {
	id, perr := strconv.ParseUint(arg, 10, 64)
	acc, probs, err := af.resolve(cmd)
	if perr != nil || id == 0 {
		probs = append(probs, fmt.Sprintf(badID, arg))
	}
	switch {
	case len(probs) > 0:
		*status = 2
		for _, p := range probs {
			fmt.Fprintf(os.Stderr, "weft %s: %s\n", name, p)
		}
		return
	case err != nil:
		*status = 1
		fmt.Fprintf(os.Stderr, "weft %s: %v\n", name, err)
		return
	}
	pool, err := acc.Pool()
	if err != nil {
		*status = 1
		fmt.Fprintf(os.Stderr, "weft %s: %v\n", name, err)
		return
	}
	defer pool.Close()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := body(rctx, manager.NewClient(acc.Managers, pool), id); err != nil {
		*status = 1
		fmt.Fprintf(os.Stderr, "weft %s: %v\n", name, err)
	}
}
