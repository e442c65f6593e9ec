package client

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/meta"
	"github.com/weftfs/weft/fsproto/namespace"
	"github.com/weftfs/weft/net"
)

// TestAccess checks the permission rules against what Linux decides for
// the same owner, group, mode and caller.
func TestAccess(t *testing.T) {
	file := func(mode, uid, gid uint32) namespace.Attr {
		return namespace.Attr{Type: namespace.TypeFile, Mode: mode, UID: uid, GID: gid}
	}
	dir := func(mode, uid, gid uint32) namespace.Attr {
		return namespace.Attr{Type: namespace.TypeDir, Mode: mode, UID: uid, GID: gid}
	}
	user := creds{uid: 1000, gid: 1000, groups: []uint32{1000, 50}}
	root := creds{}
	for _, c := range []struct {
		who  creds
		a    namespace.Attr
		want uint32
		ok   bool
	}{
		{user, file(0o644, 1000, 1000), mayRead | mayWrite, true},
		{user, file(0o444, 1000, 1000), mayWrite, false},
		{user, file(0o604, 0, 1000), mayRead, false}, // group bits (0) apply, not others'
		{user, file(0o640, 0, 50), mayRead, true},    // a supplementary group
		{user, file(0o640, 0, 60), mayRead, false},
		{user, file(0o004, 0, 60), mayRead, true},
		{user, file(0o077, 1000, 60), mayRead, false}, // the owner's bits (0) apply
		{user, dir(0o711, 0, 0), mayExec, true},
		{user, dir(0o700, 0, 0), mayExec, false},
		{user, dir(0o755, 0, 0), mayWrite | mayExec, false},
		{root, file(0, 5, 5), mayRead | mayWrite, true},
		{root, dir(0, 5, 5), mayExec | mayWrite, true},
		{root, file(0o644, 5, 5), mayExec, false}, // root executes only with some x bit
		{root, file(0o010, 5, 5), mayExec, true},
	} {
		if got := access(c.who, c.a, c.want); got != c.ok {
			t.Errorf("access(uid %d, mode %o owner %d:%d, want %o) = %v, want %v", c.who.uid, c.a.Mode, c.a.UID, c.a.GID, c.want, got, c.ok)
		}
	}
	sticky := dir(0o1777, 0, 0)
	if mayDelete(user, sticky, file(0o644, 0, 0)) {
		t.Error("a user removed root's file from a sticky directory")
	}
	if !mayDelete(user, sticky, file(0o644, 1000, 0)) {
		t.Error("a user could not remove their own file from a sticky directory")
	}
	if !mayDelete(user, dir(0o1777, 1000, 0), file(0o644, 0, 0)) {
		t.Error("the sticky directory's owner could not remove a file in it")
	}
	if !mayDelete(root, sticky, file(0o644, 5, 5)) {
		t.Error("root could not remove from a sticky directory")
	}
}

// TestSplit: chunk requests cover the request exactly, never cross a
// chunk boundary and never exceed fsproto.MaxReadBytes.
func TestSplit(t *testing.T) {
	for _, c := range []struct {
		off   int64
		n     int
		chunk int64
	}{
		{0, 1, 64 << 10}, {65535, 2, 64 << 10}, {100, 3 << 20, 64 << 10},
		{5, 9 << 20, 64 << 20}, {64<<20 - 1, 10, 64 << 20}, {1 << 40, 1 << 16, 1 << 16},
	} {
		sp := split(c.off, c.n, c.chunk)
		next := 0
		for _, s := range sp {
			pos := c.off + int64(s.lo)
			if s.lo != next || s.hi <= s.lo || s.hi-s.lo > fsproto.MaxReadBytes {
				t.Fatalf("split(%d, %d, %d): span %+v after %d", c.off, c.n, c.chunk, s, next)
			}
			if int64(s.k) != pos/c.chunk || int64(s.off) != pos%c.chunk || int64(s.off)+int64(s.hi-s.lo) > c.chunk {
				t.Fatalf("split(%d, %d, %d): span %+v is not where byte %d lives", c.off, c.n, c.chunk, s, pos)
			}
			next = s.hi
		}
		if next != c.n {
			t.Fatalf("split(%d, %d, %d) covers %d bytes", c.off, c.n, c.chunk, next)
		}
	}
}

func TestCheckExtent(t *testing.T) {
	if err := checkExtent(namespace.FileSizeMax, 64<<20); err != nil {
		t.Errorf("a file of FileSizeMax with 64 MiB chunks: %v", err)
	}
	if err := checkExtent(namespace.FileSizeMax+1, 64<<20); !errors.Is(err, syscall.EFBIG) {
		t.Errorf("past FileSizeMax: %v", err)
	}
	if err := checkExtent(chunkIndexMax*(64<<10), 64<<10); err != nil {
		t.Errorf("up to the last chunk: %v", err)
	}
	if err := checkExtent(chunkIndexMax*(64<<10)+1, 64<<10); !errors.Is(err, syscall.EFBIG) {
		t.Errorf("past the last chunk index: %v", err)
	}
}

func TestSplitPath(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		err  bool
	}{
		{"", "", false}, {".", "", false}, {"/", "", false}, {"a", "a", false}, {"/a/b", "a|b", false},
		{"a/", "", true}, {"a//b", "", true}, {"a/./b", "", true}, {"../a", "", true}, {"a/..", "", true},
	} {
		got, err := splitPath(c.in)
		if (err != nil) != c.err || strings.Join(got, "|") != c.want {
			t.Errorf("splitPath(%q) = %q, %v", c.in, got, err)
		}
		if err != nil && (!errors.Is(err, fs.ErrInvalid) || !errors.Is(err, syscall.EINVAL)) {
			t.Errorf("splitPath(%q): %v is not EINVAL and fs.ErrInvalid", c.in, err)
		}
	}
}

func TestParseKey(t *testing.T) {
	k, err := ParseKey("app:0a0b")
	if err != nil || k.ID != "app" || string(k.Secret) != "\x0a\x0b" {
		t.Fatalf("ParseKey: %+v, %v", k, err)
	}
	if s := k.String(); strings.Contains(s, "0a0b") {
		t.Errorf("Key.String shows the secret: %q", s)
	}
	if k, err := ParseKey("a:b:ff"); err != nil || k.ID != "a:b" {
		t.Errorf("an id with a colon: %+v, %v", k, err)
	}
	for _, bad := range []string{"", "app", ":ff", "app:", "app:zz", "app:abc", strings.Repeat("x", 256) + ":ff"} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

// FuzzParseKey: no panic, and an accepted key prints back to what parses
// to the same key.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"app:0a0b", "a:b:ff", "", ":", "x:", "k:zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			return
		}
		if k.ID == "" || len(k.Secret) == 0 {
			t.Fatalf("ParseKey(%q) accepted %+v", s, k)
		}
		again, err := ParseKey(fmt.Sprintf("%s:%x", k.ID, k.Secret))
		if err != nil || again.ID != k.ID || string(again.Secret) != string(k.Secret) {
			t.Fatalf("ParseKey(%q) = %+v, which does not round-trip: %+v, %v", s, k, again, err)
		}
	})
}

func TestErrno(t *testing.T) {
	for _, c := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{&namespace.Error{Op: "x", Errno: syscall.ENOTEMPTY}, syscall.ENOTEMPTY},
		{fmt.Errorf("wrapped: %w", meta.ErrReadOnly), syscall.EROFS},
		{fmt.Errorf("chunk: %w", fsproto.ErrReadOnly), syscall.EROFS},
		{fmt.Errorf("chunk: %w", fsproto.ErrNoSpace), syscall.ENOSPC},
		{&net.RemoteError{Code: net.CodeAuthFailed}, syscall.EACCES},
		{fmt.Errorf("meta: %w", &net.RemoteError{Code: meta.CodeAccessDenied}), syscall.EACCES},
		{fmt.Errorf("chunk: %w", fsproto.ErrAccessDenied), syscall.EACCES},
		{context.Canceled, syscall.EINTR},
		{context.DeadlineExceeded, syscall.ETIMEDOUT},
		{fs.ErrClosed, syscall.EBADF},
		{errors.New("something else"), syscall.EIO},
		{errnoWrap(errors.New("x")), syscall.EIO},
	} {
		if got := Errno(c.err); got != c.want {
			t.Errorf("Errno(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	w := errnoWrap(fmt.Errorf("ctx: %w", context.DeadlineExceeded))
	if !errors.Is(w, syscall.ETIMEDOUT) || !errors.Is(w, context.DeadlineExceeded) {
		t.Errorf("errnoWrap keeps neither the errno nor the cause: %v", w)
	}
}
