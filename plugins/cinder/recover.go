//go:build ceph

package cinder

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"cairn/dedup"
	"cairn/internal/openstack"
	"cairn/plugins"
)

// Delete implements plugins.ProtectionPlugin. The backup's Cinder
// snapshot goes with it, through Cinder: only the newest backup of a
// volume still has one (the rotation snapshot), and no later backup can
// use it without this one as its parent. So deleting a volume's last
// checkpoint leaves no cairn snapshot behind.
func (p *Plugin) Delete(ctx context.Context, repo *dedup.Repository, backupID string) error {
	cp, _, err := repo.LoadCheckpoint(ctx, backupID)
	if errors.Is(err, dedup.ErrCheckpointNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if snap, project := cp.Tags[TagSnapshot], cp.Tags[TagProject]; snap != "" && project != "" {
		unlock, err := p.locks.Lock(ctx, cp.Tags[TagVolume])
		if err != nil {
			return err
		}
		defer unlock()
		c, err := p.cinder(ctx, project)
		if err != nil {
			return fmt.Errorf("delete backup %s: %w", backupID, err)
		}
		if err := c.DeleteSnapshot(ctx, snap); err != nil {
			return fmt.Errorf("delete backup %s: its Cinder snapshot: %w", backupID, err)
		}
	}
	return plugins.DeleteBackup(ctx, repo, backupID)
}

// Recover removes what protections and restores that a crash cut off
// left in project's part of the cloud, as the journal records it:
// snapshots (found by their cairn.journal metadata), cairn's attachments
// (those of the volume without an instance, and the volumes attached to
// the appliance's server), temporary volumes of the attach path and
// partly restored volumes.
// The appliance calls it at start, before any job runs.
func (p *Plugin) Recover(ctx context.Context, project string, repo *dedup.Repository) error {
	es, err := p.journal.Entries(ctx, project)
	if err != nil || len(es) == 0 {
		return err
	}
	c, err := p.cinder(ctx, project)
	if err != nil {
		return fmt.Errorf("cinder plugin recovery (entries stay for the next start): %w", err)
	}
	// Attachments first: Cinder deletes no volume that has one. Snapshots
	// last: a temporary volume is a copy (on RBD a clone) of one.
	sort.SliceStable(es, func(i, j int) bool { return undoOrder[es[i].Kind] < undoOrder[es[j].Kind] })
	var errs []error
	for _, e := range es {
		if _, ours := undoOrder[e.Kind]; !ours {
			continue // another plugin's entry in the shared journal
		}
		p.log.Warn("cleaning up after an interrupted operation", "type", Type, "kind", e.Kind, "volume", e.VolumeID, "name", e.Name)
		err := p.undo(ctx, c, e)
		if err == nil {
			err = p.journal.Forget(ctx, e.ID)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// undoOrder ranks the plugin's kinds of entries in the order Recover
// undoes them.
var undoOrder = map[string]int{KindAttachment: 0, KindServerAttachment: 0, KindTempVolume: 1, KindVolume: 2, KindSnapshot: 3}

// undo deletes the object e recorded, if it was created.
func (p *Plugin) undo(ctx context.Context, c *openstack.Cinder, e Entry) error {
	switch e.Kind {
	case KindSnapshot:
		ss, err := c.Snapshots(ctx, e.VolumeID)
		if err != nil {
			return err
		}
		for i := range ss {
			if ss[i].Metadata[MetaJournal] == e.ID {
				if err := c.DeleteSnapshot(ctx, ss[i].ID); err != nil {
					return err
				}
			}
		}
	case KindAttachment:
		as, err := c.Attachments(ctx, e.VolumeID)
		if errors.Is(err, openstack.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, a := range as {
			if a.Instance == "" {
				if err := c.Detach(ctx, a.ID); err != nil {
					return err
				}
			}
		}
	case KindServerAttachment:
		return p.release(ctx, c, e.Project, e.Server, e.VolumeID)
	case KindTempVolume:
		return p.removeTemp(ctx, c, e)
	case KindVolume:
		vs, err := c.Volumes(ctx)
		if err != nil {
			return err
		}
		for i := range vs {
			if vs[i].Metadata[MetaJournal] == e.ID {
				if err := c.DeleteVolume(ctx, vs[i].ID); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
