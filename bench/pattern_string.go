package bench

import "strconv"

// NB: written by hand in stringer's shape rather than generated: the names
// are fio's spellings ("randread", "io_uring"), which stringer could only
// produce with -linecomment, and the constants' line comments in job.go are
// documentation, not names. Keep the tables below in step with job.go; the
// compile-time checks in _ fail if a constant is renumbered.

func _() {
	// An "invalid array index" compiler error signifies that the constant
	// values have changed; update the tables below.
	var x [1]struct{}
	_ = x[PatternRead-0]
	_ = x[PatternWrite-1]
	_ = x[PatternRandRead-2]
	_ = x[PatternRandWrite-3]
	_ = x[PatternRandRW-4]
	_ = x[PatternReadWrite-5]
	_ = x[EngineIOUring-0]
	_ = x[EnginePsync-1]
}

const _Pattern_name = "readwriterandreadrandwriterandrwreadwrite"

var _Pattern_index = [...]uint8{0, 4, 9, 17, 26, 32, 41}

// String returns fio's spelling of the pattern, as rw= takes it: "read",
// "write", "randread", "randwrite", "randrw" or "readwrite".
func (p Pattern) String() string {
	if p < 0 || p >= Pattern(len(_Pattern_index)-1) {
		return "Pattern(" + strconv.FormatInt(int64(p), 10) + ")"
	}
	return _Pattern_name[_Pattern_index[p]:_Pattern_index[p+1]]
}

const _IOEngine_name = "io_uringpsync"

var _IOEngine_index = [...]uint8{0, 8, 13}

// String returns fio's spelling of the engine, as ioengine= takes it:
// "io_uring" or "psync".
func (e IOEngine) String() string {
	if e < 0 || e >= IOEngine(len(_IOEngine_index)-1) {
		return "IOEngine(" + strconv.FormatInt(int64(e), 10) + ")"
	}
	return _IOEngine_name[_IOEngine_index[e]:_IOEngine_index[e+1]]
}
