package main

import (
	"fmt"
	"strconv"

	"cairn/blockdev/rbd"
	"cairn/dedup"
)

// Tags that an RBD backup writes on its checkpoint. docs/rbd.md lists them.
const (
	tagPool         = "rbd.pool"
	tagNamespace    = "rbd.namespace"
	tagImage        = "rbd.image"
	tagImageID      = "rbd.image_id"
	tagSnap         = "rbd.snap"
	tagSnapID       = "rbd.snap_id"
	tagSnapManaged  = "rbd.snap_managed"
	tagBaseSnap     = "rbd.base_snap"
	tagMode         = "rbd.mode"
	tagDiff         = "rbd.diff"
	tagIncrementals = "rbd.incrementals"
	tagFullReason   = "rbd.full_reason"
	tagFallback     = "rbd.fallback"
	tagSampled      = "rbd.verify_sampled"
	tagSampledBytes = "rbd.verify_bytes"
)

// fallbackSnapMissing is the rbd.fallback tag of a backup whose base
// snapshot had been deleted.
const fallbackSnapMissing = "base snapshot missing"

// rbdPlan is how one RBD backup reads the image.
type rbdPlan struct {
	// parent is the checkpoint this one follows; nil for none. With a
	// base snapshot its blocks are taken for the ones the diff calls
	// unchanged; without one it only speeds up deduplication.
	parent *dedup.Checkpoint
	// baseSnap is the snapshot to diff against; "" reads the whole image.
	baseSnap string
	// fullReason says why the whole image is read ("" when incremental).
	fullReason string
	// fallback is the rbd.fallback tag, set when an incremental was
	// expected and could not be done.
	fallback string
	// incrementals counts consecutive incrementals ending with this backup.
	incrementals int
}

// planInput is what planRBD decides from.
type planInput struct {
	imageName string              // the checkpoints' source name
	imageID   string              // the image's internal ID
	history   []*dedup.Checkpoint // every checkpoint, oldest first
	snaps     []rbd.SnapInfo      // the image's snapshots now
	parentID  string              // --parent, resolved to a full ID
	full      bool                // --full
	baseSnap  string              // --base-snap
	fullEvery int                 // --full-every
	isBad     func(id string) (bool, error)
}

// planRBD picks the parent and the base snapshot of an RBD backup. Any
// doubt reads the whole image: a checkpoint that failed verification, a
// parent of another image, a base snapshot that is gone or was recreated
// under the same name, or the --full-every policy.
func planRBD(in planInput) (rbdPlan, error) {
	if in.full {
		return rbdPlan{fullReason: "--full"}, nil
	}
	var p *dedup.Checkpoint
	switch {
	case in.parentID != "":
		for _, cp := range in.history {
			if cp.ID == in.parentID {
				p = cp
			}
		}
		if p == nil {
			return rbdPlan{}, fmt.Errorf("parent %s: %w", in.parentID, dedup.ErrCheckpointNotFound)
		}
	case in.baseSnap != "":
		for _, cp := range in.history {
			if cp.Source == in.imageName && cp.Tags[tagSnap] == in.baseSnap && cp.Tags[tagImageID] == in.imageID {
				p = cp
			}
		}
		if p == nil {
			return rbdPlan{parent: latestOf(in.history, in.imageName),
				fullReason: fmt.Sprintf("no checkpoint of snapshot %s", in.baseSnap)}, nil
		}
	default:
		if p = latestOf(in.history, in.imageName); p == nil {
			return rbdPlan{fullReason: "first backup of the image"}, nil
		}
	}

	bad, err := in.isBad(p.ID)
	if err != nil {
		return rbdPlan{}, err
	}
	if bad {
		// Not even a parent: nothing of it is trusted.
		return rbdPlan{fullReason: fmt.Sprintf("checkpoint %s failed verification against its source", p.ID)}, nil
	}
	plan := rbdPlan{parent: p}
	snap := p.Tags[tagSnap]
	switch {
	case p.Tags[tagImageID] == "" || snap == "":
		plan.fullReason = fmt.Sprintf("checkpoint %s is not of an RBD snapshot", p.ID)
		return plan, nil
	case p.Tags[tagImageID] != in.imageID:
		plan.fullReason = fmt.Sprintf("checkpoint %s is of another image of that name (ID %s, now %s)", p.ID, p.Tags[tagImageID], in.imageID)
		return plan, nil
	}
	info, ok := rbd.FindSnap(in.snaps, snap)
	if !ok || strconv.FormatUint(info.ID, 10) != p.Tags[tagSnapID] {
		plan.fullReason = fmt.Sprintf("base snapshot %s is gone", snap)
		if ok {
			plan.fullReason = fmt.Sprintf("base snapshot %s was recreated since checkpoint %s", snap, p.ID)
		}
		plan.fallback = fallbackSnapMissing
		return plan, nil
	}
	n, _ := strconv.Atoi(p.Tags[tagIncrementals])
	if in.fullEvery > 0 && n+1 >= in.fullEvery {
		plan.fullReason = fmt.Sprintf("--full-every %d (%d incrementals since the last full read)", in.fullEvery, n)
		return plan, nil
	}
	plan.baseSnap = snap
	plan.incrementals = n + 1
	return plan, nil
}

// latestOf returns the newest checkpoint of source in history, or nil.
func latestOf(history []*dedup.Checkpoint, source string) *dedup.Checkpoint {
	for i := len(history) - 1; i >= 0; i-- {
		if history[i].Source == source {
			return history[i]
		}
	}
	return nil
}

// validate checks the flags of an RBD backup that do not need Ceph.
func (req rbdBackupRequest) validate() (rbd.Spec, error) {
	spec, err := rbd.ParseSpec(req.source)
	if err != nil {
		return rbd.Spec{}, usageError{err}
	}
	f := req.flags
	switch {
	case f.verifySample < 0 || f.verifySample > 1:
		return rbd.Spec{}, usagef("--verify-sample %g: want a fraction from 0 to 1", f.verifySample)
	case f.fullEvery < 0:
		return rbd.Spec{}, usagef("--full-every %d: want 0 (never) or more", f.fullEvery)
	case f.baseSnap != "" && (req.parent != "" || req.full):
		return rbd.Spec{}, usagef("--base-snap cannot be combined with --parent or --full")
	case f.baseSnap != "" && f.baseSnap == spec.Snap:
		return rbd.Spec{}, usagef("--base-snap %s is the snapshot being backed up", f.baseSnap)
	}
	for k := range req.tags {
		if len(k) > 4 && k[:4] == "rbd." {
			return rbd.Spec{}, usagef("--tag %s: the rbd. prefix is reserved for cairn", k)
		}
	}
	return spec, nil
}
