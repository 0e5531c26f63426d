package storetest

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"testing"

	"cairn/dedup/store"
)

func testList(t *testing.T, s store.Store) {
	names := []string{
		"packs/ab/1", "packs/ab/2", "packs/abc/3", "packs/b",
		"packsx", "index/0", "top", "empty",
	}
	for _, n := range names {
		if n == "empty" {
			put(t, s, n, nil)
			continue
		}
		put(t, s, n, []byte(n)) // size = len(name), to check sizes
	}
	for _, tt := range []struct {
		prefix string
		want   []string
	}{
		{"", names},
		{"packs/", []string{"packs/ab/1", "packs/ab/2", "packs/abc/3", "packs/b"}},
		{"packs", []string{"packs/ab/1", "packs/ab/2", "packs/abc/3", "packs/b", "packsx"}},
		{"packs/a", []string{"packs/ab/1", "packs/ab/2", "packs/abc/3"}},
		{"packs/ab", []string{"packs/ab/1", "packs/ab/2", "packs/abc/3"}},
		{"packs/ab/", []string{"packs/ab/1", "packs/ab/2"}},
		{"packs/ab/1", []string{"packs/ab/1"}},
		{"pa", []string{"packs/ab/1", "packs/ab/2", "packs/abc/3", "packs/b", "packsx"}},
		{"t", []string{"top"}},
		{"index", []string{"index/0"}},
		{"top/", nil}, // below an object, not a directory
		{"nope", nil},
		{"nope/deeper/", nil},
	} {
		got := listAll(t, s, tt.prefix)
		if g := slices.Sorted(maps.Keys(got)); !slices.Equal(g, slices.Sorted(slices.Values(tt.want))) {
			t.Errorf("List(%q) = %q, want %q", tt.prefix, g, slices.Sorted(slices.Values(tt.want)))
		}
		for name, size := range got {
			want := int64(len(name))
			if name == "empty" {
				want = 0
			}
			if size != want {
				t.Errorf("List(%q): %q has size %d, want %d", tt.prefix, name, size, want)
			}
		}
	}
}

func testListStop(t *testing.T, s store.Store) {
	for i := range 10 {
		put(t, s, "d/"+string(rune('a'+i)), []byte{byte(i)})
	}
	stop := errors.New("stop")
	for _, after := range []int{1, 3} {
		calls := 0
		err := s.List(context.Background(), "d/", func(string, int64) error {
			calls++
			if calls == after {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) {
			t.Errorf("List with fn failing on call %d: got %v, want fn's error", after, err)
		}
		if calls != after {
			t.Errorf("List went on after fn failed: %d calls, want %d", calls, after)
		}
	}
}

// testListCallsBack checks that fn may use the store, as garbage collection
// does when it deletes what it lists.
func testListCallsBack(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i := range 20 {
		put(t, s, "gc/"+string(rune('a'+i%4))+"/"+string(rune('a'+i)), []byte{byte(i)})
	}
	err := s.List(ctx, "gc/", func(name string, _ int64) error {
		if _, err := s.Get(ctx, name); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return s.Delete(ctx, name)
	})
	if err != nil {
		t.Fatalf("List deleting every object: %v", err)
	}
	if got := listAll(t, s, ""); len(got) != 0 {
		t.Errorf("List after deleting all = %v, want nothing", got)
	}
}

func testAliasing(t *testing.T, s store.Store) {
	ctx := context.Background()
	data := []byte("original")
	put(t, s, "obj", data)
	data[0] = 'X'
	got, err := s.Get(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte("original")) {
		t.Fatalf("Put retained its argument: got %q", got)
	}
	got[0] = 'Y'
	wantObject(t, s, "obj", []byte("original"))
}

func testCanceled(t *testing.T, s store.Store) {
	put(t, s, "obj", []byte("data"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with canceled context: got %v, want context.Canceled", op, err)
		}
	}
	check("Put", s.Put(ctx, "new", []byte("x")))
	_, err := s.Get(ctx, "obj")
	check("Get", err)
	check("ReadAt", s.ReadAt(ctx, "obj", make([]byte, 1), 0))
	_, err = s.Stat(ctx, "obj")
	check("Stat", err)
	check("Delete", s.Delete(ctx, "obj"))
	check("List", s.List(ctx, "", func(string, int64) error {
		t.Error("List called fn with a canceled context")
		return nil
	}))
	// No effect: the Put did not happen, the Delete did not either.
	_, err = s.Stat(context.Background(), "new")
	wantNotFound(t, "Stat after canceled Put", err)
	wantObject(t, s, "obj", []byte("data"))
}
