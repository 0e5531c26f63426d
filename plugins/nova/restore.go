//go:build ceph

package nova

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"cairn/dedup"
	"cairn/internal/openstack"
	"cairn/plugins"
	"cairn/plugins/cinder"
)

// Restore implements plugins.ProtectionPlugin: the volumes (and an
// ephemeral disk, as a volume) through the Cinder plugin, then a new
// server with the saved definition booting from the restored root
// volume, the data volumes attached in their saved order and devices.
// It returns the new server's ID once it is ACTIVE; what could not be
// honoured (a fixed IP in use, a changed flavor) is logged and kept in
// the server's metadata key cairn.restore_notes. A failed restore
// deletes the server and volumes it created.
func (p *Plugin) Restore(ctx context.Context, repo *dedup.Repository, req plugins.RestoreRequest) (string, error) {
	if req.Target != "" {
		return "", fmt.Errorf("restore target %q: a Nova server is restored to a new server; name it with the parameter restore_name: %w",
			req.Target, plugins.ErrInvalidParameter)
	}
	m, err := loadManifest(ctx, repo, req.BackupID)
	if errors.Is(err, ErrManifest) {
		return "", fmt.Errorf("%w: %w", err, plugins.ErrInvalidParameter)
	}
	if err != nil {
		return "", err
	}
	name, flavorName, err := restoreParams(m, req)
	if err != nil {
		return "", err
	}
	n, err := p.nova(ctx, req.Project)
	if err != nil {
		return "", err
	}
	c, err := p.cloud.Cinder(ctx, req.Project)
	if err != nil {
		return "", err
	}
	var notes []string
	flavor, err := n.FlavorByName(ctx, flavorName)
	if errors.Is(err, openstack.ErrNotFound) {
		return "", fmt.Errorf("restore server %s: flavor %q does not exist any more; create it or name another with the parameter flavor: %w",
			m.Server.ID, flavorName, plugins.ErrInvalidParameter)
	}
	if err != nil {
		return "", err
	}
	f := m.Server.Flavor
	if flavor.VCPUs != f.VCPUs || flavor.RAM != f.RAM || flavor.Disk != f.Disk {
		notes = append(notes, fmt.Sprintf("flavor %s has %d vCPUs, %d MiB, %d GiB; the saved one had %d, %d, %d",
			flavor.Name, flavor.VCPUs, flavor.RAM, flavor.Disk, f.VCPUs, f.RAM, f.Disk))
	}

	r := &restoreRun{p: p, n: n, c: c, project: req.Project}
	r.entry, err = p.record(ctx, cinder.Entry{Project: req.Project, Name: name})
	if err != nil {
		return "", err
	}
	id, err := r.run(ctx, repo, m, req, name, flavor.ID, notes)
	if err != nil {
		r.undo(ctx)
		return "", fmt.Errorf("restore server %s from backup %s: %w", m.Server.ID, req.BackupID, err)
	}
	p.forget(ctx, r.entry)
	return id, nil
}

func restoreParams(m *Manifest, req plugins.RestoreRequest) (name, flavor string, err error) {
	name = fmt.Sprintf("%s-restore-%.8s", m.Server.Name, req.BackupID)
	flavor = m.Server.Flavor.Name
	for k, dst := range map[string]*string{"restore_name": &name, "flavor": &flavor} {
		v, ok := req.Parameters[k]
		if !ok {
			continue
		}
		s, ok := v.(string)
		if !ok || s == "" || len(s) > 255 {
			return "", "", fmt.Errorf("%s must be a non-empty string of at most 255 characters: %w", k, plugins.ErrInvalidParameter)
		}
		*dst = s
	}
	return name, flavor, nil
}

// restoreRun is one restore: what it created so far.
type restoreRun struct {
	p       *Plugin
	n       *openstack.Nova
	c       *openstack.Cinder
	project string
	entry   cinder.Entry
	volumes []string // restored, in the manifest's order
	server  string
}

// volumeDone journals a restored volume (the Cinder plugin forgets its
// own entry once the volume is complete).
func (r *restoreRun) volumeDone(ctx context.Context, id string) error {
	r.volumes = append(r.volumes, id)
	r.entry.VolumeID = strings.Join(r.volumes, ",")
	_, err := r.p.record(ctx, r.entry)
	return err
}

func (r *restoreRun) run(ctx context.Context, repo *dedup.Repository, m *Manifest, req plugins.RestoreRequest,
	name, flavorID string, notes []string) (string, error) {
	root := ""
	type data struct{ id, device string }
	var attach []data
	for _, v := range m.Volumes {
		id, err := r.p.volumes.Restore(ctx, repo, plugins.RestoreRequest{Project: r.project, BackupID: v.BackupID})
		if err != nil {
			return "", fmt.Errorf("volume %s (%s): %w", v.VolumeID, v.Device, err)
		}
		if err := r.volumeDone(ctx, id); err != nil {
			return "", err
		}
		if v.BootIndex == 0 {
			root = id
		} else {
			attach = append(attach, data{id, v.Device})
		}
	}
	if m.Ephemeral != nil {
		id, err := r.p.volumes.Restore(ctx, repo, plugins.RestoreRequest{Project: r.project, BackupID: m.Ephemeral.BackupID})
		if err != nil {
			return "", fmt.Errorf("ephemeral disk %s/%s: %w", m.Ephemeral.Pool, m.Ephemeral.Image, err)
		}
		if err := r.volumeDone(ctx, id); err != nil {
			return "", err
		}
		root = id
		notes = append(notes, "the ephemeral root disk was restored as a volume, booted from")
	}
	if root == "" {
		return "", fmt.Errorf("the backup has no root disk (neither a boot volume nor an RBD ephemeral disk): %w", plugins.ErrInvalidParameter)
	}
	// The Cinder plugin restores a plain volume: Nova boots only from one
	// marked bootable.
	if err := r.c.SetBootable(ctx, root); err != nil {
		return "", err
	}
	spec := openstack.ServerSpec{Name: name, FlavorID: flavorID, KeyName: m.Server.KeyName,
		AvailabilityZone: m.Server.AvailabilityZone, RootVolume: root, Metadata: map[string]string{}}
	for k, v := range m.Server.Metadata {
		spec.Metadata[k] = v
	}
	spec.Metadata[MetaJournal] = r.entry.ID
	for _, pt := range m.Server.Ports {
		nic := openstack.NIC{Network: pt.Network}
		if len(pt.FixedIPs) > 0 {
			nic.FixedIP = pt.FixedIPs[0]
		}
		spec.NICs = append(spec.NICs, nic)
	}
	if len(spec.NICs) > 0 {
		spec.SecurityGroups = m.Server.SecurityGroups
	} else if len(m.Server.SecurityGroups) > 0 && !slices.Equal(m.Server.SecurityGroups, []string{"default"}) {
		notes = append(notes, "security groups "+strings.Join(m.Server.SecurityGroups, ",")+" not applied: the server had no port")
	}
	s, err := r.create(ctx, spec)
	if err != nil && hasFixedIP(spec.NICs) {
		// A fixed IP may be taken by now: try again with any address.
		r.deleteServer(ctx)
		notes = append(notes, fmt.Sprintf("fixed IPs not honoured (%v); the server got new addresses", err))
		for i := range spec.NICs {
			spec.NICs[i].FixedIP = ""
		}
		s, err = r.create(ctx, spec)
	}
	if err != nil {
		return "", err
	}
	for _, a := range attach {
		if _, err := r.n.AttachVolume(ctx, s.ID, a.id, a.device); err != nil {
			return "", err
		}
		if _, err := r.c.WaitAttached(ctx, a.id); err != nil {
			return "", fmt.Errorf("attach volume %s to the restored server %s: %w", a.id, s.ID, err)
		}
	}
	if len(notes) > 0 {
		r.p.log.Warn("server restored, but not all of its definition was honoured", "type", Type, "server", s.ID, "notes", notes)
		if err := r.n.SetServerMetadata(ctx, s.ID, map[string]string{MetaNotes: truncate(strings.Join(notes, "; "), 255)}); err != nil {
			return "", err
		}
	}
	if err := r.n.DeleteServerMetadata(ctx, s.ID, MetaJournal); err != nil {
		r.p.log.Warn("restored, but the server keeps cairn's journal key", "type", Type, "server", s.ID, "err", err)
	}
	return s.ID, nil
}

// createTries bounds the creates of a restore's server that went to
// ERROR: a build fails now and then on a transient error of Cinder's
// (seen: its "ceph mon dump" failing while it initialises the root
// volume's connection).
const createTries = 3

// create creates the server; one that went to ERROR is deleted, and
// created again once its root volume is available again.
func (r *restoreRun) create(ctx context.Context, spec openstack.ServerSpec) (*openstack.Server, error) {
	var s *openstack.Server
	var err error
	for try := 1; try <= createTries; try++ {
		s, err = r.create1(ctx, spec)
		if err == nil || !errors.Is(err, openstack.ErrFailed) || try == createTries {
			break
		}
		r.p.log.Warn("the restored server went to ERROR; trying again", "type", Type, "server", r.server, "try", try, "err", err)
		r.deleteServer(ctx)
		if r.server != "" {
			break
		}
		if _, werr := r.c.WaitVolume(ctx, spec.RootVolume, "available"); werr != nil {
			return s, errors.Join(err, werr)
		}
	}
	return s, err
}

func (r *restoreRun) create1(ctx context.Context, spec openstack.ServerSpec) (*openstack.Server, error) {
	s, err := r.n.CreateServer(ctx, spec)
	if s != nil {
		r.server = s.ID
	}
	if err != nil && r.server == "" {
		// The create answered, but the server it made may exist: find it
		// by the journal key.
		if ss, lerr := r.n.ServersByMetadata(context.WithoutCancel(ctx), MetaJournal, r.entry.ID); lerr == nil && len(ss) > 0 {
			r.server = ss[0].ID
		}
	}
	return s, err
}

func hasFixedIP(ns []openstack.NIC) bool {
	for _, n := range ns {
		if n.FixedIP != "" {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func (r *restoreRun) deleteServer(ctx context.Context) {
	if r.server == "" {
		return
	}
	if err := r.n.DeleteServer(context.WithoutCancel(ctx), r.server); err != nil {
		r.p.log.Warn("could not delete the server of a failed restore; the next start retries", "type", Type, "server", r.server, "err", err)
		return
	}
	r.server = ""
}

// undo deletes what a failed restore created: the server first (Cinder
// deletes no attached volume), then the volumes.
func (r *restoreRun) undo(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	r.deleteServer(ctx)
	if r.server != "" {
		return // the entry stays for Recover
	}
	var errs []error
	for _, id := range r.volumes {
		errs = append(errs, r.c.DeleteVolume(ctx, id))
	}
	if err := errors.Join(errs...); err != nil {
		r.p.log.Warn("could not delete the volumes of a failed restore; the next start retries", "type", Type, "err", err)
		return
	}
	r.p.forget(ctx, r.entry)
}

// Recover removes what restores that a crash cut off left in project's
// part of the cloud: servers (found by their cairn.journal metadata) and
// the volumes journaled for them; then the Cinder plugin's own leftovers
// (which may have been attached to those servers). The appliance calls
// it at start.
func (p *Plugin) Recover(ctx context.Context, project string, repo *dedup.Repository) error {
	es, err := p.journal.Entries(ctx, project)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range es {
		if e.Kind == KindGroup {
			p.log.Warn("cleaning up after an interrupted server protection", "type", Type, "group", e.Name)
			pool, group := splitPoolGroup(e.Name)
			err := p.volumes.RemoveGroup(ctx, pool, group)
			if err == nil {
				err = p.journal.Forget(ctx, e.ID)
			}
			errs = append(errs, err)
			continue
		}
		if e.Kind != KindServer {
			continue
		}
		p.log.Warn("cleaning up after an interrupted server restore", "type", Type, "server", e.Name)
		errs = append(errs, p.undoEntry(ctx, project, e))
	}
	return errors.Join(append(errs, p.volumes.Recover(ctx, project, repo))...)
}

func (p *Plugin) undoEntry(ctx context.Context, project string, e cinder.Entry) error {
	n, err := p.nova(ctx, project)
	if err != nil {
		return err
	}
	c, err := p.cloud.Cinder(ctx, project)
	if err != nil {
		return err
	}
	ss, err := n.ServersByMetadata(ctx, MetaJournal, e.ID)
	if err != nil {
		return err
	}
	for _, s := range ss {
		if err := n.DeleteServer(ctx, s.ID); err != nil {
			return err
		}
	}
	if e.VolumeID != "" {
		for _, id := range strings.Split(e.VolumeID, ",") {
			if err := c.DeleteVolume(ctx, id); err != nil {
				return err
			}
		}
	}
	return p.journal.Forget(ctx, e.ID)
}
