package clustermap

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"sort"
)

// Access is what a container key grants on its container. Stored in the
// map and sent on the wire: never renumber.
type Access uint8

const (
	// AccessRead: read the container's data and metadata.
	AccessRead Access = 1
	// AccessWrite: read and change them.
	AccessWrite Access = 2
	// AccessAdmin: AccessWrite, plus changing the container's policy and
	// creating and revoking the container's keys.
	AccessAdmin Access = 3
)

var accessNames = [...]string{AccessRead: "read", AccessWrite: "write", AccessAdmin: "admin"}

func (a Access) String() string {
	if a.Valid() {
		return accessNames[a]
	}
	return fmt.Sprintf("Access(%d)", uint8(a))
}

// Valid reports whether a is one of the defined accesses.
func (a Access) Valid() bool { return a >= AccessRead && a <= AccessAdmin }

// ParseAccess parses the String form of an access ("read", "write",
// "admin").
func ParseAccess(s string) (Access, error) {
	for a := AccessRead; a <= AccessAdmin; a++ {
		if accessNames[a] == s {
			return a, nil
		}
	}
	return 0, fmt.Errorf("%w: access %q (want read, write or admin)", ErrInvalid, s)
}

// Key is a container key as the map records it. The map holds no secret:
// the secret is KeySecret(cluster key secret, ID), which every node can
// compute and no one stores.
type Key struct {
	// ID is "k" followed by KeyIDHexLen lowercase hex digits (NewKeyID
	// draws them at random). IDs are unique and never reused: a revoked
	// key stays in the map with Revoked set, so CreateKey refuses its ID.
	ID        string
	Container ContainerID
	Access    Access
	// Created is the map epoch of the CreateKey that made the key.
	Created uint64
	// Revoked is the map epoch at which the key was revoked (RevokeKey,
	// or its container's deletion); 0 while the key is live.
	Revoked uint64
}

// Live reports whether k is not revoked.
func (k *Key) Live() bool { return k.Revoked == 0 }

// KeyIDHexLen is the number of hex digits after the "k" of a key ID.
const KeyIDHexLen = 16

// KeySecretLen is the length of a container key's secret.
const KeySecretLen = sha256.Size

// keyLabel separates container key secrets from any other use of the
// cluster key's secret. On-wire in effect (it fixes every container
// key's secret): never change it.
const keyLabel = "weft container key v1"

// NewKeyID returns a fresh key ID: "k" and 64 random bits in hex. The
// randomness, not only the map's refusal of known IDs, keeps two
// clusters that share a cluster key from handing out the same secret.
func NewKeyID() (string, error) {
	var b [KeyIDHexLen / 2]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		return "", fmt.Errorf("clustermap: new key id: %w", err)
	}
	return "k" + hex.EncodeToString(b[:]), nil
}

// CheckKeyID reports whether id has the form of a key ID.
func CheckKeyID(id string) error {
	if len(id) != 1+KeyIDHexLen || id[0] != 'k' {
		return fmt.Errorf("key id %q: want \"k\" and %d lowercase hex digits", id, KeyIDHexLen)
	}
	for i := 1; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("key id %q: byte %d (%q) is not a lowercase hex digit", id, i, c)
		}
	}
	return nil
}

// KeySecret returns the secret of container key id:
//
//	HMAC-SHA256(clusterSecret, "weft container key v1" || 0x00 || id)
//
// Every node holding the cluster key computes it; nothing stores it.
func KeySecret(clusterSecret []byte, id string) []byte {
	h := hmac.New(sha256.New, clusterSecret)
	io.WriteString(h, keyLabel)
	h.Write([]byte{0})
	io.WriteString(h, id)
	return h.Sum(nil)
}

// Key returns the key with the given ID, live or revoked.
func (m *Map) Key(id string) (*Key, bool) {
	i, ok := sort.Find(len(m.Keys), func(i int) int { return cmpString(id, m.Keys[i].ID) })
	if !ok {
		return nil, false
	}
	return &m.Keys[i], true
}

// KeysOfContainer returns the keys of container c (revoked ones too when
// all is set), sorted by ID. The keys are copies.
func (m *Map) KeysOfContainer(c ContainerID, all bool) []Key {
	var ks []Key
	for _, k := range m.Keys {
		if k.Container == c && (all || k.Live()) {
			ks = append(ks, k)
		}
	}
	return ks
}

// ForContainer returns the map as a key of container c may see it: the
// same epoch, counters, nodes and placement, but only container c and
// its PGs, and only c's keys when withKeys is set (none otherwise). The
// nodes stay: a client needs their addresses to reach c's PGs, and the
// PGs of other containers go with their containers, so the result passes
// Check. An unknown c gives a map without containers. The result shares
// nothing that callers may modify with m.
func (m *Map) ForContainer(c ContainerID, withKeys bool) *Map {
	r := &Map{Epoch: m.Epoch, NextContainer: m.NextContainer, NextPG: m.NextPG, FSID: m.FSID, Nodes: slices.Clone(m.Nodes)}
	if ct, ok := m.Container(c); ok {
		r.Containers = []Container{*ct}
		r.PGs = slices.Clone(m.PGsOfContainer(c))
		if withKeys {
			r.Keys = m.KeysOfContainer(c, true)
		}
	}
	return r
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Role is the kind of a key, which fixes what it may do (see Grant).
type Role uint8

const (
	// RoleCluster: the cluster key (node to node). Everything.
	RoleCluster Role = 1
	// RoleAdmin: a cluster admin key (a read-write key of a node's keys
	// file other than the cluster key): every container's data and
	// metadata, the whole map, and the operators' map commands
	// (containers, policies, keys, node states). Never raft, replication
	// peer batches, heartbeats, or the nodes' own commands.
	RoleAdmin Role = 2
	// RoleReader: a read-only key of a node's keys file: reads of every
	// container and the whole map.
	RoleReader Role = 3
	// RoleContainer: a container key of the map: its container only, as
	// its Access allows.
	RoleContainer Role = 4
)

func (r Role) String() string {
	switch r {
	case RoleCluster:
		return "cluster"
	case RoleAdmin:
		return "admin"
	case RoleReader:
		return "reader"
	case RoleContainer:
		return "container"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Grant is what one key may do. The servers ask an Authorizer for the
// Grant of each request's key (net.Peer.KeyID) and check it with these
// methods.
type Grant struct {
	Role      Role
	Container ContainerID // RoleContainer only
	Access    Access      // RoleContainer only
}

// Authorizer resolves key IDs to grants; a node implements it over its
// keys file and its current map. Implementations are safe for concurrent
// use. A server given a nil Authorizer checks nothing beyond the
// connection's read-only flag.
type Authorizer interface {
	// Grant returns the grant of key id, or false for a key the node
	// does not know (any more).
	Grant(keyID string) (Grant, bool)
}

// ReadsContainer reports whether g may read container c's data and
// metadata.
func (g Grant) ReadsContainer(c ContainerID) bool {
	switch g.Role {
	case RoleCluster, RoleAdmin, RoleReader:
		return true
	case RoleContainer:
		return g.Container == c && g.Access.Valid()
	}
	return false
}

// WritesContainer reports whether g may change container c's data and
// metadata.
func (g Grant) WritesContainer(c ContainerID) bool {
	switch g.Role {
	case RoleCluster, RoleAdmin:
		return true
	case RoleContainer:
		return g.Container == c && g.Access >= AccessWrite && g.Access.Valid()
	}
	return false
}

// CheckContainerAccess is the servers' check of a request on container
// c's data or metadata: nil when keyID may read it (or, with write,
// change it), else an error naming the key, its role and the container.
// A nil Authorizer allows everything (a server configured without one).
func CheckContainerAccess(a Authorizer, keyID string, c ContainerID, write bool) error {
	if a == nil {
		return nil
	}
	g, ok := a.Grant(keyID)
	switch {
	case !ok:
		return fmt.Errorf("access denied: key %q is unknown or revoked", keyID)
	case write && !g.WritesContainer(c):
		return fmt.Errorf("access denied: key %q (%v) may not change container %d", keyID, g.Role, c)
	case !write && !g.ReadsContainer(c):
		return fmt.Errorf("access denied: key %q (%v) may not read container %d", keyID, g.Role, c)
	}
	return nil
}

// Internal reports whether g may speak the nodes' internal protocols:
// raft messages, replication peer batches, heartbeats.
func (g Grant) Internal() bool { return g.Role == RoleCluster }

// AdministersKeys reports whether g may learn the secrets of container
// c's keys (the cluster and admin keys: any container's; a container
// admin key: its container's).
func (g Grant) AdministersKeys(c ContainerID) bool {
	switch g.Role {
	case RoleCluster, RoleAdmin:
		return true
	case RoleContainer:
		return g.Container == c && g.Access == AccessAdmin
	}
	return false
}

// MayApply returns nil when g may apply cmd to map m, or an error saying
// why not:
//
//   - the cluster key applies every command;
//   - an admin key applies CreateContainer, DeleteContainer, SetPolicy,
//     CreateKey, RevokeKey and SetNodeState (drain, undrain, out), not the
//     nodes' own AddNode, CaughtUp and NodeRestarted;
//   - a container admin key applies SetPolicy, CreateKey and RevokeKey
//     for its own container (RevokeKey of a key m does not hold is left
//     to Apply, which refuses it);
//   - other keys apply nothing.
func (g Grant) MayApply(m *Map, cmd Command) error {
	if g.Role == RoleCluster {
		return nil
	}
	kind := cmd.Kind()
	switch g.Role {
	case RoleAdmin:
		switch kind {
		case KindCreateContainer, KindDeleteContainer, KindSetPolicy, KindCreateKey, KindRevokeKey, KindSetNodeState:
			return nil
		}
		return fmt.Errorf("%v is a node's own command; an admin key may not apply it", kind)
	case RoleContainer:
		if g.Access != AccessAdmin {
			return fmt.Errorf("a %v key of container %d applies no map commands", g.Access, g.Container)
		}
		var target ContainerID
		switch c := deref(cmd).(type) {
		case SetPolicy:
			target = c.Container
		case CreateKey:
			target = c.Container
		case RevokeKey:
			k, ok := m.Key(c.ID)
			if !ok {
				return nil
			}
			target = k.Container
		default:
			return fmt.Errorf("%v needs a cluster admin key; a container admin key applies SetPolicy, CreateKey and RevokeKey of its container", kind)
		}
		if target != g.Container {
			return fmt.Errorf("%v for container %d with an admin key of container %d", kind, target, g.Container)
		}
		return nil
	}
	return fmt.Errorf("a %v key applies no map commands", g.Role)
}
