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

	"cairn/dedup/prune"
)

// PruneOptions steer a prune (package prune, docs/prune.md).
type PruneOptions = prune.Options

// PruneReport says what a prune did (or, with DryRun, would do).
type PruneReport = prune.Report

const pruneMarkerName = "prune/last"

// Prune removes data no checkpoint references: mark every chunk of every
// committed manifest, then sweep the packs in the shard stores. It is safe
// to run while backups run in this process (session pins and the gate) and
// on other hosts (lock objects, and the grace period). On error the report
// so far is returned with it; a prune stopped at any point loses nothing.
//
// What to delete or compact is package prune's to decide; what it must not
// touch because a backup of this process or another needs it is decided
// here, before and around prune.Run and behind pruneRepo's methods.
func (r *Repository) Prune(ctx context.Context, o PruneOptions) (*PruneReport, error) {
	if r.idx == nil {
		return nil, errors.New("prune needs the index: open the repository without NoIndex")
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
	if o.TempDir == "" {
		o.TempDir = r.dir
	}
	rep, err := prune.Run(ctx, pruneRepo{r: r, now: now}, o)
	if err != nil {
		return rep, err
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
