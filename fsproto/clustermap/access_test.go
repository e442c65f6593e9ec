package clustermap

import (
	"strings"
	"testing"
)

type grantMap map[string]Grant

func (g grantMap) Grant(id string) (Grant, bool) { v, ok := g[id]; return v, ok }

// TestCheckContainerAccess: the servers' one check of a request on a
// container's data or metadata, for every kind of key, reading and
// writing; refusals name the key.
func TestCheckContainerAccess(t *testing.T) {
	a := grantMap{
		"cluster": {Role: RoleCluster},
		"admin":   {Role: RoleAdmin},
		"ro":      {Role: RoleReader},
		"aw":      {Role: RoleContainer, Container: 1, Access: AccessWrite},
		"ar":      {Role: RoleContainer, Container: 1, Access: AccessRead},
		"aa":      {Role: RoleContainer, Container: 1, Access: AccessAdmin},
	}
	for _, c := range []struct {
		key         string
		c           ContainerID
		read, write bool
	}{
		{"cluster", 2, true, true},
		{"admin", 2, true, true},
		{"ro", 2, true, false},
		{"aw", 1, true, true},
		{"aw", 2, false, false},
		{"ar", 1, true, false},
		{"ar", 2, false, false},
		{"aa", 1, true, true},
		{"aa", 2, false, false},
		{"revoked", 1, false, false},
	} {
		for _, write := range []bool{false, true} {
			want := c.read
			if write {
				want = c.write
			}
			err := CheckContainerAccess(a, c.key, c.c, write)
			if (err == nil) != want {
				t.Errorf("key %s container %d write %v: %v, want allowed %v", c.key, c.c, write, err, want)
			}
			if err != nil && !strings.Contains(err.Error(), c.key) {
				t.Errorf("refusal %q does not name the key", err)
			}
		}
	}
	if err := CheckContainerAccess(nil, "x", 1, true); err != nil {
		t.Fatalf("nil Authorizer refused: %v", err)
	}
}
