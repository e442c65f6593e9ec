package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunMetaLocal(t *testing.T) {
	for _, jobs := range []int{1, 4} {
		testRunMetaLocal(t, jobs)
	}
}

// testRunMetaLocal runs the benchmark on a local directory with jobs
// operations at once; the directory's removal at the end shows that
// every file was unlinked.
func testRunMetaLocal(t *testing.T, jobs int) {
	root := t.TempDir()
	res, err := RunMeta(context.Background(), osMetaFS(root), MetaOptions{Files: 50, Jobs: jobs, Dir: "d"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Jobs != jobs || res.Files != 50 {
		t.Errorf("result says %d jobs, %d files; want %d, 50", res.Jobs, res.Files, jobs)
	}
	for name, ph := range map[string]MetaPhase{"create": res.Create, "stat": res.Stat, "unlink": res.Unlink} {
		if ph.OpsPerSec <= 0 || ph.WallSec <= 0 || ph.P50us > ph.P99us || ph.P99us > ph.P999us {
			t.Errorf("%s: implausible figures %+v", name, ph)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "d")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the run's directory is left behind: %v", err)
	}
}

// A file that is in the way fails the create phase with an error naming
// the file; nothing of the target's other content is touched.
func TestRunMetaNamesFailure(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "d", "f000003"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := RunMeta(context.Background(), osMetaFS(root), MetaOptions{Files: 10, Dir: "d"})
	if err == nil || !strings.Contains(err.Error(), "create of d/f000003") || !errors.Is(err, os.ErrExist) {
		t.Fatalf("err = %v; want the create of d/f000003 failing with EEXIST", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "d", "f000003")); string(b) != "keep" {
		t.Errorf("the file in the way was changed: %q", b)
	}
}

func TestMetaPhasePercentiles(t *testing.T) {
	lat := make([]time.Duration, 1000)
	for i := range lat {
		lat[i] = time.Duration(1000-i) * time.Microsecond // 1000..1 µs, unsorted
	}
	ph := metaPhase(lat, 2*time.Second)
	if ph.OpsPerSec != 500 || ph.P50us != 501 || ph.P99us != 991 || ph.P999us != 1000 || ph.MeanUs != 500.5 {
		t.Errorf("metaPhase = %+v; want 500 ops/s, p50 501, p99 991, p99.9 1000, mean 500.5", ph)
	}
}

func TestMetaMain(t *testing.T) {
	root := t.TempDir()
	js := filepath.Join(t.TempDir(), "meta.json")
	var out, errb bytes.Buffer
	if st := MetaMain(context.Background(), root, 20, 1, js, &out, &errb); st != ExitOK {
		t.Fatalf("status %d: %s", st, errb.String())
	}
	var got map[string]any
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"create", "stat", "unlink"} {
		ph, ok := got[k].(map[string]any)
		if !ok || ph["ops_s"] == nil || ph["p50_us"] == nil {
			t.Errorf("JSON lacks %s.ops_s or %s.p50_us (meta-bench.py's schema): %s", k, k, b)
		}
	}
	if !strings.Contains(out.String(), "unlink") {
		t.Errorf("no progress line for unlink: %q", out.String())
	}
	for _, jobs := range []int{0, 6} {
		errb.Reset()
		if st := MetaMain(context.Background(), root, 5, jobs, "", &out, &errb); st != ExitUsage || !strings.Contains(errb.String(), "--jobs") {
			t.Errorf("--jobs=%d with 5 files: status %d, %q; want a usage error naming --jobs", jobs, st, errb.String())
		}
	}
	for _, tc := range []struct{ target, want string }{
		{filepath.Join(root, "missing"), "want a directory"},
		{js, "is not a directory"},
		{"weft://127.0.0.1:7070/1", "numeric container"},
	} {
		errb.Reset()
		if st := MetaMain(context.Background(), tc.target, 5, 1, "", &out, &errb); st != ExitUsage || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("target %s: status %d, %q; want usage error saying %q", tc.target, st, errb.String(), tc.want)
		}
	}
}
