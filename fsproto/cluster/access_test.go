package cluster

import (
	"strings"
	"testing"

	"github.com/weftfs/weft/fsproto/clustermap"
)

type grantMap map[string]clustermap.Grant

func (g grantMap) Grant(id string) (clustermap.Grant, bool) { v, ok := g[id]; return v, ok }

func TestAuthorizeChunk(t *testing.T) {
	a := grantMap{
		"cluster": {Role: clustermap.RoleCluster},
		"admin":   {Role: clustermap.RoleAdmin},
		"ro":      {Role: clustermap.RoleReader},
		"aw":      {Role: clustermap.RoleContainer, Container: 1, Access: clustermap.AccessWrite},
		"ar":      {Role: clustermap.RoleContainer, Container: 1, Access: clustermap.AccessRead},
	}
	for _, c := range []struct {
		key         string
		c           clustermap.ContainerID
		read, write bool
	}{
		{"cluster", 2, true, true},
		{"admin", 2, true, true},
		{"ro", 2, true, false},
		{"aw", 1, true, true},
		{"aw", 2, false, false},
		{"ar", 1, true, false},
		{"ar", 2, false, false},
		{"revoked", 1, false, false},
	} {
		for _, write := range []bool{false, true} {
			want := c.read
			if write {
				want = c.write
			}
			err := authorizeChunk(a, c.key, c.c, write)
			if (err == nil) != want {
				t.Errorf("key %s container %d write %v: %v, want allowed %v", c.key, c.c, write, err, want)
			}
			if err != nil && !strings.Contains(err.Error(), c.key) {
				t.Errorf("refusal %q does not name the key", err)
			}
		}
	}
	if err := authorizeChunk(nil, "x", 1, true); err != nil {
		t.Fatal(err)
	}
}
