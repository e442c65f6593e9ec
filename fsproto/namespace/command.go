package namespace

// Command is one replicated change to a namespace: one of the types
// below. The leader stamps Now (nanoseconds since the Unix epoch) into
// the commands that change timestamps, so Apply reads no clock and every
// replica reaches the same state.
type Command interface {
	kind() kind
}

// kind tags a command in its encoding. Stored in the Raft log: never
// renumber.
type kind uint8

const (
	kindCreate      kind = 1
	kindMkdir       kind = 2
	kindSymlink     kind = 3
	kindLink        kind = 4
	kindUnlink      kind = 5
	kindRmdir       kind = 6
	kindRename      kind = 7
	kindSetAttr     kind = 8
	kindSetXattr    kind = 9
	kindRemoveXattr kind = 10
	kindOpen        kind = 11
	kindClose       kind = 12
	kindSetQuota    kind = 13
	kindExtend      kind = 14
	kindReclaimed   kind = 15
	kindWithCloses  kind = 16
	kindEnd         kind = 17 // one past the last kind
)

// Create makes a regular file Name in directory Parent. If the name
// exists and Excl is false, it changes nothing and returns the existing
// inode's attributes with Result.Created false, as open(O_CREAT) does
// (EISDIR if it is a directory; a symlink is returned for the caller to
// follow). With Excl it fails with EEXIST. With Open it also counts an
// open of the resulting regular file, as Open does, in the same command
// (Result.Opened says it did): creating and opening a file is then one
// Raft commit, not two.
type Create struct {
	Parent   Ino
	Name     string
	Mode     uint32
	UID, GID uint32
	Excl     bool
	Open     bool
	Now      int64
}

// Mkdir makes a directory.
type Mkdir struct {
	Parent   Ino
	Name     string
	Mode     uint32
	UID, GID uint32
	Now      int64
}

// Symlink makes a symbolic link to Target (mode 0777, as Linux).
type Symlink struct {
	Parent   Ino
	Name     string
	Target   string
	UID, GID uint32
	Now      int64
}

// Link adds the entry Parent/Name for the existing non-directory Ino.
type Link struct {
	Ino    Ino
	Parent Ino
	Name   string
	Now    int64
}

// Unlink removes a non-directory entry.
type Unlink struct {
	Parent Ino
	Name   string
	Now    int64
}

// Rmdir removes an empty directory.
type Rmdir struct {
	Parent Ino
	Name   string
	Now    int64
}

// RenameFlags are renameat2's flags. Stored in the Raft log.
type RenameFlags uint32

// Rename flags, with Linux's values.
const (
	// RenameNoReplace fails with EEXIST if the destination exists.
	RenameNoReplace RenameFlags = 1
	// RenameExchange swaps source and destination, which must both exist.
	RenameExchange RenameFlags = 2
)

// Rename moves SrcParent/SrcName to DstParent/DstName atomically,
// replacing a destination of a compatible type (a file or symlink over a
// non-directory, a directory over an empty directory).
type Rename struct {
	SrcParent Ino
	SrcName   string
	DstParent Ino
	DstName   string
	Flags     RenameFlags
	Now       int64
}

// AttrMask says which attributes a SetAttr changes. Stored in the Raft
// log.
type AttrMask uint32

// SetAttr mask bits.
const (
	SetMode AttrMask = 1 << iota
	SetUID
	SetGID
	SetSize
	SetAtime       // to SetAttr.Atime
	SetMtime       // to SetAttr.Mtime
	SetAtimeNow    // to SetAttr.Now (UTIME_NOW)
	SetMtimeNow    // to SetAttr.Now (UTIME_NOW)
	setAttrMaskAll = 1<<iota - 1
)

// SetAttr changes the attributes Mask names: chmod, chown, utimens and
// truncate (up or down). Every SetAttr sets ctime to Now; a size change
// sets mtime to Now too unless the mask sets mtime. Changing the owner or
// group of a non-directory clears its setuid bit, and its setgid bit if
// it is group-executable, as Linux does. Truncating down queues the
// dropped bytes for reclamation and reports them in Result.Reclaim.
type SetAttr struct {
	Ino          Ino
	Mask         AttrMask
	Mode         uint32
	UID, GID     uint32
	Size         uint64
	Atime, Mtime int64
	Now          int64
}

// XattrFlags are setxattr's flags. Stored in the Raft log.
type XattrFlags uint32

// Xattr flags, with Linux's values.
const (
	// XattrCreate fails with EEXIST if the attribute exists.
	XattrCreate XattrFlags = 1
	// XattrReplace fails with ENODATA if the attribute does not exist.
	XattrReplace XattrFlags = 2
)

// SetXattr sets an extended attribute.
type SetXattr struct {
	Ino   Ino
	Name  string
	Value []byte
	Flags XattrFlags
	Now   int64
}

// RemoveXattr removes an extended attribute.
type RemoveXattr struct {
	Ino  Ino
	Name string
	Now  int64
}

// Open counts an open of Ino: the inode survives its last unlink until
// the matching Close.
type Open struct {
	Ino Ino
}

// Close ends one Open. The last Close of an unlinked inode removes it.
type Close struct {
	Ino Ino
}

// SetQuota sets the namespace's limits; 0 means none. A limit below the
// current usage is accepted: it refuses growth, as disk quotas do.
type SetQuota struct {
	Bytes, Inodes uint64
}

// Extend records a write that ended at byte Size: the file grows to Size
// if it is smaller, and its mtime and ctime become Now. The client
// proposes it after writing the data, so a file never claims bytes that
// were not written.
type Extend struct {
	Ino  Ino
	Size uint64
	Now  int64
}

// Reclaimed removes the Reclaim entry ID: its chunks were deleted.
type Reclaimed struct {
	ID uint64
}

// WithCloses applies Closes, in order, then Cmd, in one Raft entry: a
// client that ended opens piggybacks their Closes on its next command
// instead of committing each on its own. Cmd nil means the closes alone.
//
// A close that fails (the inode is gone, or its open count is already 0)
// changes nothing and does not fail the rest. The Result is Cmd's (an
// empty success when Cmd is nil) with the Reclaim entries the closes
// queued appended, as far as the Result's bound (ResultReclaimsMax)
// allows: entries past it stay queued in the namespace for the leader's
// reclaimer. Cmd may be neither a WithCloses nor a Close, and Closes
// holds 1 to ClosesMax inodes; Apply refuses other batches with
// ErrCorrupt, changing nothing.
type WithCloses struct {
	Closes []Ino
	Cmd    Command
}

// ClosesMax bounds WithCloses.Closes.
const ClosesMax = 1024

func (Create) kind() kind      { return kindCreate }
func (Mkdir) kind() kind       { return kindMkdir }
func (Symlink) kind() kind     { return kindSymlink }
func (Link) kind() kind        { return kindLink }
func (Unlink) kind() kind      { return kindUnlink }
func (Rmdir) kind() kind       { return kindRmdir }
func (Rename) kind() kind      { return kindRename }
func (SetAttr) kind() kind     { return kindSetAttr }
func (SetXattr) kind() kind    { return kindSetXattr }
func (RemoveXattr) kind() kind { return kindRemoveXattr }
func (Open) kind() kind        { return kindOpen }
func (Close) kind() kind       { return kindClose }
func (SetQuota) kind() kind    { return kindSetQuota }
func (Extend) kind() kind      { return kindExtend }
func (Reclaimed) kind() kind   { return kindReclaimed }
func (WithCloses) kind() kind  { return kindWithCloses }

// check refuses the batches DecodeCommand refuses, for ApplyCommand's
// callers, which do not decode.
func (c WithCloses) check() error {
	switch c.Cmd.(type) {
	case WithCloses:
		return corrupt("with-closes: a with-closes command inside another")
	case Close:
		return corrupt("with-closes: a close as its command (list it among the closes)")
	}
	if n := len(c.Closes); n == 0 || n > ClosesMax {
		return corrupt("with-closes: %d closes, want 1..%d", n, ClosesMax)
	}
	return nil
}

// Result is what Apply returns for a command, and what a proposer
// receives from the Raft group.
type Result struct {
	// Attr is the attributes, after the command, of the inode it created
	// or changed: the new inode, the renamed one, the unlinked one (Nlink
	// as left), the one whose attributes changed. Zero for SetQuota and
	// Reclaimed and on error.
	Attr Attr
	// Parent is the attributes, after the command, of the directory whose
	// entries it changed: Create (when it made the file), Mkdir, Symlink,
	// Link, Unlink, Rmdir. Zero for the others (Rename changes two) and on
	// error. A client keeps them for its cache of the directory's
	// attributes, as NFS's post-operation attributes are kept, instead of
	// asking for them again after its own change.
	Parent Attr
	// Created is set when Create made a new file.
	Created bool
	// Opened is set when Create with Open counted an open of Attr's
	// inode (a regular file); the caller owes it a Close.
	Opened bool
	// Reclaim lists the entries this command queued (removed files and
	// truncated ranges), for the caller to start deleting chunks at once.
	Reclaim []Reclaim
	// Err is nil on success, an *Error wrapping the errno when POSIX rules
	// refuse the command, ErrCorrupt wrapped for undecodable bytes, or
	// ErrApplied.
	Err error
}

// WithNow returns cmd with its Now set to now, for the commands that
// carry one (the metadata leader stamps its clock into each command);
// other commands are returned as they are.
func WithNow(cmd Command, now int64) Command {
	switch c := cmd.(type) {
	case Create:
		c.Now = now
		return c
	case Mkdir:
		c.Now = now
		return c
	case Symlink:
		c.Now = now
		return c
	case Link:
		c.Now = now
		return c
	case Unlink:
		c.Now = now
		return c
	case Rmdir:
		c.Now = now
		return c
	case Rename:
		c.Now = now
		return c
	case SetAttr:
		c.Now = now
		return c
	case SetXattr:
		c.Now = now
		return c
	case RemoveXattr:
		c.Now = now
		return c
	case Extend:
		c.Now = now
		return c
	case WithCloses:
		if c.Cmd != nil {
			c.Cmd = WithNow(c.Cmd, now)
		}
		return c
	}
	return cmd
}
