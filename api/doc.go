// Package api serves the Karbor v1 compatible HTTP API over an
// appliance.Appliance, plus /healthz and /metrics.
//
// # Glossary
//
//   - noauth: as in Karbor's noauth mode, X-Auth-Token is accepted as
//     given and the project is the {project_id} of the URL.
//   - Fault: an OpenStack error body, {"badRequest": {"message": …,
//     "code": 400}} (itemNotFound 404, conflictingRequest 409, overLimit
//     413, computeFault 500).
package api
