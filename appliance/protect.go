package appliance

import (
	"context"
	"errors"
	"fmt"

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
		Plan:      PlanRef{ID: p.ID, Name: p.Name, ProviderID: p.ProviderID, Resources: p.Resources},
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
	a.checkpoints[cp.ID] = cp
	if err := a.submit(j, func(ctx context.Context) error { return a.runProtect(ctx, cp.ID, log.ID) }); err != nil {
		delete(a.checkpoints, cp.ID)
		return nil, err
	}
	a.save("checkpoints", cp.ID, cp)
	a.save("operation_logs", log.ID, log)
	c := *cp
	return &c, nil
}

// runProtect protects each resource of the checkpoint in turn. When one
// fails, the backups of the others are deleted and the checkpoint fails.
func (a *Appliance) runProtect(ctx context.Context, cpID, logID string) error {
	a.mu.Lock()
	cp := a.checkpoints[cpID]
	if cp == nil {
		a.mu.Unlock()
		return fmt.Errorf("checkpoint %s: %w", cpID, ErrNotFound)
	}
	res := append([]ResourceBackup(nil), cp.Resources...)
	tags := map[string]string{tagCheckpoint: cp.ID, "cairn.project": cp.ProjectID, "cairn.plan": cp.Plan.ID}
	a.mu.Unlock()

	var failed error
	for i := range res {
		rb := res[i]
		p, err := a.reg.Get(rb.Resource.Type)
		var b *plugins.Backup
		if err == nil {
			b, err = p.Protect(ctx, a.repo, plugins.ProtectRequest{Resource: rb.Resource, Tags: tags})
		}
		a.mu.Lock()
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
		a.save("checkpoints", cp.ID, cp)
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

	a.mu.Lock()
	defer a.mu.Unlock()
	log := a.oplogs[logID]
	if failed != nil {
		a.removeBackupsLocked(context.WithoutCancel(ctx), cp)
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
		cp.ExtraInfo["size_bytes"], cp.ExtraInfo["allocated_bytes"] = size, alloc
		cp.ExtraInfo["read_bytes"], cp.ExtraInfo["new_bytes"], cp.ExtraInfo["stored_bytes"] = read, nw, stored
	}
	a.save("checkpoints", cp.ID, cp)
	a.finishLogLocked(log, failed)
	if failed == nil && cp.ScheduledOpID != "" {
		a.applyRetentionLocked(ctx, cp.ScheduledOpID)
	}
	return failed
}

// DeleteCheckpoint deletes a checkpoint and its backups.
func (a *Appliance) DeleteCheckpoint(ctx context.Context, project, providerID, id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	cp := a.checkpoints[id]
	if cp == nil || cp.ProjectID != project || cp.ProviderID != providerID {
		return fmt.Errorf("checkpoint %s: %w", id, ErrNotFound)
	}
	if cp.Status == CheckpointProtecting {
		return fmt.Errorf("checkpoint %s is still protecting: %w", id, ErrConflict)
	}
	return a.deleteCheckpointLocked(ctx, cp)
}

func (a *Appliance) deleteCheckpointLocked(ctx context.Context, cp *Checkpoint) error {
	log := a.newLogLocked(cp.ProjectID, "delete")
	log.CheckpointID, log.PlanID, log.ProviderID = cp.ID, cp.Plan.ID, cp.ProviderID
	a.removeBackupsLocked(ctx, cp)
	for _, r := range cp.Resources {
		if r.BackupID != "" {
			err := fmt.Errorf("could not delete backup %s", r.BackupID)
			a.finishLogLocked(log, err)
			a.save("checkpoints", cp.ID, cp)
			return err
		}
	}
	delete(a.checkpoints, cp.ID)
	if err := a.st.delete("checkpoints", cp.ID); err != nil {
		return err
	}
	a.finishLogLocked(log, nil)
	return nil
}

// Checkpoints lists a project's checkpoints of a provider.
func (a *Appliance) Checkpoints(project, providerID string) ([]Checkpoint, error) {
	if providerID != ProviderID {
		return nil, fmt.Errorf("provider %s: %w", providerID, ErrNotFound)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Checkpoint
	for _, c := range a.checkpoints {
		if c.ProjectID == project {
			out = append(out, *c)
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
	cc := *c
	cc.Resources = append([]ResourceBackup(nil), c.Resources...)
	return &cc, nil
}
