package rbd

import (
	"testing"
	"time"
)

func TestSnapshotOf(t *testing.T) {
	tags := map[string]string{TagPool: "p", TagNamespace: "ns", TagImage: "i",
		TagSnap: SnapName("0197aaaa-bbbb", time.Unix(0, 0), "x"), TagSnapManaged: "true"}
	s, ok := SnapshotOf(tags)
	if !ok || s.String() != "rbd:p/ns/i@"+tags[TagSnap] {
		t.Fatalf("SnapshotOf = %v, %v", s, ok)
	}
	if !HasManagedSnapshot(tags, "0197aaaa-bbbb") || HasManagedSnapshot(tags, "0198cccc") {
		t.Error("HasManagedSnapshot does not tell the repository's snapshots from others'")
	}
	tags[TagSnapManaged] = "false"
	if HasManagedSnapshot(tags, "0197aaaa-bbbb") {
		t.Error("a user's snapshot counted as managed")
	}
	if _, ok := SnapshotOf(nil); ok {
		t.Error("a checkpoint without tags has a snapshot")
	}
}
