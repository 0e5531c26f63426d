package appliance

import "errors"

var (
	// ErrNotFound: no such object in the caller's project.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request is malformed or violates a rule.
	ErrInvalid = errors.New("invalid request")
	// ErrConflict: the object is in a state that forbids the operation.
	ErrConflict = errors.New("conflict")
	// ErrQuota: the project's quota is exhausted.
	ErrQuota = errors.New("quota exceeded")
	// ErrInterrupted is the reason recorded for jobs cut off by a crash or
	// shutdown.
	ErrInterrupted = errors.New("interrupted: the appliance stopped while the job ran")
)
