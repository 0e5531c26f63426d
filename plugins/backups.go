package plugins

import (
	"context"
	"errors"
	"fmt"

	"cairn/dedup"
)

// DeleteBackup deletes a repository checkpoint; one that is already gone
// is deleted (ProtectionPlugin.Delete is idempotent).
func DeleteBackup(ctx context.Context, repo *dedup.Repository, backupID string) error {
	err := repo.DeleteCheckpoint(ctx, backupID)
	if errors.Is(err, dedup.ErrCheckpointNotFound) {
		return nil
	}
	return err
}

// ReadBack reads every data block of a repository checkpoint, as
// ProtectionPlugin.Verify must: a missing or damaged chunk is an error.
func ReadBack(ctx context.Context, repo *dedup.Repository, backupID string) error {
	rd, err := repo.OpenCheckpoint(ctx, backupID)
	if err != nil {
		return err
	}
	buf := make([]byte, rd.BlockSize())
	for off := int64(0); off < rd.Size(); off += int64(len(buf)) {
		if rd.IsHole(off) {
			continue
		}
		if _, err := rd.ReadAtContext(ctx, buf[:min(int64(len(buf)), rd.Size()-off)], off); err != nil {
			return fmt.Errorf("verify %s at %d: %w", backupID, off, err)
		}
	}
	return nil
}
