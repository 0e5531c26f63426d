package glance

import (
	"cmp"
	"slices"

	"cairn/internal/openstack"
	"cairn/plugins"
)

// Leaks lists the images that restores cut off before they finished
// left in Glance: those still carrying the journal property MetaJournal
// (a finished restore removes it). Such an image is queued (no data
// yet), saving (its upload was cut off), killed (the upload failed) or,
// rarely, active with the property left (the last step failed). ims is
// every image of every project; the rest are not cairn's or are done.
// A restore that is running has such an image for a while.
func Leaks(ims []openstack.Image) []plugins.Leak {
	var out []plugins.Leak
	for _, im := range ims {
		j, _ := im.Properties[MetaJournal].(string)
		if j == "" {
			continue
		}
		remove := "delete it with `openstack image delete " + im.ID + "`"
		if im.Protected {
			remove = "unprotect it with `openstack image set --unprotected " + im.ID + "`, then " + remove
		}
		out = append(out, plugins.Leak{Kind: "image", ID: im.ID, Project: im.Owner, Name: im.Name, Status: string(im.Status),
			Reason: "image of a restore that did not finish (property " + MetaJournal + "=" + j + ", status " + string(im.Status) +
				"); " + remove})
	}
	slices.SortFunc(out, func(a, b plugins.Leak) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
