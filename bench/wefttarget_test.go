package bench

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	stdnet "net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/manager"
	"github.com/weftfs/weft/net"
	"github.com/weftfs/weft/node"
)

func TestParseWeftURL(t *testing.T) {
	tests := []struct {
		in        string
		addrs     string // comma-joined
		container uint64
		name      string
		why       string // a substring; "" for success
	}{
		{"weft://127.0.0.1:7070/1", "127.0.0.1:7070", 1, "", ""},
		{"weft://node.example:9/18446744073709551615", "node.example:9", 1<<64 - 1, "", ""},
		{"weft://[::1]:7070/3", "[::1]:7070", 3, "", ""},
		{"weft://127.0.0.1:7070/default", "127.0.0.1:7070", 0, "default", ""},
		{"weft://127.0.0.1:7070,127.0.0.2:7070,[::1]:9/db.v2_x-y", "127.0.0.1:7070,127.0.0.2:7070,[::1]:9", 0, "db.v2_x-y", ""},
		{"weft://127.0.0.1:7070", "", 0, "", "no container"},
		{"weft://127.0.0.1:7070/", "", 0, "", "no container"},
		{"weft://127.0.0.1:7070/1x", "", 0, "", "not a whole number"},
		{"weft://127.0.0.1:7070/a/b", "", 0, "", "want letters, digits"},
		{"weft://127.0.0.1:7070,127.0.0.2:7070/1", "", 0, "", "give one address"},
		{"weft://127.0.0.1:7070,/x", "", 0, "", "no port"},
		{"weft:///1", "", 0, "", "no address"},
		{"weft://127.0.0.1/1", "", 0, "", "no port"},
		{"weft://127.0.0.1:http/1", "", 0, "", "bad port"},
	}
	for _, tt := range tests {
		u, why := parseWeftURL(tt.in)
		if tt.why == "" {
			if why != "" || strings.Join(u.addrs, ",") != tt.addrs || u.container != tt.container || u.name != tt.name {
				t.Errorf("parseWeftURL(%q) = %+v, %q; want %q, %d, %q", tt.in, u, why, tt.addrs, tt.container, tt.name)
			}
		} else if !strings.Contains(why, tt.why) {
			t.Errorf("parseWeftURL(%q): why %q; want it to contain %q", tt.in, why, tt.why)
		}
	}
}

func TestParseWeftTarget(t *testing.T) {
	t.Setenv(envWeftClusterID, "")
	t.Setenv(envWeftKeyID, "")
	t.Setenv(envWeftSecret, "")
	creds := []string{"--weft_cluster_id=c1", "--weft_key_id=k1", "--weft_key_secret=00ff"}
	jobs := mustParse(t, append([]string{"--rw=randread", "--bs=4k", "--size=1m", "--iodepth=32", "--weft_chunk_size=64k", "--weft_inode=7", "--weft_layout=0", "weft://127.0.0.1:7070/1"}, creds...)...)
	w := jobs[0].Weft
	if jobs[0].Target != "weft://127.0.0.1:7070/1" || w.Inode != 7 || w.ChunkSize != 64<<10 || !w.NoLayout || w.ClusterID != "c1" || w.KeyID != "k1" || w.Secret != "00ff" {
		t.Errorf("job: target %q, weft %+v", jobs[0].Target, w)
	}
	jobs = mustParse(t, append([]string{"--size=1m", "--filename=weft://127.0.0.1:7070/2"}, creds...)...)
	if w := jobs[0].Weft; w.Inode != 1 || w.ChunkSize != 1<<20 || w.NoLayout {
		t.Errorf("defaults: %+v", w)
	}
	// Credentials from the environment.
	t.Setenv(envWeftClusterID, "c2")
	t.Setenv(envWeftKeyID, "k2")
	t.Setenv(envWeftSecret, "abcd")
	jobs = mustParse(t, "--size=1m", "weft://127.0.0.1:7070/2")
	if w := jobs[0].Weft; w.ClusterID != "c2" || w.KeyID != "k2" || w.Secret != "abcd" {
		t.Errorf("from the environment: %+v", w)
	}
	t.Setenv(envWeftClusterID, "")
	t.Setenv(envWeftKeyID, "")
	t.Setenv(envWeftSecret, "")

	bad := []struct {
		args []string
		want string
	}{
		{[]string{"weft://127.0.0.1:7070"}, "no container"},
		{[]string{"weft://127.0.0.1:7070/1abc"}, "not a whole number"},
		{[]string{"weft://nohost/1"}, "no port"},
		{[]string{"--ioengine=psync", "weft://127.0.0.1:7070/1"}, "ioengine=psync: not accepted with a weft:// target"},
		{[]string{"--fsync=1", "weft://127.0.0.1:7070/1"}, "fsync=1: not accepted with a weft:// target"},
		{[]string{"--bs=3k", "weft://127.0.0.1:7070/1"}, "must divide weft_chunk_size"},
		{[]string{"--weft_key_secret=zz", "weft://127.0.0.1:7070/1"}, "weft_key_secret=zz: not hex"},
	}
	for _, tt := range bad {
		_, err := ParseArgs(append(append([]string{"--size=1m"}, tt.args...), creds...))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v; want it to contain %q", tt.args, err, tt.want)
		}
	}
	_, err := ParseArgs([]string{"--size=1m", "weft://127.0.0.1:7070/1"})
	for _, name := range []string{"weft_cluster_id", "weft_key_id", "weft_key_secret", envWeftClusterID, envWeftKeyID, envWeftSecret} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("missing credentials: error %v; want it to name %s", err, name)
		}
	}
	// Usage errors are exit status 2, one "bench: " line each.
	_, errs, status := runMain(t, "--size=1m", "weft://127.0.0.1:7070/x")
	if status != 2 || !strings.HasPrefix(errs, "bench: ") {
		t.Errorf("status %d, stderr %q", status, errs)
	}
}

// TestWeftTargetNode runs bench against a node started in-process.
func TestWeftTargetNode(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	const secret = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	if err := os.WriteFile(keys, []byte("k1 "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- node.Run(ctx, node.Config{
			Device:     filepath.Join(dir, "dev"),
			FormatSize: 64 << 20,
			Listen:     "127.0.0.1:0",
			ClusterID:  "c1",
			KeysFile:   keys,
			OnListening: func(addr, _ string) {
				listening <- addr
			},
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node: %v", err)
		}
	})
	var addr string
	select {
	case addr = <-listening:
	case err := <-done:
		done <- err
		t.Fatalf("node did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("node did not start listening")
	}
	t.Setenv(envWeftClusterID, "c1")
	t.Setenv(envWeftKeyID, "k1")
	t.Setenv(envWeftSecret, secret)
	target := fmt.Sprintf("weft://%s/1", addr)
	for _, rw := range []string{"randwrite", "randread"} {
		out, errs, status := runMain(t, "--output-format=json", "--name="+rw, "--rw="+rw, "--bs=4k", "--size=4m",
			"--iodepth=4", "--runtime=1s", "--time_based", target)
		if status != 0 {
			t.Fatalf("%s: status %d: %s", rw, status, errs)
		}
		var doc FioOutput
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("%s: JSON output does not parse: %v\n%s", rw, err, out)
		}
		if len(doc.Jobs) != 1 || doc.Jobs[0].Error != 0 {
			t.Fatalf("%s: JSON jobs: %+v", rw, doc.Jobs)
		}
		iops := doc.Jobs[0].Read.IOPS
		if rw == "randwrite" {
			iops = doc.Jobs[0].Write.IOPS
		}
		if iops <= 0 {
			t.Errorf("%s: IOPS %v", rw, iops)
		}
	}
}

// TestWeftTargetCluster runs bench against a one-node cluster started
// in-process (cluster mode: a manager member and a data server), through
// weft://ADDR/NAME and the cluster client.
func TestWeftTargetCluster(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	const secret = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	if err := os.WriteFile(keys, []byte("cluster "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- node.Run(ctx, node.Config{
			Device: filepath.Join(dir, "dev"), FormatSize: 64 << 20, Listen: addr, ClusterID: "c1", KeysFile: keys,
			Managers: []string{addr}, ManagerID: 1, ManagerPeers: []string{"1=" + addr}, Logger: quiet,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node: %v", err)
		}
	})
	key, _ := hex.DecodeString(secret)
	pool, err := net.NewPool(net.PoolConfig{Client: net.ClientConfig{ClusterID: "c1", KeyID: "cluster", Secret: key, Logger: quiet}})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	mc := manager.NewClient([]string{addr}, pool)
	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer wcancel()
	for after := uint64(0); ; {
		m, err := mc.Map(wctx, after)
		if err != nil {
			t.Fatalf("waiting for the node to join: %v", err)
		}
		if len(m.Nodes) == 1 && m.Nodes[0].State == clustermap.Up {
			break
		}
		after = m.Epoch
	}
	if _, err := mc.Apply(wctx, clustermap.CreateContainer{Name: "bench", Policy: clustermap.Policy{Replicas: 1, PGCount: 4}}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envWeftClusterID, "c1")
	t.Setenv(envWeftKeyID, "cluster")
	t.Setenv(envWeftSecret, secret)
	target := fmt.Sprintf("weft://%s/bench", addr)
	for _, rw := range []string{"randwrite", "randread"} {
		out, errs, status := runMain(t, "--output-format=json", "--name="+rw, "--rw="+rw, "--bs=4k", "--size=1m",
			"--iodepth=4", "--runtime=1s", "--time_based", target)
		if status != 0 {
			t.Fatalf("%s: status %d: %s", rw, status, errs)
		}
		var doc FioOutput
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("%s: JSON output does not parse: %v\n%s", rw, err, out)
		}
		if len(doc.Jobs) != 1 || doc.Jobs[0].Error != 0 {
			t.Fatalf("%s: JSON jobs: %+v", rw, doc.Jobs)
		}
		iops := doc.Jobs[0].Read.IOPS
		if rw == "randwrite" {
			iops = doc.Jobs[0].Write.IOPS
		}
		if iops <= 0 {
			t.Errorf("%s: IOPS %v", rw, iops)
		}
	}
	// The metadata benchmark through the native file client.
	var mout, merr strings.Builder
	if st := MetaMain(context.Background(), target, 30, 4, "", &mout, &merr); st != ExitOK {
		t.Errorf("metabench %s: status %d: %s", target, st, merr.String())
	} else if !strings.Contains(mout.String(), "unlink") {
		t.Errorf("metabench %s printed no unlink line: %q", target, mout.String())
	}
	// A container the map does not have is an error, not a hang.
	_, errs, status := runMain(t, "--rw=randwrite", "--bs=4k", "--size=1m", "--runtime=1s", fmt.Sprintf("weft://%s/nosuch", addr))
	if status == 0 || !strings.Contains(errs, "nosuch") {
		t.Errorf("unknown container: status %d, stderr %q", status, errs)
	}
}

// TestStallGuard: the guard ends its context with errWeftStalled when I/O
// is pending and nothing completes, and leaves it alone while I/Os keep
// completing or none is pending.
func TestStallGuard(t *testing.T) {
	// Idle (nothing pending) for longer than the timeout: no stall.
	ctx, _, stop := guardStalls(context.Background(), 100*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	if ctx.Err() != nil {
		t.Fatalf("idle guard ended the context: %v", context.Cause(ctx))
	}
	stop()
	// Pending, completing every 10 ms (the timeout is 200 times that):
	// no stall.
	ctx, g, stop := guardStalls(context.Background(), 2*time.Second)
	g.submitted(1)
	for i := 0; i < 50; i++ {
		time.Sleep(10 * time.Millisecond)
		g.completed()
		g.submitted(1)
	}
	if ctx.Err() != nil {
		t.Fatalf("guard ended a context with progress: %v", context.Cause(ctx))
	}
	stop()
	// Pending, no completion: stalled.
	ctx, g, stop = guardStalls(context.Background(), 100*time.Millisecond)
	defer stop()
	g.submitted(1)
	select {
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("guard did not end a stalled context")
	}
	if err := stallCause(ctx, context.Canceled); !errors.Is(err, errWeftStalled) {
		t.Fatalf("stallCause: %v, want errWeftStalled", err)
	}
	if err := stallCause(context.Background(), io.EOF); err != io.EOF {
		t.Fatalf("stallCause of an unguarded error: %v", err)
	}
}
