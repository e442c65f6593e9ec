package ioring

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

const seccompChildEnv = "IORING_TEST_SECCOMP_CHILD"

// TestSeccompFallback forbids io_uring_setup with a real seccomp filter
// (EPERM, as container runtimes do) in a child process and checks that New
// falls back to the thread backend, says why, and works.
func TestSeccompFallback(t *testing.T) {
	if os.Getenv(seccompChildEnv) == "1" {
		seccompChild()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSeccompFallback$", "-test.count=1")
	cmd.Env = append(os.Environ(), seccompChildEnv+"=1", BackendEnv+"=")
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "SKIP-SECCOMP") {
		t.Skipf("cannot install a seccomp filter here: %s", out)
	}
	if err != nil {
		t.Fatalf("child failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "backend=threads (4 workers; io_uring unavailable:") || !strings.Contains(string(out), "operation not permitted") {
		t.Errorf("child under seccomp reported:\n%s", out)
	}
}

func seccompChild() {
	// BPF: load the syscall number; io_uring_setup returns EPERM, anything
	// else is allowed.
	const (
		bpfLdWAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		bpfJeqK   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		bpfRetK   = unix.BPF_RET | unix.BPF_K
	)
	filter := []unix.SockFilter{
		{Code: bpfLdWAbs, K: 0}, // seccomp_data.nr
		{Code: bpfJeqK, Jt: 0, Jf: 1, K: unix.SYS_IO_URING_SETUP},
		{Code: bpfRetK, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{Code: bpfRetK, K: unix.SECCOMP_RET_ALLOW},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		println("SKIP-SECCOMP no_new_privs:", err.Error())
		return
	}
	// TSYNC: every thread of the Go runtime gets the filter.
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog))); errno != 0 {
		println("SKIP-SECCOMP seccomp:", errno.Error())
		return
	}
	r, err := New(Options{})
	if err != nil {
		println("New:", err.Error())
		os.Exit(1)
	}
	if err := r.Nop(); err != nil {
		println("Nop:", err.Error())
		os.Exit(1)
	}
	println("backend=" + r.Describe())
	r.Close()
}
