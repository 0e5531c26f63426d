package dedup

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"cairn/dedup/index"
	"cairn/dedup/pack"
	"cairn/dedup/store"
)

func (r *Repository) encodeManifest(cp *Checkpoint, bm *BlockMap) ([]byte, error) {
	body, err := encodeManifestBody(cp, bm)
	if err != nil {
		return nil, err
	}
	if uint64(len(body)) > maxManifestBody {
		return nil, fmt.Errorf("manifest of %d bytes is too large", len(body))
	}
	z := r.codec.Compress(nil, body)
	flags := byte(0)
	if r.seal != nil {
		flags = 1
	}
	out := append([]byte(manifestMagic), manifestVersion, flags, 0, 0)
	return r.seal.seal(out, z, manifestAD(cp.ID)), nil
}

func (r *Repository) decodeManifest(id string, b []byte, withMap bool) (*Checkpoint, *BlockMap, error) {
	if len(b) < 8 || string(b[:4]) != manifestMagic {
		return nil, nil, fmt.Errorf("manifest %s: bad magic: %w", id, ErrCorrupt)
	}
	if b[4] != manifestVersion {
		return nil, nil, fmt.Errorf("manifest %s version %d: %w", id, b[4], ErrUnsupported)
	}
	if b[5] > 1 || b[6] != 0 || b[7] != 0 {
		return nil, nil, fmt.Errorf("manifest %s: unknown flags: %w", id, ErrCorrupt)
	}
	if (b[5] == 1) != (r.seal != nil) {
		return nil, nil, fmt.Errorf("manifest %s encryption flag disagrees with the repository: %w", id, ErrCorrupt)
	}
	z, err := r.seal.open(nil, b[8:], manifestAD(id))
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w", id, err)
	}
	n, err := manifestBodySize(z)
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w", id, err)
	}
	body := make([]byte, n)
	got, err := r.codec.Decompress(body, z)
	if err == nil && got != n {
		err = fmt.Errorf("body of %d bytes, its frame declares %d", got, n)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s: decompress: %v: %w", id, err, ErrCorrupt)
	}
	cp, bm, err := decodeManifestBody(body, withMap)
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w", id, err)
	}
	if cp.ID != id {
		return nil, nil, fmt.Errorf("manifest %s claims ID %s: %w", id, cp.ID, ErrCorrupt)
	}
	return cp, bm, nil
}

// commit makes a checkpoint visible: its manifest is written as one coded
// object, and a checkpoint exists exactly when at least k shards of its
// manifest do (see docs/format.md, "Commit").
func (r *Repository) commit(ctx context.Context, cp *Checkpoint, bm *BlockMap) error {
	if err := r.checkParentChunks(ctx, cp, bm); err != nil {
		return err
	}
	b, err := r.encodeManifest(cp, bm)
	if err != nil {
		return fmt.Errorf("encode manifest %s: %w", cp.ID, err)
	}
	if _, err := r.obj.Put(ctx, manifestName(cp.ID), b); err != nil {
		// Some shards may have landed: remove them so that a commit that
		// reported failure does not surface as a checkpoint. If this fails
		// too, the checkpoint is complete data-wise and verify reports it.
		if derr := r.obj.Delete(context.WithoutCancel(ctx), manifestName(cp.ID)); derr != nil {
			r.log("could not withdraw failed commit %s: %v", cp.ID, derr)
		}
		return fmt.Errorf("commit checkpoint %s: %w", cp.ID, err)
	}
	if r.idx != nil {
		if err := r.cacheMeta(cp); err != nil {
			r.log("checkpoint %s committed but not cached in the index: %v", cp.ID, err)
		}
	}
	return nil
}

// LoadCheckpoint reads a checkpoint's metadata and block map. id may be a
// unique prefix.
func (r *Repository) LoadCheckpoint(ctx context.Context, id string) (*Checkpoint, *BlockMap, error) {
	full, err := r.ResolveID(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	b, err := r.obj.Get(ctx, manifestName(full))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, fmt.Errorf("%s: %w", id, ErrCheckpointNotFound)
		}
		return nil, nil, fmt.Errorf("read manifest %s: %w", full, err)
	}
	return r.decodeManifest(full, b, true)
}

// manifestIDs lists committed checkpoints: manifests with at least k shards.
// Fewer means a commit died midway; such a manifest is not a checkpoint.
func (r *Repository) manifestIDs(ctx context.Context) ([]string, error) {
	var ids []string
	err := r.obj.List(ctx, "manifests/", func(name string, shards int) error {
		if shards >= r.cfg.DataShards {
			ids = append(ids, strings.TrimPrefix(name, "manifests/"))
		}
		return nil
	})
	sort.Strings(ids)
	return ids, err
}

// ResolveID expands a unique ID prefix to a full checkpoint ID.
func (r *Repository) ResolveID(ctx context.Context, prefix string) (string, error) {
	if prefix == "" {
		return "", fmt.Errorf("empty checkpoint ID: %w", ErrCheckpointNotFound)
	}
	if isFullID(prefix) {
		// A whole ID needs no listing, whose cost grows with the number
		// of checkpoints: it names a checkpoint if k of its manifest's
		// shards exist, as manifestIDs would count them.
		n, err := r.obj.ShardCount(ctx, manifestName(prefix))
		if n < r.cfg.DataShards {
			if err != nil {
				return "", err
			}
			return "", fmt.Errorf("%s: %w", prefix, ErrCheckpointNotFound)
		}
		return prefix, nil
	}
	ids, err := r.manifestIDs(ctx)
	if err != nil {
		return "", err
	}
	var match []string
	for _, id := range ids {
		if id == prefix {
			return id, nil
		}
		if strings.HasPrefix(id, prefix) {
			match = append(match, id)
		}
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("%s: %w", prefix, ErrCheckpointNotFound)
	case 1:
		return match[0], nil
	}
	return "", fmt.Errorf("%s matches %d checkpoints: %w", prefix, len(match), ErrAmbiguousID)
}

// Checkpoints lists every committed checkpoint, oldest first. The shard
// stores are the truth; the index only saves decoding manifests.
func (r *Repository) Checkpoints(ctx context.Context) ([]*Checkpoint, error) {
	ids, err := r.manifestIDs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Checkpoint, 0, len(ids))
	for _, id := range ids {
		if r.idx != nil {
			if cp, ok := r.cachedMeta(id); ok {
				out = append(out, cp)
				continue
			}
		}
		b, err := r.obj.Get(ctx, manifestName(id))
		if err != nil {
			return nil, fmt.Errorf("read manifest %s: %w", id, err)
		}
		cp, _, err := r.decodeManifest(id, b, false)
		if err != nil {
			return nil, err
		}
		if r.idx != nil {
			_ = r.cacheMeta(cp)
		}
		out = append(out, cp)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Latest returns the newest checkpoint of source, or nil.
func (r *Repository) Latest(ctx context.Context, source string) (*Checkpoint, error) {
	cps, err := r.Checkpoints(ctx)
	if err != nil {
		return nil, err
	}
	for i := len(cps) - 1; i >= 0; i-- {
		if cps[i].Source == source {
			return cps[i], nil
		}
	}
	return nil, nil
}

// DeleteCheckpoint removes one checkpoint. Its data stays until prune finds
// it unreferenced; no other checkpoint depends on it.
func (r *Repository) DeleteCheckpoint(ctx context.Context, id string) error {
	full, err := r.ResolveID(ctx, id)
	if err != nil {
		return err
	}
	if err := r.obj.Delete(ctx, manifestName(full)); err != nil {
		return fmt.Errorf("delete checkpoint %s: %w", full, err)
	}
	if r.idx != nil {
		if err := r.idx.DeleteMeta(full); err != nil {
			return fmt.Errorf("forget checkpoint %s in the index: %w", full, err)
		}
	}
	return nil
}

// RebuildIndexResult summarises a rebuild.
type RebuildIndexResult struct {
	Packs       int `json:"packs"`
	Chunks      int `json:"chunks"`
	Checkpoints int `json:"checkpoints"`
	BadPacks    int `json:"unreadable_packs"`
}

// preferWhole drops from entries the delta copies of chunks the index
// already has stored whole: prune rewrote those whole, and their delta
// copies may refer to chunks that are gone.
func (r *Repository) preferWhole(entries []packEntry) ([]packEntry, error) {
	out := make([]packEntry, 0, len(entries))
	for _, e := range entries {
		if e.Flags&blobDelta != 0 {
			loc, ok, err := r.idx.Lookup(e.ID)
			if err != nil {
				return nil, fmt.Errorf("index lookup %s: %w", e.ID, err)
			}
			if ok && loc.Flags&blobDelta == 0 {
				continue
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// RebuildIndex recreates the index from the shard stores alone.
func (r *Repository) RebuildIndex(ctx context.Context) (RebuildIndexResult, error) {
	var res RebuildIndexResult
	if r.idx == nil {
		return res, errors.New("repository opened without an index")
	}
	marker, markerErr := r.readPruneMarker(ctx)
	if err := r.idx.DropAll(); err != nil {
		return res, fmt.Errorf("clear index: %w", err)
	}
	err := r.listPacks(ctx, func(p PackID) error {
		entries, err := r.packHeader(ctx, p)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.log("pack %s unreadable, not indexed: %v", p, err)
			res.BadPacks++
			return nil
		}
		n, _ := r.obj.Length(ctx, pack.Name(p))
		pi := index.PackInfo{Created: r.packTime(ctx, p), Length: n, ShardBytes: r.shardBytes(ctx, pack.Name(p)), Chunks: uint32(len(entries))}
		indexed, err := r.preferWhole(entries)
		if err != nil {
			return err
		}
		if err := r.idx.AddPack(p, pi, indexed); err != nil {
			return fmt.Errorf("index pack %s: %w", p, err)
		}
		res.Packs++
		res.Chunks += len(entries)
		return nil
	})
	if err != nil {
		return res, err
	}
	cps, err := r.Checkpoints(ctx)
	if err != nil {
		return res, err
	}
	res.Checkpoints = len(cps)
	if err := r.idx.FinishRebuild(); err != nil {
		return res, fmt.Errorf("finish index rebuild: %w", err)
	}
	if markerErr == nil {
		r.rebuiltAt(ctx, marker)
	}
	r.idx.GC()
	return res, nil
}

// packTime is the creation time a rebuilt index records for a pack. The
// stores keep no reliable timestamps, so a rebuild treats every pack as new:
// prune's grace period then protects it as if just written, which is safe.
func (r *Repository) packTime(context.Context, PackID) time.Time { return r.now() }

// shardBytes sums the sizes of the shards of name across the stores.
func (r *Repository) shardBytes(ctx context.Context, name string) int64 {
	var n int64
	for _, s := range r.stores {
		if sz, err := s.Stat(ctx, name); err == nil {
			n += sz
		}
	}
	return n
}

// isFullID reports whether id has the form newCheckpointID produces
// (8-4-4-4-12 lower-case hex digits).
func isFullID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i, c := range id {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}
