package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/weftfs/weft/fsproto/manager"
	"github.com/weftfs/weft/node"
)

// newRecoverManagerCmd returns `weft node recover-manager`: the offline,
// unsafe recovery of the managers' group (the cluster map) when a
// majority of its members lost their raft logs (manager.ForceSoleMember).
// It sets *status: 0 when done (or shown, without --yes), 1 on a failure,
// 2 on bad flags.
func newRecoverManagerCmd(status *int) *cobra.Command {
	var device, dir string
	var id uint64
	var yes bool
	cmd := &cobra.Command{
		Use:   "recover-manager --manager-id N (--device PATH | --manager-dir DIR) [--yes]",
		Short: "Make a stopped node's manager member the only voter of the managers' group, when a majority lost their raft logs (unsafe)",
		Long: `weft node recover-manager rewrites a manager member's raft log so that,
when its node starts again, the member is the managers' group's only voter:
it elects itself with the cluster map its log holds, and then adds the other
members of --manager-peers back as new members, which copy its state.

It is the way out when a majority of the manager members lost their raft
logs for good (replaced disks). Such members do not start an empty cluster
map: a member whose log is empty waits until every member answers, and one
that the group counts as a voter waits for the leader to add it back, so
without a majority of logs the group stays down (the nodes' logs say
why). It is unsafe: what only the lost members held is gone, and what only
this member held counts as committed. Stop the node first. Run it on one
node only, the one whose log goes furthest (the highest last index: compare
the dry runs), and only when no other member that holds a log will run
again.

Without --yes it only shows what it would do.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			*status = recoverManager(os.Stdout, os.Stderr, id, device, dir, yes)
			return nil
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&id, "manager-id", 0, "the member's id (the node's --manager-id)")
	f.StringVar(&device, "device", "", "the node's device: its manager log is beside it (DEVICE.manager, as weft node uses)")
	f.StringVar(&dir, "manager-dir", "", "the member's raft log folder, when the node was given --manager-dir")
	f.BoolVar(&yes, "yes", false, "write the log; without it, only show what would be done")
	return cmd
}

func recoverManager(out, errOut io.Writer, id uint64, device, dir string, yes bool) int {
	var probs []string
	if id == 0 {
		probs = append(probs, "--manager-id is required: the member's id, as the node's --manager-id")
	}
	switch {
	case device == "" && dir == "":
		probs = append(probs, "--device or --manager-dir is required: where the member's raft log is")
	case device != "" && dir != "":
		probs = append(probs, "--device and --manager-dir both given: the log is in --manager-dir, or beside --device; give one")
	}
	if len(probs) > 0 {
		for _, p := range probs {
			fmt.Fprintf(errOut, "weft node recover-manager: %s\n", p)
		}
		return 2
	}
	if dir == "" {
		dir = node.DefaultManagerDir(device)
	}
	res, err := manager.ForceSoleMember(nil, dir, id, !yes, nil)
	if err != nil {
		fmt.Fprintf(errOut, "weft node recover-manager: %v\n", err)
		return 1
	}
	reportForce(out, fmt.Sprintf("manager member %d (%s)", id, dir), id, res, yes,
		"start the node: its member leads the managers' group alone, and adds the other members back")
	return 0
}
