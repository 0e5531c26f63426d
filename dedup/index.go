package dedup

import (
	"crypto/hkdf"
	"crypto/sha256"
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
	db      *badger.DB
	lock    *os.File
	dir     string
	freeing bool // the command frees space: see index_space.go
	log     func(format string, args ...any)
}

type packInfo struct {
	Created     time.Time
	Length      int64
	ShardBytes  int64
	Chunks      uint32
	LiveUnknown bool
}

const indexLockName = "cairn.lock"

// indexOptions say how openIndex opens the index.
type indexOptions struct {
	// key encrypts the index with badger's own encryption (tables, value
	// log and write-ahead log); nil leaves it in clear. It is derived from
	// the repository's data key (indexKey), never the passphrase.
	key []byte
	// discard throws the index away unopened: `repo rebuild-index` must
	// work when badger cannot open it.
	discard bool
	// freeing marks a command that frees space (prune, forget): on a
	// nearly full disk it may use the space reserve and is not refused.
	freeing bool
	log     func(format string, args ...any)
}

// openIndex locks dir and opens the badger index in it. When the index is
// damaged, was written with another key (or none: releases before the index
// was encrypted wrote it in clear) or opts.discard is set, it empties dir,
// keeping the lock held throughout, and opens a new index; fresh then tells
// the caller to rebuild it from the shard stores.
func openIndex(dir string, opts indexOptions) (x *index, fresh bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create index directory %s: %w", dir, err)
	}
	// badger's own directory lock reports failure only as text; our flock
	// gives callers a sentinel to branch on.
	lf, err := os.OpenFile(filepath.Join(dir, indexLockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("open index lock: %w", err)
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, fmt.Errorf("%s: %w; wait for it to finish", dir, ErrIndexLocked)
		}
		return nil, false, fmt.Errorf("lock index: %w", err)
	}
	defer func() {
		if err != nil {
			lf.Close()
		}
	}()
	if err := prepareSpace(dir, opts.freeing, opts.log); err != nil {
		return nil, false, err
	}
	// Compacting level 0 on close rewrites tables: worth it only with
	// room to spare.
	free, total, err := diskSpace(dir)
	if err != nil {
		return nil, false, err
	}
	_, floor := spaceLimits(total)
	bopts := badgerOptions(dir, opts.key).WithCompactL0OnClose(free > 4*floor)
	newIndex := func(db *badger.DB) *index {
		return &index{db: db, lock: lf, dir: dir, freeing: opts.freeing, log: opts.log}
	}
	fresh = opts.discard
	if _, err := os.Stat(filepath.Join(dir, badger.ManifestFilename)); errors.Is(err, os.ErrNotExist) {
		// No index yet, or one whose removal was cut short: either
		// way it must be built from the shard stores.
		if !fresh {
			opts.log("index %s missing or incomplete: rebuilding it from the shard stores", dir)
		}
		fresh = true
	}
	if !fresh {
		if cerr := checkIndexFiles(dir, bopts); cerr != nil {
			if !errors.Is(cerr, errIndexFiles) {
				return nil, false, fmt.Errorf("check index %s: %w", dir, cerr)
			}
			opts.log("index %s is damaged (%v): rebuilding it from the shard stores", dir, cerr)
			fresh = true
		}
	}
	if !fresh {
		db, oerr := badger.Open(bopts)
		if oerr == nil {
			return newIndex(db), false, nil
		}
		if errors.Is(oerr, badger.ErrEncryptionKeyMismatch) && opts.key != nil {
			opts.log("index %s is not encrypted with this repository's key: rebuilding it encrypted from the shard stores", dir)
		} else {
			// The index is a cache of the shard stores: a process
			// killed while badger created its files can leave it
			// unopenable, and the cure is to start it over, not to
			// ask the operator.
			opts.log("index %s is damaged (%v): rebuilding it from the shard stores", dir, oerr)
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
		if e.Name() == indexLockName || e.Name() == indexReserveName {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("remove damaged index file: %w", err)
		}
	}
	return nil
}

// IndexRebuild returns what Open's rebuild of the index found, and false
// when Open found the index usable and did not rebuild it.
func (r *Repository) IndexRebuild() (RebuildIndexResult, bool) {
	if r.rebuilt == nil {
		return RebuildIndexResult{}, false
	}
	return *r.rebuilt, true
}

// indexKey is the key badger encrypts an encrypted repository's index with:
// checkpoint metadata cached there (sources, image names, tags) must not sit
// in clear beside a repository that encrypts it in the stores. It is derived
// from the data key with HKDF, so it is never the key itself, and bound to
// the repository's ID.
func indexKey(cfg *Config, keys *repoKeys) []byte {
	if keys.Data == nil {
		return nil
	}
	k, err := hkdf.Key(sha256.New, keys.Data, []byte(cfg.ID), "cairn index encryption v1", 32)
	if err != nil {
		panic(fmt.Sprintf("hkdf: %v", err)) // only for a length sha256 cannot give
	}
	return k
}

func (x *index) close() error {
	x.spaceBeforeClose()
	err := x.db.Close()
	x.spaceAfterClose()
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
	if err := x.checkSpace(); err != nil {
		return err
	}
	wb := x.db.NewWriteBatch()
	defer wb.Cancel()
	for _, e := range entries {
		if err := wb.Set(chunkKey(e.ID), encodeLoc(chunkLoc{Pack: p, Entry: e})); err != nil {
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
	if err := x.checkSpace(); err != nil {
		return err
	}
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
