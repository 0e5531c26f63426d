package partition

import "errors"

var (
	// ErrNoTable means the disk holds neither an MBR nor a GPT: it is one
	// file system (or nothing) from its first byte.
	ErrNoTable = errors.New("no partition table")
	// ErrCorrupt means a table was found but cannot be trusted: a GPT
	// with bad checksums in both copies, or entries outside the disk.
	ErrCorrupt = errors.New("corrupt partition table")
)
