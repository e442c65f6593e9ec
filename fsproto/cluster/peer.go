package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/replication"
	"github.com/weftfs/weft/net"
)

// KindPeer carries a batch of replication messages from one node to
// another. On-wire: never renumber.
const KindPeer net.Kind = net.FirstUserKind + 64 // 320

// CodeNotForMe answers a peer batch addressed to another node (the sender's
// map is stale, or an address was reused) or sent with a key other than
// the cluster key. On-wire: never renumber.
const CodeNotForMe net.ErrorCode = net.FirstUserCode + 64

// Peer batch limits.
const (
	peerVersion = 1
	// PeerHeaderLen is the length of a KindPeer header body.
	PeerHeaderLen = 24
	// PeerBatchMax bounds the messages of one batch.
	PeerBatchMax = 4096
	// peerBatchBytes is what a sender puts in one batch before it starts
	// another (one message may exceed it alone).
	peerBatchBytes = 1 << 20
)

// ErrBadPeerBatch marks every decoding failure of a KindPeer frame.
var ErrBadPeerBatch = errors.New("cluster: malformed peer batch")

// PeerHeader is the header body of a KindPeer frame.
type PeerHeader struct {
	Count uint32            // messages in the payload, 1..PeerBatchMax
	From  clustermap.NodeID // sender
	To    clustermap.NodeID // intended receiver
}

var le = binary.LittleEndian

// AppendPeerHeader appends h's encoding to b.
func AppendPeerHeader(b []byte, h PeerHeader) []byte {
	b = append(b, peerVersion, 0, 0, 0)
	b = le.AppendUint32(b, h.Count)
	b = le.AppendUint64(b, uint64(h.From))
	return le.AppendUint64(b, uint64(h.To))
}

// DecodePeerHeader decodes a KindPeer header body. Errors wrap
// ErrBadPeerBatch.
func DecodePeerHeader(b []byte) (PeerHeader, error) {
	var h PeerHeader
	if len(b) != PeerHeaderLen {
		return h, fmt.Errorf("%w: header of %d bytes, want %d", ErrBadPeerBatch, len(b), PeerHeaderLen)
	}
	if b[0] != peerVersion {
		return h, fmt.Errorf("%w: version %d, want %d", ErrBadPeerBatch, b[0], peerVersion)
	}
	if b[1] != 0 || b[2] != 0 || b[3] != 0 {
		return h, fmt.Errorf("%w: reserved header bytes % x are not zero", ErrBadPeerBatch, b[1:4])
	}
	h.Count = le.Uint32(b[4:])
	h.From = clustermap.NodeID(le.Uint64(b[8:]))
	h.To = clustermap.NodeID(le.Uint64(b[16:]))
	if h.Count == 0 || h.Count > PeerBatchMax {
		return h, fmt.Errorf("%w: count %d outside 1..%d", ErrBadPeerBatch, h.Count, PeerBatchMax)
	}
	if h.From == 0 || h.To == 0 {
		return h, fmt.Errorf("%w: node id 0 (from %d, to %d)", ErrBadPeerBatch, h.From, h.To)
	}
	return h, nil
}

// appendPeerMsg appends one length-prefixed message to a batch payload.
func appendPeerMsg(b []byte, m *replication.Msg) []byte {
	at := len(b)
	b = append(b, 0, 0, 0, 0)
	b = replication.AppendMsg(b, m)
	le.PutUint32(b[at:], uint32(len(b)-at-4))
	return b
}

// DecodePeerBatch decodes the count messages of a KindPeer payload into
// msgs (appended) and returns it. Each message's Data aliases payload.
// Errors wrap ErrBadPeerBatch (and replication.ErrBadMessage for a bad
// message) and name the message's index.
func DecodePeerBatch(msgs []replication.Msg, payload []byte, count uint32) ([]replication.Msg, error) {
	for i := uint32(0); i < count; i++ {
		if len(payload) < 4 {
			return msgs, fmt.Errorf("%w: message %d of %d: %d bytes left, want a 4-byte length", ErrBadPeerBatch, i, count, len(payload))
		}
		n := le.Uint32(payload)
		if uint64(n) > uint64(len(payload)-4) {
			return msgs, fmt.Errorf("%w: message %d of %d: length %d over the %d bytes left", ErrBadPeerBatch, i, count, n, len(payload)-4)
		}
		m, err := replication.DecodeMsg(payload[4 : 4+n])
		if err != nil {
			return msgs, fmt.Errorf("%w: message %d of %d: %w", ErrBadPeerBatch, i, count, err)
		}
		msgs = append(msgs, m)
		payload = payload[4+n:]
	}
	if len(payload) != 0 {
		return msgs, fmt.Errorf("%w: %d trailing bytes after %d messages", ErrBadPeerBatch, len(payload), count)
	}
	return msgs, nil
}
