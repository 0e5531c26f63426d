package prune

import (
	"testing"
	"time"

	"cairn/dedup/pack"
)

// entriesOf returns one entry per size, and which of them are live.
func entriesOf(sizes []uint32, liveMask string) ([]pack.Entry, []bool) {
	entries := make([]pack.Entry, len(sizes))
	live := make([]bool, len(sizes))
	for i, n := range sizes {
		entries[i] = pack.Entry{ID: pack.ChunkID{byte(i)}, StoredLen: n}
		live[i] = liveMask[i] == 'L'
	}
	return entries, live
}

func TestPlanPack(t *testing.T) {
	fence := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	old, young := fence.Add(-time.Minute), fence.Add(time.Minute)
	ten := []uint32{100, 100, 100, 100, 100, 100, 100, 100, 100, 100}
	tests := []struct {
		name         string
		sizes        []uint32
		live         string // one letter per entry: L live, anything else dead
		compactBelow float64
		created      time.Time
		want         plan
	}{
		{"all dead: delete", ten, "..........", 0.2, old, planDelete},
		{"empty header (a write that never finished): delete", nil, "", 0.2, old, planDelete},
		{"all live: keep", ten, "LLLLLLLLLL", 0.2, old, planKeep},
		{"live share below the threshold: compact", ten, "L.........", 0.2, old, planCompact},
		{"live share at the threshold: keep", ten, "LL........", 0.2, old, planKeep},
		{"live share above the threshold: keep", ten, "LLLLLL....", 0.2, old, planKeep},
		{"share is by stored bytes, not by count", []uint32{10, 1000}, "L.", 0.2, old, planCompact},
		{"share is by stored bytes: one big live chunk keeps it", []uint32{1000, 10, 10, 10, 10}, "L....", 0.2, old, planKeep},
		{"negative CompactBelow never compacts", ten, "L.........", -1, old, planKeep},
		{"a higher threshold compacts more", ten, "LLLLLL....", 0.7, old, planCompact},
		{"all live never compacts, whatever the threshold", ten, "LLLLLLLLLL", 2, old, planKeep},
		{"dead but younger than the fence: grace", ten, "..........", 0.2, young, planGrace},
		{"compactable but younger than the fence: grace", ten, "L.........", 0.2, young, planGrace},
		{"created at the fence itself: not protected", ten, "..........", 0.2, fence, planDelete},
		{"kept whatever its age", ten, "LLLLLLLLLL", 0.2, young, planKeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, live := entriesOf(tt.sizes, tt.live)
			got := fenced(planPack(usageOf(entries, live), tt.compactBelow), tt.created, fence)
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUsageOf(t *testing.T) {
	entries, live := entriesOf([]uint32{10, 20, 30, 40}, "L.L.")
	got := usageOf(entries, live)
	want := usage{entries: 4, live: 2, storedBytes: 100, liveBytes: 40}
	if got != want {
		t.Fatalf("usage %+v, want %+v", got, want)
	}
}

func TestFreedEstimate(t *testing.T) {
	u := usage{entries: 10, live: 1, storedBytes: 1000, liveBytes: 100}
	tests := []struct {
		p      plan
		stored int64
		want   int64
	}{
		{planDelete, 6000, 6000},
		{planCompact, 6000, 5400}, // the dead 90 %
	}
	for _, tt := range tests {
		if got := freedEstimate(tt.p, u, tt.stored); got != tt.want {
			t.Errorf("%v of %d shard bytes: %d freed, want %d", tt.p, tt.stored, got, tt.want)
		}
	}
}
