package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"cairn/backup"
	"cairn/blockdev"
	"cairn/dedup"
	"cairn/plugins"
)

// Type is the protectable type this plugin serves.
const Type = "OS::Cairn::File"

// Plugin protects files (and, if allowed, block devices) inside its
// roots. A root or the restore directory may contain
// plugins.ProjectPlaceholder; each project then sees only its own
// directory.
type Plugin struct {
	roots      []string
	restoreDir string
	devices    bool
}

// Options steer the plugin.
type Options struct {
	// Devices makes block device nodes in the roots protectable, not
	// only regular files. Off by default: a device node placed in a root
	// would hand out a whole disk of the host.
	Devices bool
}

var _ plugins.ProtectionPlugin = (*Plugin)(nil)

// New returns a plugin for the files directly inside roots; restores
// without a target go to restoreDir (which is also an allowed target).
func New(roots []string, restoreDir string, o Options) (*Plugin, error) {
	p := &Plugin{devices: o.Devices}
	for _, r := range append(append([]string(nil), roots...), restoreDir) {
		abs, err := filepath.Abs(r)
		if err != nil {
			return nil, fmt.Errorf("file plugin root %s: %w", r, err)
		}
		p.roots = append(p.roots, filepath.Clean(abs))
	}
	p.restoreDir = p.roots[len(p.roots)-1]
	p.roots = p.roots[:len(p.roots)-1]
	return p, nil
}

// dirs returns project's roots and restore directory.
func (p *Plugin) dirs(project string) (roots []string, restoreDir string, err error) {
	for _, r := range p.roots {
		d, err := plugins.ForProject(r, project)
		if err != nil {
			return nil, "", err
		}
		roots = append(roots, d)
	}
	restoreDir, err = plugins.ForProject(p.restoreDir, project)
	return roots, restoreDir, err
}

// Type implements plugins.ProtectionPlugin.
func (p *Plugin) Type() string { return Type }

// Dependencies implements plugins.ProtectionPlugin: files are leaves.
func (p *Plugin) Dependencies() []string { return nil }

// Schemas implements plugins.ProtectionPlugin.
func (p *Plugin) Schemas() plugins.Schemas {
	return plugins.Schemas{
		Options: map[string]any{
			"type": "object", "title": "File protection options",
			"properties": map[string]any{}, "additionalProperties": false,
		},
		Restore: map[string]any{
			"type": "object", "title": "File restore parameters",
			"properties": map[string]any{
				"restore_path": map[string]any{"type": "string", "title": "Absolute path of the restored file (inside an allowed directory; must not exist)"},
			},
		},
		SavingInfo: plugins.SavingInfoSchema("Saved file"),
	}
}

// InstanceID is the stable ID of the file at abs.
func InstanceID(abs string) string { return plugins.NameUUID("cairn-file:" + abs) }

// Instances implements plugins.ProtectionPlugin: the regular files (and
// block devices, if allowed) directly inside the project's roots. A symlink is never
// listed, whatever it points to: anyone who can write into a root could
// otherwise get any file the daemon can read (/etc/shadow, another
// project's volume) backed up and restored to them.
func (p *Plugin) Instances(ctx context.Context, project string) ([]plugins.Resource, error) {
	roots, _, err := p.dirs(project)
	if err != nil {
		return nil, err
	}
	var out []plugins.Resource
	for _, root := range roots {
		ents, err := os.ReadDir(root)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", root, err)
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			// The entry's own type (lstat): a symlink stays a symlink.
			if !protectable(e.Type(), p.devices) || strings.HasSuffix(e.Name(), partialSuffix) {
				continue
			}
			abs := filepath.Join(root, e.Name())
			src, err := openIn(root, e.Name())
			if err != nil {
				continue // gone, or replaced by something else meanwhile
			}
			size := src.Size()
			_ = src.Close()
			out = append(out, plugins.Resource{ID: InstanceID(abs), Type: Type, Name: abs,
				ExtraInfo: map[string]any{"path": abs, "size": size}})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// protectable reports whether a directory entry of type m may be
// protected: a regular file, or a block device if devices, never a
// symlink.
func protectable(m os.FileMode, devices bool) bool {
	return m.IsRegular() || devices && m&os.ModeDevice != 0 && m&os.ModeCharDevice == 0
}

// openIn opens the file name directly inside dir as a source, through an
// os.Root and without following a symlink at name.
func openIn(dir, name string) (*blockdev.File, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	defer root.Close()
	return blockdev.OpenFileIn(root, name)
}

// Instance implements plugins.ProtectionPlugin.
func (p *Plugin) Instance(ctx context.Context, project, id string) (plugins.Resource, error) {
	all, err := p.Instances(ctx, project)
	if err != nil {
		return plugins.Resource{}, err
	}
	for _, r := range all {
		if r.ID == id {
			return r, nil
		}
	}
	return plugins.Resource{}, fmt.Errorf("%s %s: %w", Type, id, plugins.ErrInstanceNotFound)
}

// Protect implements plugins.ProtectionPlugin: one repository checkpoint
// of the file, incremental against the file's latest checkpoint.
func (p *Plugin) Protect(ctx context.Context, repo *dedup.Repository, req plugins.ProtectRequest) (*plugins.Backup, error) {
	if _, err := plugins.NormalizeOptions(p.Schemas().Options, req.Options); err != nil {
		return nil, err
	}
	res, err := p.Instance(ctx, req.Project, req.Resource.ID)
	if err != nil {
		return nil, err
	}
	// Opened again without following symlinks: the file may have been
	// replaced by one since it was listed.
	src, err := openIn(filepath.Dir(res.Name), filepath.Base(res.Name))
	if err != nil {
		return nil, err
	}
	defer src.Close()
	// A previous checkpoint deleted meanwhile: back up in full.
	prev, _, err := backup.Previous(ctx, repo, req.Previous)
	if err != nil {
		return nil, fmt.Errorf("back up %s: %w", res.Name, err)
	}
	cp, err := backup.Run(ctx, repo, backup.Live(src), backup.Options{Parent: prev, Tags: req.Tags, Workers: 2,
		Report: plugins.ProgressReporter(backup.Reporter{}, req.Progress)})
	if err != nil {
		return nil, fmt.Errorf("back up %s: %w", res.Name, err)
	}
	return &plugins.Backup{ID: cp.ID, Stats: cp.Stats, Size: cp.Size}, nil
}

// Delete implements plugins.ProtectionPlugin.
func (p *Plugin) Delete(ctx context.Context, repo *dedup.Repository, backupID string) error {
	return plugins.DeleteBackup(ctx, repo, backupID)
}

// Verify implements plugins.ProtectionPlugin: every block is read back.
func (p *Plugin) Verify(ctx context.Context, repo *dedup.Repository, backupID string) error {
	return plugins.ReadBack(ctx, repo, backupID)
}
