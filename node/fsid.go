package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/internal/vfs"
)

// ErrForeignMap marks a cluster map that this node refuses: its FSID is
// not the one of the map the node joined (clustermap.Map.FSID), or it has
// none while the node has recorded one.
var ErrForeignMap = errors.New("node: the cluster map is not the one this node joined")

// fsidFileName is the file, in the node's metadata folder (Config.MetaDir),
// that records the FSID of the map the node joined:
//
//	weft cluster map fsid 0123abcd-...\n
const fsidFileName = "cluster-fsid"

const fsidFilePrefix = "weft cluster map fsid "

// MapCopyFileName is the file, in the node's metadata folder, that holds a
// copy of the newest cluster map the node accepted (one with an FSID), in
// the map's binary encoding (clustermap.DecodeMap reads it). The node
// writes it within a second of each newer map, and at stop. It is what
// `weft node recover-manager --from-map` starts the managers' group
// again from when every manager lost its raft log.
const MapCopyFileName = "cluster-map"

// mapCopyBytesMax bounds the map copy the node reads back at start.
const mapCopyBytesMax = 256 << 20

// mapSource is where a node gets the cluster map (the manager client).
type mapSource interface {
	Map(ctx context.Context, after uint64) (*clustermap.Map, error)
}

// fsidDevice is where the node's data lives (its engine): the guard
// records the FSID in the device's superblock too, so that the record
// survives the loss of the metadata folder (the device is what holds the
// data the FSID speaks for, and the node's identity).
type fsidDevice interface {
	Superblock() engine.Superblock
	SetClusterFSID(id [16]byte) error
}

// fsidGuard hands out the maps of src that belong to the history this
// node joined, recording that history's FSID durably with the first map
// that has one, in two places: the device's superblock and a file in the
// metadata folder. Either record is enough; when one is missing at start
// the guard writes it again from the other, and when they differ the
// node does not start. Every map the node acts on (its data server's, its
// metadata host's, its key and reclaim loops') and its join go through
// it, so a node whose managers started an empty map afresh (every manager
// raft log lost), or that is pointed at another cluster's managers, neither
// joins that map nor serves or deletes its data under that map's
// containers: it says so in its log until an operator acts.
//
// The rule, for the recorded FSID r and a map's FSID f:
//   - r and f zero (a map from before FSIDs, or a new map before its
//     leader set one, on a node that recorded none): the map is used;
//   - r zero, f set: f is recorded (synced) before the map is used;
//   - r set, f == r: used; r set, f zero or another: refused
//     (ErrForeignMap).
type fsidGuard struct {
	src  mapSource
	fsys vfs.FS
	dir  string
	dev  fsidDevice // nil: the file only (tests)
	log  *slog.Logger

	mu     sync.Mutex
	fsid   clustermap.FSID // recorded; zero: none yet
	warned map[clustermap.FSID]time.Time

	// latest is the newest map accepted that has an FSID; copied is the
	// epoch of the map copy written last by this process, and onDisk
	// that of the copy found at open (for the status until the first
	// write: the first map accepted is always written, so that the copy
	// follows the history the node serves).
	latest atomic.Pointer[clustermap.Map]
	copied atomic.Uint64
	onDisk uint64
}

// CopyEpoch returns the epoch of the node's map copy (0: none).
func (g *fsidGuard) CopyEpoch() uint64 {
	if e := g.copied.Load(); e != 0 {
		return e
	}
	return g.onDisk
}

// fsidWarnEvery is how often a refusal of the same map is logged.
const fsidWarnEvery = time.Minute

// openFSIDGuard reads the FSID recorded in dir (none when the file is
// missing) and in dev's superblock (dev may be nil). A file that is there
// but not in the format above is an error, and so are two records that
// differ: the node does not start on either. A record missing in one
// place is written again from the other.
func openFSIDGuard(fsys vfs.FS, dir string, dev fsidDevice, src mapSource, log *slog.Logger) (*fsidGuard, error) {
	g := &fsidGuard{src: src, fsys: fsys, dir: dir, dev: dev, log: log, warned: map[clustermap.FSID]time.Time{}}
	p := path.Join(dir, fsidFileName)
	inFile, err := readFSIDFile(fsys, p)
	if err != nil {
		return nil, fmt.Errorf("node: %s: %w", p, err)
	}
	if b, err := readSmallFile(fsys, path.Join(dir, MapCopyFileName), mapCopyBytesMax); err != nil || len(b) > 0 {
		if err == nil {
			var m *clustermap.Map
			if m, err = clustermap.DecodeMap(b); err == nil {
				g.onDisk = m.Epoch
			}
		}
		if err != nil {
			log.Warn("node: the copy of the cluster map is unreadable; the next map replaces it", "file", path.Join(dir, MapCopyFileName), "err", err)
		}
	}
	var onDev clustermap.FSID
	if dev != nil {
		onDev = clustermap.FSID(dev.Superblock().ClusterFSID)
	}
	switch {
	case !inFile.IsZero() && !onDev.IsZero() && inFile != onDev:
		return nil, fmt.Errorf("%w: the device's superblock records the cluster map FSID %v and %s records %v: "+
			"the device or the metadata folder was taken from another cluster's node; put back the matching one "+
			"(or, to give this node's data up, delete that file and format the device)", ErrForeignMap, onDev, p, inFile)
	case inFile.IsZero() && onDev.IsZero():
		return g, nil
	case inFile.IsZero():
		if err := g.writeFile(onDev); err != nil {
			return nil, fmt.Errorf("node: restoring %s from the device's record of the FSID %v: %w", p, onDev, err)
		}
		log.Warn("node: the metadata folder had no record of the cluster map's FSID; restored it from the device's superblock",
			"fsid", onDev.String(), "file", p)
		g.fsid = onDev
	case onDev.IsZero() && dev != nil:
		if err := dev.SetClusterFSID(inFile); err != nil {
			return nil, fmt.Errorf("node: recording the FSID %v of %s in the device's superblock: %w", inFile, p, err)
		}
		log.Info("node: recorded the cluster map's FSID in the device's superblock too", "fsid", inFile.String(), "file", p)
		g.fsid = inFile
	default:
		g.fsid = inFile
	}
	return g, nil
}

// readSmallFile reads the whole file at p (nil when there is none), of
// at most limit bytes.
func readSmallFile(fsys vfs.FS, p string, limit int64) ([]byte, error) {
	f, err := fsys.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	if size > limit {
		return nil, fmt.Errorf("%d bytes, more than the %d such a file holds", size, limit)
	}
	b := make([]byte, size)
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:n], nil
}

// readFSIDFile reads the FSID file at p: zero when there is none.
func readFSIDFile(fsys vfs.FS, p string) (clustermap.FSID, error) {
	b, err := readSmallFile(fsys, p, 128)
	if err != nil || b == nil {
		return clustermap.FSID{}, err
	}
	return parseFSIDFile(b)
}

// parseFSIDFile decodes the FSID file's content.
func parseFSIDFile(b []byte) (clustermap.FSID, error) {
	var id clustermap.FSID
	s, ok := strings.CutPrefix(string(b), fsidFilePrefix)
	s, nl := strings.CutSuffix(s, "\n")
	if !ok || !nl {
		return id, fmt.Errorf("not a cluster map FSID record (want %q, an FSID and a newline)", fsidFilePrefix)
	}
	h, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err == nil && len(h) == len(id) {
		copy(id[:], h)
	}
	if err != nil || len(h) != len(id) || !strings.EqualFold(s, id.String()) {
		return clustermap.FSID{}, fmt.Errorf("FSID %q: want 32 hex digits in groups of 8-4-4-4-12", s)
	}
	if id.IsZero() {
		return id, errors.New("FSID is zero")
	}
	return id, nil
}

// FSID returns the FSID recorded (zero: none yet).
func (g *fsidGuard) FSID() clustermap.FSID {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.fsid
}

// Map is src's Map, refusing maps of another history (ErrForeignMap).
func (g *fsidGuard) Map(ctx context.Context, after uint64) (*clustermap.Map, error) {
	m, err := g.src.Map(ctx, after)
	if err != nil {
		return nil, err
	}
	if err := g.check(m); err != nil {
		return nil, err
	}
	for !m.FSID.IsZero() {
		cur := g.latest.Load()
		if cur != nil && cur.Epoch >= m.Epoch || g.latest.CompareAndSwap(cur, m) {
			break
		}
	}
	return m, nil
}

// saveMapCopy writes the newest accepted map to MapCopyFileName when it
// is newer than the copy written last. Only one goroutine calls it.
func (g *fsidGuard) saveMapCopy() error {
	m := g.latest.Load()
	if m == nil || m.Epoch <= g.copied.Load() {
		return nil
	}
	enc, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	if err := g.writeAtomic(MapCopyFileName, enc); err != nil {
		return fmt.Errorf("node: writing the copy of the cluster map (epoch %d) to %s: %w", m.Epoch, path.Join(g.dir, MapCopyFileName), err)
	}
	g.copied.Store(m.Epoch)
	return nil
}

// check applies the rule to map m, recording its FSID when it is the
// first one seen.
func (g *fsidGuard) check(m *clustermap.Map) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.fsid.IsZero() && m.FSID.IsZero():
		return nil
	case g.fsid.IsZero():
		if err := g.record(m.FSID); err != nil {
			return fmt.Errorf("node: recording the cluster map's FSID %v: %w", m.FSID, err)
		}
		g.fsid = m.FSID
		g.log.Info("node: recorded the cluster map's FSID in the device's superblock and the metadata folder", "fsid", m.FSID.String(), "file", path.Join(g.dir, fsidFileName))
		return nil
	case m.FSID == g.fsid:
		return nil
	}
	theirs := "no FSID"
	if !m.FSID.IsZero() {
		theirs = "FSID " + m.FSID.String()
	}
	err := fmt.Errorf("%w: the managers' map (epoch %d) has %s, and this node joined the map with FSID %v (recorded in its device's superblock and in %s): "+
		"the managers' map was started afresh (their raft logs lost?) or this node is pointed at another cluster's managers; "+
		"it neither joins nor serves that map, and keeps its data. Bring back a manager member that still holds the map's raft log "+
		"(weft node recover-manager, if a majority of them lost theirs); to give this node's data up and join the new map instead, "+
		"stop it, delete that file and format its device",
		ErrForeignMap, m.Epoch, theirs, g.fsid, path.Join(g.dir, fsidFileName))
	if at, ok := g.warned[m.FSID]; !ok || time.Since(at) >= fsidWarnEvery {
		g.warned[m.FSID] = time.Now()
		g.log.Error("node: refusing the cluster map", "err", err)
	}
	return err
}

// record records id in the device's superblock, then in the file. A
// crash between the two leaves one record, which the next start copies
// to the other place.
func (g *fsidGuard) record(id clustermap.FSID) error {
	if g.dev != nil {
		if err := g.dev.SetClusterFSID(id); err != nil {
			return err
		}
	}
	return g.writeFile(id)
}

// writeFile writes the FSID file durably.
func (g *fsidGuard) writeFile(id clustermap.FSID) error {
	return g.writeAtomic(fsidFileName, []byte(fsidFilePrefix+id.String()+"\n"))
}

// writeAtomic writes b as the file name in the metadata folder, durably
// and whole or not at all: a temporary file synced, renamed over the
// name, the folder synced.
func (g *fsidGuard) writeAtomic(name string, b []byte) error {
	if err := g.fsys.MkdirAll(g.dir); err != nil {
		return err
	}
	tmp := path.Join(g.dir, name+".tmp")
	if err := g.fsys.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := g.fsys.Create(tmp, false)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(b, 0)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := g.fsys.Rename(tmp, path.Join(g.dir, name)); err != nil {
		return err
	}
	return g.fsys.SyncDir(g.dir)
}
