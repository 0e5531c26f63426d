//go:build ceph

package rbd

import (
	"context"
	"errors"
	"fmt"

	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"
)

// Image names an image whose snapshots are listed, created and removed. It
// holds no image handle between calls: each operation opens one and closes
// it again. A writable handle that creates or removes a snapshot takes the
// image's exclusive lock (when no other client holds it), and closing it
// releases the lock at once; a handle kept open across a long backup would
// leave a stale lock behind a killed cairn, which the next client must wait
// out (the OSD watch timeout, 30 s by default).
type Image struct {
	io   *rados.IOContext
	spec Spec
	id   string
	size int64
}

// OpenImage finds the image named by s (its Snap is ignored) and reads its
// ID and size.
func (c *Cluster) OpenImage(ctx context.Context, s Spec) (*Image, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.Snap = ""
	io, err := c.ioctx(s)
	if err != nil {
		return nil, err
	}
	im := &Image{io: io, spec: s}
	err = im.with(true, func(img *rbd.Image) error {
		if im.id, err = img.GetId(); err != nil {
			return fmt.Errorf("ID of %s: %w", s, err)
		}
		size, err := img.GetSize()
		if err != nil {
			return fmt.Errorf("size of %s: %w", s, err)
		}
		im.size = int64(size)
		return nil
	})
	if err != nil {
		io.Destroy()
		return nil, err
	}
	return im, nil
}

// with runs fn on a fresh handle of the image head.
func (im *Image) with(readOnly bool, fn func(*rbd.Image) error) error {
	var img *rbd.Image
	var err error
	if readOnly {
		img, err = rbd.OpenImageReadOnly(im.io, im.spec.Image, rbd.NoSnapshot)
	} else {
		img, err = rbd.OpenImage(im.io, im.spec.Image, rbd.NoSnapshot)
	}
	if err != nil {
		return openError(im.spec, err)
	}
	err = fn(img)
	if cerr := img.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", im.spec, cerr)
	}
	return err
}

func openError(s Spec, err error) error {
	if errors.Is(err, rbd.ErrNotFound) {
		return fmt.Errorf("open %s: %w", s, ErrNotFound)
	}
	return fmt.Errorf("open %s: %w", s, err)
}

// Spec is the image's spec, without a snapshot.
func (im *Image) Spec() Spec { return im.spec }

// ID is the image's internal ID, which survives renames and differs for a
// new image that reuses a deleted one's name.
func (im *Image) ID() string { return im.id }

// Size is the image's size when it was opened.
func (im *Image) Size() int64 { return im.size }

// Snapshots lists the image's snapshots.
func (im *Image) Snapshots(ctx context.Context) ([]SnapInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []SnapInfo
	err := im.with(true, func(img *rbd.Image) error {
		snaps, err := img.GetSnapshotNames()
		if err != nil {
			return fmt.Errorf("list snapshots of %s: %w", im.spec, err)
		}
		out = make([]SnapInfo, 0, len(snaps))
		for _, s := range snaps {
			out = append(out, SnapInfo{ID: s.Id, Name: s.Name, Size: int64(s.Size)})
		}
		return nil
	})
	return out, err
}

// Snapshot returns the snapshot called name, or ok=false.
func (im *Image) Snapshot(ctx context.Context, name string) (SnapInfo, bool, error) {
	snaps, err := im.Snapshots(ctx)
	if err != nil {
		return SnapInfo{}, false, err
	}
	s, ok := FindSnap(snaps, name)
	return s, ok, nil
}

// CreateSnapshot takes a crash-consistent snapshot of the image head.
func (im *Image) CreateSnapshot(ctx context.Context, name string) (SnapInfo, error) {
	if err := ctx.Err(); err != nil {
		return SnapInfo{}, err
	}
	var info SnapInfo
	err := im.with(false, func(img *rbd.Image) error {
		if _, err := img.CreateSnapshot(name); err != nil {
			return fmt.Errorf("create snapshot %s: %w", im.spec.WithSnap(name), err)
		}
		snaps, err := img.GetSnapshotNames()
		if err != nil {
			return fmt.Errorf("list snapshots of %s: %w", im.spec, err)
		}
		for _, s := range snaps {
			if s.Name == name {
				info = SnapInfo{ID: s.Id, Name: s.Name, Size: int64(s.Size)}
				return nil
			}
		}
		return fmt.Errorf("snapshot %s vanished right after its creation: %w", im.spec.WithSnap(name), ErrNotFound)
	})
	return info, err
}

// RemoveSnapshot removes snapshot name. A snapshot that does not exist is
// not an error: removal is idempotent.
func (im *Image) RemoveSnapshot(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return im.with(false, func(img *rbd.Image) error {
		err := img.GetSnapshot(name).Remove()
		if err != nil && !errors.Is(err, rbd.ErrNotFound) {
			return fmt.Errorf("remove snapshot %s: %w", im.spec.WithSnap(name), err)
		}
		return nil
	})
}

// Close releases the image's I/O context.
func (im *Image) Close() error {
	im.io.Destroy()
	return nil
}
