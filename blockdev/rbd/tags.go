package rbd

import (
	"strings"
)

// Tags that a backup writes on its checkpoint; docs/rbd.md lists them.
// Later backups plan from them (which image, which snapshot, how many
// incrementals), so they are part of the repository format.
const (
	TagPool         = "rbd.pool"
	TagNamespace    = "rbd.namespace"
	TagImage        = "rbd.image"
	TagImageID      = "rbd.image_id"
	TagSnap         = "rbd.snap"
	TagSnapID       = "rbd.snap_id"
	TagSnapManaged  = "rbd.snap_managed"
	TagBaseSnap     = "rbd.base_snap"
	TagMode         = "rbd.mode"
	TagDiff         = "rbd.diff"
	TagIncrementals = "rbd.incrementals"
	TagFullReason   = "rbd.full_reason"
	TagFallback     = "rbd.fallback"
	TagSampled      = "rbd.verify_sampled"
	TagSampledBytes = "rbd.verify_bytes"
)

// TagPrefix starts every tag cairn sets on an RBD checkpoint; user tags
// may not use it.
const TagPrefix = "rbd."

// IsReservedTag reports whether a user tag would collide with cairn's.
func IsReservedTag(k string) bool { return strings.HasPrefix(k, TagPrefix) }

// FallbackSnapMissing is the rbd.fallback tag of a backup whose base
// snapshot had been deleted.
const FallbackSnapMissing = "base snapshot missing"

// SnapshotOf returns the snapshot a checkpoint with these tags was made
// from; ok is false for a checkpoint that is not of an RBD snapshot.
func SnapshotOf(tags map[string]string) (s Spec, ok bool) {
	s = Spec{Pool: tags[TagPool], Namespace: tags[TagNamespace], Image: tags[TagImage], Snap: tags[TagSnap]}
	return s, s.Pool != "" && s.Image != "" && s.Snap != ""
}

// HasManagedSnapshot reports whether a checkpoint with these tags was made
// from a snapshot that the repository with ID repoID created and removes
// again.
func HasManagedSnapshot(tags map[string]string, repoID string) bool {
	s, ok := SnapshotOf(tags)
	return ok && tags[TagSnapManaged] == "true" && IsManaged(repoID, s.Snap)
}
