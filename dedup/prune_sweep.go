package dedup

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"cairn/dedup/index"
	"cairn/dedup/pack"
)

const (
	// pruneWorkers bounds concurrent pack visits: header reads are small
	// and latency-bound, so a few in flight hide store round trips.
	pruneWorkers = 8
	// compactBatch bounds how many packs' pack IDs and headers compaction
	// holds before it seals the copies and deletes the originals.
	compactBatch = 32
)

// sweeper is one prune's pass over the packs in the shard stores.
type sweeper struct {
	r          *Repository
	o          PruneOptions
	now, fence time.Time
	marks      *markSet

	mu      sync.Mutex // guards rep and compact
	rep     *PruneReport
	compact []PackID
}

func (sw *sweeper) add(f func(*PruneReport)) {
	sw.mu.Lock()
	f(sw.rep)
	sw.mu.Unlock()
}

// run visits every pack the shard stores hold (the stores are the truth:
// the index lacks packs a killed backup wrote), deleting dead ones as it
// goes, then compacts the nearly empty ones.
func (sw *sweeper) run(ctx context.Context) error {
	type listed struct {
		id     PackID
		shards int
	}
	var packs []listed
	err := sw.r.obj.List(ctx, "packs/", func(name string, shards int) error {
		if p, err := ParsePackID(name[strings.LastIndexByte(name, '/')+1:]); err == nil {
			packs = append(packs, listed{p, shards})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list packs: %w", err)
	}
	sw.rep.PacksTotal = len(packs)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pruneWorkers)
	for _, p := range packs {
		g.Go(func() error { return sw.visit(gctx, p.id, p.shards) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return sw.compactAll(ctx)
}

// visit decides the fate of one pack: delete it when no chunk in it is live,
// queue it for compaction when little is, and otherwise leave it alone.
func (sw *sweeper) visit(ctx context.Context, p PackID, shards int) error {
	r := sw.r
	entries, err := r.packHeader(ctx, p)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if shards >= r.cfg.DataShards {
			r.log("pack %s unreadable, kept for repair: %v", p, err)
			return nil
		}
		entries = nil // a write that never finished holds nothing referenced
	}
	live, err := r.liveEntries(sw.marks, p, entries)
	if err != nil {
		return err
	}
	var liveBytes, total int64
	nlive := 0
	for i, e := range entries {
		total += int64(e.StoredLen)
		if live[i] {
			liveBytes += int64(e.StoredLen)
			nlive++
		}
	}
	sw.add(func(rep *PruneReport) {
		rep.ChunksLive += int64(nlive)
		rep.ChunksDead += int64(len(entries) - nlive)
	})
	dead := nlive == 0
	compact := !dead && nlive < len(entries) && float64(liveBytes) < sw.o.CompactBelow*float64(total)
	if !dead && !compact {
		return nil
	}
	// Checked before the index: once no session of this process writes p,
	// its uploader has indexed it if it ever will.
	if r.packInFlight(p) {
		return nil
	}
	pi, indexed, err := r.idx.Pack(p)
	if err != nil {
		return fmt.Errorf("index pack %s: %w", p, err)
	}
	if entries == nil && indexed && pi.Chunks > 0 {
		r.log("pack %s has %d shards but was once complete: kept for repair", p, shards)
		return nil
	}
	if !indexed {
		// Written by a backup killed before indexing it, or by another
		// host, or skipped by a rebuild: its age is unknown, so it counts
		// as new from now. Recording that lets a later prune remove it.
		pi = index.PackInfo{Created: sw.now, Chunks: uint32(len(entries))}
		if !sw.o.DryRun {
			if err := r.idx.AddPack(p, pi, nil); err != nil {
				return fmt.Errorf("record pack %s: %w", p, err)
			}
		}
	}
	if pi.Created.After(sw.fence) {
		sw.add(func(rep *PruneReport) { rep.PacksKeptGrace++ })
		return nil
	}
	if sw.o.DryRun {
		n := r.shardBytes(ctx, pack.Name(p))
		if compact {
			n = n * (total - liveBytes) / total
		}
		sw.add(func(rep *PruneReport) {
			rep.BytesFreed += n
			if compact {
				rep.PacksCompacted++
			} else {
				rep.PacksDeleted++
			}
		})
		return nil
	}
	if compact {
		sw.add(func(*PruneReport) { sw.compact = append(sw.compact, p) })
		return nil
	}
	ok, err := sw.remove(ctx, p, entries, nil, nil)
	if ok {
		sw.add(func(rep *PruneReport) { rep.PacksDeleted++ })
	}
	return err
}

// remove unlinks pack p and then deletes its shards. Deleting only after the
// index has forgotten the pack means a prune killed in between leaves an
// unindexed orphan, which the next prune removes, and never a dangling entry.
func (sw *sweeper) remove(ctx context.Context, p PackID, entries []packEntry, copied map[ChunkID]struct{}, own *session) (bool, error) {
	r := sw.r
	ok, err := r.unlinkPack(p, entries, copied, own)
	if err != nil || !ok {
		if err == nil {
			r.log("pack %s is in use by a running backup: kept", p)
		}
		return false, err
	}
	n := r.shardBytes(ctx, pack.Name(p))
	if err := r.obj.Delete(ctx, pack.Name(p)); err != nil {
		return true, fmt.Errorf("delete pack %s: %w", p, err)
	}
	r.headers.Remove(p) // a reader may have cached it again meanwhile
	sw.add(func(rep *PruneReport) { rep.BytesFreed += n })
	return true, nil
}

// unlinkPack makes pack p unfindable unless a backup of this process needs
// it. Under the gate's write lock no dedup lookup is in flight: a chunk in p
// was either pinned before (and is seen here) or cannot be found after.
// copied lists chunks already stored again elsewhere, which need no pin;
// own is the prune's compaction session.
func (r *Repository) unlinkPack(p PackID, entries []packEntry, copied map[ChunkID]struct{}, own *session) (bool, error) {
	r.gate.Lock()
	defer r.gate.Unlock()
	for s := range r.sessions {
		if s != own && s.holds(p, entries, copied) {
			return false, nil
		}
	}
	for _, s := range r.ended {
		if s != own && s.holds(p, entries, copied) {
			return false, nil
		}
	}
	if err := r.idx.RemovePack(p, entries); err != nil {
		return false, fmt.Errorf("unindex pack %s: %w", p, err)
	}
	r.headers.Remove(p)
	for _, e := range entries {
		if _, ok := copied[e.ID]; !ok {
			r.chunks.Remove(e.ID)
		}
	}
	return true, nil
}

// holds reports whether the session wrote pack p or references a chunk of
// it other than those in skip.
func (s *session) holds(p PackID, entries []packEntry, skip map[ChunkID]struct{}) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.newPacks[p]; ok {
		return true
	}
	for _, e := range entries {
		if _, ok := skip[e.ID]; ok {
			continue
		}
		_, pinned := s.pins[e.ID]
		_, pending := s.pending[e.ID]
		if pinned || pending {
			return true
		}
	}
	return false
}

// packInFlight reports whether a backup of this process is writing pack p.
func (r *Repository) packInFlight(p PackID) bool {
	r.gate.RLock()
	defer r.gate.RUnlock()
	for s := range r.sessions {
		if s.holds(p, nil, nil) {
			return true
		}
	}
	return false
}

// heldChunks returns the chunks of entries that some backup of this process
// references right now.
func (r *Repository) heldChunks(entries []packEntry, own *session) map[ChunkID]struct{} {
	held := make(map[ChunkID]struct{})
	visit := func(s *session) {
		if s == own {
			return
		}
		s.mu.Lock()
		for _, e := range entries {
			_, pinned := s.pins[e.ID]
			_, pending := s.pending[e.ID]
			if pinned || pending {
				held[e.ID] = struct{}{}
			}
		}
		s.mu.Unlock()
	}
	r.gate.RLock()
	defer r.gate.RUnlock()
	for s := range r.sessions {
		visit(s)
	}
	for _, s := range r.ended {
		visit(s)
	}
	return held
}
