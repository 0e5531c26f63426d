//go:build ceph

package main

import (
	"context"
	"time"

	"cairn/backup"
	"cairn/blockdev"
	"cairn/blockdev/rbd"
	"cairn/dedup"
)

// restoreRBD writes checkpoint cp into the RBD image named by to
// (backup.Restore): a new image, or with force an existing one at least
// the checkpoint's size. Only data blocks are written, so a new image
// stays sparse; the holes of an existing one are deallocated, and a
// failed restore removes an image it created.
func (a *app) restoreRBD(ctx context.Context, r *dedup.Repository, cp *dedup.Checkpoint, to string, force bool, cf *cephFlags) error {
	spec, err := rbd.ParseSpec(to)
	if err != nil {
		return usageError{err}
	}
	if spec.Snap != "" {
		return usagef("--to %s: cannot restore into a snapshot", to)
	}
	cl, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	start := time.Now()
	tgt, err := cl.CreateTarget(ctx, spec, cp.Size, blockdev.TargetOptions{Force: force})
	if err != nil {
		return err
	}
	n, err := backup.Restore(ctx, r, cp, tgt, backup.RestoreOptions{Report: a.reporter()})
	if err != nil {
		return err
	}
	return a.printRestore(cp, spec.String(), n, time.Since(start))
}
