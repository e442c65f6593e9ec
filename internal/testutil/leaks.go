// Package testutil holds helpers shared by the tests of several packages.
package testutil

import (
	"runtime"
	"testing"
	"time"
)

// CheckLeaks fails the test if goroutines started during it are still
// running once its cleanups have run (it waits up to 5 s for them to
// end). Call it first in a test, so its cleanup runs last.
func CheckLeaks(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
