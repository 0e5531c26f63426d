package prune

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"

	"cairn/dedup/pack"
)

// Prune and deltas (docs/prune.md, "Deltas"). A delta keeps alive the
// chunks it takes pages from, whatever checkpoints are deleted; and a chunk
// kept alive only for a few of its pages is released by rewriting the
// deltas that use it whole when that pays.

// liveDelta is a live delta chunk and the chunks it takes pages from.
type liveDelta struct {
	loc  pack.Loc
	refs []pack.ChunkID
	// borrowed is how many of its pages come from refs: what a rewrite
	// of it whole writes beyond what it stores itself.
	borrowed int64
}

// markDeltaRefs marks live every chunk a live delta takes pages from. One
// pass is enough: a delta never refers to a page its reference does not
// store itself. A chunk that no manifest names and that few deltas use is
// not kept (releasable): those deltas are rewritten whole first (unless
// DryRun), so that its pack can go. A pack whose header cannot be read
// fails the prune: a live delta in it would leave its references unmarked.
func markDeltaRefs(ctx context.Context, repo Repo, marks *markSet, o Options, rep *Report) error {
	deltas, err := liveDeltas(ctx, repo, marks)
	if err != nil {
		return err
	}
	if len(deltas) == 0 {
		return nil
	}
	seen := make(map[pack.ChunkID]struct{})
	var refs []pack.Entry
	for _, d := range deltas {
		for _, id := range d.refs {
			if _, ok := seen[id]; !ok {
				seen[id] = struct{}{}
				refs = append(refs, pack.Entry{ID: id})
			}
		}
	}
	// Before the references are marked: which of them does a manifest name?
	direct, err := marks.live(refs)
	if err != nil {
		return err
	}
	only := make(map[pack.ChunkID]struct{}) // referenced by deltas only
	for i, e := range refs {
		if !direct[i] {
			only[e.ID] = struct{}{}
		}
	}
	release, err := releasable(deltas, only, func(id pack.ChunkID) (int64, bool, error) {
		at, ok, err := repo.Lookup(id)
		if err != nil {
			return 0, false, fmt.Errorf("index lookup %s: %w", id, err)
		}
		return at.Pages, ok, nil
	})
	if err != nil {
		return err
	}
	if users := usersOf(deltas, release); len(users) > 0 {
		rep.DeltasRewritten = len(users)
		if !o.DryRun {
			written, err := repo.RewriteWhole(ctx, users)
			rep.BytesFreed -= written
			if err != nil {
				// Nothing is lost: every reference stays marked.
				repo.Logf("rewrite %d delta chunks whole: %v; their references are kept", len(users), err)
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
func liveDeltas(ctx context.Context, repo Repo, marks *markSet) ([]liveDelta, error) {
	packs, err := repo.Packs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	var mu sync.Mutex
	var out []liveDelta
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, p := range packs {
		if !p.Complete {
			continue // never completed (a killed backup): nothing live in it
		}
		g.Go(func() error {
			entries, err := repo.Header(gctx, p.ID)
			if err != nil {
				return fmt.Errorf("pack %s (run `cairn repo verify`, then `repair`): %w", p.ID, err)
			}
			var ds []pack.Entry
			for _, e := range entries {
				if repo.IsDelta(e) {
					ds = append(ds, e)
				}
			}
			if len(ds) == 0 {
				return nil
			}
			live, err := liveEntries(repo, marks, p.ID, ds)
			if err != nil {
				return err
			}
			for i, e := range ds {
				if !live[i] {
					continue
				}
				d := liveDelta{loc: pack.Loc{Pack: p.ID, Entry: e}}
				if d.refs, d.borrowed, err = repo.ReadDelta(gctx, d.loc); err != nil {
					return fmt.Errorf("refusing to prune past an unreadable delta chunk: %w", err)
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
// whole chunk (the backup stores the block whole otherwise), so such a
// chunk is never mostly dead; what decides is how many deltas still use
// it. pages returns how many pages a chunk holds, and false for a chunk
// the index does not know, which is never released.
func releasable(deltas []liveDelta, only map[pack.ChunkID]struct{}, pages func(pack.ChunkID) (int64, bool, error)) (map[pack.ChunkID]struct{}, error) {
	if len(only) == 0 {
		return nil, nil
	}
	cost := make(map[pack.ChunkID]int64) // pages a rewrite of its users writes
	for _, d := range deltas {
		for _, id := range d.refs {
			if _, ok := only[id]; ok {
				cost[id] += d.borrowed
			}
		}
	}
	out := make(map[pack.ChunkID]struct{})
	for id, c := range cost {
		n, ok, err := pages(id)
		if err != nil {
			return nil, err
		}
		if ok && 2*c <= n {
			out[id] = struct{}{}
		}
	}
	return out, nil
}

// usersOf returns the deltas that take pages from a chunk of release: all
// of them must be stored whole before the chunk can go.
func usersOf(deltas []liveDelta, release map[pack.ChunkID]struct{}) []pack.Loc {
	if len(release) == 0 {
		return nil
	}
	var users []pack.Loc
	for _, d := range deltas {
		for _, id := range d.refs {
			if _, ok := release[id]; ok {
				users = append(users, d.loc)
				break
			}
		}
	}
	return users
}
