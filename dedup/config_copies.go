package dedup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"cairn/dedup/store"
)

// maxConfigSize bounds a config copy: a real one is about a kilobyte, so a
// larger object is damage, and is never read whole.
const maxConfigSize = 1 << 20

// configCopy is what one shard store holds under "config".
type configCopy struct {
	index int
	store string // the store's name, for messages
	raw   []byte
	err   error // could not be read
}

// readConfigCopy reads the config copy of shard store i, refusing one too
// large to be a config before reading it.
func readConfigCopy(ctx context.Context, i int, s store.Store) configCopy {
	c := configCopy{index: i, store: s.String()}
	size, err := s.Stat(ctx, configName)
	switch {
	case err != nil:
		c.err = err
	case size > maxConfigSize:
		c.err = fmt.Errorf("%d bytes, a config has at most %d: %w", size, maxConfigSize, ErrCorrupt)
	default:
		c.raw, c.err = s.Get(ctx, configName)
	}
	return c
}

// configChoice is the config the copies agree on and what is wrong with the
// others.
type configChoice struct {
	cfg *Config
	// ref is the copy to keep: the most common bytes among the copies that
	// decode to cfg.
	ref    []byte
	damage []ShardDamage // one per copy that is missing, unreadable or not ref
}

// chooseConfig takes the majority of the valid copies, those that parse
// and validate: one flipped byte in one of the k+m copies must neither block
// the repository nor decide what it is. With no strict majority (two
// configs, equally common) nothing is chosen and the error names the stores
// holding each, since only the operator can tell which is right.
func chooseConfig(copies []configCopy) (*configChoice, error) {
	type group struct {
		cfg     *Config
		members []int // indices into copies
	}
	var groups []*group
	byKey := make(map[string]*group)
	parsed := make([]error, len(copies))
	valid := 0
	for j, c := range copies {
		if c.err != nil {
			continue
		}
		cfg, err := parseConfig(c.raw)
		if err != nil {
			parsed[j] = err
			continue
		}
		key, _ := json.Marshal(cfg)
		g := byKey[string(key)]
		if g == nil {
			g = &group{cfg: cfg}
			byKey[string(key)] = g
			groups = append(groups, g)
		}
		g.members = append(g.members, j)
		valid++
	}
	if valid == 0 {
		var errs []error
		notFound := true
		for j, c := range copies {
			err := cmpOr(c.err, parsed[j])
			notFound = notFound && errors.Is(err, store.ErrNotFound)
			errs = append(errs, fmt.Errorf("config copy in shard store %d (%s): %w", c.index, c.store, err))
		}
		if notFound {
			return nil, ErrNoRepository
		}
		return nil, fmt.Errorf("no valid config copy: %w", errors.Join(errs...))
	}
	slices.SortStableFunc(groups, func(a, b *group) int { return len(b.members) - len(a.members) })
	win := groups[0]
	if 2*len(win.members) <= valid {
		var held []string
		for _, g := range groups {
			var where []string
			for _, j := range g.members {
				where = append(where, fmt.Sprintf("%d (%s)", copies[j].index, copies[j].store))
			}
			held = append(held, fmt.Sprintf("repository %s in shard stores %s", g.cfg.ID, strings.Join(where, ", ")))
		}
		return nil, fmt.Errorf("the config copies disagree and none is held by a majority: %s; put the right copy in every shard store by hand: %w",
			strings.Join(held, "; "), ErrCorrupt)
	}
	// Copies that decode alike may still differ in bytes (whitespace): the
	// most common bytes are the reference, the rest are damage to repair.
	counts := make(map[string]int)
	for _, j := range win.members {
		counts[string(copies[j].raw)]++
	}
	ref := copies[win.members[0]].raw
	for _, j := range win.members {
		if counts[string(copies[j].raw)] > counts[string(ref)] {
			ref = copies[j].raw
		}
	}
	ch := &configChoice{cfg: win.cfg, ref: ref}
	for j, c := range copies {
		var problem string
		switch {
		case errors.Is(c.err, store.ErrNotFound):
			problem = "missing"
		case c.err != nil:
			problem = "corrupt: " + c.err.Error()
		case parsed[j] != nil:
			problem = "corrupt: " + parsed[j].Error()
		case !slices.Contains(win.members, j):
			problem = "corrupt: describes another repository or geometry than the majority of copies"
		case string(c.raw) != string(ref):
			problem = "corrupt: differs in its bytes from the majority of copies"
		default:
			continue
		}
		ch.damage = append(ch.damage, ShardDamage{Object: configName, Shard: c.index, Problem: problem})
	}
	return ch, nil
}

func cmpOr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// warnConfigDamage tells the operator which copies were outvoted.
func warnConfigDamage(log func(string, ...any), copies []configCopy, damage []ShardDamage) {
	if log == nil {
		return
	}
	for _, d := range damage {
		name := ""
		for _, c := range copies {
			if c.index == d.Shard {
				name = c.store
			}
		}
		log("config copy in shard store %d (%s) is %s: using the copy the majority of shard stores hold; run `cairn repo repair` to rewrite it",
			d.Shard, name, d.Problem)
	}
}
