//go:build ceph

package cinder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"cairn/dedup"
	"cairn/internal/openstack"
	"cairn/plugins"
)

// Protect implements plugins.ProtectionPlugin (see the package doc).
func (p *Plugin) Protect(ctx context.Context, repo *dedup.Repository, req plugins.ProtectRequest) (*plugins.Backup, error) {
	pd, err := p.Prepare(ctx, repo, req)
	if err != nil {
		return nil, err
	}
	return pd.Commit(ctx, 0)
}

// Pending is a protection between its Cinder snapshot and its read:
// Prepare returns it, Commit or Abort ends it (exactly one of them).
// A caller that takes a consistent snapshot of several volumes (a
// server's) prepares each, snapshots their images together, and commits
// each at its image's snapshot of that set.
type Pending struct {
	p      *Plugin
	c      *openstack.Cinder
	repo   *dedup.Repository
	req    plugins.ProtectRequest
	vol    *openstack.Volume
	snap   *openstack.Snapshot
	entry  Entry
	parent *dedup.Checkpoint
	pool   string
	image  string
	// path is the read path (ReadDirect, ReadAttach); pool and image are
	// "" when the volume's RBD image is unknown (attach path only).
	path   string
	detach func()
	unlock func()
}

// Prepare locks the volume, takes its Cinder snapshot (journaled) and
// finds its RBD image.
func (p *Plugin) Prepare(ctx context.Context, repo *dedup.Repository, req plugins.ProtectRequest) (*Pending, error) {
	opts, err := plugins.NormalizeOptions(p.Schemas().Options, req.Options)
	if err != nil {
		return nil, err
	}
	want, _ := opts["read_path"].(string)
	c, err := p.cinder(ctx, req.Project)
	if err != nil {
		return nil, err
	}
	vol, err := volume(ctx, c, req.Project, req.Resource.ID)
	if err != nil {
		return nil, err
	}
	unlock, err := p.locks.Lock(ctx, vol.ID)
	if err != nil {
		return nil, err
	}
	pd := &Pending{p: p, c: c, repo: repo, req: req, vol: vol, unlock: unlock, detach: func() {}}
	if req.Previous != "" {
		pd.parent, _, err = repo.LoadCheckpoint(ctx, req.Previous)
		if errors.Is(err, dedup.ErrCheckpointNotFound) {
			pd.parent = nil // read whole; nothing to follow
		} else if err != nil {
			unlock()
			return nil, fmt.Errorf("protect volume %s: previous checkpoint: %w", vol.ID, err)
		}
	}
	pd.snap, pd.entry, err = p.snapshot(ctx, c, req.Project, vol, repo.Config().ID)
	if err != nil {
		unlock()
		return nil, err
	}
	var lerr error
	pd.pool, pd.image, pd.detach, lerr = p.locate(ctx, c, req.Project, vol, "ro")
	if pd.path, err = ChoosePath(want, p.readPath, lerr == nil, p.server != ""); err != nil {
		pd.Abort(ctx)
		if lerr != nil && !errors.Is(lerr, ErrNotRBD) {
			return nil, lerr
		}
		return nil, fmt.Errorf("protect volume %s: %w", vol.ID, err)
	}
	if pd.path == ReadAttach {
		// The connector's attachment only told where the volume lives.
		pd.detach()
		pd.detach = func() {}
		if lerr != nil && !errors.Is(lerr, ErrNotRBD) {
			p.log.Warn("could not tell where the volume lives; reading it whole through the appliance's attachment", "type", Type,
				"volume", vol.ID, "err", lerr)
		}
	}
	return pd, nil
}

// Image is the volume's RBD image ("" for a volume whose backend is not
// RBD, read through the appliance's attachment).
func (pd *Pending) Image() (pool, image string) { return pd.pool, pd.image }

// Abort deletes the new snapshot and ends the protection.
func (pd *Pending) Abort(ctx context.Context) {
	defer pd.unlock()
	pd.detach()
	if derr := pd.c.DeleteSnapshot(context.WithoutCancel(ctx), pd.snap.ID); derr != nil {
		pd.p.log.Warn("could not delete the snapshot of a failed protection; the next start retries", "type", Type, "snapshot", pd.snap.ID, "err", derr)
		return
	}
	pd.p.forget(ctx, pd.entry)
}

// Commit reads the volume and commits its checkpoint, then rotates the
// older cairn snapshot away. snapID 0 reads the Cinder snapshot; another
// reads that snapshot of the image instead (one taken after the Cinder
// snapshot, as part of a consistent set), with the extents changed since
// the parent's snapshot still found from the Cinder snapshots; such a
// snapshot is only in Ceph, so it is always read directly.
func (pd *Pending) Commit(ctx context.Context, snapID uint64) (*plugins.Backup, error) {
	p, vol, snap := pd.p, pd.vol, pd.snap
	cp, err := p.read(ctx, pd, snapID)
	pd.detach()
	pd.detach = func() {}
	if err != nil {
		// Nothing committed: the new snapshot goes again.
		pd.Abort(ctx)
		return nil, err
	}
	defer pd.unlock()
	// Committed: the new snapshot is the one base from now on; the
	// checkpoint owns it, the journal no longer needs to.
	p.forget(ctx, pd.entry)
	if err := p.rotate(ctx, pd.c, vol.ID, pd.repo.Config().ID, snap.ID); err != nil {
		p.log.Warn("checkpoint committed, but an older cairn snapshot stays until the next protection", "type", Type,
			"checkpoint", cp.ID, "volume", vol.ID, "err", err)
	}
	return &plugins.Backup{ID: cp.ID, Stats: cp.Stats, Size: cp.Size}, nil
}

// snapshot journals and creates the protection's Cinder snapshot.
func (p *Plugin) snapshot(ctx context.Context, c *openstack.Cinder, project string, vol *openstack.Volume, repoID string) (*openstack.Snapshot, Entry, error) {
	name := fmt.Sprintf("cairn-%s", p.now().UTC().Format("20060102T150405Z"))
	e, err := p.record(ctx, KindSnapshot, project, vol.ID, name)
	if err != nil {
		return nil, e, err
	}
	meta := map[string]string{MetaManaged: "true", MetaRepository: repoID, MetaJournal: e.ID}
	snap, err := c.CreateSnapshot(ctx, vol.ID, name, "cairn backup snapshot: deleted by cairn, do not use", meta)
	if err != nil {
		if snap != nil {
			if derr := c.DeleteSnapshot(context.WithoutCancel(ctx), snap.ID); derr != nil {
				return nil, e, errors.Join(err, derr)
			}
		}
		p.forget(ctx, e)
		return nil, e, fmt.Errorf("protect volume %s: %w", vol.ID, err)
	}
	return snap, e, nil
}

// read reads the snapshot (at snapID when not 0) on pd's read path and
// commits the checkpoint.
func (p *Plugin) read(ctx context.Context, pd *Pending, snapID uint64) (*dedup.Checkpoint, error) {
	req, vol, snap := pd.req, pd.vol, pd.snap
	tags := make(map[string]string, len(req.Tags)+10)
	for k, v := range req.Tags {
		tags[k] = v
	}
	meta, _ := json.Marshal(vol.Metadata)
	tags[TagProject], tags[TagVolume], tags[TagVolumeName] = req.Project, vol.ID, vol.Name
	tags[TagSnapshot], tags[TagSizeGiB], tags[TagVolumeType] = snap.ID, itoa(vol.Size), vol.VolumeType
	tags[TagZone], tags[TagBootable], tags[TagMetadata] = vol.AvailabilityZone, vol.Bootable, string(meta)
	path := pd.path
	if snapID != 0 {
		path = ReadDirect
	}
	tags[TagReadPath] = path
	if path == ReadAttach {
		return p.readAttached(ctx, pd, tags)
	}
	cp, err := p.rbd.backup(ctx, pd.repo, pd.pool, pd.image, "snapshot-"+snap.ID, snapID, pd.parent, tags, p.log)
	if err != nil {
		return nil, fmt.Errorf("protect volume %s (%s/%s@snapshot-%s): %w", vol.ID, pd.pool, pd.image, snap.ID, err)
	}
	return cp, nil
}

// locate returns the volume's RBD pool and image from Cinder's
// connection info. An in-use volume's existing attachment tells (Cinder
// refuses a second one on a volume that is not multi-attach); otherwise
// cairn attaches it itself (journaled), and detach removes that
// attachment again.
func (p *Plugin) locate(ctx context.Context, c *openstack.Cinder, project string, vol *openstack.Volume, mode string) (pool, image string, detach func(), err error) {
	detach = func() {}
	var att *openstack.Attachment
	if vol.Status == "in-use" && len(vol.Attachments) > 0 {
		att, err = c.Attachment(ctx, vol.Attachments[0].AttachmentID)
		if err != nil {
			return "", "", detach, err
		}
	} else {
		e, err := p.record(ctx, KindAttachment, project, vol.ID, p.host)
		if err != nil {
			return "", "", detach, err
		}
		att, err = c.Attach(ctx, vol.ID, openstack.Connector(p.host), mode)
		if err != nil {
			p.forget(ctx, e)
			return "", "", detach, err
		}
		detach = func() {
			dctx := context.WithoutCancel(ctx)
			if err := c.Detach(dctx, att.ID); err != nil {
				p.log.Warn("could not delete cairn's attachment; the next start retries", "type", Type, "attachment", att.ID, "err", err)
				return
			}
			p.forget(ctx, e)
		}
	}
	name, driver, ok := att.RBDImage()
	if !ok {
		detach()
		return "", "", func() {}, fmt.Errorf("volume %s: connection_info is %q (name %q): %w; cairn reads RBD volumes only",
			vol.ID, driver, name, ErrNotRBD)
	}
	pool, image = splitPoolImage(name)
	return pool, image, detach, nil
}

// splitPoolImage splits "POOL/IMAGE" (a namespace is not used by
// Cinder's RBD driver).
func splitPoolImage(name string) (string, string) {
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			return name[:i], name[i+1:]
		}
	}
	return "", name
}

// rotate deletes, through Cinder, the cairn snapshots of the volume for
// this repository other than keep.
func (p *Plugin) rotate(ctx context.Context, c *openstack.Cinder, volume, repoID, keep string) error {
	ss, err := c.Snapshots(ctx, volume)
	if err != nil {
		return err
	}
	var errs []error
	for i := range ss {
		if ss[i].ID == keep || ss[i].VolumeID != volume || !isRotation(&ss[i], repoID) {
			continue
		}
		errs = append(errs, c.DeleteSnapshot(ctx, ss[i].ID))
	}
	return errors.Join(errs...)
}
