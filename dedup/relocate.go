package dedup

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"cairn/dedup/pack"
)

// A reader caches where chunks are: pack headers (Repository.headers),
// shard headers (coded.headers), the index, and without an index a map
// built by scanning every pack header. A prune in another process may
// compact a pack (copy its live chunks to new packs, then delete it) at any
// time, and no lock keeps it from doing so while a reader runs (see
// docs/prune.md, "Readers and prune"). Compaction makes the copies durable
// before it deletes the original, so a live chunk is always in some pack
// the stores list: a fetch that fails evicts what it cached about that
// pack, looks the chunk up afresh and tries again.

// fetchAttempts bounds the tries of one chunk read. One retry covers a pack
// compacted away; the third covers a pack compacted twice between two
// reads (the scan map pointing at a copy that was itself compacted), and
// keeps a chunk that is really gone from looping.
const fetchAttempts = 3

// packSet is a set of packs; the zero value is empty and ready to use.
type packSet map[PackID]struct{}

func (s *packSet) add(p PackID) {
	if *s == nil {
		*s = make(packSet)
	}
	(*s)[p] = struct{}{}
}

func (s packSet) has(p PackID) bool {
	_, ok := s[p]
	return ok
}

// loadChunk returns the plaintext of chunk id, which its manifest says is in
// pack hint, from the chunk cache or into it (random reads come back to the
// same chunks), for the caller to release.
func (r *Repository) loadChunk(ctx context.Context, id ChunkID, hint PackID) (*shared, error) {
	if s, ok := r.chunks.get(id); ok {
		return s, nil
	}
	var s *shared
	err := r.atChunk(ctx, id, hint, func(loc chunkLoc) (err error) {
		s, err = r.readChunk(ctx, loc)
		return err
	})
	return s, err
}

// loadRange copies bytes [off, off+len(p)) of chunk id (in pack hint, says
// its manifest) into p. A framed chunk not cached or being loaded whole is
// read frame by frame (a random read of 4 KiB decodes 128 KiB, not 4 MiB;
// see readFramed), a delta page by page; others are loaded whole through
// the cache.
func (r *Repository) loadRange(ctx context.Context, id ChunkID, hint PackID, off int64, p []byte) error {
	return r.readRange(ctx, id, hint, off, p, false)
}

// readRange is loadRange; with ownOnly, a delta chunk may serve only pages
// it stores itself: that is how a delta's references are read, so that a
// damaged or hostile chain of deltas fails instead of recursing.
func (r *Repository) readRange(ctx context.Context, id ChunkID, hint PackID, off int64, p []byte, ownOnly bool) error {
	whole := func(b []byte) error {
		if off+int64(len(p)) > int64(len(b)) {
			return fmt.Errorf("chunk %s holds %d bytes, need %d: %w", id, len(b), off+int64(len(p)), ErrCorrupt)
		}
		copy(p, b[off:])
		return nil
	}
	// A chunk cached whole holds every page, whoever stores it.
	if s, ok := r.chunks.get(id); ok {
		defer s.release()
		return whole(s.b)
	}
	return r.atChunk(ctx, id, hint, func(loc chunkLoc) error {
		switch {
		case loc.Flags&blobDelta != 0 && ownOnly:
			if off+int64(len(p)) > int64(loc.RawLen) {
				return fmt.Errorf("chunk %s holds %d bytes, need %d: %w", id, loc.RawLen, off+int64(len(p)), ErrCorrupt)
			}
			h, err := r.deltaHeaderOf(ctx, loc)
			if err != nil {
				return err
			}
			return r.readOwnPages(ctx, loc, h, off, p)
		case loc.Flags&blobDelta != 0:
			return r.readDelta(ctx, loc, off, p)
		case loc.Flags&blobFramed == 0 || r.wholeFetchRunning(loc):
			s, err := r.readChunk(ctx, loc)
			if err != nil {
				return err
			}
			defer s.release()
			return whole(s.b)
		}
		fb := r.frameBufs.Get().(*frameBuffers)
		defer r.frameBufs.Put(fb)
		return r.readFramed(ctx, loc, off, p, fb)
	})
}

// atChunk runs read on the place of chunk id, and again on its new place
// when the read fails because a prune moved or removed the pack (see
// above).
func (r *Repository) atChunk(ctx context.Context, id ChunkID, hint PackID, read func(chunkLoc) error) error {
	look := lookup{id: id, hint: hint, scanGen: r.scan.generation()}
	var firstFailed PackID // where the first fetch failed, for the message
	for attempt := 1; ; attempt++ {
		loc, err := r.locate(ctx, &look)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if attempt > 1 {
				return fmt.Errorf("%w (reading it from pack %s failed first)", err, firstFailed)
			}
			return err
		}
		err = read(loc)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.As(err, new(targetError)) {
			return err
		}
		if attempt == 1 {
			firstFailed = loc.Pack
		}
		if attempt == fetchAttempts {
			return fmt.Errorf("chunk %s: %d attempts failed, last in pack %s: %w", id, attempt, loc.Pack, err)
		}
		// The pack may be gone, or its shards rewritten, since its headers
		// were cached: forget them so the next look reads the stores.
		r.evictPack(loc.Pack)
		look.failed.add(loc.Pack)
	}
}

// evictPack drops what this process cached about pack p: its header and
// its shard headers. Cached chunk plaintext stays: it was checked against
// its chunk ID, whatever pack it came from.
func (r *Repository) evictPack(p PackID) {
	r.headers.Remove(p)
	r.obj.ForgetObject(pack.Name(p))
}

// packScan is where, without an index, chunks were found by reading every
// pack header. It is built on the first miss and built again when a reader
// finds it stale; a rebuild is shared by the readers that found the same
// map stale, so a pack compacted away costs one scan, not one per chunk.
type packScan struct {
	mu  sync.Mutex // held while scanning
	gen uint64     // bumped by each completed scan; 0: none yet
	m   map[ChunkID]chunkLoc
}

func (s *packScan) generation() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// current returns the latest map (nil before the first scan) and its
// generation. The map is never written after it is published.
func (s *packScan) current() (map[ChunkID]chunkLoc, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m, s.gen
}

// refresh returns a map built by a scan that finished after generation
// seen: the current one if another reader has rescanned since, else a new
// scan. A failed scan is not kept, so a store that was briefly unreachable
// does not break reads for the life of the process.
func (s *packScan) refresh(ctx context.Context, seen uint64, scan func(context.Context) (map[ChunkID]chunkLoc, error)) (map[ChunkID]chunkLoc, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m != nil && s.gen > seen {
		return s.m, s.gen, nil
	}
	m, err := scan(ctx)
	if err != nil {
		return nil, s.gen, err
	}
	s.m = m
	s.gen++
	return s.m, s.gen, nil
}

// scanLookup finds id in the scan map, scanning again when the map lacks
// it or points at a pack that failed this lookup.
func (r *Repository) scanLookup(ctx context.Context, look *lookup) (chunkLoc, bool, error) {
	if m, gen := r.scan.current(); m != nil {
		if loc, ok := m[look.id]; ok && !look.failed.has(loc.Pack) {
			return loc, true, nil
		}
		look.scanGen = max(look.scanGen, gen)
	}
	m, gen, err := r.scan.refresh(ctx, look.scanGen, r.scanPacks)
	if err != nil {
		return chunkLoc{}, false, err
	}
	look.scanGen = gen
	// A fresh scan is the stores' word: a pack that failed before and is
	// still listed is worth one more read with fresh headers.
	loc, ok := m[look.id]
	return loc, ok, nil
}
