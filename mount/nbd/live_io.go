package nbd

import (
	"context"
	"errors"
)

// Size is the volume's size.
func (d *LiveDevice) Size() int64 { return d.gf.size }

// ReadAt hydrates the granules of the range that are not yet in the
// target, then reads the range from the target.
func (d *LiveDevice) ReadAt(ctx context.Context, p []byte, off int64) error {
	end := off + int64(len(p))
	for g := off / d.gf.gran; g*d.gf.gran < end; g++ {
		if err := d.gf.ensure(ctx, g); err != nil {
			return err
		}
	}
	return d.gf.readAt(ctx, p, off)
}

// WriteAt writes p at off through to the target. A granule that is not
// hydrated yet is written under its lock, after copying it from the
// checkpoint unless the write covers it whole, so the background copier
// can never overwrite the new data.
func (d *LiveDevice) WriteAt(ctx context.Context, p []byte, off int64) error {
	if err := d.count(off, int64(len(p))); err != nil {
		return err
	}
	return d.gf.writeAt(ctx, p, off)
}

// Zero makes [off, off+length) of the target read as zeros (TRIM,
// WRITE_ZEROES), hydrating granules as WriteAt does.
func (d *LiveDevice) Zero(ctx context.Context, off, length int64, punch bool) error {
	if err := d.count(off, length); err != nil {
		return err
	}
	return d.gf.zero(ctx, off, length, punch)
}

// count counts a write or zero request of [off, off+length), unless it
// reaches beyond the volume.
func (d *LiveDevice) count(off, length int64) error {
	if err := d.gf.inRange(off, length); err != nil {
		return err
	}
	d.writes.Add(1)
	d.gf.changed()
	return nil
}

// Extents reports hydrated runs from the target's holes and the rest from
// the checkpoint.
func (d *LiveDevice) Extents(off, length int64, max int) ([]Extent, error) {
	return d.gf.extents(off, length, max)
}

// Flush makes every write that returned before it durable: the target is
// synced, then the bitmap as it was before the sync is saved, with the
// count of write requests.
func (d *LiveDevice) Flush(ctx context.Context) error {
	return d.gf.flush(func() []uint64 { return []uint64{uint64(d.writes.Load())} })
}

// Close flushes and closes the target. A complete restore's state file is
// removed: the target is then an ordinary image.
func (d *LiveDevice) Close() error {
	err := d.Flush(context.Background())
	if err == nil && d.Complete() {
		err = d.gf.remove()
	}
	return errors.Join(err, d.gf.f.Close())
}

// Complete reports whether every granule is in the target.
func (d *LiveDevice) Complete() bool { return d.gf.presentBytes() == d.Size() }

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
		Size: d.Size(), Hydrated: d.gf.presentBytes(), Fetched: d.fetched.Load(),
		Writes: d.writes.Load(), Resumed: d.resumed,
	}
}
