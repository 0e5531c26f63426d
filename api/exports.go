package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"cairn/appliance"
	"cairn/dedup"
)

// Exporter serves one repository checkpoint over NBD, read-only, until
// stop is called (the daemon wires mount/nbd in; the API cannot import
// mount/). It returns the URI a hypervisor connects to; the URI holds a
// random secret, so it is the capability to read the export: it is shown
// to the project only.
type Exporter func(ctx context.Context, repo *dedup.Repository, backupID string) (uri string, stop func() error, err error)

// errNoExports: the daemon was started without NBD exports.
var errNoExports = errors.New("NBD exports are not available on this daemon")

// maxExports bounds the exports running at once, over all projects.
const maxExports = 64

// export is one running NBD export of a checkpoint's resource.
type export struct {
	ID           string    `json:"id"`
	ProjectID    string    `json:"project_id"`
	CheckpointID string    `json:"checkpoint_id"`
	ResourceID   string    `json:"resource_id"`
	URI          string    `json:"uri"`
	CreatedAt    time.Time `json:"created_at"`
	stop         func() error
	release      func()
}

// exports are the running NBD exports, by ID.
type exports struct {
	mu sync.Mutex
	m  map[string]*export
}

func (s *Server) startExport(w http.ResponseWriter, r *http.Request) {
	p, err := ids(r, "pid", "id")
	if err != nil {
		writeError(w, err)
		return
	}
	b, err := readBody(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var body struct {
		Export *struct {
			Resource string `json:"resource"`
		} `json:"export"`
	}
	if err := decodeStrict(b, &body); err != nil || body.Export == nil || body.Export.Resource == "" {
		writeError(w, fmt.Errorf("%w: want {\"export\": {\"resource\": ID}}", errBadBody))
		return
	}
	if s.exporter == nil {
		writeError(w, errNoExports)
		return
	}
	s.exps.mu.Lock()
	n := len(s.exps.m)
	s.exps.mu.Unlock()
	if n >= maxExports {
		writeError(w, fmt.Errorf("%d NBD exports are running, the most this daemon serves: stop one first: %w", n, appliance.ErrBusy))
		return
	}
	cpID := r.PathValue("id")
	repo, backupID, release, err := s.a.OpenBackup(r.Context(), p, r.PathValue("pid"), cpID, body.Export.Resource)
	if err != nil {
		writeError(w, err)
		return
	}
	// The export outlives the request: its context is the daemon's, not
	// the request's, and stop ends it.
	uri, stop, err := s.exporter(context.WithoutCancel(r.Context()), repo, backupID)
	if err != nil {
		release()
		writeError(w, fmt.Errorf("export checkpoint %s: %w", cpID, err))
		return
	}
	e := &export{ID: appliance.NewUUID(), ProjectID: p, CheckpointID: cpID, ResourceID: body.Export.Resource, URI: uri,
		CreatedAt: time.Now().UTC(), stop: stop, release: release}
	s.exps.mu.Lock()
	s.exps.m[e.ID] = e
	s.exps.mu.Unlock()
	s.log.Info("nbd export started", "export", e.ID, "project", p, "checkpoint", cpID)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]any{"export": e})
}

// listExports serves GET /v1/{project}/exports: the project's running
// exports, oldest first.
func (s *Server) listExports(w http.ResponseWriter, r *http.Request) {
	p, err := project(r)
	if err != nil {
		writeError(w, err)
		return
	}
	s.exps.mu.Lock()
	out := []*export{}
	for _, e := range s.exps.m {
		if e.ProjectID == p {
			out = append(out, e)
		}
	}
	s.exps.mu.Unlock()
	slices.SortFunc(out, func(a, b *export) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"exports": out})
}

// stopExport serves DELETE /v1/{project}/exports/{id}.
func (s *Server) stopExport(w http.ResponseWriter, r *http.Request) {
	p, err := ids(r, "id")
	if err != nil {
		writeError(w, err)
		return
	}
	s.exps.mu.Lock()
	e := s.exps.m[r.PathValue("id")]
	if e == nil || e.ProjectID != p {
		s.exps.mu.Unlock()
		writeError(w, fmt.Errorf("export %s: %w", r.PathValue("id"), appliance.ErrNotFound))
		return
	}
	delete(s.exps.m, e.ID)
	s.exps.mu.Unlock()
	if err := s.endExport(e); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) endExport(e *export) error {
	err := e.stop()
	e.release()
	s.log.Info("nbd export stopped", "export", e.ID, "project", e.ProjectID, "checkpoint", e.CheckpointID, "err", err)
	if err != nil {
		return fmt.Errorf("stop export %s: %w", e.ID, err)
	}
	return nil
}

// stopCheckpointExports stops the exports of checkpoint cpID (before it
// is deleted: its data is about to go).
func (s *Server) stopCheckpointExports(project, cpID string) {
	s.exps.mu.Lock()
	var stop []*export
	for id, e := range s.exps.m {
		if e.ProjectID == project && e.CheckpointID == cpID {
			stop = append(stop, e)
			delete(s.exps.m, id)
		}
	}
	s.exps.mu.Unlock()
	for _, e := range stop {
		_ = s.endExport(e) // logged; the deletion goes on
	}
}

// Close stops every NBD export (the daemon calls it on shutdown, after
// the HTTP server).
func (s *Server) Close() error {
	s.exps.mu.Lock()
	all := make([]*export, 0, len(s.exps.m))
	for id, e := range s.exps.m {
		all = append(all, e)
		delete(s.exps.m, id)
	}
	s.exps.mu.Unlock()
	var errs []error
	for _, e := range all {
		errs = append(errs, s.endExport(e))
	}
	return errors.Join(errs...)
}
