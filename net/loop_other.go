//go:build !linux

package net

import (
	"errors"
	stdnet "net"
	"syscall"
)

// loopConn: connections run on goroutines only, outside Linux.
type loopConn struct{}

func newLoopConn(*serverConn) *loopConn        { return nil }
func (*loopConn) poke()                        {}
func (*loopConn) abandon()                     {}
func (*loopConn) blockedOnRoom() bool          { return false }
func (*loopConn) setWake(func())               {}
func (*loopConn) wait() error                  { return nil }
func (*loopConn) Run(bool) (worked, done bool) { return false, true }
func (*loopConn) Flush()                       {}
func (*loopConn) Wait() (fd int, now bool)     { return -1, false }
func (*loopConn) Stopped(error)                {}

func detachSocket(stdnet.Conn) (*rawSocket, error) { return nil, errors.ErrUnsupported }

// rawSocket: sockets stay in the runtime's poller outside Linux.
type rawSocket struct{ stdnet.Conn }

func (*rawSocket) SyscallConn() (syscall.RawConn, error) { return nil, errors.ErrUnsupported }
