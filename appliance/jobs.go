package appliance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"cairn/dedup"
)

// recoverer is implemented by plugins that leave something behind when a
// job is cut off: the file plugin's partial restores, the RBD plugin's
// snapshots and partial images. It runs after the interrupted jobs'
// repository checkpoints are deleted, so what repo still holds is what
// the plugin must keep. It runs once for each project's repository.
type recoverer interface {
	Recover(ctx context.Context, project string, repo *dedup.Repository) error
}

// submit records j and queues fn; callers hold mu. The queue is bounded
// per project (project_max_queued) and in all: a full queue refuses the
// job with ErrBusy.
func (a *Appliance) submit(j *job, fn func(ctx context.Context) error) error {
	if err := a.queue.push(queued{j: j, fn: fn}); err != nil {
		return err
	}
	a.jobs[j.ID] = j
	a.save("jobs", j.ID, j)
	a.metrics.jobQueued(j.Kind)
	return nil
}

// refusedLogLocked settles the operation log of a job submit refused.
// A request's caller sees the error, so its log goes; a scheduled run
// has no caller, so its log stays as an error saying why it was skipped.
func (a *Appliance) refusedLogLocked(l *OperationLog, opID string, err error) {
	if opID == "" {
		delete(a.oplogs, l.ID)
		return
	}
	l.CheckpointID = "" // never created
	a.finishLogLocked(l, fmt.Errorf("scheduled run skipped: %w", err))
}

// worker runs jobs until ctx is done. The queue hands it only jobs whose
// project is below project_max_running.
func (a *Appliance) worker(ctx context.Context) {
	for {
		q, ok := a.queue.take(ctx)
		if !ok {
			return // the records stay: the next start marks them interrupted
		}
		a.runJob(ctx, q)
		a.queue.done(q.j.ProjectID)
	}
}

func (a *Appliance) runJob(ctx context.Context, q queued) {
	start := a.now()
	a.metrics.jobStarted(q.j.Kind)
	a.log.Info("job started", "job", q.j.ID, "kind", q.j.Kind, "object", q.j.ObjectID, "project", q.j.ProjectID)
	err := q.fn(ctx)
	d := a.now().Sub(start)
	a.metrics.jobDone(q.j.Kind, err, d)
	if err != nil {
		a.log.Error("job failed", "job", q.j.ID, "kind", q.j.Kind, "object", q.j.ObjectID, "duration", d.String(), "err", err)
	} else {
		a.log.Info("job done", "job", q.j.ID, "kind", q.j.Kind, "object", q.j.ObjectID, "duration", d.String())
	}
	if err != nil && ctx.Err() != nil {
		return // cut off by the shutdown: leave the record, the next start cleans up
	}
	// A job that finished, even as the shutdown began, is done: its
	// record must not make the next start undo a committed backup.
	a.mu.Lock()
	delete(a.jobs, q.j.ID)
	if err := a.st.delete("jobs", q.j.ID); err != nil {
		a.log.Error("persist state", "err", err)
	}
	a.mu.Unlock()
}

// recover marks the jobs a crash or shutdown interrupted as failed and
// removes what they created.
func (a *Appliance) recover(ctx context.Context) error {
	projects, err := a.recoverJobs(ctx)
	if err != nil {
		return err
	}
	// Only a project whose job was cut off can have leftovers (every job
	// is recorded before it starts), so a start opens those projects'
	// repositories only, not every project's. A project without a
	// repository has nothing to recover: its jobs never committed
	// anything.
	if len(projects) == 0 {
		return nil
	}
	return a.repos.each(ctx, projects, false, func(project string, repo *dedup.Repository) error {
		for _, t := range a.reg.Types() {
			p, _ := a.reg.Get(t)
			if r, ok := p.(recoverer); ok {
				if err := r.Recover(ctx, project, repo); err != nil {
					a.log.Error("plugin recovery", "type", t, "project", project, "err", err)
				}
			}
		}
		return nil
	})
}

// recoverJobs fails the interrupted jobs, deletes what they committed and
// finishes interrupted checkpoint deletions. It returns the projects of
// the interrupted jobs.
func (a *Appliance) recoverJobs(ctx context.Context) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var projects []string
	for id, j := range a.jobs {
		if !slices.Contains(projects, j.ProjectID) {
			projects = append(projects, j.ProjectID)
		}
		reason := ErrInterrupted.Error()
		a.log.Warn("marking interrupted job failed", "job", id, "kind", j.Kind, "object", j.ObjectID)
		switch j.Kind {
		case "protect":
			if cp := a.checkpoints[j.ObjectID]; cp != nil {
				a.removeBackupsLocked(ctx, cp)
				cp.Status, cp.ErrorReason = CheckpointError, reason
				for i := range cp.Resources {
					if cp.Resources[i].Status != ResourceError {
						cp.Resources[i].Status, cp.Resources[i].Reason = ResourceError, reason
					}
				}
				a.saveCheckpointLocked(cp)
			}
			if err := a.deleteTagged(ctx, j.ProjectID, j.ObjectID); err != nil {
				a.log.Error("remove interrupted checkpoint's backups", "checkpoint", j.ObjectID, "err", err)
			}
		case "restore", "verify":
			m := a.restores
			if j.Kind == "verify" {
				m = a.verifications
			}
			if r := m[j.ObjectID]; r != nil {
				r.Status, r.Transfer = RestoreFail, Transfer{}
				for k, s := range r.ResourcesStatus {
					if s != RestoreSuccess && s != ResourceAvailable {
						r.ResourcesStatus[k], r.ResourcesReason[k] = ResourceError, reason
					}
				}
				a.save(runKind(j.Kind), r.ID, r)
			}
		}
		for _, l := range a.oplogs {
			if l.Status == "running" && (l.CheckpointID == j.ObjectID || l.RestoreID == j.ObjectID) {
				l.Status, l.ErrorInfo, l.EndedAt = "error", reason, a.now()
				a.save("operation_logs", l.ID, l)
			}
		}
		for _, t := range j.Temp {
			_ = os.Remove(t)
		}
		delete(a.jobs, id)
		if err := a.st.delete("jobs", id); err != nil {
			return nil, err
		}
		a.metrics.interrupted.Add(1)
	}
	// Deletions cut off by a crash or shutdown: finish them (plugin
	// deletes are idempotent).
	for _, cp := range a.checkpoints {
		if cp.Status != CheckpointDeleting {
			continue
		}
		a.log.Warn("finishing interrupted checkpoint deletion", "checkpoint", cp.ID)
		a.removeBackupsLocked(ctx, cp)
		if len(pendingBackups(cp)) > 0 {
			cp.Status, cp.ErrorReason = CheckpointError, "deletion interrupted and could not be finished"
			a.saveCheckpointLocked(cp)
			continue
		}
		a.dropCheckpointLocked(cp.ID)
		if err := a.st.delete("checkpoints", cp.ID); err != nil {
			return nil, err
		}
	}
	for _, l := range a.oplogs {
		if l.Status == "running" && l.OperationType == "delete" {
			if _, ok := a.checkpoints[l.CheckpointID]; !ok {
				l.Status, l.EndedAt = "success", a.now().UTC()
			} else {
				l.Status, l.ErrorInfo, l.EndedAt = "error", ErrInterrupted.Error(), a.now().UTC()
			}
			a.save("operation_logs", l.ID, l)
		}
	}
	return projects, nil
}

// runKind is the state-store kind of restore-like jobs.
func runKind(kind string) string {
	if kind == "verify" {
		return "verifications"
	}
	return "restores"
}

// deleteTagged removes every checkpoint of project's repository tagged
// with the API checkpoint id (those a crashed protection committed before
// it died).
func (a *Appliance) deleteTagged(ctx context.Context, project, cpID string) error {
	if !a.repos.exists(project) {
		return nil // the protection died before it created the repository
	}
	repo, release, err := a.repos.get(ctx, project)
	if err != nil {
		return err
	}
	defer release()
	cps, err := repo.Checkpoints(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cps {
		if c.Tags[tagCheckpoint] == cpID {
			errs = append(errs, repo.DeleteCheckpoint(ctx, c.ID))
		}
	}
	return errors.Join(errs...)
}

// removeBackupsLocked deletes the backups a checkpoint's resources hold.
// Only recover calls it, before anything else runs; elsewhere the deletes
// run without mu (deleteBackups, finishDelete).
func (a *Appliance) removeBackupsLocked(ctx context.Context, cp *Checkpoint) {
	clearBackups(cp, a.deleteBackups(ctx, cp.ProjectID, cp.ID, pendingBackups(cp)))
}

const tagCheckpoint = "cairn.checkpoint"
