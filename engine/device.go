package engine

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"

	"github.com/weftfs/weft/internal/vfs"
)

// Device is an open, formatted device, held exclusively by this process.
type Device struct {
	File vfs.File
	SB   *Superblock
	lock io.Closer
}

// ErrInUse is returned when a device is already open elsewhere.
var ErrInUse = errors.New("engine: device already open")

// ErrFormatted is returned by Format for a device that already holds a
// weft superblock, unless forced.
var ErrFormatted = errors.New("engine: device already formatted")

// FormatRequest is what `weft format` asks for.
type FormatRequest struct {
	Path string
	// Size creates a missing file of this many bytes (sparse); 0 requires
	// the file or device to exist.
	Size int64
	// Force overwrites an existing weft superblock.
	Force   bool
	Options FormatOptions
}

// Format writes a new superblock (both copies) to the device at req.Path,
// creating a file of req.Size bytes when it is missing. It refuses to
// overwrite an existing weft device unless req.Force is set.
func Format(fsys vfs.FS, req FormatRequest) (*Superblock, error) {
	if req.Path == "" {
		return nil, errors.New("engine: format: no device path")
	}
	_, err := fsys.Stat(req.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if req.Size <= 0 {
			return nil, fmt.Errorf("engine: format: %s does not exist; give a size to create it as a file", req.Path)
		}
		f, err := fsys.Create(req.Path, false)
		if err != nil {
			return nil, fmt.Errorf("engine: format: %w", err)
		}
		if err := f.Truncate(req.Size); err != nil {
			f.Close()
			return nil, fmt.Errorf("engine: format: sizing %s to %d bytes: %w", req.Path, req.Size, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("engine: format: %w", err)
		}
		f.Close()
		// The new file's name must survive a power cut too.
		if err := fsys.SyncDir(path.Dir(req.Path)); err != nil {
			return nil, fmt.Errorf("engine: format: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("engine: format: %w", err)
	}
	lock, err := lockDevice(fsys, req.Path)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	f, err := fsys.OpenRW(req.Path, true)
	if err != nil {
		return nil, fmt.Errorf("engine: format: %w", err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("engine: format: %w", err)
	}
	if req.Size > 0 && size < req.Size {
		if err := f.Truncate(req.Size); err != nil {
			return nil, fmt.Errorf("engine: format: growing %s to %d bytes: %w", req.Path, req.Size, err)
		}
		size = req.Size
	}
	if old, _, err := ReadSuperblock(f); err == nil && !req.Force {
		return nil, fmt.Errorf("%w: %s holds weft device %s (formatted %s); pass force to overwrite it", ErrFormatted, req.Path, old.UUID, old.Created.Format("2006-01-02 15:04:05 UTC"))
	}
	sb, err := Layout(size, req.Options)
	if err != nil {
		return nil, err
	}
	if err := WriteSuperblock(f, sb); err != nil {
		return nil, err
	}
	return sb, nil
}

func lockDevice(fsys vfs.FS, path string) (io.Closer, error) {
	lock, err := fsys.Lock(path)
	if errors.Is(err, vfs.ErrLocked) {
		return nil, fmt.Errorf("%w: %s is open by another process or engine", ErrInUse, path)
	}
	if err != nil {
		return nil, fmt.Errorf("engine: lock %s: %w", path, err)
	}
	return lock, nil
}

// OpenDevice opens a formatted device exclusively, checks its superblock
// and rewrites a damaged or stale superblock copy from the good one.
func OpenDevice(fsys vfs.FS, path string) (*Device, error) {
	if _, err := fsys.Stat(path); err != nil {
		return nil, fmt.Errorf("engine: open device: %w", err)
	}
	lock, err := lockDevice(fsys, path)
	if err != nil {
		return nil, err
	}
	f, err := fsys.OpenRW(path, true)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("engine: open device: %w", err)
	}
	sb, stale, err := ReadSuperblock(f)
	if err != nil {
		f.Close()
		lock.Close()
		return nil, err
	}
	if len(stale) > 0 {
		if err := WriteSuperblock(f, sb); err != nil {
			f.Close()
			lock.Close()
			return nil, fmt.Errorf("engine: repairing superblock copies %v: %w", stale, err)
		}
	}
	return &Device{File: f, SB: sb, lock: lock}, nil
}

// Close releases the device.
func (d *Device) Close() error {
	err := d.File.Close()
	if lerr := d.lock.Close(); err == nil {
		err = lerr
	}
	return err
}
