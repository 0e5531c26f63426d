//go:build ceph

package glance

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"

	"cairn/backup"
	"cairn/blockdev"
	"cairn/dedup"
	"cairn/internal/openstack"
	"cairn/plugins"
)

// Protect implements plugins.ProtectionPlugin (see the package doc).
func (p *Plugin) Protect(ctx context.Context, repo *dedup.Repository, req plugins.ProtectRequest) (*plugins.Backup, error) {
	opts, err := plugins.NormalizeOptions(p.Schemas().Options, req.Options)
	if err != nil {
		return nil, err
	}
	im, err := p.image(ctx, req.Project, req.Resource.ID)
	if err != nil {
		return nil, err
	}
	if im.Status != "active" {
		return nil, fmt.Errorf("protect image %s: status %s: %w; only active images have data to protect", im.ID, im.Status, ErrNotActive)
	}
	saved, err := json.Marshal(savedOf(im))
	if err != nil {
		return nil, fmt.Errorf("protect image %s: %w", im.ID, err)
	}
	tags := make(map[string]string, len(req.Tags)+9)
	for k, v := range req.Tags {
		tags[k] = v
	}
	tags[TagProject], tags[TagImage], tags[TagImageName] = req.Project, im.ID, im.Name
	tags[TagSize], tags[TagChecksum], tags[TagSaved] = strconv.FormatInt(im.SizeBytes, 10), im.Checksum, string(saved)
	tags[TagHashAlgo], _ = im.Properties["os_hash_algo"].(string)
	tags[TagHashValue], _ = im.Properties["os_hash_value"].(string)

	var cp *dedup.Checkpoint
	loc, onRBD := openstack.ImageRBDLocation(im)
	if api, _ := opts["through_api"].(bool); onRBD && !api {
		tags[TagRead] = ReadRBD
		cp, err = p.fromRBD(ctx, repo, im, loc, tags)
		if err != nil {
			return nil, err
		}
	} else {
		tags[TagRead] = ReadAPI
		if cp, err = p.fromAPI(ctx, repo, req, im, tags); err != nil {
			return nil, err
		}
	}
	if cp.Size != im.SizeBytes {
		// Glance's RBD store sizes the image to its data; anything else
		// would restore a different image.
		return &plugins.Backup{ID: cp.ID}, fmt.Errorf("protect image %s: read %d bytes, Glance says %d", im.ID, cp.Size, im.SizeBytes)
	}
	return &plugins.Backup{ID: cp.ID, Stats: cp.Stats, Size: cp.Size}, nil
}

// fromRBD reads the image's protected snapshot from Ceph.
func (p *Plugin) fromRBD(ctx context.Context, repo *dedup.Repository, im *openstack.Image, loc openstack.RBDLocation,
	tags map[string]string) (*dedup.Checkpoint, error) {
	cl, head, err := p.rbd.open(ctx, loc)
	if err != nil {
		return nil, fmt.Errorf("protect image %s from Ceph (%s/%s@%s; set through_api to read it through Glance): %w",
			im.ID, loc.Pool, loc.Image, loc.Snap, err)
	}
	defer head.Close()
	cp, err := p.rbd.backup(ctx, repo, cl, head, loc.Snap, tags, p.log)
	if err != nil {
		return nil, fmt.Errorf("protect image %s from Ceph (%s/%s@%s): %w", im.ID, loc.Pool, loc.Image, loc.Snap, err)
	}
	return cp, nil
}

// fromAPI streams the image through Glance into a spool file, backed up
// like a file (deduplicated against the previous backup), then removed.
func (p *Plugin) fromAPI(ctx context.Context, repo *dedup.Repository, req plugins.ProtectRequest, im *openstack.Image,
	tags map[string]string) (*dedup.Checkpoint, error) {
	g, err := p.glance(ctx, req.Project)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(p.spool, "cairn-glance-*")
	if err != nil {
		return nil, fmt.Errorf("protect image %s: spool file: %w", im.ID, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	body, err := g.Download(ctx, im.ID)
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(f, body)
	body.Close()
	if err != nil {
		return nil, fmt.Errorf("protect image %s: download into %s: %w", im.ID, f.Name(), err)
	}
	if n != im.SizeBytes {
		return nil, fmt.Errorf("protect image %s: Glance sent %d bytes of %d", im.ID, n, im.SizeBytes)
	}
	src, err := blockdev.OpenFile(f.Name())
	if err != nil {
		return nil, err
	}
	defer src.Close()
	// A previous checkpoint deleted meanwhile: only deduplication needed it.
	prev, _, err := backup.Previous(ctx, repo, req.Previous)
	if err != nil {
		return nil, fmt.Errorf("protect image %s: %w", im.ID, err)
	}
	cp, err := backup.Run(ctx, repo, backup.Live(src), backup.Options{Parent: prev, Tags: tags})
	if err != nil {
		return nil, fmt.Errorf("protect image %s: %w", im.ID, err)
	}
	return cp, nil
}
