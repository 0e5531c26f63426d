//go:build ceph

package main

import (
	"context"
	"time"

	"cairn/blockdev"
	"cairn/blockdev/rbd"
	"cairn/dedup"
)

// restoreRBD writes checkpoint cp into the RBD image named by to: a new
// image of the checkpoint's size, or with force an existing one at least
// that large. Only data blocks are written, 16 at a time, so a new image
// stays sparse; the holes of an existing image are deallocated. A failed
// restore removes an image it created.
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
	tgt, err := cl.CreateTarget(ctx, spec, cp.Size, blockdev.TargetOptions{Force: force})
	if err != nil {
		return err
	}
	w := &countingWriter{w: tgt}
	line := a.newProgress("restore")
	start := time.Now()
	_, err = r.Restore(ctx, cp.ID, w, dedup.RestoreOptions{Zero: tgt.Zero, Progress: line.bytes})
	a.doneProgress(line)
	if err != nil {
		if tgt.Fresh() {
			if rerr := tgt.Remove(); rerr != nil {
				a.notef("could not remove the partly restored image: %v", rerr)
			}
		} else if cerr := tgt.Close(); cerr != nil {
			a.notef("%v", cerr)
		}
		return err
	}
	if err := tgt.Close(); err != nil {
		return err
	}
	return a.printRestore(cp, spec.String(), w.n.Load(), time.Since(start))
}
