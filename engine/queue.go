package engine

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// reqQueue is a lock-free multi-producer, single-consumer queue of
// Requests (Vyukov's intrusive MPSC queue): any goroutine pushes with one
// atomic swap, the owning reactor pops without atomics read-modify-write.
//
// Invariant: pending counts pushed but not yet popped requests; it is
// incremented before the push becomes visible, so a reactor that reads 0
// after announcing sleep (see waker) cannot miss a request.
type reqQueue struct {
	head    atomic.Pointer[Request] // last pushed; producers swap it
	tail    *Request                // next to pop; consumer only
	stub    Request
	pending atomic.Int64
}

func (q *reqQueue) init() {
	q.head.Store(&q.stub)
	q.tail = &q.stub
}

func (q *reqQueue) push(r *Request) {
	q.pending.Add(1)
	q.link(r)
}

func (q *reqQueue) link(r *Request) {
	r.next.Store(nil)
	prev := q.head.Swap(r)
	prev.next.Store(r)
}

// pop returns the oldest request, or nil if none is ready. It may return
// nil while pending > 0, for the instant a producer is between its swap
// and its link; the reactor then simply polls again.
func (q *reqQueue) pop() *Request {
	tail := q.tail
	next := tail.next.Load()
	if tail == &q.stub {
		if next == nil {
			return nil
		}
		q.tail = next
		tail = next
		next = next.next.Load()
	}
	if next != nil {
		q.tail = next
		q.pending.Add(-1)
		return tail
	}
	if tail != q.head.Load() {
		return nil
	}
	q.link(&q.stub)
	next = tail.next.Load()
	if next != nil {
		q.tail = next
		q.pending.Add(-1)
		return tail
	}
	return nil
}

// waker lets producers wake a sleeping reactor through an eventfd, and
// costs them one atomic load when it is awake.
//
// Protocol: the reactor stores in sleeping how it is about to sleep, then
// checks its queue's pending count (and its completions) once more, and
// only then blocks; a producer pushes (pending++), then swaps sleeping to
// awake and, if it was asleep, writes the eventfd of that kind of sleep.
// Sequentially consistent atomics order the two so that either the
// reactor sees the request or the producer sees the sleeper.
//
// Two eventfds, so that each wake-up reaches only the wait the reactor is
// in: efd for a sleep in poll(2), ringEfd for one in the reactor's ring,
// whose poll of ringEfd stays armed after a sleep that a completion
// ended; a write of efd then costs the ring nothing.
type waker struct {
	efd, ringEfd int
	sleeping     atomic.Uint32 // awake, sleepPoll or sleepRing
	wakeups      atomic.Uint64
}

// How a reactor sleeps (waker.sleeping).
const (
	awake     = 0
	sleepPoll = 1 // in poll(2), efd among the descriptors
	sleepRing = 2 // in its ring's wait, which polls ringEfd
)

func newWaker() (*waker, error) {
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	ringEfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(efd)
		return nil, err
	}
	return &waker{efd: efd, ringEfd: ringEfd}, nil
}

func (w *waker) wake() {
	if w.sleeping.Load() == awake {
		return
	}
	fd := w.efd
	switch w.sleeping.Swap(awake) {
	case awake:
		return
	case sleepRing:
		fd = w.ringEfd
	}
	w.wakeups.Add(1)
	one := [8]byte{1}
	unix.Write(fd, one[:])
}

// drain consumes a pending wake-up of a sleep in poll(2), so the next one
// blocks. (The ring's poll drains ringEfd: ringIO.reap.)
func (w *waker) drain() {
	var b [8]byte
	unix.Read(w.efd, b[:])
}

func (w *waker) close() {
	unix.Close(w.efd)
	unix.Close(w.ringEfd)
}
