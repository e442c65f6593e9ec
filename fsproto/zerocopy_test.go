package fsproto

import (
	"context"
	"errors"
	stdnet "net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ncw/directio"
	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/internal/vfs"
	"github.com/weftfs/weft/net"
)

// addrSet records the start addresses of buffers seen at one point of the
// data path. Pooled buffers are reused, so an address stands for "a buffer
// that passed here", not for one write.
type addrSet struct {
	mu sync.Mutex
	m  map[uintptr]int
}

func (s *addrSet) add(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[uintptr]int{}
	}
	s.m[uintptr(unsafe.Pointer(unsafe.SliceData(p)))]++
}

func (s *addrSet) has(a uintptr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[a] > 0
}

// deviceFS records the buffers of the engine's device reads and writes of
// exactly one block: with a one-shard engine doing one 4 KiB write at a
// time, those are the payload blocks (batch headers and segment headers
// are separate iovecs, written from the engine's own buffers).
type deviceFS struct {
	vfs.FS
	reads, writes addrSet
}

func (d *deviceFS) OpenRW(name string, direct bool) (vfs.File, error) {
	f, err := d.FS.OpenRW(name, direct)
	if err != nil {
		return nil, err
	}
	return &deviceFile{File: f, d: d}, nil
}

type deviceFile struct {
	vfs.File
	d *deviceFS
}

func (f *deviceFile) WriteAt(p []byte, off int64) (int, error) {
	if len(p) == 4096 {
		f.d.writes.add(p)
	}
	return f.File.WriteAt(p, off)
}

func (f *deviceFile) ReadAt(p []byte, off int64) (int, error) {
	if len(p) == 4096 {
		f.d.reads.add(p)
	}
	return f.File.ReadAt(p, off)
}

// socketListener hands out connections that record the buffers written to
// the socket. They deliberately hide (*TCPConn).writeBuffers, so
// net.Buffers.WriteTo falls back to one Write per part and every part's
// address is seen; the parts are the same slices writev would take. (Not
// being a *net.TCPConn, they also turn off net's direct writes, which hand
// the same slices to writev(2) as they are.)
type socketListener struct {
	stdnet.Listener
	writes *addrSet
}

func (l *socketListener) Accept() (stdnet.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &socketConn{Conn: c, sc: c.(syscall.Conn), writes: l.writes}, nil
}

type socketConn struct {
	stdnet.Conn
	sc     syscall.Conn
	writes *addrSet
}

// SyscallConn keeps the server's readv receive path (payloads read
// straight into pooled buffers) as it is on a plain TCP connection.
func (c *socketConn) SyscallConn() (syscall.RawConn, error) { return c.sc.SyscallConn() }

func (c *socketConn) Write(p []byte) (int, error) {
	if len(p) == 4096 {
		c.writes.add(p)
	}
	return c.Conn.Write(p)
}

// TestZeroCopyDataPath shows that a 4 KiB chunk write travels from the
// socket to the device, and a 4 KiB chunk read from the device to the
// socket, in one buffer: the pooled buffer the server's transport read the
// payload into is the buffer the engine hands the device, and the buffer
// the device read into is the buffer written to the socket. It also
// reports the allocations per operation of the whole path (client, server
// and engine in this process).
func TestZeroCopyDataPath(t *testing.T) {
	mem := vfs.NewMem()
	if _, err := engine.Format(mem, engine.FormatRequest{Path: "dev", Size: 64 << 20, Options: engine.FormatOptions{SegmentSize: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
	dev := &deviceFS{FS: mem}
	e, err := engine.Open(engine.Options{Path: "dev", FS: dev, Shards: 1, IO: engine.IOSync, Mode: engine.Interrupt, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.Close(); err != nil {
			t.Errorf("engine close: %v", err)
		}
	}()
	pool := net.NewBufferPool()
	cs, err := NewChunkServer(e, ChunkServerConfig{Containers: func(c uint64) bool { return c == testContainer },
		Epoch: testEpoch, Buffers: pool, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	var received addrSet // payload buffers as the transport handed them to the handler
	handler := net.HandlerFunc(func(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
		if req.Kind == KindWrite && req.Payload != nil {
			received.add(req.Payload.Bytes())
		}
		cs.ServeRPC(ctx, req, w)
	})
	var ks net.MemKeyStore
	ks.Add(testKey, testSecret, false)
	srv, err := net.NewServer(net.ServerConfig{ClusterID: testCluster, Keys: &ks, Buffers: pool, Logger: quietLogger}, handler)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var sent addrSet
	served := make(chan error, 1)
	go func() { served <- srv.Serve(&socketListener{Listener: ln, writes: &sent}) }()
	defer func() {
		srv.Close()
		if err := <-served; err != nil && !errors.Is(err, net.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := net.Dial(ctx, ln.Addr().String(), net.ClientConfig{ClusterID: testCluster, KeyID: testKey, Secret: testSecret, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := NewChunkClient(conn, ChunkClientConfig{Epoch: testEpoch})

	const ops = 200
	data := directio.AlignedBlock(4096)
	dst := directio.AlignedBlock(4096)
	chunk := func(i int) (ChunkID, uint32) {
		return ChunkID{Container: testContainer, Inode: 1 + uint64(i%4), Index: uint64(i % 3)}, uint32(i%16) * 4096
	}
	before := copied(e)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	for i := range ops {
		copy(data, pattern(uint64(i), 4096))
		ch, off := chunk(i)
		if _, err := c.Write(ctx, ch, off, data); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	runtime.ReadMemStats(&ms1)
	writeAllocs := float64(ms1.Mallocs-ms0.Mallocs) / ops
	dev.reads.mu.Lock()
	clear(dev.reads.m) // recovery's and the checkpointer's reads are not the read path
	dev.reads.mu.Unlock()
	runtime.ReadMemStats(&ms0)
	for i := ops - 48; i < ops; i++ { // the last writes to each (chunk, offset)
		ch, off := chunk(i)
		if n, err := c.Read(ctx, ch, off, dst); err != nil || n != 4096 {
			t.Fatalf("read %d: n=%d err=%v", i, n, err)
		}
		if string(dst) != string(pattern(uint64(i), 4096)) {
			t.Fatalf("read %d: wrong bytes", i)
		}
	}
	runtime.ReadMemStats(&ms1)
	readAllocs := float64(ms1.Mallocs-ms0.Mallocs) / 48
	after := copied(e)

	if after != before {
		t.Errorf("engine copied payload bytes (in, out): %v before, %v after; want no change", before, after)
	}
	// Socket to device: every payload buffer the transport received into
	// is a buffer the device was written from.
	received.mu.Lock()
	nrecv := len(received.m)
	for a := range received.m {
		if !dev.writes.has(a) {
			t.Errorf("payload buffer %#x was received from the socket but never written to the device: the engine wrote a copy", a)
		}
	}
	received.mu.Unlock()
	if nrecv == 0 {
		t.Fatal("the handler saw no write payloads")
	}
	// Device to socket: every 4 KiB device read went to the socket from
	// the same buffer.
	dev.reads.mu.Lock()
	nread := len(dev.reads.m)
	for a := range dev.reads.m {
		if !sent.has(a) {
			t.Errorf("device read buffer %#x never reached the socket: the server sent a copy", a)
		}
	}
	dev.reads.mu.Unlock()
	if nread == 0 {
		t.Fatal("no 4 KiB device reads were seen")
	}
	// NB: the in-memory device copies what it is written (it models a
	// disk), 2 allocations per write; BenchmarkChunkWrite4K's memory
	// profile names every allocation site.
	t.Logf("per 4 KiB op, client+server+engine+in-memory device in one process: write %.1f allocations, read %.1f allocations; payload copies 0; %d distinct pooled receive buffers, %d distinct read buffers", writeAllocs, readAllocs, nrecv, nread)
}

// copied returns the engine's copied payload bytes, in and out.
func copied(e *engine.Engine) [2]uint64 {
	var c [2]uint64
	for _, sh := range e.Stats().Shards {
		c[0] += sh.CopiedInBytes
		c[1] += sh.CopiedOutBytes
	}
	return c
}

// BenchmarkChunkWrite4K: one 4 KiB chunk write at a time through the
// client, loopback TCP, the server and an in-memory engine; allocations
// are the whole process's.
func BenchmarkChunkWrite4K(b *testing.B) {
	f := startFixture(b)
	c := f.client(b, testKey)
	ctx := context.Background()
	data := directio.AlignedBlock(4096)
	b.SetBytes(4096)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.Write(ctx, ChunkID{Container: testContainer, Inode: 1, Index: uint64(i % 4)}, uint32(i%64)*4096, data); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
