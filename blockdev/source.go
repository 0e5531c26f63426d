// The package documentation, with its glossary, is in doc.go.

package blockdev

import (
	"context"
	"io"

	"cairn/internal/extent"
)

// Extent is a byte range [Off, Off+Len) of a volume; the same type as
// dedup's (package extent), so extents pass from a source to a backup as
// they are.
type Extent = extent.Extent

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
