package dedup

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"cairn/dedup/store"
)

// RepairReport is what Repair did.
type RepairReport struct {
	Rewritten     []ShardDamage
	Unrecoverable []string // objects with fewer than k good shards, left alone
}

// errUnrepairable marks an object whose surviving shards cannot give back
// trustworthy replacements.
var errUnrepairable = errors.New("cannot be rebuilt from its surviving shards")

// Repair rewrites the missing and corrupt shards of every pack and manifest
// that still has k good ones, from the object rebuilt out of them. Objects
// with fewer are listed and not touched: nothing here can fix them, and
// their remaining shards may still matter to a manual recovery. Damage that
// shard checksums cannot see (chunks that fail Verify's Deep check) is out
// of reach of parity and so of Repair.
func (r *Repository) Repair(ctx context.Context) (*RepairReport, error) {
	packs, manifests, err := r.verifyTargets(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(packs)+len(manifests))
	for _, p := range packs {
		names = append(names, packName(p))
	}
	for name := range manifests {
		names = append(names, name)
	}
	rep := &RepairReport{}
	var mu sync.Mutex
	var damaged []objectCheck
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(verifyParallel)
	for _, name := range names {
		g.Go(func() error {
			c, err := r.checkShards(gctx, name)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case len(c.damage) == 0:
			case c.good < c.k:
				rep.Unrecoverable = append(rep.Unrecoverable, name)
			default:
				damaged = append(damaged, c)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// One object at a time: each repair holds a whole object and all its
	// shards in memory, and packs may be up to a GiB.
	sort.Slice(damaged, func(i, j int) bool { return damaged[i].name < damaged[j].name })
	for _, c := range damaged {
		rewritten, err := r.repairObject(ctx, c)
		switch {
		case errors.Is(err, errUnrepairable):
			r.log("not repairing %s: %v", c.name, err)
			rep.Unrecoverable = append(rep.Unrecoverable, c.name)
		case err != nil:
			return rep, err
		default:
			rep.Rewritten = append(rep.Rewritten, rewritten...)
		}
	}
	sort.Strings(rep.Unrecoverable)
	return rep, nil
}

// repairObject rebuilds c's object and rewrites its damaged shards. It
// returns the shards it rewrote.
func (r *Repository) repairObject(ctx context.Context, c objectCheck) ([]ShardDamage, error) {
	data, err := r.obj.get(ctx, c.name)
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return nil, fmt.Errorf("%w: %w", errUnrepairable, err)
		}
		return nil, fmt.Errorf("rebuild %s: %w", c.name, err)
	}
	shards, err := r.obj.encode(data)
	if err != nil {
		return nil, fmt.Errorf("re-encode %s: %w", c.name, err)
	}
	damaged := make(map[int]bool, len(c.damage))
	for _, d := range c.damage {
		damaged[d.Shard] = true
	}
	// The rebuilt object must re-encode to exactly the shards that survived.
	// If it does not, they do not belong together (a shard of another
	// object, another geometry), and parity computed from them would only
	// spread the damage.
	good := -1
	for i, s := range shards {
		if damaged[i] {
			continue
		}
		have, err := r.obj.header(ctx, c.name, i)
		if err != nil {
			return nil, fmt.Errorf("%w: shard %d: %w", errUnrepairable, i, err)
		}
		want, err := parseShardPrefix(s)
		if err != nil || !sameShard(have, want) {
			return nil, fmt.Errorf("%w: shard %d differs from the rebuilt object's", errUnrepairable, i)
		}
		good = i
	}
	// Under the gate prune's sweep cannot run; if the object went away
	// since the scan, a rewritten shard would bring a fragment back.
	r.gate.RLock()
	defer r.gate.RUnlock()
	if _, err := r.stores[good].Stat(ctx, c.name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("stat %s: %w", c.name, err)
	}
	var done []ShardDamage
	for _, d := range c.damage {
		if err := r.stores[d.Shard].Put(ctx, c.name, shards[d.Shard]); err != nil {
			return done, fmt.Errorf("rewrite shard %d of %s: %w", d.Shard, c.name, err)
		}
		r.obj.headers.remove(shardKey{c.name, d.Shard})
		done = append(done, d)
	}
	return done, nil
}

func sameShard(a, b *shardHeader) bool {
	if a.k != b.k || a.m != b.m || a.index != b.index || a.objectLen != b.objectLen ||
		a.shardLen != b.shardLen || a.blockSize != b.blockSize || len(a.sums) != len(b.sums) {
		return false
	}
	for i := range a.sums {
		if a.sums[i] != b.sums[i] {
			return false
		}
	}
	return true
}

// inFlightPacks returns the packs that running backups have written or are
// writing: until their checkpoint commits, they may lack shards.
func (r *Repository) inFlightPacks() map[PackID]struct{} {
	out := make(map[PackID]struct{})
	r.gate.RLock()
	defer r.gate.RUnlock()
	for s := range r.sessions {
		s.mu.Lock()
		for p := range s.newPacks {
			out[p] = struct{}{}
		}
		s.mu.Unlock()
	}
	return out
}

// objectCheck is what reading every shard of one object found.
type objectCheck struct {
	name   string
	k      int
	good   int
	damage []ShardDamage
}

// checkShards reads every shard of name in full. Only failures of the stores
// to answer at all (and cancellation) are errors; everything else is damage.
func (r *Repository) checkShards(ctx context.Context, name string) (objectCheck, error) {
	c := objectCheck{name: name, k: r.cfg.DataShards}
	headers := make([]*shardHeader, len(r.stores))
	votes := make(map[int64]int)
	for i := range r.stores {
		h, err := r.checkShard(ctx, name, i)
		if err != nil {
			if ctx.Err() != nil {
				return c, ctx.Err()
			}
			c.damage = append(c.damage, ShardDamage{Object: name, Shard: i, Problem: shardProblem(err)})
			continue
		}
		headers[i] = h
		votes[h.objectLen]++
	}
	// Every shard records the object's length. One whose own checksums pass
	// but which disagrees with the majority belongs to some other object.
	var length int64
	best := 0
	for n, v := range votes {
		if v > best || v == best && n < length {
			length, best = n, v
		}
	}
	for i, h := range headers {
		if h == nil {
			continue
		}
		if h.objectLen != length {
			c.damage = append(c.damage, ShardDamage{Object: name, Shard: i,
				Problem: fmt.Sprintf("corrupt: object length %d, other shards say %d", h.objectLen, length)})
			continue
		}
		c.good++
	}
	sort.Slice(c.damage, func(i, j int) bool { return c.damage[i].Shard < c.damage[j].Shard })
	return c, nil
}

// checkShard reads shard i of name in verifyPiece steps, so memory stays
// bounded whatever the pack size, and checks every block's checksum.
func (r *Repository) checkShard(ctx context.Context, name string, i int) (*shardHeader, error) {
	// What is stored now matters, not what was cached when it was read.
	r.obj.headers.remove(shardKey{name, i})
	h, err := r.obj.header(ctx, name, i)
	if err != nil {
		return nil, err
	}
	size, err := r.stores[i].Stat(ctx, name)
	if err != nil {
		return nil, err
	}
	if want := h.dataOffset() + h.shardLen; size != want {
		return nil, fmt.Errorf("shard of %d bytes, its header says %d: %w", size, want, ErrCorrupt)
	}
	piece := int64(max(1, verifyPiece/h.blockSize) * h.blockSize)
	for a := int64(0); a < h.shardLen; a += piece {
		if _, err := r.obj.readShard(ctx, name, i, a, min(a+piece, h.shardLen)); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// shardProblem describes a shard read failure for a report.
func shardProblem(err error) string {
	if errors.Is(err, store.ErrNotFound) {
		return "missing"
	}
	return "corrupt: " + err.Error()
}
