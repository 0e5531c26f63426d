//go:build ceph

package nova

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"cairn/dedup"
	"cairn/internal/keylock"
	"cairn/internal/openstack"
	"cairn/plugins"
	"cairn/plugins/cinder"
)

// Types of the instances a server depends on.
const (
	VolumeType  = cinder.Type
	ImageType   = "OS::Glance::Image"
	NetworkType = "OS::Neutron::Network"
)

// KindServer is the journal entry of a restore: recorded before its
// first volume is created; Name is the new server's name, VolumeID the
// restored volumes so far (comma-separated).
const KindServer = "nova.restore"

// KindGroup is the journal entry of a protection's RBD group, recorded
// before it is created; Name is "POOL/GROUP".
const KindGroup = "nova.group"

// DefaultEphemeralPool is Nova's images_rbd_pool in most deployments.
const DefaultEphemeralPool = "vms"

// Config configures the plugin.
type Config struct {
	Cloud *openstack.Cloud
	// Volumes is the Cinder plugin: it protects and restores the
	// server's volumes.
	Volumes *cinder.Plugin
	// Journal records what a restore creates before it does (the Cinder
	// plugin's journal: entries of KindServer are this plugin's).
	Journal cinder.Journal
	// EphemeralPool is where Nova keeps RBD-backed ephemeral disks
	// (default DefaultEphemeralPool).
	EphemeralPool string
	Log           *slog.Logger
	Now           func() time.Time
}

// Plugin protects Nova servers. Safe for concurrent use.
type Plugin struct {
	cloud   *openstack.Cloud
	volumes *cinder.Plugin
	journal cinder.Journal
	pool    string
	log     *slog.Logger
	now     func() time.Time
	// locks serialise protections of one server: two would each rotate
	// the other's volume snapshots.
	locks keylock.Map
}

var (
	_ plugins.ProtectionPlugin   = (*Plugin)(nil)
	_ plugins.DependencyResolver = (*Plugin)(nil)
)

// New returns the plugin; it connects to nothing yet.
func New(cfg Config) (*Plugin, error) {
	if cfg.Cloud == nil || cfg.Volumes == nil || cfg.Journal == nil {
		return nil, errors.New("nova plugin: a cloud, the Cinder plugin and a journal are required")
	}
	p := &Plugin{cloud: cfg.Cloud, volumes: cfg.Volumes, journal: cfg.Journal, pool: cfg.EphemeralPool, log: cfg.Log, now: cfg.Now}
	if p.pool == "" {
		p.pool = DefaultEphemeralPool
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p, nil
}

// Type implements plugins.ProtectionPlugin.
func (p *Plugin) Type() string { return Type }

// Dependencies implements plugins.ProtectionPlugin.
func (p *Plugin) Dependencies() []string { return []string{ImageType, NetworkType} }

// Schemas implements plugins.ProtectionPlugin.
func (p *Plugin) Schemas() plugins.Schemas {
	return plugins.Schemas{
		Options: map[string]any{"type": "object", "title": "Nova server protection options",
			"properties": map[string]any{
				"sequential": map[string]any{"type": "boolean",
					"title": "Snapshot the volumes one after another through Cinder instead of at one point in time (RBD group snapshot)"},
			}, "additionalProperties": false},
		Restore: map[string]any{"type": "object", "title": "Nova server restore parameters",
			"properties": map[string]any{
				"restore_name": map[string]any{"type": "string",
					"title": "Name of the new server (default: the original's name with \"-restore-\" and the backup's ID)"},
				"flavor": map[string]any{"type": "string",
					"title": "Flavor name for the new server (default: the saved flavor's name)"},
			}},
		SavingInfo: plugins.SavingInfoSchema("Saved Nova server"),
	}
}

func (p *Plugin) nova(ctx context.Context, project string) (*openstack.Nova, error) {
	if project == "" {
		return nil, fmt.Errorf("nova plugin: no project: %w", plugins.ErrInvalidParameter)
	}
	return p.cloud.Nova(ctx, project)
}

// server returns one of project's servers. Nova shows a user with an
// admin role any project's server by ID, even on a token scoped to
// another project: the server's project must match too.
func server(ctx context.Context, n *openstack.Nova, project, id string) (*openstack.Server, error) {
	s, err := n.Server(ctx, id)
	if errors.Is(err, openstack.ErrNotFound) || err == nil && s.TenantID != project {
		return nil, fmt.Errorf("%s %s in project %s: %w", Type, id, project, plugins.ErrInstanceNotFound)
	}
	return s, err
}

func resource(s *openstack.Server) plugins.Resource {
	name := s.Name
	if name == "" {
		name = s.ID
	}
	return plugins.Resource{ID: s.ID, Type: Type, Name: name, ExtraInfo: map[string]any{
		"status": s.Status, "flavor": s.Flavor.Name, "availability_zone": s.AvailabilityZone,
		"image_id": s.ImageID(), "volumes": len(s.Volumes),
	}}
}

// Instances implements plugins.ProtectionPlugin: the project's servers
// (listing is scoped to the token's project even for an admin; each is
// checked again all the same).
func (p *Plugin) Instances(ctx context.Context, project string) ([]plugins.Resource, error) {
	n, err := p.nova(ctx, project)
	if err != nil {
		return nil, err
	}
	ss, err := n.Servers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]plugins.Resource, 0, len(ss))
	for i := range ss {
		if ss[i].TenantID == project {
			out = append(out, resource(&ss[i]))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Instance implements plugins.ProtectionPlugin.
func (p *Plugin) Instance(ctx context.Context, project, id string) (plugins.Resource, error) {
	n, err := p.nova(ctx, project)
	if err != nil {
		return plugins.Resource{}, err
	}
	s, err := server(ctx, n, project, id)
	if err != nil {
		return plugins.Resource{}, err
	}
	return resource(s), nil
}

// DependentResources implements plugins.DependencyResolver: its image
// when it booted from one, and the networks of its ports. Not its
// volumes: the server protects them itself, at one point in time, in its
// own backup (the manifest names each volume's); pulled in beside it they
// would be read twice, and each protection's Cinder snapshot rotation
// would delete the other's diff base.
func (p *Plugin) DependentResources(ctx context.Context, project string, r plugins.Resource) ([]plugins.Resource, error) {
	n, err := p.nova(ctx, project)
	if err != nil {
		return nil, err
	}
	s, err := server(ctx, n, project, r.ID)
	if err != nil {
		return nil, err
	}
	out := []plugins.Resource{}
	if id := s.ImageID(); id != "" {
		out = append(out, plugins.Resource{ID: id, Type: ImageType, Name: id})
	}
	ifs, err := n.Interfaces(ctx, s.ID)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, i := range ifs {
		if i.NetID != "" && !seen[i.NetID] {
			seen[i.NetID] = true
			out = append(out, plugins.Resource{ID: i.NetID, Type: NetworkType, Name: i.NetID})
		}
	}
	return out, nil
}

// Verify implements plugins.ProtectionPlugin: the manifest and every
// volume's backup are read back.
func (p *Plugin) Verify(ctx context.Context, repo *dedup.Repository, backupID string) error {
	m, err := loadManifest(ctx, repo, backupID)
	if err != nil {
		return err
	}
	for _, id := range m.backupIDs() {
		if err := p.volumes.Verify(ctx, repo, id); err != nil {
			return fmt.Errorf("server backup %s: %w", backupID, err)
		}
	}
	return nil
}

// Delete implements plugins.ProtectionPlugin: the volumes' backups go
// through the Cinder plugin (which deletes their snapshots through
// Cinder), then the manifest.
func (p *Plugin) Delete(ctx context.Context, repo *dedup.Repository, backupID string) error {
	m, err := loadManifest(ctx, repo, backupID)
	if errors.Is(err, dedup.ErrCheckpointNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, id := range m.backupIDs() {
		if err := p.volumes.Delete(ctx, repo, id); err != nil {
			return fmt.Errorf("delete server backup %s: %w", backupID, err)
		}
	}
	return plugins.DeleteBackup(ctx, repo, backupID)
}

// record journals an entry before what it names is created.
func (p *Plugin) record(ctx context.Context, e cinder.Entry) (cinder.Entry, error) {
	if e.ID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		e.ID, e.Created = hex.EncodeToString(b[:]), p.now().UTC()
	}
	if e.Kind == "" {
		e.Kind = KindServer
	}
	if err := p.journal.Record(ctx, e); err != nil {
		return e, fmt.Errorf("journal the restore of server %s: %w", e.Name, err)
	}
	return e, nil
}

func (p *Plugin) forget(ctx context.Context, e cinder.Entry) {
	if err := p.journal.Forget(context.WithoutCancel(ctx), e.ID); err != nil {
		p.log.Warn("could not drop a journal entry; the next start cleans up after it", "type", Type, "entry", e.ID, "err", err)
	}
}
