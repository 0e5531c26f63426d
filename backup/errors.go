package backup

import "errors"

var (
	// ErrSnapshotNotFound is returned when the snapshot a backup is asked
	// to read does not exist.
	ErrSnapshotNotFound = errors.New("not found")

	// ErrNoDiff is returned when a backup planned to read only changed
	// extents, but its Source's Reader cannot tell them (no Differ).
	ErrNoDiff = errors.New("the source cannot tell changed extents")
)
