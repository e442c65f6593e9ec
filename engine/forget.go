package engine

import (
	"fmt"
	"slices"
)

// Forgetting tombstones.
//
// A deleted object keeps its state (a tombstone: seq, version, request
// ids) so that Changes reports the delete and KeepIfAtLeast sees its seq.
// Kept for ever, tombstones would grow the object table, the PG log and
// every checkpoint by one entry per object ever deleted. ForgetTombstones
// drops those of one PG in a range of seqs, when the caller (the
// replication layer, which knows who may still need them) says so.
//
// Invariants:
//   - Only the live object table and PG log lose the tombstones;
//     snapshots keep their own clones.
//   - The tombstone holding its PG's highest seq is never dropped, so
//     PGSeq, which a restart recomputes from the objects, survives one.
//   - A tombstone with a mutation batched but not yet durable is left: the
//     mutation replaces it anyway.
//   - Each PG has a forget floor (ForgetFloor): every tombstone of the PG
//     the engine dropped had a seq at most the floor. ForgetTombstones
//     raises it before it drops anything, and KeepIfAtLeast takes an
//     absent object to be at the floor, since a tombstone that was there
//     may have been that high: a mutation it would have skipped is
//     skipped still. The floor lives in memory only: the caller keeps it
//     durably, before it asks for tombstones to go, and gives it back
//     (SetForgetFloor) after a restart, before any KeepIfAtLeast request.
//   - Nothing is written: the next checkpoint leaves the tombstones out.
//     Until then a crash brings them back (from the older checkpoint or
//     the log's delete records), which is harmless: a tombstone is never
//     wrong, only kept longer.

// forgetStep bounds the PG log entries one shard visits in one request,
// so that a PG with millions of objects does not hold its reactor. A
// variable for the tests.
var forgetStep = 4096

// forgetOut is one shard's answer to an opForget.
type forgetOut struct {
	dropped int
	resume  uint64 // the next request starts after this seq
	more    bool   // entries in (resume, upTo] are left to visit
}

// ForgetTombstones drops the tombstones of placement group pg whose seq
// is in (after, upTo] and returns how many it dropped. Live objects are
// never touched. Each shard visits at most forgetStep entries of its PG
// log per request, so foreground requests interleave with a long pass.
func (e *Engine) ForgetTombstones(pg uint32, after, upTo uint64) (int, error) {
	if upTo <= after {
		return 0, nil
	}
	e.SetForgetFloor(pg, upTo)
	top := e.PGSeq(pg)
	from := make([]uint64, len(e.shards))
	more := make([]bool, len(e.shards))
	for i := range from {
		from[i], more[i] = after, true
	}
	total := 0
	for slices.Contains(more, true) {
		outs, err := e.broadcastEach(func(i int) *Request {
			if !more[i] {
				return nil
			}
			return &Request{Op: opForget, PG: pg, PGSeq: from[i], Off: upTo, shardIn: top}
		})
		for i, o := range outs {
			if fo, ok := o.(forgetOut); ok {
				total += fo.dropped
				from[i], more[i] = fo.resume, fo.more
			}
		}
		if err != nil {
			return total, fmt.Errorf("engine: forget tombstones of pg %d: %w", pg, err)
		}
	}
	return total, nil
}

// ForgetFloor returns placement group pg's forget floor: every tombstone
// of pg this engine dropped since it opened had a seq at most this.
func (e *Engine) ForgetFloor(pg uint32) uint64 { return pgLoad(&e.floors, pg) }

// SetForgetFloor raises pg's forget floor to at least floor. A caller that
// had tombstones forgotten before a restart gives the engine their floor
// back with it, before it submits a request with KeepIfAtLeast.
func (e *Engine) SetForgetFloor(pg uint32, floor uint64) { raiseTo(pgValue(&e.floors, pg), floor) }

// forget drops the shard's tombstones of PG r.PG with seqs in (r.PGSeq,
// r.Off], below the PG's highest seq r.shardIn, visiting at most
// forgetStep PG log entries.
func (s *shard) forget(r *Request) {
	top := r.shardIn.(uint64)
	out := forgetOut{resume: r.PGSeq}
	var drop []pgEntry
	visited := 0
	s.pgLog.AscendGreaterOrEqual(pgEntry{PG: r.PG, Seq: r.PGSeq + 1}, func(p pgEntry) bool {
		if p.PG != r.PG || p.Seq > r.Off {
			return false
		}
		if visited >= forgetStep && p.Seq != out.resume {
			// Stopped between seqs only: the next request starts after
			// resume, and one seq may name several objects (installs).
			out.more = true
			return false
		}
		visited++
		out.resume = p.Seq
		if p.Seq >= top {
			return true
		}
		if _, pending := s.pendVer[p.Object]; pending {
			return true
		}
		if st, ok := s.objs.Get(ObjectState{ID: p.Object}); ok && st.Deleted {
			drop = append(drop, p)
		}
		return true
	})
	for _, p := range drop {
		s.pgLog.Delete(p)
		s.objs.Delete(ObjectState{ID: p.Object})
	}
	out.dropped = len(drop)
	s.stats.tombstonesForgotten += uint64(len(drop))
	r.shardOut = out
	s.complete(r, nil)
}
