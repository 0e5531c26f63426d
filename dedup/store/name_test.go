package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"cairn/dedup/store"
)

func TestCheckName(t *testing.T) {
	for _, tt := range []struct {
		name  string
		valid bool
	}{
		{"a", true},
		{"a/b/c", true},
		{"packs/ab/abcdef0123", true},
		{"config.json", true},
		{"a-b_c/d~e", true},
		{"", false},
		{"/abs", false},
		{"/", false},
		{"..", false},
		{"../escape", false},
		{"a/../b", false},
		{"a/..", false},
		{"a..b", false}, // harmless, but ".." is banned outright
		{`a\b`, false},
		{"a\x00b", false},
		{".hidden", false},
		{"a/.tmp-123", false},
		{"./a", false},
		{"a/./b", false},
		{"a//b", false},
		{"a/", false},
	} {
		err := store.CheckName(tt.name)
		if tt.valid && err != nil {
			t.Errorf("CheckName(%q) = %v, want nil", tt.name, err)
		}
		if !tt.valid && !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("CheckName(%q) = %v, want ErrInvalidName", tt.name, err)
		}
	}
}

func TestInvalidNamesRejected(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	stores := map[string]store.Store{
		"local": openLocal(t, filepath.Join(parent, "shard"), store.LocalOptions{NoSync: true}),
		"mem":   store.NewMem(),
	}
	for kind, s := range stores {
		for _, name := range []string{"", "/etc/passwd", "../escape", "a/../../escape", `a\b`, ".tmp-1", "a/.x"} {
			errs := map[string]error{"Put": s.Put(ctx, name, []byte("x"))}
			_, errs["Get"] = s.Get(ctx, name)
			errs["ReadAt"] = s.ReadAt(ctx, name, make([]byte, 1), 0)
			_, errs["Stat"] = s.Stat(ctx, name)
			errs["Delete"] = s.Delete(ctx, name)
			for op, err := range errs {
				if !errors.Is(err, store.ErrInvalidName) {
					t.Errorf("%s %s(%q) = %v, want ErrInvalidName", kind, op, name, err)
				}
			}
		}
	}
	if _, err := os.Stat(filepath.Join(parent, "escape")); err == nil {
		t.Error("a Put escaped the store directory")
	}
	err := stores["local"].List(ctx, "../", func(string, int64) error { return nil })
	if !errors.Is(err, store.ErrInvalidName) {
		t.Errorf("List(../) = %v, want ErrInvalidName", err)
	}
}
