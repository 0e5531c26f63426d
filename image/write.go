package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write writes the plan's files into dir: secrets 0600 owned by uid:gid,
// the others 0640 root-owned in group gid, each through a temporary file
// renamed over the old one so a crash leaves the old or the new file. It
// removes the managed files the plan does not write.
func (p Plan) Write(dir string, uid, gid int) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("configuration directory: %w", err)
	}
	if err := os.Chown(dir, 0, gid); err != nil {
		return fmt.Errorf("configuration directory %s: %w", dir, err)
	}
	for _, f := range p.Files {
		owner, mode := 0, os.FileMode(0o640)
		if f.Secret {
			owner, mode = uid, 0o600
		}
		if err := writeFile(filepath.Join(dir, f.Name), f.Data, mode, owner, gid); err != nil {
			return err
		}
	}
	for _, name := range managed {
		if p.has(name) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale %s: %w", name, err)
		}
	}
	return nil
}

func writeFile(path string, data []byte, mode os.FileMode, uid, gid int) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Mode and owner are set before a byte is written, so a secret is
	// never readable by others, not even for an instant.
	err = tmp.Chmod(mode)
	if err == nil {
		err = tmp.Chown(uid, gid)
	}
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
