package openstack

import "errors"

var (
	// ErrNotFound: the cloud answered 404 (or the object is not the
	// project's, which Cinder answers the same way).
	ErrNotFound = errors.New("not found in the cloud")
	// ErrTimeout: a wait ran out before the object reached the status.
	ErrTimeout = errors.New("timed out waiting for the cloud")
	// ErrFailed: the object went to an error status while waited for.
	ErrFailed = errors.New("the cloud reported an error status")
	// ErrConfig: the credentials are incomplete or wrong.
	ErrConfig = errors.New("invalid cloud configuration")
	// ErrTrust: Keystone no longer accepts a trust (its trustor deleted
	// or without the delegated role, the trust deleted) or it is not for
	// the project asked for.
	ErrTrust = errors.New("the Keystone trust does not work")
	// ErrDenied: Keystone refused a request made with a user's token
	// (4xx); the error carries Keystone's reason.
	ErrDenied = errors.New("refused by Keystone")
)
