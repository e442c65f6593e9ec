package net

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	stdnet "net"
	"strings"
	"time"
)

// Protocol versions this build speaks, negotiated in the handshake (the
// highest version both sides speak wins). On-wire: never renumber.
const (
	ProtocolVersionMin uint16 = 1
	ProtocolVersionMax uint16 = 1
)

// Defaults.
const (
	DefaultMaxInFlightBytes       = 64 << 20
	DefaultMaxConcurrent          = 128
	DefaultServerMaxInFlightBytes = 256 << 20
	DefaultHandshakeTimeout       = 10 * time.Second
	DefaultWriteTimeout           = 30 * time.Second
)

// maxIDBytes bounds cluster and key ids (a u8 length on the wire).
const maxIDBytes = 255

// ClientConfig configures a client connection (Dial) or a Pool's
// connections. The zero value of every field but ClusterID, KeyID and
// Secret selects a default.
type ClientConfig struct {
	// ClusterID names the cluster the client expects; the server refuses
	// the connection if it belongs to another. 1 to 255 bytes.
	ClusterID string
	// KeyID and Secret are the access key the client proves it holds.
	// The secret never crosses the wire. KeyID: 1 to 255 bytes.
	KeyID  string
	Secret []byte

	// MaxPayloadBytes is the largest response payload this client accepts
	// (announced in the handshake; the server refuses to send more) and,
	// together with the server's announced limit, bounds request payloads.
	// Default DefaultMaxPayloadBytes, at most 1 GiB.
	MaxPayloadBytes int
	// MaxInFlightBytes bounds the request bytes (frame header, body and
	// payload) of the calls in flight on one connection; Go and Call wait
	// while it is reached. Default DefaultMaxInFlightBytes; at least
	// MaxPayloadBytes + MaxHeaderBytes + 32 so that any request fits.
	MaxInFlightBytes int
	// NoPayloadChecksum turns off the CRC32C of request payloads. The
	// server still checks checksums it receives.
	NoPayloadChecksum bool
	// HandshakeTimeout bounds the handshake (and the dial) when the
	// context has no earlier deadline. Default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds one vectored write; a peer that stops reading
	// for longer gets the connection closed. Default DefaultWriteTimeout;
	// negative: none.
	WriteTimeout time.Duration

	// Dial opens the socket. Default: a stdnet.Dialer's DialContext. Tests
	// put the fault transport here (FaultNet.Dialer).
	Dial func(ctx context.Context, network, addr string) (stdnet.Conn, error)
	// Buffers is the pool response payloads are read into. Default
	// DefaultBufferPool().
	Buffers *BufferPool
	// Metrics receives the connection's counts. Default: a fresh Metrics
	// per Conn (per Pool for a Pool's connections).
	Metrics *Metrics
	// Logger receives connection events. Default slog.Default().
	Logger *slog.Logger

	// protoMin and protoMax override the versions offered, for tests.
	protoMin, protoMax uint16
}

// validate reports every problem at once, and returns the config with
// defaults filled in.
func (c ClientConfig) resolve() (ClientConfig, error) {
	var probs []string
	checkID(&probs, "ClusterID", c.ClusterID)
	checkID(&probs, "KeyID", c.KeyID)
	if len(c.Secret) == 0 {
		probs = append(probs, "Secret is empty")
	}
	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if c.MaxPayloadBytes < 0 || c.MaxPayloadBytes > maxPayloadLimit {
		probs = append(probs, fmt.Sprintf("MaxPayloadBytes %d out of range [1, %d]", c.MaxPayloadBytes, maxPayloadLimit))
	}
	if c.MaxInFlightBytes == 0 {
		c.MaxInFlightBytes = max(DefaultMaxInFlightBytes, maxFrameBytes(c.MaxPayloadBytes))
	}
	if need := maxFrameBytes(c.MaxPayloadBytes); c.MaxInFlightBytes < need {
		probs = append(probs, fmt.Sprintf("MaxInFlightBytes %d below the largest request, %d (MaxPayloadBytes + MaxHeaderBytes + %d)", c.MaxInFlightBytes, need, frameHeaderSize))
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.HandshakeTimeout < 0 {
		probs = append(probs, fmt.Sprintf("HandshakeTimeout %v is negative", c.HandshakeTimeout))
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.Dial == nil {
		var d stdnet.Dialer
		c.Dial = d.DialContext
	}
	if c.Buffers == nil {
		c.Buffers = defaultBuffers
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.protoMin == 0 {
		c.protoMin, c.protoMax = ProtocolVersionMin, ProtocolVersionMax
	}
	if len(probs) > 0 {
		return c, errors.New("net: client config: " + strings.Join(probs, "; "))
	}
	return c, nil
}

// ServerConfig configures a Server. The zero value of every field but
// ClusterID and Keys selects a default.
type ServerConfig struct {
	// ClusterID is this cluster's id; clients naming another are refused.
	ClusterID string
	// Keys looks up the keys clients prove they hold.
	Keys KeyStore

	// MaxPayloadBytes is the largest request payload the server accepts
	// (announced in the handshake). Default DefaultMaxPayloadBytes, at
	// most 1 GiB.
	MaxPayloadBytes int
	// MaxConcurrent bounds the requests of one connection being handled
	// or answered at once. When it is reached the server stops reading
	// from that connection's socket, so TCP flow control pushes back on
	// the client. Default DefaultMaxConcurrent.
	MaxConcurrent int
	// MaxInFlightBytes bounds the request payload bytes held by one
	// connection's requests in progress; reading stops while it is
	// reached. Default DefaultServerMaxInFlightBytes; at least
	// MaxPayloadBytes.
	MaxInFlightBytes int
	// NoPayloadChecksum turns off the CRC32C of response payloads.
	NoPayloadChecksum bool
	// HandshakeTimeout bounds a new connection's handshake. Default
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds one vectored write. Default DefaultWriteTimeout;
	// negative: none.
	WriteTimeout time.Duration

	// Loop, when set, runs the connections (TCP and Unix sockets) on
	// an event loop once their handshake is done: the loop reads their
	// requests, starts them and writes the answers, instead of each
	// connection's reader goroutine (see Loop). It needs a Handler that
	// is a Starter, and that Starter then runs on the loop, so it must
	// never wait for anything the loop does (a storage engine's request,
	// when the loop is that engine's reactor). Requests it does not take
	// go to handler goroutines as usual.
	Loop Loop

	// Buffers is the pool request payloads are read into. Default
	// DefaultBufferPool().
	Buffers *BufferPool
	// Metrics receives the server's counts. Default: a fresh Metrics.
	Metrics *Metrics
	// Logger receives connection events, among them the reason each
	// connection was closed for. Default slog.Default().
	Logger *slog.Logger

	// protoMin and protoMax override the versions spoken, for tests.
	protoMin, protoMax uint16
}

func (c ServerConfig) resolve() (ServerConfig, error) {
	var probs []string
	checkID(&probs, "ClusterID", c.ClusterID)
	if c.Keys == nil {
		probs = append(probs, "Keys is nil")
	}
	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if c.MaxPayloadBytes < 0 || c.MaxPayloadBytes > maxPayloadLimit {
		probs = append(probs, fmt.Sprintf("MaxPayloadBytes %d out of range [1, %d]", c.MaxPayloadBytes, maxPayloadLimit))
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.MaxConcurrent < 0 || c.MaxConcurrent > 1<<16 {
		probs = append(probs, fmt.Sprintf("MaxConcurrent %d out of range [1, %d]", c.MaxConcurrent, 1<<16))
	}
	if c.MaxInFlightBytes == 0 {
		c.MaxInFlightBytes = max(DefaultServerMaxInFlightBytes, c.MaxPayloadBytes)
	}
	if c.MaxInFlightBytes < c.MaxPayloadBytes {
		probs = append(probs, fmt.Sprintf("MaxInFlightBytes %d below MaxPayloadBytes %d", c.MaxInFlightBytes, c.MaxPayloadBytes))
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.HandshakeTimeout < 0 {
		probs = append(probs, fmt.Sprintf("HandshakeTimeout %v is negative", c.HandshakeTimeout))
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.Buffers == nil {
		c.Buffers = defaultBuffers
	}
	if c.Metrics == nil {
		c.Metrics = new(Metrics)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.protoMin == 0 {
		c.protoMin, c.protoMax = ProtocolVersionMin, ProtocolVersionMax
	}
	if len(probs) > 0 {
		return c, errors.New("net: server config: " + strings.Join(probs, "; "))
	}
	return c, nil
}

func checkID(probs *[]string, name, v string) {
	if len(v) == 0 || len(v) > maxIDBytes {
		*probs = append(*probs, fmt.Sprintf("%s %q must be 1 to %d bytes", name, v, maxIDBytes))
	}
}

// maxFrameBytes is the size of the largest frame with a payload of up to
// maxPayload bytes.
func maxFrameBytes(maxPayload int) int { return frameHeaderSize + MaxHeaderBytes + maxPayload }

func writeTimeout(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d
}
