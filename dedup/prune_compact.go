package dedup

import (
	"context"
	"fmt"

	"github.com/zeebo/xxh3"

	"cairn/dedup/pack"
)

// compaction is one nearly empty pack whose live chunks are being copied.
type compaction struct {
	p       PackID
	entries []packEntry
	live    []packEntry // to copy, with blobs[i] the stored bytes of live[i]
	blobs   [][]byte
	copied  map[ChunkID]struct{}
}

// compactAll rewrites the queued packs in batches: copy their live chunks
// into new packs, wait until those are durable and indexed, then delete the
// originals. A batch bounds what is held between copy and delete.
func (sw *sweeper) compactAll(ctx context.Context) error {
	if len(sw.compact) == 0 {
		return nil
	}
	own := sw.r.startSession()
	defer sw.r.endSession(own)
	for i := 0; i < len(sw.compact); i += compactBatch {
		batch := sw.compact[i:min(i+compactBatch, len(sw.compact))]
		if err := sw.compactBatch(ctx, own, batch); err != nil {
			return err
		}
	}
	return nil
}

func (sw *sweeper) compactBatch(ctx context.Context, own *session, batch []PackID) error {
	r := sw.r
	// Blobs are copied as stored: entries carry flags and sums, and a blob
	// is sealed with its chunk ID, not its pack, so nothing is re-encoded.
	pk := newPacker(ctx, r, own, 2)
	seen := make(map[ChunkID]struct{})
	var jobs []compaction
	for _, p := range batch {
		c, err := sw.readLive(ctx, p, own)
		if err != nil {
			if ctx.Err() != nil {
				pk.abort()
				return ctx.Err()
			}
			r.log("pack %s not compacted: %v", p, err)
			continue
		}
		for i, e := range c.live {
			if _, dup := seen[e.ID]; dup {
				continue
			}
			seen[e.ID] = struct{}{}
			if _, err := pk.add(e.ID, c.blobs[i], int(e.RawLen), e.Flags); err != nil {
				pk.abort()
				return fmt.Errorf("compact pack %s: %w", p, err)
			}
		}
		c.live, c.blobs = nil, nil
		jobs = append(jobs, c)
	}
	written, err := pk.finish()
	if err != nil {
		return fmt.Errorf("write compacted packs: %w", err)
	}
	// The copies are durable and indexed: the session need not hold them,
	// and forgetting them keeps its maps from growing batch after batch.
	own.mu.Lock()
	clear(own.pending)
	clear(own.newPacks)
	own.mu.Unlock()
	sw.add(func(rep *PruneReport) { rep.BytesFreed -= written })
	for _, c := range jobs {
		ok, err := sw.remove(ctx, c.p, c.entries, c.copied, own)
		if err != nil {
			return err
		}
		if ok {
			sw.add(func(rep *PruneReport) { rep.PacksCompacted++ })
		}
	}
	return nil
}

// readLive reads the stored bytes of every chunk of pack p that is marked
// live or held by a running backup. A backup may pin a dead chunk between
// the sweep's visit and now; copying it too lets the pack go anyway.
func (sw *sweeper) readLive(ctx context.Context, p PackID, own *session) (compaction, error) {
	r := sw.r
	c := compaction{p: p, copied: make(map[ChunkID]struct{})}
	entries, err := r.packHeader(ctx, p)
	if err != nil {
		return c, err
	}
	c.entries = entries
	live, err := r.liveEntries(sw.marks, p, entries)
	if err != nil {
		return c, err
	}
	held := r.heldChunks(entries, own)
	for i, e := range entries {
		if _, ok := held[e.ID]; !live[i] && !ok {
			continue
		}
		b, err := r.obj.ReadAt(ctx, pack.Name(p), int64(e.Offset), int64(e.StoredLen))
		if err != nil {
			return c, fmt.Errorf("read chunk %s: %w", e.ID, err)
		}
		if xxh3.Hash(b) != e.Sum {
			return c, fmt.Errorf("chunk %s: checksum mismatch: %w", e.ID, ErrCorrupt)
		}
		c.live = append(c.live, e)
		c.blobs = append(c.blobs, b)
		c.copied[e.ID] = struct{}{}
	}
	return c, nil
}
