package mount

import (
	"testing"
)

// TestPosixMem runs the POSIX table on a mount of an in-process namespace:
// the FUSE layer alone, without a cluster.
func TestPosixMem(t *testing.T) {
	m := mountT(t, newMemBackend(), Options{})
	comparePosix(t, m.Dir())
}

func TestPermissionsMem(t *testing.T) {
	m := mountT(t, newMemBackend(), Options{})
	comparePermissions(t, m.Dir())
}
