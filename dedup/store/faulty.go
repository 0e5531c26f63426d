package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync/atomic"
	"syscall"
)

// ErrUnreachable is returned (wrapped) by the Unreachable hook.
var ErrUnreachable = errors.New("backend unreachable (injected fault)")

// Faulty wraps a Store and injects errors, for tests of how callers handle a
// full disk or an unreachable backend. A nil hook passes the call through; a
// hook returning non-nil fails the call with that error without reaching
// the wrapped Store. Set hooks before sharing the Faulty between goroutines,
// or while no calls are in flight.
type Faulty struct {
	Store

	FailPut    func(name string) error   // Put
	FailRead   func(name string) error   // Get, ReadAt, Stat
	FailDelete func(name string) error   // Delete
	FailList   func(prefix string) error // List

	// Counters of calls per hook group, failed or not.
	Puts, Reads, Deletes, Lists atomic.Int64
}

// NewFaulty wraps s with no faults configured.
func NewFaulty(s Store) *Faulty { return &Faulty{Store: s} }

// DiskFull is a hook that fails like a full disk: the error wraps
// syscall.ENOSPC.
func DiskFull(name string) error {
	return &fs.PathError{Op: "write", Path: name, Err: syscall.ENOSPC}
}

// Unreachable is a hook that fails like a lost connection: the error wraps
// ErrUnreachable.
func Unreachable(name string) error {
	return fmt.Errorf("%s: %w", name, ErrUnreachable)
}

// FailAfter returns a hook that lets n calls through and then fails every
// later call with hook(name), e.g. FailAfter(3, DiskFull).
func FailAfter(n int64, hook func(name string) error) func(name string) error {
	var calls atomic.Int64
	return func(name string) error {
		if calls.Add(1) > n {
			return hook(name)
		}
		return nil
	}
}

func fault(hook func(string) error, name string) error {
	if hook == nil {
		return nil
	}
	return hook(name)
}

// String implements Store.
func (f *Faulty) String() string { return "faulty:" + f.Store.String() }

// Put implements Store.
func (f *Faulty) Put(ctx context.Context, name string, data []byte) error {
	f.Puts.Add(1)
	if err := fault(f.FailPut, name); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	return f.Store.Put(ctx, name, data)
}

// Get implements Store.
func (f *Faulty) Get(ctx context.Context, name string) ([]byte, error) {
	f.Reads.Add(1)
	if err := fault(f.FailRead, name); err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	return f.Store.Get(ctx, name)
}

// ReadAt implements Store.
func (f *Faulty) ReadAt(ctx context.Context, name string, p []byte, off int64) error {
	f.Reads.Add(1)
	if err := fault(f.FailRead, name); err != nil {
		return fmt.Errorf("readat %s: %w", name, err)
	}
	return f.Store.ReadAt(ctx, name, p, off)
}

// Stat implements Store.
func (f *Faulty) Stat(ctx context.Context, name string) (int64, error) {
	f.Reads.Add(1)
	if err := fault(f.FailRead, name); err != nil {
		return 0, fmt.Errorf("stat %s: %w", name, err)
	}
	return f.Store.Stat(ctx, name)
}

// Delete implements Store.
func (f *Faulty) Delete(ctx context.Context, name string) error {
	f.Deletes.Add(1)
	if err := fault(f.FailDelete, name); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return f.Store.Delete(ctx, name)
}

// List implements Store.
func (f *Faulty) List(ctx context.Context, prefix string, fn func(name string, size int64) error) error {
	f.Lists.Add(1)
	if err := fault(f.FailList, prefix); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	return f.Store.List(ctx, prefix, fn)
}
