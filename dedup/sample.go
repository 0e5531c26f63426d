package dedup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"cairn/dedup/store"
)

// This file lets a caller check a checkpoint against the volume it came
// from: change hints from a storage system (an RBD diff) are verified by
// re-reading blocks, and a checkpoint that failed such a check is marked so
// that it is never used as the base of an incremental backup.

// BlockChunkID returns the chunk ID a backup into r would give a data block
// holding data (the keyed hash; blocks of zeros are holes and have none).
func (r *Repository) BlockChunkID(data []byte) ChunkID { return r.hash.id(data) }

// CompareBlocks reads the listed blocks of src (numbers in cp's block size)
// with up to workers concurrent reads and returns, sorted, those whose
// content differs from checkpoint cp with block map bm: a block of zeros
// must be a hole there, any other block a chunk with the same ID. src must
// have cp's size. done, if set, is called after each block, from any
// worker.
func (r *Repository) CompareBlocks(ctx context.Context, cp *Checkpoint, bm *BlockMap, src Source, blocks []int64, workers int, done func()) ([]int64, error) {
	if src.Size() != cp.Size {
		return nil, fmt.Errorf("compare %s with checkpoint %s: size %d, checkpoint has %d", src.Name(), cp.ID, src.Size(), cp.Size)
	}
	bs := int64(cp.BlockSize)
	workers = max(workers, 1)
	var (
		mu  sync.Mutex
		bad []int64
	)
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan int64)
	g.Go(func() error {
		defer close(jobs)
		for _, b := range blocks {
			if b < 0 || b >= bm.Blocks {
				return fmt.Errorf("compare: block %d outside checkpoint %s of %d blocks", b, cp.ID, bm.Blocks)
			}
			select {
			case jobs <- b:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	zero := make([]byte, bs)
	for range workers {
		g.Go(func() error {
			buf := make([]byte, bs)
			for b := range jobs {
				n := min(bs, cp.Size-b*bs)
				data := buf[:n]
				if _, err := src.ReadAt(data, b*bs); err != nil && !(errors.Is(err, io.EOF) && b*bs+n == cp.Size) {
					return fmt.Errorf("read %s at %d: %w", src.Name(), b*bs, err)
				}
				ref, isData := bm.Lookup(b)
				same := !isData && bytes.Equal(data, zero[:n])
				if isData {
					same = r.hash.id(data) == ref.ID
				}
				if !same {
					mu.Lock()
					bad = append(bad, b)
					mu.Unlock()
				}
				if done != nil {
					done()
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	slices.Sort(bad)
	return bad, nil
}

// badBaseName is the object that marks checkpoint id as a bad base. It is
// a coded object like a manifest, so it survives the loss of any m shard
// stores and needs no index. Manifests stay immutable.
func badBaseName(id string) string { return "bad-bases/" + id }

// BadBase records why a checkpoint must not be the base of an incremental
// backup.
type BadBase struct {
	ID       string    `json:"id"`
	Reason   string    `json:"reason"`
	MarkedAt time.Time `json:"marked_at"`
}

// MarkBadBase records that checkpoint id failed a check against its source
// (its blocks are not what the volume held), so that no later backup takes
// unread blocks from it. The checkpoint stays readable; marking again
// replaces the reason.
func (r *Repository) MarkBadBase(ctx context.Context, id, reason string) error {
	full, err := r.ResolveID(ctx, id)
	if err != nil {
		return err
	}
	b, err := json.Marshal(BadBase{ID: full, Reason: reason, MarkedAt: r.now().UTC()})
	if err != nil {
		return err
	}
	if _, err := r.obj.Put(ctx, badBaseName(full), b); err != nil {
		return fmt.Errorf("mark checkpoint %s as a bad base: %w", full, err)
	}
	return nil
}

// BadBaseOf returns the mark of checkpoint id (a full ID), or nil when it
// has none.
func (r *Repository) BadBaseOf(ctx context.Context, id string) (*BadBase, error) {
	b, err := r.obj.Get(ctx, badBaseName(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read bad-base mark of %s: %w", id, err)
	}
	var m BadBase
	if err := json.Unmarshal(b, &m); err != nil || m.ID != id {
		// An unreadable mark still marks: refusing a base is the safe side.
		return &BadBase{ID: id, Reason: "unreadable bad-base mark"}, nil
	}
	return &m, nil
}

// IsBadBase reports whether checkpoint id (a full ID) has been marked with
// MarkBadBase.
func (r *Repository) IsBadBase(ctx context.Context, id string) (bool, error) {
	m, err := r.BadBaseOf(ctx, id)
	return m != nil, err
}
