package appliance

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"time"

	"cairn/dedup"
)

// maxRetentionDays bounds retention_duration (100 years).
const maxRetentionDays = 36500

var opDefKeys = map[string]bool{"plan_id": true, "provider_id": true, "max_backups": true, "keep_last": true,
	"keep_daily": true, "keep_weekly": true, "keep_monthly": true, "retention_duration": true}

// CreateScheduledOperation creates a "protect" (or Karbor's
// "retention_protect") operation of a plan on a trigger. Retention keys in
// the definition: max_backups (= keep_last), keep_daily, keep_weekly,
// keep_monthly, and Karbor's retention_duration (days).
//
// With a cloud section and a Keystone user (by), the operation gets a
// Keystone trust from by to the cloud user, which its runs act through;
// when Keystone refuses it the operation is not created (ErrDenied, or
// ErrUnavailable when Keystone could not be asked).
func (a *Appliance) CreateScheduledOperation(ctx context.Context, project, name, desc, opType, triggerID string, def map[string]string, by *Trustor) (*ScheduledOperation, error) {
	if opType != "protect" && opType != "retention_protect" {
		return nil, fmt.Errorf("operation_type %q: want protect or retention_protect: %w", opType, ErrInvalid)
	}
	for k, v := range def {
		if !opDefKeys[k] {
			return nil, fmt.Errorf("unknown operation_definition key %q: %w", k, ErrInvalid)
		}
		if k != "plan_id" && k != "provider_id" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("operation_definition %s=%q: want a non-negative integer: %w", k, v, ErrInvalid)
			}
			// Days become a Duration in retention: beyond this it overflows.
			if k == "retention_duration" && n > maxRetentionDays {
				return nil, fmt.Errorf("operation_definition %s=%q: at most %d days: %w", k, v, maxRetentionDays, ErrInvalid)
			}
		}
	}
	a.mu.Lock()
	err := a.checkOpLocked(project, triggerID, def)
	a.mu.Unlock()
	if err != nil {
		return nil, err
	}
	// Keystone is asked without mu; the trigger or plan may go meanwhile.
	trust, err := a.createTrust(ctx, project, by)
	if err != nil {
		return nil, err
	}
	op := &ScheduledOperation{ID: NewUUID(), ProjectID: project, Name: name, Description: desc, OperationType: opType,
		TriggerID: triggerID, OperationDefinition: def, Enabled: true, TrustID: trust, CreatedAt: a.now().UTC()}
	a.mu.Lock()
	if err = a.checkOpLocked(project, triggerID, def); err == nil {
		a.ops[op.ID] = op
		a.save("scheduled_operations", op.ID, op)
	}
	c := *op
	a.mu.Unlock()
	if err != nil {
		a.deleteTrust(ctx, op.ID, trust)
		return nil, err
	}
	return &c, nil
}

// checkOpLocked checks that a scheduled operation's trigger, plan and
// provider are the project's.
func (a *Appliance) checkOpLocked(project, triggerID string, def map[string]string) error {
	if t := a.triggers[triggerID]; t == nil || t.ProjectID != project {
		return fmt.Errorf("trigger %s: %w", triggerID, ErrNotFound)
	}
	if p := a.plans[def["plan_id"]]; p == nil || p.ProjectID != project {
		return fmt.Errorf("plan %q: %w", def["plan_id"], ErrNotFound)
	}
	if def["provider_id"] != ProviderID {
		return fmt.Errorf("provider %q: %w", def["provider_id"], ErrNotFound)
	}
	return nil
}

// DeleteScheduledOperation deletes one, then its Keystone trust (best
// effort: a failure is logged).
func (a *Appliance) DeleteScheduledOperation(ctx context.Context, project, id string) error {
	a.mu.Lock()
	op := a.ops[id]
	if op == nil || op.ProjectID != project {
		a.mu.Unlock()
		return fmt.Errorf("scheduled operation %s: %w", id, ErrNotFound)
	}
	delete(a.ops, id)
	err := a.st.delete("scheduled_operations", id)
	a.mu.Unlock()
	a.deleteTrust(ctx, id, op.TrustID)
	return err
}

// ScheduledOperations lists a project's scheduled operations.
func (a *Appliance) ScheduledOperations(project string) []ScheduledOperation {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []ScheduledOperation
	for _, op := range a.ops {
		if inProject(op.ProjectID, project) {
			c := *op
			c.OperationDefinition = maps.Clone(op.OperationDefinition)
			out = append(out, c)
		}
	}
	return out
}

// GetScheduledOperation returns one.
func (a *Appliance) GetScheduledOperation(project, id string) (*ScheduledOperation, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	op := a.ops[id]
	if op == nil || op.ProjectID != project {
		return nil, fmt.Errorf("scheduled operation %s: %w", id, ErrNotFound)
	}
	c := *op
	c.OperationDefinition = maps.Clone(op.OperationDefinition)
	return &c, nil
}

// Tick runs the operation engine once at the clock's now: it fires due
// scheduled operations (skipping fire times older than their window) and
// starts a prune when one is due. Run calls it every Tick; tests call it
// with an injected clock.
func (a *Appliance) Tick(ctx context.Context) {
	now := a.now()
	type fire struct{ project, plan, provider, op string }
	var due []fire
	a.mu.Lock()
	for _, op := range a.ops {
		t := a.triggers[op.TriggerID]
		if !op.Enabled || t == nil {
			continue
		}
		sch, window, err := a.schedule(t)
		if err != nil {
			continue
		}
		if op.NextRun.IsZero() {
			n := sch.Next(now)
			if n.IsZero() {
				continue // past the trigger's end_time: nothing to save
			}
			op.NextRun = n
			a.save("scheduled_operations", op.ID, op)
			continue
		}
		if now.Before(op.NextRun) {
			continue
		}
		if now.Sub(op.NextRun) <= window {
			due = append(due, fire{op.ProjectID, op.OperationDefinition["plan_id"], op.OperationDefinition["provider_id"], op.ID})
			op.LastRun = now.UTC()
		}
		op.NextRun = sch.Next(now)
		a.save("scheduled_operations", op.ID, op)
	}
	prune := a.cfg.PruneInterval > 0 && now.Sub(a.lastPrune) >= time.Duration(a.cfg.PruneInterval) && !a.pruning.Load()
	if prune {
		a.lastPrune = now
		a.pruning.Store(true)
	}
	a.mu.Unlock()
	for _, f := range due {
		if _, err := a.CreateCheckpoint(ctx, f.project, f.provider, f.plan, nil, f.op); err != nil {
			a.log.Error("scheduled protection", "operation", f.op, "plan", f.plan, "err", err)
		}
	}
	if prune {
		// One at a time; Run and Close wait for it (a.bg).
		a.bg.Go(func() {
			defer a.pruning.Store(false)
			a.prune(ctx)
		})
	}
}

func (a *Appliance) prune(ctx context.Context) {
	if a.pruneHook != nil {
		a.pruneHook(ctx)
		return
	}
	// Each project's repository is pruned on its own: one project's
	// failure (a damaged store) does not keep the others from freeing
	// space.
	err := a.repos.each(ctx, nil, true, func(project string, repo *dedup.Repository) error {
		rep, err := repo.Prune(ctx, dedup.PruneOptions{Grace: time.Duration(a.cfg.PruneGrace)})
		if err != nil {
			return err
		}
		a.log.Info("prune", "project", project, "packs_deleted", rep.PacksDeleted, "bytes_freed", rep.BytesFreed)
		return nil
	})
	if err != nil {
		a.log.Error("prune", "err", err)
	}
}

// retentionLocked begins the deletion of the checkpoints of the
// operation's plan that its retention rules no longer keep; the caller
// finishes them (finishDelete) after releasing mu.
func (a *Appliance) retentionLocked(opID string) []*deletion {
	op := a.ops[opID]
	if op == nil {
		return nil
	}
	n := func(k string) int { v, _ := strconv.Atoi(op.OperationDefinition[k]); return v }
	last := max(n("max_backups"), n("keep_last"))
	rules := []struct {
		n   int
		key func(time.Time) string
	}{
		{n("keep_daily"), func(t time.Time) string { return t.Format("2006-01-02") }},
		{n("keep_weekly"), func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprint(y, w) }},
		{n("keep_monthly"), func(t time.Time) string { return t.Format("2006-01") }},
	}
	days := n("retention_duration")
	counted := last > 0 || rules[0].n > 0 || rules[1].n > 0 || rules[2].n > 0
	if !counted && days == 0 {
		return nil
	}
	var cps []*Checkpoint
	for _, c := range a.checkpoints {
		if c.ProjectID == op.ProjectID && c.Plan.ID == op.OperationDefinition["plan_id"] && c.Status == CheckpointAvailable {
			cps = append(cps, c)
		}
	}
	sort.Slice(cps, func(i, j int) bool {
		if !cps[i].CreatedAt.Equal(cps[j].CreatedAt) {
			return cps[i].CreatedAt.After(cps[j].CreatedAt)
		}
		return cps[i].ID > cps[j].ID
	})
	keep := map[string]bool{}
	for i := 0; i < last && i < len(cps); i++ {
		keep[cps[i].ID] = true
	}
	for _, r := range rules {
		seen := map[string]bool{}
		for _, c := range cps {
			k := r.key(c.CreatedAt.Local())
			if !seen[k] && len(seen) < r.n {
				seen[k] = true
				keep[c.ID] = true
			}
		}
	}
	if !counted { // only an age limit: everything young enough stays
		for _, c := range cps {
			keep[c.ID] = true
		}
	}
	if days > 0 {
		// As in Karbor, a checkpoint older than retention_duration days
		// goes whatever the counts say, but the newest always stays: a
		// wrong clock must not empty the plan.
		cutoff := a.now().Add(-time.Duration(days) * 24 * time.Hour)
		for i, c := range cps {
			if i > 0 && c.CreatedAt.Before(cutoff) {
				delete(keep, c.ID)
			}
		}
	}
	var out []*deletion
	for _, c := range cps {
		if !keep[c.ID] && !a.runningOnLocked(c.ID) {
			a.log.Info("retention: deleting checkpoint", "checkpoint", c.ID, "operation", opID)
			out = append(out, a.beginDeleteLocked(c))
		}
	}
	return out
}
