package rbd

import "errors"

var (
	// ErrBadSpec is returned for a malformed rbd: spec.
	ErrBadSpec = errors.New("bad RBD spec")

	// ErrNotFound is returned when a pool, image or snapshot does not exist.
	ErrNotFound = errors.New("not found")

	// ErrExists is returned when an image to be created or renamed to
	// exists already.
	ErrExists = errors.New("already exists")
)
