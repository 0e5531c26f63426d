package nbd

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
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
	base  Device
	f     *os.File
	m     *overlayMap
	size  int64
	locks [64]sync.Mutex // read-modify-write of a partial granule, by granule
	flush sync.Mutex     // one bitmap save at a time
	dirty atomic.Bool    // the bitmap changed since the last save
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
	o := &Overlay{base: base, f: f, size: base.Size()}
	fail := func(err error) (*Overlay, error) {
		f.Close()
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("overlay %s: %w", id, err))
	}
	if st.Size() != o.size {
		if st.Size() != 0 {
			return fail(fmt.Errorf("overlay %s holds %d bytes, the checkpoint %d: %w", id, st.Size(), o.size, ErrOverlayMismatch))
		}
		if err := f.Truncate(o.size); err != nil {
			return fail(fmt.Errorf("overlay %s: %w", id, err))
		}
	}
	if o.m, err = loadMap(dir, id, o.size); err != nil {
		return fail(err)
	}
	return o, nil
}

// Size is the volume's size.
func (o *Overlay) Size() int64 { return o.size }

// granule returns the bounds of granule g.
func (o *Overlay) granule(g int64) (start, end int64) {
	start = g * Granularity
	return start, min(start+Granularity, o.size)
}

// runEnd is the end of the run of granules from pos (before end) that
// share pos's ownership.
func (o *Overlay) runEnd(pos, end int64) (int64, bool) {
	owned := o.m.owned(pos / Granularity)
	next := min((pos/Granularity+1)*Granularity, end)
	for next < end && o.m.owned(next/Granularity) == owned {
		next = min(next+Granularity, end)
	}
	return next, owned
}

// ReadAt reads owned granules from the overlay file and the rest from the
// base.
func (o *Overlay) ReadAt(ctx context.Context, p []byte, off int64) error {
	end := off + int64(len(p))
	for pos := off; pos < end; {
		next, owned := o.runEnd(pos, end)
		seg := p[pos-off : next-off]
		if owned {
			if _, err := o.f.ReadAt(seg, pos); err != nil {
				return fmt.Errorf("read overlay at %d: %w", pos, err)
			}
		} else if err := o.base.ReadAt(ctx, seg, pos); err != nil {
			return err
		}
		pos = next
	}
	return nil
}

// WriteAt writes p at off into the overlay: whole granules directly,
// partial ones after copying the granule from the base if needed.
func (o *Overlay) WriteAt(ctx context.Context, p []byte, off int64) error {
	return o.apply(ctx, off, int64(len(p)), func(pos, n int64) error {
		_, err := o.f.WriteAt(p[pos-off:pos-off+n], pos)
		return err
	})
}

// Zero makes [off, off+length) read as zeros in the overlay: whole
// granules are punched out of the file (or zero-filled when !punch or the
// file system cannot punch), partial ones are zeroed in place.
func (o *Overlay) Zero(ctx context.Context, off, length int64, punch bool) error {
	return o.apply(ctx, off, length, func(pos, n int64) error {
		return zeroRange(o.f, pos, n, punch)
	})
}

// apply runs put over [off, off+length) in the overlay file and marks the
// granules it covers as owned. put must write the final content of the
// range it is given.
func (o *Overlay) apply(ctx context.Context, off, length int64, put func(pos, n int64) error) error {
	end := off + length
	if off < 0 || length < 0 || end > o.size {
		return fmt.Errorf("overlay range %d+%d beyond %d: %w", off, length, o.size, unix.ENOSPC)
	}
	for pos := off; pos < end; {
		g := pos / Granularity
		gs, ge := o.granule(g)
		if pos == gs && end >= ge {
			// Whole granules up to the last one end covers.
			last := end
			if end < o.size {
				last = end / Granularity * Granularity
			}
			if err := put(pos, last-pos); err != nil {
				return fmt.Errorf("write overlay at %d: %w", pos, err)
			}
			o.m.set(g, (last-1)/Granularity)
			o.dirty.Store(true)
			pos = last
			continue
		}
		segEnd := min(ge, end)
		if err := o.partial(ctx, g, pos, segEnd-pos, put); err != nil {
			return err
		}
		pos = segEnd
	}
	return nil
}

// partial applies put to part of granule g, copying the granule from the
// base first when the overlay does not own it yet.
func (o *Overlay) partial(ctx context.Context, g, pos, n int64, put func(pos, n int64) error) error {
	lk := &o.locks[g%int64(len(o.locks))]
	lk.Lock()
	defer lk.Unlock()
	if !o.m.owned(g) {
		gs, ge := o.granule(g)
		buf := getBuf(int(ge - gs))
		defer putBuf(buf)
		if err := o.base.ReadAt(ctx, buf, gs); err != nil {
			return fmt.Errorf("copy granule %d into the overlay: %w", g, err)
		}
		if _, err := o.f.WriteAt(buf, gs); err != nil {
			return fmt.Errorf("copy granule %d into the overlay: %w", g, err)
		}
	}
	if err := put(pos, n); err != nil {
		return fmt.Errorf("write overlay at %d: %w", pos, err)
	}
	o.m.set(g, g)
	o.dirty.Store(true)
	return nil
}

// Flush makes every write that returned before it durable: the file is
// synced, then the bitmap as it was before the sync is saved.
func (o *Overlay) Flush(ctx context.Context) error {
	o.flush.Lock()
	defer o.flush.Unlock()
	if !o.dirty.Swap(false) {
		return nil
	}
	snap := o.m.snapshot()
	if err := o.f.Sync(); err != nil {
		o.dirty.Store(true)
		return fmt.Errorf("sync overlay: %w", err)
	}
	if err := o.m.save(snap); err != nil {
		o.dirty.Store(true)
		return err
	}
	return nil
}

// Close flushes the overlay and releases its files.
func (o *Overlay) Close() error {
	err := o.Flush(context.Background())
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	return err
}

var _ io.Closer = (*Overlay)(nil)
