//go:build ceph

package glance

import (
	"context"
	"fmt"
	"log/slog"

	"cairn/backup"
	cephrbd "cairn/blockdev/rbd"
	"cairn/dedup"
	"cairn/internal/openstack"
)

// rbdIO is the plugin's connection to the cluster (made on first use).
type rbdIO struct{ lazy *cephrbd.Lazy }

func newRBDIO(o cephrbd.ConnOptions) *rbdIO { return &rbdIO{cephrbd.NewLazy(o)} }

func (r *rbdIO) cluster(ctx context.Context) (*cephrbd.Cluster, error) {
	cl, err := r.lazy.Cluster(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to Glance's Ceph cluster: %w", err)
	}
	return cl, nil
}

func (r *rbdIO) close() { r.lazy.Close() }

// open opens the image Glance keeps at loc; the caller closes it.
func (r *rbdIO) open(ctx context.Context, loc openstack.RBDLocation) (*cephrbd.Cluster, *cephrbd.Image, error) {
	cl, err := r.cluster(ctx)
	if err != nil {
		return nil, nil, err
	}
	head, err := cl.OpenImage(ctx, cephrbd.Spec{Pool: loc.Pool, Image: loc.Image})
	if err != nil {
		return nil, nil, err
	}
	return cl, head, nil
}

// backup reads the protected snapshot Glance made of the image, whole:
// Glance never changes an image's data, and the repository's index
// deduplicates what an earlier backup of it stored.
func (r *rbdIO) backup(ctx context.Context, repo *dedup.Repository, cl *cephrbd.Cluster, head *cephrbd.Image, snap string,
	tags map[string]string, log *slog.Logger) (*dedup.Checkpoint, error) {
	src := backup.NewImage(cl, head, backup.ImageSnapshots(head, repo.Config().ID))
	return backup.Run(ctx, repo, src, backup.Options{Snap: snap, Tags: tags,
		Report: backup.Reporter{Warnf: func(format string, args ...any) {
			log.Warn(fmt.Sprintf(format, args...), "type", Type)
		}}})
}
