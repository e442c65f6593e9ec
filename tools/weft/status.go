package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftfs/weft/internal/localcluster"
)

// newStatusCmd returns `weft status`, which prints a cluster's map (nodes,
// containers, PGs by state) and each node's backfill progress. It reaches
// the cluster of a `weft up` folder, or any cluster given its managers and
// a key.
func newStatusCmd(ctx context.Context, status *int) *cobra.Command {
	var (
		dir, managers, clusterID, keyID, secretHex string
		timeout                                    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status [--dir .weft | --managers A,B,C --cluster-id ID --key-id K --key-secret HEX]",
		Short: "Show a cluster's nodes, containers, PG states and backfills",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var acc localcluster.Access
			if cmd.Flags().Changed("managers") {
				secret, err := hex.DecodeString(secretHex)
				var probs []string
				if err != nil || len(secret) == 0 {
					probs = append(probs, "--key-secret: want the key's secret in hex")
				}
				if clusterID == "" {
					probs = append(probs, "--cluster-id: missing")
				}
				if keyID == "" {
					probs = append(probs, "--key-id: missing")
				}
				if len(splitList(managers)) == 0 {
					probs = append(probs, "--managers: want host:port,host:port,...")
				}
				if len(probs) > 0 {
					*status = 2
					for _, p := range probs {
						fmt.Fprintln(os.Stderr, p)
					}
					return nil
				}
				acc = localcluster.Access{Managers: splitList(managers), ClusterID: clusterID, KeyID: keyID, Secret: secret}
			} else {
				self, err := os.Executable()
				if err != nil {
					self = "weft"
				}
				if _, err := os.Stat(dir); err != nil {
					*status = 2
					fmt.Fprintf(os.Stderr, "weft status: no cluster folder %s (run weft up, or give --managers and a key)\n", dir)
					return nil
				}
				c, err := localcluster.Open(localcluster.Config{Dir: dir, Binary: self})
				if err != nil {
					*status = 1
					fmt.Fprintln(os.Stderr, "weft status:", err)
					return nil
				}
				acc = c.Access()
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
				fmt.Fprintln(os.Stderr, "weft status:", err)
				return nil
			}
			r.Print(os.Stdout)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", ".weft", "folder of a weft up cluster")
	f.StringVar(&managers, "managers", "", "the manager group's addresses, comma-separated (instead of --dir)")
	f.StringVar(&clusterID, "cluster-id", "", "the cluster's id (with --managers)")
	f.StringVar(&keyID, "key-id", "", "access key id (with --managers)")
	f.StringVar(&secretHex, "key-secret", "", "access key secret in hex (with --managers)")
	f.DurationVar(&timeout, "timeout", 15*time.Second, "give up reading the map after this long")
	return cmd
}
