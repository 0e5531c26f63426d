package dedup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zeebo/xxh3"
	"golang.org/x/sync/errgroup"

	"cairn/dedup/pack"
)

// VerifyOptions steer Verify.
type VerifyOptions struct {
	// Deep also rereads every chunk of every pack, bypassing the chunk
	// cache, and checks that it decrypts, decompresses and hashes to its ID;
	// and it finds the chunks manifests reference in the packs' own headers
	// only, never through the index.
	Deep bool
	// Progress, if set, is called after each pack, one call at a time.
	Progress func(VerifyProgress)
}

// VerifyProgress reports a running Verify.
type VerifyProgress struct{ Packs, PacksDone int }

// VerifyReport is what Verify found. Object names are store object names
// ("packs/ab/ab…", "manifests/…").
type VerifyReport struct {
	Packs, Manifests, Chunks int
	DamagedShards            []ShardDamage // missing or failing checksum
	BadChunks                []string      // deep: chunk IDs that fail decrypt/decompress/rehash
	MissingChunks            []string      // referenced by a manifest, found in no readable pack
	// Unrecoverable lists objects with fewer than k good shards, and those
	// whose content (pack header, manifest) does not decode despite intact
	// shards: parity cannot help either.
	Unrecoverable []string
	// Orphans are damaged packs that no checkpoint uses: what a backup or
	// prune killed midway leaves. They are not damage to any checkpoint;
	// prune removes them once they are older than its grace period.
	Orphans []string
	OK      bool // true when all lists but Orphans are empty
}

// ShardDamage is one shard that is missing or fails its checksums.
type ShardDamage struct {
	Object  string
	Shard   int
	Problem string // "missing" or "corrupt: …"
}

const (
	// verifyParallel bounds the objects checked at once; each holds one
	// verifyPiece of shard data and, when deep, one chunk.
	verifyParallel = 4
	verifyPiece    = 4 << 20
)

// verifyState collects results from the goroutines checking objects.
type verifyState struct {
	mu      sync.Mutex
	rep     *VerifyReport
	packOK  map[PackID]bool        // packs whose header decoded
	chunks  map[ChunkID]PackID     // without an index: every chunk in a readable pack
	missing map[ChunkID]struct{}   // referenced but found nowhere
	packs   map[PackID]packVerdict // shard verdicts, judged once references are known
	used    map[PackID]struct{}    // packs holding a chunk some checkpoint references
	// deep with an index: referenced chunks the index places in a pack
	// that does not hold them, and the first of them, for one warning.
	checkIndex bool
	stale      int
	firstStale string
}

type packVerdict struct {
	check     objectCheck
	contentOK bool
	bad       []string // deep: chunks that fail to decode
}

// Verify checks the repository against its shard stores, the only truth:
// every shard of every pack and manifest is read in full and checked
// against its checksums, and every chunk a checkpoint references must be in
// a pack whose header is readable. It changes nothing; Repair fixes what
// parity can. Packs and manifests that backups of this process are still
// writing are skipped, since their shards may legitimately be incomplete.
func (r *Repository) Verify(ctx context.Context, o VerifyOptions) (*VerifyReport, error) {
	r.pruneMu.Lock() // packs half deleted by a prune would read as damage
	defer r.pruneMu.Unlock()
	packs, manifests, err := r.verifyTargets(ctx)
	if err != nil {
		return nil, err
	}
	ref, cfgDamage, err := r.checkConfig(ctx)
	if err != nil {
		return nil, err
	}
	v := &verifyState{
		rep:     &VerifyReport{Packs: len(packs), DamagedShards: cfgDamage},
		packOK:  make(map[PackID]bool, len(packs)),
		missing: make(map[ChunkID]struct{}),
		packs:   make(map[PackID]packVerdict, len(packs)),
		used:    make(map[PackID]struct{}),
	}
	if ref == nil {
		v.rep.Unrecoverable = []string{configName}
	}
	if r.idx == nil || o.Deep {
		// Deep trusts nothing but the packs: the index may name a pack
		// whose shards were replaced by another pack's.
		v.chunks = make(map[ChunkID]PackID)
		v.checkIndex = r.idx != nil
	}
	done := 0
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(verifyParallel)
	for _, p := range packs {
		g.Go(func() error {
			if err := r.verifyPack(gctx, v, p, o.Deep); err != nil {
				return err
			}
			v.mu.Lock()
			defer v.mu.Unlock()
			done++
			if o.Progress != nil {
				o.Progress(VerifyProgress{Packs: len(packs), PacksDone: done})
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Manifests go second: checking their chunks needs every pack's verdict.
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(verifyParallel)
	for name, files := range manifests {
		g.Go(func() error { return r.verifyManifest(gctx, v, name, files) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return v.finish(r.log), nil
}

// verifyTargets lists the packs and the manifests (with how many shard files
// each has) to check.
func (r *Repository) verifyTargets(ctx context.Context) ([]PackID, map[string]int, error) {
	var packs []PackID
	if err := r.listPacks(ctx, func(p PackID) error { packs = append(packs, p); return nil }); err != nil {
		return nil, nil, err
	}
	manifests := make(map[string]int)
	err := r.obj.List(ctx, "manifests/", func(name string, shards int) error {
		manifests[name] = shards
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	// Asked after listing: whatever was listed is then either complete (its
	// backup ended) or its backup is still running, and is skipped.
	skip, since := r.inFlight()
	packs = slices.DeleteFunc(packs, func(p PackID) bool { _, ok := skip[p]; return ok })
	// A running backup's manifest may be half written. Its ID holds the
	// backup's start, just before its session's (a second's margin).
	maps.DeleteFunc(manifests, func(name string, _ int) bool {
		t, ok := checkpointIDTime(strings.TrimPrefix(name, "manifests/"))
		return ok && !since.IsZero() && !t.Before(since.Add(-time.Second))
	})
	return packs, manifests, nil
}

func (r *Repository) verifyPack(ctx context.Context, v *verifyState, p PackID, deep bool) error {
	check, err := r.checkShards(ctx, pack.Name(p))
	if err != nil {
		return err
	}
	// The header is read even with fewer than k good shards: the damage may
	// lie elsewhere, and then the chunks outside it are still readable.
	r.headers.Remove(p)
	entries, herr := r.packHeader(ctx, p)
	if herr != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	var bad []string
	if herr == nil && deep {
		for _, e := range entries {
			if err := r.verifyChunk(ctx, p, e); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				bad = append(bad, e.ID.String())
			}
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.packs[p] = packVerdict{check, herr == nil, bad}
	if herr == nil {
		v.packOK[p] = true
		v.rep.Chunks += len(entries)
		if v.chunks != nil {
			for _, e := range entries {
				v.chunks[e.ID] = p
			}
		}
	}
	return nil
}

// verifyChunk rereads one chunk the way a restore does, but never from the
// chunk cache.
func (r *Repository) verifyChunk(ctx context.Context, p PackID, e packEntry) error {
	stored, err := r.obj.ReadAt(ctx, pack.Name(p), int64(e.Offset), int64(e.StoredLen))
	if err != nil {
		return err
	}
	if xxh3.Hash(stored) != e.Sum {
		return fmt.Errorf("chunk %s in pack %s: checksum mismatch: %w", e.ID, p, ErrCorrupt)
	}
	if e.Flags&blobDelta != 0 {
		// The pages it takes from other chunks are read and the whole
		// block checked against its ID, as a restore does.
		_, err = r.decodeDelta(ctx, chunkLoc{Pack: p, Entry: e}, nil)
		return err
	}
	_, err = r.decodeBlob(e, stored, nil)
	return err
}

func (r *Repository) verifyManifest(ctx context.Context, v *verifyState, name string, files int) error {
	check, err := r.checkShards(ctx, name)
	if err != nil {
		return err
	}
	// Fewer than k shard files is not a checkpoint (a commit died midway,
	// or damage took it): it counts only as damage.
	var bm *BlockMap
	derr := errors.New("fewer than k good shards")
	if files >= r.cfg.DataShards && check.good >= r.cfg.DataShards {
		var b []byte
		if b, derr = r.obj.Get(ctx, name); derr == nil {
			_, bm, derr = r.decodeManifest(strings.TrimPrefix(name, "manifests/"), b, true)
		}
		if derr != nil && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	var missing []ChunkID
	used := make(map[PackID]struct{})
	if derr == nil {
		for _, ref := range bm.Chunks {
			pack, ok, err := r.hasChunk(ctx, v, ref.ID, bm.Packs[ref.Pack])
			if err != nil {
				return err
			}
			if !ok {
				missing = append(missing, ref.ID)
				continue
			}
			used[pack] = struct{}{}
			if v.checkIndex {
				if err := r.checkIndexEntry(ctx, v, ref.ID); err != nil {
					return err
				}
			}
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if files >= r.cfg.DataShards {
		v.rep.Manifests++
	}
	v.addCheck(check, derr == nil)
	for _, id := range missing {
		v.missing[id] = struct{}{}
	}
	for p := range used {
		v.used[p] = struct{}{}
	}
	return nil
}

// hasChunk reports whether chunk id is in a pack whose header Verify read.
// v.packOK is complete and read-only by the time manifests are checked.
func (r *Repository) hasChunk(ctx context.Context, v *verifyState, id ChunkID, hint PackID) (PackID, bool, error) {
	if v.chunks != nil {
		p, ok := v.chunks[id]
		return p, ok, nil
	}
	// The index keeps memory flat however many chunks there are, but it may
	// point into a pack that is gone or now holds other chunks, so its answer
	// needs the pack's verdict and the pack's own header.
	loc, ok, err := r.idx.Lookup(id)
	if err != nil {
		return PackID{}, false, fmt.Errorf("index lookup %s: %w", id, err)
	}
	if ok && v.packOK[loc.Pack] {
		if held, err := r.packHolds(ctx, loc.Pack, id); err != nil || held {
			return loc.Pack, held, err
		}
	}
	// A stale index (packs added by another host) misses chunks that the
	// manifest's pack hint still finds.
	if !v.packOK[hint] {
		return PackID{}, false, nil
	}
	held, err := r.packHolds(ctx, hint, id)
	return hint, held, err
}

// checkIndexEntry counts chunk id as stale when the index places it in a
// pack that does not hold it: a backup deduplicating against that entry
// would reference a chunk that is not there.
func (r *Repository) checkIndexEntry(ctx context.Context, v *verifyState, id ChunkID) error {
	loc, ok, err := r.idx.Lookup(id)
	if err != nil {
		return fmt.Errorf("index lookup %s: %w", id, err)
	}
	if !ok {
		return nil // a missing entry costs a stored duplicate, nothing worse
	}
	held := false
	if v.packOK[loc.Pack] {
		if held, err = r.packHolds(ctx, loc.Pack, id); err != nil {
			return err
		}
	}
	if !held {
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.stale++; v.stale == 1 {
			v.firstStale = fmt.Sprintf("chunk %s in pack %s", id, loc.Pack)
		}
	}
	return nil
}

// packHolds reports whether pack p's header lists chunk id. Only
// cancellation is an error: an unreadable header holds nothing.
func (r *Repository) packHolds(ctx context.Context, p PackID, id ChunkID) (bool, error) {
	entries, err := r.packHeader(ctx, p)
	if err != nil {
		return false, ctx.Err()
	}
	return slices.ContainsFunc(entries, func(e packEntry) bool { return e.ID == id }), nil
}

// addCheck records one object's shard verdict; contentOK is false when its
// content (pack header, manifest) does not decode. Called with v.mu held.
func (v *verifyState) addCheck(c objectCheck, contentOK bool) {
	v.rep.DamagedShards = append(v.rep.DamagedShards, c.damage...)
	if c.good < c.k || !contentOK {
		v.rep.Unrecoverable = append(v.rep.Unrecoverable, c.name)
	}
}

func (v *verifyState) finish(log func(string, ...any)) *VerifyReport {
	rep := v.rep
	if v.stale > 0 {
		log("the index places %d referenced chunks in packs that do not hold them (the first: %s): run `cairn repo rebuild-index`",
			v.stale, v.firstStale)
	}
	for p, pv := range v.packs {
		_, used := v.used[p]
		// A pack whose header cannot be read might hold a missing chunk;
		// only when nothing is missing is it surely unused.
		orphan := !used && (pv.contentOK || len(v.missing) == 0)
		// A killed backup's pack may lack the data shards of some chunks
		// while its header survives: unreadable chunks nobody uses make it
		// an orphan too, not bad data.
		if orphan && (len(pv.check.damage) > 0 || pv.check.good < pv.check.k || !pv.contentOK || len(pv.bad) > 0) {
			rep.Orphans = append(rep.Orphans, pv.check.name)
			continue
		}
		v.addCheck(pv.check, pv.contentOK)
		rep.BadChunks = append(rep.BadChunks, pv.bad...)
	}
	slices.Sort(rep.Orphans)
	for id := range v.missing {
		rep.MissingChunks = append(rep.MissingChunks, id.String())
	}
	slices.SortFunc(rep.DamagedShards, func(a, b ShardDamage) int {
		return cmp.Or(strings.Compare(a.Object, b.Object), a.Shard-b.Shard)
	})
	slices.Sort(rep.BadChunks)
	slices.Sort(rep.MissingChunks)
	slices.Sort(rep.Unrecoverable)
	rep.OK = len(rep.DamagedShards) == 0 && len(rep.BadChunks) == 0 &&
		len(rep.MissingChunks) == 0 && len(rep.Unrecoverable) == 0
	return rep
}
