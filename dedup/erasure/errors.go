package erasure

import "errors"

var (
	// ErrCorrupt means stored bytes failed a checksum and could not be
	// rebuilt from parity. Package dedup returns the same error value.
	ErrCorrupt = errors.New("corrupt data")
	// ErrUnsupported means a shard was written by a newer format.
	ErrUnsupported = errors.New("unsupported format version")
)
