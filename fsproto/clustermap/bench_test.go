package clustermap

import (
	"fmt"
	"testing"
)

// benchMap is a large cluster: 300 nodes in 3 zones and 10 racks each, and
// 16 containers of 256 PGs with 3 replicas (4096 PGs).
func benchMap(b *testing.B) *Map {
	m := New()
	var err error
	for i := 1; i <= 300; i++ {
		m, err = m.Apply(AddNode{ID: NodeID(i), Addr: fmt.Sprintf("10.0.%d.%d:7000", i/256, i%256),
			Labels: map[string]string{"zone": fmt.Sprint("z", i%3), "rack": fmt.Sprint("r", i%30)}, Capacity: 1 << 42})
		if err != nil {
			b.Fatal(err)
		}
	}
	for c := 0; c < 16; c++ {
		m, err = m.Apply(CreateContainer{Name: fmt.Sprint("c", c), Policy: Policy{Replicas: 3, FailureDomain: "zone", PGCount: 256}})
		if err != nil {
			b.Fatal(err)
		}
	}
	return m
}

// BenchmarkApplyNodeDown measures the manager's cost of a node failure:
// clone the map and re-place every PG (the failed node's get a
// replacement).
func BenchmarkApplyNodeDown(b *testing.B) {
	m := benchMap(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Apply(SetNodeState{ID: NodeID(1 + i%300), State: Down}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalMap(b *testing.B) {
	m := benchMap(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMap(b *testing.B) {
	enc, err := benchMap(b).MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := DecodeMap(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLocate(b *testing.B) {
	m := benchMap(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Locate(ContainerID(1+i%16), uint64(i), uint64(i>>4)); err != nil {
			b.Fatal(err)
		}
	}
}
