package prune

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"cairn/dedup/pack"
)

// sweeper is one prune's pass over the packs in the shard stores.
type sweeper struct {
	repo       Repo
	o          Options
	now, fence time.Time
	marks      *markSet

	mu      sync.Mutex // guards rep and compact
	rep     *Report
	compact []pack.ID
}

func (sw *sweeper) add(f func(*Report)) {
	sw.mu.Lock()
	f(sw.rep)
	sw.mu.Unlock()
}

// run visits every pack the shard stores hold, deleting dead ones as it
// goes, then compacts the nearly empty ones.
func (sw *sweeper) run(ctx context.Context) error {
	packs, err := sw.repo.Packs(ctx)
	if err != nil {
		return fmt.Errorf("list packs: %w", err)
	}
	sw.rep.PacksTotal = len(packs)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, p := range packs {
		g.Go(func() error { return sw.visit(gctx, p) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return sw.compactAll(ctx)
}

// visit decides the fate of one pack (planPack, fenced) and deletes it or
// queues it for compaction.
func (sw *sweeper) visit(ctx context.Context, p Pack) error {
	repo := sw.repo
	entries, err := repo.Header(ctx, p.ID)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if p.Complete {
			repo.Logf("pack %s unreadable, kept for repair: %v", p.ID, err)
			return nil
		}
		entries = nil // a write that never finished holds nothing referenced
	}
	live, err := liveEntries(repo, sw.marks, p.ID, entries)
	if err != nil {
		return err
	}
	u := usageOf(entries, live)
	sw.add(func(rep *Report) {
		rep.ChunksLive += int64(u.live)
		rep.ChunksDead += int64(u.entries - u.live)
	})
	pl := planPack(u, sw.o.CompactBelow)
	if pl == planKeep {
		return nil
	}
	facts, err := repo.PackFacts(p.ID)
	if err != nil {
		return fmt.Errorf("index pack %s: %w", p.ID, err)
	}
	if facts.Writing {
		return nil
	}
	if entries == nil && facts.Indexed && facts.Chunks > 0 {
		repo.Logf("pack %s has %d shards but was once complete: kept for repair", p.ID, p.Shards)
		return nil
	}
	if !facts.Indexed {
		// Written by a backup killed before indexing it, or by another
		// host, or skipped by a rebuild: its age is unknown, so it counts
		// as new from now. Recording that lets a later prune remove it.
		facts.Created = sw.now
		if !sw.o.DryRun {
			if err := repo.RecordPack(p.ID, sw.now, len(entries)); err != nil {
				return fmt.Errorf("record pack %s: %w", p.ID, err)
			}
		}
	}
	switch pl = fenced(pl, facts.Created, sw.fence); {
	case pl == planGrace:
		sw.add(func(rep *Report) { rep.PacksKeptGrace++ })
		return nil
	case sw.o.DryRun:
		n := freedEstimate(pl, u, repo.PackBytes(ctx, p.ID))
		sw.add(func(rep *Report) {
			rep.BytesFreed += n
			if pl == planCompact {
				rep.PacksCompacted++
			} else {
				rep.PacksDeleted++
			}
		})
		return nil
	case pl == planCompact:
		sw.add(func(*Report) { sw.compact = append(sw.compact, p.ID) })
		return nil
	}
	ok, err := sw.remove(ctx, p.ID, entries, nil)
	if ok {
		sw.add(func(rep *Report) { rep.PacksDeleted++ })
	}
	return err
}

// remove deletes pack p unless a backup of this process still needs it.
func (sw *sweeper) remove(ctx context.Context, p pack.ID, entries []pack.Entry, copied map[pack.ChunkID]struct{}) (bool, error) {
	ok, freed, err := sw.repo.DeletePack(ctx, p, entries, copied)
	switch {
	case err != nil:
		return ok, err
	case !ok:
		sw.repo.Logf("pack %s is in use by a running backup: kept", p)
	default:
		sw.add(func(rep *Report) { rep.BytesFreed += freed })
	}
	return ok, nil
}

// compactAll rewrites the queued packs in batches: copy their live chunks
// into new packs, wait until those are durable and indexed, then delete the
// originals. A batch bounds what is held between copy and delete.
func (sw *sweeper) compactAll(ctx context.Context) error {
	for i := 0; i < len(sw.compact); i += compactBatch {
		batch := sw.compact[i:min(i+compactBatch, len(sw.compact))]
		if err := sw.compactBatch(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

// compactBatch reads the headers again rather than keep them from the
// visit: only a batch's worth is held at a time.
func (sw *sweeper) compactBatch(ctx context.Context, batch []pack.ID) error {
	repo := sw.repo
	jobs := make([]Compaction, 0, len(batch))
	for _, p := range batch {
		entries, err := repo.Header(ctx, p)
		var live []bool
		if err == nil {
			live, err = liveEntries(repo, sw.marks, p, entries)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			repo.Logf("pack %s not compacted: %v", p, err)
			continue
		}
		jobs = append(jobs, Compaction{Pack: p, Entries: entries, Live: live})
	}
	if len(jobs) == 0 {
		return nil
	}
	copied, written, err := repo.CopyLive(ctx, jobs)
	if err != nil {
		return fmt.Errorf("compact packs: %w", err)
	}
	if len(copied) != len(jobs) {
		return fmt.Errorf("compact packs: %d results for %d packs", len(copied), len(jobs))
	}
	sw.add(func(rep *Report) { rep.BytesFreed -= written })
	for i, c := range jobs {
		if err := copied[i].Err; err != nil {
			repo.Logf("pack %s not compacted: %v", c.Pack, err)
			continue
		}
		ok, err := sw.remove(ctx, c.Pack, c.Entries, copied[i].Chunks)
		if err != nil {
			return err
		}
		if ok {
			sw.add(func(rep *Report) { rep.PacksCompacted++ })
		}
	}
	return nil
}
