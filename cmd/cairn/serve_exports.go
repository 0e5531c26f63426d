package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"cairn/api"
	"cairn/dedup"
	"cairn/mount/nbd"
)

// daemonExporter serves the API's NBD exports as cairn nbd serve does,
// read-only, each on its own port of host, each behind its own random
// secret (the export name is SECRET/ID), and each limited to its one
// checkpoint: the secret is shown to the project, and must not open its
// other checkpoints.
func daemonExporter(host string, log *slog.Logger) api.Exporter {
	return func(ctx context.Context, repo *dedup.Repository, backupID string) (string, func() error, error) {
		var b [16]byte
		_, _ = rand.Read(b[:])
		secret := hex.EncodeToString(b[:])
		cat, err := nbd.NewCheckpointCatalog(oneCheckpoint{repo, backupID}, nbd.CatalogOptions{Secret: secret})
		if err != nil {
			return "", nil, err
		}
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			_ = cat.Close()
			return "", nil, fmt.Errorf("listen for the export: %w", err)
		}
		srv := nbd.NewServer(cat, nbd.Options{Logf: func(format string, args ...any) {
			log.Info("nbd export: " + fmt.Sprintf(format, args...))
		}})
		sctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(sctx, l) }()
		stop := func() error {
			dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer dcancel()
			err := srv.Shutdown(dctx)
			cancel()
			serr := <-errc
			if errors.Is(serr, nbd.ErrServerClosed) {
				serr = nil
			}
			return errors.Join(err, serr, cat.Close())
		}
		return nbdURI(l, secret+"/"+backupID, false), stop, nil
	}
}

// oneCheckpoint is a repository that shows one checkpoint only.
type oneCheckpoint struct {
	repo *dedup.Repository
	id   string
}

var _ nbd.Repository = oneCheckpoint{}

func (o oneCheckpoint) Checkpoints(ctx context.Context) ([]*dedup.Checkpoint, error) {
	cps, err := o.repo.Checkpoints(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range cps {
		if c.ID == o.id {
			return []*dedup.Checkpoint{c}, nil
		}
	}
	return nil, fmt.Errorf("checkpoint %s: %w", o.id, dedup.ErrCheckpointNotFound)
}

func (o oneCheckpoint) OpenCheckpoint(ctx context.Context, id string) (*dedup.Reader, error) {
	if id != o.id {
		return nil, fmt.Errorf("checkpoint %s: %w", id, dedup.ErrCheckpointNotFound)
	}
	return o.repo.OpenCheckpoint(ctx, id)
}
