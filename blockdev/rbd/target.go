//go:build ceph

package rbd

import (
	"context"
	"errors"
	"fmt"

	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"

	"cairn/blockdev"
)

// Target is an image a restore writes. WriteAt and Zero are safe for
// concurrent use.
type Target struct {
	io   *rados.IOContext
	img  *rbd.Image
	spec Spec
	size int64
	// fresh is set when the image was created by CreateTarget: every byte
	// not written reads as zeros and no object exists for it.
	fresh bool
}

var _ blockdev.Target = (*Target)(nil)

// createFeatures are the features of a new image: what fast incremental
// backups and clones of the restored image need.
const createFeatures = rbd.FeatureLayering | rbd.FeatureExclusiveLock |
	rbd.FeatureObjectMap | rbd.FeatureFastDiff | rbd.FeatureDeepFlatten

// CreateTarget opens the image named by s for restoring a volume of size
// bytes. A missing image is created with that size (default object size,
// layering, exclusive-lock, object-map, fast-diff, deep-flatten). An
// existing one is written only with o.Force and must be at least size
// bytes; bytes past size are left alone.
func (c *Cluster) CreateTarget(ctx context.Context, s Spec, size int64, o blockdev.TargetOptions) (*Target, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.Snap != "" {
		return nil, fmt.Errorf("restore target %s: %w: cannot write a snapshot", s, ErrBadSpec)
	}
	io, err := c.ioctx(s)
	if err != nil {
		return nil, err
	}
	t := &Target{io: io, spec: s, size: size}
	t.img, err = rbd.OpenImage(io, s.Image, rbd.NoSnapshot)
	switch {
	case errors.Is(err, rbd.ErrNotFound):
		if err = createImage(io, s.Image, size); err == nil {
			t.fresh = true
			t.img, err = rbd.OpenImage(io, s.Image, rbd.NoSnapshot)
		}
		if err != nil {
			io.Destroy()
			return nil, fmt.Errorf("create restore target %s: %w", s, err)
		}
	case err != nil:
		io.Destroy()
		return nil, openError(s, err)
	case !o.Force:
		_ = t.close()
		return nil, fmt.Errorf("restore target %s: %w (pass --force to overwrite it)", s, blockdev.ErrTargetExists)
	default:
		have, err := t.img.GetSize()
		if err != nil {
			_ = t.close()
			return nil, fmt.Errorf("size of %s: %w", s, err)
		}
		if int64(have) < size {
			_ = t.close()
			return nil, fmt.Errorf("restore target %s: %w: image has %d bytes, volume needs %d",
				s, blockdev.ErrTargetTooSmall, have, size)
		}
	}
	return t, nil
}

func createImage(io *rados.IOContext, name string, size int64) error {
	opts := rbd.NewRbdImageOptions()
	defer opts.Destroy()
	if err := opts.SetUint64(rbd.ImageOptionFeatures, createFeatures); err != nil {
		return err
	}
	err := rbd.CreateImage(io, name, uint64(size), opts)
	if errors.Is(err, rbd.ErrExist) || err == nil {
		return err
	}
	// A cluster or pool that refuses the features (an old format, a data
	// pool without them) still takes a layering-only image.
	if err := opts.SetUint64(rbd.ImageOptionFeatures, rbd.FeatureLayering); err != nil {
		return err
	}
	return rbd.CreateImage(io, name, uint64(size), opts)
}

// OverNetwork reports that every write is a round trip to the cluster, so
// that a restore writes whole chunks, many at once.
func (t *Target) OverNetwork() bool { return true }

// Fresh reports whether CreateTarget created the image.
func (t *Target) Fresh() bool { return t.fresh }

// WriteAt writes p at off. Writes past the volume size are refused.
func (t *Target) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || int64(len(p)) > t.size-off {
		return 0, fmt.Errorf("write %s at %d+%d: outside volume of %d bytes", t.spec, off, len(p), t.size)
	}
	return t.img.WriteAt(p, off)
}

// zeroBuf is never written to; WriteSame only reads it.
var zeroBuf [4096]byte

// maxZero bounds one librbd call: lengths past INT_MAX are refused.
const maxZero = 1 << 30

// Zero makes [off, off+length) read as zeros. On an image CreateTarget
// created this is already so. On an existing one the range is deallocated:
// a write-same of zeros becomes a discard that also zeroes partial objects
// (rbd_discard alone may skip those, see rbd_skip_partial_discard).
func (t *Target) Zero(off, length int64) error {
	if off < 0 || length < 0 || length > t.size-off {
		return fmt.Errorf("zero %s at %d+%d: outside volume of %d bytes", t.spec, off, length, t.size)
	}
	if t.fresh {
		return nil
	}
	for length > 0 {
		n := min(length, maxZero)
		pattern := zeroBuf[:]
		if n%int64(len(pattern)) != 0 {
			pattern = pattern[:1]
		}
		if _, err := t.img.WriteSame(uint64(off), uint64(n), pattern, 0); err != nil {
			return fmt.Errorf("zero %s at %d+%d: %w", t.spec, off, n, err)
		}
		off += n
		length -= n
	}
	return nil
}

// Close flushes the image and closes it. A restore is not done until
// Close returns nil.
func (t *Target) Close() error {
	ferr := t.img.Flush()
	cerr := t.close()
	if ferr != nil {
		return fmt.Errorf("flush %s: %w", t.spec, ferr)
	}
	return cerr
}

func (t *Target) close() error {
	err := t.img.Close()
	t.io.Destroy()
	if err != nil {
		return fmt.Errorf("close %s: %w", t.spec, err)
	}
	return nil
}

// Abort gives a failed restore up: an image CreateTarget created is
// removed, an existing one is closed with what was written.
func (t *Target) Abort() error {
	if t.fresh {
		return t.Remove()
	}
	return t.close()
}

// Remove closes the target and deletes the image; a restore that failed
// uses it to take back an image it created.
func (t *Target) Remove() error {
	name := t.spec.Image
	io := t.io
	err := t.img.Close()
	if rerr := rbd.RemoveImage(io, name); rerr != nil && !errors.Is(rerr, rbd.ErrNotFound) {
		err = errors.Join(err, rerr)
	}
	io.Destroy()
	if err != nil {
		return fmt.Errorf("remove %s: %w", t.spec, err)
	}
	return nil
}
