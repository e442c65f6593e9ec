package meta

import (
	"strings"
	"testing"

	"github.com/weftfs/weft/fsproto/clustermap"
)

type grantMap map[string]clustermap.Grant

func (g grantMap) Grant(id string) (clustermap.Grant, bool) { v, ok := g[id]; return v, ok }

func TestAuthorizeMeta(t *testing.T) {
	a := grantMap{
		"admin": {Role: clustermap.RoleAdmin},
		"ro":    {Role: clustermap.RoleReader},
		"aw":    {Role: clustermap.RoleContainer, Container: 1, Access: clustermap.AccessWrite},
		"ar":    {Role: clustermap.RoleContainer, Container: 1, Access: clustermap.AccessRead},
	}
	for _, c := range []struct {
		key         string
		c           clustermap.ContainerID
		read, write bool
	}{
		{"admin", 2, true, true},
		{"ro", 2, true, false},
		{"aw", 1, true, true},
		{"aw", 2, false, false},
		{"ar", 1, true, false},
		{"gone", 1, false, false},
	} {
		for _, write := range []bool{false, true} {
			want := c.read
			if write {
				want = c.write
			}
			err := authorizeMeta(a, c.key, c.c, write)
			if (err == nil) != want {
				t.Errorf("key %s container %d write %v: %v, want allowed %v", c.key, c.c, write, err, want)
			}
			if err != nil && !strings.Contains(err.Error(), c.key) {
				t.Errorf("refusal %q does not name the key", err)
			}
		}
	}
	if authorizeMeta(nil, "x", 1, true) != nil {
		t.Fatal("nil Authorizer refused")
	}
}
