package mount

import (
	"context"
	"errors"
	"io"

	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/namespace"
)

// Start mounts the container fsys at dir (an existing, empty directory
// that is not a mount point) and serves it until Unmount, or until the
// mount is unmounted from outside (Done). c, if not nil, is the client
// fsys came from: statfs then reports the cluster's capacity (the sum of
// the capacities of the nodes that are not Out, divided by the
// container's replication) as the size of a container without a byte
// quota. The caller closes fsys (and c) after Done.
func Start(c *client.Client, fsys *client.FS, dir string, o Options) (*Mount, error) {
	b := &clientBackend{fs: fsys, c: c}
	return start(b, dir, o)
}

// clientBackend adapts client.FS to backend. Errors become the errno
// client.Errno gives them (the FUSE reply carries nothing else).
type clientBackend struct {
	fs *client.FS
	c  *client.Client
}

func cerr(err error) error {
	if err == nil {
		return nil
	}
	return client.Errno(err)
}

func (b *clientBackend) Lookup(ctx context.Context, parent namespace.Ino, name string) (namespace.Attr, error) {
	a, err := b.fs.Lookup(ctx, parent, name)
	return a, cerr(err)
}

func (b *clientBackend) GetAttr(ctx context.Context, ino namespace.Ino) (namespace.Attr, error) {
	a, err := b.fs.GetAttr(ctx, ino)
	return a, cerr(err)
}

func (b *clientBackend) Apply(ctx context.Context, cmd namespace.Command) (namespace.Result, error) {
	res, err := b.fs.Apply(ctx, cmd)
	if err == nil && res.Err != nil {
		err = res.Err
	}
	return res, cerr(err)
}

func (b *clientBackend) ReadDirPage(ctx context.Context, dir namespace.Ino, cookie string, limit int) ([]namespace.DirEntry, string, error) {
	ents, next, err := b.fs.ReadDirPage(ctx, dir, cookie, limit)
	return ents, next, cerr(err)
}

func (b *clientBackend) Readlink(ctx context.Context, ino namespace.Ino) (string, error) {
	t, err := b.fs.ReadlinkIno(ctx, ino)
	return t, cerr(err)
}

func (b *clientBackend) GetXattr(ctx context.Context, ino namespace.Ino, name string) ([]byte, error) {
	v, err := b.fs.GetXattr(ctx, ino, name)
	return v, cerr(err)
}

func (b *clientBackend) ListXattr(ctx context.Context, ino namespace.Ino) ([]string, error) {
	names, err := b.fs.ListXattr(ctx, ino)
	return names, cerr(err)
}

func (b *clientBackend) StatFS(ctx context.Context) (usage, error) {
	st, err := b.fs.StatFS(ctx)
	if err != nil {
		return usage{}, cerr(err)
	}
	u := usage{StatFS: st}
	if b.c != nil {
		if capacity := capacityOf(b.c.Map(), b.fs.Name()); capacity > st.Bytes {
			u.FreeBytes = capacity - st.Bytes
		}
	}
	return u, nil
}

// capacityOf estimates what container name may hold: the capacity of the
// nodes not Out, over its replication. Other containers' data and the
// engines' overheads are not subtracted (the map does not know them).
func capacityOf(m *clustermap.Map, name string) uint64 {
	if m == nil {
		return 0
	}
	replicas := uint64(1)
	for _, ct := range m.Containers {
		if ct.Name == name && ct.Policy.Replicas > 0 {
			replicas = uint64(ct.Policy.Replicas)
		}
	}
	var total uint64
	for _, n := range m.Nodes {
		if n.State != clustermap.Out {
			total += n.Capacity
		}
	}
	return total / replicas
}

func (b *clientBackend) OpenIno(ctx context.Context, ino namespace.Ino, writable bool) (handle, error) {
	h, err := b.fs.OpenIno(ctx, ino, writable)
	if err != nil {
		return nil, cerr(err)
	}
	return clientHandle{h}, nil
}

func (b *clientBackend) CreateOpen(ctx context.Context, c namespace.Create, writable bool) (namespace.Result, handle, error) {
	res, h, err := b.fs.CreateIno(ctx, c, writable)
	if err != nil {
		return res, nil, cerr(err)
	}
	if h == nil {
		return res, nil, nil
	}
	return res, clientHandle{h}, nil
}

// clientHandle maps a client.Handle's errors to errnos, but io.EOF,
// which ReadAt returns at the end of the file.
type clientHandle struct{ h *client.Handle }

func (h clientHandle) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	n, err := h.h.ReadAt(ctx, p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		err = cerr(err)
	}
	return n, err
}

func (h clientHandle) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	n, err := h.h.WriteAt(ctx, p, off)
	return n, cerr(err)
}

func (h clientHandle) SetSize(ctx context.Context, size int64) (namespace.Attr, error) {
	a, err := h.h.SetSize(ctx, size)
	return a, cerr(err)
}

func (h clientHandle) Flush(ctx context.Context) error    { return cerr(h.h.Flush(ctx)) }
func (h clientHandle) Sync(ctx context.Context) error     { return cerr(h.h.Sync(ctx)) }
func (h clientHandle) DataSync(ctx context.Context) error { return cerr(h.h.DataSync(ctx)) }
func (h clientHandle) Release(ctx context.Context) error  { return cerr(h.h.Release(ctx)) }
func (h clientHandle) Size() int64                        { return h.h.Size() }
