package api

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"cairn/appliance"
)

// Server is the HTTP handler of the API.
type Server struct {
	a    *appliance.Appliance
	auth Authenticator
	log  *slog.Logger
	mux  *http.ServeMux
}

// New returns the API over a; auth checks the token of every /v1/ request
// (NoAuth{} for the embedded default).
func New(a *appliance.Appliance, auth Authenticator, log *slog.Logger) *Server {
	s := &Server{a: a, auth: auth, log: log, mux: http.NewServeMux()}
	s.routes()
	return s
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.Handle("GET /metrics", s.metricsHandler())
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { writeError(w, errNoRoute(r)) })
	p := "/v1/{project}"
	// Every project route passes the project check first, so a handler
	// that forgets to call project(r) still cannot cross projects.
	v1 := func(pattern string, h http.HandlerFunc) {
		m.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if _, err := project(r); err != nil {
				writeError(w, err)
				return
			}
			h(w, r)
		})
	}
	v1("GET "+p+"/providers", s.listProviders)
	v1("GET "+p+"/providers/{id}", s.showProvider)
	v1("GET "+p+"/protectables", s.listProtectables)
	v1("GET "+p+"/protectables/{type}", s.showProtectable)
	v1("GET "+p+"/protectables/{type}/instances", s.listInstances)
	v1("GET "+p+"/protectables/{type}/instances/{id}", s.showInstance)
	v1("GET "+p+"/plans", listBy("plans", s.a.Plans))
	v1("POST "+p+"/plans", s.createPlan)
	v1("GET "+p+"/plans/{id}", showBy("plan", s.a.GetPlan))
	v1("PUT "+p+"/plans/{id}", s.updatePlan)
	v1("DELETE "+p+"/plans/{id}", deleteBy(s.a.DeletePlan))
	v1("GET "+p+"/providers/{pid}/checkpoints", s.listCheckpoints)
	v1("POST "+p+"/providers/{pid}/checkpoints", s.createCheckpoint)
	v1("GET "+p+"/providers/{pid}/checkpoints/{id}", s.showCheckpoint)
	v1("DELETE "+p+"/providers/{pid}/checkpoints/{id}", s.deleteCheckpoint)
	v1("GET "+p+"/restores", s.listRuns("restore"))
	v1("POST "+p+"/restores", s.createRestore)
	v1("GET "+p+"/restores/{id}", s.showRun("restore"))
	v1("GET "+p+"/verifications", s.listRuns("verify"))
	v1("POST "+p+"/verifications", s.createVerification)
	v1("GET "+p+"/verifications/{id}", s.showRun("verify"))
	v1("GET "+p+"/triggers", listBy("triggers", s.a.Triggers))
	v1("POST "+p+"/triggers", s.createTrigger)
	v1("GET "+p+"/triggers/{id}", showBy("trigger_info", s.a.GetTrigger))
	v1("PUT "+p+"/triggers/{id}", s.updateTrigger)
	v1("DELETE "+p+"/triggers/{id}", deleteBy(s.a.DeleteTrigger))
	v1("GET "+p+"/scheduled_operations", listBy("operations", s.a.ScheduledOperations))
	v1("POST "+p+"/scheduled_operations", s.createOp)
	v1("GET "+p+"/scheduled_operations/{id}", showBy("scheduled_operation", s.a.GetScheduledOperation))
	v1("DELETE "+p+"/scheduled_operations/{id}", deleteBy(s.a.DeleteScheduledOperation))
	v1("GET "+p+"/operation_logs", listBy("operation_logs", s.a.OperationLogs))
	v1("GET "+p+"/operation_logs/{id}", showBy("operation_log", s.a.OperationLog))
	v1("GET "+p+"/quotas/{target}", s.showQuota)
	v1("GET "+p+"/quotas/{target}/detail", s.showQuota)
	v1("GET "+p+"/quotas/{target}/defaults", s.showQuota)
	v1("PUT "+p+"/quotas/{target}", s.updateQuota)
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(c int) { w.code = c; w.ResponseWriter.WriteHeader(c) }

// ServeHTTP logs each request and turns unknown routes into faults.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, code: 200}
	r.Body = http.MaxBytesReader(sw, r.Body, maxBody+1)
	var user string
	if strings.HasPrefix(r.URL.Path, "/v1/") {
		id, err := s.auth.Authenticate(r.Context(), r.Header.Get("X-Auth-Token"))
		if err != nil {
			writeError(sw, err)
			s.log.Info("http", "method", r.Method, "path", r.URL.Path, "status", sw.code, "ms", time.Since(start).Milliseconds(), "err", err)
			return
		}
		user = id.UserID
		r = r.WithContext(withIdentity(r.Context(), id))
	}
	s.mux.ServeHTTP(sw, r)
	s.log.Info("http", "method", r.Method, "path", r.URL.Path, "status", sw.code, "ms", time.Since(start).Milliseconds(), "user", user)
}
