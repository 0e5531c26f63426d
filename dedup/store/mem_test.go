package store_test

import (
	"context"
	"errors"
	"testing"

	"cairn/dedup/store"
	"cairn/dedup/store/storetest"
)

func TestMem(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return store.NewMem() })
}

func TestMemCorruptRemove(t *testing.T) {
	ctx := context.Background()
	m := store.NewMem()
	if err := m.Put(ctx, "obj", []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	before, _ := m.Get(ctx, "obj")
	m.Corrupt("obj", 1)
	got, err := m.Get(ctx, "obj")
	if err != nil || got[0] != 1 || got[1] != 2^0xff || got[2] != 3 {
		t.Errorf("after Corrupt(obj, 1): %v, %v", got, err)
	}
	if before[1] != 2 {
		t.Error("Corrupt changed a slice returned earlier")
	}
	m.Remove("obj")
	if _, err := m.Get(ctx, "obj"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Remove: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Corrupt of a missing object did not panic")
		}
	}()
	m.Corrupt("obj", 0)
}
