package cluster_test

import (
	"context"
	"testing"

	"github.com/weftfs/weft/fsproto/replication"
)

// BenchmarkWrite4K writes 4 KiB chunks through the client to a 3-node
// cluster on loopback (replication 3, in-memory engines), one at a time
// and with b.RunParallel's goroutines.
func BenchmarkWrite4K(b *testing.B) {
	c := newCluster(b, 3, 16, replication.Config{})
	ct, err := c.dial(b).Container(testContainer)
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 4096)
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := ct.Write(ctx, 1, uint64(i%64), 0, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		var next atomicCounter
		b.RunParallel(func(pb *testing.PB) {
			inode := 2 + next.add()
			for i := 0; pb.Next(); i++ {
				if _, err := ct.Write(ctx, inode, uint64(i%64), 0, data); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkRead4K reads 4 KiB chunks through the client from a 3-node
// cluster on loopback (replication 3, in-memory engines), one at a time
// and with b.RunParallel's goroutines: each read costs the primary a
// ReadCheck round to its replicas (batched across concurrent reads).
func BenchmarkRead4K(b *testing.B) {
	c := newCluster(b, 3, 16, replication.Config{})
	ct, err := c.dial(b).Container(testContainer)
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 4096)
	ctx := context.Background()
	for i := range 64 {
		if _, err := ct.Write(ctx, 1, uint64(i), 0, data); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := ct.Read(ctx, 1, uint64(i%64), 0, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 4096)
			for i := 0; pb.Next(); i++ {
				if _, err := ct.Read(ctx, 1, uint64(i%64), 0, buf); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
