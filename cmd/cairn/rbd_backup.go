//go:build ceph

package main

import (
	"context"

	"cairn/backup"
	"cairn/blockdev/rbd"
	"cairn/dedup"
)

func (c *cephFlags) connect(ctx context.Context) (*rbd.Cluster, error) {
	return rbd.Connect(ctx, rbd.ConnOptions{Conf: c.conf, ID: c.id, Keyring: c.keyring})
}

// backupRBD backs up an RBD image (docs/rbd.md): the parent comes from the
// repository's history, the rest is backup.Run's.
func (a *app) backupRBD(ctx context.Context, req rbdBackupRequest) error {
	spec, err := req.validate()
	if err != nil {
		return err
	}
	cl, err := req.flags.ceph.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	head, err := cl.OpenImage(ctx, spec)
	if err != nil {
		return err
	}
	defer head.Close()
	return a.withRepo(ctx, withIndex, func(r *dedup.Repository) error {
		history, err := r.Checkpoints(ctx)
		if err != nil {
			return err
		}
		in := parentInput{imageName: spec.ImageName(), imageID: head.ID(), history: history,
			full: req.full, baseSnap: req.flags.baseSnap}
		if req.parent != "" {
			if in.parentID, err = r.ResolveID(ctx, req.parent); err != nil {
				return err
			}
		}
		p, err := chooseRBDParent(in)
		if err != nil {
			return err
		}
		src := backup.NewImage(cl, head, backup.ImageSnapshots(head, r.Config().ID))
		cp, err := backup.Run(ctx, r, src, backup.Options{
			Snap: spec.Snap, Parent: p.parent, Latest: p.latest, Full: req.full, FullReason: p.fullReason,
			FullEvery: req.flags.fullEvery, VerifySample: req.flags.verifySample, Workers: req.flags.workers,
			Tags: req.tags, Report: a.reporter(),
		})
		if err != nil {
			return err
		}
		return a.printCheckpoint(cp)
	})
}
