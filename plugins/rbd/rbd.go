//go:build ceph

package rbd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"cairn/backup"
	cephrbd "cairn/blockdev/rbd"
	"cairn/dedup"
	"cairn/internal/keylock"
	"cairn/plugins"
)

// Config configures the plugin.
type Config struct {
	// Pools are the locations whose images are protectable: "POOL" or
	// "POOL/NAMESPACE", each part may contain plugins.ProjectPlaceholder.
	// Restores create images only in these.
	Pools []string
	// Conn says how to reach the cluster.
	Conn cephrbd.ConnOptions
	// VerifySample is the fraction of blocks an incremental backup
	// re-reads to check the diff (default backup.DefaultVerifySample;
	// negative disables).
	VerifySample float64
	// Log receives the warnings of backups and restores (default
	// slog.Default()).
	Log *slog.Logger
}

// Plugin protects RBD images. It connects to the cluster on first use and
// again after a failed attempt; Close disconnects.
type Plugin struct {
	locs   []location
	conn   cephrbd.ConnOptions
	sample float64
	log    *slog.Logger
	report backup.Reporter

	// sem guards cl: a connection attempt may take long (librados waits
	// for the monitors), and waiters must still see their ctx.
	sem   chan struct{}
	cl    *cephrbd.Cluster
	locks keylock.Map
}

var _ plugins.ProtectionPlugin = (*Plugin)(nil)

// New returns a plugin for the images in cfg.Pools. It does not connect.
func New(cfg Config) (*Plugin, error) {
	if len(cfg.Pools) == 0 {
		return nil, errors.New("RBD plugin: no pools configured")
	}
	p := &Plugin{conn: cfg.Conn, sample: cfg.VerifySample, log: cfg.Log, sem: make(chan struct{}, 1)}
	for _, s := range cfg.Pools {
		l, err := parseLocation(s)
		if err != nil {
			return nil, fmt.Errorf("RBD plugin: %w", err)
		}
		p.locs = append(p.locs, l)
	}
	switch {
	case p.sample == 0:
		p.sample = backup.DefaultVerifySample
	case p.sample < 0:
		p.sample = 0
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	p.report = backup.Reporter{Warnf: func(format string, args ...any) {
		p.log.Warn(fmt.Sprintf(format, args...), "type", Type)
	}}
	return p, nil
}

// spec names image in l.
func (l location) spec(image string) cephrbd.Spec {
	return cephrbd.Spec{Pool: l.pool, Namespace: l.namespace, Image: image}
}

// nameOf is the instance name of an image: "POOL/IMAGE" or
// "POOL/NAMESPACE/IMAGE" (a spec without "rbd:").
func nameOf(s cephrbd.Spec) string {
	return strings.TrimPrefix(s.ImageName(), cephrbd.Prefix)
}

// cluster returns the connection, connecting first if needed.
func (p *Plugin) cluster(ctx context.Context) (*cephrbd.Cluster, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-p.sem }()
	if p.cl == nil {
		cl, err := cephrbd.Connect(ctx, p.conn)
		if err != nil {
			return nil, fmt.Errorf("RBD plugin: %w", err)
		}
		p.cl = cl
	}
	return p.cl, nil
}

// Close disconnects from the cluster. Call it when no method runs any
// more.
func (p *Plugin) Close() error {
	p.sem <- struct{}{}
	defer func() { <-p.sem }()
	if p.cl != nil {
		p.cl.Close()
		p.cl = nil
	}
	return nil
}

// locations are project's pools and namespaces.
func (p *Plugin) locations(project string) ([]location, error) {
	out := make([]location, 0, len(p.locs))
	for _, l := range p.locs {
		e, err := l.forProject(project)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Type implements plugins.ProtectionPlugin.
func (p *Plugin) Type() string { return Type }

// Dependencies implements plugins.ProtectionPlugin: images are leaves.
func (p *Plugin) Dependencies() []string { return nil }

// Schemas implements plugins.ProtectionPlugin.
func (p *Plugin) Schemas() plugins.Schemas {
	return plugins.Schemas{
		Options: map[string]any{
			"type": "object", "title": "RBD image protection options",
			"properties": map[string]any{
				"verify_sample": map[string]any{"type": "number", "minimum": 0.0, "maximum": 1.0,
					"title": "Fraction of the blocks the RBD diff calls unchanged to re-read and compare (0 disables; default 0.01)"},
				"full_every": map[string]any{"type": "integer", "minimum": 0.0,
					"title": "Read the whole image on every Nth protection instead of trusting the diff (0: never)"},
			},
			"additionalProperties": false,
		},
		Restore: map[string]any{
			"type": "object", "title": "RBD image restore parameters",
			"properties": map[string]any{
				"restore_name": map[string]any{"type": "string",
					"title": "Name of the new image: IMAGE (beside the original), POOL/IMAGE or POOL/NAMESPACE/IMAGE (one of the project's pools); must not exist"},
			},
		},
		SavingInfo: plugins.SavingInfoSchema("Saved RBD image"),
	}
}

// image is one image found in a location.
type image struct {
	loc  location
	name string
	im   *cephrbd.Image
}

func (i image) id() string { return InstanceID(i.loc.pool, i.loc.namespace, i.im.ID()) }

func (i image) resource() plugins.Resource {
	s := i.im.Spec()
	extra := map[string]any{"pool": s.Pool, "image": s.Image, "size": i.im.Size()}
	if s.Namespace != "" {
		extra["namespace"] = s.Namespace
	}
	return plugins.Resource{ID: i.id(), Type: Type, Name: nameOf(s), ExtraInfo: extra}
}

// openConcurrency bounds the image opens of a scan in flight: an open is
// a few round trips to the OSDs, so a pool of thousands of images is
// listed in the time of a few hundred opens.
const openConcurrency = 16

// each calls fn for every image in locs (partial images excepted), one
// call at a time, until fn returns true, and returns that image, still
// open; the others are open only during the call. Images are opened
// openConcurrency at a time, so fn sees them in no particular order.
// Missing pools and images that vanish while listed are skipped.
func (p *Plugin) each(ctx context.Context, cl *cephrbd.Cluster, locs []location, fn func(image) bool) (image, bool, error) {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(openConcurrency)
	var mu sync.Mutex
	var found image
	var ok bool
	done := func() bool { mu.Lock(); defer mu.Unlock(); return ok }
scan:
	for _, l := range locs {
		names, err := cl.Images(gctx, l.spec(""))
		if errors.Is(err, cephrbd.ErrNotFound) {
			continue
		}
		if err != nil {
			stop()
			_ = g.Wait()
			return image{}, false, err
		}
		for _, n := range names {
			if isPartialName(n) {
				continue
			}
			if done() || gctx.Err() != nil {
				break scan
			}
			g.Go(func() error {
				if gctx.Err() != nil {
					return nil
				}
				im, err := cl.OpenImage(gctx, l.spec(n))
				if errors.Is(err, cephrbd.ErrNotFound) {
					return nil
				}
				if err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				if !ok && fn(image{loc: l, name: n, im: im}) {
					found, ok = image{loc: l, name: n, im: im}, true
					stop() // the rest of the scan is moot
					return nil
				}
				_ = im.Close()
				return nil
			})
		}
	}
	err := g.Wait()
	if ok {
		return found, true, nil
	}
	return image{}, false, err
}

// Instances implements plugins.ProtectionPlugin.
func (p *Plugin) Instances(ctx context.Context, project string) ([]plugins.Resource, error) {
	locs, err := p.locations(project)
	if err != nil {
		return nil, err
	}
	cl, err := p.cluster(ctx)
	if err != nil {
		return nil, err
	}
	out := []plugins.Resource{}
	_, _, err = p.each(ctx, cl, locs, func(i image) bool {
		out = append(out, i.resource())
		return false
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Instance implements plugins.ProtectionPlugin.
func (p *Plugin) Instance(ctx context.Context, project, id string) (plugins.Resource, error) {
	im, err := p.open(ctx, project, plugins.Resource{ID: id})
	if err != nil {
		return plugins.Resource{}, err
	}
	defer im.im.Close()
	return im.resource(), nil
}

// open finds and opens one of project's images by instance ID: under
// res.Name first (one open), then, for an image renamed since, by a scan
// of the project's locations. The caller closes the image.
func (p *Plugin) open(ctx context.Context, project string, res plugins.Resource) (image, error) {
	locs, err := p.locations(project)
	if err != nil {
		return image{}, err
	}
	cl, err := p.cluster(ctx)
	if err != nil {
		return image{}, err
	}
	if spec, err := cephrbd.ParseSpec(cephrbd.Prefix + res.Name); err == nil && spec.Snap == "" {
		for _, l := range locs {
			if l.pool != spec.Pool || l.namespace != spec.Namespace {
				continue
			}
			im, err := cl.OpenImage(ctx, spec)
			if err != nil && !errors.Is(err, cephrbd.ErrNotFound) {
				return image{}, err
			}
			if err == nil {
				i := image{loc: l, name: spec.Image, im: im}
				if i.id() == res.ID {
					return i, nil
				}
				_ = im.Close()
			}
			break
		}
	}
	found, ok, err := p.each(ctx, cl, locs, func(i image) bool { return i.id() == res.ID })
	if err != nil {
		return image{}, err
	}
	if !ok {
		return image{}, fmt.Errorf("%s %s: %w", Type, res.ID, plugins.ErrInstanceNotFound)
	}
	return found, nil
}

// lockImage serialises the backups and snapshot removals of one image.
func (p *Plugin) lockImage(ctx context.Context, s cephrbd.Spec, imageID string) (func(), error) {
	return p.locks.Lock(ctx, s.Pool+"/"+s.Namespace+"/"+imageID)
}

// Protect implements plugins.ProtectionPlugin: a new snapshot of the image,
// backed up incrementally against req.Previous's snapshot when that is
// still the image's base, else read whole (deduplicated against
// req.Previous).
func (p *Plugin) Protect(ctx context.Context, repo *dedup.Repository, req plugins.ProtectRequest) (*plugins.Backup, error) {
	img, err := p.open(ctx, req.Project, req.Resource)
	if err != nil {
		return nil, err
	}
	defer img.im.Close()
	spec := img.im.Spec()
	unlock, err := p.lockImage(ctx, spec, img.im.ID())
	if err != nil {
		return nil, err
	}
	defer unlock()
	br := backup.Options{VerifySample: p.sample, Tags: req.Tags, Report: p.report}
	opts, err := plugins.NormalizeOptions(p.Schemas().Options, req.Options)
	if err != nil {
		return nil, err
	}
	if v, ok := opts["verify_sample"].(float64); ok {
		br.VerifySample = v
	}
	if v, ok := opts["full_every"].(float64); ok {
		br.FullEvery = int(v)
	}
	if br.Parent, br.FullReason, err = backup.Previous(ctx, repo, req.Previous); err != nil {
		return nil, fmt.Errorf("back up %s: %w", spec, err)
	}
	cl, err := p.cluster(ctx)
	if err != nil {
		return nil, err
	}
	src := backup.NewImage(cl, img.im, backup.ImageSnapshots(img.im, repo.Config().ID))
	cp, err := backup.Run(ctx, repo, src, br)
	if err != nil {
		return nil, fmt.Errorf("back up %s: %w", spec, err)
	}
	return &plugins.Backup{ID: cp.ID, Stats: cp.Stats, Size: cp.Size}, nil
}

// Delete implements plugins.ProtectionPlugin. The backup's snapshot goes
// with it: only the newest backup of an image has one left (the base),
// and a later backup cannot use it without this one as its parent.
func (p *Plugin) Delete(ctx context.Context, repo *dedup.Repository, backupID string) error {
	cp, _, err := repo.LoadCheckpoint(ctx, backupID)
	if errors.Is(err, dedup.ErrCheckpointNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if cephrbd.HasManagedSnapshot(cp.Tags, repo.Config().ID) {
		if err := p.removeSnapshot(ctx, cp); err != nil {
			return fmt.Errorf("delete backup %s: %w", backupID, err)
		}
	}
	return plugins.DeleteBackup(ctx, repo, backupID)
}

// removeSnapshot removes the managed snapshot cp was made from, if it is
// still there.
func (p *Plugin) removeSnapshot(ctx context.Context, cp *dedup.Checkpoint) error {
	spec, _ := cephrbd.SnapshotOf(cp.Tags)
	unlock, err := p.lockImage(ctx, spec, cp.Tags[cephrbd.TagImageID])
	if err != nil {
		return err
	}
	defer unlock()
	cl, err := p.cluster(ctx)
	if err != nil {
		return err
	}
	if _, err := cl.CheckSnapshot(ctx, cp.ID, cp.Tags); errors.Is(err, cephrbd.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	head, err := cl.OpenImage(ctx, spec)
	if err != nil {
		return err
	}
	defer head.Close()
	return head.RemoveSnapshot(ctx, spec.Snap)
}

// Verify implements plugins.ProtectionPlugin: every block is read back.
func (p *Plugin) Verify(ctx context.Context, repo *dedup.Repository, backupID string) error {
	return plugins.ReadBack(ctx, repo, backupID)
}
