package dedup

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// PruneOptions steer a prune. See docs/prune.md for the design.
type PruneOptions struct {
	// Grace protects packs younger than this (default 1h; negative means
	// none): a backup on another host may have written them and not yet
	// committed the manifest that references them.
	Grace time.Duration
	// CompactBelow is the live share of a pack's stored bytes below which
	// its live chunks are copied to new packs and the pack deleted (default
	// 0.2; negative never compacts). Packs above it are never rewritten.
	CompactBelow float64
	// DryRun computes the report without changing anything.
	DryRun bool
	// TempDir holds the on-disk mark set (default the repository directory).
	TempDir string
}

// PruneReport says what a prune did (or, with DryRun, would do).
type PruneReport struct {
	PacksTotal, PacksDeleted, PacksCompacted, PacksKeptGrace, ManifestsIncompleteRemoved int
	// BytesFreed is the shard bytes deleted, less those compaction wrote.
	BytesFreed int64
	// ChunksLive and ChunksDead count the chunks of readable packs.
	ChunksLive, ChunksDead int64
	// PacksLeft counts the packs a prune would have deleted or compacted
	// but left alone because another process was backing up or pruning
	// (BlockedBy names them); nothing was deleted then.
	PacksLeft int
	BlockedBy string
	// DeltasRewritten counts the delta chunks stored whole again because
	// the chunks they took pages from were otherwise mostly dead.
	DeltasRewritten int
}

const (
	defaultGrace        = time.Hour
	defaultCompactBelow = 0.2
	pruneMarkerName     = "prune/last"
)

// Prune removes data no checkpoint references: mark every chunk of every
// committed manifest, then sweep the packs in the shard stores. It is safe
// to run while backups run in this process (session pins and the gate) and
// on other hosts (the grace period). On error the report so far is returned
// with it; a prune stopped at any point loses nothing.
func (r *Repository) Prune(ctx context.Context, o PruneOptions) (*PruneReport, error) {
	if r.idx == nil {
		return nil, errors.New("prune needs the index: open the repository without NoIndex")
	}
	switch {
	case o.Grace == 0:
		o.Grace = defaultGrace
	case o.Grace < 0:
		o.Grace = 0
	}
	if o.CompactBelow == 0 {
		o.CompactBelow = defaultCompactBelow
	}
	r.pruneMu.Lock()
	defer r.pruneMu.Unlock()
	r.gate.Lock()
	r.pruning = true
	r.gate.Unlock()
	defer func() {
		r.gate.Lock()
		r.pruning, r.ended = false, nil
		r.gate.Unlock()
	}()

	now := r.now()
	fence := now.Add(-o.Grace)
	if err := r.checkStoresPresent(ctx); err != nil {
		return nil, err
	}
	var guard *pruneGuard // other processes: see locks.go
	if !o.DryRun {
		var err error
		if guard, err = r.guardPrune(ctx); err != nil {
			return nil, fmt.Errorf("prune: %w", err)
		}
		defer guard.lock.release()
		o.DryRun = len(guard.blocked) > 0
	}
	tmp := o.TempDir
	if tmp == "" {
		tmp = r.dir
	}
	marks, err := newMarkSet(tmp)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := marks.close(); err != nil {
			r.log("remove prune mark set: %v", err)
		}
	}()
	rep := &PruneReport{}
	if err := r.markLive(ctx, marks); err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	if err := r.markDeltaRefs(ctx, marks, o, rep); err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	if !o.DryRun {
		if err := r.writePruneMarker(ctx, now, time.Time{}); err != nil {
			return rep, err
		}
	}
	if rep.ManifestsIncompleteRemoved, err = r.removeIncompleteManifests(ctx, fence, o.DryRun); err != nil {
		return rep, fmt.Errorf("prune: %w", err)
	}
	sw := &sweeper{r: r, o: o, now: now, fence: fence, marks: marks, rep: rep}
	if err := sw.run(ctx); err != nil {
		return rep, fmt.Errorf("prune: %w", err)
	}
	if !o.DryRun {
		r.idx.GC() // badger never reclaims its value log by itself
	}
	if guard != nil {
		if err := guard.finish(ctx, now); err != nil {
			return rep, fmt.Errorf("prune: %w", err)
		}
		guard.report(rep)
	}
	return rep, nil
}

// checkStoresPresent refuses to prune when a shard store lacks the config
// every store gets at init: an unmounted disk looks like an empty store,
// and every object would then seem to have lost shards.
func (r *Repository) checkStoresPresent(ctx context.Context) error {
	for i, s := range r.stores {
		if _, err := s.Stat(ctx, configName); err != nil {
			return fmt.Errorf("shard store %d (%s) has no config (%v): offline or replaced? refusing to prune until `cairn repo repair` succeeds", i, s, err)
		}
	}
	return nil
}

// markLive adds every chunk of every committed manifest to marks, reading
// one manifest at a time so memory stays bounded by the largest.
func (r *Repository) markLive(ctx context.Context, marks *markSet) error {
	ids, err := r.manifestIDs(ctx)
	if err != nil {
		return fmt.Errorf("list checkpoints: %w", err)
	}
	for _, id := range ids {
		b, err := r.obj.Get(ctx, manifestName(id))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if r.shardCount(ctx, manifestName(id)) < r.cfg.DataShards {
				continue // deleted since the listing: nothing to keep for it
			}
			// Its chunks would look unreferenced: never guess.
			return fmt.Errorf("read manifest %s (run `cairn repo verify`): %w", id, err)
		}
		_, bm, err := r.decodeManifest(id, b, true)
		if err != nil {
			return fmt.Errorf("refusing to prune past an unreadable checkpoint: %w", err)
		}
		for _, c := range bm.Chunks {
			if err := marks.add(c.ID); err != nil {
				return err
			}
		}
	}
	return marks.flush()
}

// pruneMarker is written to every shard store before a prune deletes
// anything, so another host can tell that packs may have gone.
// It is written again when the prune ends, with Finished set, so that a
// backup that started during the prune sees it change.
type pruneMarker struct {
	Time     time.Time `json:"time"`
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Finished time.Time `json:"finished,omitzero"`
	Run      string    `json:"run"` // random: every write differs
}

func (r *Repository) writePruneMarker(ctx context.Context, now, finished time.Time) error {
	host, _ := os.Hostname()
	if !finished.IsZero() {
		finished = finished.UTC()
	}
	b, err := json.Marshal(pruneMarker{Time: now.UTC(), Host: host, PID: os.Getpid(), Finished: finished, Run: hex.EncodeToString(randomBytes(8))})
	if err != nil {
		return err
	}
	for i, s := range r.stores {
		if err := s.Put(ctx, pruneMarkerName, b); err != nil {
			return fmt.Errorf("write prune marker to shard store %d: %w", i, err)
		}
	}
	return nil
}

// removeIncompleteManifests deletes manifests with fewer than k shards: a
// commit that died, never a checkpoint. Only those whose ID (a UUIDv7 made
// when the backup started) is older than the fence are touched, so another
// host's commit in progress is left alone; and none if a backup of this
// process ran during the listing, since its commit may be the one half
// written (sessions that ended since the prune began are in r.ended).
func (r *Repository) removeIncompleteManifests(ctx context.Context, fence time.Time, dry bool) (int, error) {
	fence = fence.Truncate(time.Millisecond) // IDs carry milliseconds
	var names []string
	err := r.obj.List(ctx, "manifests/", func(name string, shards int) error {
		t, ok := checkpointIDTime(strings.TrimPrefix(name, "manifests/"))
		if shards < r.cfg.DataShards && ok && t.Before(fence) {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("list manifests: %w", err)
	}
	r.gate.RLock()
	busy := len(r.sessions) > 0 || len(r.ended) > 0
	r.gate.RUnlock()
	if busy || len(names) == 0 {
		return 0, nil
	}
	if dry {
		return len(names), nil
	}
	for i, name := range names {
		if err := r.obj.Delete(ctx, name); err != nil {
			return i, fmt.Errorf("remove incomplete manifest: %w", err)
		}
	}
	return len(names), nil
}

// checkpointIDTime returns the time a UUIDv7 checkpoint ID was made.
func checkpointIDTime(id string) (time.Time, bool) {
	b, err := hex.DecodeString(strings.ReplaceAll(id, "-", ""))
	if err != nil || len(b) != 16 || b[6]>>4 != 7 {
		return time.Time{}, false
	}
	var ts [8]byte
	copy(ts[2:], b[:6])
	return time.UnixMilli(int64(binary.BigEndian.Uint64(ts[:]))), true
}

// shardCount counts the shard stores holding a shard of name.
func (r *Repository) shardCount(ctx context.Context, name string) int {
	n := 0
	for _, s := range r.stores {
		if _, err := s.Stat(ctx, name); err == nil {
			n++
		}
	}
	return n
}

// checkParentChunks runs before a checkpoint with a parent commits. Backup
// takes unchanged chunks from the parent's block map without an index
// lookup, pinning them outside the gate; if the parent was deleted and a
// prune swept before a pin was taken, a chunk may be gone. While the
// parent's manifest still has k shards, every prune so far saw it and kept
// its chunks, so the usual cost is one Stat per shard store. Otherwise every
// chunk (all pinned or pending by now) is looked up under the gate: found
// now means protected from here on.
func (r *Repository) checkParentChunks(ctx context.Context, cp *Checkpoint, bm *BlockMap) error {
	if cp.Parent == "" || r.idx == nil || r.shardCount(ctx, manifestName(cp.Parent)) >= r.cfg.DataShards {
		return nil
	}
	for _, c := range bm.Chunks {
		r.gate.RLock()
		_, ok, err := r.idx.Lookup(c.ID)
		r.gate.RUnlock()
		if err != nil {
			return fmt.Errorf("index lookup: %w", err)
		}
		if !ok {
			return fmt.Errorf("parent checkpoint %s was deleted during the backup and prune removed chunk %s it shared (run the backup again): %w",
				cp.Parent, c.ID, ErrChunkNotFound)
		}
	}
	return nil
}
