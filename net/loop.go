package net

// Loop is an event loop that can run a server's connections on its own
// thread (ServerConfig.Loop): once a connection's handshake is done, the
// loop reads its requests, starts them and writes their answers, where a
// connection otherwise has a reader goroutine and hands its answers to a
// writer goroutine. A storage engine's reactor is such a loop: a request
// then goes from the socket to the device and back without crossing a
// thread (see engine.Guest, whose method set LoopGuest shares).
//
// Requests that the server's Starter does not take still go to handler
// goroutines, and answers that do not fit in the socket at once still go
// through the connection's writer goroutine; the loop only ever does
// non-blocking system calls.
type Loop interface {
	// Host attaches g to the loop and returns a function that wakes the
	// loop from any goroutine (see engine.Engine.Host).
	Host(g LoopGuest) (wake func(), err error)
}

// LoopGuest is a connection as a Loop runs it. The loop calls the methods
// from one goroutine, one at a time: Run at the start of each pass, Flush
// at its end, Wait before it sleeps, and Stopped once when it drops the
// guest. The contract is engine.Guest's.
type LoopGuest interface {
	Run(readable bool) (worked, done bool)
	Flush()
	Wait() (fd int, now bool)
	Stopped(err error)
}
