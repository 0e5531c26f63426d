//go:build ceph

package main

import (
	"context"
	"time"

	"cairn/blockdev/rbd"
	"cairn/dedup"
)

// restoreRBD writes checkpoint cp into the RBD image named by to
// (rbd.Restore): a new image, or with force an existing one at least the
// checkpoint's size.
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
	n, err := rbd.Restore(ctx, cl, r, cp, spec, rbd.RestoreOptions{Force: force, Report: a.rbdReporter()})
	if err != nil {
		return err
	}
	return a.printRestore(cp, spec.String(), n, time.Since(start))
}
