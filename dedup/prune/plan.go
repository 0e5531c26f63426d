package prune

import (
	"time"

	"cairn/dedup/pack"
)

// plan is what the sweep does with one pack.
type plan int

const (
	// planKeep: mostly live; rewriting it would move live data to free
	// little.
	planKeep plan = iota
	// planDelete: nothing in it is live.
	planDelete
	// planCompact: live chunks are under CompactBelow of its stored bytes;
	// they are copied to new packs and the pack deleted.
	planCompact
	// planGrace: it would be deleted or compacted, but it is younger than
	// the fence, so a manifest not yet committed may still reference it.
	planGrace
)

func (p plan) String() string {
	switch p {
	case planKeep:
		return "keep"
	case planDelete:
		return "delete"
	case planCompact:
		return "compact"
	case planGrace:
		return "keep for grace"
	}
	return "unknown"
}

// usage sums a pack's entries: all of them, and those prune keeps.
type usage struct {
	entries, live          int
	storedBytes, liveBytes int64
}

func usageOf(entries []pack.Entry, live []bool) usage {
	u := usage{entries: len(entries)}
	for i, e := range entries {
		u.storedBytes += int64(e.StoredLen)
		if live[i] {
			u.liveBytes += int64(e.StoredLen)
			u.live++
		}
	}
	return u
}

// planPack decides from a pack's usage alone. Dead packs go whole and only
// nearly empty ones are compacted: rewriting a mostly live pack to free a
// few dead chunks would move most of the repository on every prune.
func planPack(u usage, compactBelow float64) plan {
	switch {
	case u.live == 0:
		return planDelete
	case u.live < u.entries && float64(u.liveBytes) < compactBelow*float64(u.storedBytes):
		return planCompact
	}
	return planKeep
}

// fenced holds back a pack planned for deletion or compaction that was
// created after the fence.
func fenced(p plan, created, fence time.Time) plan {
	if p != planKeep && created.After(fence) {
		return planGrace
	}
	return p
}

// freedEstimate is what a dry run reports freeing for a pack of stored
// shard bytes: all of them for a deletion, the dead share for a compaction.
func freedEstimate(p plan, u usage, stored int64) int64 {
	if p == planCompact {
		return stored * (u.storedBytes - u.liveBytes) / u.storedBytes
	}
	return stored
}
