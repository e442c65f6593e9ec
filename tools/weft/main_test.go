package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExitStatus runs the real binary: bad bench input exits 2 with one
// line per problem, help and iobackend exit 0.
func TestExitStatus(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "weft")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	target := filepath.Join(t.TempDir(), "f")
	cases := []struct {
		args   []string
		status int
		stderr string
	}{
		{[]string{"bench", "--iodepth=0", "--size=1m", "file:" + target}, 2, "bench: iodepth=0"},
		{[]string{"bench", "--rw=sideways", "--size=1m", "file:" + target}, 2, "bench: rw=sideways"},
		{[]string{"bench", "--help"}, 0, ""},
		{[]string{"iobackend"}, 0, ""},
		{[]string{"no-such-command"}, 2, "unknown command"},
		{[]string{"up", "--dir", filepath.Join(t.TempDir(), "c"), "--size", "1m"}, 2, "--size=1m: want a size of at least 64m"},
		{[]string{"status", "--dir", filepath.Join(t.TempDir(), "none")}, 2, "no cluster folder"},
		{[]string{"status", "--managers", "127.0.0.1:1", "--key-secret", "zz"}, 2, "--key-secret: want the key's secret in hex"},
		{[]string{"node", "--device", "d", "--cluster-id", "c", "--keys-file", "/nonexistent", "--managers", "127.0.0.1:1", "--manager-id", "1"}, 2, "needs manager_peers"},
		{[]string{"node", "--device", "d", "--heartbeat-timeout", "1ms", "--cluster-id", "c", "--keys-file", "/nonexistent"}, 2, "heartbeat_timeout 1ms"},
		{[]string{"node", "--device", "d", "--retire-after", "-5m", "--cluster-id", "c", "--keys-file", "/nonexistent"}, 2, "--retire-after=-5m: -5m0s: want a positive duration, or off"},
		{[]string{"node", "join"}, 2, "accepts 1 arg(s)"},
		{[]string{"node", "join", "127.0.0.1:1", "--managers", "127.0.0.1:2"}, 2, "give the managers as the argument"},
		{[]string{"node", "join", "127.0.0.1:1", "--device", "d", "--cluster-id", "c", "--keys-file", "/nonexistent", "--manager-id", "1"}, 2, "needs manager_peers"},
		{[]string{"node", "recover-meta", "x"}, 2, "container id \"x\": want the decimal id"},
		{[]string{"node", "recover-meta", "1"}, 2, "--device is required"},
		{[]string{"node", "recover-meta", "1", "--device", filepath.Join(t.TempDir(), "none")}, 1, "no such file"},
		{[]string{"node", "recover-meta", "1", "--device", bin}, 1, "superblock"},
		{[]string{"node", "recover-manager", "--device", "d"}, 2, "--manager-id is required"},
		{[]string{"node", "recover-manager", "--manager-id", "1"}, 2, "--device or --manager-dir is required"},
		{[]string{"node", "recover-manager", "--manager-id", "1", "--device", "d", "--manager-dir", "m"}, 2, "both given"},
		{[]string{"node", "recover-manager", "--manager-id", "1", "--device", filepath.Join(t.TempDir(), "none")}, 1, "no raft log at"},
		{[]string{"node", "recover-manager", "--manager-id", "1", "--device", "d", "--from-map", "f"}, 2, "--manager-addr is required with --from-map"},
		{[]string{"node", "remove-manager", "x", "--managers", "127.0.0.1:1", "--cluster-id", "c", "--key-id", "k", "--key-secret", "00"}, 2, "manager id \"x\""},
		{[]string{"node", "remove-manager"}, 2, "accepts 1 arg(s)"},
		{[]string{"node", "drain", "0", "--managers", "127.0.0.1:1", "--cluster-id", "c", "--key-id", "k", "--key-secret", "00"}, 2, "weft node drain: node id \"0\": want the decimal id weft status prints"},
		{[]string{"node", "recover-manager", "--manager-id", "1", "--device", "d", "--manager-addr", "127.0.0.1:1"}, 2, "--manager-addr is for --from-map"},
		{[]string{"node", "recover-manager", "--manager-id", "1", "--device", "d", "--manager-addr", "a", "--from-map", filepath.Join(t.TempDir(), "none")}, 1, "no such file"},
		{[]string{"node", "recover-manager", "--manager-id", "1", "--device", "d", "--manager-addr", "a", "--from-map", bin}, 1, "map copy " + bin},
	}
	for _, c := range cases {
		cmd := exec.Command(bin, c.args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		status := 0
		if ee, ok := err.(*exec.ExitError); ok {
			status = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if status != c.status || !strings.Contains(stderr.String(), c.stderr) {
			t.Errorf("weft %q: status %d, stderr %q; want %d and %q", c.args, status, stderr.String(), c.status, c.stderr)
		}
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("bad input created %s", target)
	}
}

func TestRunInProcess(t *testing.T) {
	if got := run(context.Background(), []string{"bench", "--bs=3k", "--direct=1", "--size=1m", "file:/nonexistent/x"}); got != 2 {
		t.Errorf("status %d, want 2", got)
	}
}
