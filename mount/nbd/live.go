package nbd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"cairn/blockdev"
)

var (
	// ErrLiveState means a live restore's state file is damaged or was
	// made for another checkpoint or target.
	ErrLiveState = errors.New("live restore state does not match")
	// ErrLiveBusy means another live restore holds the target.
	ErrLiveBusy = errors.New("target is in use by another live restore")
)

// LiveDevice is a writable export whose data is being restored into a
// target file ("instant restore"): granules already in the target
// (hydrated) are served from it, the others are fetched from the
// checkpoint, written to the target and marked on first access. Writes
// go to the target, after hydrating the part of a granule they leave.
// The bitmap of hydrated granules is kept in PATH.cairn-live and saved,
// after the target is synced, on Flush and by Hydrate periodically, so a
// granule marked on disk always has its data there. The repository is
// never written. A LiveDevice is safe for concurrent use.
type LiveDevice struct {
	vol  Volume
	base Device
	path string
	gf   *granuleFile // the hydrated granules are the present ones

	writes  atomic.Int64 // write and zero requests, across resumes
	fetched atomic.Int64 // bytes copied from the checkpoint by this process
	resumed bool
}

var _ WritableDevice = (*LiveDevice)(nil)

// LiveOptions steer OpenLive.
type LiveOptions struct {
	// Force overwrites an existing target file that has no state of this
	// checkpoint (a matching state is always resumed).
	Force bool
}

// liveGranule is the granule of a live restore of blocks of bs bytes:
// 64 KiB rounded up to a whole number of blocks.
func liveGranule(bs int) int64 {
	if bs <= 0 {
		return Granularity
	}
	b := int64(bs)
	return (Granularity + b - 1) / b * b
}

// OpenLive starts, or resumes, the live restore of checkpoint id (read
// through v) to the regular file path. A state file of the same
// checkpoint resumes where it stopped; otherwise the target is created
// sparse (see blockdev.CreateFileTarget) and the checkpoint's holes are
// marked hydrated at once.
func OpenLive(ctx context.Context, path, id string, v Volume, o LiveOptions) (*LiveDevice, error) {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("live restore target %s: only regular files are supported", path)
	}
	d := &LiveDevice{vol: v, base: VolumeDevice(v), path: path}
	statePath := path + LiveStateSuffix
	st, err := liveKind.read(statePath)
	if err != nil && !o.Force {
		return nil, fmt.Errorf("%w (pass --force to start over)", err)
	}
	if st != nil && st.id != id {
		if !o.Force {
			return nil, fmt.Errorf("%s is the live restore of checkpoint %s: %w (pass --force to start over)", statePath, st.id, ErrLiveState)
		}
		st = nil
	}
	// The target is opened by resume or create, once they have checked it.
	d.gf = newGranuleFile(&liveKind, nil, d.base, liveGranule(v.BlockSize()), statePath, id, d.fill)
	if st != nil {
		err = d.resume(st)
	} else {
		err = d.create(ctx, o.Force)
	}
	if err != nil {
		if d.gf.f != nil {
			d.gf.f.Close()
		}
		return nil, err
	}
	return d, nil
}

// resume reopens the target of a stopped live restore.
func (d *LiveDevice) resume(st *savedBitmap) error {
	if st.gran != d.gf.gran || st.size != d.Size() {
		return fmt.Errorf("%s: made for %d-byte granules of %d bytes: %w", d.gf.path, st.gran, st.size, ErrLiveState)
	}
	f, err := d.lockTarget(os.O_RDWR)
	if err != nil {
		return err
	}
	d.gf.f = f
	if fi, err := f.Stat(); err != nil || fi.Size() != d.Size() {
		return fmt.Errorf("live restore target %s is not %d bytes long: %w", d.path, d.Size(), ErrLiveState)
	}
	d.gf.load(st.words)
	d.writes.Store(int64(st.extra[0]))
	d.resumed = true
	return nil
}

// create makes a fresh sparse target, marks the checkpoint's holes
// hydrated and saves the state.
func (d *LiveDevice) create(ctx context.Context, force bool) error {
	if force {
		// A forced start replaces the target: not while a running live
		// restore serves it, which would go on with a file no one sees.
		f, err := d.lockTarget(os.O_RDONLY)
		if errors.Is(err, ErrLiveBusy) {
			return err
		}
		if err == nil {
			f.Close()
		}
	}
	tgt, err := blockdev.CreateFileTarget(d.path, d.Size(), blockdev.TargetOptions{Force: force})
	if err != nil {
		return err
	}
	if err := tgt.Close(); err != nil {
		return err
	}
	if d.gf.f, err = d.lockTarget(os.O_RDWR); err != nil {
		return err
	}
	bs := int64(d.vol.BlockSize())
	for g := range d.gf.granules() {
		if err := ctx.Err(); err != nil {
			return err
		}
		gs, ge := d.gf.granule(g)
		hole := bs > 0
		for off := gs; hole && off < ge; off += bs {
			hole = d.vol.IsHole(off)
		}
		if hole {
			d.gf.set(g, g)
		}
	}
	// Flushed rather than only saved: the target is synced first, so a
	// crash cannot leave the old data of a forced target under granules
	// the state marks as holes.
	d.gf.changed()
	return d.Flush(ctx)
}

// lockTarget opens the target and locks it against a second live restore.
func (d *LiveDevice) lockTarget(flag int) (*os.File, error) {
	f, err := os.OpenFile(d.path, flag, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("live restore target %s is gone: %w", d.path, ErrLiveState)
	}
	if err != nil {
		return nil, fmt.Errorf("open live restore target: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", d.path, ErrLiveBusy)
		}
		return nil, fmt.Errorf("lock live restore target %s: %w", d.path, err)
	}
	return f, nil
}

// fill writes granule g of the checkpoint to the target; all-zero data is
// punched out, which keeps the target sparse. The caller holds g's lock.
func (d *LiveDevice) fill(ctx context.Context, g int64) error {
	gs, ge := d.gf.granule(g)
	buf := getBuf(int(ge - gs))
	defer putBuf(buf)
	if err := d.base.ReadAt(ctx, buf, gs); err != nil {
		return fmt.Errorf("hydrate granule %d: %w", g, err)
	}
	var err error
	if allZero(buf) {
		err = zeroRange(d.gf.f, gs, ge-gs, true)
	} else {
		_, err = d.gf.f.WriteAt(buf, gs)
	}
	if err != nil {
		return fmt.Errorf("hydrate granule %d: write target: %w", g, err)
	}
	d.fetched.Add(ge - gs)
	return nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
