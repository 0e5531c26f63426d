package nova

import (
	"cmp"
	"encoding/hex"
	"slices"
	"strings"

	"cairn/internal/openstack"
	"cairn/plugins"
)

// MetaJournal is the server metadata key naming the journal entry that
// created it; MetaNotes lists what a restore could not honour.
const (
	MetaJournal = "cairn.journal"
	MetaNotes   = "cairn.restore_notes"
)

// groupPrefix starts the name of every RBD group a protection makes.
const groupPrefix = "cairn-"

// GroupName is the name of the RBD group a protection of server makes:
// "cairn-", the server ID's first 8 characters, "-", 8 random hex
// digits. `cairn admin leaks` finds leftover groups by it (IsGroupName).
func GroupName(server string, random [4]byte) string {
	if len(server) > 8 {
		server = server[:8]
	}
	return groupPrefix + server + "-" + hex.EncodeToString(random[:])
}

// IsGroupName reports whether name is one GroupName makes.
func IsGroupName(name string) bool {
	rest, ok := strings.CutPrefix(name, groupPrefix)
	if !ok {
		return false
	}
	i := strings.LastIndexByte(rest, '-')
	if i < 1 || i > 8 || len(rest)-i-1 != 8 {
		return false
	}
	_, err := hex.DecodeString(rest[i+1:])
	return err == nil && !strings.ContainsAny(rest[:i], "/@")
}

// RBDGroup is an RBD group as `cairn admin leaks` sees it.
type RBDGroup struct {
	Pool, Name string
	// Images are its images, "POOL/IMAGE".
	Images []string
	// Snapshots are the names of its group snapshots.
	Snapshots []string
}

// ServerLeaks lists the servers that restores cut off before they
// finished left in Nova: those still carrying MetaJournal (a finished
// restore removes it), and the volumes attached to them (the restore
// made them; their own journal mark is gone once each was restored).
// servers is every server of every project. Nova deletes the ports it
// made for a server with the server: they are not listed.
func ServerLeaks(servers []openstack.Server) []plugins.Leak {
	var out []plugins.Leak
	for _, s := range servers {
		j := s.Metadata[MetaJournal]
		if j == "" {
			continue
		}
		var vols []string
		for _, v := range s.Volumes {
			vols = append(vols, v.ID)
		}
		reason := "server of a restore that did not finish (metadata " + MetaJournal + "=" + j + ", status " + s.Status +
			"); delete it with `openstack server delete " + s.ID + "` (Nova deletes the ports it made for it)"
		if len(vols) > 0 {
			reason += ", then its restored volumes " + strings.Join(vols, ", ")
		}
		out = append(out, plugins.Leak{Kind: "server", ID: s.ID, Project: s.TenantID, Name: s.Name, Status: s.Status, Reason: reason})
		for _, v := range vols {
			out = append(out, plugins.Leak{Kind: "volume", ID: v, Volume: v, Project: s.TenantID,
				Reason: "volume restored for server " + s.ID + " by a restore that did not finish; delete it with `openstack volume delete " + v +
					"` once the server is deleted"})
		}
	}
	sortLeaks(out)
	return out
}

// GroupLeaks lists the RBD groups named by GroupName, and their
// snapshots: a protection removes its group before it ends, so one that
// exists belongs to a protection that a crash cut off (or to one that
// is running). While it exists, Cinder cannot delete its images'
// volumes. volumes (every project's) name the project of the volumes
// whose images ("volume-ID", Cinder's naming) are in a group.
func GroupLeaks(groups []RBDGroup, volumes []openstack.Volume) []plugins.Leak {
	owner := make(map[string]string, len(volumes))
	for _, v := range volumes {
		owner["volume-"+v.ID] = v.TenantID
	}
	var out []plugins.Leak
	for _, g := range groups {
		if !IsGroupName(g.Name) {
			continue
		}
		id := g.Pool + "/" + g.Name
		project := ""
		for _, im := range g.Images {
			_, name, _ := strings.Cut(im, "/")
			if p := owner[name]; p != "" {
				project = p
				break
			}
		}
		images := "no images"
		if len(g.Images) > 0 {
			images = "images " + strings.Join(g.Images, ", ")
		}
		out = append(out, plugins.Leak{Kind: "rbd_group", ID: id, Project: project, Name: g.Name,
			Reason: "RBD group of a server protection that did not finish (" + images + "; Cinder cannot delete their volumes while it exists); " +
				"remove it with `rbd group rm " + id + "` (its snapshots go with it; the images stay)"})
		for _, s := range g.Snapshots {
			sid := id + "@" + s
			out = append(out, plugins.Leak{Kind: "rbd_group_snapshot", ID: sid, Project: project, Name: s,
				Reason: "snapshot of cairn's RBD group " + id + " (a snapshot of each of its images); remove it with `rbd group snap rm " + sid +
					"`, or remove the group"})
		}
	}
	sortLeaks(out)
	return out
}

func sortLeaks(ls []plugins.Leak) {
	slices.SortFunc(ls, func(a, b plugins.Leak) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID)) })
}
