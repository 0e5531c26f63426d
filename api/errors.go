package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"cairn/appliance"
)

// busyRetryAfter is the Retry-After, in seconds, of a request refused
// because its project has too many jobs waiting: about the time a small
// protection takes.
const busyRetryAfter = "30"

var (
	errBadBody  = errors.New("malformed request body")
	errBadID    = errors.New("invalid UUID")
	errTooLarge = errors.New("request body larger than 1 MiB")
)

// writeError translates err to an OpenStack fault; this is the one place
// errors become HTTP statuses.
func writeError(w http.ResponseWriter, err error) {
	code, name := http.StatusInternalServerError, "computeFault"
	switch {
	case errors.Is(err, errUnauthenticated):
		code, name = http.StatusUnauthorized, "unauthorized"
		w.Header().Set("WWW-Authenticate", "Keystone")
	case errors.Is(err, errForbidden), errors.Is(err, appliance.ErrDenied):
		code, name = http.StatusForbidden, "forbidden"
	case errors.Is(err, errAuthUnavailable), errors.Is(err, appliance.ErrUnavailable):
		code, name = http.StatusServiceUnavailable, "serviceUnavailable"
		w.Header().Set("Retry-After", "5")
	case errors.Is(err, errNoFiles), errors.Is(err, errNoExports):
		code, name = http.StatusNotImplemented, "notImplemented"
	case errors.Is(err, errTooLarge):
		code, name = http.StatusRequestEntityTooLarge, "overLimit"
	case errors.Is(err, errBadBody), errors.Is(err, errBadID), errors.Is(err, appliance.ErrInvalid):
		code, name = http.StatusBadRequest, "badRequest"
	case errors.Is(err, appliance.ErrNotFound):
		code, name = http.StatusNotFound, "itemNotFound"
	case errors.Is(err, appliance.ErrConflict):
		code, name = http.StatusConflict, "conflictingRequest"
	case errors.Is(err, appliance.ErrQuota):
		code, name = http.StatusRequestEntityTooLarge, "overLimit"
	case errors.Is(err, appliance.ErrBusy):
		// As nova's rate limit fault: the same request may succeed once
		// some of the project's queued jobs have started.
		code, name = http.StatusTooManyRequests, "overLimit"
		w.Header().Set("Retry-After", busyRetryAfter)
		writeJSON(w, code, map[string]any{name: map[string]any{"message": err.Error(), "code": code, "retryAfter": busyRetryAfter}})
		return
	}
	writeJSON(w, code, map[string]any{name: map[string]any{"message": err.Error(), "code": code}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
