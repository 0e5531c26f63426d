package appliance

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"

	"cairn/plugins"
)

// CreateRestore restores an available checkpoint. Per-resource parameters
// are looked up in params under "type#id", then under "type"; for the file
// plugin they hold "restore_path". A restore_target that is an absolute
// path is the restore path of a single-resource checkpoint.
func (a *Appliance) CreateRestore(ctx context.Context, project, providerID, cpID, target string, params map[string]any) (*Restore, error) {
	return a.createRun(project, providerID, cpID, target, params, "restore")
}

// CreateVerification reads every backup of a checkpoint back.
func (a *Appliance) CreateVerification(ctx context.Context, project, providerID, cpID string, params map[string]any) (*Restore, error) {
	return a.createRun(project, providerID, cpID, "", params, "verify")
}

func (a *Appliance) createRun(project, providerID, cpID, target string, params map[string]any, kind string) (*Restore, error) {
	if providerID != ProviderID {
		return nil, fmt.Errorf("provider %s: %w", providerID, ErrNotFound)
	}
	if target != "" && filepath.IsAbs(target) {
		if params == nil {
			params = map[string]any{}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cp := a.checkpoints[cpID]
	if cp == nil || cp.ProjectID != project {
		return nil, fmt.Errorf("checkpoint %s: %w", cpID, ErrNotFound)
	}
	if cp.Status != CheckpointAvailable {
		return nil, fmt.Errorf("checkpoint %s is %s, not available: %w", cpID, cp.Status, ErrConflict)
	}
	r := &Restore{ID: NewUUID(), ProjectID: project, ProviderID: providerID, CheckpointID: cpID, RestoreTarget: target,
		Parameters: params, Status: RestoreInProgress, ResourcesStatus: map[string]string{}, ResourcesReason: map[string]string{},
		Restored: map[string]string{}, CreatedAt: a.now().UTC()}
	if r.Parameters == nil {
		r.Parameters = map[string]any{}
	}
	st := ResourceRestoring
	kindName := "restores"
	m := a.restores
	if kind == "verify" {
		st, kindName, m, r.Restored = "verifying", "verifications", a.verifications, nil
	}
	if kind == "restore" {
		if err := a.checkTargetsLocked(r, cp.Resources); err != nil {
			return nil, err
		}
	}
	for _, rb := range cp.Resources {
		r.ResourcesStatus[resKey(rb.Resource)] = st
	}
	log := a.newLogLocked(project, kind)
	log.CheckpointID, log.PlanID, log.ProviderID, log.RestoreID = cpID, cp.Plan.ID, providerID, r.ID
	j := &job{ID: NewUUID(), Kind: kind, ObjectID: r.ID, ProjectID: project, StartedAt: a.now()}
	res := append([]ResourceBackup(nil), cp.Resources...)
	if err := a.submit(j, func(ctx context.Context) error { return a.runRestore(ctx, r, res, kind, log.ID) }); err != nil {
		a.refusedLogLocked(log, "", err)
		return nil, err
	}
	m[r.ID] = r
	a.save(kindName, r.ID, r)
	a.save("operation_logs", log.ID, log)
	return cloneRestore(r), nil
}

// targetChecker is a plugin that can tell a bad restore target before the
// restore runs (the file plugin: outside its folders, through a symlink,
// existing).
type targetChecker interface {
	Target(req plugins.RestoreRequest) (string, error)
}

// checkTargetsLocked refuses r when a plugin rejects its target, so that
// the caller gets a 400 instead of a 202 and a failed job.
func (a *Appliance) checkTargetsLocked(r *Restore, res []ResourceBackup) error {
	for _, rb := range res {
		p, err := a.reg.Get(rb.Resource.Type)
		if err != nil {
			continue // reported by the job, as before
		}
		tc, ok := p.(targetChecker)
		if !ok {
			continue
		}
		if _, err := tc.Target(restoreRequest(r, rb, len(res))); err != nil {
			if errors.Is(err, plugins.ErrInvalidParameter) {
				return fmt.Errorf("resource %s: %w: %w", rb.Resource.Name, ErrInvalid, err)
			}
			return fmt.Errorf("resource %s: %w", rb.Resource.Name, err)
		}
	}
	return nil
}

// restoreRequest is what the plugin is asked to restore of rb, one of n
// resources of r.
func restoreRequest(r *Restore, rb ResourceBackup, n int) plugins.RestoreRequest {
	req := plugins.RestoreRequest{Project: r.ProjectID, Resource: rb.Resource, BackupID: rb.BackupID, Parameters: resourceParams(r.Parameters, rb.Resource)}
	if n == 1 && filepath.IsAbs(r.RestoreTarget) {
		req.Target = r.RestoreTarget
	}
	return req
}

func resourceParams(params map[string]any, r plugins.Resource) map[string]any {
	for _, k := range []string{resKey(r), r.Type} {
		if v, ok := params[k].(map[string]any); ok {
			return v
		}
	}
	return map[string]any{}
}

func (a *Appliance) runRestore(ctx context.Context, r *Restore, res []ResourceBackup, kind, logID string) error {
	var failed error
	repo, release, rerr := a.repos.get(ctx, r.ProjectID)
	if rerr == nil {
		defer release()
	}
	if kind == "restore" {
		a.mu.Lock()
		r.Transfer = Transfer{StartedAt: a.now().UTC(), ETASeconds: -1}
		a.mu.Unlock()
	}
	var base int64 // bytes of the resources already restored
	for i, rb := range res {
		p, err := a.reg.Get(rb.Resource.Type)
		where := ""
		if err == nil && rerr != nil {
			err = fmt.Errorf("the project's repository: %w", rerr)
		}
		var last int64
		if err == nil {
			if kind == "verify" {
				err = p.Verify(ctx, repo, rb.BackupID)
			} else {
				req := restoreRequest(r, rb, len(res))
				req.Progress = func(done, total int64) {
					a.mu.Lock()
					defer a.mu.Unlock()
					last = total
					r.Transfer.update(base+done, base+total, a.now().UTC())
					pct := i * 100 / len(res)
					if total > 0 {
						pct += int(done * 100 / total / int64(len(res)))
					}
					r.Progress = min(pct, 99) // in memory only, as a checkpoint's
				}
				where, err = p.Restore(ctx, repo, req)
			}
		}
		a.mu.Lock()
		base += last // under mu: the callback may run on another goroutine
		k := resKey(rb.Resource)
		if err != nil {
			r.ResourcesStatus[k], r.ResourcesReason[k] = ResourceError, err.Error()
			failed = errors.Join(failed, fmt.Errorf("resource %s: %w", rb.Resource.Name, err))
		} else {
			r.ResourcesStatus[k] = RestoreSuccess
			if kind == "restore" {
				r.Restored[k] = where
				a.metrics.restBytes.Add(rb.Size)
			}
		}
		r.Progress = (i + 1) * 100 / len(res)
		a.save(runKind(kind), r.ID, r)
		a.mu.Unlock()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r.Status, r.Transfer = RestoreSuccess, Transfer{}
	if failed != nil {
		r.Status = RestoreFail
	}
	a.save(runKind(kind), r.ID, r)
	a.finishLogLocked(a.oplogs[logID], failed)
	return failed
}

func cloneRestore(r *Restore) *Restore {
	c := *r
	c.ResourcesStatus, c.ResourcesReason, c.Restored = maps.Clone(r.ResourcesStatus), maps.Clone(r.ResourcesReason), maps.Clone(r.Restored)
	return &c
}

// Restores lists a project's restores (kind "restore") or verifications.
func (a *Appliance) Restores(project, kind string) []Restore {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.restores
	if kind == "verify" {
		m = a.verifications
	}
	var out []Restore
	for _, r := range m {
		if inProject(r.ProjectID, project) {
			out = append(out, *cloneRestore(r))
		}
	}
	return out
}

// GetRestore returns one restore or verification.
func (a *Appliance) GetRestore(project, kind, id string) (*Restore, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.restores
	if kind == "verify" {
		m = a.verifications
	}
	r := m[id]
	if r == nil || r.ProjectID != project {
		return nil, fmt.Errorf("%s %s: %w", kind, id, ErrNotFound)
	}
	return cloneRestore(r), nil
}
