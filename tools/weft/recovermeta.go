package main

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/meta"
	"github.com/weftfs/weft/fsproto/raftgroup"
	"github.com/weftfs/weft/internal/vfs"
	"github.com/weftfs/weft/node"
)

// newRecoverMetaCmd returns `weft node recover-meta`: the offline,
// unsafe recovery of a container's metadata group that lost a majority of
// its members' raft logs (meta.ForceSoleMember). It sets *status: 0 when
// done (or shown, without --yes), 1 on a failure, 2 on bad flags.
func newRecoverMetaCmd(status *int) *cobra.Command {
	var device, metaDir string
	var yes bool
	cmd := &cobra.Command{
		Use:   "recover-meta CONTAINER-ID --device PATH [--meta-dir DIR] [--yes]",
		Short: "Make a stopped node's member the only voter of a container's metadata group that lost a majority of its raft logs (unsafe)",
		Long: `weft node recover-meta rewrites this node's raft log of a container's
metadata group so that, when the node starts again, its member is the
group's only voter: it elects itself with the namespace its log holds, and
then adds the container's other metadata members back as new members, which
copy its state.

It is the way out when a majority of the group's members lost their raft
logs for good (replaced disks): such a group never starts an empty
namespace in its place, and stays down instead (weft status shows no
leader; the nodes' logs say why). It is unsafe: what only the lost members
held is gone, and what only this member held counts as committed. Stop the
node first. Run it on one node only, the one whose log goes furthest (the
highest last index: compare the dry runs), and only when no other node
that holds the group's log will run again.

Without --yes it only shows what it would do. CONTAINER-ID is the number
weft status prints before the container's name.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			*status = recoverMeta(os.Stdout, os.Stderr, args[0], device, metaDir, yes)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&device, "device", "", "the node's device (its superblock names the node)")
	f.StringVar(&metaDir, "meta-dir", "", "the node's metadata raft logs (default: the device path + .meta, as weft node uses)")
	f.BoolVar(&yes, "yes", false, "write the log; without it, only show what would be done")
	return cmd
}

func recoverMeta(out, errOut io.Writer, container, device, metaDir string, yes bool) int {
	c, err := strconv.ParseUint(container, 10, 64)
	var probs []string
	if err != nil || c == 0 {
		probs = append(probs, fmt.Sprintf("container id %q: want the decimal id weft status prints", container))
	}
	if device == "" {
		probs = append(probs, "--device is required: the device of the node whose log to rewrite")
	}
	if len(probs) > 0 {
		for _, p := range probs {
			fmt.Fprintf(errOut, "weft node recover-meta: %s\n", p)
		}
		return 2
	}
	if metaDir == "" {
		metaDir = node.DefaultMetaDir(device)
	}
	dev, err := vfs.Default.Open(device)
	if err != nil {
		fmt.Fprintf(errOut, "weft node recover-meta: %v\n", err)
		return 1
	}
	sb, _, err := engine.ReadSuperblock(dev)
	dev.Close()
	if err != nil {
		fmt.Fprintf(errOut, "weft node recover-meta: %v\n", err)
		return 1
	}
	id := node.NodeID(sb.UUID)
	res, err := meta.ForceSoleMember(nil, metaDir, clustermap.ContainerID(c), id, !yes, nil)
	if err != nil {
		fmt.Fprintf(errOut, "weft node recover-meta: %v\n", err)
		return 1
	}
	reportForce(out, fmt.Sprintf("container %d, node %d", c, id), uint64(id), res, yes,
		"start the node: its member leads the group alone, and adds the container's other metadata members back")
	return 0
}

// reportForce prints what a forced sole-voter rewrite of a raft log found
// and did (or, without yes, would do); who names the log, id its member,
// next what the operator does afterwards.
func reportForce(out io.Writer, who string, id uint64, res raftgroup.ForceResult, yes bool, next string) {
	fmt.Fprintf(out, "%s: the log's configuration is voters %v, learners %v; its last index %d, commit index %d\n", who, res.Voters, res.Learners, res.LogLast, res.Commit)
	change := fmt.Sprintf("conf changes removing %v", res.Removed)
	if res.Promoted {
		change = fmt.Sprintf("conf changes making %d a voter and removing %v", id, res.Removed)
	}
	if !yes {
		fmt.Fprintf(out, "would append %s, and commit the log up to %d\n", change, res.Last)
		fmt.Fprintln(out, "nothing written: run again with --yes (the node stopped) to do it")
		return
	}
	fmt.Fprintf(out, "appended %s, and committed the log up to %d\n", change, res.Last)
	fmt.Fprintln(out, next)
}
