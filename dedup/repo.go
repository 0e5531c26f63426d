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

	"golang.org/x/sync/singleflight"

	"cairn/dedup/compress"
	"cairn/dedup/erasure"
	"cairn/dedup/index"
	"cairn/dedup/store"
	"cairn/internal/atomicfile"
	"cairn/internal/bigbuf"
	"cairn/internal/lru"
)

// Repository is an open cairn repository. It is safe for concurrent use:
// several backups, restores and a prune may run at once in one process.
type Repository struct {
	dir    string
	cfg    *Config
	stores []store.Store
	obj    *erasure.Objects
	seal   *sealer
	hash   hasher
	idx    *index.Index // nil when opened without an index
	codec  *compress.Codec
	log    func(format string, args ...any)
	now    func() time.Time

	frameShift int // of new framed blobs; 0 writes them whole
	framePref  int // frameShift once the format allows frames (Upgrade)
	chunks     sharedCache[ChunkID]
	frames     sharedCache[frameKey] // frames range reads cover in part
	// plains and framePlains hold the buffers of decoded chunks and frames
	// that left their cache and every reader, for the next decode.
	plains, framePlains *bigbuf.Pool
	frameBufs           sync.Pool          // *frameBuffers of range reads
	fetchBufs           chan *chunkBuffers // read buffers of fetchChunk
	fetches             singleflight.Group
	fetching            sync.Map // chunkPlace of each fetch in r.fetches
	headers             *lru.Cache[PackID, []packEntry]
	// tables caches decoded frame tables of range reads, by pack and
	// chunk: a frame's place and checksum differ between two copies of a
	// chunk.
	tables *lru.Cache[chunkPlace, []frame]
	// deltaHeaders caches decoded delta headers (about 17 KiB each).
	deltaHeaders *lru.Cache[ChunkID, *deltaHeader]

	// gate orders dedup lookups against prune's sweep: a lookup that finds
	// a chunk pins it under the read lock, and the sweep decides and unlinks
	// packs under the write lock, so a chunk is either pinned before the
	// sweep looks or no longer findable after it.
	gate     sync.RWMutex
	sessions map[*session]struct{}
	// pruneMu serialises prunes. While one runs (pruning, guarded by gate),
	// endSession moves ended sessions to ended instead of forgetting them:
	// a backup that committed after prune's mark began is in no manifest
	// the mark read, so the sweep must keep honouring its pins.
	pruneMu sync.Mutex
	pruning bool
	ended   []*session

	scan packScan // chunk locations from pack headers, without an index

	rebuilt *RebuildIndexResult // set when Open rebuilt the index
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
	// CacheBytes bounds the caches of decoded chunks and, an eighth of it,
	// frames that range reads cover in part (default 256 MiB).
	CacheBytes int64
	// Log receives progress notes (index rebuilds); nil discards them.
	Log func(format string, args ...any)
	// Now is the clock; tests inject one. Default time.Now.
	Now func() time.Time
	// NoSync skips fsync in the local shard stores (tests and benchmarks).
	NoSync bool
	// FrameSize is the plaintext size of the frames new chunks are stored
	// in (docs/format.md §9.2): a power of two from 4 KiB to 128 MiB; 0
	// means 128 KiB, and a negative size stores chunks whole, as cairn did
	// before frames (benchmarks compare the two).
	FrameSize int
	// RebuildIndex throws the index away without opening it (badger may be
	// unable to) and rebuilds it from the shard stores during Open;
	// IndexRebuild then returns the counts.
	RebuildIndex bool
	// FreesSpace marks a command that frees space (prune, forget): on a
	// nearly full disk it may use the space cairn reserves beside the
	// index, where any other command that opens the index gets ErrNoSpace.
	FreesSpace bool
}

// locator is DIR/cairn.json: where the shard stores and index live. A
// repository in local directories lists them in Shards; one in a Backend
// names it and has the backend's own fields beside these (backend.go).
type locator struct {
	Version    int      `json:"version"`
	Backend    string   `json:"backend,omitempty"`
	Shards     []string `json:"shards,omitempty"`
	ShardCount int      `json:"shard_count,omitempty"`
	Index      string   `json:"index"`
}

const locatorName = "cairn.json"

// Dir returns the repository directory.
func (r *Repository) Dir() string { return r.dir }

// packHeaderCache is how many pack headers a repository keeps decoded;
// shardHeaderCache how many shard headers its erasure layer keeps.
const (
	packHeaderCache  = 4096
	shardHeaderCache = erasure.HeaderCache
	// frameTableCache bounds the frame tables a repository keeps decoded,
	// in frames (40 bytes each): 8,192 tables of 4 MiB chunks, 32 GiB of
	// volume, in 10 MiB.
	frameTableCache = 1 << 18
)

// newRepoConfig refuses a directory that already holds a repository and
// makes the configuration (and keys) of a new one.
func newRepoConfig(dir string, o InitOptions, opts Options) (*Config, error) {
	if _, err := os.Stat(filepath.Join(dir, locatorName)); err == nil {
		return nil, fmt.Errorf("%s: %w", dir, ErrRepositoryExists)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	cfg, _, err := newConfig(o, now())
	return cfg, err
}

// Init creates a repository in dir. shardDirs, when given, names the k+m
// shard store directories (for example on different disks); by default they
// are dir/shards/0 … dir/shards/k+m-1.
func Init(ctx context.Context, dir string, o InitOptions, shardDirs []string, opts Options) (*Repository, error) {
	cfg, err := newRepoConfig(dir, o, opts)
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
	err = writeConfigs(ctx, stores, cfg)
	closeStores(stores)
	if err != nil {
		return nil, err
	}
	lb, _ := json.MarshalIndent(loc, "", "  ")
	// The locator is written last: a crashed init leaves no repository.
	if err := atomicfile.Write(filepath.Join(dir, locatorName), lb, 0o600); err != nil {
		return nil, err
	}
	return Open(ctx, dir, opts)
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
	err = json.Unmarshal(lb, &loc)
	local := loc.Backend == "" || loc.Backend == "local"
	if err != nil || (local && len(loc.Shards) == 0) || (!local && loc.ShardCount < 1) {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, locatorName), ErrCorrupt)
	}
	if loc.Version != 1 {
		return nil, fmt.Errorf("%s version %d: %w", filepath.Join(dir, locatorName), loc.Version, ErrUnsupported)
	}
	var stores []store.Store
	if local {
		stores, err = openLocalStores(dir, loc, opts)
	} else {
		stores, err = backendStores(ctx, loc.Backend, lb, loc.ShardCount)
	}
	if err != nil {
		return nil, err
	}
	indexDir := opts.IndexDir
	if indexDir == "" {
		indexDir = loc.Index
		if indexDir == "" {
			indexDir = "index"
		}
		if !filepath.IsAbs(indexDir) {
			indexDir = filepath.Join(dir, indexDir)
		}
	}
	if opts.NoIndex {
		indexDir = ""
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
	cfg, err := readConfig(ctx, stores, opts.Log)
	if err != nil {
		return nil, err
	}
	if cfg.Encryption == nil && len(opts.Password) > 0 {
		// Refusing here means a config swapped for an unencrypted one by
		// someone with write access cannot make new backups land in clear.
		return nil, fmt.Errorf("a key was given but the repository is not encrypted; unset CAIRN_PASSWORD/--key-file to open it")
	}
	// Before argon2id's 64 MiB, the first of the large allocations.
	bigbuf.PrimeHeap()
	keys, err := cfg.openKeys(opts.Password)
	if err != nil {
		return nil, err
	}
	obj, err := erasure.New(cfg.DataShards, cfg.ParityShards, stores, maxObjectLen)
	if err != nil {
		return nil, err
	}
	r := &Repository{
		cfg: cfg, stores: stores, obj: obj, log: opts.Log, now: opts.Now,
		headers:  lru.New[PackID, []packEntry](packHeaderCache),
		tables:   lru.New[chunkPlace, []frame](frameTableCache),
		sessions: make(map[*session]struct{}),
	}
	if r.log == nil {
		r.log = func(string, ...any) {}
	}
	if r.now == nil {
		r.now = time.Now
	}
	r.hash.setKey(keys.ID)
	if keys.Data != nil {
		if r.seal, err = newSealer(keys.Data); err != nil {
			return nil, err
		}
	}
	if r.framePref, err = frameShiftOf(opts.FrameSize); err != nil {
		return nil, err
	}
	if cfg.Version >= configVersion {
		r.frameShift = r.framePref
	}
	r.frameBufs.New = func() any { return &frameBuffers{} }
	r.fetchBufs = make(chan *chunkBuffers, fetchBuffers)
	cache := opts.CacheBytes
	if cache == 0 {
		cache = 256 << 20
	}
	// Range reads keep the frames they cover in part apart from whole
	// chunks (FUSE read-ahead, chunks stored whole), so that a sequential
	// reader does not flush them: an eighth of the budget.
	r.chunks = newSharedCache[ChunkID](cache - cache/8)
	r.frames = newSharedCache[frameKey](cache / 8)
	r.plains, r.framePlains = bigbuf.NewPool(8), bigbuf.NewSlabPool(64, 1<<defaultFrameShift+frameSlack)
	r.deltaHeaders = lru.New[ChunkID, *deltaHeader](1024)
	r.codec = compress.New()
	if indexDir != "" {
		var fresh bool
		r.idx, fresh, err = index.Open(indexDir, index.Options{Key: indexKey(cfg, keys), Discard: opts.RebuildIndex, Freeing: opts.FreesSpace, Log: r.log})
		if err != nil {
			return nil, err
		}
		if fresh || r.idx.Rebuilding() {
			if !fresh {
				r.log("index %s missing or incomplete: rebuilding it from the shard stores", indexDir)
			}
			res, err := r.RebuildIndex(ctx)
			if err != nil {
				r.idx.Close()
				return nil, err
			}
			r.rebuilt = &res
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
		r.idx.GC()
		errs = append(errs, r.idx.Close())
	}
	for _, s := range r.stores {
		errs = append(errs, s.Close())
	}
	r.codec.Close()
	return errors.Join(errs...)
}

// blobScratch holds one backup worker's reusable output buffers: a fresh
// block-sized buffer per chunk cost a quarter of backup CPU in zeroing.
type blobScratch struct{ z, s, t, h []byte }

// encodeBlob compresses (when it saves space) and seals one chunk. The result
// may alias raw or the scratch buffers: it is valid until the next call with
// the same scratch, and the packer copies it before that. hashes are raw's
// page hashes when the caller has them already (nil: worked out here).
func (r *Repository) encodeBlob(id ChunkID, raw []byte, sc *blobScratch, hashes []byte) (stored []byte, flags uint8) {
	if r.frameShift > 0 && len(raw) > pageSize {
		if hashes == nil {
			sc.h = r.hash.appendPageHashes(sc.h[:0], raw)
			hashes = sc.h
		}
		return r.encodeFramed(id, raw, sc, r.frameShift, hashes)
	}
	payload := raw
	if r.cfg.Compression == "zstd" {
		sc.z = r.codec.Compress(sc.z, raw)
		if len(sc.z) < len(raw)-len(raw)/64 {
			payload, flags = sc.z, blobCompressed
		}
	}
	if r.seal == nil {
		return payload, flags
	}
	sc.s = r.seal.seal(sc.s[:0], payload, id[:])
	return sc.s, flags
}

// decodeBlob reverses encodeBlob and checks the result hashes to id. It
// decrypts in place, so stored is spent; a compressed blob is
// decompressed into dst (grown when short). The result aliases stored or
// dst.
func (r *Repository) decodeBlob(e packEntry, stored, dst []byte) ([]byte, error) {
	if e.Flags&blobDelta != 0 {
		// Its pages lie in other chunks too: decodeDelta reads them.
		return nil, fmt.Errorf("chunk %s is a delta: decodeBlob cannot read it alone", e.ID)
	}
	if e.Flags&blobFramed != 0 {
		return r.decodeFramed(e, stored, dst)
	}
	plain, err := r.seal.openInPlace(stored, e.ID[:])
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", e.ID, err)
	}
	if e.Flags&blobCompressed != 0 {
		if cap(dst) < int(e.RawLen) {
			dst = bigbuf.Make(int(e.RawLen))
		}
		n, err := r.codec.Decompress(dst[:e.RawLen], plain)
		if err != nil {
			return nil, fmt.Errorf("decompress chunk %s: %v: %w", e.ID, err, ErrCorrupt)
		}
		plain = dst[:n]
	}
	if len(plain) != int(e.RawLen) || r.hash.id(plain) != e.ID {
		return nil, fmt.Errorf("chunk %s does not hash to its ID: %w", e.ID, ErrCorrupt)
	}
	return plain, nil
}

var _ io.Closer = (*Repository)(nil)

// readConfig reads the config copy of every store and takes the majority
// of the valid ones (chooseConfig), warning through log about the others.
func readConfig(ctx context.Context, stores []store.Store, log func(string, ...any)) (*Config, error) {
	copies := make([]configCopy, len(stores))
	for i, s := range stores {
		copies[i] = readConfigCopy(ctx, i, s)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	ch, err := chooseConfig(copies)
	if err != nil {
		return nil, err
	}
	warnConfigDamage(log, copies, ch.damage)
	return ch.cfg, nil
}

// storeEmpty reports whether s holds nothing but a config.
func storeEmpty(ctx context.Context, s store.Store) bool {
	empty := true
	_ = s.List(ctx, "", func(name string, _ int64) error {
		if name != configName {
			empty = false
			return errors.New("stop")
		}
		return nil
	})
	return empty
}
