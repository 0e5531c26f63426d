package appliance

import "fmt"

// newLogLocked starts an operation log entry (status "running").
func (a *Appliance) newLogLocked(project, typ string) *OperationLog {
	l := &OperationLog{ID: NewUUID(), ProjectID: project, OperationType: typ, Status: "running", StartedAt: a.now().UTC()}
	a.oplogs[l.ID] = l
	return l
}

// finishLogLocked ends an entry with "success" or "error".
func (a *Appliance) finishLogLocked(l *OperationLog, err error) {
	if l == nil {
		return
	}
	l.Status, l.EndedAt = "success", a.now().UTC()
	if err != nil {
		l.Status, l.ErrorInfo = "error", err.Error()
	}
	a.save("operation_logs", l.ID, l)
}

// OperationLogs lists a project's operation logs.
func (a *Appliance) OperationLogs(project string) []OperationLog {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []OperationLog
	for _, l := range a.oplogs {
		if inProject(l.ProjectID, project) {
			out = append(out, *l)
		}
	}
	return out
}

// OperationLog returns one entry.
func (a *Appliance) OperationLog(project, id string) (*OperationLog, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.oplogs[id]
	if l == nil || l.ProjectID != project {
		return nil, fmt.Errorf("operation log %s: %w", id, ErrNotFound)
	}
	c := *l
	return &c, nil
}

func (a *Appliance) quotaLocked(project string) Quota {
	if q := a.quotas[project]; q != nil {
		return *q
	}
	return Quota{ID: project, Plans: a.cfg.PlanQuota}
}

// GetQuota returns a project's quota. A project may only read its own.
func (a *Appliance) GetQuota(project, target string) (*Quota, error) {
	if project != target {
		return nil, fmt.Errorf("quota of project %s: %w", target, ErrNotFound)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	q := a.quotaLocked(project)
	return &q, nil
}

// UpdateQuota sets a project's plans quota.
func (a *Appliance) UpdateQuota(project, target string, plans int) (*Quota, error) {
	if project != target {
		return nil, fmt.Errorf("quota of project %s: %w", target, ErrNotFound)
	}
	if plans < 0 {
		return nil, fmt.Errorf("plans quota %d is negative: %w", plans, ErrInvalid)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	q := &Quota{ID: project, Plans: plans}
	a.quotas[project] = q
	a.save("quotas", project, q)
	c := *q
	return &c, nil
}
