//go:build ceph

package rbd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cairn/backup"
	cephrbd "cairn/blockdev/rbd"
	"cairn/dedup"
)

// recoverConnectTimeout bounds how long a start waits for the cluster:
// librados would wait minutes for unreachable monitors, and the API must
// not, when each image's next protection removes its leftovers anyway.
const recoverConnectTimeout = 30 * time.Second

// Recover removes what protections and restores that a crash cut off left
// behind in project's locations: managed snapshots of repo (the
// project's repository) that no
// checkpoint of repo was made from (the snapshot of a backup that never
// committed, or whose checkpoint the appliance deleted as interrupted),
// and repo's partial images. The appliance calls it at start, after it
// has deleted the interrupted protections' checkpoints and before any job
// runs, so every snapshot a checkpoint names is still needed or gone
// with it. It lists the repository once.
func (p *Plugin) Recover(ctx context.Context, project string, repo *dedup.Repository) error {
	cctx, cancel := context.WithTimeout(ctx, recoverConnectTimeout)
	cl, err := p.cluster(cctx)
	cancel()
	if err != nil {
		return fmt.Errorf("RBD plugin recovery (the next protection of each image removes its leftovers): %w", err)
	}
	repoID := repo.Config().ID
	cps, err := repo.Checkpoints(ctx)
	if err != nil {
		return fmt.Errorf("RBD plugin recovery: %w", err)
	}
	keep := map[string]bool{} // image ID "@" snapshot
	for _, cp := range cps {
		if cephrbd.HasManagedSnapshot(cp.Tags, repoID) {
			keep[cp.Tags[cephrbd.TagImageID]+"@"+cp.Tags[cephrbd.TagSnap]] = true
		}
	}
	locs, err := p.locations(project)
	if err != nil {
		return fmt.Errorf("RBD plugin recovery: %w", err)
	}
	var errs []error
	for _, l := range locs {
		names, err := cl.Images(ctx, l.spec(""))
		if errors.Is(err, cephrbd.ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, n := range names {
			if isPartialOf(repoID, n) {
				p.log.Warn("removing the partial image of an interrupted restore", "type", Type, "image", nameOf(l.spec(n)))
				errs = append(errs, cl.RemoveImage(ctx, l.spec(n)))
				continue
			}
			errs = append(errs, p.removeLeftovers(ctx, cl, l.spec(n), repoID, keep))
		}
	}
	return errors.Join(errs...)
}

// removeLeftovers removes the managed snapshots of image s that keep does
// not name.
func (p *Plugin) removeLeftovers(ctx context.Context, cl *cephrbd.Cluster, s cephrbd.Spec, repoID string, keep map[string]bool) error {
	im, err := cl.OpenImage(ctx, s)
	if errors.Is(err, cephrbd.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer im.Close()
	return backup.RemoveManaged(ctx, backup.ImageSnapshots(im, repoID), func(name string) bool {
		if keep[im.ID()+"@"+name] {
			return true
		}
		p.log.Warn("removing the snapshot of an interrupted protection", "type", Type, "snapshot", nameOf(s)+"@"+name)
		return false
	})
}
