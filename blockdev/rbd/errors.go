package rbd

import "errors"

var (
	// ErrBadSpec is returned for a malformed rbd: spec.
	ErrBadSpec = errors.New("bad RBD spec")

	// ErrNotFound is returned when a pool, image or snapshot does not exist.
	ErrNotFound = errors.New("not found")
)
