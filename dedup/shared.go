package dedup

import (
	"sync/atomic"

	"cairn/internal/bigbuf"
	"cairn/internal/lru"
)

// shared is decoded plaintext (a chunk, or a frame of one) that a cache
// holds and readers borrow. The cache holds a reference while the entry is
// in it, and each reader one from get until release; the last release hands
// the bytes back to the pool, for the next decode to reuse. Without that,
// every chunk an NBD or FUSE reader decodes was a fresh buffer of up to
// 4 MiB, and zeroing it and faulting it in took more CPU than decoding into
// it: measured here, a third of a sequential NBD read, 75,000 minor faults
// per GiB.
type shared struct {
	b    []byte
	refs atomic.Int32
	pool *bigbuf.Pool
}

// newShared wraps b, which came from pool or was made fresh, with one
// reference: the caller's.
func newShared(b []byte, pool *bigbuf.Pool) *shared {
	s := &shared{b: b, pool: pool}
	s.refs.Store(1)
	return s
}

// acquire takes a reference, unless the last one is gone: the bytes may
// then hold something else already, and the caller must look again.
func (s *shared) acquire() bool {
	for {
		n := s.refs.Load()
		if n <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release gives a reference back; whoever releases must not touch s.b
// again.
func (s *shared) release() {
	switch n := s.refs.Add(-1); {
	case n == 0:
		s.pool.Put(s.b[:cap(s.b)])
	case n < 0:
		panic("dedup: shared buffer released more often than acquired")
	}
}

// sharedCache is an LRU cache of shared buffers.
type sharedCache[K comparable] struct {
	c *lru.Cache[K, *shared]
}

func newSharedCache[K comparable](limit int64) sharedCache[K] {
	return sharedCache[K]{lru.NewDropping[K, *shared](limit, (*shared).release)}
}

// get returns k's buffer with a reference for the caller to release.
func (c sharedCache[K]) get(k K) (*shared, bool) {
	s, ok := c.c.Get(k)
	if !ok || !s.acquire() {
		return nil, false
	}
	return s, true
}

// has reports whether k is cached.
func (c sharedCache[K]) has(k K) bool {
	_, ok := c.c.Get(k)
	return ok
}

// add caches s under k, with a reference of the cache's own: the caller
// keeps and still releases its own.
func (c sharedCache[K]) add(k K, s *shared) {
	s.refs.Add(1)
	c.c.Add(k, s, int64(len(s.b)))
}

// remove drops k.
func (c sharedCache[K]) remove(k K) { c.c.Remove(k) }
