//go:build ceph

package main

import (
	"context"
	"time"

	"cairn/blockdev/rbd"
	"cairn/dedup"
)

// testDropDiffEnv, when "1", drops one changed extent from every RBD diff:
// a simulated Ceph diff bug for the end-to-end tests. Never set it
// otherwise.
const testDropDiffEnv = "CAIRN_TEST_DROP_DIFF_EXTENT"

func (c *cephFlags) connect(ctx context.Context) (*rbd.Cluster, error) {
	return rbd.Connect(ctx, rbd.ConnOptions{Conf: c.conf, ID: c.id, Keyring: c.keyring})
}

// backupRBD backs up an RBD image (docs/rbd.md): the parent comes from the
// repository's history, the rest is rbd.Backup's.
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
		cp, err := rbd.Backup(ctx, cl, r, head, rbd.BackupRequest{
			Snap: spec.Snap, Parent: p.parent, Latest: p.latest, Full: req.full, FullReason: p.fullReason,
			FullEvery: req.flags.fullEvery, VerifySample: req.flags.verifySample, Workers: req.flags.workers,
			Tags: req.tags, Report: a.rbdReporter(), DropDiffExtent: a.getenv(testDropDiffEnv) == "1",
		})
		if err != nil {
			return err
		}
		return a.printCheckpoint(cp)
	})
}

// rbdReporter prints rbd's warnings as notes and its stages as progress
// lines.
func (a *app) rbdReporter() rbd.Reporter {
	return rbd.Reporter{Warnf: a.notef, Stage: func(label string) rbd.Stage {
		return &rbdStage{a: a, line: a.newProgress(label), start: time.Now()}
	}}
}

type rbdStage struct {
	a     *app
	line  *progressLine
	start time.Time
}

func (s *rbdStage) Bytes(p dedup.BackupProgress) { s.line.bytes(p) }
func (s *rbdStage) Blocks(done, total int) {
	s.line.count(done, total, "blocks", time.Since(s.start))
}
func (s *rbdStage) Done() { s.a.doneProgress(s.line) }
