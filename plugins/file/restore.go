package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"cairn/backup"
	"cairn/blockdev"
	"cairn/dedup"
	"cairn/plugins"
)

// partialSuffix ends the names of restores in progress (see
// blockdev.PartialSuffix); the appliance removes leftover ones after a
// crash (Recover), and they are never protectable.
const partialSuffix = blockdev.PartialSuffix

// PartialPath is a name of a partial restore of target, as Recover finds
// and removes them. Restores write under names of this form, with a
// random part (see blockdev.CreateFileTarget).
func PartialPath(target string) string { return target + partialSuffix }

// Target resolves where req restores to, refusing paths outside the
// allowed directories, paths through a symlink, and existing files.
func (p *Plugin) Target(req plugins.RestoreRequest) (string, error) {
	dir, rel, err := p.target(req)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, rel), nil
}

// target is Target split into the allowed directory the path is in and
// the path relative to it.
func (p *Plugin) target(req plugins.RestoreRequest) (dir, rel string, err error) {
	roots, restoreDir, err := p.dirs(req.Project)
	if err != nil {
		return "", "", err
	}
	t := req.Target
	if v, ok := req.Parameters["restore_path"]; ok {
		s, ok := v.(string)
		if !ok {
			return "", "", fmt.Errorf("restore_path must be a string: %w", plugins.ErrInvalidParameter)
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
		return "", "", fmt.Errorf("restore path %q is not absolute: %w", t, plugins.ErrInvalidParameter)
	}
	t = filepath.Clean(t)
	for _, r := range append(roots, restoreDir) {
		if rest, ok := strings.CutPrefix(t, r+string(filepath.Separator)); ok {
			dir, rel = r, rest
			break
		}
	}
	if dir == "" {
		return "", "", fmt.Errorf("restore path %s is outside the allowed directories: %w", t, plugins.ErrInvalidParameter)
	}
	if strings.HasSuffix(t, partialSuffix) {
		return "", "", fmt.Errorf("restore path %s ends in %s, the mark of partial restores: %w", t, partialSuffix, plugins.ErrInvalidParameter)
	}
	if err := checkBeneath(dir, rel); err != nil {
		return "", "", err
	}
	return dir, rel, nil
}

// checkBeneath refuses rel inside dir when a directory on the way is a
// symlink or not a directory, or rel exists. Directories that do not
// exist yet are fine: Restore creates them. Restore writes through an
// os.Root anyway; this is the early, clear refusal.
func checkBeneath(dir, rel string) error {
	path := filepath.Join(dir, rel)
	parts := strings.Split(rel, string(filepath.Separator))
	for i := range parts {
		p := filepath.Join(dir, filepath.Join(parts[:i+1]...))
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("restore path %s: %w", path, err)
		}
		switch {
		case i == len(parts)-1:
			return fmt.Errorf("restore path %s exists: %w", path, plugins.ErrInvalidParameter)
		case fi.Mode()&os.ModeSymlink != 0:
			return fmt.Errorf("restore path %s goes through the symlink %s, which is not followed: %w", path, p, plugins.ErrInvalidParameter)
		case !fi.IsDir():
			return fmt.Errorf("restore path %s: %s is not a directory: %w", path, p, plugins.ErrInvalidParameter)
		}
	}
	return nil
}

// Restore implements plugins.ProtectionPlugin: the file is written under
// a temporary name beside the target and renamed into place once
// complete and synced, never over an existing file. Every path is
// resolved through an os.Root of the allowed directory, so a symlink put
// there, even while the restore runs, cannot lead the write outside.
func (p *Plugin) Restore(ctx context.Context, repo *dedup.Repository, req plugins.RestoreRequest) (string, error) {
	dir, rel, err := p.target(req)
	if err != nil {
		return "", err
	}
	target := filepath.Join(dir, rel)
	cp, _, err := repo.LoadCheckpoint(ctx, req.BackupID)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	defer root.Close()
	if err := root.MkdirAll(filepath.Dir(rel), 0o700); err != nil {
		return "", fmt.Errorf("restore %s: %w", target, err)
	}
	t, err := blockdev.CreateFileTargetIn(root, rel, cp.Size, blockdev.TargetOptions{})
	if err != nil {
		return "", err
	}
	o := backup.RestoreOptions{Report: plugins.ProgressReporter(backup.Reporter{}, req.Progress)}
	if _, err := backup.Restore(ctx, repo, cp, t, o); err != nil {
		return "", fmt.Errorf("restore %s: %w", target, err)
	}
	return target, nil
}

// Recover removes the partial files of restores a crash cut off in
// project's directories (the repository plays no part). Only regular
// files directly inside the directories are removed, through an os.Root
// of each; a directory that is a symlink is skipped.
func (p *Plugin) Recover(ctx context.Context, project string, _ *dedup.Repository) error {
	var errs []error
	for _, d := range append(append([]string(nil), p.roots...), p.restoreDir) {
		d, err := plugins.ForProject(d, project)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if fi, err := os.Lstat(d); err != nil || !fi.IsDir() {
			continue
		}
		errs = append(errs, removePartials(d))
	}
	return errors.Join(errs...)
}

func removePartials(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("recover %s: %w", dir, err)
	}
	defer root.Close()
	d, err := root.Open(".")
	if err != nil {
		return fmt.Errorf("recover %s: %w", dir, err)
	}
	ents, err := d.ReadDir(-1)
	_ = d.Close()
	if err != nil {
		return fmt.Errorf("recover %s: %w", dir, err)
	}
	var errs []error
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), partialSuffix) {
			errs = append(errs, root.Remove(e.Name()))
		}
	}
	return errors.Join(errs...)
}
