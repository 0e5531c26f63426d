package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"cairn/blockdev"
	"cairn/dedup"
	"cairn/plugins"
)

// partialSuffix marks a restore in progress; the appliance removes leftover
// ones after a crash (PartialPath).
const partialSuffix = ".cairn-partial"

// PartialPath is where a restore to target writes before the final rename.
func PartialPath(target string) string { return target + partialSuffix }

// Target resolves where req restores to, refusing paths outside the
// allowed directories and existing files.
func (p *Plugin) Target(req plugins.RestoreRequest) (string, error) {
	roots, restoreDir, err := p.dirs(req.Project)
	if err != nil {
		return "", err
	}
	t := req.Target
	if v, ok := req.Parameters["restore_path"]; ok {
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("restore_path must be a string: %w", plugins.ErrInvalidParameter)
		}
		t = s
	}
	if t == "" {
		base := filepath.Base(req.Resource.Name)
		if base == "." || base == "/" {
			base = "volume"
		}
		t = filepath.Join(restoreDir, fmt.Sprintf("%s.%.12s", base, req.BackupID))
	}
	if !filepath.IsAbs(t) {
		return "", fmt.Errorf("restore path %q is not absolute: %w", t, plugins.ErrInvalidParameter)
	}
	t = filepath.Clean(t)
	allowed := false
	for _, r := range append(roots, restoreDir) {
		if strings.HasPrefix(t, r+string(filepath.Separator)) {
			allowed = true
		}
	}
	if !allowed {
		return "", fmt.Errorf("restore path %s is outside the allowed directories: %w", t, plugins.ErrInvalidParameter)
	}
	if _, err := os.Lstat(t); err == nil {
		return "", fmt.Errorf("restore path %s exists: %w", t, plugins.ErrInvalidParameter)
	}
	return t, nil
}

// Restore implements plugins.ProtectionPlugin: the file is written beside
// the target and renamed into place once complete and synced.
func (p *Plugin) Restore(ctx context.Context, repo *dedup.Repository, req plugins.RestoreRequest) (string, error) {
	target, err := p.Target(req)
	if err != nil {
		return "", err
	}
	cp, _, err := repo.LoadCheckpoint(ctx, req.BackupID)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	partial := PartialPath(target)
	_ = os.Remove(partial)
	t, err := blockdev.CreateFileTarget(partial, cp.Size, blockdev.TargetOptions{})
	if err != nil {
		return "", err
	}
	_, rerr := repo.Restore(ctx, cp.ID, t, dedup.RestoreOptions{})
	cerr := t.Close()
	if err := errors.Join(rerr, cerr); err != nil {
		_ = os.Remove(partial)
		return "", fmt.Errorf("restore %s: %w", target, err)
	}
	if err := os.Rename(partial, target); err != nil {
		_ = os.Remove(partial)
		return "", fmt.Errorf("restore: %w", err)
	}
	return target, nil
}

// Recover removes the partial files of restores a crash cut off in
// project's directories (the repository plays no part).
func (p *Plugin) Recover(ctx context.Context, project string, _ *dedup.Repository) error {
	var errs []error
	for _, d := range append(append([]string(nil), p.roots...), p.restoreDir) {
		d, err := plugins.ForProject(d, project)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m, _ := filepath.Glob(filepath.Join(d, "*"+partialSuffix))
		for _, f := range m {
			errs = append(errs, os.Remove(f))
		}
	}
	return errors.Join(errs...)
}
