// Package ioring is weft's binding to Linux io_uring, written on
// golang.org/x/sys/unix system calls and mmap of the shared rings (no cgo),
// with a fallback backend that runs the same protocol on a small pool of
// pread/pwrite threads.
//
// # Model
//
// A Ring is a pair of single-producer/single-consumer queues shared with a
// backend:
//
//	application                           backend (kernel or threads)
//	GetSQE ─ fill ─► SQ ring ── Submit ──► consumes SQEs, runs them
//	PeekCQE/WaitCQE ◄──────── CQ ring ◄── posts one CQE per SQE
//
// The application owns the SQ tail and the CQ head; the backend owns the SQ
// head and the CQ tail. Each side publishes its index with an atomic store
// and reads the other's with an atomic load, which gives the release and
// acquire ordering the kernel expects. The SQ index array is the identity
// map, written once at set-up.
//
// Submit publishes every filled SQE and makes one io_uring_enter(2) call
// (none at all with SQPoll while the poller is awake). SubmitAndWait also
// waits for completions in that same call. PeekCQE and PeekBatch read
// completions straight from the shared ring without a system call; they
// enter the kernel only when it says that completions are parked on its
// side (CQ overflow, or task work deferred by COOP_TASKRUN/DEFER_TASKRUN).
// The hot path (GetSQE, a Prep method, Submit, PeekBatch) allocates
// nothing.
//
// # Backends
//
// New picks io_uring and falls back to the thread backend when
// io_uring_setup fails with ENOSYS or EPERM (an old kernel, a seccomp
// filter, kernel.io_uring_disabled). WEFT_IO_BACKEND=threads|io_uring|auto
// or Options.Backend force the choice. Ring.Backend and Ring.Describe always
// say which one is active and why. Optional setup flags (SINGLE_ISSUER,
// COOP_TASKRUN, DEFER_TASKRUN, ...) are tried and dropped one by one when
// the kernel rejects them; Detect reports what this kernel grants.
//
// The thread backend implements the opcodes the engine needs (NOP, READ,
// WRITE, READ_FIXED, WRITE_FIXED, READV, WRITEV, FSYNC, TIMEOUT) with the
// kernel's semantics: links, CQ overflow without loss, eventfd
// notification, fixed files and buffers. POLL_ADD (PrepPollAdd) is the
// io_uring backend's only: a reactor that sleeps in its ring's wait uses
// it to be woken by its eventfd, and sleeps in poll(2) elsewhere.
//
// # Contract
//
// A Ring is owned by one goroutine. With Options.SingleIssuer that
// goroutine must be locked to its OS thread before New. Memory that an SQE
// points at (buffers, iovec arrays) must stay alive and at a fixed address
// until the completion is reaped: heap or mmap memory, never a goroutine
// stack. Results are in CQE.Res: a byte count, or a negated errno, which
// CQE.Err turns into an *OpError naming the operation. Short reads and
// writes are results, not errors; ReadAt and WriteAt resubmit the rest.
package ioring
