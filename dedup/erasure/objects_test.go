package erasure

import (
	"context"
	"errors"
	"testing"

	"cairn/dedup/store"
)

// TestReadOfDeletedObjectIsNotFound: an object deleted after its header
// was read (a manifest forgotten, a pack pruned by another process) reads
// as not found, not as damage: callers tell "gone" (a checkpoint
// forgotten meanwhile) from "corrupt" (run repair) by it.
func TestReadOfDeletedObjectIsNotFound(t *testing.T) {
	ctx := context.Background()
	stores := make([]store.Store, 6)
	for i := range stores {
		stores[i] = store.NewMem()
	}
	c, err := New(4, 2, stores, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "manifests/x", randomData(5, 300<<10)); err != nil {
		t.Fatal(err)
	}
	h, err := c.Header(ctx, "manifests/x", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "manifests/x"); err != nil {
		t.Fatal(err)
	}
	// Another process deleted it: this one still has its header cached.
	c.headers.Add(shardKey{"manifests/x", 0}, h, 1)
	_, err = c.ReadAt(ctx, "manifests/x", 0, 100)
	if !errors.Is(err, store.ErrNotFound) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of a deleted object: %v, want not found and not corrupt", err)
	}
}
