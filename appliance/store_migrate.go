package appliance

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// openState opens the state database DATA_DIR/state.db. A data dir of an
// earlier release keeps its state as one JSON file per object,
// DATA_DIR/state/KIND/ID.json; on first open those objects are copied
// into the database in one transaction, and only once that has committed
// is the old directory renamed to DATA_DIR/state.json-migrated, so a
// crash in between repeats the (idempotent) copy at the next start.
func openState(dataDir string, log func(msg string, args ...any)) (*boltStore, error) {
	s, err := openBoltStore(filepath.Join(dataDir, "state.db"))
	if err != nil {
		return nil, err
	}
	old := filepath.Join(dataDir, "state")
	if fi, err := os.Stat(old); err != nil || !fi.IsDir() {
		return s, nil
	}
	n, err := s.importJSON(old)
	if err == nil {
		err = os.Rename(old, movedAside(old+".json-migrated"))
	}
	if err != nil {
		_ = s.close()
		return nil, fmt.Errorf("migrate the state in %s to %s: %w", old, s.path, err)
	}
	log("migrated the state to the state database", "objects", n, "from", old, "to", s.path)
	return s, nil
}

// movedAside returns p, or p.N for the first N not taken.
func movedAside(p string) string {
	c := p
	for i := 1; ; i++ {
		if _, err := os.Lstat(c); errors.Is(err, os.ErrNotExist) {
			return c
		}
		c = fmt.Sprintf("%s.%d", p, i)
	}
}

// importJSON copies every DIR/KIND/ID.json of the known kinds into the
// database in one transaction. Each file must hold valid JSON: a damaged
// one stops the migration with its name rather than losing the object.
// Temporary files of an interrupted write (.tmp-*) are skipped.
func (s *boltStore) importJSON(dir string) (int, error) {
	type obj struct {
		kind, id string
		b        []byte
	}
	var objs []obj
	for _, kind := range stateKinds {
		d := filepath.Join(dir, kind)
		ents, err := os.ReadDir(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, err
		}
		for _, e := range ents {
			id, ok := strings.CutSuffix(e.Name(), ".json")
			if !ok || strings.HasPrefix(e.Name(), ".tmp-") || !e.Type().IsRegular() {
				continue
			}
			p := filepath.Join(d, e.Name())
			b, err := os.ReadFile(p)
			if err != nil {
				return 0, err
			}
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				return 0, fmt.Errorf("%s: %w: repair or remove the file and start again", p, err)
			}
			// Compact, as put writes it.
			if b, err = json.Marshal(v); err != nil {
				return 0, fmt.Errorf("%s: %w", p, err)
			}
			objs = append(objs, obj{kind, id, b})
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, o := range objs {
			if err := tx.Bucket([]byte(o.kind)).Put([]byte(o.id), o.b); err != nil {
				return fmt.Errorf("%s %s: %w", o.kind, o.id, err)
			}
		}
		return nil
	})
	return len(objs), err
}
