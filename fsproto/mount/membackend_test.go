package mount

import (
	"context"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/weftfs/weft/fsproto/namespace"
)

// memBackend is a backend over an in-process namespace.Namespace and file
// data in memory: the FUSE layer's tests run on it without a cluster
// (fast, and failures point at this package). It keeps client.FS's
// contract on sizes: the handles of an inode share its size, growth
// reaches the namespace only at Flush, Sync or Release, GetAttr and
// Lookup report the pending size, and an open of an inode without
// pending writes takes the namespace's size (close-to-open).
type memBackend struct {
	mu     sync.Mutex
	ns     *namespace.Namespace
	data   map[namespace.Ino][]byte
	inodes map[namespace.Ino]*memInode
}

type memInode struct {
	refs  int
	size  int64
	dirty bool
}

func newMemBackend() *memBackend {
	return &memBackend{ns: namespace.New(), data: make(map[namespace.Ino][]byte), inodes: make(map[namespace.Ino]*memInode)}
}

func (m *memBackend) overlay(a namespace.Attr, err error) (namespace.Attr, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if in := m.inodes[a.Ino]; err == nil && in != nil && in.dirty {
		a.Size = uint64(in.size)
	}
	return a, err
}

func (m *memBackend) Lookup(_ context.Context, parent namespace.Ino, name string) (namespace.Attr, error) {
	return m.overlay(m.ns.Lookup(parent, name))
}

func (m *memBackend) GetAttr(_ context.Context, ino namespace.Ino) (namespace.Attr, error) {
	return m.overlay(m.ns.GetAttr(ino))
}

func (m *memBackend) Apply(_ context.Context, cmd namespace.Command) (namespace.Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.applyLocked(cmd), nil
}

func (m *memBackend) applyLocked(cmd namespace.Command) namespace.Result {
	res := m.ns.ApplyCommand(namespace.WithNow(cmd, time.Now().UnixNano()))
	for _, rc := range res.Reclaim {
		d := m.data[rc.Ino]
		switch {
		case rc.Removed:
			delete(m.data, rc.Ino)
		case rc.From < uint64(len(d)):
			m.data[rc.Ino] = d[:rc.From]
		}
		m.ns.ApplyCommand(namespace.Reclaimed{ID: rc.ID})
	}
	return res
}

func (m *memBackend) ReadDirPage(_ context.Context, dir namespace.Ino, cookie string, limit int) ([]namespace.DirEntry, string, error) {
	return m.ns.ReadDir(dir, cookie, limit)
}

func (m *memBackend) Readlink(_ context.Context, ino namespace.Ino) (string, error) {
	return m.ns.Readlink(ino)
}

func (m *memBackend) GetXattr(_ context.Context, ino namespace.Ino, name string) ([]byte, error) {
	return m.ns.GetXattr(ino, name)
}

func (m *memBackend) ListXattr(_ context.Context, ino namespace.Ino) ([]string, error) {
	return m.ns.ListXattr(ino)
}

func (m *memBackend) StatFS(context.Context) (usage, error) {
	return usage{StatFS: m.ns.StatFS(), FreeBytes: 1 << 40}, nil
}

func (m *memBackend) OpenIno(_ context.Context, ino namespace.Ino, writable bool) (handle, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, err := m.ns.GetAttr(ino)
	if err != nil {
		return nil, err
	}
	if a.Type != namespace.TypeFile {
		return nil, syscall.EISDIR
	}
	if res := m.applyLocked(namespace.Open{Ino: ino}); res.Err != nil {
		return nil, res.Err
	}
	return m.handleLocked(a, writable), nil
}

// handleLocked makes the handle of an open the namespace counted.
func (m *memBackend) handleLocked(a namespace.Attr, writable bool) *memHandle {
	ino := a.Ino
	in := m.inodes[ino]
	if in == nil {
		in = &memInode{}
		m.inodes[ino] = in
	}
	in.refs++
	if !in.dirty {
		in.size = int64(a.Size)
	}
	return &memHandle{m: m, ino: ino, in: in, writable: writable}
}

func (m *memBackend) CreateOpen(_ context.Context, c namespace.Create, writable bool) (namespace.Result, handle, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c.Open = true
	res := m.applyLocked(c)
	if res.Err != nil || !res.Opened {
		return res, nil, res.Err
	}
	return res, m.handleLocked(res.Attr, writable), nil
}

type memHandle struct {
	m        *memBackend
	ino      namespace.Ino
	in       *memInode
	writable bool
	released bool
}

func (h *memHandle) Size() int64 {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	return h.in.size
}

func (h *memHandle) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.released {
		return 0, syscall.EBADF
	}
	size := h.in.size
	if off >= size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), size-off))
	d := h.m.data[h.ino]
	clear(p[:n])
	if off < int64(len(d)) {
		copy(p[:n], d[off:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (h *memHandle) WriteAt(_ context.Context, p []byte, off int64) (int, error) {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.released || !h.writable {
		return 0, syscall.EBADF
	}
	d := h.m.data[h.ino]
	if end := off + int64(len(p)); end > int64(len(d)) {
		d = append(d, make([]byte, end-int64(len(d)))...)
	}
	copy(d[off:], p)
	h.m.data[h.ino] = d
	h.in.size = max(h.in.size, off+int64(len(p)))
	h.in.dirty = true
	return len(p), nil
}

func (h *memHandle) SetSize(_ context.Context, size int64) (namespace.Attr, error) {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.released || !h.writable {
		return namespace.Attr{}, syscall.EBADF
	}
	res := h.m.applyLocked(namespace.SetAttr{Ino: h.ino, Mask: namespace.SetSize, Size: uint64(size)})
	if res.Err != nil {
		return namespace.Attr{}, res.Err
	}
	if d := h.m.data[h.ino]; int64(len(d)) > size {
		h.m.data[h.ino] = d[:size]
	}
	h.in.size, h.in.dirty = size, false
	return res.Attr, nil
}

func (h *memHandle) Flush(context.Context) error {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	return h.flushLocked()
}

func (h *memHandle) flushLocked() error {
	if !h.in.dirty {
		return nil
	}
	res := h.m.applyLocked(namespace.Extend{Ino: h.ino, Size: uint64(h.in.size)})
	if res.Err != nil {
		return res.Err
	}
	h.in.dirty = false
	return nil
}

func (h *memHandle) Sync(ctx context.Context) error     { return h.Flush(ctx) }
func (h *memHandle) DataSync(ctx context.Context) error { return h.Flush(ctx) }

func (h *memHandle) Release(context.Context) error {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.released {
		return syscall.EBADF
	}
	err := h.flushLocked()
	h.released = true
	if h.in.refs--; h.in.refs == 0 {
		delete(h.m.inodes, h.ino)
	}
	if res := h.m.applyLocked(namespace.Close{Ino: h.ino}); res.Err != nil && err == nil {
		err = res.Err
	}
	return err
}
