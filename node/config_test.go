package node

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/cluster"
)

func TestLoadConfigFile(t *testing.T) {
	dir := t.TempDir()
	keys := writeFile(t, dir, "keys", "k1 "+rwSecret+"\n")
	p := writeFile(t, dir, "node.json", `{
		"device": "/tmp/dev", "format_size": 1048576, "listen": "0.0.0.0:7070",
		"metrics_listen": "127.0.0.1:9090", "cores": [2, 3], "shards": 2, "mode": "poll", "record_bytes": 8192, "read_cache_bytes": 1048576,
		"labels": {"site": "a", "zone": "z"}, "cluster_id": "c1",
		"keys_file": "`+keys+`", "containers": [1, 5]
	}`)
	cfg, err := LoadConfigFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Device: "/tmp/dev", FormatSize: 1 << 20, Listen: "0.0.0.0:7070", MetricsListen: "127.0.0.1:9090",
		Cores: []int{2, 3}, Shards: 2, Mode: "poll", RecordBytes: 8192, ReadCacheBytes: 1 << 20, Labels: map[string]string{"site": "a", "zone": "z"},
		ClusterID: "c1", KeysFile: keys, Containers: []uint64{1, 5}}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got %+v\nwant %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestLoadConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, text, want string }{
		{"unknown", `{"device": "d", "listn": "x", "zone": "z"}`, `unknown field(s) "listn", "zone"`},
		{"syntax", `{"device": `, "unexpected end of JSON input"},
		{"type", `{"shards": "two"}`, "shards"},
	} {
		_, err := LoadConfigFile(writeFile(t, dir, tc.name+".json", tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := LoadConfigFile(dir + "/missing.json"); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
}

func TestValidateReportsEverything(t *testing.T) {
	cfg := Config{FormatSize: -1, Shards: -2, Cores: []int{-1}, Mode: "busy", Conns: "threads", RecordBytes: 6000, ReadCacheBytes: -5, ClusterID: strings.Repeat("x", 256),
		KeysFile: t.TempDir() + "/nokeys", Labels: map[string]string{"a-b": "1", "a.b": "2", "": "3"}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate: nil")
	}
	msg := err.Error()
	for _, want := range []string{"device: missing", "format_size -1", "shards -2", "cores: -1", `mode "busy"`, `conns "threads": want reactors or goroutines`, "record_bytes 6000", "read_cache_bytes -5",
		"cluster_id: 256 bytes", `"a-b" and "a.b" are both exported as "a_b"`, "empty label name", "nokeys"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if n := strings.Count(msg, "\n") + 1; n != 12 {
		t.Errorf("%d lines, want one per problem (12):\n%s", n, msg)
	}
}

func TestLoadKeysFile(t *testing.T) {
	dir := t.TempDir()
	keys, err := LoadKeysFile(writeFile(t, dir, "good", "# c\n\nrw "+rwSecret+"\n  ro "+roSecret+" ro\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ro, ok := keys.Lookup("rw"); !ok || ro {
		t.Errorf("rw: ok=%v ro=%v", ok, ro)
	}
	if _, ro, ok := keys.Lookup("ro"); !ok || !ro {
		t.Errorf("ro: ok=%v ro=%v", ok, ro)
	}

	p := writeFile(t, dir, "bad", "k1 "+rwSecret+"\nk2\nk3 xyz\nk4 "+rwSecret+" rw\nk1 "+roSecret+"\nk5 a b c\n")
	_, err = LoadKeysFile(p)
	if err == nil {
		t.Fatal("bad keys file: nil error")
	}
	for _, want := range []string{
		p + " line 2: want", p + ` line 3: key "k3": secret is not hex`, p + ` line 4: key "k4": third field "rw"`,
		p + ` line 5: key "k1" already defined on line 1`, p + " line 6: want",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := LoadKeysFile(writeFile(t, dir, "empty", "# nothing\n")); err == nil || !strings.Contains(err.Error(), "no keys") {
		t.Errorf("empty keys file: %v", err)
	}
}

func TestSanitizeLabel(t *testing.T) {
	for in, want := range map[string]string{"site": "site", "zone-a": "zone_a", "1x": "_1x", "__x": "l__x", "rack.id": "rack_id"} {
		if got := sanitizeLabel(in); got != want {
			t.Errorf("sanitizeLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClusterConfig(t *testing.T) {
	dir := t.TempDir()
	keys := writeFile(t, dir, "keys", "cluster "+rwSecret+"\nro "+roSecret+" ro\n")
	p := writeFile(t, dir, "node.json", `{
		"device": "/tmp/dev", "listen": "10.0.0.1:7070", "cluster_id": "c1", "keys_file": "`+keys+`",
		"managers": ["10.0.0.1:7070", "10.0.0.2:7070"], "manager_id": 1,
		"manager_peers": ["1=10.0.0.1:7070", "2=10.0.0.2:7070"], "heartbeat_timeout": "1500ms"
	}`)
	cfg, err := LoadConfigFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HeartbeatTimeout != 1500*time.Millisecond || cfg.ManagerID != 1 || len(cfg.ManagerPeers) != 2 {
		t.Errorf("got %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if _, err := LoadConfigFile(writeFile(t, dir, "bad.json", `{"heartbeat_timeout": 5}`)); err == nil || !strings.Contains(err.Error(), "heartbeat_timeout") {
		t.Errorf("numeric heartbeat_timeout: %v", err)
	}

	bad := Config{Device: "d", ClusterID: "c1", KeysFile: keys, Listen: "0.0.0.0:7070", Managers: []string{"a:1"},
		ManagerID: 3, HeartbeatTimeout: time.Millisecond, ClusterKey: "ro",
		Labels: map[string]string{strings.Repeat("k", 64): "v"}}
	err = bad.Validate()
	if err == nil {
		t.Fatal("Validate: nil")
	}
	for _, want := range []string{"needs manager_peers", "heartbeat_timeout 1ms", `cluster_key "ro"`, "give a specific host:port", "names of at most 63 bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v\nwant a problem containing %q", err, want)
		}
	}
}

func TestDurationConfig(t *testing.T) {
	dir := t.TempDir()
	fields := []struct {
		field string
		get   func(*Config) time.Duration
		good  map[string]time.Duration
		bad   []string
	}{
		{"read_lease", func(c *Config) time.Duration { return c.ReadLease },
			map[string]time.Duration{`"250ms"`: 250 * time.Millisecond, `"0s"`: ReadLeaseOff}, []string{`"-1s"`, `"soon"`, `500`}},
		{"retire_after", func(c *Config) time.Duration { return c.RetireAfter },
			map[string]time.Duration{`"90s"`: 90 * time.Second, `"off"`: RetireOff}, []string{`"0s"`, `"-1m"`, `"later"`, `60`}},
		{"forget_tombstones_after", func(c *Config) time.Duration { return c.ForgetAfter },
			map[string]time.Duration{`"1h"`: time.Hour, `"off"`: ForgetOff}, []string{`"0s"`, `"-1m"`, `"never"`, `60`}},
	}
	for _, f := range fields {
		for text, want := range f.good {
			cfg, err := LoadConfigFile(writeFile(t, dir, "d.json", `{"`+f.field+`": `+text+`}`))
			if err != nil || f.get(&cfg) != want {
				t.Errorf("%s %s: got %v, %v; want %v", f.field, text, f.get(&cfg), err, want)
			}
		}
		for _, text := range f.bad {
			if _, err := LoadConfigFile(writeFile(t, dir, "d.json", `{"`+f.field+`": `+text+`}`)); err == nil || !strings.Contains(err.Error(), f.field) {
				t.Errorf("%s %s: %v, want an error naming %s", f.field, text, err, f.field)
			}
		}
	}
	for _, c := range []struct {
		cfg  Config
		want time.Duration // what the data server gets
	}{
		{Config{}, cluster.ReadLeaseDefault},
		{Config{HeartbeatTimeout: time.Second}, time.Second / 8},
		{Config{ReadLease: 300 * time.Millisecond}, 300 * time.Millisecond},
		{Config{ReadLease: ReadLeaseOff}, -1},
	} {
		if got := c.cfg.readLease(); got != c.want {
			t.Errorf("readLease of %v (heartbeat timeout %v) = %v, want %v", c.cfg.ReadLease, c.cfg.HeartbeatTimeout, got, c.want)
		}
	}
	bad := Config{HeartbeatTimeout: time.Second, ReadLease: time.Second}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "read_lease 1s: want less than the heartbeat timeout") {
		t.Errorf("Validate of a lease as long as the heartbeat timeout: %v", err)
	}
	bad = Config{ReadLease: -time.Second}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "read_lease -1s") {
		t.Errorf("Validate of a negative lease: %v", err)
	}
}
