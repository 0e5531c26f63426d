//go:build ceph

package cinder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"cairn/dedup"
	"cairn/internal/openstack"
	"cairn/plugins"
)

// Restore implements plugins.ProtectionPlugin: a new volume in the
// project, of the saved size, type, zone and metadata, named after the
// original with a suffix (or restore_name), written through its RBD
// image or through the appliance's attachment (read_path). It returns
// the new volume's ID. A failed restore deletes the volume it created.
// With overwrite_original the original volume is written instead, when
// it is detached.
func (p *Plugin) Restore(ctx context.Context, repo *dedup.Repository, req plugins.RestoreRequest) (string, error) {
	if req.Target != "" {
		return "", fmt.Errorf("restore target %q: a Cinder volume is restored to a new volume; name it with the parameter restore_name: %w",
			req.Target, plugins.ErrInvalidParameter)
	}
	params, err := plugins.NormalizeOptions(p.Schemas().Restore, req.Parameters)
	if err != nil {
		return "", err
	}
	want, _ := params["read_path"].(string)
	overwrite, _ := params["overwrite_original"].(bool)
	cp, _, err := repo.LoadCheckpoint(ctx, req.BackupID)
	if err != nil {
		return "", err
	}
	if cp.Tags[TagVolume] == "" {
		return "", fmt.Errorf("backup %s is not of a Cinder volume: %w", req.BackupID, plugins.ErrInvalidParameter)
	}
	if overwrite {
		if _, named := params["restore_name"]; named {
			return "", fmt.Errorf("restore_name names a new volume, overwrite_original writes the original: give one: %w", plugins.ErrInvalidParameter)
		}
		return p.overwrite(ctx, repo, req.Project, cp, want)
	}
	spec, err := volumeSpec(cp, req)
	if err != nil {
		return "", err
	}
	c, err := p.cinder(ctx, req.Project)
	if err != nil {
		return "", err
	}
	e, err := p.record(ctx, KindVolume, req.Project, "", spec.Name)
	if err != nil {
		return "", err
	}
	spec.Metadata[MetaJournal] = e.ID
	vol, err := c.CreateVolume(ctx, spec)
	if err != nil {
		if vol != nil {
			p.discard(ctx, c, vol.ID, e)
		}
		return "", fmt.Errorf("restore volume %s: %w", cp.Tags[TagVolume], err)
	}
	if err := p.write(ctx, c, repo, req.Project, vol, cp, want); err != nil {
		p.discard(ctx, c, vol.ID, e)
		return "", fmt.Errorf("restore volume %s into new volume %s: %w", cp.Tags[TagVolume], vol.ID, err)
	}
	if err := c.DeleteVolumeMetadata(ctx, vol.ID, MetaJournal); err != nil {
		p.log.Warn("restored, but the volume keeps cairn's journal key", "type", Type, "volume", vol.ID, "err", err)
	}
	p.forget(ctx, e)
	return vol.ID, nil
}

// overwrite writes checkpoint cp over the volume it was taken of, which
// must still be the project's, detached (available) and large enough.
// Nothing is created, so nothing is deleted when it fails: the volume
// then holds part of the checkpoint.
func (p *Plugin) overwrite(ctx context.Context, repo *dedup.Repository, project string, cp *dedup.Checkpoint, want string) (string, error) {
	c, err := p.cinder(ctx, project)
	if err != nil {
		return "", err
	}
	id := cp.Tags[TagVolume]
	unlock, err := p.locks.Lock(ctx, id)
	if err != nil {
		return "", err
	}
	defer unlock()
	vol, err := volume(ctx, c, project, id)
	if err != nil {
		return "", fmt.Errorf("overwrite_original: %w (restore to a new volume instead)", err)
	}
	switch {
	case vol.Status == "in-use":
		servers := make([]string, 0, len(vol.Attachments))
		for _, a := range vol.Attachments {
			servers = append(servers, a.ServerID)
		}
		return "", fmt.Errorf("overwrite_original: volume %s is in-use (attached to server %v): detach it first, or restore to a new volume: %w: %w",
			id, servers, ErrInUse, plugins.ErrInvalidParameter)
	case vol.Status != "available":
		return "", fmt.Errorf("overwrite_original: volume %s is %s, not available: %w", id, vol.Status, plugins.ErrInvalidParameter)
	case int64(vol.Size)<<30 < cp.Size:
		return "", fmt.Errorf("overwrite_original: volume %s has %d GiB, backup %s holds %d bytes: %w", id, vol.Size, cp.ID, cp.Size, plugins.ErrInvalidParameter)
	}
	if err := p.write(ctx, c, repo, project, vol, cp, want); err != nil {
		return "", fmt.Errorf("restore backup %s over volume %s (it may hold part of the backup now): %w", cp.ID, id, err)
	}
	return vol.ID, nil
}

// volumeSpec is the new volume of a restore, from the checkpoint's tags.
func volumeSpec(cp *dedup.Checkpoint, req plugins.RestoreRequest) (openstack.VolumeSpec, error) {
	t := cp.Tags
	size, err := strconv.Atoi(t[TagSizeGiB])
	if err != nil || size <= 0 {
		size = int((cp.Size + 1<<30 - 1) >> 30)
	}
	if int64(size)<<30 < cp.Size {
		return openstack.VolumeSpec{}, fmt.Errorf("backup %s: %s %q is smaller than the saved %d bytes", cp.ID, TagSizeGiB, t[TagSizeGiB], cp.Size)
	}
	meta := map[string]string{}
	if t[TagMetadata] != "" {
		if err := json.Unmarshal([]byte(t[TagMetadata]), &meta); err != nil {
			return openstack.VolumeSpec{}, fmt.Errorf("backup %s: %s: %w", cp.ID, TagMetadata, err)
		}
	}
	base := t[TagVolumeName]
	if base == "" {
		base = "volume-" + t[TagVolume]
	}
	name := fmt.Sprintf("%s-restore-%.8s", base, req.BackupID)
	if v, ok := req.Parameters["restore_name"]; ok {
		s, ok := v.(string)
		if !ok || s == "" || len(s) > 255 {
			return openstack.VolumeSpec{}, fmt.Errorf("restore_name must be a non-empty string of at most 255 characters: %w", plugins.ErrInvalidParameter)
		}
		name = s
	}
	return openstack.VolumeSpec{Name: name, Description: "restored by cairn from backup " + req.BackupID,
		VolumeType: t[TagVolumeType], AvailabilityZone: t[TagZone], SizeGiB: size, Metadata: meta}, nil
}

// write writes the checkpoint into the volume, on the read path want
// chooses (ChoosePath): through its RBD image, found through a
// connector's attachment, or through its device on the appliance's
// server. Every attachment is gone when it returns.
func (p *Plugin) write(ctx context.Context, c *openstack.Cinder, repo *dedup.Repository, project string, vol *openstack.Volume,
	cp *dedup.Checkpoint, want string) error {
	pool, image, detach, lerr := p.locate(ctx, c, project, vol, "rw")
	path, err := ChoosePath(want, p.readPath, lerr == nil, p.server != "")
	switch {
	case err != nil:
		detach()
		if lerr != nil && !errors.Is(lerr, ErrNotRBD) {
			return lerr
		}
		return err
	case path == ReadDirect:
		err = p.rbd.restore(ctx, repo, cp, pool, image, p.log)
		detach()
	default:
		detach()
		err = p.writeAttached(ctx, c, repo, project, vol.ID, cp)
	}
	if err != nil {
		return err
	}
	_, err = c.WaitVolume(ctx, vol.ID, "available")
	return err
}

// discard deletes the volume of a failed restore and its journal entry.
func (p *Plugin) discard(ctx context.Context, c *openstack.Cinder, id string, e Entry) {
	if err := c.DeleteVolume(context.WithoutCancel(ctx), id); err != nil {
		p.log.Warn("could not delete the volume of a failed restore; the next start retries", "type", Type, "volume", id, "err", err)
		return
	}
	p.forget(ctx, e)
}
