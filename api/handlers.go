package api

import (
	"fmt"
	"net/http"
	"regexp"

	"cairn/appliance"
)

var projectRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func errNoRoute(r *http.Request) error {
	return fmt.Errorf("no such resource: %s %s: %w", r.Method, r.URL.Path, appliance.ErrNotFound)
}

// project returns the URL's project once the caller may act on it
// (noauth: taken as given).
func project(r *http.Request) (string, error) {
	p := r.PathValue("project")
	if !projectRE.MatchString(p) {
		return "", fmt.Errorf("project id %q: %w", p, errBadID)
	}
	if err := authorize(r, p); err != nil {
		return "", err
	}
	return p, nil
}

// request checks the project and the named UUID path values, and decodes
// the body of kind: the start of every handler that writes.
func request(r *http.Request, kind string, names ...string) (string, any, error) {
	p, err := ids(r, names...)
	if err != nil {
		return "", nil, err
	}
	b, err := body(r, kind)
	return p, b, err
}

// ids checks the project and the named UUID path values.
func ids(r *http.Request, names ...string) (string, error) {
	p, err := project(r)
	if err != nil {
		return "", err
	}
	for _, n := range names {
		if err := checkUUID(n, r.PathValue(n)); err != nil {
			return "", err
		}
	}
	return p, nil
}

// body reads and strictly decodes the request body of kind.
func body(r *http.Request, kind string) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	return decodeRequest(kind, b)
}

func listOf[T any](w http.ResponseWriter, r *http.Request, key string, items []T) {
	objs, err := page(r, listing[T]{items: items})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{key: objs})
}

// listBy serves GET on a collection: the project's objects, under key.
func listBy[T any](key string, list func(project string) []T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := project(r)
		if err == nil {
			p, err = listScope(r, p)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		listOf(w, r, key, list(p))
	}
}

// showBy serves GET …/{id}: the project's object with that ID, under key.
func showBy[T any](key string, get func(project, id string) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := ids(r, "id")
		if err != nil {
			writeError(w, err)
			return
		}
		v, err := get(p, r.PathValue("id"))
		one(w, 200, key, v, err)
	}
}

// deleteBy serves DELETE …/{id}; Karbor answers 202 with no body.
func deleteBy(del func(project, id string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := ids(r, "id")
		if err == nil {
			err = del(p, r.PathValue("id"))
		}
		if err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}

func one(w http.ResponseWriter, code int, key string, v any, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, code, map[string]any{key: v})
}

func (s *Server) listProviders(w http.ResponseWriter, r *http.Request) {
	if _, err := project(r); err != nil {
		writeError(w, err)
		return
	}
	listOf(w, r, "providers", s.a.Providers())
}

func (s *Server) showProvider(w http.ResponseWriter, r *http.Request) {
	if _, err := ids(r, "id"); err != nil {
		writeError(w, err)
		return
	}
	for _, p := range s.a.Providers() {
		if p.ID == r.PathValue("id") {
			one(w, 200, "provider", p, nil)
			return
		}
	}
	writeError(w, fmt.Errorf("provider %s: %w", r.PathValue("id"), appliance.ErrNotFound))
}

func (s *Server) listProtectables(w http.ResponseWriter, r *http.Request) {
	if _, err := project(r); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, map[string]any{"protectable_type": s.a.ProtectableTypes()})
}

func (s *Server) showProtectable(w http.ResponseWriter, r *http.Request) {
	if _, err := project(r); err != nil {
		writeError(w, err)
		return
	}
	v, err := s.a.ProtectableType(r.PathValue("type"))
	one(w, 200, "protectable_type", v, err)
}

func (s *Server) listInstances(w http.ResponseWriter, r *http.Request) {
	proj, err := project(r)
	if err != nil {
		writeError(w, err)
		return
	}
	v, err := s.a.Instances(r.Context(), proj, r.PathValue("type"))
	if err != nil {
		writeError(w, err)
		return
	}
	listOf(w, r, "instances", v)
}

func (s *Server) showInstance(w http.ResponseWriter, r *http.Request) {
	proj, err := ids(r, "id")
	if err != nil {
		writeError(w, err)
		return
	}
	v, err := s.a.Instance(r.Context(), proj, r.PathValue("type"), r.PathValue("id"))
	one(w, 200, "instance", v, err)
}

func planInput(b *planBody) appliance.PlanInput {
	in := appliance.PlanInput{Name: b.Plan.Name, Description: b.Plan.Description, ProviderID: b.Plan.ProviderID,
		Parameters: b.Plan.Parameters, Status: b.Plan.Status}
	if b.Plan.Resources != nil {
		in.Resources = []appliance.PlanResource{}
	}
	for _, r := range b.Plan.Resources {
		in.Resources = append(in.Resources, appliance.PlanResource{ID: r.ID, Type: r.Type, Name: r.Name, ExtraInfo: r.ExtraInfo})
	}
	return in
}

func (s *Server) createPlan(w http.ResponseWriter, r *http.Request) {
	p, b, err := request(r, "plan")
	if err != nil {
		writeError(w, err)
		return
	}
	pb := b.(*planBody)
	if err := checkUUID("provider_id", pb.Plan.ProviderID); err != nil {
		writeError(w, err)
		return
	}
	v, err := s.a.CreatePlan(r.Context(), p, planInput(pb))
	one(w, 200, "plan", v, err)
}

func (s *Server) updatePlan(w http.ResponseWriter, r *http.Request) {
	p, b, err := request(r, "plan", "id")
	if err != nil {
		writeError(w, err)
		return
	}
	v, err := s.a.UpdatePlan(r.Context(), p, r.PathValue("id"), planInput(b.(*planBody)))
	one(w, 200, "plan", v, err)
}
