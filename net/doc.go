// Package net is weft's RPC transport: framing, connections with many
// requests in flight, the authentication handshake, connection pools, and a
// fault-injecting network for tests. It carries opaque typed messages (a
// Kind, a small binary header body, and a bulk payload); the chunk and
// metadata protocols of fsproto define their messages on top of it.
//
// This package shadows the standard library's net; files that need both
// import the latter as stdnet.
//
// # Using it
//
// A server answers requests with a Handler, usually a ServeMux that
// dispatches by kind:
//
//	mux := net.NewServeMux()
//	mux.HandleFunc(kindWrite, func(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
//		if req.Peer.ReadOnly { w.Error(codeReadOnly, "read-only key"); return }
//		buf := req.TakePayload()          // 4096-aligned: hand it to the engine, Release it after
//		...
//		w.Reply(hdr, nil, nil)
//	})
//	srv, err := net.NewServer(net.ServerConfig{ClusterID: "c1", Keys: keys}, mux)
//	go srv.Serve(ln)
//	...
//	srv.Shutdown(ctx)                     // finish what is in flight, refuse the rest
//
// A client dials (or takes a connection from a Pool) and calls:
//
//	c, err := net.Dial(ctx, addr, net.ClientConfig{ClusterID: "c1", KeyID: "k", Secret: s})
//	resp, err := c.Call(ctx, kindRead, hdr, nil)       // or c.Go(ctx, ..., done) for async
//	use(resp.Header, resp.Payload.Bytes())
//	resp.Release()                                      // the payload buffer goes back to its pool
//
// An application error comes back as a *RemoteError (a code and a
// message). A call whose context ends fails with ctx.Err(); one started
// with CallWithin or GoFuncWithin fails with an error matching ErrTimeout
// (and context.DeadlineExceeded) when its own limit passes first, which
// costs no context or timer per call (the Conn keeps one timer, armed for
// the earliest limit of its calls in flight). A call on a
// connection that fails gets an error matching ErrConnClosed: the request
// may or may not have been applied. A Pool (Get) keeps ConnsPerPeer
// connections per address and redials broken ones with exponential backoff
// and jitter; GetWithin bounds the wait for a dial.
//
// # Frames
//
// Everything on a connection, the handshake included, is a frame: a
// 32-byte fixed header, a header body of up to MaxHeaderBytes (64 KiB),
// and a payload of up to the receiver's limit (ClientConfig and
// ServerConfig MaxPayloadBytes, announced in the handshake; default 16
// MiB). All integers are little-endian. On-wire format: never renumber.
//
//	 0        4     5       6      8                 16           20           24            28         32
//	+--------+-----+-------+------+-----------------+------------+------------+-------------+----------+
//	| magic  | ver | flags | kind | request id      | header len | payload len| payload crc | hdr crc  |
//	| u32    | u8  | u8    | u16  | u64             | u32        | u32        | u32         | u32      |
//	+--------+-----+-------+------+-----------------+------------+------------+-------------+----------+
//	| header body: header len bytes (<= 65536)                                                        |
//	+-------------------------------------------------------------------------------------------------+
//	| payload: payload len bytes (<= the receiver's limit)                                            |
//	+-------------------------------------------------------------------------------------------------+
//
//	magic        0x4e544657 ("WFTN" as bytes on the wire)
//	ver          frame layout version, 1
//	flags        bit 0 response: sent by the server (answers, handshake replies, go-away)
//	             bit 1 error: an error response; the body is u16 code | UTF-8 message, no payload
//	             bit 2 payload crc: the payload crc field is the CRC32C of the payload (else 0)
//	             other bits must be 0
//	kind         what the frame carries: 1-4 handshake, 5 ping, 6 go-away, up to 255 reserved
//	             for the transport, from 256 (FirstUserKind) the layers above
//	request id   chosen by the client, unique per connection, echoed by the response; 0 for
//	             the handshake and go-away
//	hdr crc      CRC32C (Castagnoli) of bytes 0..27 and the header body
//
// A decoder checks, in this order and before allocating anything: magic,
// version, flags, header length, payload length (against the connection's
// limit, so a frame claiming a 4 GiB payload is refused before a byte of
// it is read); then it reads the body and payload and checks the
// checksums. Any failure is a *FrameError (ErrCorrupt) naming what was
// wrong and where; the stream cannot be trusted after it, so the
// connection is closed with that reason (the server logs it). An unknown
// kind is not a transport error: the server answers it with an error
// response (CodeUnknownKind) and keeps the connection.
//
// # Handshake
//
// The first frames of every connection authenticate the client; nothing
// else is accepted before. See handshake.go for the message layouts.
//
//	client                                  server
//	client hello: versions, max payload,
//	  cluster id, key id           ──────►  version in common? same cluster?
//	                               ◄──────  server hello: chosen version, max payload,
//	                                          32-byte random nonce
//	client proof: HMAC-SHA256(secret,
//	  nonce|cluster id|key id|version) ───►  KeyStore.Lookup(key id); hmac.Equal
//	                               ◄──────  welcome: version, read-only flag
//
// No secret crosses the wire and the nonce makes every proof single-use.
// A refusal is an error response and the server closes the connection:
// "protocol version N not supported; server speaks M..K" (CodeVersion-
// Unsupported), "cluster id mismatch: server is X" (CodeClusterMismatch),
// "authentication failed: unknown key id K" or "authentication failed:
// bad proof for key id K" (CodeAuthFailed). The handler learns the key id
// and whether the key is read-only (Request.Peer).
//
// Revoking a key: remove it from the KeyStore (new handshakes fail), then
// Server.CloseKey(id) closes the connections already authenticated with
// it; a handshake that looked the key up just before its removal is
// closed as it completes (it looks the key up once more after publishing
// its identity), so no connection with a revoked key survives.
//
// # Zero copy
//
// A received payload is read from the socket straight into a pooled
// 4096-aligned Buffer (BufferPool: power-of-two size classes allocated with
// directio.AlignedBlock), so the engine can write it with O_DIRECT as it
// is. A server's reader never reads a payload byte into anything else:
// it stages fixed headers and bodies ahead (a peek at the socket tells how
// far it may read: whole payload-less frames, up to the next payload), so
// a burst of read requests costs two system calls, and it reads a payload
// with readv(2) straight into its Buffer together with the next frame's
// fixed header. A client's reader stages whole responses, up to 64 KiB a
// read, and copies a payload that arrived with others into its
// destination (4 KiB cost less to copy than a system call); the part of a
// large payload not yet read goes straight to its destination. Metrics
// count the receive system calls and the payload bytes copied. Whoever
// receives a payload owns its Buffer and releases it. A sender's payload
// is written from the caller's slices by one vectored write
// (stdnet.Buffers: writev) together with the fixed header and body; the
// connection's writer goroutine batches all the frames queued while it
// was busy into that one writev. A frame with nothing else in progress on
// its connection (a client's only call, a server's answer when no other
// request waits) is instead written at once by the goroutine that queues
// it, with one non-blocking writev, when nobody else is writing: nothing
// would be batched with it, and the hand-off to the writer is a thread
// wake-up when the queuer is an engine reactor; what the socket does not
// take goes to the writer. The caller must leave the payload unchanged
// until its call completes (client) or its release callback runs
// (server), which may be before Reply returns.
//
// # Concurrency and flow control
//
// A Conn is safe for concurrent use; so are Server and Pool. A Conn runs a
// reader goroutine (it matches responses to calls by request id, so they
// may complete in any order) and a writer goroutine. A server connection
// runs a reader, a writer, and a goroutine per request in progress,
// except for requests a Starter handler takes: those it starts on the
// reader and answers from whatever completes them. Conn.GoFunc likewise
// completes a call on the reader, with a callback, and can read a
// response payload straight into the caller's buffer.
//
// With ServerConfig.Loop, a server's connections (TCP and Unix sockets,
// after the handshake) are run by an event loop instead of a reader
// goroutine: weft node hands them to its engine's reactors. The loop reads
// requests with non-blocking system calls (a peek, then one read of every
// whole header and body there; payloads straight into their buffers, over
// as many passes as they take), starts them with the Starter on its own
// thread, and at the end of each pass writes every answer queued in the
// pass with one non-blocking writev; what the socket does not take goes to
// the writer goroutine, as do frames queued outside a pass. So a request
// the Starter takes crosses no thread from the socket to the device and
// back. Back-pressure is the same: with no slot or no room for a payload,
// the loop leaves the socket unread and is woken when a request ends.
//
// Memory is bounded on both sides: a client's calls in flight on one
// connection hold at most ClientConfig.MaxInFlightBytes of request bytes
// (Go and Call wait for room, respecting their context); a server
// connection runs at most ServerConfig.MaxConcurrent requests and holds at
// most ServerConfig.MaxInFlightBytes of their payloads, and stops reading
// its socket while either bound is reached, so TCP flow control pushes back
// on the client.
//
// Invariants: a call completes (its Done channel receives it) exactly once,
// and only after the writer no longer uses its payload; a response's slot
// and bytes are given back only after its frame was written or dropped; a
// connection that read a bad frame reads nothing more.
//
// # Testing
//
// FaultNet puts seeded faults (drop, delay, duplicate, reorder, partition)
// between named endpoints, at frame granularity; ClientConfig.Dial takes
// its Dialer. Metrics counts frames, bytes, calls and errors by class.
package net
