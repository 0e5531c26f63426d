//go:build ceph

package rbd

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"cairn/backup"
	"cairn/blockdev"
	cephrbd "cairn/blockdev/rbd"
	"cairn/dedup"
	"cairn/plugins"
)

// target resolves the image req restores to: restore_name (IMAGE beside
// the original, POOL/IMAGE or POOL/NAMESPACE/IMAGE), an rbd: target, or
// "<image>-restore-<backup>" beside the original. It must be in one of the
// project's locations.
func (p *Plugin) target(req plugins.RestoreRequest) (cephrbd.Spec, error) {
	locs, err := p.locations(req.Project)
	if err != nil {
		return cephrbd.Spec{}, err
	}
	// Beside the original when that is still one of the project's
	// locations, else in the project's first.
	home := locs[0]
	if src, err := cephrbd.ParseSpec(cephrbd.Prefix + req.Resource.Name); err == nil {
		for _, l := range locs {
			if l.pool == src.Pool && l.namespace == src.Namespace {
				home = l
			}
		}
	}
	name := req.Target
	if name != "" && !cephrbd.IsSpec(name) {
		return cephrbd.Spec{}, fmt.Errorf("restore target %q: an RBD image is restored to rbd:POOL/IMAGE or by the parameter restore_name: %w", name, plugins.ErrInvalidParameter)
	}
	name = strings.TrimPrefix(name, cephrbd.Prefix)
	if v, ok := req.Parameters["restore_name"]; ok {
		s, ok := v.(string)
		if !ok {
			return cephrbd.Spec{}, fmt.Errorf("restore_name must be a string: %w", plugins.ErrInvalidParameter)
		}
		name = s
	}
	if name == "" {
		src, _ := cephrbd.ParseSpec(cephrbd.Prefix + req.Resource.Name)
		base := src.Image
		if base == "" {
			base = "image"
		}
		name = fmt.Sprintf("%s-restore-%.12s", base, req.BackupID)
	}
	var spec cephrbd.Spec
	if strings.Contains(name, "/") {
		if spec, err = cephrbd.ParseSpec(cephrbd.Prefix + name); err != nil || spec.Snap != "" {
			return cephrbd.Spec{}, fmt.Errorf("restore_name %q: want IMAGE, POOL/IMAGE or POOL/NAMESPACE/IMAGE: %w", name, plugins.ErrInvalidParameter)
		}
	} else {
		spec = home.spec(name)
	}
	if !validImageName(spec.Image) {
		return cephrbd.Spec{}, fmt.Errorf("restore_name %q: an image name has letters, digits, '.', '-' and '_' only: %w", name, plugins.ErrInvalidParameter)
	}
	for _, l := range locs {
		if l.pool == spec.Pool && l.namespace == spec.Namespace {
			return spec, nil
		}
	}
	return cephrbd.Spec{}, fmt.Errorf("restore target %s is outside the project's pools: %w", nameOf(spec), plugins.ErrInvalidParameter)
}

// Restore implements plugins.ProtectionPlugin: the checkpoint is written
// into a new partial image beside the target, which is renamed to the
// target once complete and flushed. An existing target is refused.
func (p *Plugin) Restore(ctx context.Context, repo *dedup.Repository, req plugins.RestoreRequest) (string, error) {
	target, err := p.target(req)
	if err != nil {
		return "", err
	}
	cl, err := p.cluster(ctx)
	if err != nil {
		return "", err
	}
	if err := cl.CheckLocation(ctx, target); errors.Is(err, cephrbd.ErrNotFound) {
		return "", fmt.Errorf("restore target %s: %w: %w", nameOf(target), err, plugins.ErrInvalidParameter)
	} else if err != nil {
		return "", err
	}
	if err := refuseExisting(ctx, cl, target); err != nil {
		return "", err
	}
	cp, _, err := repo.LoadCheckpoint(ctx, req.BackupID)
	if err != nil {
		return "", err
	}
	partial := target
	partial.Image = partialName(repo.Config().ID, target.Image)
	tgt, err := cl.CreateTarget(ctx, partial, cp.Size, blockdev.TargetOptions{})
	if errors.Is(err, blockdev.ErrTargetExists) {
		return "", fmt.Errorf("restore %s: %s exists: another restore to it is running (or a crash left it; the next start removes it): %w",
			nameOf(target), partial.Image, plugins.ErrInvalidParameter)
	}
	if err != nil {
		return "", fmt.Errorf("restore %s: %w", nameOf(target), err)
	}
	if _, err := backup.Restore(ctx, repo, cp, tgt, backup.RestoreOptions{Report: p.report}); err != nil {
		return "", fmt.Errorf("restore %s: %w", nameOf(target), err)
	}
	// Complete and flushed: only now does the target's name exist.
	if err := cl.RenameImage(ctx, partial, target.Image); err != nil {
		if rerr := cl.RemoveImage(context.WithoutCancel(ctx), partial); rerr != nil {
			p.report.Warnf("could not remove %s: %v", nameOf(partial), rerr)
		}
		if errors.Is(err, cephrbd.ErrExists) {
			return "", fmt.Errorf("restore target %s exists: %w", nameOf(target), plugins.ErrInvalidParameter)
		}
		return "", fmt.Errorf("restore %s: %w", nameOf(target), err)
	}
	return target.String(), nil
}

// refuseExisting fails with ErrInvalidParameter when the image s exists.
func refuseExisting(ctx context.Context, cl *cephrbd.Cluster, s cephrbd.Spec) error {
	im, err := cl.OpenImage(ctx, s)
	if err == nil {
		_ = im.Close()
		return fmt.Errorf("restore target %s exists: %w", nameOf(s), plugins.ErrInvalidParameter)
	}
	if errors.Is(err, cephrbd.ErrNotFound) {
		return nil
	}
	return err
}
