package rbd

import (
	"fmt"
	"strings"

	"cairn/plugins"
)

// Type is the protectable type this plugin serves.
const Type = "OS::Cairn::RBDImage"

// InstanceID is the stable ID of the image with internal ID imageID in
// pool and namespace.
func InstanceID(pool, namespace, imageID string) string {
	return plugins.NameUUID("cairn-rbd:" + pool + "/" + namespace + "/" + imageID)
}

// location is one configured pool, or namespace of a pool; either may
// hold plugins.ProjectPlaceholder until expanded for a project.
type location struct {
	pool, namespace string
}

// parseLocation parses a configured "POOL" or "POOL/NAMESPACE".
func parseLocation(s string) (location, error) {
	pool, ns, _ := strings.Cut(s, "/")
	if pool == "" || strings.ContainsAny(s, "@") || strings.Contains(ns, "/") || strings.HasSuffix(s, "/") {
		return location{}, fmt.Errorf("RBD pool %q: want POOL or POOL/NAMESPACE", s)
	}
	return location{pool: pool, namespace: ns}, nil
}

func (l location) String() string {
	if l.namespace != "" {
		return l.pool + "/" + l.namespace
	}
	return l.pool
}

// forProject expands the placeholder.
func (l location) forProject(project string) (location, error) {
	pool, err := plugins.ForProject(l.pool, project)
	if err != nil {
		return location{}, err
	}
	ns, err := plugins.ForProject(l.namespace, project)
	return location{pool: pool, namespace: ns}, err
}

// partialMark is in the name of every partial image; one that starts
// with it is never an instance.
const partialMark = ".cairn-partial-"

// partialName is the name a restore to image writes under before the
// final rename; the repository's ID in it keeps two appliances that
// restore into one pool from removing each other's.
func partialName(repoID, image string) string {
	id := strings.ReplaceAll(repoID, "-", "")
	if len(id) > 8 {
		id = id[:8]
	}
	return image + partialMark + id
}

// isPartialName reports whether image is any appliance's partial image.
func isPartialName(image string) bool { return strings.Contains(image, partialMark) }

// isPartialOf reports whether image is a partial image of repoID.
func isPartialOf(repoID, image string) bool {
	i := strings.LastIndex(image, partialMark)
	return i > 0 && partialName(repoID, image[:i]) == image
}

// validImageName reports whether a restore may create an image called
// name: letters, digits, '.', '-' and '_', and not a partial image's.
func validImageName(name string) bool {
	if name == "" || len(name) > 200 || strings.Contains(name, partialMark) {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
