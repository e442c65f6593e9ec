package manager

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/net"
)

// fakeAccess is an Authorizer whose grants a test sets.
type fakeAccess struct {
	mu     sync.Mutex
	grants map[string]clustermap.Grant
}

func (a *fakeAccess) set(id string, g clustermap.Grant) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.grants == nil {
		a.grants = map[string]clustermap.Grant{}
	}
	a.grants[id] = g
}

func (a *fakeAccess) drop(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.grants, id)
}

func (a *fakeAccess) Grant(id string) (clustermap.Grant, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	g, ok := a.grants[id]
	return g, ok
}

func TestAccessDeniedCodeMatchesFsproto(t *testing.T) {
	if CodeAccessDenied != fsproto.CodeAccessDenied {
		t.Fatalf("manager.CodeAccessDenied %d, fsproto.CodeAccessDenied %d", CodeAccessDenied, fsproto.CodeAccessDenied)
	}
}

func TestSealRoundTrip(t *testing.T) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var pub [x25519PublicLen]byte
	copy(pub[:], priv.PublicKey().Bytes())
	const id = "k0123456789abcdef"
	secret := clustermap.KeySecret(testSecret, id)
	r, err := sealSecret(pub, id, secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(r.append(nil), secret) {
		t.Fatal("the reply carries the secret in the clear")
	}
	d, err := decodeKeySecretReply(r.append(nil))
	if err != nil {
		t.Fatal(err)
	}
	got, err := openSecret(priv, id, &d)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("opened %x, %v; want %x", got, err, secret)
	}
	// Another key id (the additional data and the HKDF info), a flipped
	// bit, or another caller's private key: no secret.
	if _, err := openSecret(priv, "k0000000000000000", &d); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("opened under another key id: %v", err)
	}
	bad := d
	bad.Sealed[3] ^= 1
	if _, err := openSecret(priv, id, &bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("opened a tampered reply: %v", err)
	}
	other, _ := ecdh.X25519().GenerateKey(rand.Reader)
	if _, err := openSecret(other, id, &d); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("opened with another private key: %v", err)
	}
	// An all-zero public key (a low-order point) is refused, not sealed
	// to a predictable key.
	if _, err := sealSecret([x25519PublicLen]byte{}, id, secret); err == nil {
		t.Fatal("sealed to the all-zero public key")
	}
}

func TestAuthorize(t *testing.T) {
	m := clustermap.New()
	for _, c := range []clustermap.Command{
		clustermap.AddNode{ID: 1, Addr: "a:1"},
		clustermap.CreateContainer{Name: "a", Policy: clustermap.Policy{Replicas: 1, PGCount: 1}},
		clustermap.CreateContainer{Name: "b", Policy: clustermap.Policy{Replicas: 1, PGCount: 1}},
		clustermap.CreateKey{ID: "k000000000000000a", Container: 1, Access: clustermap.AccessWrite},
		clustermap.CreateKey{ID: "k000000000000000b", Container: 2, Access: clustermap.AccessRead},
	} {
		var err error
		if m, err = m.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	var a fakeAccess
	a.set("cluster", clustermap.Grant{Role: clustermap.RoleCluster})
	a.set("admin", clustermap.Grant{Role: clustermap.RoleAdmin})
	a.set("ro", clustermap.Grant{Role: clustermap.RoleReader})
	a.set("aw", clustermap.Grant{Role: clustermap.RoleContainer, Container: 1, Access: clustermap.AccessWrite})
	a.set("aa", clustermap.Grant{Role: clustermap.RoleContainer, Container: 1, Access: clustermap.AccessAdmin})
	create := clustermap.CreateContainer{Name: "c"}
	for _, c := range []struct {
		key   string
		kind  net.Kind
		cmd   clustermap.Command
		keyID string
		ok    bool
	}{
		{"cluster", KindHeartbeat, nil, "", true},
		{"admin", KindHeartbeat, nil, "", false},
		{"aw", KindHeartbeat, nil, "", false},
		{"unknown", KindGetMap, nil, "", false},
		{"aw", KindGetMap, nil, "", true},
		{"ro", KindGetMap, nil, "", true},
		{"cluster", KindApply, clustermap.AddNode{ID: 2, Addr: "b:1"}, "", true},
		{"admin", KindApply, clustermap.AddNode{ID: 2, Addr: "b:1"}, "", false},
		{"admin", KindApply, create, "", true},
		{"ro", KindApply, create, "", false},
		{"aw", KindApply, create, "", false},
		{"aa", KindApply, clustermap.SetPolicy{Container: 1}, "", true},
		{"aa", KindApply, clustermap.SetPolicy{Container: 2}, "", false},
		{"cluster", KindKeySecret, nil, "k000000000000000b", true},
		{"admin", KindKeySecret, nil, "k000000000000000b", true},
		{"admin", KindKeySecret, nil, "k00000000000000ff", true}, // then not found
		{"aa", KindKeySecret, nil, "k000000000000000a", true},
		{"aa", KindKeySecret, nil, "k000000000000000b", false}, // container b's
		{"aa", KindKeySecret, nil, "k00000000000000ff", false}, // no probing
		{"aw", KindKeySecret, nil, "k000000000000000a", false},
		{"ro", KindKeySecret, nil, "k000000000000000a", false},
		{"cluster", net.Kind(399), nil, "", false},
	} {
		_, err := authorize(&a, &net.Peer{KeyID: c.key}, c.kind, m, c.cmd, c.keyID)
		if (err == nil) != c.ok {
			t.Errorf("key %s kind %d %#v %s: %v, want allowed %v", c.key, c.kind, c.cmd, c.keyID, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), c.key) {
			t.Errorf("refusal %q does not name the key %s", err, c.key)
		}
	}
	if g, err := authorize(nil, &net.Peer{KeyID: "x"}, KindApply, m, create, ""); err != nil || g.Role != clustermap.RoleCluster {
		t.Fatalf("nil Authorizer: %+v %v", g, err)
	}
}

// TestKeySecretAndReducedMap runs the RPCs against a real member: a
// container admin key gets its container's key secrets and a map of its
// container only; a write key and another container's admin key are
// refused the secret; an admin key cannot heartbeat or apply node
// commands; a key the Authorizer no longer knows is refused the map.
func TestKeySecretAndReducedMap(t *testing.T) {
	var a fakeAccess
	a.set(testKeyID, clustermap.Grant{Role: clustermap.RoleCluster})
	a.set(testReaderKey, clustermap.Grant{Role: clustermap.RoleReader})
	c := newTestCluster(t, 1, func(cfg *Config) { cfg.Access = &a; cfg.ClusterSecret = testSecret })
	ctx := testContext(t)
	cl := c.client()
	addNodes(t, ctx, cl, 1)
	for _, name := range []string{"a", "b"} {
		if _, err := cl.Apply(ctx, clustermap.CreateContainer{Name: name, Policy: clustermap.Policy{Replicas: 1, PGCount: 2}}); err != nil {
			t.Fatal(err)
		}
	}
	const ka, kb = "k00000000000000a1", "k00000000000000b1"
	for _, k := range []clustermap.CreateKey{{ID: ka, Container: 1, Access: clustermap.AccessWrite}, {ID: kb, Container: 2, Access: clustermap.AccessWrite}} {
		if _, err := cl.Apply(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	other := testPool(t, testOtherKey, nil, "client")
	defer other.Close()
	ocl := NewClient(c.addrs(), other)

	// The cluster key reads any secret; the reader key none.
	if s, err := cl.KeySecret(ctx, ka); err != nil || !bytes.Equal(s, clustermap.KeySecret(testSecret, ka)) {
		t.Fatalf("cluster key: secret %x, %v", s, err)
	}
	if _, err := NewClient(c.addrs(), c.roPool).KeySecret(ctx, ka); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("reader key: %v, want ErrAccessDenied", err)
	}
	if _, err := cl.KeySecret(ctx, "k00000000000000ff"); !errors.Is(err, clustermap.ErrNotFound) {
		t.Fatalf("unknown key: %v, want ErrNotFound", err)
	}

	a.set(testOtherKey, clustermap.Grant{Role: clustermap.RoleContainer, Container: 1, Access: clustermap.AccessAdmin})
	if s, err := ocl.KeySecret(ctx, ka); err != nil || !bytes.Equal(s, clustermap.KeySecret(testSecret, ka)) {
		t.Fatalf("container admin key, own container: %x, %v", s, err)
	}
	if _, err := ocl.KeySecret(ctx, kb); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("container admin key, other container: %v, want ErrAccessDenied", err)
	}
	m, err := ocl.Map(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Containers) != 1 || m.Containers[0].Name != "a" || len(m.Keys) != 1 || m.Keys[0].ID != ka {
		t.Fatalf("container a's admin key sees containers %v and keys %v", m.Containers, m.Keys)
	}
	// The map an apply answers with is reduced alike.
	m, err = ocl.Apply(ctx, clustermap.SetPolicy{Container: 1, Policy: clustermap.Policy{Replicas: 1, FailureDomain: "zone"}})
	if err != nil {
		t.Fatalf("container admin key setting its policy: %v", err)
	}
	if len(m.Containers) != 1 || m.Containers[0].Name != "a" {
		t.Fatalf("container a's admin key got an apply reply with containers %v", m.Containers)
	}
	if _, err := ocl.Apply(ctx, clustermap.CreateContainer{Name: "c", Policy: clustermap.Policy{Replicas: 1}}); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("container admin key creating a container: %v", err)
	}
	if _, err := ocl.Apply(ctx, clustermap.RevokeKey{ID: kb}); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("container admin key revoking another container's key: %v", err)
	}

	a.set(testOtherKey, clustermap.Grant{Role: clustermap.RoleContainer, Container: 1, Access: clustermap.AccessWrite})
	if _, err := ocl.KeySecret(ctx, ka); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("write key: %v, want ErrAccessDenied", err)
	}
	if m, err := ocl.Map(ctx, 0); err != nil || len(m.Containers) != 1 || len(m.Keys) != 0 {
		t.Fatalf("write key's map: %v, %v", m, err)
	}

	a.set(testOtherKey, clustermap.Grant{Role: clustermap.RoleAdmin})
	if err := ocl.Heartbeat(ctx, 1); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("admin key heartbeat: %v", err)
	}
	if _, err := ocl.Apply(ctx, clustermap.NodeRestarted{ID: 1}); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("admin key NodeRestarted: %v", err)
	}
	if _, err := ocl.Apply(ctx, clustermap.RevokeKey{ID: kb}); err != nil {
		t.Fatalf("admin key revoking: %v", err)
	}
	if _, err := ocl.KeySecret(ctx, kb); !errors.Is(err, clustermap.ErrNotFound) {
		t.Fatalf("secret of a revoked key: %v, want ErrNotFound", err)
	}

	a.drop(testOtherKey)
	if _, err := ocl.Map(ctx, 0); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("unknown key's map: %v", err)
	}
}

func FuzzDecodeKeySecretRequest(f *testing.F) {
	var r keySecretRequest
	r.KeyID = "k0123456789abcdef"
	r.Public[0] = 9
	f.Add(r.append(nil))
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeKeySecretRequest(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if again := r.append(nil); !bytes.Equal(again, b) {
			t.Fatalf("%x decodes to %+v, which encodes to %x", b, r, again)
		}
	})
}

func FuzzDecodeKeySecretReply(f *testing.F) {
	var r keySecretReply
	r.Public[0], r.Nonce[0], r.Sealed[0] = 1, 2, 3
	f.Add(r.append(nil))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeKeySecretReply(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if again := r.append(nil); !bytes.Equal(again, b) {
			t.Fatalf("%x decodes to %+v, which encodes to %x", b, r, again)
		}
		// A reply that decodes never opens under a fresh key, and
		// never panics trying.
		priv, _ := ecdh.X25519().GenerateKey(rand.Reader)
		if _, err := openSecret(priv, "k0123456789abcdef", &r); err == nil {
			t.Fatal("a random reply opened")
		}
	})
}
