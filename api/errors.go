package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"cairn/appliance"
)

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
	case errors.Is(err, errForbidden):
		code, name = http.StatusForbidden, "forbidden"
	case errors.Is(err, errAuthUnavailable):
		code, name = http.StatusServiceUnavailable, "serviceUnavailable"
		w.Header().Set("Retry-After", "5")
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
	}
	writeJSON(w, code, map[string]any{name: map[string]any{"message": err.Error(), "code": code}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
