//go:build ceph

package rbd

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"cairn/blockdev"
	"cairn/dedup"
)

// BackupRequest is one backup of an image. The caller chooses the parent;
// Backup decides from the parent's tags and the image's snapshots whether
// the backup can be incremental (PlanBackup).
type BackupRequest struct {
	// Snap names an existing snapshot to back up, which Backup never
	// removes; "" takes a new managed snapshot of the image.
	Snap string
	// Parent is the checkpoint to follow; nil for none.
	Parent *dedup.Checkpoint
	// Latest is the newest earlier checkpoint of the image (nil: Parent).
	// Its managed snapshot is the base that the clean-up before a backup
	// keeps; every other managed snapshot of the repository on the image
	// is a leftover of a killed backup.
	Latest *dedup.Checkpoint
	// Full reads the whole image because the caller asked for it: no
	// warning says why. FullReason is then the rbd.full_reason tag.
	Full bool
	// FullReason, when set, reads the whole image for that reason (and
	// warns, unless Full); Parent then only speeds up deduplication.
	FullReason string
	// FullEvery forces a whole read on every Nth backup (0: never).
	FullEvery int
	// VerifySample is the fraction of unchanged blocks to re-read and
	// compare with the parent (0 disables; at least one block otherwise).
	VerifySample float64
	// Workers bounds concurrent reads (default DefaultWorkers).
	Workers int
	// Tags are recorded on the checkpoint beside the rbd.* tags.
	Tags   map[string]string
	Report Reporter
	// DropDiffExtent drops one changed extent from the diff: a simulated
	// Ceph diff bug for tests. Never set it otherwise.
	DropDiffExtent bool
}

// backup is one run of Backup, from snapshot to commit.
type backup struct {
	cl   *Cluster
	repo *dedup.Repository
	head *Image
	spec Spec // the image, and Snap when the request names one
	req  BackupRequest
}

// Backup backs up the image head names (see docs/rbd.md): a new managed
// snapshot (or req.Snap), the extents that changed since the parent's
// snapshot when the plan allows, a sample of the rest compared with the
// parent, and the commit. Only after the commit is the previous managed
// snapshot removed: the new one is the single base from then on. A failed
// backup removes the snapshot it took. Two backups of one image into one
// repository must not run at once: each removes the other's snapshot.
func Backup(ctx context.Context, cl *Cluster, repo *dedup.Repository, head *Image, req BackupRequest) (*dedup.Checkpoint, error) {
	b := &backup{cl: cl, repo: repo, head: head, spec: head.Spec().WithSnap(req.Snap), req: req}
	plan, err := b.plan(ctx)
	if err != nil {
		return nil, err
	}
	spec, snap, undo, err := b.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	src, err := cl.OpenSource(ctx, spec)
	if err != nil {
		undo()
		return nil, err
	}
	cp, err := b.read(ctx, src, plan, snap)
	if cerr := src.Close(); err == nil && cerr != nil {
		req.Report.warnf("%v", cerr)
	}
	if err != nil {
		undo()
		return nil, err
	}
	if req.Snap == "" {
		// Committed: the new snapshot is the one base from now on.
		if err := b.removeManaged(ctx, spec.Snap); err != nil {
			req.Report.warnf("checkpoint %s committed, but an old snapshot stays until the next backup: %v", cp.ID, err)
		}
	}
	return cp, nil
}

// latest is the checkpoint whose snapshot is the base now.
func (b *backup) latest() *dedup.Checkpoint {
	if b.req.Latest != nil {
		return b.req.Latest
	}
	return b.req.Parent
}

// plan picks the base snapshot and warns when a whole image is read where
// an incremental was expected.
func (b *backup) plan(ctx context.Context) (Plan, error) {
	snaps, err := b.head.Snapshots(ctx)
	if err != nil {
		return Plan{}, err
	}
	in := PlanInput{
		ImageID: b.head.ID(), Snaps: snaps, Parent: b.req.Parent,
		FullReason: b.req.FullReason, FullEvery: b.req.FullEvery,
		IsBad: func(id string) (bool, error) { return b.repo.IsBadBase(ctx, id) },
	}
	if b.req.Full && in.FullReason == "" {
		in.FullReason = "full backup requested"
	}
	plan, err := PlanBackup(in)
	if err != nil {
		return Plan{}, err
	}
	switch {
	case plan.Fallback != "":
		b.req.Report.warnf("%s of %s: reading the whole image (unchanged blocks still deduplicate against checkpoint %s)",
			plan.FullReason, b.spec.ImageName(), plan.Parent.ID)
	case plan.BaseSnap == "" && !b.req.Full && b.latest() != nil:
		// Not the first backup of the image, yet a whole read: say why.
		b.req.Report.warnf("reading the whole image %s: %s", b.spec.ImageName(), plan.FullReason)
	}
	return plan, nil
}

// snapshot returns the spec and facts of the snapshot to back up: the one
// the request names, or a new managed one. undo removes a new one again
// (after a failure; after a kill the next run's clean-up does).
func (b *backup) snapshot(ctx context.Context) (Spec, SnapInfo, func(), error) {
	spec := b.spec
	if spec.Snap != "" {
		snap, ok, err := b.head.Snapshot(ctx, spec.Snap)
		if err == nil && !ok {
			err = fmt.Errorf("snapshot %s: %w", spec, ErrNotFound)
		}
		return spec, snap, func() {}, err
	}
	// Leftovers of killed runs go first, so that at most the base and the
	// new snapshot exist while this backup runs.
	keep := ""
	if l := b.latest(); l != nil && l.Tags[TagImageID] == b.head.ID() {
		keep = l.Tags[TagSnap]
	}
	if err := b.removeManaged(ctx, keep); err != nil {
		return spec, SnapInfo{}, nil, err
	}
	spec.Snap = SnapName(b.repo.Config().ID, time.Now(), randomSuffix())
	snap, err := b.head.CreateSnapshot(ctx, spec.Snap)
	undo := func() {
		if rerr := b.head.RemoveSnapshot(context.WithoutCancel(ctx), spec.Snap); rerr != nil {
			b.req.Report.warnf("could not remove snapshot %s: %v", spec, rerr)
		}
	}
	if err != nil {
		undo()
		return spec, SnapInfo{}, nil, err
	}
	return spec, snap, undo, nil
}

// read reads src as planned and commits the checkpoint.
func (b *backup) read(ctx context.Context, src *Source, plan Plan, snap SnapInfo) (*dedup.Checkpoint, error) {
	size := src.Size()
	if plan.Parent != nil && plan.BaseSnap != "" && plan.Parent.Size != size {
		plan.BaseSnap, plan.Incrementals = "", 0
		plan.FullReason = fmt.Sprintf("image resized from %d to %d bytes", plan.Parent.Size, size)
		b.req.Report.warnf("reading the whole image %s: %s", b.spec.ImageName(), plan.FullReason)
	}
	bs := int64(b.repo.Config().BlockSize)
	alloc, err := src.Allocated(ctx)
	if err != nil {
		return nil, err
	}
	workers := b.req.Workers
	if workers <= 0 {
		workers = DefaultWorkers
	}
	tags := b.tags(plan, src, snap)
	o := dedup.BackupOptions{Allocated: blockdev.BackupExtents(alloc, bs, size), Tags: tags, Workers: workers}
	if plan.Parent != nil {
		o.Parent = plan.Parent.ID
	}
	if plan.BaseSnap != "" {
		changed, err := src.Changed(ctx, plan.BaseSnap)
		if err != nil {
			return nil, err
		}
		if b.req.DropDiffExtent && len(changed) > 0 {
			i := len(changed) / 2
			b.req.Report.warnf("test hook: dropping changed extent %d+%d", changed[i].Off, changed[i].Len)
			changed = append(changed[:i], changed[i+1:]...)
		}
		o.Changed = blockdev.BackupExtents(changed, bs, size)
		if err := b.verifySample(ctx, plan.Parent.ID, src, o.Changed, workers, tags); err != nil {
			return nil, err
		}
	}
	st := b.req.Report.stage("backup")
	o.Progress = st.Bytes
	cp, err := b.repo.Backup(ctx, src, o)
	st.Done()
	return cp, err
}

// tags are the rbd.* tags of the new checkpoint, beside the request's.
func (b *backup) tags(plan Plan, src *Source, snap SnapInfo) map[string]string {
	t := make(map[string]string, len(b.req.Tags)+16)
	for k, v := range b.req.Tags {
		t[k] = v
	}
	t[TagPool], t[TagImage], t[TagImageID] = b.spec.Pool, b.spec.Image, b.head.ID()
	if b.spec.Namespace != "" {
		t[TagNamespace] = b.spec.Namespace
	}
	t[TagSnap], t[TagSnapID] = snap.Name, strconv.FormatUint(snap.ID, 10)
	t[TagSnapManaged] = strconv.FormatBool(b.spec.Snap == "")
	t[TagIncrementals] = strconv.Itoa(plan.Incrementals)
	if plan.BaseSnap == "" {
		t[TagMode], t[TagFullReason] = "full", plan.FullReason
	} else {
		t[TagMode], t[TagBaseSnap] = "incremental", plan.BaseSnap
		t[TagDiff] = "exact"
		if src.FastDiff() {
			t[TagDiff] = "whole-object (fast-diff)"
		}
	}
	if plan.Fallback != "" {
		t[TagFallback] = plan.Fallback
	}
	return t
}

// verifySample re-reads a random sample of the blocks the diff called
// unchanged and compares them with the parent: a diff is a hint, and Ceph
// has shipped diff bugs. Any difference fails the backup before anything
// is committed.
func (b *backup) verifySample(ctx context.Context, parentID string, src *Source, changed []dedup.Extent, workers int, tags map[string]string) error {
	pcp, pbm, err := b.repo.LoadCheckpoint(ctx, parentID)
	if err != nil {
		return fmt.Errorf("load parent: %w", err)
	}
	bs := int64(pcp.BlockSize)
	var seed [16]byte
	_, _ = crand.Read(seed[:])
	rng := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	sample, unchanged := sampleUnchanged(pbm.Blocks, bs, changed, b.req.VerifySample, rng)
	tags[TagSampled] = fmt.Sprintf("%d of %d", len(sample), unchanged)
	if len(sample) == 0 {
		return nil
	}
	bad, err := compareBlocks(ctx, b.repo, b.req.Report, "verify diff", pcp, pbm, src, sample, workers)
	if err != nil {
		return fmt.Errorf("verify RBD diff: %w", err)
	}
	if len(bad) > 0 {
		return fmt.Errorf("RBD diff missed changes at offset %d (%d of %d sampled unchanged blocks differ from checkpoint %s): refusing this incremental; run a full backup with --full",
			bad[0]*bs, len(bad), len(sample), pcp.ID)
	}
	tags[TagSampledBytes] = strconv.FormatInt(min(int64(len(sample))*bs, pcp.Size), 10)
	return nil
}

// compareBlocks runs Repository.CompareBlocks as one reported stage.
func compareBlocks(ctx context.Context, r *dedup.Repository, rep Reporter, label string, cp *dedup.Checkpoint, bm *dedup.BlockMap, src dedup.Source, blocks []int64, workers int) ([]int64, error) {
	st := rep.stage(label)
	defer st.Done()
	var done atomic.Int64
	total := len(blocks)
	return r.CompareBlocks(ctx, cp, bm, src, blocks, workers, func() {
		if n := done.Add(1); n%8 == 0 || int(n) == total {
			st.Blocks(int(n), total)
		}
	})
}

// CompareWithSnapshot reads every block of the snapshot checkpoint cp was
// made from and compares it with the checkpoint (bm is its block map). It
// returns the snapshot and the numbers of the blocks that differ. A
// snapshot that is gone, or was replaced, is an error wrapping
// ErrNotFound: there is nothing to compare with.
func CompareWithSnapshot(ctx context.Context, cl *Cluster, r *dedup.Repository, cp *dedup.Checkpoint, bm *dedup.BlockMap, rep Reporter) (Spec, []int64, error) {
	spec, err := cl.CheckSnapshot(ctx, cp)
	if err != nil {
		return spec, nil, err
	}
	src, err := cl.OpenSource(ctx, spec)
	if err != nil {
		return spec, nil, err
	}
	defer src.Close()
	all := make([]int64, bm.Blocks)
	for i := range all {
		all[i] = int64(i)
	}
	bad, err := compareBlocks(ctx, r, rep, "verify source", cp, bm, src, all, DefaultWorkers)
	return spec, bad, err
}

// removeManaged removes this repository's managed snapshots of the image
// except keep.
func (b *backup) removeManaged(ctx context.Context, keep string) error {
	return RemoveManagedSnapshots(ctx, b.head, b.repo.Config().ID, func(name string) bool { return name == keep })
}

// RemoveManagedSnapshots removes the snapshots of im that the repository
// with ID repoID manages, except those keep says to keep.
func RemoveManagedSnapshots(ctx context.Context, im *Image, repoID string, keep func(name string) bool) error {
	snaps, err := im.Snapshots(ctx)
	if err != nil {
		return err
	}
	for _, s := range snaps {
		if !IsManaged(repoID, s.Name) || keep(s.Name) {
			continue
		}
		if err := im.RemoveSnapshot(ctx, s.Name); err != nil {
			return err
		}
	}
	return nil
}

func randomSuffix() string {
	var b [4]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}
