package dedup

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"
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
	indexed, err := r.idx.packIDs()
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
		n, err := r.idx.dropPacks(gone)
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
	return r.idx.setSeenPrune(marker)
}

// packIDs lists the packs the index records.
func (x *index) packIDs() ([]PackID, error) {
	var ids []PackID
	err := x.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{'p'}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if k := it.Item().Key(); len(k) == 1+len(PackID{}) {
				ids = append(ids, PackID(k[1:]))
			}
		}
		return nil
	})
	return ids, err
}

// dropPacks removes the packs in gone and every chunk entry pointing into
// one of them; it returns how many chunk entries went.
func (x *index) dropPacks(gone map[PackID]bool) (int, error) {
	var keys [][]byte
	err := x.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{'c'}, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			err := item.Value(func(v []byte) error {
				if len(v) >= 16 && gone[PackID(v[:16])] {
					keys = append(keys, item.KeyCopy(nil))
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	wb := x.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return 0, err
		}
	}
	for p := range gone {
		if err := wb.Delete(packKey(p)); err != nil {
			return 0, err
		}
	}
	return len(keys), wb.Flush()
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
	if err := r.idx.setSeenPrune(m); err != nil {
		r.log("index: %v", err)
	}
}
