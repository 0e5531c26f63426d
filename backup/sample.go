package backup

import (
	"math"
	"math/rand/v2"

	"cairn/dedup"
)

// sampleUnchanged picks, uniformly at random and in increasing order,
// ceil(fraction × U) of the U blocks that no changed extent touches: at
// least one when U > 0 and fraction > 0, all of them at fraction 1. changed
// must be sorted and not overlap (blockdev.AlignExtents output). It walks
// the blocks once (Knuth's selection sampling) and keeps only the sample.
func sampleUnchanged(nblocks, bs int64, changed []dedup.Extent, fraction float64, rng *rand.Rand) (sample []int64, unchanged int64) {
	type run struct{ start, end int64 } // changed blocks [start, end)
	runs := make([]run, 0, len(changed))
	var changedBlocks int64
	for _, e := range changed {
		if e.Len <= 0 {
			continue
		}
		r := run{start: e.Off / bs, end: min((e.Off+e.Len+bs-1)/bs, nblocks)}
		if n := len(runs); n > 0 && r.start < runs[n-1].end {
			r.start = runs[n-1].end // overlapping input: count each block once
		}
		if r.start >= r.end {
			continue
		}
		runs = append(runs, r)
		changedBlocks += r.end - r.start
	}
	unchanged = nblocks - changedBlocks
	if unchanged <= 0 || fraction <= 0 {
		return nil, max(unchanged, 0)
	}
	want := int64(math.Ceil(float64(unchanged) * fraction))
	want = min(max(want, 1), unchanged)
	sample = make([]int64, 0, want)
	var seen int64
	ri := 0
	for b := int64(0); b < nblocks && int64(len(sample)) < want; b++ {
		if ri < len(runs) && b >= runs[ri].start {
			b = runs[ri].end - 1
			ri++
			continue
		}
		if rng.Int64N(unchanged-seen) < want-int64(len(sample)) {
			sample = append(sample, b)
		}
		seen++
	}
	return sample, unchanged
}
