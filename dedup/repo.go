package dedup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"cairn/dedup/store"
)

// Repository is an open cairn repository. It is safe for concurrent use:
// several backups, restores and a prune may run at once in one process.
type Repository struct {
	dir    string
	cfg    *Config
	stores []store.Store
	obj    *coded
	seal   *sealer
	hash   hasher
	idx    *index // nil when opened without an index
	zenc   *zstd.Encoder
	zdec   *zstd.Decoder
	log    func(format string, args ...any)
	now    func() time.Time

	chunks  *lru[ChunkID, []byte]
	headers *lru[PackID, []packEntry]

	// gate orders dedup lookups against prune's sweep: a lookup that finds
	// a chunk pins it under the read lock, and the sweep decides and unlinks
	// packs under the write lock, so a chunk is either pinned before the
	// sweep looks or no longer findable after it.
	gate     sync.RWMutex
	sessions map[*session]struct{}

	scanOnce sync.Once
	scanned  map[ChunkID]chunkLoc
	scanErr  error
}

// Options tune how a repository is opened.
type Options struct {
	// Password opens an encrypted repository (passphrase or key file bytes).
	Password []byte
	// IndexDir overrides where the badger index lives (default DIR/index).
	IndexDir string
	// NoIndex opens without badger: enough for restores and reads, which
	// then find chunks through the manifest's pack hints and pack headers.
	NoIndex bool
	// CacheBytes bounds the decoded-chunk cache (default 256 MiB).
	CacheBytes int64
	// Log receives progress notes (index rebuilds); nil discards them.
	Log func(format string, args ...any)
	// Now is the clock; tests inject one. Default time.Now.
	Now func() time.Time
	// NoSync skips fsync in the local shard stores (tests and benchmarks).
	NoSync bool
}

// locator is DIR/cairn.json: where the shard stores and index live.
type locator struct {
	Version int      `json:"version"`
	Shards  []string `json:"shards"`
	Index   string   `json:"index"`
}

const locatorName = "cairn.json"

// Init creates a repository in dir. shardDirs, when given, names the k+m
// shard store directories (for example on different disks); by default they
// are dir/shards/0 … dir/shards/k+m-1.
func Init(ctx context.Context, dir string, o InitOptions, shardDirs []string, opts Options) (*Repository, error) {
	if _, err := os.Stat(filepath.Join(dir, locatorName)); err == nil {
		return nil, fmt.Errorf("%s: %w", dir, ErrRepositoryExists)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	cfg, _, err := newConfig(o, now())
	if err != nil {
		return nil, err
	}
	n := cfg.DataShards + cfg.ParityShards
	if len(shardDirs) == 0 {
		for i := 0; i < n; i++ {
			shardDirs = append(shardDirs, filepath.Join("shards", fmt.Sprint(i)))
		}
	} else if len(shardDirs) != n {
		return nil, fmt.Errorf("%d shard directories given for %d+%d shards", len(shardDirs), cfg.DataShards, cfg.ParityShards)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	loc := locator{Version: 1, Shards: shardDirs, Index: "index"}
	stores, err := openLocalStores(dir, loc, opts)
	if err != nil {
		return nil, err
	}
	cb, _ := json.MarshalIndent(cfg, "", "  ")
	for i, s := range stores {
		if _, err := s.Stat(ctx, configName); err == nil {
			closeStores(stores)
			return nil, fmt.Errorf("shard store %d (%s): %w", i, s, ErrRepositoryExists)
		}
		if err := s.Put(ctx, configName, cb); err != nil {
			closeStores(stores)
			return nil, fmt.Errorf("write config: %w", err)
		}
	}
	closeStores(stores)
	lb, _ := json.MarshalIndent(loc, "", "  ")
	// The locator is written last: a crashed init leaves no repository.
	if err := writeFileAtomic(filepath.Join(dir, locatorName), lb); err != nil {
		return nil, err
	}
	return Open(ctx, dir, opts)
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func openLocalStores(dir string, loc locator, opts Options) ([]store.Store, error) {
	var stores []store.Store
	for _, p := range loc.Shards {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		s, err := store.OpenLocal(p, store.LocalOptions{NoSync: opts.NoSync})
		if err != nil {
			closeStores(stores)
			return nil, fmt.Errorf("open shard store %s: %w", p, err)
		}
		stores = append(stores, s)
	}
	return stores, nil
}

func closeStores(stores []store.Store) {
	for _, s := range stores {
		s.Close()
	}
}

// Open opens the repository in dir.
func Open(ctx context.Context, dir string, opts Options) (*Repository, error) {
	lb, err := os.ReadFile(filepath.Join(dir, locatorName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoRepository)
	}
	if err != nil {
		return nil, err
	}
	var loc locator
	if err := json.Unmarshal(lb, &loc); err != nil || len(loc.Shards) == 0 {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, locatorName), ErrCorrupt)
	}
	stores, err := openLocalStores(dir, loc, opts)
	if err != nil {
		return nil, err
	}
	indexDir := opts.IndexDir
	if indexDir == "" && !opts.NoIndex {
		indexDir = filepath.Join(dir, loc.Index)
	}
	r, err := openStores(ctx, stores, indexDir, opts)
	if err != nil {
		closeStores(stores)
		return nil, err
	}
	r.dir = dir
	return r, nil
}

// openStores opens a repository over already opened shard stores; an empty
// indexDir means no index.
func openStores(ctx context.Context, stores []store.Store, indexDir string, opts Options) (*Repository, error) {
	var cfg *Config
	var errs []error
	for i, s := range stores {
		b, err := s.Get(ctx, configName)
		if err == nil {
			if cfg, err = parseConfig(b); err == nil {
				break
			}
		}
		errs = append(errs, fmt.Errorf("shard store %d: %w", i, err))
	}
	if cfg == nil {
		if allNotFound(errs) {
			return nil, ErrNoRepository
		}
		return nil, fmt.Errorf("no readable config: %w", errors.Join(errs...))
	}
	keys, err := cfg.openKeys(opts.Password)
	if err != nil {
		return nil, err
	}
	obj, err := newCoded(cfg.DataShards, cfg.ParityShards, stores)
	if err != nil {
		return nil, err
	}
	r := &Repository{
		cfg: cfg, stores: stores, obj: obj, log: opts.Log, now: opts.Now,
		headers:  newLRU[PackID, []packEntry](4096),
		sessions: make(map[*session]struct{}),
	}
	if r.log == nil {
		r.log = func(string, ...any) {}
	}
	if r.now == nil {
		r.now = time.Now
	}
	copy(r.hash.key[:], keys.ID)
	if keys.Data != nil {
		if r.seal, err = newSealer(keys.Data); err != nil {
			return nil, err
		}
	}
	cache := opts.CacheBytes
	if cache == 0 {
		cache = 256 << 20
	}
	r.chunks = newLRU[ChunkID, []byte](cache)
	r.zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	r.zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(2*maxBlockSize))
	if indexDir != "" {
		_, statErr := os.Stat(indexDir)
		if r.idx, err = openIndex(indexDir); err != nil {
			return nil, err
		}
		if errors.Is(statErr, os.ErrNotExist) {
			r.log("index %s missing: rebuilding it from the shard stores", indexDir)
			if _, err := r.RebuildIndex(ctx); err != nil {
				r.idx.close()
				return nil, err
			}
		}
	}
	return r, nil
}

// Config returns a copy of the repository configuration.
func (r *Repository) Config() Config { return *r.cfg }

// Encrypted reports whether blobs and manifests are encrypted.
func (r *Repository) Encrypted() bool { return r.seal != nil }

// Close releases the index and the shard stores.
func (r *Repository) Close() error {
	var errs []error
	if r.idx != nil {
		r.idx.gc()
		errs = append(errs, r.idx.close())
	}
	for _, s := range r.stores {
		errs = append(errs, s.Close())
	}
	r.zenc.Close()
	r.zdec.Close()
	return errors.Join(errs...)
}

// encodeBlob compresses (when it saves space) and seals one chunk. The result
// may alias raw.
func (r *Repository) encodeBlob(id ChunkID, raw []byte) (stored []byte, flags uint8) {
	payload := raw
	if r.cfg.Compression == "zstd" {
		c := r.zenc.EncodeAll(raw, make([]byte, 0, len(raw)))
		if len(c) < len(raw)-len(raw)/64 {
			payload, flags = c, blobCompressed
		}
	}
	if r.seal == nil {
		return payload, flags // may alias raw: the packer copies it
	}
	return r.seal.seal(make([]byte, 0, len(payload)+r.seal.overhead()), payload, id[:]), flags
}

// decodeBlob reverses encodeBlob and checks the result hashes to id.
func (r *Repository) decodeBlob(e packEntry, stored []byte) ([]byte, error) {
	plain, err := r.seal.open(nil, stored, e.ID[:])
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", e.ID, err)
	}
	if e.Flags&blobCompressed != 0 {
		if plain, err = r.zdec.DecodeAll(plain, make([]byte, 0, e.RawLen)); err != nil {
			return nil, fmt.Errorf("decompress chunk %s: %v: %w", e.ID, err, ErrCorrupt)
		}
	}
	if len(plain) != int(e.RawLen) || r.hash.id(plain) != e.ID {
		return nil, fmt.Errorf("chunk %s does not hash to its ID: %w", e.ID, ErrCorrupt)
	}
	return plain, nil
}

var _ io.Closer = (*Repository)(nil)
