// Package index is the repository's badger-backed accelerator
// (docs/format.md §14): chunk ID → location, pack facts and cached
// checkpoint metadata, all of which can be rebuilt from the shard stores.
package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"

	"cairn/dedup/pack"
)

// Index is the badger-backed accelerator: chunk ID → location, pack facts and
// cached checkpoint metadata. Everything in it can be rebuilt from the shard
// stores (the repository's RebuildIndex), so losing it loses nothing.
//
// Keys:
//
//	"c" ‖ chunk ID  → pack ID ‖ offset u64 ‖ stored u32 ‖ raw u32 ‖ flags u8 ‖ sum u64
//	"p" ‖ pack ID   → created (unix ns) u64 ‖ logical length u64 ‖ shard bytes u64 ‖ chunks u32
//	"m" ‖ checkpoint ID → Checkpoint JSON
type Index struct {
	db      *badger.DB
	lock    *os.File
	dir     string
	freeing bool // the command frees space: see space.go
	log     func(format string, args ...any)
}

// PackInfo is what the index records of a pack.
type PackInfo struct {
	Created     time.Time
	Length      int64
	ShardBytes  int64
	Chunks      uint32
	LiveUnknown bool
}

// LockName is the file in the index directory that Open locks.
const LockName = "cairn.lock"

// Options say how openIndex opens the index.
type Options struct {
	// Key encrypts the index with badger's own encryption (tables, value
	// log and write-ahead log); nil leaves it in clear. The repository
	// derives it from its data key, never the passphrase.
	Key []byte
	// Discard throws the index away unopened: `repo rebuild-index` must
	// work when badger cannot open it.
	Discard bool
	// Freeing marks a command that frees space (prune, forget): on a
	// nearly full disk it may use the space reserve and is not refused.
	Freeing bool
	Log     func(format string, args ...any)
}

// Open locks dir and opens the badger index in it. When the index is
// damaged, was written with another key (or none: releases before the index
// was encrypted wrote it in clear) or opts.Discard is set, it empties dir,
// keeping the lock held throughout, and opens a new index; fresh then tells
// the caller to rebuild it from the shard stores.
func Open(dir string, opts Options) (x *Index, fresh bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create index directory %s: %w", dir, err)
	}
	// badger's own directory lock reports failure only as text; our flock
	// gives callers a sentinel to branch on.
	lf, err := os.OpenFile(filepath.Join(dir, LockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("open index lock: %w", err)
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, fmt.Errorf("%s: %w; wait for it to finish", dir, ErrLocked)
		}
		return nil, false, fmt.Errorf("lock index: %w", err)
	}
	defer func() {
		if err != nil {
			lf.Close()
		}
	}()
	if err := prepareSpace(dir, opts.Freeing, opts.Log); err != nil {
		return nil, false, err
	}
	// Compacting level 0 on close rewrites tables: worth it only with
	// room to spare.
	free, total, err := diskSpace(dir)
	if err != nil {
		return nil, false, err
	}
	_, floor := spaceLimits(total)
	bopts := badgerOptions(dir, opts.Key).WithCompactL0OnClose(free > 4*floor)
	newIndex := func(db *badger.DB) *Index {
		return &Index{db: db, lock: lf, dir: dir, freeing: opts.Freeing, log: opts.Log}
	}
	fresh = opts.Discard
	if _, err := os.Stat(filepath.Join(dir, badger.ManifestFilename)); errors.Is(err, os.ErrNotExist) {
		// No index yet, or one whose removal was cut short: either
		// way it must be built from the shard stores.
		if !fresh {
			opts.Log("index %s missing or incomplete: rebuilding it from the shard stores", dir)
		}
		fresh = true
	}
	if !fresh {
		if cerr := checkIndexFiles(dir, bopts); cerr != nil {
			if !errors.Is(cerr, errIndexFiles) {
				return nil, false, fmt.Errorf("check index %s: %w", dir, cerr)
			}
			opts.Log("index %s is damaged (%v): rebuilding it from the shard stores", dir, cerr)
			fresh = true
		}
	}
	if !fresh {
		db, oerr := badger.Open(bopts)
		if oerr == nil {
			return newIndex(db), false, nil
		}
		if errors.Is(oerr, badger.ErrEncryptionKeyMismatch) && opts.Key != nil {
			opts.Log("index %s is not encrypted with this repository's key: rebuilding it encrypted from the shard stores", dir)
		} else {
			// The index is a cache of the shard stores: a process
			// killed while badger created its files can leave it
			// unopenable, and the cure is to start it over, not to
			// ask the operator.
			opts.Log("index %s is damaged (%v): rebuilding it from the shard stores", dir, oerr)
		}
		fresh = true
	}
	if err := clearIndexDir(dir); err != nil {
		return nil, false, err
	}
	db, err := badger.Open(bopts)
	if err != nil {
		return nil, false, fmt.Errorf("open new badger index %s: %w", dir, err)
	}
	// Marked incomplete before anything else: a process killed before
	// the rebuild began leaves an index the next open rebuilds, not an
	// empty one taken for complete.
	x = newIndex(db)
	if err := x.db.Update(func(txn *badger.Txn) error { return txn.Set(rebuildKey, []byte{1}) }); err != nil {
		x.db.Close()
		return nil, false, fmt.Errorf("mark new index %s incomplete: %w", dir, err)
	}
	return x, true, nil
}

func badgerOptions(dir string, key []byte) badger.Options {
	return badger.DefaultOptions(dir).
		WithLogger(nil).
		WithNumVersionsToKeep(1).
		WithMemTableSize(16 << 20).
		WithBlockCacheSize(32 << 20).
		// Also what badger's encryption requires: a cache for the
		// decrypted table indexes.
		WithIndexCacheSize(16 << 20).
		WithEncryptionKey(key).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		// Values are a few dozen bytes, far below the value threshold,
		// so the value log holds next to nothing; badger maps twice
		// this size of it, and the default 1 GiB made every scan of
		// the directory read 2 GiB of holes.
		WithValueLogFileSize(16 << 20)
}

// clearIndexDir removes everything in dir but the lock file, which the
// caller holds (removing it would let another process lock a new one), and
// the space reserve.
func clearIndexDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read index directory %s: %w", dir, err)
	}
	for _, e := range ents {
		if e.Name() == LockName || e.Name() == ReserveName {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("remove damaged index file: %w", err)
		}
	}
	return nil
}

func (x *Index) Close() error {
	x.spaceBeforeClose()
	err := x.db.Close()
	x.spaceAfterClose()
	x.lock.Close()
	return err
}

// gc runs badger's value-log garbage collection, which badger never runs by
// itself, until it finds nothing worth rewriting.
func (x *Index) GC() {
	for x.db.RunValueLogGC(0.5) == nil {
	}
}

func chunkKey(id pack.ChunkID) []byte { return append([]byte{'c'}, id[:]...) }
func packKey(p pack.ID) []byte        { return append([]byte{'p'}, p[:]...) }
func metaKey(id string) []byte        { return append([]byte{'m'}, id...) }

func encodeLoc(l pack.Loc) []byte {
	b := make([]byte, 0, 41)
	b = append(b, l.Pack[:]...)
	b = binary.LittleEndian.AppendUint64(b, l.Offset)
	b = binary.LittleEndian.AppendUint32(b, l.StoredLen)
	b = binary.LittleEndian.AppendUint32(b, l.RawLen)
	b = append(b, l.Flags)
	return binary.LittleEndian.AppendUint64(b, l.Sum)
}

func decodeLoc(id pack.ChunkID, b []byte) (pack.Loc, error) {
	var l pack.Loc
	if len(b) != 41 {
		return l, fmt.Errorf("index entry for chunk %s: %w", id, pack.ErrCorrupt)
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

func encodePackInfo(pi PackInfo) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(pi.Created.UnixNano()))
	b = binary.LittleEndian.AppendUint64(b, uint64(pi.Length))
	b = binary.LittleEndian.AppendUint64(b, uint64(pi.ShardBytes))
	return binary.LittleEndian.AppendUint32(b, pi.Chunks)
}

func decodePackInfo(b []byte) (PackInfo, error) {
	if len(b) != 28 {
		return PackInfo{}, fmt.Errorf("index pack entry: %w", pack.ErrCorrupt)
	}
	return PackInfo{
		Created:    time.Unix(0, int64(binary.LittleEndian.Uint64(b))),
		Length:     int64(binary.LittleEndian.Uint64(b[8:])),
		ShardBytes: int64(binary.LittleEndian.Uint64(b[16:])),
		Chunks:     binary.LittleEndian.Uint32(b[24:]),
	}, nil
}

func (x *Index) Lookup(id pack.ChunkID) (pack.Loc, bool, error) {
	var loc pack.Loc
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
func (x *Index) AddPack(p pack.ID, pi PackInfo, entries []pack.Entry) error {
	if err := x.CheckSpace(); err != nil {
		return err
	}
	wb := x.db.NewWriteBatch()
	defer wb.Cancel()
	for _, e := range entries {
		if err := wb.Set(chunkKey(e.ID), encodeLoc(pack.Loc{Pack: p, Entry: e})); err != nil {
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
func (x *Index) RemovePack(p pack.ID, entries []pack.Entry) error {
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
			if len(v) >= 16 && pack.ID(v[:16]) == p {
				if err := txn.Delete(chunkKey(e.ID)); err != nil {
					return err
				}
			}
		}
		return txn.Delete(packKey(p))
	})
}

// PutMeta caches the metadata of checkpoint id (JSON, the repository's).
func (x *Index) PutMeta(id string, meta []byte) error {
	if err := x.CheckSpace(); err != nil {
		return err
	}
	return x.db.Update(func(txn *badger.Txn) error { return txn.Set(metaKey(id), meta) })
}

// DeleteMeta forgets the cached metadata of checkpoint id.
func (x *Index) DeleteMeta(id string) error {
	return x.db.Update(func(txn *badger.Txn) error { return txn.Delete(metaKey(id)) })
}

// GetMeta returns the cached metadata of checkpoint id.
func (x *Index) GetMeta(id string) ([]byte, bool) {
	var meta []byte
	_ = x.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(metaKey(id))
		if err != nil {
			return err
		}
		meta, err = item.ValueCopy(nil)
		return err
	})
	return meta, meta != nil
}

var rebuildKey = []byte("s/rebuilding")

// dropAll empties the index before a rebuild and marks it incomplete until
// finishRebuild, so a rebuild killed midway is redone at the next open.
func (x *Index) DropAll() error {
	if err := x.db.DropAll(); err != nil {
		return err
	}
	return x.db.Update(func(txn *badger.Txn) error { return txn.Set(rebuildKey, []byte{1}) })
}

func (x *Index) FinishRebuild() error {
	return x.db.Update(func(txn *badger.Txn) error { return txn.Delete(rebuildKey) })
}

func (x *Index) Rebuilding() bool {
	err := x.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(rebuildKey)
		return err
	})
	return err == nil
}

var seenPruneKey = []byte("s/prune-seen")

// seenPrune is the prune/last the index is known to be consistent with:
// every pack a prune up to that one deleted is gone from the index too.
func (x *Index) SeenPrune() []byte {
	var v []byte
	_ = x.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(seenPruneKey)
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	return v
}

func (x *Index) SetSeenPrune(m []byte) error {
	return x.db.Update(func(txn *badger.Txn) error {
		if len(m) == 0 {
			return txn.Delete(seenPruneKey)
		}
		return txn.Set(seenPruneKey, m)
	})
}

// packIDs lists the packs the index records.
func (x *Index) PackIDs() ([]pack.ID, error) {
	var ids []pack.ID
	err := x.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{'p'}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if k := it.Item().Key(); len(k) == 1+len(pack.ID{}) {
				ids = append(ids, pack.ID(k[1:]))
			}
		}
		return nil
	})
	return ids, err
}

// dropPacks removes the packs in gone and every chunk entry pointing into
// one of them; it returns how many chunk entries went.
func (x *Index) DropPacks(gone map[pack.ID]bool) (int, error) {
	var keys [][]byte
	err := x.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{'c'}, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			err := item.Value(func(v []byte) error {
				if len(v) >= 16 && gone[pack.ID(v[:16])] {
					keys = append(keys, item.KeyCopy(nil))
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	wb := x.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return 0, err
		}
	}
	for p := range gone {
		if err := wb.Delete(packKey(p)); err != nil {
			return 0, err
		}
	}
	return len(keys), wb.Flush()
}

// pack returns what the index records about pack p.
func (x *Index) Pack(p pack.ID) (PackInfo, bool, error) {
	var pi PackInfo
	found := false
	err := x.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(packKey(p))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			pi, err = decodePackInfo(v)
			found = err == nil
			return err
		})
	})
	return pi, found, err
}
