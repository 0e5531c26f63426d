//go:build ceph

package rbd

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"
)

// Pools lists the cluster's pools.
func (c *Cluster) Pools(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	names, err := c.conn.ListPools()
	if err != nil {
		return nil, fmt.Errorf("ceph: list pools: %w", err)
	}
	return names, nil
}

// Namespaces lists the RBD namespaces of pool (the default one, "", not
// included).
func (c *Cluster) Namespaces(ctx context.Context, pool string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	io, err := c.ioctx(Spec{Pool: pool})
	if err != nil {
		return nil, err
	}
	defer io.Destroy()
	names, err := rbd.NamespaceList(io)
	if err != nil {
		return nil, fmt.Errorf("ceph: list namespaces of pool %s: %w", pool, err)
	}
	return names, nil
}

// Images lists the names of the images in pool and namespace (Image and
// Snap of s are ignored). A missing pool or namespace is ErrNotFound.
func (c *Cluster) Images(ctx context.Context, s Spec) ([]string, error) {
	io, err := c.location(ctx, s)
	if err != nil {
		return nil, err
	}
	defer io.Destroy()
	names, err := rbd.GetImageNames(io)
	if err != nil {
		return nil, fmt.Errorf("ceph: list images of %s: %w", locationName(s), err)
	}
	return names, nil
}

// CheckLocation checks that the pool and namespace of s exist; if not,
// the error wraps ErrNotFound.
func (c *Cluster) CheckLocation(ctx context.Context, s Spec) error {
	io, err := c.location(ctx, s)
	if err == nil {
		io.Destroy()
	}
	return err
}

// location opens the pool and namespace of s, which must exist: librbd
// treats a missing namespace like an empty one.
func (c *Cluster) location(ctx context.Context, s Spec) (*rados.IOContext, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	io, err := c.ioctx(s)
	if err != nil || s.Namespace == "" {
		return io, err
	}
	ok, err := rbd.NamespaceExists(io, s.Namespace)
	if err == nil && !ok {
		err = fmt.Errorf("ceph: namespace %s: %w", locationName(s), ErrNotFound)
	} else if err != nil {
		err = fmt.Errorf("ceph: namespace %s: %w", locationName(s), err)
	}
	if err != nil {
		io.Destroy()
		return nil, err
	}
	return io, nil
}

func locationName(s Spec) string {
	if s.Namespace != "" {
		return s.Pool + "/" + s.Namespace
	}
	return s.Pool
}

// RenameImage renames the image s to newName in the same pool and
// namespace. An image called newName makes it fail with ErrExists.
func (c *Cluster) RenameImage(ctx context.Context, s Spec, newName string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	io, err := c.ioctx(s)
	if err != nil {
		return err
	}
	defer io.Destroy()
	// rbd_rename takes the pool and the old name, no open image; go-ceph
	// wants an Image value to carry them.
	err = rbd.GetImage(io, s.Image).Rename(newName)
	switch {
	case errors.Is(err, rbd.ErrExist):
		return fmt.Errorf("rename %s to %s: %w", s, newName, ErrExists)
	case errors.Is(err, rbd.ErrNotFound):
		return fmt.Errorf("rename %s: %w", s, ErrNotFound)
	case err != nil:
		return fmt.Errorf("rename %s to %s: %w", s, newName, err)
	}
	return nil
}

// RemoveImage removes the image s, which must have no snapshots. A
// missing image is not an error: removal is idempotent.
func (c *Cluster) RemoveImage(ctx context.Context, s Spec) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	io, err := c.ioctx(s)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer io.Destroy()
	if err := rbd.RemoveImage(io, s.Image); err != nil && !errors.Is(err, rbd.ErrNotFound) {
		return fmt.Errorf("remove %s: %w", s, err)
	}
	return nil
}

// CheckSnapshot checks that the snapshot checkpoint id was made from (as
// its tags record it) still exists as it was: the same image (by internal
// ID) and the same snapshot (by ID, not only by name). It returns the
// snapshot's spec, or an error wrapping ErrNotFound when it is gone.
func (c *Cluster) CheckSnapshot(ctx context.Context, id string, tags map[string]string) (Spec, error) {
	spec, ok := SnapshotOf(tags)
	if !ok {
		return Spec{}, fmt.Errorf("checkpoint %s is not of an RBD snapshot: %w", id, ErrNotFound)
	}
	head, err := c.OpenImage(ctx, spec)
	if err != nil {
		return spec, err
	}
	defer head.Close()
	if img := head.ID(); img != tags[TagImageID] {
		return spec, fmt.Errorf("image %s is not the one checkpoint %s was made from (ID %s, was %s): %w",
			spec.ImageName(), id, img, tags[TagImageID], ErrNotFound)
	}
	snap, ok, err := head.Snapshot(ctx, spec.Snap)
	if err != nil {
		return spec, err
	}
	if !ok || strconv.FormatUint(snap.ID, 10) != tags[TagSnapID] {
		return spec, fmt.Errorf("snapshot %s of checkpoint %s no longer exists: %w", spec, id, ErrNotFound)
	}
	return spec, nil
}
