package dedup

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Prune and deltas (docs/prune.md, "Deltas"). A delta keeps alive the
// chunks it takes pages from, whatever checkpoints are deleted; and a chunk
// kept alive only for a few of its pages is released by rewriting the
// deltas that use it whole when that pays.

// superseded reports whether entry e of pack p is a delta whose chunk the
// index names elsewhere, stored whole: prune rewrote it so, and the delta
// copy (with the references that came with it) is dead.
func (r *Repository) superseded(p PackID, e packEntry) (bool, error) {
	if e.Flags&blobDelta == 0 {
		return false, nil
	}
	loc, ok, err := r.idx.Lookup(e.ID)
	if err != nil {
		return false, fmt.Errorf("index lookup %s: %w", e.ID, err)
	}
	return ok && loc.Pack != p && loc.Flags&blobDelta == 0, nil
}

// liveEntries reports, for each entry of pack p, whether prune keeps it:
// marked, and not a superseded delta copy.
func (r *Repository) liveEntries(marks *markSet, p PackID, entries []packEntry) ([]bool, error) {
	live, err := marks.live(entries)
	if err != nil {
		return nil, err
	}
	for i, e := range entries {
		if !live[i] {
			continue
		}
		old, err := r.superseded(p, e)
		if err != nil {
			return nil, err
		}
		live[i] = !old
	}
	return live, nil
}

// liveDelta is a live delta chunk and the chunks it takes pages from.
type liveDelta struct {
	loc  chunkLoc
	refs []ChunkID
}

// markDeltaRefs marks live every chunk a live delta takes pages from. One
// pass is enough: a delta never refers to a page its reference does not
// store itself. A chunk that no manifest names and that few deltas use is
// not kept (releasable): those deltas are rewritten whole first (unless
// DryRun), so that its pack can go. A
// pack whose header cannot be read fails the prune: a live delta in it
// would leave its references unmarked.
func (r *Repository) markDeltaRefs(ctx context.Context, marks *markSet, o PruneOptions, rep *PruneReport) error {
	deltas, err := r.liveDeltas(ctx, marks)
	if err != nil {
		return err
	}
	if len(deltas) == 0 {
		return nil
	}
	seen := make(map[ChunkID]struct{})
	var refs []packEntry
	for _, d := range deltas {
		for _, id := range d.refs {
			if _, ok := seen[id]; !ok {
				seen[id] = struct{}{}
				refs = append(refs, packEntry{ID: id})
			}
		}
	}
	// Before the references are marked: which of them does a manifest name?
	direct, err := marks.live(refs)
	if err != nil {
		return err
	}
	only := make(map[ChunkID]struct{}) // referenced by deltas only
	for i, e := range refs {
		if !direct[i] {
			only[e.ID] = struct{}{}
		}
	}
	release, err := r.releasable(ctx, deltas, only)
	if err != nil {
		return err
	}
	if len(release) > 0 {
		var users []chunkLoc
		for _, d := range deltas {
			for _, id := range d.refs {
				if _, ok := release[id]; ok {
					users = append(users, d.loc)
					break
				}
			}
		}
		rep.DeltasRewritten = len(users)
		if !o.DryRun {
			written, err := r.rewriteWhole(ctx, users)
			rep.BytesFreed -= written
			if err != nil {
				// Nothing is lost: every reference stays marked.
				r.log("rewrite %d delta chunks whole: %v; their references are kept", len(users), err)
				clear(release)
				rep.DeltasRewritten = 0
			}
		} else {
			clear(release) // a dry run keeps them, as the real prune would until it rewrote
		}
	}
	for _, e := range refs {
		if _, ok := release[e.ID]; ok {
			continue
		}
		if err := marks.add(e.ID); err != nil {
			return err
		}
	}
	return marks.flush()
}

// liveDeltas lists the live, current delta chunks of every complete pack.
func (r *Repository) liveDeltas(ctx context.Context, marks *markSet) ([]liveDelta, error) {
	var packs []PackID
	err := r.obj.List(ctx, "packs/", func(name string, shards int) error {
		if shards < r.cfg.DataShards {
			return nil // never completed (a killed backup): nothing live in it
		}
		if p, err := ParsePackID(name[strings.LastIndexByte(name, '/')+1:]); err == nil {
			packs = append(packs, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	var mu sync.Mutex
	var out []liveDelta
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pruneWorkers)
	for _, p := range packs {
		g.Go(func() error {
			entries, err := r.packHeader(gctx, p)
			if err != nil {
				return fmt.Errorf("pack %s (run `cairn repo verify`, then `repair`): %w", p, err)
			}
			var ds []packEntry
			for _, e := range entries {
				if e.Flags&blobDelta != 0 {
					ds = append(ds, e)
				}
			}
			if len(ds) == 0 {
				return nil
			}
			live, err := r.liveEntries(marks, p, ds)
			if err != nil {
				return err
			}
			for i, e := range ds {
				if !live[i] {
					continue
				}
				loc := chunkLoc{Pack: p, Entry: e}
				h, err := r.deltaHeaderOf(gctx, loc)
				if err != nil {
					return fmt.Errorf("refusing to prune past an unreadable delta chunk: %w", err)
				}
				d := liveDelta{loc: loc}
				for _, ref := range h.refs {
					d.refs = append(d.refs, ref.id)
				}
				mu.Lock()
				out = append(out, d)
				mu.Unlock()
			}
			return nil
		})
	}
	return out, g.Wait()
}

// releasable returns the chunks of only (referenced by deltas alone) whose
// deltas are worth rewriting whole: that writes the pages the deltas take
// from elsewhere and frees the chunk, so it pays when it writes at most
// half of what it frees. A delta takes at least half its pages from one
// whole chunk (encodeDelta), so such a chunk is never mostly dead; what
// decides is how many deltas still use it.
func (r *Repository) releasable(ctx context.Context, deltas []liveDelta, only map[ChunkID]struct{}) (map[ChunkID]struct{}, error) {
	if len(only) == 0 {
		return nil, nil
	}
	cost := make(map[ChunkID]int64) // pages a rewrite of its users writes
	for _, d := range deltas {
		var refsOnly []ChunkID
		for _, id := range d.refs {
			if _, ok := only[id]; ok {
				refsOnly = append(refsOnly, id)
			}
		}
		if len(refsOnly) == 0 {
			continue
		}
		h, err := r.deltaHeaderOf(ctx, d.loc)
		if err != nil {
			return nil, err
		}
		own := int64(0)
		for _, s := range h.src {
			if s == 0 {
				own++
			}
		}
		for _, id := range refsOnly {
			cost[id] += int64(len(h.src)) - own
		}
	}
	out := make(map[ChunkID]struct{})
	for id, c := range cost {
		loc, ok, err := r.idx.Lookup(id)
		if err != nil {
			return nil, fmt.Errorf("index lookup %s: %w", id, err)
		}
		if ok && 2*c <= int64(pageCount(loc.RawLen)) {
			out[id] = struct{}{}
		}
	}
	return out, nil
}

// rewriteWhole stores each delta chunk again as a whole (framed) blob in new
// packs. Once they are durable and indexed, the delta copies are superseded.
func (r *Repository) rewriteWhole(ctx context.Context, users []chunkLoc) (written int64, err error) {
	own := r.startSession()
	defer r.endSession(own)
	pk := newPacker(ctx, r, own, 2)
	var plain []byte
	var sc blobScratch
	for _, loc := range users {
		if plain, err = r.decodeDelta(ctx, loc, plain); err != nil {
			pk.abort()
			return 0, err
		}
		stored, flags := r.encodeBlob(loc.ID, plain, &sc, nil)
		if _, err := pk.add(loc.ID, stored, len(plain), flags); err != nil {
			pk.abort()
			return 0, err
		}
	}
	if written, err = pk.finish(); err != nil {
		return 0, err
	}
	// Durable and indexed: like compaction's copies, they need no pin, and
	// a pin would keep the sweep from removing the delta copies.
	own.mu.Lock()
	clear(own.pending)
	clear(own.newPacks)
	own.mu.Unlock()
	return written, nil
}
