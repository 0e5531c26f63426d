//go:build ceph

package cinder

// The attach path: a volume is attached to the appliance's own Nova
// server and read or written through the block device the hypervisor
// gives it, found by its serial (package serial). For a protection the
// volume is a temporary one made from the cairn snapshot; for a restore
// the new volume, or the original one (overwrite_original).

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cairn/internal/openstack"
)

// detachTimeout bounds the clean-up of an attachment or temporary volume
// after its operation ended (also when it was cancelled).
const detachTimeout = 10 * time.Minute

// attachHere attaches volume id to the appliance's server through Nova
// (journaled first, KindServerAttachment), waits until Cinder shows it
// in-use and its device appears, and returns the device's path and the
// function that detaches it again. detach waits until the volume is
// available and drops the entry; when it fails the entry stays for
// Recover.
func (p *Plugin) attachHere(ctx context.Context, c *openstack.Cinder, project, id string) (dev string, detach func() error, err error) {
	nova, err := p.cloud.Nova(ctx, project)
	if err != nil {
		return "", nil, err
	}
	e, err := p.recordEntry(ctx, Entry{Kind: KindServerAttachment, Project: project, VolumeID: id, Server: p.server})
	if err != nil {
		return "", nil, err
	}
	detach = func() error {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), detachTimeout)
		defer cancel()
		if err := detachFrom(dctx, nova, c, p.server, id); err != nil {
			return fmt.Errorf("detach volume %s from the appliance's server %s (the next start retries): %w", id, p.server, err)
		}
		p.forget(dctx, e)
		// Nova calls a volume detached once the hypervisor was asked to
		// let go; a volume deleted while it still holds it open (on RBD a
		// watcher) is refused by Cinder. The device going away is the
		// sign that it let go.
		if err := p.devices.Gone(dctx, id); err != nil {
			p.log.Warn("the detached volume's device is still there", "type", Type, "volume", id, "err", err)
		}
		return nil
	}
	fail := func(err error) (string, func() error, error) {
		if derr := detach(); derr != nil {
			err = errors.Join(err, derr)
		}
		return "", nil, err
	}
	if _, err := nova.AttachVolume(ctx, p.server, id, ""); err != nil {
		return fail(fmt.Errorf("attach volume %s to the appliance's server: %w", id, err))
	}
	if _, err := c.WaitAttached(ctx, id); err != nil {
		return fail(fmt.Errorf("attach volume %s to the appliance's server %s: %w", id, p.server, err))
	}
	dev, err = p.devices.Find(ctx, id)
	if err != nil {
		return fail(fmt.Errorf("volume %s is attached to the appliance's server %s: %w", id, p.server, err))
	}
	return dev, detach, nil
}

// detachFrom detaches volume id from server through Nova, if it is
// attached there, and waits until Cinder shows it available.
func detachFrom(ctx context.Context, nova *openstack.Nova, c *openstack.Cinder, server, id string) error {
	v, err := c.Volume(ctx, id)
	if errors.Is(err, openstack.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	attached := false
	for _, a := range v.Attachments {
		attached = attached || a.ServerID == server
	}
	if !attached {
		return nil
	}
	if err := nova.DetachVolume(ctx, server, id); err != nil {
		return err
	}
	_, err = c.WaitVolume(ctx, id, "available")
	return err
}

// tempVolume makes the temporary volume of a protection through the
// attach path: a volume from the cairn snapshot snap of vol, journaled
// before it is created (KindTempVolume) and marked with MetaJournal and
// MetaTemporary. remove detaches it if needed, deletes it and drops the
// entry; when it fails the entry stays for Recover.
func (p *Plugin) tempVolume(ctx context.Context, c *openstack.Cinder, project string, vol *openstack.Volume, snap *openstack.Snapshot) (
	tmp *openstack.Volume, remove func() error, err error) {
	name := fmt.Sprintf("cairn-read-%.8s-%s", vol.ID, p.now().UTC().Format("20060102T150405Z"))
	e, err := p.recordEntry(ctx, Entry{Kind: KindTempVolume, Project: project, VolumeID: vol.ID, Name: name, Server: p.server})
	if err != nil {
		return nil, nil, err
	}
	remove = func() error {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), detachTimeout)
		defer cancel()
		if err := p.removeTemp(dctx, c, e); err != nil {
			return fmt.Errorf("remove the temporary volume %s (the next start retries): %w", name, err)
		}
		p.forget(dctx, e)
		return nil
	}
	tmp, err = c.CreateVolume(ctx, openstack.VolumeSpec{Name: name, SizeGiB: vol.Size, SnapshotID: snap.ID,
		AvailabilityZone: vol.AvailabilityZone,
		Description:      "cairn: temporary copy of snapshot " + snap.ID + " being backed up; deleted by cairn",
		Metadata:         map[string]string{MetaJournal: e.ID, MetaTemporary: vol.ID}})
	if err != nil {
		if rerr := remove(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, nil, fmt.Errorf("temporary volume from snapshot %s of volume %s: %w", snap.ID, vol.ID, err)
	}
	return tmp, remove, nil
}

// removeTemp detaches from the appliance's server and deletes the
// volumes a KindTempVolume entry made (found by MetaJournal).
func (p *Plugin) removeTemp(ctx context.Context, c *openstack.Cinder, e Entry) error {
	vs, err := c.Volumes(ctx)
	if err != nil {
		return err
	}
	for i := range vs {
		if vs[i].Metadata[MetaJournal] != e.ID {
			continue
		}
		if err := p.release(ctx, c, e.Project, e.Server, vs[i].ID); err != nil {
			return err
		}
		if err := c.DeleteVolume(ctx, vs[i].ID); err != nil {
			return err
		}
	}
	return nil
}

// release detaches volume id from server (the appliance's, as a journal
// entry recorded it) when it is attached there.
func (p *Plugin) release(ctx context.Context, c *openstack.Cinder, project, server, id string) error {
	if server == "" {
		return nil
	}
	nova, err := p.cloud.Nova(ctx, project)
	if err != nil {
		return err
	}
	return detachFrom(ctx, nova, c, server, id)
}
