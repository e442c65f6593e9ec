package clustermap

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sort"
)

// Sentinel errors. Apply and the decoders wrap them with a message naming
// the object; test them with errors.Is.
var (
	// ErrNotFound: a command names a node, container or PG the map does
	// not hold.
	ErrNotFound = errors.New("clustermap: not found")
	// ErrExists: a command would create a second object with a name or
	// address another one already has.
	ErrExists = errors.New("clustermap: already exists")
	// ErrInvalid: a command or policy carries a value out of its range
	// (the message names the value and the range).
	ErrInvalid = errors.New("clustermap: invalid")
	// ErrNoChange: a command is valid but would change nothing; the map
	// and its epoch stay as they are. Callers that retry commands treat it
	// as success.
	ErrNoChange = errors.New("clustermap: no change")
	// ErrStaleEpoch: a command carries a PG epoch older than the PG's
	// current one; the sender must refresh its map and decide again.
	ErrStaleEpoch = errors.New("clustermap: stale epoch")
	// ErrCorrupt: bytes given to a decoder are not a valid encoding (bad
	// magic, version, checksum, length, or a value that breaks an
	// invariant). Every decoder error wraps it, so callers can tell bad
	// bytes apart from I/O failures.
	ErrCorrupt = errors.New("clustermap: corrupt encoding")
)

// NodeID names a storage node. 0 is invalid.
type NodeID uint64

// ContainerID names a data container; it equals fsproto.ChunkID.Container.
// 0 is invalid. IDs are never reused, even after a container is deleted.
type ContainerID uint64

// PGID names a placement group. It is unique across all containers (it is
// the engine's PG field) and never reused. 0 is invalid.
type PGID uint32

// NodeState is a node's membership state. Stored and sent on the wire:
// never renumber.
type NodeState uint8

const (
	// Up: the node heartbeats and is eligible for new replicas.
	Up NodeState = 1
	// Down: the node missed its heartbeats. It keeps its data and may come
	// back, but it is dropped from every PG at once and replaced.
	Down NodeState = 2
	// Draining: the operator asked to move the node's data away. It stays
	// a replica (and serves) of each PG until a replacement has caught up.
	Draining NodeState = 3
	// Out: the node is removed. It holds no replica; its ID stays taken.
	Out NodeState = 4
)

var nodeStateNames = [...]string{Up: "up", Down: "down", Draining: "draining", Out: "out"}

func (s NodeState) String() string {
	if s >= Up && s <= Out {
		return nodeStateNames[s]
	}
	return fmt.Sprintf("NodeState(%d)", uint8(s))
}

// Valid reports whether s is one of the defined states.
func (s NodeState) Valid() bool { return s >= Up && s <= Out }

// ParseNodeState parses the String form of a state ("up", "down",
// "draining", "out").
func ParseNodeState(s string) (NodeState, error) {
	for st := Up; st <= Out; st++ {
		if nodeStateNames[st] == s {
			return st, nil
		}
	}
	return 0, fmt.Errorf("%w: node state %q (want up, down, draining or out)", ErrInvalid, s)
}

// Node is one storage node of the cluster.
type Node struct {
	ID   NodeID
	Addr string // host:port of its chunk server; unique among nodes not Out
	// Labels place the node in failure domains and match policies'
	// selectors, e.g. site=par1, zone=a, rack=r12, media=nvme.
	Labels   map[string]string
	Capacity uint64 // bytes
	State    NodeState
}

// Policy says how a container's data is placed.
type Policy struct {
	// Replicas is the replication factor, 1..5.
	Replicas int
	// Selector restricts placement to nodes whose labels hold every
	// key=value pair; empty means any node.
	Selector map[string]string
	// FailureDomain is the label key whose distinct values a PG's
	// replicas occupy (e.g. "zone"); a node without that label is not
	// eligible. "" makes each node its own domain.
	FailureDomain string
	// PGCount is the number of PGs of the container: a power of two,
	// 1..PGCountMax. Fixed at creation (it maps chunks to PGs).
	PGCount uint32
	// ChunkSize is the size of a file chunk in bytes: a power of two,
	// ChunkSizeMin..ChunkSizeMax. Fixed at creation.
	ChunkSize uint32
}

// Limits and defaults. Changing a limit changes which maps and commands
// decode; only ever widen them.
const (
	ReplicasMax      = 5
	PGCountDefault   = 64
	PGCountMax       = 1 << 16
	ChunkSizeDefault = 4 << 20
	ChunkSizeMin     = 64 << 10
	ChunkSizeMax     = 64 << 20
	NameLenMax       = 128
	AddrLenMax       = 255
	LabelsMax        = 32  // per node, and per selector
	LabelKeyLenMax   = 63  // label keys and FailureDomain
	LabelValueLenMax = 255 // label values (may be empty)
)

// WithDefaults returns p with a zero PGCount or ChunkSize replaced by its
// default.
func (p Policy) WithDefaults() Policy {
	if p.PGCount == 0 {
		p.PGCount = PGCountDefault
	}
	if p.ChunkSize == 0 {
		p.ChunkSize = ChunkSizeDefault
	}
	return p
}

// Validate reports every problem of p at once, each naming the value given
// and the range expected; the error wraps ErrInvalid. Apply validates
// p.WithDefaults(), so zero PGCount and ChunkSize are fine there.
func (p Policy) Validate() error {
	var errs []error
	if p.Replicas < 1 || p.Replicas > ReplicasMax {
		errs = append(errs, fmt.Errorf("replicas %d not in 1..%d", p.Replicas, ReplicasMax))
	}
	if p.PGCount == 0 || p.PGCount > PGCountMax || bits.OnesCount32(p.PGCount) != 1 {
		errs = append(errs, fmt.Errorf("pg count %d is not a power of two in 1..%d", p.PGCount, PGCountMax))
	}
	if p.ChunkSize < ChunkSizeMin || p.ChunkSize > ChunkSizeMax || bits.OnesCount32(p.ChunkSize) != 1 {
		errs = append(errs, fmt.Errorf("chunk size %d is not a power of two in %d..%d", p.ChunkSize, ChunkSizeMin, ChunkSizeMax))
	}
	if p.FailureDomain != "" {
		if err := checkLabelKey(p.FailureDomain); err != nil {
			errs = append(errs, fmt.Errorf("failure domain: %v", err))
		}
	}
	if err := checkLabels("selector", p.Selector); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: policy: %w", ErrInvalid, errors.Join(errs...))
}

// Container is a data container: an isolated namespace with its policy.
// It owns the PGs [FirstPG, FirstPG+Policy.PGCount).
type Container struct {
	ID      ContainerID
	Name    string // 1..NameLenMax characters of [a-zA-Z0-9._-], unique
	Policy  Policy
	FirstPG PGID
	// MetaMembers are the nodes of the container's metadata group
	// (package meta), at most MetaMembersMax, distinct, none Out, in the
	// order they were chosen. CreateContainer records them; only map
	// commands change them (see "Metadata groups" in the package doc), so
	// a node added later does not move an existing group. Empty for a
	// container that no node can hold yet, and for every container of a
	// map decoded from a version 1 or 2 encoding, which did not record
	// them: the next command Apply takes fills them in.
	MetaMembers []NodeID
	// MetaBootstrap is the membership the group starts with: the first
	// MetaMembers the container got. It never changes afterwards. Only
	// its nodes may bootstrap the group (with exactly these peers, so
	// their bootstrap entries agree); a member added later joins the
	// running group. Empty iff MetaMembers is.
	MetaBootstrap []NodeID
	// MetaFormed records that the group has committed past its
	// bootstrap entries (MarkMetaFormed, sent by its leader): from then
	// on no node bootstraps it again, whatever its own raft log and its
	// peers' answers say, so that bootstrap members that all lost their
	// logs at once cannot start an empty namespace in its place (see
	// package meta). Only set with a bootstrap set, and cleared only
	// with it: when every member went Out (the operator's verdict that
	// their nodes and logs are gone) and no node could take their place,
	// so that a later group starts afresh.
	MetaFormed bool
}

// PGs returns the first PG of c and one past its last.
func (c Container) PGs() (first, end PGID) {
	return c.FirstPG, c.FirstPG + PGID(c.Policy.PGCount)
}

// PGState summarises a PG's health. It is derived, never stored.
type PGState uint8

const (
	// Active: the PG has its policy's number of replicas, all caught up.
	Active PGState = iota + 1
	// Degraded: fewer replicas than the policy asks for (or none).
	Degraded
	// Backfilling: enough replicas, but some have not caught up yet.
	Backfilling
)

func (s PGState) String() string {
	switch s {
	case Active:
		return "active"
	case Degraded:
		return "degraded"
	case Backfilling:
		return "backfilling"
	}
	return fmt.Sprintf("PGState(%d)", uint8(s))
}

// PG is a placement group: the unit of replication.
type PG struct {
	ID        PGID
	Container ContainerID
	// Epoch is the map epoch at which Replicas or Backfilling last
	// changed. A request carrying PG epoch e is current iff e == Epoch.
	Epoch uint64
	// Replicas is ordered: [0] is the primary. Invariant: no replica that
	// is not backfilling comes after one that is, so the primary has the
	// data whenever any replica has it. During a drain or a policy change
	// the list may hold more nodes than the policy's Replicas: the
	// retiring ones stay until their replacements caught up.
	Replicas []NodeID
	// Backfilling holds the replicas (a subset of Replicas, in the same
	// order) that joined and have not yet confirmed with CaughtUp that
	// they hold the PG's data.
	Backfilling []NodeID
}

// Primary returns the PG's primary replica, or 0 if it has none.
func (pg *PG) Primary() NodeID {
	if len(pg.Replicas) == 0 {
		return 0
	}
	return pg.Replicas[0]
}

// IsBackfilling reports whether n is one of pg's backfilling replicas.
func (pg *PG) IsBackfilling(n NodeID) bool { return slices.Contains(pg.Backfilling, n) }

// HasReplica reports whether n is one of pg's replicas.
func (pg *PG) HasReplica(n NodeID) bool { return slices.Contains(pg.Replicas, n) }

// State reports pg's health under the policy of its container. A PG with
// retiring replicas (draining nodes) that still waits for replacements is
// Backfilling or Degraded by the count of its other replicas; Map.PGState
// knows the nodes and says which.
func (pg *PG) State(p Policy) PGState {
	if len(pg.Replicas) == 0 || len(pg.Replicas) < p.Replicas {
		return Degraded
	}
	if len(pg.Backfilling) > 0 {
		return Backfilling
	}
	return Active
}

// Map is the cluster map: what the managers replicate and what nodes and
// clients cache. Nodes, Containers and PGs are sorted by ID, so iteration
// is deterministic. A *Map handed out by Apply or a decoder is never
// modified afterwards: treat it (slices and label maps included) as
// read-only and share it freely between goroutines.
type Map struct {
	// Epoch grows by one with every command that changes the map.
	Epoch uint64
	// NextContainer and NextPG are the IDs the next container gets; they
	// only grow, so an ID is never reused.
	NextContainer ContainerID
	NextPG        PGID
	Nodes         []Node
	Containers    []Container
	PGs           []PG
	// Keys are the container keys, live and revoked, sorted by ID.
	Keys []Key
	// FSID names this map's history: random, set once by the managers'
	// first leader (SetFSID) and never changed. A node records the FSID of
	// the map it joined and refuses a map with another one, such as an
	// empty map that managers who lost every raft log started afresh,
	// rather than serve its data under someone else's containers. Zero in
	// a map made before it existed, until the leader sets it.
	FSID FSID
}

// FSID is a map's random identity (Map.FSID).
type FSID [16]byte

// IsZero reports whether id is unset.
func (id FSID) IsZero() bool { return id == FSID{} }

// String formats id as 32 hex digits in groups (8-4-4-4-12).
func (id FSID) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:16])
}

// New returns the empty map at epoch 0.
func New() *Map { return &Map{NextContainer: 1, NextPG: 1} }

// Node returns the node with the given ID.
func (m *Map) Node(id NodeID) (*Node, bool) {
	i, ok := sort.Find(len(m.Nodes), func(i int) int { return cmpU64(uint64(id), uint64(m.Nodes[i].ID)) })
	if !ok {
		return nil, false
	}
	return &m.Nodes[i], true
}

// Container returns the container with the given ID.
func (m *Map) Container(id ContainerID) (*Container, bool) {
	i, ok := sort.Find(len(m.Containers), func(i int) int { return cmpU64(uint64(id), uint64(m.Containers[i].ID)) })
	if !ok {
		return nil, false
	}
	return &m.Containers[i], true
}

// ContainerByName returns the container with the given name.
func (m *Map) ContainerByName(name string) (*Container, bool) {
	for i := range m.Containers {
		if m.Containers[i].Name == name {
			return &m.Containers[i], true
		}
	}
	return nil, false
}

// PG returns the PG with the given ID.
func (m *Map) PG(id PGID) (*PG, bool) {
	i, ok := sort.Find(len(m.PGs), func(i int) int { return cmpU64(uint64(id), uint64(m.PGs[i].ID)) })
	if !ok {
		return nil, false
	}
	return &m.PGs[i], true
}

// PGsOfContainer returns the PGs of container c, sorted by ID; the slice
// aliases the map.
func (m *Map) PGsOfContainer(c ContainerID) []PG {
	ct, ok := m.Container(c)
	if !ok {
		return nil
	}
	first, end := ct.PGs()
	lo, _ := sort.Find(len(m.PGs), func(i int) int { return cmpU64(uint64(first), uint64(m.PGs[i].ID)) })
	hi, _ := sort.Find(len(m.PGs), func(i int) int { return cmpU64(uint64(end), uint64(m.PGs[i].ID)) })
	return m.PGs[lo:hi]
}

// PGsOfNode returns the IDs of the PGs that have n as a replica, sorted.
func (m *Map) PGsOfNode(n NodeID) []PGID {
	var ids []PGID
	for i := range m.PGs {
		if m.PGs[i].HasReplica(n) {
			ids = append(ids, m.PGs[i].ID)
		}
	}
	return ids
}

// Locate returns the PG that holds chunk (inode, index) of container c.
func (m *Map) Locate(c ContainerID, inode, index uint64) (*PG, error) {
	ct, ok := m.Container(c)
	if !ok {
		return nil, fmt.Errorf("%w: container %d", ErrNotFound, c)
	}
	id := PGOf(*ct, inode, index)
	pg, ok := m.PG(id)
	if !ok {
		panic(fmt.Sprintf("clustermap: container %d maps a chunk to pg %d, which the map lacks", c, id))
	}
	return pg, nil
}

// PGState returns pg's health. Unlike PG.State it counts only active
// replicas (Up, matching the policy, in distinct failure domains), not
// the retiring ones that stay while a drain or policy change completes.
func (m *Map) PGState(pg *PG) PGState {
	ct, ok := m.Container(pg.Container)
	if !ok {
		return Degraded
	}
	active, _ := m.activeReplicas(pg, &ct.Policy)
	if active == 0 || active < ct.Policy.Replicas {
		return Degraded
	}
	if len(pg.Backfilling) > 0 {
		return Backfilling
	}
	return Active
}

// activeReplicas counts pg's active replicas (Up, accepted by DomainOf,
// first in their domain; caught-up ones claim domains first, as in
// Reconcile), and how many of those are caught up.
func (m *Map) activeReplicas(pg *PG, p *Policy) (active, caughtUp int) {
	claimed := make(map[string]bool, len(pg.Replicas))
	for _, wantBackfill := range [2]bool{false, true} {
		for _, r := range pg.Replicas {
			if pg.IsBackfilling(r) != wantBackfill {
				continue
			}
			n, ok := m.Node(r)
			if !ok || n.State != Up {
				continue
			}
			if d, ok := DomainOf(n, p); ok && !claimed[d] {
				claimed[d] = true
				active++
				if !wantBackfill {
					caughtUp++
				}
			}
		}
	}
	return active, caughtUp
}

// Clone returns a deep copy of m.
func (m *Map) Clone() *Map {
	c := &Map{Epoch: m.Epoch, NextContainer: m.NextContainer, NextPG: m.NextPG, FSID: m.FSID}
	c.Nodes = make([]Node, len(m.Nodes))
	for i, n := range m.Nodes {
		n.Labels = cloneLabels(n.Labels)
		c.Nodes[i] = n
	}
	c.Containers = make([]Container, len(m.Containers))
	for i, ct := range m.Containers {
		ct.Policy.Selector = cloneLabels(ct.Policy.Selector)
		ct.MetaMembers = slices.Clone(ct.MetaMembers)
		ct.MetaBootstrap = slices.Clone(ct.MetaBootstrap)
		c.Containers[i] = ct
	}
	c.PGs = make([]PG, len(m.PGs))
	for i, pg := range m.PGs {
		pg.Replicas = slices.Clone(pg.Replicas)
		pg.Backfilling = slices.Clone(pg.Backfilling)
		c.PGs[i] = pg
	}
	c.Keys = slices.Clone(m.Keys)
	return c
}

func cloneLabels(l map[string]string) map[string]string {
	if len(l) == 0 {
		return nil
	}
	c := make(map[string]string, len(l))
	for k, v := range l {
		c[k] = v
	}
	return c
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func labelChar(c byte, extra string) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	for i := 0; i < len(extra); i++ {
		if extra[i] == c {
			return true
		}
	}
	return false
}

func checkChars(what, s string, extra string) error {
	for i := 0; i < len(s); i++ {
		if !labelChar(s[i], extra) {
			return fmt.Errorf("%s %q: byte %d (%q) not in [a-zA-Z0-9%s]", what, s, i, s[i], extra)
		}
	}
	return nil
}

func checkLabelKey(k string) error {
	if len(k) == 0 || len(k) > LabelKeyLenMax {
		return fmt.Errorf("label key %q: length %d not in 1..%d", k, len(k), LabelKeyLenMax)
	}
	return checkChars("label key", k, "._/-")
}

func checkLabels(what string, l map[string]string) error {
	if len(l) > LabelsMax {
		return fmt.Errorf("%s: %d labels, at most %d", what, len(l), LabelsMax)
	}
	for _, k := range sortedKeys(l) {
		if err := checkLabelKey(k); err != nil {
			return fmt.Errorf("%s: %v", what, err)
		}
		v := l[k]
		if len(v) > LabelValueLenMax {
			return fmt.Errorf("%s: label %s: value length %d over %d", what, k, len(v), LabelValueLenMax)
		}
		if err := checkChars("label value", v, "._/:-"); err != nil {
			return fmt.Errorf("%s: label %s: %v", what, k, err)
		}
	}
	return nil
}

func sortedKeys(l map[string]string) []string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func checkName(name string) error {
	if len(name) == 0 || len(name) > NameLenMax {
		return fmt.Errorf("container name %q: length %d not in 1..%d", name, len(name), NameLenMax)
	}
	return checkChars("container name", name, "._-")
}

func checkAddr(addr string) error {
	if len(addr) == 0 || len(addr) > AddrLenMax {
		return fmt.Errorf("address %q: length %d not in 1..%d", addr, len(addr), AddrLenMax)
	}
	for i := 0; i < len(addr); i++ {
		if addr[i] <= ' ' || addr[i] >= 0x7f {
			return fmt.Errorf("address %q: byte %d (%#x) is not printable ASCII", addr, i, addr[i])
		}
	}
	return nil
}

func checkNode(n *Node) error {
	if n.ID == 0 {
		return errors.New("node id 0")
	}
	if err := checkAddr(n.Addr); err != nil {
		return fmt.Errorf("node %d: %v", n.ID, err)
	}
	if err := checkLabels(fmt.Sprintf("node %d labels", n.ID), n.Labels); err != nil {
		return err
	}
	if !n.State.Valid() {
		return fmt.Errorf("node %d: state %d", n.ID, n.State)
	}
	return nil
}
