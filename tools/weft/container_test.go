package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/meta"
	"github.com/weftfs/weft/fsproto/namespace"
	"github.com/weftfs/weft/internal/localcluster"
	"github.com/weftfs/weft/internal/testcluster"
	"github.com/weftfs/weft/internal/testutil"
)

// cliRun runs the container and key commands in process, as main's run
// registers them, and returns what they printed and the exit status.
func cliRun(args ...string) (stdout, stderr string, status int) {
	root := &cobra.Command{Use: "weft", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newContainerCmd(context.Background(), &status), newKeyCmd(context.Background(), &status))
	var o, e bytes.Buffer
	root.SetOut(&o)
	root.SetErr(&e)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		e.WriteString(err.Error())
		status = 2
	}
	return o.String(), e.String(), status
}

var keyLine = regexp.MustCompile(`^(k[0-9a-f]{16}):([0-9a-f]{64})\n$`)

// TestContainerAndKeyCLI drives weft container and weft key against an
// in-process cluster: create, list, show, set-policy and delete of
// containers (quotas through the namespace), and create, list, revoke of
// keys, with the isolation a container key gets and the errors a person
// sees.
func TestContainerAndKeyCLI(t *testing.T) {
	testutil.CheckLeaks(t)
	adminSecret := []byte("admin-secret-0123456789abcdef012")
	c := testcluster.Start(t, testcluster.Options{Nodes: 3, ExtraKeys: []string{"admin " + hex.EncodeToString(adminSecret)}})
	conn := []string{"--managers", strings.Join(c.Addrs, ","), "--cluster-id", testcluster.ClusterID, "--timeout", "30s"}
	as := func(key string, args ...string) []string {
		return append(append(args, conn...), "--key", key)
	}
	admin := "admin:" + hex.EncodeToString(adminSecret)
	must := func(args []string, want ...string) string {
		t.Helper()
		out, errOut, st := cliRun(args...)
		if st != 0 {
			t.Fatalf("weft %q: status %d\nstdout: %s\nstderr: %s", args[:3], st, out, errOut)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Fatalf("weft %q printed\n%s\nwant %q in it", args[:3], out, w)
			}
		}
		return out
	}
	fails := func(args []string, status int, want string) {
		t.Helper()
		out, errOut, st := cliRun(args...)
		if st != status || !strings.Contains(errOut, want) {
			t.Fatalf("weft %q: status %d, stderr %q (stdout %q); want status %d and %q", args, st, errOut, out, status, want)
		}
	}

	// Containers.
	must(as(admin, "container", "create", "vol", "--replicas", "3", "--pgs", "8", "--chunk-size", "1m", "--quota-bytes", "1g", "--quota-inodes", "100"),
		"container vol created", "8 PGs", "chunk 1m", "quota: 1g, 100 inodes")
	must(as(admin, "container", "create", "other", "--replicas", "2", "--pgs", "4", "--failure-domain", "host", "--selector", "host=1,x=y"), "container other created")
	fails(as(admin, "container", "create", "vol"), 1, "already exists")
	fails(as(admin, "container", "create", "bad", "--pgs", "3"), 2, "pg count 3")
	fails(as(admin, "container", "create", "bad", "--selector", "nokv"), 2, "not key=value")
	out := must(as(admin, "container", "list"), "vol", "other")
	if !regexp.MustCompile(`vol\s+3\s+8\s+1m`).MatchString(out) {
		t.Fatalf("container list:\n%s", out)
	}
	must(as(admin, "container", "show", "vol"), "replicas:       3", "chunk size:     1m, fixed", "8 active", "usage:          0b in files, 1 inodes", "quota:          1g, 100 inodes")
	must(as(admin, "container", "show", "other"), "selector:       host=1,x=y", "failure domain: host")
	must(as(admin, "container", "set-policy", "vol", "--replicas", "2", "--quota-inodes", "50"), "replicas 2", "quota 1g, 50 inodes")
	must(as(admin, "container", "show", "vol"), "replicas:       2", "quota:          1g, 50 inodes")
	fails(as(admin, "container", "set-policy", "vol"), 2, "nothing to change")
	fails(as(admin, "container", "set-policy", "vol", "--pgs", "16"), 2, "unknown flag")
	fails(as(admin, "container", "show", "nope"), 1, `no container "nope"`)
	// A weft up folder gives the managers, the cluster id and the admin key.
	dir := upFolder(t, c, adminSecret)
	must([]string{"container", "list", "--dir", dir}, "vol", "other")

	// Keys.
	line := must(as(admin, "key", "create", "--container", "vol", "--access", "write"))
	mk := keyLine.FindStringSubmatch(line)
	if mk == nil {
		t.Fatalf("key create printed %q, want ID:SECRETHEX", line)
	}
	if want := hex.EncodeToString(clustermap.KeySecret(testcluster.ClusterSecret, mk[1])); mk[2] != want {
		t.Fatalf("key %s: secret %s, the derivation gives %s", mk[1], mk[2], want)
	}
	writeKey := mk[1] + ":" + mk[2]
	line = must(as(admin, "key", "create", "--container", "vol", "--access", "admin"))
	ma := keyLine.FindStringSubmatch(line)
	if ma == nil {
		t.Fatalf("key create printed %q", line)
	}
	volAdmin := ma[1] + ":" + ma[2]
	fails(as(admin, "key", "create", "--container", "vol", "--access", "root"), 2, "--access=root")
	fails(as(admin, "key", "create", "--container", "nope", "--access", "read"), 1, `no container "nope"`)
	must(as(admin, "key", "list"), mk[1]+"  vol", ma[1], "write", "admin")
	if out := must(as(admin, "key", "list", "--container", "other")); strings.Contains(out, mk[1]) {
		t.Fatalf("key list --container other shows vol's key:\n%s", out)
	}

	// A container key sees its container only, and may not change the
	// map. Nodes learn new keys from the map they follow: wait for that.
	waitCLI(t, as(writeKey, "container", "list"))
	out = must(as(writeKey, "container", "list"), "vol")
	if strings.Contains(out, "other") {
		t.Fatalf("a key of vol lists other:\n%s", out)
	}
	fails(as(writeKey, "container", "show", "other"), 1, `no container "other"`)
	fails(as(writeKey, "container", "create", "mine"), 1, "may not do this")
	fails(as(writeKey, "key", "create", "--container", "vol", "--access", "read"), 1, "may not do this")
	// vol's admin key makes and revokes keys of vol, not of other.
	waitCLI(t, as(volAdmin, "container", "list"))
	line = must(as(volAdmin, "key", "create", "--container", "vol", "--access", "read"))
	if keyLine.FindStringSubmatch(line) == nil {
		t.Fatalf("container admin key create printed %q", line)
	}
	must(as(volAdmin, "key", "list"), mk[1])
	fails(as(volAdmin, "container", "set-policy", "other", "--replicas", "1"), 1, `no container "other"`)

	// Revocation.
	must(as(admin, "key", "revoke", mk[1]), "revoked at map epoch")
	must(as(admin, "key", "revoke", mk[1]), "revoked already")
	fails(as(admin, "key", "revoke", "k00000000000000ff"), 1, "no key k00000000000000ff")
	fails(as(admin, "key", "revoke", "bogus"), 2, "key id")
	if out := must(as(admin, "key", "list")); strings.Contains(out, mk[1]) {
		t.Fatalf("key list shows the revoked key without --all:\n%s", out)
	}
	must(as(admin, "key", "list", "--all"), mk[1], "revoked at epoch")
	waitCLIFails(t, as(writeKey, "container", "list"), "was refused")

	// Delete: refused while the container holds files, unless --force.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vol, _ := must2(t, c, "vol")
	if _, err := meta.NewClient(vol, c.Managers(), c.Pool()).Apply(ctx, namespace.Mkdir{Parent: namespace.RootIno, Name: "d", Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	fails(as(admin, "container", "delete", "vol"), 1, "holds 1 files and directories")
	must(as(admin, "container", "delete", "vol", "--force"), "deleted", "keys are revoked")
	// other's selector matches no node, so its metadata group never ran:
	// delete cannot tell whether it is empty.
	fails(as(admin, "container", "delete", "other"), 1, "cannot tell whether container other is empty")
	must(as(admin, "container", "delete", "other", "--force"), "deleted")
	if out := must(as(admin, "container", "list")); strings.Contains(out, "vol") {
		t.Fatalf("vol still listed:\n%s", out)
	}
	must(as(admin, "key", "list", "--all"), "(deleted)")

	// Errors a person meets.
	fails(as("admin:"+hex.EncodeToString([]byte("wrong")), "container", "list"), 1, `key "admin" was refused`)
	fails(as("admin:zz", "container", "list"), 2, "not hex digits")
	fails([]string{"container", "list", "--managers", c.Addrs[0], "--key", admin}, 2, "--cluster-id: missing")
	fails([]string{"container", "list", "--managers", "127.0.0.1:1", "--cluster-id", "x", "--key", admin, "--timeout", "1s"}, 1, "no answer from the managers 127.0.0.1:1 within --timeout=1s")
	fails([]string{"container", "list", "--dir", t.TempDir() + "/none"}, 2, "no cluster folder")
}

// upFolder writes a weft up folder (state and keys) that names the test
// cluster, as `weft up` would have.
func upFolder(t *testing.T, c *testcluster.Cluster, adminSecret []byte) string {
	t.Helper()
	dir := t.TempDir()
	st := localcluster.State{Version: 1, ClusterID: testcluster.ClusterID, Replicas: 3, Container: "default"}
	for i, a := range c.Addrs {
		st.Nodes = append(st.Nodes, localcluster.Node{Index: i + 1, Addr: a, Dir: fmt.Sprintf("node%d", i+1)})
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	keys := fmt.Sprintf("cluster %s\nadmin %s\n", hex.EncodeToString(testcluster.ClusterSecret), hex.EncodeToString(adminSecret))
	if err := os.WriteFile(filepath.Join(dir, "up.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys"), []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitCLI runs args until they succeed (a node may not know a key made
// a moment ago), for at most 20 s.
func waitCLI(t *testing.T, args []string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, errOut, st := cliRun(args...)
		if st == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("weft %q still fails: %s", args[:3], errOut)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCLIFails runs args until they fail with want in stderr, for at most
// 20 s.
func waitCLIFails(t *testing.T, args []string, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, errOut, st := cliRun(args...)
		if st == 1 && strings.Contains(errOut, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("weft %q: status %d, %s; want a failure with %q", args[:3], st, errOut, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// must2 returns the id of container name in the cluster key's map.
func must2(t *testing.T, c *testcluster.Cluster, name string) (clustermap.ContainerID, *clustermap.Map) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := c.Managers().Map(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	ct, ok := m.ContainerByName(name)
	if !ok {
		t.Fatalf("no container %s", name)
	}
	return ct.ID, m
}
