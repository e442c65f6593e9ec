package engine

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftfs/weft/internal/vfs"
	"github.com/weftfs/weft/ioring"
)

// TestRingSleepOn checks the reactor's sleep in its ring: a write of the
// wake-up eventfd ends it, and the reap that sees the ring's poll of the
// eventfd drains it and returns nothing; a device completion ends it too
// and is reaped as usual, while the poll stays armed for the next sleep.
// (The 10 s limits only stop a broken sleep from hanging the test.)
func TestRingSleepOn(t *testing.T) {
	if f := ioring.Detect(); !f.Available {
		t.Skipf("io_uring not available here (the ring's sleep is io_uring's POLL_ADD): %v", f.Err)
	}
	f, err := vfs.Default.Create(filepath.Join(t.TempDir(), "dev"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rio, err := newRingIO(f, 8, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rio.close()
	w, err := newWaker()
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()

	sleep := func(what string) {
		t.Helper()
		done := make(chan bool, 1)
		go func() { done <- rio.sleepOn(w.ringEfd, 10*time.Second) }()
		select {
		case ok := <-done:
			if !ok {
				t.Fatalf("%s: sleepOn reports that the io_uring backend cannot sleep in its ring", what)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the sleep did not end", what)
		}
	}

	// Woken by a producer.
	w.sleeping.Store(sleepRing)
	go func() {
		time.Sleep(5 * time.Millisecond)
		w.wake()
	}()
	sleep("a producer's wake-up")
	// The poll's completion may be posted just after the wait ends.
	var comps []ioCompletion
	for deadline := time.Now().Add(10 * time.Second); rio.pollArmed && time.Now().Before(deadline); {
		comps = rio.reap(comps[:0])
		if len(comps) != 0 {
			t.Fatalf("reap returned %v for a wake-up alone", comps)
		}
	}
	if rio.pollArmed {
		t.Fatal("the ring's poll of the wake-up eventfd never completed")
	}
	var b [8]byte
	if _, err := unix.Read(w.ringEfd, b[:]); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("the wake-up eventfd was not drained by the reap (read: %v)", err)
	}

	// Woken by a device completion; the poll stays armed.
	buf := make([]byte, 4096)
	if !rio.queueWrite(0, [][]byte{buf}, tagWrite|1, false, 0) {
		t.Fatal("no room for a write in an empty ring")
	}
	if err := rio.submit(); err != nil {
		t.Fatal(err)
	}
	sleep("a write's completion")
	comps = comps[:0]
	for deadline := time.Now().Add(10 * time.Second); len(comps) == 0 && time.Now().Before(deadline); {
		comps = rio.reap(comps)
	}
	if len(comps) != 1 || comps[0].tag != tagWrite|1 || comps[0].res != 4096 {
		t.Fatalf("completions %+v, want the write's (tag %#x, 4096 bytes)", comps, tagWrite|1)
	}
	if !rio.pollArmed {
		t.Error("the poll of the wake-up eventfd is no longer armed after a sleep no producer ended")
	}
	// The armed poll still ends the next sleep.
	w.sleeping.Store(sleepRing)
	w.wake()
	sleep("a wake-up with the poll armed by an earlier sleep")
	for deadline := time.Now().Add(10 * time.Second); rio.pollArmed && time.Now().Before(deadline); {
		rio.reap(comps[:0])
	}

	// A wake-up of a reactor asleep in poll(2) goes to the other
	// eventfd: the ring's poll, armed again by a sleep that a completion
	// ends, does not fire for it.
	if !rio.queueWrite(0, [][]byte{buf}, tagWrite|2, false, 0) {
		t.Fatal("no room for a write")
	}
	rio.submit()
	sleep("a second write's completion")
	for deadline := time.Now().Add(10 * time.Second); len(rio.reap(comps[:0])) == 0 && time.Now().Before(deadline); {
	}
	w.sleeping.Store(sleepPoll)
	w.wake()
	if _, err := unix.Read(w.efd, b[:]); err != nil {
		t.Errorf("a wake-up of a reactor asleep in poll(2) did not write its eventfd: %v", err)
	}
	time.Sleep(10 * time.Millisecond)
	if got := rio.reap(comps[:0]); len(got) != 0 || !rio.pollArmed {
		t.Errorf("the ring's poll fired for a wake-up of a sleep in poll(2) (armed %v, completions %v)", rio.pollArmed, got)
	}
}
