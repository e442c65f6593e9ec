package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weftfs/weft/internal/vfs"
)

// Errors of the object API. Test with errors.Is.
var (
	// ErrNotFound: the object does not exist (never written, or deleted).
	ErrNotFound = errors.New("engine: no such object")
	// ErrNoSpace: the device has no free segment for the write, even after
	// cleaning; everything acknowledged before stays readable.
	ErrNoSpace = errors.New("engine: no space left on device")
	// ErrFailed: a device write or flush failed; the engine refuses
	// further mutations (reads still work) until it is reopened, because
	// it can no longer tell what reached the device.
	ErrFailed = errors.New("engine: device write failed; reopen the engine")
	// ErrClosed: the engine is closed.
	ErrClosed = errors.New("engine: closed")
	// ErrInvalid: a request the engine cannot carry out as asked (too
	// large, offset overflow, empty write); the message says which.
	ErrInvalid = errors.New("engine: invalid request")
)

// Limits of one request.
const (
	// MaxWriteBytes is the largest write one request may carry.
	MaxWriteBytes = 4 << 20
	// MaxObjectSize is the largest offset+length an object may reach.
	MaxObjectSize = 1 << 62
	// DefaultRecordBytes is Options.RecordBytes when unset.
	DefaultRecordBytes = 16 << 10
	// MaxRecordBytes is the largest Options.RecordBytes.
	MaxRecordBytes = 1 << 20
	// scratchRecordBytes is the capacity of a shard's pooled read
	// buffers: records up to it (the default size, and the 64 KiB records
	// of devices written before RecordBytes existed) are read without an
	// allocation.
	scratchRecordBytes = 64 << 10
)

// ValidRecordBytes reports whether n may be Options.RecordBytes: a
// multiple of 4 KiB from 4 KiB to MaxRecordBytes. Front ends that take a
// record size check it with this before they pass it on.
func ValidRecordBytes(n int64) bool {
	return n >= 4096 && n%4096 == 0 && n <= MaxRecordBytes
}

// PollMode says how a reactor waits when it has nothing to do.
type PollMode uint8

const (
	// Hybrid polls its request queue for SpinTime after the last work
	// when no device I/O is in flight, and otherwise sleeps until a
	// request or a completion arrives. The default.
	Hybrid PollMode = iota
	// Poll never sleeps: the reactor's core spins on its queue and its
	// completion ring (lowest latency, a core at 100%).
	Poll
	// Interrupt sleeps whenever there is nothing to do.
	Interrupt
)

func (m PollMode) String() string {
	switch m {
	case Hybrid:
		return "hybrid"
	case Poll:
		return "poll"
	case Interrupt:
		return "interrupt"
	}
	return fmt.Sprintf("PollMode(%d)", uint8(m))
}

// ParsePollMode parses "poll", "hybrid" or "interrupt".
func ParsePollMode(s string) (PollMode, error) {
	switch strings.ToLower(s) {
	case "hybrid", "":
		return Hybrid, nil
	case "poll":
		return Poll, nil
	case "interrupt":
		return Interrupt, nil
	}
	return 0, fmt.Errorf("engine: polling mode %q: want poll, hybrid or interrupt", s)
}

// IOBackend chooses how reactors reach the device.
type IOBackend string

const (
	// IOAuto: io_uring (or ioring's thread backend where io_uring is
	// unavailable) for a device on the OS file system, IOSync otherwise.
	IOAuto IOBackend = ""
	// IORing: one ioring.Ring per reactor.
	IORing IOBackend = "ring"
	// IOSync: synchronous vfs.File calls on the reactor goroutine; used
	// with the in-memory crash-test file system.
	IOSync IOBackend = "sync"
)

// Options configure Open. The zero value of every field but Path is a
// sane default.
type Options struct {
	// Path of the formatted device (file or block device).
	Path string
	// FS is the file system Path lives on; default vfs.Default.
	FS vfs.FS
	// Shards is the number of reactors; default len(Cores), or 1.
	Shards int
	// Cores lists CPUs to pin reactors to (reactor i on Cores[i%len]);
	// empty means no pinning.
	Cores []int
	// Mode is how idle reactors wait; default Hybrid.
	Mode PollMode
	// SpinTime is how long a Hybrid reactor polls after its last work
	// before it sleeps; default 50µs.
	SpinTime time.Duration
	// IO chooses the I/O backend; default IOAuto.
	IO IOBackend
	// RingEntries is the submission queue size of each reactor's ring;
	// default 256.
	RingEntries uint32
	// BatchBytes caps the data of one group-commit batch; default 1 MiB.
	BatchBytes int
	// ReadCacheBytes is how much record data, read from the device and
	// verified, the engine keeps in memory (split evenly between the
	// shards, least recently used out first) to serve reads of it again
	// without the device. 0, the default, keeps none.
	ReadCacheBytes int64
	// RecordBytes is the largest record a write is stored as: a larger
	// write becomes several records, each with its own checksum. A read
	// reads and verifies every record it touches whole, so a 4 KiB read
	// of data written in large writes reads RecordBytes from the device;
	// smaller records cost an index entry (and checkpoint bytes) each.
	// A multiple of 4 KiB from 4 KiB to MaxRecordBytes; default
	// DefaultRecordBytes (16 KiB). It applies to what is written from
	// now on: records already on the device keep their size.
	RecordBytes int
	// CheckpointBytes is how much log a shard writes between checkpoints;
	// default a quarter of the device's segments, at least 4 segments.
	CheckpointBytes int64
	// Cleaner tunes segment cleaning.
	Cleaner CleanerOptions
	// SpaceWait bounds how long a write waits for the cleaner and
	// checkpoints to free a segment before it fails with ErrNoSpace;
	// default 5s.
	SpaceWait time.Duration
	// Logger receives recovery, checkpoint and cleaner events; default
	// slog.Default().
	Logger *slog.Logger

	// noRecoveryCheckpoint skips the checkpoint Open writes after
	// replaying a log, so the recovery benchmark can replay the same log
	// again.
	noRecoveryCheckpoint bool
}

// CleanerOptions tune the cleaner.
type CleanerOptions struct {
	// Disabled turns the cleaner off (segments whose data is all dead
	// are still freed).
	Disabled bool
	// FreeTarget is the share of segments the cleaner keeps free when
	// the foreground is idle; under foreground I/O it lets free space
	// fall to a quarter of the way from its low level (the reserve plus
	// 2%) to this before it starts. Default 0.15.
	FreeTarget float64
	// MaxLiveRatio: segments with more live data than this are never
	// cleaned; default 0.9.
	MaxLiveRatio float64
	// BytesPerBatch caps the live bytes one cleaner step relocates, so
	// foreground batches are never queued behind a long relocation;
	// default 256 KiB.
	BytesPerBatch int
}

// Op is what a Request asks for.
type Op uint8

const (
	OpRead Op = iota + 1
	OpWrite
	OpTruncate
	OpDelete
	OpStat
	opChanges
	opSnapshot
	opRelease
	opStats
	opCheckpoint
	opCheckpointDone
	opHost
	opStop
	opForget
)

var opNames = [...]string{OpRead: "read", OpWrite: "write", OpTruncate: "truncate", OpDelete: "delete", OpStat: "stat",
	opChanges: "changes", opSnapshot: "snapshot", opRelease: "release", opStats: "stats",
	opCheckpoint: "checkpoint", opCheckpointDone: "checkpoint-done", opHost: "host", opStop: "stop", opForget: "forget"}

func (o Op) String() string {
	if int(o) < len(opNames) && opNames[o] != "" {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Request is one asynchronous engine operation. Fill the input fields,
// Submit it, and receive it back on Done once it completed; then read the
// result fields. A Request must not be touched between Submit and its
// return on Done, and may be reused afterwards.
type Request struct {
	Op     Op
	Object ObjectID
	// PG and PGSeq place a mutation in a placement group's history. PGSeq
	// 0 asks the engine for the PG's next sequence number; a replica
	// passes the primary's.
	PG    uint32
	PGSeq uint64
	// RequestID, on a mutation, names it (zero: none): it is stored with
	// the mutation's record and added to the object's Requests.
	RequestID RequestID
	// ReplaceRequests, on a mutation, makes the object's Requests exactly
	// Requests (at most KeptRequests, non-zero ids, oldest first), in the
	// same atomic batch as the mutation and before RequestID is added: a
	// replica installing the primary's state of an object takes the ids
	// of the primary's history with it. Requests must be empty otherwise.
	ReplaceRequests bool
	Requests        []AppliedRequest
	// KeepIfAtLeast, on a mutation when not 0, skips it if the object's
	// PG sequence number (a tombstone's included) is already at least
	// this: the request then completes without a change, with Skipped
	// set and ResultSeq the object's seq. The check and the mutation are
	// one step on the reactor, against the state that mutations completed
	// (durable) before this one was taken: a mutation of the object still
	// in flight holds this one back until it completes. It makes a
	// replica's apply of a resent forward idempotent in one request.
	KeepIfAtLeast uint64
	// Replace, on OpWrite or OpTruncate, first drops the object's data as
	// OpDelete does, in the same atomic batch: the object becomes exactly
	// this write (or an object of this size, zero-filled), or stays as it
	// was if a crash cuts the batch. A replica installs the primary's
	// state of an object this way. Reads ignore it.
	Replace bool
	// Off: the read or write offset; for OpTruncate, the new size.
	Off uint64
	// Buf: the data of a write (left untouched, and not to be changed
	// until Done), or the destination of a read.
	Buf []byte
	// Done receives the request when it has completed. Its buffer must
	// have room for every request outstanding on it: the engine never
	// blocks on it, and panics rather than drop a completion.
	Done chan<- *Request
	// Notify, when set, is called with the completed request instead of
	// the send on Done (which may then be nil). It runs on the reactor
	// that completed the request (or in Submit, for a request refused
	// before it reached one), so it must return promptly and never
	// block: no waiting on this engine's other requests, no blocking
	// I/O. It saves the hand-off to a goroutine that waits on Done,
	// which costs a thread wake-up per burst of completions.
	Notify func(*Request)

	// Results.
	Err error
	// N: bytes read (a read that reaches the object's end returns fewer
	// than len(Buf) and Err io.EOF) or written.
	N int
	// Version and ResultSeq: the object's version and PG sequence number
	// after a mutation; the object's state for OpStat (also for a
	// deleted object, which fails with ErrNotFound: State is then its
	// tombstone, with Deleted set).
	Version   uint64
	ResultSeq uint64
	State     ObjectState
	// Skipped: a mutation with KeepIfAtLeast found the object there
	// already and changed nothing.
	Skipped bool

	// Engine-internal.
	next      atomic.Pointer[Request]
	submitted time.Time
	shardOut  any // opChanges, opSnapshot, opStats results
	shardIn   any
	pending   int // outstanding device reads of this request
}

// Result is what a synchronous mutation returns.
type Result struct {
	Version uint64
	PGSeq   uint64
}

// ObjectIDFromString parses the 32 hex digits ObjectID.String prints.
func ObjectIDFromString(s string) (ObjectID, error) {
	var o ObjectID
	if len(s) != 32 {
		return o, fmt.Errorf("engine: object id %q: want 32 hex digits", s)
	}
	if _, err := fmt.Sscanf(s, "%016x%016x", &o.Hi, &o.Lo); err != nil {
		return o, fmt.Errorf("engine: object id %q: %v", s, err)
	}
	return o, nil
}
