package dedup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"cairn/dedup/store"

	"cairn/internal/atomicfile"
)

// Backend is where the shard stores of a repository live when they are not
// local directories (RADOS pools, for one). The locator, DIR/cairn.json,
// names the backend in its "backend" field and carries the backend's own
// fields beside cairn's ("version", "index", "shard_count").
type Backend interface {
	// Store opens shard store i (0 ≤ i < k+m). An error for some i means
	// the locator provides no store i.
	Store(ctx context.Context, i int) (store.Store, error)
	// Close releases the backend. Stores opened from it stay usable until
	// they are closed themselves.
	Close() error
}

// BackendOpener connects to a backend described by locator, the whole
// cairn.json.
type BackendOpener func(ctx context.Context, locator []byte) (Backend, error)

// ErrUnknownBackend means cairn.json names a backend this build cannot
// open (for example "rados" in a build without Ceph).
var ErrUnknownBackend = errors.New("unknown repository backend")

var (
	backendsMu sync.RWMutex
	backends   = map[string]BackendOpener{}
)

// RegisterBackend makes Init, Open and Connect able to use backend name. The
// program wires its backends once, at start-up, before opening anything.
func RegisterBackend(name string, open BackendOpener) {
	backendsMu.Lock()
	defer backendsMu.Unlock()
	backends[name] = open
}

func openBackend(ctx context.Context, name string, locator []byte) (Backend, error) {
	backendsMu.RLock()
	open, ok := backends[name]
	backendsMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%q: %w (this cairn was built without it)", name, ErrUnknownBackend)
	}
	return open(ctx, locator)
}

// backendStores opens the n shard stores of a backend repository.
func backendStores(ctx context.Context, name string, lb []byte, n int) ([]store.Store, error) {
	b, err := openBackend(ctx, name, lb)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	stores := make([]store.Store, 0, n)
	for i := range n {
		s, err := b.Store(ctx, i)
		if err != nil {
			closeStores(stores)
			return nil, fmt.Errorf("open shard store %d: %w", i, err)
		}
		stores = append(stores, s)
	}
	return stores, nil
}

// backendLocator merges cairn's locator fields into the JSON object that
// fields (a backend's locator struct, with a "backend" field) encodes.
func backendLocator(fields any, shards int) ([]byte, string, error) {
	fb, err := json.Marshal(fields)
	if err != nil {
		return nil, "", err
	}
	m := map[string]any{}
	if err := json.Unmarshal(fb, &m); err != nil {
		return nil, "", fmt.Errorf("backend locator is not a JSON object: %w", err)
	}
	name, _ := m["backend"].(string)
	if name == "" || name == "local" {
		return nil, "", errors.New(`backend locator needs a "backend" other than "local"`)
	}
	m["version"], m["shard_count"] = 1, shards
	if _, ok := m["index"]; !ok {
		m["index"] = "index"
	}
	lb, err := json.MarshalIndent(m, "", "  ")
	return lb, name, err
}

// InitWith creates a repository whose shard stores live in a registered
// backend; dir keeps only the locator and the index. locator is the
// backend's part of cairn.json (a struct with a "backend" field).
func InitWith(ctx context.Context, dir string, o InitOptions, locator any, opts Options) (*Repository, error) {
	cfg, err := newRepoConfig(dir, o, opts)
	if err != nil {
		return nil, err
	}
	lb, name, err := backendLocator(locator, cfg.DataShards+cfg.ParityShards)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	stores, err := backendStores(ctx, name, lb, cfg.DataShards+cfg.ParityShards)
	if err != nil {
		return nil, err
	}
	err = writeConfigs(ctx, stores, cfg)
	closeStores(stores)
	if err != nil {
		return nil, err
	}
	// The locator is written last: a crashed init leaves no repository.
	if err := atomicfile.Write(filepath.Join(dir, locatorName), lb, 0o600); err != nil {
		return nil, err
	}
	return Open(ctx, dir, opts)
}

// Connect makes dir a local handle (locator and index) on an existing
// repository in a backend: it finds the configuration in the backend's
// shard stores, writes the locator, and opens the repository, which builds
// the index from the stores. Several directories, on one host or several,
// may connect to the same repository.
func Connect(ctx context.Context, dir string, locator any, opts Options) (*Repository, error) {
	if _, err := os.Stat(filepath.Join(dir, locatorName)); err == nil {
		return nil, fmt.Errorf("%s: %w", dir, ErrRepositoryExists)
	}
	lb, name, err := backendLocator(locator, 1)
	if err != nil {
		return nil, err
	}
	b, err := openBackend(ctx, name, lb)
	if err != nil {
		return nil, err
	}
	cfg, err := probeConfig(ctx, b, opts.Log)
	b.Close()
	if err != nil {
		return nil, err
	}
	if lb, _, err = backendLocator(locator, cfg.DataShards+cfg.ParityShards); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	if err := atomicfile.Write(filepath.Join(dir, locatorName), lb, 0o600); err != nil {
		return nil, err
	}
	return Open(ctx, dir, opts)
}

// probeConfig reads the config copy of every shard store the backend has
// and takes the majority of the valid ones: store 0 may be the lost one, and
// any one copy may be damaged.
func probeConfig(ctx context.Context, b Backend, log func(string, ...any)) (*Config, error) {
	var copies []configCopy
	for i := range maxShards {
		s, err := b.Store(ctx, i)
		if err != nil {
			break // the backend has no store i
		}
		copies = append(copies, readConfigCopy(ctx, i, s))
		s.Close()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if len(copies) == 0 {
		return nil, ErrNoRepository
	}
	ch, err := chooseConfig(copies)
	if err != nil {
		return nil, err
	}
	// Stores past k+m belong to no repository of this geometry.
	n := ch.cfg.DataShards + ch.cfg.ParityShards
	copies = copies[:min(n, len(copies))]
	warnConfigDamage(log, copies, slices.DeleteFunc(ch.damage, func(d ShardDamage) bool { return d.Shard >= n }))
	return ch.cfg, nil
}

// writeConfigs stores cfg in every shard store, refusing stores that already
// hold a repository.
func writeConfigs(ctx context.Context, stores []store.Store, cfg *Config) error {
	cb, _ := json.MarshalIndent(cfg, "", "  ")
	for i, s := range stores {
		if _, err := s.Stat(ctx, configName); err == nil && !storeEmpty(ctx, s) {
			// A config alone is what a crashed init leaves (the locator is
			// written last); a store with data is a real repository.
			return fmt.Errorf("shard store %d (%s): %w", i, s, ErrRepositoryExists)
		}
		if err := s.Put(ctx, configName, cb); err != nil {
			return fmt.Errorf("write config: %w", err)
		}
	}
	return nil
}
