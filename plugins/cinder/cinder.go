//go:build ceph

package cinder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"time"

	cephrbd "cairn/blockdev/rbd"
	"cairn/blockdev/serial"
	"cairn/dedup"
	"cairn/internal/keylock"
	"cairn/internal/openstack"
	"cairn/plugins"
)

// Config configures the plugin.
type Config struct {
	// Cloud reaches Cinder, one project-scoped client per project.
	Cloud *openstack.Cloud
	// Ceph reaches the cluster of Cinder's RBD backend.
	Ceph cephrbd.ConnOptions
	// Journal records what is created in the cloud before it is.
	Journal Journal
	// ConnectorHost is the host name of cairn's attachments (default
	// openstack.ConnectorHost()).
	ConnectorHost string
	// Log receives warnings (default slog.Default()).
	Log *slog.Logger
	// Now is the clock of journal entries and snapshot names (default
	// time.Now).
	Now func() time.Time
	// ServerID is the appliance's own Nova server: the attach path
	// attaches volumes to it. "" turns that path off.
	ServerID string
	// Devices finds the device of a volume attached to the appliance
	// (default serial.Dir{}: /dev/disk/by-id).
	Devices serial.Finder
	// ReadPath is the read path of protections and restores that name
	// none: "" (direct for RBD volumes, attach for others), ReadDirect
	// or ReadAttach.
	ReadPath string
}

// Plugin protects Cinder volumes, on RBD directly and on any backend
// through the appliance's attachment. Safe for concurrent use.
type Plugin struct {
	cloud   *openstack.Cloud
	journal Journal
	host    string
	log     *slog.Logger
	rbd     *rbdIO
	now     func() time.Time
	// server, devices and readPath are Config's ServerID, Devices and
	// ReadPath.
	server   string
	devices  serial.Finder
	readPath string
	// locks serialise the protections and deletions of one volume: each
	// rotates the other's snapshot otherwise.
	locks keylock.Map
}

var _ plugins.ProtectionPlugin = (*Plugin)(nil)

// New returns the plugin; it connects to nothing yet.
func New(cfg Config) (*Plugin, error) {
	if cfg.Cloud == nil || cfg.Journal == nil {
		return nil, errors.New("cinder plugin: a cloud and a journal are required")
	}
	if _, err := ChoosePath(cfg.ReadPath, "", true, true); err != nil {
		return nil, fmt.Errorf("cinder plugin: %w", err)
	}
	p := &Plugin{cloud: cfg.Cloud, journal: cfg.Journal, host: cfg.ConnectorHost, log: cfg.Log, rbd: newRBDIO(cfg.Ceph),
		server: cfg.ServerID, devices: cfg.Devices, readPath: cfg.ReadPath}
	if p.devices == nil {
		p.devices = serial.Dir{}
	}
	if p.host == "" {
		p.host = openstack.ConnectorHost()
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.now = cfg.Now; p.now == nil {
		p.now = time.Now
	}
	return p, nil
}

// Close disconnects from Ceph.
func (p *Plugin) Close() error { p.rbd.close(); return nil }

// Type implements plugins.ProtectionPlugin.
func (p *Plugin) Type() string { return Type }

// Dependencies implements plugins.ProtectionPlugin: volumes are leaves.
func (p *Plugin) Dependencies() []string { return nil }

// Schemas implements plugins.ProtectionPlugin.
func (p *Plugin) Schemas() plugins.Schemas {
	return plugins.Schemas{
		Options: map[string]any{"type": "object", "title": "Cinder volume protection options",
			"properties": map[string]any{"read_path": readPathSchema("read")}, "additionalProperties": false},
		Restore: map[string]any{"type": "object", "title": "Cinder volume restore parameters",
			"properties": map[string]any{
				"restore_name": map[string]any{"type": "string",
					"title": "Name of the new volume (default: the original's name with \"-restore-\" and the backup's ID)"},
				"overwrite_original": map[string]any{"type": "boolean",
					"title": "Write over the original volume, which must be detached (status available), instead of a new volume"},
				"read_path": readPathSchema("write"),
			}},
		SavingInfo: plugins.SavingInfoSchema("Saved Cinder volume"),
	}
}

// cinder is project's Cinder client.
func (p *Plugin) cinder(ctx context.Context, project string) (*openstack.Cinder, error) {
	if project == "" {
		return nil, fmt.Errorf("cinder plugin: no project: %w", plugins.ErrInvalidParameter)
	}
	return p.cloud.Cinder(ctx, project)
}

func resource(v *openstack.Volume) plugins.Resource {
	name := v.Name
	if name == "" {
		name = v.ID
	}
	return plugins.Resource{ID: v.ID, Type: Type, Name: name, ExtraInfo: map[string]any{
		"size_gib": v.Size, "status": v.Status, "volume_type": v.VolumeType,
		"availability_zone": v.AvailabilityZone, "bootable": v.Bootable,
	}}
}

// Instances implements plugins.ProtectionPlugin: the project's volumes,
// as Cinder shows them to a token scoped to the project.
func (p *Plugin) Instances(ctx context.Context, project string) ([]plugins.Resource, error) {
	c, err := p.cinder(ctx, project)
	if err != nil {
		return nil, err
	}
	vs, err := c.Volumes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]plugins.Resource, 0, len(vs))
	for i := range vs {
		out = append(out, resource(&vs[i]))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Instance implements plugins.ProtectionPlugin.
func (p *Plugin) Instance(ctx context.Context, project, id string) (plugins.Resource, error) {
	c, err := p.cinder(ctx, project)
	if err != nil {
		return plugins.Resource{}, err
	}
	v, err := volume(ctx, c, project, id)
	if err != nil {
		return plugins.Resource{}, err
	}
	return resource(v), nil
}

// volume returns one of project's volumes. Cinder shows a user with an
// admin role any project's volume by ID, even on a token scoped to
// another project; the volume's project must match too.
func volume(ctx context.Context, c *openstack.Cinder, project, id string) (*openstack.Volume, error) {
	v, err := c.Volume(ctx, id)
	if errors.Is(err, openstack.ErrNotFound) || err == nil && v.TenantID != "" && v.TenantID != project {
		return nil, fmt.Errorf("%s %s in project %s: %w", Type, id, project, plugins.ErrInstanceNotFound)
	}
	return v, err
}

// Verify implements plugins.ProtectionPlugin: every block is read back.
func (p *Plugin) Verify(ctx context.Context, repo *dedup.Repository, backupID string) error {
	return plugins.ReadBack(ctx, repo, backupID)
}

func readPathSchema(verb string) map[string]any {
	return map[string]any{"type": "string", "enum": []string{ReadDirect, ReadAttach},
		"title": "How to " + verb + " the volume: \"direct\" (its RBD image in Ceph) or \"attach\" (a volume attached to the appliance's own server through Nova); " +
			"default: the appliance's cloud.read_path, else direct for RBD volumes and attach for others"}
}

// record journals an entry before the object it names is created.
func (p *Plugin) record(ctx context.Context, kind, project, volume, name string) (Entry, error) {
	return p.recordEntry(ctx, Entry{Kind: kind, Project: project, VolumeID: volume, Name: name})
}

// recordEntry journals e, with a new ID and the time, before the object
// it names is created.
func (p *Plugin) recordEntry(ctx context.Context, e Entry) (Entry, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	e.ID, e.Created = hex.EncodeToString(b[:]), p.now().UTC()
	if err := p.journal.Record(ctx, e); err != nil {
		return e, fmt.Errorf("journal %s of volume %s: %w", e.Kind, e.VolumeID, err)
	}
	return e, nil
}

// forget drops a journal entry; a failure only leaves work for Recover.
func (p *Plugin) forget(ctx context.Context, e Entry) {
	if err := p.journal.Forget(context.WithoutCancel(ctx), e.ID); err != nil {
		p.log.Warn("could not drop a journal entry; the next start cleans up after it", "type", Type, "entry", e.ID, "err", err)
	}
}

// isRotation reports whether s is a cairn snapshot of repository repoID.
func isRotation(s *openstack.Snapshot, repoID string) bool {
	return s.Metadata[MetaManaged] == "true" && s.Metadata[MetaRepository] == repoID
}

func itoa(n int) string { return strconv.Itoa(n) }
