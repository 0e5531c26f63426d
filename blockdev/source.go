// The package documentation, with its glossary, is in doc.go.

package blockdev

import (
	"context"
	"io"
)

// Extent is a byte range [Off, Off+Len) of a volume.
type Extent struct {
	Off int64
	Len int64
}

// End is the first byte after the extent.
func (e Extent) End() int64 { return e.Off + e.Len }

// Source is a volume to back up. ReadAt must be safe for concurrent use
// (backup reads blocks in parallel).
type Source interface {
	io.ReaderAt
	// Size is the logical size of the volume in bytes.
	Size() int64
	// Allocated returns the extents that may hold non-zero data, sorted and
	// non-overlapping. Everything outside them reads as zeros. A source that
	// cannot tell returns one extent covering the whole volume.
	Allocated(ctx context.Context) ([]Extent, error)
	// Name identifies the source in checkpoints (a path, rbd:pool/image…).
	Name() string
	Close() error
}

// Target is where a restore writes a volume. WriteAt must be safe for
// concurrent use. Bytes never written must read back as zeros after Close.
type Target interface {
	io.WriterAt
	Close() error
}
