package appliance

import (
	"slices"
	"strings"
)

// publishedSet holds, per checkpoint, an immutable copy of its last saved
// state: lists hand these out without copying every checkpoint, while
// jobs keep changing the originals under mu. It keeps them newest first
// (created_at, then ID, descending: the API's default order), so that a
// page of a list with thousands of checkpoints costs a walk, not a sort.
type publishedSet struct {
	byID  map[string]*Checkpoint
	order []*Checkpoint
}

// newerFirst orders checkpoints as the API lists them by default.
func newerFirst(a, b *Checkpoint) int {
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// put publishes c, a copy no one changes any more.
func (p *publishedSet) put(c *Checkpoint) {
	if p.byID == nil {
		p.byID = map[string]*Checkpoint{}
	}
	if old := p.byID[c.ID]; old != nil {
		p.remove(old)
	}
	p.byID[c.ID] = c
	i, _ := slices.BinarySearchFunc(p.order, c, newerFirst)
	p.order = slices.Insert(p.order, i, c)
}

// drop forgets checkpoint id.
func (p *publishedSet) drop(id string) {
	if old := p.byID[id]; old != nil {
		p.remove(old)
		delete(p.byID, id)
	}
}

func (p *publishedSet) remove(old *Checkpoint) {
	if i, ok := slices.BinarySearchFunc(p.order, old, newerFirst); ok {
		p.order = slices.Delete(p.order, i, i+1)
	}
}

// all is every published checkpoint, newest first; callers must not
// change the slice or what it points to.
func (p *publishedSet) all() []*Checkpoint { return p.order }
