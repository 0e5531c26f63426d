//go:build ceph

package main

import (
	"context"
	"errors"
	"fmt"

	"cairn/backup"
	"cairn/blockdev/rbd"
	"cairn/dedup"
)

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
		if _, ok := rbd.SnapshotOf(cp.Tags); !ok {
			return fmt.Errorf("checkpoint %s is not of an RBD snapshot: --against-source needs one", cp.ID)
		}
		cl, err := vs.ceph.connect(ctx)
		if err != nil {
			return err
		}
		defer cl.Close()
		spec, bad, err := backup.CompareWithSnapshot(ctx, cl, r, cp, bm, a.reporter())
		if errors.Is(err, rbd.ErrNotFound) {
			return fmt.Errorf("cannot compare: %w", err)
		}
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
