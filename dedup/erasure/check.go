package erasure

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"cairn/dedup/store"
)

// Damage is one shard of an object that is missing or corrupt.
type Damage struct {
	Shard   int
	Problem string // "missing", or "corrupt: " and why
}

// Check is what reading every shard of one object found.
type Check struct {
	Name   string
	Good   int // shards that passed every check
	Damage []Damage
}

// ErrUnrepairable means the surviving shards of an object cannot give
// trustworthy replacements for the others.
var ErrUnrepairable = errors.New("cannot be rebuilt from its surviving shards")

// CheckObject reads every shard of name in full, piece bytes at a time so
// memory stays bounded whatever the object's size, and checks every block's
// checksum. Only failures of the stores to answer at all (and
// cancellation) are errors; everything else is damage.
func (c *Objects) CheckObject(ctx context.Context, name string, piece int) (Check, error) {
	chk := Check{Name: name}
	headers := make([]*ShardHeader, len(c.stores))
	votes := make(map[int64]int)
	for i := range c.stores {
		h, err := c.checkShard(ctx, name, i, piece)
		if err != nil {
			if ctx.Err() != nil {
				return chk, ctx.Err()
			}
			chk.Damage = append(chk.Damage, Damage{Shard: i, Problem: problem(err)})
			continue
		}
		headers[i] = h
		votes[h.ObjectLen]++
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
		if h.ObjectLen != length {
			chk.Damage = append(chk.Damage, Damage{Shard: i,
				Problem: fmt.Sprintf("corrupt: object length %d, other shards say %d", h.ObjectLen, length)})
			continue
		}
		chk.Good++
	}
	sort.Slice(chk.Damage, func(i, j int) bool { return chk.Damage[i].Shard < chk.Damage[j].Shard })
	return chk, nil
}

func (c *Objects) checkShard(ctx context.Context, name string, i, piece int) (*ShardHeader, error) {
	// What is stored now matters, not what was cached when it was read.
	c.Forget(name, i)
	h, err := c.Header(ctx, name, i)
	if err != nil {
		return nil, err
	}
	size, err := c.stores[i].Stat(ctx, name)
	if err != nil {
		return nil, err
	}
	if want := h.DataOffset() + h.ShardLen; size != want {
		return nil, fmt.Errorf("shard of %d bytes, its header says %d: %w", size, want, ErrCorrupt)
	}
	step := int64(max(1, piece/h.BlockSize) * h.BlockSize)
	for a := int64(0); a < h.ShardLen; a += step {
		if _, err := c.ReadShard(ctx, name, i, a, min(a+step, h.ShardLen)); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// problem describes a shard read failure for a report.
func problem(err error) string {
	if errors.Is(err, store.ErrNotFound) {
		return "missing"
	}
	return "corrupt: " + err.Error()
}

// Rebuild rebuilds the object chk describes from its good shards and
// rewrites the damaged ones. It returns the shards it rewrote: none when
// the object went away meanwhile. The rebuilt object must re-encode to
// exactly the shards that survived; if it does not, they do not belong
// together (a shard of another object, another geometry), parity computed
// from them would only spread the damage, and the error is
// ErrUnrepairable.
func (c *Objects) Rebuild(ctx context.Context, chk Check) ([]int, error) {
	data, err := c.Get(ctx, chk.Name)
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return nil, fmt.Errorf("%w: %w", ErrUnrepairable, err)
		}
		return nil, fmt.Errorf("rebuild %s: %w", chk.Name, err)
	}
	shards, err := c.Encode(chk.Name, data, nil)
	if err != nil {
		return nil, fmt.Errorf("re-encode %s: %w", chk.Name, err)
	}
	damaged := func(i int) bool { return slices.ContainsFunc(chk.Damage, func(d Damage) bool { return d.Shard == i }) }
	good := -1
	for i, s := range shards {
		if damaged(i) {
			continue
		}
		have, err := c.Header(ctx, chk.Name, i)
		if err != nil {
			return nil, fmt.Errorf("%w: shard %d: %w", ErrUnrepairable, i, err)
		}
		want, err := ParseShardPrefix(s)
		if err != nil || !sameShard(have, want) {
			return nil, fmt.Errorf("%w: shard %d differs from the rebuilt object's", ErrUnrepairable, i)
		}
		good = i
	}
	if good < 0 {
		return nil, fmt.Errorf("%w: no shard survived", ErrUnrepairable)
	}
	// If the object went away since the check (a checkpoint deleted), a
	// rewritten shard would bring a fragment of it back.
	if _, err := c.stores[good].Stat(ctx, chk.Name); errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	var done []int
	for _, d := range chk.Damage {
		if err := c.stores[d.Shard].Put(ctx, chk.Name, shards[d.Shard]); err != nil {
			return done, fmt.Errorf("rewrite shard %d of %s: %w", d.Shard, chk.Name, err)
		}
		c.Forget(chk.Name, d.Shard)
		done = append(done, d.Shard)
	}
	return done, nil
}

func sameShard(a, b *ShardHeader) bool {
	return a.K == b.K && a.M == b.M && a.Index == b.Index && a.ObjectLen == b.ObjectLen &&
		a.ShardLen == b.ShardLen && a.BlockSize == b.BlockSize && slices.Equal(a.Sums, b.Sums)
}
