package cluster

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto/replication"
)

// Tracer records what every DataServer's loop steps its core with, for a
// test to print the story of one object when a run goes wrong (real
// sockets do not replay). Write data shows as its first 8 bytes (the
// register tests' values).
type Tracer struct {
	mu    sync.Mutex
	start time.Time
	ents  []traceEntry
	ops   map[[2]uint64]replication.StoreOp  // (node, op id) → submitted op
	toks  map[[2]uint64]replication.ClientOp // (node, token) → client op
}

type traceEntry struct {
	at   time.Duration
	node uint64
	pg   uint32
	objs []engine.ObjectID // objects the entry concerns; none: PG-wide
	line string
	seqs []uint64 // seqs it names (ForwardAck carries no object)
}

// StartTrace makes every DataServer report to a new Tracer until Stop.
func StartTrace() *Tracer {
	t := &Tracer{start: time.Now(), ops: map[[2]uint64]replication.StoreOp{}, toks: map[[2]uint64]replication.ClientOp{}}
	fn := t.step
	traceStep.Store(&fn)
	return t
}

// Stop detaches the tracer.
func (t *Tracer) Stop() { traceStep.Store(nil) }

const noPG = ^uint32(0)

func val(b []byte) string {
	if len(b) < 8 {
		return fmt.Sprintf("len%d", len(b))
	}
	return fmt.Sprintf("%#x/len%d", binary.LittleEndian.Uint64(b), len(b))
}

func (t *Tracer) step(node uint64, ev replication.Event, effs []replication.Effect) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at := time.Since(t.start)
	add := func(pg uint32, line string, seqs []uint64, objs ...engine.ObjectID) {
		t.ents = append(t.ents, traceEntry{at: at, node: node, pg: pg, objs: objs, line: line, seqs: seqs})
	}
	switch ev := ev.(type) {
	case replication.Tick:
		if len(effs) == 0 {
			return
		}
		add(noPG, "tick", nil)
	case replication.ClientOp:
		t.toks[[2]uint64{node, ev.Token}] = ev
		add(ev.PG, fmt.Sprintf("client tok%d %v rid %x off %d size %d data %s", ev.Token, ev.Kind, ev.RequestID[:4], ev.Off, ev.Size, val(ev.Data)), nil, ev.Object)
	case replication.ViewChange:
		add(ev.View.PG, fmt.Sprintf("VIEW e%d %v bf %v", ev.View.Epoch, ev.View.Replicas, ev.View.Backfilling), nil)
	case replication.StoreDone:
		r := ev.Result
		op, ok := t.ops[[2]uint64{node, r.ID}]
		delete(t.ops, [2]uint64{node, r.ID})
		if !ok {
			add(noPG, fmt.Sprintf("storedone op%d (unknown)", r.ID), nil)
			break
		}
		add(op.PG, fmt.Sprintf("done op%d k%d obj seq %d: err %v skipped %v seq %d nf %v data %s rids %d", r.ID, op.Kind, op.Seq, r.Err, r.Skipped, r.Seq, r.NotFound, val(r.Data), len(r.RIDs)), []uint64{op.Seq}, op.Object)
	case replication.Receive:
		m := ev.Msg
		line, objs, seqs := fmtMsg(&m)
		if m.Kind == replication.MsgReadCheck || m.Kind == replication.MsgReadCheckAck || m.Kind == replication.MsgLeaseGrant {
			return
		}
		add(m.PG, fmt.Sprintf("recv from %d: %s", ev.From, line), seqs, objs...)
	default:
		add(noPG, fmt.Sprintf("event %T", ev), nil)
	}
	for _, e := range effs {
		switch e := e.(type) {
		case replication.Send:
			if e.Msg.Kind == replication.MsgReadCheck || e.Msg.Kind == replication.MsgReadCheckAck || e.Msg.Kind == replication.MsgLeaseGrant {
				continue
			}
			line, objs, seqs := fmtMsg(&e.Msg)
			add(e.Msg.PG, fmt.Sprintf("  -> send to %d: %s", e.To, line), seqs, objs...)
		case replication.Submit:
			op := e.Op
			t.ops[[2]uint64{node, op.ID}] = op
			add(op.PG, fmt.Sprintf("  -> submit op%d k%d seq %d keep>=%d mut %d off %d size %d del %v rid %x data %s", op.ID, op.Kind, op.Seq, op.KeepIfAtLeast, op.Mut.Kind, op.Mut.Off, op.Mut.Size, op.Deleted, op.RequestID[:4], val(op.Data)), []uint64{op.Seq}, op.Object)
		case replication.Reply:
			op := t.toks[[2]uint64{node, e.Token}]
			delete(t.toks, [2]uint64{node, e.Token})
			add(op.PG, fmt.Sprintf("  -> reply tok%d %v err %v seq %d data %s nf %v", e.Token, op.Kind, e.Err, e.Seq, val(e.Data), e.NotFound), []uint64{e.Seq}, op.Object)
		case replication.CaughtUp:
			add(e.PG, fmt.Sprintf("  -> CAUGHTUP e%d", e.Epoch), nil)
		}
	}
}

func fmtMsg(m *replication.Msg) (string, []engine.ObjectID, []uint64) {
	h := fmt.Sprintf("k%d e%d", m.Kind, m.Epoch)
	switch m.Kind {
	case replication.MsgForward:
		return fmt.Sprintf("%s FWD seq %d rid %x mut %d off %d size %d data %s", h, m.Seq, m.RequestID[:4], m.Mut.Kind, m.Mut.Off, m.Mut.Size, val(m.Data)), []engine.ObjectID{m.Mut.Object}, []uint64{m.Seq}
	case replication.MsgForwardAck:
		return fmt.Sprintf("%s FWDACK seq %d", h, m.Seq), nil, []uint64{m.Seq}
	case replication.MsgSyncObject:
		return fmt.Sprintf("%s SYNCOBJ seq %d es %d del %v rids %d data %s", h, m.Seq, m.EpochStart, m.Deleted, len(m.RIDs), val(m.Data)), []engine.ObjectID{m.Object}, nil
	case replication.MsgSyncSame:
		return fmt.Sprintf("%s SYNCSAME seq %d es %d rids %d", h, m.Seq, m.EpochStart, len(m.RIDs)), []engine.ObjectID{m.Object}, nil
	case replication.MsgSyncAck:
		return fmt.Sprintf("%s SYNCACK installed %v", h, m.Installed), []engine.ObjectID{m.Object}, nil
	case replication.MsgListResp:
		return fmt.Sprintf("%s LISTRESP after %d more %v n %d %v", h, m.After, m.More, len(m.Entries), m.Entries), nil, nil
	case replication.MsgPeerInfo:
		return fmt.Sprintf("%s PEERINFO max %d mark %d marked %v", h, m.Seq, m.Mark, m.Marked), nil, nil
	case replication.MsgListReq:
		return fmt.Sprintf("%s LISTREQ after %d", h, m.After), nil, nil
	case replication.MsgSyncDone:
		return fmt.Sprintf("%s SYNCDONE rids %d", h, len(m.RIDs)), nil, nil
	}
	return h, nil, nil
}

// Dump writes the entries of pg that concern obj, or no object at all
// (views, peering, lists), in time order.
func (t *Tracer) Dump(w io.Writer, pg uint32, obj engine.ObjectID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	seqs := map[uint64]bool{}
	for _, e := range t.ents {
		if e.pg == pg && slices.Contains(e.objs, obj) {
			for _, s := range e.seqs {
				seqs[s] = true
			}
		}
	}
	for _, e := range t.ents {
		if e.pg != pg {
			continue
		}
		switch {
		case slices.Contains(e.objs, obj):
		case len(e.objs) == 0 && e.pg == pg && len(e.seqs) == 0:
		case len(e.objs) == 0 && len(e.seqs) > 0 && seqs[e.seqs[0]]:
		default:
			continue
		}
		fmt.Fprintf(w, "%9.3fms n%d %s\n", float64(e.at.Microseconds())/1000, e.node, e.line)
	}
}
