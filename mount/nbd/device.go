package nbd

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Extent is a run of bytes with one allocation state.
type Extent struct {
	Length int64
	// Hole means the run reads as zeros and is not allocated.
	Hole bool
}

// Device is the byte range an export serves.
//
// Contract: implementations MUST be safe for concurrent use. The server only
// asks for ranges inside [0, Size()). ReadAt fills all of p or returns an
// error. Extents describes [off, off+length) from its start as merged runs;
// it MAY stop early (after max runs, or when looking further is costly) but
// MUST describe at least one byte, and a run it calls a hole MUST read as
// zeros.
type Device interface {
	Size() int64
	ReadAt(ctx context.Context, p []byte, off int64) error
	Extents(off, length int64, max int) ([]Extent, error)
}

// WritableDevice is a Device that also takes writes. Writes that returned
// before a Flush started MUST be durable when Flush returns.
type WritableDevice interface {
	Device
	WriteAt(ctx context.Context, p []byte, off int64) error
	// Zero makes [off, off+length) read as zeros; punch allows freeing
	// the space rather than writing zeros.
	Zero(ctx context.Context, off, length int64, punch bool) error
	Flush(ctx context.Context) error
}

// Volume is what a checkpoint reader offers (*dedup.Reader satisfies it).
type Volume interface {
	Size() int64
	BlockSize() int
	IsHole(off int64) bool
	ReadAtContext(ctx context.Context, p []byte, off int64) (int, error)
}

// VolumeDevice serves a Volume read-only. Hole blocks are reported as
// holes, block by block. The volume decides how much a read fetches: a
// dedup.Reader decodes only the frames a random read covers, and shares
// the fetch of a whole chunk between concurrent readers of it.
func VolumeDevice(v Volume) Device { return &volumeDevice{v: v} }

type volumeDevice struct {
	v Volume
}

var _ Device = (*volumeDevice)(nil)

func (d *volumeDevice) Size() int64 { return d.v.Size() }

func (d *volumeDevice) ReadAt(ctx context.Context, p []byte, off int64) error {
	n, err := d.v.ReadAtContext(ctx, p, off)
	if n == len(p) && (err == nil || errors.Is(err, io.EOF)) {
		return nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at %d: %w", len(p), off, err)
}

func (d *volumeDevice) Extents(off, length int64, max int) ([]Extent, error) {
	bs := int64(d.v.BlockSize())
	if bs <= 0 {
		return []Extent{{Length: length}}, nil
	}
	var out []Extent
	for pos, end := off, off+length; pos < end; {
		next := min((pos/bs+1)*bs, end)
		out = addExtent(out, next-pos, d.v.IsHole(pos))
		if len(out) > max {
			return out[:max], nil
		}
		pos = next
	}
	return out, nil
}

// addExtent appends a run, merging it into the last one when the state is
// the same.
func addExtent(ext []Extent, n int64, hole bool) []Extent {
	if k := len(ext); k > 0 && ext[k-1].Hole == hole {
		ext[k-1].Length += n
		return ext
	}
	return append(ext, Extent{Length: n, Hole: hole})
}

// Export is one named device the server offers.
type Export struct {
	// Name is the name reported back to the client (NBD_INFO_NAME).
	Name        string
	Description string
	// Device is served read-only unless it is a WritableDevice.
	Device Device
}

// ExportInfo is one line of NBD_OPT_LIST.
type ExportInfo struct {
	Name        string
	Description string
}

// Catalog resolves export names. Implementations MUST be safe for
// concurrent use; Lookup returns an error wrapping ErrUnknownExport for a
// name nothing answers to. The catalog owns its exports: the server never
// closes them.
type Catalog interface {
	Lookup(ctx context.Context, name string) (*Export, error)
	List(ctx context.Context) ([]ExportInfo, error)
}
