package dedup

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/zeebo/xxh3"

	"cairn/dedup/store"
)

// packHeader reads, opens and caches the header of pack p.
func (r *Repository) packHeader(ctx context.Context, p PackID) ([]packEntry, error) {
	if e, ok := r.headers.get(p); ok {
		return e, nil
	}
	name := packName(p)
	n, err := r.obj.length(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", p, err)
	}
	if n < packTrailerSize {
		return nil, fmt.Errorf("pack %s of %d bytes: %w", p, n, ErrCorrupt)
	}
	t, err := r.obj.readAt(ctx, name, n-packTrailerSize, packTrailerSize)
	if err != nil {
		return nil, fmt.Errorf("pack %s trailer: %w", p, err)
	}
	hl, err := decodePackTrailer(t, n)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", p, err)
	}
	blobsEnd := n - packTrailerSize - hl
	sealed, err := r.obj.readAt(ctx, name, blobsEnd, hl)
	if err != nil {
		return nil, fmt.Errorf("pack %s header: %w", p, err)
	}
	plain, err := r.seal.open(nil, sealed, packHeaderAD(p))
	if err != nil {
		return nil, fmt.Errorf("pack %s header: %w", p, err)
	}
	entries, err := decodePackHeader(plain, uint64(blobsEnd))
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", p, err)
	}
	r.headers.add(p, entries, 1)
	return entries, nil
}

// readChunk returns the plaintext of the chunk at loc, from the cache when it
// is there. Only the shard ranges that hold the blob are read.
func (r *Repository) readChunk(ctx context.Context, loc chunkLoc) ([]byte, error) {
	if b, ok := r.chunks.get(loc.ID); ok {
		return b, nil
	}
	// Concurrent readers of one block (NBD, FUSE read-ahead, a restore of
	// a volume with repeated blocks) share a single fetch.
	// The fetch outlives one caller giving up, since others may wait on it.
	v, err, _ := r.fetches.Do(string(loc.ID[:]), func() (any, error) { return r.fetchChunk(context.WithoutCancel(ctx), loc) })
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

func (r *Repository) fetchChunk(ctx context.Context, loc chunkLoc) ([]byte, error) {
	if b, ok := r.chunks.get(loc.ID); ok {
		return b, nil
	}
	stored, err := r.obj.readAt(ctx, packName(loc.Pack), int64(loc.Offset), int64(loc.StoredLen))
	if err != nil {
		return nil, fmt.Errorf("read chunk %s from pack %s: %w", loc.ID, loc.Pack, err)
	}
	if xxh3.Hash(stored) != loc.Sum {
		return nil, fmt.Errorf("chunk %s in pack %s: checksum mismatch: %w", loc.ID, loc.Pack, ErrCorrupt)
	}
	plain, err := r.decodeBlob(loc.packEntry, stored)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", loc.Pack, err)
	}
	r.chunks.add(loc.ID, plain, int64(len(plain)))
	return plain, nil
}

// locate finds chunk id: first in the pack the manifest names (no index
// needed), then in the index, and without an index by scanning every pack
// header once (slow, but a restore never depends on badger).
func (r *Repository) locate(ctx context.Context, id ChunkID, hint PackID) (chunkLoc, error) {
	entries, hintErr := r.packHeader(ctx, hint)
	if hintErr == nil {
		for _, e := range entries {
			if e.ID == id {
				return chunkLoc{Pack: hint, packEntry: e}, nil
			}
		}
	} else if ctx.Err() != nil {
		return chunkLoc{}, ctx.Err()
	}
	// The hint is stale (the pack was compacted away) or unreadable (a
	// damaged leftover of a killed prune): the chunk may well be elsewhere.
	if r.idx != nil {
		loc, ok, err := r.idx.lookup(id)
		if err != nil {
			return chunkLoc{}, fmt.Errorf("index lookup %s: %w", id, err)
		}
		if ok {
			return loc, nil
		}
		if hintErr != nil && !errors.Is(hintErr, store.ErrNotFound) {
			return chunkLoc{}, hintErr
		}
		return chunkLoc{}, fmt.Errorf("chunk %s: %w (run `cairn repo rebuild-index` if packs were added by another host)", id, ErrChunkNotFound)
	}
	r.scanOnce.Do(func() { r.scanned, r.scanErr = r.scanPacks(ctx) })
	if r.scanErr != nil {
		return chunkLoc{}, r.scanErr
	}
	if loc, ok := r.scanned[id]; ok {
		return loc, nil
	}
	if hintErr != nil && !errors.Is(hintErr, store.ErrNotFound) {
		return chunkLoc{}, hintErr
	}
	return chunkLoc{}, fmt.Errorf("chunk %s: %w", id, ErrChunkNotFound)
}

func (r *Repository) scanPacks(ctx context.Context) (map[ChunkID]chunkLoc, error) {
	m := make(map[ChunkID]chunkLoc)
	err := r.listPacks(ctx, func(p PackID) error {
		entries, err := r.packHeader(ctx, p)
		if err != nil {
			r.log("skipping unreadable pack %s: %v", p, err)
			return nil
		}
		for _, e := range entries {
			m[e.ID] = chunkLoc{Pack: p, packEntry: e}
		}
		return nil
	})
	return m, err
}

// listPacks calls fn for every pack any shard store holds a shard of.
func (r *Repository) listPacks(ctx context.Context, fn func(PackID) error) error {
	return r.obj.list(ctx, "packs/", func(name string, _ int) error {
		base := name[strings.LastIndexByte(name, '/')+1:]
		p, err := ParsePackID(base)
		if err != nil {
			return nil // not ours: ignore stray files
		}
		return fn(p)
	})
}
