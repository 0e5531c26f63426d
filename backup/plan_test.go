package backup

import (
	"errors"
	"strings"
	"testing"

	"cairn/blockdev/rbd"
	"cairn/dedup"
)

func rbdCP(id, imageID, snap, snapID, incrementals string) *dedup.Checkpoint {
	return &dedup.Checkpoint{ID: id, Source: "rbd:p/vol", Tags: map[string]string{
		rbd.TagImageID: imageID, rbd.TagSnap: snap, rbd.TagSnapID: snapID, rbd.TagIncrementals: incrementals,
	}}
}

// TestPlanBackup: the plan follows the parent it is given, and reads the
// whole image at any doubt about the parent or its snapshot.
func TestPlanBackup(t *testing.T) {
	parent := rbdCP("c3", "id1", "s3", "3", "2")
	snaps := []Snap{{ID: 1, Name: "s1"}, {ID: 3, Name: "s3"}}
	notBad := func(string) (bool, error) { return false, nil }
	base := PlanInput{ImageID: "id1", Snaps: snaps, Parent: parent, IsBad: notBad}

	tests := []struct {
		name       string
		edit       func(*PlanInput)
		parent     string // "" for none
		baseSnap   string
		reason     string // substring of FullReason
		fallback   string
		increments int
	}{
		{name: "incremental from the parent", parent: "c3", baseSnap: "s3", increments: 3},
		{name: "first backup", edit: func(in *PlanInput) { in.Parent = nil }, reason: "first backup"},
		{name: "whole read asked, no parent", edit: func(in *PlanInput) { in.Parent, in.FullReason = nil, "--full" }, reason: "--full"},
		{name: "whole read asked, parent deduplicates", edit: func(in *PlanInput) { in.FullReason = "no checkpoint of snapshot zz" },
			parent: "c3", reason: "no checkpoint of snapshot zz"},
		{name: "base snapshot deleted", edit: func(in *PlanInput) { in.Snaps = snaps[:1] }, parent: "c3", reason: "gone", fallback: rbd.FallbackSnapMissing},
		{name: "base snapshot recreated", edit: func(in *PlanInput) { in.Snaps = []Snap{{ID: 7, Name: "s3"}} },
			parent: "c3", reason: "recreated", fallback: rbd.FallbackSnapMissing},
		{name: "image recreated", edit: func(in *PlanInput) { in.ImageID = "id2" }, parent: "c3", reason: "another image"},
		{name: "parent failed verification", edit: func(in *PlanInput) {
			in.IsBad = func(id string) (bool, error) { return id == "c3", nil }
		}, reason: "failed verification"},
		{name: "full-every reached", edit: func(in *PlanInput) { in.FullEvery = 3 }, parent: "c3", reason: "--full-every 3"},
		{name: "full-every not reached", edit: func(in *PlanInput) { in.FullEvery = 4 }, parent: "c3", baseSnap: "s3", increments: 3},
		{name: "parent of a file", edit: func(in *PlanInput) { in.Parent = &dedup.Checkpoint{ID: "f1", Source: "rbd:p/vol"} },
			parent: "f1", reason: "not of an RBD snapshot"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := base
			if tc.edit != nil {
				tc.edit(&in)
			}
			p, err := PlanBackup(in)
			if err != nil {
				t.Fatal(err)
			}
			parent := ""
			if p.Parent != nil {
				parent = p.Parent.ID
			}
			if parent != tc.parent || p.BaseSnap != tc.baseSnap || p.Fallback != tc.fallback || p.Incrementals != tc.increments {
				t.Errorf("plan = parent %q base %q fallback %q incrementals %d; want %q %q %q %d",
					parent, p.BaseSnap, p.Fallback, p.Incrementals, tc.parent, tc.baseSnap, tc.fallback, tc.increments)
			}
			if (tc.reason == "") != (p.FullReason == "") || !strings.Contains(p.FullReason, tc.reason) {
				t.Errorf("FullReason = %q, want one containing %q", p.FullReason, tc.reason)
			}
		})
	}

	in := base
	in.IsBad = func(string) (bool, error) { return false, errors.New("store down") }
	if _, err := PlanBackup(in); err == nil {
		t.Error("a failing bad-base lookup was ignored")
	}
}
