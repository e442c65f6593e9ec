package fsproto

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/net"

	"github.com/weftfs/weft/internal/testutil"
)

func chunk(ino, idx uint64) ChunkID { return ChunkID{Container: testContainer, Inode: ino, Index: idx} }

func TestWriteReadTruncateDelete(t *testing.T) {
	testutil.CheckLeaks(t)
	f := startFixture(t)
	c := f.client(t, testKey)
	ctx := testCtx(t)
	ch := chunk(1, 0)

	data := pattern(1, 10000)
	r1, err := c.Write(ctx, ch, 0, data)
	if err != nil {
		t.Fatal(err)
	}
	// Unaligned offset and length.
	tail := pattern(2, 777)
	r2, err := c.Write(ctx, ch, 9000, tail)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Version <= r1.Version || r2.PGSeq <= r1.PGSeq {
		t.Fatalf("second write %+v does not follow first %+v", r2, r1)
	}
	want := append([]byte(nil), data...)
	copy(want[9000:], tail)
	got := make([]byte, len(want))
	if n, err := c.Read(ctx, ch, 0, got); err != nil || n != len(want) || !bytes.Equal(got, want) {
		t.Fatalf("read: n %d err %v, equal %v", n, err, bytes.Equal(got, want))
	}
	// The engine holds the data under the documented object id.
	st, err := f.e.Stat(ObjectID(ch))
	if err != nil || st.Size != uint64(len(want)) || st.Version != r2.Version {
		t.Fatalf("engine stat %+v, %v", st, err)
	}

	// Read past the end: short read with io.EOF, then 0 bytes with io.EOF.
	p := make([]byte, 1000)
	if n, err := c.Read(ctx, ch, 9500, p); n != len(want)-9500 || err != io.EOF || !bytes.Equal(p[:n], want[9500:]) {
		t.Fatalf("read across the end: n %d err %v", n, err)
	}
	if n, err := c.Read(ctx, ch, 20000, p); n != 0 || err != io.EOF {
		t.Fatalf("read past the end: n %d err %v", n, err)
	}

	r3, err := c.Truncate(ctx, ch, 100)
	if err != nil || r3.Version <= r2.Version {
		t.Fatalf("truncate: %+v, %v", r3, err)
	}
	if n, err := c.Read(ctx, ch, 0, p); n != 100 || err != io.EOF || !bytes.Equal(p[:100], data[:100]) {
		t.Fatalf("read after truncate: n %d err %v", n, err)
	}

	if _, err := c.Delete(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(ctx, ch, 0, p); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read after delete: %v, want ErrNotFound", err)
	}
}

func TestErrors(t *testing.T) {
	testutil.CheckLeaks(t)
	f := startFixture(t)
	c := f.client(t, testKey)
	ctx := testCtx(t)
	p := make([]byte, 10)

	_, err := c.Read(ctx, chunk(99, 1), 0, p)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown chunk: %v, want ErrNotFound", err)
	}
	var re *net.RemoteError
	if !errors.As(err, &re) || re.Code != CodeNotFound {
		t.Fatalf("unknown chunk: %v does not carry the remote error", err)
	}

	other := ChunkID{Container: testContainer + 1, Inode: 1}
	if _, err := c.Read(ctx, other, 0, p); !errors.Is(err, ErrUnknownContainer) || !strings.Contains(err.Error(), "container 43") {
		t.Fatalf("read of unknown container: %v", err)
	}
	if _, err := c.Write(ctx, other, 0, p); !errors.Is(err, ErrUnknownContainer) {
		t.Fatalf("write to unknown container: %v", err)
	}

	stale := NewChunkClient(c.Conn(), ChunkClientConfig{Epoch: testEpoch - 1})
	if _, err := stale.Write(ctx, chunk(1, 1), 0, p); !errors.Is(err, ErrStaleEpoch) || !strings.Contains(err.Error(), "request epoch 6, server epoch 7") {
		t.Fatalf("stale write: %v", err)
	}
	if _, err := stale.Read(ctx, chunk(1, 1), 0, p); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("stale read: %v", err)
	}
	if _, err := f.e.Stat(ObjectID(chunk(1, 1))); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("stale write reached the engine: %v", err)
	}

	if _, err := c.Write(ctx, chunk(1, 2), 0, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty write: %v, want ErrInvalid", err)
	}
	if _, err := c.Read(ctx, chunk(1, 2), 0, make([]byte, MaxReadBytes+1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("oversized read: %v, want ErrInvalid", err)
	}

	// A malformed header is refused by the server with CodeBadMessage.
	_, err = c.Conn().Call(ctx, KindRead, []byte{1, 2, 3}, nil)
	if !errors.As(err, &re) || re.Code != CodeBadMessage || !strings.Contains(re.Message, "read header is 3 bytes, want 40") {
		t.Fatalf("bad header: %v", err)
	}
}

func TestReadOnlyKey(t *testing.T) {
	testutil.CheckLeaks(t)
	f := startFixture(t)
	ctx := testCtx(t)
	rw, ro := f.client(t, testKey), f.client(t, testROKey)
	ch := chunk(5, 3)
	data := pattern(3, 4096)
	if _, err := rw.Write(ctx, ch, 0, data); err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Write(ctx, ch, 0, pattern(4, 4096)); !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), `key "ro" is read-only`) {
		t.Fatalf("read-only write: %v", err)
	}
	if _, err := ro.Truncate(ctx, ch, 0); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only truncate: %v", err)
	}
	if _, err := ro.Delete(ctx, ch); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only delete: %v", err)
	}
	p := make([]byte, len(data))
	if n, err := ro.Read(ctx, ch, 0, p); err != nil || n != len(data) || !bytes.Equal(p, data) {
		t.Fatalf("read-only read: n %d err %v", n, err)
	}
}

// TestRetriedWriteAppliedOnce sends the same Write (same RequestID) twice:
// the second returns the first's result and writes nothing.
func TestRetriedWriteAppliedOnce(t *testing.T) {
	testutil.CheckLeaks(t)
	f := startFixture(t)
	c := f.client(t, testKey)
	ctx := testCtx(t)
	ch := chunk(8, 0)
	m := Write{Chunk: ch, Off: 0, Epoch: testEpoch, RequestID: NewRequestID()}
	first := pattern(5, 8192)
	r1, err := c.SendWrite(ctx, m, first)
	if err != nil {
		t.Fatal(err)
	}
	// The retry carries other bytes, so a second apply would show.
	r2, err := c.SendWrite(ctx, m, pattern(6, 8192))
	if err != nil {
		t.Fatal(err)
	}
	if r1 != r2 {
		t.Fatalf("retry result %+v differs from first %+v", r2, r1)
	}
	st, err := f.e.Stat(ObjectID(ch))
	if err != nil || st.Version != r1.Version {
		t.Fatalf("engine version %d after retry (%v), first write gave %d", st.Version, err, r1.Version)
	}
	p := make([]byte, len(first))
	if n, err := c.Read(ctx, ch, 0, p); err != nil || n != len(p) || !bytes.Equal(p, first) {
		t.Fatalf("after retry: n %d err %v, data is the first write's: %v", n, err, bytes.Equal(p, first))
	}
	// The same id for another chunk is refused.
	m.Chunk = chunk(8, 1)
	if _, err := c.SendWrite(ctx, m, first); !errors.Is(err, ErrInvalid) {
		t.Fatalf("request id reused for another chunk: %v", err)
	}
	// A fresh id applies again.
	r3, err := c.Write(ctx, ch, 0, first)
	if err != nil || r3.Version <= r1.Version {
		t.Fatalf("fresh write: %+v, %v", r3, err)
	}
}

// TestRetryConcurrent sends the same Write many times at once: one apply.
func TestRetryConcurrent(t *testing.T) {
	testutil.CheckLeaks(t)
	f := startFixture(t)
	c := f.client(t, testKey)
	ctx := testCtx(t)
	ch := chunk(9, 0)
	m := Write{Chunk: ch, Epoch: testEpoch, RequestID: NewRequestID()}
	data := pattern(7, 4096)
	var wg sync.WaitGroup
	res := make([]WriteResult, 16)
	errs := make([]error, len(res))
	for i := range res {
		wg.Go(func() { res[i], errs[i] = c.SendWrite(ctx, m, data) })
	}
	wg.Wait()
	for i := range res {
		if errs[i] != nil || res[i] != res[0] {
			t.Fatalf("send %d: %+v, %v; send 0: %+v", i, res[i], errs[i], res[0])
		}
	}
	if st, _ := f.e.Stat(ObjectID(ch)); st.Version != res[0].Version {
		t.Fatalf("engine version %d, want %d", st.Version, res[0].Version)
	}
}

func TestDedupeBound(t *testing.T) {
	d := newDedupe(4)
	applied := 0
	apply := func() (WriteResult, *protoError) { applied++; return WriteResult{Version: uint64(applied)}, nil }
	ids := make([]RequestID, 6)
	for i := range ids {
		ids[i][0] = byte(i + 1)
		d.do(ids[i], ChunkID{}, apply)
	}
	if d.len() != 4 || applied != 6 {
		t.Fatalf("len %d applied %d, want 4 and 6", d.len(), applied)
	}
	// The newest four are remembered, the two oldest forgotten.
	if r, _ := d.do(ids[5], ChunkID{}, apply); r.Version != 6 || applied != 6 {
		t.Fatalf("newest id re-applied: %+v, applied %d", r, applied)
	}
	if r, _ := d.do(ids[0], ChunkID{}, apply); r.Version != 7 {
		t.Fatalf("oldest id not forgotten: %+v", r)
	}
	// A failure is not remembered, and its stale ring slot does not evict
	// the retry's entry.
	fail := func() (WriteResult, *protoError) { return WriteResult{}, errf(CodeNoSpace, "full") }
	id := RequestID{99}
	if _, pe := d.do(id, ChunkID{}, fail); pe == nil || pe.code != CodeNoSpace {
		t.Fatalf("failure: %v", pe)
	}
	if r, pe := d.do(id, ChunkID{}, apply); pe != nil || r.Version != 8 {
		t.Fatalf("retry after failure: %+v %v", r, pe)
	}
	for i := range 2 {
		d.do(RequestID{200, byte(i)}, ChunkID{}, apply)
	}
	if r, _ := d.do(id, ChunkID{}, apply); r.Version != 8 {
		t.Fatalf("retried id evicted by its stale slot: %+v", r)
	}
}

// TestRedialRetry closes the connection under a client configured to
// redial: the write goes through on the new connection.
func TestRedialRetry(t *testing.T) {
	testutil.CheckLeaks(t)
	f := startFixture(t)
	ctx := testCtx(t)
	old := f.dial(t, testKey)
	redials := 0
	c := NewChunkClient(old, ChunkClientConfig{Epoch: testEpoch, Redial: func(context.Context) (*net.Conn, error) {
		redials++
		return f.dial(t, testKey), nil
	}})
	old.Close()
	data := pattern(8, 5000)
	if _, err := c.Write(ctx, chunk(10, 0), 0, data); err != nil {
		t.Fatalf("write after redial: %v", err)
	}
	if redials != 1 || c.Conn() == old {
		t.Fatalf("redials %d, conn replaced %v", redials, c.Conn() != old)
	}
	p := make([]byte, len(data))
	if _, err := c.Read(ctx, chunk(10, 0), 0, p); err != nil || !bytes.Equal(p, data) {
		t.Fatalf("read: %v", err)
	}
}

func TestAsyncManyInFlight(t *testing.T) {
	testutil.CheckLeaks(t)
	f := startFixture(t)
	c := f.client(t, testKey)
	ctx := testCtx(t)
	const n = 256
	done := make(chan *Op, n)
	want := make(map[ChunkID][]byte, n)
	for i := range n {
		ch := chunk(100+uint64(i%8), uint64(i))
		want[ch] = pattern(uint64(1000+i), 1000+i*37)
		c.GoWrite(ctx, ch, 0, want[ch], done)
	}
	versions := map[uint64]bool{}
	for range n {
		op := <-done
		if op.Err != nil {
			t.Fatalf("write %v: %v", op.Chunk, op.Err)
		}
		if versions[op.Result.PGSeq] {
			t.Fatalf("pg seq %d given twice", op.Result.PGSeq)
		}
		versions[op.Result.PGSeq] = true
	}
	bufs := make(map[*Op][]byte, n)
	for ch, data := range want {
		p := make([]byte, len(data)+10) // reads past the end: io.EOF
		op := c.GoRead(ctx, ch, 0, p, done)
		bufs[op] = p
	}
	for range n {
		op := <-done
		data := want[op.Chunk]
		if op.Err != io.EOF || op.N != len(data) || !bytes.Equal(bufs[op][:op.N], data) {
			t.Fatalf("read %v: n %d err %v, want %d bytes", op.Chunk, op.N, op.Err, len(data))
		}
	}
	// Invalid requests complete at once, on the channel.
	op := c.GoRead(ctx, ChunkID{Index: IndexMax + 1}, 0, make([]byte, 1), nil)
	if r := <-op.Done; !errors.Is(r.Err, ErrBadMessage) {
		t.Fatalf("invalid async read: %v", r.Err)
	}
}

// TestConnsOnGoroutines runs the data path's tests with the connections
// served by goroutines handing requests to the reactors, as cluster
// nodes serve them (the other tests run them on the reactors).
func TestConnsOnGoroutines(t *testing.T) {
	fixtureOnReactors = false
	defer func() { fixtureOnReactors = true }()
	t.Run("WriteReadTruncateDelete", TestWriteReadTruncateDelete)
	t.Run("AsyncManyInFlight", TestAsyncManyInFlight)
	t.Run("RetriedWriteAppliedOnce", TestRetriedWriteAppliedOnce)
	t.Run("Errors", TestErrors)
}

func TestNewChunkServerConfig(t *testing.T) {
	_, err := NewChunkServer(nil, ChunkServerConfig{DedupeEntries: -1})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"no engine", "Containers is nil", "DedupeEntries -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not report %q", err, want)
		}
	}
}

// TestAsyncOpsExhausted: with more requests in flight than the server has
// asynchronous ops, the rest take the blocking path, every request gets
// its answer, and every op comes back.
func TestAsyncOpsExhausted(t *testing.T) {
	testutil.CheckLeaks(t)
	const asyncMax = 2
	f := startFixtureAsync(t, asyncMax)
	c := f.client(t, testKey)
	ctx := testCtx(t)
	const n = 64
	done := make(chan *Op, n)
	want := make(map[ChunkID][]byte, n)
	for i := range n {
		ch := chunk(200, uint64(i))
		want[ch] = pattern(uint64(3000+i), 4096)
		c.GoWrite(ctx, ch, 0, want[ch], done)
	}
	for range n {
		if op := <-done; op.Err != nil {
			t.Fatalf("write %v: %v", op.Chunk, op.Err)
		}
	}
	bufs := make(map[*Op][]byte, n)
	for ch := range want {
		p := make([]byte, 4096)
		bufs[c.GoRead(ctx, ch, 0, p, done)] = p
	}
	for range n {
		op := <-done
		if op.Err != nil || op.N != 4096 || !bytes.Equal(bufs[op], want[op.Chunk]) {
			t.Fatalf("read %v: n %d err %v", op.Chunk, op.N, op.Err)
		}
	}
	if f.cs.fullTimes.Load() == 0 {
		t.Fatalf("%d requests in flight never found the %d async ops in use", n, asyncMax)
	}
	waitFor := time.Now().Add(10 * time.Second)
	for len(f.cs.free) != asyncMax {
		if time.Now().After(waitFor) {
			t.Fatalf("%d of %d ops free", len(f.cs.free), asyncMax)
		}
		time.Sleep(time.Millisecond)
	}
}
