package vfs

import (
	"math/rand"
	"sync"
	"sync/atomic"
)

// FailNth returns a fault function for Mem.SetFault that fails the n-th
// occurrence of op (counting from 1, whatever the file) with ErrInjected,
// once; every other call succeeds. It is safe for concurrent use; the count
// is shared by every Mem it is given to.
func FailNth(op Op, n int) func(Op, string) error {
	var count atomic.Int64
	return func(o Op, _ string) error {
		if o == op && count.Add(1) == int64(n) {
			return ErrInjected
		}
		return nil
	}
}

// FailAfter returns a fault function for Mem.SetFault under which the
// first n occurrences of op succeed and every later one fails with
// ErrInjected, as a disk that has died does. FailAfter(op, 0) fails every
// occurrence. It is safe for concurrent use.
func FailAfter(op Op, n int) func(Op, string) error {
	var count atomic.Int64
	return func(o Op, _ string) error {
		if o == op && count.Add(1) > int64(n) {
			return ErrInjected
		}
		return nil
	}
}

// FailRandom returns a fault function for Mem.SetFault that fails each
// occurrence of op with probability p, drawing from a generator seeded with
// seed: the same sequence of operations fails at the same places. It is
// safe for concurrent use (concurrent callers make the order, and so the
// choices, depend on scheduling).
func FailRandom(seed int64, op Op, p float64) func(Op, string) error {
	var mu sync.Mutex
	rng := rand.New(rand.NewSource(seed))
	return func(o Op, _ string) error {
		if o != op {
			return nil
		}
		mu.Lock()
		fail := rng.Float64() < p
		mu.Unlock()
		if fail {
			return ErrInjected
		}
		return nil
	}
}
