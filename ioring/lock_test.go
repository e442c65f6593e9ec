package ioring

import "runtime"

// lockThread pins the calling goroutine to its OS thread for the rest of
// its life (never unlocked, so the thread dies with it).
func lockThread() { runtime.LockOSThread() }
