package backup

import (
	"fmt"
	"strconv"

	"cairn/blockdev/rbd"
	"cairn/dedup"
)

// DefaultVerifySample is the default fraction of the blocks a diff calls
// unchanged that a backup re-reads and compares with the parent.
const DefaultVerifySample = 0.01

// Plan is how one backup reads a device with snapshots.
type Plan struct {
	// Parent is the checkpoint this one follows; nil for none. With a
	// base snapshot its blocks are taken for the ones the diff calls
	// unchanged; without one it only speeds up deduplication.
	Parent *dedup.Checkpoint
	// BaseSnap is the snapshot to diff against; "" reads the whole image.
	BaseSnap string
	// FullReason says why the whole image is read ("" when incremental).
	FullReason string
	// Fallback is the rbd.fallback tag, set when an incremental was
	// expected and could not be done.
	Fallback string
	// Incrementals counts consecutive incrementals ending with this backup.
	Incrementals int
}

// PlanInput is what PlanBackup decides from. The caller picks the parent
// (the CLI from the repository's history, the appliance from its own
// state), so planning never lists the repository.
type PlanInput struct {
	ImageID string // the image's internal ID now
	Snaps   []Snap // the image's snapshots now
	// Parent is the checkpoint to follow, nil for none (a first backup).
	Parent *dedup.Checkpoint
	// FullReason, when set, reads the whole image for that reason; Parent,
	// if any, then only speeds up deduplication.
	FullReason string
	// FullEvery forces a whole read on every Nth backup (0: never).
	FullEvery int
	// IsBad reports whether a checkpoint failed verification against its
	// source (dedup.Repository.IsBadBase).
	IsBad func(id string) (bool, error)
}

// PlanBackup picks the base snapshot of a backup. Any doubt reads the
// whole image: a parent that failed verification, a parent of another
// image, a base snapshot that is gone or was recreated under the same
// name, or the FullEvery policy.
func PlanBackup(in PlanInput) (Plan, error) {
	p := in.Parent
	switch {
	case in.FullReason != "":
		return Plan{Parent: p, FullReason: in.FullReason}, nil
	case p == nil:
		return Plan{FullReason: "first backup of the image"}, nil
	}
	bad, err := in.IsBad(p.ID)
	if err != nil {
		return Plan{}, err
	}
	if bad {
		// Not even a parent: nothing of it is trusted.
		return Plan{FullReason: fmt.Sprintf("checkpoint %s failed verification against its source", p.ID)}, nil
	}
	plan := Plan{Parent: p}
	snap := p.Tags[rbd.TagSnap]
	switch {
	case p.Tags[rbd.TagImageID] == "" || snap == "":
		plan.FullReason = fmt.Sprintf("checkpoint %s is not of an RBD snapshot", p.ID)
		return plan, nil
	case p.Tags[rbd.TagImageID] != in.ImageID:
		plan.FullReason = fmt.Sprintf("checkpoint %s is of another image of that name (ID %s, now %s)", p.ID, p.Tags[rbd.TagImageID], in.ImageID)
		return plan, nil
	}
	info, ok := findSnap(in.Snaps, snap)
	if !ok || strconv.FormatUint(info.ID, 10) != p.Tags[rbd.TagSnapID] {
		plan.FullReason = fmt.Sprintf("base snapshot %s is gone", snap)
		if ok {
			plan.FullReason = fmt.Sprintf("base snapshot %s was recreated since checkpoint %s", snap, p.ID)
		}
		plan.Fallback = rbd.FallbackSnapMissing
		return plan, nil
	}
	n, _ := strconv.Atoi(p.Tags[rbd.TagIncrementals])
	if in.FullEvery > 0 && n+1 >= in.FullEvery {
		plan.FullReason = fmt.Sprintf("--full-every %d (%d incrementals since the last full read)", in.FullEvery, n)
		return plan, nil
	}
	plan.BaseSnap = snap
	plan.Incrementals = n + 1
	return plan, nil
}

// findSnap returns the snapshot called name among snaps.
func findSnap(snaps []Snap, name string) (Snap, bool) {
	for _, s := range snaps {
		if s.Name == name {
			return s, true
		}
	}
	return Snap{}, false
}
