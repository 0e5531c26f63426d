package dedup

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"
)

// Limits of the repository geometry.
const (
	minBlockSize     = 64 << 10
	maxBlockSize     = 16 << 20
	DefaultBlockSize = 4 << 20
	DefaultPackSize  = 32 << 20
	maxPackSize      = 1 << 30
	maxShards        = 64
	configName       = "config"
)

// Format versions, the config's "version" (docs/format.md §6.1). A cairn
// refuses a repository of a version it does not know, so that a release
// that cannot read framed blobs says so instead of calling them corrupt.
const (
	// configVersionWhole repositories hold whole blobs only (§9.1); cairn
	// still writes whole blobs into them, so that the releases that made
	// them keep reading them, until `cairn repo upgrade`.
	configVersionWhole = 1
	// configVersion repositories may hold framed blobs (§9.2).
	configVersion = 2
)

// Config is the repository configuration, stored as JSON in every shard store
// under "config" so that any one surviving store describes the repository.
type Config struct {
	Version      int       `json:"version"`
	ID           string    `json:"id"`
	CreatedAt    time.Time `json:"created_at"`
	BlockSize    int       `json:"block_size"`
	PackSize     int       `json:"pack_size"`
	DataShards   int       `json:"data_shards"`
	ParityShards int       `json:"parity_shards"`
	Compression  string    `json:"compression"` // "zstd" or "none"
	// IDKey is the chunk-ID hash key of an unencrypted repository. An
	// encrypted repository keeps it inside Encryption.Keys instead.
	IDKey      []byte      `json:"id_key,omitempty"`
	Encryption *Encryption `json:"encryption,omitempty"`
}

// Encryption describes how the repository's keys are protected.
type Encryption struct {
	Cipher string    `json:"cipher"` // "aes-256-gcm"
	KDF    KDFParams `json:"kdf"`
	// Keys is repoKeys as JSON, sealed with the key derived from the
	// passphrase (additional data "keys:" ‖ repository ID).
	Keys []byte `json:"keys"`
}

type repoKeys struct {
	Data []byte `json:"data"` // AES-256 key for blobs, headers, manifests
	ID   []byte `json:"id"`   // BLAKE3 key for chunk IDs
}

// InitOptions are the choices fixed at `cairn repo init`.
type InitOptions struct {
	BlockSize    int
	PackSize     int
	DataShards   int
	ParityShards int
	NoCompress   bool
	// Password, when set, encrypts the repository.
	Password []byte
}

func (o *InitOptions) fill() {
	if o.BlockSize == 0 {
		o.BlockSize = DefaultBlockSize
	}
	if o.PackSize == 0 {
		o.PackSize = DefaultPackSize
	}
	if o.DataShards == 0 {
		o.DataShards, o.ParityShards = 4, 2
	}
}

func (c *Config) validate() error {
	switch {
	case c.Version < configVersionWhole || c.Version > configVersion:
		return fmt.Errorf("config version %d (this cairn reads %d to %d; a newer cairn wrote it?): %w", c.Version, configVersionWhole, configVersion, ErrUnsupported)
	case c.BlockSize < minBlockSize || c.BlockSize > maxBlockSize || c.BlockSize&(c.BlockSize-1) != 0:
		return fmt.Errorf("block size %d: must be a power of two from 64 KiB to 16 MiB", c.BlockSize)
	case c.PackSize < 1<<20 || c.PackSize > maxPackSize:
		return fmt.Errorf("pack size %d: must be from 1 MiB to 1 GiB", c.PackSize)
	case c.DataShards < 1 || c.ParityShards < 0 || c.DataShards+c.ParityShards > maxShards:
		return fmt.Errorf("%d data + %d parity shards: need at least 1 data shard and at most %d in all",
			c.DataShards, c.ParityShards, maxShards)
	case c.Compression != "zstd" && c.Compression != "none":
		return fmt.Errorf("compression %q: %w", c.Compression, ErrUnsupported)
	case c.Encryption == nil && len(c.IDKey) != 32:
		return fmt.Errorf("config has no chunk-ID key: %w", ErrCorrupt)
	case c.Encryption != nil && c.Encryption.Cipher != "aes-256-gcm":
		return fmt.Errorf("cipher %q: %w", c.Encryption.Cipher, ErrUnsupported)
	}
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return b
}

// newConfig creates a configuration and its keys.
func newConfig(o InitOptions, now time.Time) (*Config, *repoKeys, error) {
	o.fill()
	cfg := &Config{
		Version: configVersion, ID: fmt.Sprintf("%x", randomBytes(16)), CreatedAt: now.UTC(),
		BlockSize: o.BlockSize, PackSize: o.PackSize, DataShards: o.DataShards, ParityShards: o.ParityShards,
		Compression: "zstd",
	}
	if o.NoCompress {
		cfg.Compression = "none"
	}
	keys := &repoKeys{Data: randomBytes(32), ID: randomBytes(32)}
	if len(o.Password) == 0 {
		cfg.IDKey = keys.ID
		keys.Data = nil
	} else {
		kdf, err := defaultKDF()
		if err != nil {
			return nil, nil, err
		}
		cfg.Encryption = &Encryption{Cipher: "aes-256-gcm", KDF: kdf}
		kek, err := kdf.derive(o.Password)
		if err != nil {
			return nil, nil, err
		}
		s, err := newSealer(kek)
		if err != nil {
			return nil, nil, err
		}
		plain, _ := json.Marshal(keys)
		cfg.Encryption.Keys = s.seal(nil, plain, []byte("keys:"+cfg.ID))
	}
	return cfg, keys, cfg.validate()
}

// openKeys returns the repository's keys, using password when encrypted.
func (c *Config) openKeys(password []byte) (*repoKeys, error) {
	if c.Encryption == nil {
		return &repoKeys{ID: c.IDKey}, nil
	}
	if len(password) == 0 {
		return nil, ErrNeedKey
	}
	kek, err := c.Encryption.KDF.derive(password)
	if err != nil {
		return nil, err
	}
	s, err := newSealer(kek)
	if err != nil {
		return nil, err
	}
	plain, err := s.open(nil, c.Encryption.Keys, []byte("keys:"+c.ID))
	if err != nil {
		return nil, ErrWrongKey
	}
	keys := new(repoKeys)
	if err := json.Unmarshal(plain, keys); err != nil || len(keys.Data) != 32 || len(keys.ID) != 32 {
		return nil, fmt.Errorf("repository keys: %w", ErrCorrupt)
	}
	return keys, nil
}

// parseConfig decodes and validates a config object.
func parseConfig(b []byte) (*Config, error) {
	cfg := new(Config)
	if err := json.Unmarshal(b, cfg); err != nil {
		return nil, fmt.Errorf("parse config: %v: %w", err, ErrCorrupt)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}
