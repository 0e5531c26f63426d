//go:build ceph

package glance

import (
	"context"
	"crypto/md5" // Glance's checksum is MD5
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"time"

	cephrbd "cairn/blockdev/rbd"
	"cairn/dedup"
	"cairn/internal/openstack"
	"cairn/plugins"
)

// Config configures the plugin.
type Config struct {
	// Cloud reaches Glance, one project-scoped client per project.
	Cloud *openstack.Cloud
	// Ceph reaches the cluster of Glance's RBD store.
	Ceph cephrbd.ConnOptions
	// Journal records the images restores create, before they do.
	Journal Journal
	// SpoolDir holds an image's data while it is streamed through the
	// Glance API into the repository (default os.TempDir()); it needs
	// room for the largest such image.
	SpoolDir string
	// Log receives warnings (default slog.Default()).
	Log *slog.Logger
	// Now is the clock of journal entries (default time.Now).
	Now func() time.Time
}

// Plugin protects Glance images. Safe for concurrent use.
type Plugin struct {
	cloud   *openstack.Cloud
	journal Journal
	spool   string
	log     *slog.Logger
	rbd     *rbdIO
	now     func() time.Time
}

var _ plugins.ProtectionPlugin = (*Plugin)(nil)

// New returns the plugin; it connects to nothing yet.
func New(cfg Config) (*Plugin, error) {
	if cfg.Cloud == nil || cfg.Journal == nil {
		return nil, errors.New("glance plugin: a cloud and a journal are required")
	}
	p := &Plugin{cloud: cfg.Cloud, journal: cfg.Journal, spool: cfg.SpoolDir, log: cfg.Log, rbd: newRBDIO(cfg.Ceph), now: cfg.Now}
	if p.spool == "" {
		p.spool = os.TempDir()
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p, nil
}

// Close disconnects from Ceph.
func (p *Plugin) Close() error { p.rbd.close(); return nil }

// Type implements plugins.ProtectionPlugin.
func (p *Plugin) Type() string { return Type }

// Dependencies implements plugins.ProtectionPlugin: images depend on
// nothing (servers depend on their image).
func (p *Plugin) Dependencies() []string { return nil }

// Schemas implements plugins.ProtectionPlugin.
func (p *Plugin) Schemas() plugins.Schemas {
	return plugins.Schemas{
		Options: map[string]any{"type": "object", "title": "Glance image protection options",
			"properties": map[string]any{
				"through_api": map[string]any{"type": "boolean", "default": false,
					"title": "Read the image through the Glance API even when Glance keeps it in Ceph RBD"},
			}, "additionalProperties": false},
		Restore: map[string]any{"type": "object", "title": "Glance image restore parameters",
			"properties": map[string]any{
				"restore_name": map[string]any{"type": "string",
					"title": "Name of the new image (default: the original's name with \"-restore-\" and the backup's ID)"},
			}},
		SavingInfo: plugins.SavingInfoSchema("Saved Glance image"),
	}
}

// glance is project's Glance client.
func (p *Plugin) glance(ctx context.Context, project string) (*openstack.Glance, error) {
	if project == "" {
		return nil, fmt.Errorf("glance plugin: no project: %w", plugins.ErrInvalidParameter)
	}
	return p.cloud.Glance(ctx, project)
}

func resource(im *openstack.Image) plugins.Resource {
	name := im.Name
	if name == "" {
		name = im.ID
	}
	return plugins.Resource{ID: im.ID, Type: Type, Name: name, ExtraInfo: map[string]any{
		"status": string(im.Status), "size": im.SizeBytes, "disk_format": im.DiskFormat,
		"container_format": im.ContainerFormat, "visibility": string(im.Visibility),
	}}
}

// Instances implements plugins.ProtectionPlugin: the images the project
// owns. Public and shared images of other projects are not the
// project's to protect (nor to restore over) and are left out.
func (p *Plugin) Instances(ctx context.Context, project string) ([]plugins.Resource, error) {
	g, err := p.glance(ctx, project)
	if err != nil {
		return nil, err
	}
	ims, err := g.Images(ctx, project)
	if err != nil {
		return nil, err
	}
	out := make([]plugins.Resource, 0, len(ims))
	for i := range ims {
		if ims[i].Owner == project {
			out = append(out, resource(&ims[i]))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Instance implements plugins.ProtectionPlugin.
func (p *Plugin) Instance(ctx context.Context, project, id string) (plugins.Resource, error) {
	im, err := p.image(ctx, project, id)
	if err != nil {
		return plugins.Resource{}, err
	}
	return resource(im), nil
}

// image returns one of project's own images or ErrInstanceNotFound.
func (p *Plugin) image(ctx context.Context, project, id string) (*openstack.Image, error) {
	g, err := p.glance(ctx, project)
	if err != nil {
		return nil, err
	}
	im, err := g.Image(ctx, id)
	if errors.Is(err, openstack.ErrNotFound) || err == nil && im.Owner != project {
		return nil, fmt.Errorf("%s %s in project %s: %w", Type, id, project, plugins.ErrInstanceNotFound)
	}
	return im, err
}

// Verify implements plugins.ProtectionPlugin: the data is read back
// whole and its MD5 compared with the checksum Glance gave the image, so
// a backup that reads fine but is not the image fails too.
func (p *Plugin) Verify(ctx context.Context, repo *dedup.Repository, backupID string) error {
	cp, _, err := repo.LoadCheckpoint(ctx, backupID)
	if err != nil {
		return err
	}
	want := cp.Tags[TagChecksum]
	if want == "" {
		return plugins.ReadBack(ctx, repo, backupID)
	}
	rd, err := repo.OpenCheckpoint(ctx, backupID)
	if err != nil {
		return err
	}
	h := md5.New()
	if _, err := io.Copy(h, &seqReader{ctx: ctx, rd: rd, size: cp.Size}); err != nil {
		return fmt.Errorf("verify %s: %w", backupID, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("verify %s: data has MD5 %s, image %s had %s: %w", backupID, got, cp.Tags[TagImage], want, ErrChecksum)
	}
	return nil
}

// Delete implements plugins.ProtectionPlugin: a backup owns nothing in
// the cloud (Glance's RBD snapshot is Glance's).
func (p *Plugin) Delete(ctx context.Context, repo *dedup.Repository, backupID string) error {
	return plugins.DeleteBackup(ctx, repo, backupID)
}

// record journals an image a restore is about to create.
func (p *Plugin) record(ctx context.Context, project, image, name string) (Entry, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	e := Entry{ID: hex.EncodeToString(b[:]), Project: project, ImageID: image, Name: name, Created: p.now().UTC()}
	if err := p.journal.Record(ctx, e); err != nil {
		return e, fmt.Errorf("journal the restore of image %s: %w", image, err)
	}
	return e, nil
}

// forget drops a journal entry; a failure only leaves work for Recover.
func (p *Plugin) forget(ctx context.Context, e Entry) {
	if err := p.journal.Forget(context.WithoutCancel(ctx), e.ID); err != nil {
		p.log.Warn("could not drop a journal entry; the next start cleans up after it", "type", Type, "entry", e.ID, "err", err)
	}
}
