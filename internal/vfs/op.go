package vfs

//go:generate stringer -type=Op -linecomment

// Op is a kind of file system operation, as the function given to
// Mem.SetFault sees it. Its String is the lower-case name used in error
// messages ("write", "syncdir").
type Op int

// The operations Mem reports to its fault function: OpCreate is
// FS.Create; OpOpen FS.Open and FS.OpenRW; OpRead, OpWrite, OpSync and
// OpTruncate the File methods ReadAt, WriteAt, Sync and Truncate; OpRemove,
// OpRename, OpSyncDir, OpMkdir, OpLock, OpReadDir and OpStat the FS methods
// Remove, Rename, SyncDir, MkdirAll, Lock, ReadDir and Stat. File.Size,
// File.Close and closing a lock are not reported and cannot fail by
// injection.
const (
	OpCreate   Op = iota // create
	OpOpen               // open
	OpRead               // read
	OpWrite              // write
	OpSync               // sync
	OpTruncate           // truncate
	OpRemove             // remove
	OpRename             // rename
	OpSyncDir            // syncdir
	OpMkdir              // mkdir
	OpLock               // lock
	OpReadDir            // readdir
	OpStat               // stat
)
