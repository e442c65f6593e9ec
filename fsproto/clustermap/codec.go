package clustermap

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Map encoding constants. On disk (Raft snapshots) and on the wire: never
// change them; a new layout gets a new version.
const (
	mapMagic      = "WCMP"
	mapVersion    = 1  // a map without keys
	mapVersion2   = 2  // a map with keys: version 1's body, then the keys
	mapVersion3   = 3  // a map with metadata records: containers carry them, keys always follow
	mapVersion4   = 4  // a map with a formed metadata group: version 3, each container's record ends with its flags
	mapVersion5   = 5  // a map with an FSID: version 4, then the FSID (16 bytes)
	mapHeaderLen  = 12 // magic, version, flags, body length
	mapTrailerLen = 4  // crc32c
	commandVer    = 1

	// Smallest encodings of the repeated records, used to bound a count
	// by the bytes left before allocating for it.
	nodeLenMin      = 8 + 8 + 1 + 2 + 1
	containerLenMin = 8 + 4 + 2 + 1 + 4 + 4 + 2 + 1
	pgLenMin        = 4 + 8 + 8 + 1 + 1
	labelLenMin     = 2 + 2
	keyLenMin       = 2 + 8 + 1 + 8 + 8
)

// MapLenMax bounds an encoded map (64 MiB), so a corrupt length cannot
// make a decoder allocate without limit.
const MapLenMax = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary encodes m in the layout of the package doc. It fails only
// if m breaks an invariant of Check, which would be a bug for maps made
// by Apply.
func (m *Map) MarshalBinary() ([]byte, error) {
	if err := m.Check(); err != nil {
		return nil, fmt.Errorf("clustermap: encode: %w", err)
	}
	return m.appendMap(nil), nil
}

func (m *Map) appendMap(b []byte) []byte {
	start := len(b)
	b = append(b, mapMagic...)
	// Version 1 stays the encoding of a map without keys, so such maps
	// keep their bytes (and older decoders keep reading them); the
	// encoding is canonical either way, as the decoder refuses a
	// version 2 map without keys.
	version := uint16(mapVersion)
	switch {
	case !m.FSID.IsZero():
		version = mapVersion5
	case m.formsMeta():
		version = mapVersion4
	case m.recordsMeta():
		version = mapVersion3
	case len(m.Keys) > 0:
		version = mapVersion2
	}
	b = binary.LittleEndian.AppendUint16(b, version)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 0) // body length, set below
	body := len(b)
	b = binary.LittleEndian.AppendUint64(b, m.Epoch)
	b = binary.LittleEndian.AppendUint64(b, uint64(m.NextContainer))
	b = binary.LittleEndian.AppendUint32(b, uint32(m.NextPG))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Nodes)))
	for i := range m.Nodes {
		n := &m.Nodes[i]
		b = binary.LittleEndian.AppendUint64(b, uint64(n.ID))
		b = binary.LittleEndian.AppendUint64(b, n.Capacity)
		b = append(b, byte(n.State))
		b = appendString(b, n.Addr)
		b = appendLabels(b, n.Labels)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Containers)))
	for i := range m.Containers {
		c := &m.Containers[i]
		b = binary.LittleEndian.AppendUint64(b, uint64(c.ID))
		b = binary.LittleEndian.AppendUint32(b, uint32(c.FirstPG))
		b = appendString(b, c.Name)
		b = appendPolicy(b, &c.Policy)
		if version >= mapVersion3 {
			b = appendNodeIDs(b, c.MetaMembers)
			b = appendNodeIDs(b, c.MetaBootstrap)
		}
		if version >= mapVersion4 {
			var flags byte
			if c.MetaFormed {
				flags |= containerMetaFormed
			}
			b = append(b, flags)
		}
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.PGs)))
	for i := range m.PGs {
		pg := &m.PGs[i]
		b = binary.LittleEndian.AppendUint32(b, uint32(pg.ID))
		b = binary.LittleEndian.AppendUint64(b, uint64(pg.Container))
		b = binary.LittleEndian.AppendUint64(b, pg.Epoch)
		b = appendNodeIDs(b, pg.Replicas)
		b = appendNodeIDs(b, pg.Backfilling)
	}
	if version >= mapVersion2 {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Keys)))
		for i := range m.Keys {
			k := &m.Keys[i]
			b = appendString(b, k.ID)
			b = binary.LittleEndian.AppendUint64(b, uint64(k.Container))
			b = append(b, byte(k.Access))
			b = binary.LittleEndian.AppendUint64(b, k.Created)
			b = binary.LittleEndian.AppendUint64(b, k.Revoked)
		}
	}
	if version >= mapVersion5 {
		b = append(b, m.FSID[:]...)
	}
	binary.LittleEndian.PutUint32(b[body-4:], uint32(len(b)-body))
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// Container flags (version 4).
const (
	containerMetaFormed = 1 << 0 // Container.MetaFormed
	containerFlagsKnown = containerMetaFormed
)

// formsMeta reports whether some container's metadata group is marked
// formed, which only a version 4 encoding can hold.
func (m *Map) formsMeta() bool {
	for i := range m.Containers {
		if m.Containers[i].MetaFormed {
			return true
		}
	}
	return false
}

// recordsMeta reports whether some container has a metadata bootstrap
// set, which only a version 3 or 4 encoding can hold.
func (m *Map) recordsMeta() bool {
	for i := range m.Containers {
		if len(m.Containers[i].MetaBootstrap) > 0 {
			return true
		}
	}
	return false
}

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// appendLabels writes labels sorted by key: the encoding is canonical, so
// equal maps encode to equal bytes on every manager.
func appendLabels(b []byte, l map[string]string) []byte {
	b = append(b, byte(len(l)))
	for _, k := range sortedKeys(l) {
		b = appendString(b, k)
		b = appendString(b, l[k])
	}
	return b
}

func appendPolicy(b []byte, p *Policy) []byte {
	b = append(b, byte(p.Replicas))
	b = binary.LittleEndian.AppendUint32(b, p.PGCount)
	b = binary.LittleEndian.AppendUint32(b, p.ChunkSize)
	b = appendString(b, p.FailureDomain)
	return appendLabels(b, p.Selector)
}

func appendNodeIDs(b []byte, ids []NodeID) []byte {
	b = append(b, byte(len(ids)))
	for _, id := range ids {
		b = binary.LittleEndian.AppendUint64(b, uint64(id))
	}
	return b
}

// UnmarshalBinary decodes a map encoded by MarshalBinary into m. It
// checks the magic, version, flags, lengths (no trailing bytes) and the
// CRC32C, bounds every count by the bytes present before allocating, and
// then runs Check. Every error wraps ErrCorrupt; on error m is unchanged.
func (m *Map) UnmarshalBinary(data []byte) error {
	d, err := decodeMap(data)
	if err != nil {
		return err
	}
	*m = *d
	return nil
}

// DecodeMap decodes a map encoded by MarshalBinary; see UnmarshalBinary.
func DecodeMap(data []byte) (*Map, error) { return decodeMap(data) }

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

func decodeMap(data []byte) (*Map, error) {
	if len(data) > MapLenMax {
		return nil, corrupt("map of %d bytes, over the limit %d", len(data), MapLenMax)
	}
	if len(data) < mapHeaderLen+mapTrailerLen {
		return nil, corrupt("map of %d bytes, shorter than its header and checksum (%d)", len(data), mapHeaderLen+mapTrailerLen)
	}
	if string(data[:4]) != mapMagic {
		return nil, corrupt("map magic %q, want %q", data[:4], mapMagic)
	}
	version := binary.LittleEndian.Uint16(data[4:])
	if version < mapVersion || version > mapVersion5 {
		return nil, corrupt("map version %d, want %d to %d", version, mapVersion, mapVersion5)
	}
	if f := binary.LittleEndian.Uint16(data[6:]); f != 0 {
		return nil, corrupt("map flags %#x, want 0", f)
	}
	bodyLen := binary.LittleEndian.Uint32(data[8:])
	if want := uint64(mapHeaderLen) + uint64(bodyLen) + mapTrailerLen; want != uint64(len(data)) {
		return nil, corrupt("map body length %d makes %d bytes, got %d", bodyLen, want, len(data))
	}
	crcAt := len(data) - mapTrailerLen
	if got, want := binary.LittleEndian.Uint32(data[crcAt:]), crc32.Checksum(data[:crcAt], castagnoli); got != want {
		return nil, corrupt("map checksum %#08x, computed %#08x", got, want)
	}
	r := reader{b: data[mapHeaderLen:crcAt], what: "map"}
	m := &Map{}
	m.Epoch = r.u64("epoch")
	m.NextContainer = ContainerID(r.u64("next container"))
	m.NextPG = PGID(r.u32("next pg"))
	if n := r.count32("nodes", nodeLenMin); n > 0 {
		m.Nodes = make([]Node, n)
		for i := range m.Nodes {
			nd := &m.Nodes[i]
			nd.ID = NodeID(r.u64("node id"))
			nd.Capacity = r.u64("node capacity")
			nd.State = NodeState(r.u8("node state"))
			nd.Addr = r.str("node address")
			nd.Labels = r.labels("node labels")
		}
	}
	if n := r.count32("containers", containerLenMin); n > 0 {
		m.Containers = make([]Container, n)
		for i := range m.Containers {
			c := &m.Containers[i]
			c.ID = ContainerID(r.u64("container id"))
			c.FirstPG = PGID(r.u32("container first pg"))
			c.Name = r.str("container name")
			c.Policy = r.policy()
			if version >= mapVersion3 {
				c.MetaMembers = r.nodeIDs("container metadata members")
				c.MetaBootstrap = r.nodeIDs("container metadata bootstrap")
			}
			if version >= mapVersion4 {
				flags := r.u8("container flags")
				if r.err == nil && flags&^containerFlagsKnown != 0 {
					r.fail("container %d flags %#x: unknown bits %#x", c.ID, flags, flags&^containerFlagsKnown)
				}
				c.MetaFormed = flags&containerMetaFormed != 0
			}
		}
	}
	if n := r.count32("pgs", pgLenMin); n > 0 {
		m.PGs = make([]PG, n)
		for i := range m.PGs {
			pg := &m.PGs[i]
			pg.ID = PGID(r.u32("pg id"))
			pg.Container = ContainerID(r.u64("pg container"))
			pg.Epoch = r.u64("pg epoch")
			pg.Replicas = r.nodeIDs("pg replicas")
			pg.Backfilling = r.nodeIDs("pg backfilling")
		}
	}
	if version >= mapVersion2 {
		n := r.count32("keys", keyLenMin)
		if r.err == nil && n == 0 && version == mapVersion2 {
			r.fail("version %d map without keys (such a map is version %d)", mapVersion2, mapVersion)
		}
		if n > 0 {
			m.Keys = make([]Key, n)
			for i := range m.Keys {
				k := &m.Keys[i]
				k.ID = r.str("key id")
				k.Container = ContainerID(r.u64("key container"))
				k.Access = Access(r.u8("key access"))
				k.Created = r.u64("key created")
				k.Revoked = r.u64("key revoked")
			}
		}
	}
	if version >= mapVersion5 {
		binary.LittleEndian.PutUint64(m.FSID[:8], r.u64("fsid"))
		binary.LittleEndian.PutUint64(m.FSID[8:], r.u64("fsid"))
		if r.err == nil && m.FSID.IsZero() {
			r.fail("version %d map with a zero FSID (such a map is version %d or below)", mapVersion5, mapVersion4)
		}
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	if version == mapVersion3 && !m.recordsMeta() {
		return nil, corrupt("version %d map without metadata records (such a map is version %d or %d)", mapVersion3, mapVersion, mapVersion2)
	}
	if version == mapVersion4 && !m.formsMeta() {
		return nil, corrupt("version %d map without a formed metadata group (such a map is version %d, %d or %d)", mapVersion4, mapVersion, mapVersion2, mapVersion3)
	}
	if err := m.Check(); err != nil {
		return nil, fmt.Errorf("%w: map: %v", ErrCorrupt, err)
	}
	return m, nil
}

// reader decodes little-endian fields. The first error sticks: later
// reads return zero values, and done reports it, so decoders read
// straight through without a check after every field.
type reader struct {
	b    []byte
	off  int
	what string
	err  error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d: %s", ErrCorrupt, r.what, r.off, fmt.Sprintf(format, args...))
	}
}

func (r *reader) take(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b)-r.off < n {
		r.fail("%s: %d bytes needed, %d left", field, n, len(r.b)-r.off)
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *reader) u8(field string) uint8 {
	if p := r.take(1, field); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u16(field string) uint16 {
	if p := r.take(2, field); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32(field string) uint32 {
	if p := r.take(4, field); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (r *reader) u64(field string) uint64 {
	if p := r.take(8, field); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (r *reader) str(field string) string {
	n := r.u16(field + " length")
	return string(r.take(int(n), field))
}

// count32 reads a u32 count of records of at least minLen bytes each and
// refuses one that the bytes left cannot hold, before anyone allocates.
func (r *reader) count32(field string, minLen int) int {
	n := r.u32(field + " count")
	if r.err != nil {
		return 0
	}
	if left := uint64(len(r.b) - r.off); uint64(n)*uint64(minLen) > left {
		r.fail("%d %s need at least %d bytes, %d left", n, field, uint64(n)*uint64(minLen), left)
		return 0
	}
	return int(n)
}

func (r *reader) labels(field string) map[string]string {
	n := int(r.u8(field + " count"))
	if r.err != nil || n == 0 {
		return nil
	}
	if n > LabelsMax {
		r.fail("%s: %d labels, at most %d", field, n, LabelsMax)
		return nil
	}
	if left := len(r.b) - r.off; n*labelLenMin > left {
		r.fail("%s: %d labels need at least %d bytes, %d left", field, n, n*labelLenMin, left)
		return nil
	}
	l := make(map[string]string, n)
	prev := ""
	for i := 0; i < n && r.err == nil; i++ {
		k := r.str(field + " key")
		v := r.str(field + " value")
		if r.err != nil {
			return nil
		}
		if i > 0 && k <= prev {
			r.fail("%s: key %q follows %q (keys must be sorted and distinct)", field, k, prev)
			return nil
		}
		prev = k
		l[k] = v
	}
	return l
}

func (r *reader) policy() Policy {
	var p Policy
	p.Replicas = int(r.u8("policy replicas"))
	p.PGCount = r.u32("policy pg count")
	p.ChunkSize = r.u32("policy chunk size")
	p.FailureDomain = r.str("policy failure domain")
	p.Selector = r.labels("policy selector")
	return p
}

func (r *reader) nodeIDs(field string) []NodeID {
	n := int(r.u8(field + " count"))
	if r.err != nil || n == 0 {
		return nil
	}
	if n > 2*ReplicasMax {
		r.fail("%s: %d nodes, at most %d", field, n, 2*ReplicasMax)
		return nil
	}
	p := r.take(8*n, field)
	if p == nil {
		return nil
	}
	ids := make([]NodeID, n)
	for i := range ids {
		ids[i] = NodeID(binary.LittleEndian.Uint64(p[8*i:]))
	}
	return ids
}

func (r *reader) done() error {
	if r.err == nil && r.off != len(r.b) {
		r.fail("%d trailing bytes", len(r.b)-r.off)
	}
	return r.err
}

// AppendCommand appends the encoding of cmd (see the package doc) to b.
// It fails, wrapping ErrInvalid, for a command whose fields do not fit
// their wire fields (a string over 65535 bytes, over LabelsMax labels, replicas
// outside 0..255) or of an unknown type; Apply refuses narrower ranges.
func AppendCommand(b []byte, cmd Command) ([]byte, error) {
	var err error
	strOK := func(what, s string) {
		if err == nil && len(s) > math.MaxUint16 {
			err = fmt.Errorf("%w: %v: %s of %d bytes does not fit the wire", ErrInvalid, cmd.Kind(), what, len(s))
		}
	}
	labelsOK := func(what string, l map[string]string) {
		if err == nil && len(l) > LabelsMax {
			err = fmt.Errorf("%w: %v: %d %s, at most %d", ErrInvalid, cmd.Kind(), len(l), what, LabelsMax)
		}
		for k, v := range l {
			strOK(what+" key", k)
			strOK(what+" value", v)
		}
	}
	policyOK := func(p *Policy) {
		if err == nil && (p.Replicas < 0 || p.Replicas > math.MaxUint8) {
			err = fmt.Errorf("%w: %v: replicas %d does not fit the wire", ErrInvalid, cmd.Kind(), p.Replicas)
		}
		strOK("failure domain", p.FailureDomain)
		labelsOK("selector labels", p.Selector)
	}
	switch c := deref(cmd).(type) {
	case AddNode:
		strOK("address", c.Addr)
		labelsOK("labels", c.Labels)
		if err == nil {
			b = append(b, commandVer, byte(KindAddNode))
			b = binary.LittleEndian.AppendUint64(b, uint64(c.ID))
			b = binary.LittleEndian.AppendUint64(b, c.Capacity)
			b = appendString(b, c.Addr)
			b = appendLabels(b, c.Labels)
		}
	case SetNodeState:
		b = append(b, commandVer, byte(KindSetNodeState))
		b = binary.LittleEndian.AppendUint64(b, uint64(c.ID))
		b = append(b, byte(c.State))
	case CreateContainer:
		strOK("name", c.Name)
		policyOK(&c.Policy)
		if err == nil {
			b = append(b, commandVer, byte(KindCreateContainer))
			b = appendString(b, c.Name)
			b = appendPolicy(b, &c.Policy)
		}
	case DeleteContainer:
		b = append(b, commandVer, byte(KindDeleteContainer))
		b = binary.LittleEndian.AppendUint64(b, uint64(c.ID))
	case SetPolicy:
		policyOK(&c.Policy)
		if err == nil {
			b = append(b, commandVer, byte(KindSetPolicy))
			b = binary.LittleEndian.AppendUint64(b, uint64(c.Container))
			b = appendPolicy(b, &c.Policy)
		}
	case CaughtUp:
		b = append(b, commandVer, byte(KindCaughtUp))
		b = binary.LittleEndian.AppendUint32(b, uint32(c.PG))
		b = binary.LittleEndian.AppendUint64(b, uint64(c.Node))
		b = binary.LittleEndian.AppendUint64(b, c.Epoch)
	case NodeRestarted:
		b = append(b, commandVer, byte(KindNodeRestarted))
		b = binary.LittleEndian.AppendUint64(b, uint64(c.ID))
	case CreateKey:
		strOK("key id", c.ID)
		if err == nil {
			b = append(b, commandVer, byte(KindCreateKey))
			b = appendString(b, c.ID)
			b = binary.LittleEndian.AppendUint64(b, uint64(c.Container))
			b = append(b, byte(c.Access))
		}
	case RevokeKey:
		strOK("key id", c.ID)
		if err == nil {
			b = append(b, commandVer, byte(KindRevokeKey))
			b = appendString(b, c.ID)
		}
	case MarkMetaFormed:
		b = append(b, commandVer, byte(KindMarkMetaFormed))
		b = binary.LittleEndian.AppendUint64(b, uint64(c.Container))
	case SetFSID:
		b = append(b, commandVer, byte(KindSetFSID))
		b = append(b, c.FSID[:]...)
	default:
		err = fmt.Errorf("%w: unknown command type %T", ErrInvalid, cmd)
	}
	return b, err
}

// deref turns a pointer to a command into the command, so both forms
// encode and apply alike.
func deref(cmd Command) Command {
	switch c := cmd.(type) {
	case *AddNode:
		return *c
	case *SetNodeState:
		return *c
	case *CreateContainer:
		return *c
	case *DeleteContainer:
		return *c
	case *SetPolicy:
		return *c
	case *CaughtUp:
		return *c
	case *NodeRestarted:
		return *c
	case *CreateKey:
		return *c
	case *RevokeKey:
		return *c
	case *MarkMetaFormed:
		return *c
	case *SetFSID:
		return *c
	}
	return cmd
}

// DecodeCommand decodes one command encoded by AppendCommand; b must hold
// exactly that command. It checks the version, the kind, the lengths and
// that labels are sorted with distinct keys (so what decodes re-encodes
// to the same bytes); value ranges are Apply's to check. Errors wrap
// ErrCorrupt. The command returned is a value (AddNode, not *AddNode).
func DecodeCommand(b []byte) (Command, error) {
	r := reader{b: b, what: "command"}
	if v := r.u8("version"); r.err == nil && v != commandVer {
		return nil, corrupt("command version %d, want %d", v, commandVer)
	}
	kind := CommandKind(r.u8("kind"))
	if r.err != nil {
		return nil, r.err
	}
	r.what = kind.String()
	var cmd Command
	switch kind {
	case KindAddNode:
		var c AddNode
		c.ID = NodeID(r.u64("id"))
		c.Capacity = r.u64("capacity")
		c.Addr = r.str("address")
		c.Labels = r.labels("labels")
		cmd = c
	case KindSetNodeState:
		cmd = SetNodeState{ID: NodeID(r.u64("id")), State: NodeState(r.u8("state"))}
	case KindCreateContainer:
		var c CreateContainer
		c.Name = r.str("name")
		c.Policy = r.policy()
		cmd = c
	case KindDeleteContainer:
		cmd = DeleteContainer{ID: ContainerID(r.u64("id"))}
	case KindSetPolicy:
		var c SetPolicy
		c.Container = ContainerID(r.u64("container"))
		c.Policy = r.policy()
		cmd = c
	case KindCaughtUp:
		var c CaughtUp
		c.PG = PGID(r.u32("pg"))
		c.Node = NodeID(r.u64("node"))
		c.Epoch = r.u64("epoch")
		cmd = c
	case KindNodeRestarted:
		cmd = NodeRestarted{ID: NodeID(r.u64("id"))}
	case KindCreateKey:
		var c CreateKey
		c.ID = r.str("id")
		c.Container = ContainerID(r.u64("container"))
		c.Access = Access(r.u8("access"))
		cmd = c
	case KindRevokeKey:
		cmd = RevokeKey{ID: r.str("id")}
	case KindMarkMetaFormed:
		cmd = MarkMetaFormed{Container: ContainerID(r.u64("container"))}
	case KindSetFSID:
		var c SetFSID
		binary.LittleEndian.PutUint64(c.FSID[:8], r.u64("fsid"))
		binary.LittleEndian.PutUint64(c.FSID[8:], r.u64("fsid"))
		cmd = c
	default:
		return nil, corrupt("command kind %d unknown", uint8(kind))
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return cmd, nil
}
