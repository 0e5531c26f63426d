package nova

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"cairn/dedup"
)

// manifestSource is a manifest as a backup source.
type manifestSource struct {
	*bytes.Reader
	name string
}

func (m manifestSource) Name() string { return m.name }

// storeManifest commits m as the data of a new checkpoint with tags.
func storeManifest(ctx context.Context, repo *dedup.Repository, m *Manifest, tags map[string]string) (*dedup.Checkpoint, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	src := manifestSource{Reader: bytes.NewReader(b), name: "nova-server-" + m.Server.ID + ".json"}
	cp, err := repo.Backup(ctx, src, dedup.BackupOptions{Tags: tags})
	if err != nil {
		return nil, fmt.Errorf("commit the manifest of server %s: %w", m.Server.ID, err)
	}
	return cp, nil
}

// loadManifest reads the manifest of a server checkpoint.
func loadManifest(ctx context.Context, repo *dedup.Repository, id string) (*Manifest, error) {
	cp, _, err := repo.LoadCheckpoint(ctx, id)
	if err != nil {
		return nil, err
	}
	if cp.Tags[TagServer] == "" {
		return nil, fmt.Errorf("checkpoint %s is not of a Nova server (no %s tag): %w", id, TagServer, ErrManifest)
	}
	if cp.Size > maxManifest {
		return nil, fmt.Errorf("checkpoint %s: %d bytes: %w", id, cp.Size, ErrManifest)
	}
	rd, err := repo.OpenCheckpoint(ctx, id)
	if err != nil {
		return nil, err
	}
	b := make([]byte, cp.Size)
	if _, err := rd.ReadAtContext(ctx, b, 0); err != nil {
		return nil, fmt.Errorf("read the manifest of checkpoint %s: %w", id, err)
	}
	m, err := parseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", id, err)
	}
	return m, nil
}

// backupIDs are the repository checkpoints the manifest names.
func (m *Manifest) backupIDs() []string {
	ids := make([]string, 0, len(m.Volumes)+1)
	for _, v := range m.Volumes {
		ids = append(ids, v.BackupID)
	}
	if m.Ephemeral != nil {
		ids = append(ids, m.Ephemeral.BackupID)
	}
	return ids
}
