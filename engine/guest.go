package engine

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Guest is work that runs on a reactor's own loop, next to the engine's:
// a network connection whose requests the reactor reads, starts and
// answers itself, so that a request crosses no thread between the socket
// and the device and back (the SPDK/Seastar shape). Without it, a request
// that arrives on a connection's goroutine reaches the reactor through its
// queue and, when the reactor sleeps, an eventfd: on a small VM each such
// hand-off to a sleeping thread costs tens of microseconds.
//
// A reactor calls its guests' methods from its own goroutine only, one at
// a time, so a guest needs no lock for the state only they touch. Every
// method must return promptly and never block: no waiting on a socket, on
// a lock held across I/O, or on this engine's requests (submitting them is
// fine; their completions come back through Request.Notify on a reactor).
type Guest interface {
	// Run does the guest's work that is ready (reading what its socket
	// holds, starting requests), without blocking. The reactor calls it
	// at the start of every pass of its loop. readable is false when the
	// reactor knows that the descriptor Wait gave has not become readable
	// since the last pass (a reactor with several guests polls their
	// descriptors once per pass, so that an idle one costs no system
	// call); true when it was, or when the reactor did not look. worked
	// reports that it did something (the reactor then counts the pass as
	// busy and does not sleep); done, that the guest has finished: the
	// reactor then calls Stopped and no other method again.
	Run(readable bool) (worked, done bool)
	// Flush runs at the end of every pass, after the reactor has reaped
	// completions: the guest sends what it answered during the pass (one
	// write for all of it, where a write per answer would cost a system
	// call each).
	Flush()
	// Wait is called before the reactor sleeps, after it has made itself
	// wakeable (see Host), and before a pass in which the reactor polls
	// its guests' descriptors: now reports work that is ready without the
	// descriptor (the reactor then runs another pass instead of
	// sleeping); fd is a descriptor whose readability should wake the
	// reactor, or -1 for none.
	Wait() (fd int, now bool)
	// Stopped is called once, last, when the reactor drops the guest:
	// with nil after Run reported done, or with ErrClosed when the engine
	// closes with the guest still attached.
	Stopped(err error)
}

// maxGuests bounds the guests of one reactor: its sleep polls them all.
const maxGuests = 1024

// guestReq carries a guest to its reactor (Request.shardIn of opHost).
type guestReq struct{ g Guest }

// Host attaches g to one of the engine's reactors, in turn, and returns a
// function that wakes that reactor from any goroutine. Call it after
// changing, outside the reactor, state that Wait reports (a request
// answered by another goroutine freed room, the connection was closed):
// with the state published first, a reactor about to sleep either sees
// it in Wait or is woken. The reactor calls g's methods from the next
// pass on.
func (e *Engine) Host(g Guest) (wake func(), err error) {
	s := e.shards[e.nextGuestShard.Add(1)%uint32(len(e.shards))]
	done := make(chan *Request, 1)
	r := &Request{Op: opHost, Done: done, shardIn: &guestReq{g: g}}
	e.submitting.Add(1)
	if e.closed.Load() {
		e.submitting.Add(-1)
		return nil, ErrClosed
	}
	e.push(s, r)
	e.submitting.Add(-1)
	<-done
	if r.Err != nil {
		return nil, r.Err
	}
	return s.w.wake, nil
}

// host takes on a guest (opHost).
func (s *shard) host(r *Request) {
	if len(s.guests) >= maxGuests {
		s.complete(r, fmt.Errorf("%w: shard %d hosts %d guests already", ErrInvalid, s.id, maxGuests))
		return
	}
	s.guests = append(s.guests, r.shardIn.(*guestReq).g)
	s.guestReady = append(s.guestReady, true)
	s.complete(r, nil)
}

// runGuests runs every guest's ready work; it drops those that finish.
func (s *shard) runGuests() (worked bool) {
	s.pollGuests()
	for i := 0; i < len(s.guests); {
		g := s.guests[i]
		w, done := g.Run(s.guestReady[i])
		worked = worked || w
		if done {
			s.dropGuest(i)
			g.Stopped(nil)
			worked = true
			continue
		}
		i++
	}
	return worked
}

func (s *shard) flushGuests() {
	for _, g := range s.guests {
		g.Flush()
	}
}

func (s *shard) dropGuest(i int) {
	last := len(s.guests) - 1
	s.guests[i] = s.guests[last]
	s.guestReady[i] = s.guestReady[last]
	s.guests[last] = nil
	s.guests = s.guests[:last]
	s.guestReady = s.guestReady[:last]
}

// pollGuestsMin is the number of guests from which a pass polls their
// descriptors (one system call) rather than let each guest try a read:
// with one guest the read is the cheaper look.
const pollGuestsMin = 2

// pollGuests sets guestReady for this pass: from the sleep's poll when
// the reactor has just slept (guestPolled), otherwise from a poll of the
// guests' descriptors that does not wait.
func (s *shard) pollGuests() {
	if s.guestPolled {
		s.guestPolled = false
		return
	}
	if len(s.guests) < pollGuestsMin {
		for i := range s.guestReady {
			s.guestReady[i] = true
		}
		return
	}
	fds, _ := s.guestFds(s.pollFds[:0])
	s.pollFds = fds
	if len(fds) > 0 {
		s.readyFromPoll(fds, poll(fds, 0) == nil)
	}
}

// poll is poll(2) on fds, retried when a signal interrupts it.
func poll(fds []unix.PollFd, timeoutMs int) error {
	for {
		if _, err := unix.Poll(fds, timeoutMs); err != unix.EINTR {
			return err
		}
	}
}

// readyFromPoll sets guestReady from fds, polled with the guests'
// descriptors at guestSlot; when the poll failed (ok false: no revents
// to trust) every guest is marked ready, so that each looks for itself.
func (s *shard) readyFromPoll(fds []unix.PollFd, ok bool) {
	for i, slot := range s.guestSlot {
		switch {
		case !ok:
			s.guestReady[i] = true
		case slot >= 0:
			s.guestReady[i] = fds[slot].Revents != 0
		}
	}
}

// stopGuests drops every guest when the engine closes.
func (s *shard) stopGuests() {
	for len(s.guests) > 0 {
		g := s.guests[0]
		s.dropGuest(0)
		g.Stopped(ErrClosed)
	}
}

// guestFds adds to fds, to be polled, the descriptors of the guests that
// give one, and records where (guestSlot, for readyFromPoll). It marks
// ready (guestReady) the guests with work that needs no descriptor, and
// reports now when there is one: the reactor must not sleep then.
func (s *shard) guestFds(fds []unix.PollFd) (_ []unix.PollFd, now bool) {
	s.guestSlot = s.guestSlot[:0]
	for i, g := range s.guests {
		fd, ready := g.Wait()
		s.guestReady[i] = ready
		now = now || ready
		slot := -1
		if !ready && fd >= 0 {
			slot = len(fds)
			fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
		}
		s.guestSlot = append(s.guestSlot, slot)
	}
	return fds, now
}
