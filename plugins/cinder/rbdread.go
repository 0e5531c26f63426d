//go:build ceph

package cinder

// The plugin's one use of cairn's backup flow (package backup) and RBD
// access (cairn/blockdev/rbd): the snapshot Cinder made is read like any
// RBD snapshot, named (backup.Options.Snap, which Run never removes:
// Cinder's snapshots are made and deleted through Cinder), incrementally
// against the parent's; a restore writes an image Cinder made.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"cairn/backup"
	"cairn/blockdev"
	cephrbd "cairn/blockdev/rbd"
	"cairn/dedup"
)

// rbdIO is the plugin's connection to the cluster (made on first use).
type rbdIO struct{ lazy *cephrbd.Lazy }

func newRBDIO(o cephrbd.ConnOptions) *rbdIO { return &rbdIO{cephrbd.NewLazy(o)} }

func (r *rbdIO) cluster(ctx context.Context) (*cephrbd.Cluster, error) {
	cl, err := r.lazy.Cluster(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to Cinder's Ceph cluster: %w", err)
	}
	return cl, nil
}

func (r *rbdIO) close() { r.lazy.Close() }

func reporter(log *slog.Logger) backup.Reporter {
	return backup.Reporter{Warnf: func(format string, args ...any) {
		log.Warn(fmt.Sprintf(format, args...), "type", Type)
	}}
}

// backup reads POOL/IMAGE@snap into a new checkpoint: only the extents
// changed since parent's snapshot when that snapshot is still there,
// else the whole image (deduplicated against parent). With snapID not
// 0 the data is read at that snapshot instead (backup.Image.At).
func (r *rbdIO) backup(ctx context.Context, repo *dedup.Repository, pool, image, snap string, snapID uint64, parent *dedup.Checkpoint,
	tags map[string]string, log *slog.Logger) (*dedup.Checkpoint, error) {
	return r.run(ctx, repo, pool, image, snap, parent, tags, log, func(img *backup.Image) backup.Source {
		if snapID != 0 {
			return img.At(snap, snapID)
		}
		return img
	})
}

// backupDevice is backup for the attach path: the extents come from
// POOL/IMAGE@snap and its diff against parent's snapshot, the bytes from
// the block device dev, which holds a copy of that snapshot (a volume
// Cinder made from it).
func (r *rbdIO) backupDevice(ctx context.Context, repo *dedup.Repository, pool, image, snap, dev string, parent *dedup.Checkpoint,
	tags map[string]string, log *slog.Logger) (*dedup.Checkpoint, error) {
	return r.run(ctx, repo, pool, image, snap, parent, tags, log, func(img *backup.Image) backup.Source {
		return deviceImage{img, dev}
	})
}

// run backs up the source that source makes of POOL/IMAGE.
func (r *rbdIO) run(ctx context.Context, repo *dedup.Repository, pool, image, snap string, parent *dedup.Checkpoint,
	tags map[string]string, log *slog.Logger, source func(*backup.Image) backup.Source) (*dedup.Checkpoint, error) {
	cl, err := r.cluster(ctx)
	if err != nil {
		return nil, err
	}
	head, err := cl.OpenImage(ctx, cephrbd.Spec{Pool: pool, Image: image})
	if err != nil {
		return nil, err
	}
	defer head.Close()
	src := source(backup.NewImage(cl, head, backup.ImageSnapshots(head, repo.Config().ID)))
	return backup.Run(ctx, repo, src, backup.Options{Parent: parent, Snap: snap, Tags: tags,
		VerifySample: backup.DefaultVerifySample, Report: reporter(log)})
}

// deviceImage is an RBD image whose snapshot's bytes are read from a
// block device holding a copy of it.
type deviceImage struct {
	*backup.Image
	dev string
}

// Open implements backup.Source.
func (s deviceImage) Open(ctx context.Context, snap string) (backup.Reader, error) {
	rd, err := s.Image.Open(ctx, snap)
	if err != nil {
		return nil, err
	}
	d, ok := rd.(backup.Differ)
	tg, _ := rd.(backup.Tagger)
	if !ok || tg == nil {
		_ = rd.Close()
		return nil, fmt.Errorf("open %s: %w", rd.Name(), backup.ErrNoDiff)
	}
	f, err := blockdev.OpenFile(s.dev)
	if err != nil {
		_ = rd.Close()
		return nil, err
	}
	if f.Size() < rd.Size() {
		_ = rd.Close()
		_ = f.Close()
		return nil, fmt.Errorf("device %s has %d bytes, snapshot %s of %s has %d", s.dev, f.Size(), snap, rd.Name(), rd.Size())
	}
	return &deviceReader{Reader: rd, differ: d, tagger: tg, dev: f}, nil
}

// deviceReader reads the bytes from the device and everything else
// (size, allocated and changed extents, tags) from the RBD snapshot.
type deviceReader struct {
	backup.Reader
	differ backup.Differ
	tagger backup.Tagger
	dev    *blockdev.File
}

var (
	_ backup.Differ = (*deviceReader)(nil)
	_ backup.Tagger = (*deviceReader)(nil)
)

func (r *deviceReader) ReadAt(p []byte, off int64) (int, error) { return r.dev.ReadAt(p, off) }

func (r *deviceReader) Changed(ctx context.Context, base string) ([]blockdev.Extent, error) {
	return r.differ.Changed(ctx, base)
}

func (r *deviceReader) DiffMode() string { return r.differ.DiffMode() }

func (r *deviceReader) Tags() map[string]string { return r.tagger.Tags() }

func (r *deviceReader) Close() error { return errors.Join(r.dev.Close(), r.Reader.Close()) }

// restore writes checkpoint cp into the existing image POOL/IMAGE (a
// new volume of at least its size).
func (r *rbdIO) restore(ctx context.Context, repo *dedup.Repository, cp *dedup.Checkpoint, pool, image string, log *slog.Logger) error {
	cl, err := r.cluster(ctx)
	if err != nil {
		return err
	}
	tgt, err := cl.CreateTarget(ctx, cephrbd.Spec{Pool: pool, Image: image}, cp.Size, blockdev.TargetOptions{Force: true})
	if err != nil {
		return err
	}
	_, err = backup.Restore(ctx, repo, cp, tgt, backup.RestoreOptions{Report: reporter(log)})
	return err
}
