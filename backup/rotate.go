package backup

import (
	"context"
	"fmt"

	"cairn/blockdev/rbd"
)

// snapshot returns the snapshot to back up: the one Options.Snap names,
// or a new managed one, taken after the leftovers of killed runs are
// gone so that at most the base and the new snapshot exist while this
// backup runs.
func (r *run) snapshot(ctx context.Context) (Snap, error) {
	if r.o.Snap != "" {
		snaps, err := r.snaps.List(ctx)
		if err != nil {
			return Snap{}, err
		}
		s, ok := findSnap(snaps, r.o.Snap)
		if !ok {
			return Snap{}, fmt.Errorf("snapshot %s@%s: %w", r.src.Name(), r.o.Snap, ErrSnapshotNotFound)
		}
		return s, nil
	}
	keep := ""
	if l := r.latest(); l != nil && l.Tags[rbd.TagImageID] == r.snaps.DeviceID() {
		keep = l.Tags[rbd.TagSnap]
	}
	if err := r.removeManaged(ctx, keep); err != nil {
		return Snap{}, err
	}
	return r.snaps.Create(ctx)
}

// undo removes the snapshot a failed backup took. It runs even when ctx
// is cancelled: a cancelled backup must not leave its snapshot behind
// (after a kill, the next run's clean-up removes it).
func (r *run) undo(ctx context.Context, s Snap) {
	if r.o.Snap != "" {
		return
	}
	if err := r.snaps.Remove(context.WithoutCancel(ctx), s.Name); err != nil {
		r.o.Report.warnf("could not remove snapshot %s@%s: %v", r.src.Name(), s.Name, err)
	}
}

// removeManaged removes the device's managed snapshots except keep.
func (r *run) removeManaged(ctx context.Context, keep string) error {
	return RemoveManaged(ctx, r.snaps, func(name string) bool { return name == keep })
}

// RemoveManaged removes the managed snapshots of s (Snapshotter.Managed)
// except those keep says to keep: the clean-up of a device after killed
// backups.
func RemoveManaged(ctx context.Context, s Snapshotter, keep func(name string) bool) error {
	snaps, err := s.List(ctx)
	if err != nil {
		return err
	}
	for _, sn := range snaps {
		if !s.Managed(sn.Name) || keep(sn.Name) {
			continue
		}
		if err := s.Remove(ctx, sn.Name); err != nil {
			return err
		}
	}
	return nil
}
