package cinder

import (
	"slices"
	"strings"
	"testing"
	"time"

	"cairn/internal/openstack"
)

func TestLeaks(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	snap := func(id, vol, repo, status string, at time.Duration) openstack.Snapshot {
		return openstack.Snapshot{ID: id, VolumeID: vol, Status: status, CreatedAt: t0.Add(at),
			Metadata: map[string]string{MetaManaged: "true", MetaRepository: repo}}
	}
	vol := func(id, project string, meta map[string]string) openstack.Volume {
		return openstack.Volume{ID: id, TenantID: project, Metadata: meta}
	}
	for _, tc := range []struct {
		name  string
		inv   openstack.Inventory
		leaks []string // kind:id
		kept  []string
	}{
		{name: "nothing of cairn's",
			inv: openstack.Inventory{Volumes: []openstack.Volume{vol("v1", "p", nil)},
				Snapshots:   []openstack.Snapshot{{ID: "user-snap", VolumeID: "v1", Status: "available"}},
				Attachments: []openstack.Attachment{{ID: "a1", VolumeID: "v1"}}}},
		{name: "one rotation snapshot per volume and repository is kept",
			inv: openstack.Inventory{Snapshots: []openstack.Snapshot{
				snap("s1", "v1", "r1", "available", 0), snap("s2", "v1", "r2", "available", time.Hour),
				snap("s3", "v2", "r1", "available", 0)}},
			kept: []string{"s1", "s2", "s3"}},
		{name: "older and failed snapshots leak",
			inv: openstack.Inventory{Volumes: []openstack.Volume{vol("v1", "p", nil)}, Snapshots: []openstack.Snapshot{
				snap("old", "v1", "r1", "available", 0), snap("new", "v1", "r1", "available", time.Hour),
				snap("bad", "v1", "r1", "error", 2*time.Hour)}},
			leaks: []string{"snapshot:bad", "snapshot:old"}, kept: []string{"new"}},
		{name: "cut-off restore and connector-only attachment on a protected volume",
			inv: openstack.Inventory{
				Volumes:   []openstack.Volume{vol("v1", "p", nil), vol("r1", "p", map[string]string{MetaJournal: "j1"})},
				Snapshots: []openstack.Snapshot{snap("s1", "v1", "r1", "available", 0)},
				Attachments: []openstack.Attachment{{ID: "mine", VolumeID: "v1"}, {ID: "nova", VolumeID: "v1", Instance: "srv"},
					{ID: "other", VolumeID: "v9"}}},
			leaks: []string{"attachment:mine", "volume:r1"}, kept: []string{"s1"}},
		{name: "temporary volume of the attach path, attached to the appliance",
			inv: openstack.Inventory{
				Volumes: []openstack.Volume{vol("v1", "p", nil),
					vol("t1", "p", map[string]string{MetaJournal: "j2", MetaTemporary: "v1"})},
				Snapshots:   []openstack.Snapshot{snap("s1", "v1", "r1", "available", 0)},
				Attachments: []openstack.Attachment{{ID: "appliance", VolumeID: "t1", Instance: "cairn-vm"}}},
			leaks: []string{"volume:t1"}, kept: []string{"s1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaks, kept := Leaks(&tc.inv)
			var gotL, gotK []string
			for _, l := range leaks {
				gotL = append(gotL, l.Kind+":"+l.ID)
				if l.Reason == "" {
					t.Errorf("leak %s has no reason", l.ID)
				}
				if l.ID == "t1" && !strings.Contains(l.Reason, "temporary") {
					t.Errorf("leak t1: reason %q does not say it is a temporary volume", l.Reason)
				}
			}
			for _, k := range kept {
				gotK = append(gotK, k.ID)
			}
			if !slices.Equal(gotL, tc.leaks) || !slices.Equal(gotK, tc.kept) {
				t.Fatalf("leaks %v kept %v; want %v, %v", gotL, gotK, tc.leaks, tc.kept)
			}
			for _, l := range leaks {
				if l.Volume == "v1" && l.Project != "p" {
					t.Errorf("leak %s: project %q, want the volume's", l.ID, l.Project)
				}
			}
		})
	}
}
