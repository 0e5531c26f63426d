//go:build ceph

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"cairn/blockdev"
	"cairn/blockdev/rbd"
	"cairn/dedup"
)

// rbdWorkers is the default number of concurrent reads from RBD: reads
// wait on the network and the OSDs, not on the CPU.
const rbdWorkers = 8

// testDropDiffEnv, when "1", drops one changed extent from every RBD diff:
// a simulated Ceph diff bug for the end-to-end tests. Never set it
// otherwise.
const testDropDiffEnv = "CAIRN_TEST_DROP_DIFF_EXTENT"

func (c *cephFlags) connect(ctx context.Context) (*rbd.Cluster, error) {
	return rbd.Connect(ctx, rbd.ConnOptions{Conf: c.conf, ID: c.id, Keyring: c.keyring})
}

// rbdBackup is one backup of an RBD image, from snapshot to commit.
type rbdBackup struct {
	a       *app
	r       *dedup.Repository
	cl      *rbd.Cluster
	head    *rbd.Image
	spec    rbd.Spec
	imageID string
	req     rbdBackupRequest
	history []*dedup.Checkpoint // every checkpoint, as plan listed them
}

// backupRBD backs up an RBD image: see docs/rbd.md.
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
	imageID := head.ID()
	return a.withRepo(ctx, withIndex, func(r *dedup.Repository) error {
		b := &rbdBackup{a: a, r: r, cl: cl, head: head, spec: spec, imageID: imageID, req: req}
		return b.run(ctx)
	})
}

func (b *rbdBackup) run(ctx context.Context) error {
	plan, err := b.plan(ctx)
	if err != nil {
		return err
	}
	spec, snap, undo, err := b.snapshot(ctx)
	if err != nil {
		return err
	}
	src, err := b.cl.OpenSource(ctx, spec)
	if err != nil {
		undo()
		return err
	}
	cp, err := b.backup(ctx, src, plan, snap)
	if cerr := src.Close(); err == nil && cerr != nil {
		b.a.notef("%v", cerr)
	}
	if err != nil {
		undo()
		return err
	}
	if b.spec.Snap == "" {
		// Committed: the new snapshot is the one base from now on.
		if err := b.removeManaged(ctx, spec.Snap); err != nil {
			b.a.notef("checkpoint %s committed, but an old snapshot stays until the next backup: %v", cp.ID, err)
		}
	}
	return b.a.printCheckpoint(cp)
}

// snapshot returns the spec and facts of the snapshot to back up: the one
// named in the source, or a new managed one. undo removes a new one again
// (after a failure; after a kill the next run's cleanup does).
func (b *rbdBackup) snapshot(ctx context.Context) (rbd.Spec, rbd.SnapInfo, func(), error) {
	spec := b.spec
	if spec.Snap != "" {
		snap, ok, err := b.head.Snapshot(ctx, spec.Snap)
		if err == nil && !ok {
			err = fmt.Errorf("snapshot %s: %w", spec, rbd.ErrNotFound)
		}
		return spec, snap, func() {}, err
	}
	// Leftovers of killed runs go first, so that at most the base and the
	// new snapshot exist while this backup runs.
	if err := b.removeManaged(ctx, b.latestSnap()); err != nil {
		return spec, rbd.SnapInfo{}, nil, err
	}
	spec.Snap = rbd.SnapName(b.r.Config().ID, time.Now(), randomSuffix())
	snap, err := b.head.CreateSnapshot(ctx, spec.Snap)
	undo := func() {
		if rerr := b.head.RemoveSnapshot(context.WithoutCancel(ctx), spec.Snap); rerr != nil {
			b.a.notef("could not remove snapshot %s: %v", spec, rerr)
		}
	}
	if err != nil {
		undo()
		return spec, rbd.SnapInfo{}, nil, err
	}
	return spec, snap, undo, nil
}

// plan picks the parent and base snapshot and says on stderr why a whole
// image is read when that is a surprise.
func (b *rbdBackup) plan(ctx context.Context) (rbdPlan, error) {
	history, err := b.r.Checkpoints(ctx)
	if err != nil {
		return rbdPlan{}, err
	}
	snaps, err := b.head.Snapshots(ctx)
	if err != nil {
		return rbdPlan{}, err
	}
	in := planInput{
		imageName: b.spec.ImageName(), imageID: b.imageID, history: history, snaps: snaps,
		full: b.req.full, baseSnap: b.req.flags.baseSnap, fullEvery: b.req.flags.fullEvery,
		isBad: func(id string) (bool, error) { return b.r.IsBadBase(ctx, id) },
	}
	if b.req.parent != "" {
		if in.parentID, err = b.r.ResolveID(ctx, b.req.parent); err != nil {
			return rbdPlan{}, err
		}
	}
	plan, err := planRBD(in)
	if err != nil {
		return rbdPlan{}, err
	}
	b.history = history
	switch {
	case plan.fallback != "":
		b.a.notef("%s of %s: reading the whole image (unchanged blocks still deduplicate against checkpoint %s)",
			plan.fullReason, b.spec.ImageName(), plan.parent.ID)
	case plan.baseSnap == "" && !b.req.full && latestOf(history, in.imageName) != nil:
		// Not the first backup of the image, yet a whole read: say why.
		b.a.notef("reading the whole image %s: %s", b.spec.ImageName(), plan.fullReason)
	}
	return plan, nil
}

// backup reads src as planned and commits the checkpoint.
func (b *rbdBackup) backup(ctx context.Context, src *rbd.Source, plan rbdPlan, snap rbd.SnapInfo) (*dedup.Checkpoint, error) {
	size := src.Size()
	if plan.parent != nil && plan.baseSnap != "" && plan.parent.Size != size {
		plan.baseSnap, plan.incrementals = "", 0
		plan.fullReason = fmt.Sprintf("image resized from %d to %d bytes", plan.parent.Size, size)
		b.a.notef("reading the whole image %s: %s", b.spec.ImageName(), plan.fullReason)
	}
	bs := int64(b.r.Config().BlockSize)
	alloc, err := src.Allocated(ctx)
	if err != nil {
		return nil, err
	}
	workers := b.req.flags.workers
	if workers <= 0 {
		workers = rbdWorkers
	}
	tags := b.tags(plan, src, snap)
	o := dedup.BackupOptions{
		Allocated: toDedupExtents(blockdev.AlignExtents(alloc, bs, size)),
		Tags:      tags,
		Workers:   workers,
	}
	if plan.parent != nil {
		o.Parent = plan.parent.ID
	}
	if plan.baseSnap != "" {
		changed, err := src.Changed(ctx, plan.baseSnap)
		if err != nil {
			return nil, err
		}
		if b.a.getenv(testDropDiffEnv) == "1" && len(changed) > 0 {
			i := len(changed) / 2
			b.a.notef("test hook %s: dropping changed extent %d+%d", testDropDiffEnv, changed[i].Off, changed[i].Len)
			changed = append(changed[:i], changed[i+1:]...)
		}
		o.Changed = toDedupExtents(blockdev.AlignExtents(changed, bs, size))
		if err := b.verifySample(ctx, plan.parent.ID, src, o.Changed, workers, tags); err != nil {
			return nil, err
		}
	}
	line := b.a.newProgress("backup")
	o.Progress = line.bytes
	cp, err := b.r.Backup(ctx, src, o)
	b.a.doneProgress(line)
	return cp, err
}

// tags are the rbd.* tags of the new checkpoint, beside the user's.
func (b *rbdBackup) tags(plan rbdPlan, src *rbd.Source, snap rbd.SnapInfo) map[string]string {
	t := make(map[string]string, len(b.req.tags)+16)
	for k, v := range b.req.tags {
		t[k] = v
	}
	t[tagPool], t[tagImage], t[tagImageID] = b.spec.Pool, b.spec.Image, b.imageID
	if b.spec.Namespace != "" {
		t[tagNamespace] = b.spec.Namespace
	}
	t[tagSnap], t[tagSnapID] = snap.Name, strconv.FormatUint(snap.ID, 10)
	t[tagSnapManaged] = strconv.FormatBool(b.spec.Snap == "")
	t[tagIncrementals] = strconv.Itoa(plan.incrementals)
	if plan.baseSnap == "" {
		t[tagMode], t[tagFullReason] = "full", plan.fullReason
	} else {
		t[tagMode], t[tagBaseSnap] = "incremental", plan.baseSnap
		t[tagDiff] = "exact"
		if src.FastDiff() {
			t[tagDiff] = "whole-object (fast-diff)"
		}
	}
	if plan.fallback != "" {
		t[tagFallback] = plan.fallback
	}
	return t
}

// latestSnap is the snapshot of the newest checkpoint of the image: the
// base, which cleanup before a backup keeps.
func (b *rbdBackup) latestSnap() string {
	if p := latestOf(b.history, b.spec.ImageName()); p != nil && p.Tags[tagImageID] == b.imageID {
		return p.Tags[tagSnap]
	}
	return ""
}

// removeManaged removes this repository's managed snapshots of the image
// except keep.
func (b *rbdBackup) removeManaged(ctx context.Context, keep string) error {
	snaps, err := b.head.Snapshots(ctx)
	if err != nil {
		return err
	}
	repoID := b.r.Config().ID
	for _, s := range snaps {
		if s.Name == keep || !rbd.IsManaged(repoID, s.Name) {
			continue
		}
		if err := b.head.RemoveSnapshot(ctx, s.Name); err != nil {
			return err
		}
	}
	return nil
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
