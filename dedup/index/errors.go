package index

import "errors"

var (
	// ErrLocked means another process holds the index.
	ErrLocked = errors.New("the index is in use by another cairn process")
	// ErrNoSpace means the file system of the index is too full to write
	// to it safely (docs/format.md, "The index on a full disk").
	ErrNoSpace = errors.New("no space left")
)
