package namespace

import (
	"fmt"
	"testing"
)

// bigNamespace has dirs directories of files files each.
func bigNamespace(b *testing.B, dirs, files int) *Namespace {
	ns := New()
	for d := 0; d < dirs; d++ {
		dino := mustApply(b, ns, Mkdir{Parent: RootIno, Name: fmt.Sprint("d", d), Mode: 0o755}).Attr.Ino
		for f := 0; f < files; f++ {
			mustApply(b, ns, Create{Parent: dino, Name: fmt.Sprint("file-", f), Mode: 0o644})
		}
	}
	return ns
}

// BenchmarkApplyCreate measures a decoded, applied Create (what every
// replica does per entry) in a directory that keeps growing.
func BenchmarkApplyCreate(b *testing.B) {
	ns := New()
	cmds := make([][]byte, b.N)
	for i := range cmds {
		cmds[i], _ = MarshalCommand(Create{Parent: RootIno, Name: fmt.Sprint("f", i), Mode: 0o644, Excl: true, Now: int64(i)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res := ns.Apply(uint64(i+1), cmds[i]).(Result); res.Err != nil {
			b.Fatal(res.Err)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	ns := bigNamespace(b, 10, 10000)
	d, _ := ns.Lookup(RootIno, "d5")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ns.Lookup(d.Ino, "file-5000"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshot encodes and decodes (with Check) 100,000 inodes: the
// cost the Raft Ready loop pays every SnapshotEvery entries, and a
// follower's on install.
func BenchmarkSnapshot(b *testing.B) {
	ns := bigNamespace(b, 100, 1000)
	snap, _ := ns.Snapshot()
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(snap)))
		for i := 0; i < b.N; i++ {
			ns.Snapshot()
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(snap)))
		for i := 0; i < b.N; i++ {
			if _, err := DecodeSnapshot(snap); err != nil {
				b.Fatal(err)
			}
		}
	})
}
