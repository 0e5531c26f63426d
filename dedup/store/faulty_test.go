package store_test

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"cairn/dedup/store"
	"cairn/dedup/store/storetest"
)

func TestFaultyPassThrough(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return store.NewFaulty(store.NewMem()) })
}

func TestFaulty(t *testing.T) {
	ctx := context.Background()
	mem := store.NewMem()
	f := store.NewFaulty(mem)
	f.FailPut = store.FailAfter(2, store.DiskFull)
	for i, name := range []string{"a", "b", "c", "d"} {
		err := f.Put(ctx, name, []byte(name))
		if full := i >= 2; full != errors.Is(err, syscall.ENOSPC) {
			t.Errorf("Put #%d = %v, want ENOSPC: %v", i+1, err, full)
		}
	}
	if _, err := mem.Stat(ctx, "c"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("failed Put reached the wrapped store: %v", err)
	}
	if got := f.Puts.Load(); got != 4 {
		t.Errorf("Puts = %d, want 4", got)
	}

	f.FailRead = store.Unreachable
	if _, err := f.Get(ctx, "a"); !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("Get = %v, want ErrUnreachable", err)
	}
	if err := f.ReadAt(ctx, "a", make([]byte, 1), 0); !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("ReadAt = %v, want ErrUnreachable", err)
	}
	f.FailRead = nil
	if _, err := f.Get(ctx, "a"); err != nil {
		t.Errorf("Get after clearing the hook: %v", err)
	}
	if got := f.Reads.Load(); got != 3 {
		t.Errorf("Reads = %d, want 3", got)
	}
	if s := f.String(); s != "faulty:"+mem.String() {
		t.Errorf("String() = %q", s)
	}
}
