//go:build ceph

package nova

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"cairn/dedup"
	"cairn/internal/openstack"
	"cairn/plugins"
	"cairn/plugins/cinder"
)

// sequentialReason is why a server with several volumes is protected
// one volume after another on this cloud.
const sequentialReason = "Cinder's RBD driver has no consistent group snapshot (it snapshots a group's volumes one after another) " +
	"and no guest agent answered Nova's quiesce; each volume was snapshotted through Cinder in turn"

// Protect implements plugins.ProtectionPlugin: the server's volumes
// through the Cinder plugin, its ephemeral RBD disk directly, then the
// manifest naming them all. A failure deletes the volume checkpoints
// already made.
func (p *Plugin) Protect(ctx context.Context, repo *dedup.Repository, req plugins.ProtectRequest) (*plugins.Backup, error) {
	opts, err := plugins.NormalizeOptions(p.Schemas().Options, req.Options)
	if err != nil {
		return nil, err
	}
	sequential, _ := opts["sequential"].(bool)
	n, err := p.nova(ctx, req.Project)
	if err != nil {
		return nil, err
	}
	s, err := server(ctx, n, req.Project, req.Resource.ID)
	if err != nil {
		return nil, err
	}
	unlock, err := p.locks.Lock(ctx, s.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	m, err := p.define(ctx, n, s)
	if err != nil {
		return nil, err
	}
	prev := p.previous(ctx, repo, req.Previous, s.ID)
	tags := make(map[string]string, len(req.Tags)+1)
	for k, v := range req.Tags {
		tags[k] = v
	}
	tags[TagPartOf] = s.ID

	var made []string
	fail := func(err error) (*plugins.Backup, error) {
		for _, id := range made {
			if derr := p.volumes.Delete(context.WithoutCancel(ctx), repo, id); derr != nil {
				p.log.Warn("could not delete a volume checkpoint of a failed server protection", "type", Type, "checkpoint", id, "err", derr)
			}
		}
		return nil, fmt.Errorf("protect server %s: %w", s.ID, err)
	}
	var stats dedup.Stats
	var size int64
	vreq := func(v *VolumeBackup) plugins.ProtectRequest {
		return plugins.ProtectRequest{Project: req.Project, Tags: tags,
			Resource: plugins.Resource{ID: v.VolumeID, Type: cinder.Type}, Previous: prev.volume(v.VolumeID)}
	}
	note := ConsistencyNote{Level: Sequential, Method: "cinder-snapshots", Reason: sequentialReason}
	if sequential {
		note.Reason = "the plan asked for sequential snapshots (option sequential)"
	}
	done := false
	if len(m.Volumes) > 1 && !sequential {
		var bs []*plugins.Backup
		bs, note, err = p.together(ctx, repo, req.Project, s.ID, m, vreq)
		for i, b := range bs {
			made = append(made, b.ID)
			m.Volumes[i].BackupID = b.ID
			stats, size = add(stats, b.Stats), size+b.Size
		}
		if err != nil {
			return fail(err)
		}
		done = bs != nil
	}
	for i := range m.Volumes {
		if done {
			break
		}
		v := &m.Volumes[i]
		b, err := p.volumes.Protect(ctx, repo, vreq(v))
		if err != nil {
			return fail(fmt.Errorf("volume %s (%s): %w", v.VolumeID, v.Device, err))
		}
		made = append(made, b.ID)
		v.BackupID = b.ID
		stats, size = add(stats, b.Stats), size+b.Size
	}
	if len(m.Volumes) == 0 || s.ImageID() != "" {
		d, cp, err := p.ephemeral(ctx, repo, req.Project, s, m, tags, prev.disk())
		if err != nil {
			return fail(err)
		}
		if d != nil {
			made = append(made, d.BackupID)
			m.Ephemeral = d
			stats, size = add(stats, cp.Stats), size+cp.Size
		}
	}
	m.Consistency = consistency(m, note)
	mtags := make(map[string]string, len(req.Tags)+4)
	for k, v := range req.Tags {
		mtags[k] = v
	}
	mtags[TagProject], mtags[TagServer], mtags[TagServerName], mtags[TagConsistency] = req.Project, s.ID, s.Name, m.Consistency.Level
	cp, err := storeManifest(ctx, repo, m, mtags)
	if err != nil {
		return fail(err)
	}
	stats = add(stats, cp.Stats)
	return &plugins.Backup{ID: cp.ID, Stats: stats, Size: size}, nil
}

// consistency is the level the manifest's disks were taken at: note,
// the volumes', unless there is one disk only, or an ephemeral disk was
// read at a snapshot of its own beside them.
func consistency(m *Manifest, note ConsistencyNote) ConsistencyNote {
	disks := len(m.Volumes)
	if m.Ephemeral != nil {
		disks++
	}
	switch {
	case disks <= 1:
		return ConsistencyNote{Level: Consistent, Method: "single-disk",
			Reason: "the server has one disk: its one snapshot is a single point in time"}
	case m.Ephemeral != nil:
		return ConsistencyNote{Level: Sequential, Method: "cinder-snapshots+rbd-snapshot",
			Reason: "the ephemeral disk was snapshotted apart from the volumes"}
	}
	return note
}

func add(a, b dedup.Stats) dedup.Stats {
	a.AllocatedBytes += b.AllocatedBytes
	a.ReadBytes += b.ReadBytes
	a.NewChunks += b.NewChunks
	a.NewBytes += b.NewBytes
	a.StoredBytes += b.StoredBytes
	return a
}

// define reads the server's definition from Nova.
func (p *Plugin) define(ctx context.Context, n *openstack.Nova, s *openstack.Server) (*Manifest, error) {
	as, err := n.VolumeAttachments(ctx, s)
	if err != nil {
		return nil, err
	}
	ifs, err := n.Interfaces(ctx, s.ID)
	if err != nil && !errors.Is(err, openstack.ErrNotFound) {
		return nil, err
	}
	m := &Manifest{Version: ManifestVersion, Server: Definition{ID: s.ID, Name: s.Name, Project: s.TenantID,
		Flavor:  Flavor{Name: s.Flavor.Name, VCPUs: s.Flavor.VCPUs, RAM: s.Flavor.RAM, Disk: s.Flavor.Disk},
		ImageID: s.ImageID(), KeyName: s.KeyName, Metadata: s.Metadata, AvailabilityZone: s.AvailabilityZone,
		RootDevice: s.RootDevice}}
	for _, g := range s.SecurityGroups {
		m.Server.SecurityGroups = append(m.Server.SecurityGroups, g.Name)
	}
	for net, addrs := range s.Addresses {
		for _, a := range addrs {
			if m.Server.Addresses == nil {
				m.Server.Addresses = map[string][]string{}
			}
			m.Server.Addresses[net] = append(m.Server.Addresses[net], a.Addr)
		}
	}
	for _, i := range ifs {
		pt := Port{PortID: i.PortID, Network: i.NetID, MAC: i.MACAddr}
		for _, ip := range i.FixedIPs {
			pt.FixedIPs = append(pt.FixedIPs, ip.IPAddress)
		}
		m.Server.Ports = append(m.Server.Ports, pt)
	}
	bootFromVolume := s.ImageID() == ""
	for i, a := range as {
		v := VolumeBackup{VolumeID: a.VolumeID, Device: a.Device, BootIndex: -1}
		if i == 0 && bootFromVolume {
			v.BootIndex = 0
		}
		if a.DeleteOnTermination != nil {
			v.DeleteOnTermination = *a.DeleteOnTermination
		}
		m.Volumes = append(m.Volumes, v)
	}
	return m, nil
}

// ephemeral backs up the server's RBD ephemeral disk, if Nova keeps one
// (POOL/<server id>_disk); nil when there is none. The checkpoint
// carries the Cinder plugin's tags, so that it restores into a new
// volume of the flavor's disk size.
func (p *Plugin) ephemeral(ctx context.Context, repo *dedup.Repository, project string, s *openstack.Server, m *Manifest,
	tags map[string]string, parent *dedup.Checkpoint) (*DiskBackup, *dedup.Checkpoint, error) {
	image := s.ID + "_disk"
	ok, err := p.volumes.ImageExists(ctx, p.pool, image)
	if err != nil || !ok {
		return nil, nil, err
	}
	t := make(map[string]string, len(tags)+5)
	for k, v := range tags {
		t[k] = v
	}
	t[cinder.TagProject], t[cinder.TagVolume], t[cinder.TagVolumeName] = project, image, s.Name+"-disk"
	t[cinder.TagBootable], t[cinder.TagMetadata] = "true", "{}"
	if m.Server.Flavor.Disk > 0 {
		t[cinder.TagSizeGiB] = strconv.Itoa(m.Server.Flavor.Disk)
	}
	cp, err := p.volumes.ReadImage(ctx, repo, p.pool, image, parent, t)
	if err != nil {
		return nil, nil, fmt.Errorf("ephemeral disk %s/%s: %w", p.pool, image, err)
	}
	return &DiskBackup{Pool: p.pool, Image: image, BackupID: cp.ID}, cp, nil
}

// prevBackups are the checkpoints of the server's previous protection,
// each disk's parent.
type prevBackups struct {
	repo    *dedup.Repository
	ctx     context.Context
	volumes map[string]string
	eph     string
}

// previous reads the previous manifest; a missing or unreadable one
// means whole reads (the Cinder plugin still deduplicates).
func (p *Plugin) previous(ctx context.Context, repo *dedup.Repository, id, server string) prevBackups {
	pb := prevBackups{repo: repo, ctx: ctx, volumes: map[string]string{}}
	if id == "" {
		return pb
	}
	m, err := loadManifest(ctx, repo, id)
	if err != nil || m.Server.ID != server {
		if !errors.Is(err, dedup.ErrCheckpointNotFound) {
			p.log.Warn("the previous server checkpoint is unusable; every disk is read whole", "type", Type, "checkpoint", id, "err", err)
		}
		return pb
	}
	for _, v := range m.Volumes {
		pb.volumes[v.VolumeID] = v.BackupID
	}
	if m.Ephemeral != nil {
		pb.eph = m.Ephemeral.BackupID
	}
	return pb
}

func (pb prevBackups) volume(id string) string { return pb.volumes[id] }

func (pb prevBackups) disk() *dedup.Checkpoint {
	if pb.eph == "" {
		return nil
	}
	cp, _, err := pb.repo.LoadCheckpoint(pb.ctx, pb.eph)
	if err != nil {
		return nil
	}
	return cp
}
