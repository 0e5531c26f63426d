package dedup

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/zeebo/xxh3"

	"cairn/dedup/erasure"
	"cairn/dedup/pack"
	"cairn/dedup/store"
)

// headerWorkers bounds concurrent reads of pack headers: they are small and
// latency-bound, so a few in flight hide store round trips.
const headerWorkers = 8

// packHeader reads, opens and caches the header of pack p.
func (r *Repository) packHeader(ctx context.Context, p PackID) ([]packEntry, error) {
	if e, ok := r.headers.Get(p); ok {
		return e, nil
	}
	name := pack.Name(p)
	n, err := r.obj.Length(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", p, err)
	}
	if n < pack.TrailerSize {
		return nil, fmt.Errorf("pack %s of %d bytes: %w", p, n, ErrCorrupt)
	}
	t, err := r.obj.ReadAt(ctx, name, n-pack.TrailerSize, pack.TrailerSize)
	if err != nil {
		return nil, fmt.Errorf("pack %s trailer: %w", p, err)
	}
	hl, err := pack.DecodeTrailer(t, n)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", p, err)
	}
	blobsEnd := n - pack.TrailerSize - hl
	sealed, err := r.obj.ReadAt(ctx, name, blobsEnd, hl)
	if err != nil {
		return nil, fmt.Errorf("pack %s header: %w", p, err)
	}
	plain, err := r.seal.open(nil, sealed, packHeaderAD(p))
	if err != nil {
		return nil, fmt.Errorf("pack %s header: %w", p, err)
	}
	entries, err := pack.DecodeHeader(plain, uint64(blobsEnd), maxBlockSize)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", p, err)
	}
	r.headers.Add(p, entries, 1)
	return entries, nil
}

// readChunk returns the plaintext of the chunk at loc, from the cache when it
// is there, for the caller to release. Only the shard ranges that hold the
// blob are read.
func (r *Repository) readChunk(ctx context.Context, loc chunkLoc) (*shared, error) {
	if s, ok := r.chunks.get(loc.ID); ok {
		return s, nil
	}
	// Concurrent readers of one block (NBD, FUSE read-ahead, a restore of
	// a volume with repeated blocks) share a single fetch.
	// The fetch outlives one caller giving up, since others may wait on it.
	// The key names the pack too: a retry at a chunk's new place must not
	// join a fetch from the pack that just failed.
	key := string(loc.ID[:]) + string(loc.Pack[:])
	var own *shared // the fetch's reference, for the caller that ran it
	_, err, _ := r.fetches.Do(key, func() (any, error) {
		r.fetching.Store(placeOf(loc), struct{}{})
		defer r.fetching.Delete(placeOf(loc))
		s, err := r.fetchChunk(context.WithoutCancel(ctx), loc)
		if err == nil {
			r.chunks.add(loc.ID, s)
			own = s
		}
		return nil, err
	})
	if err != nil {
		return nil, err
	}
	if own != nil {
		return own, nil
	}
	// Every other caller takes its own reference from the cache. The
	// chunk may have left it already (a cache smaller than a chunk, a
	// burst of other reads): then it decodes a copy of its own.
	if s, ok := r.chunks.get(loc.ID); ok {
		return s, nil
	}
	return r.fetchChunk(ctx, loc)
}

// wholeFetchRunning reports whether the chunk at loc is being loaded whole
// (FUSE read-ahead): a range read of it waits for that instead of decoding
// its frames a second time. Every range read asks, so the key is a struct:
// no allocation, where a string key cost one per read.
func (r *Repository) wholeFetchRunning(loc chunkLoc) bool {
	_, ok := r.fetching.Load(placeOf(loc))
	return ok
}

func (r *Repository) fetchChunk(ctx context.Context, loc chunkLoc) (*shared, error) {
	// The plaintext is shared with the cache and its readers, in a buffer
	// from r.plains; the shard reads are scratch, reused from fetch to
	// fetch.
	var cb *chunkBuffers
	select {
	case cb = <-r.fetchBufs:
	default:
		cb = &chunkBuffers{}
	}
	pooled := r.plains.Get(int(loc.RawLen))
	cb.plain = pooled[:0]
	plain, err := r.fetchChunkInto(ctx, loc, cb)
	cb.plain = nil
	// A blob stored as is decodes in place: its plaintext is the read
	// buffer, which then goes with it, and the pooled one goes back.
	inPlace := err == nil && loc.Flags&(blobDelta|blobCompressed|blobFramed) == 0
	if err != nil || inPlace {
		r.plains.Put(pooled)
	}
	if !inPlace {
		select {
		case r.fetchBufs <- cb:
		default:
		}
	}
	if err != nil {
		return nil, err
	}
	return newShared(plain, r.plains), nil
}

// fetchBuffers bounds the read buffers fetchChunk keeps between fetches:
// about as many as NBD and FUSE read at once.
const fetchBuffers = 4

// chunkBuffers are the reusable buffers of one chunk fetch at a time.
type chunkBuffers struct {
	read  erasure.ReadBuffers
	plain []byte
}

// fetchChunkInto reads and decodes the chunk at loc in cb's buffers; the
// result aliases them and is valid until their next use.
func (r *Repository) fetchChunkInto(ctx context.Context, loc chunkLoc, cb *chunkBuffers) ([]byte, error) {
	if loc.Flags&blobDelta != 0 {
		plain, err := r.decodeDelta(ctx, loc, cb.plain)
		if err != nil {
			return nil, err
		}
		cb.plain = plain
		return plain, nil
	}
	stored, err := r.obj.ReadAtInto(ctx, pack.Name(loc.Pack), int64(loc.Offset), int64(loc.StoredLen), &cb.read)
	if err != nil {
		return nil, fmt.Errorf("read chunk %s from pack %s: %w", loc.ID, loc.Pack, err)
	}
	if xxh3.Hash(stored) != loc.Sum {
		return nil, fmt.Errorf("chunk %s in pack %s: checksum mismatch: %w", loc.ID, loc.Pack, ErrCorrupt)
	}
	plain, err := r.decodeBlob(loc.Entry, stored, cb.plain)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", loc.Pack, err)
	}
	if loc.Flags&(blobCompressed|blobFramed) != 0 {
		cb.plain = plain
	}
	return plain, nil
}

// lookup is one chunk read's search for its chunk, carried across retries.
type lookup struct {
	id      ChunkID
	hint    PackID  // the pack the manifest names
	failed  packSet // packs a fetch of this chunk failed in
	scanGen uint64  // the newest pack scan this read has used
}

// locate finds a chunk: first in the pack the manifest names (no index
// needed), then in the index, and last in a scan of every pack header in
// the shard stores (slow, but a restore never depends on badger, and it
// finds chunks that another process's prune moved, which neither the hint
// nor this process's index knows). Places in look.failed are skipped
// unless a fresh scan names them again.
func (r *Repository) locate(ctx context.Context, look *lookup) (chunkLoc, error) {
	id := look.id
	var hintErr error
	if !look.failed.has(look.hint) {
		var entries []packEntry
		entries, hintErr = r.packHeader(ctx, look.hint)
		if hintErr == nil {
			for _, e := range entries {
				if e.ID == id {
					return chunkLoc{Pack: look.hint, Entry: e}, nil
				}
			}
		} else if ctx.Err() != nil {
			return chunkLoc{}, ctx.Err()
		} else {
			// Gone (compacted away) or unreadable (a damaged leftover of
			// a killed prune): the chunk may well be elsewhere.
			r.evictPack(look.hint)
			look.failed.add(look.hint)
		}
	}
	if r.idx != nil {
		loc, ok, err := r.idx.Lookup(id)
		if err != nil {
			return chunkLoc{}, fmt.Errorf("index lookup %s: %w", id, err)
		}
		if ok && !look.failed.has(loc.Pack) {
			return loc, nil
		}
		// Missing or stale: the index knows only what this process (or
		// the last rebuild) saw, and a prune elsewhere moves chunks.
	}
	loc, ok, err := r.scanLookup(ctx, look)
	if err != nil {
		if ctx.Err() != nil {
			return chunkLoc{}, ctx.Err()
		}
		return chunkLoc{}, fmt.Errorf("chunk %s: scan pack headers: %w", id, err)
	}
	if ok {
		return loc, nil
	}
	if hintErr != nil && !errors.Is(hintErr, store.ErrNotFound) {
		// The pack it should be in is there but unreadable: that, not a
		// missing chunk, is what to repair.
		return chunkLoc{}, fmt.Errorf("chunk %s is in no readable pack: %w", id, hintErr)
	}
	return chunkLoc{}, fmt.Errorf("chunk %s is in no pack of the shard stores (was its checkpoint forgotten and pruned while read? `cairn repo verify` checks the rest): %w", id, ErrChunkNotFound)
}

// scanPacks reads every pack header and maps each chunk to its pack. A
// chunk stored twice (a compaction in progress, or two backups storing it
// at once) maps to a whole copy over a delta (prune rewrote the delta
// whole), else to the pack with more shards: the other may be being
// deleted.
func (r *Repository) scanPacks(ctx context.Context) (map[ChunkID]chunkLoc, error) {
	m := make(map[ChunkID]chunkLoc)
	shards := make(map[PackID]int)
	err := r.obj.List(ctx, "packs/", func(name string, n int) error {
		p, err := ParsePackID(name[strings.LastIndexByte(name, '/')+1:])
		if err != nil {
			return nil // not ours: ignore stray files
		}
		entries, err := r.packHeader(ctx, p)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.log("skipping unreadable pack %s: %v", p, err)
			return nil
		}
		shards[p] = n
		for _, e := range entries {
			if old, dup := m[e.ID]; dup {
				oldDelta, delta := old.Flags&blobDelta != 0, e.Flags&blobDelta != 0
				if oldDelta != delta && delta || oldDelta == delta && shards[old.Pack] >= n {
					continue // keep the whole copy, or the one with more shards
				}
			}
			m[e.ID] = chunkLoc{Pack: p, Entry: e}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// listPacks calls fn for every pack any shard store holds a shard of.
func (r *Repository) listPacks(ctx context.Context, fn func(PackID) error) error {
	return r.listPackShards(ctx, func(p PackID, _ int) error { return fn(p) })
}

// listPackShards is listPacks with how many shard stores hold a shard of
// each pack.
func (r *Repository) listPackShards(ctx context.Context, fn func(p PackID, shards int) error) error {
	return r.obj.List(ctx, "packs/", func(name string, shards int) error {
		base := name[strings.LastIndexByte(name, '/')+1:]
		p, err := ParsePackID(base)
		if err != nil {
			return nil // not ours: ignore stray files
		}
		return fn(p, shards)
	})
}
