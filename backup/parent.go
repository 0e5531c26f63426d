package backup

import (
	"context"
	"errors"
	"fmt"

	"cairn/dedup"
)

// LoadParent loads the checkpoint a backup is asked to follow (id may be
// a unique prefix).
func LoadParent(ctx context.Context, repo *dedup.Repository, id string) (*dedup.Checkpoint, error) {
	cp, _, err := repo.LoadCheckpoint(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("load parent: %w", err)
	}
	return cp, nil
}

// Previous loads a plugin's previous checkpoint of a device (id "" for
// none). One deleted meanwhile is no error: the backup then reads the
// whole device, for the reason returned.
func Previous(ctx context.Context, repo *dedup.Repository, id string) (cp *dedup.Checkpoint, fullReason string, err error) {
	if id == "" {
		return nil, "", nil
	}
	cp, _, err = repo.LoadCheckpoint(ctx, id)
	if errors.Is(err, dedup.ErrCheckpointNotFound) {
		return nil, fmt.Sprintf("previous checkpoint %s is gone", id), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("previous checkpoint: %w", err)
	}
	return cp, "", nil
}
