package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/weftfs/weft/bench"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/manager"
	"github.com/weftfs/weft/fsproto/meta"
	"github.com/weftfs/weft/fsproto/namespace"
	"github.com/weftfs/weft/internal/localcluster"
	"github.com/weftfs/weft/net"
)

// keyEnv names the environment variable that may hold the access key
// (ID:SECRETHEX) instead of --key.
const keyEnv = "WEFT_KEY"

// usageTimeoutMax bounds the metadata read (StatFS) of `container show`
// and `container delete`, inside --timeout: a container whose metadata
// group is down still shows its policy.
const usageTimeoutMax = 5 * time.Second

// clusterFlags say how the container and key commands reach a cluster:
// a `weft up` folder (its managers, cluster id and admin key), or
// managers, a cluster id and a key; and how long a command may take.
type clusterFlags struct {
	dir, managers, clusterID, key string
	timeout                       time.Duration
}

func (c *clusterFlags) add(f *pflag.FlagSet) {
	f.StringVar(&c.dir, "dir", ".weft", "folder of a weft up cluster (its managers, cluster id and admin key)")
	f.StringVar(&c.managers, "managers", "", "the manager group's addresses, comma-separated (instead of --dir)")
	f.StringVar(&c.clusterID, "cluster-id", "", "the cluster's id (with --managers)")
	f.StringVar(&c.key, "key", "", "access key as ID:SECRETHEX (default $"+keyEnv+"; with --dir, the folder's admin key)")
	f.DurationVar(&c.timeout, "timeout", 30*time.Second, "give up after this long (no manager reachable, no answer)")
}

// parseKey parses "ID:SECRETHEX".
func parseKey(s string) (string, []byte, error) {
	id, hx, ok := strings.Cut(s, ":")
	if !ok || id == "" || len(id) > 255 {
		return "", nil, errors.New("want ID:SECRETHEX (the key id, a colon, the secret in hex)")
	}
	secret, err := hex.DecodeString(hx)
	if err != nil || len(secret) == 0 {
		return "", nil, fmt.Errorf("key %s: the secret after the colon is not hex digits", id)
	}
	return id, secret, nil
}

// resolve returns the cluster's Access, or the problems with the flags
// (exit status 2), or the error that prevents it (exit status 1).
func (c *clusterFlags) resolve(cmd *cobra.Command) (localcluster.Access, []string, error) {
	var probs []string
	if c.timeout <= 0 {
		probs = append(probs, fmt.Sprintf("--timeout=%v: want a positive duration such as 30s", c.timeout))
	}
	key := c.key
	if !cmd.Flags().Changed("key") {
		key = os.Getenv(keyEnv)
	}
	var (
		keyID  string
		secret []byte
	)
	if key != "" {
		var err error
		if keyID, secret, err = parseKey(key); err != nil {
			probs = append(probs, "--key: "+err.Error())
		}
	}
	if cmd.Flags().Changed("managers") {
		addrs := splitList(c.managers)
		if len(addrs) == 0 {
			probs = append(probs, "--managers: want host:port,host:port,...")
		}
		if c.clusterID == "" {
			probs = append(probs, "--cluster-id: missing (needed with --managers)")
		}
		if key == "" {
			probs = append(probs, "--key: missing (or set $"+keyEnv+"); needed with --managers")
		}
		return localcluster.Access{Managers: addrs, ClusterID: c.clusterID, KeyID: keyID, Secret: secret}, probs, nil
	}
	if len(probs) > 0 {
		return localcluster.Access{}, probs, nil
	}
	if _, err := os.Stat(c.dir); err != nil {
		return localcluster.Access{}, []string{fmt.Sprintf("no cluster folder %s (run weft up, or give --managers, --cluster-id and --key)", c.dir)}, nil
	}
	self, err := os.Executable()
	if err != nil {
		self = "weft"
	}
	lc, err := localcluster.Open(localcluster.Config{Dir: c.dir, Binary: self})
	if err != nil {
		return localcluster.Access{}, nil, err
	}
	acc := lc.Access()
	if key != "" {
		acc.KeyID, acc.Secret = keyID, secret
	}
	return acc, nil, nil
}

// session is one command's connection to the cluster.
type session struct {
	acc  localcluster.Access
	pool *net.Pool
	mc   *manager.Client
}

func (c *clusterFlags) open(cmd *cobra.Command) (*session, []string, error) {
	acc, probs, err := c.resolve(cmd)
	if len(probs) > 0 || err != nil {
		return nil, probs, err
	}
	pool, err := acc.Pool()
	if err != nil {
		return nil, nil, err
	}
	return &session{acc: acc, pool: pool, mc: manager.NewClient(acc.Managers, pool)}, nil, nil
}

func (s *session) close() { s.pool.Close() }

// explain turns an error of a manager call into a message for a person:
// what the deadline means, and which key a refusal was about.
func (s *session) explain(err error, timeout time.Duration) error {
	var re *net.RemoteError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer from the managers %s within --timeout=%v: %w", strings.Join(s.acc.Managers, ","), timeout, err)
	case errors.As(err, &re) && re.Code == net.CodeAuthFailed:
		return fmt.Errorf("key %q was refused (unknown, revoked, or a wrong secret): %w", s.acc.KeyID, err)
	case errors.As(err, &re) && re.Code == net.CodeClusterMismatch:
		return fmt.Errorf("cluster id %q is not this cluster's: %w", s.acc.ClusterID, err)
	case errors.Is(err, manager.ErrAccessDenied):
		return fmt.Errorf("key %q may not do this: %w", s.acc.KeyID, err)
	}
	return err
}

// runCLI runs body with a session and a deadline, reporting problems and
// errors the way every weft command does (exit status 2 for bad input, 1
// for failures).
func runCLI(ctx context.Context, status *int, cmd *cobra.Command, cf *clusterFlags, name string, body func(context.Context, *session, io.Writer) error) {
	s, probs, err := cf.open(cmd)
	errw := cmd.ErrOrStderr()
	switch {
	case len(probs) > 0:
		*status = 2
		for _, p := range probs {
			fmt.Fprintf(errw, "weft %s: %s\n", name, p)
		}
		return
	case err != nil:
		*status = 1
		fmt.Fprintf(errw, "weft %s: %v\n", name, err)
		return
	}
	defer s.close()
	cctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	if err := body(cctx, s, cmd.OutOrStdout()); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			*status = 2
			fmt.Fprintf(errw, "weft %s: %s\n", name, ue.msg)
			return
		}
		*status = 1
		fmt.Fprintf(errw, "weft %s: %v\n", name, s.explain(err, cf.timeout))
	}
}

// usageError is bad input found after the flags parsed (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func badUsage(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// parseSelector parses "k=v,k2=v2" (empty: no selector).
func parseSelector(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	sel := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--selector: %q is not key=value", kv)
		}
		sel[k] = v
	}
	return sel, nil
}

// policyFlags are the container policy's flags, shared by create and
// set-policy.
type policyFlags struct {
	replicas                 int
	pgs                      uint32
	chunkSize, selector      string
	failureDomain, quotaSize string
	quotaInodes              uint64
}

// containerByName finds name in m, or says how to find the names.
func containerByName(m *clustermap.Map, name string) (*clustermap.Container, error) {
	ct, ok := m.ContainerByName(name)
	if !ok {
		return nil, fmt.Errorf("no container %q at map epoch %d (weft container list shows the containers this key can see)", name, m.Epoch)
	}
	return ct, nil
}

// setQuota applies the quota flags that were given to container ct's
// namespace, keeping the limit that was not given. Quotas live in the
// container's namespace (its metadata group's replicated state), not in
// the cluster map.
func setQuota(ctx context.Context, s *session, ct clustermap.ContainerID, bytes, inodes *uint64) (namespace.StatFS, error) {
	mc := meta.NewClient(ct, s.mc, s.pool)
	st, err := mc.StatFS(ctx)
	if err != nil {
		return st, fmt.Errorf("reading the quota of container %d: %w", ct, err)
	}
	q := namespace.SetQuota{Bytes: st.QuotaBytes, Inodes: st.QuotaInodes}
	if bytes != nil {
		q.Bytes = *bytes
	}
	if inodes != nil {
		q.Inodes = *inodes
	}
	if _, err := mc.Apply(ctx, q); err != nil {
		return st, fmt.Errorf("setting the quota of container %d: %w", ct, err)
	}
	st.QuotaBytes, st.QuotaInodes = q.Bytes, q.Inodes
	return st, nil
}

// quotaArgs returns the quota flags that were given (nil: not given).
func quotaArgs(cmd *cobra.Command, pf *policyFlags) (bytes, inodes *uint64, err error) {
	if cmd.Flags().Changed("quota-bytes") {
		n, perr := bench.ParseSize(pf.quotaSize)
		if perr != nil || n < 0 {
			return nil, nil, badUsage("--quota-bytes=%s: want a size such as 100g (0: no limit)", pf.quotaSize)
		}
		u := uint64(n)
		bytes = &u
	}
	if cmd.Flags().Changed("quota-inodes") {
		u := pf.quotaInodes
		inodes = &u
	}
	return bytes, inodes, nil
}

func newContainerCmd(ctx context.Context, status *int) *cobra.Command {
	root := &cobra.Command{
		Use:   "container",
		Short: "Create, list, show, delete data containers and change their policies",
		Long: `A data container is an isolated namespace with its own keys and policy:
replication factor, placement selector and failure domain, PG count and
chunk size (both fixed at creation), and quotas. The policy lives in the
cluster map; the quotas live in the container's namespace (its metadata
group's replicated state).

Every subcommand reaches the cluster through --dir (a weft up folder) or
--managers, --cluster-id and --key ID:SECRETHEX (or $WEFT_KEY), and gives up
after --timeout.`,
	}
	root.AddCommand(newContainerCreateCmd(ctx, status), newContainerListCmd(ctx, status),
		newContainerShowCmd(ctx, status), newContainerDeleteCmd(ctx, status), newContainerSetPolicyCmd(ctx, status))
	return root
}

func newContainerCreateCmd(ctx context.Context, status *int) *cobra.Command {
	var (
		cf clusterFlags
		pf policyFlags
	)
	cmd := &cobra.Command{
		Use:   "create NAME [--replicas N] [--pgs N] [--chunk-size SIZE] [--selector k=v,...] [--failure-domain KEY] [--quota-bytes SIZE] [--quota-inodes N]",
		Short: "Create a data container",
		Args:  cobra.ExactArgs(1),
		Run: func(cmd *cobra.Command, args []string) {
			runCLI(ctx, status, cmd, &cf, "container create", func(ctx context.Context, s *session, out io.Writer) error {
				p := clustermap.Policy{Replicas: pf.replicas, PGCount: pf.pgs, FailureDomain: pf.failureDomain}
				if pf.chunkSize != "" {
					n, err := bench.ParseSize(pf.chunkSize)
					if err != nil || n <= 0 || n > 1<<31 {
						return badUsage("--chunk-size=%s: want a power of two from 64k to 64m", pf.chunkSize)
					}
					p.ChunkSize = uint32(n)
				}
				sel, err := parseSelector(pf.selector)
				if err != nil {
					return badUsage("%v", err)
				}
				p.Selector = sel
				if err := p.WithDefaults().Validate(); err != nil {
					return badUsage("%v", err)
				}
				qb, qi, err := quotaArgs(cmd, &pf)
				if err != nil {
					return err
				}
				m, err := s.mc.Apply(ctx, clustermap.CreateContainer{Name: args[0], Policy: p})
				if err != nil {
					return err
				}
				ct, err := containerByName(m, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "container %s created: id %d, %d PGs, %d replicas, chunk %s, map epoch %d\n",
					ct.Name, ct.ID, ct.Policy.PGCount, ct.Policy.Replicas, sizeString(uint64(ct.Policy.ChunkSize)), m.Epoch)
				if qb != nil || qi != nil {
					st, err := setQuota(ctx, s, ct.ID, qb, qi)
					if err != nil {
						return fmt.Errorf("container %s was created, but: %w", ct.Name, err)
					}
					fmt.Fprintf(out, "quota: %s\n", quotaString(st))
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	cf.add(f)
	f.IntVar(&pf.replicas, "replicas", 3, "replication factor, 1..5")
	f.Uint32Var(&pf.pgs, "pgs", clustermap.PGCountDefault, "number of placement groups, a power of two (fixed)")
	f.StringVar(&pf.chunkSize, "chunk-size", "", "file chunk size, a power of two from 64k to 64m (fixed; default 4m)")
	f.StringVar(&pf.selector, "selector", "", "place data only on nodes with these labels: k=v,k2=v2")
	f.StringVar(&pf.failureDomain, "failure-domain", "", "label whose values the replicas spread over (e.g. zone; default: each node)")
	f.StringVar(&pf.quotaSize, "quota-bytes", "0", "byte quota of the container's files (e.g. 100g; 0: none)")
	f.Uint64Var(&pf.quotaInodes, "quota-inodes", 0, "inode quota (0: none)")
	return cmd
}

func newContainerListCmd(ctx context.Context, status *int) *cobra.Command {
	var cf clusterFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the containers this key can see (a container key sees its own only)",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			runCLI(ctx, status, cmd, &cf, "container list", func(ctx context.Context, s *session, out io.Writer) error {
				m, err := s.mc.Map(ctx, 0)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tREPLICAS\tPGS\tCHUNK\tDOMAIN\tSELECTOR\tPG STATES")
				for i := range m.Containers {
					ct := &m.Containers[i]
					fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", ct.ID, ct.Name, ct.Policy.Replicas, ct.Policy.PGCount,
						sizeString(uint64(ct.Policy.ChunkSize)), orDash(ct.Policy.FailureDomain), orDash(labelsString(ct.Policy.Selector)), pgStates(m, ct.ID))
				}
				return tw.Flush()
			})
		},
	}
	cf.add(cmd.Flags())
	return cmd
}

// metaRecord describes a container's metadata group as the map records
// it: its members, its bootstrap set when it differs, and whether its
// leader has marked it formed (from then on no member with an empty raft
// log bootstraps it again).
func metaRecord(m *clustermap.Map, ct *clustermap.Container) string {
	if len(ct.MetaMembers) == 0 {
		return "no members (no node matches the policy)"
	}
	nodes := func(ids []clustermap.NodeID) string {
		var parts []string
		for _, id := range ids {
			if n, ok := m.Node(id); ok {
				parts = append(parts, fmt.Sprintf("%d at %s", id, n.Addr))
			} else {
				parts = append(parts, fmt.Sprint(id))
			}
		}
		return strings.Join(parts, ", ")
	}
	s := "members " + nodes(ct.MetaMembers)
	if !slices.Equal(ct.MetaMembers, ct.MetaBootstrap) {
		s += "; bootstrapped by " + nodes(ct.MetaBootstrap)
	}
	if ct.MetaFormed {
		return s + "; formed"
	}
	return s + "; not yet marked formed (its leader marks it once the group has committed an entry)"
}

func newContainerShowCmd(ctx context.Context, status *int) *cobra.Command {
	var cf clusterFlags
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a container's policy, PG states, keys and usage",
		Args:  cobra.ExactArgs(1),
		Run: func(cmd *cobra.Command, args []string) {
			runCLI(ctx, status, cmd, &cf, "container show", func(ctx context.Context, s *session, out io.Writer) error {
				m, err := s.mc.Map(ctx, 0)
				if err != nil {
					return err
				}
				ct, err := containerByName(m, args[0])
				if err != nil {
					return err
				}
				first, end := ct.PGs()
				fmt.Fprintf(out, "container %s (id %d) at map epoch %d\n", ct.Name, ct.ID, m.Epoch)
				fmt.Fprintf(out, "  replicas:       %d\n", ct.Policy.Replicas)
				fmt.Fprintf(out, "  failure domain: %s\n", orDash(ct.Policy.FailureDomain))
				fmt.Fprintf(out, "  selector:       %s\n", orDash(labelsString(ct.Policy.Selector)))
				fmt.Fprintf(out, "  pgs:            %d (%d..%d), fixed\n", ct.Policy.PGCount, first, end-1)
				fmt.Fprintf(out, "  chunk size:     %s, fixed\n", sizeString(uint64(ct.Policy.ChunkSize)))
				fmt.Fprintf(out, "  pg states:      %s\n", pgStates(m, ct.ID))
				fmt.Fprintf(out, "  metadata:       %s\n", metaRecord(m, ct))
				if ks := m.KeysOfContainer(ct.ID, false); len(ks) > 0 {
					fmt.Fprintf(out, "  keys:           %d live (weft key list --container %s)\n", len(ks), ct.Name)
				}
				uctx, cancel := context.WithTimeout(ctx, usageTimeoutMax)
				defer cancel()
				st, err := meta.NewClient(ct.ID, s.mc, s.pool).StatFS(uctx)
				if err != nil {
					fmt.Fprintf(out, "  usage:          unavailable (%v)\n", err)
					return nil
				}
				fmt.Fprintf(out, "  usage:          %s in files, %d inodes", sizeString(st.Bytes), st.Inodes)
				if st.Reclaiming > 0 {
					fmt.Fprintf(out, ", %d deleted files being reclaimed", st.Reclaiming)
				}
				fmt.Fprintf(out, "\n  quota:          %s\n", quotaString(st))
				return nil
			})
		},
	}
	cf.add(cmd.Flags())
	return cmd
}

func newContainerDeleteCmd(ctx context.Context, status *int) *cobra.Command {
	var (
		cf    clusterFlags
		force bool
	)
	cmd := &cobra.Command{
		Use:   "delete NAME [--force]",
		Short: "Delete a container (refused while it holds files, unless --force)",
		Long: `weft container delete removes the container from the cluster map: its PGs
and its keys go at once (the keys are revoked, and nodes close their
connections), and its data becomes unreachable. A container that holds
files (or whose metadata cannot be read to tell) is refused unless --force.
NB: the chunks of a deleted container stay on the nodes' devices until a
cleanup reclaims them; this version has none yet, so their space is not
freed.`,
		Args: cobra.ExactArgs(1),
		Run: func(cmd *cobra.Command, args []string) {
			runCLI(ctx, status, cmd, &cf, "container delete", func(ctx context.Context, s *session, out io.Writer) error {
				m, err := s.mc.Map(ctx, 0)
				if err != nil {
					return err
				}
				ct, err := containerByName(m, args[0])
				if err != nil {
					return err
				}
				if !force {
					uctx, cancel := context.WithTimeout(ctx, usageTimeoutMax)
					st, err := meta.NewClient(ct.ID, s.mc, s.pool).StatFS(uctx)
					cancel()
					switch {
					case err != nil:
						return fmt.Errorf("cannot tell whether container %s is empty (%v); --force deletes it anyway", ct.Name, err)
					case st.Inodes > 1 || st.Bytes > 0:
						return fmt.Errorf("container %s holds %d files and directories (%s); remove them first, or --force deletes it and makes its data unreachable",
							ct.Name, st.Inodes-1, sizeString(st.Bytes))
					}
				}
				m, err = s.mc.Apply(ctx, clustermap.DeleteContainer{ID: ct.ID})
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "container %s (id %d) deleted at map epoch %d; its keys are revoked and its data is unreachable (its space is not reclaimed yet)\n",
					ct.Name, ct.ID, m.Epoch)
				return nil
			})
		},
	}
	cf.add(cmd.Flags())
	cmd.Flags().BoolVar(&force, "force", false, "delete even a container that holds files")
	return cmd
}

func newContainerSetPolicyCmd(ctx context.Context, status *int) *cobra.Command {
	var (
		cf clusterFlags
		pf policyFlags
	)
	cmd := &cobra.Command{
		Use:   "set-policy NAME [--replicas N] [--selector k=v,...] [--failure-domain KEY] [--quota-bytes SIZE] [--quota-inodes N]",
		Short: "Change a container's replication, placement or quotas",
		Long: `weft container set-policy changes what may change after creation: the
replication factor, the placement selector and the failure domain (the map
re-places the PGs; new replicas backfill, retiring ones stay until they
caught up), and the quotas (kept in the container's namespace). The PG count
and the chunk size are fixed at creation: they map the data. Flags not given
keep their current values; --selector "" clears the selector.`,
		Args: cobra.ExactArgs(1),
		Run: func(cmd *cobra.Command, args []string) {
			runCLI(ctx, status, cmd, &cf, "container set-policy", func(ctx context.Context, s *session, out io.Writer) error {
				fl := cmd.Flags()
				qb, qi, err := quotaArgs(cmd, &pf)
				if err != nil {
					return err
				}
				placement := fl.Changed("replicas") || fl.Changed("selector") || fl.Changed("failure-domain")
				if !placement && qb == nil && qi == nil {
					return badUsage("nothing to change: give --replicas, --selector, --failure-domain, --quota-bytes or --quota-inodes")
				}
				m, err := s.mc.Map(ctx, 0)
				if err != nil {
					return err
				}
				ct, err := containerByName(m, args[0])
				if err != nil {
					return err
				}
				if placement {
					p := ct.Policy
					if fl.Changed("replicas") {
						p.Replicas = pf.replicas
					}
					if fl.Changed("failure-domain") {
						p.FailureDomain = pf.failureDomain
					}
					if fl.Changed("selector") {
						if p.Selector, err = parseSelector(pf.selector); err != nil {
							return badUsage("%v", err)
						}
					}
					if err := p.Validate(); err != nil {
						return badUsage("%v", err)
					}
					m, err = s.mc.Apply(ctx, clustermap.SetPolicy{Container: ct.ID, Policy: p})
					switch {
					case errors.Is(err, clustermap.ErrNoChange):
						fmt.Fprintf(out, "container %s has that placement policy already\n", ct.Name)
					case err != nil:
						return err
					default:
						fmt.Fprintf(out, "container %s: replicas %d, failure domain %s, selector %s at map epoch %d; pg states: %s\n",
							ct.Name, p.Replicas, orDash(p.FailureDomain), orDash(labelsString(p.Selector)), m.Epoch, pgStates(m, ct.ID))
					}
				}
				if qb != nil || qi != nil {
					st, err := setQuota(ctx, s, ct.ID, qb, qi)
					if err != nil {
						return err
					}
					fmt.Fprintf(out, "container %s: quota %s\n", ct.Name, quotaString(st))
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	cf.add(f)
	f.IntVar(&pf.replicas, "replicas", 3, "replication factor, 1..5")
	f.StringVar(&pf.selector, "selector", "", "place data only on nodes with these labels: k=v,k2=v2 (\"\": anywhere)")
	f.StringVar(&pf.failureDomain, "failure-domain", "", "label whose values the replicas spread over (\"\": each node)")
	f.StringVar(&pf.quotaSize, "quota-bytes", "0", "byte quota (e.g. 100g; 0: none)")
	f.Uint64Var(&pf.quotaInodes, "quota-inodes", 0, "inode quota (0: none)")
	return cmd
}

// pgStates summarises the PG states of container c: "4 active, 1 degraded".
func pgStates(m *clustermap.Map, c clustermap.ContainerID) string {
	counts := map[clustermap.PGState]int{}
	pgs := m.PGsOfContainer(c)
	for i := range pgs {
		counts[m.PGState(&pgs[i])]++
	}
	var parts []string
	for _, st := range []clustermap.PGState{clustermap.Active, clustermap.Backfilling, clustermap.Degraded} {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %v", counts[st], st))
		}
	}
	return orDash(strings.Join(parts, ", "))
}

func labelsString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func quotaString(st namespace.StatFS) string {
	b, i := "no byte limit", "no inode limit"
	if st.QuotaBytes > 0 {
		b = sizeString(st.QuotaBytes)
	}
	if st.QuotaInodes > 0 {
		i = strconv.FormatUint(st.QuotaInodes, 10) + " inodes"
	}
	return b + ", " + i
}

// sizeString prints n bytes with a binary unit when it divides evenly
// ("4m", "64k"), else in bytes.
func sizeString(n uint64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"t", 40}, {"g", 30}, {"m", 20}, {"k", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatUint(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatUint(n, 10) + "b"
}
