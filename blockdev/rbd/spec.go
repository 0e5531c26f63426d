package rbd

import (
	"fmt"
	"strings"
	"time"
)

// Prefix marks an RBD spec among source and target arguments.
const Prefix = "rbd:"

// Spec names an RBD image, or one snapshot of it.
type Spec struct {
	Pool      string
	Namespace string // "" for the default namespace
	Image     string
	Snap      string // "" for the image head
}

// IsSpec reports whether s is meant as an RBD spec (starts with "rbd:").
func IsSpec(s string) bool { return strings.HasPrefix(s, Prefix) }

// ParseSpec parses "rbd:POOL/IMAGE[@SNAP]" or
// "rbd:POOL/NAMESPACE/IMAGE[@SNAP]".
func ParseSpec(s string) (Spec, error) {
	rest, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		return Spec{}, fmt.Errorf("%q: %w: want rbd:POOL/IMAGE[@SNAP]", s, ErrBadSpec)
	}
	var sp Spec
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		rest, sp.Snap = rest[:i], rest[i+1:]
		if sp.Snap == "" {
			return Spec{}, fmt.Errorf("%q: %w: empty snapshot name after @", s, ErrBadSpec)
		}
	}
	parts := strings.Split(rest, "/")
	switch len(parts) {
	case 2:
		sp.Pool, sp.Image = parts[0], parts[1]
	case 3:
		sp.Pool, sp.Namespace, sp.Image = parts[0], parts[1], parts[2]
	default:
		return Spec{}, fmt.Errorf("%q: %w: want rbd:POOL/IMAGE or rbd:POOL/NAMESPACE/IMAGE", s, ErrBadSpec)
	}
	for _, p := range parts {
		if p == "" {
			return Spec{}, fmt.Errorf("%q: %w: empty pool, namespace or image name", s, ErrBadSpec)
		}
	}
	if strings.ContainsAny(sp.Snap, "/@") {
		return Spec{}, fmt.Errorf("%q: %w: bad snapshot name", s, ErrBadSpec)
	}
	return sp, nil
}

// ImageName is the spec without its snapshot: the source name of every
// checkpoint of the image.
func (s Spec) ImageName() string {
	if s.Namespace != "" {
		return Prefix + s.Pool + "/" + s.Namespace + "/" + s.Image
	}
	return Prefix + s.Pool + "/" + s.Image
}

// String formats the spec as ParseSpec reads it.
func (s Spec) String() string {
	if s.Snap != "" {
		return s.ImageName() + "@" + s.Snap
	}
	return s.ImageName()
}

// WithSnap returns the spec of snapshot snap of the same image.
func (s Spec) WithSnap(snap string) Spec {
	s.Snap = snap
	return s
}

// SnapInfo describes one snapshot of an image. The ID tells a snapshot
// from a later one that reuses its name.
type SnapInfo struct {
	ID   uint64
	Name string
	Size int64
}

// FindSnap returns the snapshot called name among snaps.
func FindSnap(snaps []SnapInfo, name string) (SnapInfo, bool) {
	for _, s := range snaps {
		if s.Name == name {
			return s, true
		}
	}
	return SnapInfo{}, false
}

// SnapPrefix is the common prefix of every snapshot cairn manages.
const SnapPrefix = "cairn-"

// ManagedPrefix is the name prefix of the snapshots that the repository
// with ID repoID manages: "cairn-" and the first 8 characters of the ID.
// Scoping by repository keeps two repositories that back up the same image
// from removing each other's base snapshot.
func ManagedPrefix(repoID string) string {
	id := strings.ReplaceAll(repoID, "-", "")
	if len(id) > 8 {
		id = id[:8]
	}
	return SnapPrefix + id + "-"
}

// SnapName is the name of a new managed snapshot taken at t, made unique
// by the nanoseconds and a random suffix.
func SnapName(repoID string, t time.Time, suffix string) string {
	return ManagedPrefix(repoID) + t.UTC().Format("20060102T150405.000000000Z") + "-" + suffix
}

// IsManaged reports whether snapshot name was made by SnapName for repoID.
func IsManaged(repoID, name string) bool {
	return strings.HasPrefix(name, ManagedPrefix(repoID))
}
