package namespace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
)

// Result encoding: how a metadata server returns Apply's outcome to a
// client, and how a deduplicating wrapper may store it. Sent on the wire:
// never renumber.
const (
	resultVersion = 1

	resultOK      = 0 // Err is nil
	resultErrno   = 1 // Err is an *Error
	resultCorrupt = 2 // Err wraps ErrCorrupt
	resultApplied = 3 // Err wraps ErrApplied

	resultCreated = 1 << 0
	resultAttr    = 1 << 1
	resultOpened  = 1 << 2
	resultParent  = 1 << 3 // added later: a result without it has Parent zero
)

// ResultReclaimsMax bounds the Reclaim entries a Result lists (and
// encodes). A command queues at most two (a replaced file in Rename, a
// removed or truncated file in the others); a WithCloses lists its
// closes' entries up to this bound, after its command's.
const ResultReclaimsMax = 16

// AppendResult appends r's encoding (see the package doc) to b. Errors
// other than the package's own (*Error, ErrCorrupt, ErrApplied) do not
// come out of Apply; they encode as ErrCorrupt with their message.
func AppendResult(b []byte, r Result) ([]byte, error) {
	if len(r.Reclaim) > ResultReclaimsMax {
		return b, fmt.Errorf("namespace: encode result: %d reclaims, at most %d", len(r.Reclaim), ResultReclaimsMax)
	}
	w := writer{b: b}
	w.u8(resultVersion)
	var e *Error
	switch {
	case r.Err == nil:
		w.u8(resultOK)
	case errors.As(r.Err, &e):
		w.u8(resultErrno)
		w.u32(uint32(e.Errno))
		w.u64(uint64(e.Ino))
		w.str("error op", e.Op)
		w.str("error name", e.Name)
	case errors.Is(r.Err, ErrApplied):
		w.u8(resultApplied)
		w.str("error", r.Err.Error())
	default:
		w.u8(resultCorrupt)
		w.str("error", r.Err.Error())
	}
	var flags uint8
	if r.Created {
		flags |= resultCreated
	}
	if r.Opened {
		flags |= resultOpened
	}
	if r.Attr != (Attr{}) {
		flags |= resultAttr
	}
	if r.Parent != (Attr{}) {
		flags |= resultParent
	}
	w.u8(flags)
	if flags&resultAttr != 0 {
		w.attr(&r.Attr)
	}
	if flags&resultParent != 0 {
		w.attr(&r.Parent)
	}
	w.u8(uint8(len(r.Reclaim)))
	for _, rc := range r.Reclaim {
		w.u64(rc.ID)
		w.u64(uint64(rc.Ino))
		w.u64(rc.From)
		w.u64(rc.To)
		w.bool(rc.Removed)
	}
	if w.err != nil {
		return b, w.err
	}
	return w.b, nil
}

// DecodeResult decodes a Result encoded by AppendResult. An *Error comes
// back as an *Error (errors.Is(err, syscall.ENOENT) works); ErrCorrupt
// and ErrApplied come back wrapped with their message. Decoding errors
// wrap ErrCorrupt.
func DecodeResult(data []byte) (Result, error) {
	r := reader{b: data, what: "result"}
	var res Result
	if v := r.u8("version"); r.err == nil && v != resultVersion {
		return Result{}, corrupt("result version %d, want %d", v, resultVersion)
	}
	switch k := r.u8("error kind"); k {
	case resultOK:
	case resultErrno:
		e := &Error{Errno: syscall.Errno(r.u32("errno"))}
		e.Ino = Ino(r.u64("error ino"))
		e.Op = r.str("error op")
		e.Name = r.str("error name")
		if r.err == nil && e.Errno == 0 {
			r.fail("errno 0 in an error")
		}
		res.Err = e
	case resultCorrupt, resultApplied:
		msg := r.str("error")
		sentinel := ErrCorrupt
		if k == resultApplied {
			sentinel = ErrApplied
		}
		res.Err = fmt.Errorf("%w (remote: %s)", sentinel, msg)
	default:
		r.fail("error kind %d unknown", k)
	}
	flags := r.u8("flags")
	if r.err == nil && flags&^(resultCreated|resultAttr|resultOpened|resultParent) != 0 {
		r.fail("flags %#x unknown", flags)
	}
	res.Created = flags&resultCreated != 0
	res.Opened = flags&resultOpened != 0
	if flags&resultAttr != 0 {
		res.Attr = r.attr(&attrFields)
		if r.err == nil && res.Attr == (Attr{}) {
			r.fail("attribute flag set on zero attributes")
		}
	}
	if flags&resultParent != 0 {
		res.Parent = r.attr(&parentAttrFields)
		if r.err == nil && res.Parent == (Attr{}) {
			r.fail("parent attribute flag set on zero attributes")
		}
	}
	n := int(r.u8("reclaim count"))
	if r.err == nil && n > ResultReclaimsMax {
		r.fail("%d reclaims, at most %d", n, ResultReclaimsMax)
	}
	for i := 0; i < n && r.err == nil; i++ {
		res.Reclaim = append(res.Reclaim, Reclaim{
			ID: r.u64("reclaim id"), Ino: Ino(r.u64("reclaim ino")),
			From: r.u64("reclaim from"), To: r.u64("reclaim to"), Removed: r.bool("reclaim removed"),
		})
	}
	if err := r.done(); err != nil {
		return Result{}, err
	}
	return res, nil
}

// AppendAttr appends a's encoding to b: ino u64, type u8, mode, uid, gid
// u32, size u64, nlink, open u32, atime, mtime, ctime i64, little-endian
// (61 bytes). Results carry attributes so, and package meta's
// messages too; each decoder names the fields in its own errors.
func AppendAttr(b []byte, a *Attr) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(a.Ino))
	b = append(b, uint8(a.Type))
	b = binary.LittleEndian.AppendUint32(b, a.Mode)
	b = binary.LittleEndian.AppendUint32(b, a.UID)
	b = binary.LittleEndian.AppendUint32(b, a.GID)
	b = binary.LittleEndian.AppendUint64(b, a.Size)
	b = binary.LittleEndian.AppendUint32(b, a.Nlink)
	b = binary.LittleEndian.AppendUint32(b, a.Open)
	b = binary.LittleEndian.AppendUint64(b, uint64(a.Atime))
	b = binary.LittleEndian.AppendUint64(b, uint64(a.Mtime))
	return binary.LittleEndian.AppendUint64(b, uint64(a.Ctime))
}

// attr writes a's fields, in the order reader.attr reads them.
func (w *writer) attr(a *Attr) { w.b = AppendAttr(w.b, a) }

// The names reader.attr gives its fields in errors.
var (
	attrFields       = [11]string{"ino", "type", "mode", "uid", "gid", "size", "nlink", "open", "atime", "mtime", "ctime"}
	parentAttrFields = [11]string{"parent ino", "parent type", "parent mode", "parent uid", "parent gid", "parent size",
		"parent nlink", "parent open", "parent atime", "parent mtime", "parent ctime"}
)

// attr reads what writer.attr wrote, naming the fields as names does.
func (r *reader) attr(names *[11]string) Attr {
	var a Attr
	a.Ino = Ino(r.u64(names[0]))
	a.Type = Type(r.u8(names[1]))
	a.Mode = r.u32(names[2])
	a.UID = r.u32(names[3])
	a.GID = r.u32(names[4])
	a.Size = r.u64(names[5])
	a.Nlink = r.u32(names[6])
	a.Open = r.u32(names[7])
	a.Atime = r.i64(names[8])
	a.Mtime = r.i64(names[9])
	a.Ctime = r.i64(names[10])
	return a
}
