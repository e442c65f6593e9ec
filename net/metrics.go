package net

import "sync/atomic"

// Metrics counts a client's or a server's traffic. Clients (and the
// connections of a Pool) and servers each update one; pass the same
// *Metrics in several configurations to aggregate them. All methods are
// safe for concurrent use. The zero value is ready. A node exports its
// server's on /metrics (weft_net_*).
type Metrics struct {
	framesIn, framesOut atomic.Uint64
	bytesIn, bytesOut   atomic.Uint64
	writes              atomic.Uint64 // vectored writes (batches of frames)
	directWrites        atomic.Uint64 // frames written whole by the goroutine that queued them
	reads               atomic.Uint64 // receive system calls (readv and peeks)
	payloadCopied       atomic.Uint64 // received payload bytes copied out of a staging buffer
	callsInFlight       atomic.Int64
	calls               atomic.Uint64
	requestsInFlight    atomic.Int64
	requests            atomic.Uint64
	loopConns           atomic.Uint64 // server connections handed to a Loop
	errors              [errorClasses]atomic.Uint64
}

// errorClass buckets errors for Metrics.
type errorClass uint8

const (
	errCorrupt      errorClass = iota // bad frames from a peer (connection closed)
	errConnClosed                     // calls failed because their connection died
	errRemote                         // error responses (client: received, server: sent)
	errCanceled                       // calls ended by their context or time limit
	errHandshake                      // handshakes refused or failed
	errDial                           // dials that failed before the handshake
	errHandlerPanic                   // handlers that panicked (server)
	errorClasses
)

// ErrorCounts is a snapshot of errors by class.
type ErrorCounts struct {
	Corrupt      uint64 // bad frames received; each closed its connection
	ConnClosed   uint64 // calls failed because their connection closed or failed
	Remote       uint64 // error responses received (client) or sent (server)
	Canceled     uint64 // calls ended by their context's deadline or cancellation, or their time limit (CallWithin)
	Handshake    uint64 // handshakes refused or failed
	Dial         uint64 // dials that failed before any handshake
	HandlerPanic uint64 // handlers that panicked
}

// MetricsSnapshot is a point-in-time copy of a Metrics.
type MetricsSnapshot struct {
	FramesIn, FramesOut uint64 // frames read and written, handshake included
	BytesIn, BytesOut   uint64 // their bytes
	// Writes counts the vectored writes that sent FramesOut (handshakes
	// aside): FramesOut/Writes is the batching the writers achieved.
	Writes uint64
	// DirectWrites counts the frames written whole, at once, by the
	// goroutine that queued them, on an idle connection (no hand-off to
	// the connection's writer goroutine); they are in Writes too.
	DirectWrites uint64
	// Reads counts the system calls that received FramesIn (reads and
	// peeks): FramesIn/Reads is the batching achieved on receive.
	Reads uint64
	// PayloadCopied counts the payload bytes a client copied out of its
	// staging buffer because they arrived together with other frames;
	// servers never copy a payload.
	PayloadCopied    uint64
	CallsInFlight    int64  // client calls started and not yet finished
	Calls            uint64 // client calls started
	RequestsInFlight int64  // server requests read and not yet answered
	Requests         uint64 // server requests read
	// LoopConns counts the server connections a Loop ran
	// (ServerConfig.Loop) rather than goroutines.
	LoopConns uint64
	Errors    ErrorCounts
}

// Snapshot returns the current counts.
func (m *Metrics) Snapshot() MetricsSnapshot {
	return MetricsSnapshot{
		FramesIn:         m.framesIn.Load(),
		FramesOut:        m.framesOut.Load(),
		BytesIn:          m.bytesIn.Load(),
		BytesOut:         m.bytesOut.Load(),
		Writes:           m.writes.Load(),
		DirectWrites:     m.directWrites.Load(),
		Reads:            m.reads.Load(),
		PayloadCopied:    m.payloadCopied.Load(),
		CallsInFlight:    m.callsInFlight.Load(),
		Calls:            m.calls.Load(),
		RequestsInFlight: m.requestsInFlight.Load(),
		Requests:         m.requests.Load(),
		LoopConns:        m.loopConns.Load(),
		Errors: ErrorCounts{
			Corrupt:      m.errors[errCorrupt].Load(),
			ConnClosed:   m.errors[errConnClosed].Load(),
			Remote:       m.errors[errRemote].Load(),
			Canceled:     m.errors[errCanceled].Load(),
			Handshake:    m.errors[errHandshake].Load(),
			Dial:         m.errors[errDial].Load(),
			HandlerPanic: m.errors[errHandlerPanic].Load(),
		},
	}
}

func (m *Metrics) frameIn(h *frameHeader) {
	m.framesIn.Add(1)
	m.bytesIn.Add(uint64(frameSize(h)))
}

func (m *Metrics) countError(c errorClass) { m.errors[c].Add(1) }
