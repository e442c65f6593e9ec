package clustertest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftfs/weft/engine"
	"github.com/weftfs/weft/fsproto"
	"github.com/weftfs/weft/fsproto/clustermap"
)

// TestForgetTombstonesAcrossKill: with tombstones forgotten a second
// after the delete (--forget-tombstones-after=1s), the nodes forget the
// tombstones of a PG's deletes under a steady write load; a node killed
// -9 misses more deletes, whose tombstones the other two forget while it
// is away; back, its sync lists the whole PG (its base lies below the
// primary's floor) and it deletes what it missed. At the end every node's
// engine, opened by the test, holds exactly the live chunks, each with its
// last acknowledged value: nothing deleted came back, nothing live went.
func TestForgetTombstonesAcrossKill(t *testing.T) {
	c := startClusterArgs(t, 3, 0, 3, 1, "--forget-tombstones-after", "1s")
	const (
		inode   = 5
		chunks  = 1500
		lag     = 2 * syncWindow // the seqs a tombstone must be behind its PG's newest
		victim  = 3
		deleted = 1200 // chunks [0, deleted) end deleted; the rest live
	)
	var mu sync.Mutex
	last := map[int]uint64{} // acknowledged value of each live chunk
	value := func(i, pass int) uint64 { return 0xf0<<56 | uint64(pass)<<32 | uint64(i) }
	// each runs op over [from, to) with 32 callers and fails the test on
	// any error.
	each := func(from, to int, op func(ctx context.Context, i int) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, to-from)
		sem := make(chan struct{}, 32)
		for i := from; i < to; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				defer cancel()
				if err := op(ctx, i); err != nil {
					errs <- fmt.Errorf("chunk %d: %w", i, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	write := func(pass int) func(ctx context.Context, i int) error {
		return func(ctx context.Context, i int) error {
			buf := make([]byte, blockSize)
			fillBlock(buf, value(i, pass))
			if _, err := c.ct.Write(ctx, inode, uint64(i), 0, buf); err != nil {
				return err
			}
			mu.Lock()
			last[i] = value(i, pass)
			mu.Unlock()
			return nil
		}
	}
	del := func(ctx context.Context, i int) error {
		if _, err := c.ct.Delete(ctx, inode, uint64(i)); err != nil {
			return err
		}
		mu.Lock()
		delete(last, i)
		mu.Unlock()
		return nil
	}
	// forgotten sums what local nodes list forgot (the replication core's
	// count, as /metrics shows it).
	forgotten := func(nodes ...int) (n float64) {
		for _, i := range nodes {
			n += c.metric(i, `weft_replication_events_total{event="tombstones_forgotten"}`)
		}
		return n
	}
	waitForgotten := func(what string, want float64, nodes ...int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for forgotten(nodes...) < want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: nodes %v forgot %v tombstones, want %v", what, nodes, forgotten(nodes...), want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// Every chunk written, 1000 deleted, then enough writes for the
	// deletes to fall lag seqs behind. The writes leave chunks [1000,
	// deleted) alone, so that their last seqs lie far below node 3's
	// newest when it misses their deletes: a sync from its usual base
	// would not list them.
	each(0, chunks, write(1))
	each(0, 1000, del)
	for pass := 2; pass < 2+lag/(chunks-deleted)+2; pass++ {
		each(deleted, chunks, write(pass))
	}
	waitForgotten("before the kill", 3*1000, 1, 2, 3)
	t.Logf("every node forgot the 1000 deletes' tombstones (%v in all)", forgotten(1, 2, 3))

	m0 := c.waitMap("the map", func(*clustermap.Map) bool { return true })
	id := c.nodeID(m0, victim)
	if err := c.lc.KillNode(victim); err != nil {
		t.Fatal(err)
	}
	c.waitMap("the killed node marked down", func(m *clustermap.Map) bool { return nodeState(m, id) == clustermap.Down })
	before := forgotten(1, 2)
	each(1000, deleted, del)
	for pass := 100; pass < 100+lag/(chunks-deleted)+2; pass++ {
		each(deleted, chunks, write(pass))
	}
	waitForgotten("while node 3 is away", before+2*(deleted-1000), 1, 2)
	t.Logf("nodes 1 and 2 forgot the %d deletes node %d missed", deleted-1000, victim)

	fullBefore := c.metric(1, `weft_replication_events_total{event="full_syncs"}`) + c.metric(2, `weft_replication_events_total{event="full_syncs"}`)
	if err := c.lc.StartNode(victim); err != nil {
		t.Fatal(err)
	}
	c.waitMap("the node back", func(m *clustermap.Map) bool { return nodeState(m, id) == clustermap.Up })
	c.waitMap("every PG active", allActive)
	full := c.metric(1, `weft_replication_events_total{event="full_syncs"}`) + c.metric(2, `weft_replication_events_total{event="full_syncs"}`)
	if full <= fullBefore {
		t.Errorf("node %d came back without a full sync (%v before, %v after)", victim, fullBefore, full)
	}

	// Every node's engine, as the node left it.
	if err := c.lc.Stop(20 * time.Second); err != nil {
		t.Fatalf("stopping the cluster: %v", err)
	}
	quietLog := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := 1; i <= 3; i++ {
		e, err := engine.Open(engine.Options{Path: filepath.Join(filepath.Dir(c.lc.LogFile(i)), "device"), Mode: engine.Interrupt, Logger: quietLog})
		if err != nil {
			t.Fatalf("node %d: open its engine: %v", i, err)
		}
		bad := 0
		buf := make([]byte, blockSize)
		for ch := range chunks {
			obj := fsproto.ObjectID(fsproto.ChunkID{Container: uint64(c.ct.ID()), Inode: inode, Index: uint64(ch)})
			n, err := e.Read(obj, 0, buf)
			want, live := last[ch]
			switch {
			case !live && !errors.Is(err, engine.ErrNotFound):
				t.Errorf("node %d: deleted chunk %d reads %d bytes (%v)", i, ch, n, err)
				bad++
			case live && (err != nil || n != blockSize):
				t.Errorf("node %d: live chunk %d: %d bytes, %v", i, ch, n, err)
				bad++
			case live:
				if v, err := blockValue(buf); err != nil || v != want {
					t.Errorf("node %d: chunk %d holds %#x (%v), want %#x", i, ch, v, err, want)
					bad++
				}
			}
			if bad > 10 {
				break
			}
		}
		if err := e.Close(); err != nil {
			t.Errorf("node %d: close its engine: %v", i, err)
		}
	}
}

// metric returns the value of the sample named exactly name (with its
// labels) on local node i's /metrics, 0 when absent; it fails the test
// when the endpoint does not answer.
func (c *tcluster) metric(i int, name string) float64 {
	c.t.Helper()
	resp, err := http.Get("http://" + c.lc.State().Nodes[i-1].Metrics + "/metrics")
	if err != nil {
		c.t.Fatalf("node %d metrics: %v", i, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				c.t.Fatalf("node %d metric %s: %v", i, name, err)
			}
			return v
		}
	}
	return 0
}
