package dedup

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"
)

// RepoStats summarises a repository's size and savings.
type RepoStats struct {
	Checkpoints int
	Packs       int
	Chunks      int64
	// LogicalBytes sums the checkpoints' volume sizes.
	LogicalBytes int64
	// AllocatedBytes sums the checkpoints' non-hole bytes.
	AllocatedBytes int64
	// UniqueBytes is the plaintext size of all stored chunks, referenced
	// or not (prune removes the rest).
	UniqueBytes int64
	// StoredBytes is everything in the shard stores: pack and manifest
	// shards including parity, configs and markers.
	StoredBytes int64
	// DedupRatio is AllocatedBytes / UniqueBytes.
	DedupRatio float64
	// CompressionRatio is UniqueBytes / the packed (compressed, sealed)
	// blob bytes.
	CompressionRatio float64

	DataShards, ParityShards int
	BlockSize                int
	Encrypted                bool
}

// Stats walks the checkpoints, the pack headers and the shard stores. It
// reads every pack header, so it costs about as much as listing the
// repository; unreadable packs count as packs but add no chunks.
func (r *Repository) Stats(ctx context.Context) (*RepoStats, error) {
	st := &RepoStats{
		DataShards: r.cfg.DataShards, ParityShards: r.cfg.ParityShards,
		BlockSize: r.cfg.BlockSize, Encrypted: r.Encrypted(),
	}
	cps, err := r.Checkpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	st.Checkpoints = len(cps)
	for _, cp := range cps {
		st.LogicalBytes += cp.Size
		st.AllocatedBytes += cp.AllocatedBytes
	}

	var packs []PackID
	if err := r.listPacks(ctx, func(p PackID) error {
		packs = append(packs, p)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("stats: list packs: %w", err)
	}
	st.Packs = len(packs)
	var mu sync.Mutex
	var blobBytes int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(headerWorkers)
	for _, p := range packs {
		g.Go(func() error {
			entries, err := r.packHeader(gctx, p)
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				r.log("stats: pack %s unreadable: %v", p, err)
				return nil
			}
			var raw, stored int64
			for _, e := range entries {
				raw += int64(e.RawLen)
				stored += int64(e.StoredLen)
			}
			mu.Lock()
			st.Chunks += int64(len(entries))
			st.UniqueBytes += raw
			blobBytes += stored
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}

	// The stores' own listings give every object's size in one pass,
	// manifests, configs and objects of other kinds included.
	for i, s := range r.stores {
		err := s.List(ctx, "", func(_ string, size int64) error {
			st.StoredBytes += size
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("stats: list shard store %d: %w", i, err)
		}
	}
	st.DedupRatio = ratio(st.AllocatedBytes, st.UniqueBytes)
	st.CompressionRatio = ratio(st.UniqueBytes, blobBytes)
	return st, nil
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
