// Package storetest is the conformance suite for store.Store
// implementations. Every guarantee in the Store doc comment has a subtest
// here, so a new backend is done when Run passes (also under -race).
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"cairn/dedup/store"
)

// Run runs the conformance suite. newStore must return an empty store; each
// subtest gets its own and Run closes it when the subtest ends.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"PutGet", testPutGet},
		{"Overwrite", testOverwrite},
		{"Missing", testMissing},
		{"ReadAt", testReadAt},
		{"Delete", testDelete},
		{"List", testList},
		{"ListStopsOnError", testListStop},
		{"ListCallsBack", testListCallsBack},
		{"Aliasing", testAliasing},
		{"Concurrent", testConcurrent},
		{"Canceled", testCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func put(t *testing.T, s store.Store, name string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), name, data); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

// wantObject checks Get and Stat of name against want.
func wantObject(t *testing.T, s store.Store, name string, want []byte) {
	t.Helper()
	ctx := context.Background()
	got, err := s.Get(ctx, name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q): got %d bytes, want %d bytes (content differs: %v)", name, len(got), len(want), len(got) == len(want))
	}
	size, err := s.Stat(ctx, name)
	if err != nil || size != int64(len(want)) {
		t.Fatalf("Stat(%q) = %d, %v; want %d, nil", name, size, err, len(want))
	}
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("%s: got error %v, want one wrapping ErrNotFound", what, err)
	}
}

// listAll returns name -> size for everything under prefix.
func listAll(t *testing.T, s store.Store, prefix string) map[string]int64 {
	t.Helper()
	got := make(map[string]int64)
	err := s.List(context.Background(), prefix, func(name string, size int64) error {
		if _, dup := got[name]; dup {
			t.Errorf("List(%q) reported %q twice", prefix, name)
		}
		got[name] = size
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return got
}

func testPutGet(t *testing.T, s store.Store) {
	for _, tt := range []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"one", 1},
		{"nested/a/b/c", 100},
		{"packs/ab/5mib", 5 << 20},
	} {
		t.Run(fmt.Sprint(tt.size), func(t *testing.T) {
			data := randBytes(tt.size, uint64(tt.size))
			put(t, s, tt.name, data)
			wantObject(t, s, tt.name, data)
		})
	}
}

func testOverwrite(t *testing.T, s store.Store) {
	// Longer then shorter then empty: catches a missing truncate.
	for i, n := range []int{1000, 10, 0, 5} {
		data := randBytes(n, uint64(i))
		put(t, s, "obj", data)
		wantObject(t, s, "obj", data)
	}
	if got := listAll(t, s, ""); len(got) != 1 || got["obj"] != 5 {
		t.Errorf("List after overwrites = %v, want only obj of 5 bytes", got)
	}
}

func testMissing(t *testing.T, s store.Store) {
	ctx := context.Background()
	put(t, s, "dir/obj", []byte("x"))
	// "dir" is only a prefix of another name, not an object.
	for _, name := range []string{"missing", "dir/missing", "dir", "dir/obj/below"} {
		_, err := s.Get(ctx, name)
		wantNotFound(t, fmt.Sprintf("Get(%q)", name), err)
		err = s.ReadAt(ctx, name, make([]byte, 1), 0)
		wantNotFound(t, fmt.Sprintf("ReadAt(%q)", name), err)
		_, err = s.Stat(ctx, name)
		wantNotFound(t, fmt.Sprintf("Stat(%q)", name), err)
	}
}

// testReadAt: also with the Scattered hint, which changes how a store
// reads, never what.
func testReadAt(t *testing.T, s store.Store) {
	data := randBytes(100, 42)
	put(t, s, "obj", data)
	for _, ctx := range []context.Context{context.Background(), store.Scattered(context.Background())} {
		testReadAtCtx(t, ctx, s, data)
	}
}

func testReadAtCtx(t *testing.T, ctx context.Context, s store.Store, data []byte) {
	for _, tt := range []struct {
		off     int64
		n       int
		wantEOF bool
	}{
		{0, 0, false},
		{0, 10, false},
		{0, 100, false},
		{37, 20, false},
		{90, 10, false},  // exactly to the end
		{100, 0, false},  // empty read at the end
		{95, 10, true},   // straddles the end
		{0, 101, true},   // one byte too many
		{100, 1, true},   // starts at the end
		{1000, 1, true},  // far past the end
		{1000, 10, true}, // far past the end
	} {
		p := make([]byte, tt.n)
		err := s.ReadAt(ctx, "obj", p, tt.off)
		switch {
		case tt.wantEOF && !errors.Is(err, io.ErrUnexpectedEOF):
			t.Errorf("ReadAt(%d bytes at %d): got %v, want io.ErrUnexpectedEOF", tt.n, tt.off, err)
		case !tt.wantEOF && err != nil:
			t.Errorf("ReadAt(%d bytes at %d): %v", tt.n, tt.off, err)
		case !tt.wantEOF && !bytes.Equal(p, data[tt.off:tt.off+int64(tt.n)]):
			t.Errorf("ReadAt(%d bytes at %d): wrong content", tt.n, tt.off)
		}
	}
	if err := s.ReadAt(ctx, "obj", make([]byte, 1), -1); err == nil {
		t.Errorf("ReadAt at negative offset: got nil error")
	}
}

func testDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.Delete(ctx, "missing"); err != nil {
		t.Errorf("Delete(missing): %v", err)
	}
	put(t, s, "a/obj", []byte("a"))
	put(t, s, "a/keep", []byte("b"))
	for i := range 2 {
		if err := s.Delete(ctx, "a/obj"); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	_, err := s.Get(ctx, "a/obj")
	wantNotFound(t, "Get after Delete", err)
	if err := s.Delete(ctx, "a"); err != nil {
		t.Errorf("Delete of a prefix that is no object: %v", err)
	}
	wantObject(t, s, "a/keep", []byte("b"))
	if got := listAll(t, s, ""); len(got) != 1 {
		t.Errorf("List after Delete = %v, want only a/keep", got)
	}
}
