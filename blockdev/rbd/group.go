//go:build ceph

package rbd

import (
	"context"
	"errors"
	"fmt"

	"github.com/ceph/go-ceph/rbd"
)

// GroupSnapshot takes one snapshot of all images at a single point in
// time: it creates the RBD group POOL/group, adds the images and takes
// a group snapshot (librbd quiesces writes to every image, from every
// client, while it snapshots them). It returns each image's snapshot ID
// (in the group snapshot namespace: open it with OpenSourceAt). The
// group and its snapshot stay until RemoveGroup; while they do, the
// images cannot be removed.
func (c *Cluster) GroupSnapshot(ctx context.Context, pool, group string, images []Spec) ([]uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	gio, err := c.ioctx(Spec{Pool: pool})
	if err != nil {
		return nil, err
	}
	defer gio.Destroy()
	if err := rbd.GroupCreate(gio, group); err != nil {
		return nil, fmt.Errorf("create RBD group %s/%s: %w", pool, group, err)
	}
	for _, s := range images {
		io, err := c.ioctx(s)
		if err != nil {
			return nil, err
		}
		err = rbd.GroupImageAdd(gio, group, io, s.Image)
		io.Destroy()
		if err != nil {
			return nil, fmt.Errorf("add %s to RBD group %s/%s: %w", s, pool, group, err)
		}
	}
	const snap = "cairn"
	if err := rbd.GroupSnapCreate(gio, group, snap); err != nil {
		return nil, fmt.Errorf("snapshot RBD group %s/%s: %w", pool, group, err)
	}
	ids := make([]uint64, len(images))
	for i, s := range images {
		if ids[i], err = c.groupSnapID(s, group, snap); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// groupSnapID finds the image's snapshot of group snapshot snap.
// Pacific's librbd has no call that maps a group snapshot to its image
// snapshots; the image lists them with their namespace.
func (c *Cluster) groupSnapID(s Spec, group, snap string) (uint64, error) {
	io, err := c.ioctx(s)
	if err != nil {
		return 0, err
	}
	defer io.Destroy()
	img, err := rbd.OpenImageReadOnly(io, s.Image, rbd.NoSnapshot)
	if err != nil {
		return 0, openError(s, err)
	}
	defer img.Close()
	snaps, err := img.GetSnapshotNames()
	if err != nil {
		return 0, fmt.Errorf("snapshots of %s: %w", s, err)
	}
	for _, si := range snaps {
		ns, err := img.GetSnapGroupNamespace(si.Id)
		if err != nil {
			continue // not a group snapshot
		}
		if ns.GroupName == group && ns.GroupSnapName == snap {
			return si.Id, nil
		}
	}
	return 0, fmt.Errorf("%s has no snapshot of RBD group snapshot %s@%s: %w", s, group, snap, ErrNotFound)
}

// RemoveGroup removes the RBD group POOL/group with its snapshots; the
// images stay. A missing group is removed.
func (c *Cluster) RemoveGroup(ctx context.Context, pool, group string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	gio, err := c.ioctx(Spec{Pool: pool})
	if err != nil {
		return err
	}
	defer gio.Destroy()
	err = rbd.GroupRemove(gio, group)
	if errors.Is(err, rbd.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove RBD group %s/%s: %w", pool, group, err)
	}
	return nil
}

// OpenSourceAt opens the image at the snapshot of ID id, which may be in
// another namespace than the user's (a group snapshot's). The source
// keeps s as its spec, s.Snap included: the snapshot the caller names
// it by (for diffs and tags).
func (c *Cluster) OpenSourceAt(ctx context.Context, s Spec, id uint64) (*Source, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	io, err := c.ioctx(s)
	if err != nil {
		return nil, err
	}
	img, err := rbd.OpenImageReadOnly(io, s.Image, rbd.NoSnapshot)
	if err != nil {
		io.Destroy()
		return nil, openError(s, err)
	}
	src := &Source{io: io, img: img, spec: s}
	if err := img.SetSnapByID(id); err != nil {
		_ = src.Close()
		return nil, fmt.Errorf("open %s at snapshot ID %d: %w", s, id, err)
	}
	if err := src.stat(); err != nil {
		return nil, err
	}
	return src, nil
}

// GroupInfo is one RBD group of a pool.
type GroupInfo struct {
	Pool, Name string
	// Images are its images, "POOL/IMAGE".
	Images []string
	// Snapshots are the names of its group snapshots.
	Snapshots []string
}

// Groups lists the RBD groups of pool (its default namespace) with their
// images and snapshots. A group removed while it lists is left out.
func (c *Cluster) Groups(ctx context.Context, pool string) ([]GroupInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	gio, err := c.ioctx(Spec{Pool: pool})
	if err != nil {
		return nil, err
	}
	defer gio.Destroy()
	names, err := rbd.GroupList(gio)
	if err != nil {
		return nil, fmt.Errorf("list the RBD groups of pool %s: %w", pool, err)
	}
	poolNames := map[int64]string{}
	out := make([]GroupInfo, 0, len(names))
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		g := GroupInfo{Pool: pool, Name: name}
		ims, err := rbd.GroupImageList(gio, name)
		if errors.Is(err, rbd.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("images of RBD group %s/%s: %w", pool, name, err)
		}
		for _, im := range ims {
			p, ok := poolNames[im.PoolID]
			if !ok {
				if p, err = c.conn.GetPoolByID(im.PoolID); err != nil {
					p = fmt.Sprintf("pool#%d", im.PoolID)
				}
				poolNames[im.PoolID] = p
			}
			g.Images = append(g.Images, p+"/"+im.Name)
		}
		snaps, err := rbd.GroupSnapList(gio, name)
		if errors.Is(err, rbd.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("snapshots of RBD group %s/%s: %w", pool, name, err)
		}
		for _, s := range snaps {
			g.Snapshots = append(g.Snapshots, s.Name)
		}
		out = append(out, g)
	}
	return out, nil
}
