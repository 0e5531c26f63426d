package store_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn/dedup/store"
	"cairn/dedup/store/storetest"
)

func openLocal(t *testing.T, dir string, opts store.LocalOptions) *store.Local {
	t.Helper()
	l, err := store.OpenLocal(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLocal(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts store.LocalOptions
	}{
		{"Sync", store.LocalOptions{}},
		{"NoSync", store.LocalOptions{NoSync: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store {
				return openLocal(t, t.TempDir(), tt.opts)
			})
		})
	}
}

func TestLocalLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing", "shard-2")
	l := openLocal(t, dir, store.LocalOptions{})
	if l.Dir() != dir || l.String() != "local:"+dir {
		t.Errorf("Dir() = %q, String() = %q", l.Dir(), l.String())
	}
	if err := l.Put(context.Background(), "a/b/c", []byte("abc")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "a", "b", "c"))
	if err != nil || string(got) != "abc" {
		t.Fatalf("file for a/b/c: %q, %v", got, err)
	}
	if temps := tempFiles(t, dir); len(temps) != 0 {
		t.Errorf("Put left temp files: %v", temps)
	}
}

func TestLocalSymlinkedDir(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Skip(err)
	}
	l := openLocal(t, link, store.LocalOptions{NoSync: true})
	ctx := context.Background()
	if err := l.Put(ctx, "x/y", []byte("1")); err != nil {
		t.Fatal(err)
	}
	var names []string
	err := l.List(ctx, "", func(name string, _ int64) error {
		names = append(names, name)
		return nil
	})
	if err != nil || len(names) != 1 || names[0] != "x/y" {
		t.Errorf("List through symlinked dir = %q, %v", names, err)
	}
}

// tempFiles returns the temp files below dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var temps []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			temps = append(temps, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return temps
}

func writeFile(t *testing.T, path, data string, age time.Duration) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Now().Add(-age)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func listNames(t *testing.T, s store.Store, prefix string) map[string]bool {
	t.Helper()
	names := make(map[string]bool)
	err := s.List(context.Background(), prefix, func(name string, _ int64) error {
		names[name] = true
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return names
}

func TestLocalHiddenFilesNotListed(t *testing.T) {
	dir := t.TempDir()
	l := openLocal(t, dir, store.LocalOptions{NoSync: true})
	if err := l.Put(context.Background(), "packs/ab/obj", []byte("x")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, ".tmp-1"), "partial", 0)
	writeFile(t, filepath.Join(dir, "packs", "ab", ".tmp-2"), "partial", 0)
	writeFile(t, filepath.Join(dir, ".hidden", "file"), "other", 0)
	for _, prefix := range []string{"", "packs/", "packs/ab/", "packs/ab/.", "."} {
		names := listNames(t, l, prefix)
		for name := range names {
			if name != "packs/ab/obj" {
				t.Errorf("List(%q) reported %q", prefix, name)
			}
		}
	}
}

// TestLocalKilledWriter simulates a Put killed before its rename: the temp
// file it leaves must be invisible and removable by CleanTemp.
func TestLocalKilledWriter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openLocal(t, dir, store.LocalOptions{})
	if err := l.Put(ctx, "packs/old", []byte("old version")); err != nil {
		t.Fatal(err)
	}
	// One writer was replacing packs/old, another creating packs/new.
	oldTemp := filepath.Join(dir, "packs", ".tmp-111")
	newTemp := filepath.Join(dir, "packs", ".tmp-222")
	writeFile(t, oldTemp, "new ver", 2*time.Hour)
	writeFile(t, newTemp, "half", 2*time.Hour)
	freshTemp := filepath.Join(dir, ".tmp-333") // maybe still being written
	writeFile(t, freshTemp, "in flight", 0)

	if got, err := l.Get(ctx, "packs/old"); err != nil || string(got) != "old version" {
		t.Errorf("Get(packs/old) = %q, %v; want the old version", got, err)
	}
	if _, err := l.Get(ctx, "packs/new"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(packs/new) = %v, want ErrNotFound", err)
	}
	if names := listNames(t, l, ""); len(names) != 1 || !names["packs/old"] {
		t.Errorf("List = %v, want only packs/old", names)
	}

	n, err := l.CleanTemp(ctx, time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("CleanTemp(1h) = %d, %v; want 2, nil", n, err)
	}
	if temps := tempFiles(t, dir); len(temps) != 1 || temps[0] != freshTemp {
		t.Errorf("after CleanTemp(1h) temp files are %v, want only %s", temps, freshTemp)
	}
	if n, err := l.CleanTemp(ctx, 0); err != nil || n != 1 {
		t.Errorf("CleanTemp(0) = %d, %v; want 1, nil", n, err)
	}
	if got, err := l.Get(ctx, "packs/old"); err != nil || string(got) != "old version" {
		t.Errorf("CleanTemp touched an object: %q, %v", got, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.CleanTemp(cctx, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("CleanTemp with canceled context: %v", err)
	}
}

// TestLocalGetOversized: a file claiming more bytes than any object read
// whole (a sparse file of absurd size) is refused by name, not allocated.
func TestLocalGetOversized(t *testing.T) {
	ctx := context.Background()
	for _, size := range []int64{store.MaxGetSize + 1, 1 << 40} {
		dir := t.TempDir()
		l := openLocal(t, dir, store.LocalOptions{NoSync: true})
		p := filepath.Join(dir, "config")
		f, err := os.Create(p)
		if err == nil {
			err = f.Truncate(size)
			f.Close()
		}
		if err != nil {
			t.Fatalf("sparse file of %d bytes: %v", size, err)
		}
		_, err = l.Get(ctx, "config")
		if err == nil || !strings.Contains(err.Error(), "config") || !strings.Contains(err.Error(), "damaged") {
			t.Errorf("get of a %d-byte file: %v, want an error naming the object", size, err)
		}
	}
}
