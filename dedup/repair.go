package dedup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"cairn/dedup/store"
)

// RepairReport is what Repair did.
type RepairReport struct {
	Rewritten     []ShardDamage
	Unrecoverable []string // objects with fewer than k good shards, left alone
	// Orphans are packs with fewer than k shards that were never complete
	// (the index records a pack only once all its shards are written): a
	// killed backup's leftovers, which prune removes.
	Orphans []string
}

// errUnrepairable: the surviving shards cannot give trustworthy replacements.
var errUnrepairable = errors.New("cannot be rebuilt from its surviving shards")

// Repair rewrites the missing and corrupt shards of every pack and manifest
// that still has k good ones, from the object rebuilt out of them, and
// config copies that are missing or outvoted (chooseConfig). Objects with fewer are listed and not touched:
// their remaining shards may still matter to a manual recovery. Damage that
// shard checksums cannot see (Verify's Deep) is out of reach of parity.
func (r *Repository) Repair(ctx context.Context) (*RepairReport, error) {
	// A prune of this process would delete packs under our feet, and a shard
	// rewritten after that would resurrect a fragment.
	r.pruneMu.Lock()
	defer r.pruneMu.Unlock()
	packs, manifests, err := r.verifyTargets(ctx)
	if err != nil {
		return nil, err
	}
	names := slices.Collect(maps.Keys(manifests))
	for _, p := range packs {
		names = append(names, packName(p))
	}
	rep := &RepairReport{}
	if err := r.repairConfig(ctx, rep); err != nil {
		return nil, err
	}
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
			case c.good < c.k && r.neverComplete(name):
				rep.Orphans = append(rep.Orphans, name)
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
	sort.Strings(rep.Orphans)
	return rep, nil
}

// neverComplete reports whether name is a pack the index never recorded as
// complete. Without an index nothing can be told apart, so nothing is.
func (r *Repository) neverComplete(name string) bool {
	if r.idx == nil || !strings.HasPrefix(name, "packs/") {
		return false
	}
	p, err := ParsePackID(name[strings.LastIndexByte(name, '/')+1:])
	if err != nil {
		return false
	}
	pi, indexed, err := r.idx.pack(p)
	return err == nil && (!indexed || pi.Chunks == 0)
}

// repairConfig rewrites every config copy that is missing or differs from the
// one the majority of shard stores hold.
func (r *Repository) repairConfig(ctx context.Context, rep *RepairReport) error {
	ref, damage, err := r.checkConfig(ctx)
	if err != nil || len(damage) == 0 {
		return err
	}
	if ref == nil {
		rep.Unrecoverable = append(rep.Unrecoverable, configName)
		return nil
	}
	for _, d := range damage {
		if err := r.stores[d.Shard].Put(ctx, configName, ref); err != nil {
			return fmt.Errorf("rewrite config in shard store %d: %w", d.Shard, err)
		}
		rep.Rewritten = append(rep.Rewritten, d)
	}
	return nil
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
	shards, err := r.obj.encode(c.name, data, nil)
	if err != nil {
		return nil, fmt.Errorf("re-encode %s: %w", c.name, err)
	}
	// The rebuilt object must re-encode to exactly the shards that survived.
	// If it does not, they do not belong together (a shard of another
	// object, another geometry), and parity computed from them would only
	// spread the damage.
	good := -1
	for i, s := range shards {
		if slices.ContainsFunc(c.damage, func(d ShardDamage) bool { return d.Shard == i }) {
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
	// If the object went away since the scan (a checkpoint deleted), a
	// rewritten shard would bring a fragment of it back.
	if _, err := r.stores[good].Stat(ctx, c.name); errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	var done []ShardDamage
	for _, d := range c.damage {
		if err := r.stores[d.Shard].Put(ctx, c.name, shards[d.Shard]); err != nil {
			return done, fmt.Errorf("rewrite shard %d of %s: %w", d.Shard, c.name, err)
		}
		r.obj.headers.Remove(shardKey{c.name, d.Shard})
		done = append(done, d)
	}
	return done, nil
}

func sameShard(a, b *shardHeader) bool {
	return a.k == b.k && a.m == b.m && a.index == b.index && a.objectLen == b.objectLen &&
		a.shardLen == b.shardLen && a.blockSize == b.blockSize && slices.Equal(a.sums, b.sums)
}

// inFlight returns the packs running backups of this process wrote (they may
// lack shards until the commit) and when the earliest of those began.
func (r *Repository) inFlight() (packs map[PackID]struct{}, since time.Time) {
	packs = make(map[PackID]struct{})
	r.gate.RLock()
	defer r.gate.RUnlock()
	for s := range r.sessions {
		s.mu.Lock()
		for p := range s.newPacks {
			packs[p] = struct{}{}
		}
		if since.IsZero() || s.started.Before(since) {
			since = s.started
		}
		s.mu.Unlock()
	}
	return packs, since
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
	length, best := int64(0), 0
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
	r.obj.headers.Remove(shardKey{name, i})
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

// checkConfig reads the config copy of every store and takes the majority
// of the valid ones, as opening does. ref is the copy to keep, nil when the
// copies have no majority or it is not the config this repository was
// opened with; damage lists every copy that is missing or differs from ref.
func (r *Repository) checkConfig(ctx context.Context) (ref []byte, damage []ShardDamage, err error) {
	copies := make([]configCopy, len(r.stores))
	for i, s := range r.stores {
		copies[i] = readConfigCopy(ctx, i, s)
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
	}
	ch, err := chooseConfig(copies)
	if err != nil {
		for _, c := range copies {
			damage = append(damage, ShardDamage{Object: configName, Shard: c.index, Problem: "corrupt: " + err.Error()})
		}
		return nil, damage, nil
	}
	want, _ := json.Marshal(r.cfg)
	if got, _ := json.Marshal(ch.cfg); !bytes.Equal(got, want) {
		for _, c := range copies {
			damage = append(damage, ShardDamage{Object: configName, Shard: c.index,
				Problem: "corrupt: the majority of copies differs from the config the repository was opened with"})
		}
		return nil, damage, nil
	}
	return ch.ref, ch.damage, nil
}
