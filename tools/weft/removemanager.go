package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftfs/weft/fsproto/manager"
)

// newRemoveManagerCmd returns `weft node remove-manager`: take a member
// out of the managers' group (manager.Client.RemoveMember). It sets
// *status: 0 when removed, 1 on a failure or refusal, 2 on bad flags.
func newRemoveManagerCmd(ctx context.Context, status *int) *cobra.Command {
	var (
		af      accessFlags
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "remove-manager MANAGER-ID [--dir .weft | --managers A,B,C --cluster-id ID --key-id K --key-secret HEX]",
		Short: "Take a member out of the managers' group (shrink it)",
		Long: `weft node remove-manager takes a member out of the managers' group, the
raft group that keeps the cluster map. The leader's repair adds every member
of its --manager-peers that the group lacks, so first restart every other
member's node with a --manager-peers list without this one (the leader
refuses until its own list no longer names it), then run this; then restart
the removed member's node without --manager-id, and take its address out of
the nodes' --managers lists. Asked to remove itself, the leader hands the
leadership to another member, which decides when the command asks again. A
removal after which the voters left would not have a majority of active ones
waits (until --timeout) for them.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			runIDCommand(ctx, status, cmd, &af, "node remove-manager", timeout, args[0], "manager id %q: want the member's decimal id (its node's --manager-id)",
				func(ctx context.Context, mc *manager.Client, id uint64) error {
					if err := mc.RemoveMember(ctx, id); err != nil {
						return err
					}
					fmt.Printf("manager member %d is out of the managers' group; restart its node without --manager-id, and take its address out of the nodes' --managers\n", id)
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
