package prune

import (
	"errors"
	"fmt"
	"os"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"cairn/dedup/pack"
)

// markSet is prune's set of live chunk IDs. It lives in a throwaway badger
// database on disk, not in a Go map: a repository of a few hundred TiB holds
// tens of millions of chunks, and prune must not need memory in proportion.
// Small memtables keep badger's own footprint to a few tens of MiB.
type markSet struct {
	dir string
	db  *badger.DB
	wb  *badger.WriteBatch
}

// newMarkSet creates a mark set in a new temporary directory under parent
// (the system's temporary directory when parent is empty).
func newMarkSet(parent string) (*markSet, error) {
	dir, err := os.MkdirTemp(parent, "cairn-prune-marks-")
	if err != nil {
		return nil, fmt.Errorf("create mark set directory: %w", err)
	}
	opts := badger.DefaultOptions(dir).
		WithLogger(nil).
		WithSyncWrites(false). // a crash discards the set anyway
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithCompression(options.None).
		WithMemTableSize(4 << 20).
		WithNumMemtables(2).
		WithBaseTableSize(2 << 20).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithValueLogFileSize(16 << 20).
		WithValueThreshold(1 << 10). // values are empty; must fit a 4 MiB memtable batch
		WithBlockCacheSize(4 << 20).
		WithIndexCacheSize(4 << 20).
		WithNumCompactors(2)
	db, err := badger.Open(opts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("open mark set in %s: %w", dir, err)
	}
	return &markSet{dir: dir, db: db, wb: db.NewWriteBatch()}, nil
}

// add marks id live. Marks become visible to live after flush.
func (m *markSet) add(id pack.ChunkID) error {
	if err := m.wb.Set(id[:], nil); err != nil {
		return fmt.Errorf("mark chunk %s: %w", id, err)
	}
	return nil
}

// flush makes every added mark visible.
func (m *markSet) flush() error {
	err := m.wb.Flush()
	m.wb = m.db.NewWriteBatch()
	if err != nil {
		return fmt.Errorf("write mark set: %w", err)
	}
	return nil
}

// live reports, for each entry, whether its chunk is marked.
func (m *markSet) live(entries []pack.Entry) ([]bool, error) {
	out := make([]bool, len(entries))
	err := m.db.View(func(txn *badger.Txn) error {
		for i, e := range entries {
			_, err := txn.Get(e.ID[:])
			switch {
			case err == nil:
				out[i] = true
			case !errors.Is(err, badger.ErrKeyNotFound):
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read mark set: %w", err)
	}
	return out, nil
}

// close discards the set and its directory.
func (m *markSet) close() error {
	m.wb.Cancel()
	err := m.db.Close()
	if rerr := os.RemoveAll(m.dir); err == nil {
		err = rerr
	}
	return err
}
