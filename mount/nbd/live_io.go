package nbd

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Size is the volume's size.
func (d *LiveDevice) Size() int64 { return d.size }

// ReadAt hydrates the granules of the range that are not yet in the
// target, then reads the range from the target.
func (d *LiveDevice) ReadAt(ctx context.Context, p []byte, off int64) error {
	end := off + int64(len(p))
	for g := off / d.gran; g*d.gran < end; g++ {
		if err := d.hydrate(ctx, g); err != nil {
			return err
		}
	}
	if _, err := d.f.ReadAt(p, off); err != nil {
		return fmt.Errorf("read target at %d: %w", off, err)
	}
	return nil
}

// WriteAt writes p at off through to the target.
func (d *LiveDevice) WriteAt(ctx context.Context, p []byte, off int64) error {
	return d.apply(ctx, off, int64(len(p)), func(pos, n int64) error {
		_, err := d.f.WriteAt(p[pos-off:pos-off+n], pos)
		return err
	})
}

// Zero makes [off, off+length) of the target read as zeros (TRIM,
// WRITE_ZEROES).
func (d *LiveDevice) Zero(ctx context.Context, off, length int64, punch bool) error {
	return d.apply(ctx, off, length, func(pos, n int64) error {
		return zeroRange(d.f, pos, n, punch)
	})
}

// apply runs put over [off, off+length) of the target and marks the
// granules it touches hydrated. Runs of hydrated granules are put at
// once; a granule that is not hydrated yet is put under its lock, after
// copying it from the checkpoint unless put covers it whole, so the
// background copier can never overwrite the new data.
func (d *LiveDevice) apply(ctx context.Context, off, length int64, put func(pos, n int64) error) error {
	end := off + length
	if off < 0 || length < 0 || end > d.size {
		return fmt.Errorf("live range %d+%d beyond %d: %w", off, length, d.size, unix.ENOSPC)
	}
	d.writes.Add(1)
	d.dirty.Store(true)
	for pos := off; pos < end; {
		g := pos / d.gran
		gs, ge := d.granule(g)
		if d.m.has(g) {
			next := min(ge, end)
			for next < end && d.m.has(next/d.gran) {
				next = min(next+d.gran, end)
			}
			if err := put(pos, next-pos); err != nil {
				return fmt.Errorf("write target at %d: %w", pos, err)
			}
			pos = next
			continue
		}
		segEnd := min(ge, end)
		if err := d.putGranule(ctx, g, pos, segEnd, pos == gs && segEnd == ge, put); err != nil {
			return err
		}
		pos = segEnd
	}
	return nil
}

// putGranule puts [pos, segEnd) of granule g, hydrating the granule first
// unless whole says put covers it.
func (d *LiveDevice) putGranule(ctx context.Context, g, pos, segEnd int64, whole bool, put func(pos, n int64) error) error {
	lk := d.lock(g)
	lk.Lock()
	defer lk.Unlock()
	if !whole && !d.m.has(g) {
		if err := d.fill(ctx, g); err != nil {
			return err
		}
	}
	if err := put(pos, segEnd-pos); err != nil {
		return fmt.Errorf("write target at %d: %w", pos, err)
	}
	d.mark(g)
	return nil
}

// Extents reports hydrated runs from the target's holes and the rest from
// the checkpoint.
func (d *LiveDevice) Extents(off, length int64, max int) ([]Extent, error) {
	var out []Extent
	end := off + length
	for pos := off; pos < end && len(out) < max; {
		hyd := d.m.has(pos / d.gran)
		next := min((pos/d.gran+1)*d.gran, end)
		for next < end && d.m.has(next/d.gran) == hyd {
			next = min(next+d.gran, end)
		}
		var ext []Extent
		var err error
		if hyd {
			ext, err = fileExtents(d.f, pos, next)
		} else {
			ext, err = d.base.Extents(pos, next-pos, max)
		}
		if err != nil {
			return nil, err
		}
		covered := int64(0)
		for _, e := range ext {
			out = addExtent(out, e.Length, e.Hole)
			covered += e.Length
		}
		if covered < next-pos {
			break
		}
		pos = next
	}
	if len(out) > max {
		out = out[:max]
	}
	return out, nil
}

// Flush makes every write that returned before it durable: the target is
// synced, then the bitmap as it was before the sync is saved.
func (d *LiveDevice) Flush(ctx context.Context) error {
	d.flush.Lock()
	defer d.flush.Unlock()
	if !d.dirty.Swap(false) {
		return nil
	}
	snap, writes := d.m.snapshot(), d.writes.Load()
	if err := d.f.Sync(); err != nil {
		d.dirty.Store(true)
		return fmt.Errorf("sync live restore target: %w", err)
	}
	if err := d.m.save(snap, writes); err != nil {
		d.dirty.Store(true)
		return err
	}
	return nil
}

// Close flushes and closes the target. A complete restore's state file is
// removed: the target is then an ordinary image.
func (d *LiveDevice) Close() error {
	err := d.Flush(context.Background())
	if err == nil && d.Complete() {
		err = d.m.remove()
	}
	return errors.Join(err, d.f.Close())
}

// Complete reports whether every granule is in the target.
func (d *LiveDevice) Complete() bool { return d.hydrated.Load() == d.size }

// LiveStats describe a live restore's progress.
type LiveStats struct {
	Size     int64 // volume bytes
	Hydrated int64 // bytes whose final content is in the target
	Fetched  int64 // bytes this process copied from the checkpoint
	Writes   int64 // write and zero requests through the export, ever
	Resumed  bool  // the restore continued from a state file
}

// Stats returns the progress so far.
func (d *LiveDevice) Stats() LiveStats {
	return LiveStats{
		Size: d.size, Hydrated: d.hydrated.Load(), Fetched: d.fetched.Load(),
		Writes: d.writes.Load(), Resumed: d.resumed,
	}
}
