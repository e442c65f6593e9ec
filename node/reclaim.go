package node

import (
	"context"
	"time"

	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/clustermap"
	"github.com/weftfs/weft/fsproto/meta"
)

// Bounds of the reclaim loop.
const (
	// reclaimInterval is how often the loop looks at the reclaim queues
	// of the containers this node leads.
	reclaimInterval = time.Second
	// reclaimBatch bounds the entries one round takes per container, so
	// one container with a long queue does not hold up the others.
	reclaimBatch = 256
	// reclaimRoundTimeout bounds one container's round.
	reclaimRoundTimeout = time.Minute
)

// reclaimLoop deletes the chunks of removed and truncated files
// (namespace Reclaim entries) of every container whose metadata leader
// this node is, and marks them Reclaimed. Clients reclaim what their own
// unlinks and truncations queue; this loop finishes what a client left
// (it crashed, or it was cut off), so no file's data outlives it for
// long. Only the leader runs it, from its own applied state: the entries
// are committed, and running one twice deletes nothing that matters (a
// removed inode is never reused; a truncation's range is cut at the
// file's current size).
func (c *clusterNode) reclaimLoop() {
	defer c.wg.Done()
	var (
		data  *client.Client
		metas = map[clustermap.ContainerID]*meta.Client{}
	)
	defer func() {
		if data != nil {
			data.Close()
		}
	}()
	tick := time.NewTicker(reclaimInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-tick.C:
		}
		for _, id := range c.meta.Containers() {
			if leader, ok := c.meta.Leader(id); !ok || leader != c.id {
				continue
			}
			ns := c.meta.Namespace(id)
			if ns == nil {
				continue
			}
			entries := ns.Reclaims()
			if len(entries) == 0 {
				continue
			}
			if data == nil {
				ctx, cancel := context.WithTimeout(c.ctx, reclaimRoundTimeout)
				cl, err := client.Dial(ctx, client.Config{Maps: c.maps, Pool: c.pool, Logger: c.log})
				cancel()
				if err != nil {
					c.log.Warn("node: reclaim: reaching the cluster", "err", err)
					break
				}
				data = cl
			}
			ct, err := data.ContainerByID(id)
			if err != nil {
				continue // deleted meanwhile; its metadata member stops with the next map
			}
			mc := metas[id]
			if mc == nil {
				mc = meta.NewClient(id, c.maps, c.pool)
				metas[id] = mc
			}
			r := client.Reclaimer{Data: ct, Meta: mc, ChunkSize: ct.ChunkSize()}
			ctx, cancel := context.WithTimeout(c.ctx, reclaimRoundTimeout)
			err = r.Run(ctx, entries[:min(len(entries), reclaimBatch)])
			cancel()
			if err != nil && c.ctx.Err() == nil {
				c.log.Warn("node: reclaim", "container", id, "queued", len(entries), "err", err)
			} else if err == nil {
				c.log.Debug("node: reclaimed", "container", id, "entries", min(len(entries), reclaimBatch))
			}
		}
	}
}
