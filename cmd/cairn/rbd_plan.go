package main

import (
	"fmt"

	"cairn/blockdev/rbd"
	"cairn/dedup"
)

// rbdParent is what the repository's history says an RBD backup follows;
// backup.Run plans the rest from it.
type rbdParent struct {
	parent     *dedup.Checkpoint // nil for none
	latest     *dedup.Checkpoint // the newest checkpoint of the image, nil for none
	fullReason string            // set when the whole image must be read
}

// parentInput is what chooseRBDParent decides from.
type parentInput struct {
	imageName string              // the checkpoints' source name
	imageID   string              // the image's internal ID
	history   []*dedup.Checkpoint // every checkpoint, oldest first
	parentID  string              // --parent, resolved to a full ID
	full      bool                // --full
	baseSnap  string              // --base-snap
}

// chooseRBDParent finds the parent of an RBD backup in the history: the
// one --parent names, the checkpoint of --base-snap, or the newest
// checkpoint of the image.
func chooseRBDParent(in parentInput) (rbdParent, error) {
	out := rbdParent{latest: latestOf(in.history, in.imageName)}
	switch {
	case in.full:
		out.fullReason = "--full"
	case in.parentID != "":
		for _, cp := range in.history {
			if cp.ID == in.parentID {
				out.parent = cp
			}
		}
		if out.parent == nil {
			return rbdParent{}, fmt.Errorf("parent %s: %w", in.parentID, dedup.ErrCheckpointNotFound)
		}
	case in.baseSnap != "":
		for _, cp := range in.history {
			if cp.Source == in.imageName && cp.Tags[rbd.TagSnap] == in.baseSnap && cp.Tags[rbd.TagImageID] == in.imageID {
				out.parent = cp
			}
		}
		if out.parent == nil {
			out.parent = out.latest
			out.fullReason = fmt.Sprintf("no checkpoint of snapshot %s", in.baseSnap)
		}
	default:
		out.parent = out.latest
	}
	return out, nil
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
		if rbd.IsReservedTag(k) {
			return rbd.Spec{}, usagef("--tag %s: the rbd. prefix is reserved for cairn", k)
		}
	}
	return spec, nil
}
