package appliance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"cairn/dedup"
)

// ErrSharedRepository means the data directory still holds the one
// repository that earlier releases shared between all projects.
var ErrSharedRepository = errors.New("repository shared by all projects")

// sharedRepoDir is where releases before per-project repositories kept
// the appliance's one repository (their default "repository").
func sharedRepoDir(dataDir string) string { return filepath.Join(dataDir, "repo") }

// refuseSharedRepo stops a start on a data directory an earlier release
// wrote: its checkpoints live in the shared repository, and serving them
// from per-project repositories needs the migration first.
func (a *Appliance) refuseSharedRepo() error {
	dir := sharedRepoDir(a.cfg.DataDir)
	if _, err := os.Stat(filepath.Join(dir, "cairn.json")); err != nil {
		return nil
	}
	return fmt.Errorf("%s holds the repository all projects shared (written by an earlier cairn); "+
		"this release keeps one repository per project: stop the appliance and run "+
		"`cairn serve --migrate` with the same --config/--data-dir to copy each project's checkpoints into its own (docs/api.md, \"Upgrading\"): %w",
		dir, ErrSharedRepository)
}

// MigrateReport says what Migrate did.
type MigrateReport struct {
	// From is the shared repository, renamed to MovedTo once every
	// backup was copied.
	From    string `json:"from"`
	MovedTo string `json:"moved_to,omitempty"`
	// Copied counts the backups copied by this run, Skipped those an
	// earlier, interrupted run had copied already.
	Copied   int            `json:"copied"`
	Skipped  int            `json:"skipped"`
	Projects map[string]int `json:"projects"` // backups per project
	// Failed lists the backups that could not be copied; the shared
	// repository stays in place when there are any.
	Failed []string `json:"failed,omitempty"`
}

// Migrate copies every backup the state names from the shared repository
// of an earlier release into its project's own repository, points the
// state at the copies and, when all are copied, renames the shared
// repository to DIR.migrated (the operator deletes it). It may be
// interrupted and run again: backups copied already are recognised by
// their dedup.TagCopiedFrom tag. The appliance must not be running.
func Migrate(ctx context.Context, cfg Config, o Options, progress func(done, total int)) (*MigrateReport, error) {
	a, err := newAppliance(cfg, o)
	if err != nil {
		return nil, err
	}
	from := sharedRepoDir(a.cfg.DataDir)
	rep := &MigrateReport{From: from, Projects: map[string]int{}}
	if _, err := os.Stat(filepath.Join(from, "cairn.json")); err != nil {
		return nil, fmt.Errorf("nothing to migrate: %s holds no repository: %w", from, dedup.ErrNoRepository)
	}
	if a.st, err = openState(a.cfg.DataDir, a.log.Info); err != nil {
		return nil, err
	}
	defer a.st.close()
	if err := a.load(); err != nil {
		return nil, err
	}
	defer a.repos.close()
	src, err := dedup.Open(ctx, from, dedup.Options{Password: a.repos.pw})
	if err != nil {
		return nil, fmt.Errorf("open the shared repository %s: %w", from, err)
	}
	defer src.Close()

	cps := make([]*Checkpoint, 0, len(a.checkpoints))
	total := 0
	for _, cp := range a.checkpoints {
		cps = append(cps, cp)
		total += len(pendingBackups(cp))
	}
	// Oldest first, so each copy finds its predecessor's chunks in place.
	slices.SortFunc(cps, func(x, y *Checkpoint) int { return x.CreatedAt.Compare(y.CreatedAt) })
	done := map[string]map[string]string{} // project → old ID → copy's ID
	n := 0
	for _, cp := range cps {
		for i := range cp.Resources {
			old := cp.Resources[i].BackupID
			if old == "" {
				continue
			}
			id, copied, err := a.migrateBackup(ctx, src, cp.ProjectID, old, done)
			n++
			if progress != nil {
				progress(n, total)
			}
			if err != nil {
				rep.Failed = append(rep.Failed, fmt.Sprintf("checkpoint %s backup %s: %v", cp.ID, old, err))
				continue
			}
			if copied {
				rep.Copied++
			} else {
				rep.Skipped++
			}
			rep.Projects[cp.ProjectID]++
			a.mu.Lock()
			cp.Resources[i].BackupID = id
			a.saveCheckpointLocked(cp)
			a.mu.Unlock()
		}
	}
	if len(rep.Failed) > 0 {
		return rep, fmt.Errorf("%d backups could not be copied; %s stays in place, fix the cause and run the migration again", len(rep.Failed), from)
	}
	if err := src.Close(); err != nil {
		return rep, err
	}
	rep.MovedTo = from + ".migrated"
	if err := os.Rename(from, rep.MovedTo); err != nil {
		return rep, fmt.Errorf("every backup was copied, but the shared repository could not be moved aside: %w", err)
	}
	return rep, nil
}

// migrateBackup copies backup old into project's repository unless a
// previous run did, and returns the copy's ID.
func (a *Appliance) migrateBackup(ctx context.Context, src *dedup.Repository, project, old string, done map[string]map[string]string) (string, bool, error) {
	dst, release, err := a.repos.get(ctx, project)
	if err != nil {
		return "", false, err
	}
	defer release()
	if done[project] == nil {
		// What an interrupted run copied: listed once per project.
		m := map[string]string{}
		cps, err := dst.Checkpoints(ctx)
		if err != nil {
			return "", false, err
		}
		for _, c := range cps {
			if from := c.Tags[dedup.TagCopiedFrom]; from != "" {
				m[from] = c.ID
			}
			m[c.ID] = c.ID // a backup the state already points at a copy of
		}
		done[project] = m
	}
	if id, ok := done[project][old]; ok {
		return id, false, nil
	}
	c, err := dedup.CopyCheckpoint(ctx, src, dst, old)
	if err != nil {
		return "", false, err
	}
	done[project][old], done[project][c.ID] = c.ID, c.ID
	return c.ID, true, nil
}
