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
	// files reads checkpoints' file systems (nil: file browsing answers
	// 501).
	files FileReader
	// exporter serves NBD exports (nil: the export routes answer 501).
	exporter Exporter
	exps     exports
	// cpJSON keeps the encodings of published checkpoints for lists.
	cpJSON encodedCache
}

// Options are the API's optional parts.
type Options struct {
	// Files, when set, serves the file browsing and download routes.
	Files FileReader
	// Exports, when set, serves the NBD export routes.
	Exports Exporter
}

// New returns the API over a; auth checks the token of every /v1/ request
// (NoAuth{} for the embedded default).
func New(a *appliance.Appliance, auth Authenticator, log *slog.Logger) *Server {
	return NewWithOptions(a, auth, log, Options{})
}

// NewWithOptions is New with the optional parts of o.
func NewWithOptions(a *appliance.Appliance, auth Authenticator, log *slog.Logger, o Options) *Server {
	s := &Server{a: a, auth: auth, log: log, mux: http.NewServeMux(), files: o.Files,
		exporter: o.Exports, exps: exports{m: map[string]*export{}}}
	s.routes()
	return s
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		h := map[string]string{"status": "ok"}
		if id := s.a.Config().ServerID; id != "" {
			h["server_id"] = id
		}
		writeJSON(w, http.StatusOK, h)
	})
	m.Handle("GET /metrics", s.metricsHandler())
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { writeError(w, errNoRoute(r)) })
	m.HandleFunc("POST "+loginPath, s.login)
	m.HandleFunc("GET "+loginPath, s.whoami)
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
	v1("GET "+p+"/scheduled_operations", listBy("operations", s.listOps))
	v1("POST "+p+"/scheduled_operations", s.createOp)
	v1("GET "+p+"/scheduled_operations/{id}", showBy("scheduled_operation", s.getOp))
	v1("DELETE "+p+"/scheduled_operations/{id}", s.deleteOp)
	v1("GET "+p+"/operation_logs", listBy("operation_logs", s.a.OperationLogs))
	v1("GET "+p+"/operation_logs/{id}", showBy("operation_log", s.a.OperationLog))
	v1("GET "+p+"/resources", s.listResources)
	v1("GET "+p+"/summary", s.showSummary)
	v1("GET "+p+"/providers/{pid}/checkpoints/{id}/files", s.listFiles)
	v1("GET "+p+"/providers/{pid}/checkpoints/{id}/files/content", s.downloadFile)
	v1("POST "+p+"/providers/{pid}/checkpoints/{id}/exports", s.startExport)
	v1("GET "+p+"/exports", s.listExports)
	v1("DELETE "+p+"/exports/{id}", s.stopExport)
	v1("GET "+p+"/quotas/{target}", s.showQuota)
	v1("GET "+p+"/quotas/{target}/detail", s.showQuota)
	v1("GET "+p+"/quotas/{target}/defaults", s.showQuota)
	v1("PUT "+p+"/quotas/{target}", s.updateQuota)
}

// loginPath is where the console logs in (POST) and checks a token (GET).
const loginPath = "/v1/auth/tokens"

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
	// The login is the one v1 route a client reaches without a token.
	if strings.HasPrefix(r.URL.Path, "/v1/") && !(r.Method == http.MethodPost && r.URL.Path == loginPath) {
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
