// Package prune frees what no checkpoint references (docs/prune.md): it
// marks every chunk of every committed manifest and the chunks live deltas
// take pages from, then deletes the packs nothing live is in and compacts
// the nearly empty ones.
//
// The package decides; the repository acts. It reaches the repository only
// through Repo, so that what keeps a backup of the same process safe while
// prune runs (sessions, pins, the gate) and what orders it against other
// processes (lock objects) stay the repository's, and so that the decisions
// can be tested without one.
package prune

import (
	"context"
	"fmt"
	"time"

	"cairn/dedup/pack"
)

// Options steer a prune. See docs/prune.md for the design.
type Options struct {
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

// Report says what a prune did (or, with DryRun, would do).
type Report struct {
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
	// workers bounds concurrent pack visits: header reads are small and
	// latency-bound, so a few in flight hide store round trips.
	workers = 8
	// compactBatch bounds how many packs' pack IDs and headers compaction
	// holds before it seals the copies and deletes the originals.
	compactBatch = 32
)

// Repo is the repository as prune needs it. Every method that changes the
// repository is called only when the prune is not a dry run. Methods may be
// called from several goroutines at once.
type Repo interface {
	// Now is the time the prune started; the grace fence is measured from
	// it. Prune reads it once.
	Now() time.Time
	// Logf reports what prune passes over and why.
	Logf(format string, args ...any)

	// MarkLive calls mark with every chunk of every committed manifest. It
	// fails rather than skip a manifest it cannot read: that manifest's
	// chunks would look dead.
	MarkLive(ctx context.Context, mark func(pack.ChunkID) error) error
	// Packs lists the packs the shard stores hold. The stores are the
	// truth: the index lacks packs a killed backup wrote.
	Packs(ctx context.Context) ([]Pack, error)
	// Header returns the entries of pack p.
	Header(ctx context.Context, p pack.ID) ([]pack.Entry, error)
	// IsDelta reports whether an entry is stored as a delta over other
	// chunks (docs/format.md §9.3).
	IsDelta(e pack.Entry) bool
	// Lookup returns where the index places chunk id.
	Lookup(id pack.ChunkID) (Indexed, bool, error)
	// ReadDelta returns the chunks the delta chunk at loc takes pages from,
	// and how many pages it takes from them: what storing it whole writes.
	ReadDelta(ctx context.Context, loc pack.Loc) (refs []pack.ChunkID, borrowed int64, err error)

	// RewriteWhole stores the delta chunks at users again whole, in new
	// packs, durable and indexed when it returns; the delta copies are
	// then superseded. It returns the bytes it wrote.
	RewriteWhole(ctx context.Context, users []pack.Loc) (written int64, err error)
	// WriteMarker tells other processes that a prune that started at
	// started may delete packs from now on.
	WriteMarker(ctx context.Context, started time.Time) error
	// RemoveIncompleteManifests removes the manifests with too few shards
	// to read (commits that died) made before fence, or with dry counts
	// them. It removes none while a backup of this process may be
	// committing one of them.
	RemoveIncompleteManifests(ctx context.Context, fence time.Time, dry bool) (int, error)

	// PackFacts returns what the repository knows of pack p beyond its
	// header.
	PackFacts(p pack.ID) (PackFacts, error)
	// RecordPack records pack p, unknown to the index, as first seen at
	// created, so that a later prune can tell its age.
	RecordPack(p pack.ID, created time.Time, chunks int) error
	// PackBytes returns the shard bytes pack p takes in the stores.
	PackBytes(ctx context.Context, p pack.ID) int64
	// CopyLive copies the live entries of each pack of batch, and the
	// entries a backup of this process holds, as stored, into new packs,
	// durable and indexed when it returns. A pack it could not read is
	// left out (Copied.Err); an error stops the whole batch and deletes
	// nothing. It returns the bytes it wrote.
	CopyLive(ctx context.Context, batch []Compaction) ([]Copied, int64, error)
	// DeletePack makes pack p unfindable and deletes its shards, unless a
	// backup of this process holds it or one of its entries other than
	// those in copied (stored again elsewhere): then it returns false. It
	// returns the shard bytes it deleted. An error after the pack was made
	// unfindable still returns true: an unindexed pack is an orphan the
	// next prune removes.
	DeletePack(ctx context.Context, p pack.ID, entries []pack.Entry, copied map[pack.ChunkID]struct{}) (deleted bool, freed int64, err error)
}

// Pack is a pack the shard stores list.
type Pack struct {
	ID       pack.ID
	Shards   int  // shard stores holding a shard of it
	Complete bool // at least k shards: it was written to the end
}

// Indexed is where the index places a chunk.
type Indexed struct {
	pack.Loc
	Pages int64 // 4 KiB pages of the chunk's plaintext
}

// PackFacts is what the repository knows of a pack beyond its header.
type PackFacts struct {
	// Writing: a backup of this process is still writing the pack. Once
	// none is, its uploader has indexed it if it ever will.
	Writing bool
	Indexed bool
	Created time.Time // when the index first saw the pack
	Chunks  int       // entries the index recorded for it
}

// Compaction is a nearly empty pack whose live chunks are to be copied.
type Compaction struct {
	Pack    pack.ID
	Entries []pack.Entry
	Live    []bool // per entry: prune keeps it
}

// Copied is what CopyLive did with one pack of its batch.
type Copied struct {
	Chunks map[pack.ChunkID]struct{} // stored again in the new packs
	Err    error                     // why the pack was not copied
}

// Run prunes repo: mark every chunk of every committed manifest, mark the
// chunks live deltas take pages from (rewriting whole the deltas that keep
// a chunk alive for little), write the prune marker, remove incomplete
// manifests, then sweep the packs. Packs younger than the grace fence are
// left alone. On error the report so far is returned with it; a prune
// stopped at any point loses nothing.
func Run(ctx context.Context, repo Repo, o Options) (*Report, error) {
	switch {
	case o.Grace == 0:
		o.Grace = defaultGrace
	case o.Grace < 0:
		o.Grace = 0
	}
	if o.CompactBelow == 0 {
		o.CompactBelow = defaultCompactBelow
	}
	now := repo.Now()
	fence := now.Add(-o.Grace)
	marks, err := newMarkSet(o.TempDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := marks.close(); err != nil {
			repo.Logf("remove prune mark set: %v", err)
		}
	}()
	rep := &Report{}
	err = repo.MarkLive(ctx, marks.add)
	if err == nil {
		err = marks.flush()
	}
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	if err := markDeltaRefs(ctx, repo, marks, o, rep); err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	if !o.DryRun {
		if err := repo.WriteMarker(ctx, now); err != nil {
			return rep, fmt.Errorf("prune: %w", err)
		}
	}
	if rep.ManifestsIncompleteRemoved, err = repo.RemoveIncompleteManifests(ctx, fence, o.DryRun); err != nil {
		return rep, fmt.Errorf("prune: %w", err)
	}
	sw := &sweeper{repo: repo, o: o, now: now, fence: fence, marks: marks, rep: rep}
	if err := sw.run(ctx); err != nil {
		return rep, fmt.Errorf("prune: %w", err)
	}
	return rep, nil
}

// liveEntries reports, for each entry of pack p, whether prune keeps it:
// marked, and not a superseded delta copy.
func liveEntries(repo Repo, marks *markSet, p pack.ID, entries []pack.Entry) ([]bool, error) {
	live, err := marks.live(entries)
	if err != nil {
		return nil, err
	}
	for i, e := range entries {
		if !live[i] {
			continue
		}
		old, err := superseded(repo, p, e)
		if err != nil {
			return nil, err
		}
		live[i] = !old
	}
	return live, nil
}

// superseded reports whether entry e of pack p is a delta whose chunk the
// index names elsewhere, stored whole: prune rewrote it so, and the delta
// copy (with the references that came with it) is dead.
func superseded(repo Repo, p pack.ID, e pack.Entry) (bool, error) {
	if !repo.IsDelta(e) {
		return false, nil
	}
	at, ok, err := repo.Lookup(e.ID)
	if err != nil {
		return false, fmt.Errorf("index lookup %s: %w", e.ID, err)
	}
	return ok && at.Pack != p && !repo.IsDelta(at.Entry), nil
}
