package nbd

import (
	"context"
	"fmt"
	"io"
	"os"
)

// Granularity is the overlay's copy-on-write unit: a write into a granule
// the overlay does not own yet first copies the granule from the base.
const Granularity = 64 << 10

// Overlay is a copy-on-write layer over a read-only base device, kept in a
// local sparse file (<dir>/<id>.overlay) and a bitmap of the granules it
// owns (<dir>/<id>.bitmap). Reads take owned granules from the file and
// the rest from the base; the base is never written. The bitmap is saved
// on Flush and Close, after the file is synced, so a granule marked owned
// on disk always has its data there. An Overlay is safe for concurrent use;
// the files are locked against a second user.
type Overlay struct {
	base Device
	gf   *granuleFile // the owned granules are the present ones
}

var _ WritableDevice = (*Overlay)(nil)

// OpenOverlay opens (creating if needed) the overlay of checkpoint id in
// dir over base. An existing overlay must have been made for the same
// size; one held by another user fails with ErrOverlayBusy.
func OpenOverlay(dir, id string, base Device) (*Overlay, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("overlay directory: %w", err)
	}
	f, err := lockedFile(dataPath(dir, id), os.O_RDWR|os.O_CREATE)
	if err != nil {
		return nil, err
	}
	o := &Overlay{base: base}
	o.gf = newGranuleFile(&overlayKind, f, base, Granularity, mapPath(dir, id), id, o.copyGranule)
	fail := func(err error) (*Overlay, error) {
		f.Close()
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("overlay %s: %w", id, err))
	}
	if size := o.Size(); st.Size() != size {
		if st.Size() != 0 {
			return fail(fmt.Errorf("overlay %s holds %d bytes, the checkpoint %d: %w", id, st.Size(), size, ErrOverlayMismatch))
		}
		if err := f.Truncate(size); err != nil {
			return fail(fmt.Errorf("overlay %s: %w", id, err))
		}
	}
	if err := o.loadMap(); err != nil {
		return fail(err)
	}
	return o, nil
}

// Size is the volume's size.
func (o *Overlay) Size() int64 { return o.gf.size }

// copyGranule copies granule g from the base into the overlay file.
func (o *Overlay) copyGranule(ctx context.Context, g int64) error {
	gs, ge := o.gf.granule(g)
	buf := getBuf(int(ge - gs))
	defer putBuf(buf)
	err := o.base.ReadAt(ctx, buf, gs)
	if err == nil {
		_, err = o.gf.f.WriteAt(buf, gs)
	}
	if err != nil {
		return fmt.Errorf("copy granule %d into the overlay: %w", g, err)
	}
	return nil
}

// ReadAt reads owned granules from the overlay file and the rest from the
// base.
func (o *Overlay) ReadAt(ctx context.Context, p []byte, off int64) error {
	return o.gf.readAt(ctx, p, off)
}

// WriteAt writes p at off into the overlay: whole granules directly,
// partial ones after copying the granule from the base if needed.
func (o *Overlay) WriteAt(ctx context.Context, p []byte, off int64) error {
	return o.gf.writeAt(ctx, p, off)
}

// Zero makes [off, off+length) read as zeros in the overlay: whole
// granules are punched out of the file (or zero-filled when !punch or the
// file system cannot punch), partial ones are zeroed in place.
func (o *Overlay) Zero(ctx context.Context, off, length int64, punch bool) error {
	return o.gf.zero(ctx, off, length, punch)
}

// Extents reports owned runs from the overlay file's holes (SEEK_DATA,
// SEEK_HOLE) and the rest from the base.
func (o *Overlay) Extents(off, length int64, max int) ([]Extent, error) {
	return o.gf.extents(off, length, max)
}

// Flush makes every write that returned before it durable: the file is
// synced, then the bitmap as it was before the sync is saved.
func (o *Overlay) Flush(ctx context.Context) error {
	return o.gf.flush(nil)
}

// Close flushes the overlay and releases its files.
func (o *Overlay) Close() error {
	err := o.Flush(context.Background())
	if cerr := o.gf.f.Close(); err == nil {
		err = cerr
	}
	return err
}

var _ io.Closer = (*Overlay)(nil)
