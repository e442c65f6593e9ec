package node

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	stdnet "net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto/cluster"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/net"
)

// DefaultListen is the chunk protocol's default address.
const DefaultListen = "127.0.0.1:7070"

// Config configures a node. See the package documentation for the file
// form of it.
type Config struct {
	// Device is the weft device (block device or file). Required.
	Device string `json:"device"`
	// FormatSize, when positive, creates and formats Device as a file of
	// this many bytes if it does not exist. 0: the device must exist.
	FormatSize int64 `json:"format_size"`
	// Listen is the chunk protocol's address; default DefaultListen.
	Listen string `json:"listen"`
	// MetricsListen is the address of the Prometheus endpoint
	// (/metrics); empty turns it off.
	MetricsListen string `json:"metrics_listen"`
	// Cores lists CPUs to pin the engine's reactors to.
	Cores []int `json:"cores"`
	// Shards is the number of reactors; default len(Cores), or 1.
	Shards int `json:"shards"`
	// Mode is the reactors' polling mode: poll, hybrid or interrupt;
	// default hybrid.
	Mode string `json:"mode"`
	// Conns is who serves connections: "reactors" (the engine's
	// reactors read, start and answer the requests themselves; see
	// net.Loop) or "goroutines" (a reader and a writer goroutine per
	// connection, handing requests to the reactors). The default is
	// reactors in single-node mode and goroutines in cluster mode: there
	// most requests go on to the replication loop and to peers rather
	// than straight to the engine, and reactors serving the connections
	// measured slower (weft up, native client, 3 alternating rounds:
	// 4 KiB randwrite qd1 445 against 626 IOPS, qd32 2930 against 3592,
	// reads within the noise); "reactors" there is for experiments.
	Conns string `json:"conns"`
	// RecordBytes is the largest record the engine stores a write as
	// (engine.Options.RecordBytes): a small read reads whole records;
	// default engine.DefaultRecordBytes (16 KiB).
	RecordBytes int `json:"record_bytes"`
	// ReadCacheBytes is how much verified record data the engine keeps in
	// memory to serve repeated small reads (engine.Options.ReadCacheBytes);
	// default 0, none: it pays when a working set is read again, and costs
	// a little on every miss (see the README).
	ReadCacheBytes int64 `json:"read_cache_bytes"`
	// Labels describe the node (site, zone, ...); exported as the labels
	// of weft_node_info.
	Labels map[string]string `json:"labels"`
	// ClusterID is the cluster's id; clients naming another are refused.
	// Required.
	ClusterID string `json:"cluster_id"`
	// KeysFile holds the access keys clients authenticate with. Required.
	KeysFile string `json:"keys_file"`
	// Containers are the containers this node holds; default [1].
	Containers []uint64 `json:"containers"`

	// Managers, when set, puts the node in cluster mode: the addresses
	// of the manager group's members. The node joins the cluster map,
	// heartbeats, follows the map and serves its placement groups through
	// replication; Containers is then ignored (the map says which
	// containers exist).
	Managers []string `json:"managers"`
	// ManagerID, when not 0, makes this process a member of the manager
	// group too, with this member id; ManagerPeers lists the group's
	// members as "id=addr" (this one included) for its first start, and
	// ManagerDir holds its Raft log (default DefaultManagerDir).
	ManagerID    uint64   `json:"manager_id"`
	ManagerPeers []string `json:"manager_peers"`
	ManagerDir   string   `json:"manager_dir"`
	// MetaDir holds the Raft logs of the container metadata groups this
	// node is a member of (see package meta); default DefaultMetaDir.
	MetaDir string `json:"meta_dir"`
	// ClusterKey is the id of the key (in KeysFile) the node uses with
	// the managers and other nodes; default "cluster".
	ClusterKey string `json:"cluster_key"`
	// HeartbeatTimeout is how long a node may stay silent before the
	// managers mark it Down (a manager member uses it; every process of a
	// cluster should give the same); nodes heartbeat every quarter of it.
	// Default DefaultHeartbeatTimeout. In the file: a duration string
	// such as "5s" (field heartbeat_timeout).
	HeartbeatTimeout time.Duration `json:"-"`
	// ReadLease is how long a primary may serve chunk reads without
	// asking its replicas again (cluster.DataServerConfig.ReadLease; see
	// "Read leases" in package replication). 0: the default,
	// min(cluster.ReadLeaseDefault, the heartbeat timeout / 8);
	// ReadLeaseOff: no leases. It must be below the heartbeat timeout: a
	// new primary may wait up to one lease before its first write after a
	// handoff. In the file: a duration string (field read_lease), where
	// "0s" turns leases off. ReadLeaseOff also turns off the metadata
	// groups' raft read leases (meta.HostConfig.NoLeaseReads), whose
	// length follows from the raft election timeout instead.
	ReadLease time.Duration `json:"-"`
	// RetireAfter is how long a PG this node left must have lived on
	// whole without it before the node deletes its copy
	// (cluster.DataServerConfig.RetireAfter, "Moved PGs" in package
	// cluster). 0: cluster.RetireAfterDefault; RetireOff: keep such
	// copies. In the file: a duration string (field retire_after), or
	// "off".
	RetireAfter time.Duration `json:"-"`
	// ForgetAfter is how old a deleted chunk's tombstone must be before
	// the node may forget it (cluster.DataServerConfig.ForgetAfter;
	// "Forgotten tombstones" in package replication). 0:
	// cluster.ForgetAfterDefault; ForgetOff: keep tombstones for ever.
	// In the file: a duration string (field forget_tombstones_after), or
	// "off".
	ForgetAfter time.Duration `json:"-"`
	// Logger receives the node's events; default slog.Default().
	Logger *slog.Logger `json:"-"`
	// OnListening, when set, is called once both listeners are bound,
	// with their addresses (metricsAddr is "" when metrics are off). Tests
	// listen on port 0 and learn the ports here.
	OnListening func(addr, metricsAddr string) `json:"-"`
}

// Values of Config.Conns.
const (
	ConnsReactors   = "reactors"
	ConnsGoroutines = "goroutines"
)

// configFields are the file's field names, for the unknown-field check.
var configFields = map[string]bool{
	"device": true, "format_size": true, "listen": true, "metrics_listen": true, "cores": true,
	"shards": true, "mode": true, "conns": true, "record_bytes": true, "read_cache_bytes": true, "labels": true, "cluster_id": true, "keys_file": true, "containers": true,
	"managers": true, "manager_id": true, "manager_peers": true, "manager_dir": true, "meta_dir": true, "cluster_key": true,
	"heartbeat_timeout": true, "read_lease": true, "retire_after": true, "forget_tombstones_after": true,
}

// LoadConfigFile reads a JSON config file (see the package
// documentation). Unknown fields are an error naming every one of them.
// It does not validate the values: call Validate (Run does).
func LoadConfigFile(path string) (Config, error) {
	var cfg Config
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("node: config: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return cfg, fmt.Errorf("node: config %s: %w", path, err)
	}
	var unknown []string
	for k := range raw {
		if !configFields[k] {
			unknown = append(unknown, fmt.Sprintf("%q", k))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return cfg, fmt.Errorf("node: config %s: unknown field(s) %s", path, strings.Join(unknown, ", "))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("node: config %s: %w", path, err)
	}
	// The durations are strings in the file, each with its parser.
	durations := []struct {
		field, want string
		parse       func(string) (time.Duration, error)
		dst         *time.Duration
	}{
		{"heartbeat_timeout", `a duration string such as "5s"`, time.ParseDuration, &cfg.HeartbeatTimeout},
		{"read_lease", `a duration string such as "500ms" ("0s": no leases)`, ParseReadLease, &cfg.ReadLease},
		{"retire_after", `a duration string such as "5m", or "off"`, ParseRetireAfter, &cfg.RetireAfter},
		{"forget_tombstones_after", `a duration string such as "10m", or "off"`, ParseForgetAfter, &cfg.ForgetAfter},
	}
	for _, d := range durations {
		b, ok := raw[d.field]
		if !ok {
			continue
		}
		var text string
		if err := json.Unmarshal(b, &text); err != nil {
			return cfg, fmt.Errorf("node: config %s: %s: want %s", path, d.field, d.want)
		}
		if *d.dst, err = d.parse(text); err != nil {
			return cfg, fmt.Errorf("node: config %s: %s: %w", path, d.field, err)
		}
	}
	return cfg, nil
}

// Validate reports every problem of c at once (one joined error, one
// problem a line), the keys file's included, or nil.
func (c *Config) Validate() error {
	_, err := c.check()
	return err
}

// check validates c and returns the keys of the keys file.
func (c *Config) check() ([]fileKey, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("node: config: "+format, args...)) }
	if c.Device == "" {
		bad("device: missing")
	}
	if c.FormatSize < 0 {
		bad("format_size %d: want a size in bytes, or 0", c.FormatSize)
	}
	if c.Shards < 0 {
		bad("shards %d: want at least 1 (or 0 for the default)", c.Shards)
	}
	for _, core := range c.Cores {
		if core < 0 {
			bad("cores: %d is not a CPU number", core)
		}
	}
	if c.RecordBytes != 0 && !engine.ValidRecordBytes(int64(c.RecordBytes)) {
		bad("record_bytes %d: want a multiple of 4096 from 4096 to %d (or 0 for the default)", c.RecordBytes, engine.MaxRecordBytes)
	}
	if c.ReadCacheBytes < 0 {
		bad("read_cache_bytes %d: want a size in bytes, or 0 for none", c.ReadCacheBytes)
	}
	switch c.Conns {
	case "", ConnsReactors, ConnsGoroutines:
	default:
		bad("conns %q: want %s or %s", c.Conns, ConnsReactors, ConnsGoroutines)
	}
	if c.Mode != "" {
		if _, err := engine.ParsePollMode(c.Mode); err != nil {
			bad("mode %q: want poll, hybrid or interrupt", c.Mode)
		}
	}
	switch {
	case c.ClusterID == "":
		bad("cluster_id: missing")
	case len(c.ClusterID) > 255:
		bad("cluster_id: %d bytes; at most 255", len(c.ClusterID))
	}
	seen := make(map[string]string)
	names := make([]string, 0, len(c.Labels))
	for k := range c.Labels {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if k == "" {
			bad("labels: empty label name")
			continue
		}
		s := sanitizeLabel(k)
		if prev, ok := seen[s]; ok {
			bad("labels: %q and %q are both exported as %q", prev, k, s)
		}
		seen[s] = k
	}
	if c.ManagerID != 0 && len(c.Managers) == 0 {
		bad("manager_id %d: a manager member needs managers (the group's addresses) too", c.ManagerID)
	}
	if c.ManagerID != 0 && len(c.ManagerPeers) == 0 {
		bad("manager_id %d: a manager member needs manager_peers (id=addr of every member, this one included)", c.ManagerID)
	}
	if c.HeartbeatTimeout != 0 && c.HeartbeatTimeout < heartbeatTimeoutMin {
		bad("heartbeat_timeout %v: want at least %v (or 0 for the default %v)", c.HeartbeatTimeout, heartbeatTimeoutMin, DefaultHeartbeatTimeout)
	}
	if c.ReadLease < 0 && c.ReadLease != ReadLeaseOff {
		bad("read_lease %v: want a positive duration, 0 for the default, or ReadLeaseOff", c.ReadLease)
	}
	if hb := c.heartbeatTimeout(); c.ReadLease >= hb {
		bad("read_lease %v: want less than the heartbeat timeout %v (a new primary may wait up to one lease before it writes)", c.ReadLease, hb)
	}
	if len(c.Managers) > 0 {
		if len(c.Labels) > clustermap.LabelsMax {
			bad("labels: %d of them; the cluster map holds at most %d", len(c.Labels), clustermap.LabelsMax)
		}
		for _, k := range names {
			if len(k) > clustermap.LabelKeyLenMax || len(c.Labels[k]) > clustermap.LabelValueLenMax {
				bad("labels: %q: the cluster map takes names of at most %d bytes and values of at most %d", k, clustermap.LabelKeyLenMax, clustermap.LabelValueLenMax)
			}
		}
		listen := c.Listen
		if listen == "" {
			listen = DefaultListen
		}
		if host, _, err := stdnet.SplitHostPort(listen); err != nil || host == "" || stdnet.ParseIP(host).IsUnspecified() {
			bad("listen %q: cluster mode advertises the listen address to the other processes; give a specific host:port", listen)
		}
	}
	if _, err := c.managerPeers(); err != nil {
		bad("%v", err)
	}
	var keys []fileKey
	if c.KeysFile == "" {
		bad("keys_file: missing")
	} else {
		var err error
		if keys, err = parseKeysFile(c.KeysFile); err != nil {
			errs = append(errs, err)
		} else if len(c.Managers) > 0 {
			i := slices.IndexFunc(keys, func(k fileKey) bool { return k.id == c.clusterKey() })
			if i < 0 || keys[i].readOnly {
				bad("cluster_key %q: cluster mode needs this key, read-write, in %s", c.clusterKey(), c.KeysFile)
			}
		}
	}
	return keys, errors.Join(errs...)
}

// heartbeatTimeoutMin keeps the heartbeat period (a quarter of the
// timeout) above scheduling noise.
const heartbeatTimeoutMin = 200 * time.Millisecond

// ReadLeaseOff in Config.ReadLease turns read leases off.
const ReadLeaseOff time.Duration = -1

// ParseReadLease parses a read lease as the file and the flag give it: a
// duration, "0s" (or any zero) for ReadLeaseOff.
func ParseReadLease(text string) (time.Duration, error) {
	d, err := time.ParseDuration(text)
	switch {
	case err != nil:
		return 0, err
	case d < 0:
		return 0, fmt.Errorf("%v is negative (0 turns leases off)", d)
	case d == 0:
		return ReadLeaseOff, nil
	}
	return d, nil
}

// RetireOff in Config.RetireAfter keeps the copies of PGs that moved
// away.
const RetireOff time.Duration = -1

// ForgetOff in Config.ForgetAfter keeps tombstones for ever.
const ForgetOff time.Duration = -1

// ParseForgetAfter parses the age at which tombstones may be forgotten as
// the file and the flag give it: a positive duration, or "off" for
// ForgetOff.
func ParseForgetAfter(text string) (time.Duration, error) {
	return parseDurationOrOff(text, "10m")
}

// parseDurationOrOff parses a positive duration, or "off" for -1.
func parseDurationOrOff(text, example string) (time.Duration, error) {
	if text == "off" {
		return -1, nil
	}
	d, err := time.ParseDuration(text)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%w (want a duration such as %s, or off)", err, example)
	case d <= 0:
		return 0, fmt.Errorf("%v: want a positive duration, or off", d)
	}
	return d, nil
}

// ParseRetireAfter parses the wait before a moved PG's copy is deleted as
// the file and the flag give it: a positive duration, or "off" for
// RetireOff.
func ParseRetireAfter(text string) (time.Duration, error) {
	return parseDurationOrOff(text, "5m")
}

// readLease is the lease to hand the data server (its convention: 0 for
// its default, negative for none).
func (c *Config) readLease() time.Duration {
	switch {
	case c.ReadLease == ReadLeaseOff:
		return -1
	case c.ReadLease > 0:
		return c.ReadLease
	}
	return min(cluster.ReadLeaseDefault, c.heartbeatTimeout()/8)
}

func (c *Config) heartbeatTimeout() time.Duration {
	if c.HeartbeatTimeout == 0 {
		return DefaultHeartbeatTimeout
	}
	return c.HeartbeatTimeout
}

func (c *Config) clusterKey() string {
	if c.ClusterKey == "" {
		return "cluster"
	}
	return c.ClusterKey
}

// managerPeer is one member of the manager group.
type managerPeer struct {
	id   uint64
	addr string
}

// managerPeers parses ManagerPeers ("id=addr"); ManagerID must be one of
// them when both are set.
func (c *Config) managerPeers() ([]managerPeer, error) {
	var peers []managerPeer
	seen := map[uint64]bool{}
	for _, p := range c.ManagerPeers {
		idText, addr, ok := strings.Cut(p, "=")
		id, err := strconv.ParseUint(idText, 10, 64)
		if !ok || err != nil || id == 0 || addr == "" {
			return nil, fmt.Errorf("manager_peers: %q: want id=addr with an id above 0", p)
		}
		if seen[id] {
			return nil, fmt.Errorf("manager_peers: member id %d listed twice", id)
		}
		seen[id] = true
		peers = append(peers, managerPeer{id, addr})
	}
	if c.ManagerID != 0 && len(peers) > 0 && !seen[c.ManagerID] {
		return nil, fmt.Errorf("manager_peers: this member's id %d is not among them", c.ManagerID)
	}
	return peers, nil
}

// LoadKeysFile reads a keys file: lines "keyid secret-hex [ro]"; blank
// lines and # comments are skipped. It reports every bad line, each
// named by file and line number.
func LoadKeysFile(path string) (*net.MemKeyStore, error) {
	fks, err := parseKeysFile(path)
	if err != nil {
		return nil, err
	}
	var keys net.MemKeyStore
	for _, k := range fks {
		keys.Add(k.id, k.secret, k.readOnly)
	}
	return &keys, nil
}

// fileKey is one key of a keys file.
type fileKey struct {
	id       string
	secret   []byte
	readOnly bool
}

// parseKeysFile reads a keys file (see LoadKeysFile), keys in file order.
func parseKeysFile(path string) ([]fileKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("node: keys file: %w", err)
	}
	defer f.Close()
	var (
		errs  []error
		keys  []fileKey
		seen  = make(map[string]int)
		lineN int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lineN++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("node: keys file %s line %d: "+format, append([]any{path, lineN}, args...)...))
		}
		fields := strings.Fields(line)
		if len(fields) < 2 || len(fields) > 3 {
			bad("want \"keyid secret-hex [ro]\", got %d field(s)", len(fields))
			continue
		}
		id := fields[0]
		if len(id) > 255 {
			bad("key id is %d bytes; at most 255", len(id))
			continue
		}
		secret, err := hex.DecodeString(fields[1])
		if err != nil || len(secret) == 0 {
			bad("key %q: secret is not hex digits", id)
			continue
		}
		ro := false
		if len(fields) == 3 {
			if fields[2] != "ro" {
				bad("key %q: third field %q: want ro or nothing", id, fields[2])
				continue
			}
			ro = true
		}
		if prev, ok := seen[id]; ok {
			bad("key %q already defined on line %d", id, prev)
			continue
		}
		seen[id] = lineN
		keys = append(keys, fileKey{id: id, secret: secret, readOnly: ro})
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("node: keys file %s: %w", path, err))
	}
	if len(errs) == 0 && len(seen) == 0 {
		errs = append(errs, fmt.Errorf("node: keys file %s: no keys", path))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return keys, nil
}

// sanitizeLabel turns a label name into a valid Prometheus label name:
// characters outside [a-zA-Z0-9_] become _, a leading digit gets a _
// prefix, and a name starting with the reserved "__" gets an "l" prefix.
func sanitizeLabel(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	out := string(b)
	if out[0] >= '0' && out[0] <= '9' {
		out = "_" + out
	}
	if strings.HasPrefix(out, "__") {
		out = "l" + out
	}
	return out
}

// DefaultManagerDir is Config.ManagerDir when the config names none: the
// device path with ".manager" appended.
func DefaultManagerDir(device string) string { return device + ".manager" }

// DefaultMetaDir is Config.MetaDir when the config names none: the device
// path with ".meta" appended.
func DefaultMetaDir(device string) string { return device + ".meta" }
