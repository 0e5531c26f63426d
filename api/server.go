package api

import (
	"log/slog"
	"net/http"
	"time"

	"cairn/appliance"
)

// Server is the HTTP handler of the API.
type Server struct {
	a   *appliance.Appliance
	log *slog.Logger
	mux *http.ServeMux
}

// New returns the API over a.
func New(a *appliance.Appliance, log *slog.Logger) *Server {
	s := &Server{a: a, log: log, mux: http.NewServeMux()}
	s.routes()
	return s
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		s.a.WriteMetrics(w)
	})
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { writeError(w, errNoRoute(r)) })
	p := "/v1/{project}"
	m.HandleFunc("GET "+p+"/providers", s.listProviders)
	m.HandleFunc("GET "+p+"/providers/{id}", s.showProvider)
	m.HandleFunc("GET "+p+"/protectables", s.listProtectables)
	m.HandleFunc("GET "+p+"/protectables/{type}", s.showProtectable)
	m.HandleFunc("GET "+p+"/protectables/{type}/instances", s.listInstances)
	m.HandleFunc("GET "+p+"/protectables/{type}/instances/{id}", s.showInstance)
	m.HandleFunc("GET "+p+"/plans", listBy("plans", s.a.Plans))
	m.HandleFunc("POST "+p+"/plans", s.createPlan)
	m.HandleFunc("GET "+p+"/plans/{id}", showBy("plan", s.a.GetPlan))
	m.HandleFunc("PUT "+p+"/plans/{id}", s.updatePlan)
	m.HandleFunc("DELETE "+p+"/plans/{id}", deleteBy(s.a.DeletePlan))
	m.HandleFunc("GET "+p+"/providers/{pid}/checkpoints", s.listCheckpoints)
	m.HandleFunc("POST "+p+"/providers/{pid}/checkpoints", s.createCheckpoint)
	m.HandleFunc("GET "+p+"/providers/{pid}/checkpoints/{id}", s.showCheckpoint)
	m.HandleFunc("DELETE "+p+"/providers/{pid}/checkpoints/{id}", s.deleteCheckpoint)
	m.HandleFunc("GET "+p+"/restores", s.listRuns("restore"))
	m.HandleFunc("POST "+p+"/restores", s.createRestore)
	m.HandleFunc("GET "+p+"/restores/{id}", s.showRun("restore"))
	m.HandleFunc("GET "+p+"/verifications", s.listRuns("verify"))
	m.HandleFunc("POST "+p+"/verifications", s.createVerification)
	m.HandleFunc("GET "+p+"/verifications/{id}", s.showRun("verify"))
	m.HandleFunc("GET "+p+"/triggers", listBy("triggers", s.a.Triggers))
	m.HandleFunc("POST "+p+"/triggers", s.createTrigger)
	m.HandleFunc("GET "+p+"/triggers/{id}", showBy("trigger_info", s.a.GetTrigger))
	m.HandleFunc("PUT "+p+"/triggers/{id}", s.updateTrigger)
	m.HandleFunc("DELETE "+p+"/triggers/{id}", deleteBy(s.a.DeleteTrigger))
	m.HandleFunc("GET "+p+"/scheduled_operations", listBy("operations", s.a.ScheduledOperations))
	m.HandleFunc("POST "+p+"/scheduled_operations", s.createOp)
	m.HandleFunc("GET "+p+"/scheduled_operations/{id}", showBy("scheduled_operation", s.a.GetScheduledOperation))
	m.HandleFunc("DELETE "+p+"/scheduled_operations/{id}", deleteBy(s.a.DeleteScheduledOperation))
	m.HandleFunc("GET "+p+"/operation_logs", listBy("operation_logs", s.a.OperationLogs))
	m.HandleFunc("GET "+p+"/operation_logs/{id}", showBy("operation_log", s.a.OperationLog))
	m.HandleFunc("GET "+p+"/quotas/{target}", s.showQuota)
	m.HandleFunc("GET "+p+"/quotas/{target}/detail", s.showQuota)
	m.HandleFunc("GET "+p+"/quotas/{target}/defaults", s.showQuota)
	m.HandleFunc("PUT "+p+"/quotas/{target}", s.updateQuota)
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
	s.mux.ServeHTTP(sw, r)
	s.log.Info("http", "method", r.Method, "path", r.URL.Path, "status", sw.code, "ms", time.Since(start).Milliseconds())
}
