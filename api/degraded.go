package api

import "net/http"

// Degraded is the API of an appliance that could not start (cairn serve
// --stay-up): /healthz answers 503 with the reason, every other path 503
// with the same reason as its error, so an operator and a load balancer
// see what is wrong instead of a refused connection or a restart loop.
func Degraded(reason, serverID string) http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		h := map[string]string{"status": "degraded", "reason": reason}
		if serverID != "" {
			h["server_id"] = serverID
		}
		writeJSON(w, http.StatusServiceUnavailable, h)
	})
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"serviceUnavailable": map[string]any{
			"code": http.StatusServiceUnavailable, "message": "appliance degraded: " + reason}})
	})
	return m
}
