package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/weftfs/weft/fsproto/clustermap"
)

func newKeyCmd(ctx context.Context, status *int) *cobra.Command {
	root := &cobra.Command{
		Use:   "key",
		Short: "Create, list and revoke container keys",
		Long: `A container key reaches one container: read (data and metadata reads),
write (reads and changes) or admin (write, plus the container's policy and
keys). The cluster map records each key's id, container and access; no one
stores its secret: every node derives it from the cluster key. weft key
create prints the secret once, as ID:SECRETHEX, for --key or $WEFT_KEY.
Creating, listing and revoking keys needs a cluster admin key (a weft up
folder's admin key) or an admin key of the container.`,
	}
	root.AddCommand(newKeyCreateCmd(ctx, status), newKeyListCmd(ctx, status), newKeyRevokeCmd(ctx, status))
	return root
}

func newKeyCreateCmd(ctx context.Context, status *int) *cobra.Command {
	var (
		cf        clusterFlags
		container string
		access    string
	)
	cmd := &cobra.Command{
		Use:   "create --container NAME --access read|write|admin",
		Short: "Create a container key and print it once as ID:SECRETHEX",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			runCLI(ctx, status, cmd, &cf, "key create", func(ctx context.Context, s *session, out io.Writer) error {
				if container == "" {
					return badUsage("--container: missing")
				}
				acc, err := clustermap.ParseAccess(access)
				if err != nil {
					return badUsage("--access=%s: want read, write or admin", access)
				}
				m, err := s.mc.Map(ctx, 0)
				if err != nil {
					return err
				}
				ct, err := containerByName(m, container)
				if err != nil {
					return err
				}
				id, err := clustermap.NewKeyID()
				if err != nil {
					return err
				}
				if _, err := s.mc.Apply(ctx, clustermap.CreateKey{ID: id, Container: ct.ID, Access: acc}); err != nil {
					return err
				}
				secret, err := s.mc.KeySecret(ctx, id)
				if err != nil {
					return fmt.Errorf("key %s was created but its secret could not be fetched (weft key revoke %s, then try again): %w", id, id, err)
				}
				fmt.Fprintf(out, "%s:%s\n", id, hex.EncodeToString(secret))
				fmt.Fprintf(cmd.ErrOrStderr(), "weft key create: %s key of container %s; the line above is shown once: keep it (use it as --key or $%s)\n", acc, ct.Name, keyEnv)
				return nil
			})
		},
	}
	f := cmd.Flags()
	cf.add(f)
	f.StringVar(&container, "container", "", "the container the key reaches")
	f.StringVar(&access, "access", "", "read, write or admin")
	return cmd
}

func newKeyListCmd(ctx context.Context, status *int) *cobra.Command {
	var (
		cf        clusterFlags
		container string
		all       bool
	)
	cmd := &cobra.Command{
		Use:   "list [--container NAME] [--all]",
		Short: "List container keys (ids, containers, access; never secrets)",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			runCLI(ctx, status, cmd, &cf, "key list", func(ctx context.Context, s *session, out io.Writer) error {
				m, err := s.mc.Map(ctx, 0)
				if err != nil {
					return err
				}
				var only clustermap.ContainerID
				if container != "" {
					ct, err := containerByName(m, container)
					if err != nil {
						return err
					}
					only = ct.ID
				}
				tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tCONTAINER\tACCESS\tCREATED\tSTATE")
				for _, k := range m.Keys {
					if (only != 0 && k.Container != only) || (!all && !k.Live()) {
						continue
					}
					name := fmt.Sprintf("#%d (deleted)", k.Container)
					if ct, ok := m.Container(k.Container); ok {
						name = ct.Name
					}
					state := "live"
					if !k.Live() {
						state = fmt.Sprintf("revoked at epoch %d", k.Revoked)
					}
					fmt.Fprintf(tw, "%s\t%s\t%v\tepoch %d\t%s\n", k.ID, name, k.Access, k.Created, state)
				}
				return tw.Flush()
			})
		},
	}
	f := cmd.Flags()
	cf.add(f)
	f.StringVar(&container, "container", "", "only this container's keys")
	f.BoolVar(&all, "all", false, "include revoked keys")
	return cmd
}

func newKeyRevokeCmd(ctx context.Context, status *int) *cobra.Command {
	var cf clusterFlags
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a container key: nodes refuse it and close its connections",
		Args:  cobra.ExactArgs(1),
		Run: func(cmd *cobra.Command, args []string) {
			runCLI(ctx, status, cmd, &cf, "key revoke", func(ctx context.Context, s *session, out io.Writer) error {
				if err := clustermap.CheckKeyID(args[0]); err != nil {
					return badUsage("%v (weft key list shows the ids)", err)
				}
				m, err := s.mc.Apply(ctx, clustermap.RevokeKey{ID: args[0]})
				switch {
				case errors.Is(err, clustermap.ErrNoChange):
					fmt.Fprintf(out, "key %s was revoked already\n", args[0])
					return nil
				case errors.Is(err, clustermap.ErrNotFound):
					return fmt.Errorf("no key %s (weft key list shows the keys this key can see)", args[0])
				case err != nil:
					return err
				}
				fmt.Fprintf(out, "key %s revoked at map epoch %d; nodes refuse it and close its connections as they see this map\n", args[0], m.Epoch)
				return nil
			})
		},
	}
	cf.add(cmd.Flags())
	return cmd
}
