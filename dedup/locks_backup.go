package dedup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"cairn/dedup/pack"
	"cairn/dedup/store"
)

// pruneWaitPoll is how often a committing backup looks again whether the
// prune of another process it waits for has ended.
var pruneWaitPoll = 2 * time.Second

// backupGuard is a backup's side of the cross-process protocol (locks.go).
type backupGuard struct {
	r      *Repository
	lock   *repoLock
	marker []byte // prune/last when the backup started
	// verify is set when a prune of another process may have deleted packs
	// the backup references: they are checked before the commit.
	verify bool
}

// guardBackup takes the backup's lock, then looks for prunes of other
// processes, and brings the index up to date when one ran since the index
// last looked (it would still list the packs that prune deleted).
func (r *Repository) guardBackup(ctx context.Context) (*backupGuard, error) {
	l, err := r.takeLock(ctx, lockBackup)
	if err != nil {
		return nil, err
	}
	g := &backupGuard{r: r, lock: l}
	locks, err := r.otherLocks(ctx, 1)
	if err == nil {
		g.verify = len(liveLocks(locks, lockPrune)) > 0
		g.marker, err = r.readPruneMarker(ctx)
	}
	if err == nil && !bytes.Equal(g.marker, r.idx.SeenPrune()) {
		r.log("a prune ran in another process since this index last looked: dropping the packs it deleted from the index")
		err = r.syncIndex(ctx, g.marker)
		g.verify = g.verify || !bytes.Equal(g.marker, r.idx.SeenPrune())
	}
	if err != nil {
		l.release()
		return nil, fmt.Errorf("check for prunes in other processes: %w", err)
	}
	return g, nil
}

func (g *backupGuard) release() { g.lock.release() }

// beforeCommit runs just before the manifest is written. A prune of another
// process that is still running may yet delete a pack the checkpoint
// references, so it waits for it to end; then, if any prune may have run
// since the backup started, it checks that every pack the checkpoint takes
// from earlier backups still has k shards. It never lets a manifest that
// references a deleted pack be committed.
func (g *backupGuard) beforeCommit(ctx context.Context, sess *session, bm *BlockMap) error {
	r := g.r
	waited := false
	for {
		locks, err := r.otherLocks(ctx, 1)
		if err != nil {
			return fmt.Errorf("check for prunes in other processes: %w", err)
		}
		prunes := liveLocks(locks, lockPrune)
		if len(prunes) == 0 {
			break
		}
		if !waited {
			r.log("waiting for a prune in another process to end before committing (%s)", describeLocks(prunes))
			waited = true
		}
		g.verify = true
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pruneWaitPoll):
		}
	}
	m, err := r.readPruneMarker(ctx)
	if err != nil || !bytes.Equal(m, g.marker) || g.lock.expired() {
		g.verify = true
	}
	if !g.verify {
		return nil
	}
	return r.checkPacksExist(ctx, sess, bm)
}

// checkPacksExist checks that every pack bm references, other than those the
// session wrote, still has at least k shards. A pack gone because a prune
// compacted it is no loss: its live chunks were copied to a new pack and
// indexed there before it was deleted, so the references taken from the
// parent are pointed at the pack the index names. Only chunks found in no
// pack refuse the commit; their index entries are dropped, so that the
// backup run again stores them anew.
func (r *Repository) checkPacksExist(ctx context.Context, sess *session, bm *BlockMap) error {
	exists := make(map[PackID]bool, len(bm.Packs))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(headerWorkers)
	sess.mu.Lock()
	for _, p := range bm.Packs {
		if _, own := sess.newPacks[p]; own {
			mu.Lock()
			exists[p] = true
			mu.Unlock()
			continue
		}
		g.Go(func() error {
			ok := r.shardCount(gctx, pack.Name(p)) >= r.cfg.DataShards
			mu.Lock()
			exists[p] = ok
			mu.Unlock()
			return gctx.Err()
		})
	}
	sess.mu.Unlock()
	if err := g.Wait(); err != nil {
		return err
	}
	// packExists answers for packs the index names in place of gone ones.
	packExists := func(p PackID) bool {
		if ok, known := exists[p]; known {
			return ok
		}
		sess.mu.Lock()
		_, own := sess.newPacks[p]
		sess.mu.Unlock()
		ok := own || r.shardCount(ctx, pack.Name(p)) >= r.cfg.DataShards
		exists[p] = ok
		return ok
	}
	lost := make(map[PackID][]packEntry)
	var hints map[PackID]uint32 // bm.Packs' indexes, built on the first move
	moved := false
	for i := range bm.Chunks {
		c := &bm.Chunks[i]
		p := bm.Packs[c.Pack]
		if exists[p] {
			continue
		}
		loc, found, err := r.idx.Lookup(c.ID)
		if err != nil {
			return fmt.Errorf("look up chunk %s of deleted pack %s: %w", c.ID, p, err)
		}
		if found && loc.Pack != p && packExists(loc.Pack) {
			if hints == nil {
				hints = make(map[PackID]uint32, len(bm.Packs))
				for j, q := range bm.Packs {
					hints[q] = uint32(j)
				}
			}
			j, ok := hints[loc.Pack]
			if !ok {
				j = uint32(len(bm.Packs))
				hints[loc.Pack] = j
				bm.Packs = append(bm.Packs, loc.Pack)
			}
			c.Pack, moved = j, true
			continue
		}
		lost[p] = append(lost[p], packEntry{ID: c.ID})
	}
	if moved {
		bm.dropUnusedPacks()
	}
	var gone []PackID
	for p, entries := range lost {
		gone = append(gone, p)
		if err := r.idx.RemovePack(p, entries); err != nil {
			r.log("unindex deleted pack %s: %v", p, err)
		}
		r.headers.Remove(p)
	}
	if len(gone) > 0 {
		return fmt.Errorf("checkpoint not committed: %d packs it references (first %s) were deleted by a prune in another process; their index entries are dropped, run the backup again: %w",
			len(gone), gone[0], ErrChunkNotFound)
	}
	return nil
}

// pruneGuard is a prune's side of the protocol.
type pruneGuard struct {
	r       *Repository
	lock    *repoLock
	blocked []storedLock // live locks of other processes: delete nothing
	// consistent: the index knew every prune before this one.
	consistent bool
}

// guardPrune takes the prune's lock and lists the others'. With another
// process's backup or prune live, the prune must delete nothing: the lock
// is released at once (so that backups do not wait for a prune that does
// nothing) and blocked says who. Otherwise stale locks of dead processes
// are removed.
func (r *Repository) guardPrune(ctx context.Context) (*pruneGuard, error) {
	l, err := r.takeLock(ctx, lockPrune)
	if err != nil {
		return nil, err
	}
	g := &pruneGuard{r: r, lock: l}
	locks, err := r.otherLocks(ctx, len(r.stores))
	var marker []byte
	if err == nil {
		marker, err = r.readPruneMarker(ctx)
	}
	if err != nil {
		l.release()
		return nil, fmt.Errorf("list the locks of other processes: %w", err)
	}
	g.consistent = bytes.Equal(marker, r.idx.SeenPrune())
	if g.blocked = liveLocks(locks, ""); len(g.blocked) > 0 {
		l.release()
		return g, nil
	}
	for _, sl := range locks { // all stale here
		for _, s := range r.stores {
			_ = s.Delete(ctx, sl.name)
		}
	}
	return g, nil
}

// finish writes the end marker (a backup that started during the prune
// sees prune/last change and checks its packs), records it as seen by the
// index when the index knew every earlier prune, and releases the lock.
func (g *pruneGuard) finish(ctx context.Context, now time.Time) error {
	if len(g.blocked) > 0 {
		return nil
	}
	defer g.lock.release()
	r := g.r
	if err := r.writePruneMarker(ctx, now, time.Now()); err != nil {
		return err
	}
	if !g.consistent {
		return nil
	}
	m, err := r.readPruneMarker(ctx)
	if err != nil {
		return nil // the next backup syncs the index
	}
	return r.idx.SetSeenPrune(m)
}

// readPruneMarker returns prune/last from the first store that has it, or
// nil when no prune ever ran.
func (r *Repository) readPruneMarker(ctx context.Context) ([]byte, error) {
	var errs []error
	for i, s := range r.stores {
		b, err := s.Get(ctx, pruneMarkerName)
		if err == nil {
			return b, nil
		}
		errs = append(errs, fmt.Errorf("shard store %d: %w", i, err))
	}
	if !slices.ContainsFunc(errs, func(err error) bool { return !errors.Is(err, store.ErrNotFound) }) {
		return nil, nil
	}
	return nil, fmt.Errorf("read %s: %w", pruneMarkerName, errors.Join(errs...))
}

// report turns a blocked prune's would-be deletions into packs left for
// later.
func (g *pruneGuard) report(rep *PruneReport) {
	if len(g.blocked) == 0 {
		return
	}
	rep.PacksLeft = rep.PacksDeleted + rep.PacksCompacted
	rep.PacksDeleted, rep.PacksCompacted, rep.BytesFreed, rep.ManifestsIncompleteRemoved = 0, 0, 0, 0
	var parts []string
	for _, l := range g.blocked {
		what := "backing up"
		if l.Kind != lockBackup {
			what = "pruning"
		}
		parts = append(parts, fmt.Sprintf("%s on %s pid %d", what, l.Host, l.PID))
	}
	rep.BlockedBy = strings.Join(parts, ", ")
}
