package dedup

import (
	"bytes"
	"context"
	"fmt"
	"strings"
)

// syncIndex drops from the index the packs that a prune of another process
// deleted (indexed, but with fewer than k shards left in the stores) and the
// chunk entries that point into them, so that dedup stops finding chunks
// that are gone. Then it records marker as the prune the index is
// consistent with, unless another process holds a prune lock, live or
// stale: that prune may delete, or may have deleted, more after the
// listing.
//
// The index's packs are read before the stores are listed, so a pack this
// process indexes meanwhile is never taken for deleted.
func (r *Repository) syncIndex(ctx context.Context, marker []byte) error {
	indexed, err := r.idx.PackIDs()
	if err != nil {
		return fmt.Errorf("read index: %w", err)
	}
	present := make(map[PackID]bool, len(indexed))
	err = r.obj.List(ctx, "packs/", func(name string, shards int) error {
		if p, err := ParsePackID(name[strings.LastIndexByte(name, '/')+1:]); err == nil && shards >= r.cfg.DataShards {
			present[p] = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list packs: %w", err)
	}
	gone := make(map[PackID]bool)
	for _, p := range indexed {
		if !present[p] {
			gone[p] = true
		}
	}
	if len(gone) > 0 {
		n, err := r.idx.DropPacks(gone)
		if err != nil {
			return fmt.Errorf("drop deleted packs from the index: %w", err)
		}
		for p := range gone {
			r.headers.Remove(p)
		}
		r.log("index: dropped %d packs (%d chunks) deleted by another process", len(gone), n)
	}
	locks, err := r.otherLocks(ctx, 1)
	if err != nil {
		return err
	}
	for _, l := range locks {
		if l.Kind == lockPrune {
			return nil // stays unsynced: the next backup looks again
		}
	}
	return r.idx.SetSeenPrune(marker)
}

// rebuiltAt records, after a rebuild, that the index is consistent with
// prune marker m (read before the rebuild listed the packs) when no prune
// could have deleted anything since: the marker is unchanged and no other
// process holds a prune lock, live or stale.
func (r *Repository) rebuiltAt(ctx context.Context, m []byte) {
	now, err := r.readPruneMarker(ctx)
	if err != nil || !bytes.Equal(now, m) {
		return
	}
	locks, err := r.otherLocks(ctx, 1)
	if err != nil {
		return
	}
	for _, l := range locks {
		if l.Kind == lockPrune {
			return
		}
	}
	if err := r.idx.SetSeenPrune(m); err != nil {
		r.log("index: %v", err)
	}
}
