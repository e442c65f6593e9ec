package clustermap

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// TestKeySecretVector pins the derivation: every node computes the same
// secret from the cluster secret, so a change here would lock every
// container key out.
func TestKeySecretVector(t *testing.T) {
	got := hex.EncodeToString(KeySecret([]byte("cluster-secret"), "k0123456789abcdef"))
	// Computed independently: Python's hmac.new(b"cluster-secret",
	// b"weft container key v1\x00k0123456789abcdef", hashlib.sha256).
	const want = "d31452efcd4f02babfe7e25078a9835521c465a4dd7929017bb69fd93710510e"
	if got != want {
		t.Fatalf("KeySecret = %s, want %s", got, want)
	}
	if a, b := KeySecret([]byte("s"), "k0000000000000001"), KeySecret([]byte("s"), "k0000000000000002"); string(a) == string(b) {
		t.Fatal("two ids share a secret")
	}
	if a, b := KeySecret([]byte("s1"), "k0000000000000001"), KeySecret([]byte("s2"), "k0000000000000001"); string(a) == string(b) {
		t.Fatal("two cluster secrets give one key secret")
	}
}

func TestNewKeyID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		id, err := NewKeyID()
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckKeyID(id); err != nil {
			t.Fatal(err)
		}
		if seen[id] {
			t.Fatalf("id %s drawn twice", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "k", "x0123456789abcdef", "k0123456789ABCDEF", "k0123456789abcde", "k0123456789abcdef0"} {
		if CheckKeyID(bad) == nil {
			t.Errorf("CheckKeyID(%q) accepted", bad)
		}
	}
}

func TestKeyCommands(t *testing.T) {
	m := sampleMap(t) // keys a1 (db write), b2 (logs.v2 admin), c3 (db read, revoked)
	const fresh = "k00000000000000d4"
	for _, c := range []struct {
		cmd  Command
		want error
	}{
		{CreateKey{ID: "k00000000000000a1", Container: 1, Access: AccessRead}, ErrExists},
		{CreateKey{ID: "k00000000000000c3", Container: 1, Access: AccessRead}, ErrExists}, // revoked: never reused
		{CreateKey{ID: "kzz", Container: 1, Access: AccessRead}, ErrInvalid},
		{CreateKey{ID: fresh, Container: 1, Access: 0}, ErrInvalid},
		{CreateKey{ID: fresh, Container: 99, Access: AccessRead}, ErrNotFound},
		{RevokeKey{ID: "k00000000000000c3"}, ErrNoChange},
		{RevokeKey{ID: fresh}, ErrNotFound},
	} {
		if _, err := m.Apply(c.cmd); !errors.Is(err, c.want) {
			t.Errorf("%#v: %v, want %v", c.cmd, err, c.want)
		}
	}
	next := mustApply(t, m, CreateKey{ID: fresh, Container: 1, Access: AccessRead})
	if k, ok := next.Key(fresh); !ok || k.Created != next.Epoch || !k.Live() {
		t.Fatalf("created key %+v %v", k, ok)
	}
	// Deleting db revokes its live keys and leaves logs.v2's alone.
	del := mustApply(t, next, DeleteContainer{ID: 1})
	for _, id := range []string{"k00000000000000a1", fresh} {
		if k, _ := del.Key(id); k.Live() || k.Revoked != del.Epoch {
			t.Errorf("key %s of the deleted container: %+v", id, k)
		}
	}
	if k, _ := del.Key("k00000000000000b2"); !k.Live() {
		t.Errorf("key of another container revoked: %+v", k)
	}
	if err := checkAll(next, del, DeleteContainer{ID: 1}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(del.String(), "key k00000000000000a1 container 1 write created") {
		t.Errorf("String lacks the keys:\n%s", del)
	}
}

func TestForContainer(t *testing.T) {
	m := sampleMap(t)
	db, _ := m.ContainerByName("db")
	r := m.ForContainer(db.ID, true)
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.ContainerByName("logs.v2"); ok || len(r.Containers) != 1 {
		t.Fatalf("reduced map holds %v", r.Containers)
	}
	if len(r.PGs) != int(db.Policy.PGCount) || len(r.Nodes) != len(m.Nodes) || r.Epoch != m.Epoch {
		t.Fatalf("reduced map: %d pgs, %d nodes, epoch %d", len(r.PGs), len(r.Nodes), r.Epoch)
	}
	for _, k := range r.Keys {
		if k.Container != db.ID {
			t.Fatalf("reduced map shows key %+v of another container", k)
		}
	}
	if len(r.Keys) != 2 {
		t.Fatalf("reduced map has keys %v, want db's two", r.Keys)
	}
	if b := encode(t, r); len(b) == 0 {
		t.Fatal("empty encoding")
	}
	if r := m.ForContainer(db.ID, false); len(r.Keys) != 0 {
		t.Fatalf("keys without withKeys: %v", r.Keys)
	}
	if r := m.ForContainer(99, true); len(r.Containers) != 0 || len(r.PGs) != 0 || r.Check() != nil {
		t.Fatalf("unknown container: %v", r)
	}
	// The reduction shares nothing with m that a caller may modify.
	r.Nodes[0].Addr = "changed:1"
	if m.Nodes[0].Addr == "changed:1" {
		t.Fatal("ForContainer aliases the nodes")
	}
}

func TestGrant(t *testing.T) {
	m := sampleMap(t)
	cluster := Grant{Role: RoleCluster}
	admin := Grant{Role: RoleAdmin}
	reader := Grant{Role: RoleReader}
	w1 := Grant{Role: RoleContainer, Container: 1, Access: AccessWrite}
	r1 := Grant{Role: RoleContainer, Container: 1, Access: AccessRead}
	a2 := Grant{Role: RoleContainer, Container: 2, Access: AccessAdmin}
	for _, c := range []struct {
		g                Grant
		r1, w1, r2, w2   bool
		internal, keysOf bool
	}{
		{cluster, true, true, true, true, true, true},
		{admin, true, true, true, true, false, true},
		{reader, true, false, true, false, false, false},
		{w1, true, true, false, false, false, false},
		{r1, true, false, false, false, false, false},
		{a2, false, false, true, true, false, false},
		{Grant{}, false, false, false, false, false, false},
	} {
		got := [6]bool{c.g.ReadsContainer(1), c.g.WritesContainer(1), c.g.ReadsContainer(2), c.g.WritesContainer(2), c.g.Internal(), c.g.AdministersKeys(1)}
		want := [6]bool{c.r1, c.w1, c.r2, c.w2, c.internal, c.keysOf}
		if got != want {
			t.Errorf("%+v: reads/writes 1, reads/writes 2, internal, keys of 1 = %v, want %v", c.g, got, want)
		}
	}
	for _, c := range []struct {
		g   Grant
		cmd Command
		ok  bool
	}{
		{cluster, AddNode{ID: 1, Addr: "x:1"}, true},
		{admin, AddNode{ID: 1, Addr: "x:1"}, false},
		{admin, CaughtUp{}, false},
		{admin, NodeRestarted{ID: 1}, false},
		{admin, CreateContainer{Name: "n"}, true},
		{admin, SetNodeState{ID: 3, State: Draining}, true},
		{admin, RevokeKey{ID: "k00000000000000a1"}, true},
		{reader, CreateContainer{Name: "n"}, false},
		{w1, SetPolicy{Container: 1}, false},
		{w1, CreateKey{ID: "k00000000000000d4", Container: 1, Access: AccessRead}, false},
		{a2, SetPolicy{Container: 2}, true},
		{a2, SetPolicy{Container: 1}, false},
		{a2, CreateKey{ID: "k00000000000000d4", Container: 2, Access: AccessRead}, true},
		{a2, CreateKey{ID: "k00000000000000d4", Container: 1, Access: AccessRead}, false},
		{a2, RevokeKey{ID: "k00000000000000b2"}, true},
		{a2, RevokeKey{ID: "k00000000000000a1"}, false}, // db's key
		{a2, DeleteContainer{ID: 2}, false},
		{a2, CreateContainer{Name: "n"}, false},
	} {
		if err := c.g.MayApply(m, c.cmd); (err == nil) != c.ok {
			t.Errorf("%+v may apply %#v: %v, want allowed %v", c.g, c.cmd, err, c.ok)
		}
	}
}
