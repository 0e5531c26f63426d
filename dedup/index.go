package dedup

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

// index is the badger-backed accelerator: chunk ID → location, pack facts and
// cached checkpoint metadata. Everything in it can be rebuilt from the shard
// stores (rebuildIndex), so losing it loses nothing.
//
// Keys:
//
//	"c" ‖ chunk ID  → pack ID ‖ offset u64 ‖ stored u32 ‖ raw u32 ‖ flags u8 ‖ sum u64
//	"p" ‖ pack ID   → created (unix ns) u64 ‖ logical length u64 ‖ shard bytes u64 ‖ chunks u32
//	"m" ‖ checkpoint ID → Checkpoint JSON
type index struct {
	db   *badger.DB
	lock *os.File
}

type chunkLoc struct {
	Pack PackID
	packEntry
}

type packInfo struct {
	Created     time.Time
	Length      int64
	ShardBytes  int64
	Chunks      uint32
	LiveUnknown bool
}

const indexLockName = "cairn.lock"

// indexDamagedError is badger failing to open a directory we hold the lock
// of: its files are damaged, and opening the repository rebuilds them.
type indexDamagedError struct {
	dir string
	err error
}

func (e *indexDamagedError) Error() string {
	return fmt.Sprintf("open badger index %s: %v", e.dir, e.err)
}

func (e *indexDamagedError) Unwrap() error { return e.err }

func openIndex(dir string) (*index, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create index directory: %w", err)
	}
	// badger's own directory lock reports failure only as text; our flock
	// gives callers a sentinel to branch on.
	lf, err := os.OpenFile(filepath.Join(dir, indexLockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open index lock: %w", err)
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w; wait for it to finish", dir, ErrIndexLocked)
		}
		return nil, fmt.Errorf("lock index: %w", err)
	}
	opts := badger.DefaultOptions(dir).
		WithLogger(nil).
		WithNumVersionsToKeep(1).
		WithMemTableSize(16 << 20).
		WithBlockCacheSize(32 << 20).
		WithIndexCacheSize(16 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithCompactL0OnClose(true)
	db, err := badger.Open(opts)
	if err != nil {
		lf.Close()
		return nil, &indexDamagedError{dir: dir, err: err}
	}
	return &index{db: db, lock: lf}, nil
}

func (x *index) close() error {
	err := x.db.Close()
	x.lock.Close()
	return err
}

// gc runs badger's value-log garbage collection, which badger never runs by
// itself, until it finds nothing worth rewriting.
func (x *index) gc() {
	for x.db.RunValueLogGC(0.5) == nil {
	}
}

func chunkKey(id ChunkID) []byte { return append([]byte{'c'}, id[:]...) }
func packKey(p PackID) []byte    { return append([]byte{'p'}, p[:]...) }
func metaKey(id string) []byte   { return append([]byte{'m'}, id...) }

func encodeLoc(l chunkLoc) []byte {
	b := make([]byte, 0, 41)
	b = append(b, l.Pack[:]...)
	b = binary.LittleEndian.AppendUint64(b, l.Offset)
	b = binary.LittleEndian.AppendUint32(b, l.StoredLen)
	b = binary.LittleEndian.AppendUint32(b, l.RawLen)
	b = append(b, l.Flags)
	return binary.LittleEndian.AppendUint64(b, l.Sum)
}

func decodeLoc(id ChunkID, b []byte) (chunkLoc, error) {
	var l chunkLoc
	if len(b) != 41 {
		return l, fmt.Errorf("index entry for chunk %s: %w", id, ErrCorrupt)
	}
	copy(l.Pack[:], b)
	l.ID = id
	l.Offset = binary.LittleEndian.Uint64(b[16:])
	l.StoredLen = binary.LittleEndian.Uint32(b[24:])
	l.RawLen = binary.LittleEndian.Uint32(b[28:])
	l.Flags = b[32]
	l.Sum = binary.LittleEndian.Uint64(b[33:])
	return l, nil
}

func encodePackInfo(pi packInfo) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(pi.Created.UnixNano()))
	b = binary.LittleEndian.AppendUint64(b, uint64(pi.Length))
	b = binary.LittleEndian.AppendUint64(b, uint64(pi.ShardBytes))
	return binary.LittleEndian.AppendUint32(b, pi.Chunks)
}

func decodePackInfo(b []byte) (packInfo, error) {
	if len(b) != 28 {
		return packInfo{}, fmt.Errorf("index pack entry: %w", ErrCorrupt)
	}
	return packInfo{
		Created:    time.Unix(0, int64(binary.LittleEndian.Uint64(b))),
		Length:     int64(binary.LittleEndian.Uint64(b[8:])),
		ShardBytes: int64(binary.LittleEndian.Uint64(b[16:])),
		Chunks:     binary.LittleEndian.Uint32(b[24:]),
	}, nil
}

func (x *index) lookup(id ChunkID) (chunkLoc, bool, error) {
	var loc chunkLoc
	found := false
	err := x.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(chunkKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			loc, err = decodeLoc(id, v)
			found = err == nil
			return err
		})
	})
	return loc, found, err
}

// addPack records a sealed pack and its chunks in one batch.
func (x *index) addPack(p PackID, pi packInfo, entries []packEntry) error {
	wb := x.db.NewWriteBatch()
	defer wb.Cancel()
	for _, e := range entries {
		if err := wb.Set(chunkKey(e.ID), encodeLoc(chunkLoc{Pack: p, packEntry: e})); err != nil {
			return err
		}
	}
	if err := wb.Set(packKey(p), encodePackInfo(pi)); err != nil {
		return err
	}
	return wb.Flush()
}

// removePack forgets a pack; chunk entries are removed only where they still
// point into it (a chunk may have been stored again elsewhere).
func (x *index) removePack(p PackID, entries []packEntry) error {
	return x.db.Update(func(txn *badger.Txn) error {
		for _, e := range entries {
			item, err := txn.Get(chunkKey(e.ID))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(v) >= 16 && PackID(v[:16]) == p {
				if err := txn.Delete(chunkKey(e.ID)); err != nil {
					return err
				}
			}
		}
		return txn.Delete(packKey(p))
	})
}

func (x *index) putMeta(cp *Checkpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	return x.db.Update(func(txn *badger.Txn) error { return txn.Set(metaKey(cp.ID), b) })
}

func (x *index) deleteMeta(id string) error {
	return x.db.Update(func(txn *badger.Txn) error { return txn.Delete(metaKey(id)) })
}

func (x *index) getMeta(id string) (*Checkpoint, bool) {
	var cp *Checkpoint
	_ = x.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(metaKey(id))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			c := new(Checkpoint)
			if json.Unmarshal(v, c) == nil {
				cp = c
			}
			return nil
		})
	})
	return cp, cp != nil
}

var rebuildKey = []byte("s/rebuilding")

// dropAll empties the index before a rebuild and marks it incomplete until
// finishRebuild, so a rebuild killed midway is redone at the next open.
func (x *index) dropAll() error {
	if err := x.db.DropAll(); err != nil {
		return err
	}
	return x.db.Update(func(txn *badger.Txn) error { return txn.Set(rebuildKey, []byte{1}) })
}

func (x *index) finishRebuild() error {
	return x.db.Update(func(txn *badger.Txn) error { return txn.Delete(rebuildKey) })
}

func (x *index) rebuilding() bool {
	err := x.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(rebuildKey)
		return err
	})
	return err == nil
}
