package appliance

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// store keeps one JSON file per object under DIR/KIND/ID.json. Writes go
// to a temporary file that is synced and renamed over the old one, and the
// directory is synced, so a crash leaves either the old or the new object.
type store struct{ dir string }

func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state store: %w", err)
	}
	return &store{dir: dir}, nil
}

func (s *store) put(kind, id string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", kind, id, err)
	}
	d := filepath.Join(s.dir, kind)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return fmt.Errorf("state store: %w", err)
	}
	tmp, err := os.CreateTemp(d, ".tmp-*")
	if err != nil {
		return fmt.Errorf("state store: %w", err)
	}
	_, werr := tmp.Write(b)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s %s: %w", kind, id, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(d, id+".json")); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s %s: %w", kind, id, err)
	}
	return syncDir(d)
}

func (s *store) delete(kind, id string) error {
	err := os.Remove(filepath.Join(s.dir, kind, id+".json"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete %s %s: %w", kind, id, err)
	}
	return syncDir(filepath.Join(s.dir, kind))
}

// loadAll decodes every object of kind with fn; leftover temporary files
// of a crashed write are removed.
func (s *store) loadAll(kind string, fn func(id string, b []byte) error) error {
	d := filepath.Join(s.dir, kind)
	ents, err := os.ReadDir(d)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("state store: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".tmp-") {
			_ = os.Remove(filepath.Join(d, name))
			continue
		}
		id, ok := strings.CutSuffix(name, ".json")
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, name))
		if err != nil {
			return fmt.Errorf("state store: %w", err)
		}
		if err := fn(id, b); err != nil {
			return fmt.Errorf("state store %s/%s: %w", kind, name, err)
		}
	}
	return nil
}

func syncDir(d string) error {
	f, err := os.Open(d)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer f.Close()
	return f.Sync()
}
