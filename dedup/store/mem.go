package store

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Mem is an in-memory Store for unit tests of other components. It copies
// data in and out, so callers cannot alias stored objects by accident, and
// it applies the same name rules as every other Store.
type Mem struct {
	mu   sync.RWMutex
	objs map[string][]byte
}

var _ Store = (*Mem)(nil)

// NewMem returns an empty in-memory store.
func NewMem() *Mem { return &Mem{objs: make(map[string][]byte)} }

// String implements Store.
func (m *Mem) String() string { return fmt.Sprintf("mem:%p", m) }

// Close implements Store.
func (m *Mem) Close() error { return nil }

func (m *Mem) check(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return CheckName(name)
}

// Put implements Store.
func (m *Mem) Put(ctx context.Context, name string, data []byte) error {
	if err := m.check(ctx, name); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	c := append([]byte(nil), data...)
	m.mu.Lock()
	m.objs[name] = c
	m.mu.Unlock()
	return nil
}

// get returns the stored slice itself; callers must not modify or leak it.
func (m *Mem) get(ctx context.Context, name string) ([]byte, error) {
	if err := m.check(ctx, name); err != nil {
		return nil, err
	}
	m.mu.RLock()
	b, ok := m.objs[name]
	m.mu.RUnlock()
	if !ok {
		return nil, ErrNotFound
	}
	return b, nil
}

// Get implements Store.
func (m *Mem) Get(ctx context.Context, name string) ([]byte, error) {
	b, err := m.get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	return append(make([]byte, 0, len(b)), b...), nil
}

// ReadAt implements Store.
func (m *Mem) ReadAt(ctx context.Context, name string, p []byte, off int64) error {
	if off < 0 {
		return fmt.Errorf("readat %s: negative offset %d", name, off)
	}
	b, err := m.get(ctx, name)
	if err != nil {
		return fmt.Errorf("readat %s: %w", name, err)
	}
	if off > int64(len(b)) || int64(len(p)) > int64(len(b))-off {
		return fmt.Errorf("readat %s: %d bytes at %d of %d: %w", name, len(p), off, len(b), io.ErrUnexpectedEOF)
	}
	copy(p, b[off:])
	return nil
}

// Stat implements Store.
func (m *Mem) Stat(ctx context.Context, name string) (int64, error) {
	b, err := m.get(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", name, err)
	}
	return int64(len(b)), nil
}

// Delete implements Store.
func (m *Mem) Delete(ctx context.Context, name string) error {
	if err := m.check(ctx, name); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	m.Remove(name)
	return nil
}

// List implements Store. It lists a snapshot taken at the start, so fn may
// call back into the store (e.g. delete what it sees) without deadlocking.
func (m *Mem) List(ctx context.Context, prefix string, fn func(name string, size int64) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	type entry struct {
		name string
		size int64
	}
	var snap []entry
	m.mu.RLock()
	for name, b := range m.objs {
		if strings.HasPrefix(name, prefix) {
			snap = append(snap, entry{name, int64(len(b))})
		}
	}
	m.mu.RUnlock()
	for _, e := range snap {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		if err := fn(e.name, e.size); err != nil {
			return err
		}
	}
	return nil
}

// Corrupt flips every bit of the byte at off in object name, simulating bit
// rot for tests of checksum verification. It panics if the object is missing
// or off is out of range, since that is a bug in the test.
func (m *Mem) Corrupt(name string, off int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[name]
	if !ok || off < 0 || off >= int64(len(b)) {
		panic(fmt.Sprintf("store.Mem.Corrupt: no byte %d in %q (%d bytes, exists=%v)", off, name, len(b), ok))
	}
	// Copy on write: a caller may still hold b via an in-flight ReadAt.
	c := append([]byte(nil), b...)
	c[off] ^= 0xff
	m.objs[name] = c
}

// Remove deletes object name if present, simulating a lost object without
// going through the Store API.
func (m *Mem) Remove(name string) {
	m.mu.Lock()
	delete(m.objs, name)
	m.mu.Unlock()
}
