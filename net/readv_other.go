//go:build !linux

package net

import "syscall"

// newRawVectorReader: readv is wired up on Linux only; elsewhere frames
// are read with sequential reads.
func newRawVectorReader(syscall.RawConn) vectorReader { return nil }
