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
	// ErrBusy: the project (or the appliance) has as many jobs waiting as
	// its limit allows; the same request may succeed later.
	ErrBusy = errors.New("too many jobs waiting")
	// ErrDenied: a service the request needs refused it on the caller's
	// behalf (Keystone refusing the caller's token a trust).
	ErrDenied = errors.New("refused")
	// ErrUnavailable: a service the request needs could not be asked; the
	// same request may succeed later.
	ErrUnavailable = errors.New("service unavailable")
	// ErrInterrupted is the reason recorded for jobs cut off by a crash or
	// shutdown.
	ErrInterrupted = errors.New("interrupted: the appliance stopped while the job ran")
	// ErrStateDamaged: the state database cannot be read.
	ErrStateDamaged = errors.New("state database damaged")
	// ErrStateLocked: another process has the state database open.
	ErrStateLocked = errors.New("state database in use")
)

// AllProjects, passed as the project of a list, lists every project's
// objects (an administrator's all_tenants list). It is not a valid
// project ID, so no project can be named so.
const AllProjects = "*"

// inProject reports whether an object owned by owner belongs in a list
// of project's objects.
func inProject(owner, project string) bool { return project == AllProjects || owner == project }
