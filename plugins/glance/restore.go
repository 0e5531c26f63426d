//go:build ceph

package glance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"cairn/dedup"
	"cairn/internal/openstack"
	"cairn/plugins"
)

// Restore implements plugins.ProtectionPlugin: a new image in the
// project with the saved properties, named after the original with a
// suffix (or restore_name), its data uploaded through the Glance API. It
// returns the new image's ID once Glance has made it active and its
// checksum is the saved one; a failed restore deletes the image.
func (p *Plugin) Restore(ctx context.Context, repo *dedup.Repository, req plugins.RestoreRequest) (string, error) {
	if req.Target != "" {
		return "", fmt.Errorf("restore target %q: a Glance image is restored to a new image; name it with the parameter restore_name: %w",
			req.Target, plugins.ErrInvalidParameter)
	}
	cp, _, err := repo.LoadCheckpoint(ctx, req.BackupID)
	if err != nil {
		return "", err
	}
	t := cp.Tags
	if t[TagImage] == "" {
		return "", fmt.Errorf("backup %s is not of a Glance image: %w", req.BackupID, plugins.ErrInvalidParameter)
	}
	saved, err := decodeSaved(t[TagSaved])
	if err != nil {
		return "", fmt.Errorf("backup %s: %w", req.BackupID, err)
	}
	size, err := strconv.ParseInt(t[TagSize], 10, 64)
	if err != nil || size != cp.Size {
		return "", fmt.Errorf("backup %s: tag %s %q is not the checkpoint's %d bytes", req.BackupID, TagSize, t[TagSize], cp.Size)
	}
	name, err := restoreName(saved.Name, t[TagImage], req)
	if err != nil {
		return "", err
	}
	g, err := p.glance(ctx, req.Project)
	if err != nil {
		return "", err
	}
	e, err := p.record(ctx, req.Project, t[TagImage], name)
	if err != nil {
		return "", err
	}
	im, err := g.CreateImage(ctx, saved.createOpts(name, e.ID))
	if err != nil {
		p.forget(ctx, e)
		return "", fmt.Errorf("restore image %s: %w", t[TagImage], err)
	}
	if err := p.fill(ctx, g, repo, cp, im.ID, saved); err != nil {
		p.discard(ctx, g, im.ID, e)
		return "", fmt.Errorf("restore image %s into new image %s: %w", t[TagImage], im.ID, err)
	}
	if err := g.RemoveProperty(ctx, im.ID, MetaJournal); err != nil {
		p.log.Warn("restored, but the image keeps cairn's journal property", "type", Type, "image", im.ID, "err", err)
	}
	p.forget(ctx, e)
	return im.ID, nil
}

// restoreName is the new image's name.
func restoreName(saved, id string, req plugins.RestoreRequest) (string, error) {
	if v, ok := req.Parameters["restore_name"]; ok {
		s, ok := v.(string)
		if !ok || s == "" || len(s) > 255 {
			return "", fmt.Errorf("restore_name must be a non-empty string of at most 255 characters: %w", plugins.ErrInvalidParameter)
		}
		return s, nil
	}
	if saved == "" {
		saved = "image-" + id
	}
	return fmt.Sprintf("%s-restore-%.8s", saved, req.BackupID), nil
}

// fill uploads the checkpoint's data, waits for the image to become
// active, compares checksums and sets the saved protected flag.
func (p *Plugin) fill(ctx context.Context, g *openstack.Glance, repo *dedup.Repository, cp *dedup.Checkpoint, id string, saved Saved) error {
	rd, err := repo.OpenCheckpoint(ctx, cp.ID)
	if err != nil {
		return err
	}
	if err := g.Upload(ctx, id, &seqReader{ctx: ctx, rd: rd, size: cp.Size}); err != nil {
		return err
	}
	im, err := g.WaitImage(ctx, id)
	if err != nil {
		return err
	}
	var errs []error
	if want := cp.Tags[TagChecksum]; want != "" && im.Checksum != want {
		errs = append(errs, fmt.Errorf("checksum %s, saved %s: %w", im.Checksum, want, ErrChecksum))
	}
	algo, _ := im.Properties["os_hash_algo"].(string)
	value, _ := im.Properties["os_hash_value"].(string)
	if want := cp.Tags[TagHashValue]; want != "" && algo == cp.Tags[TagHashAlgo] && value != want {
		errs = append(errs, fmt.Errorf("%s %s, saved %s: %w", algo, value, want, ErrChecksum))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if saved.Protected {
		return g.SetProtected(ctx, id, true)
	}
	return nil
}

// seqReader reads a checkpoint from start to end, for an upload.
type seqReader struct {
	ctx       context.Context
	rd        *dedup.Reader
	off, size int64
}

func (r *seqReader) Read(b []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), r.size-r.off)]
	n, err := r.rd.ReadAtContext(r.ctx, b, r.off)
	r.off += int64(n)
	if err == io.EOF && r.off == r.size {
		err = nil
	}
	return n, err
}

// discard deletes the image of a failed restore and its journal entry.
func (p *Plugin) discard(ctx context.Context, g *openstack.Glance, id string, e Entry) {
	if err := g.DeleteImage(context.WithoutCancel(ctx), id); err != nil {
		p.log.Warn("could not delete the image of a failed restore; the next start retries", "type", Type, "image", id, "err", err)
		return
	}
	p.forget(ctx, e)
}

// Recover deletes the images that restores a crash cut off left in
// project, found by their journal property. The appliance calls it at
// start, before any job runs.
func (p *Plugin) Recover(ctx context.Context, project string, _ *dedup.Repository) error {
	es, err := p.journal.Entries(ctx, project)
	if err != nil || len(es) == 0 {
		return err
	}
	g, err := p.glance(ctx, project)
	if err != nil {
		return fmt.Errorf("glance plugin recovery (entries stay for the next start): %w", err)
	}
	ims, err := g.Images(ctx, project)
	if err != nil {
		return fmt.Errorf("glance plugin recovery (entries stay for the next start): %w", err)
	}
	var errs []error
	for _, e := range es {
		p.log.Warn("deleting the image of an interrupted restore", "type", Type, "name", e.Name, "from", e.ImageID)
		var err error
		for i := range ims {
			if v, _ := ims[i].Properties[MetaJournal].(string); v == e.ID && ims[i].Owner == project {
				err = errors.Join(err, g.DeleteImage(ctx, ims[i].ID))
			}
		}
		if err == nil {
			err = p.journal.Forget(ctx, e.ID)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
