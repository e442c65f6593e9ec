package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/manager"
	"github.com/weftfs/weft/fsproto/meta"
	"github.com/weftfs/weft/fsproto/namespace"
	"github.com/weftfs/weft/net"
)

// Key is an access key: its id and its secret.
type Key struct {
	ID     string
	Secret []byte
}

// ParseKey reads a key in the form "ID:SECRETHEX" (what `weft key create`
// and `weft up` print). The id may itself hold colons: the secret is what
// follows the last one.
func ParseKey(s string) (Key, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Key{}, fmt.Errorf("client: key %q: want ID:SECRETHEX", elide(s))
	}
	id, hx := s[:i], s[i+1:]
	var errs []error
	if id == "" || len(id) > 255 {
		errs = append(errs, fmt.Errorf("client: key id of %d bytes, want 1..255", len(id)))
	}
	secret, err := hex.DecodeString(hx)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("client: key %q: secret is not hex: %w", id, err))
	case len(secret) == 0:
		errs = append(errs, fmt.Errorf("client: key %q: empty secret", id))
	}
	if len(errs) > 0 {
		return Key{}, errors.Join(errs...)
	}
	return Key{ID: id, Secret: secret}, nil
}

// elide keeps a malformed key's secret out of error messages.
func elide(s string) string {
	if len(s) > 8 {
		return s[:8] + "…"
	}
	return s
}

// String returns "ID:…": the secret never reaches logs.
func (k Key) String() string { return k.ID + ":…" }

// Option tunes DialCluster and OpenContainer. Options given to
// DialCluster are the defaults of every FS its Client opens;
// OpenContainer's own options override them.
type Option func(*options)

type options struct {
	logger *slog.Logger
	// Credentials the path API checks mode bits against.
	uid, gid uint32
	groups   []uint32
	readOnly bool
	// flushEvery bounds how long a write's size growth and mtime stay
	// uncommitted; pendingMax bounds a handle's uncommitted bytes.
	flushEvery time.Duration
	pendingMax int64
	// parallel bounds the chunk requests one read or write has in flight.
	parallel int
	// opTimeout bounds each call of the path API (it has no ctx).
	opTimeout time.Duration
	// closeDelay is how long a released handle's Close waits for an op
	// to carry it before it is sent alone.
	closeDelay time.Duration
	// dirCache is how long the path API remembers the directories it
	// walked through (0: not at all).
	dirCache time.Duration
	// writeBehind bounds the bytes WriteAt leaves in flight when it
	// returns before its data is durable (0: it waits; the default).
	writeBehind int64
}

func defaultOptions() options {
	return options{
		logger:     slog.Default(),
		uid:        uint32(os.Getuid()),
		gid:        uint32(os.Getgid()),
		groups:     processGroups(),
		flushEvery: time.Second,
		pendingMax: 64 << 20,
		parallel:   16,
		opTimeout:  time.Minute,
		closeDelay: 2 * time.Millisecond,
		dirCache:   time.Second,
	}
}

func processGroups() []uint32 {
	gs, err := os.Getgroups()
	if err != nil {
		return nil
	}
	out := make([]uint32, len(gs))
	for i, g := range gs {
		out[i] = uint32(g)
	}
	return out
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithCredentials sets the user, group and supplementary groups the path
// API checks permissions for and stamps on what it creates (default: the
// process's). uid 0 bypasses the checks, as root does on Linux.
func WithCredentials(uid, gid uint32, groups ...uint32) Option {
	return func(o *options) { o.uid, o.gid, o.groups = uid, gid, groups }
}

// WithReadOnly makes the FS refuse every change with EROFS without asking
// the cluster (a read-only key gets the same from the cluster).
func WithReadOnly() Option { return func(o *options) { o.readOnly = true } }

// WithFlushInterval bounds how long the FS keeps a written file's size
// growth and mtime uncommitted (default 1 s; see the package doc).
func WithFlushInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.flushEvery = d
		}
	}
}

// WithParallelism bounds the chunk requests one read or write keeps in
// flight (default 16).
func WithParallelism(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.parallel = n
		}
	}
}

// WithOpTimeout bounds each call of the path API, which takes no context
// (default 1 minute).
func WithOpTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.opTimeout = d
		}
	}
}

// WithCloseDelay sets how long the Close of a released handle waits for
// the FS's next metadata op to carry it (one Raft commit for both)
// before it is sent on its own (default 2 ms: long enough for the next
// create of a create-close loop, short enough that an unlinked file's
// data goes promptly after its last close).
func WithCloseDelay(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.closeDelay = d
		}
	}
}

// WithDirCache sets how long the path API remembers the directories a
// path went through (default 1 s, as the FUSE mount's entry cache; 0 turns
// it off): with it, an op on dir/name costs one metadata round trip, not
// one per component. The price: a directory another client renamed,
// removed or chmodded may be walked through as it was for up to d (this
// FS's own changes show at once). See the package doc, "Consistency".
func WithDirCache(d time.Duration) Option {
	return func(o *options) {
		if d >= 0 {
			o.dirCache = d
		}
	}
}

// WithWriteBehind makes WriteAt return once its bytes are copied and
// their chunk writes started, with up to maxBytes (and 64 writes) in
// flight per FS; Flush, Sync and Release (File.Close, File.Sync) wait for
// them and report a failed one, as Linux reports writeback errors. Reads
// and later overlapping writes through the FS wait for the writes they
// overlap. 0, the default, turns it off: WriteAt returns once its bytes
// are durable on every replica. The FUSE mount turns it on (POSIX asks
// for durability at fsync, not at write). See the package doc.
func WithWriteBehind(maxBytes int64) Option {
	return func(o *options) {
		if maxBytes >= 0 {
			o.writeBehind = maxBytes
		}
	}
}

// DialCluster connects to the cluster clusterID through its managers
// (any node of a `weft up` cluster serves as one) with key, which reads
// the cluster map and reaches the nodes; OpenContainer may use another
// key. Close the Client when done (it closes the connections it made).
func DialCluster(ctx context.Context, clusterID string, managers []string, key Key, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, f := range opts {
		f(&o)
	}
	if len(managers) == 0 {
		return nil, errors.New("client: no manager addresses")
	}
	pool, err := net.NewPool(net.PoolConfig{Client: net.ClientConfig{
		ClusterID: clusterID, KeyID: key.ID, Secret: key.Secret, Logger: o.logger}})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c, err := Dial(ctx, Config{Maps: manager.NewClient(managers, pool), Pool: pool,
		ClusterID: clusterID, KeyID: key.ID, Secret: key.Secret, Logger: o.logger})
	if err != nil {
		pool.Close()
		return nil, err
	}
	c.ownPool = true
	c.opts = opts
	return c, nil
}

// FS is one data container's file system, reached with one key: the
// path API (io/fs and *os.File-like), and the inode API the FUSE mount
// uses. It implements fs.FS, fs.StatFS, fs.ReadDirFS, fs.ReadFileFS and
// fs.ReadLinkFS. Safe for concurrent use.
type FS struct {
	name string
	id   clustermap.ContainerID
	pool *net.Pool
	data *Container // chunks, over pool
	dc   *Client    // data's client, over pool
	meta *meta.Client
	// chunk is the container's chunk size C: file bytes [k*C, (k+1)*C)
	// are chunk k.
	chunk int64
	o     options
	log   *slog.Logger
	// dirs caches the path API's directory lookups (WithDirCache).
	dirs *dirCache

	// life ends at Close: the flusher and its requests stop.
	life context.Context
	kill context.CancelFunc
	done chan struct{} // closed when the flusher ended
	wake chan struct{} // (capacity 1) reclaim entries are queued
	// closeWake (capacity 1) tells the closer that closes are pending;
	// closerDone is closed when the closer ended.
	closeWake  chan struct{}
	closerDone chan struct{}

	// sizeChanges counts the starts and ends of this FS's size changes
	// (see learnLocked).
	sizeChanges atomic.Uint64

	// wb bounds the writes in flight behind WriteAt (WithWriteBehind;
	// nil when it is off).
	wb *budget
	// writeData writes file bytes to their chunks (writeChunks; tests
	// replace it to make writes fail).
	writeData func(ctx context.Context, ct *Container, chunk int64, par int, ino namespace.Ino, p []byte, off int64) error

	mu struct {
		sync.Mutex
		inodes map[namespace.Ino]*inode // inodes with open handles
		closed bool
		// roKey is set once the cluster refused a change for the key.
		roKey bool
		// quota is set while the namespace has a byte quota (refreshed
		// by the flusher): growth is then committed before the data is
		// written (see the package doc).
		quota bool
		// reclaim queues the Reclaim entries of this FS's removals for
		// the flusher to delete (at most reclaimQueueMax; the leader's
		// reclaimer gets the rest).
		reclaim []namespace.Reclaim
		// closes are the inodes whose Close released handles owe the
		// namespace, oldest first: the next op carries them (see
		// takeCloses), else the closer sends them.
		closes []namespace.Ino
		// closesShut is set once Close sent the last closes: a Release
		// after that cannot queue one.
		closesShut bool
	}
}

// OpenContainer opens the file system of the container named name with
// key: every connection the FS makes authenticates with it (its own
// net.Pool). It reads the root's attributes, so a wrong key or a
// container the key may not reach fails here. A read-only key gives an
// FS whose changes fail with EROFS.
func (c *Client) OpenContainer(ctx context.Context, name string, key Key, opts ...Option) (*FS, error) {
	o := defaultOptions()
	for _, f := range c.opts {
		f(&o)
	}
	for _, f := range opts {
		f(&o)
	}
	if c.cfg.ClusterID == "" {
		return nil, errors.New("client: OpenContainer needs the cluster id (Config.ClusterID)")
	}
	pool, err := net.NewPool(net.PoolConfig{Client: net.ClientConfig{
		ClusterID: c.cfg.ClusterID, KeyID: key.ID, Secret: key.Secret, Logger: o.logger}})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	dc, err := Dial(ctx, Config{Maps: c.cfg.Maps, Pool: pool, ClusterID: c.cfg.ClusterID,
		RefreshWait: c.cfg.RefreshWait, AttemptTimeout: c.cfg.AttemptTimeout,
		BackoffMin: c.cfg.BackoffMin, BackoffMax: c.cfg.BackoffMax, Logger: o.logger})
	if err != nil {
		pool.Close()
		return nil, err
	}
	ct, err := dc.Container(name)
	if err != nil {
		pool.Close()
		return nil, err
	}
	f := &FS{name: name, id: ct.id, pool: pool, data: ct, dc: dc,
		meta: meta.NewClient(ct.id, c.cfg.Maps, pool), chunk: ct.ChunkSize(), o: o, dirs: newDirCache(o.dirCache),
		log: o.logger.With("container", name), done: make(chan struct{}),
		wake: make(chan struct{}, 1), closeWake: make(chan struct{}, 1), closerDone: make(chan struct{}),
		writeData: writeChunks}
	if o.writeBehind > 0 {
		f.wb = newBudget(o.writeBehind)
	}
	f.mu.inodes = make(map[namespace.Ino]*inode)
	st, err := f.meta.StatFS(ctx)
	if err == nil {
		_, err = f.meta.GetAttr(ctx, namespace.RootIno)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("client: open container %q with key %s: %w", name, key, errnoWrap(err))
	}
	f.mu.quota = st.QuotaBytes != 0
	f.life, f.kill = context.WithCancel(context.Background())
	go f.flusher()
	go f.closer()
	return f, nil
}

// Name returns the container's name.
func (f *FS) Name() string { return f.name }

// ChunkSize returns the container's chunk size in bytes.
func (f *FS) ChunkSize() int64 { return f.chunk }

// Data returns the FS's chunk client (tests, tools: it reaches the
// container's chunks with the FS's key).
func (f *FS) Data() *Container { return f.data }

// Close flushes every open file's pending size and mtime, sends the
// Closes of released handles that no op carried yet, deletes the chunks
// of the files this FS removed or closed last whose deletion is still
// queued (within the op timeout; what is left goes to the leader's
// reclaimer), ends the background work and closes the FS's connections.
// Handles still open are not released (their opens stay counted until
// the servers expire them); close them first. Close returns the first
// flush error.
func (f *FS) Close() error {
	f.mu.Lock()
	if f.mu.closed {
		f.mu.Unlock()
		return nil
	}
	f.mu.closed = true
	f.mu.Unlock()
	if f.wb != nil {
		// The writes behind WriteAt land (or fail) before the flush
		// below commits their sizes.
		f.wb.idle()
	}
	f.kill()
	<-f.done
	<-f.closerDone
	ctx, cancel := context.WithTimeout(context.Background(), f.o.opTimeout)
	defer cancel()
	err := f.flushAll(ctx, 0)
	f.sendCloses(ctx, true)
	f.reclaimQueued(ctx)
	f.pool.Close()
	return err
}

func (f *FS) closed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mu.closed
}

// readOnly reports whether changes are refused here (WithReadOnly, or the
// cluster refused this key before).
func (f *FS) readOnly() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.o.readOnly || f.mu.roKey
}

// Lookup returns the attributes of parent/name, with this FS's pending
// size for a file it has open with unflushed writes.
func (f *FS) Lookup(ctx context.Context, parent namespace.Ino, name string) (namespace.Attr, error) {
	seen := f.sizeChanges.Load()
	a, err := f.meta.Lookup(ctx, parent, name)
	if err != nil {
		return namespace.Attr{}, errnoWrap(err)
	}
	return f.overlay(a, seen), nil
}

// GetAttr returns ino's attributes, with this FS's pending size for a
// file it has open with unflushed writes.
func (f *FS) GetAttr(ctx context.Context, ino namespace.Ino) (namespace.Attr, error) {
	seen := f.sizeChanges.Load()
	a, err := f.meta.GetAttr(ctx, ino)
	if err != nil {
		return namespace.Attr{}, errnoWrap(err)
	}
	return f.overlay(a, seen), nil
}

// Apply proposes any metadata command except a SetAttr that changes the
// size (use Handle.SetSize, which deletes the dropped bytes), Extend,
// Open and Close (the handles count those), and returns the namespace's
// Result; Result.Err is set, and returned, when the namespace refused it.
// Chunks of the files the command removed are deleted by the reclaimer
// on the metadata leader.
func (f *FS) Apply(ctx context.Context, cmd namespace.Command) (namespace.Result, error) {
	switch c := cmd.(type) {
	case namespace.SetAttr:
		if c.Mask&namespace.SetSize != 0 {
			return namespace.Result{}, fmt.Errorf("client: Apply of a size change: use Handle.SetSize: %w", syscall.EINVAL)
		}
	case namespace.Extend, namespace.Open, namespace.Close:
		return namespace.Result{}, fmt.Errorf("client: Apply of %T: the handles propose it: %w", cmd, syscall.EINVAL)
	case namespace.Create:
		if c.Open {
			return namespace.Result{}, fmt.Errorf("client: Apply of a Create with Open: use CreateIno, whose handle closes it: %w", syscall.EINVAL)
		}
	}
	return f.apply(ctx, cmd)
}

// apply proposes cmd, refusing locally when the FS is read-only, and
// remembers a read-only refusal from the cluster.
func (f *FS) apply(ctx context.Context, cmd namespace.Command) (namespace.Result, error) {
	switch cmd.(type) {
	case namespace.Open, namespace.Close:
	default:
		if f.readOnly() {
			return namespace.Result{}, fmt.Errorf("client: %T: read-only: %w", cmd, syscall.EROFS)
		}
	}
	seen := f.sizeChanges.Load()
	var closes []namespace.Ino
	switch cmd.(type) {
	case namespace.Close:
	case namespace.SetXattr:
		// Its value may fill the request header (net.MaxHeaderBytes)
		// alone: closes added could make a request that fit too large.
	default:
		if ctx.Err() == nil {
			// Pending closes ride along (one commit for all). An ended
			// ctx sends nothing: they wait for another op.
			closes = f.takeCloses()
		}
	}
	sent := cmd
	if len(closes) > 0 {
		sent = namespace.WithCloses{Closes: closes, Cmd: cmd}
	}
	res, err := f.meta.Apply(ctx, sent)
	// Whether it applied or not (an ambiguous failure may have), what it
	// may have changed is looked up again.
	f.dirs.forgetFor(sent)
	if errors.Is(err, meta.ErrReadOnly) {
		f.mu.Lock()
		f.mu.roKey = true
		f.mu.Unlock()
	}
	if len(closes) > 0 {
		res.Reclaim = f.closesSent(closes, res, err)
	}
	if err != nil {
		return res, errnoWrap(err)
	}
	if ino := res.Attr.Ino; ino != 0 {
		res.Attr = f.overlay(res.Attr, seen)
	}
	switch c := cmd.(type) {
	case namespace.SetQuota:
		f.mu.Lock()
		f.mu.quota = c.Bytes != 0
		f.mu.Unlock()
	case namespace.Unlink, namespace.Rename, namespace.Rmdir:
		f.queueReclaim(res.Reclaim)
	}
	return res, nil
}

// reclaimQueueMax bounds the FS's queue of reclaim entries.
const reclaimQueueMax = 4096

// queueReclaim hands the entries a removal queued to the flusher, which
// deletes their chunks soon; entries past the queue's bound are left to
// the metadata leader's reclaimer.
func (f *FS) queueReclaim(rs []namespace.Reclaim) {
	if len(rs) == 0 {
		return
	}
	f.mu.Lock()
	n := min(len(rs), reclaimQueueMax-len(f.mu.reclaim))
	f.mu.reclaim = append(f.mu.reclaim, rs[:max(n, 0)]...)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// ReadDirPage returns up to limit (1..4096) entries of dir after cookie,
// in name order, and the cookie of the next page ("" after the last).
func (f *FS) ReadDirPage(ctx context.Context, dir namespace.Ino, cookie string, limit int) ([]namespace.DirEntry, string, error) {
	ents, next, err := f.meta.ReadDir(ctx, dir, cookie, limit)
	return ents, next, errnoWrap(err)
}

// ReadlinkIno returns a symlink's target. (Readlink is the path API's.)
func (f *FS) ReadlinkIno(ctx context.Context, ino namespace.Ino) (string, error) {
	s, err := f.meta.Readlink(ctx, ino)
	return s, errnoWrap(err)
}

// GetXattr returns an extended attribute's value (ENODATA when unset).
func (f *FS) GetXattr(ctx context.Context, ino namespace.Ino, name string) ([]byte, error) {
	v, err := f.meta.GetXattr(ctx, ino, name)
	return v, errnoWrap(err)
}

// ListXattr returns an inode's extended attribute names, sorted.
func (f *FS) ListXattr(ctx context.Context, ino namespace.Ino) ([]string, error) {
	v, err := f.meta.ListXattr(ctx, ino)
	return v, errnoWrap(err)
}

// StatFS returns the container's usage and quota. (Usage is the same
// without a context.)
func (f *FS) StatFS(ctx context.Context) (namespace.StatFS, error) {
	st, err := f.meta.StatFS(ctx)
	if err == nil {
		f.mu.Lock()
		f.mu.quota = st.QuotaBytes != 0
		f.mu.Unlock()
	}
	return st, errnoWrap(err)
}

// Errno returns the errno err carries, for a FUSE reply: 0 for nil, the
// errno inside (a namespace refusal, the file client's own), EROFS for a
// read-only key, ENOSPC for a full device, EACCES for a key the cluster
// refused or that does not reach the container, EINTR or ETIMEDOUT for an ended context, EIO for the rest.
func Errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) && e != 0 {
		return e
	}
	var re *net.RemoteError
	if errors.As(err, &re) {
		switch re.Code {
		case net.CodeAuthFailed, net.CodeClusterMismatch, fsproto.CodeAccessDenied: // meta.CodeAccessDenied is the same number
			return syscall.EACCES
		}
	}
	switch {
	case errors.Is(err, meta.ErrReadOnly), errors.Is(err, fsproto.ErrReadOnly):
		return syscall.EROFS
	case errors.Is(err, fsproto.ErrAccessDenied):
		return syscall.EACCES
	case errors.Is(err, fsproto.ErrNoSpace):
		return syscall.ENOSPC
	case errors.Is(err, ErrNoContainer), errors.Is(err, clustermap.ErrNotFound):
		return syscall.ENOENT
	case errors.Is(err, ErrClosed), errors.Is(err, net.ErrPoolClosed), errors.Is(err, fs.ErrClosed):
		return syscall.EBADF
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case errors.Is(err, context.DeadlineExceeded):
		return syscall.ETIMEDOUT
	}
	return syscall.EIO
}

// errnoError is an error with its errno attached, so errors.Is(err,
// syscall.EXXX) and errors.Is(err, fs.ErrNotExist) work on every error
// this package returns from the file API, while the cause stays in the
// chain and the message.
type errnoError struct {
	errno syscall.Errno
	err   error
}

func (e *errnoError) Error() string { return e.err.Error() }

// Unwrap returns the errno and the cause.
func (e *errnoError) Unwrap() []error { return []error{e.errno, e.err} }

// errnoWrap attaches Errno(err) to err when err does not carry one yet.
func errnoWrap(err error) error {
	if err == nil {
		return nil
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return err
	}
	return &errnoError{errno: Errno(err), err: err}
}
