package node

import (
	"sync"

	"github.com/weftfs/weft/fsproto/clustermap"
)

// keyring is a cluster-mode node's net.KeyStore and
// clustermap.Authorizer: the keys file first, then the live container
// keys of the newest map the node has seen, whose secrets it derives from
// the cluster key's (clustermap.KeySecret). Safe for concurrent use.
type keyring struct {
	file          map[string]fileKey
	clusterKeyID  string
	clusterSecret []byte

	mu struct {
		sync.RWMutex
		epoch uint64                    // of the map the container keys come from
		keys  map[string]clustermap.Key // live container keys by id
		// secrets caches derived secrets, so a handshake costs one map
		// lookup, not an HMAC. Entries go with their keys.
		secrets map[string][]byte
	}
}

// newKeyring returns a keyring over the keys file's keys; clusterKeyID
// must be one of them.
func newKeyring(keys []fileKey, clusterKeyID string) *keyring {
	r := &keyring{file: make(map[string]fileKey, len(keys)), clusterKeyID: clusterKeyID}
	for _, k := range keys {
		r.file[k.id] = k
	}
	ck, ok := r.file[clusterKeyID]
	if !ok {
		panic("node: keyring without the cluster key " + clusterKeyID) // check() refuses such a config
	}
	r.clusterSecret = ck.secret
	return r
}

// Lookup implements net.KeyStore: a keys file key, else a live container
// key of the newest map (read keys are read-only).
func (r *keyring) Lookup(id string) (secret []byte, readOnly bool, ok bool) {
	if k, ok := r.file[id]; ok {
		return k.secret, k.readOnly, true
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.mu.keys[id]
	if !ok {
		return nil, false, false
	}
	return r.mu.secrets[id], k.Access == clustermap.AccessRead, true
}

// Grant implements clustermap.Authorizer:
//
//	the cluster key (Config.ClusterKey)           RoleCluster
//	other read-write keys of the keys file        RoleAdmin
//	read-only ("ro") keys of the keys file        RoleReader
//	live container keys of the newest map         RoleContainer
func (r *keyring) Grant(id string) (clustermap.Grant, bool) {
	if k, ok := r.file[id]; ok {
		switch {
		case id == r.clusterKeyID:
			return clustermap.Grant{Role: clustermap.RoleCluster}, true
		case k.readOnly:
			return clustermap.Grant{Role: clustermap.RoleReader}, true
		}
		return clustermap.Grant{Role: clustermap.RoleAdmin}, true
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.mu.keys[id]
	if !ok {
		return clustermap.Grant{}, false
	}
	return clustermap.Grant{Role: clustermap.RoleContainer, Container: k.Container, Access: k.Access}, true
}

// update takes the container keys of m, unless the keyring has seen a
// newer map, and returns the ids of the keys that were live and are not
// any more (revoked, or their container deleted): the caller closes the
// connections authenticated with them. A map key whose id is also in the
// keys file is shadowed by the file's.
func (r *keyring) update(m *clustermap.Map) (gone []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.keys != nil && m.Epoch <= r.mu.epoch {
		return nil
	}
	keys := make(map[string]clustermap.Key, len(m.Keys))
	secrets := make(map[string][]byte, len(m.Keys))
	for _, k := range m.Keys {
		if !k.Live() {
			continue
		}
		if _, shadowed := r.file[k.ID]; shadowed {
			continue
		}
		keys[k.ID] = k
		if s, ok := r.mu.secrets[k.ID]; ok {
			secrets[k.ID] = s
		} else {
			secrets[k.ID] = clustermap.KeySecret(r.clusterSecret, k.ID)
		}
	}
	for id := range r.mu.keys {
		if _, ok := keys[id]; !ok {
			gone = append(gone, id)
		}
	}
	r.mu.epoch, r.mu.keys, r.mu.secrets = m.Epoch, keys, secrets
	return gone
}
