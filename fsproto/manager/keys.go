package manager

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/net"
)

// KindKeySecret asks a manager for a container key's secret, sealed to an
// ephemeral X25519 public key the caller sends. On-wire: never renumber.
const KindKeySecret net.Kind = 313

// CodeAccessDenied (265): the request's key may not do this (a container
// key reading another container's map, applying a command it is not
// granted, asking for a secret of a container it does not administer, any
// non-cluster key sending a heartbeat). It has the number of
// fsproto.CodeAccessDenied, so every weft server says "access denied"
// alike (this package does not import fsproto: it would link the engine
// into clients). Nothing was done.
const CodeAccessDenied net.ErrorCode = 265

// ErrAccessDenied is returned (wrapped, with the manager's message naming
// the key) when a manager answered CodeAccessDenied.
var ErrAccessDenied = errors.New("manager: access denied")

// Sealing of a key secret. On-wire: never change.
const (
	sealInfo          = "weft key secret v1"
	x25519PublicLen   = 32
	sealNonceLen      = 12
	sealTagLen        = 16
	keySecretReqMin   = 8 + x25519PublicLen + 1 + 1 // ver, reserved, public key, id length, id of at least 1 byte
	keySecretReplyLen = 8 + x25519PublicLen + sealNonceLen + clustermap.KeySecretLen + sealTagLen
)

// keySecretRequest is the header body of KindKeySecret:
//
//	0     1                  8                 40      41
//	+-----+------------------+-----------------+-------+--------+
//	| ver | reserved 7×u8=0  | caller's X25519 | id    | key id |
//	| u8  |                  | public key (32) | len u8| bytes  |
//	+-----+------------------+-----------------+-------+--------+
//
// No payload.
type keySecretRequest struct {
	Public [x25519PublicLen]byte
	KeyID  string
}

func (r keySecretRequest) append(b []byte) []byte {
	b = append(b, msgVersion, 0, 0, 0, 0, 0, 0, 0)
	b = append(b, r.Public[:]...)
	b = append(b, byte(len(r.KeyID)))
	return append(b, r.KeyID...)
}

func decodeKeySecretRequest(b []byte) (keySecretRequest, error) {
	var r keySecretRequest
	if len(b) < keySecretReqMin {
		return r, corrupt("key-secret request of %d bytes, want at least %d", len(b), keySecretReqMin)
	}
	if b[0] != msgVersion {
		return r, corrupt("key-secret request version %d, want %d", b[0], msgVersion)
	}
	for i := 1; i < 8; i++ {
		if b[i] != 0 {
			return r, corrupt("key-secret request reserved byte %d is %#x, want 0", i, b[i])
		}
	}
	copy(r.Public[:], b[8:])
	n := int(b[8+x25519PublicLen])
	rest := b[8+x25519PublicLen+1:]
	if n == 0 || n != len(rest) {
		return r, corrupt("key-secret request: key id length %d, %d bytes follow", n, len(rest))
	}
	r.KeyID = string(rest)
	return r, nil
}

// keySecretReply is the header body of a successful KindKeySecret reply:
//
//	0     1                  8                 40           52
//	+-----+------------------+-----------------+------------+------------------------+
//	| ver | reserved 7×u8=0  | manager's       | AES-GCM    | sealed secret (32) and |
//	| u8  |                  | X25519 public   | nonce (12) | GCM tag (16)           |
//	+-----+------------------+-----------------+------------+------------------------+
//
// No payload. The sealing key is HKDF-SHA256(X25519(manager private,
// caller public), salt = caller public || manager public, info = "weft
// key secret v1" || 0x00 || key id), 32 bytes, for AES-256-GCM with the
// key id as additional data.
type keySecretReply struct {
	Public [x25519PublicLen]byte
	Nonce  [sealNonceLen]byte
	Sealed [clustermap.KeySecretLen + sealTagLen]byte
}

func (r *keySecretReply) append(b []byte) []byte {
	b = append(b, msgVersion, 0, 0, 0, 0, 0, 0, 0)
	b = append(b, r.Public[:]...)
	b = append(b, r.Nonce[:]...)
	return append(b, r.Sealed[:]...)
}

func decodeKeySecretReply(b []byte) (keySecretReply, error) {
	var r keySecretReply
	if len(b) != keySecretReplyLen {
		return r, corrupt("key-secret reply of %d bytes, want %d", len(b), keySecretReplyLen)
	}
	if b[0] != msgVersion {
		return r, corrupt("key-secret reply version %d, want %d", b[0], msgVersion)
	}
	for i := 1; i < 8; i++ {
		if b[i] != 0 {
			return r, corrupt("key-secret reply reserved byte %d is %#x, want 0", i, b[i])
		}
	}
	off := 8
	off += copy(r.Public[:], b[off:])
	off += copy(r.Nonce[:], b[off:])
	copy(r.Sealed[:], b[off:])
	return r, nil
}

// sealKey derives the AES-256-GCM key both sides use.
func sealKey(shared, callerPub, managerPub []byte, keyID string) (cipher.AEAD, error) {
	salt := append(append([]byte(nil), callerPub...), managerPub...)
	k, err := hkdf.Key(sha256.New, shared, salt, sealInfo+"\x00"+keyID, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealSecret seals secret to the caller's X25519 public key with a fresh
// key pair of the manager.
func sealSecret(callerPub [x25519PublicLen]byte, keyID string, secret []byte) (*keySecretReply, error) {
	if len(secret) != clustermap.KeySecretLen {
		panic(fmt.Sprintf("manager: key secret of %d bytes, want %d", len(secret), clustermap.KeySecretLen))
	}
	pub, err := ecdh.X25519().NewPublicKey(callerPub[:])
	if err != nil {
		return nil, err
	}
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("x25519 with the caller's public key: %w", err)
	}
	r := &keySecretReply{}
	copy(r.Public[:], priv.PublicKey().Bytes())
	aead, err := sealKey(shared, callerPub[:], r.Public[:], keyID)
	if err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(rand.Reader, r.Nonce[:]); err != nil {
		return nil, err
	}
	aead.Seal(r.Sealed[:0], r.Nonce[:], secret, []byte(keyID))
	return r, nil
}

// openSecret opens a reply sealed to priv for keyID.
func openSecret(priv *ecdh.PrivateKey, keyID string, r *keySecretReply) ([]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(r.Public[:])
	if err != nil {
		return nil, corrupt("key-secret reply: manager public key: %v", err)
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		return nil, corrupt("key-secret reply: x25519: %v", err)
	}
	aead, err := sealKey(shared, priv.PublicKey().Bytes(), r.Public[:], keyID)
	if err != nil {
		return nil, err
	}
	secret, err := aead.Open(nil, r.Nonce[:], r.Sealed[:], []byte(keyID))
	if err != nil {
		return nil, corrupt("key-secret reply for key %s does not open: %v", keyID, err)
	}
	return secret, nil
}

// authorize is the manager's access check: nil when the request's key
// may make this request, else the reason (answered CodeAccessDenied). a
// nil Authorizer allows everything (as before keys had roles). cmd is
// the command of an apply request (nil for other kinds); cur is the
// member's map. It also returns the key's Grant (zero for a nil
// Authorizer), which get-map uses to reduce the map.
func authorize(a clustermap.Authorizer, peer *net.Peer, kind net.Kind, cur *clustermap.Map, cmd clustermap.Command, keyID string) (clustermap.Grant, error) {
	if a == nil {
		return clustermap.Grant{Role: clustermap.RoleCluster}, nil
	}
	g, ok := a.Grant(peer.KeyID)
	if !ok {
		return g, fmt.Errorf("key %q is unknown or revoked", peer.KeyID)
	}
	switch kind {
	case KindGetMap:
		return g, nil // any key; a container key gets its container only
	case KindApply:
		if err := g.MayApply(cur, cmd); err != nil {
			return g, fmt.Errorf("key %q: %v", peer.KeyID, err)
		}
		return g, nil
	case KindHeartbeat:
		if !g.Internal() {
			return g, fmt.Errorf("key %q is a %v key; heartbeats need the cluster key", peer.KeyID, g.Role)
		}
		return g, nil
	case KindMembers:
		if !g.Internal() {
			return g, fmt.Errorf("key %q is a %v key; the members question is between manager members, with the cluster key", peer.KeyID, g.Role)
		}
		return g, nil
	case KindRemoveMember:
		if !g.Internal() && g.Role != clustermap.RoleAdmin {
			return g, fmt.Errorf("key %q is a %v key; removing a manager member needs the cluster key or a cluster admin key", peer.KeyID, g.Role)
		}
		return g, nil
	case KindKeySecret:
		k, ok := cur.Key(keyID)
		if !ok {
			// Only key administrators learn whether a key exists.
			if g.Role == clustermap.RoleCluster || g.Role == clustermap.RoleAdmin {
				return g, nil // the handler answers not found
			}
			return g, fmt.Errorf("key %q may not read the secret of key %q", peer.KeyID, keyID)
		}
		if !g.AdministersKeys(k.Container) {
			return g, fmt.Errorf("key %q (%v) may not read the secret of key %s of container %d; that needs a cluster admin key or an admin key of the container",
				peer.KeyID, g.Role, keyID, k.Container)
		}
		return g, nil
	}
	return g, fmt.Errorf("key %q: kind %d unknown to the manager", peer.KeyID, kind)
}

func (m *Manager) serveKeySecret(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
	r, err := decodeKeySecretRequest(req.Header)
	if err != nil {
		w.Error(CodeBadRequest, err.Error())
		return
	}
	if why := m.down(); why != "" {
		w.Error(CodeUnavailable, why)
		return
	}
	if len(m.cfg.ClusterSecret) == 0 {
		w.Error(CodeRejected, fmt.Sprintf("manager %d: no cluster secret configured; it cannot derive key secrets", m.cfg.ID))
		return
	}
	// A read barrier: the key may have been created a moment ago
	// through another member.
	rctx, cancel := context.WithTimeout(ctx, m.cfg.ProposeTimeout)
	err = m.g.Load().ReadIndex(rctx)
	cancel()
	if err != nil {
		w.Error(CodeUnavailable, fmt.Sprintf("manager %d: read barrier: %v", m.cfg.ID, err))
		return
	}
	cur := m.sm.Map()
	if _, err := authorize(m.cfg.Access, &req.Peer, KindKeySecret, cur, nil, r.KeyID); err != nil {
		w.Error(CodeAccessDenied, fmt.Sprintf("manager %d: access denied: %v", m.cfg.ID, err))
		return
	}
	k, ok := cur.Key(r.KeyID)
	switch {
	case !ok:
		w.Error(CodeNotFound, fmt.Sprintf("manager %d: no key %q in the map at epoch %d", m.cfg.ID, r.KeyID, cur.Epoch))
		return
	case !k.Live():
		w.Error(CodeNotFound, fmt.Sprintf("manager %d: key %s was revoked at epoch %d", m.cfg.ID, r.KeyID, k.Revoked))
		return
	}
	sealed, err := sealSecret(r.Public, r.KeyID, clustermap.KeySecret(m.cfg.ClusterSecret, r.KeyID))
	if err != nil {
		w.Error(CodeBadRequest, fmt.Sprintf("manager %d: sealing the secret of %s: %v", m.cfg.ID, r.KeyID, err))
		return
	}
	w.Reply(sealed.append(nil), nil, nil)
}

// KeySecret returns the secret of container key id, which a manager
// derives and seals to a fresh X25519 key pair of this call (so the
// secret never crosses the wire in the clear). It needs the cluster key,
// a cluster admin key, or an admin key of the key's container; others get
// an error wrapping ErrAccessDenied. An unknown or revoked key gives an
// error wrapping clustermap.ErrNotFound.
func (c *Client) KeySecret(ctx context.Context, id string) ([]byte, error) {
	if len(id) == 0 || len(id) > 255 {
		return nil, fmt.Errorf("manager: key secret: key id of %d bytes, want 1..255", len(id))
	}
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("manager: key secret: %w", err)
	}
	var req keySecretRequest
	copy(req.Public[:], priv.PublicKey().Bytes())
	req.KeyID = id
	hdr := req.append(nil)
	var secret []byte
	err = c.run(ctx, "key secret", func(actx context.Context, conn *net.Conn) (bool, error) {
		resp, err := conn.Call(actx, KindKeySecret, hdr, nil)
		if err != nil {
			return false, err
		}
		defer resp.Release()
		r, err := decodeKeySecretReply(resp.Header)
		if err != nil {
			return false, err
		}
		if secret, err = openSecret(priv, id, &r); err != nil {
			return false, err
		}
		return true, nil
	}, clientApplyTimeout)
	return secret, err
}
