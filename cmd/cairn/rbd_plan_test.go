package main

import (
	"errors"
	"testing"

	"cairn/blockdev/rbd"
	"cairn/dedup"
)

func rbdCP(id, source, imageID, snap string) *dedup.Checkpoint {
	return &dedup.Checkpoint{ID: id, Source: source, Tags: map[string]string{rbd.TagImageID: imageID, rbd.TagSnap: snap}}
}

// TestChooseRBDParent: the CLI takes the parent from the repository's
// history (backup.PlanBackup, tested in package backup, decides the rest).
func TestChooseRBDParent(t *testing.T) {
	const img = "rbd:p/vol"
	history := []*dedup.Checkpoint{
		rbdCP("c1", img, "id1", "s1"),
		rbdCP("c2", "rbd:p/other", "id9", "x"),
		rbdCP("c3", img, "id1", "s3"),
	}
	base := parentInput{imageName: img, imageID: "id1", history: history}
	tests := []struct {
		name           string
		edit           func(*parentInput)
		parent, latest string // "" for none
		reason         string
	}{
		{name: "the latest of the image", parent: "c3", latest: "c3"},
		{name: "first backup", edit: func(in *parentInput) { in.history = history[1:2] }},
		{name: "--full", edit: func(in *parentInput) { in.full = true }, latest: "c3", reason: "--full"},
		{name: "--parent", edit: func(in *parentInput) { in.parentID = "c1" }, parent: "c1", latest: "c3"},
		{name: "--base-snap", edit: func(in *parentInput) { in.baseSnap = "s1" }, parent: "c1", latest: "c3"},
		{name: "--base-snap of another image of that name", edit: func(in *parentInput) { in.baseSnap, in.imageID = "s1", "id2" },
			parent: "c3", latest: "c3", reason: "no checkpoint of snapshot s1"},
		{name: "--base-snap without a checkpoint", edit: func(in *parentInput) { in.baseSnap = "zz" },
			parent: "c3", latest: "c3", reason: "no checkpoint of snapshot zz"},
	}
	id := func(cp *dedup.Checkpoint) string {
		if cp == nil {
			return ""
		}
		return cp.ID
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := base
			if tc.edit != nil {
				tc.edit(&in)
			}
			p, err := chooseRBDParent(in)
			if err != nil {
				t.Fatal(err)
			}
			if id(p.parent) != tc.parent || id(p.latest) != tc.latest || p.fullReason != tc.reason {
				t.Errorf("parent %q latest %q reason %q; want %q %q %q", id(p.parent), id(p.latest), p.fullReason, tc.parent, tc.latest, tc.reason)
			}
		})
	}
	in := base
	in.parentID = "nope"
	if _, err := chooseRBDParent(in); !errors.Is(err, dedup.ErrCheckpointNotFound) {
		t.Errorf("unknown --parent: err = %v", err)
	}
}

func TestRBDBackupValidate(t *testing.T) {
	ok := rbdBackupFlags{verifySample: 0.01}
	tests := []struct {
		name string
		req  rbdBackupRequest
		flag rbdBackupFlags
	}{
		{"bad spec", rbdBackupRequest{source: "rbd:pool"}, ok},
		{"sample above 1", rbdBackupRequest{source: "rbd:p/i"}, rbdBackupFlags{verifySample: 1.5}},
		{"negative full-every", rbdBackupRequest{source: "rbd:p/i"}, rbdBackupFlags{fullEvery: -1}},
		{"base-snap with --full", rbdBackupRequest{source: "rbd:p/i", full: true}, rbdBackupFlags{baseSnap: "s"}},
		{"base-snap is the source", rbdBackupRequest{source: "rbd:p/i@s"}, rbdBackupFlags{baseSnap: "s"}},
		{"reserved tag", rbdBackupRequest{source: "rbd:p/i", tags: map[string]string{"rbd.snap": "x"}}, ok},
	}
	for _, tc := range tests {
		tc.req.flags = &tc.flag
		var ue usageError
		if _, err := tc.req.validate(); !errors.As(err, &ue) {
			t.Errorf("%s: err = %v, want a usage error", tc.name, err)
		}
	}
	req := rbdBackupRequest{source: "rbd:p/i@s2", flags: &rbdBackupFlags{baseSnap: "s1", verifySample: 1}}
	if spec, err := req.validate(); err != nil || spec.Snap != "s2" {
		t.Errorf("valid request: %+v, %v", spec, err)
	}
}
