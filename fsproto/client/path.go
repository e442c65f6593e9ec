package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/weftfs/weft/fsproto/namespace"
)

// The io/fs interfaces FS and File implement.
var (
	_ fs.FS          = (*FS)(nil)
	_ fs.StatFS      = (*FS)(nil)
	_ fs.ReadDirFS   = (*FS)(nil)
	_ fs.ReadFileFS  = (*FS)(nil)
	_ fs.ReadLinkFS  = (*FS)(nil)
	_ fs.ReadDirFile = (*File)(nil)
	_ io.ReaderAt    = (*File)(nil)
	_ io.WriterAt    = (*File)(nil)
	_ io.Seeker      = (*File)(nil)
)

// symlinksMax bounds the symlinks one path resolution follows (Linux's
// MAXSYMLINKS); one more fails with ELOOP.
const symlinksMax = 40

// Permission bits access checks, as access(2)'s R_OK, W_OK, X_OK.
const (
	mayRead  = 4
	mayWrite = 2
	mayExec  = 1
)

// creds is who the path API acts as.
type creds struct {
	uid, gid uint32
	groups   []uint32
}

func (c creds) inGroup(g uint32) bool { return c.gid == g || slices.Contains(c.groups, g) }

// access reports whether c may do want (mayRead|mayWrite|mayExec bits) to
// an inode with attributes a, by Linux's rules: root may read and write
// anything and search any directory, and execute a file only if some x
// bit is set; others get the owner's bits if they own it, else the
// group's if they are in its group, else the others' bits.
func access(c creds, a namespace.Attr, want uint32) bool {
	if c.uid == 0 {
		return want&mayExec == 0 || a.Type == namespace.TypeDir || a.Mode&0o111 != 0
	}
	var bits uint32
	switch {
	case a.UID == c.uid:
		bits = a.Mode >> 6
	case c.inGroup(a.GID):
		bits = a.Mode >> 3
	default:
		bits = a.Mode
	}
	return bits&7&want == want
}

// mayDelete reports whether c may remove or replace the entry naming
// child in dir: write and search on dir, and, when dir is sticky, owning
// the child or dir (root always may).
func mayDelete(c creds, dir, child namespace.Attr) bool {
	if !access(c, dir, mayWrite|mayExec) {
		return false
	}
	if c.uid == 0 || dir.Mode&0o1000 == 0 {
		return true
	}
	return child.UID == c.uid || dir.UID == c.uid
}

func (f *FS) creds() creds { return creds{uid: f.o.uid, gid: f.o.gid, groups: f.o.groups} }

// opCtx bounds one path API call.
func (f *FS) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), f.o.opTimeout)
}

// pathErr is pathErr for the path API of f: an error that a stale cached
// directory may have caused (ENOENT, ENOTDIR) makes f forget its cached
// directories, so a directory changed by another client costs at most
// this one failed op.
func (f *FS) pathErr(op, name string, err error) error {
	if err != nil && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR)) {
		f.dirs.forgetAll()
	}
	return pathErr(op, name, err)
}

// pathErr makes the *fs.PathError of a path call: its Err is the bare
// errno when the errno says it all, else the errno-carrying cause.
func pathErr(op, name string, err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	if errors.Is(err, fs.ErrClosed) {
		return &fs.PathError{Op: op, Path: name, Err: fs.ErrClosed}
	}
	if errors.Is(err, fs.ErrInvalid) {
		return &fs.PathError{Op: op, Path: name, Err: errnoWrap(err)}
	}
	e := Errno(err)
	if e == syscall.EIO {
		return &fs.PathError{Op: op, Path: name, Err: errnoWrap(err)}
	}
	return &fs.PathError{Op: op, Path: name, Err: e}
}

// split turns a path into its components: a leading "/" is accepted, ""
// and "/" name the root; the rest must satisfy fs.ValidPath (no empty,
// "." or ".." components), else EINVAL.
func splitPath(name string) ([]string, error) {
	p := strings.TrimLeft(name, "/")
	if p == "" || p == "." {
		return nil, nil
	}
	if !fs.ValidPath(p) {
		return nil, invalidPath(name)
	}
	return strings.Split(p, "/"), nil
}

// invalidPath is the error of a name that is not a valid path: EINVAL,
// and fs.ErrInvalid too.
func invalidPath(name string) error {
	return &errnoError{errno: syscall.EINVAL, err: fmt.Errorf("client: path %q: %w", name, fs.ErrInvalid)}
}

// resolve walks name from the root and returns the attributes of what it
// names, following symlinks in every component but the last, and in the
// last when follow is set. Every directory walked needs search permission.
func (f *FS) resolve(ctx context.Context, name string, follow bool) (namespace.Attr, error) {
	comps, err := splitPath(name)
	if err != nil {
		return namespace.Attr{}, err
	}
	return f.walk(ctx, comps, follow, false)
}

// resolveParent returns the directory that holds name's last component
// (symlinks followed on the way) and that component. The root has no
// parent: EINVAL for "" (and EBUSY-like callers decide).
func (f *FS) resolveParent(ctx context.Context, name string) (namespace.Attr, string, error) {
	comps, err := splitPath(name)
	if err != nil {
		return namespace.Attr{}, "", err
	}
	if len(comps) == 0 {
		return namespace.Attr{}, "", fmt.Errorf("client: path %q names the root: %w", name, syscall.EINVAL)
	}
	dir, err := f.walk(ctx, comps[:len(comps)-1], true, true)
	if err != nil {
		return namespace.Attr{}, "", err
	}
	if dir.Type != namespace.TypeDir {
		return namespace.Attr{}, "", fmt.Errorf("client: path %q: parent is a %v: %w", name, dir.Type, syscall.ENOTDIR)
	}
	if !access(f.creds(), dir, mayExec) {
		return namespace.Attr{}, "", fmt.Errorf("client: path %q: no search permission on its directory: %w", name, syscall.EACCES)
	}
	return dir, comps[len(comps)-1], nil
}

// walk resolves comps from the root, following symlinks (the last one
// only when follow). Directories it passes through come from f.dirs when
// cached, and so does the last component when cacheLast (a parent about
// to be changed in, whose attributes only serve permission checks); a
// path's target is always looked up.
func (f *FS) walk(ctx context.Context, comps []string, follow, cacheLast bool) (namespace.Attr, error) {
	c := f.creds()
	// The root's attributes are fetched only when needed: root's
	// credentials search any directory, and the root is one.
	rootDir := namespace.Attr{Ino: namespace.RootIno, Type: namespace.TypeDir}
	cur, known := rootDir, false
	fetch := func() error {
		if known {
			return nil
		}
		a, err := f.GetAttr(ctx, cur.Ino)
		cur, known = a, err == nil
		return err
	}
	links := 0
	comps = slices.Clone(comps)
	for len(comps) > 0 {
		name := comps[0]
		comps = comps[1:]
		if c.uid != 0 {
			if err := fetch(); err != nil {
				return namespace.Attr{}, err
			}
		}
		if cur.Type != namespace.TypeDir {
			return namespace.Attr{}, fmt.Errorf("client: %q: below a %v: %w", name, cur.Type, syscall.ENOTDIR)
		}
		if !access(c, cur, mayExec) {
			return namespace.Attr{}, fmt.Errorf("client: %q: no search permission on ino %d: %w", name, cur.Ino, syscall.EACCES)
		}
		cacheable := len(comps) > 0 || cacheLast
		a, cached := namespace.Attr{}, false
		if cacheable {
			a, cached = f.dirs.get(cur.Ino, name)
		}
		if !cached {
			gen := f.dirs.generation()
			var err error
			if a, err = f.Lookup(ctx, cur.Ino, name); err != nil {
				return namespace.Attr{}, err
			}
			if cacheable {
				f.dirs.put(gen, cur.Ino, name, a)
			}
		}
		if a.Type == namespace.TypeSymlink && (len(comps) > 0 || follow) {
			links++
			if links > symlinksMax {
				return namespace.Attr{}, fmt.Errorf("client: more than %d symlinks: %w", symlinksMax, syscall.ELOOP)
			}
			target, err := f.ReadlinkIno(ctx, a.Ino)
			if err != nil {
				return namespace.Attr{}, err
			}
			if strings.HasPrefix(target, "/") {
				cur, known = rootDir, false
			}
			var tc []string
			for _, s := range strings.Split(target, "/") {
				if s != "" && s != "." {
					tc = append(tc, s)
				}
			}
			comps = append(tc, comps...)
			continue
		}
		cur, known = a, true
	}
	if err := fetch(); err != nil {
		return namespace.Attr{}, err
	}
	return cur, nil
}

// unixMode converts a FileMode's permission and special bits to the
// namespace's mode bits.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// fileMode converts attributes to a FileMode (type, permission and
// special bits).
func fileMode(a namespace.Attr) fs.FileMode {
	m := fs.FileMode(a.Mode & 0o777)
	if a.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if a.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if a.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch a.Type {
	case namespace.TypeDir:
		m |= fs.ModeDir
	case namespace.TypeSymlink:
		m |= fs.ModeSymlink
	}
	return m
}

// fileInfo is the fs.FileInfo of an inode; Sys returns its
// namespace.Attr.
type fileInfo struct {
	name string
	a    namespace.Attr
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return int64(i.a.Size) }
func (i fileInfo) Mode() fs.FileMode  { return fileMode(i.a) }
func (i fileInfo) ModTime() time.Time { return time.Unix(0, i.a.Mtime) }
func (i fileInfo) IsDir() bool        { return i.a.Type == namespace.TypeDir }
func (i fileInfo) Sys() any           { return i.a }

func baseName(name string) string {
	p := strings.TrimLeft(name, "/")
	if p == "" {
		return "."
	}
	return path.Base(p)
}

// dirEntry is an fs.DirEntry; Info looks the entry up.
type dirEntry struct {
	f   *FS
	dir namespace.Ino
	e   namespace.DirEntry
}

func (d dirEntry) Name() string { return d.e.Name }
func (d dirEntry) IsDir() bool  { return d.e.Type == namespace.TypeDir }
func (d dirEntry) Type() fs.FileMode {
	return fileMode(namespace.Attr{Type: d.e.Type}).Type()
}
func (d dirEntry) Info() (fs.FileInfo, error) {
	ctx, cancel := d.f.opCtx()
	defer cancel()
	a, err := d.f.GetAttr(ctx, d.e.Ino)
	if err != nil {
		return nil, pathErr("stat", d.e.Name, err)
	}
	return fileInfo{name: d.e.Name, a: a}, nil
}
func (d dirEntry) String() string { return fs.FormatDirEntry(d) }

// Open opens name for reading, as fs.FS: a directory gives a File that
// implements fs.ReadDirFile. As io/fs asks, name must satisfy
// fs.ValidPath (no leading "/": fs.ErrInvalid), unlike the os-like
// methods.
func (f *FS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, f.pathErr("open", name, invalidPath(name))
	}
	fl, err := f.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	return fl, nil
}

// Create creates or truncates name (mode 0666 before any umask: there
// is none), open for reading and writing.
func (f *FS) Create(name string) (*File, error) {
	return f.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

// OpenFile opens name with os.O_* flags (O_RDONLY, O_WRONLY or O_RDWR,
// and O_CREATE, O_EXCL, O_TRUNC, O_APPEND) as open(2) does; perm is the
// mode of a file it creates. Directories open read-only (EISDIR for
// writing). The last component's symlink is followed, except with
// O_CREATE|O_EXCL (EEXIST, as Linux).
func (f *FS) OpenFile(name string, flag int, perm fs.FileMode) (*File, error) {
	ctx, cancel := f.opCtx()
	defer cancel()
	fl, err := f.openFile(ctx, name, flag, perm)
	if err != nil {
		return nil, f.pathErr("open", name, err)
	}
	return fl, nil
}

func (f *FS) openFile(ctx context.Context, name string, flag int, perm fs.FileMode) (*File, error) {
	acc := flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	writable, readable := acc != os.O_RDONLY, acc != os.O_WRONLY
	c := f.creds()
	var a namespace.Attr
	created := false
	if flag&os.O_CREATE != 0 {
		dir, base, err := f.resolveParent(ctx, name)
		if err != nil {
			return nil, err
		}
		if access(c, dir, mayWrite) {
			// Create and open in one commit when the name is (or becomes)
			// a regular file.
			res, h, err := f.CreateIno(ctx, namespace.Create{Parent: dir.Ino, Name: base, Mode: unixMode(perm),
				UID: c.uid, GID: c.gid, Excl: flag&os.O_EXCL != 0}, writable)
			if err != nil {
				return nil, err
			}
			if h != nil {
				return f.opened(ctx, name, flag, h, res.Attr, res.Created, readable, writable)
			}
			a, created = res.Attr, res.Created
		} else {
			// No right to create: only an existing file may open.
			if a, err = f.Lookup(ctx, dir.Ino, base); err != nil {
				if errors.Is(err, syscall.ENOENT) {
					return nil, fmt.Errorf("client: no write permission on the directory: %w", syscall.EACCES)
				}
				return nil, err
			}
			if flag&os.O_EXCL != 0 {
				return nil, syscall.EEXIST
			}
		}
		if a.Type == namespace.TypeSymlink {
			if a, err = f.resolve(ctx, name, true); err != nil {
				return nil, err
			}
		}
	} else {
		var err error
		if a, err = f.resolve(ctx, name, true); err != nil {
			return nil, err
		}
	}
	if !created {
		if err := mayOpen(c, a, readable, writable); err != nil {
			return nil, err
		}
	}
	fl := &File{fs: f, name: name, ino: a.Ino, readable: readable, writable: writable, append: flag&os.O_APPEND != 0}
	if a.Type == namespace.TypeDir {
		if writable {
			return nil, fmt.Errorf("client: ino %d is a directory: %w", a.Ino, syscall.EISDIR)
		}
		fl.dir = &dirState{}
		return fl, nil
	}
	h, err := f.OpenIno(ctx, a.Ino, writable)
	if err != nil {
		return nil, err
	}
	return f.opened(ctx, name, flag, h, a, true, readable, writable)
}

// mayOpen checks that c may open a for reading and/or writing (EACCES).
func mayOpen(c creds, a namespace.Attr, readable, writable bool) error {
	want := uint32(0)
	if readable {
		want |= mayRead
	}
	if writable {
		want |= mayWrite
	}
	if !access(c, a, want) {
		return fmt.Errorf("client: mode %o of ino %d: %w", a.Mode, a.Ino, syscall.EACCES)
	}
	return nil
}

// opened finishes an open of the regular file a with its handle h: the
// permission check of an existing file (skipped when checked, or when
// this open created it) and O_TRUNC. A refusal releases h.
func (f *FS) opened(ctx context.Context, name string, flag int, h *Handle, a namespace.Attr, checked, readable, writable bool) (*File, error) {
	if !checked {
		if err := mayOpen(f.creds(), a, readable, writable); err != nil {
			return nil, errors.Join(err, h.Release(ctx))
		}
	}
	if flag&os.O_TRUNC != 0 && writable && h.Size() > 0 {
		if _, err := h.SetSize(ctx, 0); err != nil {
			return nil, errors.Join(err, h.Release(ctx))
		}
	}
	return &File{fs: f, name: name, ino: a.Ino, readable: readable, writable: writable, append: flag&os.O_APPEND != 0, h: h}, nil
}

// Mkdir makes the directory name with mode perm.
func (f *FS) Mkdir(name string, perm fs.FileMode) error {
	ctx, cancel := f.opCtx()
	defer cancel()
	return f.pathErr("mkdir", name, f.mkdir(ctx, name, perm))
}

func (f *FS) mkdir(ctx context.Context, name string, perm fs.FileMode) error {
	dir, base, err := f.resolveParent(ctx, name)
	if err != nil {
		if len(strings.Trim(name, "/")) == 0 || name == "." {
			return syscall.EEXIST
		}
		return err
	}
	c := f.creds()
	if !access(c, dir, mayWrite|mayExec) {
		if _, err := f.Lookup(ctx, dir.Ino, base); err == nil {
			return syscall.EEXIST
		}
		return fmt.Errorf("client: no write permission on ino %d: %w", dir.Ino, syscall.EACCES)
	}
	_, err = f.apply(ctx, namespace.Mkdir{Parent: dir.Ino, Name: base, Mode: unixMode(perm), UID: c.uid, GID: c.gid})
	return err
}

// MkdirAll makes name and every missing parent (mode perm), as
// os.MkdirAll: nothing to do if name is a directory already, ENOTDIR if
// a component is something else.
func (f *FS) MkdirAll(name string, perm fs.FileMode) error {
	comps, err := splitPath(name)
	if err != nil {
		return f.pathErr("mkdir", name, err)
	}
	ctx, cancel := f.opCtx()
	defer cancel()
	for i := range comps {
		p := strings.Join(comps[:i+1], "/")
		a, err := f.resolve(ctx, p, true)
		if err == nil {
			if a.Type != namespace.TypeDir {
				return f.pathErr("mkdir", p, syscall.ENOTDIR)
			}
			continue
		}
		if !errors.Is(err, syscall.ENOENT) {
			return f.pathErr("mkdir", p, err)
		}
		if err := f.mkdir(ctx, p, perm); err != nil && !errors.Is(err, syscall.EEXIST) {
			return f.pathErr("mkdir", p, err)
		}
	}
	return nil
}

// Remove removes the file, symlink or empty directory name (ENOTEMPTY
// for a directory with entries).
func (f *FS) Remove(name string) error {
	ctx, cancel := f.opCtx()
	defer cancel()
	return f.pathErr("remove", name, f.remove(ctx, name))
}

func (f *FS) remove(ctx context.Context, name string) error {
	dir, base, err := f.resolveParent(ctx, name)
	if err != nil {
		return err
	}
	a, err := f.Lookup(ctx, dir.Ino, base)
	if err != nil {
		return err
	}
	if !mayDelete(f.creds(), dir, a) {
		return fmt.Errorf("client: may not remove %q from ino %d: %w", base, dir.Ino, syscall.EACCES)
	}
	if a.Type == namespace.TypeDir {
		_, err = f.apply(ctx, namespace.Rmdir{Parent: dir.Ino, Name: base})
	} else {
		_, err = f.apply(ctx, namespace.Unlink{Parent: dir.Ino, Name: base})
	}
	return err
}

// Rename moves oldname to newname atomically, as rename(2): a file or
// symlink replaces a non-directory, a directory replaces an empty
// directory (ENOTEMPTY otherwise), and moving a directory below itself
// fails with EINVAL. (Unlike os.Rename, an existing empty directory as
// newname is replaced, as rename(2) does.) The error's Path is
// "oldname newname".
func (f *FS) Rename(oldname, newname string) error {
	ctx, cancel := f.opCtx()
	defer cancel()
	return f.pathErr("rename", oldname+" "+newname, f.rename(ctx, oldname, newname))
}

func (f *FS) rename(ctx context.Context, oldname, newname string) error {
	sdir, sbase, err := f.resolveParent(ctx, oldname)
	if err != nil {
		return err
	}
	ddir, dbase, err := f.resolveParent(ctx, newname)
	if err != nil {
		return err
	}
	c := f.creds()
	if c.uid != 0 {
		src, err := f.Lookup(ctx, sdir.Ino, sbase)
		if err != nil {
			return err
		}
		if !mayDelete(c, sdir, src) {
			return fmt.Errorf("client: may not move %q out of ino %d: %w", sbase, sdir.Ino, syscall.EACCES)
		}
		if !access(c, ddir, mayWrite|mayExec) {
			return fmt.Errorf("client: no write permission on ino %d: %w", ddir.Ino, syscall.EACCES)
		}
		if dst, err := f.Lookup(ctx, ddir.Ino, dbase); err == nil && !mayDelete(c, ddir, dst) {
			return fmt.Errorf("client: may not replace %q in ino %d: %w", dbase, ddir.Ino, syscall.EACCES)
		}
		// A directory moved to another parent rewrites its "..": Linux
		// asks write permission on it.
		if src.Type == namespace.TypeDir && sdir.Ino != ddir.Ino && !access(c, src, mayWrite) {
			return fmt.Errorf("client: no write permission on directory %q: %w", sbase, syscall.EACCES)
		}
	}
	_, err = f.apply(ctx, namespace.Rename{SrcParent: sdir.Ino, SrcName: sbase, DstParent: ddir.Ino, DstName: dbase})
	return err
}

// Symlink makes name a symbolic link to target.
func (f *FS) Symlink(target, name string) error {
	ctx, cancel := f.opCtx()
	defer cancel()
	return f.pathErr("symlink", name, f.symlink(ctx, target, name))
}

func (f *FS) symlink(ctx context.Context, target, name string) error {
	dir, base, err := f.resolveParent(ctx, name)
	if err != nil {
		return err
	}
	c := f.creds()
	if !access(c, dir, mayWrite|mayExec) {
		return fmt.Errorf("client: no write permission on ino %d: %w", dir.Ino, syscall.EACCES)
	}
	_, err = f.apply(ctx, namespace.Symlink{Parent: dir.Ino, Name: base, Target: target, UID: c.uid, GID: c.gid})
	return err
}

// Readlink returns the target of the symlink name (EINVAL if name is
// not a symlink).
func (f *FS) Readlink(name string) (string, error) {
	ctx, cancel := f.opCtx()
	defer cancel()
	a, err := f.resolve(ctx, name, false)
	if err != nil {
		return "", f.pathErr("readlink", name, err)
	}
	if a.Type != namespace.TypeSymlink {
		return "", f.pathErr("readlink", name, syscall.EINVAL)
	}
	s, err := f.ReadlinkIno(ctx, a.Ino)
	return s, f.pathErr("readlink", name, err)
}

// ReadLink is Readlink, for fs.ReadLinkFS.
func (f *FS) ReadLink(name string) (string, error) { return f.Readlink(name) }

// Link makes newname a hard link to the non-directory oldname (a
// symlink itself is linked, not followed, as link(2)).
func (f *FS) Link(oldname, newname string) error {
	ctx, cancel := f.opCtx()
	defer cancel()
	return f.pathErr("link", oldname+" "+newname, f.link(ctx, oldname, newname))
}

func (f *FS) link(ctx context.Context, oldname, newname string) error {
	a, err := f.resolve(ctx, oldname, false)
	if err != nil {
		return err
	}
	dir, base, err := f.resolveParent(ctx, newname)
	if err != nil {
		return err
	}
	if !access(f.creds(), dir, mayWrite|mayExec) {
		return fmt.Errorf("client: no write permission on ino %d: %w", dir.Ino, syscall.EACCES)
	}
	_, err = f.apply(ctx, namespace.Link{Ino: a.Ino, Parent: dir.Ino, Name: base})
	return err
}

// Stat returns name's FileInfo, following symlinks; Sys() is its
// namespace.Attr.
func (f *FS) Stat(name string) (fs.FileInfo, error) { return f.stat("stat", name, true) }

// Lstat returns name's FileInfo without following a final symlink.
func (f *FS) Lstat(name string) (fs.FileInfo, error) { return f.stat("lstat", name, false) }

func (f *FS) stat(op, name string, follow bool) (fs.FileInfo, error) {
	ctx, cancel := f.opCtx()
	defer cancel()
	a, err := f.resolve(ctx, name, follow)
	if err != nil {
		return nil, f.pathErr(op, name, err)
	}
	return fileInfo{name: baseName(name), a: a}, nil
}

// ReadDir returns the directory name's entries sorted by name
// (fs.ReadDirFS; a leading "/" is accepted).
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	ctx, cancel := f.opCtx()
	defer cancel()
	a, err := f.resolve(ctx, name, true)
	if err != nil {
		return nil, f.pathErr("readdir", name, err)
	}
	if a.Type != namespace.TypeDir {
		return nil, f.pathErr("readdir", name, syscall.ENOTDIR)
	}
	if !access(f.creds(), a, mayRead) {
		return nil, f.pathErr("readdir", name, syscall.EACCES)
	}
	var out []fs.DirEntry
	for cookie := ""; ; {
		ents, next, err := f.ReadDirPage(ctx, a.Ino, cookie, readDirPage)
		if err != nil {
			return nil, f.pathErr("readdir", name, err)
		}
		for _, e := range ents {
			out = append(out, dirEntry{f: f, dir: a.Ino, e: e})
		}
		if next == "" {
			break
		}
		cookie = next
	}
	// The namespace lists in byte order already; io/fs asks for it.
	slices.SortFunc(out, func(x, y fs.DirEntry) int { return strings.Compare(x.Name(), y.Name()) })
	return out, nil
}

// ReadFile returns name's contents (fs.ReadFileFS: name must satisfy
// fs.ValidPath, as for Open).
func (f *FS) ReadFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, f.pathErr("open", name, invalidPath(name))
	}
	fl, err := f.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer fl.Close()
	if fl.dir != nil {
		return nil, f.pathErr("read", name, syscall.EISDIR)
	}
	b := make([]byte, fl.h.Size())
	n, err := fl.h.ReadAt(context.Background(), b, 0)
	if err != nil && err != io.EOF {
		return nil, f.pathErr("read", name, err)
	}
	return b[:n], nil
}

// WriteFile writes data to name, creating it with perm or truncating
// it, and closes it (so its size is committed when WriteFile returns).
func (f *FS) WriteFile(name string, data []byte, perm fs.FileMode) error {
	fl, err := f.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = fl.Write(data)
	return errors.Join(err, fl.Close())
}

// Truncate sets name's size (it must be a file the credentials may
// write).
func (f *FS) Truncate(name string, size int64) error {
	fl, err := f.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return f.pathErr("truncate", name, err)
	}
	err = fl.Truncate(size)
	return errors.Join(err, fl.Close())
}

// Chmod sets name's permission and special bits (the owner or root
// only: EPERM otherwise).
func (f *FS) Chmod(name string, mode fs.FileMode) error {
	return f.setAttr("chmod", name, func(c creds, a namespace.Attr) (namespace.SetAttr, error) {
		if c.uid != 0 && c.uid != a.UID {
			return namespace.SetAttr{}, syscall.EPERM
		}
		return namespace.SetAttr{Mask: namespace.SetMode, Mode: unixMode(mode)}, nil
	})
}

// Chown sets name's owner and group; -1 leaves one unchanged. Only root
// may give a file away; its owner may set its group to one of theirs.
func (f *FS) Chown(name string, uid, gid int) error {
	return f.setAttr("chown", name, func(c creds, a namespace.Attr) (namespace.SetAttr, error) {
		var s namespace.SetAttr
		if uid >= 0 {
			s.Mask |= namespace.SetUID
			s.UID = uint32(uid)
		}
		if gid >= 0 {
			s.Mask |= namespace.SetGID
			s.GID = uint32(gid)
		}
		if c.uid != 0 {
			switch {
			case c.uid != a.UID, uid >= 0 && uint32(uid) != a.UID, gid >= 0 && !c.inGroup(uint32(gid)):
				return s, syscall.EPERM
			}
		}
		return s, nil
	})
}

// Chtimes sets name's access and modification times; a zero time leaves
// that one unchanged (as os.Chtimes). The owner or root only.
func (f *FS) Chtimes(name string, atime, mtime time.Time) error {
	return f.setAttr("chtimes", name, func(c creds, a namespace.Attr) (namespace.SetAttr, error) {
		var s namespace.SetAttr
		if !atime.IsZero() {
			s.Mask |= namespace.SetAtime
			s.Atime = atime.UnixNano()
		}
		if !mtime.IsZero() {
			s.Mask |= namespace.SetMtime
			s.Mtime = mtime.UnixNano()
		}
		if c.uid != 0 && c.uid != a.UID {
			return s, syscall.EPERM
		}
		return s, nil
	})
}

func (f *FS) setAttr(op, name string, mk func(creds, namespace.Attr) (namespace.SetAttr, error)) error {
	ctx, cancel := f.opCtx()
	defer cancel()
	a, err := f.resolve(ctx, name, true)
	if err != nil {
		return f.pathErr(op, name, err)
	}
	s, err := mk(f.creds(), a)
	if err != nil {
		return f.pathErr(op, name, err)
	}
	s.Ino = a.Ino
	_, err = f.apply(ctx, s)
	return f.pathErr(op, name, err)
}

// Usage returns the container's usage and quota (StatFS without a
// context).
func (f *FS) Usage() (namespace.StatFS, error) {
	ctx, cancel := f.opCtx()
	defer cancel()
	return f.StatFS(ctx)
}
