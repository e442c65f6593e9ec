package node

import (
	"bytes"
	"slices"
	"testing"

	"github.com/weftfs/weft/fsproto/clustermap"
)

func TestKeyring(t *testing.T) {
	file := []fileKey{
		{id: "cluster", secret: []byte("cluster-secret")},
		{id: "admin", secret: []byte("admin-secret")},
		{id: "ro", secret: []byte("ro-secret"), readOnly: true},
	}
	r := newKeyring(file, "cluster")
	for id, want := range map[string]clustermap.Role{"cluster": clustermap.RoleCluster, "admin": clustermap.RoleAdmin, "ro": clustermap.RoleReader} {
		if g, ok := r.Grant(id); !ok || g.Role != want {
			t.Errorf("grant of %s: %+v %v, want role %v", id, g, ok, want)
		}
	}
	const kw, kr = "k00000000000000a1", "k00000000000000a2"
	if _, _, ok := r.Lookup(kw); ok {
		t.Fatal("a container key before any map")
	}
	m := clustermap.New()
	for _, c := range []clustermap.Command{
		clustermap.AddNode{ID: 1, Addr: "a:1"},
		clustermap.CreateContainer{Name: "a", Policy: clustermap.Policy{Replicas: 1, PGCount: 1}},
		clustermap.CreateKey{ID: kw, Container: 1, Access: clustermap.AccessWrite},
		clustermap.CreateKey{ID: kr, Container: 1, Access: clustermap.AccessRead},
	} {
		var err error
		if m, err = m.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	if gone := r.update(m); len(gone) != 0 {
		t.Fatalf("first map: gone %v", gone)
	}
	s, ro, ok := r.Lookup(kw)
	if !ok || ro || !bytes.Equal(s, clustermap.KeySecret([]byte("cluster-secret"), kw)) {
		t.Fatalf("write key: %x %v %v", s, ro, ok)
	}
	if _, ro, ok := r.Lookup(kr); !ok || !ro {
		t.Fatalf("read key: read-only %v, known %v", ro, ok)
	}
	if g, ok := r.Grant(kr); !ok || g != (clustermap.Grant{Role: clustermap.RoleContainer, Container: 1, Access: clustermap.AccessRead}) {
		t.Fatalf("read key grant %+v %v", g, ok)
	}
	older := m
	m, _ = m.Apply(clustermap.RevokeKey{ID: kw})
	if gone := r.update(m); !slices.Equal(gone, []string{kw}) {
		t.Fatalf("revocation: gone %v", gone)
	}
	if _, _, ok := r.Lookup(kw); ok {
		t.Fatal("revoked key still looked up")
	}
	if _, ok := r.Grant(kw); ok {
		t.Fatal("revoked key still granted")
	}
	// An older map (a lagging member's answer) brings nothing back.
	if gone := r.update(older); gone != nil {
		t.Fatalf("older map: %v", gone)
	}
	if _, _, ok := r.Lookup(kw); ok {
		t.Fatal("an older map revived a revoked key")
	}
	m, _ = m.Apply(clustermap.DeleteContainer{ID: 1})
	if gone := r.update(m); !slices.Equal(gone, []string{kr}) {
		t.Fatalf("container deleted: gone %v", gone)
	}
}
