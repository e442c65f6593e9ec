package namespace

import (
	"encoding/binary"
	"fmt"
	"math"
)

// commandVersion is the first byte of every encoded command. Stored in
// the Raft log: a new layout gets a new version.
const commandVersion = 1

// CommandLenMax bounds an encoded command: the largest fields are an
// xattr value and two names, all far below it.
const CommandLenMax = 1 << 20

// Flags of a Create command (the byte was Excl's boolean, whose 0 and 1
// keep their meaning). On-disk: never renumber.
const (
	createExcl = 1 << 0
	createOpen = 1 << 1
)

// AppendCommand appends cmd's encoding (see the package doc) to b. It
// fails only for a string or value too long for its length field; values
// that Apply would refuse (a 300-byte name, say) still encode, so every
// replica refuses them the same way.
func AppendCommand(b []byte, cmd Command) ([]byte, error) {
	if cmd == nil {
		return b, fmt.Errorf("namespace: encode: nil command")
	}
	w := writer{b: b}
	w.u8(commandVersion)
	w.u8(uint8(cmd.kind()))
	if c, ok := cmd.(WithCloses); ok {
		if err := c.check(); err != nil {
			return b, fmt.Errorf("namespace: encode: %w", err)
		}
		w.u16(uint16(len(c.Closes)))
		for _, ino := range c.Closes {
			w.u64(uint64(ino))
		}
		if c.Cmd == nil {
			w.u8(0)
			return w.b, nil
		}
		w.u8(uint8(c.Cmd.kind()))
		cmd = c.Cmd
	}
	if !w.body(cmd) {
		return b, fmt.Errorf("namespace: encode: unknown command %T", cmd)
	}
	if w.err != nil {
		return b, w.err
	}
	return w.b, nil
}

// body appends cmd's fields; false for a foreign command.
func (w *writer) body(cmd Command) bool {
	switch c := cmd.(type) {
	case Create:
		w.u64(uint64(c.Parent))
		w.u32(c.Mode)
		w.u32(c.UID)
		w.u32(c.GID)
		var flags uint8
		if c.Excl {
			flags |= createExcl
		}
		if c.Open {
			flags |= createOpen
		}
		w.u8(flags)
		w.i64(c.Now)
		w.str("name", c.Name)
	case Mkdir:
		w.u64(uint64(c.Parent))
		w.u32(c.Mode)
		w.u32(c.UID)
		w.u32(c.GID)
		w.i64(c.Now)
		w.str("name", c.Name)
	case Symlink:
		w.u64(uint64(c.Parent))
		w.u32(c.UID)
		w.u32(c.GID)
		w.i64(c.Now)
		w.str("name", c.Name)
		w.str("target", c.Target)
	case Link:
		w.u64(uint64(c.Ino))
		w.u64(uint64(c.Parent))
		w.i64(c.Now)
		w.str("name", c.Name)
	case Unlink:
		w.u64(uint64(c.Parent))
		w.i64(c.Now)
		w.str("name", c.Name)
	case Rmdir:
		w.u64(uint64(c.Parent))
		w.i64(c.Now)
		w.str("name", c.Name)
	case Rename:
		w.u64(uint64(c.SrcParent))
		w.u64(uint64(c.DstParent))
		w.u32(uint32(c.Flags))
		w.i64(c.Now)
		w.str("source name", c.SrcName)
		w.str("destination name", c.DstName)
	case SetAttr:
		w.u64(uint64(c.Ino))
		w.u32(uint32(c.Mask))
		w.u32(c.Mode)
		w.u32(c.UID)
		w.u32(c.GID)
		w.u64(c.Size)
		w.i64(c.Atime)
		w.i64(c.Mtime)
		w.i64(c.Now)
	case SetXattr:
		w.u64(uint64(c.Ino))
		w.u32(uint32(c.Flags))
		w.i64(c.Now)
		w.str("xattr name", c.Name)
		if len(c.Value) > XattrValueLenMax {
			w.fail("xattr value of %d bytes, at most %d", len(c.Value), XattrValueLenMax)
		}
		w.u32(uint32(len(c.Value)))
		w.b = append(w.b, c.Value...)
	case RemoveXattr:
		w.u64(uint64(c.Ino))
		w.i64(c.Now)
		w.str("xattr name", c.Name)
	case Open:
		w.u64(uint64(c.Ino))
	case Close:
		w.u64(uint64(c.Ino))
	case SetQuota:
		w.u64(c.Bytes)
		w.u64(c.Inodes)
	case Extend:
		w.u64(uint64(c.Ino))
		w.u64(c.Size)
		w.i64(c.Now)
	case Reclaimed:
		w.u64(c.ID)
	default:
		return false
	}
	return true
}

// MarshalCommand returns cmd's encoding; see AppendCommand.
func MarshalCommand(cmd Command) ([]byte, error) { return AppendCommand(nil, cmd) }

type writer struct {
	b   []byte
	err error
}

func (w *writer) fail(format string, args ...any) {
	if w.err == nil {
		w.err = fmt.Errorf("namespace: encode: "+format, args...)
	}
}

func (w *writer) u8(v uint8)   { w.b = append(w.b, v) }
func (w *writer) u16(v uint16) { w.b = binary.LittleEndian.AppendUint16(w.b, v) }
func (w *writer) u32(v uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *writer) u64(v uint64) { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *writer) i64(v int64)  { w.u64(uint64(v)) }

func (w *writer) bool(v bool) {
	if v {
		w.u8(1)
	} else {
		w.u8(0)
	}
}

func (w *writer) str(field, s string) {
	if len(s) > math.MaxUint16 {
		w.fail("%s of %d bytes, at most %d", field, len(s), math.MaxUint16)
	}
	w.u16(uint16(len(s)))
	w.b = append(w.b, s...)
}

// DecodeCommand decodes one command. It checks the version, the kind, the
// lengths (no trailing bytes) and that booleans are 0 or 1; values are
// Apply's to judge. Errors wrap ErrCorrupt. The command does not alias
// data.
func DecodeCommand(data []byte) (Command, error) {
	if len(data) > CommandLenMax {
		return nil, corrupt("command of %d bytes, over the limit %d", len(data), CommandLenMax)
	}
	r := reader{b: data, what: "command"}
	if v := r.u8("version"); r.err == nil && v != commandVersion {
		return nil, corrupt("command version %d, want %d", v, commandVersion)
	}
	k := kind(r.u8("kind"))
	if r.err == nil && (k == 0 || k >= kindEnd) {
		return nil, corrupt("command kind %d unknown", k)
	}
	var cmd Command
	if k == kindWithCloses {
		cmd = r.withCloses()
	} else {
		cmd = r.body(k)
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return cmd, nil
}

// withCloses reads a WithCloses body (after its kind byte).
func (r *reader) withCloses() Command {
	var c WithCloses
	n := int(r.u16("closes count"))
	if r.err == nil && (n == 0 || n > ClosesMax) {
		r.fail("with-closes: %d closes, want 1..%d", n, ClosesMax)
	}
	if r.err == nil && len(r.b)-r.off < 8*n {
		r.fail("with-closes: %d closes need %d bytes, %d left", n, 8*n, len(r.b)-r.off)
	}
	if r.err != nil {
		return nil
	}
	c.Closes = make([]Ino, n)
	for i := range c.Closes {
		c.Closes[i] = Ino(r.u64("close ino"))
	}
	k := kind(r.u8("with-closes command kind"))
	switch {
	case r.err != nil:
		return nil
	case k == 0:
	case k == kindWithCloses:
		r.fail("with-closes: a with-closes command inside another")
	case k == kindClose:
		r.fail("with-closes: a close as its command")
	case k >= kindEnd:
		r.fail("with-closes: command kind %d unknown", k)
	default:
		c.Cmd = r.body(k)
	}
	return c
}

// body reads the fields of a command of kind k (known, not
// kindWithCloses).
func (r *reader) body(k kind) Command {
	var cmd Command
	switch k {
	case kindCreate:
		var c Create
		c.Parent = Ino(r.u64("parent"))
		c.Mode = r.u32("mode")
		c.UID = r.u32("uid")
		c.GID = r.u32("gid")
		flags := r.u8("create flags")
		if r.err == nil && flags&^(createExcl|createOpen) != 0 {
			r.fail("create flags %#x unknown", flags)
		}
		c.Excl, c.Open = flags&createExcl != 0, flags&createOpen != 0
		c.Now = r.i64("now")
		c.Name = r.str("name")
		cmd = c
	case kindMkdir:
		var c Mkdir
		c.Parent = Ino(r.u64("parent"))
		c.Mode = r.u32("mode")
		c.UID = r.u32("uid")
		c.GID = r.u32("gid")
		c.Now = r.i64("now")
		c.Name = r.str("name")
		cmd = c
	case kindSymlink:
		var c Symlink
		c.Parent = Ino(r.u64("parent"))
		c.UID = r.u32("uid")
		c.GID = r.u32("gid")
		c.Now = r.i64("now")
		c.Name = r.str("name")
		c.Target = r.str("target")
		cmd = c
	case kindLink:
		var c Link
		c.Ino = Ino(r.u64("ino"))
		c.Parent = Ino(r.u64("parent"))
		c.Now = r.i64("now")
		c.Name = r.str("name")
		cmd = c
	case kindUnlink:
		var c Unlink
		c.Parent = Ino(r.u64("parent"))
		c.Now = r.i64("now")
		c.Name = r.str("name")
		cmd = c
	case kindRmdir:
		var c Rmdir
		c.Parent = Ino(r.u64("parent"))
		c.Now = r.i64("now")
		c.Name = r.str("name")
		cmd = c
	case kindRename:
		var c Rename
		c.SrcParent = Ino(r.u64("source parent"))
		c.DstParent = Ino(r.u64("destination parent"))
		c.Flags = RenameFlags(r.u32("flags"))
		c.Now = r.i64("now")
		c.SrcName = r.str("source name")
		c.DstName = r.str("destination name")
		cmd = c
	case kindSetAttr:
		var c SetAttr
		c.Ino = Ino(r.u64("ino"))
		c.Mask = AttrMask(r.u32("mask"))
		c.Mode = r.u32("mode")
		c.UID = r.u32("uid")
		c.GID = r.u32("gid")
		c.Size = r.u64("size")
		c.Atime = r.i64("atime")
		c.Mtime = r.i64("mtime")
		c.Now = r.i64("now")
		cmd = c
	case kindSetXattr:
		var c SetXattr
		c.Ino = Ino(r.u64("ino"))
		c.Flags = XattrFlags(r.u32("flags"))
		c.Now = r.i64("now")
		c.Name = r.str("xattr name")
		n := r.u32("xattr value length")
		if r.err == nil && n > XattrValueLenMax {
			r.fail("xattr value of %d bytes, at most %d", n, XattrValueLenMax)
		}
		if v := r.take(int(n), "xattr value"); len(v) > 0 {
			c.Value = append([]byte{}, v...)
		}
		cmd = c
	case kindRemoveXattr:
		var c RemoveXattr
		c.Ino = Ino(r.u64("ino"))
		c.Now = r.i64("now")
		c.Name = r.str("xattr name")
		cmd = c
	case kindOpen:
		cmd = Open{Ino: Ino(r.u64("ino"))}
	case kindClose:
		cmd = Close{Ino: Ino(r.u64("ino"))}
	case kindSetQuota:
		var c SetQuota
		c.Bytes = r.u64("quota bytes")
		c.Inodes = r.u64("quota inodes")
		cmd = c
	case kindExtend:
		var c Extend
		c.Ino = Ino(r.u64("ino"))
		c.Size = r.u64("size")
		c.Now = r.i64("now")
		cmd = c
	case kindReclaimed:
		cmd = Reclaimed{ID: r.u64("reclaim id")}
	}
	return cmd
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// reader decodes little-endian fields. The first error sticks: later
// reads return zero values and done reports it, so decoders read straight
// through without a check after every field.
type reader struct {
	b    []byte
	off  int
	what string
	err  error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d: %s", ErrCorrupt, r.what, r.off, fmt.Sprintf(format, args...))
	}
}

func (r *reader) take(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.fail("%s: %d bytes needed, %d left", field, n, len(r.b)-r.off)
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *reader) u8(field string) uint8 {
	if p := r.take(1, field); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u16(field string) uint16 {
	if p := r.take(2, field); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32(field string) uint32 {
	if p := r.take(4, field); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (r *reader) u64(field string) uint64 {
	if p := r.take(8, field); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (r *reader) i64(field string) int64 { return int64(r.u64(field)) }

func (r *reader) bool(field string) bool {
	v := r.u8(field)
	if v > 1 {
		r.fail("%s: %d is not a boolean (0 or 1)", field, v)
	}
	return v == 1
}

func (r *reader) str(field string) string {
	n := r.u16(field + " length")
	return string(r.take(int(n), field))
}

// str8 reads a string of at most 255 bytes with a one-byte length.
func (r *reader) str8(field string) string {
	n := r.u8(field + " length")
	return string(r.take(int(n), field))
}

// count reads a u64 count of records of at least minLen bytes each and
// refuses one that the bytes left cannot hold, before anyone allocates.
func (r *reader) count(field string, minLen int) int {
	n := r.u64(field + " count")
	if r.err != nil {
		return 0
	}
	if left := uint64(len(r.b) - r.off); n > left/uint64(minLen) {
		r.fail("%d %s need at least %d bytes each, %d left", n, field, minLen, left)
		return 0
	}
	return int(n)
}

func (r *reader) done() error {
	if r.err == nil && r.off != len(r.b) {
		r.fail("%d trailing bytes", len(r.b)-r.off)
	}
	return r.err
}
