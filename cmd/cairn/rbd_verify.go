//go:build ceph

package main

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"cairn/blockdev/rbd"
	"cairn/dedup"
)

// verifySample re-reads a random sample of the blocks the RBD diff called
// unchanged and compares them with the parent: a diff is a hint, and Ceph
// has shipped diff bugs. Any difference fails the backup before anything
// is committed.
func (b *rbdBackup) verifySample(ctx context.Context, parentID string, src *rbd.Source, changed []dedup.Extent, workers int, tags map[string]string) error {
	pcp, pbm, err := b.r.LoadCheckpoint(ctx, parentID)
	if err != nil {
		return fmt.Errorf("load parent: %w", err)
	}
	bs := int64(pcp.BlockSize)
	var seed [16]byte
	_, _ = crand.Read(seed[:])
	rng := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	sample, unchanged := sampleUnchanged(pbm.Blocks, bs, changed, b.req.flags.verifySample, rng)
	tags[tagSampled] = fmt.Sprintf("%d of %d", len(sample), unchanged)
	if len(sample) == 0 {
		return nil
	}
	bad, err := b.a.compareBlocks(ctx, b.r, "verify diff", pcp, pbm, src, sample, workers)
	if err != nil {
		return fmt.Errorf("verify RBD diff: %w", err)
	}
	if len(bad) > 0 {
		return fmt.Errorf("RBD diff missed changes at offset %d (%d of %d sampled unchanged blocks differ from checkpoint %s): refusing this incremental; run a full backup with --full",
			bad[0]*bs, len(bad), len(sample), pcp.ID)
	}
	tags[tagSampledBytes] = strconv.FormatInt(min(int64(len(sample))*bs, pcp.Size), 10)
	return nil
}

// compareBlocks runs Repository.CompareBlocks with a progress line.
func (a *app) compareBlocks(ctx context.Context, r *dedup.Repository, label string, cp *dedup.Checkpoint, bm *dedup.BlockMap, src dedup.Source, blocks []int64, workers int) ([]int64, error) {
	line := a.newProgress(label)
	defer a.doneProgress(line)
	start := time.Now()
	var done atomic.Int64
	total := len(blocks)
	return r.CompareBlocks(ctx, cp, bm, src, blocks, workers, func() {
		if n := done.Add(1); n%8 == 0 || int(n) == total {
			line.count(int(n), total, "blocks", time.Since(start))
		}
	})
}

type verifySourceJSON struct {
	ID              string `json:"id"`
	Source          string `json:"source"`
	Snapshot        string `json:"snapshot"`
	Blocks          int64  `json:"blocks"`
	Mismatched      int    `json:"mismatched_blocks"`
	FirstMismatchAt int64  `json:"first_mismatch_offset,omitempty"`
	OK              bool   `json:"ok"`
	MarkedBadBase   bool   `json:"marked_bad_base"`
}

// verifyAgainstSource compares every block of a checkpoint with the RBD
// snapshot it was made from. A mismatch marks the checkpoint as a bad
// base (dedup.MarkBadBase), so the next backup of the image reads it all.
func (a *app) verifyAgainstSource(ctx context.Context, vs *verifySourceFlags) error {
	// Without the index: this may run beside a backup.
	return a.withRepo(ctx, readOnly, func(r *dedup.Repository) error {
		cp, bm, err := r.LoadCheckpoint(ctx, vs.checkpoint)
		if err != nil {
			return err
		}
		spec := rbd.Spec{Pool: cp.Tags[tagPool], Namespace: cp.Tags[tagNamespace], Image: cp.Tags[tagImage], Snap: cp.Tags[tagSnap]}
		if spec.Pool == "" || spec.Image == "" || spec.Snap == "" {
			return fmt.Errorf("checkpoint %s is not of an RBD snapshot: --against-source needs one", cp.ID)
		}
		cl, err := vs.ceph.connect(ctx)
		if err != nil {
			return err
		}
		defer cl.Close()
		if err := checkSnapOf(ctx, cl, cp, spec); err != nil {
			return err
		}
		src, err := cl.OpenSource(ctx, spec)
		if err != nil {
			return err
		}
		defer src.Close()
		all := make([]int64, bm.Blocks)
		for i := range all {
			all[i] = int64(i)
		}
		bad, err := a.compareBlocks(ctx, r, "verify source", cp, bm, src, all, rbdWorkers)
		if err != nil {
			return err
		}
		res := verifySourceJSON{ID: cp.ID, Source: cp.Source, Snapshot: spec.String(), Blocks: bm.Blocks, Mismatched: len(bad), OK: len(bad) == 0}
		if len(bad) > 0 {
			res.FirstMismatchAt = bad[0] * int64(cp.BlockSize)
			reason := fmt.Sprintf("%d of %d blocks differ from snapshot %s, the first at offset %d", len(bad), bm.Blocks, spec, res.FirstMismatchAt)
			if err := r.MarkBadBase(ctx, cp.ID, reason); err != nil {
				return err
			}
			res.MarkedBadBase = true
		}
		if err := a.printVerifySource(res); err != nil {
			return err
		}
		if !res.OK {
			return fmt.Errorf("checkpoint %s differs from snapshot %s in %d blocks (first at offset %d): marked as a bad base; the next backup of %s reads the whole image",
				cp.ID, spec, len(bad), res.FirstMismatchAt, cp.Source)
		}
		return nil
	})
}

// checkSnapOf checks that spec's snapshot is still the one cp was made
// from: same image ID, same snapshot ID.
func checkSnapOf(ctx context.Context, cl *rbd.Cluster, cp *dedup.Checkpoint, spec rbd.Spec) error {
	head, err := cl.OpenImage(ctx, spec)
	if err != nil {
		return err
	}
	defer head.Close()
	if id := head.ID(); id != cp.Tags[tagImageID] {
		return fmt.Errorf("image %s is not the one checkpoint %s was made from (ID %s, was %s): %w",
			spec.ImageName(), cp.ID, head.ID(), cp.Tags[tagImageID], rbd.ErrNotFound)
	}
	snap, ok, err := head.Snapshot(ctx, spec.Snap)
	if err != nil {
		return err
	}
	if !ok || strconv.FormatUint(snap.ID, 10) != cp.Tags[tagSnapID] {
		return fmt.Errorf("snapshot %s of checkpoint %s no longer exists: cannot compare: %w", spec, cp.ID, rbd.ErrNotFound)
	}
	return nil
}

func (a *app) printVerifySource(res verifySourceJSON) error {
	if a.jsonOut {
		return writeJSON(a.stdout, res)
	}
	if a.quiet && res.OK {
		return nil
	}
	if res.OK {
		_, err := fmt.Fprintf(a.stdout, "checkpoint %s matches %s: %d blocks compared\n", res.ID, res.Snapshot, res.Blocks)
		return err
	}
	_, err := fmt.Fprintf(a.stdout, "checkpoint %s differs from %s in %d of %d blocks, the first at offset %d: marked as a bad base\n",
		res.ID, res.Snapshot, res.Mismatched, res.Blocks, res.FirstMismatchAt)
	return err
}
