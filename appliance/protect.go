package appliance

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"cairn/internal/openstack"
	"cairn/plugins"
)

// CreateCheckpoint protects plan planID now. It returns at once with the
// checkpoint in status "protecting"; a worker moves it to "available" or
// "error".
func (a *Appliance) CreateCheckpoint(ctx context.Context, project, providerID, planID string, extra map[string]any, opID string) (*Checkpoint, error) {
	if providerID != ProviderID {
		return nil, fmt.Errorf("provider %s: %w", providerID, ErrNotFound)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.plans[planID]
	if p == nil || p.ProjectID != project {
		return nil, fmt.Errorf("plan %s: %w", planID, ErrNotFound)
	}
	if p.ProviderID != providerID {
		return nil, fmt.Errorf("plan %s belongs to provider %s: %w", planID, p.ProviderID, ErrInvalid)
	}
	cp := &Checkpoint{ID: NewUUID(), ProjectID: project, ProviderID: providerID, Status: CheckpointProtecting,
		Plan: PlanRef{ID: p.ID, Name: p.Name, ProviderID: p.ProviderID, Resources: slices.Clone(p.Resources),
			Parameters: maps.Clone(p.Parameters)},
		ExtraInfo: extra, CreatedAt: a.now().UTC(), ScheduledOpID: opID}
	if cp.ExtraInfo == nil {
		cp.ExtraInfo = map[string]any{}
	}
	for _, r := range p.Resources {
		cp.Resources = append(cp.Resources, ResourceBackup{Resource: r, Status: ResourceProtecting})
	}
	log := a.newLogLocked(project, "protect")
	log.CheckpointID, log.PlanID, log.ProviderID, log.ScheduledOperationID = cp.ID, p.ID, providerID, opID
	j := &job{ID: NewUUID(), Kind: "protect", ObjectID: cp.ID, ProjectID: project, StartedAt: a.now()}
	var trust string
	if op := a.ops[opID]; op != nil {
		trust = op.TrustID
	}
	a.checkpoints[cp.ID] = cp
	if err := a.submit(j, func(ctx context.Context) error { return a.runProtect(ctx, cp.ID, log.ID, trust) }); err != nil {
		a.dropCheckpointLocked(cp.ID)
		a.refusedLogLocked(log, opID, err)
		return nil, err
	}
	a.saveCheckpointLocked(cp)
	a.save("operation_logs", log.ID, log)
	return cloneCheckpoint(cp), nil
}

// previousBackupLocked returns the repository checkpoint of r in the
// project's newest available checkpoint that holds it, or "". It scans
// memory only: the repository is not listed, whatever its size.
func (a *Appliance) previousBackupLocked(project string, r plugins.Resource) string {
	var newest *Checkpoint
	var id string
	for _, c := range a.checkpoints {
		if c.ProjectID != project || c.Status != CheckpointAvailable {
			continue
		}
		if newest != nil && !c.CreatedAt.After(newest.CreatedAt) {
			continue
		}
		for _, rb := range c.Resources {
			if rb.Resource.Type == r.Type && rb.Resource.ID == r.ID && rb.Status == ResourceAvailable && rb.BackupID != "" {
				newest, id = c, rb.BackupID
				break
			}
		}
	}
	return id
}

// resourceKeys returns the lock keys ("type#id") of res's resources,
// sorted and without repeats.
func resourceKeys(res []ResourceBackup) []string {
	keys := make([]string, 0, len(res))
	for _, rb := range res {
		keys = append(keys, rb.Resource.Type+"#"+rb.Resource.ID)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// cloneCheckpoint deep-copies what a job mutates (resources, extra info),
// so callers may read the copy without holding mu.
func cloneCheckpoint(c *Checkpoint) *Checkpoint {
	cc := *c
	cc.Resources = slices.Clone(c.Resources)
	cc.Plan.Resources = slices.Clone(c.Plan.Resources)
	cc.ExtraInfo = maps.Clone(c.ExtraInfo)
	cc.Tags = maps.Clone(c.Tags)
	return &cc
}

// runProtect protects each resource of the checkpoint in turn. When one
// fails, the backups of the others are deleted and the checkpoint fails.
// With a trust (a scheduled operation's), every cloud request of the job
// acts through it.
func (a *Appliance) runProtect(ctx context.Context, cpID, logID, trust string) error {
	if trust != "" {
		ctx = openstack.WithTrust(ctx, trust)
	}
	a.mu.Lock()
	cp := a.checkpoints[cpID]
	if cp == nil {
		a.mu.Unlock()
		return fmt.Errorf("checkpoint %s: %w", cpID, ErrNotFound)
	}
	res := append([]ResourceBackup(nil), cp.Resources...)
	tags := map[string]string{tagCheckpoint: cp.ID, "cairn.project": cp.ProjectID, "cairn.plan": cp.Plan.ID}
	params := cp.Plan.Parameters // never modified: see PlanRef
	opID := cp.ScheduledOpID
	a.mu.Unlock()
	depErr := a.checkTrust(ctx, opID, trust)
	if depErr == nil {
		res, depErr = a.withDependencies(ctx, cp.ProjectID, res)
	}
	if depErr == nil {
		a.mu.Lock()
		cp.Resources = append([]ResourceBackup(nil), res...)
		a.saveCheckpointLocked(cp)
		a.mu.Unlock()
	}

	// Two protections of one resource never overlap: an RBD image's base
	// snapshot and the incremental chain assume one backup at a time.
	// Locks are taken in a fixed order, so plans sharing resources cannot
	// deadlock; a waiting job holds its worker. A shutdown while waiting
	// leaves the job to the next start, like any interrupted job.
	for _, k := range resourceKeys(res) {
		unlock, err := a.resLocks.Lock(ctx, k)
		if err != nil {
			return err
		}
		defer unlock()
	}
	var failed error
	repo, release, err := a.repos.get(ctx, cp.ProjectID)
	if depErr != nil {
		failed, res = depErr, nil
		if err == nil {
			release()
		}
	} else if err != nil {
		failed = fmt.Errorf("the project's repository: %w", err)
		res = nil // nothing to protect into; the checkpoint fails below
	} else {
		defer release()
	}
	a.mu.Lock()
	previous := make([]string, len(res))
	for i, rb := range res {
		previous[i] = a.previousBackupLocked(cp.ProjectID, rb.Resource)
	}
	cp.Transfer = Transfer{StartedAt: a.now().UTC(), ETASeconds: -1}
	a.mu.Unlock()

	var base int64 // bytes of the resources already done
	for i := range res {
		rb := res[i]
		p, err := a.reg.Get(rb.Resource.Type)
		var b *plugins.Backup
		var last int64
		progress := func(done, total int64) {
			a.mu.Lock()
			defer a.mu.Unlock()
			last = total
			a.progressLocked(cp, i, len(res), base+done, base+total, done, total)
		}
		if err == nil {
			b, err = p.Protect(ctx, repo, plugins.ProtectRequest{Project: cp.ProjectID, Resource: rb.Resource, Tags: tags, Previous: previous[i],
				Options: resourceParams(params, rb.Resource), Progress: progress})
		}
		a.mu.Lock()
		base += last // under mu: the callback may run on another goroutine
		cur := &cp.Resources[i]
		if err != nil {
			cur.Status, cur.Reason = ResourceError, err.Error()
			failed = fmt.Errorf("resource %s: %w", rb.Resource.Name, err)
		} else {
			cur.Status, cur.BackupID, cur.Size = ResourceAvailable, b.ID, b.Size
			cur.AllocatedBytes, cur.ReadBytes, cur.NewBytes, cur.StoredBytes = b.Stats.AllocatedBytes, b.Stats.ReadBytes, b.Stats.NewBytes, b.Stats.StoredBytes
			a.metrics.protBytes.Add(b.Stats.ReadBytes)
			a.metrics.storedBytes.Add(b.Stats.StoredBytes)
		}
		cp.Progress = (i + 1) * 100 / len(res)
		a.saveCheckpointLocked(cp)
		a.mu.Unlock()
		if failed != nil {
			break
		}
	}
	if failed == nil && ctx.Err() != nil {
		failed = ctx.Err()
	}
	if errors.Is(failed, context.Canceled) {
		// Shutdown: the job record stays and the next start cleans up.
		return failed
	}

	if failed != nil {
		// Remove what the other resources committed, without holding mu:
		// nobody else touches a checkpoint that is still protecting.
		a.mu.Lock()
		backups := pendingBackups(cp)
		a.mu.Unlock()
		removed := a.deleteBackups(context.WithoutCancel(ctx), cp.ProjectID, cp.ID, backups)
		a.mu.Lock()
		clearBackups(cp, removed)
		a.mu.Unlock()
	}

	a.mu.Lock()
	log := a.oplogs[logID]
	cp.Transfer = Transfer{}
	if failed != nil {
		for i := range cp.Resources {
			if cp.Resources[i].Status == ResourceProtecting {
				cp.Resources[i].Status, cp.Resources[i].Reason = ResourceSkipped, "an earlier resource failed"
			} else if cp.Resources[i].Status == ResourceAvailable {
				cp.Resources[i].Status, cp.Resources[i].Reason = ResourceError, "removed: another resource of the checkpoint failed"
			}
		}
		cp.Status, cp.ErrorReason = CheckpointError, failed.Error()
	} else {
		cp.Status, cp.Progress = CheckpointAvailable, 100
		var size, alloc, read, nw, stored int64
		for _, r := range cp.Resources {
			size += r.Size
			alloc += r.AllocatedBytes
			read += r.ReadBytes
			nw += r.NewBytes
			stored += r.StoredBytes
		}
		// Copy on write: readers may hold the previous map.
		extra := maps.Clone(cp.ExtraInfo)
		if extra == nil {
			extra = map[string]any{}
		}
		extra["size_bytes"], extra["allocated_bytes"] = size, alloc
		extra["read_bytes"], extra["new_bytes"], extra["stored_bytes"] = read, nw, stored
		cp.ExtraInfo = extra
	}
	a.saveCheckpointLocked(cp)
	a.finishLogLocked(log, failed)
	var expired []*deletion
	if failed == nil && cp.ScheduledOpID != "" {
		expired = a.retentionLocked(cp.ScheduledOpID)
	}
	a.mu.Unlock()
	for _, d := range expired {
		if err := a.finishDelete(ctx, d); err != nil {
			a.log.Error("retention", "checkpoint", d.cp.ID, "err", err)
		}
	}
	return failed
}

// progressLocked records a running protection's byte progress in memory
// and publishes it to lists; it is not persisted (a restart fails the job
// anyway). Resource i of n is at done of total bytes.
func (a *Appliance) progressLocked(cp *Checkpoint, i, n int, allDone, allTotal, done, total int64) {
	cp.Transfer.update(allDone, allTotal, a.now().UTC())
	pct := i * 100 / n
	if total > 0 {
		pct += int(done * 100 / total / int64(n))
	}
	cp.Progress = min(pct, 99) // 100 only once the checkpoint is available
	a.published.put(cloneCheckpoint(cp))
}

// DeleteCheckpoint deletes a checkpoint and its backups. The checkpoint
// is marked "deleting" under mu; the plugins' deletes run without it.
func (a *Appliance) DeleteCheckpoint(ctx context.Context, project, providerID, id string) error {
	a.mu.Lock()
	cp := a.checkpoints[id]
	if cp == nil || cp.ProjectID != project || cp.ProviderID != providerID {
		a.mu.Unlock()
		return fmt.Errorf("checkpoint %s: %w", id, ErrNotFound)
	}
	if cp.Status == CheckpointProtecting || cp.Status == CheckpointDeleting {
		a.mu.Unlock()
		return fmt.Errorf("checkpoint %s is %s: %w", id, cp.Status, ErrConflict)
	}
	if a.runningOnLocked(id) {
		a.mu.Unlock()
		return fmt.Errorf("checkpoint %s is being restored or verified: %w", id, ErrConflict)
	}
	d := a.beginDeleteLocked(cp)
	a.mu.Unlock()
	return a.finishDelete(ctx, d)
}

// runningOnLocked reports whether a restore or verification of checkpoint
// cpID is queued or running (its job record outlives its final status
// briefly, hence the status check).
func (a *Appliance) runningOnLocked(cpID string) bool {
	for _, j := range a.jobs {
		if j.Kind == "protect" {
			continue
		}
		m := a.restores
		if j.Kind == "verify" {
			m = a.verifications
		}
		if r := m[j.ObjectID]; r != nil && r.CheckpointID == cpID && r.Status == RestoreInProgress {
			return true
		}
	}
	return false
}

// deletion is a checkpoint deletion begun under mu (status "deleting")
// and finished without it.
type deletion struct {
	cp      *Checkpoint
	log     *OperationLog
	backups []backupRef
}

type backupRef struct{ typ, id string }

func pendingBackups(cp *Checkpoint) []backupRef {
	var out []backupRef
	for _, rb := range cp.Resources {
		if rb.BackupID != "" {
			out = append(out, backupRef{rb.Resource.Type, rb.BackupID})
		}
	}
	return out
}

// clearBackups forgets the backup IDs that were deleted; callers hold mu.
func clearBackups(cp *Checkpoint, removed map[string]bool) {
	for i := range cp.Resources {
		if removed[cp.Resources[i].BackupID] {
			cp.Resources[i].BackupID = ""
		}
	}
}

func (a *Appliance) beginDeleteLocked(cp *Checkpoint) *deletion {
	log := a.newLogLocked(cp.ProjectID, "delete")
	log.CheckpointID, log.PlanID, log.ProviderID = cp.ID, cp.Plan.ID, cp.ProviderID
	cp.Status = CheckpointDeleting
	a.saveCheckpointLocked(cp)
	a.save("operation_logs", log.ID, log)
	return &deletion{cp: cp, log: log, backups: pendingBackups(cp)}
}

// deleteBackups deletes backups through their plugins (mu not held) and
// returns the IDs that are gone.
func (a *Appliance) deleteBackups(ctx context.Context, project, cpID string, bs []backupRef) map[string]bool {
	removed := map[string]bool{}
	if len(bs) == 0 {
		return removed
	}
	repo, release, err := a.repos.get(ctx, project)
	if err != nil {
		a.log.Error("delete backups", "checkpoint", cpID, "err", err)
		return removed
	}
	defer release()
	for _, b := range bs {
		p, err := a.reg.Get(b.typ)
		if err == nil {
			err = p.Delete(ctx, repo, b.id)
		}
		if err != nil && !errors.Is(err, plugins.ErrUnknownType) {
			a.log.Error("delete backup", "checkpoint", cpID, "backup", b.id, "err", err)
			continue
		}
		removed[b.id] = true
	}
	return removed
}

// finishDelete runs the deletes of d without mu, then removes the record,
// or marks the checkpoint "error" when a backup could not be deleted (a
// second delete retries).
func (a *Appliance) finishDelete(ctx context.Context, d *deletion) error {
	removed := a.deleteBackups(ctx, d.cp.ProjectID, d.cp.ID, d.backups)
	a.mu.Lock()
	defer a.mu.Unlock()
	cp := d.cp
	clearBackups(cp, removed)
	for _, r := range cp.Resources {
		if r.BackupID != "" {
			err := fmt.Errorf("could not delete backup %s of checkpoint %s", r.BackupID, cp.ID)
			cp.Status, cp.ErrorReason = CheckpointError, err.Error()
			a.saveCheckpointLocked(cp)
			a.finishLogLocked(d.log, err)
			return err
		}
	}
	a.dropCheckpointLocked(cp.ID)
	if err := a.st.delete("checkpoints", cp.ID); err != nil {
		a.finishLogLocked(d.log, err)
		return err
	}
	a.finishLogLocked(d.log, nil)
	return nil
}

// Checkpoints lists a project's checkpoints of a provider as last saved,
// newest first.
// The checkpoints are shared: callers MUST NOT modify them.
func (a *Appliance) Checkpoints(project, providerID string) ([]*Checkpoint, error) {
	if providerID != ProviderID {
		return nil, fmt.Errorf("provider %s: %w", providerID, ErrNotFound)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*Checkpoint, 0, len(a.published.all()))
	for _, c := range a.published.all() {
		if inProject(c.ProjectID, project) {
			out = append(out, c)
		}
	}
	return out, nil
}

// Checkpoint returns one checkpoint.
func (a *Appliance) Checkpoint(project, providerID, id string) (*Checkpoint, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.checkpoints[id]
	if c == nil || c.ProjectID != project || c.ProviderID != providerID {
		return nil, fmt.Errorf("checkpoint %s: %w", id, ErrNotFound)
	}
	return cloneCheckpoint(c), nil
}
