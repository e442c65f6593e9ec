package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/manager"
	"github.com/weftfs/weft/node"
)

// newRecoverManagerCmd returns `weft node recover-manager`: the offline,
// unsafe recovery of the managers' group (the cluster map) when a
// majority of its members lost their raft logs (manager.ForceSoleMember).
// It sets *status: 0 when done (or shown, without --yes), 1 on a failure,
// 2 on bad flags.
func newRecoverManagerCmd(status *int) *cobra.Command {
	var device, dir, addr string
	var fromMap []string
	var id uint64
	var yes bool
	cmd := &cobra.Command{
		Use:   "recover-manager --manager-id N (--device PATH | --manager-dir DIR) [--from-map FILE... --manager-addr ADDR] [--yes]",
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

With --from-map, for a cluster whose manager members ALL lost their raft
logs: every storage node keeps a copy of the newest cluster map it accepted
(cluster-map in its metadata folder, DEVICE.meta, written within a second
of each map). Give one or more such copies; the newest (highest epoch) is
written into this member's empty raft log as a group of which it is the only
voter, its epoch moved on past any the nodes saw, and its next container and
PG ids moved on so that no new container meets data of one created after the
copy. What the managers
committed after the copy is lost, and data of containers created after it
stays unreachable. Move the other members' manager folders away (they hold
the lost history or a map started afresh: a member that runs with one
starts a second group), start this node first, then the others: the leader
adds them back.

Without --yes it only shows what it would do.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(fromMap) > 0 || addr != "" {
				*status = seedManager(os.Stdout, os.Stderr, id, device, dir, addr, fromMap, yes)
				return nil
			}
			*status = recoverManager(os.Stdout, os.Stderr, id, device, dir, yes)
			return nil
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&id, "manager-id", 0, "the member's id (the node's --manager-id)")
	f.StringVar(&device, "device", "", "the node's device: its manager log is beside it (DEVICE.manager, as weft node uses)")
	f.StringVar(&dir, "manager-dir", "", "the member's raft log folder, when the node was given --manager-dir")
	f.StringArrayVar(&fromMap, "from-map", nil, "a node's copy of the cluster map (DEVICE.meta/cluster-map), repeatable: seed the member's empty log from the newest")
	f.StringVar(&addr, "manager-addr", "", "with --from-map: the member's address (its node's --listen, as in --manager-peers)")
	f.BoolVar(&yes, "yes", false, "write the log; without it, only show what would be done")
	return cmd
}

// memberFlags checks the flags that name the member and its log, and
// returns the log's folder and the problems found.
func memberFlags(id uint64, device, dir string) (string, []string) {
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
	if dir == "" && device != "" {
		dir = node.DefaultManagerDir(device)
	}
	return dir, probs
}

func usageErrors(errOut io.Writer, probs []string) int {
	for _, p := range probs {
		fmt.Fprintf(errOut, "weft node recover-manager: %s\n", p)
	}
	return 2
}

func recoverManager(out, errOut io.Writer, id uint64, device, dir string, yes bool) int {
	dir, probs := memberFlags(id, device, dir)
	if len(probs) > 0 {
		return usageErrors(errOut, probs)
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

// seedManager is recover-manager --from-map: manager.SeedFromMap with the
// newest of the map copies.
func seedManager(out, errOut io.Writer, id uint64, device, dir, addr string, files []string, yes bool) int {
	dir, probs := memberFlags(id, device, dir)
	if len(files) == 0 {
		probs = append(probs, "--manager-addr is for --from-map: give the nodes' copies of the cluster map (DEVICE.meta/cluster-map)")
	}
	if addr == "" {
		probs = append(probs, "--manager-addr is required with --from-map: the member's address, as in --manager-peers")
	}
	if len(probs) > 0 {
		return usageErrors(errOut, probs)
	}
	var newest *clustermap.Map
	var newestFile string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && len(b) == 0 {
			err = errors.New("the file is empty")
		}
		var m *clustermap.Map
		if err == nil {
			m, err = clustermap.DecodeMap(b)
		}
		if err != nil {
			fmt.Fprintf(errOut, "weft node recover-manager: map copy %s: %v\n", f, err)
			return 1
		}
		fmt.Fprintf(out, "%s: map epoch %d, FSID %v, %d nodes, %d containers\n", f, m.Epoch, m.FSID, len(m.Nodes), len(m.Containers))
		if newest != nil && m.FSID != newest.FSID {
			fmt.Fprintf(errOut, "weft node recover-manager: %s has FSID %v and %s has %v: copies of two different maps; give the copies of one cluster's nodes\n",
				f, m.FSID, newestFile, newest.FSID)
			return 1
		}
		if newest == nil || m.Epoch > newest.Epoch {
			newest, newestFile = m, f
		}
	}
	seeded, err := manager.SeedFromMap(nil, dir, id, addr, newest, !yes, nil)
	if err != nil {
		fmt.Fprintf(errOut, "weft node recover-manager: %v\n", err)
		return 1
	}
	what := fmt.Sprintf("manager member %d (%s, %s) as the only voter of a group whose map is %s's, at epoch %d, next container id %d, next PG id %d",
		id, dir, addr, newestFile, seeded.Epoch, seeded.NextContainer, seeded.NextPG)
	if !yes {
		fmt.Fprintf(out, "would seed %s\n", what)
		fmt.Fprintln(out, "nothing written: run again with --yes (the node stopped) to do it")
		return 0
	}
	fmt.Fprintf(out, "seeded %s\n", what)
	fmt.Fprintln(out, "move the other members' manager folders away, start this node, then the others: its member leads the managers' group alone, and adds them back")
	return 0
}
