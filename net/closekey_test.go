package net

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCloseKey: a key removed from the store and closed fails new
// handshakes, and its open connection ends; connections with other keys
// go on.
func TestCloseKey(t *testing.T) {
	keys := testKeys()
	const victim = "victim"
	victimSecret := []byte("victim-secret-0123456789")
	keys.Add(victim, victimSecret, false)
	ts := startServer(t, echoMux(), func(c *ServerConfig) { c.Keys = keys })

	vcfg := clientConfig()
	vcfg.KeyID, vcfg.Secret = victim, victimSecret
	vc := dialTest(t, ts.addr, vcfg)
	defer vc.Close()
	other := dialTest(t, ts.addr, clientConfig())
	defer other.Close()
	echo := func(c *Conn) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := c.Call(ctx, kindEcho, []byte("hi"), nil)
		if err == nil {
			resp.Release()
		}
		return err
	}
	if err := echo(vc); err != nil {
		t.Fatalf("victim key before revocation: %v", err)
	}

	keys.Remove(victim)
	if n := ts.CloseKey(victim); n != 1 {
		t.Fatalf("CloseKey closed %d connections, want 1", n)
	}
	if err := echo(vc); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("call on the revoked key's connection: %v, want ErrConnClosed", err)
	}
	if err := echo(other); err != nil {
		t.Fatalf("other key after the revocation: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Dial(ctx, ts.addr, vcfg)
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != CodeAuthFailed {
		t.Fatalf("new handshake with the revoked key: %v, want CodeAuthFailed", err)
	}
	if n := ts.CloseKey(victim); n != 0 {
		t.Fatalf("second CloseKey closed %d", n)
	}
}
