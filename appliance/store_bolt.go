package appliance

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// boltStore keeps the state in one bbolt file, a bucket per kind. Each
// put or delete is one read-write transaction, which bbolt commits with
// an fsync of the file: copy-on-write pages and a meta page written last
// make a crash leave the last committed state.
type boltStore struct {
	db   *bolt.DB
	path string
}

var _ stateStore = (*boltStore)(nil)

// openBoltStore opens (or creates) the database at path and checks it.
// bbolt panics on some damaged pages rather than returning an error, so
// the open and the check run under recover: a damaged file is an error
// naming it, never a crash of the daemon.
func openBoltStore(path string) (s *boltStore, err error) {
	var db *bolt.DB
	// A file shorter than the pages its meta page names faults in the
	// mmap (SIGBUS); make that a panic the recover below turns into an
	// error.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			}
			s, err = nil, damagedState(path, fmt.Errorf("%v", r))
		}
	}()
	// A second appliance on the same data dir waits a second for the
	// file lock and then gives up, rather than hanging.
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("state database %s is locked: another cairn serve uses this data dir: %w", path, ErrStateLocked)
	case err != nil && !errors.Is(err, os.ErrPermission) && fileExists(path):
		// bbolt's own words: "invalid database", "file size too small",
		// a checksum or version mismatch.
		return nil, damagedState(path, err)
	case err != nil:
		return nil, fmt.Errorf("state database %s: %w", path, err)
	}
	// Read every page once, here, under recover: bbolt's own Check
	// walks in a goroutine of its own, where a damaged page's assertion
	// would crash the process.
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error { return nil })
		})
	})
	if err == nil {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, k := range stateKinds {
				if _, err := tx.CreateBucketIfNotExists([]byte(k)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		_ = db.Close()
		return nil, damagedState(path, err)
	}
	return &boltStore{db: db, path: path}, nil
}

func damagedState(path string, err error) error {
	return fmt.Errorf("state database %s is damaged (%v): restore it from a backup, or move it aside to start with no plans or checkpoints: %w",
		path, err, ErrStateDamaged)
}

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Size() > 0
}

func (s *boltStore) put(kind, id string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", kind, id, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte(kind))
		if err != nil {
			return err
		}
		return bk.Put([]byte(id), b)
	})
	if err != nil {
		return fmt.Errorf("state database %s: write %s %s: %w", s.path, kind, id, err)
	}
	return nil
}

func (s *boltStore) delete(kind, id string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(kind))
		if bk == nil {
			return nil
		}
		return bk.Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("state database %s: delete %s %s: %w", s.path, kind, id, err)
	}
	return nil
}

func (s *boltStore) loadAll(kind string, fn func(id string, b []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(kind))
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(k, v []byte) error {
			// v lives only as long as the transaction; fn decodes it
			// at once.
			if err := fn(string(k), v); err != nil {
				return fmt.Errorf("state database %s: %s %s: %w", s.path, kind, k, err)
			}
			return nil
		})
	})
}

func (s *boltStore) close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("state database %s: %w", s.path, err)
	}
	return nil
}
