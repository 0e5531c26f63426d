package rbd

import (
	"context"
	"sync"
)

// keyLock serialises work per key (an image): two backups of one image
// into one repository would remove each other's snapshot, and a delete
// must not remove the base snapshot under a running backup. Waiting
// respects the context.
type keyLock struct {
	mu   sync.Mutex
	held map[string]*keyEntry
}

type keyEntry struct {
	ch   chan struct{} // holds a token while the key is locked
	refs int           // holders and waiters; the entry goes at zero
}

// lock takes key, or returns ctx's error. The returned func releases it.
func (l *keyLock) lock(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	if l.held == nil {
		l.held = map[string]*keyEntry{}
	}
	e := l.held[key]
	if e == nil {
		e = &keyEntry{ch: make(chan struct{}, 1)}
		l.held[key] = e
	}
	e.refs++
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.held, key)
		}
		l.mu.Unlock()
	}
	select {
	case e.ch <- struct{}{}:
		return func() { <-e.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
