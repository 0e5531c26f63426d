package fusefs

import (
	"context"
	"fmt"
	"sort"
	"time"

	"cairn/dedup"
)

// catalog is one listing of the repository's checkpoints, as the tree shows
// them. It is never modified once built; a refresh builds a new one.
type catalog struct {
	at      time.Time
	sources []*sourceDir // by name
	byName  map[string]*sourceDir
	byID    map[string]*entry
}

// sourceDir is the checkpoints of one source, oldest first.
type sourceDir struct {
	name    string
	source  string
	entries []*entry
	byName  map[string]*entry
}

// entry is one checkpoint and its place in the tree.
type entry struct {
	cp  *dedup.Checkpoint
	dir string
	src *sourceDir
}

// latest is the newest checkpoint of the source.
func (s *sourceDir) latest() *entry { return s.entries[len(s.entries)-1] }

// path is the entry's directory relative to the mount point.
func (e *entry) path() string { return e.src.name + "/" + e.dir }

func newCatalog(cps []*dedup.Checkpoint, at time.Time) *catalog {
	c := &catalog{at: at, byName: make(map[string]*sourceDir), byID: make(map[string]*entry)}
	bySource := make(map[string][]*dedup.Checkpoint)
	var sources []string
	for _, cp := range cps {
		if _, ok := bySource[cp.Source]; !ok {
			sources = append(sources, cp.Source)
		}
		bySource[cp.Source] = append(bySource[cp.Source], cp)
	}
	names := sourceDirNames(sources)
	for _, src := range sources {
		list := bySource[src]
		sort.SliceStable(list, func(i, j int) bool {
			if !list[i].CreatedAt.Equal(list[j].CreatedAt) {
				return list[i].CreatedAt.Before(list[j].CreatedAt)
			}
			return list[i].ID < list[j].ID
		})
		sd := &sourceDir{name: names[src], source: src, byName: make(map[string]*entry)}
		dirs := checkpointDirNames(list)
		for _, cp := range list {
			e := &entry{cp: cp, dir: dirs[cp.ID], src: sd}
			sd.entries = append(sd.entries, e)
			sd.byName[e.dir] = e
			c.byID[cp.ID] = e
		}
		c.sources = append(c.sources, sd)
		c.byName[sd.name] = sd
	}
	sort.Slice(c.sources, func(i, j int) bool { return c.sources[i].name < c.sources[j].name })
	return c
}

// catalog returns the current catalog, re-reading the checkpoint list
// first when fresh is set and the last listing is older than the refresh
// interval (counted from the last attempt). A failed refresh keeps the old
// listing (and logs); only the first listing's failure is returned.
func (f *fsys) catalog(ctx context.Context, fresh bool) (*catalog, error) {
	f.catMu.Lock()
	defer f.catMu.Unlock()
	if f.cat != nil && (!fresh || time.Since(f.tried) < f.opts.Refresh) {
		return f.cat, nil
	}
	f.tried = time.Now()
	cps, err := f.repo.Checkpoints(ctx)
	if err != nil {
		if f.cat != nil {
			f.logf("list checkpoints: %v (showing the listing of %s)", err, f.cat.at.Format(time.RFC3339))
			return f.cat, nil
		}
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	f.cat = newCatalog(cps, f.tried)
	f.forgetVolumes(f.cat)
	return f.cat, nil
}
