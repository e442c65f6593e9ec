package net

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	stdnet "net"
	"sync"
)

// KeyStore looks up the access keys a server accepts. Implementations must
// be safe for concurrent use.
type KeyStore interface {
	// Lookup returns the secret of keyID and whether the key only grants
	// reads, or ok false when the key is unknown. The caller does not
	// modify or keep the secret.
	Lookup(keyID string) (secret []byte, readOnly bool, ok bool)
}

// MemKeyStore is an in-memory KeyStore. The zero value is empty and
// ready; it is safe for concurrent use.
type MemKeyStore struct {
	mu   sync.RWMutex
	keys map[string]memKey
}

type memKey struct {
	secret   []byte
	readOnly bool
}

// Add adds or replaces a key. The store keeps a copy of secret.
func (s *MemKeyStore) Add(keyID string, secret []byte, readOnly bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = make(map[string]memKey)
	}
	s.keys[keyID] = memKey{secret: append([]byte(nil), secret...), readOnly: readOnly}
}

// Remove removes a key; connections already authenticated with it stay.
func (s *MemKeyStore) Remove(keyID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, keyID)
}

// Lookup implements KeyStore.
func (s *MemKeyStore) Lookup(keyID string) ([]byte, bool, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.keys[keyID]
	return k.secret, k.readOnly, ok
}

// Peer is the authenticated identity at the other end of a server
// connection.
type Peer struct {
	KeyID      string // the key the client proved it holds
	ReadOnly   bool   // the key only grants reads; the layers above refuse writes
	RemoteAddr string // the socket's remote address
	Version    uint16 // the protocol version negotiated
}

// Handshake messages, carried as the bodies of frames with request id 0
// and no payload. All integers little-endian. On-wire format: never
// renumber or reorder.
//
//	client hello (client → server, kind 1):
//	  u16 version min | u16 version max | u32 max payload the client accepts
//	  | u8 len | cluster id | u8 len | key id
//	server hello (server → client, kind 2):
//	  u16 chosen version | u32 max payload the server accepts | 32-byte nonce
//	client proof (client → server, kind 3):
//	  32-byte HMAC-SHA256(secret, nonce | u8 len | cluster id | u8 len | key id | u16 version)
//	welcome (server → client, kind 4):
//	  u16 version | u8 flags (bit 0: the key is read-only)
//
// A refusal is an error response (see the frame flags) with a code from
// CodeAuthFailed, CodeClusterMismatch, CodeVersionUnsupported,
// CodeBadMessage, after which the server closes the connection.
const (
	nonceSize       = 32
	macSize         = sha256.Size
	serverHelloSize = 2 + 4 + nonceSize
	clientProofSize = macSize
	welcomeSize     = 3

	welcomeReadOnly uint8 = 1 << 0
)

type clientHello struct {
	versionMin, versionMax uint16
	maxPayload             uint32
	clusterID, keyID       string
}

func (m *clientHello) append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, m.versionMin)
	b = binary.LittleEndian.AppendUint16(b, m.versionMax)
	b = binary.LittleEndian.AppendUint32(b, m.maxPayload)
	b = append(b, byte(len(m.clusterID)))
	b = append(b, m.clusterID...)
	b = append(b, byte(len(m.keyID)))
	return append(b, m.keyID...)
}

// decodeClientHello decodes b; the reason is "" when it is valid.
func decodeClientHello(b []byte) (clientHello, string) {
	var m clientHello
	if len(b) < 10 {
		return m, fmt.Sprintf("client hello of %d bytes, want at least 10", len(b))
	}
	m.versionMin = binary.LittleEndian.Uint16(b[0:])
	m.versionMax = binary.LittleEndian.Uint16(b[2:])
	m.maxPayload = binary.LittleEndian.Uint32(b[4:])
	rest := b[8:]
	var ok bool
	if m.clusterID, rest, ok = takeID(rest); !ok {
		return m, "client hello: cluster id length runs past the message"
	}
	if m.keyID, rest, ok = takeID(rest); !ok {
		return m, "client hello: key id length runs past the message"
	}
	switch {
	case len(rest) != 0:
		return m, fmt.Sprintf("client hello: %d trailing bytes", len(rest))
	case m.versionMin == 0 || m.versionMin > m.versionMax:
		return m, fmt.Sprintf("client hello: bad version range %d..%d", m.versionMin, m.versionMax)
	case m.maxPayload == 0 || m.maxPayload > maxPayloadLimit:
		return m, fmt.Sprintf("client hello: max payload %d out of range [1, %d]", m.maxPayload, maxPayloadLimit)
	case m.clusterID == "":
		return m, "client hello: empty cluster id"
	case m.keyID == "":
		return m, "client hello: empty key id"
	}
	return m, ""
}

func takeID(b []byte) (string, []byte, bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", b, false
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], true
}

type serverHello struct {
	version    uint16
	maxPayload uint32
	nonce      [nonceSize]byte
}

func (m *serverHello) append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, m.version)
	b = binary.LittleEndian.AppendUint32(b, m.maxPayload)
	return append(b, m.nonce[:]...)
}

func decodeServerHello(b []byte) (serverHello, string) {
	var m serverHello
	if len(b) != serverHelloSize {
		return m, fmt.Sprintf("server hello of %d bytes, want %d", len(b), serverHelloSize)
	}
	m.version = binary.LittleEndian.Uint16(b[0:])
	m.maxPayload = binary.LittleEndian.Uint32(b[2:])
	copy(m.nonce[:], b[6:])
	switch {
	case m.version == 0:
		return m, "server hello: version 0"
	case m.maxPayload == 0 || m.maxPayload > maxPayloadLimit:
		return m, fmt.Sprintf("server hello: max payload %d out of range [1, %d]", m.maxPayload, maxPayloadLimit)
	}
	return m, ""
}

type clientProof struct{ mac [macSize]byte }

func (m *clientProof) append(b []byte) []byte { return append(b, m.mac[:]...) }

func decodeClientProof(b []byte) (clientProof, string) {
	var m clientProof
	if len(b) != clientProofSize {
		return m, fmt.Sprintf("client proof of %d bytes, want %d", len(b), clientProofSize)
	}
	copy(m.mac[:], b)
	return m, ""
}

type welcome struct {
	version uint16
	flags   uint8
}

func (m *welcome) append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, m.version)
	return append(b, m.flags)
}

func decodeWelcome(b []byte) (welcome, string) {
	var m welcome
	if len(b) != welcomeSize {
		return m, fmt.Sprintf("welcome of %d bytes, want %d", len(b), welcomeSize)
	}
	m.version = binary.LittleEndian.Uint16(b)
	m.flags = b[2]
	switch {
	case m.version == 0:
		return m, "welcome: version 0"
	case m.flags&^welcomeReadOnly != 0:
		return m, fmt.Sprintf("welcome: unknown flags %#02x", m.flags&^welcomeReadOnly)
	}
	return m, ""
}

// handshakeMAC is the proof that the client holds secret: an HMAC-SHA256
// over the server's fresh nonce and everything the client claimed, so a
// proof cannot be replayed to another server, cluster, key or version.
func handshakeMAC(secret []byte, nonce *[nonceSize]byte, clusterID, keyID string, version uint16) [macSize]byte {
	h := hmac.New(sha256.New, secret)
	h.Write(nonce[:])
	h.Write([]byte{byte(len(clusterID))})
	io.WriteString(h, clusterID)
	h.Write([]byte{byte(len(keyID))})
	io.WriteString(h, keyID)
	h.Write(binary.LittleEndian.AppendUint16(nil, version))
	var mac [macSize]byte
	h.Sum(mac[:0])
	return mac
}

// writeFrame writes one small frame (no payload) directly to the socket;
// the handshake uses it before the connection's writer starts.
func writeFrame(c stdnet.Conn, kind Kind, flags uint8, id uint64, body []byte) error {
	b := make([]byte, frameHeaderSize, frameHeaderSize+len(body))
	b = append(b, body...)
	putFrameHeader(b, &frameHeader{flags: flags, kind: kind, id: id}, body)
	_, err := c.Write(b)
	return err
}

// readHandshakeFrame reads one handshake frame of kind want. A response
// frame with the error flag comes back as a *RemoteError (the refusal).
func readHandshakeFrame(fr *frameReader, want Kind, response bool, m *Metrics) ([]byte, error) {
	off := fr.offset
	h, err := fr.readHeader()
	if err != nil {
		return nil, err
	}
	if h.payloadLen != 0 {
		return nil, &FrameError{Offset: off, Reason: fmt.Sprintf("%v frame with a %d-byte payload during the handshake", h.kind, h.payloadLen)}
	}
	body := make([]byte, h.bodyLen)
	if err := fr.readRest(&h, body, nil); err != nil {
		return nil, err
	}
	m.frameIn(&h)
	switch {
	case (h.flags&flagResponse != 0) != response:
		return nil, &FrameError{Offset: off, Reason: fmt.Sprintf("%v frame with response flag %v during the handshake", h.kind, !response)}
	case h.flags&flagError != 0:
		return nil, parseErrorBody(body)
	case h.kind != want:
		return nil, &FrameError{Offset: off, Reason: fmt.Sprintf("%v frame during the handshake, want %v", h.kind, want)}
	case h.id != 0:
		return nil, &FrameError{Offset: off, Reason: fmt.Sprintf("handshake frame with request id %d, want 0", h.id)}
	}
	return body, nil
}

// refusal is a handshake the server turned down: sent to the client as an
// error response and logged.
type refusal struct {
	code ErrorCode
	msg  string
}

func (r *refusal) Error() string { return "handshake refused: " + r.msg }

// serverHandshake runs the server's side of the handshake on a new
// connection. It returns the client's identity and the largest payload the
// client accepts. A refusal has been sent to the client when it returns a
// *refusal; any other error means the stream failed or could not be
// trusted.
func serverHandshake(nc stdnet.Conn, fr *frameReader, cfg *ServerConfig) (Peer, uint32, error) {
	m := cfg.Metrics
	refuse := func(kind Kind, code ErrorCode, msg string) error {
		_ = writeFrame(nc, kind, flagResponse|flagError, 0, appendErrorBody(nil, code, msg))
		m.framesOut.Add(1)
		return &refusal{code: code, msg: msg}
	}
	body, err := readHandshakeFrame(fr, kindClientHello, false, m)
	if err != nil {
		return Peer{}, 0, err
	}
	hello, reason := decodeClientHello(body)
	if reason != "" {
		return Peer{}, 0, refuse(kindClientHello, CodeBadMessage, reason)
	}
	version := min(hello.versionMax, cfg.protoMax)
	if version < hello.versionMin || version < cfg.protoMin {
		var v string
		if hello.versionMin == hello.versionMax {
			v = fmt.Sprintf("protocol version %d not supported", hello.versionMin)
		} else {
			v = fmt.Sprintf("protocol versions %d..%d not supported", hello.versionMin, hello.versionMax)
		}
		return Peer{}, 0, refuse(kindClientHello, CodeVersionUnsupported,
			fmt.Sprintf("%s; server speaks %d..%d", v, cfg.protoMin, cfg.protoMax))
	}
	if hello.clusterID != cfg.ClusterID {
		return Peer{}, 0, refuse(kindClientHello, CodeClusterMismatch,
			fmt.Sprintf("cluster id mismatch: server is %q, client asked for %q", cfg.ClusterID, hello.clusterID))
	}
	sh := serverHello{version: version, maxPayload: uint32(cfg.MaxPayloadBytes)}
	if _, err := rand.Read(sh.nonce[:]); err != nil {
		return Peer{}, 0, fmt.Errorf("net: handshake nonce: %w", err)
	}
	if err := writeFrame(nc, kindServerHello, flagResponse, 0, sh.append(nil)); err != nil {
		return Peer{}, 0, err
	}
	m.framesOut.Add(1)
	body, err = readHandshakeFrame(fr, kindClientProof, false, m)
	if err != nil {
		return Peer{}, 0, err
	}
	proof, reason := decodeClientProof(body)
	if reason != "" {
		return Peer{}, 0, refuse(kindClientProof, CodeBadMessage, reason)
	}
	// NB: the refusal tells an unknown key from a bad proof (operators
	// need to know which), and nothing more: never the expected proof.
	secret, readOnly, ok := cfg.Keys.Lookup(hello.keyID)
	if !ok {
		return Peer{}, 0, refuse(kindClientProof, CodeAuthFailed, fmt.Sprintf("authentication failed: unknown key id %q", hello.keyID))
	}
	want := handshakeMAC(secret, &sh.nonce, hello.clusterID, hello.keyID, version)
	if !hmac.Equal(want[:], proof.mac[:]) {
		return Peer{}, 0, refuse(kindClientProof, CodeAuthFailed, fmt.Sprintf("authentication failed: bad proof for key id %q", hello.keyID))
	}
	w := welcome{version: version}
	if readOnly {
		w.flags |= welcomeReadOnly
	}
	if err := writeFrame(nc, kindWelcome, flagResponse, 0, w.append(nil)); err != nil {
		return Peer{}, 0, err
	}
	m.framesOut.Add(1)
	return Peer{KeyID: hello.keyID, ReadOnly: readOnly, RemoteAddr: nc.RemoteAddr().String(), Version: version}, hello.maxPayload, nil
}

// handshakeResult is what the client learns from the handshake.
type handshakeResult struct {
	version       uint16
	readOnly      bool
	maxPayloadOut uint32 // the largest request payload the server accepts
}

// clientHandshake runs the client's side. A refusal comes back as a
// *RemoteError.
func clientHandshake(nc stdnet.Conn, fr *frameReader, cfg *ClientConfig) (handshakeResult, error) {
	m := cfg.Metrics
	hello := clientHello{versionMin: cfg.protoMin, versionMax: cfg.protoMax, maxPayload: uint32(cfg.MaxPayloadBytes),
		clusterID: cfg.ClusterID, keyID: cfg.KeyID}
	if err := writeFrame(nc, kindClientHello, 0, 0, hello.append(nil)); err != nil {
		return handshakeResult{}, err
	}
	m.framesOut.Add(1)
	body, err := readHandshakeFrame(fr, kindServerHello, true, m)
	if err != nil {
		return handshakeResult{}, err
	}
	sh, reason := decodeServerHello(body)
	if reason != "" {
		return handshakeResult{}, &FrameError{Offset: fr.offset, Reason: reason}
	}
	if sh.version < cfg.protoMin || sh.version > cfg.protoMax {
		return handshakeResult{}, &FrameError{Offset: fr.offset, Reason: fmt.Sprintf("server chose protocol version %d, outside the offered %d..%d", sh.version, cfg.protoMin, cfg.protoMax)}
	}
	proof := clientProof{mac: handshakeMAC(cfg.Secret, &sh.nonce, cfg.ClusterID, cfg.KeyID, sh.version)}
	if err := writeFrame(nc, kindClientProof, 0, 0, proof.append(nil)); err != nil {
		return handshakeResult{}, err
	}
	m.framesOut.Add(1)
	body, err = readHandshakeFrame(fr, kindWelcome, true, m)
	if err != nil {
		return handshakeResult{}, err
	}
	w, reason := decodeWelcome(body)
	if reason != "" {
		return handshakeResult{}, &FrameError{Offset: fr.offset, Reason: reason}
	}
	if w.version != sh.version {
		return handshakeResult{}, &FrameError{Offset: fr.offset, Reason: fmt.Sprintf("welcome names version %d, server hello chose %d", w.version, sh.version)}
	}
	return handshakeResult{version: sh.version, readOnly: w.flags&welcomeReadOnly != 0, maxPayloadOut: sh.maxPayload}, nil
}
