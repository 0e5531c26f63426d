package plugins

import (
	"cmp"
	"slices"
)

// Leak is an object cairn made in the cloud (Cinder, Glance, Nova, Ceph)
// that nothing needs any more: what `cairn admin leaks` lists. Each
// plugin classifies its own objects; Reason says what the object is and
// how to remove it.
type Leak struct {
	// Kind is snapshot, volume, attachment, image, server, rbd_group or
	// rbd_group_snapshot.
	Kind string `json:"kind"`
	// ID is the object's ID; for RBD objects POOL/GROUP and
	// POOL/GROUP@SNAP.
	ID string `json:"id"`
	// Volume is the Cinder volume the object belongs to, when it does.
	Volume  string `json:"volume_id,omitempty"`
	Project string `json:"project,omitempty"`
	Name    string `json:"name,omitempty"`
	Status  string `json:"status,omitempty"`
	Reason  string `json:"reason"`
}

// MergeLeaks joins the plugins' lists: an object two of them list (a
// restored volume both journaled and attached to a leaked server) once,
// as the first list has it; sorted by kind, then ID.
func MergeLeaks(lists ...[]Leak) []Leak {
	type key struct{ kind, id string }
	seen := map[key]bool{}
	var out []Leak
	for _, l := range lists {
		for _, x := range l {
			if k := (key{x.Kind, x.ID}); !seen[k] {
				seen[k] = true
				out = append(out, x)
			}
		}
	}
	slices.SortFunc(out, func(a, b Leak) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID)) })
	return out
}
