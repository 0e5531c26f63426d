package dedup

import (
	"container/list"
	"sync"
)

// lru is a size-bounded least-recently-used cache, safe for concurrent use.
// Cost is whatever the caller says (bytes for chunks, 1 for headers).
type lru[K comparable, V any] struct {
	mu      sync.Mutex
	limit   int64
	used    int64
	order   *list.List
	entries map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	key  K
	val  V
	cost int64
}

func newLRU[K comparable, V any](limit int64) *lru[K, V] {
	return &lru[K, V]{limit: limit, order: list.New(), entries: make(map[K]*list.Element)}
}

func (c *lru[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*lruEntry[K, V]).val, true
	}
	var zero V
	return zero, false
}

func (c *lru[K, V]) add(k K, v V, cost int64) {
	if cost > c.limit {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok {
		old := e.Value.(*lruEntry[K, V])
		c.used += cost - old.cost
		old.val, old.cost = v, cost
		c.order.MoveToFront(e)
	} else {
		c.entries[k] = c.order.PushFront(&lruEntry[K, V]{key: k, val: v, cost: cost})
		c.used += cost
	}
	for c.used > c.limit {
		last := c.order.Back()
		ent := last.Value.(*lruEntry[K, V])
		c.order.Remove(last)
		delete(c.entries, ent.key)
		c.used -= ent.cost
	}
}

func (c *lru[K, V]) remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok {
		c.used -= e.Value.(*lruEntry[K, V]).cost
		c.order.Remove(e)
		delete(c.entries, k)
	}
}
