package net

import (
	"context"
	"fmt"
	"sync"
)

// byteSemaphore bounds a number of bytes in use (in flight). Waiters are
// served in FIFO order, so a large request is not starved by small ones.
type byteSemaphore struct {
	limit int64
	mu    struct {
		sync.Mutex
		used    int64
		maxUsed int64 // high-water mark, for tests and metrics
		waiters []*semWaiter
	}
}

type semWaiter struct {
	n     int64
	ready chan struct{} // closed when granted
}

func newByteSemaphore(limit int64) *byteSemaphore { return &byteSemaphore{limit: limit} }

// acquire takes n bytes, waiting while they are not available. It returns
// ctx.Err() if ctx ends first, having taken nothing.
//
// Invariant (checked): n <= limit; configurations are validated so that
// the largest frame fits, so a violation is a bug in this package.
func (s *byteSemaphore) acquire(ctx context.Context, n int64) error {
	if n > s.limit {
		panic(fmt.Sprintf("net: acquire of %d bytes over the semaphore's limit %d", n, s.limit))
	}
	s.mu.Lock()
	if len(s.mu.waiters) == 0 && s.mu.used+n <= s.limit {
		s.takeLocked(n)
		s.mu.Unlock()
		return nil
	}
	w := &semWaiter{n: n, ready: make(chan struct{})}
	s.mu.waiters = append(s.mu.waiters, w)
	s.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		select {
		case <-w.ready:
			// Granted while we were giving up: give it back.
			s.mu.Unlock()
			s.release(n)
		default:
			for i, x := range s.mu.waiters {
				if x == w {
					s.mu.waiters = append(s.mu.waiters[:i], s.mu.waiters[i+1:]...)
					break
				}
			}
			// We may have been the head that blocked smaller waiters.
			s.grantLocked()
			s.mu.Unlock()
		}
		return ctx.Err()
	}
}

// tryAcquire takes n bytes if they are available now and nobody waits
// for bytes, and reports whether it took them.
func (s *byteSemaphore) tryAcquire(n int64) bool {
	if n > s.limit {
		panic(fmt.Sprintf("net: acquire of %d bytes over the semaphore's limit %d", n, s.limit))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.mu.waiters) == 0 && s.mu.used+n <= s.limit {
		s.takeLocked(n)
		return true
	}
	return false
}

func (s *byteSemaphore) takeLocked(n int64) {
	s.mu.used += n
	s.mu.maxUsed = max(s.mu.maxUsed, s.mu.used)
}

// release gives back n bytes taken by acquire.
func (s *byteSemaphore) release(n int64) {
	s.mu.Lock()
	s.mu.used -= n
	if s.mu.used < 0 {
		used := s.mu.used
		s.mu.Unlock()
		panic(fmt.Sprintf("net: semaphore released below zero: %d", used))
	}
	s.grantLocked()
	s.mu.Unlock()
}

func (s *byteSemaphore) grantLocked() {
	for len(s.mu.waiters) > 0 {
		w := s.mu.waiters[0]
		if s.mu.used+w.n > s.limit {
			return
		}
		s.takeLocked(w.n)
		s.mu.waiters[0] = nil
		s.mu.waiters = s.mu.waiters[1:]
		close(w.ready)
	}
}

// stats returns the bytes in use and the high-water mark.
func (s *byteSemaphore) stats() (used, maxUsed int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.used, s.mu.maxUsed
}
