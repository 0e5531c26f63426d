package dedup

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/json"
	"fmt"
)

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

// cacheMeta keeps checkpoint cp's metadata in the index, so that listings
// need not read every manifest.
func (r *Repository) cacheMeta(cp *Checkpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	return r.idx.PutMeta(cp.ID, b)
}

// cachedMeta returns checkpoint id's metadata from the index.
func (r *Repository) cachedMeta(id string) (*Checkpoint, bool) {
	b, ok := r.idx.GetMeta(id)
	if !ok {
		return nil, false
	}
	cp := new(Checkpoint)
	if json.Unmarshal(b, cp) != nil {
		return nil, false
	}
	return cp, true
}
