package neutron

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"

	"cairn/backup"
	"cairn/dedup"
	"cairn/internal/openstack"
	"cairn/plugins"
)

// Config configures the plugin.
type Config struct {
	// Cloud reaches Neutron, one project-scoped client per project.
	Cloud *openstack.Cloud
	// Log receives what restores did (default slog.Default()).
	Log *slog.Logger
}

// Plugin protects Neutron networks. Safe for concurrent use.
type Plugin struct {
	cloud *openstack.Cloud
	log   *slog.Logger
}

var _ plugins.ProtectionPlugin = (*Plugin)(nil)

// New returns the plugin; it connects to nothing yet.
func New(cfg Config) (*Plugin, error) {
	if cfg.Cloud == nil {
		return nil, errors.New("neutron plugin: a cloud is required")
	}
	p := &Plugin{cloud: cfg.Cloud, log: cfg.Log}
	if p.log == nil {
		p.log = slog.Default()
	}
	return p, nil
}

// Type implements plugins.ProtectionPlugin.
func (p *Plugin) Type() string { return Type }

// Dependencies implements plugins.ProtectionPlugin: networks depend on
// nothing (servers depend on their networks).
func (p *Plugin) Dependencies() []string { return nil }

// Schemas implements plugins.ProtectionPlugin.
func (p *Plugin) Schemas() plugins.Schemas {
	return plugins.Schemas{
		Options: map[string]any{"type": "object", "title": "Neutron network protection options",
			"properties": map[string]any{}, "additionalProperties": false},
		Restore: map[string]any{"type": "object", "title": "Neutron network restore parameters",
			"properties": map[string]any{}},
		SavingInfo: plugins.SavingInfoSchema("Saved Neutron network"),
	}
}

func (p *Plugin) neutron(ctx context.Context, project string) (*openstack.Neutron, error) {
	if project == "" {
		return nil, fmt.Errorf("neutron plugin: no project: %w", plugins.ErrInvalidParameter)
	}
	return p.cloud.Neutron(ctx, project)
}

func resource(n *openstack.Network) plugins.Resource {
	name := n.Name
	if name == "" {
		name = n.ID
	}
	return plugins.Resource{ID: n.ID, Type: Type, Name: name, ExtraInfo: map[string]any{
		"status": n.Status, "subnets": len(n.Subnets), "shared": n.Shared}}
}

// Instances implements plugins.ProtectionPlugin: the networks the
// project owns (shared and external networks of others are not listed).
func (p *Plugin) Instances(ctx context.Context, project string) ([]plugins.Resource, error) {
	n, err := p.neutron(ctx, project)
	if err != nil {
		return nil, err
	}
	nets, err := n.Networks(ctx, project)
	if err != nil {
		return nil, err
	}
	out := make([]plugins.Resource, 0, len(nets))
	for i := range nets {
		if nets[i].ProjectID == project {
			out = append(out, resource(&nets[i]))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Instance implements plugins.ProtectionPlugin.
func (p *Plugin) Instance(ctx context.Context, project, id string) (plugins.Resource, error) {
	net, err := p.network(ctx, project, id)
	if err != nil {
		return plugins.Resource{}, err
	}
	return resource(net), nil
}

// network returns one of project's own networks or ErrInstanceNotFound.
func (p *Plugin) network(ctx context.Context, project, id string) (*openstack.Network, error) {
	n, err := p.neutron(ctx, project)
	if err != nil {
		return nil, err
	}
	net, err := n.Network(ctx, id)
	if errors.Is(err, openstack.ErrNotFound) || err == nil && net.ProjectID != project {
		return nil, fmt.Errorf("%s %s in project %s: %w", Type, id, project, plugins.ErrInstanceNotFound)
	}
	return net, err
}

// docSource is a document as a backup source.
type docSource struct {
	*bytes.Reader
	name string
}

func (s docSource) Name() string { return s.name }

// Protect implements plugins.ProtectionPlugin: the network's document is
// the checkpoint's data.
func (p *Plugin) Protect(ctx context.Context, repo *dedup.Repository, req plugins.ProtectRequest) (*plugins.Backup, error) {
	if _, err := plugins.NormalizeOptions(p.Schemas().Options, req.Options); err != nil {
		return nil, err
	}
	net, err := p.network(ctx, req.Project, req.Resource.ID)
	if err != nil {
		return nil, err
	}
	n, err := p.neutron(ctx, req.Project)
	if err != nil {
		return nil, err
	}
	doc, err := collect(ctx, n, net)
	if err != nil {
		return nil, fmt.Errorf("protect network %s: %w", net.ID, err)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("protect network %s: %w", net.ID, err)
	}
	tags := make(map[string]string, len(req.Tags)+3)
	for k, v := range req.Tags {
		tags[k] = v
	}
	tags[TagProject], tags[TagNetwork], tags[TagNetworkName] = req.Project, net.ID, net.Name
	src := docSource{Reader: bytes.NewReader(b), name: "neutron network " + net.ID}
	// A document, not a device: no snapshot or extents, so no backup.Run;
	// a previous checkpoint deleted meanwhile only speeded up dedup.
	prev, _, err := backup.Previous(ctx, repo, req.Previous)
	if err != nil {
		return nil, fmt.Errorf("protect network %s: %w", net.ID, err)
	}
	o := dedup.BackupOptions{Tags: tags, Workers: 1}
	if prev != nil {
		o.Parent = prev.ID
	}
	cp, err := repo.Backup(ctx, src, o)
	if err != nil {
		return nil, fmt.Errorf("protect network %s: %w", net.ID, err)
	}
	return &plugins.Backup{ID: cp.ID, Stats: cp.Stats, Size: cp.Size}, nil
}

// ReadDocument reads a backup's document.
func ReadDocument(ctx context.Context, repo *dedup.Repository, backupID string) (*Document, error) {
	cp, _, err := repo.LoadCheckpoint(ctx, backupID)
	if err != nil {
		return nil, err
	}
	if cp.Tags[TagNetwork] == "" {
		return nil, fmt.Errorf("backup %s is not of a Neutron network: %w", backupID, plugins.ErrInvalidParameter)
	}
	if cp.Size > maxDocument {
		return nil, fmt.Errorf("backup %s: a network document of %d bytes (at most %d)", backupID, cp.Size, maxDocument)
	}
	rd, err := repo.OpenCheckpoint(ctx, backupID)
	if err != nil {
		return nil, err
	}
	b := make([]byte, cp.Size)
	if _, err := rd.ReadAtContext(ctx, b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("backup %s: %w", backupID, err)
	}
	d, err := DecodeDocument(b)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", backupID, err)
	}
	return d, nil
}

// Restore implements plugins.ProtectionPlugin: it recreates what of the
// saved network is missing in the project (see Restore of Report) and
// returns the network's ID, new or found.
func (p *Plugin) Restore(ctx context.Context, repo *dedup.Repository, req plugins.RestoreRequest) (string, error) {
	if req.Target != "" {
		return "", fmt.Errorf("restore target %q: a network is restored into its project: %w", req.Target, plugins.ErrInvalidParameter)
	}
	if _, err := plugins.NormalizeOptions(p.Schemas().Restore, req.Parameters); err != nil {
		return "", err
	}
	d, err := ReadDocument(ctx, repo, req.BackupID)
	if err != nil {
		return "", err
	}
	n, err := p.neutron(ctx, req.Project)
	if err != nil {
		return "", err
	}
	rep, err := Restore(ctx, n, req.Project, d)
	p.log.Info("network restore", "type", Type, "backup", req.BackupID, "network", rep.NetworkID,
		"created", rep.Created, "found", rep.Found, "err", err)
	if err != nil {
		return "", fmt.Errorf("restore network %s: %w", d.Network.ID, err)
	}
	return rep.NetworkID, nil
}

// Delete implements plugins.ProtectionPlugin.
func (p *Plugin) Delete(ctx context.Context, repo *dedup.Repository, backupID string) error {
	return plugins.DeleteBackup(ctx, repo, backupID)
}

// Verify implements plugins.ProtectionPlugin: the document is read back
// and decoded.
func (p *Plugin) Verify(ctx context.Context, repo *dedup.Repository, backupID string) error {
	if err := plugins.ReadBack(ctx, repo, backupID); err != nil {
		return err
	}
	_, err := ReadDocument(ctx, repo, backupID)
	return err
}
