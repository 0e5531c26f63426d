package appliance

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestPublishedSetOrder: whatever the order of puts, re-puts (a status
// change publishes a new copy) and drops, all() is every live checkpoint
// exactly once, newest first, ties broken by ID.
func TestPublishedSetOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var p publishedSet
	live := map[string]*Checkpoint{}
	for i := range 2000 {
		id := fmt.Sprintf("cp-%03d", rng.IntN(300))
		switch {
		case i%7 == 0:
			p.drop(id)
			delete(live, id)
		case live[id] != nil:
			c := *live[id]
			c.Status = fmt.Sprint("status-", i)
			p.put(&c)
			live[id] = &c
		default:
			// Few distinct times, so that ties by ID are exercised.
			c := &Checkpoint{ID: id, CreatedAt: base.Add(time.Duration(rng.IntN(20)) * time.Second)}
			p.put(c)
			live[id] = c
		}
	}
	got := p.all()
	if len(got) != len(live) {
		t.Fatalf("all() has %d checkpoints, want %d", len(got), len(live))
	}
	for _, c := range got {
		if live[c.ID] != c {
			t.Fatalf("all() holds a stale or dropped copy of %s", c.ID)
		}
	}
	if !slices.IsSortedFunc(got, newerFirst) {
		t.Fatal("all() is not newest first")
	}
}
