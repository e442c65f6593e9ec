package net

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/weftfs/weft/internal/testutil"
)

func TestHandshakeRefusals(t *testing.T) {
	testutil.CheckLeaks(t)
	ts := startServer(t, echoMux(), nil)
	for _, tc := range []struct {
		name   string
		mod    func(*ClientConfig)
		code   ErrorCode
		msg    string
		logged string
	}{
		{"bad proof", func(c *ClientConfig) { c.Secret = []byte("wrong secret") }, CodeAuthFailed,
			`authentication failed: bad proof for key id "writer"`, `bad proof for key id`},
		{"unknown key", func(c *ClientConfig) { c.KeyID = "nobody" }, CodeAuthFailed,
			`authentication failed: unknown key id "nobody"`, `unknown key id`},
		{"cluster", func(c *ClientConfig) { c.ClusterID = "other" }, CodeClusterMismatch,
			`cluster id mismatch: server is "test-cluster", client asked for "other"`, `cluster id mismatch`},
		{"version", func(c *ClientConfig) { c.protoMin, c.protoMax = 9, 9 }, CodeVersionUnsupported,
			`protocol version 9 not supported; server speaks 1..1`, `protocol version 9 not supported`},
		{"versions", func(c *ClientConfig) { c.protoMin, c.protoMax = 7, 9 }, CodeVersionUnsupported,
			`protocol versions 7..9 not supported; server speaks 1..1`, `protocol versions 7..9`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := clientConfig()
			tc.mod(&cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := Dial(ctx, ts.addr, cfg)
			if err == nil {
				c.Close()
				t.Fatal("handshake accepted")
			}
			var re *RemoteError
			if !errors.As(err, &re) || re.Code != tc.code || re.Message != tc.msg {
				t.Fatalf("Dial: %v; want code %d %q", err, tc.code, tc.msg)
			}
			mustContain(t, "Dial error", err.Error(), "handshake refused: ")
			waitFor(t, "refusal logged", func() bool { return contains(ts.log.String(), tc.logged) })
		})
	}
	// The secret never crosses the wire: nothing the client sent contains
	// it (checked on the encoded messages).
	h := clientHello{versionMin: 1, versionMax: 1, maxPayload: 1, clusterID: testCluster, keyID: testKey}
	if contains(string(h.append(nil)), string(testSecret)) {
		t.Fatal("client hello contains the secret")
	}
	if m := ts.Metrics(); m.Errors.Handshake != 5 {
		t.Fatalf("server counted %d refused handshakes, want 5", m.Errors.Handshake)
	}
}

func TestHandshakeCancelledByContext(t *testing.T) {
	testutil.CheckLeaks(t)
	// A listener that accepts but never answers.
	silent := listenSilent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := Dial(ctx, silent, clientConfig())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial to a silent server: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	_, err := Dial(context.Background(), "127.0.0.1:1", ClientConfig{MaxPayloadBytes: -1, MaxInFlightBytes: 10})
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"ClusterID", "KeyID", "Secret is empty", "MaxPayloadBytes -1", "MaxInFlightBytes 10"} {
		mustContain(t, "config error", err.Error(), want)
	}
	_, err = NewServer(ServerConfig{MaxConcurrent: -3}, echoMux())
	for _, want := range []string{"ClusterID", "Keys is nil", "MaxConcurrent -3"} {
		mustContain(t, "config error", err.Error(), want)
	}
}

func contains(s, sub string) bool { return len(sub) == 0 || indexOf(s, sub) >= 0 }

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
