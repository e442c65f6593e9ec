package namespace

import (
	"errors"
	"fmt"
	"syscall"
)

// Ino is an inode number. Inode numbers are never reused: a namespace
// hands out NextIno and counts up. Stored on disk and sent on the wire.
type Ino uint64

// RootIno is the root directory's inode number. The root always exists.
const RootIno Ino = 1

// Type is an inode's type. Stored on disk and sent on the wire: never
// renumber.
type Type uint8

// Inode types.
const (
	TypeFile    Type = 1
	TypeDir     Type = 2
	TypeSymlink Type = 3
)

func (t Type) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Limits. The decoders enforce them too, so they bound what a snapshot or
// a command may make a decoder allocate.
const (
	// NameLenMax is the longest directory entry name in bytes (as Linux's
	// NAME_MAX); a longer one fails with ENAMETOOLONG.
	NameLenMax = 255
	// TargetLenMax is the longest symlink target in bytes (as Linux's
	// PATH_MAX less its NUL); a longer one fails with ENAMETOOLONG.
	TargetLenMax = 4095
	// LinkMax is the most links an inode may have (as ext4's EXT4_LINK_MAX);
	// a link or a subdirectory past it fails with EMLINK.
	LinkMax = 65000
	// XattrNameLenMax is the longest extended attribute name (as Linux's
	// XATTR_NAME_MAX); longer or empty names fail with ERANGE.
	XattrNameLenMax = 255
	// XattrValueLenMax is the largest extended attribute value (as Linux's
	// XATTR_SIZE_MAX); a larger one fails with E2BIG.
	XattrValueLenMax = 64 << 10
	// XattrBytesMax bounds the sum of names and values of one inode's
	// extended attributes; a SetXattr past it fails with ENOSPC.
	XattrBytesMax = 256 << 10
	// FileSizeMax is the largest file size (1 PiB); a larger one fails
	// with EFBIG.
	FileSizeMax = 1 << 50
	// OpenMax bounds an inode's open count; an Open past it fails with
	// ENFILE.
	OpenMax = 1 << 30
	// ModeMask is the part of a mode a namespace stores: permission bits
	// and setuid, setgid and sticky. The type lives in Attr.Type.
	ModeMask = 0o7777
)

// Attr is an inode's attributes, as GetAttr and command results report
// them.
type Attr struct {
	Ino  Ino
	Type Type
	// Mode holds permission, setuid, setgid and sticky bits only
	// (ModeMask).
	Mode     uint32
	UID, GID uint32
	// Size is the file size in bytes; for a symlink the target's length;
	// for a directory 0.
	Size uint64
	// Nlink counts the directory entries naming a file or symlink. A
	// directory has 2 plus one per subdirectory (its entry in its parent
	// or, for the root, its own "..", its ".", and each child's ".."), as
	// Linux file systems count. An unlinked inode that is still open has 0.
	Nlink uint32
	// Open is the number of Open commands not yet matched by a Close.
	Open uint32
	// Times in nanoseconds since the Unix epoch, as the leader stamped
	// them into commands.
	Atime, Mtime, Ctime int64
}

// IsDir reports whether a is a directory's.
func (a *Attr) IsDir() bool { return a.Type == TypeDir }

// DirEntry is one entry of a directory listing.
type DirEntry struct {
	Name string
	Ino  Ino
	Type Type
}

// Reclaim is a range of file data that the namespace no longer refers to:
// its chunks may be deleted. A removed file queues its whole size
// (Removed set; the inode is gone); a truncation down queues the bytes it
// dropped. Entries wait in the namespace until a Reclaimed command with
// their ID removes them, so a crash of the reclaimer loses nothing.
type Reclaim struct {
	// ID orders entries and names one in Reclaimed. IDs count up from 1
	// and are never reused.
	ID  uint64
	Ino Ino
	// From and To bound the dropped bytes [From, To).
	From, To uint64
	// Removed: the inode itself is gone (every chunk of it may go).
	Removed bool
}

// StatFS is the namespace-wide usage and quota.
type StatFS struct {
	// Inodes counts live inodes, the root and unlinked-but-open ones
	// included.
	Inodes uint64
	// Bytes sums the sizes of live regular files (logical bytes: a sparse
	// file counts in full).
	Bytes uint64
	// QuotaBytes and QuotaInodes are the limits; 0 means none.
	QuotaBytes, QuotaInodes uint64
	// Reclaiming counts the queued Reclaim entries.
	Reclaiming int
}

var (
	// ErrCorrupt is wrapped by every decoding error: the bytes are not a
	// valid command or snapshot.
	ErrCorrupt = errors.New("namespace: corrupt encoding")
	// ErrApplied is returned (in Result.Err) by Apply for an index at or
	// below the last applied one: the entry was applied already (the state
	// was restored from a later snapshot) and is skipped.
	ErrApplied = errors.New("namespace: index already applied")
)

// Error is the error of a command or a read that POSIX rules refused. It
// wraps the errno, so errors.Is(err, syscall.ENOENT) works (and so does
// errors.Is(err, fs.ErrNotExist), through syscall.Errno.Is).
type Error struct {
	Op    string
	Ino   Ino    // the inode or directory concerned
	Name  string // the entry name, when the operation has one
	Errno syscall.Errno
}

func (e *Error) Error() string {
	if e.Name != "" {
		return fmt.Sprintf("namespace: %s %d/%q: %v", e.Op, e.Ino, e.Name, e.Errno)
	}
	return fmt.Sprintf("namespace: %s %d: %v", e.Op, e.Ino, e.Errno)
}

func (e *Error) Unwrap() error { return e.Errno }

// Errno returns the errno err carries, or 0 if it carries none.
func Errno(err error) syscall.Errno {
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	return 0
}
