package engine

import (
	"testing"
	"time"
)

// TestCleanerBudget: the cleaner runs unpaced when free space is short
// (4 steps' worth at the reserve) or the foreground is idle, and otherwise
// spends only the credit the foreground's writes earned.
func TestCleanerBudget(t *testing.T) {
	o := CleanerOptions{FreeTarget: 0.15, BytesPerBatch: 256 << 10}
	const segments, reserve = 100, 2 // target 15 segments, half of it 7.5
	tests := []struct {
		name      string
		free      int64
		idle      bool
		credit    float64
		want      int
		wantPaced bool
	}{
		{name: "at the reserve", free: 3, credit: 0, want: 4 * o.BytesPerBatch},
		{name: "below half the target", free: 7, credit: 0, want: o.BytesPerBatch},
		{name: "idle foreground", free: 12, idle: true, credit: 0, want: o.BytesPerBatch},
		{name: "no credit", free: 12, credit: 0, want: 0, wantPaced: true},
		{name: "in debt", free: 12, credit: -5000, want: 0, wantPaced: true},
		{name: "some credit", free: 12, credit: 6000.5, want: 6001, wantPaced: true},
		{name: "credit above a step", free: 12, credit: 1 << 20, want: o.BytesPerBatch, wantPaced: true},
		{name: "at half the target", free: 8, credit: 100, want: 101, wantPaced: true},
	}
	for _, tt := range tests {
		got, paced := cleanerBudget(o, tt.free, reserve, segments, tt.idle, tt.credit)
		if got != tt.want || paced != tt.wantPaced {
			t.Errorf("%s: budget %d, paced %v; want %d, %v", tt.name, got, paced, tt.want, tt.wantPaced)
		}
	}
}

// TestCleanerCredit: a batch's foreground bytes earn pace bytes each
// while there is a victim, up to four steps' worth; relocation-only
// batches earn nothing and do not count as foreground activity.
func TestCleanerCredit(t *testing.T) {
	s := &shard{e: &Engine{opts: Options{Cleaner: CleanerOptions{BytesPerBatch: 64 << 10}}}}
	s.clean.victim = NoSegment
	now := time.Now()
	s.creditForeground(4096, now)
	if s.clean.credit != 0 || !s.clean.lastForeground.Equal(now) {
		t.Fatalf("without a victim: credit %v, last foreground %v; want 0 and the batch's start", s.clean.credit, s.clean.lastForeground)
	}
	s.clean.victim, s.clean.pace = 7, 2.5
	s.creditForeground(4096, now.Add(time.Millisecond))
	if s.clean.credit != 10240 {
		t.Fatalf("credit %v after 4096 bytes at pace 2.5, want 10240", s.clean.credit)
	}
	s.creditForeground(0, now.Add(time.Hour))
	if s.clean.credit != 10240 || !s.clean.lastForeground.Equal(now.Add(time.Millisecond)) {
		t.Fatalf("a relocation-only batch changed credit to %v or the last foreground to %v", s.clean.credit, s.clean.lastForeground)
	}
	s.creditForeground(1<<30, now)
	if s.clean.credit != 4*64<<10 {
		t.Fatalf("credit %v after a huge batch, want the cap %d", s.clean.credit, 4*64<<10)
	}
	// A relocation-only batch has no foreground bytes; a mixed one counts
	// only its foreground writes.
	b := &batch{descs: []Desc{{Kind: KindWrite, Length: 4096, Relocated: true}}, reloc: 1}
	if n := b.foregroundBytes(); n != 0 {
		t.Fatalf("relocation-only batch: %d foreground bytes", n)
	}
	b.descs = append(b.descs, Desc{Kind: KindWrite, Length: 5000}, Desc{Kind: KindTruncate})
	if n := b.foregroundBytes(); n != 5000 {
		t.Fatalf("mixed batch: %d foreground bytes, want 5000", n)
	}
}
