package main

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"cairn/blockdev/rbd"
	"cairn/dedup"
)

func rbdCP(id, source, imageID, snap, snapID, incrementals string) *dedup.Checkpoint {
	return &dedup.Checkpoint{ID: id, Source: source, Tags: map[string]string{
		tagImageID: imageID, tagSnap: snap, tagSnapID: snapID, tagIncrementals: incrementals,
	}}
}

func TestPlanRBD(t *testing.T) {
	const img = "rbd:p/vol"
	history := []*dedup.Checkpoint{
		rbdCP("c1", img, "id1", "s1", "1", "0"),
		rbdCP("c2", "rbd:p/other", "id9", "x", "5", "0"),
		rbdCP("c3", img, "id1", "s3", "3", "2"),
	}
	snaps := []rbd.SnapInfo{{ID: 1, Name: "s1"}, {ID: 3, Name: "s3"}}
	notBad := func(string) (bool, error) { return false, nil }
	base := planInput{imageName: img, imageID: "id1", history: history, snaps: snaps, isBad: notBad}

	tests := []struct {
		name       string
		edit       func(*planInput)
		parent     string // "" for none
		baseSnap   string
		reason     string // substring of fullReason
		fallback   string
		increments int
	}{
		{name: "incremental from the latest", parent: "c3", baseSnap: "s3", increments: 3},
		{name: "first backup", edit: func(in *planInput) { in.history = history[1:2] }, reason: "first backup"},
		{name: "--full", edit: func(in *planInput) { in.full = true }, reason: "--full"},
		{name: "--parent", edit: func(in *planInput) { in.parentID = "c1" }, parent: "c1", baseSnap: "s1", increments: 1},
		{name: "--base-snap", edit: func(in *planInput) { in.baseSnap = "s1" }, parent: "c1", baseSnap: "s1", increments: 1},
		{name: "--base-snap without a checkpoint", edit: func(in *planInput) { in.baseSnap = "zz" }, parent: "c3", reason: "no checkpoint of snapshot zz"},
		{name: "base snapshot deleted", edit: func(in *planInput) { in.snaps = snaps[:1] }, parent: "c3", reason: "gone", fallback: fallbackSnapMissing},
		{name: "base snapshot recreated", edit: func(in *planInput) { in.snaps = []rbd.SnapInfo{{ID: 7, Name: "s3"}} },
			parent: "c3", reason: "recreated", fallback: fallbackSnapMissing},
		{name: "image recreated", edit: func(in *planInput) { in.imageID = "id2" }, parent: "c3", reason: "another image"},
		{name: "parent failed verification", edit: func(in *planInput) {
			in.isBad = func(id string) (bool, error) { return id == "c3", nil }
		}, reason: "failed verification"},
		{name: "--full-every reached", edit: func(in *planInput) { in.fullEvery = 3 }, parent: "c3", reason: "--full-every 3"},
		{name: "--full-every not reached", edit: func(in *planInput) { in.fullEvery = 4 }, parent: "c3", baseSnap: "s3", increments: 3},
		{name: "parent of a file", edit: func(in *planInput) {
			in.history = append(slices.Clone(history), &dedup.Checkpoint{ID: "f1", Source: img})
		}, parent: "f1", reason: "not of an RBD snapshot"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := base
			if tc.edit != nil {
				tc.edit(&in)
			}
			p, err := planRBD(in)
			if err != nil {
				t.Fatal(err)
			}
			parent := ""
			if p.parent != nil {
				parent = p.parent.ID
			}
			if parent != tc.parent || p.baseSnap != tc.baseSnap || p.fallback != tc.fallback || p.incrementals != tc.increments {
				t.Errorf("plan = parent %q base %q fallback %q incrementals %d; want %q %q %q %d",
					parent, p.baseSnap, p.fallback, p.incrementals, tc.parent, tc.baseSnap, tc.fallback, tc.increments)
			}
			if (tc.reason == "") != (p.fullReason == "") || !strings.Contains(p.fullReason, tc.reason) {
				t.Errorf("fullReason = %q, want one containing %q", p.fullReason, tc.reason)
			}
		})
	}

	in := base
	in.parentID = "nope"
	if _, err := planRBD(in); !errors.Is(err, dedup.ErrCheckpointNotFound) {
		t.Errorf("unknown --parent: err = %v", err)
	}
	in = base
	in.isBad = func(string) (bool, error) { return false, errors.New("store down") }
	if _, err := planRBD(in); err == nil {
		t.Error("a failing bad-base lookup was ignored")
	}
}

func TestSampleUnchanged(t *testing.T) {
	const bs = 10
	rng := rand.New(rand.NewPCG(1, 2))
	// 20 blocks; changed: blocks 2-3, 10, and the partial last block 19.
	changed := []dedup.Extent{{Off: 20, Len: 20}, {Off: 100, Len: 10}, {Off: 190, Len: 5}}
	isChanged := func(b int64) bool { return b == 2 || b == 3 || b == 10 || b == 19 }
	tests := []struct {
		fraction    float64
		wantSampled int
	}{{0, 0}, {0.001, 1}, {0.25, 4}, {0.5, 8}, {1, 16}}
	for _, tc := range tests {
		sample, unchanged := sampleUnchanged(20, bs, changed, tc.fraction, rng)
		if unchanged != 16 || len(sample) != tc.wantSampled {
			t.Errorf("fraction %g: %d sampled of %d unchanged, want %d of 16", tc.fraction, len(sample), unchanged, tc.wantSampled)
		}
		if !slices.IsSorted(sample) || len(slices.Compact(slices.Clone(sample))) != len(sample) {
			t.Errorf("fraction %g: sample %v not sorted and distinct", tc.fraction, sample)
		}
		for _, b := range sample {
			if isChanged(b) || b < 0 || b >= 20 {
				t.Errorf("fraction %g: sampled block %d, which changed or is out of range", tc.fraction, b)
			}
		}
	}
	// Uniform: over many draws every unchanged block gets picked.
	seen := map[int64]bool{}
	for range 200 {
		s, _ := sampleUnchanged(20, bs, changed, 0.1, rng)
		for _, b := range s {
			seen[b] = true
		}
	}
	if len(seen) != 16 {
		t.Errorf("200 samples of 2 picked %d distinct blocks, want all 16", len(seen))
	}
	if s, u := sampleUnchanged(3, bs, []dedup.Extent{{Off: 0, Len: 30}}, 1, rng); len(s) != 0 || u != 0 {
		t.Errorf("all changed: sample %v of %d", s, u)
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
