package api

import (
	"strings"
	"testing"

	"cairn/appliance"
)

// TestEncodedCacheFollowsCopies: a published copy's encoding is reused,
// and a new copy (a status change publishes one) is encoded anew, never
// answered from the old one's entry.
func TestEncodedCacheFollowsCopies(t *testing.T) {
	var c encodedCache
	old := &appliance.Checkpoint{ID: "cp-1", Status: "protecting"}
	first := c.get(old)
	if !strings.Contains(string(first), `"protecting"`) {
		t.Fatalf("encoding %s lacks the status", first)
	}
	if again := c.get(old); &again[0] != &first[0] {
		t.Error("the same copy was encoded again")
	}
	next := &appliance.Checkpoint{ID: "cp-1", Status: "available"}
	if got := string(c.get(next)); !strings.Contains(got, `"available"`) {
		t.Errorf("new copy answered %s, want status available", got)
	}
}
