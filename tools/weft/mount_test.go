package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	stdnet "net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/mount"
	"github.com/weftfs/weft/internal/localcluster"
	"github.com/weftfs/weft/internal/testcluster"
	"github.com/weftfs/weft/internal/testutil"
)

// freePort returns a port free on 127.0.0.1 now, whose next port is free
// too (weft up's metrics).
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := stdnet.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*stdnet.TCPAddr).Port
		l.Close()
		if m, err := stdnet.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+1)); err == nil {
			m.Close()
			return port
		}
	}
	t.Fatal("no free pair of ports")
	return 0
}

func canMount(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: FUSE mount tests need root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("skipped: no FUSE on this machine: %v", err)
	}
}

// TestMountBadInput: each bad command line exits 2 naming what is wrong,
// before anything is dialled or mounted.
func TestMountBadInput(t *testing.T) {
	t.Setenv("WEFT_KEY", "")
	t.Setenv("WEFT_CLUSTER_ID", "")
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"mount", "x", dir}, `"x": want ADDR[,ADDR...]/CONTAINER`},
		{[]string{"mount", "127.0.0.1:1/vol", dir}, "--cluster-id (or $WEFT_CLUSTER_ID): missing"},
		{[]string{"mount", "127.0.0.1:1/vol", dir, "--cluster-id", "c"}, "--key ID:SECRETHEX (or $WEFT_KEY): missing"},
		{[]string{"mount", "127.0.0.1:1/vol", dir, "--cluster-id", "c", "--key", "k:nothex"}, "secret is not hex"},
		{[]string{"mount", "127.0.0.1:1/vol", dir, "--cluster-id", "c", "--key", "k:00", "--cache", "always"}, "--cache=always: want strict or none"},
		{[]string{"mount", "127.0.0.1:1/vol", dir, "--cluster-id", "c", "--key", "k:00", "--write-behind", "-1"}, "--write-behind=-1: want a size such as 8m"},
		{[]string{"mount", "--dir", filepath.Join(dir, "none"), dir}, "no weft up folder there"},
		{[]string{"mount", "onlyone"}, "want MANAGERS/CONTAINER MOUNTPOINT"},
	} {
		stderr := captureStderr(t, func() {
			if got := run(context.Background(), c.args); got != 2 {
				t.Errorf("weft %q: status %d, want 2", c.args, got)
			}
		})
		if !strings.Contains(stderr, c.want) {
			t.Errorf("weft %q: stderr %q, want %q", c.args, stderr, c.want)
		}
	}
}

func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	f()
	os.Stderr = old
	w.Close()
	return <-done
}

// TestServeMount runs weft mount's body on an in-process cluster: errors
// that name the problem for a wrong key, a missing container and a
// missing mount point; then a mount that serves until its context ends,
// and is gone after.
func TestServeMount(t *testing.T) {
	canMount(t)
	testutil.CheckLeaks(t)
	c := testcluster.Start(t, testcluster.Options{Nodes: 1})
	c.CreateContainer(t, "vol", clustermap.Policy{Replicas: 1, PGCount: 4})
	spec := mountSpec{
		access: localcluster.Access{Managers: c.Addrs, ClusterID: testcluster.ClusterID,
			KeyID: testcluster.ClusterKeyID, Secret: testcluster.ClusterSecret},
		container: "vol", dir: t.TempDir(),
	}
	ctx := context.Background()

	bad := spec
	bad.access.Secret = []byte("wrong secret")
	if err := serveMount(ctx, bad, io.Discard); err == nil || client.Errno(err) != syscall.EACCES {
		t.Errorf("wrong key: %v, want EACCES", err)
	}
	bad = spec
	bad.container = "nope"
	if err := serveMount(ctx, bad, io.Discard); err == nil || !strings.Contains(err.Error(), `open container "nope"`) {
		t.Errorf("missing container: %v", err)
	}
	bad = spec
	bad.dir = filepath.Join(spec.dir, "missing")
	if err := serveMount(ctx, bad, io.Discard); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing mount point: %v", err)
	}

	sctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- serveMount(sctx, spec, pw)
		pw.Close()
	}()
	br := bufio.NewReader(pr)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, "mounted at") {
		cancel()
		t.Fatalf("weft mount printed %q, %v; error %v", line, err, <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, br) }()
	p := filepath.Join(spec.dir, "hello")
	if err := os.WriteFile(p, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "hello" {
		t.Fatalf("read back %q, %v", b, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serveMount: %v", err)
	}
	if mounted, _ := mount.IsMountPoint(spec.dir); mounted {
		t.Fatal("still mounted after the context ended")
	}
}

// TestUpMount runs `weft up --mount` as make run does: it mounts, the
// mount serves, and SIGINT unmounts it and stops the nodes (exit 0).
func TestUpMount(t *testing.T) {
	canMount(t)
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "weft")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	mnt := filepath.Join(tmp, "mnt") // made by weft up
	cmd := exec.Command(bin, "up", "--dir", filepath.Join(tmp, ".weft"), "--port", strconv.Itoa(freePort(t)), "--size", "256m",
		"--mount", mnt)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			// SIGINT first: weft up stops its nodes (a killed weft up
			// would leave them running).
			_ = cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(time.Minute):
				_ = cmd.Process.Kill()
				<-done
			}
		}
		if mounted, _ := mount.IsMountPoint(mnt); mounted {
			_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	}()
	sc := bufio.NewScanner(out)
	var printed []string
	var secret string
	for sc.Scan() {
		line := sc.Text()
		printed = append(printed, line)
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "key:" {
			secret = f[2]
		}
		if strings.HasPrefix(strings.TrimSpace(line), "stop:") {
			break
		}
	}
	all := strings.Join(printed, "\n")
	if !strings.Contains(all, "mounted: container \"default\"") || !strings.Contains(all, "ls "+mnt) {
		t.Fatalf("weft up did not report the mount:\n%s\nstderr:\n%s", all, stderr.String())
	}
	if _, err := hex.DecodeString(secret); err != nil || secret == "" {
		t.Errorf("no admin key in the output (%q)", secret)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("through weft up"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(mnt); err != nil || len(ents) != 1 || ents[0].Name() != "f" {
		t.Fatalf("ls mnt: %v, %v", ents, err)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("weft up after SIGINT: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("weft up did not stop after SIGINT\nstderr:\n%s", stderr.String())
	}
	if mounted, err := mount.IsMountPoint(mnt); mounted || err != nil {
		t.Fatalf("%s still mounted after weft up stopped (%v)", mnt, err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "f")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the file shows through the unmounted folder: %v", err)
	}
}

// TestUpBadInput: weft up's mount flags are checked before anything is
// made or started.
func TestUpBadInput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cluster")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"up", "--dir", dir, "--cache", "always"}, "--cache=always: want strict or none"},
		{[]string{"up", "--dir", dir, "--write-behind", "lots"}, "--write-behind=lots: want a size such as 8m"},
	} {
		stderr := captureStderr(t, func() {
			if got := run(context.Background(), c.args); got != 2 {
				t.Errorf("weft %q: status %d, want 2", c.args, got)
			}
		})
		if !strings.Contains(stderr, c.want) {
			t.Errorf("weft %q: stderr %q, want %q", c.args, stderr, c.want)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("weft %q made %s", c.args, dir)
		}
	}
}
