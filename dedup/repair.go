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

	"cairn/dedup/erasure"
	"cairn/dedup/pack"
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
		names = append(names, pack.Name(p))
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
		case errors.Is(err, erasure.ErrUnrepairable):
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
	pi, indexed, err := r.idx.Pack(p)
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
	chk := erasure.Check{Name: c.name, Good: c.good}
	for _, d := range c.damage {
		chk.Damage = append(chk.Damage, erasure.Damage{Shard: d.Shard, Problem: d.Problem})
	}
	rewritten, err := r.obj.Rebuild(ctx, chk)
	var done []ShardDamage
	for _, i := range rewritten {
		for _, d := range c.damage {
			if d.Shard == i {
				done = append(done, d)
			}
		}
	}
	return done, err
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

// checkShards reads every shard of name in full (erasure.CheckObject).
func (r *Repository) checkShards(ctx context.Context, name string) (objectCheck, error) {
	chk, err := r.obj.CheckObject(ctx, name, verifyPiece)
	c := objectCheck{name: name, k: r.cfg.DataShards, good: chk.Good}
	for _, d := range chk.Damage {
		c.damage = append(c.damage, ShardDamage{Object: name, Shard: d.Shard, Problem: d.Problem})
	}
	return c, err
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
