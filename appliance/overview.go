package appliance

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"cairn/dedup"
)

// ResourceOverview is one resource of a project as the console lists it:
// the plans that protect it and its newest checkpoint.
type ResourceOverview struct {
	ProjectID string   `json:"project_id"`
	ID        string   `json:"id"`
	Type      string   `json:"type"`
	Name      string   `json:"name"`
	PlanIDs   []string `json:"plan_ids"`
	// Checkpoints counts the checkpoints holding the resource.
	Checkpoints int `json:"checkpoints"`
	// LastCheckpointID, LastStatus and LastCheckpointAt describe the
	// newest checkpoint holding the resource (empty when none).
	LastCheckpointID string    `json:"last_checkpoint_id"`
	LastStatus       string    `json:"last_status"`
	LastCheckpointAt time.Time `json:"last_checkpoint_at,omitzero"`
	// LastSuccessAt is the newest checkpoint where the resource is
	// available.
	LastSuccessAt time.Time `json:"last_success_at,omitzero"`
	// StoredBytes adds up what the resource's backups added to the
	// repository (compressed, after deduplication).
	StoredBytes int64 `json:"stored_bytes"`
}

// ProjectSummary is one project's line in the administrator's overview.
type ProjectSummary struct {
	ProjectID     string    `json:"project_id"`
	Resources     int       `json:"resources"`
	Plans         int       `json:"plans"`
	Checkpoints   int       `json:"checkpoints"`
	Running       int       `json:"running"`
	LastSuccessAt time.Time `json:"last_success_at,omitzero"`
	// Failures24h counts operation-log entries that ended in error in
	// the 24 hours before the summary.
	Failures24h int `json:"failures_24h"`
	// The byte counts add up the project's checkpoints' resources: their
	// size, the bytes read, the new bytes (after deduplication, before
	// compression) and the bytes stored. ReadBytes/NewBytes is the
	// deduplication ratio, NewBytes/StoredBytes the compression ratio.
	LogicalBytes int64 `json:"logical_bytes"`
	ReadBytes    int64 `json:"read_bytes"`
	NewBytes     int64 `json:"new_bytes"`
	StoredBytes  int64 `json:"stored_bytes"`
}

// Resources lists the resources of project (AllProjects: every
// project's) that a plan protects or a checkpoint holds, newest
// checkpoint first. query, when not empty, keeps those whose name or ID
// contains it (case-insensitively). One pass over the checkpoints: the
// cost does not depend on how many resources match.
func (a *Appliance) Resources(project, query string) []ResourceOverview {
	q := strings.ToLower(query)
	match := func(id, name string) bool {
		return q == "" || strings.Contains(strings.ToLower(id), q) || strings.Contains(strings.ToLower(name), q)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	byKey := map[string]*ResourceOverview{}
	get := func(project, typ, id, name string) *ResourceOverview {
		k := project + "\x00" + typ + "#" + id
		r := byKey[k]
		if r == nil {
			r = &ResourceOverview{ProjectID: project, ID: id, Type: typ, Name: name, PlanIDs: []string{}}
			byKey[k] = r
		}
		return r
	}
	for _, p := range a.plans {
		if !inProject(p.ProjectID, project) {
			continue
		}
		for _, res := range p.Resources {
			if match(res.ID, res.Name) {
				r := get(p.ProjectID, res.Type, res.ID, res.Name)
				r.PlanIDs = append(r.PlanIDs, p.ID)
			}
		}
	}
	for _, c := range a.published.all() {
		if !inProject(c.ProjectID, project) {
			continue
		}
		for _, rb := range c.Resources {
			if !match(rb.Resource.ID, rb.Resource.Name) {
				continue
			}
			r := get(c.ProjectID, rb.Resource.Type, rb.Resource.ID, rb.Resource.Name)
			r.Checkpoints++
			r.StoredBytes += rb.StoredBytes
			if c.CreatedAt.After(r.LastCheckpointAt) || r.LastCheckpointID == "" {
				r.LastCheckpointID, r.LastStatus, r.LastCheckpointAt = c.ID, rb.Status, c.CreatedAt
			}
			if rb.Status == ResourceAvailable && c.Status == CheckpointAvailable && c.CreatedAt.After(r.LastSuccessAt) {
				r.LastSuccessAt = c.CreatedAt
			}
		}
	}
	out := make([]ResourceOverview, 0, len(byKey))
	for _, r := range byKey {
		slices.Sort(r.PlanIDs)
		out = append(out, *r)
	}
	slices.SortFunc(out, func(x, y ResourceOverview) int {
		if c := y.LastCheckpointAt.Compare(x.LastCheckpointAt); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(x.ProjectID, y.ProjectID), strings.Compare(x.Name, y.Name), strings.Compare(x.ID, y.ID))
	})
	return out
}

// Summaries returns one summary per project that has a plan, checkpoint
// or operation log (project AllProjects: every project; otherwise only
// that one, which may be empty), sorted by project ID.
func (a *Appliance) Summaries(project string) []ProjectSummary {
	res := a.Resources(project, "")
	a.mu.Lock()
	defer a.mu.Unlock()
	since := a.now().Add(-24 * time.Hour)
	by := map[string]*ProjectSummary{}
	get := func(p string) *ProjectSummary {
		s := by[p]
		if s == nil {
			s = &ProjectSummary{ProjectID: p}
			by[p] = s
		}
		return s
	}
	for _, r := range res {
		get(r.ProjectID).Resources++
	}
	for _, p := range a.plans {
		if inProject(p.ProjectID, project) {
			get(p.ProjectID).Plans++
		}
	}
	for _, c := range a.published.all() {
		if !inProject(c.ProjectID, project) {
			continue
		}
		s := get(c.ProjectID)
		s.Checkpoints++
		if c.Status == CheckpointProtecting {
			s.Running++
		}
		if c.Status == CheckpointAvailable && c.CreatedAt.After(s.LastSuccessAt) {
			s.LastSuccessAt = c.CreatedAt
		}
		for _, rb := range c.Resources {
			s.LogicalBytes += rb.Size
			s.ReadBytes += rb.ReadBytes
			s.NewBytes += rb.NewBytes
			s.StoredBytes += rb.StoredBytes
		}
	}
	for _, l := range a.oplogs {
		if inProject(l.ProjectID, project) && l.Status == "error" && l.EndedAt.After(since) {
			get(l.ProjectID).Failures24h++
		}
	}
	if project != AllProjects {
		get(project) // a project with nothing yet still has a line
	}
	out := make([]ProjectSummary, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(x, y ProjectSummary) int { return strings.Compare(x.ProjectID, y.ProjectID) })
	return out
}

// WithBackup runs fn on the project's repository and the repository
// checkpoint holding resource resourceID (type#id or the bare ID) of
// checkpoint cpID, for reading it (file browsing). The checkpoint must be
// available.
func (a *Appliance) WithBackup(ctx context.Context, project, providerID, cpID, resourceID string, fn func(repo *dedup.Repository, backupID string) error) error {
	repo, backupID, release, err := a.OpenBackup(ctx, project, providerID, cpID, resourceID)
	if err != nil {
		return err
	}
	defer release()
	return fn(repo, backupID)
}

// OpenBackup is WithBackup for a reader that outlives the call (an NBD
// export): the caller MUST call release once done with repo.
func (a *Appliance) OpenBackup(ctx context.Context, project, providerID, cpID, resourceID string) (*dedup.Repository, string, func(), error) {
	a.mu.Lock()
	c := a.checkpoints[cpID]
	if c == nil || c.ProjectID != project || c.ProviderID != providerID {
		a.mu.Unlock()
		return nil, "", nil, fmt.Errorf("checkpoint %s: %w", cpID, ErrNotFound)
	}
	if c.Status != CheckpointAvailable {
		a.mu.Unlock()
		return nil, "", nil, fmt.Errorf("checkpoint %s is %s, not available: %w", cpID, c.Status, ErrConflict)
	}
	var backupID string
	var names []string
	for _, rb := range c.Resources {
		names = append(names, resKey(rb.Resource))
		if (rb.Resource.ID == resourceID || resKey(rb.Resource) == resourceID) && rb.BackupID != "" {
			backupID = rb.BackupID
		}
	}
	a.mu.Unlock()
	if backupID == "" {
		return nil, "", nil, fmt.Errorf("checkpoint %s holds no backup of resource %q (it holds %s): %w", cpID, resourceID, strings.Join(names, ", "), ErrNotFound)
	}
	repo, release, err := a.repos.get(ctx, project)
	if err != nil {
		return nil, "", nil, fmt.Errorf("the repository of project %s: %w", project, err)
	}
	return repo, backupID, release, nil
}
