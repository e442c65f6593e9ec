package raftgroup

import (
	"context"
	"errors"
	stdnet "net"
	"strings"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/net"
)

type grantMap map[string]clustermap.Grant

func (g grantMap) Grant(id string) (clustermap.Grant, bool) { v, ok := g[id]; return v, ok }

func TestAuthorizeBatch(t *testing.T) {
	a := grantMap{
		"cluster": {Role: clustermap.RoleCluster},
		"admin":   {Role: clustermap.RoleAdmin},
		"ck":      {Role: clustermap.RoleContainer, Container: 1, Access: clustermap.AccessAdmin},
	}
	for key, ok := range map[string]bool{"cluster": true, "admin": false, "ck": false, "gone": false} {
		err := authorizeBatch(a, key)
		if (err == nil) != ok {
			t.Errorf("key %s: %v, want allowed %v", key, err, ok)
		}
		if err != nil && !strings.Contains(err.Error(), key) {
			t.Errorf("refusal %q does not name key %s", err, key)
		}
	}
	if err := authorizeBatch(nil, "anything"); err != nil {
		t.Fatalf("nil Authorizer: %v", err)
	}
}

// TestNetRouterRefusesNonClusterKeys: over TCP, a batch sent with an
// admin key is answered CodeAccessDenied before it is decoded; the
// cluster key gets past the check (to the group lookup).
func TestNetRouterRefusesNonClusterKeys(t *testing.T) {
	var keys net.MemKeyStore
	keys.Add(testKeyID, testSecret, false)
	keys.Add("admin", testSecret, false)
	mux := net.NewServeMux()
	pool, err := net.NewPool(net.PoolConfig{Client: net.ClientConfig{ClusterID: testCluster, KeyID: testKeyID, Secret: testSecret, Logger: testLogger()}})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	access := grantMap{testKeyID: {Role: clustermap.RoleCluster}, "admin": {Role: clustermap.RoleAdmin}}
	if _, err := NewNetRouter(NetRouterConfig{Pool: pool, Mux: mux, Access: access, Logger: testLogger()}); err != nil {
		t.Fatal(err)
	}
	srv, err := net.NewServer(net.ServerConfig{ClusterID: testCluster, Keys: &keys, Logger: testLogger()}, mux)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		<-served
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hdr := encodeBatchHeader(batchHeader{count: 1, groupID: 99, to: 1})
	call := func(key string) error {
		conn, err := net.Dial(ctx, ln.Addr().String(), net.ClientConfig{ClusterID: testCluster, KeyID: key, Secret: testSecret, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		resp, err := conn.Call(ctx, KindRaft, hdr, []byte{1, 2, 3})
		if err == nil {
			resp.Release()
		}
		return err
	}
	var re *net.RemoteError
	if err := call("admin"); !errors.As(err, &re) || re.Code != CodeAccessDenied || !strings.Contains(re.Message, `"admin"`) {
		t.Fatalf("admin key: %v, want CodeAccessDenied naming the key", err)
	}
	if err := call(testKeyID); !errors.As(err, &re) || re.Code == CodeAccessDenied {
		t.Fatalf("cluster key: %v, want past the access check", err)
	}
}
