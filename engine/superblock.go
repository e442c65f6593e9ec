package engine

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"time"

	"github.com/ncw/directio"

	"github.com/weftfs/weft/internal/vfs"
)

// On-disk constants. Stored on disk: never renumber.
const (
	superblockSize   = 4096
	superblockCopies = 2
	// formatVersion is the superblock's. 2: descriptors carry a request
	// id (80 bytes, was 64) and checkpoints keep each object's recent
	// request ids. 3: the superblock carries the cluster FSID (bytes
	// 104-119) under a second checksum (bytes 120-123, over 0-119);
	// nothing else changed, so this build reads version 2 devices too (a
	// version 2 superblock is rewritten as version 3 when a cluster FSID
	// is recorded in it).
	formatVersion    = 3
	formatVersionMin = 2
	// recordsVersion is the version that segment headers and batch
	// headers carry: the format of what the segments hold, which changed
	// last with superblock version 2.
	recordsVersion    = 2
	flagPLP           = 1 << 0 // device is power-loss protected: flushes may be skipped
	sbCRCOffset       = 100
	sbFSIDOffset      = 104
	sbCRC2Offset      = 120
	headerAreaBytes   = 3 * 4096 // two superblocks and a reserved block
	defaultBlockSize  = 4096
	segmentSizeMin    = 1 << 20
	segmentSizeMax    = 1 << 30
	defaultSegSize    = 32 << 20
	segmentsMin       = 4
	checkpointMinSize = 1 << 20
)

var superblockMagic = [8]byte{'W', 'E', 'F', 'T', 'D', 'E', 'V', 0}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors of opening a device. Test with errors.Is.
var (
	// ErrNotWeft: neither superblock copy carries the weft magic.
	ErrNotWeft = errors.New("engine: not a weft device")
	// ErrNewerFormat: the device was formatted by a newer weft.
	ErrNewerFormat = errors.New("engine: device format is newer than this build")
	// ErrOldFormat: the device was formatted by an older weft whose
	// records this build does not read (format 1 had no request ids);
	// reformat it (there is no in-place migration).
	ErrOldFormat = errors.New("engine: device format is older than this build")
	// ErrCorrupt marks bytes read back from a device that fail their
	// checks; recovery tells corruption apart from I/O errors with it.
	ErrCorrupt = errors.New("engine: corrupt data")
)

// UUID identifies a formatted device.
type UUID [16]byte

func (u UUID) String() string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Superblock describes a formatted device.
type Superblock struct {
	Version          uint32
	PLP              bool
	UUID             UUID
	Generation       uint64 // bumped on every superblock update
	BlockSize        uint32
	SegmentSize      uint32
	SegmentCount     uint32
	SegmentsOffset   uint64
	CheckpointOffset uint64
	CheckpointSize   uint64
	DeviceSize       uint64
	Created          time.Time
	// ClusterFSID is the identity of the cluster map the device's node
	// joined (clustermap.Map.FSID), zero until one is recorded
	// (Engine.SetClusterFSID; version 3 and later). It sits beside the
	// data it speaks for, so a node whose metadata folder is lost still
	// knows which cluster its data belongs to.
	ClusterFSID [16]byte
}

// FormatOptions choose a device's layout.
type FormatOptions struct {
	// SegmentSize in bytes: a power of two from 1 MiB to 1 GiB; default 32 MiB.
	SegmentSize uint32
	// PLP declares the device power-loss protected.
	PLP bool
}

// Layout computes the superblock for a device of size bytes, or says
// every reason it cannot.
func Layout(size int64, opts FormatOptions) (*Superblock, error) {
	seg := opts.SegmentSize
	if seg == 0 {
		seg = defaultSegSize
	}
	var probs []string
	if seg < segmentSizeMin || seg > segmentSizeMax || seg&(seg-1) != 0 {
		probs = append(probs, fmt.Sprintf("segment size %d: want a power of two from %d (1 MiB) to %d (1 GiB)", seg, segmentSizeMin, segmentSizeMax))
	}
	// The checkpoint area holds two index checkpoints; size it at 1/64 of
	// the device (at least 1 MiB), rounded to whole segments' alignment.
	ckpt := max(uint64(size)/64, checkpointMinSize)
	ckpt = (ckpt + uint64(seg) - 1) / uint64(seg) * uint64(seg)
	segOff := uint64(headerAreaBytes)
	segOff = (segOff + uint64(seg) - 1) / uint64(seg) * uint64(seg) // segments start segment-aligned
	ckptOff := segOff
	segOff += ckpt
	var count uint64
	if uint64(size) > segOff {
		count = (uint64(size) - segOff) / uint64(seg)
	}
	if len(probs) == 0 && count < segmentsMin {
		need := segOff + segmentsMin*uint64(seg)
		probs = append(probs, fmt.Sprintf("device of %d bytes holds %d segments of %d bytes; need at least %d (a device of %d bytes or more, or a smaller segment size)", size, count, seg, segmentsMin, need))
	}
	if len(probs) > 0 {
		return nil, errors.New("engine: format: " + strings.Join(probs, "; "))
	}
	sb := &Superblock{
		Version: formatVersion, PLP: opts.PLP, Generation: 1, BlockSize: defaultBlockSize,
		SegmentSize: seg, SegmentCount: uint32(count), SegmentsOffset: segOff,
		CheckpointOffset: ckptOff, CheckpointSize: ckpt, DeviceSize: uint64(size),
		Created: time.Now().UTC().Truncate(time.Nanosecond),
	}
	if _, err := io.ReadFull(rand.Reader, sb.UUID[:]); err != nil {
		return nil, fmt.Errorf("engine: format: uuid: %w", err)
	}
	return sb, nil
}

// Encode writes the superblock into a superblockSize buffer.
func (sb *Superblock) Encode(b []byte) {
	clear(b[:superblockSize])
	copy(b[0:8], superblockMagic[:])
	le := binary.LittleEndian
	le.PutUint32(b[8:], sb.Version)
	var flags uint32
	if sb.PLP {
		flags |= flagPLP
	}
	le.PutUint32(b[12:], flags)
	copy(b[16:32], sb.UUID[:])
	le.PutUint64(b[32:], sb.Generation)
	le.PutUint32(b[40:], sb.BlockSize)
	le.PutUint32(b[44:], sb.SegmentSize)
	le.PutUint32(b[48:], sb.SegmentCount)
	le.PutUint32(b[52:], 0)
	le.PutUint64(b[56:], sb.SegmentsOffset)
	le.PutUint64(b[64:], sb.CheckpointOffset)
	le.PutUint64(b[72:], sb.CheckpointSize)
	le.PutUint64(b[80:], sb.DeviceSize)
	le.PutUint64(b[88:], uint64(sb.Created.UnixNano()))
	le.PutUint32(b[96:], 0)
	// The first checksum covers what version 2 defined, so that a build
	// that reads only version 2 still tells a newer format from damage.
	le.PutUint32(b[sbCRCOffset:], crc32.Checksum(b[:sbCRCOffset], castagnoli))
	if sb.Version >= 3 {
		copy(b[sbFSIDOffset:sbCRC2Offset], sb.ClusterFSID[:])
		le.PutUint32(b[sbCRC2Offset:], crc32.Checksum(b[:sbCRC2Offset], castagnoli))
	}
}

// DecodeSuperblock parses and checks one superblock copy. Errors wrap
// ErrNotWeft, ErrNewerFormat, ErrOldFormat or ErrCorrupt and say what
// was wrong.
func DecodeSuperblock(b []byte) (*Superblock, error) {
	if len(b) < superblockSize {
		return nil, fmt.Errorf("%w: superblock is %d bytes, want %d", ErrCorrupt, len(b), superblockSize)
	}
	if !bytes.Equal(b[0:8], superblockMagic[:]) {
		return nil, fmt.Errorf("%w: no superblock magic (found %q)", ErrNotWeft, b[0:8])
	}
	le := binary.LittleEndian
	if got, want := le.Uint32(b[sbCRCOffset:]), crc32.Checksum(b[:sbCRCOffset], castagnoli); got != want {
		return nil, fmt.Errorf("%w: superblock checksum %#08x, computed %#08x", ErrCorrupt, got, want)
	}
	sb := &Superblock{Version: le.Uint32(b[8:])}
	if sb.Version > formatVersion {
		return nil, fmt.Errorf("%w: format version %d, this build reads up to %d", ErrNewerFormat, sb.Version, formatVersion)
	}
	if sb.Version == 0 {
		return nil, fmt.Errorf("%w: format version 0", ErrCorrupt)
	}
	if sb.Version < formatVersionMin {
		return nil, fmt.Errorf("%w: format version %d (records without request ids), this build reads %d to %d: reformat the device",
			ErrOldFormat, sb.Version, formatVersionMin, formatVersion)
	}
	if sb.Version >= 3 {
		if got, want := le.Uint32(b[sbCRC2Offset:]), crc32.Checksum(b[:sbCRC2Offset], castagnoli); got != want {
			return nil, fmt.Errorf("%w: superblock (version %d) second checksum %#08x, computed %#08x", ErrCorrupt, sb.Version, got, want)
		}
		copy(sb.ClusterFSID[:], b[sbFSIDOffset:sbCRC2Offset])
	}
	flags := le.Uint32(b[12:])
	if flags&^flagPLP != 0 {
		return nil, fmt.Errorf("%w: unknown superblock flags %#x", ErrCorrupt, flags)
	}
	sb.PLP = flags&flagPLP != 0
	copy(sb.UUID[:], b[16:32])
	sb.Generation = le.Uint64(b[32:])
	sb.BlockSize = le.Uint32(b[40:])
	sb.SegmentSize = le.Uint32(b[44:])
	sb.SegmentCount = le.Uint32(b[48:])
	sb.SegmentsOffset = le.Uint64(b[56:])
	sb.CheckpointOffset = le.Uint64(b[64:])
	sb.CheckpointSize = le.Uint64(b[72:])
	sb.DeviceSize = le.Uint64(b[80:])
	sb.Created = time.Unix(0, int64(le.Uint64(b[88:]))).UTC()
	if err := sb.check(); err != nil {
		return nil, err
	}
	return sb, nil
}

// check validates the layout a decoded superblock claims.
func (sb *Superblock) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: superblock: "+format, append([]any{ErrCorrupt}, args...)...)
	}
	seg := uint64(sb.SegmentSize)
	switch {
	case sb.BlockSize != defaultBlockSize:
		return bad("block size %d, want %d", sb.BlockSize, defaultBlockSize)
	case seg < segmentSizeMin || seg > segmentSizeMax || seg&(seg-1) != 0:
		return bad("segment size %d is not a power of two from 1 MiB to 1 GiB", seg)
	case sb.SegmentCount < segmentsMin:
		return bad("%d segments, fewer than %d", sb.SegmentCount, segmentsMin)
	case sb.CheckpointOffset < headerAreaBytes || sb.CheckpointSize < checkpointMinSize:
		return bad("checkpoint area at %d of %d bytes overlaps the header or is too small", sb.CheckpointOffset, sb.CheckpointSize)
	case sb.SegmentsOffset < sb.CheckpointOffset+sb.CheckpointSize || sb.SegmentsOffset%seg != 0:
		return bad("segment area at %d overlaps the checkpoint area or is not segment-aligned", sb.SegmentsOffset)
	case sb.SegmentsOffset+uint64(sb.SegmentCount)*seg > sb.DeviceSize || sb.SegmentsOffset+uint64(sb.SegmentCount)*seg < sb.SegmentsOffset:
		return bad("%d segments of %d bytes from %d do not fit a device of %d bytes", sb.SegmentCount, seg, sb.SegmentsOffset, sb.DeviceSize)
	case sb.Generation == 0:
		return bad("generation 0")
	}
	return nil
}

// WriteSuperblock writes both copies of sb to dev and flushes.
func WriteSuperblock(dev vfs.File, sb *Superblock) error {
	buf := directio.AlignedBlock(superblockSize)
	sb.Encode(buf)
	for i := 0; i < superblockCopies; i++ {
		if _, err := dev.WriteAt(buf, int64(i)*superblockSize); err != nil {
			return fmt.Errorf("engine: write superblock copy %d to %s: %w", i, dev.Name(), err)
		}
		// Flush between the copies: a crash can then tear at most one.
		if err := dev.Sync(); err != nil {
			return fmt.Errorf("engine: flush superblock copy %d on %s: %w", i, dev.Name(), err)
		}
	}
	return nil
}

// ReadSuperblock reads both copies from dev and returns the valid one with
// the highest generation, and the indexes of copies that were damaged or
// stale (for the caller to rewrite). When no copy is valid the error
// names the device and each copy's problem.
func ReadSuperblock(dev vfs.File) (*Superblock, []int, error) {
	buf := directio.AlignedBlock(superblockCopies * superblockSize)
	n, err := dev.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("engine: read superblock of %s: %w", dev.Name(), err)
	}
	var best *Superblock
	var errs []error
	copies := make([]*Superblock, superblockCopies)
	for i := range copies {
		lo := i * superblockSize
		if n < lo+superblockSize {
			errs = append(errs, fmt.Errorf("copy %d: device is only %d bytes: %w", i, n, ErrNotWeft))
			continue
		}
		sb, err := DecodeSuperblock(buf[lo : lo+superblockSize])
		if err != nil {
			errs = append(errs, fmt.Errorf("copy %d: %w", i, err))
			continue
		}
		copies[i] = sb
		if best == nil || sb.Generation > best.Generation {
			best = sb
		}
	}
	if best == nil {
		// The most telling cause wins: a format this build cannot read,
		// then damage, then no weft device at all.
		kind := ErrNotWeft
		for _, e := range errs {
			switch {
			case errors.Is(e, ErrNewerFormat):
				kind = ErrNewerFormat
			case errors.Is(e, ErrOldFormat):
				kind = ErrOldFormat
			case errors.Is(e, ErrCorrupt) && kind != ErrNewerFormat && kind != ErrOldFormat:
				kind = ErrCorrupt
			}
		}
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return nil, nil, fmt.Errorf("engine: %s: %w (%s)", dev.Name(), kind, strings.Join(msgs, "; "))
	}
	var stale []int
	for i, c := range copies {
		if c == nil || c.Generation != best.Generation || c.UUID != best.UUID {
			stale = append(stale, i)
		}
	}
	if best.DeviceSize > 0 {
		if size, err := dev.Size(); err == nil && uint64(size) < best.DeviceSize {
			return nil, nil, fmt.Errorf("engine: %s: %w: superblock says %d bytes but the device has %d (truncated?)", dev.Name(), ErrCorrupt, best.DeviceSize, size)
		}
	}
	return best, stale, nil
}
