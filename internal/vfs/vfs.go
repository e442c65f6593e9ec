// Package vfs is the narrow file system interface that weft's storage code
// (journal, engine) reaches the disk through, with two implementations:
// Default, the real file system (O_DIRECT where asked and supported), and
// Mem, an in-memory file system that models a power cut (only synced data
// is certain to survive; unsynced writes survive whole, torn or not at all)
// and injects faults on chosen operations, for crash tests.
//
// Durability contract, the same for both implementations:
//   - File.Sync makes every write that completed before it durable
//     (fdatasync semantics: data and the size needed to read it back).
//   - Creating, removing or renaming a file is durable only after SyncDir
//     on its directory.
//   - A write that returned an error, or that was not followed by a
//     successful Sync, may be absent, present, or torn at sector
//     granularity after a crash.
//
// Both implementations are safe for concurrent use by multiple goroutines;
// a File is safe for concurrent ReadAt/WriteAt at disjoint ranges.
package vfs

import (
	"errors"
	"io"
)

// SectorSize is the unit in which an interrupted write can be torn, and
// Alignment the offset, length and memory alignment of direct I/O.
const (
	SectorSize = 512
	Alignment  = 4096
)

// Errors. Test with errors.Is.
var (
	// ErrLocked is returned by Lock when another holder has the lock.
	ErrLocked = errors.New("vfs: file is locked by another process or handle")
	// ErrInjected is the error a fault injector returns; the failing
	// operation wraps it.
	ErrInjected = errors.New("vfs: injected fault")
)

// File is an open file. A File opened with direct=true requires offsets,
// lengths and buffer addresses aligned to Alignment (EINVAL otherwise, as
// O_DIRECT does). Files are safe for concurrent ReadAt/WriteAt at disjoint
// ranges.
//
// Operations on a closed File return an error wrapping fs.ErrClosed.
type File interface {
	// ReadAt reads len(p) bytes at off, as os.File.ReadAt does: a read
	// that reaches the end of the file returns the bytes before it and
	// io.EOF.
	io.ReaderAt
	// WriteAt writes p at off, extending the file (with zeros in any gap)
	// if needed. The write is durable only after a successful Sync; if it
	// fails, any sector-sized piece of it may or may not have reached the
	// file.
	io.WriterAt
	// Sync makes every write completed before it durable.
	Sync() error
	// Truncate sets the size; it is durable after the next Sync.
	Truncate(size int64) error
	// Size returns the current size in bytes.
	Size() (int64, error)
	// Close releases the file. Writes not yet synced stay unsynced.
	Close() error
	// Name is the path the file was opened with.
	Name() string
}

// FS is a file system. Names are slash-separated paths; the implementations
// are safe for concurrent use.
type FS interface {
	// Create creates name, which must not exist (the error wraps
	// fs.ErrExist if it does, fs.ErrNotExist if its directory does not),
	// for reading and writing. The creation is durable after SyncDir on
	// its directory.
	Create(name string, direct bool) (File, error)
	// OpenRW opens an existing file for reading and writing; the error
	// wraps fs.ErrNotExist if it does not exist.
	OpenRW(name string, direct bool) (File, error)
	// Open opens an existing file read-only; the error wraps
	// fs.ErrNotExist if it does not exist.
	Open(name string) (File, error)
	// Remove removes a file or an empty directory; the error wraps
	// fs.ErrNotExist if it does not exist. The removal is durable after
	// SyncDir on its directory. Open Files of a removed file keep working.
	Remove(name string) error
	// Rename renames a file, replacing newname if it is a file. It is
	// durable after SyncDir on the directories of both names.
	Rename(oldname, newname string) error
	// ReadDir returns the names (not paths) in dir, sorted: files and
	// subdirectories. The error wraps fs.ErrNotExist if dir does not exist.
	ReadDir(dir string) ([]string, error)
	// MkdirAll creates dir and any missing parents; it succeeds if dir
	// already exists.
	MkdirAll(dir string) error
	// SyncDir makes the creations, removals and renames in dir durable.
	SyncDir(dir string) error
	// Lock takes an exclusive lock on name, creating the file if needed.
	// It fails with ErrLocked while another holder has it. Closing the
	// returned io.Closer releases the lock.
	Lock(name string) (io.Closer, error)
	// Stat returns the size of name; the error wraps fs.ErrNotExist when
	// it does not exist.
	Stat(name string) (int64, error)
}

// IsDirect reports whether f enforces direct I/O: for a File of Default,
// whether O_DIRECT is really in effect (it is not on file systems without
// direct I/O support, such as older tmpfs, where opening with direct=true
// falls back to buffered I/O); for a Mem File, whether it was opened with
// direct=true (Mem then enforces the alignment rules). It returns false for
// any other File.
func IsDirect(f File) bool {
	switch f := f.(type) {
	case *osFile:
		return f.direct
	case *memFile:
		return f.direct
	}
	return false
}

// Fd returns the descriptor of a File of Default, for callers that drive
// it through io_uring; ok is false for any other File. The descriptor
// stays valid until f is closed, and the caller must not close it.
func Fd(f File) (fd int, ok bool) {
	if f, ok := f.(*osFile); ok {
		return int(f.f.Fd()), true
	}
	return -1, false
}
