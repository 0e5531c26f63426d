package dedup

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// ForgetPolicy selects checkpoints to remove, with restic's semantics: the
// rules apply to each source separately, newest checkpoint first, and a
// checkpoint any rule keeps is kept. A negative count keeps without limit.
type ForgetPolicy struct {
	// KeepLast keeps the n newest checkpoints.
	KeepLast int
	// KeepDaily, KeepWeekly and KeepMonthly keep the newest checkpoint of
	// each of the n most recent days, ISO weeks and months that have one
	// (local time).
	KeepDaily, KeepWeekly, KeepMonthly int
	// Source restricts the rules to one source; empty means all.
	Source string
	// IDs (or unique prefixes) are removed whatever the rules say.
	IDs []string
	// DryRun computes the result without deleting.
	DryRun bool
}

// ForgetResult lists the checkpoints the policy kept and removed, newest
// first within each source.
type ForgetResult struct {
	Keep   []*Checkpoint
	Remove []*Checkpoint
}

func (p ForgetPolicy) hasRules() bool {
	return p.KeepLast != 0 || p.KeepDaily != 0 || p.KeepWeekly != 0 || p.KeepMonthly != 0
}

// Forget applies p and deletes the checkpoints it removes. Only manifests
// go: every checkpoint's block map is complete, so no other checkpoint
// depends on a removed one, and prune later frees the data nobody uses.
func (r *Repository) Forget(ctx context.Context, p ForgetPolicy) (*ForgetResult, error) {
	if !p.hasRules() && len(p.IDs) == 0 {
		return nil, errors.New("forget: no policy and no checkpoint IDs given; refusing to guess")
	}
	explicit := make(map[string]bool, len(p.IDs))
	for _, id := range p.IDs {
		full, err := r.ResolveID(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("forget: %w", err)
		}
		explicit[full] = true
	}
	cps, err := r.Checkpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("forget: %w", err)
	}
	res := forgetPlan(cps, p, explicit, time.Local)
	if p.DryRun {
		return res, nil
	}
	for _, cp := range res.Remove {
		if err := r.DeleteCheckpoint(ctx, cp.ID); err != nil {
			return res, fmt.Errorf("forget: %w", err)
		}
	}
	return res, nil
}

// forgetPlan is Forget's decision, pure so it can be table-tested. explicit
// holds full IDs removed regardless of rules; loc is the time zone whose
// days, weeks and months the rules count.
func forgetPlan(cps []*Checkpoint, p ForgetPolicy, explicit map[string]bool, loc *time.Location) *ForgetResult {
	groups := make(map[string][]*Checkpoint)
	var sources []string
	res := &ForgetResult{}
	for _, cp := range cps {
		if p.Source != "" && cp.Source != p.Source {
			if explicit[cp.ID] {
				res.Remove = append(res.Remove, cp)
			}
			continue
		}
		if _, ok := groups[cp.Source]; !ok {
			sources = append(sources, cp.Source)
		}
		groups[cp.Source] = append(groups[cp.Source], cp)
	}
	sort.Strings(sources)
	for _, src := range sources {
		g := groups[src]
		sort.Slice(g, func(i, j int) bool {
			if !g[i].CreatedAt.Equal(g[j].CreatedAt) {
				return g[i].CreatedAt.After(g[j].CreatedAt)
			}
			return g[i].ID > g[j].ID
		})
		keep := keepByRules(g, p, loc)
		for i, cp := range g {
			if keep[i] && !explicit[cp.ID] {
				res.Keep = append(res.Keep, cp)
			} else {
				res.Remove = append(res.Remove, cp)
			}
		}
	}
	return res
}

// bucketRule keeps the first checkpoint of each of count distinct buckets.
type bucketRule struct {
	count  int
	bucket func(t time.Time, i int) int
	last   int
}

// keepByRules marks which checkpoints of one source, newest first, any rule
// keeps. Without rules (only explicit IDs) every checkpoint is kept.
func keepByRules(g []*Checkpoint, p ForgetPolicy, loc *time.Location) []bool {
	keep := make([]bool, len(g))
	if !p.hasRules() {
		for i := range keep {
			keep[i] = true
		}
		return keep
	}
	rules := []*bucketRule{
		{count: p.KeepLast, bucket: func(_ time.Time, i int) int { return i }},
		{count: p.KeepDaily, bucket: func(t time.Time, _ int) int {
			return t.Year()*10000 + int(t.Month())*100 + t.Day()
		}},
		{count: p.KeepWeekly, bucket: func(t time.Time, _ int) int {
			y, w := t.ISOWeek()
			return y*100 + w
		}},
		{count: p.KeepMonthly, bucket: func(t time.Time, _ int) int { return t.Year()*100 + int(t.Month()) }},
	}
	for _, rule := range rules {
		rule.last = -1
	}
	for i, cp := range g {
		t := cp.CreatedAt.In(loc)
		for _, rule := range rules {
			if rule.count == 0 {
				continue
			}
			if b := rule.bucket(t, i); b != rule.last {
				rule.last = b
				keep[i] = true
				if rule.count > 0 {
					rule.count--
				}
			}
		}
	}
	return keep
}
