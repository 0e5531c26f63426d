// Package keylock serialises work per key (a resource, an image) within
// one process: a map of locks whose entries go away when unused, and
// whose waits give up with their context.
package keylock

import (
	"context"
	"sync"
)

// Map serialises work per key. The zero value is ready to use.
type Map struct {
	mu   sync.Mutex
	held map[string]*keyEntry
}

type keyEntry struct {
	ch   chan struct{} // holds a token while the key is locked
	refs int           // holders and waiters; the entry goes at zero
}

// Lock takes key, or returns ctx's error. The returned func releases it.
func (l *Map) Lock(ctx context.Context, key string) (func(), error) {
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
