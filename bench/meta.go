package bench

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weftfs/weft/fsproto/client"
)

// This file is `weft metabench`: the metadata benchmark of the peer
// comparison (create, stat and unlink of N empty files in one
// directory), run on a directory of any file system (a FUSE mount
// included) or straight through the native file client on a container
// (weft://MANAGERS/CONTAINER). Its JSON is the one the peer kit's
// meta-bench.py writes ({"nfiles", "create", "stat", "unlink"}, each with
// ops_s, p50_us, p99_us, p999_us, mean_us and wall_s), so its results go
// into the same tables.
//
// Every phase runs over all N files in creation order, one operation at
// a time (or Jobs at once, file i being job i mod Jobs's), timing each; a
// phase's rate is N over its wall time. A failed
// operation ends the run with an error naming the file and the phase.

// MetaFS is a file system the metadata benchmark drives, by slash
// separated paths relative to its root.
type MetaFS interface {
	// MkdirAll makes dir and its parents.
	MkdirAll(dir string) error
	// CreateExcl creates the empty file name, failing if it exists, and
	// closes it, as open(O_CREAT|O_EXCL|O_WRONLY) and close do.
	CreateExcl(name string) error
	// Stat reads name's attributes.
	Stat(name string) error
	// Remove unlinks the file name.
	Remove(name string) error
	// RemoveDir removes the empty directory dir.
	RemoveDir(dir string) error
}

// MetaPhase is one phase's figures, as meta-bench.py writes them.
type MetaPhase struct {
	OpsPerSec float64 `json:"ops_s"`
	P50us     float64 `json:"p50_us"`
	P99us     float64 `json:"p99_us"`
	P999us    float64 `json:"p999_us"`
	MeanUs    float64 `json:"mean_us"`
	WallSec   float64 `json:"wall_s"`
}

// MetaResult is a metadata benchmark's result.
type MetaResult struct {
	Target string    `json:"target"`
	Files  int       `json:"nfiles"`
	Jobs   int       `json:"jobs"`
	Create MetaPhase `json:"create"`
	Stat   MetaPhase `json:"stat"`
	Unlink MetaPhase `json:"unlink"`
}

// MetaOptions configure RunMeta.
type MetaOptions struct {
	Files int // files in the directory; at least 1
	// Jobs is how many operations run at once (default 1): file i
	// belongs to job i mod Jobs, and a phase ends when every job has
	// done its files.
	Jobs int
	// Dir is the directory made for the run (relative to the MetaFS
	// root); it must not exist, and it is removed at the end.
	Dir string
	// Progress, if not nil, gets a line per finished phase.
	Progress io.Writer
}

// RunMeta creates, stats and unlinks o.Files empty files in o.Dir of m.
func RunMeta(ctx context.Context, m MetaFS, o MetaOptions) (*MetaResult, error) {
	if o.Files < 1 {
		return nil, fmt.Errorf("metabench: %d files; want at least 1", o.Files)
	}
	if err := m.MkdirAll(o.Dir); err != nil {
		return nil, fmt.Errorf("metabench: making %s: %w", o.Dir, err)
	}
	names := make([]string, o.Files)
	for i := range names {
		names[i] = fmt.Sprintf("%s/f%06d", o.Dir, i)
	}
	jobs := max(o.Jobs, 1)
	res := &MetaResult{Files: o.Files, Jobs: jobs}
	lat := make([]time.Duration, o.Files)
	phases := []struct {
		name string
		op   func(string) error
		out  *MetaPhase
	}{
		{"create", m.CreateExcl, &res.Create},
		{"stat", m.Stat, &res.Stat},
		{"unlink", m.Remove, &res.Unlink},
	}
	for _, ph := range phases {
		start := time.Now()
		errs := make([]error, jobs)
		var wg sync.WaitGroup
		for j := range jobs {
			wg.Go(func() {
				for i := j; i < len(names); i += jobs {
					if err := ctx.Err(); err != nil {
						errs[j] = fmt.Errorf("metabench: %s phase stopped at file %d of %d: %w", ph.name, i+1, len(names), err)
						return
					}
					t := time.Now()
					if err := ph.op(names[i]); err != nil {
						errs[j] = fmt.Errorf("metabench: %s of %s (file %d of %d): %w", ph.name, names[i], i+1, len(names), err)
						return
					}
					lat[i] = time.Since(t)
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		*ph.out = metaPhase(lat, time.Since(start))
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "%-7s %9.0f ops/s  p50 %8.1f  p99 %8.1f  p99.9 %8.1f us\n",
				ph.name, ph.out.OpsPerSec, ph.out.P50us, ph.out.P99us, ph.out.P999us)
		}
	}
	if err := m.RemoveDir(o.Dir); err != nil {
		return nil, fmt.Errorf("metabench: removing %s: %w", o.Dir, err)
	}
	return res, nil
}

// metaPhase summarises one phase; lat is sorted in place. The
// percentiles pick the sample at floor(q*n), as meta-bench.py does.
func metaPhase(lat []time.Duration, wall time.Duration) MetaPhase {
	slices.Sort(lat)
	n := len(lat)
	q := func(x float64) float64 { return float64(lat[min(n-1, int(x*float64(n)))]) / 1e3 }
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	return MetaPhase{
		OpsPerSec: float64(n) / wall.Seconds(),
		P50us:     q(0.50), P99us: q(0.99), P999us: q(0.999),
		MeanUs:  float64(sum) / float64(n) / 1e3,
		WallSec: wall.Seconds(),
	}
}

// osMetaFS is a directory of the local file system (or a mount).
type osMetaFS string

func (r osMetaFS) path(name string) string   { return filepath.Join(string(r), filepath.FromSlash(name)) }
func (r osMetaFS) MkdirAll(dir string) error { return os.MkdirAll(r.path(dir), 0o755) }
func (r osMetaFS) CreateExcl(name string) error {
	f, err := os.OpenFile(r.path(name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}
func (r osMetaFS) Stat(name string) error {
	_, err := os.Stat(r.path(name))
	return err
}
func (r osMetaFS) Remove(name string) error   { return os.Remove(r.path(name)) }
func (r osMetaFS) RemoveDir(dir string) error { return os.Remove(r.path(dir)) }

// clientMetaFS is a container through the native file client.
type clientMetaFS struct{ fs *client.FS }

func (c clientMetaFS) MkdirAll(dir string) error { return c.fs.MkdirAll(dir, 0o755) }
func (c clientMetaFS) CreateExcl(name string) error {
	f, err := c.fs.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}
func (c clientMetaFS) Stat(name string) error {
	_, err := c.fs.Stat(name)
	return err
}
func (c clientMetaFS) Remove(name string) error   { return c.fs.Remove(name) }
func (c clientMetaFS) RemoveDir(dir string) error { return c.fs.Remove(dir) }

// MetaMain is `weft metabench [--files N] [--jobs J] [--json FILE] TARGET`, TARGET a
// directory or weft://MANAGER[,MANAGER...]/CONTAINER (credentials from
// WEFT_CLUSTER_ID, WEFT_KEY_ID and WEFT_KEY_SECRET). It prints a line per
// phase to stdout, writes the JSON to jsonPath if not "", and returns the
// exit status.
func MetaMain(ctx context.Context, target string, files, jobs int, jsonPath string, stdout, stderr io.Writer) int {
	if files < 1 {
		fmt.Fprintf(stderr, "metabench: --files=%d: want at least 1\n", files)
		return ExitUsage
	}
	if jobs < 1 || jobs > files {
		fmt.Fprintf(stderr, "metabench: --jobs=%d: want 1 to --files (%d)\n", jobs, files)
		return ExitUsage
	}
	dir := fmt.Sprintf("metabench.%d.%d", os.Getpid(), time.Now().UnixNano()%1e6)
	var m MetaFS
	if strings.HasPrefix(target, schemeWeft) {
		fsys, closeFS, err := openContainerFS(ctx, target)
		if err != nil {
			fmt.Fprintln(stderr, "metabench:", err)
			var u *UsageError
			if errors.As(err, &u) {
				return ExitUsage
			}
			return ExitError
		}
		defer closeFS()
		m = clientMetaFS{fsys}
	} else {
		st, err := os.Stat(target)
		if err != nil {
			fmt.Fprintf(stderr, "metabench: target %s: %v; want a directory or weft://MANAGERS/CONTAINER\n", target, err)
			return ExitUsage
		}
		if !st.IsDir() {
			fmt.Fprintf(stderr, "metabench: target %s is not a directory\n", target)
			return ExitUsage
		}
		m = osMetaFS(target)
	}
	res, err := RunMeta(ctx, m, MetaOptions{Files: files, Jobs: jobs, Dir: dir, Progress: stdout})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitError
	}
	res.Target = target
	if jsonPath != "" {
		b, err := json.MarshalIndent(res, "", " ")
		if err == nil {
			err = os.WriteFile(jsonPath, append(b, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintln(stderr, "metabench:", err)
			return ExitError
		}
	}
	return ExitOK
}

// openContainerFS opens the file system of the container a cluster
// weft:// target names, with the credentials of the environment.
func openContainerFS(ctx context.Context, target string) (*client.FS, func(), error) {
	u, why := parseWeftURL(target)
	if why == "" && !u.cluster() {
		why = "a numeric container names a single node's chunk store, which has no file system; give a cluster container's name"
	}
	if why != "" {
		return nil, nil, &UsageError{Problems: []string{"target " + target + ": " + why}}
	}
	var o WeftOptions
	missing, why := weftCredentials(&o)
	if len(missing) > 0 {
		why = "missing credentials: " + strings.Join(missing, ", ")
	}
	if why != "" {
		return nil, nil, &UsageError{Problems: []string{"target " + target + ": " + why}}
	}
	secret, err := hex.DecodeString(o.Secret)
	if err != nil {
		return nil, nil, err
	}
	key := client.Key{ID: o.KeyID, Secret: secret}
	dctx, cancel := context.WithTimeout(ctx, weftDialTimeout)
	defer cancel()
	c, err := client.DialCluster(dctx, o.ClusterID, u.addrs, key)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to %s: %w", strings.Join(u.addrs, ","), err)
	}
	fsys, err := c.OpenContainer(dctx, u.name, key)
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("opening container %s: %w", u.name, err)
	}
	return fsys, func() { fsys.Close(); c.Close() }, nil
}

var _ MetaFS = osMetaFS("")
var _ MetaFS = clientMetaFS{}
