// Package fsproto defines weft's file-system protocols on top of package
// net. This first layer is the chunk protocol: a client (ChunkClient)
// reads and writes chunks of files on a storage node, whose ChunkServer
// stores each chunk as one engine object.
//
// # Using it
//
//	cs, err := fsproto.NewChunkServer(eng, fsproto.ChunkServerConfig{
//		Containers: func(id uint64) bool { return id == 42 },
//		Epoch:      epoch,
//	})
//	srv, err := net.NewServer(net.ServerConfig{ClusterID: "c1", Keys: keys}, cs) // or cs.Register(mux)
//	go srv.Serve(ln)
//
//	conn, err := net.Dial(ctx, addr, net.ClientConfig{...})
//	c := fsproto.NewChunkClient(conn, fsproto.ChunkClientConfig{Epoch: epoch})
//	res, err := c.Write(ctx, fsproto.ChunkID{Container: 42, Inode: 7, Index: 0}, 0, data)
//	n, err := c.Read(ctx, chunk, 0, p)               // io.EOF at the chunk's end
//	op := c.GoWrite(ctx, chunk, off, data, done)     // async: deep queues on one Conn
//
// ChunkServer is a net.Starter: a read or a write is decoded on the
// connection's reader and submitted to the engine (engine.Submit), and
// the engine's reactor answers each as it completes it
// (engine.Request.Notify); when its asyncOpsMax (1024) engine requests are all in use, or a
// write's retry overtakes its first attempt, a request is served by a
// handler goroutine that waits for the engine instead. ChunkClient's
// GoRead and GoWrite complete on the connection's reader (net.Conn.GoFunc)
// and a read's data lands in the caller's buffer without a copy.
//
// ChunkServer and ChunkClient are safe for concurrent use. Errors the
// server answers with come back wrapping one of the package's sentinels
// (ErrNotFound, ErrNoSpace, ErrReadOnly, ErrUnknownContainer,
// ErrStaleEpoch, ErrCorrupt, ErrInvalid, ErrUnavailable, ErrBadMessage)
// and the *net.RemoteError; test them with errors.Is.
//
// # Messages
//
// Every message is a net frame: its kind says which message its header
// body holds, and a kind's layout never changes (a new layout is a new
// kind: kinds are the versions). A response has its request's kind. All
// integers are little-endian. Decoders check the exact length (no trailing
// bytes), reserved fields and flag bits (zero), the ChunkID ranges and the
// read length, and fail with an error wrapping ErrBadMessage that says
// what was wrong; the server answers such a request with CodeBadMessage.
// On-wire format: never renumber.
//
//	chunk id (24 bytes)
//	+-----------+-------+-------+
//	| container | inode | index |      inode < 2^40, index < 2^24
//	| u64       | u64   | u64   |
//	+-----------+-------+-------+
//
//	kind 256 write (56 bytes), payload = the data (1 byte .. 4 MiB)
//	+----------+-----+-----+-------+------------+
//	| chunk id | off | pg  | epoch | request id |
//	| 24       | u32 | u32 | u64   | [16]byte   |
//	+----------+-----+-----+-------+------------+
//
//	kind 257 read (40 bytes), no payload
//	+----------+-----+-----+-------+
//	| chunk id | off | len | epoch |           1 <= len <= 4 MiB
//	| 24       | u32 | u32 | u64   |
//	+----------+-----+-----+-------+
//
//	kind 258 truncate (56 bytes)           kind 259 delete (56 bytes)
//	+----------+------+-----+-------+-----+  +----------+-----+------+-------+-----+
//	| chunk id | size | pg  | epoch | rid |  | chunk id | pg  | rsvd | epoch | rid |
//	| 24       | u32  | u32 | u64   | 16  |  | 24       | u32 | u32=0| u64   | 16  |
//	+----------+------+-----+-------+-----+  +----------+-----+------+-------+-----+
//
//	write result (16 bytes): answers write, truncate, delete
//	+---------+-------+
//	| version | pgSeq |
//	| u64     | u64   |
//	+---------+-------+
//
//	read result (8 bytes), payload = the n bytes read
//	+-----+-------+
//	| n   | flags |                          flags bit 0: EOF (the read reached the
//	| u32 | u32   |                          chunk's end); other bits must be 0
//	+-----+-------+
//
// Error codes start at net.FirstUserCode: 256 not found, 257 no space,
// 258 invalid, 259 corrupt, 260 read-only key, 261 unknown container, 262
// stale epoch, 263 bad message, 264 unavailable (engine closed or failed:
// a mutation may have been applied), 265 access denied (the key does not
// reach the container; also answered by the metadata servers).
//
// # Chunks and objects
//
// A chunk is stored as the engine object
//
//	ObjectID{Hi: container, Lo: inode<<24 | index}
//
// a bit packing, so distinct chunks map to distinct objects over the
// whole valid range (any container, inode < 2^40, index < 2^24; 64 TiB
// files with 4 MiB chunks), and ChunkOf inverts it. IDs outside that range
// are refused by the decoders and by the client before sending.
//
// # Server
//
// Mutations (write, truncate, delete) are refused for read-only keys
// (Peer.ReadOnly) and every request for a container the server does not
// hold (ChunkServerConfig.Containers) or with an epoch other than the
// server's (for now a constant compared for equality). A write's payload
// is handed to engine.Write in the aligned buffer net read it into, with
// no copy, and released once the write is durable. A read fills a pooled
// aligned buffer that the response is sent from; the transport releases
// it once the frame is written.
//
// Each mutation carries a random RequestID, and a retry resends it
// unchanged. The server remembers the results of the last
// ChunkServerConfig.DedupeEntries (default 65536) successful mutations by
// id, and answers a repeated id with the first result without applying
// it again; a repeat that arrives while the first is in progress waits
// for it. The table is bounded (FIFO) and in memory: an id older than the
// bound, or from before a restart, is applied again. Failed mutations are
// not remembered. Invariant: an id is applied at most once while it is
// in the table.
//
// # Client
//
// Write, Truncate and Delete pick a fresh RequestID; SendWrite sends a
// given Write as is (a retry). With ChunkClientConfig.Redial set, a call
// that fails because its connection closed is retried once on a new
// connection, with the same RequestID. GoWrite and GoRead start calls
// and deliver an *Op on a channel; many can be in flight on one
// connection, bounded by net's in-flight limits.
//
// # Not done yet
//
//   - the node daemon that opens engines and serves them (tools/);
//   - metrics for the chunk layer (net counts frames and errors only);
//   - the cluster map: placement of chunks on nodes and PGs, per-PG
//     epochs (ChunkClientConfig.PG defaults to PG 0), replication;
//   - durable request ids, so that dedupe survives restarts and the bound;
//   - a weft:// target for bench/.
package fsproto
