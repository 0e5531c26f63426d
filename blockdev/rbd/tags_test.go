package rbd

import (
	"testing"
	"time"

	"cairn/dedup"
)

func TestSnapshotOf(t *testing.T) {
	cp := &dedup.Checkpoint{ID: "c", Tags: map[string]string{TagPool: "p", TagNamespace: "ns", TagImage: "i",
		TagSnap: SnapName("0197aaaa-bbbb", time.Unix(0, 0), "x"), TagSnapManaged: "true"}}
	s, ok := SnapshotOf(cp)
	if !ok || s.String() != "rbd:p/ns/i@"+cp.Tags[TagSnap] {
		t.Fatalf("SnapshotOf = %v, %v", s, ok)
	}
	if !HasManagedSnapshot(cp, "0197aaaa-bbbb") || HasManagedSnapshot(cp, "0198cccc") {
		t.Error("HasManagedSnapshot does not tell the repository's snapshots from others'")
	}
	cp.Tags[TagSnapManaged] = "false"
	if HasManagedSnapshot(cp, "0197aaaa-bbbb") {
		t.Error("a user's snapshot counted as managed")
	}
	if _, ok := SnapshotOf(&dedup.Checkpoint{ID: "f"}); ok {
		t.Error("a checkpoint without tags has a snapshot")
	}
}
