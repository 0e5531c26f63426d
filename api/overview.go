package api

import (
	"fmt"
	"net/http"
	"strings"
)

// maxQuery bounds a search string: longer ones match nothing useful and
// only cost time.
const maxQuery = 256

// listResources serves GET /v1/{project}/resources: the project's
// resources with their newest checkpoint (all_tenants: every project's,
// for an administrator); q searches names and IDs.
func (s *Server) listResources(w http.ResponseWriter, r *http.Request) {
	p, err := project(r)
	if err == nil {
		p, err = listScope(r, p)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > maxQuery {
		writeError(w, fmt.Errorf("%w: q is %d bytes long; search with at most %d", errBadBody, len(q), maxQuery))
		return
	}
	// Newest first; past maxLimit the answer says so rather than
	// dropping resources silently: narrow the search with q.
	rs := s.a.Resources(p, q)
	truncated := len(rs) > maxLimit
	if truncated {
		rs = rs[:maxLimit]
	}
	writeJSON(w, http.StatusOK, map[string]any{"resources": rs, "truncated": truncated})
}

// showSummary serves GET /v1/{project}/summary: the project's line of the
// overview (all_tenants: one line per project, for an administrator).
func (s *Server) showSummary(w http.ResponseWriter, r *http.Request) {
	p, err := project(r)
	if err == nil {
		p, err = listScope(r, p)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"projects": s.a.Summaries(p)})
}
