package cinder

import (
	"cmp"
	"slices"

	"cairn/internal/openstack"
	"cairn/plugins"
)

// Leak is an object of cairn's in Cinder that nothing needs any more
// (kinds snapshot, volume, attachment).
type Leak = plugins.Leak

// Kept is a rotation snapshot: cairn's on purpose, the base of the
// volume's next incremental.
type Kept struct {
	ID         string `json:"id"`
	Volume     string `json:"volume_id"`
	Repository string `json:"repository"`
	Name       string `json:"name,omitempty"`
}

// Leaks sorts cairn's objects in inv into those that are needed (one
// rotation snapshot per volume and repository: the newest available one)
// and leaks:
//   - a cairn snapshot older than the volume's rotation snapshot of the
//     same repository, or one that is not available (a failed create);
//   - a volume still carrying cairn.journal metadata: a restore that was
//     cut off before it finished;
//   - a temporary volume of the attach read path (cairn.temporary_of):
//     each lives only while its protection reads it;
//   - an attachment without an instance on a volume cairn protects (it
//     has a cairn snapshot): cairn's attachments live only while a
//     protection or restore reads or writes the volume. Another tool's
//     connector-only attachment on such a volume is listed too; its
//     reason says what to check.
//
// A running protection or restore has such objects for a while: run it
// when none runs, or run it twice.
func Leaks(inv *openstack.Inventory) (leaks []Leak, kept []Kept) {
	type key struct{ volume, repo string }
	newest := map[key]openstack.Snapshot{}
	protected := map[string]bool{}
	var managed []openstack.Snapshot
	for _, s := range inv.Snapshots {
		if s.Metadata[MetaManaged] != "true" {
			continue
		}
		protected[s.VolumeID] = true
		if s.Status != "available" {
			leaks = append(leaks, Leak{Kind: "snapshot", ID: s.ID, Volume: s.VolumeID, Name: s.Name, Status: s.Status,
				Reason: "cairn snapshot in status " + s.Status + ": a create that failed or a delete that did not finish"})
			continue
		}
		managed = append(managed, s)
		k := key{s.VolumeID, s.Metadata[MetaRepository]}
		if n, ok := newest[k]; !ok || s.CreatedAt.After(n.CreatedAt) || (s.CreatedAt.Equal(n.CreatedAt) && s.ID > n.ID) {
			newest[k] = s
		}
	}
	for _, s := range managed {
		k := key{s.VolumeID, s.Metadata[MetaRepository]}
		if newest[k].ID == s.ID {
			kept = append(kept, Kept{ID: s.ID, Volume: s.VolumeID, Repository: k.repo, Name: s.Name})
			continue
		}
		leaks = append(leaks, Leak{Kind: "snapshot", ID: s.ID, Volume: s.VolumeID, Name: s.Name, Status: s.Status,
			Reason: "older cairn snapshot: the volume's rotation snapshot for repository " + k.repo + " is " + newest[k].ID})
	}
	for _, v := range inv.Volumes {
		if of := v.Metadata[MetaTemporary]; of != "" {
			leaks = append(leaks, Leak{Kind: "volume", ID: v.ID, Volume: v.ID, Project: v.TenantID, Name: v.Name, Status: v.Status,
				Reason: "temporary volume of a protection through the appliance's attachment (a copy of a snapshot of volume " + of + "; metadata " + MetaTemporary + ")"})
			continue
		}
		if v.Metadata[MetaJournal] != "" {
			leaks = append(leaks, Leak{Kind: "volume", ID: v.ID, Volume: v.ID, Project: v.TenantID, Name: v.Name, Status: v.Status,
				Reason: "volume of a restore that did not finish (metadata " + MetaJournal + ")"})
		}
	}
	for _, a := range inv.Attachments {
		if a.Instance == "" && protected[a.VolumeID] {
			leaks = append(leaks, Leak{Kind: "attachment", ID: a.ID, Volume: a.VolumeID, Status: a.Status,
				Reason: "attachment without an instance on a volume cairn protects: cairn's, unless another tool attached it"})
		}
	}
	owner := make(map[string]string, len(inv.Volumes))
	for _, v := range inv.Volumes {
		owner[v.ID] = v.TenantID
	}
	for i := range leaks {
		if leaks[i].Project == "" {
			leaks[i].Project = owner[leaks[i].Volume]
		}
	}
	slices.SortFunc(leaks, func(a, b Leak) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID)) })
	slices.SortFunc(kept, func(a, b Kept) int { return cmp.Compare(a.ID, b.ID) })
	return leaks, kept
}
