package ioring

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// backends returns the backends to run a test table against. io_uring is
// skipped, with the reason, where the kernel does not offer it.
func backends(t testing.TB) []string {
	out := []string{BackendThreads}
	if f := Detect(); f.Available {
		out = append([]string{BackendIOUring}, out...)
	} else {
		t.Logf("io_uring backend not tested: %v", f.Err)
	}
	return out
}

func newRing(t testing.TB, backend string, opts Options) *Ring {
	t.Helper()
	opts.Backend = backend
	r, err := New(opts)
	if err != nil {
		t.Fatalf("New(%s): %v", backend, err)
	}
	if r.Backend() != backend {
		t.Fatalf("backend = %s, want %s", r.Backend(), backend)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func forEachBackend(t *testing.T, fn func(t *testing.T, backend string)) {
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) { fn(t, b) })
	}
}

func tempFile(t testing.TB, size int64) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "data"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func pattern(n int, seed byte) []byte {
	b := AlignedBuffer(n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// reap waits for n completions and returns them by user data.
func reap(t *testing.T, r *Ring, n int) map[uint64]CQE {
	t.Helper()
	got := map[uint64]CQE{}
	for len(got) < n {
		cqe, err := r.WaitCQE()
		if err != nil {
			t.Fatalf("WaitCQE: %v", err)
		}
		if _, dup := got[cqe.UserData]; dup {
			t.Fatalf("duplicate completion for user data %d", cqe.UserData)
		}
		got[cqe.UserData] = *cqe
		r.CQESeen()
	}
	return got
}

func TestABILayout(t *testing.T) {
	var s SQE
	offsets := []struct {
		name      string
		got, want uintptr
	}{
		{"opcode", unsafe.Offsetof(s.Opcode), 0}, {"flags", unsafe.Offsetof(s.Flags), 1},
		{"ioprio", unsafe.Offsetof(s.IOPrio), 2}, {"fd", unsafe.Offsetof(s.Fd), 4},
		{"off", unsafe.Offsetof(s.Off), 8}, {"addr", unsafe.Offsetof(s.Addr), 16},
		{"len", unsafe.Offsetof(s.Len), 24}, {"rw_flags", unsafe.Offsetof(s.OpFlags), 28},
		{"user_data", unsafe.Offsetof(s.UserData), 32}, {"buf_index", unsafe.Offsetof(s.BufIndex), 40},
		{"personality", unsafe.Offsetof(s.Personality), 42}, {"file_index", unsafe.Offsetof(s.FileIndex), 44},
		{"addr3", unsafe.Offsetof(s.Addr3), 48},
	}
	for _, o := range offsets {
		if o.got != o.want {
			t.Errorf("io_uring_sqe.%s at offset %d, want %d", o.name, o.got, o.want)
		}
	}
	var p params
	if got := unsafe.Offsetof(p.sqOff); got != 40 {
		t.Errorf("io_uring_params.sq_off at %d, want 40", got)
	}
	if got := unsafe.Offsetof(p.cqOff); got != 80 {
		t.Errorf("io_uring_params.cq_off at %d, want 80", got)
	}
	var c CQE
	if unsafe.Offsetof(c.Res) != 8 || unsafe.Offsetof(c.Flags) != 12 {
		t.Errorf("io_uring_cqe layout wrong: res at %d, flags at %d", unsafe.Offsetof(c.Res), unsafe.Offsetof(c.Flags))
	}
}

func TestBackendSelection(t *testing.T) {
	t.Setenv(BackendEnv, "threads")
	r, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Backend() != BackendThreads || !strings.Contains(r.Describe(), "requested") {
		t.Errorf("WEFT_IO_BACKEND=threads gave %s", r.Describe())
	}
	r.Close()

	t.Setenv(BackendEnv, "sideways")
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), `"sideways"`) || !strings.Contains(err.Error(), "accepted: auto, io_uring, threads") {
		t.Errorf("bad backend name: err = %v", err)
	}

	t.Setenv(BackendEnv, "")
	for _, errno := range []unix.Errno{unix.ENOSYS, unix.EPERM} {
		saved := sysSetup
		sysSetup = func(uint32, *params) (int, error) { return -1, errno }
		r, err := New(Options{})
		sysSetup = saved
		if err != nil {
			t.Fatalf("setup failing with %v: New = %v, want fallback", errno, err)
		}
		if r.Backend() != BackendThreads || !strings.Contains(r.Describe(), errno.Error()) {
			t.Errorf("setup failing with %v: %s", errno, r.Describe())
		}
		if err := r.Nop(); err != nil {
			t.Errorf("fallback ring Nop: %v", err)
		}
		r.Close()

		sysSetup = func(uint32, *params) (int, error) { return -1, errno }
		_, err = New(Options{Backend: BackendIOUring})
		sysSetup = saved
		if err == nil || !errors.Is(err, errno) {
			t.Errorf("forced io_uring with setup failing (%v): err = %v", errno, err)
		}
	}
}

func TestDetect(t *testing.T) {
	f := Detect()
	if !f.Available {
		t.Skipf("io_uring not available here: %v", f.Err)
	}
	t.Logf("features: %+v", f)
	if f.Probe == nil || !f.Probe.Supported(OpRead) || !f.Probe.Supported(OpNop) {
		t.Errorf("probe does not report READ and NOP supported")
	}
}

func TestSetupFlags(t *testing.T) {
	f := Detect()
	if !f.Available {
		t.Skipf("io_uring not available here: %v", f.Err)
	}
	// SINGLE_ISSUER and DEFER_TASKRUN require that one OS thread submits.
	done := make(chan struct{})
	go func() {
		defer close(done)
		lockThread()
		r, err := New(Options{Backend: BackendIOUring, SingleIssuer: true, CoopTaskrun: !f.DeferTaskrun, DeferTaskrun: f.DeferTaskrun})
		if err != nil {
			t.Error(err)
			return
		}
		defer r.Close()
		t.Logf("ring: %s", r.Describe())
		if f.SingleIssuer && !strings.Contains(r.SetupFlags(), "SINGLE_ISSUER") {
			t.Errorf("SINGLE_ISSUER supported but not granted: %s", r.Describe())
		}
		file := tempFile(t, 1<<16)
		data := pattern(4096, 3)
		if _, err := r.WriteAt(int(file.Fd()), data, 8192); err != nil {
			t.Error(err)
			return
		}
		got := AlignedBuffer(4096)
		if _, err := r.ReadAt(int(file.Fd()), got, 8192); err != nil || !bytes.Equal(got, data) {
			t.Errorf("read back through %s: err=%v equal=%v", r.Describe(), err, bytes.Equal(got, data))
		}
	}()
	<-done
}

func TestSQPoll(t *testing.T) {
	if f := Detect(); !f.Available || !f.SQPoll {
		t.Skip("SQPOLL not available here")
	}
	r := newRing(t, BackendIOUring, Options{SQPoll: true, SQPollCPU: 0, SQPollIdle: 10 * time.Millisecond})
	if !strings.Contains(r.SetupFlags(), "SQPOLL") {
		t.Skipf("SQPOLL not granted: %s", r.Describe())
	}
	for i := 0; i < 100; i++ {
		if err := r.Nop(); err != nil {
			t.Fatal(err)
		}
		if i == 50 {
			time.Sleep(30 * time.Millisecond) // let the poller go to sleep, so wakeup is exercised
		}
	}
}

func TestOpcodes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		r := newRing(t, backend, Options{Entries: 16})
		f := tempFile(t, 1<<20)
		fd := int(f.Fd())

		// WRITE, then READ the same range back.
		w := pattern(8192, 1)
		sqe := r.GetSQE()
		sqe.PrepWrite(fd, w, 4096)
		sqe.UserData = 1
		if _, err := r.SubmitAndWait(1); err != nil {
			t.Fatal(err)
		}
		if c := reap(t, r, 1)[1]; c.Res != 8192 {
			t.Fatalf("write res = %d", c.Res)
		}
		got := AlignedBuffer(8192)
		sqe = r.GetSQE()
		sqe.PrepRead(fd, got, 4096)
		sqe.UserData = 2
		r.Submit()
		if c := reap(t, r, 1)[2]; c.Res != 8192 || !bytes.Equal(got, w) {
			t.Fatalf("read res = %d, equal = %v", c.Res, bytes.Equal(got, w))
		}

		// WRITEV and READV with three segments.
		segs := [][]byte{pattern(4096, 10), pattern(4096, 20), pattern(4096, 30)}
		wiov := make([]unix.Iovec, 3)
		riov := make([]unix.Iovec, 3)
		back := [][]byte{AlignedBuffer(4096), AlignedBuffer(4096), AlignedBuffer(4096)}
		for i := range segs {
			wiov[i].Base, riov[i].Base = &segs[i][0], &back[i][0]
			wiov[i].SetLen(4096)
			riov[i].SetLen(4096)
		}
		sqe = r.GetSQE()
		sqe.PrepWritev(fd, wiov, 65536)
		sqe.UserData = 3
		sqe.SetLink()
		sqe = r.GetSQE()
		sqe.PrepReadv(fd, riov, 65536)
		sqe.UserData = 4
		r.Submit()
		cs := reap(t, r, 2)
		if cs[3].Res != 12288 || cs[4].Res != 12288 {
			t.Fatalf("writev/readv res = %d/%d", cs[3].Res, cs[4].Res)
		}
		for i := range segs {
			if !bytes.Equal(segs[i], back[i]) {
				t.Errorf("readv segment %d differs", i)
			}
		}

		// FSYNC and FDATASYNC.
		sqe = r.GetSQE()
		sqe.PrepFsync(fd, 0)
		sqe.UserData = 5
		sqe = r.GetSQE()
		sqe.PrepFsync(fd, FsyncDatasync)
		sqe.UserData = 6
		r.Submit()
		cs = reap(t, r, 2)
		if cs[5].Res != 0 || cs[6].Res != 0 {
			t.Fatalf("fsync/fdatasync res = %d/%d", cs[5].Res, cs[6].Res)
		}

		// NOP and a timeout that fires.
		sqe = r.GetSQE()
		sqe.PrepNop()
		sqe.UserData = 7
		sqe = r.GetSQE()
		r.PrepTimeout(sqe, 5*time.Millisecond, 0)
		sqe.UserData = 8
		start := time.Now()
		r.Submit()
		cs = reap(t, r, 2)
		if cs[7].Res != 0 || cs[8].Res != -int32(unix.ETIME) {
			t.Fatalf("nop/timeout res = %d/%d", cs[7].Res, cs[8].Res)
		}
		if time.Since(start) < 5*time.Millisecond {
			t.Errorf("timeout completed before its duration")
		}

		// A count timeout completes with 0 once enough other completions arrived.
		sqe = r.GetSQE()
		r.PrepTimeout(sqe, 10*time.Second, 2)
		sqe.UserData = 9
		r.Submit()
		for ud := uint64(10); ud < 12; ud++ {
			sqe = r.GetSQE()
			sqe.PrepNop()
			sqe.UserData = ud
		}
		r.Submit()
		cs = reap(t, r, 3)
		if cs[9].Res != 0 {
			t.Errorf("count timeout res = %d, want 0", cs[9].Res)
		}

		p, err := r.Probe()
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range threadsOps {
			if !p.Supported(op) {
				t.Errorf("probe: %s not supported", op)
			}
		}
	})
}

func TestRegisteredBuffersAndFiles(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		r := newRing(t, backend, Options{Entries: 8})
		f := tempFile(t, 1<<20)
		bufs := [][]byte{AlignedBuffer(16384), AlignedBuffer(16384)}
		if err := r.RegisterBuffers(bufs); err != nil {
			t.Fatal(err)
		}
		if err := r.RegisterFiles([]int{int(f.Fd())}); err != nil {
			t.Fatal(err)
		}
		copy(bufs[0], pattern(16384, 5))
		sqe := r.GetSQE()
		sqe.PrepWriteFixed(0, bufs[0][4096:12288], 0, 0)
		sqe.SetFixedFile()
		sqe.SetLink()
		sqe.UserData = 1
		sqe = r.GetSQE()
		sqe.PrepReadFixed(0, bufs[1][:8192], 0, 1)
		sqe.SetFixedFile()
		sqe.UserData = 2
		r.Submit()
		cs := reap(t, r, 2)
		if cs[1].Res != 8192 || cs[2].Res != 8192 {
			t.Fatalf("fixed write/read res = %d/%d", cs[1].Res, cs[2].Res)
		}
		if !bytes.Equal(bufs[1][:8192], bufs[0][4096:12288]) {
			t.Fatal("fixed read returned different bytes")
		}

		// A range outside the registered buffer, and an unregistered file index.
		outside := AlignedBuffer(4096)
		sqe = r.GetSQE()
		sqe.PrepReadFixed(int(f.Fd()), outside, 0, 0)
		sqe.UserData = 3
		sqe = r.GetSQE()
		sqe.PrepRead(5, bufs[1][:4096], 0)
		sqe.SetFixedFile()
		sqe.UserData = 4
		r.Submit()
		cs = reap(t, r, 2)
		if cs[3].Res != -int32(unix.EFAULT) {
			t.Errorf("read_fixed outside registered buffer: res %d, want -EFAULT", cs[3].Res)
		}
		if cs[4].Res != -int32(unix.EBADF) {
			t.Errorf("read with unregistered fixed file: res %d, want -EBADF", cs[4].Res)
		}
		if err := r.UnregisterFiles(); err != nil {
			t.Error(err)
		}
		if err := r.UnregisterBuffers(); err != nil {
			t.Error(err)
		}
	})
}

func TestLinkedChainStopsOnError(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		r := newRing(t, backend, Options{Entries: 8})
		f := tempFile(t, 8192)
		buf := AlignedBuffer(4096)
		sqe := r.GetSQE()
		sqe.PrepNop()
		sqe.SetLink()
		sqe.UserData = 1
		sqe = r.GetSQE()
		sqe.PrepRead(-1, buf, 0) // fails: bad fd
		sqe.SetLink()
		sqe.UserData = 2
		sqe = r.GetSQE()
		sqe.PrepWrite(int(f.Fd()), buf, 0) // must not run
		sqe.UserData = 3
		r.Submit()
		cs := reap(t, r, 3)
		if cs[1].Res != 0 || cs[2].Res != -int32(unix.EBADF) || cs[3].Res != -int32(unix.ECANCELED) {
			t.Errorf("chain results %d, %d, %d; want 0, -EBADF, -ECANCELED", cs[1].Res, cs[2].Res, cs[3].Res)
		}

		// A short read also breaks the chain.
		big := AlignedBuffer(8192)
		sqe = r.GetSQE()
		sqe.PrepRead(int(f.Fd()), big, 4096) // only 4096 bytes left
		sqe.SetLink()
		sqe.UserData = 4
		sqe = r.GetSQE()
		sqe.PrepNop()
		sqe.UserData = 5
		r.Submit()
		cs = reap(t, r, 2)
		if cs[4].Res != 4096 || cs[5].Res != -int32(unix.ECANCELED) {
			t.Errorf("short read chain results %d, %d; want 4096, -ECANCELED", cs[4].Res, cs[5].Res)
		}
	})
}

func TestEventfdWakesWaiter(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		r := newRing(t, backend, Options{Entries: 4})
		efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(efd)
		if err := r.RegisterEventfd(efd); err != nil {
			t.Fatal(err)
		}
		woke := make(chan uint64, 1)
		go func() {
			var b [8]byte
			if _, err := unix.Read(efd, b[:]); err != nil {
				t.Error(err)
			}
			woke <- *(*uint64)(unsafe.Pointer(&b[0]))
		}()
		select {
		case <-woke:
			t.Fatal("eventfd fired before any completion")
		case <-time.After(20 * time.Millisecond):
		}
		sqe := r.GetSQE()
		sqe.PrepNop()
		r.Submit()
		select {
		case v := <-woke:
			if v < 1 {
				t.Errorf("eventfd counter %d", v)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("eventfd waiter not woken by a completion")
		}
		if err := r.UnregisterEventfd(); err != nil {
			t.Error(err)
		}
	})
}

func TestSQFull(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		r := newRing(t, backend, Options{Entries: 8})
		for i := 0; i < 8; i++ {
			sqe := r.GetSQE()
			if sqe == nil {
				t.Fatalf("GetSQE returned nil after %d of 8", i)
			}
			sqe.PrepNop()
			sqe.UserData = uint64(i)
		}
		if r.GetSQE() != nil || r.SQSpace() != 0 {
			t.Fatal("GetSQE handed out a ninth entry of an 8-entry SQ")
		}
		if n, err := r.Submit(); err != nil || n != 8 {
			t.Fatalf("Submit = %d, %v", n, err)
		}
		sqe := r.GetSQE()
		if sqe == nil {
			t.Fatal("SQ still full after Submit")
		}
		sqe.PrepNop()
		sqe.UserData = 100
		r.Submit()
		reap(t, r, 9)
	})
}

func TestCQOverflowLosesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		r := newRing(t, backend, Options{Entries: 8, CQEntries: 16})
		const total = 64
		for i := 0; i < total; i++ {
			sqe := r.GetSQE()
			if sqe == nil {
				if _, err := r.Submit(); err != nil {
					t.Fatalf("Submit with a full CQ: %v", err)
				}
				sqe = r.GetSQE()
			}
			sqe.PrepNop()
			sqe.UserData = uint64(i)
		}
		if _, err := r.Submit(); err != nil {
			t.Fatalf("Submit: %v", err)
		}
		// Let the backend finish everything while nothing is reaped.
		deadline := time.Now().Add(5 * time.Second)
		for r.CQReady() < r.CQEntries() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if r.CQReady() != 16 {
			t.Fatalf("CQ holds %d completions, want 16 (full)", r.CQReady())
		}
		var got [total]bool
		batch := make([]CQE, 5)
		for n := 0; n < total; {
			k, err := r.PeekBatch(batch)
			if err != nil {
				t.Fatal(err)
			}
			if k == 0 {
				if _, err := r.WaitCQE(); err != nil {
					t.Fatal(err)
				}
				continue
			}
			for _, c := range batch[:k] {
				if c.UserData >= total || got[c.UserData] {
					t.Fatalf("unexpected completion %d", c.UserData)
				}
				got[c.UserData] = true
			}
			n += k
		}
		if r.Overflow() != 0 {
			t.Errorf("kernel dropped %d completions", r.Overflow())
		}
	})
}

func TestErrorsNameTheOperation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		r := newRing(t, backend, Options{Entries: 4})
		buf := AlignedBuffer(4096)
		_, err := r.ReadAt(12345, buf, 0)
		var oe *OpError
		if !errors.As(err, &oe) || oe.Op != OpRead || !errors.Is(err, unix.EBADF) || !strings.Contains(err.Error(), "ioring: read fd 12345 off 0 len 4096") {
			t.Errorf("read of a bad fd: %v", err)
		}

		path := filepath.Join(t.TempDir(), "direct")
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_DIRECT, 0o600)
		if err != nil {
			t.Skipf("O_DIRECT not supported on %s: %v", filepath.Dir(path), err)
		}
		defer unix.Close(fd)
		unix.Ftruncate(fd, 1<<20)
		misaligned := AlignedBuffer(8192)[1:4097]
		_, err = r.WriteAt(fd, misaligned, 0)
		if !errors.As(err, &oe) || oe.Op != OpWrite || !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "write fd") || !strings.Contains(err.Error(), "aligned") {
			t.Errorf("misaligned O_DIRECT write: %v", err)
		}
		if _, err := r.WriteAt(fd, AlignedBuffer(4096), 0); err != nil {
			t.Errorf("aligned O_DIRECT write: %v", err)
		}
		if err := r.Fsync(-1, 0); !errors.As(err, &oe) || oe.Op != OpFsync || !strings.Contains(err.Error(), "fsync fd -1") {
			t.Errorf("fsync of a bad fd: %v", err)
		}
	})
}

func TestShortReadAtEOF(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		r := newRing(t, backend, Options{Entries: 4})
		f := tempFile(t, 6000)
		buf := make([]byte, 8192)
		n, err := r.ReadAt(int(f.Fd()), buf, 0)
		if n != 6000 || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("ReadAt past EOF = %d, %v; want 6000, unexpected EOF", n, err)
		}
		n, err = r.ReadAt(int(f.Fd()), buf, 6000)
		if n != 0 || err != io.EOF {
			t.Errorf("ReadAt at EOF = %d, %v; want 0, EOF", n, err)
		}
	})
}

func TestWaitTimeout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		r := newRing(t, backend, Options{Entries: 4})
		start := time.Now()
		if _, err := r.WaitCQETimeout(20 * time.Millisecond); !errors.Is(err, ErrTimeout) {
			t.Fatalf("WaitCQETimeout on an idle ring: %v", err)
		}
		if time.Since(start) < 20*time.Millisecond {
			t.Error("returned before the timeout")
		}
		sqe := r.GetSQE()
		sqe.PrepNop()
		sqe.UserData = 42
		r.Submit()
		cqe, err := r.WaitCQETimeout(5 * time.Second)
		if err != nil || cqe.UserData != 42 {
			t.Fatalf("WaitCQETimeout with a completion pending: %v %v", cqe, err)
		}
		r.CQESeen()
		// SubmitAndWaitTimeout: a timeout with nothing submitted, and a
		// NOP submitted and reaped by the same call.
		if _, err := r.SubmitAndWaitTimeout(20 * time.Millisecond); !errors.Is(err, ErrTimeout) {
			t.Fatalf("SubmitAndWaitTimeout on an idle ring: %v", err)
		}
		sqe = r.GetSQE()
		sqe.PrepNop()
		sqe.UserData = 43
		if _, err := r.SubmitAndWaitTimeout(5 * time.Second); err != nil {
			t.Fatalf("SubmitAndWaitTimeout of a NOP: %v", err)
		}
		if cqe, _ := r.PeekCQE(); cqe == nil || cqe.UserData != 43 {
			t.Fatalf("completion %v after SubmitAndWaitTimeout, want the NOP's", cqe)
		}
		r.CQESeen()
	})
}

func TestClosedRing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		r, err := New(Options{Backend: backend})
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		if _, err := r.Submit(); !errors.Is(err, ErrClosed) {
			t.Errorf("Submit on closed ring: %v", err)
		}
		if err := r.Close(); !errors.Is(err, ErrClosed) {
			t.Errorf("second Close: %v", err)
		}
	})
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{{Entries: 1 << 20}, {Entries: 64, CQEntries: 8}, {DeferTaskrun: true}, {Workers: -1}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted bad options", o)
		}
	}
}

func TestWaitBatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		r := newRing(t, backend, Options{Entries: 8})
		for i := 0; i < 5; i++ {
			sqe := r.GetSQE()
			sqe.PrepNop()
			sqe.UserData = uint64(i)
		}
		if _, err := r.Submit(); err != nil {
			t.Fatal(err)
		}
		dst := make([]CQE, 8)
		got := 0
		for got < 5 {
			n, err := r.WaitBatch(dst, 1)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Fatal("WaitBatch(min=1) returned no completion")
			}
			got += n
		}
		if got != 5 {
			t.Errorf("reaped %d completions, want 5", got)
		}
	})
}

// TestDedicatedThread: a ring whose waits keep the P behaves the same.
func TestDedicatedThread(t *testing.T) {
	if f := Detect(); !f.Available {
		t.Skipf("io_uring not available here: %v", f.Err)
	}
	r := newRing(t, BackendIOUring, Options{Entries: 8, DedicatedThread: true})
	f := tempFile(t, 1<<16)
	data := pattern(4096, 9)
	if _, err := r.WriteAt(int(f.Fd()), data, 4096); err != nil {
		t.Fatal(err)
	}
	got := AlignedBuffer(4096)
	if _, err := r.ReadAt(int(f.Fd()), got, 4096); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	if _, err := r.WaitCQETimeout(10 * time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Errorf("timed wait on an idle ring: %v", err)
	}
}

// TestPollAddWakesSubmitAndWait: a reactor's sleep on its ring — a poll
// of its wake-up eventfd submitted in the waiting call — times out while
// nothing happens, and ends when another thread writes the eventfd.
func TestPollAddWakesSubmitAndWait(t *testing.T) {
	if f := Detect(); !f.Available {
		t.Skipf("io_uring not available here (POLL_ADD is an io_uring operation): %v", f.Err)
	}
	r := newRing(t, BackendIOUring, Options{Entries: 4})
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	sqe := r.GetSQE()
	sqe.PrepPollAdd(efd, unix.POLLIN)
	sqe.UserData = 7
	start := time.Now()
	if _, err := r.SubmitAndWaitTimeout(20 * time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("SubmitAndWaitTimeout with an idle eventfd: %v", err)
	}
	if time.Since(start) < 20*time.Millisecond {
		t.Error("returned before the timeout")
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		one := [8]byte{1}
		unix.Write(efd, one[:])
	}()
	if _, err := r.SubmitAndWaitTimeout(10 * time.Second); err != nil {
		t.Fatalf("SubmitAndWaitTimeout while the eventfd is written: %v", err)
	}
	cqe, err := r.PeekCQE()
	if err != nil || cqe == nil {
		t.Fatalf("no completion after the wait: %v", err)
	}
	if cqe.UserData != 7 || cqe.Res&unix.POLLIN == 0 {
		t.Errorf("completion %+v, want user data 7 with POLLIN set", *cqe)
	}
	r.CQESeen()
	// A poll armed on a descriptor that is ready completes at once.
	sqe = r.GetSQE()
	sqe.PrepPollAdd(efd, unix.POLLIN)
	sqe.UserData = 8
	if _, err := r.SubmitAndWaitTimeout(10 * time.Second); err != nil {
		t.Fatalf("SubmitAndWaitTimeout with the eventfd readable: %v", err)
	}
	if cqe, _ := r.PeekCQE(); cqe == nil || cqe.UserData != 8 {
		t.Fatalf("completion %v, want user data 8", cqe)
	}
	r.CQESeen()
}
