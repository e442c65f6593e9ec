package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftfs/weft/ioring"
)

func mustParse(t *testing.T, args ...string) []Job {
	t.Helper()
	spec, err := ParseArgs(args)
	if err != nil {
		t.Fatalf("ParseArgs(%q): %v", args, err)
	}
	return spec.Jobs
}

// ioBackends returns the values of WEFT_IO_BACKEND to run engine tests
// under.
func ioBackends(t *testing.T) []string {
	if f := ioring.Detect(); !f.Available {
		t.Logf("io_uring not available (%v): testing the thread backend only", f.Err)
		return []string{ioring.BackendThreads}
	}
	return []string{ioring.BackendIOUring, ioring.BackendThreads}
}

func TestRunPatterns(t *testing.T) {
	for _, backend := range ioBackends(t) {
		for i, rw := range []string{"read", "write", "randread", "randwrite", "randrw", "readwrite"} {
			// Rotate through fio's defaults, registered buffers and file
			// with whole-queue submission batches, and polling reaps.
			extra := []string{"--iodepth_batch_submit=1"}
			switch i % 3 {
			case 1:
				extra = []string{"--fixedbufs", "--registerfiles", "--iodepth_batch_submit=0", "--iodepth_batch_complete_max=4"}
			case 2:
				// Polling reaps: never wait in the kernel.
				extra = []string{"--iodepth_batch_complete_min=0", "--iodepth_batch_complete_max=4"}
			}
			t.Run(backend+"/"+rw, func(t *testing.T) {
				t.Setenv(ioring.BackendEnv, backend)
				path := filepath.Join(t.TempDir(), "f")
				args := append([]string{"--rw=" + rw, "--bs=4k", "--size=2m", "--iodepth=4", "--direct=1"}, extra...)
				jobs := mustParse(t, append(args, "file:"+path)...)
				res, err := Run(context.Background(), jobs, RunOptions{})
				if err != nil {
					t.Fatal(err)
				}
				jr := res.Jobs[0]
				if !strings.HasPrefix(jr.Backend, backend) {
					t.Errorf("backend %q, want %s", jr.Backend, backend)
				}
				// A size-bounded job does size/bs I/Os in all.
				ios := jr.Read.TotalIOs + jr.Write.TotalIOs
				if ios != 512 {
					t.Errorf("%d I/Os, want 512", ios)
				}
				if got := jr.Read.IOBytes + jr.Write.IOBytes; got != 2<<20 {
					t.Errorf("%d bytes, want %d", got, 2<<20)
				}
				readOnly := rw == "read" || rw == "randread"
				writeOnly := rw == "write" || rw == "randwrite"
				if readOnly && jr.Write.TotalIOs != 0 || writeOnly && jr.Read.TotalIOs != 0 {
					t.Errorf("wrong direction: %d reads, %d writes", jr.Read.TotalIOs, jr.Write.TotalIOs)
				}
				if !readOnly && !writeOnly && (jr.Read.TotalIOs == 0 || jr.Write.TotalIOs == 0) {
					t.Errorf("mixed job did %d reads and %d writes", jr.Read.TotalIOs, jr.Write.TotalIOs)
				}
				for _, d := range []DirStats{jr.Read, jr.Write} {
					if d.Clat.TotalCount() != d.TotalIOs || d.Lat.TotalCount() != d.TotalIOs {
						t.Errorf("histograms hold %d/%d values for %d I/Os", d.Clat.TotalCount(), d.Lat.TotalCount(), d.TotalIOs)
					}
				}
				st, err := os.Stat(path)
				if err != nil || st.Size() != 2<<20 {
					t.Errorf("target laid out to %v bytes (%v), want %d", st.Size(), err, 2<<20)
				}
			})
		}
	}
}

// TestRunWritesLand checks that a sequential write job really writes: every
// block of the file afterwards holds one of the job's buffers.
func TestRunWritesLand(t *testing.T) {
	for _, backend := range ioBackends(t) {
		t.Run(backend, func(t *testing.T) {
			t.Setenv(ioring.BackendEnv, backend)
			path := filepath.Join(t.TempDir(), "f")
			jobs := mustParse(t, "--name=w", "--rw=write", "--bs=8k", "--size=1m", "--iodepth=2", "--direct=1", "file:"+path)
			if _, err := Run(context.Background(), jobs, RunOptions{}); err != nil {
				t.Fatal(err)
			}
			// The clone fills its unit buffers in order from its seeded generator.
			rng := newRand(seedFor("w", 0))
			want := [][]byte{make([]byte, 8192), make([]byte, 8192)}
			rng.fill(want[0])
			rng.fill(want[1])
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for off := 0; off < len(data); off += 8192 {
				b := data[off : off+8192]
				if !bytes.Equal(b, want[0]) && !bytes.Equal(b, want[1]) {
					t.Fatalf("block at %d holds neither write buffer", off)
				}
			}
		})
	}
}

func TestRunPsyncAndFsync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	jobs := mustParse(t, "--rw=randwrite", "--ioengine=psync", "--bs=4k", "--size=256k", "--fsync=8", "file:"+path)
	res, err := Run(context.Background(), jobs, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	jr := res.Jobs[0]
	if jr.Backend != "psync" || jr.Write.TotalIOs != 64 {
		t.Errorf("backend %s, %d writes; want psync, 64", jr.Backend, jr.Write.TotalIOs)
	}
	if n := jr.Sync.TotalCount(); n < 7 || n > 8 {
		t.Errorf("%d fsyncs for 64 writes with fsync=8", n)
	}
	if jr.Write.Slat.Max() > 1 {
		t.Errorf("psync slat max %d, want 0 (no separate submission)", jr.Write.Slat.Max())
	}

	jobs = mustParse(t, "--rw=write", "--bs=4k", "--size=256k", "--iodepth=8", "--fsync=16", "file:"+path)
	res, err = Run(context.Background(), jobs, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := res.Jobs[0].Sync.TotalCount(); n < 3 || n > 4 {
		t.Errorf("io_uring: %d fsyncs for 64 writes with fsync=16", n)
	}
}

func TestRunTimeBasedRampAndGroups(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	jobs := mustParse(t, "--rw=randread", "--bs=4k", "--size=1m", "--iodepth=2", "--numjobs=2",
		"--runtime=1500ms", "--ramp_time=300ms", "--time_based", "--group_reporting", "file:"+path)
	var progress bytes.Buffer
	res, err := Run(context.Background(), jobs, RunOptions{Progress: &syncWriter{w: &progress}, ProgressInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Jobs) != 1 || res.Jobs[0].Clones != 2 {
		t.Fatalf("group_reporting gave %d results (clones %d), want 1 of 2", len(res.Jobs), res.Jobs[0].Clones)
	}
	jr := res.Jobs[0]
	if jr.Runtime < 1400*time.Millisecond || jr.Runtime > 1600*time.Millisecond {
		t.Errorf("measured runtime %v, want about 1.5s (ramp excluded)", jr.Runtime)
	}
	if jr.Read.TotalIOs == 0 || len(jr.Read.PerSecondIOs) != 1 {
		t.Errorf("%d I/Os, %d per-second samples; want some, 1", jr.Read.TotalIOs, len(jr.Read.PerSecondIOs))
	}
	if !strings.Contains(progress.String(), "laying out") || !strings.Contains(progress.String(), "read:") || !strings.Contains(progress.String(), "IOPS") {
		t.Errorf("progress output lacks layout or live line: %q", progress.String())
	}
}

func TestRunCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	jobs := mustParse(t, "--rw=randread", "--size=1m", "--iodepth=4", "--runtime=1h", "--time_based", "file:"+path)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, jobs, RunOptions{})
	if err == nil || res == nil {
		t.Fatalf("cancelled run: err %v, result %v", err, res)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("cancellation took %v", time.Since(start))
	}
}

type syncWriter struct {
	w *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	// Only the progress goroutine writes after layout; no lock needed
	// beyond Run's ordering, but keep the buffer private to this writer.
	return s.w.Write(p)
}

func runMain(t *testing.T, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	var out, errb bytes.Buffer
	status = Main(context.Background(), args, "test", &out, &errb)
	return out.String(), errb.String(), status
}

func TestMainJSONIsFioShaped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	out, errs, status := runMain(t, "--output-format=json", "--rw=randrw", "--bs=4k", "--size=512k", "--iodepth=8", "file:"+path)
	if status != 0 {
		t.Fatalf("status %d: %s", status, errs)
	}
	var doc struct {
		Jobs []struct {
			Read struct {
				IOBytes int64 `json:"io_bytes"`
				Clat    struct {
					Percentile map[string]int64 `json:"percentile"`
				} `json:"clat_ns"`
			} `json:"read"`
			Write struct {
				IOBytes int64 `json:"io_bytes"`
			} `json:"write"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("JSON output does not parse: %v\n%s", err, out)
	}
	if len(doc.Jobs) != 1 || doc.Jobs[0].Read.IOBytes+doc.Jobs[0].Write.IOBytes != 512<<10 {
		t.Fatalf("JSON jobs: %+v", doc.Jobs)
	}
	if _, ok := doc.Jobs[0].Read.Clat.Percentile["99.900000"]; !ok {
		t.Errorf("clat_ns percentile map lacks 99.900000: %v", doc.Jobs[0].Read.Clat.Percentile)
	}
}

func TestMainSummary(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	out, errs, status := runMain(t, "--rw=randread", "--size=512k", "--iodepth=4", "file:"+path)
	if status != 0 {
		t.Fatalf("status %d: %s", status, errs)
	}
	for _, want := range []string{"read: IOPS=", "BW=", "clat percentiles", "p50=", "p90=", "p99=", "p99.9=", "backend="} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

// TestMainBadInput: each bad input gets exit status 2, clear lines on
// stderr naming the option or path and what is accepted, and nothing is
// written.
func TestMainBadInput(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "never")
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown option", []string{"--size=1m", "--sideways=1", "file:" + path}, []string{"--sideways", "accepted"}},
		{"bs not aligned for direct", []string{"--size=1m", "--bs=3k", "--direct=1", "file:" + path}, []string{"bs=3k", "4096"}},
		{"iodepth zero", []string{"--size=1m", "--iodepth=0", "file:" + path}, []string{"iodepth=0", "between 1 and"}},
		{"unknown pattern", []string{"--size=1m", "--rw=sideways", "file:" + path}, []string{"rw=sideways", "randread"}},
		{"missing directory", []string{"--size=1m", "file:" + filepath.Join(dir, "no", "such", "f")}, []string{filepath.Join(dir, "no", "such"), "does not exist"}},
		{"directory as target", []string{"--size=1m", "file:" + dir}, []string{dir, "directory", "accepted"}},
		{"no size for a new file", []string{"file:" + path}, []string{path, "size="}},
		{"no target", []string{"--size=1m"}, []string{"no target"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkUsageError(t, path, c.args, c.want)
		})
	}
}

// TestMainSizeLargerThanDevice uses a loop device, so it needs root and
// losetup.
func TestMainSizeLargerThanDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to attach a loop device")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("losetup not installed")
	}
	backing := filepath.Join(t.TempDir(), "backing")
	if err := os.WriteFile(backing, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", backing).Output()
	if err != nil {
		t.Skipf("cannot attach a loop device: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "--detach", dev).Run()
	before, _ := os.ReadFile(backing)
	_, errs, status := runMain(t, "--rw=write", "--size=8m", "file:"+dev)
	if status != ExitUsage || !strings.Contains(errs, "larger than the device") || !strings.Contains(errs, dev) {
		t.Errorf("size > device: status %d, stderr %q", status, errs)
	}
	after, _ := os.ReadFile(backing)
	if !bytes.Equal(before, after) {
		t.Error("device was written despite the error")
	}
	// Within the device size it runs.
	if _, errs, status := runMain(t, "--rw=randread", "--size=4m", "--direct=1", "file:"+dev); status != 0 {
		t.Errorf("read of the loop device: status %d: %s", status, errs)
	}
}

// TestMainCompareFio runs `weft bench --compare-fio` end to end against the
// real fio binary on a small file: one round of each, both on the same job.
// make test installs fio; without it the test says so and skips.
func TestMainCompareFio(t *testing.T) {
	fio, err := exec.LookPath("fio")
	if err != nil {
		t.Skip("fio not installed (make test installs it): ", err)
	}
	path := filepath.Join(t.TempDir(), "f")
	out, errs, status := runMain(t, "--compare-fio", "--rounds=1", "--fio="+fio, "--rw=randrw", "--bs=4k",
		"--size=4m", "--iodepth=4", "--runtime=500ms", "--time_based", "file:"+path)
	if status != 0 {
		t.Fatalf("status %d\nstderr: %s\nstdout: %s", status, errs, out)
	}
	for _, want := range []string{"| metric | fio (median) | weft (median) | weft/fio |", "| read IOPS |", "| write IOPS |", "read clat p50"} {
		if !strings.Contains(out, want) {
			t.Errorf("comparison table lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errs, "round 1/1 fio") || !strings.Contains(errs, "round 1/1 weft") {
		t.Errorf("no per-run progress lines on stderr: %q", errs)
	}
}

// checkUsageError runs weft bench with args and requires exit status 2,
// nothing on stdout, every wanted fragment on stderr, every stderr line
// starting with "bench: ", and no file created at path.
func checkUsageError(t *testing.T, path string, args, want []string) {
	t.Helper()
	out, errs, status := runMain(t, args...)
	if status != ExitUsage {
		t.Errorf("status %d, want %d; stderr: %s", status, ExitUsage, errs)
	}
	if out != "" {
		t.Errorf("stdout not empty: %q", out)
	}
	for _, w := range want {
		if !strings.Contains(errs, w) {
			t.Errorf("stderr %q lacks %q", errs, w)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(errs), "\n") {
		if !strings.HasPrefix(line, "bench: ") {
			t.Errorf("problem line %q does not start with \"bench: \"", line)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("bad input created %s", path)
	}
}

// TestRandomOffsetsDependOnPattern: a randread job does not replay the
// offsets of a randwrite job of the same name (on a log-structured target
// that would make its reads sequential on the device), while each job
// repeats its own sequence from run to run (fio's randrepeat).
func TestRandomOffsetsDependOnPattern(t *testing.T) {
	offsets := func(rw string) []int64 {
		jobs := mustParse(t, "--name=cmp", "--rw="+rw, "--bs=4k", "--size=1g", "file:/nonexistent")
		c := newClone(&jobs[0], 0)
		out := make([]int64, 64)
		for i := range out {
			out[i] = c.pickOffset()
		}
		return out
	}
	read, write, mixed := offsets("randread"), offsets("randwrite"), offsets("randrw")
	if !slices.Equal(read, offsets("randread")) {
		t.Fatal("two randread jobs of one name visit different offsets: runs do not repeat")
	}
	same := 0
	for i := range read {
		if read[i] == write[i] || read[i] == mixed[i] {
			same++
		}
	}
	if same > 2 {
		t.Fatalf("randread shares %d of its first %d offsets, in order, with randwrite or randrw of the same name", same, len(read))
	}
}
