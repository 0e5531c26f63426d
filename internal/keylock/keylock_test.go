package keylock

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestKeyLock(t *testing.T) {
	var l Map
	ctx := context.Background()
	unlock, err := l.Lock(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	// Another key is free; the same key waits, and gives up with ctx.
	u2, err := l.Lock(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	u2()
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := l.Lock(short, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock of a held key: %v", err)
	}
	var wg sync.WaitGroup
	got := make(chan struct{})
	wg.Go(func() {
		u, err := l.Lock(ctx, "a")
		if err != nil {
			t.Error(err)
			return
		}
		close(got)
		u()
	})
	select {
	case <-got:
		t.Fatal("a held key was taken twice")
	case <-time.After(20 * time.Millisecond):
	}
	unlock()
	wg.Wait()
	if len(l.held) != 0 {
		t.Errorf("%d lock entries left after every holder went", len(l.held))
	}
}
