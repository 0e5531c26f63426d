package backup

import (
	"context"
	"fmt"

	"cairn/blockdev"
	"cairn/dedup"
)

// DefaultWorkers is the number of concurrent reads of a snapshot source
// when Options.Workers is 0: its reads wait on the network and the OSDs,
// not on the CPU. A live source leaves the number to dedup (the CPUs).
const DefaultWorkers = 8

// Options are one backup. The caller chooses the parent (the CLI from the
// repository's history, a plugin from the appliance's state); Run decides
// from the parent's tags and the device's snapshots whether the backup
// can read only what changed (PlanBackup).
type Options struct {
	// Parent is the checkpoint to follow; nil for none. Without a
	// Snapshotter it only speeds up deduplication.
	Parent *dedup.Checkpoint
	// Latest is the newest earlier checkpoint of the device (nil:
	// Parent). Its managed snapshot is the base that the clean-up before
	// a backup keeps; every other managed snapshot on the device is a
	// leftover of a killed backup.
	Latest *dedup.Checkpoint
	// Snap names an existing snapshot to back up, which Run never
	// removes; "" takes a new managed one (Snapshotter.Create).
	Snap string
	// Full reads the whole device because the caller asked for it: no
	// warning says why. FullReason is then the rbd.full_reason tag.
	Full bool
	// FullReason, when set, reads the whole device for that reason (and
	// warns, unless Full); Parent then only speeds up deduplication.
	FullReason string
	// FullEvery forces a whole read on every Nth backup (0: never).
	FullEvery int
	// VerifySample is the fraction of unchanged blocks to re-read and
	// compare with the parent (0 disables; at least one block otherwise).
	VerifySample float64
	// Workers bounds concurrent reads (0: DefaultWorkers for a snapshot
	// source, dedup's default for a live one).
	Workers int
	// Tags are recorded on the checkpoint beside the device's and the
	// plan's.
	Tags   map[string]string
	Report Reporter
}

// Run backs up src as a new checkpoint of repo and returns it.
//
// A source without a Snapshotter is read as it is: its allocated extents,
// deduplicated against Parent. A source with one is read at a snapshot:
// leftovers of killed backups are removed, a new managed snapshot is
// taken (or Options.Snap is used), only the extents changed since the
// parent's snapshot are read when the plan allows (a sample of the rest
// is compared with the parent), and the checkpoint is committed. Only
// after the commit is the previous managed snapshot removed, so that the
// new one is the single base from then on.
//
// A backup that fails or is cancelled commits nothing and removes the
// snapshot it took; the previous one stays the base. Two backups of one
// device into one repository must not run at once: each removes the
// other's snapshot.
func Run(ctx context.Context, repo *dedup.Repository, src Source, o Options) (*dedup.Checkpoint, error) {
	snaps := src.Snapshots()
	if snaps == nil {
		return runLive(ctx, repo, src, o)
	}
	r := &run{repo: repo, src: src, snaps: snaps, o: o}
	plan, err := r.plan(ctx)
	if err != nil {
		return nil, err
	}
	snap, err := r.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	rd, err := src.Open(ctx, snap.Name)
	if err != nil {
		r.undo(ctx, snap)
		return nil, err
	}
	cp, err := r.read(ctx, rd, plan, snap)
	if cerr := rd.Close(); err == nil && cerr != nil {
		o.Report.warnf("%v", cerr)
	}
	if err != nil {
		r.undo(ctx, snap)
		return nil, err
	}
	if o.Snap == "" {
		// Committed: the new snapshot is the one base from now on.
		if err := r.removeManaged(ctx, snap.Name); err != nil {
			o.Report.warnf("checkpoint %s committed, but an old snapshot stays until the next backup: %v", cp.ID, err)
		}
	}
	return cp, nil
}

// runLive backs up a source without snapshots.
func runLive(ctx context.Context, repo *dedup.Repository, src Source, o Options) (*dedup.Checkpoint, error) {
	rd, err := src.Open(ctx, "")
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	ext, err := rd.Allocated(ctx)
	if err != nil {
		return nil, err
	}
	do := dedup.BackupOptions{Tags: o.Tags, Workers: o.Workers,
		Allocated: blockdev.BackupExtents(ext, int64(repo.Config().BlockSize), rd.Size())}
	if o.Parent != nil {
		do.Parent = o.Parent.ID
	}
	st := o.Report.stage("backup")
	do.Progress = st.Bytes
	cp, err := repo.Backup(ctx, rd, do)
	st.Done()
	return cp, err
}

// run is one backup of a source with snapshots, from plan to commit.
type run struct {
	repo  *dedup.Repository
	src   Source
	snaps Snapshotter
	o     Options
}

// latest is the checkpoint whose snapshot is the base now.
func (r *run) latest() *dedup.Checkpoint {
	if r.o.Latest != nil {
		return r.o.Latest
	}
	return r.o.Parent
}

// plan picks the base snapshot and warns when a whole device is read
// where an incremental was expected.
func (r *run) plan(ctx context.Context) (Plan, error) {
	snaps, err := r.snaps.List(ctx)
	if err != nil {
		return Plan{}, err
	}
	in := PlanInput{
		ImageID: r.snaps.DeviceID(), Snaps: snaps, Parent: r.o.Parent,
		FullReason: r.o.FullReason, FullEvery: r.o.FullEvery,
		IsBad: func(id string) (bool, error) { return r.repo.IsBadBase(ctx, id) },
	}
	if r.o.Full && in.FullReason == "" {
		in.FullReason = "full backup requested"
	}
	plan, err := PlanBackup(in)
	if err != nil {
		return Plan{}, err
	}
	switch {
	case plan.Fallback != "":
		r.o.Report.warnf("%s of %s: reading the whole image (unchanged blocks still deduplicate against checkpoint %s)",
			plan.FullReason, r.src.Name(), plan.Parent.ID)
	case plan.BaseSnap == "" && !r.o.Full && r.latest() != nil:
		// Not the first backup of the device, yet a whole read: say why.
		r.o.Report.warnf("reading the whole image %s: %s", r.src.Name(), plan.FullReason)
	}
	return plan, nil
}

// read reads rd as planned and commits the checkpoint.
func (r *run) read(ctx context.Context, rd Reader, plan Plan, snap Snap) (*dedup.Checkpoint, error) {
	size := rd.Size()
	if plan.Parent != nil && plan.BaseSnap != "" && plan.Parent.Size != size {
		plan.BaseSnap, plan.Incrementals = "", 0
		plan.FullReason = fmt.Sprintf("image resized from %d to %d bytes", plan.Parent.Size, size)
		r.o.Report.warnf("reading the whole image %s: %s", r.src.Name(), plan.FullReason)
	}
	bs := int64(r.repo.Config().BlockSize)
	alloc, err := rd.Allocated(ctx)
	if err != nil {
		return nil, err
	}
	workers := r.o.Workers
	if workers <= 0 {
		workers = DefaultWorkers
	}
	var differ Differ
	if plan.BaseSnap != "" {
		var ok bool
		if differ, ok = rd.(Differ); !ok {
			return nil, fmt.Errorf("back up %s against snapshot %s: %w", r.src.Name(), plan.BaseSnap, ErrNoDiff)
		}
	}
	tags := r.tags(plan, rd, differ, snap)
	o := dedup.BackupOptions{Allocated: blockdev.BackupExtents(alloc, bs, size), Tags: tags, Workers: workers}
	if plan.Parent != nil {
		o.Parent = plan.Parent.ID
	}
	if differ != nil {
		changed, err := differ.Changed(ctx, plan.BaseSnap)
		if err != nil {
			return nil, err
		}
		changed = testDropDiffExtent(changed, r.o.Report)
		o.Changed = blockdev.BackupExtents(changed, bs, size)
		if err := verifySample(ctx, r.repo, r.o, plan.Parent.ID, rd, o.Changed, workers, tags); err != nil {
			return nil, err
		}
	}
	st := r.o.Report.stage("backup")
	o.Progress = st.Bytes
	cp, err := r.repo.Backup(ctx, rd, o)
	st.Done()
	return cp, err
}
