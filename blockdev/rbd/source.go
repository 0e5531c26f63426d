//go:build ceph

package rbd

import (
	"context"
	"fmt"

	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"

	"cairn/blockdev"
)

// Source is one snapshot of an image, opened read-only. ReadAt is safe
// for concurrent use: librbd serialises what it must inside one handle.
type Source struct {
	io       *rados.IOContext
	img      *rbd.Image
	spec     Spec
	size     int64
	fastDiff bool
}

var _ blockdev.Source = (*Source)(nil)

// OpenSource opens snapshot s.Snap of the image read-only.
func (c *Cluster) OpenSource(ctx context.Context, s Spec) (*Source, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.Snap == "" {
		return nil, fmt.Errorf("open %s: %w: a source must name a snapshot", s, ErrBadSpec)
	}
	io, err := c.ioctx(s)
	if err != nil {
		return nil, err
	}
	img, err := rbd.OpenImageReadOnly(io, s.Image, s.Snap)
	if err != nil {
		io.Destroy()
		return nil, openError(s, err)
	}
	src := &Source{io: io, img: img, spec: s}
	if err := src.stat(); err != nil {
		return nil, err
	}
	return src, nil
}

// stat reads the size and features; it closes the source on failure.
func (s *Source) stat() error {
	size, err := s.img.GetSize()
	if err == nil {
		s.size = int64(size)
		var features uint64
		features, err = s.img.GetFeatures()
		s.fastDiff = features&rbd.FeatureFastDiff != 0
	}
	if err != nil {
		_ = s.Close()
		return fmt.Errorf("stat %s: %w", s.spec, err)
	}
	return nil
}

// ReadAt reads the snapshot. A read that ends past the size returns the
// bytes before it and io.EOF.
func (s *Source) ReadAt(p []byte, off int64) (int, error) { return s.img.ReadAt(p, off) }

// Size is the size of the snapshot.
func (s *Source) Size() int64 { return s.size }

// Name is the image's spec without the snapshot, so that all checkpoints
// of one image share a source name.
func (s *Source) Name() string { return s.spec.ImageName() }

// Spec is the spec the source was opened with, snapshot included.
func (s *Source) Spec() Spec { return s.spec }

// FastDiff reports whether the image has the fast-diff feature, in which
// case diffs come from the object map in whole objects.
func (s *Source) FastDiff() bool { return s.fastDiff }

// Close closes the snapshot.
func (s *Source) Close() error {
	err := s.img.Close()
	s.io.Destroy()
	if err != nil {
		return fmt.Errorf("close %s: %w", s.spec, err)
	}
	return nil
}

// Allocated returns the extents of the snapshot that hold data (a diff
// against nothing), sorted and merged; a clone's parent data counts.
func (s *Source) Allocated(ctx context.Context) ([]blockdev.Extent, error) {
	return s.diff(ctx, rbd.NoSnapshot)
}

// Changed returns the extents that differ between snapshot from, an older
// snapshot of the same image, and the source's snapshot, sorted and merged.
// Ranges that became zeros (discards) are included: they changed too.
func (s *Source) Changed(ctx context.Context, from string) ([]blockdev.Extent, error) {
	if from == "" {
		return nil, fmt.Errorf("diff %s: no base snapshot", s.spec)
	}
	return s.diff(ctx, from)
}

func (s *Source) diff(ctx context.Context, from string) ([]blockdev.Extent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	whole := rbd.DisableWholeObject
	if s.fastDiff {
		whole = rbd.EnableWholeObject
	}
	var ext []blockdev.Extent
	err := s.img.DiffIterate(rbd.DiffIterateConfig{
		SnapName:      from,
		Length:        uint64(s.size),
		IncludeParent: rbd.IncludeParent,
		WholeObject:   whole,
		Callback: func(off, n uint64, exists int, _ any) int {
			// go-ceph calls take no context: stop the walk from inside.
			if ctx.Err() != nil {
				return -1
			}
			if from == rbd.NoSnapshot && exists == 0 {
				return 0 // known zeros are not allocated
			}
			ext = append(ext, blockdev.Extent{Off: int64(off), Len: int64(n)})
			return 0
		},
	})
	if cerr := ctx.Err(); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, fmt.Errorf("diff %s from %q: %w", s.spec, from, err)
	}
	// Block size 1: sort, merge and clamp to the size, nothing else.
	return blockdev.AlignExtents(ext, 1, s.size), nil
}
