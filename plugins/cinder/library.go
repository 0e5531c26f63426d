//go:build ceph

package cinder

import (
	"context"
	"errors"
	"fmt"

	cephrbd "cairn/blockdev/rbd"
	"cairn/dedup"
)

// ErrNoImage is returned by ReadImage when POOL/IMAGE does not exist.
var ErrNoImage = errors.New("no such RBD image")

// ReadImage backs up an RBD image that Cinder does not manage (a Nova
// ephemeral disk, POOL/<server id>_disk) on the cluster of Cinder's
// backend, with the same read as a volume's: a cairn-managed RBD
// snapshot rotated by package backup, only the extents changed since
// parent's snapshot. A caller that sets the cinder.* tags (TagVolume,
// TagSizeGiB, …) on it can restore it with Restore, into a new volume.
func (p *Plugin) ReadImage(ctx context.Context, repo *dedup.Repository, pool, image string, parent *dedup.Checkpoint,
	tags map[string]string) (*dedup.Checkpoint, error) {
	unlock, err := p.locks.Lock(ctx, pool+"/"+image)
	if err != nil {
		return nil, err
	}
	defer unlock()
	cp, err := p.rbd.backup(ctx, repo, pool, image, "", 0, parent, tags, p.log)
	if errors.Is(err, cephrbd.ErrNotFound) {
		return nil, fmt.Errorf("%s/%s: %w", pool, image, ErrNoImage)
	}
	return cp, err
}

// ImageExists reports whether POOL/IMAGE exists on Cinder's cluster.
func (p *Plugin) ImageExists(ctx context.Context, pool, image string) (bool, error) {
	cl, err := p.rbd.cluster(ctx)
	if err != nil {
		return false, err
	}
	img, err := cl.OpenImage(ctx, cephrbd.Spec{Pool: pool, Image: image})
	if errors.Is(err, cephrbd.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	img.Close()
	return true, nil
}

// GroupSnapshot takes one snapshot of the images at a single point in
// time on Cinder's cluster (an RBD group POOL/group, see
// rbd.Cluster.GroupSnapshot) and returns each image's snapshot ID, for
// Pending.Commit. RemoveGroup removes it again.
func (p *Plugin) GroupSnapshot(ctx context.Context, pool, group string, images []cephrbd.Spec) ([]uint64, error) {
	cl, err := p.rbd.cluster(ctx)
	if err != nil {
		return nil, err
	}
	return cl.GroupSnapshot(ctx, pool, group, images)
}

// RemoveGroup removes an RBD group of GroupSnapshot with its snapshot.
func (p *Plugin) RemoveGroup(ctx context.Context, pool, group string) error {
	cl, err := p.rbd.cluster(ctx)
	if err != nil {
		return err
	}
	return cl.RemoveGroup(ctx, pool, group)
}
