package clustermap

import (
	"fmt"
	"maps"
	"math"
	"slices"
)

// Command is one change to the map: AddNode, SetNodeState,
// CreateContainer, DeleteContainer, SetPolicy, CaughtUp, NodeRestarted,
// CreateKey, RevokeKey, MarkMetaFormed or SetFSID. The set is
// closed; AppendCommand and DecodeCommand carry it through the Raft log.
type Command interface {
	// Kind is the command's wire tag.
	Kind() CommandKind
}

// CommandKind tags a command on the wire. Never renumber.
type CommandKind uint8

const (
	KindAddNode         CommandKind = 1
	KindSetNodeState    CommandKind = 2
	KindCreateContainer CommandKind = 3
	KindDeleteContainer CommandKind = 4
	KindSetPolicy       CommandKind = 5
	KindCaughtUp        CommandKind = 6
	KindNodeRestarted   CommandKind = 7
	KindCreateKey       CommandKind = 8
	KindRevokeKey       CommandKind = 9
	KindMarkMetaFormed  CommandKind = 10
	KindSetFSID         CommandKind = 11
)

func (k CommandKind) String() string {
	switch k {
	case KindAddNode:
		return "AddNode"
	case KindSetNodeState:
		return "SetNodeState"
	case KindCreateContainer:
		return "CreateContainer"
	case KindDeleteContainer:
		return "DeleteContainer"
	case KindSetPolicy:
		return "SetPolicy"
	case KindCaughtUp:
		return "CaughtUp"
	case KindNodeRestarted:
		return "NodeRestarted"
	case KindCreateKey:
		return "CreateKey"
	case KindRevokeKey:
		return "RevokeKey"
	case KindMarkMetaFormed:
		return "MarkMetaFormed"
	case KindSetFSID:
		return "SetFSID"
	}
	return fmt.Sprintf("CommandKind(%d)", uint8(k))
}

// AddNode joins a node (`weft node join`). A known ID re-joins: its
// address, labels and capacity are replaced and it is set Up (whatever
// its state was). Degraded PGs that the node can serve get it as a new
// backfilling replica; healthy PGs do not move.
type AddNode struct {
	ID       NodeID
	Addr     string
	Labels   map[string]string
	Capacity uint64
}

// SetNodeState moves a node to a state: Down when its heartbeats lapsed,
// Up when they resume, Draining for `weft node drain`, Out to remove it.
// Down and Out drop it from every PG at once; Draining keeps it in each
// PG until replacements caught up. Out also replaces it in every
// container's MetaMembers (see "Metadata groups" in the package doc).
type SetNodeState struct {
	ID    NodeID
	State NodeState
}

// CreateContainer creates a container with the next ContainerID and the
// next Policy.PGCount PG IDs, placed over the Up nodes, and records its
// metadata members (ChooseMetaMembers). Zero PGCount and ChunkSize take
// their defaults. Find the new ID with ContainerByName.
type CreateContainer struct {
	Name   string
	Policy Policy
}

// DeleteContainer removes a container and its PGs, and revokes its live
// keys. Their IDs are never reused.
type DeleteContainer struct {
	ID ContainerID
}

// SetPolicy replaces a container's policy and re-places its PGs.
// PGCount and ChunkSize cannot change (they map the data); zero keeps
// them.
type SetPolicy struct {
	Container ContainerID
	Policy    Policy
}

// CaughtUp records that backfilling replica Node of PG holds the PG's
// data as of PG epoch Epoch. It is refused with ErrStaleEpoch if the PG
// changed since (the node must re-check against the new replica list).
type CaughtUp struct {
	PG    PGID
	Node  NodeID
	Epoch uint64
}

// NodeRestarted records that a node's process started again: the epoch
// of every PG it is a replica of moves to the new map epoch, so that the
// node takes part in them only in an epoch it starts fresh in (a restarted
// node has forgotten the replication work it had in memory: pending
// mutations, request ids). In every such PG where another caught-up
// replica serves, the node also becomes a backfilling replica again (the
// primary role moves off it) until it sends CaughtUp. A node sends it
// after its AddNode on every start; it always changes the map.
type NodeRestarted struct {
	ID NodeID
}

// CreateKey records a container key. ID comes from the proposer
// (NewKeyID) so that it knows the ID before the command applies; Apply
// refuses a malformed ID (ErrInvalid), one the map holds live or revoked
// (ErrExists: IDs are never reused), an unknown container (ErrNotFound)
// and an invalid Access. The key's secret is KeySecret of the cluster
// key's secret and ID; the map holds none.
type CreateKey struct {
	ID        string
	Container ContainerID
	Access    Access
}

// RevokeKey revokes a container key: it stays in the map with Revoked
// set, so its ID is never handed out again. Nodes stop accepting it and
// close the connections authenticated with it. Revoking a revoked key is
// ErrNoChange.
type RevokeKey struct {
	ID string
}

// MarkMetaFormed records that Container's metadata group has committed
// past its bootstrap entries (Container.MetaFormed). The group's leader
// sends it once it has. A container without a bootstrap set is
// ErrInvalid; one marked already, ErrNoChange.
type MarkMetaFormed struct {
	Container ContainerID
}

// SetFSID gives the map its identity (Map.FSID). The managers' leader
// sends it, with a random FSID, while the map has none. A zero FSID is
// ErrInvalid; the map's own FSID again, ErrNoChange; another one once the
// map has an FSID, ErrExists: it is never changed.
type SetFSID struct {
	FSID FSID
}

func (SetFSID) Kind() CommandKind         { return KindSetFSID }
func (MarkMetaFormed) Kind() CommandKind  { return KindMarkMetaFormed }
func (NodeRestarted) Kind() CommandKind   { return KindNodeRestarted }
func (CreateKey) Kind() CommandKind       { return KindCreateKey }
func (RevokeKey) Kind() CommandKind       { return KindRevokeKey }
func (AddNode) Kind() CommandKind         { return KindAddNode }
func (SetNodeState) Kind() CommandKind    { return KindSetNodeState }
func (CreateContainer) Kind() CommandKind { return KindCreateContainer }
func (DeleteContainer) Kind() CommandKind { return KindDeleteContainer }
func (SetPolicy) Kind() CommandKind       { return KindSetPolicy }
func (CaughtUp) Kind() CommandKind        { return KindCaughtUp }

// Apply returns the map that results from applying cmd to m; m is not
// modified. It is deterministic: the same map and command give a map with
// the same encoding on every manager. A successful command bumps Epoch by
// one and sets the Epoch of every PG whose Replicas or Backfilling
// changed to the new map epoch. An error wraps ErrNotFound, ErrExists,
// ErrInvalid, ErrStaleEpoch or ErrNoChange (the command changes nothing),
// and then no map is returned.
func (m *Map) Apply(cmd Command) (*Map, error) {
	if m.Epoch == math.MaxUint64 {
		return nil, fmt.Errorf("%w: map epoch exhausted", ErrInvalid)
	}
	next := m.Clone()
	next.Epoch = m.Epoch + 1
	// Before the command: containers of an older map get the metadata
	// members their nodes computed from it (see recordMeta).
	next.recordMeta()
	var err error
	switch c := deref(cmd).(type) {
	case AddNode:
		if err = next.addNode(c); err == nil {
			next.repairMeta()
		}
	case SetNodeState:
		if err = next.setNodeState(c); err == nil {
			next.repairMeta()
		}
	case CreateContainer:
		err = next.createContainer(c)
	case DeleteContainer:
		err = next.deleteContainer(c)
	case SetPolicy:
		if err = next.setPolicy(c); err == nil {
			next.repairMeta()
		}
	case CaughtUp:
		err = next.caughtUp(c)
	case NodeRestarted:
		err = next.nodeRestarted(c)
	case CreateKey:
		err = next.createKey(c)
	case RevokeKey:
		err = next.revokeKey(c)
	case MarkMetaFormed:
		err = next.markMetaFormed(c)
	case SetFSID:
		err = next.setFSID(c)
	default:
		err = fmt.Errorf("%w: unknown command type %T", ErrInvalid, cmd)
	}
	if err != nil {
		return nil, err
	}
	return next, nil
}

// reconcile re-places the PGs with index in [lo, hi) and stamps those
// that changed with the map's epoch. It reports whether any changed.
func (m *Map) reconcile(lo, hi int, fresh bool) bool {
	changed := false
	for i := lo; i < hi; i++ {
		pg := &m.PGs[i]
		ct, ok := m.Container(pg.Container)
		if !ok {
			panic(fmt.Sprintf("clustermap: pg %d of missing container %d", pg.ID, pg.Container))
		}
		r := reconcile(*pg, &ct.Policy, m.Nodes, fresh)
		if !slices.Equal(r.Replicas, pg.Replicas) || !slices.Equal(r.Backfilling, pg.Backfilling) {
			r.Epoch = m.Epoch
			*pg = r
			changed = true
		}
	}
	return changed
}

func (m *Map) addNode(c AddNode) error {
	n := Node{ID: c.ID, Addr: c.Addr, Labels: cloneLabels(c.Labels), Capacity: c.Capacity, State: Up}
	if err := checkNode(&n); err != nil {
		return fmt.Errorf("%w: add node: %v", ErrInvalid, err)
	}
	for i := range m.Nodes {
		o := &m.Nodes[i]
		if o.ID != n.ID && o.State != Out && o.Addr == n.Addr {
			return fmt.Errorf("%w: add node %d: address %s belongs to node %d", ErrExists, n.ID, n.Addr, o.ID)
		}
	}
	if old, ok := m.Node(n.ID); ok {
		if old.Addr == n.Addr && old.Capacity == n.Capacity && old.State == Up && maps.Equal(old.Labels, n.Labels) {
			return fmt.Errorf("%w: node %d is up with that address, labels and capacity", ErrNoChange, n.ID)
		}
		*old = n
	} else {
		i, _ := slices.BinarySearchFunc(m.Nodes, n.ID, func(a Node, id NodeID) int { return cmpU64(uint64(a.ID), uint64(id)) })
		m.Nodes = slices.Insert(m.Nodes, i, n)
	}
	m.reconcile(0, len(m.PGs), false)
	return nil
}

func (m *Map) setNodeState(c SetNodeState) error {
	if !c.State.Valid() {
		return fmt.Errorf("%w: node %d: state %d", ErrInvalid, c.ID, uint8(c.State))
	}
	n, ok := m.Node(c.ID)
	if !ok {
		return fmt.Errorf("%w: node %d", ErrNotFound, c.ID)
	}
	if n.State == c.State {
		return fmt.Errorf("%w: node %d is %v already", ErrNoChange, c.ID, c.State)
	}
	if n.State == Out && c.State != Out {
		for i := range m.Nodes {
			if o := &m.Nodes[i]; o.ID != n.ID && o.State != Out && o.Addr == n.Addr {
				return fmt.Errorf("%w: node %d: address %s was taken by node %d while it was out", ErrExists, n.ID, n.Addr, o.ID)
			}
		}
	}
	n.State = c.State
	m.reconcile(0, len(m.PGs), false)
	return nil
}

func (m *Map) createContainer(c CreateContainer) error {
	if err := checkName(c.Name); err != nil {
		return fmt.Errorf("%w: create container: %v", ErrInvalid, err)
	}
	if _, ok := m.ContainerByName(c.Name); ok {
		return fmt.Errorf("%w: container %q", ErrExists, c.Name)
	}
	p := c.Policy.WithDefaults()
	p.Selector = cloneLabels(p.Selector)
	if err := p.Validate(); err != nil {
		return fmt.Errorf("create container %q: %w", c.Name, err)
	}
	if m.NextContainer == math.MaxUint64 {
		return fmt.Errorf("%w: create container %q: container ids exhausted", ErrInvalid, c.Name)
	}
	if uint64(m.NextPG)+uint64(p.PGCount) > math.MaxUint32 {
		return fmt.Errorf("%w: create container %q: pg ids exhausted (next %d, %d wanted)", ErrInvalid, c.Name, m.NextPG, p.PGCount)
	}
	ct := Container{ID: m.NextContainer, Name: c.Name, Policy: p, FirstPG: m.NextPG}
	if ids := pickMeta(m, &ct, nil, false); len(ids) > 0 {
		ct.MetaMembers, ct.MetaBootstrap = ids, slices.Clone(ids)
	}
	m.NextContainer++
	m.NextPG += PGID(p.PGCount)
	// Invariant: IDs come from counters that only grow, so appending
	// keeps Containers and PGs sorted.
	m.Containers = append(m.Containers, ct)
	lo := len(m.PGs)
	for i := uint32(0); i < p.PGCount; i++ {
		m.PGs = append(m.PGs, PG{ID: ct.FirstPG + PGID(i), Container: ct.ID, Epoch: m.Epoch})
	}
	m.reconcile(lo, len(m.PGs), true)
	return nil
}

func (m *Map) deleteContainer(c DeleteContainer) error {
	ct, ok := m.Container(c.ID)
	if !ok {
		return fmt.Errorf("%w: container %d", ErrNotFound, c.ID)
	}
	id := ct.ID
	m.Containers = slices.DeleteFunc(m.Containers, func(x Container) bool { return x.ID == id })
	m.PGs = slices.DeleteFunc(m.PGs, func(x PG) bool { return x.Container == id })
	for i := range m.Keys {
		if k := &m.Keys[i]; k.Container == id && k.Live() {
			k.Revoked = m.Epoch
		}
	}
	return nil
}

func (m *Map) createKey(c CreateKey) error {
	if err := CheckKeyID(c.ID); err != nil {
		return fmt.Errorf("%w: create key: %v", ErrInvalid, err)
	}
	if !c.Access.Valid() {
		return fmt.Errorf("%w: create key %s: access %d (want 1 read, 2 write or 3 admin)", ErrInvalid, c.ID, uint8(c.Access))
	}
	if _, ok := m.Container(c.Container); !ok {
		return fmt.Errorf("%w: create key %s: container %d", ErrNotFound, c.ID, c.Container)
	}
	if k, ok := m.Key(c.ID); ok {
		if k.Live() {
			return fmt.Errorf("%w: key %s", ErrExists, c.ID)
		}
		return fmt.Errorf("%w: key %s was revoked at epoch %d; key ids are never reused", ErrExists, c.ID, k.Revoked)
	}
	i, _ := slices.BinarySearchFunc(m.Keys, c.ID, func(a Key, id string) int { return cmpString(a.ID, id) })
	m.Keys = slices.Insert(m.Keys, i, Key{ID: c.ID, Container: c.Container, Access: c.Access, Created: m.Epoch})
	return nil
}

func (m *Map) revokeKey(c RevokeKey) error {
	k, ok := m.Key(c.ID)
	if !ok {
		return fmt.Errorf("%w: key %q", ErrNotFound, c.ID)
	}
	if !k.Live() {
		return fmt.Errorf("%w: key %s was revoked at epoch %d", ErrNoChange, c.ID, k.Revoked)
	}
	k.Revoked = m.Epoch
	return nil
}

func (m *Map) setPolicy(c SetPolicy) error {
	ct, ok := m.Container(c.Container)
	if !ok {
		return fmt.Errorf("%w: container %d", ErrNotFound, c.Container)
	}
	p := c.Policy
	p.Selector = cloneLabels(p.Selector)
	if p.PGCount == 0 {
		p.PGCount = ct.Policy.PGCount
	}
	if p.ChunkSize == 0 {
		p.ChunkSize = ct.Policy.ChunkSize
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("set policy of container %d: %w", ct.ID, err)
	}
	if p.PGCount != ct.Policy.PGCount || p.ChunkSize != ct.Policy.ChunkSize {
		return fmt.Errorf("%w: set policy of container %d: pg count %d and chunk size %d are fixed (asked %d and %d)",
			ErrInvalid, ct.ID, ct.Policy.PGCount, ct.Policy.ChunkSize, p.PGCount, p.ChunkSize)
	}
	if p.Replicas == ct.Policy.Replicas && p.FailureDomain == ct.Policy.FailureDomain && maps.Equal(p.Selector, ct.Policy.Selector) {
		return fmt.Errorf("%w: container %d has that policy", ErrNoChange, ct.ID)
	}
	ct.Policy = p
	pgs := m.PGsOfContainer(ct.ID)
	if len(pgs) > 0 {
		lo, _ := slices.BinarySearchFunc(m.PGs, pgs[0].ID, func(a PG, id PGID) int { return cmpU64(uint64(a.ID), uint64(id)) })
		m.reconcile(lo, lo+len(pgs), false)
	}
	return nil
}

func (m *Map) markMetaFormed(c MarkMetaFormed) error {
	i := slices.IndexFunc(m.Containers, func(ct Container) bool { return ct.ID == c.Container })
	if i < 0 {
		return fmt.Errorf("%w: container %d", ErrNotFound, c.Container)
	}
	ct := &m.Containers[i]
	switch {
	case len(ct.MetaBootstrap) == 0:
		return fmt.Errorf("%w: container %d has no metadata bootstrap set", ErrInvalid, c.Container)
	case ct.MetaFormed:
		return fmt.Errorf("%w: container %d's metadata group is marked formed already", ErrNoChange, c.Container)
	}
	ct.MetaFormed = true
	return nil
}

func (m *Map) setFSID(c SetFSID) error {
	switch {
	case c.FSID.IsZero():
		return fmt.Errorf("%w: a zero FSID", ErrInvalid)
	case m.FSID == c.FSID:
		return fmt.Errorf("%w: the map's FSID is %v already", ErrNoChange, c.FSID)
	case !m.FSID.IsZero():
		return fmt.Errorf("%w: the map's FSID is %v; it never changes (asked for %v)", ErrExists, m.FSID, c.FSID)
	}
	m.FSID = c.FSID
	return nil
}

func (m *Map) nodeRestarted(c NodeRestarted) error {
	n, ok := m.Node(c.ID)
	if !ok {
		return fmt.Errorf("%w: node %d", ErrNotFound, c.ID)
	}
	if n.State == Out {
		return fmt.Errorf("%w: node %d is out of the cluster", ErrInvalid, c.ID)
	}
	serving := func(id NodeID) bool {
		x, ok := m.Node(id)
		return ok && (x.State == Up || x.State == Draining)
	}
	for i := range m.PGs {
		pg := &m.PGs[i]
		if !pg.HasReplica(c.ID) {
			continue
		}
		pg.Epoch = m.Epoch
		if pg.IsBackfilling(c.ID) {
			continue
		}
		// Where another caught-up replica serves, the restarted node
		// syncs again as a backfilling replica (last, so never primary):
		// its request ids died with the process, and a primary without
		// them would apply a retried mutation twice. Where it is the
		// only caught-up replica it stays as it is: its data is all the
		// PG has.
		other := false
		for _, r := range pg.Replicas {
			if r != c.ID && !pg.IsBackfilling(r) && serving(r) {
				other = true
				break
			}
		}
		if !other {
			continue
		}
		demoted := *pg
		demoted.Replicas = append(slices.DeleteFunc(slices.Clone(pg.Replicas), func(r NodeID) bool { return r == c.ID }), c.ID)
		demoted.Backfilling = append(slices.Clone(pg.Backfilling), c.ID)
		// Only where placement keeps it: a demoted replica that
		// placement would count as surplus would be dropped, and with it
		// a full copy of the data; it then stays caught up (its epoch
		// still moves, so it starts fresh there all the same).
		ct, _ := m.Container(pg.Container)
		if r := reconcile(demoted, &ct.Policy, m.Nodes, false); slices.Equal(r.Replicas, demoted.Replicas) && slices.Equal(r.Backfilling, demoted.Backfilling) {
			*pg = demoted
		}
	}
	return nil
}

func (m *Map) caughtUp(c CaughtUp) error {
	pg, ok := m.PG(c.PG)
	if !ok {
		return fmt.Errorf("%w: pg %d", ErrNotFound, c.PG)
	}
	if c.Epoch != pg.Epoch {
		return fmt.Errorf("%w: caught up on pg %d at epoch %d, pg is at epoch %d", ErrStaleEpoch, c.PG, c.Epoch, pg.Epoch)
	}
	if !pg.IsBackfilling(c.Node) {
		if pg.HasReplica(c.Node) {
			return fmt.Errorf("%w: node %d of pg %d is caught up already", ErrNoChange, c.Node, c.PG)
		}
		return fmt.Errorf("%w: node %d is no replica of pg %d", ErrNotFound, c.Node, c.PG)
	}
	pg.Backfilling = slices.DeleteFunc(pg.Backfilling, func(n NodeID) bool { return n == c.Node })
	if len(pg.Backfilling) == 0 {
		pg.Backfilling = nil
	}
	// The node now counts as caught up: it goes among the caught-up
	// replicas at its rendezvous rank, so that the primaries a restart
	// moved away (NodeRestarted) come back to where placement puts them
	// once their nodes caught up, instead of all staying on whichever
	// node restarted last.
	rest := slices.DeleteFunc(slices.Clone(pg.Replicas), func(n NodeID) bool { return n == c.Node })
	k := 0
	for k < len(rest) && !pg.IsBackfilling(rest[k]) && Score(pg.ID, rest[k]) > Score(pg.ID, c.Node) {
		k++
	}
	pg.Replicas = slices.Insert(rest, k, c.Node)
	pg.Epoch = m.Epoch
	i, _ := slices.BinarySearchFunc(m.PGs, pg.ID, func(a PG, id PGID) int { return cmpU64(uint64(a.ID), uint64(id)) })
	m.reconcile(i, i+1, false)
	return nil
}
