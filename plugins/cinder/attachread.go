//go:build ceph

package cinder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"cairn/backup"
	"cairn/blockdev"
	"cairn/dedup"
	"cairn/internal/openstack"
)

// readAttached reads pd's snapshot through the appliance's attachment: a
// temporary volume from the snapshot, attached to the appliance's server,
// read at its device, then detached and deleted. When the volume's RBD
// image is known, only the extents RBD diff names as changed since the
// parent's snapshot are read (the temporary volume is a clone of the
// snapshot, so its bytes are the snapshot's); otherwise the whole device,
// deduplicated against the parent.
func (p *Plugin) readAttached(ctx context.Context, pd *Pending, tags map[string]string) (*dedup.Checkpoint, error) {
	tmp, remove, err := p.tempVolume(ctx, pd.c, pd.req.Project, pd.vol, pd.snap)
	if err != nil {
		return nil, fmt.Errorf("protect volume %s: %w", pd.vol.ID, err)
	}
	cp, err := p.readDevice(ctx, pd, tmp.ID, tags)
	if rerr := remove(); rerr != nil {
		if err != nil {
			return nil, errors.Join(err, rerr)
		}
		p.log.Warn("checkpoint committed, but its temporary volume stays until the next start", "type", Type,
			"checkpoint", cp.ID, "volume", tmp.ID, "err", rerr)
	}
	return cp, err
}

// readDevice attaches volume id to the appliance, reads it into a new
// checkpoint and detaches it.
func (p *Plugin) readDevice(ctx context.Context, pd *Pending, id string, tags map[string]string) (*dedup.Checkpoint, error) {
	dev, detach, err := p.attachHere(ctx, pd.c, pd.req.Project, id)
	if err != nil {
		return nil, fmt.Errorf("protect volume %s: %w", pd.vol.ID, err)
	}
	var cp *dedup.Checkpoint
	if pd.pool != "" {
		cp, err = p.rbd.backupDevice(ctx, pd.repo, pd.pool, pd.image, "snapshot-"+pd.snap.ID, dev, pd.parent, tags, p.log)
	} else {
		cp, err = readWhole(ctx, pd.repo, dev, "cinder:"+pd.vol.ID, pd.parent, tags, p.log)
	}
	if err != nil {
		err = fmt.Errorf("protect volume %s (snapshot %s, read at %s): %w", pd.vol.ID, pd.snap.ID, dev, err)
	}
	if derr := detach(); derr != nil {
		if err != nil {
			return nil, errors.Join(err, derr)
		}
		p.log.Warn("checkpoint committed, but its temporary volume stays attached until the next start", "type", Type,
			"checkpoint", cp.ID, "volume", id, "err", derr)
	}
	return cp, err
}

// readWhole backs up every block of the device at dev (a block device
// has no holes to skip), deduplicated against parent, under the source
// name name.
func readWhole(ctx context.Context, repo *dedup.Repository, dev, name string, parent *dedup.Checkpoint,
	tags map[string]string, log *slog.Logger) (*dedup.Checkpoint, error) {
	f, err := blockdev.OpenFile(dev)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return backup.Run(ctx, repo, backup.Live(named{f, name}), backup.Options{Parent: parent, Tags: tags, Report: reporter(log)})
}

// named is a Reader under another source name: a device's path changes
// from one attachment to the next, the volume does not.
type named struct {
	backup.Reader
	name string
}

func (n named) Name() string { return n.name }

// writeAttached writes checkpoint cp into volume id through its device
// on the appliance's server, attached for the write and detached after.
func (p *Plugin) writeAttached(ctx context.Context, c *openstack.Cinder, repo *dedup.Repository, project, id string, cp *dedup.Checkpoint) error {
	dev, detach, err := p.attachHere(ctx, c, project, id)
	if err != nil {
		return err
	}
	tgt, err := blockdev.CreateFileTarget(dev, cp.Size, blockdev.TargetOptions{Force: true})
	if err == nil {
		_, err = backup.Restore(ctx, repo, cp, tgt, backup.RestoreOptions{Report: reporter(p.log)})
	}
	if err != nil {
		err = fmt.Errorf("write through %s: %w", dev, err)
	}
	return errors.Join(err, detach())
}
