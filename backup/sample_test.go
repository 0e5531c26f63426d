package backup

import (
	"math/rand/v2"
	"slices"
	"testing"

	"cairn/dedup"
)

func TestSampleUnchanged(t *testing.T) {
	const bs = 10
	rng := rand.New(rand.NewPCG(1, 2))
	// 20 blocks; changed: blocks 2-3, 10, and the partial last block 19.
	changed := []dedup.Extent{{Off: 20, Len: 20}, {Off: 100, Len: 10}, {Off: 190, Len: 5}}
	isChanged := func(b int64) bool { return b == 2 || b == 3 || b == 10 || b == 19 }
	tests := []struct {
		fraction    float64
		wantSampled int
	}{{0, 0}, {0.001, 1}, {0.25, 4}, {0.5, 8}, {1, 16}}
	for _, tc := range tests {
		sample, unchanged := sampleUnchanged(20, bs, changed, tc.fraction, rng)
		if unchanged != 16 || len(sample) != tc.wantSampled {
			t.Errorf("fraction %g: %d sampled of %d unchanged, want %d of 16", tc.fraction, len(sample), unchanged, tc.wantSampled)
		}
		if !slices.IsSorted(sample) || len(slices.Compact(slices.Clone(sample))) != len(sample) {
			t.Errorf("fraction %g: sample %v not sorted and distinct", tc.fraction, sample)
		}
		for _, b := range sample {
			if isChanged(b) || b < 0 || b >= 20 {
				t.Errorf("fraction %g: sampled block %d, which changed or is out of range", tc.fraction, b)
			}
		}
	}
	// Uniform: over many draws every unchanged block gets picked.
	seen := map[int64]bool{}
	for range 200 {
		s, _ := sampleUnchanged(20, bs, changed, 0.1, rng)
		for _, b := range s {
			seen[b] = true
		}
	}
	if len(seen) != 16 {
		t.Errorf("200 samples of 2 picked %d distinct blocks, want all 16", len(seen))
	}
	if s, u := sampleUnchanged(3, bs, []dedup.Extent{{Off: 0, Len: 30}}, 1, rng); len(s) != 0 || u != 0 {
		t.Errorf("all changed: sample %v of %d", s, u)
	}
}
