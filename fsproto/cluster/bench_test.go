package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/weftfs/weft/fsproto/client"
	"github.com/weftfs/weft/fsproto/replication"
)

// BenchmarkWrite4K writes 4 KiB chunks through the client to a 3-node
// cluster on loopback (replication 3, in-memory engines), one at a time
// and with b.RunParallel's goroutines.
func BenchmarkWrite4K(b *testing.B) {
	ct, data := benchContainer(b)
	bench4K(b, len(data), func(ctx context.Context, inode, i uint64, buf []byte) error {
		_, err := ct.Write(ctx, inode, i%64, 0, data)
		return err
	})
}

// BenchmarkRead4K reads 4 KiB chunks through the client from a 3-node
// cluster on loopback (replication 3, in-memory engines), one at a time
// and with b.RunParallel's goroutines, on read leases (the default): a
// primary asks its replicas (a ReadCheck round) only to renew its lease.
func BenchmarkRead4K(b *testing.B) {
	benchRead4K(b, 0)
}

// BenchmarkRead4KRound is BenchmarkRead4K without read leases: each read
// costs the primary a ReadCheck round to its replicas (batched across
// concurrent reads).
func BenchmarkRead4KRound(b *testing.B) {
	benchRead4K(b, -1)
}

func benchRead4K(b *testing.B, lease time.Duration) {
	ct, data := benchContainerLease(b, lease)
	ctx := context.Background()
	for i := range 64 {
		for inode := uint64(1); inode <= 8; inode++ {
			if _, err := ct.Write(ctx, inode, uint64(i), 0, data); err != nil {
				b.Fatal(err)
			}
		}
	}
	bench4K(b, len(data), func(ctx context.Context, inode, i uint64, buf []byte) error {
		_, err := ct.Read(ctx, (inode-1)%8+1, i%64, 0, buf)
		return err
	})
}

// benchContainer starts the benchmarks' cluster and returns its
// container and a 4 KiB buffer.
func benchContainer(b *testing.B) (*client.Container, []byte) {
	return benchContainerLease(b, 0)
}

// benchContainerLease is benchContainer with the nodes'
// DataServerConfig.ReadLease.
func benchContainerLease(b *testing.B, lease time.Duration) (*client.Container, []byte) {
	c := newClusterLease(b, 3, 16, replication.Config{}, lease)
	ct, err := c.dial(b).Container(testContainer)
	if err != nil {
		b.Fatal(err)
	}
	return ct, make([]byte, 4096)
}

// bench4K runs op serially (inode 1) and from b.RunParallel's
// goroutines (an inode each), i counting each goroutine's calls.
func bench4K(b *testing.B, size int, op func(ctx context.Context, inode, i uint64, buf []byte) error) {
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.SetBytes(int64(size))
		b.ReportAllocs()
		buf := make([]byte, size)
		for i := uint64(0); b.Loop(); i++ {
			if err := op(ctx, 1, i, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetBytes(int64(size))
		b.ReportAllocs()
		var next atomicCounter
		b.RunParallel(func(pb *testing.PB) {
			inode := 2 + next.add()
			buf := make([]byte, size)
			for i := uint64(0); pb.Next(); i++ {
				if err := op(ctx, inode, i, buf); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
