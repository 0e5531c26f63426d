// Package lru is a size-bounded least-recently-used cache, safe for
// concurrent use. Cost is whatever the caller says: bytes for decoded
// chunks, 1 for headers. Well-kept LRU libraries bound entries by count;
// cairn's caches mix entries of a few bytes and of 4 MiB, so they bound by
// cost.
package lru

import (
	"container/list"
	"sync"
)

// Cache is a least-recently-used cache bounded by the total cost of its
// entries.
type Cache[K comparable, V any] struct {
	mu      sync.Mutex
	limit   int64
	used    int64
	order   *list.List
	entries map[K]*list.Element
	dropped func(V)
}

type entry[K comparable, V any] struct {
	key  K
	val  V
	cost int64
}

// New returns an empty cache holding at most limit in total cost.
func New[K comparable, V any](limit int64) *Cache[K, V] {
	return &Cache[K, V]{limit: limit, order: list.New(), entries: make(map[K]*list.Element)}
}

// NewDropping is New with dropped called, under the cache's lock, with
// every value the cache lets go of: evicted, removed, replaced, or refused
// by Add for its cost. Values that own something (a reference to a shared
// buffer) release it there.
func NewDropping[K comparable, V any](limit int64, dropped func(V)) *Cache[K, V] {
	c := New[K, V](limit)
	c.dropped = dropped
	return c
}

func (c *Cache[K, V]) drop(v V) {
	if c.dropped != nil {
		c.dropped(v)
	}
}

// Get returns the value of k and marks it recently used.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*entry[K, V]).val, true
	}
	var zero V
	return zero, false
}

// Add sets k to v at the given cost, evicting the least recently used
// entries beyond the limit. An entry costlier than the limit is not kept.
func (c *Cache[K, V]) Add(k K, v V, cost int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cost > c.limit {
		c.drop(v)
		return
	}
	if e, ok := c.entries[k]; ok {
		old := e.Value.(*entry[K, V])
		c.used += cost - old.cost
		c.drop(old.val)
		old.val, old.cost = v, cost
		c.order.MoveToFront(e)
	} else {
		c.entries[k] = c.order.PushFront(&entry[K, V]{key: k, val: v, cost: cost})
		c.used += cost
	}
	for c.used > c.limit {
		last := c.order.Back()
		ent := last.Value.(*entry[K, V])
		c.order.Remove(last)
		delete(c.entries, ent.key)
		c.used -= ent.cost
		c.drop(ent.val)
	}
}

// Remove drops k.
func (c *Cache[K, V]) Remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok {
		ent := e.Value.(*entry[K, V])
		c.used -= ent.cost
		c.order.Remove(e)
		delete(c.entries, k)
		c.drop(ent.val)
	}
}
